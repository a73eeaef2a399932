"""SQLiteStore on real database files: state round trips, the due index, the
send ledger, leases, runs, deployments, suppressions and migrations."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runner.core.problems import JourneyError
from runner.core.state import (
    ACTIVE,
    EXITED,
    Contact,
    ContactState,
    Enrollment,
    SendRecord,
    Wait,
)
from runner.store import EventRow, SQLiteStore, Store, open_store
from runner.store.base import ContactRow
from runner.store.codec import to_db_time
from runner.store.errors import StoreConstraint
from runner.store.migrations import schema_version
from runner.store.sqlite import DUE_CONTACTS_SQL, DUE_NEXT_PAGE_SQL

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "journey.db") as opened:
        yield opened


def send(key: str = "ada:onboarding:1/1/welcome", contact: str = "ada") -> SendRecord:
    return SendRecord(key=key, contact_id=contact, journey_id="onboarding", version=3,
                      step_id="welcome", at=at(1))


def test_open_creates_wal_database_with_foreign_keys_and_migrations(tmp_path):
    path = tmp_path / "journey.db"
    store = open_store(path)
    assert isinstance(store, Store)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert schema_version(store.db) == ["m001_initial", "m002_decisions", "m003_event_suppressions", "m004_stats_counts",
        "m005_imported_values", "m006_send_retries", "m007_due_keyset", "m008_split_counts",
        "m009_deployed_templates", "m010_run_counts",
        "m011_contact_leases"]
    store.close()
    # reopening applies nothing twice
    again = open_store(path)
    assert schema_version(again.db) == ["m001_initial", "m002_decisions", "m003_event_suppressions", "m004_stats_counts",
        "m005_imported_values", "m006_send_retries", "m007_due_keyset", "m008_split_counts",
        "m009_deployed_templates", "m010_run_counts",
        "m011_contact_leases"]
    assert again.conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 11
    again.close()


def test_a_database_from_the_first_release_is_migrated_and_keeps_its_data(tmp_path):
    """A database created before the decision journal existed gains it on open."""
    import sqlite3

    from sqlite_utils import Database

    from runner.store import migrations as schema

    path = tmp_path / "old.db"
    old = Database(sqlite3.connect(path))
    schema.m001_initial(old)
    old.execute("CREATE TABLE schema_migrations (migration_set TEXT, name TEXT, applied_at TEXT)")
    old.execute("INSERT INTO schema_migrations VALUES ('journey-runner', 'm001_initial', '2026-03-01')")
    old.execute("INSERT INTO contacts (id, created_at, updated_at) VALUES ('ada', 'x', 'x')")
    old.conn.commit()
    old.conn.close()
    store = open_store(path)
    assert schema_version(store.db) == ["m001_initial", "m002_decisions", "m003_event_suppressions", "m004_stats_counts",
        "m005_imported_values", "m006_send_retries", "m007_due_keyset", "m008_split_counts",
        "m009_deployed_templates", "m010_run_counts",
        "m011_contact_leases"]
    assert store.conn.execute("SELECT id FROM contacts").fetchall() == [("ada",)]
    assert store.contact_history("ada") == []
    store.close()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("this is not sqlite " * 100)
    with pytest.raises(JourneyError, match="not a journey-runner database"):
        open_store(path)
    assert path.read_text().startswith("this is not sqlite")


def full_state() -> ContactState:
    contact = Contact(id="ada", attributes={"email": "Ada@Example.com", "first_name": "Ada",
                                            "meddic": {"metrics": "yes"}},
                      timezone="Europe/Istanbul", anonymous_ids=["anon-17"])
    current = Enrollment(id="ada:onboarding:2", contact_id="ada", journey_id="onboarding",
                         version=3, entered_at=at(0), stage="education", stage_seq=2,
                         cursor="wait_click", status=ACTIVE,
                         wait=Wait(until=at(72), event="email_clicked", step="wait_click"),
                         due_at=at(72), variant={"subject_test": "b"}, holdout=False)
    past = Enrollment(id="ada:onboarding:1", contact_id="ada", journey_id="onboarding",
                      version=2, entered_at=at(-500), stage="education", cursor=None,
                      status=EXITED, exit_reason="exit:0", exited_at=at(-400), goal_at=at(-450))
    return ContactState(contact=contact, enrollments={"onboarding": current},
                        past_enrollments=[past], clock=at(2),
                        memory={"onboarding": {"segment:hot_lead": False}}, enrollment_seq=2)


def test_contact_state_round_trip(store):
    state = full_state()
    store.save_contact_state(state, wake_at=at(72))
    store.write_events([EventRow("ada", None, "signed_up", at(0), {"form": "footer"}, "m1"),
                        EventRow(None, "anon-17", "page_viewed", at(-1), {"path": "/pricing"}, "m2"),
                        EventRow(None, "anon-99", "page_viewed", at(-2), {}, "m3")], at(3))
    assert store.claim_send(send(), "run-1")
    loaded = store.load_contact_state("ada")
    assert loaded.contact == state.contact
    assert loaded.enrollments == state.enrollments
    assert loaded.past_enrollments == state.past_enrollments
    assert loaded.clock == state.clock
    assert loaded.memory == state.memory
    assert loaded.enrollment_seq == 2
    # events of the linked anonymous id count, the unlinked one does not; sorted by time
    assert [(e.name, e.message_id) for e in loaded.events] == [("page_viewed", "m2"), ("signed_up", "m1")]
    assert loaded.events[0].properties == {"path": "/pricing"}
    assert loaded.sends == [send()]
    assert loaded.suppressed is None


def test_unknown_contact_raises_key_error(store):
    with pytest.raises(KeyError):
        store.load_contact_state("nobody")


def test_naive_datetimes_are_refused(store):
    with pytest.raises(ValueError, match="naive"):
        store.due_contacts(datetime(2026, 3, 2), 10)


def test_due_contacts_uses_the_index_oldest_first(store):
    for name, wake in [("c", at(3)), ("a", at(1)), ("b", at(2)), ("later", at(50)), ("never", None)]:
        store.save_contact_state(ContactState(contact=Contact(id=name)), wake_at=wake)
    assert store.due_contacts(at(10), limit=10) == ["a", "b", "c"]
    assert store.due_contacts(at(10), limit=2) == ["a", "b"]
    assert store.due_contacts(at(0), limit=10) == []
    plan = " ".join(row[3] for row in store.conn.execute(
        "EXPLAIN QUERY PLAN " + DUE_CONTACTS_SQL, ("x", 10)))
    assert "INDEX contacts_due" in plan
    assert "SCAN" not in plan and "TEMP B-TREE" not in plan


def test_due_pages_follow_each_other_by_keyset(store):
    """Each page starts after the previous page's last (wake_at, id): every due contact once, none twice."""
    wakes = {f"c{n:02d}": at(n % 4) for n in range(10)} | {"later": at(50), "never": None}
    for name, wake in wakes.items():
        store.save_contact_state(ContactState(contact=Contact(id=name)), wake_at=wake)
    pages, cursor = [], None
    while page := store.due_page(at(10), 3, cursor):
        pages.append([contact_id for _, contact_id in page])
        cursor = page[-1]
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert sum(pages, []) == sorted((n for n, w in wakes.items() if w and w <= at(10)), key=lambda n: (wakes[n], n))
    plan = " ".join(row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + DUE_NEXT_PAGE_SQL, ("x", "a", "b", 3)))
    assert "INDEX contacts_due" in plan and "TEMP B-TREE" not in plan


