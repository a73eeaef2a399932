"""The engine, construct by construct, driven with plain datetimes (no clock, no files)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from test_engine_kit import T, actions, email, event, journey, project, run, sends, state

from runner.core.engine import Engine
from runner.core.localtime import localize
from runner.core.steps import split_bucket

# ---------------------------------------------------------------- entries


def test_event_entry_with_where_filter_and_if_condition():
    j = journey(stages=[{"id": "main", "entry": {"event": "signed_up", "where": {"form": "footer"},
                                                 "if": {"attribute": "country", "equals": "TR"}},
                         "steps": [email("hi")]}])
    wrong_form = state([event("2026-03-02 10:00", "signed_up", form="header")], country="TR")
    wrong_country = state([event("2026-03-02 10:00", "signed_up", form="footer")], country="JP")
    right = state([event("2026-03-02 10:00", "signed_up", form="footer")], country="TR")
    assert sends(run(j, wrong_form, "2026-03-03")) == []
    assert sends(run(j, wrong_country, "2026-03-03")) == []
    assert sends(run(j, right, "2026-03-03")) == [("hi", T("2026-03-02 10:00"))]


def test_segment_entry_fires_when_it_becomes_true_not_while_it_stays_true():
    j = journey(reentry="always", segments={"hot": {"event": "page_viewed", "count": {"gte": 2}}},
                settings={"reentry": "always"},
                stages=[{"id": "hot", "entry": {"segment": "hot"}, "steps": [email("alert")]}])
    contact = state([event(f"2026-03-0{d} 10:00", "page_viewed") for d in (2, 3, 4, 5)])
    decisions = run(j, contact, "2026-03-08")
    assert sends(decisions) == [("alert", T("2026-03-03 10:00"))]


def test_condition_entry_with_time_window_fires_when_time_passes():
    # "no app_opened for 7 days" becomes true by the passing of time alone
    j = journey(stages=[{"id": "quiet", "entry": {"condition": {"all": [
        {"event": "app_opened"}, {"event": "app_opened", "within": "7d", "count": {"equals": 0}}]}},
        "steps": [email("miss_you")]}])
    contact = state([event("2026-03-02 10:00", "app_opened")])
    decisions = run(j, contact, "2026-03-20")
    assert sends(decisions) == [("miss_you", T("2026-03-09 10:00"))]


def test_attribute_changed_entry_with_from_and_to():
    j = journey(stages=[{"id": "won", "entry": {"attribute_changed": "plan", "from": "free", "to": "team"},
                         "steps": [email("upgraded")]}])
    contact = state(plan="free")
    engine = Engine(project(), [j])
    engine.advance(contact, T("2026-03-02 00:00"), start=T("2026-03-02 00:00"))
    contact.contact.attributes["plan"] = "business"  # free -> business: not this entry
    assert sends(engine.advance(contact, T("2026-03-03")).decisions) == []
    contact.contact.attributes["plan"] = "free"
    engine.advance(contact, T("2026-03-04"))
    contact.contact.attributes["plan"] = "team"
    contact.events.append(event("2026-03-05 12:00", "ping"))  # gives the engine an instant to look
    assert sends(engine.advance(contact, T("2026-03-06")).decisions) == [("upgraded", T("2026-03-05 12:00"))]


def test_date_entry_fires_yearly_at_local_time_with_offset():
    j = journey(settings={"reentry": "always"}, stages=[
        {"id": "renewal", "entry": {"date": "renewal_date", "offset": "-14d", "at": "09:00"},
         "steps": [email("upsell")]}])
    contact = state(timezone_name="Europe/Istanbul", renewal_date="2026-04-20")
    decisions = run(j, contact, "2027-04-30", start="2026-03-02 00:00")
    assert sends(decisions) == [("upsell", T("2026-04-06 06:00")), ("upsell", T("2027-04-06 06:00"))]


def test_schedule_entry_fires_on_cron_in_given_zone_and_in_contact_zone():
    fixed = journey("fixed", settings={"reentry": "always"}, stages=[
        {"id": "s", "entry": {"schedule": "0 10 * * mon", "timezone": "Europe/Istanbul"}, "steps": [email("weekly")]}])
    local = journey("local", settings={"reentry": "always"}, stages=[
        {"id": "s", "entry": {"schedule": "0 10 * * mon", "timezone": "contact"}, "steps": [email("weekly_local")]}])
    contact = state(timezone_name="America/New_York")
    decisions = run([fixed, local], contact, "2026-03-10", start="2026-03-02 00:00")
    assert sends(decisions) == [("weekly", T("2026-03-02 07:00")), ("weekly_local", T("2026-03-02 15:00")),
                                ("weekly", T("2026-03-09 07:00")), ("weekly_local", T("2026-03-09 14:00"))]


# ---------------------------------------------------------------- stages


def lifecycle(**settings):
    return journey("life", settings=settings, stages=[
        {"id": "lead", "priority": 1, "entry": {"event": "signed_up"}, "steps": [email("lead_mail")]},
        {"id": "customer", "priority": 5, "entry": {"event": "purchased"}, "steps": [email("customer_mail")]},
        {"id": "churned", "priority": 3, "entry": {"event": "cancelled"}, "steps": [email("churn_mail")]},
    ])


def test_stage_moves_are_not_linear_and_each_stay_runs_its_steps():
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 10:00", "purchased"),
                     event("2026-03-04 10:00", "cancelled"), event("2026-03-05 10:00", "purchased")])
    decisions = run(lifecycle(), contact, "2026-03-06")
    assert [m.stage for m in actions(decisions, "move")] == ["customer", "churned", "customer"]
    assert [s for s, _ in sends(decisions)] == ["lead_mail", "customer_mail", "churn_mail", "customer_mail"]
    keys = [d.key for d in actions(decisions, "send")]
    assert len(set(keys)) == 4  # the second customer stay has its own stage_seq


def test_stage_priority_decides_when_entries_fire_at_the_same_instant():
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-02 10:00", "purchased"),
                     event("2026-03-02 10:00", "cancelled")])
    decisions = run(lifecycle(), contact, "2026-03-03")
    assert actions(decisions, "enter")[0].stage == "customer"


def test_multi_stage_journey_idles_when_steps_are_done_single_stage_completes():
    idle = run(lifecycle(), contact := state([event("2026-03-02 10:00", "signed_up")]), "2026-03-10")
    assert actions(idle, "exit") == [] and contact.enrollments["life"].status == "idle"
    single = run(journey(steps=[email("a")]), state([event("2026-03-02 10:00", "signed_up")]), "2026-03-10")
    assert [d.reason for d in actions(single, "exit")] == ["completed"]


# ---------------------------------------------------------------- re-entry


@pytest.mark.parametrize("policy, expected", [
    ("never", ["2026-03-02 10:00"]),
    ("always", ["2026-03-02 10:00", "2026-03-20 10:00", "2026-06-10 10:00"]),
    ({"after": "90d"}, ["2026-03-02 10:00", "2026-06-10 10:00"]),
])
def test_reentry_policies(policy, expected):
    j = journey(settings={"reentry": policy}, steps=[email("hi")])
    contact = state([event(at, "signed_up") for at in ("2026-03-02 10:00", "2026-03-20 10:00", "2026-06-10 10:00")])
    decisions = run(j, contact, "2026-07-01")
    assert [at for _, at in sends(decisions)] == [T(x) for x in expected]
    if policy != "always":
        assert any("re-entry not allowed" in d.reason for d in actions(decisions, "skip"))


# ---------------------------------------------------------------- exits and goals


def test_exit_condition_ends_the_enrollment_with_its_index():
    j = journey(steps=[{"wait": "2d"}, email("later")],
                exit=[{"event": "unsubscribed"}, {"attribute": "plan", "equals": "enterprise"}])
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 10:00", "unsubscribed")])
    decisions = run(j, contact, "2026-03-10")
    assert sends(decisions) == []
    assert actions(decisions, "exit")[0].reason.startswith("exit:0")


def test_goal_within_window_exits_with_goal_and_late_goal_does_not_count():
    j = journey(steps=[{"wait": "30d"}, email("late")], goal={"event": "purchased", "within": "7d"})
    in_time = run(j, state([event("2026-03-02 10:00", "signed_up"), event("2026-03-05 10:00", "purchased")]), "2026-05-01")
    assert [d.action for d in in_time if d.action in ("goal", "exit")] == ["goal", "exit"]
    assert actions(in_time, "exit")[0].reason == "goal"
    too_late = run(j, state([event("2026-03-02 10:00", "signed_up"), event("2026-03-20 10:00", "purchased")]), "2026-05-01")
    assert actions(too_late, "goal") == [] and sends(too_late) == [("late", T("2026-04-01 10:00"))]


def test_goal_without_exit_keeps_going():
    j = journey(steps=[{"wait": "3d"}, email("after")], goal={"event": "purchased", "exit_on_goal": False})
    decisions = run(j, state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 10:00", "purchased")]), "2026-03-10")
    assert len(actions(decisions, "goal")) == 1 and sends(decisions) == [("after", T("2026-03-05 10:00"))]


def test_exit_step_records_its_reason():
    j = journey(steps=[email("a"), {"exit": "done_here"}, email("never")])
    decisions = run(j, state([event("2026-03-02 10:00", "signed_up")]), "2026-03-03")
    assert [s for s, _ in sends(decisions)] == ["a"] and actions(decisions, "exit")[0].reason == "done_here"


# ---------------------------------------------------------------- waits


def test_wait_until_next_local_time_and_weekday():
    j = journey(steps=[{"wait_until": {"time": "10:00", "days": ["tue"]}}, email("tuesday")])
    # Wed 4 March 2026 in Tokyo: the next Tuesday 10:00 JST is 10 March 01:00 UTC
    contact = state([event("2026-03-04 03:00", "signed_up")], timezone_name="Asia/Tokyo")
    assert sends(run(j, contact, "2026-03-20")) == [("tuesday", T("2026-03-10 01:00"))]


def wait_for_journey():
    return journey(steps=[
        {"id": "w", "wait_for": {"event": "email_clicked", "where": {"journey": "j"}, "timeout": "3d"},
         "on_event": [email("thanks")], "on_timeout": [email("nudge")]},
        email("after_both"),
    ])


def test_wait_for_event_path_then_continues_after_the_step():
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 12:00", "email_clicked", journey="other"),
                     event("2026-03-04 12:00", "email_clicked", journey="j")])
    decisions = run(wait_for_journey(), contact, "2026-03-10")
    assert sends(decisions) == [("thanks", T("2026-03-04 12:00")), ("after_both", T("2026-03-04 12:00"))]
    assert actions(decisions, "event_path") and not actions(decisions, "timeout_path")


def test_wait_for_timeout_path():
    decisions = run(wait_for_journey(), state([event("2026-03-02 10:00", "signed_up")]), "2026-03-10")
    assert sends(decisions) == [("nudge", T("2026-03-05 10:00")), ("after_both", T("2026-03-05 10:00"))]


# ---------------------------------------------------------------- branches and splits


def test_branch_takes_first_matching_case_else_otherwise():
    j = journey(steps=[{"id": "b", "branch": {
        "cases": [{"if": {"attribute": "size", "gte": 200}, "steps": [email("big")]},
                  {"if": {"attribute": "size", "gte": 10}, "steps": [email("medium")]}],
        "else": [email("small")]}}, email("all")])
    picks = {}
    for size in (500, 50, 1):
        decisions = run(j, state([event("2026-03-02 10:00", "signed_up")], size=size), "2026-03-03")
        picks[size] = [s for s, _ in sends(decisions)]
    assert picks == {500: ["big", "all"], 50: ["medium", "all"], 1: ["small", "all"]}


def split_journey(version: int = 1, holdout: int = 20):
    return journey(version=version, steps=[{"id": "ab", "split": {"holdout": holdout, "variants": [
        {"name": "a", "weight": 40, "steps": [email("mail_a")]},
        {"name": "b", "weight": 100 - 40 - holdout, "steps": [email("mail_b")]}]}}, email("common")])


def test_split_assignment_is_stable_across_versions_and_holdout_gets_nothing():
    seen = {"a": 0, "b": 0, "holdout": 0}
    for n in range(60):
        contact_id = f"c{n}"
        v1 = run(split_journey(1), state([event("2026-03-02 10:00", "signed_up")], contact_id=contact_id), "2026-03-03")
        v2 = run(split_journey(2), state([event("2026-03-02 10:00", "signed_up")], contact_id=contact_id), "2026-03-03")
        variant = next(d.detail["variant"] for d in v1 if d.action in ("split", "holdout"))
        assert variant == next(d.detail["variant"] for d in v2 if d.action in ("split", "holdout"))
        bucket = split_bucket(contact_id, "j", "ab")
        assert variant == ("holdout" if bucket < 20 else "a" if bucket < 60 else "b")
        seen[variant] += 1
        if variant == "holdout":
            assert sends(v1) == [] and {d.reason for d in actions(v1, "skip")} == {"holdout"}
        else:
            assert [s for s, _ in sends(v1)] == [f"mail_{variant}", "common"]
    assert all(count > 0 for count in seen.values())


def test_holdout_is_counted_in_the_simulation_summary():
    from runner.simulation.simulate import simulate, summarize
    from runner.simulation.testcontacts import TestContact

    contacts = [TestContact(f"c{n}", "UTC", {"email": f"c{n}@x.test"}, [], [{"at": "+1h", "event": "signed_up"}])
                for n in range(40)]
    sim = simulate(project(), [split_journey()], contacts, T("2026-03-02"), T("2026-03-03"))
    summary = summarize(sim)[0]
    expected_holdout = sum(split_bucket(f"c{n}", "j", "ab") < 20 for n in range(40))
    assert summary.holdout == expected_holdout > 0
    assert summary.sent["common"] == 40 - expected_holdout


# ---------------------------------------------------------------- send windows, quiet hours


def test_send_window_defers_to_next_opening_in_contact_zone():
    j = journey(settings={"send_window": {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "18:00"}},
                steps=[email("hi")])
    # Fri 6 March 19:00 Istanbul -> Mon 9 March 09:00 Istanbul (06:00 UTC)
    decisions = run(j, state([event("2026-03-06 16:00", "signed_up")], timezone_name="Europe/Istanbul"), "2026-03-12")
    assert sends(decisions) == [("hi", T("2026-03-09 06:00"))]
    defer = actions(decisions, "defer")[0]
    assert defer.reason == "outside send window" and defer.detail["until"] == T("2026-03-09 06:00").isoformat()


def test_quiet_hours_crossing_midnight():
    j = journey(settings={"quiet_hours": {"from": "21:00", "to": "08:00"}}, steps=[email("hi")])
    for at, expected in (("2026-03-02 23:30", "2026-03-03 08:00"), ("2026-03-03 02:00", "2026-03-03 08:00"),
                         ("2026-03-03 20:59", "2026-03-03 20:59"), ("2026-03-03 08:00", "2026-03-03 08:00")):
        decisions = run(j, state([event(at, "signed_up")]), "2026-03-05")
        assert sends(decisions) == [("hi", T(expected))], at
        if at != expected:
            assert actions(decisions, "defer")[0].reason == "quiet hours"


def test_send_window_crossing_midnight_belongs_to_the_day_it_opened():
    # a Friday-only night window 22:00-02:00: Sat 01:00 is still Friday's window
    j = journey(settings={"send_window": {"days": ["fri"], "from": "22:00", "to": "02:00"}}, steps=[email("night")])
    assert sends(run(j, state([event("2026-03-07 01:00", "signed_up")]), "2026-03-10")) == [("night", T("2026-03-07 01:00"))]
    # Sat 23:00 is not: next opening is Fri 13 March 22:00
    assert sends(run(j, state([event("2026-03-07 23:00", "signed_up")]), "2026-03-20")) == [("night", T("2026-03-13 22:00"))]


@pytest.mark.parametrize("zone, day, utc", [
    ("America/New_York", "2026-03-08", "2026-03-08 13:00"),  # spring forward: EDT (UTC-4) from 02:00
    ("America/New_York", "2026-11-01", "2026-11-01 14:00"),  # fall back: EST (UTC-5) from 02:00
    ("Europe/Berlin", "2026-03-29", "2026-03-29 07:00"),  # CEST (UTC+2) from 02:00
    ("Europe/Berlin", "2026-10-25", "2026-10-25 08:00"),  # CET (UTC+1) from 03:00
])
def test_nine_am_local_send_on_dst_change_days_happens_once_at_the_right_instant(zone, day, utc):
    daily = journey("daily", settings={"reentry": "always"}, stages=[
        {"id": "d", "entry": {"schedule": "0 9 * * *", "timezone": "contact"}, "steps": [email("morning")]}])
    windowed = journey("windowed", settings={"send_window": {"from": "09:00", "to": "18:00"}}, steps=[email("deferred")])
    tz = contact_zone(zone)
    # signed up at 03:00 local on the change day (after the change in both directions)
    signed_up = localize(datetime.combine(date.fromisoformat(day), time(3, 0)), tz)
    contact = state([event(signed_up, "signed_up")], timezone_name=zone)
    start = T(day) - timedelta(days=2)
    decisions = run([daily, windowed], contact, T(day) + timedelta(days=2), start=start)
    mornings = [at for step, at in sends(decisions) if step == "morning"]
    on_day = [at for at in mornings if at.astimezone(tz).date().isoformat() == day]
    assert on_day == [T(utc)]
    assert all(at.astimezone(tz).hour == 9 and at.astimezone(tz).minute == 0 for at in mornings)
    assert len(mornings) == len({at.astimezone(tz).date() for at in mornings}) == 4  # once a day
    assert [at for step, at in sends(decisions) if step == "deferred"] == [T(utc)]


def contact_zone(name):
    from runner.core.localtime import zone

    return zone(name)


def test_calendar_day_wait_keeps_local_time_across_dst():
    j = journey(steps=[{"wait": "1d"}, email("next_day")])
    contact = state([event("2026-03-07 15:00", "signed_up")], timezone_name="America/New_York")  # Sat 10:00 EST
    assert sends(run(j, contact, "2026-03-10")) == [("next_day", T("2026-03-08 14:00"))]  # Sun 10:00 EDT


# ---------------------------------------------------------------- caps


def test_journey_cap_defers_to_when_the_cap_allows():
    j = journey(settings={"frequency_cap": {"max": 1, "per": "1d"}, "on_cap": "defer"},
                steps=[email("a"), email("b")])
    decisions = run(j, state([event("2026-03-02 10:00", "signed_up")]), "2026-03-05")
    assert sends(decisions) == [("a", T("2026-03-02 10:00")), ("b", T("2026-03-03 10:00"))]
    assert actions(decisions, "defer")[0].reason.startswith("frequency cap (journey 1 per 1d)")


def test_journey_cap_skip_records_the_reason():
    j = journey(settings={"frequency_cap": {"max": 1, "per": "1d"}, "on_cap": "skip"}, steps=[email("a"), email("b")])
    decisions = run(j, state([event("2026-03-02 10:00", "signed_up")]), "2026-03-05")
    assert sends(decisions) == [("a", T("2026-03-02 10:00"))]
    assert [d.step for d in actions(decisions, "skip") if d.reason.startswith("frequency cap")] == ["b"]


def test_project_cap_across_journeys_higher_priority_wins_the_last_slot():
    proj = project(frequency_cap={"max": 1, "per": "7d"})
    high = journey("high", settings={"priority": 10, "on_cap": "skip"}, steps=[email("important")])
    low = journey("low", settings={"priority": 1, "on_cap": "defer"}, steps=[email("optional")])
    decisions = run([low, high], state([event("2026-03-02 10:00", "signed_up")]), "2026-03-20", proj=proj)
    assert sends(decisions) == [("important", T("2026-03-02 10:00")), ("optional", T("2026-03-09 10:00"))]
    assert actions(decisions, "defer")[0].reason == "frequency cap (project 1 per 7d)"


# ---------------------------------------------------------------- suppression


@pytest.mark.parametrize("name, reason", [("unsubscribed", "unsubscribed"), ("email_bounced", "bounced"),
                                          ("email_complained", "complained")])
def test_suppression_is_checked_at_send_time(name, reason):
    j = journey(steps=[email("first"), {"wait": "2d"}, email("second")])
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 10:00", name)])
    decisions = run(j, contact, "2026-03-10")
    assert sends(decisions) == [("first", T("2026-03-02 10:00"))]
    assert actions(decisions, "skip")[0].reason == f"suppressed: {reason}"


def test_no_email_address_is_a_skip_not_a_send():
    decisions = run(journey(steps=[email("a")]), state([event("2026-03-02 10:00", "signed_up")], email=None), "2026-03-03")
    assert sends(decisions) == [] and actions(decisions, "skip")[0].reason == "no email address"


# ---------------------------------------------------------------- scores


def scored_project(half_life: str | None = "30d"):
    spec = {"rules": [{"event": "page_viewed", "where": {"path": {"starts_with": "/pricing"}}, "points": 40},
                      {"when": {"attribute": "job_title", "contains": "Director"}, "points": 20}]}
    if half_life:
        spec["decay"] = {"half_life": half_life}
    return project(scores={"lead": spec})


def test_lead_score_with_decay_moves_stage_and_cools_down():
    j = journey(segments={"hot": {"score": "lead", "gte": 50}}, stages=[
        {"id": "nurture", "entry": {"event": "signed_up"}, "steps": []},
        {"id": "hot", "entry": {"segment": "hot"}, "steps": [email("call_me")]},
        {"id": "cold", "entry": {"condition": {"all": [{"not": {"segment": "hot"}}, {"stage": "hot"}]}},
         "steps": [email("cooled")]},
    ])
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 10:00", "page_viewed", path="/pricing")],
                    job_title="IT Director")
    decisions = run(j, contact, "2026-04-30", proj=scored_project())
    assert [m.stage for m in actions(decisions, "move")] == ["hot", "cold"]
    cooled = [at for step, at in sends(decisions) if step == "cooled"][0]
    # 20 + 40 * 0.5^(t/30d) < 50  <=>  t > 30d * log2(4/3) ~ 12.45 days after the pricing view
    assert T("2026-03-15 20:00") < cooled < T("2026-03-16 00:00")


def test_score_without_decay_is_constant():
    engine = Engine(scored_project(None), [journey()])
    contact = state([event("2026-03-03 10:00", "page_viewed", path="/pricing/team")], job_title="Director")
    engine.advance(contact, T("2026-06-01"), start=T("2026-03-02"))
    from runner.simulation.explain import _facts_source

    assert _facts_source(engine, contact, T("2026-06-01")).score("lead") == 60


# ---------------------------------------------------------------- identity


def test_anonymous_events_count_once_identified():
    j = journey(segments={"researcher": {"event": "page_viewed", "count": {"gte": 3}}},
                stages=[{"id": "r", "entry": {"segment": "researcher"}, "steps": [email("guide")]}])
    anon = [event(f"2026-03-0{d} 10:00", "page_viewed", anonymous_id="anon-1") for d in (2, 3, 4)]
    not_linked = state(anon)
    assert sends(run(j, not_linked, "2026-03-10")) == []
    linked = state(anon + [event("2026-03-06 12:00", "identify", anonymous_id="anon-1", first_name="Ada")])
    decisions = run(j, linked, "2026-03-10")
    assert sends(decisions) == [("guide", T("2026-03-06 12:00"))]
    assert linked.contact.attributes["first_name"] == "Ada" and "anon-1" in linked.contact.anonymous_ids


# ---------------------------------------------------------------- migrations


def test_migration_restart_moves_in_flight_contacts_to_the_new_version():
    v1 = journey(version=1, steps=[email("old_welcome"), {"wait": "5d"}, email("old_followup")])
    v2 = journey(version=2, steps=[email("new_welcome"), {"wait": "5d"}, email("new_followup")],
                 migration={"from": 1, "strategy": "restart"})
    contact = state([event("2026-03-02 10:00", "signed_up")])
    Engine(project(), [v1]).advance(contact, T("2026-03-03"), start=T("2026-03-02"))
    decisions = Engine(project(), [v2], pinned=[v1]).advance(contact, T("2026-03-20")).decisions
    assert actions(decisions, "migrate")[0].reason == "v1 -> v2 (restart)"
    assert [s for s, _ in sends(decisions)] == ["new_welcome", "new_followup"]


def test_without_migration_contacts_stay_on_their_version():
    v1 = journey(version=1, steps=[email("old_welcome"), {"wait": "5d"}, email("old_followup")])
    v2 = journey(version=2, steps=[email("new_welcome"), {"wait": "5d"}, email("new_followup")])
    contact = state([event("2026-03-02 10:00", "signed_up")])
    Engine(project(), [v1]).advance(contact, T("2026-03-03"), start=T("2026-03-02"))
    decisions = Engine(project(), [v2], pinned=[v1]).advance(contact, T("2026-03-20")).decisions
    assert [(d.step, d.version) for d in actions(decisions, "send")] == [("old_followup", 1)]


def test_migration_map_moves_the_cursor_to_the_mapped_step():
    v1 = journey(version=1, steps=[email("a"), {"id": "pause", "wait": "5d"}, email("b")])
    v2 = journey(version=2, steps=[email("a"), {"id": "pause2", "wait": "5d"}, email("b2")],
                 migration={"from": 1, "map": {"b": "b2"}})
    contact = state([event("2026-03-02 10:00", "signed_up")])
    Engine(project(), [v1]).advance(contact, T("2026-03-03"), start=T("2026-03-02"))
    decisions = Engine(project(), [v2], pinned=[v1]).advance(contact, T("2026-03-20")).decisions
    assert [s for s, _ in sends(decisions)] == ["b2"]


def test_migration_map_of_a_contact_waiting_in_wait_for_continues_at_the_mapped_step():
    # the contact waits in `w` (its cursor) on v1; v2 maps `w` to the new `survey` step
    waiting = {"id": "w", "wait_for": {"event": "email_clicked", "timeout": "3d"}, "on_timeout": [email("nudge")]}
    v1 = journey(version=1, steps=[email("a"), waiting, email("b")])
    v2 = journey(version=2, steps=[email("a"), waiting, email("survey"), email("b")],
                 migration={"from": 1, "map": {"w": "survey"}})
    contact = state([event("2026-03-02 10:00", "signed_up")])
    Engine(project(), [v1]).advance(contact, T("2026-03-03"), start=T("2026-03-02"))
    decisions = Engine(project(), [v2], pinned=[v1]).advance(contact, T("2026-03-20")).decisions
    assert actions(decisions, "migrate")[0].reason == "v1 -> v2 (map)"
    # not the old wait's timeout path (nudge): the mapped step, then what follows it
    assert [s for s, _ in sends(decisions)] == ["survey", "b"]
    assert not actions(decisions, "timeout_path", "event_path")


def test_migration_map_of_a_wait_for_whose_step_is_gone_does_not_crash():
    waiting = {"id": "w", "wait_for": {"event": "email_clicked", "timeout": "3d"}}
    v1 = journey(version=1, steps=[email("a"), waiting, email("b")])
    v2 = journey(version=2, steps=[email("a"), email("survey"), email("b")],
                 migration={"from": 1, "map": {"w": "survey"}})
    contact = state([event("2026-03-02 10:00", "signed_up")])
    Engine(project(), [v1]).advance(contact, T("2026-03-03"), start=T("2026-03-02"))
    decisions = Engine(project(), [v2], pinned=[v1]).advance(contact, T("2026-03-20")).decisions
    assert [s for s, _ in sends(decisions)] == ["survey", "b"]


# ---------------------------------------------------------------- skips, keys


def test_step_condition_false_is_recorded_as_a_skip():
    j = journey(steps=[email("only_tr", **{"if": {"attribute": "country", "equals": "TR"}}), email("all")])
    decisions = run(j, state([event("2026-03-02 10:00", "signed_up")], country="JP"), "2026-03-03")
    assert actions(decisions, "skip")[0].reason.startswith("condition false: country equals 'TR'")
    assert [s for s, _ in sends(decisions)] == ["all"]


def test_send_keys_and_details():
    decisions = run(journey(steps=[email("a")]), state([event("2026-03-02 10:00", "signed_up")], first_name="Ada"), "2026-03-03")
    send = actions(decisions, "send")[0]
    assert send.key == "c1:j:1/1/a"
    assert send.detail["attributes"]["first_name"] == "Ada" and send.detail["to"] == "c1@example.com"


def test_fast_decision_is_the_dataclass_decision():
    # the engine builds decisions without the frozen dataclass __init__ (see _decision)
    from dataclasses import fields

    from runner.core.engine import Decision, _decision
    values = (T("2026-03-02 10:00"), "c", "j", 2, "s", "step", "send", "why", "k", {"until": "x"})
    built = _decision(*values)
    assert built == Decision(*values)
    assert [f.name for f in fields(Decision)] == list(vars(built))


def test_remembered_iso_texts_keep_the_zone_apart():
    # equal instants in two zones are one dict key: only UTC ones are remembered
    from zoneinfo import ZoneInfo

    from runner.core.steps import iso_text as _iso
    utc = T("2026-03-02 06:00")
    local = utc.astimezone(ZoneInfo("Europe/Istanbul"))
    assert [_iso(utc), _iso(local), _iso(utc)] == [utc.isoformat(), "2026-03-02T09:00:00+03:00", utc.isoformat()]
