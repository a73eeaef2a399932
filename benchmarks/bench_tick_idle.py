"""Idle tick cost: ``SQLiteStore.due_contacts`` when nothing is due.

Builds databases with 10k and 1M contacts, each with an active enrollment
waiting in the future (rows written with raw executemany for speed), then
times ``due_contacts(now, 500)`` — the query every tick starts with. For
contrast, in the same run:

- bare:     a primary-key lookup on the same database (the floor for any query);
- no index: the same due query forced to scan (``NOT INDEXED``), i.e. what
  the tick would cost without the ``wake_at`` index.

Targets: due_contacts <= 20 ms per query, growth 10k -> 1M <= 1.5x.

With ``--postgresql [URL]`` (default ``JOURNEY_TEST_PG``, else the local server) the same
rows go into a PostgreSQL schema of their own (by ``COPY``; dropped afterwards) and the
table gets a PostgreSQL row: ``due_contacts`` through the pooled store, a whole idle
``run_tick`` (lease, run row, in-doubt check, due page, finish: what an idle
``journey run --every`` pays per tick), the primary-key floor, and the due query with
index scans switched off. Targets: the idle tick <= 20 ms at 1M, growth <= 1.5x.

    .venv/bin/python benchmarks/bench_tick_idle.py [--sizes 10000,1000000] [--postgresql [URL]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.store import open_store
from runner.store.codec import to_db_time

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
CHUNK = 50_000


def populate(store, count: int) -> None:
    """``count`` contacts, each in one journey, waiting 1 to 30 days from now."""
    conn = store.conn
    created = to_db_time(NOW - timedelta(days=1))
    for start in range(0, count, CHUNK):
        ids = range(start, min(count, start + CHUNK))
        wakes = {i: to_db_time(NOW + timedelta(minutes=1 + (i * 7919) % (30 * 24 * 60))) for i in ids}
        conn.execute("BEGIN")
        conn.executemany(
            """INSERT INTO contacts (id, email, attributes, created_at, updated_at, wake_at, clock)
               VALUES (?, ?, '{}', ?, ?, ?, ?)""",
            [(f"c{i}", f"c{i}@example.com", created, created, wakes[i], to_db_time(NOW)) for i in ids],
        )
        conn.executemany(
            """INSERT INTO enrollments (id, contact_id, journey_id, version, stage, cursor, status,
                   due_at, entered_at) VALUES (?, ?, 'onboarding', 3, 'education', 'nurture',
                   'active', ?, ?)""",
            [(f"c{i}:onboarding:1", f"c{i}", wakes[i], created) for i in ids],
        )
        conn.execute("COMMIT")
    conn.execute("ANALYZE")


def per_query_ms(query: Callable[[], object], repeat: int) -> float:
    """Median over 5 rounds of the mean time of ``repeat`` calls, in milliseconds."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            query()
        rounds.append((time.perf_counter() - started) / repeat * 1000)
    return statistics.median(rounds)


def measure(size: int, folder: Path) -> dict[str, float]:
    store = open_store(folder / f"idle-{size}.db")
    built = time.perf_counter()
    populate(store, size)
    build_s = time.perf_counter() - built
    assert store.due_contacts(NOW, 500) == []
    conn = store.conn
    scan_sql = "SELECT id FROM contacts NOT INDEXED WHERE wake_at <= ? ORDER BY wake_at LIMIT ?"
    now_text = to_db_time(NOW)
    result = {
        "build_s": build_s,
        "due": per_query_ms(lambda: store.due_contacts(NOW, 500), 2000),
        "bare": per_query_ms(
            lambda: conn.execute("SELECT id FROM contacts WHERE id = ?", ("c1",)).fetchall(), 2000
        ),
        "scan": per_query_ms(lambda: conn.execute(scan_sql, (now_text, 500)).fetchall(), 3),
    }
    store.close()
    return result


