"""What an operator runs after trouble: `resolve` right after a crash, `status` and a dry run on a read-only database.

A run killed with SIGKILL still holds the tick lease until it expires (two
minutes); its process is gone, though, so its claims are in doubt at once,
as the next tick already sees them. And looking (`status`, `run --dry-run`,
`history`) never needs write access: on a read-only database they work and
write nothing, and a database that needs migrating says so clearly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from smtp_server import SmtpServer
from test_tick_kit import REPO, deployed_tiny_project, journey_cli, tiny_project

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
NOW = "2026-03-02T10:00:00Z"
SECRET = {"JOURNEY_UNSUBSCRIBE_SECRET": "operator-secret-0123456789"}


def _project(tmp_path: Path, contacts: int = 10) -> tuple[Path, Path]:
    root, db, _ = deployed_tiny_project(tmp_path, contacts, AT)
    return root, db


def _claimed(db: Path) -> list[str]:
    """Claims handed to the transport and never confirmed (a batch's queued claims are not in doubt)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [key for (key,) in conn.execute("SELECT key FROM sends WHERE state = 'claimed' AND retryable = 0")]


def test_resolve_and_status_see_a_killed_runs_claim_at_once(tmp_path):
    root, db = _project(tmp_path)
    with SmtpServer(hold_after=3) as server:
        env = {**os.environ, "PYTHONPATH": str(REPO), **SECRET}
        process = subprocess.Popen(
            [sys.executable, "-m", "runner", "run", "--now", NOW, "--db", str(db), "-q",
             "--transport", server.url(retries=0)], cwd=root, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = datetime.now(UTC).timestamp() + 120
        while not (len(server.messages) >= 3 and server.data_in_progress == 1):  # the held 4th message
            assert datetime.now(UTC).timestamp() < deadline, "the run never reached the relay"
            time.sleep(0.01)
        process.kill()
        process.wait()
        server.resume.set()
    (key,) = _claimed(db)  # the message on the wire when the run died; its lease has not expired

    status = journey_cli(["status", "--format", "json", "--db", str(db)], cwd=root)
    assert status.returncode == 0, status.stderr
    assert [row["key"] for row in json.loads(status.stdout)["in_doubt"]] == [key]
    resolved = journey_cli(["resolve", key, "--failed", "--db", str(db)], cwd=root)
    assert resolved.returncode == 0, resolved.stderr
    assert "resolved 1 send(s)" in resolved.stdout


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[callable]:
    """Makes a folder read-only for the CLI: permissions for a normal user, a read-only
    bind mount for root (who ignores permissions)."""
    mounted: list[Path] = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            for path in folder.iterdir():
                path.chmod(0o444)
            folder.chmod(0o555)
            return
        binds = [["mount", "--bind", str(folder), str(folder)],
                 ["mount", "-o", "remount,bind,ro", str(folder)]]
        for command in binds:
            if shutil.which("mount") is None or subprocess.run(command, capture_output=True).returncode != 0:
                if mounted or command is binds[1]:
                    subprocess.run(["umount", str(folder)], capture_output=True)
                pytest.skip("running as root without permission to mount read-only")
        mounted.append(folder)

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)
    for path in tmp_path.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def _digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_status_dry_run_and_history_work_on_a_read_only_database_and_write_nothing(tmp_path, read_only):
    root, db = _project(tmp_path / "work")
    first = journey_cli(["run", "--now", NOW, "--db", str(db), "-q"], cwd=root)
    assert first.returncode == 0, first.stderr
    data = tmp_path / "readonly"
    data.mkdir()
    shutil.copy2(db, data / "journey.db")  # a closed WAL database: one file
    before = _digests(data)
    read_only(data)
    path = str(data / "journey.db")

    status = journey_cli(["status", "--now", "2026-03-03T10:00:00Z", "--db", path], cwd=root)
    assert status.returncode == 0, status.stderr
    assert "due now: 10" in status.stdout and "sent 10" in status.stdout
    as_json = journey_cli(["status", "--format", "json", "--db", path], cwd=root)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["sends"] == {"sent": 10}, as_json.stderr
    dry = journey_cli(["run", "--dry-run", "--now", "2026-03-03T10:00:00Z", "--db", path], cwd=root, env=SECRET)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would send c0") == 10 and "10 would send" in dry.stdout
    history = journey_cli(["history", "c00000", "--db", path], cwd=root)
    assert history.returncode == 0 and "3 decision(s)" in history.stdout, history.stderr
    assert _digests(data) == before  # nothing written, not even a -wal or -shm file


def test_a_read_only_database_that_needs_migrating_is_a_clear_error(tmp_path, read_only):
    from sqlite_utils import Database

    from runner.store import migrations as schema

    root = tiny_project(tmp_path / "project")
    data = tmp_path / "readonly"
    data.mkdir()
    old = Database(sqlite3.connect(data / "journey.db"))
    schema.m001_initial(old)
    old.execute("CREATE TABLE schema_migrations (migration_set TEXT, name TEXT, applied_at TEXT)")
    old.execute("INSERT INTO schema_migrations VALUES ('journey-runner', 'm001_initial', '2026-03-01')")
    old.conn.commit()
    old.conn.close()
    before = _digests(data)
    read_only(data)

    result = journey_cli(["status", "--db", str(data / "journey.db")], cwd=root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "needs migrating" in result.stderr and "m002_decisions" in result.stderr, result.stderr
    assert _digests(data) == before
