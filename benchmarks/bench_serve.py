"""Events per second through ``journey serve``: ``/v1/batch`` and ``/v1/track`` against bare endpoints.

Three processes on loopback, one after another in the same run: the server under test,
and a load generator (asyncio, raw HTTP/1.1 keep-alive connections, pre-built requests,
each with its own ``messageId`` so nothing is deduplicated away). Two servers are measured
with the same load:

* ours: ``journey serve`` itself (a real subprocess: write-key check, size limits, the
  Segment parser shared with ``journey events import``, the store thread's group commit,
  the rejection log middleware);
* bare: uvicorn + Starlette, the same stack, with two endpoints that only ``json.loads`` the
  body and write the same rows with the same ``Store.write_events`` in one transaction on the
  event loop (same database schema and commit durability) before answering.

Each server is measured ``--rounds`` times, interleaved (a burst of other load hits them
alike). Figures: batch events/s and track requests/s (the best round), track p50/p99 latency
(the median round), the server's CPU time per event or request (median; /proc, every thread),
and ours/bare ratios of both. On a machine shared with other work the CPU figure is the
steadier measure of our overhead; the rates say what the machine gave us. Targets (issue 11): batch >= 20,000 events/s, track >= 2,000 requests/s
with p99 <= 50 ms, each at least 1/1.5 of its bare endpoint.

``--memory``: 1,000,000 events through ``/v1/batch`` of ``journey serve``, its RSS sampled
every 100,000 events (VmRSS from /proc): memory must stay flat.

Run: ``.venv/bin/python benchmarks/bench_serve.py [--batch-events 50000] [--track-requests 3000]
[--rounds 3] [--memory]``. Needs nothing beyond the test extras (uvicorn, starlette); Linux for the RSS figure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WRITE_KEY = "wk_bench_0123456789abcdef"
AUTH = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
SAMPLE_PARTS = ("project.yaml", "journeys", "templates")
# bare: the store's default durability (an fsync a commit), like ours; bare-nosync: no fsync (the CPU floor)
SERVERS = ("bare", "bare-nosync", "ours")


# ---------------------------------------------------------------- the bare server


def bare_app(db: str):  # type: ignore[no-untyped-def]
    """uvicorn + Starlette, two endpoints: parse the JSON, write the rows, commit, answer."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from runner.store import open_store
    from runner.store.base import EventRow

    store = open_store(db)
    if os.environ.get("BENCH_SYNC") == "NORMAL":  # the CPU floor: commits survive a kill, not a power cut
        store.set_commit_durability(power_safe=False)

    def row(call: dict) -> EventRow:
        at = datetime.fromisoformat(call["timestamp"].replace("Z", "+00:00"))
        return EventRow(call.get("userId"), call.get("anonymousId"), call["event"], at,
                        call.get("properties") or {}, call["messageId"])

    def write(rows: list[EventRow]) -> Response:
        with store.transaction():
            store.write_events(rows, datetime.now(UTC))
        return Response(b'{"success":true}', media_type="application/json")

    async def batch(request: Request) -> Response:
        return write([row(call) for call in json.loads(await request.body())["batch"]])

    async def track(request: Request) -> Response:
        return write([row(json.loads(await request.body()))])

    return Starlette(routes=[Route("/v1/batch", batch, methods=["POST"]), Route("/v1/track", track, methods=["POST"])])


def run_bare(db: str) -> None:
    """The bare server's process: print the port once listening."""
    import uvicorn

    from runner.serve.server import bind

    sock = bind("127.0.0.1", 0)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(bare_app(db), log_level="warning", access_log=False, log_config=None)).run(
        sockets=[sock])


# ---------------------------------------------------------------- the load generator


def track_call(n: int, tag: str) -> dict:
    return {"type": "track", "userId": f"u{n % 5000:05d}", "event": "page_viewed", "messageId": f"{tag}-{n}",
            "timestamp": "2026-03-02T09:00:00Z", "properties": {"path": f"/pricing/{n % 7}", "plan": "team"}}


def request_bytes(path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {AUTH}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def build_requests(kind: str, count: int, per_batch: int, tag: str) -> list[bytes]:
    if kind == "track":
        return [request_bytes("/v1/track", json.dumps(track_call(n, tag)).encode()) for n in range(count)]
    return [request_bytes("/v1/batch", json.dumps(
        {"batch": [track_call(n * per_batch + i, tag) for i in range(per_batch)]}).encode()) for n in range(count)]


async def _connection(port: int, queue: list[bytes], latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue:
            payload = queue.pop()
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append((head.split(b"\r\n", 1)[0] + b" " + body[:200]).decode(errors="replace"))
    finally:
        writer.close()


async def _load(port: int, requests: list[bytes], connections: int) -> dict:
    queue = list(reversed(requests))
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, queue, latencies, errors) for _ in range(connections)))
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"requests": len(latencies), "seconds": seconds, "errors": len(errors), "first_error": errors[:1],
            "p50_ms": 1000 * statistics.median(ordered),
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}


def run_load(port: int, kind: str, count: int, per_batch: int, connections: int, tag: str) -> None:
    """The load generator's process: build every request first, then send them; print the figures as JSON."""
    requests = build_requests(kind, count, per_batch, tag)
    print(json.dumps(asyncio.run(_load(port, requests, connections))), flush=True)


# ---------------------------------------------------------------- the driver


