"""The event in the template (issue #13 §2): which event a send's templates see.

The steps of a stage visit entered by an event see that event; a ``wait_for`` answer
replaces it for its ``on_event`` steps and the steps after them; a timeout keeps the
one before; entries of other kinds and an update step's move give none. A step due
after a wait sees it too: the enrollment keeps it while it waits, and the store keeps
it in the enrollment's ``wait`` (tested through the store in test_tick_event_context)."""

from __future__ import annotations

from test_engine_kit import T, actions, email, event, journey, project, run, state

from runner.core.engine import Engine
from runner.core.state import Enrollment, Wait
from runner.store.rows import enrollment_from_row, enrollment_to_row

CART = journey("cart", stages=[{"id": "main", "entry": {"event": "cart_abandoned"}, "steps": [
    {"wait": "1h"},
    email("reminder"),
    {"id": "wait_buy", "wait_for": {"event": "email_clicked", "timeout": "2d"},
     "on_event": [email("thanks")], "on_timeout": [email("nudge")]},
    email("after"),
]}])


def _events(decisions):
    return {d.step: d.detail.get("event") for d in actions(decisions, "send")}


def test_the_entry_event_reaches_a_send_after_a_wait_and_a_click_replaces_it():
    contact = state([event("2026-03-02 10:00", "cart_abandoned", total=42.5, items=[{"sku": "a"}]),
                     event("2026-03-02 15:00", "email_clicked", url="https://x.test/cart")])
    sent = _events(run(CART, contact, "2026-03-06"))
    cart = {"name": "cart_abandoned", "properties": {"total": 42.5, "items": [{"sku": "a"}]},
            "timestamp": "2026-03-02T10:00:00+00:00"}
    click = {"name": "email_clicked", "properties": {"url": "https://x.test/cart"},
             "timestamp": "2026-03-02T15:00:00+00:00"}
    assert sent == {"reminder": cart, "thanks": click, "after": click}


def test_a_timeout_keeps_the_event_before_the_wait_for():
    contact = state([event("2026-03-02 10:00", "cart_abandoned", total=1)])
    sent = _events(run(CART, contact, "2026-03-06"))
    assert {step: e["name"] for step, e in sent.items()} == {
        "reminder": "cart_abandoned", "nudge": "cart_abandoned", "after": "cart_abandoned"}


def test_no_event_for_entries_of_other_kinds_and_update_moves():
    by_segment = journey("seg", stages=[
        {"id": "main", "entry": {"condition": {"attribute": "plan", "equals": "pro"}},
         "steps": [email("welcome"), {"id": "go", "update": {"stage": "second"}}]},
        {"id": "second", "entry": {"event": "never"}, "steps": [email("moved")]},
    ])
    sent = _events(run(by_segment, state([], plan="pro"), "2026-03-03"))
    assert sent == {"welcome": None, "moved": None}


def test_the_enrollment_keeps_its_event_only_while_it_runs_or_waits():
    contact = state([event("2026-03-02 10:00", "cart_abandoned", total=3)])
    engine = Engine(project(), [CART])
    engine.advance(contact, T("2026-03-02 10:30"), start=T("2026-03-02"))
    waiting = contact.enrollments["cart"]
    assert waiting.trigger is not None and waiting.trigger.properties == {"total": 3}
    # the store keeps it in the wait column, and reads it back
    again = enrollment_from_row(enrollment_to_row(waiting))
    assert again.trigger == waiting.trigger
    engine.advance(contact, T("2026-03-10"))
    (done,) = contact.past_enrollments
    assert done.trigger is None


def test_rows_written_before_events_reached_templates_still_load():
    old = Enrollment(id="c1:cart:1", contact_id="c1", journey_id="cart", version=1, entered_at=T("2026-03-02"),
                     stage="main", cursor="reminder", wait=Wait(until=T("2026-03-03")), due_at=T("2026-03-03"))
    row = enrollment_to_row(old)
    assert '"trigger"' not in row["wait"]
    assert enrollment_from_row(row).trigger is None
