"""What only the PostgreSQL store has to prove: its migrations under a lock, its schema from the
URL, its due query on the index, and the guarantees that hold when writers really run at once
(a claim won once across connections, a save that never hides an import that raced it).

The backend-neutral behaviour is the contract suite's; these run on a real server, each test in
its own schema (tests/pg.py, tests/pgkit.py).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pgkit
import pytest

from runner.core.problems import JourneyError
from runner.core.state import SendRecord
from runner.store import pgsql
from runner.store.base import ContactRow, EventRow
from runner.store.errors import NoDatabase
from runner.store.pgmigrations import MIGRATIONS
from runner.store.postgres import open_postgres_store, parse_location

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def url():
    yield from pgkit.fresh_schema_url()


def test_two_processes_opening_a_new_schema_at_once_migrate_it_once(url):
    opener = "import sys; from runner.store.postgres import open_postgres_store; open_postgres_store(sys.argv[1]).close()"
    processes = [subprocess.Popen([sys.executable, "-c", opener, url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    errors = [process.communicate(timeout=60)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    applied = pgkit.sql(url, "SELECT name FROM schema_migrations ORDER BY id")
    assert [name for (name,) in applied] == [name for name, _ in MIGRATIONS]  # each once, in order
    with open_postgres_store(url, read_only=True) as store:
        assert store.pending_migrations() == []


def test_the_schema_comes_from_the_url_and_two_schemas_do_not_see_each_other(url):
    other = url.replace("schema=", "schema=x")
    try:
        with open_postgres_store(url) as one, open_postgres_store(other) as two:
            one.write_contacts([ContactRow("ada", {"email": "ada@example.com"})], NOW)
            assert one.status_summary(NOW)["contacts"] == 1
            assert two.status_summary(NOW)["contacts"] == 0
        assert pgkit.sql(url, "SELECT id FROM contacts") == [("ada",)]
    finally:
        pgkit.sql(url, f'DROP SCHEMA IF EXISTS "{other.rpartition("schema=")[2]}" CASCADE')


def test_addresses_stored_by_postgresql_lower_are_keyed_again_on_open(url):
    """As SQLite's m013: keys PostgreSQL's lower() stored (by the locale: İ became i) are
    rewritten as runner.core.addresses does; ASCII rows are left alone."""
    with open_postgres_store(url) as store:
        store.write_contacts([ContactRow("ilker", {"email": "İLKER@Örnek.com.tr"}),
                              ContactRow("ada", {"email": "Ada@Example.com"})], NOW)
    pgkit.sql(url, "UPDATE contacts SET email = lower(attributes ->> 'email')")  # as before
    pgkit.sql(url, "UPDATE contacts SET email = 'ilker@örnek.com.tr' WHERE id = 'ilker'")  # glibc's İ -> i
    pgkit.sql(url, "DELETE FROM schema_migrations WHERE name = 'm013_email_keys'")
    with open_postgres_store(url) as store:
        assert store.contacts_by_email(["İlker@örnek.com.tr", "ada@example.com"]) == {
            "i̇lker@örnek.com.tr": ["ilker"], "ada@example.com": ["ada"]}


def test_a_bad_schema_name_or_pool_size_is_a_clear_error():
    with pytest.raises(JourneyError, match="schema 'a;drop'"):
        parse_location("postgresql://postgres@127.0.0.1/postgres?schema=a;drop")
    with pytest.raises(JourneyError, match="pool_min/pool_max"):
        parse_location("postgresql://postgres@127.0.0.1/postgres?pool_max=0")
    where = parse_location("postgresql://ada:secret@127.0.0.1/postgres?schema=s1&pool_max=8&sslmode=disable")
    assert (where.schema, where.pool_max) == ("s1", 8)
    assert "secret" not in where.shown and "schema" not in where.conninfo and "sslmode=disable" in where.conninfo
    assert parse_location("postgresql://h/d?prepare_threshold=none").prepare_threshold is None
    with pytest.raises(JourneyError, match="prepare_threshold"):
        parse_location("postgresql://h/d?prepare_threshold=soon")


def test_read_only_refuses_a_schema_that_needs_migrating_and_refuses_writes(url):
    with pytest.raises(NoDatabase, match="no schema"):  # never made: the CLI says `journey deploy`
        open_postgres_store(url, read_only=True)
    pgkit.sql(url, f'CREATE SCHEMA "{url.rpartition("schema=")[2]}"')
    with pytest.raises(JourneyError, match="needs migrating"):
        open_postgres_store(url, read_only=True)
    open_postgres_store(url).close()
    with open_postgres_store(url, read_only=True) as store, pytest.raises(Exception, match="read-only"):
        store.add_suppression("ada", "manual", "test", NOW)


def test_the_due_query_reads_the_due_index(url):
    with open_postgres_store(url) as store:
        store.write_contacts([ContactRow(f"c{i:05}", {}, changed_at=NOW + timedelta(minutes=i)) for i in range(3000)],
                             NOW)
        pgkit.sql(url, "ANALYZE contacts")
        assert [cid for _, cid in store.due_page(NOW + timedelta(minutes=2), 10)] == ["c00000", "c00001", "c00002"]
        page = store.due_page(NOW + timedelta(minutes=5), 2, after=("2026-03-02T09:01:00.000000+00:00", "c00001"))
        assert [cid for _, cid in page] == ["c00002", "c00003"]
    for sql in ("SELECT wake_at, id FROM contacts WHERE wake_at <= now() ORDER BY wake_at, id LIMIT 200",
                "SELECT wake_at, id FROM contacts WHERE wake_at <= now() AND (wake_at, id) > (now(), 'c1') "
                "ORDER BY wake_at, id LIMIT 200"):
        plan = "\n".join(line for (line,) in pgkit.sql(url, "EXPLAIN " + sql))
        assert "contacts_due" in plan and "Sort" not in plan, plan


def _plans_kept_while_tables_grow(store, url: str, statements: dict[str, tuple[str, str, str]]) -> dict[str, str]:
    """Each statement (sql, parameter types, arguments) prepared on a connection of the store's own
    pool and run while its tables are small, as a worker's statements are at the start of a busy
    tick; then 10,000 rows are written (no ANALYZE): the plan each keeps, by name."""
    with store.pool.connection() as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")  # what psycopg's prepared statements come to
        for name, (sql, types, args) in statements.items():
            numbered = sql
            for number in range(1, sql.count("%b") + 1):
                numbered = numbered.replace("%b", f"${number}", 1)
            conn.execute(f"PREPARE {name}({types}) AS {numbered}")
            conn.execute(f"EXECUTE {name}({args})")
        pgkit.sql(url, """INSERT INTO enrollments (id, contact_id, journey_id, version, stage, status, entered_at)
                          SELECT id || ':welcome', id, 'welcome', 1, 'start', 'exited', now() FROM contacts""")
        pgkit.sql(url, """INSERT INTO sends (key, contact_id, journey_id, version, step_id, scheduled_at, state)
                          SELECT id || ':hello', id, 'welcome', 1, 'hello', now(), 'sent' FROM contacts""")
        plans = {name: "\n".join(line for (line,) in conn.execute(f"EXPLAIN EXECUTE {name}({args})"))
                 for name, (_, _, args) in statements.items()}
        conn.execute("DEALLOCATE ALL")
        conn.execute("RESET plan_cache_mode")
    return plans


def test_a_page_of_contacts_is_read_by_key_however_much_the_tick_wrote(url):
    """A busy tick fills enrollments and the ledger from nothing, faster than autovacuum analyzes
    them, and psycopg prepares its statements after five runs: the plan a statement made on
    small tables must still read a page of contacts through their index once they are large,
    not scan what the tick wrote so far (a page's cost would grow with it;
    pgconnect.RANDOM_PAGE_COST)."""
    with open_postgres_store(url) as store:
        store.write_contacts([ContactRow(f"c{i:05}", {}) for i in range(10_000)], NOW)
        page = "ARRAY[" + ", ".join(f"'c{i:05}'" for i in range(5000, 5200)) + "]"
        plans = _plans_kept_while_tables_grow(store, url, {
            "enrollments_contact": (pgsql.LOAD_ENROLLMENTS, "text[]", page),
            "sends_contact": (pgsql.LOAD_SENDS, "text[], text[]", f"{page}, ARRAY['claimed', 'sent']")})
        loaded = store.load_contact_states([f"c{i:05}" for i in range(5000, 5200)])
        assert len(loaded) == 200 and [len(state.past_enrollments) for state in loaded.values()] == [1] * 200
    for index, plan in plans.items():
        assert index in plan and "Seq Scan" not in plan and "sends_state" not in plan, plan


def test_the_ledger_index_on_state_holds_only_unsettled_sends_and_serves_every_query_by_state(url):
    """m014: sends_unsettled (claimed, failed, in doubt) instead of sends_state; a schema from
    before migrates on open."""
    with open_postgres_store(url) as store:
        store.claim_sends([_record(f"k{i}") for i in range(3)], "run-1", resendable=False)
        store.confirm_sends([("k0", "t0")])
        store.fail_send("k1", "bounced", True)
    pgkit.sql(url, "DROP INDEX sends_unsettled")  # as m013 left it
    pgkit.sql(url, "CREATE INDEX sends_state ON sends(state)")
    pgkit.sql(url, "DELETE FROM schema_migrations WHERE name = 'm014_unsettled_sends'")
    with open_postgres_store(url) as store:
        assert [row["key"] for row in store.retryable_sends()] == []
        assert store.status_summary(NOW)["sends"] == {"claimed": 1, "failed": 1, "sent": 1}
        with store.pool.connection() as conn:  # a table this small is scanned unless scans are priced out
            conn.execute("SET enable_seqscan = off")
            plans = ["\n".join(line for (line,) in conn.execute(sql)) for sql in (
                "EXPLAIN SELECT count(*) FROM sends WHERE state = 'in_doubt'",  # /metrics, status
                "EXPLAIN SELECT key FROM sends WHERE state = 'failed' AND key = ANY('{k1}')",  # requeue
                "EXPLAIN UPDATE sends SET state = 'in_doubt' WHERE state = 'claimed' AND run_id = 'x'")]  # in doubt
            conn.execute("RESET enable_seqscan")
    indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'sends' AND schemaname = current_schema()"
    assert {name for (name,) in pgkit.sql(url, indexes)} == {"sends_pkey", "sends_contact", "sends_retry",
                                                             "sends_unsettled"}
    assert pgkit.sql(url, "SELECT key, state FROM sends WHERE state IN ('claimed', 'failed', 'in_doubt') "
                          "ORDER BY key") == [("k1", "failed"), ("k2", "claimed")]
    for plan in plans:
        assert "sends_unsettled" in plan, plan


def test_a_save_releases_the_leases_its_store_took_and_no_one_elses(url):
    """The tick releases its page after saving it; on PostgreSQL the save's own UPDATE releases
    the leases this store took (one row version a contact fewer), so the release that follows
    finds nothing to write. A lease that expired and went to another holder stays that holder's."""
    hour = timedelta(hours=1)
    with open_postgres_store(url) as mine, open_postgres_store(url) as theirs:
        mine.write_contacts([ContactRow(cid, {}) for cid in ("ada", "bob", "cy")], NOW)
        assert [cid for _, cid in mine.claim_due(NOW, "me", 3, hour)] == ["ada", "bob", "cy"]
        states = mine.load_contact_states(["ada", "bob", "cy"])
        pgkit.sql(url, "UPDATE contacts SET lease_until = now() - interval '1 minute' WHERE id = 'bob'")
        assert [cid for _, cid in theirs.claim_due(NOW, "them", 3, hour)] == ["bob"]  # expired: taken over
        mine.save_contact_states([(states[cid], NOW + hour) for cid in ("ada", "bob")])
        leases = "SELECT id, lease_holder, lease_until IS NULL FROM contacts ORDER BY id"
        assert pgkit.sql(url, leases) == [("ada", None, True), ("bob", "them", False), ("cy", "me", False)]
        mine.release_contacts("me", ["ada", "bob", "cy"])
        assert pgkit.sql(url, leases) == [("ada", None, True), ("bob", "them", False), ("cy", None, True)]


