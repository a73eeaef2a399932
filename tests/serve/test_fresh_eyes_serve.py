"""``journey serve`` against a new user's hostile pass (tests/test_fresh_eyes.py for the CLI).

- A NUL character (``\\u0000``) in any string of a call: PostgreSQL stores no NUL in text, so the
  insert failed and the call got a ``500`` (which Segment's clients retry without end); SQLite
  took it. Now both refuse the body with a ``400`` before the store sees it.
- A number past 4,300 digits is refused without Python's advice to raise the limit.
- ``JOURNEY_UNSUBSCRIBE_SECRET`` set but too short: the service started and answered every
  unsubscribe link with ``503``; now it stops at start with the error ``journey run`` gives.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from test_tick_kit import REPO

from runner.serve.app import build_app
from runner.serve.settings import load_settings
from runner.store import open_store

from .conftest import WRITE_KEY, basic_auth, serving

AT = "2026-03-02T10:00:00Z"
NUL_CALLS = [
    ("/v1/track", {"userId": "a\u0000b", "event": "paid", "timestamp": AT, "messageId": "nul-user"}),
    ("/v1/track", {"userId": "p1", "event": "pa\u0000id", "timestamp": AT, "messageId": "nul-event"}),
    ("/v1/track", {"userId": "p1", "event": "paid", "properties": {"k\u0000": 1}, "timestamp": AT, "messageId": "nul-key"}),
    ("/v1/identify", {"userId": "p1", "traits": {"first_name": "\u0000"}, "timestamp": AT, "messageId": "nul-trait"}),
    ("/v1/batch", {"batch": [{"type": "track", "userId": "p1", "event": "paid", "timestamp": AT, "messageId": "nul-ok"},
                             {"type": "track", "userId": "p\u0000", "event": "paid", "timestamp": AT,
                              "messageId": "nul-batch"}]}),
]
NUL_IDS = ["nul-user", "nul-event", "nul-key", "nul-trait", "nul-ok", "nul-batch"]


def _posts(url: str, calls: list[tuple[str, dict]]) -> list[httpx.Response]:
    with httpx.Client(base_url=url, headers=basic_auth(), timeout=30) as http:
        return [http.post(path, json=body) for path, body in calls]


def _nul_calls_are_refused(db: str, serve_project) -> None:
    settings = load_settings(serve_project.root, db, {"JOURNEY_WRITE_KEYS": WRITE_KEY})
    with serving(build_app(settings)) as (url, _):
        answers = _posts(url, NUL_CALLS)
        clean = _posts(url, [("/v1/track", {"userId": "p1", "event": "a\\u0000 is only text here", "timestamp": AT,
                                            "messageId": "not-nul"})])
    assert [a.status_code for a in answers] == [400] * len(NUL_CALLS), [a.text for a in answers]
    assert {a.json()["code"] for a in answers} == {"invalid_json"}
    assert "NUL character" in answers[0].json()["message"]
    assert clean[0].status_code == 200
    store = open_store(db)
    try:
        assert store.existing_message_ids(NUL_IDS + ["not-nul"]) == {"not-nul"}
    finally:
        store.close()


def test_a_nul_character_is_refused_on_sqlite(serve_project):
    _nul_calls_are_refused(str(serve_project.db), serve_project)


def test_a_nul_character_is_refused_on_postgresql_not_a_500(serve_project, pg_url):
    _nul_calls_are_refused(pg_url, serve_project)


def test_a_number_past_4300_digits_gets_no_python_advice(live_server):
    body = '{"userId": "p1", "event": "paid", "properties": {"n": ' + "9" * 5000 + "}}"
    answer = httpx.post(live_server.url + "/v1/track", content=body, timeout=30,
                        headers={**basic_auth(), "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["message"] == "invalid JSON: a number has more than 4,300 digits"


@pytest.mark.parametrize("secret", ["short"])
def test_a_too_short_unsubscribe_secret_stops_serve_at_start(serve_project, secret: str):
    env = {**os.environ, "PYTHONPATH": str(REPO), "JOURNEY_WRITE_KEYS": WRITE_KEY, "JOURNEY_UNSUBSCRIBE_SECRET": secret}
    result = subprocess.run([sys.executable, "-m", "runner", "serve", "--port", "0", "--db", str(serve_project.db)],
                            cwd=serve_project.root, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "error: JOURNEY_UNSUBSCRIBE_SECRET is too short (5 bytes); use at least 16 random bytes")
    assert "Traceback" not in result.stderr and "listening" not in result.stdout


@pytest.mark.parametrize(("section", "message"), [
    ("serve: {port: 99999}", "project.yaml serve.port must be a whole number from 0 to 65535, not 99999"),
    ("serve: {port: abc}", "project.yaml serve.port must be a whole number from 0 to 65535, not 'abc'"),
    ("serve: {port: [1]}", "project.yaml serve.port must be a whole number from 0 to 65535, not [1]"),
    ("serve: {host: 5}", "project.yaml serve.host must be text, not 5"),
])
def test_a_serve_section_of_the_wrong_type_stops_serve_with_where_to_look(serve_project, section: str, message: str):
    # internal errors before (OverflowError from bind, ValueError from int)
    project_file = serve_project.root / "project.yaml"
    project_file.write_text(project_file.read_text(encoding="utf-8") + f"\n{section}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "JOURNEY_WRITE_KEYS": WRITE_KEY}
    result = subprocess.run([sys.executable, "-m", "runner", "serve", "--db", str(serve_project.db)],
                            cwd=serve_project.root, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"error: {message} (`journey validate` shows where)"
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
