"""One SMTP connection: the batch is claimed and saved at once, each send marked before it goes.

A tick over plain ``smtp://`` used to claim, confirm and save every contact on
its own (14 SQL statements and a commit per send). Now the batch's claims are
queued in one commit, the states saved in one, and each send costs one small
commit: its hand-over mark together with the previous send's confirmation.
A crash still leaves at most one send in doubt (``tests/test_crash.py`` kills
real runs); claims never handed over are sent again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from test_tick_kit import add_signups, tiny_project

from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.store import open_store

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
SECRET = {"JOURNEY_UNSUBSCRIBE_SECRET": "batch-test-secret-0123456789"}


def _ticked(tmp_path, smtp_server, monkeypatch, contacts: int):
    for name, value in SECRET.items():
        monkeypatch.setenv(name, value)
    root = tiny_project(tmp_path / "project")
    store = open_store(tmp_path / "journey.db")
    add_signups(store, contacts, AT)
    tree = load_working_tree(root)
    deploy(store, tree.journeys, AT)
    runtime = build_runtime(store, tree.project, f"smtp://127.0.0.1:{smtp_server.port}?retries=0")
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    report = run_tick(store, runtime, AT + timedelta(minutes=1))
    store.conn.set_trace_callback(None)
    runtime.delivery.close()
    return store, report, statements


def test_one_connection_claims_and_saves_a_batch_in_one_commit_each(tmp_path, smtp_server, monkeypatch):
    store, report, statements = _ticked(tmp_path, smtp_server, monkeypatch, 60)
    assert report.counts["sent"] == 60 and len(smtp_server.messages) == 60
    assert store.conn.execute("SELECT state, retryable, count(*) FROM sends GROUP BY 1, 2").fetchall() == [
        ("sent", 0, 60)]
    transactions = _transactions(statements)
    claiming = [t for t in transactions if any(s.startswith("INSERT INTO sends") for s in t)]
    saving = [t for t in transactions if any(s.startswith("UPDATE contacts SET") and "memory =" in s for s in t)]
    assert len(claiming) == 1 and len(saving) == 1  # the batch's claims, then its states: one commit each
    assert len(transactions) <= 60 + 10  # besides those, one per send: its hand-over mark (and the last outcome)
    store.close()


def _transactions(statements: list[str]) -> list[list[str]]:
    """The statements of each committed transaction, in order."""
    found, current = [], None
    for statement in (" ".join(s.split()) for s in statements):
        if statement.startswith("BEGIN"):
            current = []
        elif statement.startswith("COMMIT") and current is not None:
            found.append(current)
            current = None
        elif current is not None:
            current.append(statement)
    return found


def test_queued_claims_a_crash_leaves_are_sent_again_and_only_the_handed_over_one_is_in_doubt(tmp_path):
    """The ledger after a run died with a batch queued: one send handed over, the rest not."""
    from runner.core.state import SendRecord

    store = open_store(tmp_path / "journey.db")
    run = store.start_run("gone:1:x", AT)
    records = [SendRecord(f"k{n}", f"c{n}", "welcome", 1, "hello", AT, "email") for n in range(5)]
    with store.transaction():
        assert store.claim_sends(records, run, resendable=True) == [True] * 5
    store.mark_handed_over("k0")
    store.confirm_send("k0", "250 ok")
    store.mark_handed_over("k1")  # handed over, then the process died
    store.finish_run(run, {}, "died", AT)
    assert [row["key"] for row in store.in_doubt_sends(AT + timedelta(minutes=5))] == ["k1"]
    assert [row["key"] for row in store.retryable_sends()] == ["k2", "k3", "k4"]
    store.close()
