"""The per-send path (one SMTP connection, console, memory) saves each contact's own state.

A tick that sends one message at a time queues each contact's state save
behind the next claim. The queued write must carry that contact's state,
outcome and decisions, not whichever contact the loop reached by the time
the queue is committed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_tick_kit import add_signups, tiny_project

from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.store import open_store

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
SECRET = "tick-safety-secret-0123456789"


def _setup(tmp_path: Path):
    root = tiny_project(tmp_path / "project")
    store = open_store(tmp_path / "journey.db")
    tree = load_working_tree(root)
    deploy(store, tree.journeys, AT)
    return root, store, tree


def _journal(store) -> list[tuple[str, str, int]]:
    return store.conn.execute(
        "SELECT contact_id, action, count(*) FROM decisions GROUP BY contact_id, action ORDER BY contact_id, action"
    ).fetchall()


@pytest.mark.parametrize("transport", ["smtp", "console", "memory"])
def test_three_contacts_sent_one_at_a_time_each_save_their_own_state(tmp_path, smtp_server, monkeypatch, transport):
    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", SECRET)
    _, store, tree = _setup(tmp_path)
    ids = add_signups(store, 3, AT)
    runtime = build_runtime(store, tree.project, smtp_server.url(retries=0) if transport == "smtp" else transport)

    first = run_tick(store, runtime, AT + timedelta(hours=1))
    again = run_tick(store, runtime, AT + timedelta(hours=1))
    runtime.delivery.close()

    assert first.counts["sent"] == 3
    if transport == "smtp":
        keys = sorted(str(item.message["X-Journey-Key"]) for item in smtp_server.messages)
        assert keys == [f"{cid}:welcome:1/1/hello" for cid in ids]
    # every contact was saved with its own clock and wake-up: none is due again at once
    assert again.contacts == 0 and again.counts["already_claimed"] == 0
    clocks = store.conn.execute("SELECT id, wake_at FROM contacts ORDER BY id").fetchall()
    assert [cid for cid, _ in clocks] == ids
    assert {datetime.fromisoformat(wake) for _, wake in clocks} == {AT + timedelta(days=1)}
    # each contact's decisions are journaled once, under its own id
    assert _journal(store) == [(cid, action, 1) for cid in ids for action in ("enter", "send", "wait")]
    assert set(store.status_summary(AT)["sends"]) == {"sent"}
    store.close()
