"""Helpers for driving the engine with plain datetimes (imported by the engine tests).

Journeys and projects are written as Python dicts shaped exactly like the
YAML files; ``run`` advances one contact and returns its decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.core.build import build_journey
from runner.core.engine import Decision, Engine
from runner.core.model import Journey, Project, build_project
from runner.core.state import Contact, ContactState, Event

UTC = UTC
SAMPLE_ROOT = Path(__file__).resolve().parent.parent


def T(text: str) -> datetime:
    """``"2026-03-02 09:00"`` (UTC) or any ISO text with an offset, as an aware datetime."""
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def project(**data: Any) -> Project:
    return build_project(data, Path("."))


def journey(id: str = "j", stages: list | None = None, version: int = 1, **data: Any) -> Journey:
    """A journey from YAML-shaped keyword arguments; one event-entry stage by default."""
    spec = {"id": id, "version": version, "name": id,
            "stages": stages or [{"id": "main", "entry": {"event": "signed_up"}, "steps": data.pop("steps", [])}]}
    spec.update(data)
    return build_journey(spec, f"{id}.yaml")


def email(step_id: str, **extra: Any) -> dict:
    return {"id": step_id, "email": {"template": step_id, "subject": f"subject {step_id}"}, **extra}


def event(at: str | datetime, name: str, **properties: Any) -> Event:
    anonymous_id = properties.pop("anonymous_id", None)
    return Event(name, T(at) if isinstance(at, str) else at, properties, anonymous_id=anonymous_id)


def state(
    events: Iterable[Event] = (), contact_id: str = "c1", timezone_name: str | None = "UTC",
    anonymous_ids: Sequence[str] = (), **attributes: Any,
) -> ContactState:
    attributes.setdefault("email", f"{contact_id}@example.com")
    if attributes.get("email") is None:
        del attributes["email"]
    contact = Contact(contact_id, dict(attributes), timezone_name, list(anonymous_ids))
    return ContactState(contact=contact, events=sorted(events, key=lambda e: e.at))


def run(
    journeys: Journey | Sequence[Journey], contact: ContactState, until: str | datetime,
    start: str | datetime = "2026-03-02 00:00", proj: Project | None = None,
) -> list[Decision]:
    """Advance ``contact`` from ``start`` to ``until``; its decisions."""
    journeys = [journeys] if isinstance(journeys, Journey) else list(journeys)
    engine = Engine(proj or project(), journeys)
    until = T(until) if isinstance(until, str) else until
    start = T(start) if isinstance(start, str) else start
    return engine.advance(contact, until, start=start).decisions


def sends(decisions: Iterable[Decision]) -> list[tuple[str, datetime]]:
    """(step, instant) of every email send."""
    return [(d.step, d.at) for d in decisions if d.action == "send"]


def actions(decisions: Iterable[Decision], *kinds: str) -> list[Decision]:
    return [d for d in decisions if d.action in kinds]
