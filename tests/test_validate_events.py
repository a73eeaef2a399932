"""`journey validate` on the event in templates and on suppress steps and project exits (issue #13 §2, §3).

A small project is written per test: a cart journey whose templates read ``event``, a
tracking plan that types the event's properties. Reading ``event`` in a step no event
starts is an error at the template's line naming the step; a property none of the step's
events declares is a warning with the nearest declared name; the subprocess run shows
them as file:line:col with a non-zero exit and no traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runner.language.loader import load_project

PROJECT = """\
name: Shop
exit:
  - {event: account_closed}
tracking_plan:
  attributes:
    email: {type: string, format: email}
    first_name: string
    plan: string
  events:
    cart_abandoned:
      properties: {items: list, total: number, currency: string}
    email_clicked:
      properties: {url: string}
    account_closed:
      properties: {reason: string}
"""

JOURNEY = """\
id: cart
version: 1
name: Cart
stages:
  - id: reminder
    entry: {event: cart_abandoned}
    steps:
      - wait: 1h
      - id: reminder_email
        email: {template: reminder, subject: "Your cart: {{ event.properties.total }}"}
      - id: wait_click
        wait_for: {event: email_clicked, timeout: 1d}
        on_event:
          - id: thanks
            email: {template: thanks, subject: "Thanks"}
        on_timeout:
          - id: nudge
            email: {template: nudge, subject: "Nudge"}
      - suppress: {reason: sunset}
  - id: upsell
    entry: {attribute_changed: plan}
    steps:
      - id: upsell_email
        email: {template: upsell, subject: "Hello {{ contact.first_name }}"}
"""

TEMPLATES = {
    "reminder.html": "<p>{{ event.properties.currency }} {{ event.properties.total }}</p>\n"
                     "{% for item in event.properties['items'] %}{{ item }}{% endfor %}",
    "thanks.html": "<p>Thanks for {{ event.properties.url }} at {{ event.timestamp }}</p>",
    "nudge.html": "<p>Still {{ event.properties.total }}?</p>",
    "upsell.html": "<p>Hi {{ contact.first_name }}</p>",
}


def _write(root: Path, journey: str = JOURNEY, project: str = PROJECT, **templates: str) -> Path:
    (root / "journeys").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "project.yaml").write_text(project)
    (root / "journeys" / "cart.yaml").write_text(journey)
    for name, text in {**TEMPLATES, **templates}.items():
        (root / "templates" / name).write_text(text)
    return root


def _problems(root: Path) -> list[tuple[str, int, str, str, str]]:
    loaded = load_project(root)
    return [(Path(p.file).name, p.line, p.code, p.severity, p.message) for p in loaded.problems]


def test_a_project_that_uses_the_event_where_events_start_steps_is_clean(tmp_path):
    assert _problems(_write(tmp_path)) == []


def test_a_property_the_event_does_not_declare_is_a_warning_with_the_nearest_name(tmp_path):
    root = _write(tmp_path, **{"reminder.html": "<p>{{ event.properties.currency }}</p>\n<p>{{ event.properties.totl }}</p>"})
    assert _problems(root) == [(
        "reminder.html", 2, "template.event-property", "warning",
        "step `reminder_email`: `event.properties.totl` is not a property of `cart_abandoned` in the tracking plan; "
        "did you mean `event.properties.total`?")]


def test_the_answer_of_a_wait_for_is_the_event_of_its_on_event_steps(tmp_path):
    root = _write(tmp_path, **{"thanks.html": "<p>{{ event.properties.total }}</p>"})
    ((file, line, code, severity, message),) = _problems(root)
    assert (file, line, code, severity) == ("thanks.html", 1, "template.event-property", "warning")
    assert "`event.properties.total` is not a property of `email_clicked`" in message and "step `thanks`" in message


def test_a_step_no_event_starts_may_not_read_the_event(tmp_path):
    root = _write(tmp_path, **{"upsell.html": "<p>Hi</p>\n<p>{{ event.name }}</p>"})
    ((file, line, code, severity, message),) = _problems(root)
    assert (file, line, code, severity) == ("upsell.html", 2, "template.event", "error")
    assert message.startswith("step `upsell_email` reads `event.name`, but no event starts or wakes it")
    guarded = _write(tmp_path / "guarded", **{"upsell.html": "{% if event is defined %}{{ event.name }}{% endif %}"})
    assert _problems(guarded) == []


def test_a_subject_is_checked_at_its_place_in_the_journey(tmp_path):
    journey = JOURNEY.replace('subject: "Hello {{ contact.first_name }}"', 'subject: "Hi {{ event.properties.total }}"')
    journey = journey.replace('subject: "Your cart: {{ event.properties.total }}"', 'subject: "Cart {{ event.properties.totals }}"')
    found = _problems(_write(tmp_path, journey))
    assert [(f, line, code) for f, line, code, _, _ in found] == [
        ("cart.yaml", 10, "template.event-property"), ("cart.yaml", 24, "template.event")]
    assert "did you mean `event.properties.total`?" in found[0][4]


def test_an_unknown_key_of_event_is_a_template_variable_error(tmp_path):
    root = _write(tmp_path, **{"nudge.html": "<p>{{ event.nmae }}</p>"})
    ((file, _, code, severity, message),) = _problems(root)
    assert (file, code, severity) == ("nudge.html", "template.variable", "error")
    assert "did you mean `name`?" in message


def test_suppress_steps_and_project_exits_are_checked(tmp_path):
    journey = JOURNEY.replace("suppress: {reason: sunset}", "suppress: {reason: Sunset Now}")
    project = PROJECT.replace("  - {event: account_closed}", "  - {event: acount_closed}\n  - {stage: reminder}")
    found = _problems(_write(tmp_path, journey, project))
    assert [(f, line, code) for f, line, code, _, _ in found] == [
        ("cart.yaml", 19, "schema.pattern"), ("project.yaml", 3, "plan.event"), ("project.yaml", 4, "ref.stage")]
    assert found[0][4].startswith("`Sunset Now` is not valid for step 4 in stage `reminder` (suppress.reason): "
                                  "A short lowercase word")
    assert found[1][4] == "event `acount_closed` is not in the tracking plan; did you mean `account_closed`?"


def test_the_cli_shows_file_line_col_and_exits_non_zero_without_a_traceback(tmp_path):
    root = _write(tmp_path, **{"upsell.html": "<p>{{ event.properties.total }}</p>"})
    result = subprocess.run([sys.executable, "-m", "runner", "validate"], cwd=root, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "templates/upsell.html:1:1: error[template.event] step `upsell_email` reads `event.properties.total`" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_an_update_step_moving_contacts_into_an_event_stage_warns_that_some_have_no_event(tmp_path):
    """A move by an update step brings no event (the engine gives it none): the stage's steps may run without one."""
    journey = JOURNEY.replace('''        email: {template: upsell, subject: "Hello {{ contact.first_name }}"}''',
                              '''        email: {template: upsell, subject: "Hello {{ contact.first_name }}"}
      - id: back
        branch:
          cases:
            - if: {attribute: plan, equals: pro}
              steps:
                - id: to_reminder
                  update: {stage: reminder}''')
    found = _problems(_write(tmp_path, journey))
    # the reminder and the timeout's nudge may run with none; the click's thanks always has its click
    assert [(f, line, code, severity) for f, line, code, severity, _ in found] == [
        ("cart.yaml", 10, "template.event", "warning"), ("nudge.html", 1, "template.event", "warning"),
        ("reminder.html", 1, "template.event", "warning")]
    assert "on some paths no event reaches it" in found[2][4] and "`cart_abandoned`" in found[2][4]


