"""Generated test contacts: many contacts from a short, seeded spec.

A scenario that promises something about an audience ("between 8% and 12% of
1,000 contacts are held out") needs the audience. ``generate:`` describes it
— a group name, a count, a seed, and how attributes, time zones and events
are distributed — and ``generate_contacts`` writes it out as ordinary test
contacts. The same spec always gives the same contacts (one
``random.Random(seed)`` per group, drawn in a fixed order), so a scenario over
generated contacts is as deterministic as one over hand-written ones.

Values (attributes, ``timezone``, event ``properties``):

- a constant; a string may hold ``{n}`` (the contact's number, 1-based) or
  ``{id}``: ``"{id}@example.com"``;
- ``{one_of: [a, b]}`` (equally likely) or ``{one_of: {a: 3, b: 1}}`` (weights);
- ``{between: [low, high]}``: uniform, whole numbers when both ends are whole.

Events: ``at`` is a time as in a contacts file or ``{between: [from, to]}``
(uniform, to the minute); ``share: 20%`` gives the event to about that share
of the contacts (each one drawn on its own).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from runner.core.problems import JourneyError
from runner.simulation.testcontacts import TestContact, resolve_time


def percent(text: Any) -> float:
    """``"12%"`` (or ``12.5%``) -> 0.12; a plain number is a share already (0.12)."""
    if isinstance(text, str) and text.strip().endswith("%"):
        return float(text.strip()[:-1]) / 100
    return float(text)


def generate_contacts(specs: Sequence[dict[str, Any]], start: datetime, default_timezone: str,
                      source: str = "") -> dict[str, list[TestContact]]:
    """Group name -> its contacts, each group drawn from its own seeded generator."""
    groups: dict[str, list[TestContact]] = {}
    for spec in specs:
        name = str(spec["group"])
        rng = random.Random(f"{name}:{spec.get('seed', 0)}")  # str seeds hash the same on every run
        count = int(spec["count"])
        width = len(str(count))
        contacts = []
        for n in range(1, count + 1):
            contact_id = f"{name}-{n:0{width}d}"
            names = {"n": n, "id": contact_id}
            timezone = _draw(spec.get("timezone"), rng, names)
            attributes = {key: _draw(value, rng, names) for key, value in (spec.get("attributes") or {}).items()}
            events = []
            for event in spec.get("events") or []:
                if "share" in event and rng.random() >= percent(event["share"]):
                    continue
                at = _draw_time(event["at"], rng, start, timezone or default_timezone, source)
                item: dict[str, Any] = {"at": at, "event": event["event"]}
                if event.get("properties"):
                    item["properties"] = {k: _draw(v, rng, names) for k, v in event["properties"].items()}
                events.append(item)
            contacts.append(TestContact(contact_id, timezone, attributes, [], events, source))
        groups[name] = contacts
    return groups


def _draw(value: Any, rng: random.Random, names: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.replace("{n}", str(names["n"])).replace("{id}", names["id"])
    if not isinstance(value, dict):
        return value
    if "one_of" in value:
        choices = value["one_of"]
        if isinstance(choices, dict):
            options, weights = list(choices), [float(w) for w in choices.values()]
        else:
            options, weights = list(choices), [1.0] * len(choices)
        pick = rng.random() * sum(weights)
        for option, weight in zip(options, weights, strict=True):
            if pick < weight:
                return _draw(option, rng, names)
            pick -= weight
        return _draw(options[-1], rng, names)
    if "between" in value:
        low, high = value["between"]
        if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
            return low + int(rng.random() * (high - low + 1))
        return low + rng.random() * (high - low)
    return {key: _draw(item, rng, names) for key, item in value.items()}


def _draw_time(value: Any, rng: random.Random, start: datetime, timezone: str, source: str) -> str:
    """An event time as a contacts file writes it: absolute ISO text, to the minute."""
    if isinstance(value, dict):
        first, last = (resolve_time(v, start, timezone, source) for v in value["between"])
        if last < first:
            raise JourneyError(f"{source}: `between: [{value['between'][0]}, {value['between'][1]}]` ends before it "
                               "starts (write the earlier time first)")
        minutes = int((last - first).total_seconds() // 60)
        instant = first + timedelta(minutes=int(rng.random() * (minutes + 1)))
        return instant.isoformat()
    return str(value)
