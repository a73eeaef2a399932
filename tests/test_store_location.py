"""Which database a command opens (a file or a URL), and what a failing database looks like.

A location is a SQLite file path or a ``postgresql://`` URL, from ``--db``, ``JOURNEY_DB``
or project.yaml's ``database``; a password in a URL is never printed. Whatever goes wrong
in the database, a caller sees the ``StoreError`` family (never ``sqlite3.Error``) and the
CLI one ``error: database error: …`` line, a non-zero exit and no traceback.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runner.store import open_store, resolve_db
from runner.store.errors import (
    BackendMissing,
    StoreBusy,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
    is_url,
    redacted,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
URL = "postgresql://journey:s3cret-pw@127.0.0.1:1/prod?sslmode=disable&password=other-secret"


def journey(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_resolve_db_takes_cli_then_environment_then_project_then_default(tmp_path, monkeypatch):
    (tmp_path / "project.yaml").write_text(f"name: x\ndatabase: {URL}\n", encoding="utf-8")
    (tmp_path / "journeys").mkdir()
    monkeypatch.chdir(tmp_path / "journeys")
    monkeypatch.delenv("JOURNEY_DB", raising=False)
    assert resolve_db(None) == URL  # a URL is kept whole: never joined to the project root
    monkeypatch.setenv("JOURNEY_DB", "postgres://ops@db.internal/journeys")
    assert resolve_db(None) == "postgres://ops@db.internal/journeys"
    assert resolve_db("local.db") == "local.db"
    assert resolve_db("postgresql://a@b/c") == "postgresql://a@b/c"
    monkeypatch.delenv("JOURNEY_DB")
    (tmp_path / "project.yaml").write_text("name: x\ndatabase: state/prod.db\n", encoding="utf-8")
    assert Path(resolve_db(None)).resolve() == (tmp_path / "state" / "prod.db").resolve()


def test_is_url_names_only_postgresql_schemes():
    assert is_url("postgresql://u@h/d") and is_url("POSTGRES://u@h/d")
    assert not is_url("journey.db") and not is_url("/srv/data/journey.db") and not is_url("mysql://u@h/d")
    assert not is_url("C:\\data\\journey.db")


def test_redacted_hides_every_password_and_keeps_the_rest():
    shown = redacted(URL)
    assert "s3cret-pw" not in shown and "other-secret" not in shown
    assert shown == "postgresql://journey:***@127.0.0.1:1/prod?sslmode=disable&password=***"
    assert redacted("postgresql://journey@127.0.0.1/prod") == "postgresql://journey@127.0.0.1/prod"
    assert redacted("/srv/journey.db") == "/srv/journey.db"
    # nothing to hide: shown as written (urlunsplit would drop an empty host's //)
    assert redacted("postgresql:///prod?host=/var/run/postgresql") == "postgresql:///prod?host=/var/run/postgresql"
    assert redacted("sqlite:///x.db") == "sqlite:///x.db"


def test_a_missing_driver_says_how_to_install_it_and_hides_the_password(tmp_path):
    """psycopg blocked in a fresh interpreter, as on an install without the postgresql extra."""
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from runner.cli import main\n"
            f"main(['status', '--db', {URL!r}])\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == BackendMissing.exit_code == 1
    assert "pip install 'journey-runner[postgresql]'" in result.stderr
    assert "postgresql://journey:***@127.0.0.1:1/prod" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_a_database_option_that_is_a_folder_is_a_usage_error(tmp_path):
    result = journey(["status", "--db", str(tmp_path)], tmp_path)
    assert result.returncode == 2 and "is a directory" in result.stderr


# ---------------------------------------------------------------- SQLite errors, translated


def test_a_lock_held_past_the_busy_timeout_is_store_busy(tmp_path):
    store = open_store(tmp_path / "journey.db")
    store.conn.execute("PRAGMA busy_timeout = 50")  # a SQLite detail: do not wait 30 s here
    holder = sqlite3.connect(tmp_path / "journey.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusy, match="database is locked") as raised:
            store.add_suppression("ada@example.com", "manual", "cli", NOW)
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        with pytest.raises(StoreBusy), store.transaction():  # a transaction's BEGIN, too
            pass
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.add_suppression("ada@example.com", "manual", "cli", NOW)  # free again: the store still works
    assert [row["email"] for row in store.suppressions()] == ["ada@example.com"]
    store.close()


def test_a_full_disk_is_store_full_and_rolls_the_transaction_back(tmp_path):
    store = open_store(tmp_path / "journey.db")
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # a SQLite detail: a disk that fills at once
    with pytest.raises(StoreFull, match="full"), store.transaction():
        for n in range(2000):
            store.add_suppression(f"person{n}@example.com", "manual", "cli", NOW)
    assert store.suppressions() == []
    assert not store.conn.in_transaction
    store.close()


def test_a_write_to_a_read_only_store_is_store_read_only(tmp_path):
    open_store(tmp_path / "journey.db").close()
    reader = open_store(tmp_path / "journey.db", read_only=True)
    with pytest.raises(StoreReadOnly, match="readonly"):
        reader.acquire_lease("tick", "me", timedelta(seconds=60), NOW)
    reader.close()


def test_garbage_and_missing_folders_are_corrupt_and_unavailable(tmp_path):
    (tmp_path / "notes.db").write_bytes(b"not a database at all " * 200)
    with pytest.raises(StoreCorrupt, match="not a journey-runner database"):
        open_store(tmp_path / "notes.db")
    with pytest.raises(StoreUnavailable, match="cannot open"):
        open_store(tmp_path / "no" / "such" / "folder" / "journey.db")
    assert issubclass(StoreCorrupt, StoreError) and issubclass(StoreUnavailable, StoreError)


def test_the_cli_shows_a_locked_database_as_one_error_line(tmp_path):
    db = tmp_path / "journey.db"
    open_store(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA journal_mode = DELETE")  # so even readers wait: the strongest lock there is
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code = ("import runner.store.sqlite as s; s.BUSY_TIMEOUT_SECONDS = 0.05\n"
                "from runner.cli import main\n"
                f"main(['suppress', 'add', 'ada@example.com', '--db', {str(db)!r}])\n")
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: database error: database is locked"), result.stderr
    assert "Traceback" not in result.stderr
