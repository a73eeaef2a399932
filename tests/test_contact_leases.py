"""Contact leases: workers sharing the due work claim pages of due contacts, one holder each.

``Store.claim_due`` is ``due_page`` with a lease (holder, expiry): a contact another
holder leased is passed over until the lease is released or expires, so two
workers never advance one contact at once, and a killed worker's contacts come
back. ``tests/test_workers.py`` runs real worker processes over it.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

import pytest
from test_tick_kit import add_signups, tiny_project

from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import WORKER_LEASE_PREFIX, build_runtime, run_tick
from runner.store import open_store
from runner.store.base import EventRow
from runner.store.sqlite import CLAIM_DUE_SQL

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
NOW = AT + timedelta(hours=1)
HOUR = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    """The same tests on both backends (PostgreSQL: a schema of its own, dropped after)."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "journey.db")


def _store(location: str, contacts: int = 10):
    store = open_store(location)
    ids = add_signups(store, contacts, AT)
    return store, ids


def _ids(page: list[tuple[str, str]]) -> list[str]:
    return [contact_id for _, contact_id in page]


def test_two_holders_claim_disjoint_pages_in_due_order(location):
    store, ids = _store(location)
    first = _ids(store.claim_due(NOW, "a", 4, HOUR))
    second = _ids(store.claim_due(NOW, "b", 4, HOUR))
    third = _ids(store.claim_due(NOW, "c", 4, HOUR))
    assert (first, second, third) == (ids[:4], ids[4:8], ids[8:])
    assert store.claim_due(NOW, "d", 4, HOUR) == []  # everything due is in someone's hands
    assert store.claim_due(AT - HOUR, "a", 4, HOUR) == []  # nothing due before the signups
    store.close()


def test_a_holder_pages_on_by_keyset_and_may_claim_its_own_again(location):
    store, ids = _store(location)
    page = store.claim_due(NOW, "a", 3, HOUR)
    assert _ids(store.claim_due(NOW, "a", 3, HOUR, after=page[-1])) == ids[3:6]
    assert _ids(store.claim_due(NOW, "a", 3, HOUR)) == ids[:3]  # its own leases do not stop it
    store.close()


def test_released_contacts_are_claimable_again_and_others_are_not_touched(location):
    store, ids = _store(location)
    store.claim_due(NOW, "a", 4, HOUR)
    store.claim_due(NOW, "b", 2, HOUR)
    store.release_contacts("a", ids[:2])
    assert _ids(store.claim_due(NOW, "c", 10, HOUR)) == ids[:2] + ids[6:]
    store.release_contacts("b")  # all of b's
    assert _ids(store.claim_due(NOW, "d", 10, HOUR)) == ids[4:6]
    assert store.claim_due(NOW, "e", 10, HOUR) == []  # a's two, c's six and d's two are held
    store.close()


def test_an_expired_lease_is_taken_over_and_a_renewed_one_is_not(location):
    store, ids = _store(location, 4)
    assert _ids(store.claim_due(NOW, "slow", 2, timedelta(0))) == ids[:2]
    assert store.renew_contacts("slow", HOUR) == 2  # a slow worker keeps what it has in hand
    assert _ids(store.claim_due(NOW, "dead", 2, timedelta(0))) == ids[2:]  # a worker that died, never renewed
    assert _ids(store.claim_due(NOW, "next", 10, HOUR)) == ids[2:]
    store.close()


def test_lease_holders_are_the_named_leases_unexpired_or_all(location):
    store, _ = _store(location, 1)
    store.acquire_lease("worker:x", "x", HOUR, NOW)
    store.acquire_lease("worker:y", "y", timedelta(seconds=1), NOW)
    assert store.lease_holders() == ["x", "y"]
    assert store.lease_holders(NOW + timedelta(minutes=1)) == ["x"]
    store.close()


