"""The one way a request handler reaches the store: a writer thread with group commit.

A store connection belongs to one thread (SQLite's rule; a PostgreSQL connection is no
different in practice), and a commit is the expensive part of a write (an fsync). So one
thread owns the connection: each request queues its function, and the thread runs every
function waiting at that moment inside one transaction (each in a savepoint of its own,
so one failing function rolls back only itself), commits once, then answers them all.
When ``write()`` returns, the write is committed: the HTTP answer comes after the commit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from runner.store.base import Store

T = TypeVar("T")
MAX_GROUP = 512  # functions committed together at most (bounds one transaction's length)


@dataclass(slots=True)
class _Job:
    fn: Callable[[Store], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    writes: bool


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """On the event loop: hand the result (or the error) to the waiting request."""
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class StoreAccess:
    """Runs store functions on the store's own thread; ``start()`` opens it, ``close()`` drains and closes."""

    def __init__(self, open_store: Callable[[], Store], *, max_group: int = MAX_GROUP):
        self._open_store = open_store
        self._max_group = max_group
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self.commits = 0  # transactions committed (group commit: fewer than writes)

    def start(self) -> None:
        """Open the store on its thread; an error opening it is raised here. Started already: nothing to do."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._opened.clear()
        self._thread = threading.Thread(target=self._serve, name="journey-store", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error

    def close(self) -> None:
        """Finish every queued function, then close the store."""
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    async def write(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` in a transaction; its writes are committed when this returns."""
        return await self._submit(fn, writes=True)

    async def read(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` on the store's thread, outside any write transaction."""
        return await self._submit(fn, writes=False)

    async def _submit(self, fn: Callable[[Store], T], *, writes: bool) -> T:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the store is not open (StoreAccess.start() was not called, or it closed)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, future, loop, writes))
        return await future

    # ------------------------------------------------------------------ the store's thread

    def _serve(self) -> None:
        try:
            store = self._open_store()
        except BaseException as error:  # noqa: BLE001 - handed to start()'s caller
            self._open_error = error
            self._opened.set()
            return
        self._opened.set()
        try:
            stopping = False
            while not stopping:
                first = self._jobs.get()
                if first is None:
                    break
                jobs = [first]
                while len(jobs) < self._max_group:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stopping = True
                        break
                    jobs.append(job)
                self._run_reads(store, [job for job in jobs if not job.writes])
                self._run_writes(store, [job for job in jobs if job.writes])
        finally:
            store.close()

    @staticmethod
    def _run_reads(store: Store, jobs: list[_Job]) -> None:
        for job in jobs:
            try:
                outcome = (True, job.fn(store))
            except Exception as error:  # noqa: BLE001 - the request's own error, raised in the request
                outcome = (False, error)
            job.loop.call_soon_threadsafe(_settle, job.future, *outcome)

    def _run_writes(self, store: Store, jobs: list[_Job]) -> None:
        if not jobs:
            return
        outcomes: list[tuple[bool, Any]] = []
        try:
            with store.transaction():
                for job in jobs:
                    try:
                        with store.transaction():  # a savepoint: a failing function rolls back alone
                            outcomes.append((True, job.fn(store)))
                    except Exception as error:  # noqa: BLE001 - raised in its request
                        outcomes.append((False, error))
        except Exception as error:  # noqa: BLE001 - the commit failed: nothing of the group was written
            outcomes = [(False, error)] * len(jobs)
        else:
            self.commits += 1
        for job, outcome in zip(jobs, outcomes, strict=True):
            job.loop.call_soon_threadsafe(_settle, job.future, *outcome)
