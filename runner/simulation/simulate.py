"""The virtual-clock driver: run the engine over test contacts for a period.

Contacts never influence each other (caps and suppressions are per contact),
so each one is advanced independently from ``start`` to ``end`` and the
decisions are merged in time order. Production's ``journey run`` drives the
same ``Engine.advance`` with the system clock and the SQLite store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from runner.collector import collector_paused
from runner.core.engine import Decision
from runner.core.model import Journey, Project
from runner.core.state import ContactState
from runner.simulation.releases import Releases
from runner.simulation.testcontacts import TestContact


@dataclass
class Simulation:
    start: datetime
    end: datetime
    decisions: list[Decision]
    states: dict[str, ContactState]
    journeys: Sequence[Journey] = field(default_factory=list)

    def for_contact(self, contact_id: str) -> list[Decision]:
        return [d for d in self.decisions if d.contact == contact_id]

    def sends(self) -> list[Decision]:
        return [d for d in self.decisions if d.action in ("send", "webhook")]


def simulate(
    project: Project,
    journeys: Sequence[Journey],
    contacts: Iterable[TestContact],
    start: datetime,
    end: datetime,
    releases: Releases | None = None,
) -> Simulation:
    """Advance every contact from ``start`` to ``end``; decisions in time order.

    ``releases``: journey versions deployed during the period (a scenario's
    ``deploy:``); without them ``journeys`` run throughout.
    """
    releases = releases or Releases(project, journeys)
    decisions: list[tuple[datetime, str, int, Decision]] = []
    states: dict[str, ContactState] = {}
    with collector_paused():  # every contact's state stays alive: see runner.collector
        for contact in contacts:
            state = contact.state(start, project.default_timezone)
            made = releases.advance(state, end, start)
            states[contact.id] = state
            decisions.extend((d.at, d.contact, i, d) for i, d in enumerate(made))
    decisions.sort(key=lambda item: item[:3])
    return Simulation(start, end, [item[3] for item in decisions], states, list(journeys))


@dataclass
class JourneySummary:
    journey: str
    version: int
    entered: int = 0
    sent: Counter = field(default_factory=Counter)  # step id -> sends
    webhooks: Counter = field(default_factory=Counter)
    variants: Counter = field(default_factory=Counter)  # "step:variant" -> contacts
    goals: int = 0
    exits: Counter = field(default_factory=Counter)  # reason -> contacts
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    deferred: Counter = field(default_factory=Counter)
    holdout: int = 0


def summarize(simulation: Simulation) -> list[JourneySummary]:
    """Per journey: entered, sends per step, variants, goals, exits, skips and deferrals."""
    summaries: dict[str, JourneySummary] = {
        j.id: JourneySummary(j.id, j.version) for j in sorted(simulation.journeys, key=lambda j: j.id)
    }
    for d in simulation.decisions:
        summary = summaries.setdefault(d.journey, JourneySummary(d.journey, d.version))
        if d.action == "enter":
            summary.entered += 1
        elif d.action == "send":
            summary.sent[d.step] += 1
        elif d.action == "webhook":
            summary.webhooks[d.step] += 1
        elif d.action in ("split", "holdout"):
            summary.variants[f"{d.step}:{d.detail.get('variant')}"] += 1
            summary.holdout += d.action == "holdout"
        elif d.action == "goal":
            summary.goals += 1
        elif d.action == "exit":
            summary.exits[d.reason.split(" ")[0]] += 1
        elif d.action == "skip":
            summary.skipped[_reason_kind(d.reason)] += 1
        elif d.action == "defer":
            summary.deferred[_reason_kind(d.reason)] += 1
    return list(summaries.values())


def _reason_kind(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0]


def ledger(decisions: Iterable[Decision]) -> list[tuple[str | None, str, str, int, str | None, str]]:
    """The send ledger a run produces: (key, contact, journey, version, step, scheduled at)."""
    rows = [
        (d.key, d.contact, d.journey, d.version, d.step, d.at.isoformat())
        for d in decisions if d.action in ("send", "webhook")
    ]
    return sorted(rows)
