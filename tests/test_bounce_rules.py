"""The bounce rules (runner.core.bounces) and recording them (runner.production.bounces) on a real SQLite store.

Hard bounces and complaints suppress at their instant; soft bounces suppress at
the one that makes the limit within the window; a report delivered twice, in
any order, counts once; a report names the exact contact when it carries our
send key and the contact still has the address.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runner.core.bounces import (
    COMPLAINT,
    HARD,
    SOFT,
    Bounce,
    SoftBounceRule,
    contact_of_send_key,
    kind_of_status,
    rule_from_project,
)
from runner.core.durations import parse_duration
from runner.core.problems import JourneyError
from runner.production.bounces import record_bounces, suppression_of
from runner.store import open_store
from runner.store.base import ContactRow

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
RULE = SoftBounceRule(limit=3, within=parse_duration("7d"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The same rules on both stores: a SQLite file, a fresh PostgreSQL schema (skipped loudly without a server)."""
    location = tmp_path / "journey.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = open_store(location)
    store.write_contacts([ContactRow("ada", {"email": "Ada@Example.com"}), ContactRow("bob", {"email": "bob@example.com"}),
                          ContactRow("bob2", {"email": "bob@example.com"})], T0)
    yield store
    store.close()


def soft(n: int, at: datetime, recipient: str = "ada@example.com") -> Bounce:
    return Bounce(SOFT, recipient, at, f"soft-{n}", "ses", diagnostic="452 4.2.2 mailbox full", status="4.2.2")


def test_status_codes_classify_as_rfc_3463_says():
    assert kind_of_status("5.1.1") == HARD and kind_of_status("smtp; 550 5.7.1 blocked") == HARD
    assert kind_of_status("4.2.2") == SOFT and kind_of_status("2.0.0") is None and kind_of_status("") is None


def test_the_soft_rule_counts_within_its_window_ending_at_each_bounce():
    days = [T0, T0 + timedelta(days=3), T0 + timedelta(days=8), T0 + timedelta(days=9)]
    assert RULE.first_reached(days[:2]) is None
    assert RULE.first_reached(days[:3]) is None  # day 0 fell out of the 7 days ending on day 8
    assert RULE.first_reached(days) == (days[3], 3)  # days 3, 8 and 9
    assert RULE.first_reached(list(reversed(days))) == (days[3], 3)  # order of arrival does not matter


def test_the_rule_comes_from_project_yaml_with_defaults():
    assert rule_from_project({}) == SoftBounceRule()
    assert rule_from_project({"bounces": {"soft": {"limit": 5, "within": "2w"}}}) == SoftBounceRule(5, parse_duration("2w"))
    with pytest.raises(JourneyError, match="bounces.soft"):
        rule_from_project({"bounces": {"soft": {"within": "soon"}}})


def test_a_send_key_names_its_contact():
    assert contact_of_send_key("ada:welcome:1/1/hello") == "ada"
    assert contact_of_send_key("user:with:colons:welcome:12/3/tips") == "user:with:colons"
    assert contact_of_send_key("no-key") is None and contact_of_send_key("a/b/c") is None


def test_a_hard_bounce_suppresses_at_its_instant_and_counts_once(store):
    bounce = Bounce(HARD, "ADA@example.com", T0 + timedelta(hours=6), "r1", "ses", "smtp; 550 5.1.1 unknown", "5.1.1")
    first = record_bounces(store, [bounce, bounce], RULE, T0)
    assert (first.counted, first.duplicates, first.suppressed) == (1, 0, ["ada"])
    again = record_bounces(store, [bounce], RULE, T0 + timedelta(days=1))
    assert (again.counted, again.duplicates, again.suppressed) == (0, 1, [])
    assert store.is_suppressed("ada", T0 + timedelta(hours=5)) is None
    assert store.is_suppressed("ada", T0 + timedelta(hours=6)) == "bounced"
    (row,) = store.suppressions()
    assert row["detail"] == "hard_bounce: smtp; 550 5.1.1 unknown (ses)"
    state = store.load_contact_state("ada")
    assert suppression_of(state).detail == row["detail"]


