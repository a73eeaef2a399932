"""Messages per second through our SMTP transport vs a bare smtplib loop.

The server is aiosmtpd's Sink handler in a separate process (so it does not
share our GIL), on 127.0.0.1. Every figure is measured in this run against
the same server with the same pre-built messages:

* bare-1: one ``smtplib.SMTP`` connection, ``send_message`` in a loop
* ours-1: ``open_transport("smtp://…")`` (one reused connection)
* bare-N: N threads, each with its own ``smtplib.SMTP`` connection
* ours-N: ``open_pool(url, N).send_all(messages)``

Run: ``.venv/bin/python benchmarks/bench_smtp.py [--messages 2000] [--connections 4]``.
The target is ours/bare >= 0.8 for both.
"""

from __future__ import annotations

import argparse
import smtplib
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.message import build_message  # noqa: E402
from runner.render import RenderedEmail  # noqa: E402
from runner.transports import open_pool, open_transport  # noqa: E402

HTML = "<html><body>" + "<p>Three ideas for your lifecycle programme this week.</p>" * 40 + "</body></html>"
TEXT = "Three ideas for your lifecycle programme this week.\n" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.recv(100)  # the greeting: the server is up
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("aiosmtpd did not start")


def messages(count: int) -> list[EmailMessage]:
    date = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
    return [
        build_message(
            RenderedEmail(subject=f"Three ideas for you #{i}", html=HTML, text=TEXT),
            to=f"contact{i}@example.com",
            sender="Acme Cloud <hello@acme.test>",
            reply_to="support@acme.test",
            idempotency_key=f"contact{i}:newsletter:1/1/ideas",
            list_id="newsletter",
            unsubscribe_url=f"https://acme.test/unsubscribe?token=t{i}",
            unsubscribe_mailto="unsubscribe@acme.test",
            date=date,
        )
        for i in range(count)
    ]


def bare_loop(port: int, batch: list[EmailMessage]) -> None:
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for message in batch:
            smtp.send_message(message)


def bare_parallel(port: int, batch: list[EmailMessage], connections: int) -> None:
    shards = [batch[i::connections] for i in range(connections)]
    with ThreadPoolExecutor(connections) as workers:
        list(workers.map(lambda shard: bare_loop(port, shard), shards))


def ours_single(url: str, batch: list[EmailMessage]) -> None:
    transport = open_transport(url)
    for message in batch:
        transport.send(message)
    transport.close()


def ours_pool(url: str, batch: list[EmailMessage], connections: int) -> None:
    pool = open_pool(url, connections)
    results = pool.send_all(batch)
    pool.close()
    failures = [r for r in results if isinstance(r, Exception)]
    if failures:
        raise SystemExit(f"{len(failures)} sends failed, first: {failures[0]}")


def rate(run, count: int, repeats: int) -> float:
    """Best of ``repeats`` runs, in messages per second."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    port = free_port()
    server = start_server(port)
    url = f"smtp://127.0.0.1:{port}?starttls=false"
    batch = messages(args.messages)
    n = args.connections
    try:
        rate(lambda: bare_loop(port, batch[:100]), 100, 1)  # warm up both sides
        figures = {
            "bare-1": rate(lambda: bare_loop(port, batch), len(batch), args.repeats),
            "ours-1": rate(lambda: ours_single(url, batch), len(batch), args.repeats),
            f"bare-{n}": rate(lambda: bare_parallel(port, batch, n), len(batch), args.repeats),
            f"ours-{n}": rate(lambda: ours_pool(url, batch, n), len(batch), args.repeats),
        }
    finally:
        server.terminate()
        server.wait(10)

    size = len(batch[0].as_bytes())
    print(f"{len(batch)} messages of {size} bytes to aiosmtpd Sink on 127.0.0.1 (best of {args.repeats})")
    for name, value in figures.items():
        print(f"  {name:8} {value:8.0f} msg/s")
    for connections in ("1", str(n)):
        ratio = figures[f"ours-{connections}"] / figures[f"bare-{connections}"]
        verdict = "ok" if ratio >= 0.8 else "BELOW TARGET"
        print(f"  ratio ours/bare with {connections} connection(s): {ratio:.2f} (target >= 0.80: {verdict})")
    print(f"  speed-up of {n} connections over 1 (ours): {figures[f'ours-{n}'] / figures['ours-1']:.2f}x")


if __name__ == "__main__":
    main()