def populate_postgresql(url: str, count: int) -> None:
    """The same contacts and enrollments as ``populate``, by COPY into the store's schema."""
    import psycopg

    from runner.store.postgres import parse_location

    where = parse_location(url)
    created, now = NOW - timedelta(days=1), NOW
    with psycopg.connect(where.conninfo, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{where.schema}"')
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy("COPY contacts (id, email, attributes, created_at, updated_at, wake_at, clock) "
                             "FROM STDIN") as copy:
                for i in range(count):
                    wake = NOW + timedelta(minutes=1 + (i * 7919) % (30 * 24 * 60))
                    copy.write_row((f"c{i}", f"c{i}@example.com", "{}", created, created, wake, now))
            with cursor.copy("COPY enrollments (id, contact_id, journey_id, version, stage, cursor, status, due_at, "
                             "entered_at) FROM STDIN") as copy:
                for i in range(count):
                    wake = NOW + timedelta(minutes=1 + (i * 7919) % (30 * 24 * 60))
                    copy.write_row((f"c{i}:onboarding:1", f"c{i}", "onboarding", 3, "education", "nurture",
                                    "active", wake, created))
        conn.execute("ANALYZE contacts")
        conn.execute("ANALYZE enrollments")


class PostgresIdle:
    """One PostgreSQL schema of ``size`` waiting contacts and what is timed on it."""

    def __init__(self, size: int, server: str, folder: Path):
        import psycopg

        from runner.production.deploy import deploy, load_working_tree
        from runner.production.tick import build_runtime
        from runner.store.postgres import open_postgres_store, parse_location

        self.size, self.schema = size, f"bench_idle_{uuid.uuid4().hex[:8]}"
        self.url = f"{server}{'&' if '?' in server else '?'}schema={self.schema}"
        self.conninfo = parse_location(self.url).conninfo
        self.store = open_postgres_store(self.url)
        built = time.perf_counter()
        populate_postgresql(self.url, size)
        self.build_s = time.perf_counter() - built
        assert self.store.due_contacts(NOW, 500) == []
        tree = load_working_tree(Path(__file__).resolve().parent.parent)
        deploy(self.store, tree.journeys, NOW)
        self.runtime = build_runtime(self.store, tree.project, f"outbox:{folder / 'outbox'}")
        self.forced = psycopg.connect(self.conninfo, autocommit=True)
        self.forced.execute(f'SET search_path = "{self.schema}"; SET enable_indexscan = off; '
                            "SET enable_bitmapscan = off; SET enable_indexonlyscan = off")

    def round(self) -> dict[str, float]:
        """One round of every timing, in milliseconds (mean over its calls)."""
        from runner.production.tick import run_tick

        scan_sql = "SELECT wake_at, id FROM contacts WHERE wake_at <= %s ORDER BY wake_at, id LIMIT 500"
        timings = {"due": (lambda: self.store.due_contacts(NOW, 500), 200),
                   "tick": (lambda: run_tick(self.store, self.runtime, NOW), 10),
                   "bare": (lambda: self.store.wake_at("c1"), 200),
                   "scan": (lambda: self.forced.execute(scan_sql, (NOW,)).fetchall(), 1)}
        found = {}
        for name, (query, repeat) in timings.items():
            started = time.perf_counter()
            for _ in range(repeat):
                query()
            found[name] = (time.perf_counter() - started) / repeat * 1000
        return found

    def close(self) -> None:
        import psycopg

        self.forced.close()
        if self.runtime.delivery is not None:
            self.runtime.delivery.close()
        self.store.close()
        with psycopg.connect(self.conninfo, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def measure_postgresql(sizes: list[int], server: str, folder: Path, rounds: int = 9) -> dict[int, dict[str, float]]:
    """Median per size of ``rounds`` rounds taken in turn on every size, so a busy moment of a
    shared machine falls on all sizes alike rather than on one."""
    setups = []
    try:
        for size in sizes:
            setups.append(PostgresIdle(size, server, folder))
        taken: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
        for _ in range(rounds):
            for setup in setups:
                taken[setup.size].append(setup.round())
        results = {}
        for setup in setups:
            results[setup.size] = {name: statistics.median(r[name] for r in taken[setup.size])
                                   for name in taken[setup.size][0]}
            results[setup.size]["build_s"] = setup.build_s
        return results
    finally:
        for setup in setups:
            setup.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--postgresql", nargs="?", const=os.environ.get(
        "JOURNEY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"), metavar="URL")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.postgresql:
        postgresql(sizes, args.postgresql)
        return
    print(f"{'contacts':>9} {'due ms':>8} {'bare ms':>8} {'due/bare':>9} {'no-index ms':>12} "
          f"{'build s':>8}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            r = results[size] = measure(size, Path(tmp))
            print(f"{size:>9} {r['due']:>8.4f} {r['bare']:>8.4f} {r['due'] / r['bare']:>9.2f} "
                  f"{r['scan']:>12.2f} {r['build_s']:>8.1f}", flush=True)
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        print(f"growth {sizes[0]} -> {sizes[-1]}: due_contacts {large['due'] / small['due']:.2f}x "
              f"(target <= 1.5x), bare {large['bare'] / small['bare']:.2f}x, "
              f"no-index {large['scan'] / small['scan']:.1f}x")


def postgresql(sizes: list[int], server: str) -> None:
    print(f"PostgreSQL {server}")
    print(f"{'contacts':>9} {'due ms':>8} {'idle tick ms':>13} {'bare ms':>8} {'due/bare':>9} {'no-index ms':>12} "
          f"{'build s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        results = measure_postgresql(sizes, server, Path(tmp))
    for size, r in results.items():
        print(f"{size:>9} {r['due']:>8.4f} {r['tick']:>13.2f} {r['bare']:>8.4f} {r['due'] / r['bare']:>9.2f} "
              f"{r['scan']:>12.2f} {r['build_s']:>8.1f}", flush=True)
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        print(f"growth {sizes[0]} -> {sizes[-1]}: due_contacts {large['due'] / small['due']:.2f}x, idle tick "
              f"{large['tick'] / small['tick']:.2f}x (target <= 1.5x, <= 20 ms), bare {large['bare'] / small['bare']:.2f}x, "
              f"no-index {large['scan'] / small['scan']:.1f}x")


if __name__ == "__main__":
    main()
