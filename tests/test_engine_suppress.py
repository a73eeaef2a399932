"""The ``suppress`` step and project.yaml's ``exit`` rules in the engine (issue #13 §3).

A suppress step stops every marketing email to the contact in every journey from its
instant (transactional topics go on); project exits end an enrollment in every journey,
labelled ``project_exit:<index>``, after the journey's own exits."""

from __future__ import annotations

from test_engine_kit import T, actions, email, event, journey, project, run, sends, state

from runner.core.engine import Engine

TOPICS = {"marketing": {"kind": "marketing"}, "receipts": {"kind": "transactional"}}
SUNSET = journey("reengage", steps=[
    email("miss_you"), {"wait": "1d"}, {"suppress": {"reason": "sunset"}}, email("after_sunset"),
])
OTHER = journey("newsletter", stages=[{"id": "main", "entry": {"event": "subscribed"}, "steps": [
    {"wait": "3d"}, email("monthly"), email("receipt", email={"template": "receipt", "subject": "r", "topic": "receipts"}),
]}])


def test_a_suppress_step_stops_marketing_email_in_every_journey_from_its_instant():
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-02 10:00", "subscribed")])
    decisions = run([SUNSET, OTHER], contact, "2026-03-10", proj=project(topics=TOPICS))
    suppress = actions(decisions, "suppress")
    assert [(d.journey, d.reason, d.at) for d in suppress] == [("reengage", "sunset", T("2026-03-03 10:00"))]
    # before: sent; after: skipped with the reason, here and in the other journey
    assert sends(decisions) == [("miss_you", T("2026-03-02 10:00")), ("receipt", T("2026-03-05 10:00"))]
    skipped = {d.step: d.reason for d in actions(decisions, "skip")}
    assert skipped == {"after_sunset": "suppressed: sunset", "monthly": "suppressed: sunset"}
    assert contact.email_stop("marketing", True, T("2026-03-03 10:00")) == "suppressed: sunset"
    assert contact.email_stop("marketing", True, T("2026-03-03 09:59")) is None
    assert contact.email_stop("receipts", False, T("2026-03-04")) is None  # transactional goes on


def test_a_suppress_step_in_a_later_call_is_kept_from_the_first_instant():
    """The stop is kept in the state the store saves; a later advance still honours it."""
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-05 10:00", "subscribed")])
    engine = Engine(project(topics=TOPICS), [SUNSET, OTHER])
    engine.advance(contact, T("2026-03-04"), start=T("2026-03-02"))
    later = engine.advance(contact, T("2026-03-10")).decisions
    assert [(d.step, d.reason) for d in actions(later, "skip")] == [("monthly", "suppressed: sunset")]


def test_an_earlier_unsubscribe_wins_the_reason():
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-02 12:00", "unsubscribed")])
    decisions = run([SUNSET], contact, "2026-03-10")
    assert [(d.step, d.reason) for d in actions(decisions, "skip")] == [("after_sunset", "suppressed: unsubscribed")]


def test_a_project_exit_ends_enrollments_in_every_journey():
    proj = project(exit=[{"event": "account_closed"}])
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-02 10:00", "subscribed"),
                     event("2026-03-02 20:00", "account_closed")])
    decisions = run([SUNSET, OTHER], contact, "2026-03-10", proj=proj)
    exits = {d.journey: (d.reason, d.at) for d in actions(decisions, "exit")}
    assert exits == {"reengage": ("project_exit:0 event account_closed count gte 1", T("2026-03-02 20:00")),
                     "newsletter": ("project_exit:0 event account_closed count gte 1", T("2026-03-02 20:00"))}
    assert sends(decisions) == [("miss_you", T("2026-03-02 10:00"))]


def test_a_journey_exit_comes_before_the_project_exit_and_both_are_numbered_apart():
    own = journey("own", steps=[{"wait": "5d"}, email("late")], exit=[{"attribute": "plan", "equals": "gone"},
                                                                       {"event": "account_closed"}])
    proj = project(exit=[{"event": "account_closed"}])
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 10:00", "account_closed")])
    assert [d.reason for d in actions(run([own], contact, "2026-03-10", proj=proj), "exit")] == [
        "exit:1 event account_closed count gte 1"]
    timed = project(exit=[{"attribute": "plan", "equals": "closed"}])
    contact = state([event("2026-03-02 10:00", "signed_up")], plan="closed")
    assert [d.reason for d in actions(run([own], contact, "2026-03-10", proj=timed), "exit")] == [
        "project_exit:0 plan equals 'closed'"]


def test_a_project_exit_added_later_applies_to_contacts_in_flight():
    """The rule is the project's, not the journey version's: a contact already waiting in
    the journey leaves at its next look once project.yaml has it."""
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 10:00", "account_closed")])
    Engine(project(), [SUNSET]).advance(contact, T("2026-03-02 12:00"), start=T("2026-03-02"))
    assert "reengage" in contact.enrollments
    later = Engine(project(exit=[{"event": "account_closed"}]), [SUNSET]).advance(contact, T("2026-03-10")).decisions
    assert [(d.reason, d.at) for d in actions(later, "exit")] == [
        ("project_exit:0 event account_closed count gte 1", T("2026-03-03 10:00"))]
    assert actions(later, "suppress") == []


def test_a_resubscribe_to_everything_lifts_the_sunset_from_its_instant():
    """The contact asked for everything again (the preferences page records ``resubscribed`` "*")."""
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-02 10:00", "subscribed"),
                     event("2026-03-04 12:00", "resubscribed", topic="*")])
    decisions = run([SUNSET, OTHER], contact, "2026-03-10", proj=project(topics=TOPICS))
    assert {d.step: d.reason for d in actions(decisions, "skip")} == {"after_sunset": "suppressed: sunset"}
    assert ("monthly", T("2026-03-05 10:00")) in sends(decisions)
    assert contact.opt_outs == {}
