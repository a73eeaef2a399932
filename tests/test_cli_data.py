"""`journey contacts|events import` and `journey suppress` as real subprocesses."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest


def journey(*args, cwd, env=None):
    full_env = {k: v for k, v in os.environ.items() if k != "JOURNEY_DB"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


def rows(db, sql):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def files(tmp_path):
    (tmp_path / "contacts.csv").write_text(
        "id,email,timezone,first_name\nada,ada@example.com,Europe/Istanbul,Ada\n"
        "bob,bob@example.com,UTC,Bob\n", encoding="utf-8")
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(o) for o in [
        {"type": "track", "userId": "ada", "event": "signed_up", "messageId": "m1",
         "timestamp": "2026-03-02T09:00:00Z"},
        {"type": "track", "userId": "bob", "event": "unsubscribed", "messageId": "m2",
         "timestamp": "2026-03-02T10:00:00Z"},
    ]) + "\n", encoding="utf-8")
    return tmp_path


def test_import_contacts_and_events_then_reimport(files):
    result = journey("contacts", "import", "contacts.csv", "--db", "x.db", cwd=files)
    assert result.returncode == 0, result.stderr
    assert "2 contacts imported" in result.stdout
    result = journey("events", "import", "events.jsonl", "--db", "x.db", cwd=files)
    assert result.returncode == 0, result.stderr
    assert "2 events imported, 0 already stored" in result.stdout
    again = journey("events", "import", "events.jsonl", "--db", "x.db", cwd=files)
    assert "0 events imported, 2 already stored" in again.stdout
    assert rows(files / "x.db", "SELECT count(*) FROM events") == [(2,)]
    listed = journey("suppress", "list", "--format", "json", "--db", "x.db", cwd=files)
    assert [(s["contact_id"], s["reason"]) for s in json.loads(listed.stdout)] == [
        ("bob", "unsubscribed")]


def test_bad_lines_exit_1_without_traceback_and_keep_the_rest(files):
    (files / "bad.jsonl").write_text(
        '{"type":"track","userId":"ada","event":"x","messageId":"g","timestamp":"2026-03-02T09:00:00Z"}\n'
        "{broken\n", encoding="utf-8")
    result = journey("events", "import", "bad.jsonl", "--db", "x.db", cwd=files)
    assert result.returncode == 1
    assert "bad.jsonl:2:1: error[import.json]" in result.stderr
    assert "Traceback" not in result.stderr
    assert "1 events imported" in result.stdout
    assert rows(files / "x.db", "SELECT message_id FROM events") == [("g",)]


def test_a_binary_file_is_reported_briefly(files):
    (files / "photo.jsonl").write_bytes(bytes(range(256)) * 100)
    result = journey("events", "import", "photo.jsonl", "--db", "x.db", cwd=files)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 52
    assert "more bad lines" in result.stderr


def test_strict_import_of_a_bad_file_keeps_earlier_data(files):
    assert journey("contacts", "import", "contacts.csv", "--db", "x.db", cwd=files).returncode == 0
    (files / "more.csv").write_text("id,email\ncem,cem@example.com\ndee,broken\n", encoding="utf-8")
    result = journey("contacts", "import", "more.csv", "--strict", "--db", "x.db", cwd=files)
    assert result.returncode == 1
    assert "more.csv:3:1" in result.stderr and "nothing imported" in result.stderr
    assert rows(files / "x.db", "SELECT id FROM contacts ORDER BY id") == [("ada",), ("bob",)]


def test_db_path_from_env_then_project_file(files):
    result = journey("contacts", "import", "contacts.csv", cwd=files, env={"JOURNEY_DB": "env.db"})
    assert result.returncode == 0, result.stderr
    assert (files / "env.db").exists()
    (files / "project.yaml").write_text("name: Acme\ndatabase: state/prod.db\n", encoding="utf-8")
    (files / "state").mkdir()
    sub = files / "journeys"
    sub.mkdir()
    result = journey("contacts", "import", "../contacts.csv", cwd=sub)
    assert result.returncode == 0, result.stderr
    assert rows(files / "state" / "prod.db", "SELECT count(*) FROM contacts") == [(2,)]


def test_not_a_database_is_a_clear_error(files):
    (files / "x.db").write_text("definitely not sqlite" * 50)
    result = journey("contacts", "import", "contacts.csv", "--db", "x.db", cwd=files)
    assert result.returncode == 1
    assert "not a journey-runner database" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(files):
    missing = journey("events", "import", "nope.jsonl", "--db", "x.db", cwd=files)
    assert missing.returncode == 2
    (files / "events.txt").write_text("{}\n")
    unknown = journey("events", "import", "events.txt", "--db", "x.db", cwd=files)
    assert unknown.returncode == 2 and "--format" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    assert not (files / "x.db").exists()  # usage errors create nothing
    reason = journey("suppress", "add", "ada", "--reason", "bored", "--db", "x.db", cwd=files)
    assert reason.returncode == 2


def test_suppress_add_list_remove(files):
    assert journey("contacts", "import", "contacts.csv", "--db", "x.db", cwd=files).returncode == 0
    assert journey("suppress", "add", "Ada@Example.com", "--reason", "bounced", "--db", "x.db",
                   cwd=files).returncode == 0
    assert journey("suppress", "add", "bob", "--db", "x.db", cwd=files).returncode == 0
    table = journey("suppress", "list", "--db", "x.db", cwd=files)
    assert "ada@example.com" in table.stdout and "bounced" in table.stdout
    assert "bob" in table.stdout and "manual" in table.stdout
    assert journey("suppress", "remove", "ada@example.com", "--db", "x.db", cwd=files).returncode == 0
    gone = journey("suppress", "remove", "ada@example.com", "--db", "x.db", cwd=files)
    assert gone.returncode == 1 and "not suppressed" in gone.stderr
    listed = json.loads(journey("suppress", "list", "--format", "json", "--db", "x.db",
                                cwd=files).stdout)
    assert [s["contact_id"] for s in listed] == ["bob"]


@pytest.mark.parametrize("target", [
    "eyJhZGEiXQ.c2lnbmF0dXJl", "nobody", "ada@", "@example.com", "a@b@example.com", "Ada <ada@example.com>",
    "ada@example.com\nBcc: x@evil.test", " ada", "x" * 300 + "@example.com"])
def test_suppress_add_refuses_tokens_unknown_contacts_and_bad_addresses(files, target):
    assert journey("contacts", "import", "contacts.csv", "--db", "x.db", cwd=files).returncode == 0
    result = journey("suppress", "add", target, "--db", "x.db", cwd=files)
    assert result.returncode == 1, result.stdout
    assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert rows(files / "x.db", "SELECT count(*) FROM suppressions") == [(0,)]


def test_suppress_add_an_unknown_contact_when_told(files):
    result = journey("suppress", "add", "carol", "--unknown-contact", "--db", "x.db", cwd=files)
    assert result.returncode == 0, result.stderr
    assert rows(files / "x.db", "SELECT contact_id FROM suppressions") == [("carol",)]


@pytest.mark.parametrize("command", [["contacts", "import"], ["events", "import"],
                                     ["suppress", "add"], ["suppress", "remove"],
                                     ["suppress", "list"]])
def test_every_command_has_help(command, tmp_path):
    result = journey(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and "Usage:" in result.stdout


def _import_on_terminal(files, **extra_env) -> bytes:
    import pty

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNEY_DB", "CI")} | extra_env
    proc = subprocess.Popen([sys.executable, "-m", "runner", "events", "import", "events.jsonl",
                             "--db", "x.db"], stdout=slave, stderr=subprocess.PIPE, cwd=files,
                            env=env)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0
    return shown


def test_progress_bar_only_on_a_terminal(files):
    shown = _import_on_terminal(files)
    size = (files / "events.jsonl").stat().st_size
    assert b"importing events" in shown and f"{size}/{size} bytes".encode() in shown
    assert b"2 events imported" in shown
    in_ci = _import_on_terminal(files, CI="true")  # a CI log is a terminal at times: no bar there either
    assert b"importing events" not in in_ci and b"\x1b[" not in in_ci and b"0 events imported" in in_ci
    piped = journey("events", "import", "events.jsonl", "--db", "x.db", cwd=files)
    assert "\x1b[" not in piped.stdout and "importing events" not in piped.stdout


def test_imported_instants_keep_the_window_the_command_line_keeps(files):
    """One window for every instant people give (runner.core.instants): its edges are the CLI's
    (`--now 2199-12-31T23:59:59Z` runs), and the import says so in the CLI's words."""
    stamps = ["1899-12-31T23:59:59Z", "1900-01-01T00:00:00Z", "2199-12-31T23:59:59Z", "2200-01-01T00:00:00Z"]
    (files / "edges.jsonl").write_text("".join(
        json.dumps({"type": "track", "userId": "ada", "event": "x", "messageId": f"e{n}", "timestamp": stamp}) + "\n"
        for n, stamp in enumerate(stamps)), encoding="utf-8")
    result = journey("events", "import", "edges.jsonl", "--db", "x.db", cwd=files)
    assert result.returncode == 1
    assert result.stderr.splitlines()[:2] == [
        "edges.jsonl:1:1: error[import.timestamp] timestamp '1899-12-31T23:59:59Z' is not between 1900 and 2199",
        "edges.jsonl:4:1: error[import.timestamp] timestamp '2200-01-01T00:00:00Z' is not between 1900 and 2199",
    ]
    assert sorted(rows(files / "x.db", "SELECT message_id FROM events")) == [("e1",), ("e2",)]
    cli = journey("status", "--now", stamps[3], "--db", "x.db", cwd=files)
    assert cli.returncode == 2 and f"error: --now '{stamps[3]}' is not between 1900 and 2199" in cli.stderr
