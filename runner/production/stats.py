"""``journey stats``: what production did with each deployed journey version.

The database counts (``Store.decision_counts`` and friends: sums over counters that
triggers keep equal to the decision journal and the send ledger); this module only
assembles those few rows into a funnel per journey and version, compares split
variants and the holdout (``runner.production.significance``), and never reads a
row per contact.

Days are UTC ``YYYY-MM-DD``; ``since`` is inclusive and ``until`` exclusive. The
funnel counts what happened on those days; variants and the holdout compare the
contacts who entered on them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from runner.core.model import EmailStep, ExitStep, Journey, SplitStep, Step
from runner.production.significance import Comparison, compare

# The decision that says a step ran (one per run of the step; a deferred email
# counts once, when it is finally sent or skipped).
RAN = ("send", "skip", "webhook", "wait", "wait_for", "branch", "split", "holdout", "update")
PENDING_SEND_STATES = ("claimed", "in_doubt")
HOLDOUT = "holdout"


@dataclass
class StepFigures:
    """One step of the funnel."""

    id: str
    kind: str
    stage: str
    reached: int = 0  # times the step ran
    rate: float | None = None  # reached / entered
    sent: int = 0  # ledger: delivered (emails and webhooks)
    failed: int = 0
    pending: int = 0  # claimed or in doubt
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (engine skips and late sends)
    deferred: int = 0  # deferrals (send window, quiet hours, frequency cap); one send may defer more than once
    outcomes: dict[str, int] = field(default_factory=dict)  # branch case or split variant -> count
    opens: int = 0  # email_opened events naming this step (the newest version with the step has them)
    clicks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class VariantFigures:
    """One variant of a split: contacts assigned (who entered in the window), conversions."""

    split: str
    name: str
    contacts: int = 0
    conversions: int = 0

    @property
    def rate(self) -> float | None:
        return self.conversions / self.contacts if self.contacts else None

    def as_dict(self) -> dict[str, Any]:
        return {"split": self.split, "name": self.name, "contacts": self.contacts,
                "conversions": self.conversions, "rate": self.rate}


@dataclass
class VersionStats:
    """Everything ``journey stats`` shows for one deployed journey version."""

    journey: str
    version: int
    name: str
    goal: str | None  # "demo_booked within 30d"; None without a goal
    entered: int = 0
    goals: int = 0  # goal reached within its window
    exits: dict[str, int] = field(default_factory=dict)  # reason -> count
    steps: list[StepFigures] = field(default_factory=list)
    variants: list[VariantFigures] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)  # each pair of variants of a split
    holdout: Comparison | None = None  # treated against the holdout

    @property
    def goal_rate(self) -> float | None:
        return self.goals / self.entered if self.entered else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "journey": self.journey, "version": self.version, "name": self.name, "goal": self.goal,
            "entered": self.entered, "goals": self.goals, "goal_rate": self.goal_rate, "exits": self.exits,
            "steps": [step.as_dict() for step in self.steps],
            "variants": [variant.as_dict() for variant in self.variants],
            "comparisons": [comparison.as_dict() for comparison in self.comparisons],
            "holdout": self.holdout.as_dict() if self.holdout else None,
        }


@dataclass(frozen=True)
class Window:
    """Which figures: one journey or all, one version or all, UTC days [since, until)."""

    journey: str | None = None
    version: int | None = None
    since: str | None = None
    until: str | None = None


def journey_stats(store: Any, journeys: Iterable[Journey], window: Window = Window(),
                  step_order: Callable[[Journey], list[Step]] | None = None) -> list[VersionStats]:
    """The stats of every deployed version in ``journeys`` that ``window`` selects and
    that production has touched, in journey and version order."""
    query = (window.journey, window.since, window.until)
    decisions = _by_version(store.decision_counts(*query))
    sends = _by_version(store.send_counts(*query))
    splits = _by_version(store.split_outcomes(*query))
    engagement: dict[str, list[dict]] = defaultdict(list)
    for row in store.engagement_counts(*query):
        engagement[row["journey_id"]].append(row)
    journeys = sorted(journeys, key=lambda j: (j.id, j.version))
    # opens and clicks name a journey and step, not a version: the newest version with the step has them
    owner = {(journey.id, step_id): journey.version for journey in journeys for step_id in journey.steps}
    found = []
    for journey in journeys:
        key = (journey.id, journey.version)
        if window.journey not in (None, journey.id) or window.version not in (None, journey.version):
            continue
        if key not in decisions and key not in sends and key not in splits:
            continue
        steps = step_order(journey) if step_order else list(journey.steps.values())
        opened = [row for row in engagement.get(journey.id, []) if owner.get((journey.id, row["step"])) == journey.version]
        found.append(version_stats(journey, steps, decisions.get(key, []), sends.get(key, []), splits.get(key, []), opened))
    return found


def version_stats(journey: Journey, steps: list[Step], decisions: list[dict], sends: list[dict],
                  splits: list[dict], engagement: list[dict]) -> VersionStats:
    """Assemble one version's figures from the count rows of the store."""
    goal = journey.goal
    stats = VersionStats(journey.id, journey.version, journey.name,
                         f"{goal.event} within {goal.within or 'any time'}" if goal else None)
    figures = {step.id: StepFigures(step.id, step.kind, step.stage) for step in steps
               if not isinstance(step, ExitStep)}  # an exit step's runs are the exits of its reason
    for row in decisions:
        action, n, step = row["action"], row["n"], figures.get(row["step"])
        if action == "enter":
            stats.entered += n
        elif action == "exit":
            _add(stats.exits, row["detail"], n)
        elif action == "goal":
            stats.goals += n
        elif step is None:
            continue  # a journey-level decision (move, migrate) or a step this version no longer has
        elif action == "defer":
            step.deferred += n
        elif action in RAN:
            step.reached += n
            if action == "skip":
                _add(step.skipped, row["detail"], n)
            elif action in ("branch", "split", "holdout"):
                _add(step.outcomes, row["detail"], n)
    for row in sends:
        step = figures.get(row["step_id"])
        if step is None:
            continue
        if row["state"] == "sent":
            step.sent += row["n"]
        elif row["state"] == "failed":
            step.failed += row["n"]
        elif row["state"] == "skipped":
            _add(step.skipped, row["detail"], row["n"])
        elif row["state"] in PENDING_SEND_STATES:
            step.pending += row["n"]
    for row in engagement:
        step = figures.get(row["step"])
        if step is not None and isinstance(journey.steps.get(row["step"]), EmailStep):
            if row["name"] == "email_opened":
                step.opens += row["n"]
            else:
                step.clicks += row["n"]
    for step in figures.values():
        step.rate = step.reached / stats.entered if stats.entered else None
    stats.steps = list(figures.values())
    for split in (step for step in steps if isinstance(step, SplitStep)):
        _split_figures(stats, journey, split, splits)
    return stats


