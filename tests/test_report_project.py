"""A small project the review tests share (graph, diff, render, report, markdown).

Written to a temporary folder per test: two stages, an update before an
email (so the attributes at send time differ from the initial ones), a split
with a holdout, a wait_for with both paths, a branch, an exit step, exit
rules and a goal, and step ids that are Mermaid keywords (``end``, ``o``,
``x``) plus a subject full of characters that break Mermaid labels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_YAML = """\
name: Trial Co
sender: {from: "Trial Co <hello@trial.test>"}
default_timezone: UTC
unsubscribe: {url: "https://trial.test/unsubscribe", mailto: "unsubscribe@trial.test"}
"""

HOSTILE_SUBJECT = 'Hi {{ contact.first_name }} "quoted" <b>#1; `x` | end'

TRIAL_JOURNEY = """\
# yaml-language-server: $schema=../schemas/journey.schema.json
id: trial
version: 1
name: Trial
settings:
  send_window: {from: "08:00", to: "20:00"}
stages:
  - id: start
    entry: {event: signed_up}
    steps:
      - id: tag
        update: {set: {hint: from-update}}
      - id: welcome
        email: {template: welcome, subject: 'Hi {{ contact.first_name }} "quoted" <b>#1; `x` | end'}
      - wait: 2d
      - id: ab
        split:
          variants:
            - {name: a, weight: 45, steps: [{id: tip_a, email: {template: welcome, subject: "A"}}]}
            - {name: b, weight: 45, steps: [{id: tip_b, email: {template: welcome, subject: "B"}}]}
          holdout: 10
      - id: end
        wait_for: {event: clicked, timeout: 3d}
        on_event: [{id: o, email: {template: welcome, subject: "Thanks"}}]
        on_timeout: [{id: x, exit: no_click}]
  - id: paid
    entry: {event: purchased}
    steps:
      - id: route
        branch:
          cases: [{if: {attribute: plan, equals: pro}, steps: [{id: pro_mail, email: {template: welcome, subject: "Pro"}}]}]
          else: [{wait: 1d}]
exit: [{event: unsubscribed}]
goal: {event: upgraded, within: 30d}
"""

WELCOME_HTML = """\
<html><body><p>Hello {{ contact.first_name }}, hint={{ contact.hint|default('none') }}</p>
<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>
"""
WELCOME_TXT = """\
Hello {{ contact.first_name }}, hint={{ contact.hint|default('none') }}
Unsubscribe: {{ unsubscribe_url }}
"""

CONTACTS = """\
contacts:
  - id: ann
    attributes: {email: ann@example.com, first_name: Ann}
    events: [{at: "+0d 10:00", event: signed_up}, {at: "+3d 10:00", event: clicked}]
  - id: bob
    attributes: {email: bob@example.com, first_name: Bob}
    events: [{at: "+0d 11:00", event: signed_up}]
  - id: cat
    attributes: {email: cat@example.com, first_name: Cat, plan: pro}
    events: []
"""


def write_trial_project(root: Path) -> Path:
    """Write the project under ``root``; returns root."""
    (root / "journeys").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(exist_ok=True)
    (root / "examples").mkdir(exist_ok=True)
    (root / "project.yaml").write_text(PROJECT_YAML, encoding="utf-8")
    (root / "journeys" / "trial.yaml").write_text(TRIAL_JOURNEY, encoding="utf-8")
    (root / "templates" / "welcome.html").write_text(WELCOME_HTML, encoding="utf-8")
    (root / "templates" / "welcome.txt").write_text(WELCOME_TXT, encoding="utf-8")
    (root / "examples" / "contacts.yaml").write_text(CONTACTS, encoding="utf-8")
    return root


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_journey(args: list[str], cwd: Path, env: dict[str, str] | None = None, *, process: bool = False) -> Ran:
    """Run the CLI in ``cwd``: in-process with click's runner (fast), or as a real subprocess.

    ``process=True`` runs ``python -m runner`` as CI does: the only way to
    see what a user sees when something escapes (a traceback, an exit code).
    """
    environment = {"JOURNEY_UNSUBSCRIBE_SECRET": None, **(env or {})}
    if process:
        full = {k: v for k, v in os.environ.items() if k != "JOURNEY_UNSUBSCRIBE_SECRET"}
        full.update(env or {})
        done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True,
                              env=full, timeout=120)
        return Ran(done.returncode, done.stdout, done.stderr)
    from click.testing import CliRunner

    from runner.cli import main

    previous = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, args, env=environment, prog_name="journey")
    finally:
        os.chdir(previous)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def test_the_shared_project_is_valid(tmp_path: Path) -> None:
    write_trial_project(tmp_path)
    result = run_journey(["validate"], tmp_path, process=True)
    assert result.returncode == 0, result.stdout + result.stderr
