"""Leases and runs: a lease excludes others until it expires, renews only for its holder,
and runs record what they did (the cross-process race is in test_processes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .kit import at, blank, instant, send

TTL = timedelta(minutes=5)


def test_a_lease_excludes_until_expiry_and_renews_only_for_its_holder(store):
    assert store.acquire_lease("tick", "a", TTL, at(0))
    assert store.lease_holder("tick") == "a"
    assert not store.acquire_lease("tick", "b", TTL, at(0) + timedelta(minutes=4))
    assert store.acquire_lease("tick", "a", TTL, at(0) + timedelta(minutes=4))  # re-entrant
    assert store.renew_lease("tick", "a", TTL, at(0) + timedelta(minutes=8))
    assert not store.acquire_lease("tick", "b", TTL, at(0) + timedelta(minutes=12))
    assert store.acquire_lease("tick", "b", TTL, at(0) + timedelta(minutes=13))  # expired: taken over
    assert store.lease_holder("tick") == "b"
    assert not store.renew_lease("tick", "a", TTL, at(0) + timedelta(minutes=14))
    store.release_lease("tick", "a")  # not the holder: no effect
    assert not store.acquire_lease("tick", "c", TTL, at(0) + timedelta(minutes=14))
    store.release_lease("tick", "b")
    assert store.lease_holder("tick") is None
    assert store.acquire_lease("tick", "c", TTL, at(0) + timedelta(minutes=14))


def test_leases_are_independent_by_name(store):
    assert store.acquire_lease("tick", "a", TTL, at(0))
    assert store.acquire_lease("import", "b", TTL, at(0))
    assert (store.lease_holder("tick"), store.lease_holder("import"), store.lease_holder("none")) == ("a", "b", None)


def test_the_lease_says_who_holds_it_until_when(store):
    assert store.lease("tick") is None
    assert store.acquire_lease("tick", "a", TTL, at(0))
    lease = store.lease("tick")
    assert lease["holder"] == "a" and instant(lease["expires_at"]) == at(0) + TTL


def test_a_lease_taken_over_from_another_store_object(store, other_store):
    assert store.acquire_lease("tick", "a", TTL, at(0))
    assert not other_store.acquire_lease("tick", "b", TTL, at(0))
    assert other_store.acquire_lease("tick", "b", TTL, at(1))
    assert not store.renew_lease("tick", "a", TTL, at(1))


def test_runs_record_counts_and_status(store):
    run = store.start_run("host:42", at(0))
    assert [r["id"] for r in store.unfinished_runs()] == [run]
    store.finish_run(run, {"contacts": 3, "sent": 2}, "ok", at(0.1))
    assert store.unfinished_runs() == []
    (summary_run,) = store.status_summary(at(1))["runs"]
    assert summary_run["id"] == run and summary_run["holder"] == "host:42"
    assert summary_run["counts"] == {"contacts": 3, "sent": 2}
    assert summary_run["status"] == "ok" and instant(summary_run["finished_at"]) == at(0.1)


def test_run_ids_are_unique_and_claims_name_their_run(store):
    runs = {store.start_run("host:1", at(0)) for _ in range(20)}
    assert len(runs) == 20
    run = sorted(runs)[0]
    assert store.claim_send(send("k"), run)
    store.finish_run(run, {}, "crashed", at(1))
    (row,) = store.in_doubt_sends(at(2))
    assert row["run_id"] == run


def test_contact_leases_say_how_many_by_how_many_workers_and_the_oldest_expiry(store):
    """What ``/readyz`` shows of the workers' contact leases: leased contacts, holders, the
    oldest expiry (leases run on the wall clock) and how many have expired at ``now``."""
    for n in range(5):
        store.save_contact_state(blank(f"c{n}"), wake_at=at(n))
    assert store.contact_leases(datetime.now(UTC)) == {"count": 0, "holders": 0, "oldest_expires_at": None,
                                                       "expired": 0}
    started = datetime.now(UTC)
    assert len(store.claim_due(at(10), "w1", 2, timedelta(minutes=5))) == 2
    assert len(store.claim_due(at(10), "w2", 2, timedelta(minutes=1))) == 2
    leases = store.contact_leases(datetime.now(UTC))
    assert (leases["count"], leases["holders"], leases["expired"]) == (4, 2, 0)
    oldest = instant(leases["oldest_expires_at"])
    assert started + timedelta(minutes=1) - timedelta(seconds=5) <= oldest <= datetime.now(UTC) + timedelta(minutes=1)
    assert store.contact_leases(datetime.now(UTC) + timedelta(minutes=2))["expired"] == 2  # w2's: a dead worker's
    store.release_contacts("w2")
    leases = store.contact_leases(datetime.now(UTC))
    assert (leases["count"], leases["holders"]) == (2, 1)
    assert instant(leases["oldest_expires_at"]) > started + timedelta(minutes=4)
