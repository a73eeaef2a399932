"""Wall-clock arithmetic in a contact's time zone, correct across DST.

Everything the engine stores is UTC; everything a marketer writes (09:00,
weekdays, send windows, quiet hours, cron, birthdays) is local. This module is
the only place that converts between the two.

Rules: a local time that does not exist (spring forward) moves forward by the
gap (02:30 becomes 03:30); a local time that exists twice (fall back) means its
first occurrence. So "09:00 local" happens exactly once per day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from runner.durations import Duration

UTC = timezone.utc
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
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
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


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


def sendable(at: datetime, tz: ZoneInfo, window, quiet) -> bool:
    """Whether ``at`` is inside the send window and outside quiet hours (local time)."""
    local = at.astimezone(tz)
    moment = local.time()  # naive: datetime.time() drops the zone
    if window is not None:
        day = local.date()
        if window.start > window.end and moment < window.end:
            day = day - timedelta(days=1)  # after midnight: the window opened yesterday
        if window.days is not None and day.weekday() not in window.days:
            return False
        if not _in_range(moment, window.start, window.end):
            return False
    if quiet is not None and _in_range(moment, quiet.start, quiet.end):
        return False
    return True


def next_sendable(at: datetime, tz: ZoneInfo, window, quiet) -> datetime:
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
def _sendable_openings(day: date, tz: ZoneInfo, window, quiet) -> tuple[datetime, tuple[datetime, ...]]:
    """A local day's midnight and the instants on it where the window opens or quiet hours
    end, those at which a send is allowed. The same few days and zones come up for every
    contact deferred, so they are remembered."""
    openings = [t for t in ((window.start if window else None), (quiet.end if quiet else None)) if t is not None]
    candidates = (localize(datetime.combine(day, opening), tz) for opening in openings)
    return localize(datetime.combine(day, time(0)), tz), tuple(c for c in candidates if sendable(c, tz, window, quiet))


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
