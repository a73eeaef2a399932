"""`journey run|status|resolve` as real processes: dry run, overlapping runs, the worker loop, in-doubt sends."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from test_tick_kit import REPO, deployed_tiny_project, journey_cli, tiny_project

from runner.core.state import SendRecord
from runner.delivery.message import journey_key
from runner.store import open_store

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
NOW = "2026-03-02T10:00:00Z"
SECRET = {"JOURNEY_UNSUBSCRIBE_SECRET": "run-cli-test-secret-0123456789"}


def _project(tmp_path: Path, contacts: int = 3) -> tuple[Path, Path]:
    root, db, _ = deployed_tiny_project(tmp_path, contacts, AT)
    return root, db


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dry_run_prints_what_would_happen_and_leaves_the_database_byte_identical(tmp_path):
    root, db = _project(tmp_path)
    before = _digest(db)
    result = journey_cli(["run", "--dry-run", "--now", NOW, "--db", str(db)], cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("would send ") == 3
    assert "c00000:welcome:1/1/hello" in result.stdout and "Hello C00000" in result.stdout
    assert _digest(db) == before
    assert not (root / "outbox").exists()

    real = journey_cli(["run", "--now", NOW, "--db", str(db)], cwd=root)
    assert real.returncode == 0 and "3 sent" in real.stdout
    assert len(list((root / "outbox").glob("*.eml"))) == 3


def test_overlapping_runs_never_send_twice(tmp_path, smtp_server):
    root, db = _project(tmp_path, contacts=300)
    env = {**os.environ, "PYTHONPATH": str(REPO), **SECRET}
    command = [sys.executable, "-m", "runner", "run", "--now", NOW, "--db", str(db), "-q", "--wait", "60",
               "--transport", f"smtp://127.0.0.1:{smtp_server.port}?retries=0"]
    processes = [subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
    with smtp_server.lock:
        received = Counter(journey_key(item.message) for item in smtp_server.messages)
    assert len(received) == 300 and max(received.values()) == 1
    store = open_store(db)
    runs = store.production_counters(datetime.now(UTC)).ticks  # runs per status
    store.close()
    assert runs == {"ok": 4}


def test_a_second_run_exits_0_when_another_holds_the_lease(tmp_path):
    root, db = _project(tmp_path)
    store = open_store(db)
    from datetime import timedelta

    assert store.acquire_lease("tick", "otherhost:1:abc", timedelta(minutes=5), datetime.now(UTC))
    store.close()
    result = journey_cli(["run", "--now", NOW, "--db", str(db), "--wait", "0"], cwd=root)
    assert result.returncode == 0, result.stderr
    assert "another run holds the lease (otherhost:1:abc)" in result.stdout
    store = open_store(db)
    assert store.conn.execute("SELECT count(*) FROM sends").fetchone()[0] == 0
    store.close()


def test_the_worker_loop_stops_on_sigterm_after_its_batch_and_exits_0(tmp_path):
    root, db = _project(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "--every", "1s", "--db", str(db), "-q"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    first_line = process.stdout.readline()  # the first tick's summary
    assert first_line.startswith("run "), process.stderr.read() if not first_line else first_line
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped after" in out and "Traceback" not in err
    store = open_store(db)
    statuses = set(store.production_counters(datetime.now(UTC)).ticks)  # runs per status
    leases = store.status_summary(datetime.now(UTC))["leases"]
    store.close()
    assert statuses <= {"ok", "stopped"} and leases == []  # every tick finished, the lease released


def test_status_shows_in_doubt_sends_and_resolve_settles_them(tmp_path):
    root, db = _project(tmp_path)
    store = open_store(db)
    run_id = store.start_run("deadhost:1:x", AT)  # a run that died after claiming
    for key in ("k-delivered", "k-lost"):
        assert store.claim_send(SendRecord(key, "c00000", "welcome", 1, "hello", AT), run_id)
    store.close()

    status = journey_cli(["status", "--db", str(db)], cwd=root)
    assert status.returncode == 0, status.stderr
    assert "IN DOUBT (2)" in status.stdout and "k-delivered" in status.stdout
    as_json = json.loads(journey_cli(["status", "--format", "json", "--db", str(db)], cwd=root).stdout)
    assert [row["key"] for row in as_json["in_doubt"]] == ["k-delivered", "k-lost"]
    assert as_json["deployments"][0]["journey_id"] == "welcome"

    assert journey_cli(["resolve", "k-delivered", "--sent", "--db", str(db)], cwd=root).returncode == 0
    assert journey_cli(["resolve", "--all-failed", "--db", str(db)], cwd=root).returncode == 0
    store = open_store(db)
    states = dict(store.conn.execute("SELECT key, state FROM sends").fetchall())
    store.close()
    assert states == {"k-delivered": "sent", "k-lost": "failed"}

    unknown = journey_cli(["resolve", "nope", "--sent", "--db", str(db)], cwd=root)
    assert unknown.returncode == 1 and "not in doubt" in unknown.stderr
    usage = journey_cli(["resolve", "k-lost", "--db", str(db)], cwd=root)
    assert usage.returncode == 2


def test_usage_errors_exit_2_without_a_traceback(tmp_path):
    root, db = _project(tmp_path)
    for args in (["run", "--now", "yesterday"], ["run", "--now", "2026-03-02T10:00:00"],
                 ["run", "--every", "soon"], ["run", "--every", "1m", "--dry-run"]):
        result = journey_cli([*args, "--db", str(db)], cwd=root)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
    from click.testing import CliRunner

    from runner.cli import main

    for command in ("run", "status", "resolve", "plan", "deploy", "demo"):
        assert CliRunner().invoke(main, [command, "--help"]).exit_code == 0


def test_run_reports_a_missing_database_for_dry_run(tmp_path):
    root = tiny_project(tmp_path / "project")
    result = journey_cli(["run", "--dry-run", "--db", str(tmp_path / "none.db")], cwd=root)
    assert result.returncode == 1 and "no database" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_commands_that_only_read_create_no_database(tmp_path):
    """In a folder with no database, a command that only reads creates none: ``run`` says
    nothing is deployed (exit 1, docs/run.md), ``plan`` shows every journey as new, the
    suppression list is empty; only writing commands (deploy, imports) create the file."""
    empty = tmp_path / "empty"
    empty.mkdir()
    root = tiny_project(tmp_path / "project")
    for cwd in (empty, root):
        result = journey_cli(["run", "--now", NOW], cwd=cwd)
        assert result.returncode == 1 and "no database at" in result.stderr, result.stderr
        assert "journey deploy" in result.stderr and "Traceback" not in result.stderr
    for args, code, said in ((["plan"], 0, "welcome"), (["suppress", "list"], 0, "no suppressions"),
                             (["suppress", "remove", "ada@example.com"], 1, "not suppressed"),
                             (["status"], 1, "no database at"), (["history", "ada"], 1, "no database at")):
        result = journey_cli(args, cwd=root)
        assert (result.returncode, said in result.stdout + result.stderr) == (code, True), (args, result)
    assert sorted(path.name for path in empty.iterdir()) == []
    assert not list(root.glob("journey.db*"))
    assert journey_cli(["deploy"], cwd=root).returncode == 0
    assert (root / "journey.db").exists()


def test_history_shows_what_the_ticks_decided_for_a_contact(tmp_path):
    root, db = _project(tmp_path, contacts=2)
    for now in (NOW, "2026-03-03T10:00:00Z"):  # the welcome email, then the tips a day later
        assert journey_cli(["run", "--now", now, "--db", str(db), "-q"], cwd=root).returncode == 0
    again = journey_cli(["run", "--now", "2026-03-03T10:00:00Z", "--db", str(db), "-q"], cwd=root)
    assert again.returncode == 0  # a rerun decides nothing new and records nothing twice

    table = journey_cli(["history", "c00001", "--db", str(db)], cwd=root)
    assert table.returncode == 0, table.stderr
    assert "History of c00001" in table.stdout and "5 decision(s)" in table.stdout
    rows = [line for line in table.stdout.splitlines() if line.startswith(" 2026-")]
    assert len(rows) == 5 and all(" c00001 " in row and " welcome v1 " in row for row in rows)
    assert " send " in rows[1] and "email hello" in rows[1] and "wait 1d (until 2026-03-03T09:00:00Z)" in rows[2]
    assert "c00000" not in table.stdout

    document = json.loads(journey_cli(["history", "c00001", "--format", "json", "--db", str(db)], cwd=root).stdout)
    events = document["events"]
    assert [e["action"] for e in events] == ["enter", "send", "wait", "send", "exit"]
    assert [(e["action"], e["step"], e["key"]) for e in events if e["action"] == "send"] == [
        ("send", "hello", "c00001:welcome:1/1/hello"), ("send", "tips", "c00001:welcome:1/1/tips")]
    assert events[2]["until"] == "2026-03-03T09:00:00Z" and all(e["run_id"] for e in events)
    assert {"at", "local_time", "contact", "journey", "version", "stage", "step", "action", "reason"} <= set(events[0])

    only = journey_cli(["history", "c00001", "--journey", "welcome", "--db", str(db)], cwd=root)
    assert only.returncode == 0 and "5 decision(s)" in only.stdout
    never = journey_cli(["history", "c00001", "--journey", "nothing-here", "--db", str(db)], cwd=root)
    assert never.returncode == 2 and "no journey 'nothing-here' was ever deployed" in never.stderr  # not "0 decisions"
    unknown = journey_cli(["history", "nobody", "--db", str(db)], cwd=root)
    assert unknown.returncode == 1 and "no contact 'nobody'" in unknown.stderr and "Traceback" not in unknown.stderr
