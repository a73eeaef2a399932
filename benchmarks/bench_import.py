"""Import speed and memory: `runner.production.ingest.import_events` vs a bare sqlite3 baseline.

For each size (default 100k and 1M generated Segment track events) two fresh
processes run on the same JSONL file:

- baseline: read the file, ``json.loads`` each line, ``executemany`` the rows
  into an events table of the same shape (same schema, indexes, page cache
  and batch size) — the least any importer must do;
- runner:   ``import_events`` (validation, timestamp normalisation, message
  id dedup, contact creation, wake-ups, batched transactions).

Prints events/s, the wall-time ratio runner/baseline (target <= 3), the
CPU-time ratio (steadier on a busy machine) and each process's peak RSS
(resource.getrusage), which must stay flat as the input grows.

    .venv/bin/python benchmarks/bench_import.py [--sizes 100000,1000000] [--postgresql [URL]]

``--postgresql`` (default URL ``JOURNEY_TEST_PG``, else the local server) runs the same
comparison on PostgreSQL: ``import_events`` into the PostgreSQL store against a bare
``COPY`` of the same parsed rows into the same events table, each in a fresh schema.
Targets there: >= 100,000 events/s at 1M, <= 3x the bare COPY.

``--two-connections`` (with ``--postgresql``) also times a bare COPY of the same rows on two
connections at once, each copying half of the batches with no turn-taking: the most this machine's
server takes from any importer, whatever its client does (the ratio stays against one connection,
which is what the import uses: its batches commit in file order).

``--server-costs`` (with ``--postgresql``) prints the server CPU a row of a bare binary COPY into
the events table of a migrated schema, with each index and trigger dropped in turn, and with the
import's own statements of a batch (the message-id look-up, contacts created or woken).

``--stages`` (with ``--postgresql``) prints where the CPU of an import goes, in µs an event
(process_time, best of 3 for the parsing stages): reading and decoding lines, JSON, the
Segment mapping and its checks (``parse_segment``), then a whole import's client CPU with
what is left for the store's writes, and the CPU of the PostgreSQL backend that served it
(from /proc, so only for a server on this machine; one pooled connection).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

USERS_PER_EVENT = 0.1
BATCH = 5000


def generate(path: Path, count: int) -> None:
    rng = random.Random(42)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    users = max(1, int(count * USERS_PER_EVENT))
    names = ["page_viewed", "email_clicked", "content_downloaded", "signed_up", "purchased"]
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            at = start + timedelta(seconds=rng.randrange(90 * 86400))
            out.write(json.dumps({
                "type": "track",
                "userId": f"user-{rng.randrange(users)}",
                "event": rng.choice(names),
                "messageId": f"msg-{i}",
                "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "properties": {"path": f"/page/{rng.randrange(500)}", "n": i},
            }) + "\n")


def run_baseline(source: Path, db: Path) -> int:
    import sqlite3

    from runner.store import open_store
    from runner.store.sqlite import CACHE_KIB

    open_store(db).close()  # the same schema, indexes and settings
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    sql = ("INSERT OR IGNORE INTO events (contact_id, anonymous_id, name, at, properties, message_id)"
           " VALUES (?, ?, ?, ?, ?, ?)")
    rows, total = [], 0
    with source.open(encoding="utf-8") as handle:
        for line in handle:
            o = json.loads(line)
            rows.append((o["userId"], None, o["event"], o["timestamp"],
                         json.dumps(o["properties"]), o["messageId"]))
            if len(rows) == BATCH:
                conn.execute("BEGIN")
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
                total += len(rows)
                rows = []
    if rows:
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        total += len(rows)
    conn.close()
    return total


def run_baseline_postgresql(source: Path, url: str, me: int = 0, workers: int = 1) -> int:
    """The least a PostgreSQL importer must do: parse each line and COPY the rows into the
    events table of a migrated schema (same columns, indexes and unique message id), a
    transaction per batch. With ``workers``: this connection's share, batch k to worker k % workers."""
    import psycopg

    from runner.store.postgres import open_postgres_store, parse_location

    open_postgres_store(url).close()  # the same schema, indexes and triggers
    where = parse_location(url)
    total = 0
    with psycopg.connect(where.conninfo, autocommit=True) as conn, source.open(encoding="utf-8") as handle:
        conn.execute(f'SET search_path = "{where.schema}"')
        rows: list[tuple] = []

        def flush() -> None:
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(
                    "COPY events (contact_id, anonymous_id, name, at, properties, message_id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

        for number, line in enumerate(handle):
            if number // BATCH % workers != me:
                continue
            o = json.loads(line)
            rows.append((o["userId"], None, o["event"], o["timestamp"], json.dumps(o["properties"]), o["messageId"]))
            if len(rows) == BATCH:
                flush()
                total += len(rows)
                rows = []
        if rows:
            flush()
            total += len(rows)
    return total


def run_baseline_postgresql_pair(source: Path, url: str) -> int:
    """``run_baseline_postgresql`` on two connections at once (two processes), each its share."""
    from concurrent.futures import ProcessPoolExecutor

    from runner.store.postgres import open_postgres_store

    open_postgres_store(url).close()  # migrated once, before the two start
    with ProcessPoolExecutor(2) as pool:
        return sum(pool.map(run_baseline_postgresql, [source] * 2, [url] * 2, [0, 1], [2, 2]))


def run_runner(source: Path, db: Path) -> int:
    from runner.production.ingest import import_events
    from runner.store import open_store

    store = open_store(str(db))
    try:
        result = import_events(store, source)
    finally:
        store.close()
    assert not result.bad, result.bad[:3]
    return result.imported


def worker(kind: str, source: Path, db) -> None:
    def cpu() -> float:  # this process's and its finished children's (a second import process)
        return sum(usage.ru_utime + usage.ru_stime for usage in
                   (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))

    started, started_cpu = time.perf_counter(), cpu()
    runners = {"baseline": run_baseline, "runner": run_runner, "pg-baseline": run_baseline_postgresql,
               "pg-runner": run_runner, "pg-baseline2": run_baseline_postgresql_pair}
    count = runners[kind](source, db)
    elapsed, cpu_seconds = time.perf_counter() - started, cpu() - started_cpu
    peak_kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # a second process's too
    print(json.dumps({"count": count, "seconds": elapsed, "cpu": cpu_seconds,
                      "peak_mib": peak_kib / 1024}))


def measure(kind: str, source: Path, folder: Path, server: str | None = None) -> dict:
    db = folder / f"{kind}.db" if server is None else f"{server}{'&' if '?' in server else '?'}schema={_schema(kind)}"
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(source), str(db)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "SOURCE", "DB"))
    parser.add_argument("--postgresql", nargs="?", const=os.environ.get(
        "JOURNEY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"), metavar="URL")
    parser.add_argument("--stages", action="store_true", help="with --postgresql: CPU an event of each stage")
    parser.add_argument("--two-connections", action="store_true",
                        help="with --postgresql: also a bare COPY on two connections at once (the server's ceiling)")
    parser.add_argument("--server-costs", action="store_true",
                        help="with --postgresql: server CPU a row of a bare COPY without each index and trigger")
    args = parser.parse_args()
    if args.worker:
        kind, source, db = args.worker
        worker(kind, Path(source), db if kind.startswith("pg-") else Path(db))
        return
    if args.postgresql and args.stages:
        for size in (int(s) for s in args.sizes.split(",")):
            stages(size, args.postgresql)
        return
    if args.postgresql and args.server_costs:
        for size in (int(s) for s in args.sizes.split(",")):
            server_costs(size, args.postgresql)
        return
    if args.postgresql:
        postgresql([int(s) for s in args.sizes.split(",")], args.postgresql, args.two_connections)
        return
    print(f"{'events':>9} {'baseline ev/s':>14} {'runner ev/s':>12} {'ratio':>6} "
          f"{'cpu ratio':>10} {'base MiB':>9} {'runner MiB':>11}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            source = folder / "events.jsonl"
            generate(source, size)
            base = measure("baseline", source, folder)
            ours = measure("runner", source, folder)
            assert base["count"] == ours["count"] == size, (base, ours)
            ratio = ours["seconds"] / base["seconds"]
            cpu_ratio = ours["cpu"] / base["cpu"]
            print(f"{size:>9} {size / base['seconds']:>14,.0f} {size / ours['seconds']:>12,.0f} "
                  f"{ratio:>6.2f} {cpu_ratio:>10.2f} {base['peak_mib']:>9.1f} "
                  f"{ours['peak_mib']:>11.1f}", flush=True)


_SCHEMAS: dict[str, str] = {}


def _schema(kind: str) -> str:
    return _SCHEMAS.setdefault(kind, f"bench_import_{kind.replace('-', '_')}_{uuid.uuid4().hex[:8]}")


def stages(size: int, server: str) -> None:
    """CPU an event of each stage of ``import_events`` into PostgreSQL (see the module doc)."""
    from runner.production import ingest
    from runner.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "events.jsonl"
        generate(source, size)
        passes = {"lines": lambda: ingest._lines(source, None),
                  "json": lambda: ingest._json_objects(source, None),
                  "records": lambda: ingest._event_jsonl_records(source, None)}
        cpu = {}
        for name, records in passes.items():
            best = []
            for _ in range(3):
                started = time.process_time()
                for _record in records():
                    pass
                best.append(time.process_time() - started)
            cpu[name] = min(best) / size * 1e6
        schema = _schema("stages")
        store = open_store(f"{server}{'&' if '?' in server else '?'}schema={schema}&pool_max=1")
        try:
            backend = store._one("SELECT pg_backend_pid()")
            server_before = _process_cpu(backend)
            started = time.process_time()
            result = ingest.import_events(store, source)
            client = (time.process_time() - started) / size * 1e6
            server_cpu = (_process_cpu(backend) - server_before) / size * 1e6
        finally:
            store.close()
            import psycopg

            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            _SCHEMAS.clear()
        assert result.imported == size, result
    print(f"CPU us an event, {size:,} events: read+decode {cpu['lines']:.2f}, JSON {cpu['json'] - cpu['lines']:.2f}, "
          f"parse_segment {cpu['records'] - cpu['json']:.2f}, store writes {client - cpu['records']:.2f} "
          f"(client {client:.2f}); PostgreSQL backend {server_cpu:.2f}")


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process on this machine (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgresql(sizes: list[int], server: str, two_connections: bool = False) -> None:
    """The same comparison on PostgreSQL: ``import_events`` into a PostgresStore against a bare
    COPY of the same rows, each in a fresh schema (dropped afterwards); with ``two_connections``
    also the bare COPY on two connections at once."""
    import psycopg

    print(f"PostgreSQL {server}")
    print(f"{'events':>9} {'COPY ev/s':>10} {'COPY x2 ev/s':>13} {'runner ev/s':>12} {'ratio':>6} {'cpu ratio':>10} "
          f"{'base MiB':>9} {'runner MiB':>11}")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            source = folder / "events.jsonl"
            generate(source, size)
            try:
                base = measure("pg-baseline", source, folder, server)
                pair = measure("pg-baseline2", source, folder, server) if two_connections else None
                ours = measure("pg-runner", source, folder, server)
            finally:
                with psycopg.connect(server, autocommit=True) as admin:
                    for schema in _SCHEMAS.values():
                        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                _SCHEMAS.clear()
            assert base["count"] == ours["count"] == size and (pair is None or pair["count"] == size), (base, ours)
            doubled = f"{size / pair['seconds']:>13,.0f}" if pair else f"{'-':>13}"
            print(f"{size:>9} {size / base['seconds']:>10,.0f} {doubled} {size / ours['seconds']:>12,.0f} "
                  f"{ours['seconds'] / base['seconds']:>6.2f} {ours['cpu'] / base['cpu']:>10.2f} "
                  f"{base['peak_mib']:>9.1f} {ours['peak_mib']:>11.1f}", flush=True)


SERVER_COST_VARIANTS = {
    "as migrated": [],
    "without the engagement_counts trigger": ["DROP TRIGGER engagement_counts_insert ON events"],
    "without events_contact": ["DROP INDEX events_contact"],
    "without events_anonymous": ["DROP INDEX events_anonymous"],
    "without the unique message_id": ["ALTER TABLE events DROP CONSTRAINT events_message_id_key"],
    "without the primary key": ["ALTER TABLE events DROP CONSTRAINT events_pkey"],
    "heap only (no index, no trigger)": [
        "DROP TRIGGER engagement_counts_insert ON events", "DROP INDEX events_contact", "DROP INDEX events_anonymous",
        "ALTER TABLE events DROP CONSTRAINT events_message_id_key", "ALTER TABLE events DROP CONSTRAINT events_pkey"],
}


def server_costs(size: int, server: str) -> None:
    """Server CPU µs a row of a bare binary COPY into ``events`` (batches of the import's size, a
    transaction each), as migrated and with each index or trigger dropped; then as migrated with
    the import's statements of each batch (message-id look-up; contacts created or woken)."""
    import psycopg

    from runner.production import ingest
    from runner.store import open_store, pgsql
    from runner.store.pgconnect import ADAPTERS
    from runner.store.postgres import parse_location

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "events.jsonl"
        generate(source, size)
        rows = [(o.contact_id, o.anonymous_id, o.name, o.at, o.properties, o.message_id) for o in (
            ingest.parse_segment(value).event for _, value in ingest._json_objects(source, None))]
    print(f"server CPU us a row, bare binary COPY of {size:,} events in batches of {ingest.BATCH_SIZE:,} (PostgreSQL backend, /proc)")
    variants = [(name, ddl, False) for name, ddl in SERVER_COST_VARIANTS.items()]
    for name, ddl, statements in [*variants, ("as migrated, with the import's look-up and wake-up", [], True)]:
        schema = _schema(f"cost{len(_SCHEMAS)}")
        url = f"{server}{'&' if '?' in server else '?'}schema={schema}"
        open_store(url).close()
        try:
            with psycopg.connect(parse_location(url).conninfo, autocommit=True, context=ADAPTERS) as conn:
                conn.execute(f'SET search_path = "{schema}"')
                for statement in ddl:
                    conn.execute(statement)
                backend = conn.info.backend_pid
                before, started = _process_cpu(backend), time.perf_counter()
                for start in range(0, len(rows), ingest.BATCH_SIZE):
                    batch = rows[start:start + ingest.BATCH_SIZE]
                    with conn.transaction():
                        if statements:
                            last_id, _ = conn.execute(pgsql.EVENTS_STORED, ([row[5] for row in batch],)).fetchone()
                        with conn.cursor() as cursor, cursor.copy(pgsql.EVENTS_COPY) as copy:
                            copy.set_types(pgsql.EVENTS_COPY_TYPES)
                            for row in batch:
                                copy.write_row(row)
                        if statements:
                            conn.execute(pgsql.CREATE_OR_WAKE_COPIED, {"now": rows[0][3], "since": last_id})
                used, wall = _process_cpu(backend) - before, time.perf_counter() - started
        finally:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            _SCHEMAS.clear()
        print(f"  {name:52} {used / size * 1e6:6.2f}   (wall {wall / size * 1e6:6.2f})", flush=True)


if __name__ == "__main__":
    main()
