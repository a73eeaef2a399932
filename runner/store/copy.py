"""``journey db copy SRC DST``: move a whole database between backends (SQLite <-> PostgreSQL).

A documented bulk path beside the ``Store`` protocol: the protocol says what a tick
needs, not how to read every row of every table. Both stores are opened the usual way
(so the destination is created and migrated; the source must be current), then each
table is copied row by row, streamed (memory stays flat), in one destination
transaction: a copy that fails leaves the destination as it was.

What is copied: every table a journey-runner database holds (``TABLES``): contacts
and identities, events (their ids too: engine memory refers to them), deployments and
the deployed templates, enrollments, the ledger, the decision journal (ids kept),
suppressions, runs and leases, and the counters behind ``journey stats`` and
``/metrics`` (the destination's triggers count the copied rows as they arrive; the
source's counter rows then replace what they counted, so both hold the same figures).
The destination's own ``schema_migrations`` is kept.

Values cross as the SQLite store writes them (instants as fixed-width UTC text, JSON as
compact sorted text); PostgreSQL parses them into ``timestamptz``/``jsonb`` on the way in.
A destination that holds any row is refused unless ``force``: then its rows are
replaced.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from runner.core.problems import JourneyError
from runner.store.base import Store

# in dependency order (identities and enrollments refer to contacts)
DATA_TABLES = ("contacts", "identities", "events", "deployments", "deployed_templates", "enrollments", "sends",
               "decisions", "suppressions", "runs", "leases")
COUNTER_TABLES = ("decision_counts", "send_counts", "engagement_counts", "split_counts", "run_counts")
TABLES = DATA_TABLES + COUNTER_TABLES
IDENTITY_TABLES = ("events", "decisions")  # ids handed out by the database: the next one follows the copy
CHUNK = 5000


@dataclass
class CopyReport:
    """Rows copied per table."""

    rows: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [f"{table}: {count}" for table, count in self.rows.items()]


def copy_database(source: Store, destination: Store, *, force: bool = False) -> CopyReport:
    """Copy every table of ``source`` into ``destination`` (see the module doc)."""
    reader, writer = _tables(source), _tables(destination)
    if reader.same_place(writer):
        raise JourneyError("the source and the destination are the same database")
    report = CopyReport()
    with destination.transaction(durable=True):
        filled = [table for table in TABLES if writer.count(table)]
        if filled and not force:
            raise JourneyError(
                f"the destination already holds data ({', '.join(filled)}): copy into an empty database, "
                "or pass --force to replace what it holds")
        for table in reversed(TABLES):
            writer.clear(table)
        with reader.snapshot():
            for table in TABLES:
                columns = reader.columns(table)
                if table in COUNTER_TABLES:
                    writer.clear(table)  # what the triggers counted gives way to the source's own rows
                report.rows[table] = writer.write(table, columns, reader.rows(table, columns))
        for table in IDENTITY_TABLES:
            writer.follow_identity(table)
    return report


def _tables(store: Store) -> _Tables:
    """The bulk reader/writer for the store's backend."""
    if isinstance(getattr(store, "conn", None), sqlite3.Connection):
        return _SQLiteTables(store)
    if hasattr(store, "pool"):
        return _PostgresTables(store)
    raise JourneyError(f"cannot copy {type(store).__name__}: only the SQLite and PostgreSQL stores")


class _Tables:
    """Whole-table access to one database (the store's own connection or pool)."""

    def __init__(self, store: Any):
        self.store = store

    def same_place(self, other: _Tables) -> bool:
        return type(self) is type(other) and str(self.store.path) == str(other.store.path)

    def count(self, table: str) -> int:
        raise NotImplementedError

    def clear(self, table: str) -> None:
        raise NotImplementedError

    def columns(self, table: str) -> list[str]:
        raise NotImplementedError

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def rows(self, table: str, columns: list[str]) -> Iterator[tuple]:
        raise NotImplementedError

    def write(self, table: str, columns: list[str], rows: Iterator[tuple]) -> int:
        raise NotImplementedError

    def follow_identity(self, table: str) -> None:
        """After explicit ids were written: the next generated id comes after them."""


class _SQLiteTables(_Tables):
    def count(self, table: str) -> int:
        return int(self.store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def clear(self, table: str) -> None:
        self.store.conn.execute(f"DELETE FROM {table}")

    def columns(self, table: str) -> list[str]:
        return [row[1] for row in self.store.conn.execute(f"PRAGMA table_info({table})")]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        conn = self.store.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def rows(self, table: str, columns: list[str]) -> Iterator[tuple]:
        yield from self.store.conn.execute(f"SELECT {', '.join(columns)} FROM {table}")

    def write(self, table: str, columns: list[str], rows: Iterator[tuple]) -> int:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        written = 0
        for chunk in _chunks(rows):
            self.store.conn.executemany(sql, chunk)
            written += len(chunk)
        return written


class _PostgresTables(_Tables):
    @contextmanager
    def _conn(self) -> Iterator[Any]:
        with self.store._connection() as conn:
            yield conn

    def count(self, table: str) -> int:
        with self._conn() as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def clear(self, table: str) -> None:
        with self._conn() as conn:
            conn.execute(f"DELETE FROM {table}")

    def columns(self, table: str) -> list[str]:
        with self._conn() as conn:
            return [column.name for column in conn.execute(f"SELECT * FROM {table} LIMIT 0").description or ()]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self.store._snapshot_read():
            yield

    def rows(self, table: str, columns: list[str]) -> Iterator[tuple]:
        from runner.store.pgconnect import shaped

        with self._conn() as conn, conn.cursor(name=f"journey_copy_{table}") as cursor:
            cursor.itersize = CHUNK
            cursor.execute(f"SELECT {', '.join(columns)} FROM {table}")
            for row in cursor:
                yield tuple(shaped(value) for value in row)

    def write(self, table: str, columns: list[str], rows: Iterator[tuple]) -> int:
        written = 0
        with self._conn() as conn, conn.cursor() as cursor, \
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                written += 1
        return written

    def follow_identity(self, table: str) -> None:
        with self._conn() as conn:
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")


def _chunks(rows: Iterator[tuple]) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
