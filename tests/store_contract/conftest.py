"""The store contract's fixtures: every test runs once per backend, through ``open_store`` only.

``store`` is a fresh, empty store: a new SQLite file, or PostgreSQL on the test server
(tests/pg.py). Migrating a PostgreSQL schema costs about a second, so the run migrates
one schema per session and empties its tables before each test (``TRUNCATE``: the
fixture's business, never a test's); ``fresh_location`` gives a database nobody has
opened yet, for the tests about creating and migrating one. ``other_store`` is a second
store object on the same database: its own connection (pool), as another process has.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pg
import pytest

from runner.store import Store, open_store

BACKENDS = ("sqlite", "postgresql")


def _need_postgres() -> None:
    if importlib.util.find_spec("runner.store.postgres") is None:
        pytest.skip(f"{pg.SKIP_PREFIX} store: runner/store/postgres.py does not exist yet")
    pg.need_server()


@pytest.fixture(scope="session")
def contract_schema() -> Iterator[str]:
    """One migrated schema for the whole run; each test starts it empty (``_empty``)."""
    _need_postgres()
    schema = pg.fresh_schema()
    open_store(pg.schema_url(schema)).close()
    try:
        yield schema
    finally:
        pg.drop_schema(schema)


def _empty(schema: str) -> None:
    """Every table of ``schema`` but the migrations' record, emptied (identities restarted)."""
    import psycopg

    with psycopg.connect(pg.server(), autocommit=True) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> 'schema_migrations'", (schema,))]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{schema}"."{name}"' for name in tables) + " RESTART IDENTITY")


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where an empty, migrated store lives: a SQLite file, or a PostgreSQL schema URL."""
    if request.param == "sqlite":
        return str(tmp_path / "journey.db")
    schema = request.getfixturevalue("contract_schema")
    _empty(schema)
    return pg.schema_url(schema)


@pytest.fixture(params=BACKENDS)
def fresh_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nobody has opened: a new file, or a schema that does not exist yet (dropped after)."""
    if request.param == "sqlite":
        yield str(tmp_path / "fresh.db")
        return
    _need_postgres()
    schema = pg.fresh_schema()
    try:
        yield pg.schema_url(schema)
    finally:
        pg.drop_schema(schema)


@pytest.fixture
def store(location: str) -> Iterator[Store]:
    opened = open_store(location)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def other_store(location: str, store: Store) -> Iterator[Store]:
    """A second store object on the same database, with connections of its own."""
    opened = open_store(location)
    try:
        yield opened
    finally:
        opened.close()
