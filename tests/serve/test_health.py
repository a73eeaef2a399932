"""``GET /healthz`` and ``GET /readyz``: the process answers; the database answers, its schema is current, the lease."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from runner.store import open_store
from runner.store.codec import to_db_time


def test_healthz_answers_without_the_database(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_readyz_is_ready_on_a_current_database_and_shows_the_tick_lease(client, serve_project):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "database": "ok", "migrations": "current", "lease": None,
                             "contact_leases": {"count": 0, "holders": 0, "oldest_expires_at": None, "expired": 0}}

    store = open_store(serve_project.db)  # a worker elsewhere takes the tick lease, then dies holding it
    past = datetime.now(UTC) - timedelta(minutes=10)
    assert store.acquire_lease("tick", "host-b:4242:w1", timedelta(minutes=5), past)
    store.close()
    lease = client.get("/readyz").json()["lease"]
    assert lease["holder"] == "host-b:4242:w1" and lease["expired"] is True
    assert datetime.fromisoformat(lease["expires_at"]) < datetime.now(UTC)


def test_readyz_shows_the_workers_contact_leases(client, serve_project):
    """Two workers hold contacts (the project's two signups are due); one is killed and its
    lease runs out: the count, the holders, the oldest expiry and the expired ones say so."""
    store = open_store(serve_project.db)
    try:
        started = datetime.now(UTC)
        assert len(store.claim_due(started, "host-a:1:w1", 1, timedelta(minutes=5))) == 1
        assert len(store.claim_due(started, "host-b:2:w1", 1, timedelta(seconds=1))) == 1
        leases = client.get("/readyz").json()["contact_leases"]
        assert (leases["count"], leases["holders"]) == (2, 2)
        oldest = datetime.fromisoformat(leases["oldest_expires_at"])
        assert started < oldest < started + timedelta(minutes=1)  # host-b's, a second after its claim
        store.conn.execute("UPDATE contacts SET lease_until = ? WHERE lease_holder = 'host-b:2:w1'",
                           (to_db_time(started - timedelta(minutes=1)),))  # host-b died a while ago
        assert client.get("/readyz").json()["contact_leases"]["expired"] == 1
        store.release_contacts("host-a:1:w1")
        store.release_contacts("host-b:2:w1")
        assert client.get("/readyz").json()["contact_leases"]["count"] == 0
    finally:
        store.close()


def test_readyz_is_503_with_the_reason_when_a_migration_is_pending(client, serve_project):
    with sqlite3.connect(serve_project.db) as conn:  # the database restored from an older backup
        conn.execute("DELETE FROM schema_migrations WHERE name = 'm010_run_counts'")
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "not ready" and "m010_run_counts" in answer.json()["reason"]
    assert client.get("/healthz").status_code == 200  # alive all the same: a restart would migrate it


def test_readyz_is_503_when_the_database_cannot_be_read(client, serve_project):
    with sqlite3.connect(serve_project.db) as conn:  # a damaged or foreign database under the service
        conn.execute("DROP TABLE leases")
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "not ready"
    assert answer.json()["reason"].startswith("the database cannot be read (database error: ")
    assert "leases" in answer.json()["reason"]


def test_a_stuck_database_makes_readyz_503_within_its_timeout_while_healthz_answers(live_server, serve_project):
    import threading
    import time

    import httpx

    from .conftest import basic_auth

    holder = sqlite3.connect(serve_project.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock (a long import, a stuck tick)
    answers: dict[str, int] = {}
    event = threading.Thread(target=lambda: answers.setdefault("event", httpx.post(
        f"{live_server.url}/v1/track", headers=basic_auth(), timeout=60,
        json={"userId": "c00000", "event": "opened_app", "messageId": "stuck-1"}).status_code))
    event.start()  # its write waits for the lock on the store's thread; everything queued behind it waits too
    try:
        time.sleep(0.5)
        started = time.monotonic()
        ready = httpx.get(f"{live_server.url}/readyz", timeout=30)
        assert ready.status_code == 503 and "did not answer within 2 s" in ready.json()["reason"]
        assert time.monotonic() - started < 10
        assert httpx.get(f"{live_server.url}/healthz", timeout=5).status_code == 200
    finally:
        holder.execute("COMMIT")
        holder.close()
    event.join(timeout=60)
    assert answers["event"] == 200  # the event waited for the lock and was stored
    assert httpx.get(f"{live_server.url}/readyz", timeout=10).status_code == 200
