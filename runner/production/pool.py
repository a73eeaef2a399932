"""``journey run --workers N``: N processes sharing the due work, so a busy tick uses every core.

Each worker is a process of its own (``spawn``: nothing inherited but the plan)
that opens its own store and runs shared ticks (``Tick(shared=True)``): no
global lease, each page of due contacts claimed with contact leases, so a
contact is advanced by one worker at a time and the others take the next
pages. Sends are claimed in the ledger as in every tick, so a worker killed
mid-send leaves at most its wave in doubt, and its contacts are taken over
when their leases expire (at once by a worker on the same host, which sees
the process is gone).

The parent only starts, watches and stops: SIGTERM/SIGINT are passed on to
the workers, which finish their batch and exit; with ``every`` a worker that
dies is replaced, so a pool keeps its size.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

from runner.core.problems import JourneyError
from runner.production.worker import StopFlag

RESTART_DELAY = 1.0  # seconds before a dead worker of a looping pool is replaced
POLL = 0.2  # seconds between looks at the workers and their reports


@dataclass(frozen=True)
class WorkerPlan:
    """What each worker needs to run on its own: plain values, picklable for ``spawn``."""

    db: str  # the database each worker opens (its own connection)
    root: str  # the project (project.yaml)
    transport_url: str
    now: datetime | None = None  # one tick at this instant; None: the clock
    every: timedelta | None = None  # a tick every ``every`` until stopped; None: one tick
    limit: int | None = None
    durable_claims: bool = False
    quiet: bool = False


@dataclass
class PoolResult:
    """What the workers reported: one summary per tick, the totals, and what went wrong."""

    ticks: int = 0
    contacts: int = 0
    counts: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # workers that failed or died, in words

    def summary(self) -> str:
        parts = [f"{self.ticks} tick(s)", f"{self.contacts} contact(s)"]
        parts += [f"{self.counts[name]} {name.replace('_', ' ')}" for name in
                  ("sent", "webhooks", "retried", "failed", "retryable", "gave_up", "late", "already_claimed", "errors")
                  if self.counts.get(name)]
        decided = sum(v for k, v in self.counts.items() if k.startswith("decision:"))
        return ", ".join([*parts, f"{decided} decision(s)"])


def run_workers(plan: WorkerPlan, count: int, *, stop: StopFlag,
                on_report: Callable[[int, str], None] | None = None,
                on_failure: Callable[[str], None] | None = None) -> PoolResult:
    """Run ``count`` worker processes until each has done its tick (``plan.every`` None)
    or ``stop`` is set; ``on_report(worker, summary line)`` for each tick a worker ends,
    ``on_failure(what happened)`` when a worker fails or dies (replaced under ``every``)."""
    if count < 1:
        raise JourneyError("--workers must be at least 1")
    context = multiprocessing.get_context("spawn")
    reports: multiprocessing.Queue[tuple[int, dict[str, Any]]] = context.Queue()
    workers: dict[int, SpawnProcess] = {}
    result = PoolResult()

    def start(index: int) -> None:
        process = context.Process(target=worker_main, args=(plan, index, reports), name=f"journey-worker-{index}")
        process.start()
        workers[index] = process

    for index in range(1, count + 1):
        start(index)
    stopping = False
    try:
        while workers:
            _drain(reports, result, on_report)
            if stop() and not stopping:
                stopping = True
                for process in workers.values():
                    _terminate(process)
            for index, process in list(workers.items()):
                if process.exitcode is None:
                    continue
                del workers[index]
                _drain(reports, result, on_report)
                if process.exitcode == 0 or (stopping and process.exitcode == -signal.SIGTERM):
                    continue  # done, or stopped by us before it could set up its own handler
                replace = plan.every is not None and not stopping
                failure = f"worker {index} {_how_it_ended(process.exitcode)}" + ("; replaced" if replace else "")
                result.failures.append(failure)
                if on_failure is not None:
                    on_failure(failure)
                if replace and not stop.wait(RESTART_DELAY):
                    start(index)  # a looping pool keeps its size
            time.sleep(POLL)
    finally:
        for process in workers.values():  # the parent is failing: leave no worker behind
            _terminate(process)
            process.join()
    _drain(reports, result, on_report)
    return result


def worker_main(plan: WorkerPlan, index: int, reports: multiprocessing.Queue) -> None:
    """One worker process: its own store and runtime, shared ticks until done or stopped."""
    from runner.production.deploy import load_project_file
    from runner.production.tick import build_runtime, run_tick, wall_clock
    from runner.production.worker import run_loop, stop_on_signals
    from runner.store import open_store

    def emit(line: str) -> None:
        if not plan.quiet:
            sys.stdout.write(f"[worker {index}] {line}\n")
            sys.stdout.flush()

    def report(tick_report: Any) -> None:
        reports.put((index, {"summary": tick_report.summary(), "now": tick_report.now.isoformat(),
                             "run_id": tick_report.run_id, "contacts": tick_report.contacts,
                             "counts": dict(tick_report.counts)}))

    flag = StopFlag()
    try:
        with stop_on_signals(flag):
            store = open_store(plan.db)
            try:
                runtime = build_runtime(store, load_project_file(Path(plan.root)), plan.transport_url)
                try:
                    if plan.every is not None:
                        run_loop(store, runtime, plan.every, stop=flag, limit=plan.limit, emit=emit, shared=True,
                                 durable_claims=plan.durable_claims, on_tick=report,
                                 on_error=lambda message: emit(f"error: {message}"))
                    else:
                        report(run_tick(store, runtime, plan.now or wall_clock(), limit=plan.limit,
                                        stop=flag, emit=emit, durable_claims=plan.durable_claims, shared=True))
                finally:
                    if runtime.delivery is not None:
                        runtime.delivery.close()
            finally:
                store.close()
    except JourneyError as error:
        sys.stderr.write(f"[worker {index}] error: {error}\n")
        sys.exit(1)
    except Exception as error:  # noqa: BLE001 - a worker's one way out: a line, an exit code, no traceback
        sys.stderr.write(f"[worker {index}] error: {type(error).__name__}: {error}\n")
        sys.exit(1)


def _drain(reports: multiprocessing.Queue, result: PoolResult, on_report: Callable[[int, str], None] | None) -> None:
    while True:
        try:
            index, tick = reports.get_nowait()
        except queue.Empty:
            return
        result.ticks += 1
        result.contacts += tick["contacts"]
        result.counts.update(tick["counts"])
        if on_report is not None:
            on_report(index, f"run {tick['run_id']} at {tick['now']}: {tick['summary']}")


def _terminate(process: SpawnProcess) -> None:
    """Ask a worker to stop (SIGTERM: it finishes its batch, commits and exits 0)."""
    if process.pid is not None and process.exitcode is None:
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _how_it_ended(exitcode: int) -> str:
    if exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else str(-exitcode)
        return (f"was killed ({name}); its contacts are taken over when their leases expire "
                "(see `journey status` for sends in doubt)")
    return f"failed (exit code {exitcode})"