def _split_figures(stats: VersionStats, journey: Journey, split: SplitStep, rows: list[dict]) -> None:
    """Variants of one split, each pair compared, and the treated contacts against the holdout."""
    names = [variant.name for variant in split.variants] + ([HOLDOUT] if split.holdout else [])
    variants = {name: VariantFigures(split.id, name) for name in names}
    for row in rows:
        name = row["variant"].get(split.id)
        if name is None:
            continue
        figures = variants.setdefault(name, VariantFigures(split.id, name))  # a variant renamed since
        figures.contacts += row["n"]
        figures.conversions += row["converted"]
    stats.variants.extend(variants.values())
    if journey.goal is None:
        return  # nothing to convert to: contacts per variant only
    treated = [figures for name, figures in variants.items() if name != HOLDOUT]
    for one, other in combinations(treated, 2):
        stats.comparisons.append(compare(one.name, one.conversions, one.contacts,
                                         other.name, other.conversions, other.contacts))
    if split.holdout:
        held = variants[HOLDOUT]
        stats.holdout = compare("treated", sum(f.conversions for f in treated), sum(f.contacts for f in treated),
                                HOLDOUT, held.conversions, held.contacts)


def _by_version(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], list[dict]]:
    grouped: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in rows:
        grouped[(row["journey_id"], row["version"])].append(dict(row))
    return grouped


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n
