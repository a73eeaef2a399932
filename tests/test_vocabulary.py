"""The built-in names (runner/core/vocabulary.py): each documented built-in event has its
documented effect, the docs list exactly the vocabulary, and the engine decides nothing outside it."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
from test_engine_kit import T, actions, email, event, journey, run, sends, state

from runner.core import vocabulary
from runner.core.vocabulary import ACTIONS, BUILTIN_EVENTS, SUPPRESSING_EVENTS, TIMELINE_ACTIONS
from runner.language.loader import validate

ROOT = Path(__file__).resolve().parent.parent
SERIES = journey(steps=[email("first"), {"wait": "2d"}, email("second")])


def _table_names(markdown: str, heading: str) -> list[str]:
    """The backticked names in the first column of the first table under ``heading``."""
    section = markdown.split(heading, 1)[1]
    rows = [line for line in section.split("\n\n| ", 1)[0].splitlines() if line.startswith("| ")]
    if not rows:  # the table follows a paragraph
        table = section[section.index("\n| "):].split("\n\n", 1)[0]
        rows = [line for line in table.splitlines() if line.startswith("| ")]
    names = []
    for row in rows[2:]:  # past the header and the --- line
        names += re.findall(r"`([a-z_]+)`", row.split("|")[1])
    return names


def test_the_docs_list_exactly_the_built_in_events():
    names = _table_names((ROOT / "docs" / "data.md").read_text(), "### Built-in events")
    assert len(names) == len(set(names))
    assert set(names) == BUILTIN_EVENTS


def test_the_docs_list_exactly_the_decision_actions():
    names = _table_names((ROOT / "docs" / "simulate.md").read_text(), "### What the timeline shows")
    assert len(names) == len(set(names))
    assert set(names) == set(TIMELINE_ACTIONS)


def test_the_engine_takes_no_action_outside_the_vocabulary():
    """Every action literal the core decides (``_decide…(…, action, …)`` calls) is a vocabulary action."""
    found = set()
    for path in (ROOT / "runner" / "core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if "decide" not in name and name != "_decision":
                continue
            arguments = [*node.args[3:4], *(k.value for k in node.keywords if k.arg == "action")]
            if name == "_decision":
                arguments = [*node.args[6:7], *(k.value for k in node.keywords if k.arg == "action")]
            found |= {a.value for a in arguments if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    assert len(found) >= 15, f"the scan found only {sorted(found)}: did the decision calls change shape?"
    assert found <= set(ACTIONS), sorted(found - set(ACTIONS))


# ---------------------------------------------------------------- each built-in event's effect


@pytest.mark.parametrize("name", sorted(SUPPRESSING_EVENTS))
def test_a_suppressing_event_skips_the_emails_from_its_instant(name):
    contact = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 10:00", name)])
    decisions = run(SERIES, contact, "2026-03-10")
    assert sends(decisions) == [("first", T("2026-03-02 10:00"))]
    (skip,) = actions(decisions, "skip")
    assert (skip.step, skip.at, skip.reason) == ("second", T("2026-03-04 10:00"), f"suppressed: {SUPPRESSING_EVENTS[name]}")
    assert contact.suppressed_by(T("2026-03-03 09:59")) is None


@pytest.mark.parametrize("name", vocabulary.IDENTITY_EVENTS)
def test_an_identity_event_links_the_visitor_from_its_instant(name):
    """An anonymous visitor's earlier page view counts for the contact once the identify/alias links it."""
    entered_on_visit = journey(stages=[{"id": "main", "entry": {"event": "page_viewed"}, "steps": [email("hi")]}])
    visit = event("2026-03-02 10:00", "page_viewed", anonymous_id="anon-1")
    linked = state([visit, event("2026-03-04 12:00", name, anonymous_id="anon-1", plan="pro")])
    assert sends(run(entered_on_visit, linked, "2026-03-10")) == [("hi", T("2026-03-04 12:00"))]
    assert run(entered_on_visit, state([visit]), "2026-03-10") == []
    # identify's properties are traits merged into the contact's attributes; alias has none
    assert linked.contact.attributes.get("plan") == ("pro" if name in vocabulary.TRAIT_EVENTS else None)


NO_EFFECT = sorted(BUILTIN_EVENTS - set(SUPPRESSING_EVENTS) - set(vocabulary.IDENTITY_EVENTS))


@pytest.mark.parametrize("name", NO_EFFECT)
def test_the_other_built_in_events_have_no_effect_of_their_own(name):
    plain = state([event("2026-03-02 10:00", "signed_up")])
    with_event = state([event("2026-03-02 10:00", "signed_up"), event("2026-03-03 10:00", name, plan="pro")])
    assert run(SERIES, with_event, "2026-03-10") == run(SERIES, plain, "2026-03-10")
    assert with_event.contact.attributes == plain.contact.attributes and with_event.suppressed is None


def test_every_built_in_event_has_an_effect_test():
    assert set(SUPPRESSING_EVENTS) | set(vocabulary.IDENTITY_EVENTS) | set(NO_EFFECT) == BUILTIN_EVENTS
    assert "email_complained" in SUPPRESSING_EVENTS and "alias" in BUILTIN_EVENTS


def test_journeys_may_use_every_built_in_event_undeclared_and_declared_ones_are_still_checked(tmp_path):
    """The validator's list is the vocabulary: `alias` and `email_complained` were missing or misnamed."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "tests" / "hostile", root, ignore=shutil.ignore_patterns("cases"))
    exits = "".join(f"  - {{event: {name}}}\n" for name in sorted(BUILTIN_EVENTS))
    (root / "journeys" / "builtins.yaml").write_text(
        "id: builtins\nversion: 1\nname: Built-ins\nexit:\n" + exits
        + "  - {event: page_viewed, where: {pth: /pricing}}\n"  # declared in the plan: its properties are checked
        + "stages:\n  - id: main\n    entry: {event: signed_up}\n    steps:\n"
        + "      - id: hello\n        email: {template: welcome, subject: Hi}\n"
    )
    problems = [p for p in validate(root=root).problems if p.file.endswith("builtins.yaml")]
    assert [(p.code, p.message) for p in problems] == [
        ("plan.property", "event `page_viewed` has no property `pth` in the tracking plan; did you mean `path`?")]


@pytest.mark.parametrize("page", ["language.md", "validate.md"])
def test_the_docs_list_exactly_the_built_in_attributes(page):
    text = " ".join((ROOT / "docs" / page).read_text().split())
    listed = text.split("Built-in attributes", 1)[1].split(".", 1)[0].split(";", 1)[0]
    assert set(re.findall(r"`([a-z_]+)`", listed)) == vocabulary.BUILTIN_ATTRIBUTES