def test_save_writes_only_engine_changes_and_keeps_concurrent_imports(store):
    store.write_contacts([ContactRow("ada", {"email": "ada@example.com", "plan": "free"})], at(0))
    state = store.load_contact_state("ada")
    # meanwhile an import changes an attribute and records an event
    store.write_contacts([ContactRow("ada", {"plan": "pro"})], at(1))
    store.write_events([EventRow("ada", None, "purchased", at(1), {}, "p1")], at(1))
    # the engine, unaware, sets another attribute and wants to sleep for a week
    state.contact.attributes["lifecycle_stage"] = "customer"
    store.save_contact_state(state, wake_at=at(24 * 7))
    loaded = store.load_contact_state("ada")
    assert loaded.contact.attributes == {"email": "ada@example.com", "plan": "pro",
                                         "lifecycle_stage": "customer"}
    # the purchase imported meanwhile keeps the contact due
    assert store.due_contacts(at(2), 10) == ["ada"]


def test_save_without_outside_changes_takes_the_engines_wake_up(store):
    store.write_events([EventRow("ada", None, "signed_up", at(0), {}, "s1")], at(0))
    assert store.due_contacts(at(0), 10) == ["ada"]
    state = store.load_contact_state("ada")
    store.save_contact_state(state, wake_at=at(48))
    assert store.due_contacts(at(47), 10) == []
    assert store.due_contacts(at(48), 10) == ["ada"]
    state = store.load_contact_state("ada")
    state.contact.attributes.pop("unused", None)
    store.save_contact_state(state, wake_at=None)
    assert store.due_contacts(at(10_000), 10) == []


