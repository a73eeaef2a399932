"""A busy tick shared by 1, 2 and 4 worker processes, on SQLite and on PostgreSQL.

N contacts due for one email each (a one-step journey), ticked by ``count``
processes that share the due work exactly as ``journey run --workers`` does
(``runner.production.pool``'s worker: its own store, ``run_tick(shared=True)``),
with the outbox transport (a durable ``.eml`` per message) and with a null
transport (counts, keeps nothing; idempotent like the outbox, so the tick
takes the same batched path). Each worker reports when its tick started and
ended; sends/s is all sends over first start to last end (process start-up,
about a second of imports, is left out and printed apart). CPU ms/send is the
workers' own CPU time (process_time) per message: flat from 1 to N workers
means sharing adds no work, so on idle cores throughput grows with N; on a
machine whose cores are taken by other jobs, wall-clock sends/s cannot.

Baselines in the same run, one process, no engine, no database: the bare
per-core render limit, production's ``Delivery.build`` rendering and building
the very messages the tick sends (the signed unsubscribe link, the List-Unsubscribe
mailto, the event in the context: its bytes are checked equal to what a real tick
handed its transport, Date and Message-ID included), and for comparison with the
figures before 7 December 2026 the older hand-made loop (a short fixed link and no
mailto, so its text part stays 7bit where the real message is quoted-printable:
cheaper than any message the tick sends). Targets (issue #12 §4): 2 workers >=
1.6x one worker; one worker >= 50% of the bare render limit.

Per run, ``held`` and ``waited``: the share of the workers' tick time spent inside
their outermost write transactions (commit included) and getting into them (on
SQLite: waiting for the write lock, which one writer holds at a time). With one
worker, ``held`` is the serial fraction f of Amdahl's law on SQLite: N workers
cannot exceed 1/f times one, whatever the cores.

Prints figures and the machine's load average; asserts nothing.

    .venv/bin/python benchmarks/bench_workers.py [--sends 50000] [--workers 1,2,4] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's runner, not whichever is installed
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_tick import ONE_EMAIL, _CountingTransport  # noqa: E402
from bench_tick_idle import NOW  # noqa: E402
from test_tick_kit import add_signups, tiny_project  # noqa: E402

from runner.core.engine import Decision  # noqa: E402
from runner.core.state import Contact  # noqa: E402
from runner.delivery.dispatch import Delivery  # noqa: E402
from runner.delivery.message import build_message  # noqa: E402
from runner.delivery.render import Renderer, render_context  # noqa: E402
from runner.production.deploy import deploy, load_working_tree  # noqa: E402
from runner.store import open_store  # noqa: E402

PG_SERVER = os.environ.get("JOURNEY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-workers-secret-0123456789abcdef"


def bare_render(sends: int, root: Path) -> float:
    """Messages per CPU second of the hand-made loop (before 7 December 2026: a short fixed link, no mailto)."""
    project = load_working_tree(root).project
    renderer = Renderer(project.templates_path)
    journey = type("J", (), {"id": "onboarding", "version": 3, "name": "One email"})()
    started = time.process_time()  # CPU time: the limit of one core, however busy the machine is
    for n in range(sends):
        contact = Contact(f"c{n:05d}", {"email": f"c{n:05d}@example.com", "first_name": f"C{n:05d}"})
        context = render_context(contact, {}, journey, "nurture", project, "https://tiny.test/u?token=x", NOW)
        rendered = renderer.render_email("hello", "Hello {{ contact.first_name }}", context)
        build_message(rendered, to=contact.attributes["email"], sender=project.sender, reply_to=None,
                      idempotency_key=f"{contact.id}:onboarding:1/1/nurture", list_id="onboarding",
                      unsubscribe_url="https://tiny.test/u", unsubscribe_mailto=None, date=NOW).as_bytes()
    return sends / (time.process_time() - started)


def send_decision(n: int) -> Decision:
    """The send decision the engine makes for contact ``n`` of ``prepare`` (signed up, so due, five minutes
    before ``NOW``): what ``Delivery.build`` gets."""
    contact, email = f"c{n:05d}", f"c{n:05d}@example.com"
    return Decision(NOW - timedelta(minutes=5), contact, "onboarding", 3, "education", "nurture", "send", "email hello",
                    f"{contact}:onboarding:1/1/nurture",
                    {"template": "hello", "subject": "Hello {{ contact.first_name }}", "text_template": None,
                     "from": None, "reply_to": None, "to": email,
                     "attributes": {"email": email, "first_name": f"C{n:05d}"}, "scores": {}, "timezone": "UTC",
                     "event": {"name": "signed_up", "properties": {},
                               "timestamp": (NOW - timedelta(minutes=5)).isoformat()}})


def bare_delivery(sends: int, root: Path) -> float:
    """Messages per CPU second production's ``Delivery.build`` renders and builds, the tick's own
    messages and nothing else (no engine, no database, no transport): the per-core limit."""
    project, journey = _project_and_journey(root)
    delivery = Delivery(project, "memory", connect=False)
    decisions = [send_decision(n) for n in range(sends)]
    started = time.process_time()  # CPU time: the limit of one core, however busy the machine is
    for decision in decisions:
        delivery.build(decision, journey).message.as_bytes()
    return sends / (time.process_time() - started)


def _project_and_journey(root: Path):
    tree = load_working_tree(root)
    return tree.project, next(journey for journey in tree.journeys if journey.id == "onboarding")


def same_message_as_the_tick(folder: Path, root: Path) -> bool:
    """Whether ``bare_delivery`` builds byte for byte what a real tick hands its transport (but for the
    multipart boundary, random in every message)."""
    from runner.production.deploy import load_project_file
    from runner.production.tick import build_runtime, run_tick

    location = str(folder / "same-message.db")
    prepare(location, root, 3)
    store = open_store(location)
    runtime = build_runtime(store, load_project_file(root), "memory")
    run_tick(store, runtime, NOW, shared=True)
    sent = {message.recipient: _unbounded(message.as_bytes()) for message in runtime.delivery.transport.messages}
    store.close()
    project, journey = _project_and_journey(root)
    delivery = Delivery(project, "memory", connect=False)
    built = {f"c{n:05d}@example.com": _unbounded(delivery.build(send_decision(n), journey).message.as_bytes())
             for n in range(3)}
    return len(sent) == 3 and built == sent


def _unbounded(message: bytes) -> bytes:
    return re.sub(rb"=_jr_[0-9a-f]+", b"=_jr_BOUNDARY", message)


def prepare(location: str, root: Path, sends: int) -> None:
    store = open_store(location)
    at = NOW - timedelta(minutes=5)
    add_signups(store, sends, at)
    deploy(store, load_working_tree(root).journeys, at)
    store.close()


def worker(location: str, root: str, transport: str, reports: multiprocessing.Queue) -> None:
    """``runner.production.pool.worker_main``'s work, with the null transport swapped in when asked."""
    from runner.production.deploy import load_project_file
    from runner.production.tick import build_runtime, run_tick

    os.environ["JOURNEY_UNSUBSCRIBE_SECRET"] = SECRET
    store = open_store(location)
    runtime = build_runtime(store, load_project_file(Path(root)), transport if transport != "null" else "memory")
    if transport == "null":
        runtime.delivery.transport = _CountingTransport()
    lock = _time_write_transactions(store)
    started, cpu = time.time(), time.process_time()
    report = run_tick(store, runtime, NOW, shared=True)
    reports.put((started, time.time(), report.counts["sent"], time.process_time() - cpu, lock["waited"], lock["held"]))
    runtime.delivery.close()
    store.close()


