"""The events API on PostgreSQL (``--db postgresql://…``): the same answers, the same rows, the
same deduplication under concurrent retries, committed before the answer (StoreAccess does
not assume SQLite). Skipped loudly without a server; a failure with JOURNEY_REQUIRE_PG=1."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from runner.serve.app import build_app
from runner.serve.settings import load_settings
from runner.store import open_store

from .conftest import WRITE_KEY, basic_auth, serving

AT = "2026-03-02T10:00:00Z"


def test_events_on_postgresql_are_committed_deduplicated_and_due(serve_project, pg_url):
    settings = load_settings(serve_project.root, pg_url, {"JOURNEY_WRITE_KEYS": WRITE_KEY})
    assert settings.db == pg_url

    async def storm(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, headers=basic_auth(), timeout=30) as http:
            first = await http.post("/v1/batch", json={"batch": [
                {"type": "identify", "userId": "p1", "anonymousId": "v1", "traits": {"email": "p1@example.com"},
                 "timestamp": AT, "messageId": "pg-id"},
                {"type": "track", "userId": "p1", "event": "signed_up", "timestamp": AT, "messageId": "pg-t"},
                {"type": "track", "userId": "p1", "timestamp": AT, "messageId": "pg-bad"},
            ]})
            retries = [http.post("/v1/track", json={"userId": "p1", "event": "paid", "timestamp": AT,
                                                    "messageId": f"pg-dup-{n % 2}"}) for n in range(20)]
            return [first.status_code] + [answer.status_code for answer in await asyncio.gather(*retries)]

    with serving(build_app(settings)) as (url, _):
        assert asyncio.run(storm(url)) == [400] + [200] * 20
    store = open_store(pg_url)
    try:
        ids = ["pg-id", "pg-t", "pg-bad", "pg-dup-0", "pg-dup-1"]
        assert store.existing_message_ids(ids) == {"pg-id", "pg-t", "pg-dup-0", "pg-dup-1"}
        assert store.wake_at("p1") == datetime(2026, 3, 2, 10, tzinfo=UTC)
        assert store.load_contact_state("p1").contact.attributes == {"email": "p1@example.com"}
    finally:
        store.close()
