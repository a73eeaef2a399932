"""``journey events import --workers 2`` (runner.production.importpair): two processes taking turns
store what one process stores, and a kill of either leaves a prefix of the batches that a rerun
completes once; on SQLite and PostgreSQL, the real CLI in subprocesses where a kill is involved."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import uuid
from datetime import datetime
from pathlib import Path

import pgkit
import pytest
from test_import_kill import KILLS_ON_PATH, NOW
from test_tick_kit import REPO, journey_cli

import runner.production.ingest as ingest
from runner.production import importpair
from runner.store import open_store

BATCH = 50


@pytest.fixture(params=["sqlite", "postgresql"])
def locations(request, tmp_path):
    """Two empty databases of one backend: one for each way of importing."""
    if request.param == "sqlite":
        yield str(tmp_path / "one.db"), str(tmp_path / "two.db")
    else:
        first, second = pgkit.fresh_schema_url(), pgkit.fresh_schema_url()
        yield next(first), next(second)
        for fixture in (first, second):
            fixture.close()


def _mixed_file(path: Path, events: int = 400) -> Path:
    """Everything a file holds: tracks of users and anonymous visitors, identify traits, aliases, an
    unsubscribe, repeated message ids (in one batch and across batches), bad, blank and skipped lines."""
    lines = []
    for n in range(events):
        call = {"type": "track", "userId": f"u{n % 23}", "event": "page_viewed", "messageId": f"m{n}",
                "timestamp": f"2026-03-0{1 + n % 9}T{n % 24:02d}:{n % 60:02d}:00Z", "properties": {"n": n}}
        if n % 7 == 0:
            call = {**call, "userId": None, "anonymousId": f"a{n % 13}"}
        if n % 11 == 0:
            call["anonymousId"] = f"a{n % 13}"
        if n % 17 == 0:
            call = {"type": "identify", "userId": f"u{n % 23}", "messageId": f"i{n}", "timestamp": call["timestamp"],
                    "traits": {"plan": f"p{n}", "email": f"u{n % 23}@example.com"}}
        if n % 29 == 0:
            call = {"type": "alias", "userId": f"u{n % 23}", "previousId": f"a{n % 13}", "timestamp": call["timestamp"]}
        if n == 123:
            call = {**call, "event": "unsubscribed", "type": "track"}
        lines.append(json.dumps(call))
        if n % 37 == 0:
            lines.append(json.dumps({**call, "properties": {"again": n}}) if "messageId" in call else "")
        if n % 41 == 0:
            lines.append("{not json")
        if n % 43 == 0:
            lines.append(json.dumps({"type": "group", "userId": "u1", "groupId": "acme"}))
        if n % 97 == 0:
            lines.append(lines[n // 2])  # a message id of an earlier batch
    lines += [""] * (3 * BATCH)  # whole batches of blank lines at the end
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TABLES = {
    "events": "SELECT message_id, contact_id, anonymous_id, name, at, properties FROM events ORDER BY id",
    "contacts": "SELECT id, email, timezone, attributes, wake_at FROM contacts ORDER BY id",
    "identities": "SELECT anonymous_id, contact_id FROM identities ORDER BY anonymous_id",
    "suppressions": "SELECT target, contact_id, reason, at, source, topic FROM suppressions ORDER BY target",
}


def _stored(location: str) -> dict[str, list[tuple]]:
    """Every row an import writes (the two databases compared are of one backend)."""
    if pgkit.is_url(location):
        return {table: pgkit.sql(location, sql) for table, sql in TABLES.items()}
    with sqlite3.connect(location) as conn:
        return {table: conn.execute(sql).fetchall() for table, sql in TABLES.items()}


def test_two_processes_store_what_one_stores(tmp_path, locations, monkeypatch):
    monkeypatch.setattr(ingest, "BATCH_SIZE", BATCH)
    path = _mixed_file(tmp_path / "events.jsonl")
    one, two = locations
    with open_store(one) as store:
        alone = ingest.import_events(store, path, now=datetime.fromisoformat(NOW))
    seen: list[int] = []
    with open_store(two) as store:
        paired = importpair.import_events(store, two, path, now=datetime.fromisoformat(NOW),
                                          progress=seen.append)
    assert (paired.imported, paired.duplicates, paired.skipped, paired.bad_lines) == (
        alone.imported, alone.duplicates, alone.skipped, alone.bad_lines)
    assert [(p.line, p.code, p.message) for p in paired.bad] == [(p.line, p.code, p.message) for p in alone.bad]
    assert alone.imported > 300 and alone.duplicates > 5 and alone.skipped and alone.bad_lines
    assert sum(seen) == path.stat().st_size
    stored = _stored(two)
    assert stored == _stored(one)
    assert stored["identities"] and stored["suppressions"] and len(stored["events"]) == alone.imported

    with open_store(two) as store:  # again: everything is a duplicate
        again = importpair.import_events(store, two, path, now=datetime.fromisoformat(NOW))
    assert (again.imported, again.duplicates) == (0, alone.imported + alone.duplicates)
    assert _stored(two) == stored


def _processes_marked(mark: str) -> list[int]:
    """Processes whose environment holds ``mark`` (the import's and its second worker's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _import(path: Path, location: str, kill: str | None = None, mark: str = ""):
    env = {"JOURNEY_IMPORT_TEST_MARK": mark}
    if kill:
        env |= {"JOURNEY_KILL_IMPORT": kill, "PYTHONPATH": f"{REPO}{os.pathsep}{KILLS_ON_PATH}"}
    return journey_cli(["events", "import", str(path), "--db", location, "--now", NOW, "--workers", "2"],
                       cwd=path.parent, env=env)


@pytest.mark.parametrize("who, committed", [("parent", 4), ("child", 5)])
def test_a_pair_killed_in_a_batch_and_run_again_keeps_every_event_once(tmp_path, locations, who, committed):
    """Batches alternate (parent 0, 2, 4…; child 1, 3, 5…): killed at its 3rd write, the parent leaves
    batches 0-3 committed, the child 0-4. Nothing of either is left running; a rerun completes the file."""
    from test_import_kill import _events_file
    from test_import_kill import _stored as stored_events

    path = _events_file(tmp_path / "events.jsonl")
    location, clean = locations
    mark = uuid.uuid4().hex
    killed = _import(path, location, kill=f"{BATCH}:3:{who}", mark=mark)
    if who == "parent":
        assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)
    else:
        assert killed.returncode == 1, (killed.stdout, killed.stderr)
        assert "the second import process was killed (SIGKILL)" in killed.stderr
        assert "Traceback" not in killed.stderr
    deadline = time.monotonic() + 10
    while _processes_marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_marked(mark) == []
    events, _ = stored_events(location)
    assert [row[0] for row in events] == [f"m{n}" for n in range(committed * BATCH)]

    again = _import(path, location)
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert f"{500 - committed * BATCH} events imported, {committed * BATCH} already stored" in again.stdout
    assert journey_cli(["events", "import", str(path), "--db", clean, "--now", NOW, "--workers", "1"],
                       cwd=tmp_path).returncode == 0
    assert stored_events(location) == stored_events(clean)


def test_a_strict_import_stays_one_transaction_with_two_workers_asked(tmp_path, locations):
    """``--strict`` keeps nothing of a file with a bad line: one process, one transaction."""
    from test_import_kill import _events_file
    from test_import_kill import _stored as stored_events

    path = _events_file(tmp_path / "events.jsonl")
    path.write_text(path.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    location, _ = locations
    result = journey_cli(["events", "import", str(path), "--db", location, "--now", NOW, "--workers", "2", "--strict"],
                         cwd=tmp_path, env={"JOURNEY_KILL_IMPORT": f"{BATCH}:99",
                                            "PYTHONPATH": f"{REPO}{os.pathsep}{KILLS_ON_PATH}"})
    assert result.returncode == 1 and "nothing imported" in result.stderr, (result.stdout, result.stderr)
    assert stored_events(location)[0] == []
