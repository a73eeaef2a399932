"""Real clients against a real server: Segment's ``segment-analytics-python`` and RudderStack's
``rudder-sdk-python`` pointed at ``journey serve`` on a free localhost port, and Segment's own
documented sample payloads (tests/serve/payloads/, each with its source)."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from runner.serve.app import build_app

from .conftest import WRITE_KEY, basic_auth, serving

PAYLOADS = Path(__file__).parent / "payloads" / "segment"


def _events(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT contact_id, anonymous_id, name, properties FROM events "
                            "WHERE message_id NOT LIKE 'c0000%' ORDER BY id").fetchall()


def _contact(db: Path, contact_id: str) -> tuple | None:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT attributes, timezone FROM contacts WHERE id = ?", (contact_id,)).fetchone()


def _identities(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT anonymous_id, contact_id FROM identities ORDER BY 1").fetchall()


def _segment(url: str, errors: list, **options: Any) -> SegmentClient:
    return SegmentClient(WRITE_KEY, host=url, on_error=lambda error, batch: errors.append(error), **options)


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_segment_client_track_identify_alias_in_sync_mode(live_server, serve_project, gzip):
    errors: list = []
    client = _segment(live_server.url, errors, sync_mode=True, gzip=gzip)
    client.identify("u-1", {"email": "ada@example.com", "first_name": "Ada", "timezone": "Europe/Istanbul"},
                    anonymous_id="anon-1")
    client.track("u-1", "Plan Upgraded", {"plan": "team", "seats": 5})
    client.alias("anon-2", "u-1")
    client.page("u-1", name="Pricing", properties={"path": "/pricing"})
    client.group("u-1", "acme", {"name": "Acme"})
    assert errors == []
    assert _events(serve_project.db) == [
        ("u-1", "anon-1", "identify", '{"email":"ada@example.com","first_name":"Ada","timezone":"Europe/Istanbul"}'),
        ("u-1", None, "Plan Upgraded", '{"plan":"team","seats":5}'),
        ("u-1", "anon-2", "alias", "{}"),
        ("u-1", None, "page_viewed", '{"name":"Pricing","path":"/pricing"}'),
    ]
    assert _contact(serve_project.db, "u-1") == ('{"email":"ada@example.com","first_name":"Ada"}', "Europe/Istanbul")
    assert _identities(serve_project.db) == [("anon-1", "u-1"), ("anon-2", "u-1")]


def test_segment_client_batches_in_the_background(live_server, serve_project):
    errors: list = []
    client = _segment(live_server.url, errors, upload_size=100, upload_interval=0.05, gzip=True)
    for n in range(250):
        client.track(f"b-{n % 10}", "Song Played", {"n": n})
    client.flush()
    client.shutdown()
    assert errors == []
    rows = _events(serve_project.db)
    assert len(rows) == 250 and sorted(json.loads(row[3])["n"] for row in rows) == list(range(250))


def test_rudder_client_track_identify_alias(live_server, serve_project):
    errors: list = []
    client = RudderClient(WRITE_KEY, host=live_server.url, sync_mode=True,
                          on_error=lambda error, batch: errors.append(error))  # gzip by default
    client.identify("r-1", {"email": "grace@example.com", "plan": "pro"})
    client.track("r-1", "Report Exported", {"format": "csv"}, anonymous_id="visitor-9")
    client.alias("visitor-7", "r-1")
    assert errors == []
    assert [(row[0], row[1], row[2]) for row in _events(serve_project.db)] == [
        ("r-1", None, "identify"), ("r-1", "visitor-9", "Report Exported"), ("r-1", "visitor-7", "alias")]
    assert json.loads(_contact(serve_project.db, "r-1")[0]) == {"email": "grace@example.com", "plan": "pro"}
    assert _identities(serve_project.db) == [("visitor-7", "r-1"), ("visitor-9", "r-1")]


class FailFirst:
    """The real app, but the answers to the first ``failures`` calls are lost: the app handles
    (and commits) them, and the client gets a 503 instead: the retry sends the same calls again."""

    def __init__(self, app: Any, failures: int):
        self.app, self.failures = app, failures

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self.failures <= 0:
            return await self.app(scope, receive, send)
        self.failures -= 1

        async def lost(message) -> None:
            pass

        await self.app(scope, receive, lost)
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"try again"})


def test_segment_and_rudder_retries_after_a_503_store_each_event_once(serve_settings, serve_project):
    with serving(FailFirst(build_app(serve_settings), failures=2)) as (url, _):
        errors: list = []
        segment = _segment(url, errors, upload_interval=0.05, max_retries=3)
        for n in range(20):
            segment.track("s-1", "clicked", {"n": n})
        segment.flush()
        segment.shutdown()
        rudder = RudderClient(WRITE_KEY, host=url, upload_interval=0.05, max_retries=3,
                              on_error=lambda error, batch: errors.append(error))
        rudder.track("r-2", "clicked", {"n": 99})
        rudder.flush()
        rudder.shutdown()
    assert errors == []
    rows = _events(serve_project.db)
    assert sorted(json.loads(row[3])["n"] for row in rows) == [*range(20), 99]


class DroppingProxy:
    """A TCP relay that forwards each request to the server and, for the first ``drops``
    requests, closes the client's connection instead of relaying the answer (a connection
    lost after the server committed)."""

    def __init__(self, upstream_port: int, drops: int):
        self.upstream_port, self.drops = upstream_port, drops
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DroppingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone would not)
        self.listener.close()
        self.thread.join(timeout=10)

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with client:
                self._relay(client)

    def _relay(self, client: socket.socket) -> None:
        request = _read_message(client)
        if request is None:
            return
        with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            upstream.sendall(request)
            answer = _read_message(upstream)
        if self.drops > 0:
            self.drops -= 1
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return  # closed with a reset, no answer
        if answer is not None:
            head, _, body = answer.partition(b"\r\n\r\n")
            client.sendall(head + b"\r\nConnection: close\r\n\r\n" + body)  # one request per connection


def _read_message(sock: socket.socket) -> bytes | None:
    """One HTTP message (headers and a Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_retry_after_a_dropped_connection_stores_the_event_once(live_server, serve_project):
    with DroppingProxy(live_server.port, drops=1) as proxy:
        errors: list = []
        segment = _segment(f"http://127.0.0.1:{proxy.port}", errors, upload_interval=0.05, max_retries=3)
        for n in range(5):
            segment.track("d-1", "clicked", {"n": n})
        segment.flush()
        segment.shutdown()
    assert errors == [] and proxy.drops == 0
    assert sorted(json.loads(row[3])["n"] for row in _events(serve_project.db)) == list(range(5))


# ---------------------------------------------------------------- Segment's documented payloads


@pytest.mark.parametrize("name", ["spec_track", "spec_identify", "spec_alias", "spec_page", "spec_screen",
                                  "spec_group", "http_api_track"])
def test_segments_documented_calls_are_accepted_and_stored(client, serve_project, name):
    payload = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    call = payload.get("type", "track")
    answer = client.post(f"/v1/{call}", headers=basic_auth(), json=payload)
    assert answer.status_code == 200 and answer.json() == {"success": True}
    rows = _events(serve_project.db)
    expected_name = {"page": "page_viewed", "screen": "screen_viewed"}.get(call, payload.get("event", call))
    if call == "group":
        assert rows == []
    else:
        assert [(row[0], row[2]) for row in rows] == [(payload["userId"], expected_name)]
    if call == "identify":
        assert json.loads(_contact(serve_project.db, payload["userId"])[0]) == payload["traits"]
    if call == "alias":
        assert _identities(serve_project.db) == [(payload["previousId"], payload["userId"])]


def test_segments_documented_batch(client, serve_project):
    payload = json.loads((PAYLOADS / "http_api_batch.json").read_text(encoding="utf-8"))
    answer = client.post("/v1/batch", headers=basic_auth(), json=payload)
    assert answer.status_code == 200
    assert [(row[0], row[2]) for row in _events(serve_project.db)] == [
        ("019mr8mf4r", "identify"), ("019mr8mf4r", "Song Played"), ("971mj8mk7p", "identify"),
        ("971mj8mk7p", "Song Played")]
    assert json.loads(_contact(serve_project.db, "971mj8mk7p")[0]) == {
        "email": "cindy@example.com", "name": "Cindy Gonzalez", "age": 23}
