"""Test contacts for simulations: YAML, JSONL or CSV, with timed events.

Event times are absolute (ISO 8601 with an offset) or relative to the
simulation start: ``+3d`` (three local calendar days later), ``+2h30m``,
``+3d 10:00`` (three local days later at 10:00 in the contact's zone). The
same relative syntax is used by scenario expectations, so it lives here.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from runner.core.conditions import as_instant
from runner.core.durations import parse_duration
from runner.core.instants import RANGE_TEXT, in_range
from runner.core.localtime import add_duration, localize, zone
from runner.core.problems import ERROR, JourneyError
from runner.core.state import Contact, ContactState, Event
from runner.language.projectfiles import UnsafeFile, read_inside
from runner.language.yamlsource import load_bytes

MAX_CONTACTS_BYTES = 64 * 1024 * 1024  # generated test sets run to thousands of contacts; a bound all the same
RELATIVE_RE = re.compile(r"^\+\s*(?P<offset>[0-9wdhms]+)?\s*(?P<clock>\d{1,2}:\d{2})?$")


@dataclass
class TestContact:
    """A contact as written in a test file; event times still unresolved."""

    id: str
    timezone: str | None
    attributes: dict[str, Any]
    anonymous_ids: list[str]
    events: list[dict[str, Any]]
    source: str = ""

    def state(self, start: datetime, default_timezone: str) -> ContactState:
        """A fresh engine state with every event time resolved against ``start``."""
        tz_name = self.timezone or default_timezone
        events = [
            Event(
                name=spec["event"],
                at=resolve_time(spec["at"], start, tz_name, f"{self.source}: contact {self.id}"),
                properties=dict(spec.get("properties") or {}),
                message_id=spec.get("message_id"),
                anonymous_id=spec.get("anonymous_id"),
            )
            for spec in self.events
        ]
        events.sort(key=lambda e: e.at)
        contact = Contact(self.id, _deep_copy(self.attributes), self.timezone, list(self.anonymous_ids))
        return ContactState(contact=contact, events=events)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def resolve_time(text: Any, start: datetime, tz_name: str, where: str = "") -> datetime:
    """An absolute or start-relative time as a UTC instant (see module doc), between 1900 and 2199:
    a time past the calendar's end (``+99999999999d``, ``9999-12-31``) is an error, not an overflow."""
    try:
        instant = _resolve_time(text, start, tz_name, where)
    except OverflowError:
        instant = None
    if instant is None or not in_range(instant):
        raise JourneyError(f"{where}: '{text}' is not a time {RANGE_TEXT}")
    return instant


def _resolve_time(text: Any, start: datetime, tz_name: str, where: str) -> datetime:
    if isinstance(text, datetime) or (isinstance(text, str) and not text.strip().startswith("+")):
        instant = as_instant(text)
        if instant is None:
            raise JourneyError(f"{where}: '{text}' is not a time (use ISO 8601 like 2026-03-02T09:00:00Z, or +3d 10:00)")
        return instant
    match = RELATIVE_RE.match(str(text).strip())
    if not match or not (match["offset"] or match["clock"]):
        raise JourneyError(f"{where}: '{text}' is not a relative time (use +3d, +2h30m or +3d 10:00)")
    tz = zone(tz_name)
    instant = start
    if match["offset"]:
        try:
            duration = parse_duration(match["offset"])
        except ValueError as exc:
            raise JourneyError(f"{where}: {exc}") from None
        if match["clock"]:
            local_day = start.astimezone(tz).date() + timedelta(days=duration.days)
            hours, minutes = (int(x) for x in match["clock"].split(":"))
            return localize(datetime.combine(local_day, time(hours, minutes)), tz) + timedelta(seconds=duration.seconds)
        instant = add_duration(start, duration, tz)
    elif match["clock"]:
        hours, minutes = (int(x) for x in match["clock"].split(":"))
        instant = localize(datetime.combine(start.astimezone(tz).date(), time(hours, minutes)), tz)
    return instant


