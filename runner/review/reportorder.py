"""The order a reviewer reads journeys in: what the pull request changed first, the rest after.

With ``--base``, a journey whose file changed (or was added) comes first; then
a journey whose file did not change but which sends a template the pull
request changed (its emails change all the same); then the unchanged ones.
Within each group, by id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from runner.core.model import EmailStep, Journey
from runner.review.diff import JourneyDiff
from runner.review.filechanges import FileChange

CHANGED, AFFECTED, UNCHANGED = "changed", "affected", "unchanged"


@dataclass(frozen=True)
class Placed:
    journey: Journey
    group: str  # changed (its file changed or was added), affected (a template it sends changed), unchanged
    templates: tuple[str, ...] = ()  # for `affected`: the changed template files it sends


def _uses(journey: Journey, templates_dir: str, file: str) -> bool:
    """Does ``file`` (a repository path) hold one of the journey's email templates (any locale or part)?"""
    for step in journey.steps.values():
        if isinstance(step, EmailStep):
            for name in filter(None, (step.template, step.text_template)):
                pattern = rf"(^|/){re.escape(templates_dir)}/{re.escape(name)}(\.[A-Za-z0-9_-]+)?\.(html|txt)$"
                if re.search(pattern, file):
                    return True
    return False


def place_journeys(journeys: Sequence[Journey], diffs: dict[str, JourneyDiff] | None,
                   files: Sequence[FileChange] = (), templates_dir: str = "templates") -> list[Placed]:
    """The journeys in reading order, each with its group (all ``unchanged`` without a base to compare with)."""
    placed = []
    for journey in sorted(journeys, key=lambda j: j.id):
        diff = (diffs or {}).get(journey.id)
        if diff is not None and diff.status != UNCHANGED:
            placed.append(Placed(journey, CHANGED))
            continue
        touched = tuple(f.file for f in files if _uses(journey, templates_dir, f.file))
        placed.append(Placed(journey, AFFECTED, touched) if touched else Placed(journey, UNCHANGED))
    rank = {CHANGED: 0, AFFECTED: 1, UNCHANGED: 2}
    return sorted(placed, key=lambda p: rank[p.group])  # stable: by id within a group
