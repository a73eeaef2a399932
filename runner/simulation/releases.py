"""Deploys in the middle of a simulation, with production's version rules.

A scenario may deploy new journey versions at an instant (``deploy: {at:
"+3d", journeys: …}``) to test a migration or a version pin before it ships.
Production rebuilds its engine from the deployed versions at every tick
(``runner.production.deploy.deployed_set``): the newest version of each
journey runs new entries, every older deployed version is passed to the
engine as *pinned*, so a contact in flight stays on the version it entered
unless the new version's ``migration`` moves it (``runner.core.migration``).
``Releases`` does the same over virtual time: one engine per release, each
contact advanced by the engine of the release in effect, up to the instant
before the next deploy. The engine decides each instant whatever the cadence
of its driver, so this is what ticks around a real deploy decide.

A deploy is refused, as ``journey deploy`` refuses it, when a journey's
content changed but its version did not, or when its version is older than
the newest deployed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from runner.core.engine import Decision, Engine
from runner.core.model import Journey, Project
from runner.core.problems import JourneyError
from runner.core.state import ContactState

_JUST_BEFORE = timedelta(microseconds=1)  # datetimes have no finer instant: nothing lies in between


@dataclass(frozen=True)
class Deploy:
    """Journey versions deployed at ``at`` (``where``: the scenario's file:line, for messages)."""

    at: datetime
    journeys: tuple[Journey, ...]
    where: str = ""


class Releases:
    """The engines a simulation runs over time: the first release, then one per deploy."""

    def __init__(self, project: Project, journeys: Sequence[Journey], deploys: Sequence[Deploy] = ()):
        self.project = project
        current = {j.id: j for j in journeys}
        pinned: dict[tuple[str, int], Journey] = {}
        self.engines: list[tuple[datetime | None, Engine]] = [(None, Engine(project, list(current.values())))]
        for deploy in sorted(deploys, key=lambda d: d.at):
            for journey in deploy.journeys:
                _refuse(journey, current.get(journey.id), pinned, deploy.where)
                old = current.get(journey.id)
                if old is not None and old.version != journey.version:
                    pinned[(old.id, old.version)] = old
                    current[journey.id] = journey
                elif old is None:
                    current[journey.id] = journey
            self.engines.append((deploy.at, Engine(project, list(current.values()), list(pinned.values()))))
        self.every = list({(j.id, j.version): j for j in [*pinned.values(), *current.values()]}.values())

    @property
    def first(self) -> Engine:
        return self.engines[0][1]

    def advance(self, state: ContactState, until: datetime, start: datetime) -> list[Decision]:
        """Advance ``state`` to ``until`` (inclusive), each span by its release's engine."""
        decisions: list[Decision] = []
        for index, (_since, engine) in enumerate(self.engines):
            following = self.engines[index + 1][0] if index + 1 < len(self.engines) else None
            leg_end = until if following is None else min(until, following - _JUST_BEFORE)
            if state.clock is not None and leg_end <= state.clock:
                continue
            if leg_end < start:
                continue
            decisions += engine.advance(state, leg_end, start=start).decisions
            if leg_end >= until:
                break
        return decisions


def _refuse(journey: Journey, newest: Journey | None, pinned: dict[tuple[str, int], Journey], where: str) -> None:
    """JourneyError when ``journey deploy`` would refuse this version (see the module doc)."""
    if newest is None:
        return
    same = newest if newest.version == journey.version else pinned.get((journey.id, journey.version))
    prefix = f"{where}: " if where else ""
    if same is not None and same.content_hash != journey.content_hash:
        raise JourneyError(f"{prefix}the deploy is refused: journey `{journey.id}`: content changed but version "
                           f"{journey.version} is already deployed: bump `version`")
    if same is None and journey.version < newest.version:
        raise JourneyError(f"{prefix}the deploy is refused: journey `{journey.id}`: version {journey.version} is "
                           f"older than the deployed version {newest.version}")
