"""Local time arithmetic: DST-correct waits, windows, yearly dates, cron (and its cache)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.core.durations import parse_duration
from runner.core.engine import _CronSpans
from runner.core.localtime import (
    SendTimes,
    add_duration,
    localize,
    next_annual,
    next_cron,
    next_local_time,
    next_sendable,
    sendable,
    zone,
)
from runner.core.model import TimeRange

UTC = UTC


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("zone_name, day, expected", [
    ("America/New_York", date(2026, 3, 8), "2026-03-08 13:00"),
    ("America/New_York", date(2026, 11, 1), "2026-11-01 14:00"),
    ("Europe/Berlin", date(2026, 3, 29), "2026-03-29 07:00"),
    ("Europe/Berlin", date(2026, 10, 25), "2026-10-25 08:00"),
])
def test_nine_am_on_dst_days(zone_name, day, expected):
    tz = zone(zone_name)
    assert localize(datetime.combine(day, time(9)), tz) == utc(expected)
    midnight = localize(datetime.combine(day, time(0)), tz)
    assert next_local_time(midnight, time(9), None, tz) == utc(expected)
    assert next_cron("0 9 * * *", midnight, tz) == utc(expected)


def test_local_time_in_a_gap_moves_forward_and_ambiguous_time_takes_the_first():
    ny = zone("America/New_York")
    assert localize(datetime(2026, 3, 8, 2, 30), ny) == utc("2026-03-08 07:30")  # 02:30 does not exist -> 03:30 EDT
    assert localize(datetime(2026, 11, 1, 1, 30), ny) == utc("2026-11-01 05:30")  # first 01:30 (EDT)
    assert localize(datetime(2026, 11, 1, 1, 30, fold=1), ny) == utc("2026-11-01 05:30")  # whatever the fold


def test_day_waits_are_calendar_days_hour_waits_are_absolute():
    berlin = zone("Europe/Berlin")
    start = utc("2026-03-28 09:00")  # Sat 10:00 CET
    assert add_duration(start, parse_duration("1d"), berlin) == utc("2026-03-29 08:00")  # Sun 10:00 CEST
    assert add_duration(start, parse_duration("24h"), berlin) == utc("2026-03-29 09:00")  # 11:00 CEST


def test_window_and_quiet_hours():
    ist = zone("Europe/Istanbul")
    window = TimeRange(time(9), time(18), frozenset(range(5)))
    quiet = TimeRange(time(21), time(8))
    assert sendable(utc("2026-03-02 06:00"), ist, window, quiet)  # Mon 09:00
    assert not sendable(utc("2026-03-02 15:00"), ist, window, quiet)  # Mon 18:00 (end exclusive)
    assert next_sendable(utc("2026-03-06 15:30"), ist, window, quiet) == utc("2026-03-09 06:00")  # Fri 18:30 -> Mon
    assert next_sendable(utc("2026-03-02 19:00"), ist, None, quiet) == utc("2026-03-03 05:00")  # 22:00 -> 08:00


def test_yearly_dates_on_29_february():
    ist = zone("Europe/Istanbul")
    assert next_annual(date(2024, 2, 29), utc("2026-01-01 00:00"), parse_duration("0d"), time(9), ist) == utc("2026-02-28 06:00")


CRONS = ["0 9 * * *", "30 7 * * mon-fri", "0 10 20 3 *", "0 10 1 12 *", "*/15 * * * *", "0 2 * * sun"]
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(CRONS), st.sampled_from(ZONES),
                          st.integers(min_value=0, max_value=400 * 24 * 60)), min_size=1, max_size=30))
def test_span_cached_next_cron_gives_the_uncached_answer(queries):
    cache = _CronSpans()
    base = utc("2026-01-01 00:00")
    for expression, zone_name, minutes in queries:
        after = base + timedelta(minutes=minutes, seconds=minutes % 7)
        tz = zone(zone_name)
        assert cache.next(expression, after, tz) == next_cron(expression, after, tz)


def test_span_cache_stays_bounded_and_correct():
    cache = _CronSpans()
    cache.MAX_SPANS = 50
    tz = zone("Europe/Berlin")
    after = utc("2026-03-28 00:00")
    for _ in range(200):  # every-minute cron across the DST change: many distinct fires
        fire = cache.next("* * * * *", after, tz)
        assert fire == next_cron("* * * * *", after, tz)
        after = fire
    assert len(cache.lows) <= 51


def _uncached_closed(at, tz, window, quiet):
    """What ``SendTimes.closed`` must answer, from the plain functions."""
    if sendable(at, tz, window, quiet):
        return None
    reason = "outside send window" if window and not sendable(at, tz, window, None) else "quiet hours"
    return reason, next_sendable(at, tz, window, quiet)


RANGES = [
    None,
    TimeRange(time(9), time(18), frozenset(range(5))),
    TimeRange(time(22), time(2), frozenset({0, 2, 4})),  # crosses midnight, opens on some days
    TimeRange(time(1, 30), time(3)),  # inside the DST changes of New York and Berlin
    TimeRange(time(21), time(8)),
]
SEND_ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago", "Asia/Beirut"]
DST_DAYS = ["2026-03-08", "2026-03-29", "2026-04-05", "2026-09-06", "2026-10-04", "2026-10-25", "2026-11-01"]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SEND_ZONES), st.sampled_from(RANGES), st.sampled_from(RANGES),
       st.lists(st.tuples(st.sampled_from(DST_DAYS), st.integers(min_value=-2 * 24 * 60, max_value=3 * 24 * 60)),
                min_size=1, max_size=40))
def test_send_time_spans_give_the_uncached_answer(zone_name, window, quiet, queries):
    """Spans are reused across DST changes only where the answer is the same (queries
    around the DST days of these zones, minutes apart, in any order)."""
    tz = zone(zone_name)
    times = SendTimes(tz, window, quiet)
    for day, minutes in queries:
        at = utc(f"{day} 00:00") + timedelta(minutes=minutes, seconds=minutes % 3)
        try:
            expected = _uncached_closed(at, tz, window, quiet)
        except ValueError:  # the window falls entirely in quiet hours
            with pytest.raises(ValueError):
                times.closed(at)
            continue
        assert times.closed(at) == expected, at


@pytest.mark.parametrize("zone_name", SEND_ZONES)
@pytest.mark.parametrize("window, quiet", [
    (None, TimeRange(time(1, 30), time(3))),  # quiet hours around the change
    (TimeRange(time(1), time(2, 30)), None),  # a window around the change, every day
    (TimeRange(time(9), time(18), frozenset(range(5))), TimeRange(time(21), time(8))),
])
def test_send_time_spans_every_quarter_hour_across_dst(zone_name, window, quiet):
    """In time order, so a span that wrongly reached past a DST change would answer later instants."""
    tz = zone(zone_name)
    times = SendTimes(tz, window, quiet)
    for day in DST_DAYS:
        start = utc(f"{day} 00:00") - timedelta(days=1)
        for step in range(3 * 24 * 4):
            at = start + timedelta(minutes=15 * step)
            assert times.closed(at) == _uncached_closed(at, tz, window, quiet), at
            assert times.closed(at) == _uncached_closed(at, tz, window, quiet), at  # from its span now


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SEND_ZONES), st.sampled_from(DST_DAYS), st.integers(min_value=-3 * 24 * 60, max_value=24 * 60),
       st.sampled_from(["1d", "2d", "1w", "1d12h", "30m", "24h", "3d5m"]))
def test_add_duration_is_calendar_days_then_seconds(zone_name, day, minutes, text):
    tz = zone(zone_name)
    at = utc(f"{day} 00:00") + timedelta(minutes=minutes)
    duration = parse_duration(text)
    expected = at  # the wall clock moves only for calendar days
    if duration.days:
        expected = localize(at.astimezone(tz).replace(tzinfo=None) + timedelta(days=duration.days), tz)
    expected += timedelta(seconds=duration.seconds)
    assert add_duration(at, duration, tz) == expected