def test_engine_can_remove_an_attribute(store):
    store.write_contacts([ContactRow("ada", {"trial": True, "plan": "free"})], at(0))
    state = store.load_contact_state("ada")
    del state.contact.attributes["trial"]
    store.save_contact_state(state, wake_at=None)
    assert store.load_contact_state("ada").contact.attributes == {"plan": "free"}


def test_claim_send_wins_once_and_confirm_records_transport_id(store):
    store.save_contact_state(ContactState(contact=Contact(id="ada")), None)
    run = store.start_run("tick-1", at(0))
    assert store.claim_send(send(), run) is True
    assert store.claim_send(send(), run) is False
    store.confirm_send(send().key, "<msg-1@acme.test>")
    assert store.claim_send(send(), run) is False
    row = store.conn.execute("SELECT state, transport_id, attempts FROM sends").fetchone()
    assert row == ("sent", "<msg-1@acme.test>", 1)


def test_transient_failures_are_reclaimed_when_their_retry_time_has_come(store):
    run = store.start_run("tick-1", at(0))
    assert store.claim_send(send(), run)
    for attempt in range(1, 8):  # no attempt limit: the tick gives up by age (retry.max_age)
        store.fail_send(send().key, "421 try later", permanent=False, retry_at=at(attempt), failed_at=at(0))
        assert [row["key"] for row in store.retryable_sends(at(attempt) - timedelta(seconds=1))] == []
        (row,) = store.retryable_sends(at(attempt))
        assert (row["attempts"], row["first_failed_at"]) == (attempt, to_db_time(at(0)))
        assert store.claim_send(send(), run)
    assert store.conn.execute("SELECT attempts FROM sends").fetchone()[0] == 8


def test_requeue_makes_failed_sends_retryable_at_once_with_a_fresh_age(store):
    run = store.start_run("tick-1", at(0))
    for key, minutes in (("k1", 0), ("k2", 30), ("k3", 90)):
        assert store.claim_send(replace(send(key), at=at(0) + timedelta(minutes=minutes)), run)
        store.fail_send(key, "550 no", permanent=True)
    assert store.retryable_sends() == []
    with pytest.raises(JourneyError, match="not failed: nope"):
        store.requeue_sends(["k1", "nope"])
    assert store.requeue_sends(["k1"]) == ["k1"]
    assert store.requeue_sends(since=at(0) + timedelta(minutes=15), until=at(0) + timedelta(hours=1)) == ["k2"]
    assert store.requeue_sends(every=True) == ["k1", "k2", "k3"]
    rows = store.retryable_sends(at(0))
    assert [(r["key"], r["first_failed_at"]) for r in rows] == [("k1", None), ("k2", None), ("k3", None)]


def test_permanent_failure_and_skip_are_never_reclaimed(store):
    assert store.claim_send(send("k1"), "r")
    store.fail_send("k1", "550 no such user", permanent=True)
    assert not store.claim_send(send("k1"), "r")
    store.skip_send(send("k2"), "suppressed", "r")
    assert not store.claim_send(send("k2"), "r")
    assert dict(store.conn.execute("SELECT key, state FROM sends")) == {"k1": "failed", "k2": "skipped"}


def test_in_doubt_sends_are_claims_of_finished_or_dead_runs(store):
    now = at(0)
    dead = store.start_run("tick-dead", now)  # never finished, lease expired
    assert store.acquire_lease("tick", "tick-dead", timedelta(minutes=5), now)
    assert store.claim_send(send("dead-claim"), dead)
    finished = store.start_run("tick-done", now)
    assert store.claim_send(send("finished-claim"), finished)
    store.finish_run(finished, {"sent": 0}, "crashed", now)
    later = now + timedelta(minutes=10)
    assert store.acquire_lease("tick", "tick-live", timedelta(minutes=5), later)
    live = store.start_run("tick-live", later)
    assert store.claim_send(send("live-claim"), live)

    doubts = {row["key"] for row in store.in_doubt_sends(later)}
    assert doubts == {"dead-claim", "finished-claim"}
    assert store.status_summary(later)["sends"] == {"claimed": 1, "in_doubt": 2}

    store.resolve_in_doubt("dead-claim", "sent")
    store.resolve_in_doubt("finished-claim", "failed")
    assert not store.in_doubt_sends(later)
    assert store.claim_send(send("finished-claim"), live)  # not delivered: may go again
    assert not store.claim_send(send("dead-claim"), live)  # delivered: never again
    with pytest.raises(JourneyError, match="no in-doubt send"):
        store.resolve_in_doubt("live-claim", "sent")


