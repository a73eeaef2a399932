"""A real ``journey serve`` process: an answered event survives SIGKILL; ``--worker`` ticks in the
same process and SIGTERM lets requests and the tick's batch finish, exit 0."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from .conftest import basic_auth


def _stored(db: Path, prefix: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {mid for (mid,) in conn.execute("SELECT message_id FROM events WHERE message_id LIKE ?", (prefix + "%",))}


def test_every_answered_event_survives_a_sigkill(serve_process, serve_project):
    server = serve_process()

    async def send_until_killed() -> set[str]:
        answered: set[str] = set()
        async with httpx.AsyncClient(base_url=server.url, headers=basic_auth(), timeout=30) as http:
            async def one(n: int) -> None:
                try:
                    answer = await http.post("/v1/track", json={"userId": f"k{n % 7}", "event": "clicked",
                                                                "messageId": f"kill-{n}"})
                except httpx.HTTPError:
                    return  # cut off by the kill: never acknowledged
                if answer.status_code == 200:
                    answered.add(f"kill-{n}")
                if len(answered) == 60:
                    server.process.send_signal(signal.SIGKILL)

            await asyncio.gather(*(one(n) for n in range(150)))
        return answered

    answered = asyncio.run(send_until_killed())
    server.process.wait(timeout=30)
    assert server.process.returncode == -signal.SIGKILL
    assert len(answered) >= 60
    assert answered <= _stored(serve_project.db, "kill-"), "an acknowledged event was lost"


def test_worker_ticks_in_the_service_and_sigterm_finishes_cleanly(serve_process, serve_project):
    project_file = serve_project.root / "project.yaml"
    project_file.write_text(project_file.read_text(encoding="utf-8") + "serve: {every: 1s}\n", encoding="utf-8")
    server = serve_process("--worker", env={"JOURNEY_TRANSPORT": "outbox:outbox"})
    now = datetime.now(UTC).isoformat()
    calls = {"batch": [
        {"type": "identify", "userId": "walk-in", "traits": {"email": "walk-in@example.com", "first_name": "Wim"},
         "timestamp": now, "messageId": "w-1"},
        {"type": "track", "userId": "walk-in", "event": "signed_up", "timestamp": now, "messageId": "w-2"},
    ]}
    assert httpx.post(server.url + "/v1/batch", json=calls, headers=basic_auth(), timeout=30).status_code == 200
    outbox = serve_project.root / "outbox"
    deadline = time.monotonic() + 60
    while not any("walk-in@example.com" in p.read_text() for p in outbox.rglob("*.eml")):
        assert time.monotonic() < deadline and server.process.poll() is None, "the worker did not send"
        time.sleep(0.2)
    code, out, err = server.stop()
    assert code == 0, err
    assert "stopped" in out and "Traceback" not in err
    with sqlite3.connect(serve_project.db) as conn:
        assert conn.execute("SELECT state FROM sends WHERE contact_id = 'walk-in'").fetchall() == [("sent",)]
        assert conn.execute("SELECT count(*) FROM leases").fetchone() == (0,), "the tick lease was released"
        assert conn.execute("SELECT count(*) FROM runs WHERE finished_at IS NULL").fetchone() == (0,)


def test_a_worker_with_nothing_deployed_stops_the_service_with_a_clear_error(serve_process, serve_project, tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    server = serve_process("--worker", "--db", str(empty))
    server.process.wait(timeout=60)
    out, err = server.process.communicate(timeout=30)
    assert server.process.returncode == 1
    assert "nothing is deployed" in err and "Traceback" not in err


def test_sigterm_lets_a_request_in_flight_finish(serve_process, serve_project):
    """A slow upload still in flight when SIGTERM arrives is answered and stored."""
    server = serve_process()

    async def slow_upload() -> int:
        async def body():
            yield b'{"userId": "late", "event": "clicked", '
            await asyncio.sleep(1)  # the server has read the headers: the request is in flight
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            yield b'"messageId": "in-flight"}'

        async with httpx.AsyncClient(base_url=server.url, headers=basic_auth(), timeout=30) as http:
            answer = await http.post("/v1/track", content=body())
            return answer.status_code

    assert asyncio.run(slow_upload()) == 200
    server.process.wait(timeout=60)
    assert server.process.returncode == 0
    assert _stored(serve_project.db, "in-flight") == {"in-flight"}
