"""The busy tick's shortcuts give what the plain way gives (docs/architecture.md, cache inventory).

- PostgreSQL gets lists as binary parameters: the same values as the text ones; a batch's
  confirmations in one statement do what one update a row did.
- The tick keeps the cyclic collector to the objects it makes (``collector_on_new_objects``):
  the same ledger, journal and states as a tick without it, and nothing is left frozen
  afterwards, also when the tick fails.
"""

from __future__ import annotations

import contextlib
import gc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_tick_kit import add_signups, tiny_project

from runner.production import tick as tick_module
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.store import open_store
from runner.store.base import ContactRow

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
TWO_DAYS = """\
id: welcome
version: 1
name: Welcome
stages:
  - id: main
    entry: {event: signed_up}
    steps:
      - id: hello
        email: {template: hello, subject: "Hello {{ contact.first_name }}"}
      - wait: 1d
      - id: mark
        update: {set: {stage_seen: two}}
      - id: tips
        email: {template: tips, subject: "Tips for {{ contact.first_name }}"}
"""
TABLES = {
    "contacts": "id, email, timezone, attributes, wake_at, clock, memory, enrollment_seq, lease_holder",
    "enrollments": "id, contact_id, journey_id, version, stage, stage_seq, cursor, status, wait, due_at, "
                   "entered_at, exited_at, exit_reason, goal_at, variant, holdout",
    "sends": "key, contact_id, journey_id, version, step_id, kind, scheduled_at, state, attempts, error",
    "decisions": "id, contact_id, at, journey_id, version, stage, step, action, reason, key, detail",
    "decision_counts": "*", "send_counts": "*", "split_counts": "*",
}


def _ticked(folder: Path, contacts: int = 250, **patches) -> dict[str, list[tuple]]:
    """Every table a tick writes, after three ticks over ``contacts`` signups (two pages
    each), an import between them, with ``patches`` applied to the tick module."""
    root = tiny_project(folder / "project", journeys={"welcome": TWO_DAYS})
    store = open_store(folder / "journey.db")
    tree = load_working_tree(root)
    deploy(store, tree.journeys, AT)
    add_signups(store, contacts, AT)
    runtime = build_runtime(store, tree.project, f"outbox:{folder / 'outbox'}")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in patches.items():
            patch.setattr(tick_module, name, value)
        assert run_tick(store, runtime, AT + timedelta(hours=1)).counts["sent"] == contacts
        store.write_contacts([ContactRow(f"c{n:05d}", {"plan": "pro"}) for n in range(0, contacts, 7)], AT)
        assert run_tick(store, runtime, AT + timedelta(days=2)).counts["sent"] == contacts
        run_tick(store, runtime, AT + timedelta(days=3))
    tables = {table: store.conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2, 3").fetchall()
              for table, columns in TABLES.items()}
    runtime.delivery.close()
    store.close()
    return tables


def test_a_tick_with_the_collector_on_its_own_objects_writes_what_a_plain_tick_writes(tmp_path):
    shortcut = _ticked(tmp_path / "shortcut")
    plain = _ticked(tmp_path / "plain", collector_on_new_objects=contextlib.nullcontext)
    assert len(shortcut["decisions"]) > 750 and len(shortcut["sends"]) == 500
    assert shortcut == plain


def test_the_tick_freezes_what_is_alive_and_gives_it_back_also_when_it_fails(tmp_path):
    root = tiny_project(tmp_path / "project")
    store = open_store(tmp_path / "journey.db")
    tree = load_working_tree(root)
    deploy(store, tree.journeys, AT)
    add_signups(store, 3, AT)
    runtime = build_runtime(store, tree.project, f"outbox:{tmp_path / 'outbox'}")
    before = gc.get_freeze_count()
    frozen_during: list[int] = []
    advance = runtime.engine.advance

    def watched(*args, **kwargs):
        frozen_during.append(gc.get_freeze_count())
        return advance(*args, **kwargs)

    runtime.engine.advance = watched
    assert run_tick(store, runtime, AT + timedelta(hours=1)).counts["sent"] == 3
    assert len(frozen_during) == 3 and min(frozen_during) > before + 1000  # the process's objects
    assert gc.get_freeze_count() == before

    add_signups(store, 2, AT, prefix="d")

    def failing(*args, **kwargs):
        raise KeyboardInterrupt  # not one contact's bad data: the tick stops

    runtime.engine.advance = failing
    with pytest.raises(KeyboardInterrupt):
        run_tick(store, runtime, AT + timedelta(hours=2))
    assert gc.get_freeze_count() == before
    runtime.delivery.close()
    store.close()


