"""Where PostgreSQL comes from in tests (tests/pg.py), held by real pytest runs in subprocesses.

Without a server the PostgreSQL tests skip and the run ends with one loud line; with
``JOURNEY_REQUIRE_PG=1`` (``.ci/run``) the same run fails; with a server each test gets a
schema of its own that is gone afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pg
import pytest

TESTS = Path(__file__).resolve().parent

NEEDS_PG = '''
from pathlib import Path

import pg
import psycopg


def test_needs_postgresql(pg_url):
    schema = pg_url.rpartition("schema=")[2]
    Path("schema.txt").write_text(schema)
    with psycopg.connect(pg.server(), autocommit=True) as conn:  # as the store would: its schema, its tables
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".contacts (id text PRIMARY KEY)')

def test_does_not(tmp_path):
    assert True
'''


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


def _pytest(folder: Path, **env: str) -> subprocess.CompletedProcess:
    (folder / "test_uses_pg.py").write_text(NEEDS_PG, encoding="utf-8")
    environment = {name: value for name, value in os.environ.items() if name != "JOURNEY_REQUIRE_PG"}
    environment.update(PYTHONPATH=str(TESTS), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **env)  # hypothesis &c. not needed
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "pg", "-p", "no:cacheprovider", "-q", "-rs", "test_uses_pg.py"],
        cwd=folder, capture_output=True, text=True, timeout=120, env=environment,
    )


def test_no_server_skips_with_one_loud_line_and_hides_the_password(tmp_path):
    url = f"postgresql://postgres:hunter2@127.0.0.1:{_closed_port()}/postgres"
    result = _pytest(tmp_path, JOURNEY_TEST_PG=url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    loud = [line for line in result.stdout.splitlines() if line.startswith("NO POSTGRESQL: ")]
    assert len(loud) == 1, result.stdout
    assert "1 PostgreSQL test(s) SKIPPED" in loud[0] and "JOURNEY_REQUIRE_PG=1" in loud[0]
    assert "postgres:***@127.0.0.1" in loud[0] and "hunter2" not in result.stdout
    assert not (tmp_path / "schema.txt").exists()


def test_journey_require_pg_turns_the_skip_into_a_failure(tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres"
    result = _pytest(tmp_path, JOURNEY_TEST_PG=url, JOURNEY_REQUIRE_PG="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout  # the fixture fails the test before it starts
    assert "is required (JOURNEY_REQUIRE_PG=1) but cannot be used" in result.stdout
    assert "NO POSTGRESQL: " not in result.stdout


def test_with_a_server_each_test_has_its_own_schema_and_it_is_dropped(tmp_path):
    pg.need_server()
    result = _pytest(tmp_path, JOURNEY_TEST_PG=pg.server(), JOURNEY_REQUIRE_PG="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout and "NO POSTGRESQL" not in result.stdout
    schema = (tmp_path / "schema.txt").read_text()
    assert schema.startswith("t_") and len(schema) == 18
    import psycopg

    with psycopg.connect(pg.server(), autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
                            (schema,)).fetchone()
    assert left == (0,)


def test_the_ci_entry_point_requires_postgresql():
    run = (TESTS.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "JOURNEY_REQUIRE_PG=1 exec bash .ci/test" in run


@pytest.mark.parametrize("value,expected", [("", False), ("0", False), ("1", True), ("yes", True)])
def test_require_reads_the_variable(monkeypatch, value, expected):
    monkeypatch.setenv("JOURNEY_REQUIRE_PG", value)
    assert pg.required() is expected
