"""Wall-clock arithmetic in a contact's time zone, correct across DST.

Everything the engine stores is UTC; everything a marketer writes (09:00,
weekdays, send windows, quiet hours, cron, birthdays) is local. This module is
the only place that converts between the two.

Rules: a local time that does not exist (spring forward) moves forward by the
gap (02:30 becomes 03:30); a local time that exists twice (fall back) means its
first occurrence. So "09:00 local" happens exactly once per day.
"""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from runner.core.durations import Duration


class LocalRange(Protocol):
    """A local time range (``runner.core.model.TimeRange``): from ``start`` to ``end`` on ``days`` (0 = Monday)."""

    @property
    def start(self) -> time: ...
    @property
    def end(self) -> time: ...
    @property
    def days(self) -> frozenset[int] | None: ...
    def __hash__(self) -> int: ...  # answers are remembered per range (frozen dataclasses hash)

UTC = UTC
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TICK = timedelta(microseconds=1)  # the resolution of a datetime
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone; raise ValueError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone '{name}' (use an IANA name like Europe/Istanbul)") from exc


def is_zone(name: str) -> bool:
    try:
        zone(name)
    except ValueError:
        return False
    return True


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def localize(naive: datetime, tz: ZoneInfo) -> datetime:
    """UTC instant of a local wall-clock time (first occurrence; gaps move forward)."""
    if naive.fold:
        naive = naive.replace(fold=0)
    # combine, not naive.replace(tzinfo=tz): replace parses its keywords at every call (~3x the cost)
    return datetime.combine(naive.date(), naive.time(), tz).astimezone(UTC)


def add_duration(at: datetime, duration: Duration, tz: ZoneInfo) -> datetime:
    """``at`` plus calendar days (local wall clock) plus absolute seconds.

    Adding days to a datetime in ``tz`` moves its wall clock and leaves fold 0, so
    converting back is ``localize`` (without its costly ``replace``).
    """
    result = at
    if duration.days:
        result = (at.astimezone(tz) + _DAY * duration.days).astimezone(UTC)
    if duration.seconds:
        result = result + _SECOND * duration.seconds
    return result


def next_local_time(after: datetime, at: time, days: frozenset[int] | None, tz: ZoneInfo) -> datetime:
    """The first instant >= ``after`` that is local ``at`` on one of ``days`` (0 = Monday)."""
    local_day = after.astimezone(tz).date()
    for offset in range(0, 8 + 366):
        day = local_day + timedelta(days=offset)
        if days is not None and day.weekday() not in days:
            continue
        candidate = localize(datetime.combine(day, at), tz)
        if candidate >= after:
            return candidate
    raise ValueError("no matching local time within a year")  # pragma: no cover - days is never empty


def _in_range(moment: time, start: time, end: time) -> bool:
    """Whether a local time is inside [start, end); ranges may cross midnight."""
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


OUTSIDE_WINDOW = "outside send window"
QUIET_HOURS = "quiet hours"


def sendable(at: datetime, tz: ZoneInfo, window: LocalRange | None, quiet: LocalRange | None) -> bool:
    """Whether ``at`` is inside the send window and outside quiet hours (local time)."""
    return closed_reason(at.astimezone(tz), window, quiet) is None


def closed_reason(local: datetime, window: LocalRange | None, quiet: LocalRange | None) -> str | None:
    """Why no send may go out at ``local`` (a time in the contact's zone): ``OUTSIDE_WINDOW``,
    ``QUIET_HOURS``, or None when one may. The window is checked first."""
    moment = local.time()  # naive: datetime.time() drops the zone
    if window is not None:
        day = local.date()
        if window.start > window.end and moment < window.end:
            day = day - timedelta(days=1)  # after midnight: the window opened yesterday
        if window.days is not None and day.weekday() not in window.days:
            return OUTSIDE_WINDOW
        if not _in_range(moment, window.start, window.end):
            return OUTSIDE_WINDOW
    if quiet is not None and _in_range(moment, quiet.start, quiet.end):
        return QUIET_HOURS
    return None


def next_sendable(at: datetime, tz: ZoneInfo, window: LocalRange | None, quiet: LocalRange | None) -> datetime:
    """The first instant >= ``at`` at which a send is allowed.

    Candidates are ``at`` itself and the local instants where a window opens or
    quiet hours end, over the next eight days; the earliest allowed one wins.
    Days are tried in order, and the search stops at a local midnight no earlier
    than the best candidate found: a later day's candidates cannot be earlier
    (a time in a DST gap moves forward, never before that day's midnight).
    """
    if sendable(at, tz, window, quiet):
        return at
    local_day = at.astimezone(tz).date()
    best = None
    for offset in range(0, 9):
        midnight, openings = _sendable_openings(local_day + timedelta(days=offset), tz, window, quiet)
        if best is not None and best <= midnight:
            break
        for candidate in openings:
            if candidate > at and (best is None or candidate < best):
                best = candidate
    if best is None:
        raise ValueError("the send window and quiet hours leave no time to send")
    return best


