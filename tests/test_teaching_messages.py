"""Messages that teach (issue #13 §5): steps named by id, hints that say what to write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runner.language.loader import validate
from runner.language.schema import duration_hint

HOSTILE = Path(__file__).parent / "hostile"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(HOSTILE, root, ignore=shutil.ignore_patterns("cases"))
    return root


def problems_after(root: Path, old: str, new: str) -> list:
    path = root / "journeys" / "onboarding.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return validate([path], root=root).problems


def test_a_problem_inside_a_step_names_the_step_by_its_id(project: Path):
    found = problems_after(project, 'subject: "Three ideas for you"', 'subjct: "Three ideas for you"')
    messages = [p.message for p in found if p.code == "schema.unknown-key"]
    assert messages and "step `nurture_newsletter`" in messages[0], messages
    assert "stages[" not in messages[0]


def test_a_nested_step_is_named_by_its_own_id(project: Path):
    found = problems_after(project, 'subject: "Did you see this?"', 'subjct: "Did you see this?"')
    messages = [p.message for p in found if p.code == "schema.unknown-key"]
    assert messages and "step `nudge`" in messages[0], messages


def test_a_spelled_out_duration_suggests_the_short_form(project: Path):
    found = problems_after(project, "- wait: 2d", '- wait: "3 days"')
    hints = [p.hint or "" for p in found]
    assert any("3d" in hint for hint in hints), [(p.message, p.hint) for p in found]


def test_a_misspelt_template_suggests_the_nearest_one(project: Path):
    found = problems_after(project, "template: nurture/thanks, subject: \"Thanks\"",
                           "template: nurture/thank, subject: \"Thanks\"")
    [problem] = [p for p in found if p.code == "ref.template"]
    assert "did you mean `nurture/thanks`?" in problem.message


def test_remove_the_quotes_only_when_the_quoted_text_is_a_number(project: Path):
    quoted_number = problems_after(project, "priority: 10", 'priority: "10"')
    assert any("remove the quotes" in (p.hint or "") for p in quoted_number)
    shutil.rmtree(project)
    shutil.copytree(HOSTILE, project, ignore=shutil.ignore_patterns("cases"))
    quoted_word = problems_after(project, "priority: 10", 'priority: "high"')
    assert quoted_word and not any("remove the quotes" in (p.hint or "") for p in quoted_word)


def test_a_comma_inside_a_flow_mapping_gets_a_hint_to_quote_the_text(project: Path):
    found = problems_after(project, 'subject: "Thanks"}', 'subject: Thanks, friend}')
    [problem] = [p for p in found if p.code == "schema.unknown-key"]
    assert "`friend`" in problem.message
    assert problem.hint == 'a comma ends a value inside {…}; quote the text: subject: "Thanks, friend"'


def test_a_comma_cut_in_the_tracking_plan_gets_the_hint(project: Path):
    path = project / "project.yaml"
    text = path.read_text()
    assert "    plan: {type: string}" in text
    path.write_text(text.replace("    plan: {type: string}", "    plan: {type: string, description: e.g. free, pro}"))
    found = validate([path], root=project).problems
    [problem] = [p for p in found if p.code == "schema.unknown-key"]
    assert "`pro`" in problem.message
    assert problem.hint == 'a comma ends a value inside {…}; quote the text: description: "e.g. free, pro"'


def test_a_wait_for_on_the_goal_event_warns_that_the_goal_wins(project: Path):
    found = problems_after(project, "stages:\n", "goal: {event: email_clicked}\nstages:\n")
    [problem] = [p for p in found if p.code == "wait_for.goal"]
    assert problem.severity == "warning"
    assert "step `wait_click`" in problem.message and "never run" in problem.message


def _one_stage(root: Path) -> None:
    """The fixture's onboarding with its education stage only (the stage starts at entry)."""
    path = root / "journeys" / "onboarding.yaml"
    text = path.read_text()
    path.write_text(text[:text.index("  - id: conversion")] + text[text.index("exit:\n"):])


def test_a_wait_that_ends_inside_the_goal_window_warns(project: Path):
    _one_stage(project)
    found = problems_after(project, "goal: {event: purchased, within: 30d}", "goal: {event: email_clicked, within: 30d}")
    [problem] = [p for p in found if p.code == "wait_for.goal"]
    assert problem.severity == "warning"
    # wait 2d, then the wait_for's 3d timeout: it ends 5 days after entry at the latest
    assert "step `wait_click`" in problem.message and "ends at most 5d after entry, inside the goal's 30d" in problem.message
    assert "never run" in problem.message


