"""SQLite specifics of the store on real database files: connection settings, migrations of
old databases, the due index's query plans, constraints, durability. What every backend
must do (state round trips, the ledger, leases, runs, deployments, suppressions, status)
is the contract suite in tests/store_contract/, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from store_contract.kit import full_state  # the contract suite's contact with every field set

from runner.core.problems import JourneyError
from runner.core.state import (
    Contact,
    ContactState,
    SendRecord,
)
from runner.production.tick import BATCH
from runner.store import SQLiteStore, Store, open_store
from runner.store.base import ContactRow
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
        "m011_contact_leases", "m012_topic_opt_outs", "m013_email_keys"]
    store.close()
    # reopening applies nothing twice
    again = open_store(path)
    assert schema_version(again.db) == ["m001_initial", "m002_decisions", "m003_event_suppressions", "m004_stats_counts",
        "m005_imported_values", "m006_send_retries", "m007_due_keyset", "m008_split_counts",
        "m009_deployed_templates", "m010_run_counts",
        "m011_contact_leases", "m012_topic_opt_outs", "m013_email_keys"]
    assert again.conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 13
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
        "m011_contact_leases", "m012_topic_opt_outs", "m013_email_keys"]
    assert store.conn.execute("SELECT id FROM contacts").fetchall() == [("ada",)]
    assert store.contact_history("ada") == []
    store.close()


def test_addresses_stored_by_sqlite_lower_are_keyed_again_on_open(tmp_path):
    """Before m013, imports over a row and the tick's saves stored SQLite's lower() of the
    address (ASCII only): the migration rewrites those keys as runner.core.addresses does, so
    the address's suppressions and lookups find them; other rows are left alone."""
    path = tmp_path / "journey.db"
    with open_store(path) as store:
        store.write_contacts([ContactRow("ozge", {"email": "ÖZGE@Örnek.com.tr"}),
                              ContactRow("ada", {"email": "Ada@Example.com"}), ContactRow("cem", {})], at(0))
        store.conn.execute("UPDATE contacts SET email = lower(json_extract(attributes, '$.email'))")  # as before
        store.conn.execute("DELETE FROM schema_migrations WHERE name = 'm013_email_keys'")
        assert store.contacts_by_email(["özge@örnek.com.tr"]) == {}
    with open_store(path) as store:
        assert store.contacts_by_email(["ÖZGE@örnek.com.tr", "ada@example.com"]) == {
            "özge@örnek.com.tr": ["ozge"], "ada@example.com": ["ada"]}
        assert store.conn.execute("SELECT id, email FROM contacts ORDER BY id").fetchall() == [
            ("ada", "ada@example.com"), ("cem", None), ("ozge", "özge@örnek.com.tr")]


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("this is not sqlite " * 100)
    with pytest.raises(JourneyError, match="not a journey-runner database"):
        open_store(path)
    assert path.read_text().startswith("this is not sqlite")


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


