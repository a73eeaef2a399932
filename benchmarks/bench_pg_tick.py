"""One worker's busy tick on PostgreSQL: where its time goes, client and server.

``bench_workers.py`` gives the wall-clock sends/s; on a machine shared by other jobs
those swing, so this one measures what does not: per send, the worker's own CPU time
(process_time), the CPU time of its database server backends (``/proc/<pid>/stat`` of
the backends whose ``application_name`` is this run's, found through
``pg_stat_activity``: the server must run on this host), and per page of due
contacts the round trips the worker waits on (libpq's ``ReadyForQuery`` messages, each
one a wait for the server) and the statements it sends, counted from libpq's protocol
trace (``--trace``; the trace costs CPU, so those runs are counted, not timed).

The tick is ``bench_workers.py``'s: N contacts due for one email each, one worker
(``run_tick(shared=True)``, as ``journey run --workers``), the null transport.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_pg_tick.py [--sends 5000] [--rounds 2] [--trace]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's runner, not whichever is installed
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

import psycopg  # noqa: E402
from bench_tick import ONE_EMAIL, _CountingTransport  # noqa: E402
from bench_tick_idle import NOW  # noqa: E402
from bench_workers import PG_SERVER, SECRET, prepare  # noqa: E402
from test_tick_kit import tiny_project  # noqa: E402

from runner.production.deploy import load_project_file  # noqa: E402
from runner.production.tick import BATCH, build_runtime, run_tick  # noqa: E402
from runner.store import open_store  # noqa: E402

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def backend_cpu(application: str) -> dict[int, float]:
    """CPU seconds (user + system) of each server backend of ``application`` so far."""
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        pids = [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application,))]
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND
    return found


def traced_connections(folder: Path) -> list[Path]:
    """Make every new psycopg connection write libpq's protocol trace to a file of its own."""
    files: list[Path] = []
    original = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

    def connect(cls, *args, **kwargs):
        conn = original(cls, *args, **kwargs)
        path = folder / f"trace-{len(files)}.txt"
        files.append(path)
        handle = open(path, "w")  # noqa: SIM115 - open as long as the connection
        conn.pgconn.trace(handle.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        conn._trace_file = handle  # type: ignore[attr-defined]  # kept alive with the connection
        return conn

    psycopg.Connection.connect = classmethod(connect)  # type: ignore[method-assign, assignment]
    return files


def count_messages(files: list[Path]) -> Counter:
    """Frontend statements and backend ReadyForQuery messages in the traces."""
    counts: Counter = Counter()
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            match = re.match(r"\s*(F|B)\s+\d+\s+(\w+)", line)
            if not match:
                continue
            direction, message = match.groups()
            if direction == "B" and message == "ReadyForQuery":
                counts["round trips"] += 1
            elif direction == "F" and message in ("Query", "Parse"):
                counts["statements (text)"] += 1
            elif direction == "F" and message == "Bind":
                counts["statements"] += 1
    counts["statements"] += counts["statements (text)"]
    return counts


def one_tick(root: Path, sends: int, trace_folder: Path | None) -> dict[str, float]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    application = f"journey-bench-{uuid.uuid4().hex[:8]}"
    location = f"{PG_SERVER}{'&' if '?' in PG_SERVER else '?'}schema={schema}&application_name={application}"
    try:
        prepare(location, root, sends)
        files = traced_connections(trace_folder) if trace_folder is not None else []
        store = open_store(location)
        runtime = build_runtime(store, load_project_file(root), "memory")
        runtime.delivery.transport = _CountingTransport()
        server_before = backend_cpu(application)
        started, cpu = time.perf_counter(), time.process_time()
        report = run_tick(store, runtime, NOW, shared=True)
        wall, client = time.perf_counter() - started, time.process_time() - cpu
        server_after = backend_cpu(application)
        store.close()
        assert report.counts["sent"] == sends, report.counts
        server = sum(seconds - server_before.get(pid, 0.0) for pid, seconds in server_after.items())
        figures = {"sends/s": sends / wall, "client us": client / sends * 1e6, "server us": server / sends * 1e6,
                   "wall us": wall / sends * 1e6, "backends": len(server_after)}
        if files:
            pages = -(-sends // BATCH)
            for name, n in count_messages(files).items():
                figures[f"{name} a page"] = n / pages
        return figures
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trace", action="store_true", help="count round trips and statements (not timed)")
    args = parser.parse_args()
    os.environ["JOURNEY_UNSUBSCRIBE_SECRET"] = SECRET
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root = tiny_project(folder / "project", journeys={"onboarding": ONE_EMAIL})
        for _ in range(args.rounds):
            trace = None
            if args.trace:
                trace = folder / f"trace-{uuid.uuid4().hex[:6]}"
                trace.mkdir()
            figures = one_tick(root, args.sends, trace)
            print("  ".join(f"{name} {value:.1f}" for name, value in figures.items()), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
