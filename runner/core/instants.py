"""The instants and durations the runner accepts from people: instants from 1900-01-01 up to
2200-01-01 (excluded), durations of at most a century.

Outside this range an instant is a typo or an attack: the engine adds durations
to instants and subtracts windows from them, and `9999-12-31` overflowed there
(`0001-01-01` too, going the other way). The importer's timestamps, the command
line's ``--now``/``--start``/``--at``/``--until`` and the test contacts' and
scenarios' times all use this one window. A duration of a century at most keeps the same arithmetic
inside the calendar (`wait: 99999999999999999d` passed validate and overflowed
simulate).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runner.core.durations import parse_duration

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
RANGE_TEXT = "between 1900 and 2199"
MAX_DURATION = timedelta(days=36525)


def in_range(instant: datetime) -> bool:
    """Whether an aware ``instant`` lies in [EARLIEST, LATEST)."""
    return EARLIEST <= instant < LATEST


def too_long(text: str) -> bool:
    """Whether the well-formed duration ``text`` exceeds ``MAX_DURATION``; counted in Python
    integers, never as a timedelta (which overflows first)."""
    duration = parse_duration(text)
    return duration.days * 86400 + duration.seconds > MAX_DURATION.total_seconds()