def test_loading_a_batch_reads_only_its_contacts_rows(store):
    """Each query of a batch load goes through a per-contact index. Without ANALYZE statistics
    SQLite had read the batch's sends through ``sends_state``: every sent row of the ledger for
    each page of a catch-up, so its cost per send grew with the sends before it (docs/run.md)."""
    page = [f"c{n:03d}" for n in range(BATCH)]  # a whole page: the plan depends on the IN list's length
    store.write_contacts([ContactRow(cid, {"email": f"{cid}@example.com"}) for cid in page[1:]] + [ContactRow(page[0], {})],
                         at(0))
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    store.load_contact_states(page)  # with email addresses
    store.load_contact_states(page[:1])  # without one
    store.conn.set_trace_callback(None)
    reads = [sql for sql in statements if sql.lstrip().startswith("SELECT")]
    assert any("FROM sends" in sql for sql in reads)
    for sql in reads:
        plan = " ".join(row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "sends_state" not in plan and "SCAN" not in plan, (sql, plan)


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




def test_journal_and_enrollment_rows_bound_by_position_are_the_rows_of_runner_store_rows(store):
    """The save binds journal and enrollment rows by position (``_DECISION_COLUMNS``,
    ``_ENROLLMENT_COLUMNS``): every column of rows.py's rows is written, with its own value,
    through the loaded (prepared) save and the one of a contact saved unloaded."""
    from runner.core.engine import Decision
    from runner.store.rows import decision_row, enrollment_to_row
    from runner.store.sqlite import _DECISION_COLUMNS, _ENROLLMENT_COLUMNS

    state = full_state()
    decision = Decision(at(1), "ada", "onboarding", 3, "education", "wait_click", "send", "email hello",
                        key="ada:onboarding:2/2/hello", detail={"variant": "b"})
    store.save_contact_state(state, at(72), [decision], run_id="run-1")  # unloaded: the row-by-row save
    loaded = store.load_contact_state("ada")
    loaded.enrollments["onboarding"].stage_seq = 3
    loaded.enrollments["onboarding"].variant = {"subject_test": "a"}
    store.save_contact_state(loaded, at(72), [decision], run_id="run-2")  # loaded: the prepared batch
    for enrollment in (*loaded.past_enrollments, *loaded.enrollments.values()):
        row = enrollment_to_row(enrollment)
        assert tuple(row) == _ENROLLMENT_COLUMNS
        stored = store.conn.execute(f"SELECT {', '.join(row)} FROM enrollments WHERE id = ?", (row["id"],)).fetchone()
        assert stored == tuple(row.values())
    for run_id in ("run-1", "run-2"):
        row = decision_row(decision, run_id)
        assert tuple(row) == _DECISION_COLUMNS
        stored = store.conn.execute(f"SELECT {', '.join(row)} FROM decisions WHERE run_id = ?", (run_id,)).fetchall()
        assert stored == [tuple(row.values())]


def test_claims_and_confirmations_in_multi_row_statements_do_what_one_at_a_time_did(tmp_path):
    """``claim_sends``/``confirm_sends`` bind a batch as VALUES rows, ``STATEMENT_ROWS`` a
    statement: the same winners and ledger as claiming and confirming one send at a time,
    across statement boundaries, with keys twice, retries, lost claims and confirmations of
    sends already sent."""
    from runner.store.sqlite import STATEMENT_ROWS

    def record(n: int) -> SendRecord:
        return SendRecord(f"c{n}:j:1/1/s", f"c{n}", "j", 1, "s", at(n % 50), kind="email" if n % 3 else "webhook")

    batch = [record(n) for n in range(STATEMENT_ROWS * 2 + 7)] + [record(n) for n in range(0, 3000, 97)]
    stores = [open_store(tmp_path / "batched.db"), open_store(tmp_path / "one_by_one.db")]
    try:
        for store in stores:  # the same history: some keys sent, failed for good, failed for now
            store.set_commit_durability(False)  # thousands of one-send commits, none fsynced
            store.claim_sends([record(n) for n in range(0, 3000, 5)], "run-0", resendable=False)
            for n in range(0, 3000, 5):
                if n % 3 == 0:
                    store.fail_send(record(n).key, "451 later", False)
                elif n % 3 == 1:
                    store.fail_send(record(n).key, "550 never", True)
            store.confirm_sends([(record(n).key, f"t{n}") for n in range(0, 3000, 5) if n % 3 == 2])
        batched, one_by_one = stores
        won = batched.claim_sends(batch, "run-1", resendable=True)
        assert won == [one_by_one.claim_sends([r], "run-1", resendable=True)[0] for r in batch]
        assert 0 < won.count(False) < len(won) - STATEMENT_ROWS
        delivered = [(r.key, f"id-{i}") for i, r in enumerate(batch) if i % 4 != 1]
        batched.confirm_sends(delivered)
        for pair in delivered:
            one_by_one.confirm_sends([pair])
        ledger = "SELECT key, contact_id, journey_id, version, step_id, kind, scheduled_at, state, attempts, " \
                 "retryable, transport_id, error, run_id FROM sends ORDER BY key"
        rows = [store.conn.execute(ledger).fetchall() for store in stores]
        assert rows[0] == rows[1] and len(rows[0]) > STATEMENT_ROWS * 2
        assert {row[7] for row in rows[0]} == {"sent", "claimed", "failed"}
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize("patch", ["{}", '{"email": "Ada@Example.org", "plan": "pro"}'])
@pytest.mark.parametrize("rev", [1, 2], ids=["unchanged", "imported-since"])
@pytest.mark.parametrize("wake", [None, "2026-03-02T09:00:00.000000Z", "2026-03-09T09:00:00.000000Z"])
def test_contact_saves_bound_by_position_write_what_the_named_statement_wrote(tmp_path, patch, rev, wake):
    """The save's contact ``UPDATE`` runs with its parameters numbered (``_by_position``): the
    same row as the named statement, whether an import moved ``rev``, the wake-up and the patch."""
    from runner.store.sqlite import (
        _SAVE_STATE,
        _SAVE_STATE_AND_ATTRIBUTES,
        _SAVE_STATE_AND_ATTRIBUTES_BY_POSITION,
        _SAVE_STATE_BY_POSITION,
    )

    update = {"id": "ada", "rev": rev, "seen_event": 0, "patch": patch, "email": "ada@example.org",
              "tz_changed": True, "timezone": "Asia/Tokyo", "clock": "2026-03-02T08:00:00.000000Z",
              "memory": '{"j": {"n": 1}}', "seq": 4, "wake": wake, "now": "2026-03-02T08:00:01.000000Z"}
    named = _SAVE_STATE if patch == "{}" else _SAVE_STATE_AND_ATTRIBUTES
    numbered, values = _SAVE_STATE_BY_POSITION if patch == "{}" else _SAVE_STATE_AND_ATTRIBUTES_BY_POSITION
    rows = []
    for name, sql, params in (("named", named, update), ("numbered", numbered, values(update))):
        with open_store(tmp_path / f"{name}.db") as store:
            store.conn.execute("""INSERT INTO contacts (id, email, attributes, created_at, updated_at, wake_at, rev)
                                  VALUES ('ada', 'ada@example.com', '{"email": "ada@example.com"}', 'x', 'x',
                                          '2026-03-05T00:00:00.000000Z', 1)""")
            assert store.conn.execute(sql, params).rowcount == 1
            rows.append(store.conn.execute("SELECT * FROM contacts").fetchall())
    assert rows[0] == rows[1]
