"""Hostile requests over real HTTP: none gets a 500 or a traceback, and none stores anything.

Malformed JSON, wrong types, huge strings and numbers, deep nesting, invalid UTF-8, lone
surrogates, missing or malformed auth, and slow clients (a body trickling in is cut off with
a 408 while other requests are served)."""

from __future__ import annotations

import dataclasses
import socket
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from runner.serve.app import build_app
from runner.serve.settings import EventLimits

from .conftest import basic_auth, serving

AUTH = basic_auth()["Authorization"]

HOSTILE_BODIES: list[tuple[str, bytes, int]] = [
    ("empty", b"", 400),
    ("not json", b"{'userId': 'u'}", 400),
    ("truncated", b'{"userId": "u", "event": "x"', 400),
    ("array", b'[{"userId": "u", "event": "x"}]', 400),
    ("string", b'"hello"', 400),
    ("null", b"null", 400),
    ("NaN", b'{"userId": "u", "event": "x", "properties": {"n": NaN}}', 400),
    ("huge int", b'{"userId": "u", "event": "x", "properties": {"n": ' + b"9" * 5000 + b"}}", 400),
    ("deep nesting", b'{"userId": "u", "event": "x", "properties": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001, 400),
    ("deep arrays", b'{"userId": "u", "event": "x", "properties": {"a": ' + b"[" * 10000 + b"]" * 10000 + b"}}",
     400),
    ("invalid utf-8", b'{"userId": "u\xff\xfe", "event": "x"}', 400),
    ("overlong utf-8", b'{"userId": "\xc0\xaf", "event": "x"}', 400),
    ("lone surrogate", b'{"userId": "u", "event": "x", "properties": {"s": "\\ud800"}}', 400),
    ("event is an object", b'{"userId": "u", "event": {"x": 1}}', 400),
    ("event is blank", b'{"userId": "u", "event": "   "}', 400),
    ("userId is a list", b'{"userId": ["u"], "event": "x"}', 400),
    ("properties a string", b'{"userId": "u", "event": "x", "properties": "p"}', 400),
    ("timestamp a number", b'{"userId": "u", "event": "x", "timestamp": 1700000000}', 400),
    ("timestamp year 0001", b'{"userId": "u", "event": "x", "timestamp": "0001-01-01T00:00:00+01:00"}', 400),
    ("timestamp year 9999", b'{"userId": "u", "event": "x", "timestamp": "9999-12-31T23:59:59Z"}', 400),
    ("huge string", b'{"userId": "u", "event": "' + b"x" * 40000 + b'"}', 413),
    # refused on every store: PostgreSQL cannot store a NUL in text (test_fresh_eyes_serve.py)
    ("null bytes", b'{"userId": "u\\u0000", "event": "x\\u0000"}', 400),
]


def _stored_names(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM events WHERE message_id NOT LIKE 'c0000%'")]


@pytest.mark.parametrize("name,body,status", HOSTILE_BODIES, ids=[case[0] for case in HOSTILE_BODIES])
def test_hostile_bodies_are_refused_cleanly(live_server, serve_project, name, body, status):
    answer = httpx.post(live_server.url + "/v1/track", content=body, timeout=30,
                        headers={"Authorization": AUTH, "Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["success"] is (status == 200) and "Traceback" not in answer.text
    assert len(answer.text) < 2000, "an answer quotes a hostile input at length"
    if status != 200:
        assert _stored_names(serve_project.db) == []


def test_hostile_batches_are_refused_cleanly(live_server, serve_project):
    cases = [b'{"batch": "x"}', b'{"batch": {"a": 1}}', b'{"batch": [1, "two", null, []]}', b'{"nobatch": []}',
             b'{"batch": [{"type": {"t": 1}}]}', b'{"batch": [{"type": "track"}]}']
    for body in cases:
        answer = httpx.post(live_server.url + "/v1/batch", content=body, headers={"Authorization": AUTH}, timeout=30)
        assert answer.status_code == 400 and answer.json()["success"] is False, body
    assert _stored_names(serve_project.db) == []


def test_auth_headers_of_every_malformed_shape_get_401(live_server, serve_project):
    body = b'{"userId": "u", "event": "x"}'
    for header in [b"", b"Basic", b"Basic ", b"Basic ====", b"Basic \xff\xfe", b"Basic " + b"A" * 10000,
                   b"Digest abc", b"basic Og==", b"Basic dTpw\n", b"Basic w4k6"]:
        try:
            answer = httpx.post(live_server.url + "/v1/track", content=body, headers={"Authorization": header},
                                timeout=30)
        except httpx.LocalProtocolError:
            continue  # the client itself refuses to send it
        assert answer.status_code == 401, header[:20]
    assert httpx.post(live_server.url + "/v1/track", content=body, timeout=30).status_code == 401
    assert _stored_names(serve_project.db) == []


def test_wrong_methods_and_paths_are_4xx(live_server):
    assert httpx.get(live_server.url + "/v1/track", timeout=30).status_code == 405
    assert httpx.post(live_server.url + "/v1/nothing", timeout=30).status_code == 404
    assert httpx.put(live_server.url + "/v1/batch", timeout=30).status_code == 405


def _raw_connection(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def test_a_slow_client_is_cut_off_and_does_not_hold_up_others(serve_settings, serve_project):
    settings = dataclasses.replace(serve_settings, events=EventLimits(read_seconds=1.0))
    with serving(build_app(settings)) as (url, _):
        slow = _raw_connection(url)
        slow.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: " + AUTH.encode() +
                     b"\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{\"userId\": \"u\", ")
        started = time.monotonic()
        # meanwhile, another client is served at once
        other = httpx.post(url + "/v1/track", json={"userId": "u2", "event": "fast"}, headers=basic_auth(), timeout=30)
        assert other.status_code == 200
        answer = slow.recv(65536)
        slow.close()
        assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive" in answer
        assert time.monotonic() - started < 20
    assert _stored_names(serve_project.db) == ["fast"]


def test_a_client_that_disconnects_mid_body_breaks_nothing(live_server, serve_project):
    for _ in range(5):
        conn = _raw_connection(live_server.url)
        conn.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: " + AUTH.encode() +
                     b"\r\nContent-Length: 500\r\n\r\n{\"userId\": \"u\"")
        conn.close()
    answer = httpx.post(live_server.url + "/v1/track", json={"userId": "u", "event": "after"}, headers=basic_auth(),
                        timeout=30)
    assert answer.status_code == 200 and _stored_names(serve_project.db) == ["after"]
