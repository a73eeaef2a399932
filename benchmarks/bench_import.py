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

    .venv/bin/python benchmarks/bench_import.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
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


def run_runner(source: Path, db: Path) -> int:
    from runner.production.ingest import import_events
    from runner.store import open_store

    with open_store(db) as store:
        result = import_events(store, source)
    assert not result.bad, result.bad[:3]
    return result.imported


def worker(kind: str, source: Path, db: Path) -> None:
    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    started, started_cpu = time.perf_counter(), cpu()
    count = (run_baseline if kind == "baseline" else run_runner)(source, db)
    elapsed, cpu_seconds = time.perf_counter() - started, cpu() - started_cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"count": count, "seconds": elapsed, "cpu": cpu_seconds,
                      "peak_mib": peak_kib / 1024}))


def measure(kind: str, source: Path, folder: Path) -> dict:
    db = folder / f"{kind}.db"
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(source), str(db)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "SOURCE", "DB"))
    args = parser.parse_args()
    if args.worker:
        kind, source, db = args.worker
        worker(kind, Path(source), Path(db))
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


if __name__ == "__main__":
    main()
