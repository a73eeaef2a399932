"""The counters behind ``journey stats``: every journal decision, ledger row, open and click
counted once, under its journey, version, UTC day, step and outcome, and moved when a row
changes state; filters by journey and by day (``until`` excluded)."""

from __future__ import annotations

from runner.core.state import ACTIVE, Enrollment
from runner.store.base import EventRow

from .kit import at, blank, decision, send


def _total(rows: list[dict], **match) -> int:
    return sum(row["n"] for row in rows if all(row.get(k) == v for k, v in match.items()))


def test_decisions_are_counted_per_step_action_and_outcome(store):
    store.save_contact_state(blank("ada"), None, [
        decision("ada", 1, key="k1"),
        decision("ada", 2, "skip", step="nudge", key="k2", reason="capped"),
        decision("ada", 26, "skip", step="nudge", key="k3", reason="capped"),
        decision("ada", 3, "exit", step=None, reason="exit:0"),
        decision("ada", 4, "send", journey="billing", key="kb"),
    ], run_id="r")
    rows = store.decision_counts("onboarding", None, None)
    assert _total(rows, action="send") == 1
    assert _total(rows, action="skip", step="nudge") == 2
    assert _total(rows, action="exit") == 1
    assert _total(store.decision_counts(None, None, None)) == 5
    assert _total(store.decision_counts("onboarding", "2026-03-03", None)) == 1  # the skip a day later
    assert _total(store.decision_counts("onboarding", None, "2026-03-03")) == 3
    assert store.decision_counts("nothing", None, None) == []


def test_sends_are_counted_under_their_state_and_move_with_it(store):
    run = store.start_run("r", at(0))
    assert store.claim_sends([send("k1"), send("k2"), send("k3", step="nudge")], run, resendable=False) == [True] * 3
    store.confirm_send("k1", "<m1@x>")
    store.fail_send("k2", "550", permanent=True)
    store.skip_send(send("k4", step="nudge"), "suppressed", run)
    rows = store.send_counts("onboarding", None, None)
    assert _total(rows, state="sent") == 1 and _total(rows, state="failed") == 1
    assert _total(rows, state="claimed", step_id="nudge") == 1
    assert _total(rows, state="skipped") == 1 and _total(rows) == 4
    store.confirm_send("k3", "<m3@x>")
    rows = store.send_counts("onboarding", None, None)
    assert _total(rows, state="claimed") == 0 and _total(rows, state="sent") == 2 and _total(rows) == 4


def test_opens_and_clicks_are_counted_per_journey_and_step(store):
    props = {"journey": "onboarding", "step": "welcome"}
    store.write_events([EventRow("ada", None, "email_opened", at(1), props, "o1"),
                        EventRow("ada", None, "email_opened", at(2), props, "o2"),
                        EventRow("ada", None, "email_clicked", at(2), props, "c1"),
                        EventRow("ada", None, "email_clicked", at(2), props, "c1"),  # a duplicate: not counted
                        EventRow("ada", None, "page_viewed", at(2), props, "p1")], at(3))
    rows = store.engagement_counts("onboarding", None, None)
    assert {(row["step"], row["name"], row["n"]) for row in rows} == {
        ("welcome", "email_opened", 2), ("welcome", "email_clicked", 1)}


def test_split_enrollments_are_counted_per_variant_with_conversions(store):
    for n, (variant, goal) in enumerate([("a", True), ("a", False), ("b", False), ("b", False), ("b", True)]):
        state = blank(f"c{n}")
        state.enrollments["onboarding"] = Enrollment(
            id=f"c{n}:onboarding:1", contact_id=f"c{n}", journey_id="onboarding", version=3, entered_at=at(0),
            stage="education", cursor="x", status=ACTIVE, variant={"subject": variant},
            goal_at=at(5) if goal else None)
        store.save_contact_state(state, None)
    state = blank("plain")  # no split: not counted
    state.enrollments["onboarding"] = Enrollment(id="plain:onboarding:1", contact_id="plain",
                                                 journey_id="onboarding", version=3, entered_at=at(0),
                                                 stage="education", cursor="x", status=ACTIVE)
    store.save_contact_state(state, None)
    rows = {row["variant"]["subject"]: (row["n"], row["converted"]) for row in
            store.split_outcomes("onboarding", None, None)}
    assert rows == {"a": (2, 1), "b": (3, 1)}
    # a conversion recorded later moves the counts
    later = store.load_contact_state("c2")
    later.enrollments["onboarding"].goal_at = at(9)
    store.save_contact_state(later, None)
    rows = {row["variant"]["subject"]: (row["n"], row["converted"]) for row in
            store.split_outcomes("onboarding", None, None)}
    assert rows == {"a": (2, 1), "b": (3, 2)}


def test_production_counters_come_from_the_counters_and_the_due_index(store):
    run = store.start_run("r", at(0))
    store.save_contact_state(blank("ada"), at(1), [decision("ada", 1, key="k1")], run_id=run)
    store.save_contact_state(blank("bob"), at(50), [decision("bob", 1, "skip", key="k2", reason="capped")], run_id=run)
    assert store.claim_send(send("k1"), run)
    store.finish_run(run, {}, "ok", at(0))
    counters = store.production_counters(at(2))
    assert counters.ticks.get("ok") == 1
    assert counters.decisions == {"send": 1, "skip": 1}
    assert counters.sends == {"claimed": 1}
    assert (counters.due, counters.oldest_due_at) == (1, at(1))
    assert store.pending_migrations() == []