def project_copy(folder: Path) -> Path:
    """The sample project (its project.yaml is all the server reads) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in SAMPLE_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, folder / part)
        else:
            shutil.copy2(source, folder / part)
    return folder


def start(args: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "JOURNEY_WRITE_KEYS": WRITE_KEY, **(extra_env or {})}
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline() if ready else ""
    if line.startswith("{"):
        line = json.loads(line)["message"]
    if "listening on " not in line:
        process.kill()
        raise SystemExit(f"server did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
    url = line.split("listening on ", 1)[1].split()[0]
    for stream in (process.stdout, process.stderr):  # drained, so a chatty server never blocks on a full pipe
        threading.Thread(target=stream.read, daemon=True).start()
    return process, int(url.rsplit(":", 1)[1])


def load(port: int, kind: str, count: int, per_batch: int, connections: int, tag: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--load", str(port), kind, str(count), str(per_batch),
                             str(connections), tag], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def ours(folder: Path, db: Path) -> tuple[subprocess.Popen, int]:
    return start([sys.executable, "-m", "runner", "serve", "--port", "0", "--db", str(db), "--log-format", "json"],
                 project_copy(folder))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of ``pid`` so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(process: subprocess.Popen, port: int, kind: str, count: int, per: int, connections: int,
             tag: str) -> dict:
    """One load run, with the server's CPU seconds spent on it (robust on a busy machine)."""
    before = cpu_seconds(process.pid)
    figures = load(port, kind, count, per, connections, tag)
    figures["server_cpu"] = cpu_seconds(process.pid) - before
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-events", type=int, default=50_000)
    parser.add_argument("--track-requests", type=int, default=3_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="each server measured this often, interleaved")
    parser.add_argument("--memory", action="store_true", help="1M events through /v1/batch, RSS every 100k")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        if args.memory:
            memory(folder)
            return
        servers: dict[str, tuple[subprocess.Popen, int]] = {}
        try:
            for server in SERVERS:  # all three up at once, idle but for the one under load
                if server.startswith("bare"):
                    sync = {"BENCH_SYNC": "NORMAL" if server == "bare-nosync" else "FULL"}
                    servers[server] = start([sys.executable, __file__, "--bare", str(folder / f"{server}.db")],
                                            folder, sync)
                else:
                    servers[server] = ours(folder / "ours", folder / "ours.db")
                load(servers[server][1], "batch", 20, 100, 4, f"{server}-warm")
            runs: dict[str, dict[str, list[dict]]] = {server: {"batch": [], "track": []} for server in SERVERS}
            for round_ in range(args.rounds):  # interleaved: a burst of load elsewhere hits every server alike
                for server, (process, port) in servers.items():
                    runs[server]["batch"].append(measured(process, port, "batch", args.batch_events // 100, 100,
                                                          args.connections, f"{server}-b{round_}"))
                    runs[server]["track"].append(measured(process, port, "track", args.track_requests, 1,
                                                          args.connections, f"{server}-t{round_}"))
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.communicate(timeout=60)
        report(runs)


def report(runs: dict) -> None:
    """Per server: the best round's rates (the least disturbed by other load), the median round's
    latency, and the server CPU per event (median): the overhead figure that load elsewhere moves least."""
    rows = {}
    for server in SERVERS:
        batch, track = runs[server]["batch"], runs[server]["track"]
        rows[server] = {
            "batch": max(run["requests"] * 100 / run["seconds"] for run in batch),
            "batch_cpu_us": statistics.median(1e6 * run["server_cpu"] / (run["requests"] * 100) for run in batch),
            "track": max(run["requests"] / run["seconds"] for run in track),
            "p50": statistics.median(run["p50_ms"] for run in track),
            "p99": statistics.median(run["p99_ms"] for run in track),
            "track_cpu_us": statistics.median(1e6 * run["server_cpu"] / run["requests"] for run in track),
            "errors": sum(run["errors"] for run in batch + track),
        }
    print(f"{'server':<12} {'batch ev/s':>11} {'CPU/event':>10} {'track req/s':>12} {'CPU/req':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7} errors")
    for server, row in rows.items():
        print(f"{server:<12} {row['batch']:>11,.0f} {row['batch_cpu_us']:>8.0f}us {row['track']:>12,.0f} "
              f"{row['track_cpu_us']:>7.0f}us {row['p50']:>7.2f} {row['p99']:>7.2f} {row['errors']}")
    ours_row = rows["ours"]
    for bare in ("bare", "bare-nosync"):
        row = rows[bare]
        print(f"{bare}/ours: batch {row['batch'] / ours_row['batch']:.2f}x rate, "
              f"{ours_row['batch_cpu_us'] / row['batch_cpu_us']:.2f}x CPU; track {row['track'] / ours_row['track']:.2f}x "
              f"rate, {ours_row['track_cpu_us'] / row['track_cpu_us']:.2f}x CPU")
    print("targets: ours batch >= 20,000 ev/s, track >= 2,000 req/s with p99 <= 50 ms, each within 1.5x of bare")
    for server in SERVERS:
        for kind in ("batch", "track"):
            failed = [run["first_error"] for run in runs[server][kind] if run["errors"]]
            if failed:
                print(f"{server} {kind}: first error {failed[0]}")


def memory(folder: Path) -> None:
    process, port = ours(folder / "ours", folder / "ours.db")
    try:
        load(port, "batch", 20, 100, 4, "warm")
        samples = [(0, rss_kib(process.pid))]
        for step in range(10):
            load(port, "batch", 1000, 100, 16, f"m{step}")
            samples.append(((step + 1) * 100_000, rss_kib(process.pid)))
        for events, kib in samples:
            print(f"{events:>9,} events  RSS {kib / 1024:7.1f} MiB")
        print(f"growth from 100k to 1M events: {(samples[-1][1] - samples[1][1]) / 1024:.1f} MiB")
    finally:
        process.terminate()
        process.communicate(timeout=60)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        run_bare(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "--load":
        port, kind, count, per_batch, connections, tag = sys.argv[2:8]
        run_load(int(port), kind, int(count), int(per_batch), int(connections), tag)
    else:
        main()
