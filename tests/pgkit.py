"""PostgreSQL helpers of the backend tests, on top of ``tests/pg.py`` (the server, the loud skip,
``JOURNEY_REQUIRE_PG``): a fresh schema per fixture, and SQL in a store's schema for what the
Store protocol does not show (the ledger's own rows, query plans, the migrations table).
"""

from __future__ import annotations

from collections.abc import Iterator

import pg


def is_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def fresh_schema_url() -> Iterator[str]:
    """A URL naming a schema no one uses (created by the store on open), dropped afterwards;
    skipped (or failed, with JOURNEY_REQUIRE_PG) loudly where no server answers."""
    pg.need_server()
    schema = pg.fresh_schema()
    try:
        yield pg.schema_url(schema)
    finally:
        pg.drop_schema(schema)


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    """Run one statement in the schema of ``url``."""
    import psycopg

    schema = url.rpartition("schema=")[2]
    with psycopg.connect(pg.server(), autocommit=True, connect_timeout=pg.CONNECT_TIMEOUT) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []
