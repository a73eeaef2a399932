"""Every line ``journey serve --worker`` writes is JSON, and none holds an address, a token or a key.

A real service is fed what production feeds it: identify calls with email traits, track
calls with addresses in their properties, a batch with bad calls, wrong and right write
keys (Basic auth and ``writeKey`` in the body), unsubscribe tokens in paths and query
strings, addresses in paths, a malformed HTTP request; its worker ticks and sends. Then
every line of its stdout and stderr is read.
"""

from __future__ import annotations

import base64
import json
import socket
import time

import httpx

from runner.delivery.unsubscribe import make_token

from .conftest import WRITE_KEY, basic_auth

SECRET = "serve-logs-unsubscribe-secret-0123456789"
TOKEN = make_token(SECRET.encode(), "c00000", "all")
ADDRESSES = ("ada.lovelace@example.org", "grace+ops@navy.example.mil", "c00000@example.com")
WRONG_KEY = "wk_wrong_but_secret_looking_999"


def test_no_line_holds_an_address_a_token_or_a_key(serve_process):
    server = serve_process("--worker", env={"JOURNEY_UNSUBSCRIBE_SECRET": SECRET})
    url = server.url
    with httpx.Client(timeout=10) as http:
        assert http.post(f"{url}/v1/identify", headers=basic_auth(), json={
            "userId": "ada", "traits": {"email": ADDRESSES[0], "name": "Ada"}, "messageId": "l-1"}).status_code == 200
        assert http.post(f"{url}/v1/track", json={
            "writeKey": WRITE_KEY, "userId": "grace", "event": "signed_up", "messageId": "l-2",
            "properties": {"email": ADDRESSES[1]}}).status_code == 200
        batch = {"batch": [{"type": "track", "userId": "ada", "event": "x", "messageId": "l-3"},
                           {"type": "track", "userId": ADDRESSES[0], "event": 42, "messageId": "l-4"}]}
        assert http.post(f"{url}/v1/batch", headers=basic_auth(), json=batch).status_code == 400
        assert http.post(f"{url}/v1/track", headers=basic_auth(WRONG_KEY), json={}).status_code == 401
        wrong = "Basic " + base64.b64encode(f"{WRONG_KEY}:".encode()).decode()
        assert http.post(f"{url}/v1/track?writeKey={WRONG_KEY}", headers={"Authorization": wrong},
                         content=b"{").status_code == 401
        for path in (f"/unsubscribe?token={TOKEN}", f"/unsubscribe/{TOKEN}", f"/contacts/{ADDRESSES[1]}"):
            served = path.startswith("/unsubscribe?")  # the link is served (runner.serve.unsubscribe); the others are not routes
            assert http.get(url + path).status_code == (200 if served else 404)
            http.post(url + path, data={"List-Unsubscribe": "One-Click"})
        assert http.get(f"{url}/unsubscribe?token={TOKEN[:-4]}").status_code == 403  # refused: logged, without it
        metrics = http.get(f"{url}/metrics").text
        assert 'journey_requests_rejected_total{reason="unauthorized"} 2.0' in metrics
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as raw:
        raw.sendall(f"GARBAGE {ADDRESSES[2]} {TOKEN}\r\n\r\n".encode())  # uvicorn's own warning line
        raw.recv(1000)
    deadline = time.monotonic() + 60  # the worker's first tick (it sends the welcome emails) is done
    while "journey_tick_duration_seconds_count 0.0" in httpx.get(f"{url}/metrics", timeout=10).text:
        assert time.monotonic() < deadline, "the worker never ticked"
        time.sleep(0.2)
    code, out, err = server.stop()
    assert code == 0, err

    lines = [json.loads(line) for line in out.splitlines()]  # every line is one JSON object
    rejected = [line for line in lines if line["message"] == "request rejected"]
    assert {line["status"] for line in rejected} >= {400, 401, 403, 404}
    assert all(set(line) == {"time", "level", "logger", "message", "method", "path", "status", "reason"}
               for line in rejected)  # never a body or a query string
    assert any(line["message"] == "tick" and line.get("sent") for line in lines)
    assert any(line["path"] == "/contacts/g***@navy.example.mil" for line in rejected)  # there, masked
    text = out + err
    for secret in (*ADDRESSES, TOKEN, WRITE_KEY, WRONG_KEY, SECRET, TOKEN.split(".")[1]):
        assert secret not in text, secret