def test_leases_exclude_until_expiry_and_renew_only_for_the_holder(store):
    ttl = timedelta(minutes=5)
    assert store.acquire_lease("tick", "a", ttl, at(0))
    assert not store.acquire_lease("tick", "b", ttl, at(0) + timedelta(minutes=4))
    assert store.acquire_lease("tick", "a", ttl, at(0) + timedelta(minutes=4))  # re-entrant
    assert store.renew_lease("tick", "a", ttl, at(0) + timedelta(minutes=8))
    assert not store.acquire_lease("tick", "b", ttl, at(0) + timedelta(minutes=12))
    assert store.acquire_lease("tick", "b", ttl, at(0) + timedelta(minutes=13))  # expired
    assert not store.renew_lease("tick", "a", ttl, at(0) + timedelta(minutes=14))
    store.release_lease("tick", "a")  # not the holder: no effect
    assert not store.acquire_lease("tick", "c", ttl, at(0) + timedelta(minutes=14))
    store.release_lease("tick", "b")
    assert store.acquire_lease("tick", "c", ttl, at(0) + timedelta(minutes=14))


def test_runs_record_counts_and_status(store):
    run = store.start_run("host:42", at(0))
    store.finish_run(run, {"contacts": 3, "sent": 2}, "ok", at(0.1))
    (summary_run,) = store.status_summary(at(1))["runs"]
    assert summary_run["id"] == run
    assert summary_run["counts"] == {"contacts": 3, "sent": 2}
    assert summary_run["status"] == "ok" and summary_run["finished_at"]


def test_deployments_are_immutable_per_version(store):
    assert store.record_deployment("onboarding", 3, "h3", "id: onboarding", at(0))
    assert not store.record_deployment("onboarding", 3, "h3", "id: onboarding", at(1))
    with pytest.raises(JourneyError, match="bump its version"):
        store.record_deployment("onboarding", 3, "other", "changed", at(2))
    assert store.record_deployment("onboarding", 4, "h4", "v4", at(3))
    assert [(d["journey_id"], d["version"]) for d in store.deployments()] == [
        ("onboarding", 3), ("onboarding", 4)]
    assert store.deployed("onboarding", 3)["content"] == "id: onboarding"
    assert store.deployed("onboarding", 9) is None


def test_suppression_by_id_email_and_anonymous_id(store):
    store.write_contacts([ContactRow("ada", {"email": "Ada@Example.com"}, anonymous_ids=["anon-1"]),
                          ContactRow("bob", {"email": "bob@example.com"}),
                          ContactRow("cem", {})], at(0))
    store.add_suppression("ADA@example.COM", "bounced", "cli", at(1))
    store.add_suppression("bob", "complained", "cli", at(1))
    store.add_suppression("anon-1", "unsubscribed", "event:x", at(2))
    assert store.is_suppressed("ada") == "bounced"
    assert store.is_suppressed("bob") == "complained"
    assert store.is_suppressed("cem") is None
    assert store.load_contact_state("bob").suppressed == "complained"
    assert store.remove_suppression("ada@example.com")
    assert store.is_suppressed("ada") == "unsubscribed"  # still, through its anonymous id
    assert not store.remove_suppression("ada@example.com")
    with pytest.raises(JourneyError, match="unknown suppression reason"):
        store.add_suppression("cem", "annoyed", "cli", at(3))
    assert {s["reason"] for s in store.suppressions()} == {"complained", "unsubscribed"}


def test_status_summary_counts_enrollments_and_due(store):
    state = full_state()
    store.save_contact_state(state, wake_at=at(72))
    summary = store.status_summary(at(100))
    assert summary["enrollments"] == [{"journey_id": "onboarding", "version": 3, "stage": "education",
                                       "step": "wait_click", "status": "active", "contacts": 1, "due": 1}]
    assert summary["exits"] == [{"journey_id": "onboarding", "exit_reason": "exit:0", "contacts": 1}]
    assert summary["due_contacts"] == 1 and summary["contacts"] == 1
    assert store.status_summary(at(10))["due_contacts"] == 0


def test_enrollment_for_unknown_contact_violates_foreign_key(store):
    store.save_contact_state(ContactState(contact=Contact(id="ada")), None)
    with pytest.raises(sqlite3.IntegrityError):
        store.conn.execute(
            "INSERT INTO enrollments (id, contact_id, journey_id, version, stage, status, entered_at)"
            " VALUES ('x', 'ghost', 'j', 1, 's', 'active', 't')")