def test_soft_bounces_suppress_at_the_one_over_the_limit_whatever_the_order_and_replays(store):
    times = [T0, T0 + timedelta(days=2), T0 + timedelta(days=4)]
    record_bounces(store, [soft(3, times[2])], RULE, T0)
    outcome = record_bounces(store, [soft(1, times[0]), soft(3, times[2])], RULE, T0)  # a retry of #3 comes along
    assert (outcome.counted, outcome.duplicates, outcome.suppressed) == (1, 1, [])
    assert store.is_suppressed("ada") is None
    outcome = record_bounces(store, [soft(2, times[1])], RULE, T0)
    assert outcome.suppressed == ["ada"]
    (row,) = store.suppressions()
    assert (row["reason"], row["at"][:19], row["detail"]) == (
        "bounced", "2026-03-06T09:00:00", "soft_bounces: 3 within 7d; 452 4.2.2 mailbox full (ses)")
    for n, at in enumerate(times, 1):  # everything again: nothing new, no second suppression
        assert record_bounces(store, [soft(n, at)], RULE, T0).counted == 0
    events = sorted(event.name for event in store.load_contact_state("ada").events)
    assert events == ["email_bounced", "email_soft_bounced", "email_soft_bounced", "email_soft_bounced"]


def test_after_an_operator_lifts_it_only_soft_bounces_counted_anew_suppress_again(store):
    record_bounces(store, [soft(n, T0 + timedelta(hours=n)) for n in range(4)], RULE, T0)  # the 4th: already suppressed
    assert [row["at"][:19] for row in store.suppressions()] == ["2026-03-02T11:00:00"]
    assert sorted(event.name for event in store.load_contact_state("ada").events).count("email_bounced") == 1
    store.remove_suppression("ada")
    later = T0 + timedelta(days=60)
    assert record_bounces(store, [soft(10, later)], RULE, T0).suppressed == []  # one new: the old ones are 2 months old
    outcome = record_bounces(store, [soft(11, later + timedelta(hours=1)), soft(12, later + timedelta(hours=2))], RULE, T0)
    assert outcome.suppressed == ["ada"]
    assert [row["at"][:19] for row in store.suppressions()] == ["2026-05-01T11:00:00"]


def test_soft_bounces_spread_wider_than_the_window_do_not_suppress(store):
    record_bounces(store, [soft(n, T0 + timedelta(days=5 * n)) for n in range(5)], RULE, T0)
    assert store.is_suppressed("ada") is None


def test_a_send_key_picks_the_exact_contact_an_address_alone_picks_each(store):
    keyed = Bounce(HARD, "bob@example.com", T0, "r2", "ses", send_key="bob2:welcome:1/1/hello")
    assert record_bounces(store, [keyed], RULE, T0).suppressed == ["bob2"]
    unkeyed = Bounce(COMPLAINT, "bob@example.com", T0, "r3", "ses")
    assert record_bounces(store, [unkeyed], RULE, T0).suppressed == ["bob"]  # bob2 already was
    assert store.is_suppressed("bob") == "complained"
    stale = Bounce(HARD, "ada@example.com", T0, "r4", "ses", send_key="bob:welcome:1/1/hello")  # bob's key, not his address
    assert record_bounces(store, [stale], RULE, T0).suppressed == ["ada"]


