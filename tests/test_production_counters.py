"""``Store.production_counters``: what ``/metrics`` reads at every scrape, from counters and indexes only.

A store with 100,000 contacts, enrollments, journal rows and ledger rows answers with
the same figures a ``count(*)`` gives, and with as much work (SQLite VM steps) as a
store with 1,000 of each: a scrape never reads those tables row by row.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from test_tick_kit import deployed_tiny_project, journey_cli

from runner.store import open_store
from runner.store.sqlite import SQLiteStore

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
ACTIONS = ("send", "wait", "skip", "exit")
STATES = ("sent", "sent", "sent", "failed", "skipped")


def _fill(path, size: int, due: int, in_doubt: int) -> SQLiteStore:
    """``size`` contacts (``due`` of them due), enrollments, decisions and sends, spread over the
    same 30 days and steps whatever ``size`` is (so the counter tables have the same shape)."""
    store = open_store(path)
    assert isinstance(store, SQLiteStore)
    conn = store.conn
    stamp = "2026-03-01T00:00:00.000000Z"
    later = (NOW + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO contacts (id, created_at, updated_at, wake_at) VALUES (?, ?, ?, ?)",
        ((f"c{n:06d}", stamp, stamp,
          f"2026-03-02T{n % 10:02d}:00:00.000000Z" if n < due else (later if n % 2 else None)) for n in range(size)))
    conn.executemany(
        "INSERT INTO enrollments (id, contact_id, journey_id, version, stage, status, entered_at, due_at) "
        "VALUES (?, ?, 'welcome', 1, 'new', 'active', ?, ?)",
        ((f"c{n:06d}:welcome:1", f"c{n:06d}", stamp, later) for n in range(size)))
    conn.executemany(
        "INSERT INTO decisions (contact_id, at, journey_id, version, step, action, reason) "
        "VALUES (?, ?, 'welcome', 1, ?, ?, 'r')",
        ((f"c{n:06d}", f"2026-02-{1 + n % 28:02d}T09:00:00Z", f"s{n % 5}", ACTIONS[n % 4]) for n in range(size)))
    conn.executemany(
        "INSERT INTO sends (key, contact_id, journey_id, version, step_id, scheduled_at, state) "
        "VALUES (?, ?, 'welcome', 1, ?, ?, ?)",
        ((f"k{n}", f"c{n:06d}", f"s{n % 5}", f"2026-02-{1 + n % 28:02d}T09:00:00Z",
          "in_doubt" if n < in_doubt else STATES[n % 5]) for n in range(size)))
    conn.execute("COMMIT")
    for status in ("ok", "ok", "failed"):
        run_id = store.start_run("host:1:x", NOW)
        store.finish_run(run_id, {}, status, NOW)
    store.start_run("host:2:y", NOW)  # still running
    return store


def _vm_steps(conn: sqlite3.Connection, call) -> tuple[object, int]:
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(count, 1)
    try:
        return call(), steps
    finally:
        conn.set_progress_handler(None, 0)


def test_counters_equal_counts_and_a_scrape_costs_the_same_at_1k_and_100k(tmp_path):
    small = _fill(tmp_path / "small.db", 1_000, due=40, in_doubt=3)
    large = _fill(tmp_path / "large.db", 100_000, due=50, in_doubt=7)
    try:
        counters, large_steps = _vm_steps(large.conn, lambda: large.production_counters(NOW))
        _, small_steps = _vm_steps(small.conn, lambda: small.production_counters(NOW))

        one = large.conn.execute
        assert counters.ticks == {"ok": 2, "failed": 1, "running": 1}
        assert counters.decisions == dict(one("SELECT action, count(*) FROM decisions GROUP BY action").fetchall())
        assert counters.decisions["send"] == 25_000
        assert counters.sends == dict(one("SELECT state, count(*) FROM sends GROUP BY state").fetchall())
        assert (counters.due, counters.in_doubt) == (50, 7)
        assert counters.oldest_due_at == datetime(2026, 3, 2, 0, tzinfo=UTC)

        # the same work at 100x the rows: counters and index ranges, nothing read row by row
        assert large_steps < small_steps * 1.1 + 200, (small_steps, large_steps)
        from runner.store import sqlite as sql

        for query in (sql.METRICS_RUNS_SQL, sql.METRICS_DECISIONS_SQL, sql.METRICS_SENDS_SQL,
                      sql.METRICS_DUE_SQL, sql.METRICS_IN_DOUBT_SQL):
            plan = " ".join(row[3] for row in one(f"EXPLAIN QUERY PLAN {query}", ("x",) * query.count("?")))
            for table in ("contacts", "enrollments", "decisions", "sends", "events", "runs"):
                assert f"SCAN {table}" not in plan.replace("USING COVERING INDEX", "")
    finally:
        small.close()
        large.close()


def test_tick_counters_follow_real_runs_and_readiness_reads_the_lease(tmp_path):
    root, db, _ = deployed_tiny_project(tmp_path, 3, NOW - timedelta(hours=1))
    for _ in range(2):
        result = journey_cli(["run", "--now", NOW.isoformat(), "--db", str(db)], cwd=root)
        assert result.returncode == 0, result.stderr
    store = open_store(db)
    try:
        counters = store.production_counters(NOW)
        assert counters.ticks == {"ok": 2}
        assert counters.sends == {"sent": 3} and counters.decisions["send"] == 3
        assert counters.due == 0 and counters.in_doubt == 0
        assert store.pending_migrations() == []
        assert store.lease("tick") is None  # released at the end of each run
        assert store.acquire_lease("tick", "me", timedelta(minutes=5), NOW)
        assert store.lease("tick") == {"holder": "me", "expires_at": NOW + timedelta(minutes=5)}
    finally:
        store.close()
