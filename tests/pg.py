"""A real PostgreSQL for tests: the server at ``JOURNEY_TEST_PG``, one schema per test, dropped after.

``JOURNEY_TEST_PG`` defaults to ``postgresql://postgres@127.0.0.1:5432/postgres`` (this
machine kind runs PostgreSQL 15 there, trust auth). Each test gets a schema of its own,
named at random and passed to the store as the URL's ``schema`` parameter (the store
creates it); the fixture drops it afterwards, whatever the test did.

Where no server answers, the tests that need one skip, and the run ends with one loud
line saying how many and why (``pytest_terminal_summary``). With
``JOURNEY_REQUIRE_PG=1`` (``.ci/run`` sets it) the skip is a failure instead: CI always
runs them.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Iterator

import pytest

from runner.store.errors import redacted

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SERVER_ENV = "JOURNEY_TEST_PG"
REQUIRE_ENV = "JOURNEY_REQUIRE_PG"
CONNECT_TIMEOUT = 3  # seconds: a closed port answers at once, a black hole must not stall the run
SKIP_PREFIX = "NO POSTGRESQL"  # the skip reason starts so; the summary counts these skips


def server() -> str:
    return os.environ.get(SERVER_ENV) or DEFAULT_SERVER


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


@functools.cache
def server_problem() -> str | None:
    """Why the test server cannot be used (None: it answers). Asked once per run."""
    try:
        import psycopg
    except ImportError as error:
        return f"psycopg is not installed ({error})"
    try:
        with psycopg.connect(server(), connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return None


def need_server() -> None:
    """Skip (or, with JOURNEY_REQUIRE_PG, fail) the calling test when no server answers."""
    problem = server_problem()
    if problem is None:
        return
    where = redacted(server())
    if required():
        pytest.fail(f"PostgreSQL at {where} is required ({REQUIRE_ENV}=1) but cannot be used: {problem}",
                    pytrace=False)
    pytest.skip(f"{SKIP_PREFIX} at {where} ({problem}): set {SERVER_ENV} or start the server")


def schema_url(schema: str, base: str | None = None) -> str:
    """The store URL of ``schema`` on the test server."""
    base = base or server()
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def fresh_schema() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


def drop_schema(schema: str, attempts: int = 5) -> None:
    """Drop ``schema`` and everything in it. A process a test started may still be finishing
    a transaction there: a deadlock or lock timeout is tried again, a few times."""
    import psycopg

    for attempt in range(1, attempts + 1):
        try:
            with psycopg.connect(server(), connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            return
        except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
            if attempt == attempts:
                raise
            time.sleep(attempt)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A store URL naming a schema nobody else uses (the store creates it); dropped afterwards."""
    need_server()
    schema = fresh_schema()
    try:
        yield schema_url(schema)
    finally:
        drop_schema(schema)


def skipped_for_want_of_a_server(reports: list[pytest.TestReport]) -> int:
    """How many of the skipped ``reports`` were skipped by ``need_server``."""
    def reason(report: pytest.TestReport) -> str:
        longrepr = report.longrepr
        return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return sum(1 for report in reports if SKIP_PREFIX in reason(report))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The hook (re-exported by conftest; ``-p pg`` elsewhere): one loud line when PostgreSQL
    tests were skipped for want of a server."""
    count = skipped_for_want_of_a_server(terminalreporter.stats.get("skipped", []))
    if count:
        terminalreporter.write_line(summary_line(count), red=True, bold=True)


def summary_line(count: int) -> str:
    """The one loud line at the end of a run that skipped PostgreSQL tests."""
    return (f"{SKIP_PREFIX}: {count} PostgreSQL test(s) SKIPPED — {redacted(server())} does not answer "
            f"({server_problem()}). Start it or point {SERVER_ENV} at one; {REQUIRE_ENV}=1 (as .ci/run) "
            "makes this a failure.")
