"""Conversions between runtime values and SQLite columns.

Instants are stored as fixed-width UTC ISO 8601 text
(``2026-03-02T09:30:00.000000+00:00``) so that text order is time order and
the ``wake_at``/``due_at`` indexes can answer range queries; JSON columns hold
attributes, properties and engine memory.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import sqlite3
from datetime import UTC, datetime
from typing import Any, overload


@overload
def to_db_time(value: datetime) -> str: ...
@overload
def to_db_time(value: None) -> None: ...
@overload
def to_db_time(value: datetime | None) -> str | None: ...
def to_db_time(value: datetime | None) -> str | None:
    """Aware datetime -> fixed-width UTC text; naive datetimes are a bug, not data.

    UTC instants are remembered: a tick writes the same instant (its ``now``: the
    decisions', the clocks', the enrollments') several times a send, and
    ``isoformat(timespec=…)`` costs some 17,000 instructions a call (its keyword
    parsing and C ``printf``). Other zones are converted each time (two wall times
    an hour apart at a DST fold are one dict key)."""
    if value is None:
        return None
    if value.tzinfo is UTC and type(value) is datetime:
        text = _DB_TIMES.get(value)
        if text is None:
            if len(_DB_TIMES) >= 8192:
                _DB_TIMES.clear()
            text = _DB_TIMES[value] = value.isoformat(timespec="microseconds")
        return text
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store only keeps aware UTC instants")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


_DB_TIMES: dict[datetime, str] = {}  # UTC instant -> its stored text (see to_db_time)


@overload
def from_db_time(value: str) -> datetime: ...
@overload
def from_db_time(value: None) -> None: ...
@overload
def from_db_time(value: str | None) -> datetime | None: ...
def from_db_time(value: str | None) -> datetime | None:
    """Stored text -> aware datetime; NULL stays None (the overloads tell mypy a NOT NULL column gives a datetime)."""
    if value is None:
        return None
    return datetime.fromisoformat(value)


def _null(value: None) -> None:
    return value


# sqlite3 binds only exact int, float and str parameters directly; any other value
# (None, a bool) goes through its adapters, and finding none it formats two
# AttributeErrors (``__adapt__``, ``__conform__``) before binding the value as it is:
# about 1,200 instructions a parameter, some twenty a send (NULL columns of the rows
# a save writes). Registered adapters that give the value back bind the same NULL and
# the same integer (a bool is an int) without them.
sqlite3.register_adapter(type(None), _null)
sqlite3.register_adapter(bool, int)


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str
)  # built once: json.dumps with options would build one per call

# The C encoder ``_ENCODER.encode`` builds at every call (with a closure and a dict for
# circular references), built once: a tick encodes several values a send (memory,
# attribute patches, journal details, enrollments' variants), most of them small.
# Without the circular-reference check a value that contains itself fails with a
# RecursionError instead of a ValueError; the store's values are JSON documents.
_C_ENCODER = json.encoder.c_make_encoder and json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, str, json.encoder.encode_basestring, None, ":", ",", True, False, True)  # type: ignore[attr-defined]


def to_json(value: Any) -> str:
    """Compact, stable JSON (sorted keys make equality checks in SQL meaningful)."""
    if _C_ENCODER is None:  # a Python without the _json accelerator
        return _ENCODER.encode(value)
    return "".join(_C_ENCODER(value, 0))



def from_json(value: str | None, default: Any = None) -> Any:
    if value is None:
        return default
    if type(value) is str:  # what to_json wrote: one value, no whitespace around it
        try:
            decoded, end = _SCAN(value, 0)
        except StopIteration:  # not JSON (or whitespace first): json.loads says why
            return json.loads(value)
        if end == len(value):
            return decoded
    return json.loads(value)


# The scanner json.loads runs (built once per decoder), without its two whitespace
# regular expressions and its wrappers: a tick decodes some four columns a contact.
_SCAN = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def merge_patch(before: Any, after: Any) -> Any:
    """The RFC 7396 merge patch that turns ``before`` into ``after``.

    Saving a contact applies only what the engine changed (with SQLite's
    ``json_patch``), so attributes imported while the engine was working are
    kept instead of being overwritten by a stale copy.
    """
    if not isinstance(before, dict) or not isinstance(after, dict):
        return after
    patch: dict[str, Any] = {}
    for key in before.keys() - after.keys():
        patch[key] = None
    for key, value in after.items():
        if key not in before:
            patch[key] = value
        elif before[key] != value:
            if isinstance(before[key], dict) and isinstance(value, dict):
                patch[key] = merge_patch(before[key], value)
            else:
                patch[key] = value
    return patch