def _time_write_transactions(store) -> dict[str, float]:
    """Wrap ``store.transaction``: wall seconds spent getting into the worker's outermost write
    transactions (on SQLite: waiting for the write lock) and inside them (holding it)."""
    original, totals, depth = store.transaction, {"waited": 0.0, "held": 0.0}, [0]

    @contextmanager
    def timed(durable: bool = False):
        if depth[0]:  # a savepoint inside the worker's transaction
            with original(durable):
                yield
            return
        depth[0] += 1
        asked = time.perf_counter()
        inside = None
        try:
            with original(durable):
                inside = time.perf_counter()
                yield
        finally:  # after the commit (or rollback)
            depth[0] -= 1
            if inside is not None:
                totals["waited"] += inside - asked
                totals["held"] += time.perf_counter() - inside

    store.transaction = timed
    return totals


def busy(location: str, root: Path, transport: str, count: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    launched = time.time()
    processes = [context.Process(target=worker, args=(location, str(root), transport, reports)) for _ in range(count)]
    for process in processes:
        process.start()
    results = [reports.get() for _ in processes]
    for process in processes:
        process.join()
    first, last = min(r[0] for r in results), max(r[1] for r in results)
    sent = sum(r[2] for r in results)
    worked = sum(r[1] - r[0] for r in results)  # the workers' tick seconds, added up
    return {"sent": sent, "seconds": last - first, "per_s": sent / (last - first), "startup": first - launched,
            "cpu_ms": sum(r[3] for r in results) / sent * 1000,
            "held": sum(r[5] for r in results) / worked, "waited": sum(r[4] for r in results) / worked,
            "shares": sorted(r[2] for r in results)}


def locations(backend: str, folder: Path):
    """A fresh database per run: a SQLite file, or a PostgreSQL schema (dropped afterwards)."""
    if backend == "sqlite":
        return str(folder / f"w-{uuid.uuid4().hex[:8]}.db"), lambda: None
    schema = f"bench_{uuid.uuid4().hex[:12]}"

    def drop() -> None:
        import psycopg

        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return f"{PG_SERVER}{'&' if '?' in PG_SERVER else '?'}schema={schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--transports", default="null,outbox")
    parser.add_argument("--render-sample", type=int, default=3000, help="messages the bare render limit is timed on")
    args = parser.parse_args()
    os.environ["JOURNEY_UNSUBSCRIBE_SECRET"] = SECRET
    counts = [int(n) for n in args.workers.split(",")]
    print(f"load average before: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f} "
          f"on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root = tiny_project(folder / "project", journeys={"onboarding": ONE_EMAIL})
        same = same_message_as_the_tick(folder, root)
        limit = bare_delivery(args.render_sample, root)
        hand = bare_render(args.render_sample, root)
        print(f"bare render + build, one core: {limit:.0f} messages/s, {1000 / limit:.3f} CPU ms each "
              f"(the per-core limit: Delivery.build, the tick's own messages; byte-equal to a tick's: "
              f"{'yes' if same else 'NO'})", flush=True)
        print(f"hand-made loop (before 7 Dec 2026):  {hand:.0f} messages/s, {1000 / hand:.3f} CPU ms each "
              f"(short fixed link, no mailto: a cheaper message than the tick's)", flush=True)
        print(f"{'backend':>10} {'transport':>9} {'workers':>7} {'sends':>7} {'seconds':>8} {'sends/s':>8} "
              f"{'x 1 worker':>10} {'/ render':>8} {'/ hand':>6} {'CPU ms/send':>11} {'held':>5} {'waited':>6} {'start-up s':>10}  "
              "per worker", flush=True)
        for backend in args.backends.split(","):
            for transport in args.transports.split(","):
                one = None
                for count in counts:
                    location, drop = locations(backend, folder)
                    try:
                        prepare(location, root, args.sends)
                        url = "null" if transport == "null" else f"outbox:{folder / ('outbox-' + uuid.uuid4().hex[:8])}"
                        r = busy(location, root, url, count)
                    finally:
                        drop()
                    assert r["sent"] == args.sends, r
                    one = one or r["per_s"]
                    print(f"{backend:>10} {transport:>9} {count:>7} {r['sent']:>7} {r['seconds']:>8.2f} "
                          f"{r['per_s']:>8.0f} {r['per_s'] / one:>10.2f} {r['per_s'] / limit:>8.2f} {r['per_s'] / hand:>6.2f} {r['cpu_ms']:>11.2f} "
                          f"{r['held']:>5.0%} {r['waited']:>6.0%} {r['startup']:>10.2f}  {r['shares']}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f} (2 workers target >= 1.6x one; one worker >= 0.5 of render)")


if __name__ == "__main__":
    main()