def _from_mapping(spec: dict[str, Any], source: str) -> TestContact:
    if not isinstance(spec, dict) or not spec.get("id"):
        raise JourneyError(f"{source}: every contact needs an id")
    _check_shape(spec, source)
    return TestContact(
        id=str(spec["id"]),
        timezone=spec.get("timezone"),
        attributes=dict(spec.get("attributes") or {}),
        anonymous_ids=[str(a) for a in spec.get("anonymous_ids") or []],
        events=list(spec.get("events") or []),
        source=source,
    )


def _check_shape(spec: dict[str, Any], source: str) -> None:
    """The types the engine relies on, checked here: a contacts file named with ``--contacts``
    is not validated first (``events: 7`` or an event name that is a list was an internal error)."""
    where = f"{source}: contact {spec['id']!r}"
    if isinstance(spec["id"], (dict, list, bool)):
        raise JourneyError(f"{source}: a contact id is text, not {spec['id']!r}")
    for key, kind, name in (("attributes", dict, "a mapping"), ("events", list, "a list"),
                            ("anonymous_ids", list, "a list"), ("timezone", str, "text")):
        if spec.get(key) is not None and not isinstance(spec[key], kind):
            raise JourneyError(f"{where}: {key} must be {name}, not {spec[key]!r}")
    for index, event in enumerate(spec.get("events") or [], 1):
        if not isinstance(event, dict) or not isinstance(event.get("event"), str) or "at" not in event:
            raise JourneyError(f"{where}: event {index} must be a mapping with `at` and an `event` name, "
                               f"not {event!r}")
        if event.get("properties") is not None and not isinstance(event["properties"], dict):
            raise JourneyError(f"{where}: event {index}: properties must be a mapping, not {event['properties']!r}")


def _from_csv_row(row: dict[str, str], source: str) -> TestContact:
    attributes: dict[str, Any] = {}
    for column, value in row.items():
        if column in ("id", "timezone") or value in (None, ""):
            continue
        target = attributes
        *parents, leaf = column.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return TestContact(row["id"], row.get("timezone") or None, attributes, [], [], source)


def load_test_contacts(path: Path) -> list[TestContact]:
    """Read test contacts from YAML (``contacts:`` list), JSONL or CSV: a regular file of at most
    ``MAX_CONTACTS_BYTES``, read without blocking (a FIFO or /dev/zero hung simulate), YAML with the
    project's safe loader (positions, no alias bombs)."""
    if not path.exists():
        raise JourneyError(f"{path}: no such file")
    try:
        raw = read_inside(path, Path(path.anchor or "/"), MAX_CONTACTS_BYTES)
    except UnsafeFile as unsafe:
        raise JourneyError(str(unsafe)) from None
    try:
        if path.suffix in (".jsonl", ".csv"):
            text = raw.decode("utf-8-sig")
        if path.suffix == ".jsonl":
            contacts = []
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    contacts.append(_from_mapping(json.loads(line), f"{path}:{number}"))
            return contacts
        if path.suffix == ".csv":
            rows = csv.DictReader(io.StringIO(text, newline=""))
            return [_from_csv_row(row, f"{path}:{i}") for i, row in enumerate(rows, 2)]
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error, RecursionError, ValueError) as exc:
        raise JourneyError(f"{path}: cannot read test contacts: {exc}") from None
    doc, problems = load_bytes(raw, str(path))
    if doc is None or any(problem.severity == ERROR for problem in problems):
        raise JourneyError(f"{path}: cannot read test contacts", problems)
    data = doc.data
    items = data.get("contacts") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise JourneyError(f"{path}: expected a 'contacts:' list")
    return [_from_mapping(item, str(path)) for item in items]


def contacts_by_id(contacts: Iterable[TestContact]) -> dict[str, TestContact]:
    found: dict[str, TestContact] = {}
    for contact in contacts:
        if contact.id in found:
            raise JourneyError(f"{contact.source}: contact id '{contact.id}' appears twice")
        found[contact.id] = contact
    return found