@lru_cache(maxsize=4096)
def _sendable_openings(day: date, tz: ZoneInfo, window: LocalRange | None,
                       quiet: LocalRange | None) -> tuple[datetime, tuple[datetime, ...]]:
    """A local day's midnight and the instants on it where the window opens or quiet hours
    end, those at which a send is allowed. The same few days and zones come up for every
    contact deferred, so they are remembered."""
    openings = [t for t in ((window.start if window else None), (quiet.end if quiet else None)) if t is not None]
    candidates = (localize(datetime.combine(day, opening), tz) for opening in openings)
    return localize(datetime.combine(day, time(0)), tz), tuple(c for c in candidates if sendable(c, tz, window, quiet))


class SendTimes:
    """When a send may go out in one zone under one send window and quiet hours,
    with the answers remembered as spans of UTC instants.

    Whether a send may go out depends only on the local date and time, and changes
    only at a local midnight or where the window or quiet hours begin or end. So
    one answer holds from the last such edge before an instant to the next one (a
    *span*, shorter than a day), and every contact with a send due in it gets that
    answer with a bisect instead of a zone conversion and the checks.

    DST: a span is taken in the UTC offset of the instant asked about and kept only
    when the zone has that offset at both of its ends; otherwise (the span holds a
    DST change) the answer is computed and not kept. A span cannot hide two changes
    that cancel out: no zone in the tz database changes its offset twice within
    four days (the closest: Africa/Freetown in 1939), and a span is under a day.
    """

    MAX_SPANS = 100_000  # a long-running process starts afresh beyond this

    def __init__(self, tz: ZoneInfo, window: LocalRange | None, quiet: LocalRange | None) -> None:
        self.tz, self.window, self.quiet = tz, window, quiet
        # local times of day where the answer may change (midnight: the weekday)
        self.edges = sorted({time(0)} | {t for r in (window, quiet) if r is not None for t in (r.start, r.end)})
        self._starts: list[datetime] = []  # sorted span starts
        self._spans: list[tuple[datetime, tuple[str, datetime] | None]] = []  # (end, answer) per start

    def closed(self, at: datetime) -> tuple[str, datetime] | None:
        """None when a send may go out at ``at``; otherwise why not (``closed_reason``)
        and the first instant one may (``next_sendable``)."""
        index = bisect.bisect_right(self._starts, at) - 1
        if index >= 0:
            end, answer = self._spans[index]
            if at < end:
                return answer
        return self._remember(at)

    def _remember(self, at: datetime) -> tuple[str, datetime] | None:
        """Compute the answer at ``at`` and keep it for ``at``'s span (see the class)."""
        tz = self.tz
        local = at.astimezone(tz)
        reason = closed_reason(local, self.window, self.quiet)
        # next_sendable is the same for every instant of a closed span: its search starts
        # from the same local day, and no candidate inside the span is allowed
        answer = None if reason is None else (reason, next_sendable(at, tz, self.window, self.quiet))
        # the span: from the last edge at or before the local time to the next one. The ends
        # are in ``tz`` like ``local``, so ``local - low`` is a wall-clock difference (and no
        # ``replace``: it parses its keywords at every call, the costliest step here)
        day = local.date()
        low, high = datetime.combine(day, time(0), tz), datetime.combine(day + _DAY, time(0), tz)
        for edge in self.edges:  # sorted
            moment = datetime.combine(day, edge, tz)
            if moment > local:
                high = moment
                break
            low = moment
        start, end = at - (local - low), at + (high - local)
        offset = local.utcoffset()
        if start.astimezone(tz).utcoffset() != offset or (end - _TICK).astimezone(tz).utcoffset() != offset:
            return answer  # a DST change inside: not a span
        if len(self._starts) >= self.MAX_SPANS:
            self._starts.clear()
            self._spans.clear()
        index = bisect.bisect_right(self._starts, start)
        self._starts.insert(index, start)
        self._spans.insert(index, (end, answer))
        return answer


@lru_cache(maxsize=1024)
def send_times(tz: ZoneInfo, window: LocalRange | None, quiet: LocalRange | None) -> SendTimes:
    """The one ``SendTimes`` of a zone, send window and quiet hours (so answers are shared)."""
    return SendTimes(tz, window, quiet)


def annual_occurrence(anchor: date, year: int, offset: Duration, at: time, tz: ZoneInfo) -> datetime:
    """The instant of a yearly date (birthday, renewal) in ``year``, shifted by ``offset`` days."""
    try:
        day = anchor.replace(year=year)
    except ValueError:  # 29 February in a common year
        day = date(year, 2, 28)
    day = day + timedelta(days=offset.days)
    return localize(datetime.combine(day, at), tz) + timedelta(seconds=offset.seconds)


def next_annual(anchor: date, after: datetime, offset: Duration, at: time, tz: ZoneInfo) -> datetime:
    """The first yearly occurrence strictly after ``after``."""
    year = after.astimezone(tz).year - 1
    while True:
        candidate = annual_occurrence(anchor, year, offset, at, tz)
        if candidate > after:
            return candidate
        year += 1


def next_cron(expression: str, after: datetime, tz: ZoneInfo) -> datetime:
    """The first cron fire strictly after ``after``, evaluated on the local wall clock.

    croniter iterates naive local times; each is then localized with the DST
    rules above, so a 09:00 schedule fires once per day at 09:00 local time.
    """
    local = after.astimezone(tz).replace(tzinfo=None)
    iterator = croniter(expression, local)
    while True:
        candidate = localize(iterator.get_next(datetime), tz)
        if candidate > after:
            return candidate


def is_cron(expression: str) -> bool:
    return len(str(expression).split()) == 5 and croniter.is_valid(expression)
