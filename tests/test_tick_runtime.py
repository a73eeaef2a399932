"""A tick's runtime: deciding alone (no transport) is for dry runs; a tick that sends needs a transport."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_tick_kit import add_signups, tiny_project

from runner.core.problems import JourneyError
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.store import open_store

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_a_tick_without_a_transport_refuses_to_run_and_loses_nothing(tmp_path):
    """Without a transport the sends would be claimed and then failed for good (nothing could
    build them): lost. The tick refuses before touching the store; a dry run still decides."""
    root = tiny_project(tmp_path / "project")
    store = open_store(tmp_path / "journey.db")
    tree = load_working_tree(root)
    deploy(store, tree.journeys, AT)
    add_signups(store, 2, AT)
    runtime = build_runtime(store, tree.project, None)

    with pytest.raises(JourneyError, match="needs a transport"):
        run_tick(store, runtime, AT + timedelta(hours=1))

    assert store.status_summary(AT)["sends"] == {}  # nothing claimed
    assert len(store.due_contacts(AT + timedelta(hours=1), 10)) == 2
    dry = run_tick(store, runtime, AT + timedelta(hours=1), dry_run=True)
    assert dry.counts["would_send"] == 2
    store.close()
