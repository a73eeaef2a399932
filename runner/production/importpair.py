"""``journey events import --workers 2``: a JSONL events import in two processes, so one parses
its next batch while the other writes (the client's parsing overlaps the database's writing).

Batch k is the file's lines ``k * BATCH_SIZE + 1`` to ``(k + 1) * BATCH_SIZE``; worker ``k % 2``
parses and writes it (both read every line, each parses only its batches). A worker writes batch
k only after batch k - 1 committed (``_Turns``, a counter both share), so batches commit in file
order, each in its own transaction as one process commits them: ids follow the file, a kill
leaves a prefix of the batches (the rerun stores the rest once: message ids deduplicate), links
and identify traits apply in file order.

The parent is worker 0 (it reports progress); worker 1 is a ``spawn`` process with its own
connection, which dies with the parent (Linux ``PR_SET_PDEATHSIG``; elsewhere it notices the parent
is gone at its next turn) and whose failure the parent raises. Strict imports, CSV files and
``--workers 1`` go through ``ingest.import_events`` in one process.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.core.problems import JourneyError
from runner.production import ingest
from runner.store import errors
from runner.store.base import Store

WORKERS = 2
POLL = 0.2  # seconds between looks at the other worker while waiting


class _Turns:
    """Which batch may commit next, shared by the workers; and whether a worker is done or failed."""

    def __init__(self, context: Any):
        self.condition = context.Condition()
        self.next = context.Value("q", 0, lock=False)
        self.finished = context.Array("b", WORKERS, lock=False)  # 1: done with every batch; -1: failed

    def wait_for(self, batch: int, me: int, alive: Callable[[], bool]) -> None:
        """Until batch ``batch`` may be written (every batch before it committed)."""
        with self.condition:
            while self.next.value != batch:
                if any(self.finished[other] for other in range(WORKERS) if other != me) or not alive():
                    raise _OtherWorkerGone
                self.condition.wait(POLL)

    def done(self, batch: int) -> None:
        with self.condition:
            self.next.value = batch + 1
            self.condition.notify_all()

    def finish(self, me: int, failed: bool = False) -> None:
        with self.condition:
            self.finished[me] = -1 if failed else 1
            self.condition.notify_all()


class _OtherWorkerGone(Exception):
    """The other worker stopped before the batch this one waits for (it failed or was killed)."""


class _ShareImporter(ingest._Importer):
    """``ingest._Importer`` for one worker's share: its batches, each written in its turn."""

    def __init__(self, store: Store, path: Path, now: datetime, me: int, batch_size: int, turns: _Turns,
                 alive: Callable[[], bool]):
        super().__init__(store, path, False, now, "events")
        self.me, self.batch_size, self.turns, self.alive = me, batch_size, turns, alive
        self.last_line = 0

    def mine(self, number: int) -> bool:
        """Is line ``number`` in one of this worker's batches? (Called for every line read.)"""
        self.last_line = number
        return (number - 1) // self.batch_size % WORKERS == self.me

    def _consume(self, records: Any) -> None:
        batch = self.me
        for line_number, outcome in records:
            while batch < (line_number - 1) // self.batch_size:  # this batch is complete (or empty)
                self._write(batch)
                batch += WORKERS
            self._take(line_number, outcome)
        while batch <= (self.last_line - 1) // self.batch_size:  # the last ones (batches of blank lines too)
            self._write(batch)
            batch += WORKERS

    def _write(self, batch: int) -> None:
        self.turns.wait_for(batch, self.me, self.alive)
        self._flush()
        self.turns.done(batch)


def import_events(store: Store, location: str, path: str | Path, now: datetime | None = None,
                  progress: ingest.Progress | None = None) -> ingest.ImportResult:
    """``ingest.import_events`` of a JSONL file, non-strict, in two processes (see the module doc);
    ``location``: the store's database, which the second process opens for itself."""
    path = Path(path)
    now = now or datetime.now(UTC)  # one instant for the whole file, as in one process
    context = multiprocessing.get_context("spawn")
    turns = _Turns(context)
    results: Any = context.Queue()
    batch_size = ingest.BATCH_SIZE
    other = context.Process(target=_other_worker, name="journey-import-1", daemon=True,
                            args=(location, str(path), now, batch_size, turns, results, os.getpid()))
    other.start()
    try:
        importer = _ShareImporter(store, path, now, 0, batch_size, turns, alive=lambda: other.exitcode is None)
        try:
            mine = importer.run(ingest._event_jsonl_records(path, progress, importer.mine))
        except _OtherWorkerGone:
            raise _failure(_receive(results, other)) from None
        except BaseException:
            turns.finish(0, failed=True)
            raise
        turns.finish(0)
        theirs = _receive(results, other)
        if not isinstance(theirs, ingest.ImportResult):
            raise _failure(theirs)
    finally:
        other.join(POLL * 5)
        if other.exitcode is None:  # failing here: leave no worker behind
            other.kill()
            other.join()
    return _merged(mine, theirs)


def _other_worker(location: str, path: str, now: datetime, batch_size: int, turns: _Turns, results: Any,
                  parent: int) -> None:
    """Worker 1: its own store, its share of the batches; the result (or what failed) to the parent."""
    _die_with(parent)
    from runner.store import open_store

    try:
        store = open_store(location)
        try:
            importer = _ShareImporter(store, Path(path), now, 1, batch_size, turns,
                                      alive=lambda: os.getppid() == parent)
            result = importer.run(ingest._event_jsonl_records(Path(path), None, importer.mine))
        finally:
            store.close()
    except BaseException as error:  # noqa: BLE001 - told to the parent, which raises it
        turns.finish(1, failed=True)
        results.put(("failed", type(error).__name__, _message(error)))
        sys.exit(1)
    turns.finish(1)
    results.put(result)


def _die_with(parent: int) -> None:
    """Be killed when the parent dies (Linux), so a killed import leaves no writer behind."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)


def _receive(results: Any, other: Any) -> Any:
    """The other worker's result or failure; a worker gone without either is a failure too."""
    while True:
        try:
            return results.get(timeout=POLL)
        except queue.Empty:
            if other.exitcode is not None:
                try:
                    return results.get(timeout=POLL)
                except queue.Empty:
                    return ("gone", other.exitcode)


def _message(error: BaseException) -> str:
    text = str(error)
    return text.removeprefix("database error: ") if isinstance(error, errors.StoreError) else text


def _failure(report: Any) -> JourneyError:
    """What the parent raises for the other worker's failure: a store error as itself."""
    if isinstance(report, ingest.ImportResult):  # it finished, and a batch before the parent's is missing
        return JourneyError("the file changed while it was imported (a line was added?): run the import again")
    if report[0] == "gone":
        code = report[1]
        how = f"was killed ({signal.Signals(-code).name})" if code < 0 else f"exited with code {code}"
        return JourneyError(f"the second import process {how}; batches committed before it are kept "
                            "(running the import again stores the rest)")
    _, name, message = report
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, errors.StoreError):
        return kind(message)
    return JourneyError(f"the second import process failed: {name}: {message}")


def _merged(mine: ingest.ImportResult, theirs: ingest.ImportResult) -> ingest.ImportResult:
    bad = sorted(mine.bad + theirs.bad, key=lambda problem: problem.line)[:ingest.MAX_REPORTED]
    return ingest.ImportResult(imported=mine.imported + theirs.imported, duplicates=mine.duplicates + theirs.duplicates,
                               bad=bad, bad_lines=mine.bad_lines + theirs.bad_lines,
                               skipped=mine.skipped + theirs.skipped)
