"""How fast does the engine simulate a realistic audience? Prints figures, asserts nothing.

Synthetic contacts are shaped like examples/contacts.yaml (the same personas:
attributes, zones, event patterns), each copy shifted by a seeded random
number of days and minutes so entries, waits and sends spread over the
period. Every contact is advanced from the start to 90 days later through the
sample project's journeys, exactly as ``journey simulate`` does (contacts are
independent, so decisions are counted and dropped, as a production run would
persist them).

Figures: wall time, engine events/s where *events = decisions + processed
instants* (an instant is one ``process`` call: a moment with work for one
contact), the peak RSS of the engine's process and of the bare loop's (run in a
process of its own, so neither counts the other's heap), and the ratio to a bare ``heapq`` event loop that pops the
same number of events with a trivial handler, timed in the same run. Run for
10k and 100k contacts to see that cost grows linearly.

    .venv/bin/python benchmarks/bench_simulate.py            # 10k and 100k
    .venv/bin/python benchmarks/bench_simulate.py 2000 20000 # other sizes
"""

from __future__ import annotations

import heapq
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.collector import collector_paused  # noqa: E402
from runner.core import engine as engine_module  # noqa: E402
from runner.core.engine import Engine  # noqa: E402
from runner.core.state import Contact, ContactState, Event  # noqa: E402
from runner.core.vocabulary import SEND_ACTIONS  # noqa: E402
from runner.language.loader import load_project  # noqa: E402
from runner.simulation.rendering import SendRenderer  # noqa: E402
from runner.simulation.testcontacts import load_test_contacts  # noqa: E402

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 90
FULL_SAMPLE = 2_000  # sends rendered in full to price rendering every send


def personas(project_tz: str) -> list[ContactState]:
    """The example contacts with event times resolved against START."""
    return [c.state(START, project_tz) for c in load_test_contacts(ROOT / "examples" / "contacts.yaml")]


def synthetic(templates: list[ContactState], count: int, seed: int = 7):
    """``count`` contacts: persona copies with fresh ids and shifted event times (lazy)."""
    rng = random.Random(seed)
    for n in range(count):
        template = templates[n % len(templates)]
        shift = timedelta(days=rng.randrange(0, 45), minutes=rng.randrange(0, 24 * 60, 5))
        attributes = dict(template.contact.attributes)
        attributes["email"] = f"user{n}@example.test"
        contact = Contact(f"{template.contact.id}-{n}", attributes, template.contact.timezone,
                          list(template.contact.anonymous_ids))
        # the constructor, not dataclasses.replace (which introspects the fields of every event)
        events = [Event(e.name, e.at + shift, e.properties, e.message_id, e.anonymous_id) for e in template.events]
        yield ContactState(contact=contact, events=events)


class InstantCounter:
    """Counts engine instants by wrapping ``_Run.process`` (one attribute increment per call)."""

    def __init__(self):
        self.count = 0
        self.original = engine_module._Run.process

    def __enter__(self):
        original, counter = self.original, self

        def counting(run, instant, previous):
            counter.count += 1
            return original(run, instant, previous)

        engine_module._Run.process = counting
        return self

    def __exit__(self, *exc):
        engine_module._Run.process = self.original


def run_engine(project, journeys, templates, count: int) -> dict:
    """The engine alone (the W2 figure); each contact's sends are also rendered once per
    (step, context shape), timed apart, and the first FULL_SAMPLE sends rendered in full."""
    engine = Engine(project, journeys)
    per_shape = SendRenderer(project, journeys, once_per_shape=True)
    full = SendRenderer(project, journeys)
    end = START + timedelta(days=DAYS)
    actions: Counter = Counter()
    decisions = sends = sampled = failures = 0
    render_wall = full_wall = render_cpu = full_cpu = 0.0
    with InstantCounter() as instants, collector_paused():  # as runner.simulation.simulate.simulate does
        began, cpu_began = time.perf_counter(), time.process_time()
        for state in synthetic(templates, count):
            outcome = engine.advance(state, end, start=START)
            decisions += len(outcome.decisions)
            for d in outcome.decisions:
                actions[d.action] += 1
            rendering, render_cpu_began = time.perf_counter(), time.process_time()
            failures += len(per_shape.failures(outcome.decisions))
            render_wall += time.perf_counter() - rendering
            render_cpu += time.process_time() - render_cpu_began
            if sampled < FULL_SAMPLE:
                rendering, render_cpu_began = time.perf_counter(), time.process_time()
                sample = [d for d in outcome.decisions if d.action in SEND_ACTIONS][:FULL_SAMPLE - sampled]
                full.failures(sample)
                sampled += len(sample)
                full_wall += time.perf_counter() - rendering
                full_cpu += time.process_time() - render_cpu_began
        sends = actions["send"] + actions["webhook"]
        wall = time.perf_counter() - began - render_wall - full_wall
        cpu = time.process_time() - cpu_began - render_cpu - full_cpu
    return {"contacts": count, "wall": wall, "cpu": cpu, "decisions": decisions, "instants": instants.count,
            "events": decisions + instants.count, "actions": actions, "sends": sends, "render_wall": render_wall,
            "render_cpu": render_cpu, "built": per_shape.built, "failures": failures, "sampled": sampled,
            "full_wall": full_wall, "full_cpu": full_cpu}