AWKWARD = ["plain", 'quote " and \\ backslash', "{braces, commas}", "NULL", "", " spaced ", "naïve ✓ 日本", None]


def test_lists_sent_as_binary_parameters_reach_postgresql_as_the_text_ones_did(pg_url):
    """``ANY(%b)`` and the batch ``unnest`` columns (``runner/store/pgsql.py``) against the text
    placeholders they replaced: the same values, NULLs, empty lists and types."""
    import psycopg

    from runner.store import pgsql

    server = pg_url.split("?")[0]
    with psycopg.connect(server, autocommit=True) as conn:
        texts = list(AWKWARD)
        instants = [AT, None, AT + timedelta(microseconds=1)] + [None] * (len(texts) - 3)
        numbers = [1, None, 2**31 - 1] + [0] * (len(texts) - 3)
        answers = {}
        for placeholder in ("%s", "%b"):
            answers[placeholder] = conn.execute(
                f"SELECT * FROM unnest({placeholder}::text[], {placeholder}::timestamptz[], {placeholder}::integer[]) "
                f"WITH ORDINALITY", (texts, instants, numbers)).fetchall(), [
                conn.execute(f"SELECT %s = ANY({placeholder})", (probe, values)).fetchone()[0]
                for probe in ("plain", "NULL", "naïve ✓ 日本", "x")
                for values in ([], ["x"], texts)]
        assert answers["%b"] == answers["%s"]
        rows = answers["%b"][0]
        assert rows[1][1] is None and rows[1][2] is None and rows[-1][0] is None and rows[4][0] == ""  # NULLs stay NULL
    assert "%s::" not in pgsql.UPSERT_ENROLLMENTS + pgsql.INSERT_DECISIONS  # the statements in use are the binary ones


def test_a_batch_of_confirmations_in_one_statement_does_what_one_update_a_row_did(pg_url):
    """``confirm_sends`` on PostgreSQL (one ``UPDATE … FROM unnest``, ``pgsql.CONFIRM_SENDS``)
    against the statement a row it replaced: same rows (a key given twice keeps its last id; an
    unclaimed key is left alone) and same counters."""
    from runner.core.state import SendRecord

    store = open_store(pg_url)
    run = store.start_run("host:1:x", AT)

    def claimed(prefix: str) -> list[str]:
        keys = [f"{prefix}{n}" for n in range(3)]
        store.claim_sends([SendRecord(key, "ada", "welcome", 1, "hello", AT) for key in keys], run, resendable=False)
        return keys

    def rows(keys: list[str]) -> list[tuple]:
        with store._connection() as conn:
            return conn.execute("SELECT state, transport_id, error, sent_at IS NOT NULL FROM sends "
                                "WHERE key = ANY(%s) ORDER BY key", (keys,)).fetchall()

    batch, plain = claimed("b"), claimed("p")
    confirmations = [(0, "<1@x>"), (1, "<2@x>"), (0, "<3@x>"), (9, "<9@x>")]
    store.confirm_sends([(f"b{n}", transport_id) for n, transport_id in confirmations])
    with store.transaction(), store._connection() as conn:
        for n, transport_id in confirmations:
            conn.execute("UPDATE sends SET state = 'sent', sent_at = %s, transport_id = %s, error = NULL WHERE key = %s",
                         (AT, transport_id, f"p{n}"))
    assert rows(batch) == rows(plain) == [("sent", "<3@x>", None, True), ("sent", "<2@x>", None, True),
                                          ("claimed", None, None, False)]
    assert {(r["state"], r["n"]) for r in store.send_counts("welcome", None, None)} == {("sent", 4), ("claimed", 2)}
    store.close()