def test_a_wait_that_can_end_after_the_goal_window_does_not_warn(project: Path):
    _one_stage(project)
    found = problems_after(project, "goal: {event: purchased, within: 30d}", "goal: {event: email_clicked, within: 4d}")
    assert not [p for p in found if p.code == "wait_for.goal"]


def test_a_goal_window_in_a_journey_of_several_stages_does_not_warn(project: Path):
    """A later stage may be entered any time after entry, so no wait is sure to end inside the window."""
    found = problems_after(project, "goal: {event: purchased, within: 30d}", "goal: {event: email_clicked, within: 30d}")
    assert not [p for p in found if p.code == "wait_for.goal"]


def test_the_longest_time_steps_keep_a_contact():
    from datetime import timedelta

    from runner.language.waitspans import latest_end, span

    steps = [
        {"id": "a", "email": {}}, {"wait": "2d"},
        {"id": "b", "branch": {"cases": [{"if": {}, "steps": [{"wait": "1d"}]}], "else": [{"wait": "3h"}]}},
        {"id": "c", "split": {"variants": [{"name": "x", "weight": 100, "steps": [{"wait_until": {"time": "09:00"}}]}]}},
        {"id": "d", "wait_for": {"event": "e", "timeout": "1w"}, "on_event": [{"wait": "1d"}]},
    ]
    assert span(steps[:2]) == timedelta(days=2)
    assert span(steps[:3]) == timedelta(days=3)  # the longer case
    assert span(steps[:4]) == timedelta(days=4, hours=1)  # a wait_until: a day at most, and a clock change
    assert latest_end(steps, 4) == timedelta(days=11, hours=1)  # up to its own timeout
    assert span(steps) == timedelta(days=12, hours=1)  # the event path's wait after the longest wait
    assert span([{"wait_until": {"time": "09:00", "days": ["mon"]}}]) == timedelta(days=7, hours=1)
    assert span([{"sms": {}}]) is None and span([{"wait": "soon"}]) is None  # unknown: no answer, no warning
    assert latest_end([{"id": "d", "wait_for": {"event": "e"}}], 0) is None  # no timeout: waits for ever


def test_a_goal_that_lets_the_contact_stay_does_not_warn(project: Path):
    found = problems_after(project, "stages:\n", "goal: {event: email_clicked, exit_on_goal: false}\nstages:\n")
    assert not [p for p in found if p.code == "wait_for.goal"]


def test_a_step_without_id_is_named_by_its_place_in_its_stage(project: Path):
    found = problems_after(project, "- wait: 2d", "- wait: 2")
    [problem] = [p for p in found if p.code == "schema.type"]
    assert problem.message.startswith("step 2 in stage `education` (wait) must be text"), problem.message


def test_duration_hints_read_any_text_without_failing():
    assert duration_hint("3 days") == "write 3d"
    assert duration_hint("1 day, 12 hours") == "write 1d12h"
    assert duration_hint("2 weeks and 3 days") == "write 2w3d"
    assert duration_hint("9" * 5000 + " days") == f"write {'9' * 5000}d"
    assert duration_hint("3d") is None and duration_hint("soon") is None and duration_hint(3) is None


@pytest.mark.parametrize("source,hint", [
    ("{% if x %}a{% endif", "close the tag with `%}`"),
    ("{{ contact.first_name }", "a value is written {{ … }} and a tag {% … %}"),
    ("{% if x %}a", "add {% endif %} where the `if` block ends"),
    ("{% for x in y %}a{% endif %}", "close `for` with `endfor` before `endif`"),
    ("{{ contact.first_name | upperr }}", "did you mean `upper`?"),
    ("{% iff x %}{% endif %}", "did you mean `if`?"),
    ("{{ 'a }}", "a quoted text is not closed"),
    ("{# note", "close the comment with `#}`"),
])
def test_a_template_syntax_error_says_what_to_write(project: Path, source: str, hint: str):
    template = project / "templates" / "nurture" / "thanks.html"
    template.write_text(source + "\n")
    found = validate([project / "journeys" / "onboarding.yaml"], root=project).problems
    [problem] = [p for p in found if p.code == "template.syntax"]
    assert problem.hint is not None and hint in problem.hint, problem
