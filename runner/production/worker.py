"""``journey run --every 60s``: ticks in a loop until SIGTERM or SIGINT.

A signal does not interrupt a send: it sets a flag that the tick checks
between batches of contacts (and the loop checks while sleeping), so the
current batch finishes, its writes are committed, the lease is released and
the process exits 0. A second signal while stopping changes nothing: the
ledger already makes a kill safe, so there is no reason to hurry.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from runner.production.tick import Runtime, StoreWriteFailed, TickReport, run_tick, wall_clock
from runner.store.base import Store


class StopFlag:
    """Set by a signal handler; checked between batches and while sleeping."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self._event.is_set()

    def set(self, signum: int | None = None) -> None:
        self.signal = signum
        self._event.set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


@contextmanager
def stop_on_signals(flag: StopFlag, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[StopFlag]:
    """Install handlers that set ``flag`` (restored afterwards)."""
    previous = {sig: signal.getsignal(sig) for sig in signals}
    for sig in signals:
        signal.signal(sig, lambda signum, frame: flag.set(signum))
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_loop(
    store: Store,
    runtime: Runtime,
    every: timedelta,
    *,
    stop: StopFlag,
    limit: int | None = None,
    clock: Callable[[], datetime] = wall_clock,
    on_tick: Callable[[TickReport], None] | None = None,
    emit: Callable[[str], None] | None = None,
    durable_claims: bool = False,
    on_error: Callable[[str], None] | None = None,
    shared: bool = False,
    on_page: Callable[[TickReport], None] | None = None,
) -> int:
    """Tick every ``every`` until ``stop`` is set; returns the number of ticks run.

    A tick that could not write (a lock held too long, a full disk) stopped with
    what it committed intact; the worker reports it (``on_error``) and ticks again
    at the next interval instead of exiting. ``shared``: one of several workers sharing
    the due work (``runner.production.pool``), no global lease. ``on_page``: the tick's report
    after each page of due contacts (a terminal's progress)."""
    ticks = 0
    while not stop():
        started = time.monotonic()
        runtime.refresh(store)
        try:
            report = run_tick(store, runtime, clock(), limit=limit, stop=stop, emit=emit, lease_wait=0,
                              durable_claims=durable_claims, shared=shared, on_page=on_page)
        except StoreWriteFailed as error:
            report = None
            if on_error is not None:
                on_error(str(error))
        ticks += 1
        if on_tick is not None and report is not None:
            on_tick(report)
        # a steady cadence: the next tick starts ``every`` after this one started
        if stop.wait(max(0.0, every.total_seconds() - (time.monotonic() - started))):
            break
    return ticks