def test_an_address_no_contact_has_is_suppressed_itself_and_a_later_report_keeps_its_instant(store):
    bounce = Bounce(HARD, "Nobody@Example.org", T0, "r5", "mailgun", "550 no such user", "5.1.1")
    outcome = record_bounces(store, [bounce], RULE, T0)
    assert (outcome.counted, outcome.suppressed) == (1, ["nobody@example.org"])
    later = record_bounces(store, [Bounce(HARD, "nobody@example.org", T0 + timedelta(hours=1), "r5b", "mailgun")],
                             RULE, T0)
    assert (later.counted, later.duplicates) == (0, 1)
    (row,) = store.suppressions()
    assert (row["email"], row["reason"], row["source"], row["at"][:19]) == (
        "nobody@example.org", "bounced", "bounce", "2026-03-02T09:00:00")
    assert row["detail"] == "hard_bounce: 550 no such user (mailgun)"
    assert record_bounces(store, [soft(9, T0, "nobody@example.org")], RULE, T0).unmatched == 1
    store.add_suppression("opted-out@example.org", "unsubscribed", "cli", T0)  # marketing topics only
    outcome = record_bounces(store, [Bounce(HARD, "opted-out@example.org", T0, "r6", "ses")], RULE, T0)
    assert outcome.suppressed == ["opted-out@example.org"]  # a bounce stops every email, transactional too
    rows = [(row["reason"], row["topic"]) for row in store.suppressions() if row["email"] == "opted-out@example.org"]
    assert ("bounced", None) in rows


def test_a_dry_run_says_what_it_would_do_and_stores_nothing(store):
    outcome = record_bounces(store, [soft(n, T0 + timedelta(hours=n)) for n in range(3)], RULE, T0, dry_run=True)
    assert (outcome.counted, outcome.suppressed) == (3, ["ada"])
    assert store.load_contact_state("ada").events == [] and store.suppressions() == []


@pytest.mark.parametrize("soft_bounces", [2, 3])
def test_soft_bounces_suppress_in_simulate_as_in_production(tmp_path, soft_bounces):
    """One engine: three soft bounces between hello and tips skip tips in a simulation and in
    hourly production ticks fed by the webhook path; two do not."""
    import json

    from test_tick_kit import tiny_project

    from runner.production.deploy import deploy, load_working_tree
    from runner.production.tick import build_runtime, run_tick
    from runner.simulation.simulate import simulate
    from runner.simulation.testcontacts import load_test_contacts

    signup = datetime(2026, 3, 2, 9, tzinfo=UTC)
    times = [signup + timedelta(hours=2 * n + 2) for n in range(soft_bounces)]
    root = tiny_project(tmp_path / "project")
    contact = {"id": "ada", "timezone": "UTC", "attributes": {"email": "ada@example.com", "first_name": "Ada"}}
    events = [{"event": "signed_up", "at": signup.isoformat()}] + [
        {"event": "email_soft_bounced", "at": at.isoformat()} for at in times]
    (root / "contacts.yaml").write_text(json.dumps({"contacts": [{**contact, "events": events}]}))
    tree = load_working_tree(root)
    end = signup + timedelta(days=3)
    simulation = simulate(tree.project, tree.journeys, load_test_contacts(root / "contacts.yaml"), signup, end)
    simulated = sorted((d.step, d.action, d.reason) for d in simulation.decisions if d.action in ("send", "skip"))

    store = open_store(tmp_path / "journey.db")
    store.write_contacts([ContactRow("ada", contact["attributes"], timezone="UTC")], signup)
    from runner.store.base import EventRow

    store.write_events([EventRow("ada", None, "signed_up", signup, {}, "signup")], signup)
    deploy(store, tree.journeys, signup)
    runtime = build_runtime(store, tree.project, f"outbox:{tmp_path / 'outbox'}")
    for hour in range(int((end - signup) / timedelta(hours=1)) + 1):
        now = signup + timedelta(hours=hour)
        arrived = [soft(n, at) for n, at in enumerate(times) if now - timedelta(hours=1) < at <= now]
        if arrived:
            record_bounces(store, arrived, RULE, now)
        run_tick(store, runtime, now)
    produced = sorted((row["step"], row["action"], row["reason"]) for row in store.contact_history("ada")
                      if row["action"] in ("send", "skip"))
    store.close()
    assert produced == simulated
    tips = [decision for decision in simulated if decision[0] == "tips"]
    assert tips == ([("tips", "skip", "suppressed: bounced")] if soft_bounces == 3 else
                    [("tips", "send", tips[0][2])])
