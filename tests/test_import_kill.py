"""An import killed half-way (SIGKILL inside a batch's transaction) and run again stores every
event exactly once, on SQLite and PostgreSQL: the real CLI in subprocesses, a real database."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from datetime import datetime
from pathlib import Path

import pgkit
import pytest
from test_tick_kit import REPO, journey_cli

KILLS_ON_PATH = str(Path(__file__).parent / "import_kills")
EVENTS = 500
BATCH = 50
NOW = "2026-03-10T12:00:00Z"


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    if request.param == "sqlite":
        yield str(tmp_path / "journey.db")
    else:
        yield from pgkit.fresh_schema_url()


def _events_file(path: Path) -> Path:
    """Track calls of 37 users, some anonymous visitors linked by their user id, all with message ids."""
    lines = []
    for n in range(EVENTS):
        call = {"type": "track", "userId": f"u{n % 37}", "event": "page_viewed", "messageId": f"m{n}",
                "timestamp": f"2026-03-0{1 + n % 9}T{n % 24:02d}:{n % 60:02d}:00Z", "properties": {"n": n}}
        if n % 5 == 0:
            call["anonymousId"] = f"a{n % 11}"
        lines.append(json.dumps(call))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _stored(location: str) -> tuple[list[tuple], list[tuple]]:
    """(events as (message id, contact, anonymous id, name, at, properties) in id order, contacts with wake_at)."""
    events = "SELECT message_id, contact_id, anonymous_id, name, at, properties FROM events ORDER BY id"
    contacts = "SELECT id, wake_at FROM contacts ORDER BY id"
    if pgkit.is_url(location):
        return ([(m, c, a, n, at.isoformat(), json.dumps(p, sort_keys=True)) for m, c, a, n, at, p in
                 pgkit.sql(location, events)],
                [(c, w.isoformat()) for c, w in pgkit.sql(location, contacts)])
    with sqlite3.connect(location) as conn:
        return ([(m, c, a, n, datetime.fromisoformat(at).isoformat(), json.dumps(json.loads(p), sort_keys=True))
                 for m, c, a, n, at, p in conn.execute(events)],
                [(c, datetime.fromisoformat(w).isoformat()) for c, w in conn.execute(contacts)])


def _import(path: Path, location: str, env: dict | None = None):
    return journey_cli(["events", "import", str(path), "--db", location, "--now", NOW], cwd=path.parent, env=env)


def test_an_import_killed_in_a_batch_and_run_again_keeps_every_event_once(tmp_path, location):
    path = _events_file(tmp_path / "events.jsonl")
    killed = _import(path, location, env={"JOURNEY_KILL_IMPORT": f"{BATCH}:4",
                                          "PYTHONPATH": f"{REPO}{os.pathsep}{KILLS_ON_PATH}"})
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)
    events, _ = _stored(location)
    assert [row[0] for row in events] == [f"m{n}" for n in range(3 * BATCH)]  # three batches committed, not the 4th

    again = _import(path, location)
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert f"{EVENTS - 3 * BATCH} events imported, {3 * BATCH} already stored" in again.stdout, again.stdout
    events, contacts = _stored(location)
    assert [row[0] for row in events] == [f"m{n}" for n in range(EVENTS)]  # each once, in file order

    clean = tmp_path / "clean.db"  # the same file imported once, without a kill
    assert _import(path, str(clean)).returncode == 0
    assert (events, contacts) == _stored(str(clean))