def test_the_claim_reads_the_due_index_not_the_table(tmp_path):
    store, _ = _store(str(tmp_path / "journey.db"), 1)
    plan = " ".join(row[-1] for row in store.conn.execute(
        "EXPLAIN QUERY PLAN " + CLAIM_DUE_SQL.format(keyset="AND (wake_at, id) > (:after_wake, :after_id)"),
        {"now": "x", "holder": "h", "limit": 1, "wall": "x", "until": "x", "after_wake": "x", "after_id": "x"}))
    assert "USING INDEX contacts_due" in plan and "SCAN contacts" not in plan.replace("SCAN contacts USING", "")
    store.close()


def test_a_tick_passes_over_contacts_another_worker_holds_and_leaves_no_lease(location, tmp_path, monkeypatch):
    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", "lease-test-secret-0123456789")
    root = tiny_project(tmp_path / "project")
    store, ids = _store(location, 6)
    deploy(store, load_working_tree(root).journeys, AT)
    store.acquire_lease(f"{WORKER_LEASE_PREFIX}otherhost:1:abc", "otherhost:1:abc", HOUR, NOW)
    store.claim_due(NOW, "otherhost:1:abc", 2, HOUR)  # another machine's worker, alive
    runtime = build_runtime(store, load_working_tree(root).project, "memory")
    report = run_tick(store, runtime, NOW, shared=True)
    assert report.contacts == 4 and report.counts["sent"] == 4
    assert sorted(m["X-Journey-Key"].split(":")[0] for m in runtime.delivery.transport.messages) == ids[2:]
    assert store.claim_due(NOW, "later", 10, HOUR) == []  # the other's two still held, ours released and saved
    store.release_contacts("otherhost:1:abc")
    assert _ids(store.claim_due(NOW, "later", 10, HOUR)) == ids[:2]
    assert store.lease_holders() == ["otherhost:1:abc"]  # the tick's own lease is gone
    runtime.delivery.close()
    store.close()


def test_a_dead_local_workers_contacts_and_claims_are_taken_over_at_once(location, tmp_path, monkeypatch):
    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", "lease-test-secret-0123456789")
    root = tiny_project(tmp_path / "project")
    store, ids = _store(location, 3)
    deploy(store, load_working_tree(root).journeys, AT)
    dead = f"{socket.gethostname()}:{_unused_pid()}:abc"  # a process of this host that is gone
    store.acquire_lease(f"{WORKER_LEASE_PREFIX}{dead}", dead, HOUR, NOW)
    store.claim_due(NOW, dead, 3, HOUR)
    runtime = build_runtime(store, load_working_tree(root).project, "memory")
    report = run_tick(store, runtime, NOW, shared=True)
    assert report.contacts == 3 and report.counts["sent"] == 3  # not after the hour its leases had left
    assert store.lease_holders() == []
    store.write_events([EventRow(cid, None, "came_back", NOW, {}, f"{cid}-back") for cid in ids], NOW)
    assert _ids(store.claim_due(NOW, "later", 10, HOUR)) == ids  # due again, and nobody holds them
    runtime.delivery.close()
    store.close()


def _unused_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_the_batch_read_of_late_arrivals_answers_what_each_contact_read_answers(location):
    """``events_after_many`` (a tick's page in one query) = ``events_after`` per contact,
    anonymous ids and each contact's own ``after`` included."""
    store, ids = _store(location, 4)
    store.link_identities([("anon-1", ids[1])], AT)
    store.write_events([EventRow(None, "anon-1", "page", AT, {}, "anon-page"),
                        EventRow(ids[2], None, "clicked", NOW, {}, "late-click")], NOW)
    wanted = [(cid, ["anon-1"] if cid == ids[1] else [], after) for cid, after in zip(ids, (0, 0, 3, 10**9), strict=True)]
    batch = store.events_after_many(wanted)
    each = {cid: store.events_after(cid, anonymous, after) for cid, anonymous, after in wanted}
    assert {cid: sorted(rows) for cid, rows in batch.items()} == {cid: sorted(rows) for cid, rows in each.items()}
    assert len(batch[ids[1]]) == 2 and batch[ids[3]] == []  # its signup and the visitor's page; nothing past 10**9
    store.close()
