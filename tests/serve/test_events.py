"""The events API (``runner.serve.events``): Segment's calls, answers and limits, stored as the importer stores them."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from runner.production.ingest import import_events
from runner.production.tick import build_runtime, run_tick
from runner.store import open_store

from .conftest import DEPLOYED_AT, OTHER_KEY, WRITE_KEY, basic_auth

AT = "2026-03-02T10:00:00Z"


def _rows(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def _events(db: Path) -> list[tuple]:
    return _rows(db, "SELECT contact_id, anonymous_id, name, at, properties, message_id FROM events "
                     "WHERE message_id NOT LIKE 'c0000%' ORDER BY message_id")


def test_track_is_stored_and_answered_like_segment(client, serve_project):
    answer = client.post("/v1/track", headers=basic_auth(), json={
        "userId": "u1", "event": "Order Completed", "properties": {"total": 42.5}, "timestamp": AT,
        "messageId": "m-track-1", "context": {"ip": "8.8.8.8"}})
    assert answer.status_code == 200 and answer.json() == {"success": True}
    assert _events(serve_project.db) == [("u1", None, "Order Completed", "2026-03-02T10:00:00.000000+00:00",
                                          '{"total":42.5}', "m-track-1")]


def test_every_call_kind_is_stored_as_the_importer_stores_it(client, serve_project, tmp_path):
    """One parsing path: the same Segment calls, posted and imported, give the same rows."""
    calls = [
        ("identify", {"userId": "u2", "anonymousId": "anon-2", "traits": {"email": "u2@example.com",
                      "plan": "pro", "timezone": "Europe/Istanbul"}, "timestamp": AT, "messageId": "m-id"}),
        ("track", {"anonymousId": "anon-3", "event": "Viewed Pricing", "timestamp": AT, "messageId": "m-t"}),
        ("alias", {"userId": "u3", "previousId": "anon-3", "timestamp": AT, "messageId": "m-al"}),
        ("page", {"userId": "u2", "name": "Pricing", "properties": {"path": "/pricing"}, "timestamp": AT,
                  "messageId": "m-pg"}),
        ("screen", {"userId": "u2", "name": "Home", "timestamp": AT, "messageId": "m-sc"}),
    ]
    for call, body in calls:
        assert client.post(f"/v1/{call}", headers=basic_auth(), json=body).status_code == 200, call
    lines = tmp_path / "same.jsonl"
    lines.write_text("".join(json.dumps({**body, "type": call}) + "\n" for call, body in calls), encoding="utf-8")
    imported = tmp_path / "imported.db"
    store = open_store(imported)
    result = import_events(store, lines, now=DEPLOYED_AT)
    store.close()
    assert result.imported == len(calls) and not result.bad
    assert _events(serve_project.db) == _events(imported)
    for db in (serve_project.db, imported):
        assert _rows(db, "SELECT attributes, timezone FROM contacts WHERE id = 'u2'") == [
            ('{"email":"u2@example.com","plan":"pro"}', "Europe/Istanbul")]
        assert _rows(db, "SELECT anonymous_id, contact_id FROM identities ORDER BY 1") == [
            ("anon-2", "u2"), ("anon-3", "u3")]


def test_group_is_accepted_and_stores_nothing(client, serve_project):
    answer = client.post("/v1/group", headers=basic_auth(), json={"userId": "u1", "groupId": "acme", "timestamp": AT})
    assert answer.status_code == 200
    assert _events(serve_project.db) == []
    answer = client.post("/v1/group", headers=basic_auth(), json={"userId": "u1"})
    assert answer.status_code == 400 and answer.json()["errors"] == [
        {"field": "groupId", "message": "group needs a 'groupId'"}]


def test_without_a_timestamp_the_time_of_receipt_is_used(client, serve_project):
    before = datetime.now(UTC)
    assert client.post("/v1/track", headers=basic_auth(), json={"userId": "u1", "event": "x"}).status_code == 200
    [(at,)] = _rows(serve_project.db, "SELECT at FROM events WHERE contact_id = 'u1'")
    assert before <= datetime.fromisoformat(at) <= datetime.now(UTC)


def test_a_bad_call_is_400_naming_the_field_and_the_reason(client):
    cases = [
        ({"event": "x", "timestamp": AT}, "userId", "needs 'userId' or 'anonymousId'"),
        ({"userId": "u1", "timestamp": AT}, "event", "track needs an 'event' name"),
        ({"userId": "u1", "event": "x", "timestamp": "yesterday"}, "timestamp", "is not an ISO 8601"),
        ({"userId": "u1", "event": "x", "timestamp": "2026-03-02T10:00:00"}, "timestamp", "needs a UTC offset"),
        ({"userId": "u1", "event": "x", "properties": [1, 2]}, "properties", "must be an object"),
        ({"userId": "u1", "event": 12}, "event", "track needs an 'event' name"),
    ]
    for body, field, reason in cases:
        answer = client.post("/v1/track", headers=basic_auth(), json=body)
        assert answer.status_code == 400, body
        [error] = answer.json()["errors"]
        assert error["field"] == field and reason in error["message"], (body, error)
        assert answer.json()["success"] is False and field in answer.json()["message"]
    answer = client.post("/v1/identify", headers=basic_auth(), json={"userId": "u1", "traits": {"email": "nope"}})
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "traits.email"


def test_a_batch_keeps_the_good_calls_and_reports_each_bad_one(client, serve_project):
    batch = [
        {"type": "track", "userId": "u1", "event": "a", "timestamp": AT, "messageId": "b1"},
        {"type": "track", "userId": "u1", "timestamp": AT, "messageId": "b2"},
        {"type": "identify", "userId": "u1", "traits": {"plan": "team"}, "timestamp": AT, "messageId": "b3"},
        {"type": "launch", "userId": "u1"},
        "not an object",
        {"type": "page", "anonymousId": "v9", "timestamp": AT, "messageId": "b6"},
    ]
    answer = client.post("/v1/batch", headers=basic_auth(), json={"batch": batch, "sentAt": AT})
    assert answer.status_code == 400
    body = answer.json()
    assert [(e["index"], e.get("field")) for e in body["errors"]] == [(1, "event"), (3, "type"), (4, "batch")]
    assert "3 of 6" in body["message"]
    assert [row[5] for row in _events(serve_project.db)] == ["b1", "b3", "b6"]
    good = client.post("/v1/batch", headers=basic_auth(), json={"batch": batch[:1]})
    assert good.status_code == 200 and good.json() == {"success": True}


def test_a_retried_call_is_stored_once_and_its_traits_applied_once(client, serve_project):
    call = {"userId": "u7", "traits": {"visits": 1}, "timestamp": AT, "messageId": "retry-1"}
    for _ in range(3):
        assert client.post("/v1/identify", headers=basic_auth(), json=call).status_code == 200
    # a later identify changes the trait; a late retry of the first must not undo it
    assert client.post("/v1/identify", headers=basic_auth(), json={
        **call, "traits": {"visits": 2}, "messageId": "retry-2", "timestamp": "2026-03-02T11:00:00Z"}).status_code == 200
    assert client.post("/v1/identify", headers=basic_auth(), json=call).status_code == 200
    assert [row[5] for row in _events(serve_project.db)] == ["retry-1", "retry-2"]
    assert _rows(serve_project.db, "SELECT attributes FROM contacts WHERE id = 'u7'") == [('{"visits":2}',)]


def test_concurrent_retries_of_one_call_store_it_once(live_server, serve_project):
    async def storm() -> list[int]:
        async with httpx.AsyncClient(base_url=live_server.url, headers=basic_auth(), timeout=30) as http:
            calls = [http.post("/v1/track", json={"userId": "u1", "event": "paid", "timestamp": AT,
                                                  "messageId": f"dup-{n % 3}"}) for n in range(60)]
            return [answer.status_code for answer in await asyncio.gather(*calls)]

    assert asyncio.run(storm()) == [200] * 60
    assert [row[5] for row in _events(serve_project.db)] == ["dup-0", "dup-1", "dup-2"]


def test_write_keys_basic_auth_or_body_constant_time_and_several(client, serve_project):
    track = {"userId": "u1", "event": "x", "timestamp": AT}
    assert client.post("/v1/track", json=track).status_code == 401
    assert client.post("/v1/track", headers=basic_auth("wrong"), json=track).status_code == 401
    assert client.post("/v1/track", headers={"Authorization": "Basic !!!"}, json=track).status_code == 401
    assert client.post("/v1/track", headers={"Authorization": "Bearer " + WRITE_KEY}, json=track).status_code == 401
    assert client.post("/v1/track", json={**track, "writeKey": "wrong"}).status_code == 401
    refused = client.post("/v1/track", json=track)
    assert refused.headers["www-authenticate"].startswith("Basic") and refused.json()["success"] is False
    assert _events(serve_project.db) == []
    assert client.post("/v1/track", headers=basic_auth(OTHER_KEY), json={**track, "messageId": "k2"}).status_code == 200
    assert client.post("/v1/track", json={**track, "writeKey": WRITE_KEY, "messageId": "k3"}).status_code == 200
    assert [row[5] for row in _events(serve_project.db)] == ["k2", "k3"]


def test_no_configured_key_refuses_everything(serve_project):
    from starlette.testclient import TestClient

    from runner.serve.app import build_app
    from runner.serve.settings import load_settings

    settings = load_settings(serve_project.root, serve_project.db, {})
    with TestClient(build_app(settings)) as bare:
        answer = bare.post("/v1/track", headers=basic_auth(), json={"userId": "u1", "event": "x"})
    assert answer.status_code == 401 and "JOURNEY_WRITE_KEYS" in answer.json()["message"]


def test_gzip_bodies_and_their_limits(client, serve_project):
    body = json.dumps({"userId": "u1", "event": "zipped", "timestamp": AT, "messageId": "gz"}).encode()
    headers = {**basic_auth(), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert client.post("/v1/track", headers=headers, content=gzip.compress(body)).status_code == 200
    assert [row[5] for row in _events(serve_project.db)] == ["gz"]
    bomb = gzip.compress(b'{"batch": [' + b" " * (50 * 1024 * 1024) + b"]}")
    assert len(bomb) < 100 * 1024
    answer = client.post("/v1/batch", headers=headers, content=bomb)
    assert answer.status_code == 413 and "decompressed" in answer.json()["message"]
    assert client.post("/v1/track", headers=headers, content=b"not gzip at all").status_code == 400
    assert client.post("/v1/track", headers=headers, content=gzip.compress(body)[:-12]).status_code == 400
    other = client.post("/v1/track", headers={**basic_auth(), "Content-Encoding": "br"}, content=body)
    assert other.status_code == 415


def test_32_kb_a_call_and_500_kb_a_batch(client, serve_project):
    big = {"userId": "u1", "event": "x", "timestamp": AT, "properties": {"blob": "a" * (32 * 1024)}}
    assert client.post("/v1/track", headers=basic_auth(), json=big).status_code == 413
    near = {**big, "properties": {"blob": "a" * (31 * 1024)}, "messageId": "near"}
    assert client.post("/v1/track", headers=basic_auth(), json=near).status_code == 200
    batch = [{**near, "type": "track", "messageId": f"n{i}"} for i in range(15)] + [{**big, "type": "track"}]
    answer = client.post("/v1/batch", headers=basic_auth(), json={"batch": batch})
    assert answer.status_code == 400 and [e["index"] for e in answer.json()["errors"]] == [15]
    assert "larger than 32 KB" in answer.json()["errors"][0]["message"]
    assert len(_events(serve_project.db)) == 16
    too_big = {"batch": [{**near, "type": "track", "messageId": f"t{i}"} for i in range(17)]}
    answer = client.post("/v1/batch", headers=basic_auth(), json=too_big)
    assert answer.status_code == 413 and answer.json()["code"] == "too_large"
    assert len(_events(serve_project.db)) == 16


def test_an_answered_event_is_due_at_once_and_the_next_tick_reacts(client, serve_project, tmp_path):
    at = DEPLOYED_AT + timedelta(hours=2)
    calls = {"batch": [
        {"type": "identify", "userId": "newbie", "traits": {"email": "newbie@example.com", "first_name": "Nia"},
         "timestamp": at.isoformat(), "messageId": "nb-1"},
        {"type": "track", "userId": "newbie", "event": "signed_up", "timestamp": at.isoformat(), "messageId": "nb-2"},
    ]}
    assert client.post("/v1/batch", headers=basic_auth(), json=calls).status_code == 200
    store = open_store(serve_project.db)
    try:
        assert store.wake_at("newbie") == at
        assert "newbie" in store.due_contacts(at + timedelta(minutes=1), 100)
        runtime = build_runtime(store, client.app.state.settings.project, f"outbox:{tmp_path / 'outbox'}")
        run_tick(store, runtime, at + timedelta(minutes=1))
        runtime.delivery.close()
    finally:
        store.close()
    sends = _rows(serve_project.db, "SELECT step_id, state FROM sends WHERE contact_id = 'newbie'")
    assert sends == [("hello", "sent")]
    assert any("newbie@example.com" in p.read_text() for p in (tmp_path / "outbox").rglob("*.eml"))