def _record(key: str) -> SendRecord:
    return SendRecord(key=key, contact_id="ada", journey_id="welcome", version=1, step_id="hello", at=NOW)


def test_a_send_is_claimed_once_by_racing_stores(url):
    stores = [open_postgres_store(url) for _ in range(4)]
    wins: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def claim(store) -> None:
        barrier.wait()
        wins.extend(store.claim_sends([_record(f"k{i}") for i in range(50)], "run-1", resendable=False))

    threads = [threading.Thread(target=claim, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert wins.count(True) == 50 and len(wins) == 200


def test_an_import_racing_a_save_is_never_hidden(url):
    """The contact is loaded, an event arrives (committed by another connection) before the
    engine's result is saved with a later wake-up: the save keeps the event's earlier one."""
    with open_postgres_store(url) as tick, open_postgres_store(url) as importer:
        importer.write_contacts([ContactRow("ada", {"plan": "free"})], NOW)
        state = tick.load_contact_state("ada")
        importer.write_events([EventRow("ada", None, "purchased", NOW + timedelta(hours=1), {}, "m-1")],
                              NOW + timedelta(hours=1))
        importer.write_contacts([ContactRow("ada", {"plan": "pro"})], NOW + timedelta(hours=1))
        state.contact.attributes["score"] = 3  # the engine's own change
        tick.save_contact_state(state, NOW + timedelta(days=7))
        assert tick.wake_at("ada") == NOW  # the import's wake-up (its earliest) survives the save
        assert tick.load_contact_state("ada").contact.attributes == {"plan": "pro", "score": 3}


def test_a_save_waits_for_an_import_holding_the_contact_then_sees_it(url):
    with open_postgres_store(url) as tick, open_postgres_store(url) as importer:
        importer.write_contacts([ContactRow("ada", {})], NOW)
        state = tick.load_contact_state("ada")
        started, saved = threading.Event(), threading.Event()
        with importer.transaction():
            importer.write_events([EventRow("ada", None, "purchased", NOW + timedelta(hours=2), {}, "m-2")], NOW)

            def save() -> None:
                started.set()
                tick.save_contact_state(state, NOW + timedelta(days=7))
                saved.set()

            thread = threading.Thread(target=save)
            thread.start()
            started.wait()
            assert not saved.wait(0.5)  # the contact's row is the import's until it commits
        thread.join(10)
        assert saved.is_set()
        assert tick.wake_at("ada") == NOW + timedelta(hours=2)  # the save saw the event: due at its time


def test_commits_without_flush_leave_a_pooled_connection_with_the_server_default(url):
    """``journey run`` commits without waiting for the WAL flush, per transaction (``SET LOCAL``):
    under PgBouncer's transaction pooling the server connection then goes to another client, who
    must find the server's default (on), not our setting. One pooled connection: what the next
    client gets is the one every write below ran on."""
    head, _, schema = url.rpartition("schema=")
    pooled = f"{head}pool_min=1&pool_max=1&schema={schema}"
    with open_postgres_store(pooled) as store:
        store.write_contacts([ContactRow("ada", {"email": "ada@example.com"})], NOW)

        def setting() -> str:
            with store.pool.connection() as conn:
                return conn.execute("SHOW synchronous_commit").fetchone()[0]

        store.set_commit_durability(power_safe=False)
        with store.transaction():
            inside = store._one("SHOW synchronous_commit")  # the tick's own transactions: no flush wait
            store.claim_sends([_record("k1")], "run-1", resendable=True)
        assert inside == "off" and setting() == "on"
        assert store.acquire_lease("worker:a", "a", timedelta(minutes=2), NOW)  # a statement on its own
        assert setting() == "on"
        assert store.claim_due(NOW + timedelta(days=1), "a", 10, timedelta(minutes=2)) != []  # its own commit too
        assert setting() == "on"
        with store.transaction(durable=True):  # a claim with --fsync: the server's default, on
            assert store._one("SHOW synchronous_commit") == "on"
    # and each of those writes was committed: another connection sees them
    assert pgkit.sql(url, "SELECT state FROM sends") == [("claimed",)]
    assert pgkit.sql(url, "SELECT holder FROM leases") == [("a",)]
    assert pgkit.sql(url, "SELECT lease_holder FROM contacts") == [("a",)]


def test_counters_equal_the_rows_they_count(url):
    """The statement-level triggers keep decision, send and engagement counters equal to count(*)."""
    with open_postgres_store(url) as store:
        store.write_events([EventRow("ada", None, "email_opened", NOW, {"journey": "j", "step": "s"}, f"o{i}")
                            for i in range(5)], NOW)
        assert store.claim_sends([_record("k1"), _record("k2")], "run-1", resendable=False) == [True, True]
        store.confirm_sends([("k1", "id-1")])
        store.fail_send("k2", "refused", permanent=True)
        sends = {(row["state"], row["n"]) for row in store.send_counts(None, None, None)}
        assert sends == {("sent", 1), ("failed", 1)}
        assert store.engagement_counts("j", None, None) == [{"journey_id": "j", "step": "s", "name": "email_opened",
                                                              "n": 5}]
        counted = pgkit.sql(url, "SELECT state, sum(n)::int FROM send_counts GROUP BY state HAVING sum(n) <> 0 "
                                 "EXCEPT SELECT state, count(*)::int FROM sends GROUP BY state")
        assert counted == []


def test_a_role_that_may_not_create_tables_uses_a_schema_migrated_by_another(url):
    """Production often runs workers as a role with data rights only: opening a current schema
    must read the migrations table, not take the migration lock and run DDL."""
    open_postgres_store(url).close()
    schema = url.rpartition("schema=")[2]
    role = f"journey_app_{schema[2:14]}"
    pgkit.sql(url, f"CREATE ROLE {role} LOGIN")
    try:
        pgkit.sql(url, f'GRANT USAGE ON SCHEMA "{schema}" TO {role}; '
                       f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}; '
                       f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}')
        app_url = url.replace("postgresql://postgres@", f"postgresql://{role}@")
        with open_postgres_store(app_url) as store:
            store.write_contacts([ContactRow("ada", {"plan": "free"})], NOW)
            store.write_events([EventRow("ada", None, "signed_up", NOW, {}, "m-1")], NOW)
            assert store.due_contacts(NOW, 10) == ["ada"]
    finally:
        pgkit.sql(url, f"DROP OWNED BY {role}; DROP ROLE {role}")
