"""Properties of the engine over random contacts and event streams (hypothesis).

One journey set exercises caps, windows, quiet hours, waits, wait_for and
suppression; each example draws a contact (zone, attributes) and a stream of
events over three weeks. Examples are kept few so the suite stays fast.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_engine_kit import email, journey, project, state

from runner.core.engine import Engine
from runner.core.localtime import sendable, zone
from runner.core.state import Event

UTC = UTC
START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=21)
ZONES = ["UTC", "Europe/Istanbul", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "Pacific/Auckland"]
EVENTS = ["signed_up", "email_clicked", "purchased", "page_viewed", "unsubscribed", "email_bounced", "app_opened"]

PROJECT = project(frequency_cap={"max": 3, "per": "7d"},
                  scores={"lead": {"decay": {"half_life": "7d"},
                                   "rules": [{"event": "page_viewed", "points": 20}]}})
WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "18:00"}
QUIET = {"from": "21:00", "to": "08:00"}
JOURNEYS = [
    journey("nurture", settings={"send_window": WINDOW, "quiet_hours": QUIET, "frequency_cap": {"max": 2, "per": "2d"},
                                 "priority": 5, "reentry": {"after": "5d"}}, steps=[
        email("welcome"), {"wait": "1d"},
        {"id": "w", "wait_for": {"event": "email_clicked", "timeout": "2d"},
         "on_event": [email("thanks")], "on_timeout": [email("nudge")]},
        {"wait_until": {"time": "10:00", "days": ["tue"]}}, email("last")],
        exit=[{"event": "purchased"}]),
    journey("hot", segments={"hot": {"score": "lead", "gte": 40}}, settings={
        "send_window": {"from": "22:00", "to": "02:00"}, "on_cap": "skip", "reentry": "always"},
        stages=[{"id": "h", "entry": {"segment": "hot"}, "steps": [email("call"), {"wait": "6h"}, email("call_again")]}]),
    journey("daily", settings={"quiet_hours": QUIET, "reentry": "always", "priority": 1,
                               "frequency_cap": {"max": 1, "per": "1d"}, "on_cap": "defer"},
            stages=[{"id": "d", "entry": {"schedule": "30 7 * * *", "timezone": "contact"},
                     "steps": [email("digest")]}]),
]
SETTINGS = {j.id: j.settings for j in JOURNEYS}

event_strategy = st.tuples(
    st.integers(min_value=0, max_value=20 * 24 * 4),  # quarter hours after START
    st.sampled_from(EVENTS),
)


@st.composite
def contacts(draw):
    zone_name = draw(st.sampled_from(ZONES))
    events = draw(st.lists(event_strategy, max_size=12))
    return zone_name, sorted(events)


def build(zone_name, events):
    return state([Event(name, START + timedelta(minutes=15 * q)) for q, name in events], timezone_name=zone_name)


def simulate(zone_name, events, ticks=None):
    engine = Engine(PROJECT, JOURNEYS)
    contact = build(zone_name, events)
    if ticks is None:
        return engine.advance(contact, END, start=START).decisions, contact
    decisions = []
    at = START
    first = True
    for step in ticks:
        at = min(END, at + timedelta(minutes=step))
        decisions += engine.advance(contact, at, start=START if first else None).decisions
        first = False
    decisions += engine.advance(contact, END).decisions
    return decisions, contact


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(contacts())
def test_sends_respect_suppression_caps_windows_and_keys(contact):
    zone_name, events = contact
    decisions, final = simulate(zone_name, events)
    sends = [d for d in decisions if d.action == "send"]
    # nothing sent to a suppressed contact (after the suppressing event)
    suppressed_at = min((START + timedelta(minutes=15 * q) for q, n in events
                         if n in ("unsubscribed", "email_bounced")), default=None)
    if suppressed_at is not None:
        assert all(d.at < suppressed_at for d in sends)
    # nothing sent outside its journey's send window / in quiet hours, in the contact's zone
    tz = zone(zone_name)
    for d in sends:
        s = SETTINGS[d.journey]
        assert sendable(d.at, tz, s.send_window, s.quiet_hours), (d.journey, d.at)
    # no cap exceeded: per journey and across journeys, in every sliding window
    for d in sends:
        window = [x for x in sends if d.at - PROJECT.frequency_cap.per.approx < x.at <= d.at]
        assert len(window) <= PROJECT.frequency_cap.max
        cap = SETTINGS[d.journey].frequency_cap
        if cap is not None:
            mine = [x for x in sends if x.journey == d.journey and d.at - cap.per.approx < x.at <= d.at]
            assert len(mine) <= cap.max
    # each enrollment's step is sent at most once
    keys = [d.key for d in sends]
    assert len(keys) == len(set(keys))
    assert sorted(keys) == sorted(s.key for s in final.sends if s.kind == "email")


@FAST
@given(contacts())
def test_same_inputs_give_the_same_timeline(contact):
    first, _ = simulate(*contact)
    second, _ = simulate(*contact)
    assert first == second


@FAST
@given(contacts(), st.lists(st.integers(min_value=1, max_value=24 * 60), min_size=1, max_size=40))
# a decaying score exactly at a `gte` threshold falls below it at once: the big advance must wake for it
@example(contact=("UTC", [(0, "page_viewed"), (0, "page_viewed"), (89, "page_viewed")]), ticks=[1])
# entering on signed_up while the exit (purchased) already holds: the next look exits, however it is ticked
@example(contact=("UTC", [(0, "purchased"), (0, "signed_up")]), ticks=[1])
def test_small_ticks_decide_exactly_what_one_big_advance_decides(contact, ticks):
    big, _ = simulate(*contact)
    small, _ = simulate(*contact, ticks=ticks)
    assert [(d.at, d.journey, d.step, d.action, d.reason, d.key) for d in small] == \
           [(d.at, d.journey, d.step, d.action, d.reason, d.key) for d in big]
