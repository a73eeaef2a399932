"""A real PostgreSQL for tests: one schema per test, dropped afterwards.

The server is ``JOURNEY_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
Where none answers, the tests that need it are skipped with one loud reason, unless
``JOURNEY_REQUIRE_PG`` is set (CI): then they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

SERVER = os.environ.get("JOURNEY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin():
    import psycopg

    return psycopg.connect(SERVER, autocommit=True, connect_timeout=5)


def is_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def schema_url(schema: str) -> str:
    """The store URL of ``schema`` on the test server."""
    return f"{SERVER}{'&' if '?' in SERVER else '?'}schema={schema}"


def fresh_schema_url() -> Iterator[str]:
    """A URL naming a schema no one uses (created by the store on open), dropped afterwards."""
    try:
        admin = _admin()
    except Exception as error:  # noqa: BLE001 - any failure to reach the server means the same
        if os.environ.get("JOURNEY_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL at {SERVER} is required (JOURNEY_REQUIRE_PG) but does not answer: {error}")
        pytest.skip(f"NO POSTGRESQL at {SERVER} ({error}): PostgreSQL tests skipped")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield schema_url(schema)
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    """Run one statement in the schema of ``url`` (for what the Store protocol does not show)."""
    schema = url.rpartition("schema=")[2]
    with _admin() as conn:
        conn.execute(f'SET search_path = "{schema}"')
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []
