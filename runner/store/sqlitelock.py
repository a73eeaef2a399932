"""Waiting for SQLite's write lock in short naps, so a waiting writer starts soon after the holder commits.

WAL mode has one writer at a time; ``BEGIN IMMEDIATE`` takes the write lock or,
when another connection holds it, calls the busy handler. SQLite's own handler
(``busy_timeout``) sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100, 100 … ms
between tries, so a worker that found the lock taken by a 10 ms write slept
through most of the next 20 ms: with two workers sharing the due work, that
lost time came straight off their throughput. Here the waiter tries again after
naps that start at 0.1 ms and never exceed ``MAX_NAP`` (1 ms): it starts at most
about a millisecond after the holder's commit, at the cost of a failed try (a
few microseconds) per nap. Other statements keep SQLite's handler and timeout.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

FIRST_NAP = 0.0001  # seconds
MAX_NAP = 0.001
SQLITE_BUSY = 5  # primary result code (the low byte of an extended one)


def naps(timeout: float) -> Iterator[float]:
    """The waits between tries: doubling from ``FIRST_NAP`` to ``MAX_NAP``, until ``timeout`` is spent."""
    nap, spent = FIRST_NAP, 0.0
    while spent < timeout:
        nap = min(nap, timeout - spent)
        yield nap
        spent += nap
        nap = min(nap * 2, MAX_NAP)


def begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE`` on ``conn``, waiting for another writer as long as the connection's
    busy timeout, in naps of at most ``MAX_NAP``; after that, SQLite's "database is locked"
    error as usual.

    The busy timeout is 0 for the tries (each fails at once when the lock is taken) and
    what it was again afterwards, for every other statement."""
    timeout_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + timeout_ms / 1000
        for nap in naps(timeout_ms / 1000):
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if not _busy(error) or time.monotonic() >= deadline:
                    raise
            time.sleep(nap)
        conn.execute("BEGIN IMMEDIATE")  # the timeout is spent: one last try, its error as it is
    finally:
        conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")


def _busy(error: sqlite3.Error) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF == SQLITE_BUSY
