"""Waiting for SQLite's write lock (runner.store.sqlitelock): a writer that finds the lock taken
tries again in naps of at most a millisecond, not SQLite's own 1 ... 100 ms sleeps, and still gives
up with "database is locked" after the connection's busy timeout."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from runner.store import open_store
from runner.store.errors import StoreBusy
from runner.store.sqlitelock import FIRST_NAP, MAX_NAP, begin_immediate, naps


def test_the_naps_are_short_and_add_up_to_the_timeout():
    waits = list(naps(0.05))
    assert waits[0] == FIRST_NAP and max(waits) == MAX_NAP
    assert sum(waits) == pytest.approx(0.05)
    assert list(naps(0)) == []


def test_a_writer_waits_for_the_holder_then_gets_the_lock(tmp_path):
    open_store(tmp_path / "journey.db").close()
    holder = sqlite3.connect(tmp_path / "journey.db", isolation_level=None)
    waiter = sqlite3.connect(tmp_path / "journey.db", isolation_level=None, check_same_thread=False)
    waiter.execute("PRAGMA busy_timeout = 30000")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO leases (name, holder, expires_at) VALUES ('a', 'holder', 'x')")
    started, done = threading.Event(), threading.Event()

    def wait() -> None:
        started.set()
        begin_immediate(waiter)
        done.set()

    thread = threading.Thread(target=wait)
    thread.start()
    started.wait()
    assert not done.wait(0.05)  # the lock is held: it waits
    holder.execute("COMMIT")
    thread.join(10)
    assert done.is_set() and waiter.in_transaction
    assert waiter.execute("SELECT holder FROM leases").fetchall() == [("holder",)]  # after the holder's commit
    waiter.execute("COMMIT")
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == 30000  # restored for other statements
    holder.close()
    waiter.close()


def test_a_lock_held_past_the_busy_timeout_still_fails_and_keeps_the_timeout(tmp_path):
    store = open_store(tmp_path / "journey.db")
    store.conn.execute("PRAGMA busy_timeout = 30")
    holder = sqlite3.connect(tmp_path / "journey.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusy, match="database is locked"), store.transaction():
            pass
        assert not store.conn.in_transaction
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with store.transaction():  # free again
        pass
    store.close()