def run_baseline(events: int, contacts: int) -> tuple[float, float]:
    """A bare heapq event loop: push ``events`` timed items, pop each, dispatch to a trivial handler."""
    rng = random.Random(1)
    horizon = DAYS * 86400
    began, cpu_began = time.perf_counter(), time.process_time()
    queue: list[tuple[int, int, int]] = []
    for seq in range(events):
        heapq.heappush(queue, (rng.randrange(horizon), seq, seq % contacts))
    handled: dict[int, int] = {}
    while queue:
        at, seq, contact = heapq.heappop(queue)
        handled[contact] = handled.get(contact, 0) + 1
    return time.perf_counter() - began, time.process_time() - cpu_began


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_baseline_apart(events: int, contacts: int) -> tuple[float, float, float]:
    """``run_baseline`` in a process of its own: (wall, cpu, that process's peak RSS in MiB).

    Its heap (millions of queued tuples) must not count as the engine's memory,
    nor the engine's as its own: each side's peak is its own process's.
    """
    process = subprocess.Popen([sys.executable, __file__, "--bare", str(events), str(contacts)],
                               stdout=subprocess.PIPE, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the bare loop failed ({process.returncode})")
    wall, cpu = json.loads(output)
    return wall, cpu, usage.ru_maxrss / 1024


def main(sizes: list[int]) -> None:
    loaded = load_project(ROOT)
    if not loaded.ok:
        raise SystemExit("the sample project has errors: " + "; ".join(map(str, loaded.errors)))
    templates = personas(loaded.project.default_timezone)
    print(f"sample project: {len(loaded.journeys)} journeys, {len(templates)} personas, {DAYS} virtual days")
    results = []
    for count in sizes:
        figures = run_engine(loaded.project, loaded.journeys, templates, count)
        engine_peak = peak_rss_mib()  # this process has run nothing else that large
        baseline, baseline_cpu, baseline_peak = run_baseline_apart(figures["events"], count)
        figures["baseline"] = baseline
        results.append(figures)
        rate = figures["events"] / figures["wall"]
        print(f"\n{count:>7,} contacts: wall {figures['wall']:.2f} s, {figures['decisions']:,} decisions + "
              f"{figures['instants']:,} instants = {figures['events']:,} events, {rate:,.0f} events/s, "
              f"{figures['wall'] / count * 1e6:.0f} µs/contact")
        print(f"         cpu {figures['cpu']:.2f} s ({figures['events'] / figures['cpu']:,.0f} events/cpu-s); "
              "the machine may be shared: cpu time is the steadier figure")
        print(f"         bare heapq loop, same events: wall {baseline:.2f} s, cpu {baseline_cpu:.2f} s -> ratio "
              f"{figures['wall'] / baseline:.1f}x wall, {figures['cpu'] / baseline_cpu:.1f}x cpu")
        print(f"         peak RSS, each side in its own process: engine {engine_peak:.0f} MiB (this process, "
              f"sizes so far), bare loop {baseline_peak:.0f} MiB")
        per_send = figures["full_cpu"] / max(figures["sampled"], 1)
        print(f"         rendering once per (step, context shape), not in the figures above: {figures['built']:,} of "
              f"{figures['sends']:,} sends built, wall {figures['render_wall']:.2f} s, cpu {figures['render_cpu']:.2f} s "
              f"({figures['failures']:,} failures); engine + rendering wall "
              f"{figures['wall'] + figures['render_wall']:.2f} s")
        print(f"         full rendering, first {figures['sampled']:,} sends: {per_send * 1e3:.2f} cpu-ms/send -> "
              f"rendering every send would add about {per_send * figures['sends']:.0f} cpu-s")
        top = ", ".join(f"{a} {n:,}" for a, n in figures["actions"].most_common(8))
        print(f"         decisions by action: {top}")
    if len(results) > 1:
        small, large = results[0], results[-1]
        print(f"\nscaling {small['contacts']:,} -> {large['contacts']:,} contacts: "
              f"x{large['contacts'] / small['contacts']:.0f} contacts, x{large['wall'] / small['wall']:.1f} wall time, "
              f"x{large['cpu'] / small['cpu']:.1f} cpu time, "
              f"x{large['events'] / small['events']:.1f} events")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:  # the bare loop alone, for run_baseline_apart
        print(json.dumps(run_baseline(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
