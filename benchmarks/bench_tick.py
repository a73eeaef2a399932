"""Production tick cost: an idle tick over many enrollments, and a tick with 10k due sends.

(a) idle: databases with 10k and 1M contacts, each enrolled and waiting in
    the future (``bench_tick_idle.populate``). Times a whole ``run_tick``
    (lease, run record, in-doubt check, retry query, due query) when nothing
    is due; everything it does is database work. Baseline in the same run: a
    primary-key lookup. Targets: <= 20 ms per idle tick, growth 10k -> 1M <= 1.5x.
(b) busy: 10k contacts due for one email each (a one-step journey). Times
    ``run_tick`` with the outbox transport (one .eml per message, each batch
    made durable with one file-system sync) and with a null transport
    (counts messages, keeps none; idempotent like the outbox, so the tick
    takes the same batched path without the files), against a bare loop
    doing the same rendering and database work by hand in the same run:
    render subject + HTML + text with the project's Renderer, build the MIME
    message, and one SQLite ledger insert + update per message (no files).
    Targets: >= 10k steps/s, tick / bare <= 2.5.
(c) peak Python memory (tracemalloc) of each; it should not grow with the
    number of enrollments.
(d) a catch-up: 1k to 1M contacts due at once, each ticked whole (engine,
    rendering, ledger, journal; null transport) and the due loop's paging
    alone; rows read, us per send and the ratio to the first row, with the
    machine's load average (a 1M whole tick takes tens of minutes here).

Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_tick.py [--sizes 10000,1000000] [--sends 10000]
    .venv/bin/python benchmarks/bench_tick.py --only due --due 1k,10k,100k,1m --due-paging 1k,1m
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's runner, not whichever is installed
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_tick_idle import NOW, per_query_ms, populate  # noqa: E402
from test_tick_kit import add_signups, tiny_project  # noqa: E402

from runner.core.state import Contact  # noqa: E402
from runner.delivery.message import build_message  # noqa: E402
from runner.delivery.render import Renderer, render_context  # noqa: E402
from runner.production.deploy import deploy, load_working_tree  # noqa: E402
from runner.production.tick import Tick, build_runtime, run_tick  # noqa: E402
from runner.store import open_store  # noqa: E402

ONE_EMAIL = """\
id: onboarding
version: 3
name: One email
stages:
  - id: education
    entry: {event: signed_up}
    steps:
      - id: nurture
        email: {template: hello, subject: "Hello {{ contact.first_name }}"}
"""


def _peak(run) -> tuple[object, float]:
    tracemalloc.start()
    try:
        value = run()
        return value, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------- (a) idle


def idle(size: int, folder: Path) -> dict[str, float]:
    root = tiny_project(folder / f"project-{size}", journeys={"onboarding": ONE_EMAIL})
    tree = load_working_tree(root)
    store = open_store(folder / f"idle-{size}.db")
    started = time.perf_counter()
    populate(store, size)
    build_s = time.perf_counter() - started
    deploy(store, tree.journeys, NOW)
    runtime = build_runtime(store, tree.project, f"outbox:{folder / 'idle-outbox'}")
    report = run_tick(store, runtime, NOW)
    assert report.contacts == 0
    tick_ms = per_query_ms(lambda: run_tick(store, runtime, NOW), 20)
    bare_ms = per_query_ms(lambda: store.conn.execute("SELECT id FROM contacts WHERE id = ?", ("c1",)).fetchall(), 2000)
    _, peak = _peak(lambda: [run_tick(store, runtime, NOW) for _ in range(5)])
    store.close()
    return {"tick": tick_ms, "bare": bare_ms, "peak": peak, "build_s": build_s}


# ---------------------------------------------------------------- (b) busy


def busy_tick(sends: int, folder: Path, transport: str, smtp_port: int | None = None, run: int = 0,
              durable: bool = False) -> dict[str, float]:
    name = f"busy-{transport}-{run}-{durable}"
    root = tiny_project(folder / name, journeys={"onboarding": ONE_EMAIL})
    tree = load_working_tree(root)
    store = open_store(folder / f"{name}.db")
    at = NOW - timedelta(minutes=5)
    add_signups(store, sends, at)
    deploy(store, tree.journeys, at)
    url = f"smtp://127.0.0.1:{smtp_port}?retries=0" if transport == "smtp" else f"outbox:{folder / f'outbox-{name}'}"
    runtime = build_runtime(store, tree.project, url)
    if transport == "null":
        runtime.delivery.transport = _CountingTransport()  # keeps nothing: no growing heap to slow the GC

    def tick():
        started = time.perf_counter()
        report = run_tick(store, runtime, NOW, durable_claims=durable)
        return report, time.perf_counter() - started

    report, seconds = tick()
    assert report.counts["sent"] == sends, report.counts
    decisions = sum(v for k, v in report.counts.items() if k.startswith("decision:"))
    runtime.delivery.close()
    store.close()
    return {"seconds": seconds, "per_s": sends / seconds, "decisions_per_s": decisions / seconds}


def repeated(runs: int, work) -> dict[str, float]:
    """``work(run)`` ``runs`` times (each on fresh data): the best run's figures plus min/median seconds."""
    results = [work(run) for run in range(runs)]
    best = min(results, key=lambda r: r["seconds"])
    return {**best, "min": best["seconds"], "median": statistics.median(r["seconds"] for r in results)}