def test_failed_save_leaves_previous_state(store):
    store.save_contact_state(full_state(), wake_at=at(72))
    broken = store.load_contact_state("ada")
    broken.enrollments["onboarding"].status = "bogus"  # violates the CHECK constraint
    broken.clock = at(99)
    with pytest.raises(StoreConstraint, match="CHECK constraint failed"):
        store.save_contact_state(broken, wake_at=at(100))
    assert store.load_contact_state("ada").clock == at(2)
    assert store.due_contacts(at(72), 10) == ["ada"]
    assert not store.conn.in_transaction


def test_sqlite_store_is_the_store_protocol(tmp_path):
    assert isinstance(SQLiteStore(tmp_path / "x.db"), Store)


def test_resolve_db_path_precedence(tmp_path, monkeypatch):
    from runner.store import resolve_db_path

    (tmp_path / "project.yaml").write_text("name: x\ndatabase: data/prod.db\n", encoding="utf-8")
    (tmp_path / "journeys").mkdir()
    monkeypatch.chdir(tmp_path / "journeys")
    monkeypatch.delenv("JOURNEY_DB", raising=False)
    assert resolve_db_path(None).resolve() == (tmp_path / "data" / "prod.db").resolve()
    monkeypatch.setenv("JOURNEY_DB", "/srv/env.db")
    assert resolve_db_path(None) == Path("/srv/env.db")
    assert resolve_db_path("cli.db") == Path("cli.db")
    monkeypatch.delenv("JOURNEY_DB")
    (tmp_path / "project.yaml").write_text("name: x\n", encoding="utf-8")
    assert resolve_db_path(None).resolve() == (tmp_path / "journey.db").resolve()
    (tmp_path / "project.yaml").write_text(": : broken [", encoding="utf-8")
    assert resolve_db_path(None).name == "journey.db"


def test_commit_durability_is_the_store_s_business(tmp_path):
    """Relaxed commits for a run, power-safe ones on request, and the run's mode restored after."""
    store = open_store(tmp_path / "journey.db")
    synchronous = lambda: store.conn.execute("PRAGMA synchronous").fetchone()[0]  # noqa: E731
    assert synchronous() == 2  # FULL when opened
    store.set_commit_durability(power_safe=False)
    assert synchronous() == 1  # NORMAL
    seen = []
    with store.transaction(durable=True):
        seen.append(synchronous())
    assert seen == [2] and synchronous() == 1
    with pytest.raises(RuntimeError):
        with store.transaction(durable=True):
            raise RuntimeError("a failed claim")
    assert synchronous() == 1


def test_a_batched_load_equals_loading_each_contact_alone(tmp_path):
    """load_contact_states reads a batch (in chunks) with one query per table; the tick relies
    on it giving exactly what load_contact_state gives, suppressions and anonymous ids included."""
    store = open_store(tmp_path / "journey.db")
    now = at(0)
    ids = [f"c{n:04d}" for n in range(1200)]  # more than one chunk
    store.write_contacts([ContactRow(cid, {"email": f"{cid.upper()}@Example.com"}, "Europe/Istanbul",
                                     [f"anon-{cid}"] if n % 3 == 0 else []) for n, cid in enumerate(ids)], now)
    store.write_events([EventRow(None, f"anon-{cid}", "page_viewed", at(1), {"n": n}, f"v-{cid}")
                        for n, cid in enumerate(ids) if n % 3 == 0], now)
    store.write_events([EventRow(cid, None, "signed_up", at(2), {}, f"s-{cid}") for cid in ids[::7]], now)
    store.add_suppression("c0005", "bounced", "test", now)
    store.add_suppression("c0010@example.com", "unsubscribed", "test", now)
    for key, contact in (("k1", "c0001"), ("k2", "c0002")):
        assert store.claim_send(send(key, contact), "run-1")

    batch = store.load_contact_states([*ids, "nobody"])
    assert sorted(batch) == ids  # unknown ids are left out
    alone = {cid: store.load_contact_state(cid) for cid in ids}
    assert batch == alone
    assert batch["c0005"].suppressed == "bounced" and batch["c0010"].suppressed == "unsubscribed"
    assert [e.name for e in batch["c0000"].events] == ["page_viewed", "signed_up"]
    assert [s.key for s in batch["c0001"].sends] == ["k1"]
    store.close()
