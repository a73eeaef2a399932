"""Conditions are data: every operator, event counts and windows, segments, explain and next_change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runner.core.conditions import ConditionError, Facts, compile_condition
from runner.core.state import Contact, Event

UTC = UTC
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def facts(attributes=None, events=(), segments=None, scores=None, stage=None, since=None) -> Facts:
    grouped: dict[str, list[Event]] = {}
    for e in sorted(events, key=lambda e: e.at):
        grouped.setdefault(e.name, []).append(e)
    return Facts(contact=Contact("c", dict(attributes or {}), "UTC"), now=NOW, events=grouped,
                 segments={k: compile_condition(v) for k, v in (segments or {}).items()},
                 score=lambda name: (scores or {}).get(name, 0.0), stage=stage, since=since)


def holds(spec, **kwargs) -> bool:
    return compile_condition(spec).evaluate(facts(**kwargs))


ATTRS = {"source": "newsletter", "size": 250, "title": "IT Director", "tags": ["beta", "vip"],
         "signed_up_at": "2026-01-01T00:00:00Z", "renewal": "2026-03-05", "meddic": {"metrics": "ok"}, "none": None}


@pytest.mark.parametrize("spec, expected", [
    ({"attribute": "source", "equals": "newsletter"}, True),
    ({"attribute": "source", "not_equals": "newsletter"}, False),
    ({"attribute": "missing", "not_equals": "x"}, True),
    ({"attribute": "source", "in": ["ebook", "newsletter"]}, True),
    ({"attribute": "source", "not_in": ["ebook"]}, True),
    ({"attribute": "title", "contains": "director"}, True),
    ({"attribute": "tags", "contains": "vip"}, True),
    ({"attribute": "tags", "contains": "gold"}, False),
    ({"attribute": "title", "starts_with": "IT"}, True),
    ({"attribute": "meddic.metrics", "exists": True}, True),
    ({"attribute": "meddic.champion", "exists": False}, True),
    ({"attribute": "none", "exists": True}, False),
    ({"attribute": "size", "gt": 200}, True),
    ({"attribute": "size", "gte": 250}, True),
    ({"attribute": "size", "lt": 250}, False),
    ({"attribute": "size", "lte": 250}, True),
    ({"attribute": "source", "gt": 3}, False),  # not a number: false, not an error
    ({"attribute": "renewal", "after": "2026-03-01"}, True),
    ({"attribute": "renewal", "before": "2026-03-01"}, False),
    ({"attribute": "renewal", "gte": "2026-03-05"}, True),
    ({"attribute": "signed_up_at", "older_than": "60d"}, True),
    ({"attribute": "signed_up_at", "older_than": "90d"}, False),
    ({"attribute": "renewal", "newer_than": "7d"}, True),
    ({"attribute": "missing", "newer_than": "7d"}, False),
])
def test_attribute_operators(spec, expected):
    assert holds(spec, attributes=ATTRS) is expected


def ev(days_ago: float, name: str = "page_viewed", **props) -> Event:
    return Event(name, NOW - timedelta(days=days_ago), props)


def test_event_counts_windows_and_where():
    history = [ev(40, path="/pricing"), ev(5, path="/pricing/team"), ev(2, path="/blog"), ev(1, "purchased")]
    assert holds({"event": "page_viewed"}, events=history)
    assert holds({"event": "page_viewed", "count": {"equals": 3}}, events=history)
    assert holds({"event": "page_viewed", "within": "30d", "count": {"equals": 2}}, events=history)
    assert holds({"event": "page_viewed", "where": {"path": {"starts_with": "/pricing"}}, "count": {"gte": 2}}, events=history)
    assert holds({"event": "page_viewed", "where": {"path": "/blog"}, "within": "1d", "count": {"equals": 0}}, events=history)
    assert not holds({"event": "signed_up"}, events=history)
    assert holds({"event": "signed_up", "count": {"equals": 0}}, events=history)  # "did not"


def test_boolean_logic_segments_scores_and_stage():
    segments = {"news": {"attribute": "source", "equals": "newsletter"},
                "big_news": {"all": [{"segment": "news"}, {"attribute": "size", "gte": 100}]}}
    assert holds({"segment": "big_news"}, attributes=ATTRS, segments=segments)
    assert holds({"any": [{"attribute": "size", "lt": 1}, {"segment": "news"}]}, attributes=ATTRS, segments=segments)
    assert holds({"not": {"segment": "news"}}, attributes={"source": "ebook"}, segments=segments)
    assert holds({"score": "lead", "gte": 50}, scores={"lead": 50})
    assert not holds({"score": "lead", "gt": 50}, scores={"lead": 50})
    assert holds({"stage": "education"}, stage="education")


def test_exit_facts_ignore_events_before_since():
    history = [ev(5, "unsubscribed")]
    condition = compile_condition({"event": "unsubscribed"})
    assert condition.evaluate(facts(events=history))
    assert not condition.evaluate(facts(events=history, since=NOW - timedelta(days=1)))


def test_explain_says_what_held_and_what_it_saw():
    segments = {"news": {"attribute": "source", "equals": "newsletter"}}
    spec = {"all": [{"segment": "news"}, {"event": "purchased", "within": "30d"}]}
    why = compile_condition(spec).explain(facts(attributes={"source": "ebook"}, segments=segments))
    lines = why.lines()
    assert lines[0] == "✗ all of"
    assert "✗ segment news" in lines[1] and "(is 'ebook')" in lines[2]
    assert "event purchased count gte 1 within 30d (happened 0 times)" in lines[3]


def test_next_change_finds_when_time_alone_flips_a_condition():
    quiet = compile_condition({"all": [{"event": "app_opened"}, {"event": "app_opened", "within": "7d", "count": {"equals": 0}}]})
    f = facts(events=[ev(3, "app_opened")])
    assert not quiet.evaluate(f)
    assert quiet.next_change(f) == NOW + timedelta(days=4)
    older = compile_condition({"attribute": "signed_up_at", "older_than": "80d"})
    assert older.next_change(facts(attributes=ATTRS)) == datetime(2026, 3, 22, tzinfo=UTC) + timedelta(microseconds=1)
    static = compile_condition({"all": [{"attribute": "source", "equals": "x"}, {"event": "purchased"}]})
    assert static.next_change(facts(attributes=ATTRS)) is None


@pytest.mark.parametrize("spec", [
    "source == 'x'", {}, {"attribute": "a", "equals": 1, "in": [1]}, {"frobnicate": 1},
    {"event": "x", "count": {"about": 3}},
])
def test_bad_conditions_are_errors_never_evaluated(spec):
    with pytest.raises(ConditionError):
        compile_condition(spec)


def test_unknown_segment_is_a_condition_error_at_evaluation():
    with pytest.raises(ConditionError):
        holds({"segment": "nope"})


def test_next_change_is_none_when_a_part_that_time_cannot_flip_decides():
    quiet_customer = compile_condition({"all": [
        {"event": "purchased"}, {"event": "app_opened", "within": "7d", "count": {"equals": 0}}]})
    never_bought = facts(events=[ev(3, "app_opened")])
    assert quiet_customer.next_change(never_bought) is None  # stays false until an event comes
    bought = facts(events=[ev(3, "app_opened"), ev(10, "purchased")])
    assert quiet_customer.next_change(bought) == NOW + timedelta(days=4)
    vip_or_recent = compile_condition({"any": [{"attribute": "source", "equals": "newsletter"},
                                               {"event": "page_viewed", "within": "7d"}]})
    assert vip_or_recent.next_change(facts(attributes=ATTRS, events=[ev(1)])) is None  # stays true
    assert vip_or_recent.next_change(facts(events=[ev(1)])) == NOW + timedelta(days=6)


ONE_PASS_SEGMENTS = {
    "news": {"attribute": "source", "equals": "newsletter"},
    "quiet": {"all": [{"event": "app_opened"}, {"event": "app_opened", "within": "7d", "count": {"equals": 0}}]},
    "hot": {"score": "lead", "gte": 50},
}


@pytest.mark.parametrize("spec", [
    {"attribute": "signed_up_at", "older_than": "80d"},
    {"attribute": "renewal", "newer_than": "7d"},
    {"event": "app_opened", "within": "7d", "count": {"equals": 0}},
    {"event": "page_viewed", "where": {"path": {"starts_with": "/pricing"}}, "within": "30d", "count": {"gte": 2}},
    {"segment": "quiet"},
    {"not": {"segment": "quiet"}},
    {"not": {"segment": "news"}},
    {"all": [{"segment": "news"}, {"segment": "quiet"}]},
    {"any": [{"segment": "news"}, {"event": "page_viewed", "within": "7d"}, {"segment": "hot"}]},
    {"all": [{"segment": "hot"}, {"any": [{"segment": "quiet"}, {"attribute": "signed_up_at", "older_than": "80d"}]}]},
    {"any": [{"all": [{"event": "purchased"}, {"segment": "quiet"}]}, {"not": {"segment": "hot"}}]},
])
@pytest.mark.parametrize("attributes", [ATTRS, {"source": "ebook"}])
@pytest.mark.parametrize("history", [
    [], [ev(3, "app_opened")], [ev(3, "app_opened"), ev(10, "purchased"), ev(1, path="/pricing"), ev(5, path="/pricing/x")],
])
@pytest.mark.parametrize("since", [None, NOW - timedelta(days=4)])
def test_evaluate_with_change_is_evaluate_and_next_change(spec, attributes, history, since):
    condition = compile_condition(spec)

    def fresh():  # fresh facts each time: segment truths are memoised in them
        f = facts(attributes=attributes, events=history, segments=ONE_PASS_SEGMENTS, scores={"lead": 60}, since=since)
        f.score_change = lambda name, threshold=None: NOW + timedelta(days=2)
        return f

    assert condition.evaluate_with_change(fresh()) == (condition.evaluate(fresh()), condition.next_change(fresh()))
    warmed = fresh()
    condition.evaluate(warmed)  # segment truths already known
    assert condition.evaluate_with_change(warmed) == (condition.evaluate(fresh()), condition.next_change(fresh()))


def test_prepared_matchers_answer_like_the_operator_checks():
    """Matcher.matches is prepared per operator and expected value; it must agree with _CHECKS."""
    from datetime import date

    from runner.core.conditions import _CHECKS, ATTRIBUTE_OPERATORS, NOT_SET, Matcher

    def reference(op, expected, value):
        if op == "exists":
            return (value is not NOT_SET and value is not None) == bool(expected)
        if value is NOT_SET or value is None:
            return op in ("not_equals", "not_in")
        return _CHECKS[op](value, expected, NOW)

    def outcome(call):
        try:
            return call()
        except Exception as error:  # the same error, raised at the same value
            return type(error)

    values = [NOT_SET, None, 0, 3, 3.5, -1, True, False, "3", "IT Director", "VP Sales", "x@gmail.com", "",
              ["beta", "vip"], ("vip",), {"vip"}, {"a": 1}, "2026-01-01", "2026-03-09T12:00:00Z",
              date(2026, 3, 1), datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 9)]
    expecteds = [0, 1, 3, 2.5, True, False, None, "3", "director", "VP", "@gmail.", "vip", ["vip", 3], (), "2026-03-01",
                 "7d", "60d", date(2026, 3, 1), datetime(2026, 3, 9, tzinfo=UTC)]
    for op in ATTRIBUTE_OPERATORS:
        for expected in expecteds:
            if op in ("older_than", "newer_than") and expected not in ("7d", "60d", 3, 0):
                continue  # a duration is required (the schema says so); other values are errors either way
            matcher = Matcher(op, expected)
            for value in values:
                got = outcome(lambda: matcher.matches(value, NOW))  # noqa: B023 - called at once
                want = outcome(lambda: reference(op, expected, value))  # noqa: B023 - called at once
                assert got == want and type(got) is type(want), (op, expected, value, got, want)
