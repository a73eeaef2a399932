"""`journey history` shows what production did with each send, as the ledger recorded it.

The decision journal keeps the engine's decision (``send``); the ledger says
what delivery made of it. A send the tick skipped under the catch-up policy
is a ``skip`` (reason ``late``) in the history, a send that could not be
built is ``send_failed`` with its error, as ``journey simulate`` shows them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from test_tick_kit import TEMPLATES, TINY_PROJECT, WELCOME, deployed_tiny_project, journey_cli

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _project(tmp_path: Path, **kwargs) -> tuple[Path, Path]:
    root, db, _ = deployed_tiny_project(tmp_path, 1, AT, **kwargs)
    return root, db


def _history(root: Path, db: Path) -> list[dict]:
    result = journey_cli(["history", "c00000", "--format", "json", "--db", str(db)], cwd=root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["events"]


def test_a_send_skipped_as_late_is_a_skip_in_the_history(tmp_path):
    root, db = _project(tmp_path, project=TINY_PROJECT + "catch_up: {policy: skip, max_lateness: 2h}\n")
    ran = journey_cli(["run", "--now", "2026-03-02T14:00:00Z", "--db", str(db), "-q"], cwd=root)  # 5 h late
    assert ran.returncode == 0 and "1 late" in ran.stdout, ran.stdout + ran.stderr

    events = _history(root, db)
    hello = next(e for e in events if e["step"] == "hello")
    assert hello["action"] == "skip" and hello["reason"].startswith("late")
    assert hello["key"] == "c00000:welcome:1/1/hello"
    table = journey_cli(["history", "c00000", "--db", str(db)], cwd=root).stdout
    row = next(line for line in table.splitlines() if " hello " in line)
    assert " skip " in row and " late" in row and " send " not in row


def test_a_send_that_could_not_be_built_is_send_failed_with_its_error(tmp_path):
    templates = {**TEMPLATES, "hello.html": "<p>{{ contact.first_name + 1 }}</p>"}
    root, db = _project(tmp_path, templates=templates)
    ran = journey_cli(["run", "--now", "2026-03-02T10:00:00Z", "--db", str(db), "-q"], cwd=root,
                      env={"JOURNEY_UNSUBSCRIBE_SECRET": "history-secret-0123456789"})
    assert ran.returncode == 0 and "1 failed" in ran.stdout, ran.stdout + ran.stderr

    hello = next(e for e in _history(root, db) if e["step"] == "hello")
    assert hello["action"] == "send_failed" and "hello" in hello["reason"] and "str" in hello["reason"]


def test_a_delivered_send_stays_a_send(tmp_path):
    root, db = _project(tmp_path)
    ran = journey_cli(["run", "--now", "2026-03-02T10:00:00Z", "--db", str(db), "-q"], cwd=root)
    assert ran.returncode == 0, ran.stderr
    hello = next(e for e in _history(root, db) if e["step"] == "hello")
    assert hello["action"] == "send" and hello["reason"] == "email hello"


def test_history_takes_the_journey_by_id_or_file_and_refuses_one_never_deployed(tmp_path):
    root, db = _project(tmp_path)
    ran = journey_cli(["run", "--now", "2026-03-02T10:00:00Z", "--db", str(db), "-q"], cwd=root)
    assert ran.returncode == 0, ran.stderr
    by_id = journey_cli(["history", "c00000", "--journey", "welcome", "--format", "json", "--db", str(db)], cwd=root)
    by_file = journey_cli(["history", "c00000", "--journey", "journeys/welcome.yaml", "--format", "json",
                           "--db", str(db)], cwd=root)
    assert by_id.returncode == by_file.returncode == 0, by_id.stderr + by_file.stderr
    events = json.loads(by_id.stdout)["events"]
    assert any(e["step"] == "hello" and e["action"] == "send" for e in events)
    assert json.loads(by_file.stdout)["events"] == events
    typo = journey_cli(["history", "c00000", "--journey", "welcom", "--db", str(db)], cwd=root)
    assert typo.returncode == 2  # not an empty history that looks like "nothing happened"
    assert "no journey 'welcom' was ever deployed to this database (deployed: welcome)" in typo.stderr


def test_a_non_ascii_address_is_send_failed_saying_what_to_do(tmp_path):
    root, db = _project(tmp_path)
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "c00000", "email": "josé@example.com"}) + "\n", encoding="utf-8")
    assert journey_cli(["contacts", "import", str(tmp_path / "c.jsonl"), "--db", str(db)], cwd=root).returncode == 0
    ran = journey_cli(["run", "--now", "2026-03-02T10:00:00Z", "--db", str(db), "-q"], cwd=root)
    assert ran.returncode == 0 and "1 failed" in ran.stdout, ran.stdout + ran.stderr

    hello = next(e for e in _history(root, db) if e["step"] == "hello")
    assert hello["action"] == "send_failed"
    assert hello["reason"].endswith(  # not the standard library's "…contains non-ASCII characters)"
        "recipient address 'josé@example.com' has non-ASCII characters, which the runner cannot send to: "
        "give an ASCII address, with an international domain in its xn-- form such as xn--bcher-kva.example"), hello
    refused = journey_cli(["suppress", "add", "josé@example.com", "--db", str(db)], cwd=root)
    assert refused.returncode == 1 and refused.stderr == (
        "error: suppressed address 'josé@example.com' has non-ASCII characters, which the runner cannot send to: "
        "give an ASCII address, with an international domain in its xn-- form such as xn--bcher-kva.example\n")


def test_a_subject_that_fails_to_render_is_named_by_its_step_not_string_line_1(tmp_path):
    journeys = {"welcome": WELCOME.replace("Hello {{ contact.first_name }}", "Hello {{ contact.first_name + 1 }}")}
    root, db = _project(tmp_path, journeys=journeys)
    ran = journey_cli(["run", "--now", "2026-03-02T10:00:00Z", "--db", str(db)], cwd=root)
    assert ran.returncode == 0 and "1 failed" in ran.stdout, ran.stdout + ran.stderr
    said = ("the subject of step 'hello' in journey 'welcome': can only concatenate str (not \"int\") to str")
    assert f"failed c00000:welcome:1/1/hello: {said}" in ran.stdout + ran.stderr
    hello = next(e for e in _history(root, db) if e["step"] == "hello")
    assert hello["action"] == "send_failed" and hello["reason"] == f"email hello: {said}", hello
    assert "<string>" not in ran.stdout + ran.stderr + hello["reason"]
