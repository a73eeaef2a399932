"""Every command on both backends: the real CLI in subprocesses against a SQLite file and a
PostgreSQL schema gives the same answers; ``journey db copy`` moves a database both ways
with identical ``journey status`` and ``journey stats`` afterwards, and production goes on
from the copy as it would have from the original.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pgkit
import pytest
from click.testing import CliRunner
from test_tick_kit import copy_sample, journey_cli

from runner.cli import main
from runner.production import ingest
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.store import open_store

START = datetime(2026, 3, 1, tzinfo=UTC)
LATER = "2026-03-03T00:00:00+00:00"


@pytest.fixture
def postgresql():
    yield from pgkit.fresh_schema_url()


@pytest.fixture
def another_postgresql():
    yield from pgkit.fresh_schema_url()


def _cli(root: Path, *args: str) -> str:
    """``journey ARGS`` in a real subprocess; it must succeed."""
    result = journey_cli(list(args), cwd=root)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def _in_process(root: Path, *args: str) -> str:
    """``journey ARGS`` in this process (the same click command, without an interpreter's start-up):
    for the SQLite answers the subprocess runs on PostgreSQL are held to, and for repeated looks."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def _without_wall_clock(status_json: str) -> dict:
    """``journey status --format json`` less what a run's wall clock and random id make differ."""
    status = json.loads(status_json)
    status["runs"] = [{k: run[k] for k in ("counts", "status")} for run in status["runs"]]
    status["deployments"] = [{k: row[k] for k in ("journey_id", "version", "content_hash")}
                             for row in status["deployments"]]
    return status


def _session(root: Path, location: str, outbox: Path, cli) -> list:
    """Operator commands in order, with what each printed (``cli``: how to run one)."""
    db = ("--db", location)
    answers: list = [
        cli(root, "contacts", "import", "examples/data/contacts.jsonl", "--now", "2026-03-01T00:00:00Z", *db),
        cli(root, "events", "import", "examples/data/events.jsonl", "--now", "2026-03-02T00:00:00Z", *db),
        cli(root, "deploy", *db),
    ]
    cli(root, "run", "--now", LATER, "--transport", f"outbox:{outbox}", "-q", *db)
    answers += [
        cli(root, "suppress", "add", "ece.demir@bogazici-events.example", "--reason", "complained", *db),
        _without_wall_clock(cli(root, "status", "--format", "json", "--now", LATER, *db)),
        cli(root, "history", "u0104", *db),
        cli(root, "stats", "--format", "json", *db),
        cli(root, "resolve", "--all-sent", *db),
        cli(root, "requeue", "--all-failed", *db),
    ]
    report = root / f"report-{len(location)}"
    cli(root, "report", "--db", location, "--out", str(report))
    answers.append((report / "index.html").read_text(encoding="utf-8").replace(location, "DB"))
    return answers


def test_every_command_answers_the_same_on_sqlite_and_postgresql(tmp_path, postgresql):
    """Subprocesses on PostgreSQL, held to the same commands on a SQLite file."""
    root = copy_sample(tmp_path / "project")
    on_sqlite = _session(root, str(tmp_path / "journey.db"), tmp_path / "outbox-sqlite", _in_process)
    on_postgresql = _session(root, postgresql, tmp_path / "outbox-postgresql", _cli)
    assert on_sqlite[4]["sends"]["sent"] > 10 and on_sqlite[4]["enrollments"]  # the session did real work
    for sqlite_answer, postgresql_answer in zip(on_sqlite, on_postgresql, strict=True):
        assert postgresql_answer == sqlite_answer
    assert sorted(p.name for p in (tmp_path / "outbox-sqlite").iterdir()) == \
        sorted(p.name for p in (tmp_path / "outbox-postgresql").iterdir())


def _production_database(root: Path, db: Path) -> None:
    """Two days of the sample's production (imports, a deploy, hourly ticks) in a SQLite file."""
    tree = load_working_tree(root)
    store = open_store(db)
    ingest.import_contacts(store, root / "examples" / "data" / "contacts.jsonl", now=START)
    ingest.import_events(store, root / "examples" / "data" / "events.jsonl", now=START)
    deploy(store, tree.journeys, START)
    runtime = build_runtime(store, tree.project, f"outbox:{db.parent / 'outbox'}")
    now = START
    while now <= START + timedelta(days=2):
        run_tick(store, runtime, now)
        now += timedelta(hours=6)
    store.add_suppression("u0042", "manual", "test", START)
    store.close()


def test_db_copy_moves_a_database_both_ways_and_production_goes_on_from_the_copy(
        tmp_path, postgresql, another_postgresql):
    root = copy_sample(tmp_path / "project")
    original = tmp_path / "journey.db"
    _production_database(root, original)
    back = str(tmp_path / "back.db")

    copied = _cli(root, "db", "copy", str(original), postgresql)
    assert "events: 5109" in copied and "decisions: " in copied
    _cli(root, "db", "copy", postgresql, back)

    def status(location: str) -> str:
        return _in_process(root, "status", "--format", "json", "--now", LATER, "--db", location)

    def stats(location: str) -> str:
        return _in_process(root, "stats", "--format", "json", "--db", location)

    assert status(postgresql) == status(str(original)) == status(back)
    assert stats(postgresql) == stats(str(original)) == stats(back)
    assert json.loads(stats(back))  # there are figures to agree on

    # a copy into a database that holds data is refused, unless --force
    refused = journey_cli(["db", "copy", str(original), postgresql], cwd=root)
    assert refused.returncode == 1 and "already holds data" in refused.stderr and "Traceback" not in refused.stderr
    _cli(root, "db", "copy", back, another_postgresql)
    _cli(root, "db", "copy", "--force", str(original), another_postgresql)
    assert status(another_postgresql) == status(str(original))

    # the next tick on the copy does what the next tick on the original does
    for location in (str(original), postgresql):
        _in_process(root, "run", "--now", LATER, "--transport", f"outbox:{tmp_path / 'outbox-next'}", "-q",
             "--db", location)
    assert _without_wall_clock(status(postgresql)) == _without_wall_clock(status(str(original)))


def test_status_on_a_schema_never_made_says_deploy_as_on_sqlite_and_makes_nothing(tmp_path, postgresql):
    root = copy_sample(tmp_path / "project")
    on_sqlite = journey_cli(["status", "--db", str(tmp_path / "none.db")], cwd=root)
    on_postgresql = journey_cli(["status", "--db", postgresql], cwd=root)
    assert on_sqlite.returncode == on_postgresql.returncode == 1
    assert on_sqlite.stderr == f"error: no database at {tmp_path / 'none.db'}: run `journey deploy` (or `journey demo`) first\n"
    assert on_postgresql.stderr == f"error: no database at {postgresql}: run `journey deploy` (or `journey demo`) first\n"
    schema = postgresql.rpartition("schema=")[2]
    assert pgkit.sql(postgresql, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)) == [(0,)]
    assert not (tmp_path / "none.db").exists()
