"""Update steps: attributes, lifecycle stage and scores they change are seen at once."""

from __future__ import annotations

from test_engine_kit import T, actions, email, event, journey, run, sends, state


def test_attribute_changed_by_an_update_step_fires_another_journeys_entry_at_the_same_instant():
    upgrade = journey("upgrader", steps=[{"id": "mark", "update": {"set": {"plan": "paid"}}}], settings={"priority": 10})
    follow = journey("follow", stages=[
        {"id": "paid", "entry": {"attribute_changed": "plan", "to": "paid"}, "steps": [email("thanks")]},
    ])
    decisions = run([upgrade, follow], state([event("2026-03-02 10:00", "signed_up")]), "2026-03-05 00:00")
    assert sends(decisions) == [("thanks", T("2026-03-02 10:00"))]
    enter = actions(decisions, "enter")[-1]
    assert enter.journey == "follow" and "from None to 'paid'" in enter.reason


def test_lower_priority_journey_update_is_seen_by_a_higher_priority_journey_too():
    # `follow` runs first at every instant (priority 10); the change comes later in the pass.
    upgrade = journey("upgrader", steps=[{"id": "mark", "update": {"lifecycle_stage": "customer"}}])
    follow = journey("follow", settings={"priority": 10}, stages=[
        {"id": "won", "entry": {"attribute_changed": "lifecycle_stage", "from": "lead", "to": "customer"},
         "steps": [email("welcome_customer")]},
    ])
    contact = state([event("2026-03-02 10:00", "signed_up")], lifecycle_stage="lead")
    decisions = run([upgrade, follow], contact, "2026-03-05 00:00")
    assert sends(decisions) == [("welcome_customer", T("2026-03-02 10:00"))]


def test_update_sets_nested_attributes_scores_and_moves_stage():
    j = journey("j", stages=[
        {"id": "one", "entry": {"event": "signed_up"}, "steps": [
            {"id": "mark", "update": {"set": {"meddic.metrics": "known"}, "add_score": {"lead": 40}, "stage": "two"}},
        ]},
        {"id": "two", "entry": {"event": "never_happens"}, "steps": [
            {"id": "hot", "if": {"score": "lead", "gte": 40}, "email": {"template": "hot", "subject": "hot"}},
        ]},
    ])
    from test_engine_kit import project

    proj = project(scores={"lead": {"rules": [{"event": "page_viewed", "points": 1}]}})
    contact = state([event("2026-03-02 10:00", "signed_up")])
    decisions = run(j, contact, "2026-03-03 00:00", proj=proj)
    assert contact.contact.attributes["meddic"] == {"metrics": "known"}
    moves = actions(decisions, "move")
    assert [m.stage for m in moves] == ["two"]
    assert sends(decisions) == [("hot", T("2026-03-02 10:00"))]


def test_wait_until_at_exactly_its_local_time_continues_instead_of_stalling():
    # Entered by a 09:00 schedule, then `wait_until 09:00`: due now. It used to block with
    # due_at == clock, which nothing wakes, so the email went out at the next unrelated event.
    daily = journey("daily", stages=[{"id": "d", "entry": {"schedule": "0 9 * * *", "timezone": "contact"},
                                      "steps": [{"wait_until": {"time": "09:00"}}, email("morning")]}])
    other = journey("other", steps=[email("unrelated")])
    contact = state([event("2026-03-03 20:00", "signed_up")], timezone_name="America/New_York")
    decisions = run([daily, other], contact, "2026-03-04 00:00", start="2026-03-03 00:00")
    assert sends(decisions) == [("morning", T("2026-03-03 14:00")), ("unrelated", T("2026-03-03 20:00"))]


def test_a_score_kept_across_instants_sees_attribute_changes_adjustments_and_new_events():
    # no event counts at first: the engine keeps the score between instants (see _score_parts)
    steps = [
        {"id": "cold", "if": {"score": "lead", "lt": 10}, "email": {"template": "cold", "subject": "s"}},
        {"id": "promote", "update": {"set": {"job_title": "Director"}}},
        {"id": "director", "if": {"score": "lead", "gte": 20}, "email": {"template": "d", "subject": "s"}},
        {"id": "bump", "update": {"add_score": {"lead": 5}}},
        {"id": "adjusted", "if": {"score": "lead", "gte": 25}, "email": {"template": "a", "subject": "s"}},
        {"wait": "2d"},
        {"id": "viewed", "if": {"score": "lead", "gte": 60}, "email": {"template": "v", "subject": "s"}},
    ]
    from test_engine_kit import project

    proj = project(scores={"lead": {"decay": {"half_life": "30d"}, "rules": [
        {"event": "page_viewed", "where": {"path": {"starts_with": "/pricing"}}, "points": 40},
        {"when": {"attribute": "job_title", "contains": "Director"}, "points": 20}]}})
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 10:00", "page_viewed", path="/blog"),
                     event("2026-03-03 12:00", "page_viewed", path="/pricing")], job_title="Engineer")
    decisions = run(journey("j", steps=steps), contact, "2026-03-06 00:00", proj=proj)
    assert [step for step, _ in sends(decisions)] == ["cold", "director", "adjusted", "viewed"]


def test_send_details_show_the_attributes_at_each_send_even_when_shared():
    # sends made while no attribute changed share one snapshot (see _attribute_snapshot)
    steps = [email("one"), email("two"), {"id": "rename", "update": {"set": {"first_name": "Grace"}}}, email("three")]
    decisions = run(journey("j", steps=steps), state([event("2026-03-02 10:00", "signed_up")], first_name="Ada"),
                    "2026-03-03 00:00")
    names = [d.detail["attributes"]["first_name"] for d in actions(decisions, "send")]
    assert names == ["Ada", "Ada", "Grace"]
