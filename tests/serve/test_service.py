"""The service skeleton: a real ``journey serve`` process starts and stops cleanly, and
StoreAccess commits the writes of concurrent requests together, each before its answer."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from runner.serve.storeaccess import StoreAccess
from runner.store import open_store
from runner.store.base import EventRow

from .conftest import DEPLOYED_AT, ServeProject


def _event(n: int) -> EventRow:
    return EventRow(f"u{n}", None, "clicked", DEPLOYED_AT, {"n": n}, f"m{n}")


def test_concurrent_writes_are_committed_together_and_each_before_its_answer(tmp_path: Path):
    access = StoreAccess(lambda: open_store(tmp_path / "j.db"))
    access.start()
    seen_after_answer: list[int] = []

    async def one(n: int) -> None:
        await access.write(lambda store: store.write_events([_event(n)], DEPLOYED_AT))
        # committed: another connection sees it the moment write() returns
        with sqlite3.connect(tmp_path / "j.db") as other:
            seen_after_answer.append(other.execute("SELECT count(*) FROM events WHERE message_id = ?",
                                                   (f"m{n}",)).fetchone()[0])

    async def many() -> None:
        await asyncio.gather(*(one(n) for n in range(200)))

    try:
        asyncio.run(many())
    finally:
        access.close()
    assert seen_after_answer == [1] * 200
    assert 1 <= access.commits < 200, "writes waiting together share one commit"


def test_a_failing_write_rolls_back_alone(tmp_path: Path):
    access = StoreAccess(lambda: open_store(tmp_path / "j.db"))
    access.start()

    def fails(store):
        store.write_events([_event(1)], DEPLOYED_AT)
        raise ValueError("refused")

    async def both() -> list:
        return await asyncio.gather(access.write(fails),
                                    access.write(lambda store: store.write_events([_event(2)], DEPLOYED_AT)),
                                    return_exceptions=True)

    try:
        outcomes = asyncio.run(both())
        ids = asyncio.run(_read_ids(access))
    finally:
        access.close()
    assert isinstance(outcomes[0], ValueError) and outcomes[1] == 1
    assert ids == {"m2"}


async def _read_ids(access: StoreAccess) -> set[str]:
    return await access.read(lambda store: store.existing_message_ids(["m1", "m2"]))


def test_a_store_that_cannot_open_is_an_error_at_start(tmp_path: Path):
    (tmp_path / "not.db").write_bytes(b"this is not a database" * 100)
    access = StoreAccess(lambda: open_store(tmp_path / "not.db"))
    with pytest.raises(Exception, match="not a journey-runner database"):
        access.start()


def test_journey_serve_starts_serves_and_exits_0_on_sigterm(serve_process):
    server = serve_process()
    answer = httpx.get(server.url + "/no-such-page", timeout=10)
    assert answer.status_code == 404
    code, out, err = server.stop()
    assert code == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_journey_serve_on_a_broken_database_says_so_without_a_traceback(serve_project: ServeProject, tmp_path: Path):
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"garbage" * 1000)
    result = subprocess.run([sys.executable, "-m", "runner", "serve", "--port", "0", "--db", str(broken)],
                            cwd=serve_project.root, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "error:" in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_sigint_also_stops_cleanly(serve_process):
    server = serve_process()
    server.process.send_signal(signal.SIGINT)
    out, err = server.process.communicate(timeout=60)
    assert server.process.returncode == 0, err
