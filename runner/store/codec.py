"""Conversions between runtime values and SQLite columns.

Instants are stored as fixed-width UTC ISO 8601 text
(``2026-03-02T09:30:00.000000+00:00``) so that text order is time order and
the ``wake_at``/``due_at`` indexes can answer range queries; JSON columns hold
attributes, properties and engine memory.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, overload


@overload
def to_db_time(value: datetime) -> str: ...
@overload
def to_db_time(value: None) -> None: ...
@overload
def to_db_time(value: datetime | None) -> str | None: ...
def to_db_time(value: datetime | None) -> str | None:
    """Aware datetime -> fixed-width UTC text; naive datetimes are a bug, not data."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store only keeps aware UTC instants")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


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


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str
)  # built once: json.dumps with options would build one per call


def to_json(value: Any) -> str:
    """Compact, stable JSON (sorted keys make equality checks in SQL meaningful)."""
    return _ENCODER.encode(value)


def from_json(value: str | None, default: Any = None) -> Any:
    if value is None:
        return default
    return json.loads(value)


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
