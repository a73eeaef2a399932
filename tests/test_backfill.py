"""Backfills: `journey contacts import --now` makes new contacts due at that instant, so
replaying a past window with `journey run --now` processes contacts that have no events."""

from __future__ import annotations

import json

from test_tick_kit import TINY_PROJECT, journey_cli, tiny_project, write_lines

from runner.store import open_store

TRIAL = """\
id: trial
version: 1
name: Trial
segments:
  trial: {attribute: plan, equals: trial}
stages:
  - id: main
    entry: {segment: trial}
    steps:
      - id: hello
        email: {template: hello, subject: "Hello {{ contact.first_name }}"}
"""
CONTACT = {"id": "ada", "timezone": "UTC", "attributes": {"email": "ada@example.com", "first_name": "Ada", "plan": "trial"}}


def _project(tmp_path):
    root = tiny_project(tmp_path / "project", journeys={"trial": TRIAL}, project=TINY_PROJECT)
    write_lines(root / "contacts.jsonl", [json.dumps(CONTACT)])
    return root


def _replay(root, import_args: list[str]) -> list[tuple]:
    for args in (["contacts", "import", "contacts.jsonl", *import_args], ["deploy"],
                 ["run", "--now", "2026-03-02T10:00:00Z", "--transport", "outbox:outbox"]):
        result = journey_cli([*args, "--db", "journey.db"], cwd=root)
        assert result.returncode == 0, (args, result.stderr)
    with open_store(root / "journey.db") as store:
        return store.conn.execute("SELECT key, scheduled_at, state FROM sends").fetchall()


def test_contacts_imported_with_now_are_processed_by_a_run_at_that_time(tmp_path):
    sends = _replay(_project(tmp_path), ["--now", "2026-03-02T09:00:00Z"])
    assert sends == [("ada:trial:1/1/hello", "2026-03-02T09:00:00.000000+00:00", "sent")]


def test_without_now_the_import_is_due_at_the_wall_clock_and_a_past_run_sees_nothing(tmp_path):
    """Why --now exists: the contact is due at the import's wall clock, after the replayed instant."""
    assert _replay(_project(tmp_path), []) == []


def test_a_bad_now_is_a_usage_error_and_nothing_is_imported(tmp_path):
    root = _project(tmp_path)
    for command in (["contacts", "import", "contacts.jsonl"], ["events", "import", "contacts.jsonl"]):
        result = journey_cli([*command, "--now", "2026-03-02T09:00:00", "--db", "journey.db"], cwd=root)
        assert result.returncode == 2 and "needs a UTC offset" in result.stderr and "Traceback" not in result.stderr
    assert not (root / "journey.db").exists()