def test_a_webhooks_payload_strings_are_checked_as_templates_reading_the_event(tmp_path):
    """A webhook's payload strings are rendered with the same context as an email (``event``
    included): a property no event of the step declares warns, a step no event starts may not
    read it, each at the string's place in the journey; nested mappings and lists too."""
    journey = JOURNEY.replace('''      - suppress: {reason: sunset}''', '''      - id: crm
        webhook:
          url: https://crm.example.com/hook
          payload:
            cart: {total: "{{ event.properties.totl }}", currency: "{{ event.properties.currency }}"}
            lines: ["{{ event.name }}", "{{ event.properties.itemz }}"]
      - suppress: {reason: sunset}''').replace('''        email: {template: upsell, subject: "Hello {{ contact.first_name }}"}''',
                                               '''        email: {template: upsell, subject: "Hello {{ contact.first_name }}"}
      - id: crm_upsell
        webhook: {url: https://crm.example.com/hook, payload: {why: "{{ event.name }}", plan: "{{ contact.plan }}"}}
      - id: crm_guarded
        webhook: {url: https://crm.example.com/hook, payload: {why: "{{ event.name if event is defined }}"}}''')
    found = _problems(_write(tmp_path, journey))
    assert [(f, line, code, severity) for f, line, code, severity, _ in found] == [
        ("cart.yaml", 23, "template.event-property", "warning"), ("cart.yaml", 24, "template.event-property", "warning"),
        ("cart.yaml", 32, "template.event", "error")]
    assert "step `crm`: `event.properties.totl` is not a property of `cart_abandoned`" in found[0][4]
    assert "did you mean `event.properties.total`?" in found[0][4]
    assert "`event.properties.itemz`" in found[1][4] and "did you mean `event.properties.items`?" in found[1][4]
    assert found[2][4].startswith("step `crm_upsell` reads `event.name`, but no event starts or wakes it")
    result = subprocess.run([sys.executable, "-m", "runner", "validate"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "journeys/cart.yaml:32:" in result.stdout and "error[template.event] step `crm_upsell`" in result.stdout


def test_a_webhooks_payload_strings_get_the_template_checks_a_subject_gets(tmp_path):
    """A payload string is rendered like a subject: its syntax errors and unknown names are
    reported at its place in the journey (the column inside the quoted text)."""
    journey = JOURNEY.replace('''      - suppress: {reason: sunset}''', '''      - id: crm
        webhook: {url: https://crm.example.com/hook, payload: {a: "{{ event.name }", b: ["{{ evnt.name }}"]}}
      - suppress: {reason: sunset}''')
    root = _write(tmp_path, journey)
    problems = [(p.line, p.col, p.code) for p in load_project(root).problems]
    line = journey.splitlines().index(next(t for t in journey.splitlines() if "evnt" in t)) + 1
    text = journey.splitlines()[line - 1]
    assert problems == [(line, text.index("{{ event.name }") + len("{{ event.name ") + 1, "template.syntax"),
                        (line, text.index('"{{ evnt') + 2, "template.variable")]