# ---------------------------------------------------------------- (d) due scale


def due_scale(due: int, folder: Path, *, full: bool) -> dict[str, float]:
    """``due`` contacts due at once: rows the due loop reads, and the cost per send.

    ``full``: a whole tick with the null transport (engine, render, ledger). Otherwise
    only the due loop's paging (the part that was quadratic), with each batch's
    contacts handed to a no-op: what a catch-up of that size reads from the index.
    """
    began = time.perf_counter()
    name = f"due-{due}-{'whole' if full else 'paging'}"
    root = tiny_project(folder / name, journeys={"onboarding": ONE_EMAIL})
    tree = load_working_tree(root)
    store = open_store(folder / f"{name}.db")
    at = NOW - timedelta(minutes=5)
    add_signups(store, due, at)
    deploy(store, tree.journeys, at)
    setup = time.perf_counter() - began
    runtime = build_runtime(store, tree.project, f"outbox:{folder / 'due-outbox'}")
    runtime.delivery.transport = _CountingTransport()
    rows = 0

    def counting(read):
        def counted(*args, **kwargs):
            nonlocal rows
            page = read(*args, **kwargs)
            rows += len(page)
            return page
        return counted

    store.due_page = counting(store.due_page)  # a dry run reads pages,
    store.claim_due = counting(store.claim_due)  # a run claims them (contact leases)
    tick = Tick(store, runtime, NOW)
    if not full:
        tick._contacts = lambda contact_ids: None  # the paging alone
    load_before = os.getloadavg()[0]
    began, cpu_began = time.perf_counter(), time.process_time()
    report = tick.run()
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    if full:
        assert report.counts["sent"] == due, report.counts
    store.close()
    for path in folder.glob(f"{name}.db*"):
        path.unlink()  # a 1M-contact database is gigabytes
    return {"due": due, "rows": rows, "seconds": seconds, "cpu_us_per": cpu / due * 1e6, "setup": setup,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def busy_peak(sends: int, folder: Path) -> float:
    root = tiny_project(folder / "busy-peak", journeys={"onboarding": ONE_EMAIL})
    tree = load_working_tree(root)
    store = open_store(folder / "busy-peak.db")
    at = NOW - timedelta(minutes=5)
    add_signups(store, sends, at)
    deploy(store, tree.journeys, at)
    runtime = build_runtime(store, tree.project, "memory")
    runtime.delivery.transport = _CountingTransport()
    _, peak = _peak(lambda: run_tick(store, runtime, NOW))
    store.close()
    return peak


class _CountingTransport:
    """Counts instead of keeping messages (so the peak measures the tick, not the mailbox)."""

    idempotent = True  # keeping nothing, a repeated send changes nothing: the outbox's batched path

    def __init__(self) -> None:
        self.count = 0

    def send(self, message) -> str:
        self.count += 1
        return str(self.count)

    def close(self) -> None:
        pass


def bare(sends: int, folder: Path, run: int = 0) -> dict[str, float]:
    """The same rendering and database work, by hand: no engine, no state, no ledger choreography."""
    root = tiny_project(folder / f"bare-{run}", journeys={"onboarding": ONE_EMAIL})
    project = load_working_tree(root).project
    renderer = Renderer(project.templates_path)
    conn = sqlite3.connect(folder / f"bare-{run}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE sends (key TEXT PRIMARY KEY, state TEXT, transport_id TEXT)")
    journey = type("J", (), {"id": "onboarding", "version": 3, "name": "One email"})()
    started = time.perf_counter()
    for n in range(sends):
        contact = Contact(f"c{n:05d}", {"email": f"c{n:05d}@example.com", "first_name": f"C{n:05d}"})
        key = f"{contact.id}:onboarding:1/1/nurture"
        context = render_context(contact, {}, journey, "nurture", project, "https://tiny.test/u?token=x", NOW)
        rendered = renderer.render_email("hello", "Hello {{ contact.first_name }}", context)
        message = build_message(rendered, to=contact.attributes["email"], sender=project.sender, reply_to=None,
                                idempotency_key=key, list_id="onboarding", unsubscribe_url="https://tiny.test/u",
                                unsubscribe_mailto=None, date=NOW)
        conn.execute("BEGIN")
        conn.execute("INSERT INTO sends VALUES (?, 'claimed', NULL)", (key,))
        conn.execute("UPDATE sends SET state = 'sent', transport_id = ? WHERE key = ?", (str(len(message.as_bytes())), key))
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return {"seconds": seconds, "per_s": sends / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--sends", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="busy ticks per transport (min and median printed)")
    parser.add_argument("--due", default="1k,10k,100k",
                        help="(d) due counts ticked whole (null transport): 1k,10k,100k,1m")
    parser.add_argument("--due-paging", default="1k,100k,1m", help="(d) due counts for the paging alone")
    parser.add_argument("--only", choices=["idle", "busy", "due"], help="run one part only")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.only in (None, "idle"):
            idle_part(sizes, folder)
        if args.only in (None, "busy"):
            busy_part(args.sends, folder, args.runs)
        if args.only in (None, "due"):
            due_part(counts(args.due), counts(args.due_paging), folder)


def counts(text: str) -> list[int]:
    """``1k,10k,1m`` (or plain numbers) as integers."""
    scale = {"k": 1_000, "m": 1_000_000}
    return [int(item[:-1]) * scale[item[-1]] if item[-1] in scale else int(item)
            for item in text.lower().replace("_", "").split(",") if item]


def idle_part(sizes: list[int], folder: Path) -> None:
    print("(a) idle tick (nothing due)")
    print(f"{'enrolled':>9} {'tick ms':>8} {'pk ms':>8} {'tick/pk':>8} {'peak MiB':>9} {'build s':>8}")
    results = {}
    for size in sizes:
        r = results[size] = idle(size, folder)
        print(f"{size:>9} {r['tick']:>8.3f} {r['bare']:>8.4f} {r['tick'] / r['bare']:>8.0f} "
              f"{r['peak']:>9.2f} {r['build_s']:>8.1f}", flush=True)
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        print(f"growth {sizes[0]} -> {sizes[-1]}: idle tick {large['tick'] / small['tick']:.2f}x "
              f"(target <= 1.5x, <= 20 ms), primary-key lookup {large['bare'] / small['bare']:.2f}x, "
              f"peak memory {large['peak'] / max(small['peak'], 1e-9):.2f}x")
    print()


def busy_part(sends: int, folder: Path, runs: int) -> None:
    from bench_smtp import free_port, start_server

    print(f"(b) tick with {sends} due sends, {runs} runs each on fresh data: the best run (min and median seconds)")
    base = repeated(runs, lambda run: bare(sends, folder, run))
    null = repeated(runs, lambda run: busy_tick(sends, folder, "null", run=run))
    outbox = repeated(runs, lambda run: busy_tick(sends, folder, "outbox", run=run))
    os.environ.setdefault("JOURNEY_UNSUBSCRIBE_SECRET", "bench-secret-0123456789abcdef")
    port = free_port()
    server = start_server(port, 0.0)  # aiosmtpd in its own process, dropping what it receives
    try:
        smtp = repeated(runs, lambda run: busy_tick(sends, folder, "smtp", smtp_port=port, run=run))
        fsynced = repeated(runs, lambda run: busy_tick(sends, folder, "smtp", smtp_port=port, run=run, durable=True))
    finally:
        server.kill()
        server.wait()
    peak = busy_peak(sends, folder)
    print(f"{'':>30} {'min s':>7} {'median s':>9} {'sends/s':>8} {'decisions/s':>12} {'/bare':>6}")
    print(f"{'bare render+build+SQLite':>30} {base['min']:>7.2f} {base['median']:>9.2f} {base['per_s']:>8.0f} "
          f"{'':>12} {1:>6.2f}")
    for name, r in (("tick, null transport", null), ("tick, outbox transport", outbox),
                    ("tick, smtp:// one connection", smtp), ("same, claims fsynced (CLI)", fsynced)):
        print(f"{name:>30} {r['min']:>7.2f} {r['median']:>9.2f} {r['per_s']:>8.0f} {r['decisions_per_s']:>12.0f} "
              f"{r['min'] / base['min']:>6.2f}")
    print(f"smtp one connection / outbox: {smtp['per_s'] / outbox['per_s']:.2f}x sends/s (target >= 0.8)")
    print(f"(c) peak Python memory of the busy tick: {peak:.1f} MiB for {sends} sends "
          f"(targets: >= 10000 steps/s, tick/bare <= 2.5)")
    print()


def due_part(full: list[int], paging: list[int], folder: Path) -> None:
    print("(d) many due at once (a catch-up): rows read by the due loop and the cost per send (CPU time of\n"
          "    this process: on a shared machine wall time follows the load), each row once")
    print(f"{'due':>9} {'what':>22} {'rows read':>10} {'setup s':>8} {'wall s':>8} {'cpu us/send':>12} "
          f"{'/first':>7} {'load':>11}")
    for what, sizes, whole in (("whole tick, null", full, True), ("due paging alone", paging, False)):
        first = None
        for due in sizes:
            r = due_scale(due, folder, full=whole)
            first = first or r["cpu_us_per"]
            load = f"{r['load_before']:.1f}-{r['load_after']:.1f}"
            print(f"{due:>9} {what:>22} {r['rows']:>10} {r['setup']:>8.1f} {r['seconds']:>8.2f} "
                  f"{r['cpu_us_per']:>12.1f} {r['cpu_us_per'] / first:>7.2f} {load:>11}", flush=True)


if __name__ == "__main__":
    main()
