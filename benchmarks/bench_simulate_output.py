"""What printing a simulation costs, next to the simulation it prints. Prints figures, asserts nothing.

Synthetic contacts shaped like the sample personas (``bench_simulate.synthetic``)
are simulated through the sample project's journeys for 30 days, exactly as
``journey simulate`` does; then the timeline is made (records, subjects
rendered) and printed in each ``--format``: ``json``, ``table`` and
``markdown`` (without the 1 MiB cap of GitHub step summaries, so every
contact is printed). Each part is timed on its own, best of ``--repeat``.
Target: table and markdown within 1.5x of JSON, and neither the records
(every send built as production builds it) nor any format costing more than
the simulation. CPU seconds are printed beside wall seconds: on a shared
machine the wall clock follows the load, so the ratios (to JSON, to the
simulation) are taken in CPU time.

    .venv/bin/python benchmarks/bench_simulate_output.py [--contacts 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_simulate import START, personas, synthetic  # noqa: E402

from runner.language.loader import load_project  # noqa: E402
from runner.review.markdown import simulation_markdown  # noqa: E402
from runner.simulation import timeline  # noqa: E402
from runner.simulation.simulate import Simulation, summarize  # noqa: E402
from runner.simulation.simulate import simulate as run_simulation  # noqa: E402
from runner.simulation.testcontacts import TestContact  # noqa: E402

DAYS = 30


def timed(work, repeat: int) -> tuple[object, list[float], float]:
    """(the value, wall seconds of each run, the best run's CPU seconds)."""
    times, cpu, value = [], [], None
    for _ in range(repeat):
        began, cpu_began = time.perf_counter(), time.process_time()
        value = work()
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - cpu_began)
    return value, times, min(cpu)


def as_test_contacts(count: int, project) -> list[TestContact]:
    """Synthetic contacts with their (absolute) event times, as test contacts."""
    contacts = []
    for state in synthetic(personas(project.default_timezone), count):
        events = [{"at": e.at.isoformat(), "event": e.name, "properties": dict(e.properties),
                   **({"anonymous_id": e.anonymous_id} if e.anonymous_id else {})} for e in state.events]
        contacts.append(TestContact(state.contact.id, state.contact.timezone, dict(state.contact.attributes),
                                    list(state.contact.anonymous_ids), events))
    return contacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    loaded = load_project(ROOT)
    contacts = as_test_contacts(args.contacts, loaded.project)
    end = START + timedelta(days=DAYS)
    simulation, sim_times, sim_cpu = timed(
        lambda: run_simulation(loaded.project, loaded.journeys, contacts, START, end), args.repeat)
    assert isinstance(simulation, Simulation)
    records, record_times, record_cpu = timed(lambda: timeline.timeline_records(simulation, loaded.project),
                                              args.repeat)
    outputs = {  # each as `journey simulate --format ...` makes it from the records
        "json": lambda: timeline.to_json(simulation, records, timeline.summaries_for(simulation, records)),
        "table": lambda: timeline.to_table(simulation, records, timeline.summaries_for(simulation, records)),
        "markdown": lambda: simulation_markdown(simulation, summarize(simulation), simulation.journeys,
                                                loaded.project, records=records),
        "markdown, uncapped": lambda: simulation_markdown(simulation, summarize(simulation), simulation.journeys,
                                                          loaded.project, max_bytes=1 << 40, records=records),
    }
    sends = sum(1 for record in records if record.action in ("send", "webhook", "send_failed"))
    print(f"{args.contacts:,} contacts, {DAYS} days: {len(records):,} decisions, {sends:,} sends built; "
          f"best (median) of {args.repeat}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'part':>22} {'wall s':>16} {'MiB out':>8} {'cpu s':>7} {'/json':>6} {'/simulation':>12}")
    print(f"{'simulation':>22} {min(sim_times):>7.2f} ({statistics.median(sim_times):>6.2f}) {'':>8} "
          f"{sim_cpu:>7.2f} {'':>6} {1:>12.2f}")
    print(f"{'records, every send':>22} {min(record_times):>7.2f} ({statistics.median(record_times):>6.2f}) {'':>8} "
          f"{record_cpu:>7.2f} {'':>6} {record_cpu / sim_cpu:>12.2f}")
    figures = {}
    for name, work in outputs.items():
        text, times, cpu = timed(work, args.repeat)
        figures[name] = (min(times), statistics.median(times), len(str(text).encode()) / 2**20, cpu)
    for name, (best, median, size, cpu) in figures.items():
        print(f"{'output ' + name:>22} {best:>7.2f} ({median:>6.2f}) {size:>8.1f} {cpu:>7.2f} "
              f"{cpu / figures['json'][3]:>6.2f} {cpu / sim_cpu:>12.2f}")


if __name__ == "__main__":
    main()
