"""Faults on the one-connection SMTP path: a SIGKILL, a database lock held too long, a full disk.

Each run sends to a real aiosmtpd relay that stalls mid-message after ten
messages (``hold_after``), so the fault always strikes with a claim committed
and its message on the wire, whatever the machine's speed. Afterwards every
message has reached the relay exactly once, nothing is left claimed, and each
contact's state is its own: one enter, one send and one wait journaled, and
its next wake-up is the welcome journey's one-day wait.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from smtp_server import SmtpServer
from test_tick_kit import REPO, deployed_tiny_project, journey_cli

from runner.delivery.message import journey_key
from runner.production.deploy import load_working_tree
from runner.production.tick import StoreWriteFailed, build_runtime, run_tick
from runner.production.worker import StopFlag, run_loop
from runner.store import open_store

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
NOW = AT + timedelta(hours=1)  # every contact's welcome email is due, the tips one is not
CONTACTS = 30
SECRET = {"JOURNEY_UNSUBSCRIBE_SECRET": "tick-faults-secret-0123456789"}


def _project(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    return deployed_tiny_project(tmp_path, CONTACTS, AT)


def _run_args(db: Path, server: SmtpServer) -> list[str]:
    return ["run", "--now", NOW.isoformat(), "--db", str(db), "-q", "--transport", server.url(retries=0)]


def _start_run(root: Path, db: Path, server: SmtpServer) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **SECRET}
    return subprocess.Popen([sys.executable, "-m", "runner", *_run_args(db, server)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def _handed_over(db) -> int:
    """Sends marked as handed to the transport (confirmed or not)."""
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM sends WHERE retryable = 0 AND state IN ('claimed', 'sent')").fetchone()[0]


def _received(server: SmtpServer) -> Counter:
    with server.lock:
        return Counter(journey_key(item.message) for item in server.messages)


def _settle_in_doubt(root: Path, db: Path, server: SmtpServer) -> list[str]:
    """What an operator does after a crash (docs/run.md): ask the relay about each in-doubt key."""
    status = journey_cli(["status", "--format", "json", "--db", str(db)], cwd=root)
    assert status.returncode == 0, status.stderr
    in_doubt = [row["key"] for row in json.loads(status.stdout)["in_doubt"]]
    received = _received(server)
    for key in in_doubt:
        verdict = "--sent" if received[key] else "--failed"
        resolved = journey_cli(["resolve", key, verdict, "--db", str(db)], cwd=root)
        assert resolved.returncode == 0, resolved.stderr
    return in_doubt


def _assert_consistent(db: Path, server: SmtpServer, ids: list[str]) -> dict[str, int]:
    """Nothing lost, nothing sent twice, every contact saved with its own state; the runs by status."""
    received = _received(server)
    assert set(received) == {f"{cid}:welcome:1/1/hello" for cid in ids}  # nothing lost
    assert max(received.values()) == 1  # nothing sent twice
    store = open_store(db)
    try:
        states = store.status_summary(NOW)["sends"]
        journal = [(cid, action, n) for (cid, action), n in sorted(
            Counter((cid, row["action"]) for cid in ids for row in store.contact_history(cid)).items())]
        wakes = {cid: store.wake_at(cid) for cid in ids}
        runs = store.production_counters(NOW).ticks  # runs per status
    finally:
        store.close()
    assert states == {"sent": len(ids)}
    assert journal == [(cid, action, 1) for cid in ids for action in ("enter", "send", "wait")]
    assert wakes == {cid: AT + timedelta(days=1) for cid in ids}
    return runs


def test_sigkill_mid_message_leaves_one_send_in_doubt_and_every_contact_consistent(tmp_path):
    root, db, ids = _project(tmp_path)
    with SmtpServer(hold_after=10) as server:
        process = _start_run(root, db, server)
        # the held 11th message (any message is in DATA for a while: the count tells which)
        _wait_until(lambda: len(server.messages) >= 10 and server.data_in_progress == 1,
                    "the run waits for the relay's answer")
        process.kill()
        process.wait()
        server.resume.set()
        _wait_until(lambda: server.data_in_progress == 0, "the relay is done with the killed session")

        finished = journey_cli(_run_args(db, server), cwd=root, env=SECRET)
        assert finished.returncode == 0, finished.stderr
        assert len(_settle_in_doubt(root, db, server)) == 1  # the message on the wire when the run died
        final = journey_cli(_run_args(db, server), cwd=root, env=SECRET)
        assert final.returncode == 0, final.stderr
        runs = _assert_consistent(db, server, ids)
    assert runs == {"died": 1, "ok": 2}


def test_a_database_lock_held_35_seconds_stops_the_run_visibly_and_loses_nothing(tmp_path):
    """The busy timeout is 30 s: the claim after the stall fails. The run stops with a clear
    error instead of sending on, commits what it had queued once the lock is gone, and leaves
    nothing in doubt; the next run sends the rest."""
    root, db, ids = _project(tmp_path)
    with SmtpServer(hold_after=10) as server:
        process = _start_run(root, db, server)
        # the held 11th message (any message is in DATA for a while: the count tells which)
        _wait_until(lambda: len(server.messages) >= 10 and server.data_in_progress == 1,
                    "the run waits for the relay's answer")
        other = sqlite3.connect(db, timeout=60, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another connection takes the write lock ...
        server.resume.set()
        time.sleep(35)  # ... and holds it past the run's busy timeout
        other.execute("ROLLBACK")
        other.close()
        out, err = process.communicate(timeout=120)

        assert process.returncode == 1, (out, err)
        assert "database is locked" in err and "Traceback" not in err
        assert len(_received(server)) == 11  # it stopped at the claim it could not record
        again = journey_cli(_run_args(db, server), cwd=root, env=SECRET)
        assert again.returncode == 0, again.stderr
        assert _settle_in_doubt(root, db, server) == []  # the queued confirmation was committed
        runs = _assert_consistent(db, server, ids)
    assert runs == {"failed": 1, "ok": 1}


class _FillingStore:
    """The real store on a disk that fills up: once ``full`` is set, every write the tick
    commits fails with SQLite's SQLITE_FULL message (an injected ENOSPC at the store's write).
    A real full disk fails in-place rewrites too (WAL frames need space), so a page cap,
    which only stops the file from growing, would let the hand-over marks through."""

    def __init__(self, store, full: threading.Event):
        self._store = store
        self._full = full

    def __getattr__(self, name):
        return getattr(self._store, name)

    def free(self) -> None:
        """Space is back."""
        self._full.clear()

    def transaction(self, durable: bool = False):
        if self._full.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        return self._store.transaction(durable=durable)


def test_a_full_disk_mid_tick_stops_the_run_and_the_next_run_after_cleanup_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", SECRET["JOURNEY_UNSUBSCRIBE_SECRET"])
    root, db, ids = _project(tmp_path)
    full = threading.Event()
    with SmtpServer(hold_after=10) as server:
        store = _FillingStore(open_store(db), full)
        project = load_working_tree(root).project
        runtime = build_runtime(store, project, server.url(retries=0))

        def fill_the_disk_then_answer() -> None:
            _wait_until(lambda: len(server.messages) >= 10 and server.data_in_progress == 1,
                        "the tick waits for the relay's answer")  # the held 11th message
            full.set()
            server.resume.set()

        filler = threading.Thread(target=fill_the_disk_then_answer)
        filler.start()
        with pytest.raises(StoreWriteFailed, match="database or disk is full"):
            run_tick(store, runtime, NOW)
        filler.join()
        runtime.delivery.close()
        store.close()
        # it stopped at the first write that failed: the 12th message's hand-over mark
        assert len(_received(server)) == _handed_over(db) == 11

        again = journey_cli(_run_args(db, server), cwd=root, env=SECRET)  # space is back
        assert again.returncode == 0, again.stderr
        _settle_in_doubt(root, db, server)
        final = journey_cli(_run_args(db, server), cwd=root, env=SECRET)
        assert final.returncode == 0, final.stderr
        runs = _assert_consistent(db, server, ids)
    assert sum(runs.values()) == 3 and runs.get("ok", 0) >= 2


def test_a_worker_survives_a_tick_that_could_not_write_and_the_next_tick_sends_the_rest(tmp_path, monkeypatch):
    """`journey run --every`: the failed tick is reported and the worker ticks again."""
    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", SECRET["JOURNEY_UNSUBSCRIBE_SECRET"])
    root, db, ids = _project(tmp_path)
    full = threading.Event()
    errors: list[str] = []
    reports = []
    with SmtpServer(hold_after=10) as server:
        store = _FillingStore(open_store(db), full)
        runtime = build_runtime(store, load_working_tree(root).project, server.url(retries=0))
        stop = StopFlag()

        def fill_the_disk_then_answer() -> None:
            _wait_until(lambda: len(server.messages) >= 10 and server.data_in_progress == 1,
                        "the tick waits for the relay's answer")  # the held 11th message
            full.set()
            server.resume.set()

        def failed(message: str) -> None:
            errors.append(message)
            store.free()

        def ticked(report) -> None:
            reports.append(report)
            stop.set()

        filler = threading.Thread(target=fill_the_disk_then_answer)
        filler.start()
        ticks = run_loop(store, runtime, timedelta(0), stop=stop, clock=lambda: NOW, on_tick=ticked,
                         on_error=failed)
        filler.join()
        runtime.delivery.close()
        store.close()
        assert ticks == 2 and len(errors) == 1 and "database or disk is full" in errors[0]
        # the second tick sent what the first could not: every message is in, once
        assert reports[0].counts["sent"] > 0 and sorted(_received(server).values()) == [1] * CONTACTS
        _settle_in_doubt(root, db, server)
        final = journey_cli(_run_args(db, server), cwd=root, env=SECRET)
        assert final.returncode == 0, final.stderr
        runs = _assert_consistent(db, server, ids)
    assert runs.get("failed") == 1
