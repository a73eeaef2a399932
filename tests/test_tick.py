"""One production tick on a real SQLite file: ledger, catch-up, render failures, suppressions, late events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_tick_kit import TINY_PROJECT, WELCOME, add_signups, tiny_project

from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.store import open_store
from runner.store.base import EventRow

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _setup(tmp_path: Path, **project_kwargs):
    root = tiny_project(tmp_path / "project", **project_kwargs)
    store = open_store(tmp_path / "journey.db")
    tree = load_working_tree(root)
    deploy(store, tree.journeys, AT)
    return root, store, tree


def _runtime(store, tree, tmp_path: Path):
    return build_runtime(store, tree.project, f"outbox:{tmp_path / 'outbox'}")


def _sends(store) -> dict[str, tuple]:
    rows = store.conn.execute("SELECT key, state, error, scheduled_at FROM sends ORDER BY key").fetchall()
    return {key: (state, error, at) for key, state, error, at in rows}


def test_a_tick_sends_what_is_due_once_and_the_next_tick_sends_nothing_again(tmp_path):
    root, store, tree = _setup(tmp_path)
    add_signups(store, 3, AT)
    runtime = _runtime(store, tree, tmp_path)

    first = run_tick(store, runtime, AT + timedelta(hours=1))
    assert first.counts["sent"] == 3
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "outbox").glob("*.eml")) == [
        "c00000_welcome_1_1_hello", "c00001_welcome_1_1_hello", "c00002_welcome_1_1_hello"]
    again = run_tick(store, runtime, AT + timedelta(hours=1))
    assert again.contacts == 0 and again.counts["sent"] == 0

    # the wait of 1d makes them due again at AT + 1d, and only then
    assert store.due_contacts(AT + timedelta(hours=23), 10) == []
    later = run_tick(store, runtime, AT + timedelta(days=2))
    assert later.counts["sent"] == 3
    states = {state for state, _, _ in _sends(store).values()}
    assert states == {"sent"} and len(_sends(store)) == 6
    runs = store.conn.execute("SELECT status, counts FROM runs ORDER BY started_at").fetchall()
    assert [status for status, _ in runs] == ["ok", "ok", "ok"]
    assert json.loads(runs[0][1])["sent"] == 3


@pytest.mark.parametrize("policy, expected_state", [("skip", "skipped"), ("send_late", "sent")])
def test_catch_up_policy_decides_what_happens_to_late_sends(tmp_path, policy, expected_state):
    project = TINY_PROJECT + f"catch_up: {{policy: {policy}, max_lateness: 2h}}\n"
    root, store, tree = _setup(tmp_path, project=project)
    add_signups(store, 1, AT)
    runtime = _runtime(store, tree, tmp_path)

    report = run_tick(store, runtime, AT + timedelta(hours=5))  # the runner was down for 5 hours
    sends = _sends(store)
    assert [state for state, _, _ in sends.values()] == [expected_state]
    if policy == "skip":
        assert report.counts["late"] == 1 and report.counts["sent"] == 0
        assert next(iter(sends.values()))[1] == "late"
        assert not (tmp_path / "outbox").exists()
    else:
        assert report.counts["sent"] == 1


def test_within_max_lateness_a_send_goes_out_under_skip(tmp_path):
    project = TINY_PROJECT + "catch_up: {policy: skip, max_lateness: 2h}\n"
    root, store, tree = _setup(tmp_path, project=project)
    add_signups(store, 1, AT)
    report = run_tick(store, _runtime(store, tree, tmp_path), AT + timedelta(hours=1, minutes=59))
    assert report.counts["sent"] == 1


BROKEN = WELCOME.replace("id: welcome", "id: broken").replace("template: hello", "template: broken")


def test_a_failing_render_is_recorded_and_the_tick_goes_on(tmp_path):
    templates = {
        "hello.html": "<p>Hi {{ contact.first_name }}</p>",
        "tips.html": "<p>Tips</p>",
        "broken.html": "<p>{{ contact.no_such_attribute }}</p>",
    }
    root, store, tree = _setup(tmp_path, journeys={"welcome": WELCOME, "broken": BROKEN}, templates=templates)
    add_signups(store, 2, AT)
    report = run_tick(store, _runtime(store, tree, tmp_path), AT + timedelta(hours=1))

    sends = _sends(store)
    assert report.counts["sent"] == 2 and report.counts["failed"] == 2
    by_journey = {(key.split(":")[0], key.split(":")[1]): value for key, value in sends.items()}
    for contact in ("c00000", "c00001"):
        assert by_journey[(contact, "welcome")][0] == "sent"
        state, error, _ = by_journey[(contact, "broken")]
        assert state == "failed" and "no_such_attribute" in error
    failures = store.status_summary(AT)["failures"]
    assert {row["retryable"] for row in failures} == {0}  # a broken template is not retried
    # the contacts moved on: their state was saved with the next wake-up
    assert store.due_contacts(AT + timedelta(hours=2), 10) == []


def test_suppressed_contacts_are_never_emailed(tmp_path):
    root, store, tree = _setup(tmp_path)
    add_signups(store, 3, AT)
    store.add_suppression("c00001@EXAMPLE.com", "unsubscribed", "test", AT - timedelta(days=1))
    report = run_tick(store, _runtime(store, tree, tmp_path), AT + timedelta(days=3))

    keys = set(_sends(store))
    assert not any(key.startswith("c00001:") for key in keys)
    assert len(keys) == 4 and report.counts["decision:skip"] == 2  # hello and tips skipped for c00001
    names = [p.name for p in (tmp_path / "outbox").glob("*.eml")]
    assert not any("c00001" in name for name in names) and len(names) == 4


def test_an_unsubscribe_event_stops_the_next_email(tmp_path):
    root, store, tree = _setup(tmp_path)
    add_signups(store, 1, AT)
    runtime = _runtime(store, tree, tmp_path)
    run_tick(store, runtime, AT + timedelta(hours=1))
    store.write_events([EventRow("c00000", None, "unsubscribed", AT + timedelta(hours=2), {}, "u-1")],
                       AT + timedelta(hours=2))
    run_tick(store, runtime, AT + timedelta(days=2))
    assert list(_sends(store)) == ["c00000:welcome:1/1/hello"]


def test_a_late_event_still_triggers_its_entry(tmp_path):
    """An event stored after the contact was processed past its timestamp is not lost."""
    root, store, tree = _setup(tmp_path)
    add_signups(store, 1, AT, event="app_opened")  # processed up to 12:00 with nothing to do
    runtime = _runtime(store, tree, tmp_path)
    run_tick(store, runtime, AT + timedelta(hours=3))
    assert _sends(store) == {}

    # the collector delivers a signup that happened at 10:00 only now
    store.write_events([EventRow("c00000", None, "signed_up", AT + timedelta(hours=1), {}, "late-1")],
                       AT + timedelta(hours=4))
    report = run_tick(store, runtime, AT + timedelta(hours=4))
    assert report.counts["sent"] == 1
    (state, _, scheduled), = _sends(store).values()
    assert state == "sent"
    # treated as happening just after the instant the contact had been processed to
    assert datetime.fromisoformat(scheduled) == AT + timedelta(hours=3, microseconds=1)
    # and only once: the next tick does not see it as new again
    assert run_tick(store, runtime, AT + timedelta(hours=5)).counts["decision:enter"] == 0


def test_anonymous_history_counts_from_the_identify_instant(tmp_path):
    """Segment-style anonymous page views merge into the contact when an identify links them."""
    journey = """\
id: pricing
version: 1
name: Pricing interest
stages:
  - id: main
    entry: {event: page_viewed, where: {path: /pricing}}
    steps:
      - id: pricing_email
        email: {template: hello, subject: "Pricing"}
"""
    root, store, tree = _setup(tmp_path, journeys={"pricing": journey})
    from runner.store.base import ContactRow

    store.write_contacts([ContactRow("ana", {"email": "ana@example.com", "first_name": "Ana"})], AT)
    store.write_events([
        EventRow(None, "anon-1", "page_viewed", AT + timedelta(hours=1), {"path": "/pricing"}, "m1"),
        EventRow("ana", "anon-1", "identify", AT + timedelta(hours=3), {}, "m2"),
    ], AT)
    store.link_identities([("anon-1", "ana")], AT)
    run_tick(store, _runtime(store, tree, tmp_path), AT + timedelta(hours=6))
    (state, _, scheduled), = _sends(store).values()
    assert datetime.fromisoformat(scheduled) == AT + timedelta(hours=3)  # the link instant, not 10:00


def test_transient_failures_are_retried_by_a_later_tick(tmp_path, smtp_server, monkeypatch):
    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", "tick-test-secret-0123456789")
    root, store, tree = _setup(tmp_path)
    add_signups(store, 1, AT)
    runtime = build_runtime(store, tree.project, f"smtp://127.0.0.1:{smtp_server.port}?retries=0")
    smtp_server.replies.append("451 4.3.0 try again later")
    first = run_tick(store, runtime, AT + timedelta(hours=1))
    assert first.counts["retryable"] == 1 and smtp_server.messages == []
    assert list(_sends(store).values())[0][0] == "failed"

    second = run_tick(store, runtime, AT + timedelta(hours=2))
    assert second.counts["retried"] == 1 and second.counts["sent"] == 1
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0].message
    assert message["X-Journey-Key"] == "c00000:welcome:1/1/hello"
    assert message["Subject"] == "Hello C00000"
    assert "token=" in message["List-Unsubscribe"]
    runtime.delivery.close()


def test_a_pool_of_connections_sends_in_parallel_and_each_message_once(tmp_path, monkeypatch):
    """smtp://…?connections=4: the tick claims waves of 4 and sends each wave over the 4 connections."""
    from smtp_server import SmtpServer

    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", "tick-test-secret-0123456789")
    root, store, tree = _setup(tmp_path)
    add_signups(store, 24, AT)
    with SmtpServer(data_delay=0.05) as server:  # a relay that takes its time: sessions overlap
        runtime = build_runtime(store, tree.project, f"smtp://127.0.0.1:{server.port}?connections=4&retries=0")
        report = run_tick(store, runtime, AT + timedelta(hours=1))
        runtime.delivery.close()
        again = run_tick(store, build_runtime(store, tree.project, f"smtp://127.0.0.1:{server.port}"),
                         AT + timedelta(hours=1))
    assert report.counts["sent"] == 24 and again.counts["sent"] == 0
    keys = sorted(str(item.message["X-Journey-Key"]) for item in server.messages)
    assert keys == sorted(f"c{n:05d}:welcome:1/1/hello" for n in range(24))  # each exactly once
    assert server.connections == 4 and server.most_data_at_once == 4
    assert {state for state, _, _ in _sends(store).values()} == {"sent"}
    assert store.production_counters(AT).decisions == {"enter": 24, "send": 24, "wait": 24}  # the journal by action


def test_webhooks_go_to_the_outbox_with_a_development_transport(tmp_path):
    journey = """\
id: crm
version: 1
name: CRM
stages:
  - id: main
    entry: {event: signed_up}
    steps:
      - id: hand_off
        webhook: {url: "https://crm.example/hook", payload: {who: "{{ contact.first_name }}"}}
"""
    root, store, tree = _setup(tmp_path, journeys={"crm": journey})
    add_signups(store, 1, AT)
    report = run_tick(store, _runtime(store, tree, tmp_path), AT + timedelta(hours=1))
    assert report.counts["webhooks"] == 1
    (path,) = (tmp_path / "outbox").glob("*.webhook.json")
    body = json.loads(path.read_text())
    assert body["url"] == "https://crm.example/hook"
    assert body["payload"]["data"] == {"who": "C00000"} and body["payload"]["key"] == "c00000:crm:1/1/hand_off"


def test_limit_bounds_the_contacts_of_one_tick(tmp_path):
    root, store, tree = _setup(tmp_path)
    add_signups(store, 5, AT)
    runtime = _runtime(store, tree, tmp_path)
    assert run_tick(store, runtime, AT + timedelta(hours=1), limit=2).contacts == 2
    assert run_tick(store, runtime, AT + timedelta(hours=1), limit=2).contacts == 2
    assert run_tick(store, runtime, AT + timedelta(hours=1)).contacts == 1


def test_the_ledger_alone_prevents_double_sends_between_runs_without_the_lease(tmp_path):
    """Two ticks processing the same due contacts at once (lease bypassed): each key is sent once."""
    import threading

    from runner.delivery.transports import MemoryTransport
    from runner.production.tick import Tick

    root, store, tree = _setup(tmp_path)
    ids = add_signups(store, 200, AT)
    store.close()
    transports, errors = [], []

    def worker(name: str) -> None:
        own = open_store(tmp_path / "journey.db")
        runtime = _runtime(own, tree, tmp_path)
        runtime.delivery.transport = transport = MemoryTransport()
        transports.append(transport)
        tick = Tick(own, runtime, AT + timedelta(hours=1), holder=name)
        tick.report.run_id = own.start_run(name, AT)
        try:
            tick._contacts(list(ids))  # the same contacts, no lease
            tick.writes.now()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        own.close()

    threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keys = [str(m["X-Journey-Key"]) for t in transports for m in t.messages]
    assert len(keys) == len(set(keys)) == 200


def test_durable_claims_fsync_each_claim_and_leave_the_connection_in_normal_mode(tmp_path):
    root, store, tree = _setup(tmp_path)
    add_signups(store, 3, AT)
    report = run_tick(store, _runtime(store, tree, tmp_path), AT + timedelta(hours=1), durable_claims=True)
    assert report.counts["sent"] == 3
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL again after each claim


def test_a_run_killed_earlier_is_closed_as_died_by_the_next_tick(tmp_path):
    root, store, tree = _setup(tmp_path)
    dead = store.start_run("elsewhere:1:x", AT)
    run_tick(store, _runtime(store, tree, tmp_path), AT + timedelta(hours=1))
    statuses = dict(store.conn.execute("SELECT id, status FROM runs").fetchall())
    assert statuses[dead] == "died" and sorted(statuses.values()) == ["died", "ok"]


def test_in_a_batched_tick_a_contact_that_fails_stays_due_and_the_others_are_sent(tmp_path, monkeypatch):
    import runner.production.tick as tick_module

    root, store, tree = _setup(tmp_path)
    add_signups(store, 3, AT)
    runtime = _runtime(store, tree, tmp_path)  # the outbox: the batched path
    real_journey = tick_module._journey

    def broken_for_one(engine, decision):
        if decision.contact == "c00001":
            raise RuntimeError("deployed version missing")
        return real_journey(engine, decision)

    monkeypatch.setattr(tick_module, "_journey", broken_for_one)
    report = run_tick(store, runtime, AT + timedelta(hours=1))
    assert report.counts["errors"] == 1 and report.counts["sent"] == 2
    assert any("c00001" in line and "deployed version missing" in line for line in report.lines)
    assert sorted(_sends(store)) == ["c00000:welcome:1/1/hello", "c00002:welcome:1/1/hello"]
    assert store.due_contacts(AT + timedelta(hours=1), 10) == ["c00001"]  # retried by the next tick

    monkeypatch.setattr(tick_module, "_journey", real_journey)
    assert run_tick(store, runtime, AT + timedelta(hours=1)).counts["sent"] == 1


def test_production_renders_the_templates_deployed_not_what_the_files_hold_later(tmp_path):
    """A template swapped for a link to a secret after deploy is not what goes out."""
    from runner.language.templatecheck import read_templates

    root = tiny_project(tmp_path / "project")
    store = open_store(tmp_path / "journey.db")
    tree = load_working_tree(root)
    deploy(store, tree.journeys, AT, read_templates(root / "templates"))
    secret = tmp_path / "environ"
    secret.write_text("JOURNEY_UNSUBSCRIBE_SECRET=the-real-secret", encoding="utf-8")
    (root / "templates" / "hello.html").unlink()
    (root / "templates" / "hello.html").symlink_to(secret)
    (root / "templates" / "tips.html").write_text("<p>edited after deploy</p>", encoding="utf-8")
    add_signups(store, 1, AT)
    runtime = _runtime(store, tree, tmp_path)
    run_tick(store, runtime, AT + timedelta(days=2))
    bodies = [p.read_text() for p in sorted((tmp_path / "outbox").glob("*.eml"))]
    assert len(bodies) == 2 and not any("the-real-secret" in b or "edited after deploy" in b for b in bodies)
    assert any("Hi C00000!" in b for b in bodies)
    # a new deploy of the edited tip is what the next ticks render (a worker's runtime refreshes)
    (root / "templates" / "hello.html").unlink()
    (root / "templates" / "hello.html").write_text("<p>Hello again {{ contact.first_name }}</p>", encoding="utf-8")
    deploy(store, tree.journeys, AT, read_templates(root / "templates"))
    runtime.refresh(store)
    assert runtime.delivery.renderer.render_email("tips", "s", {"contact": {}, "unsubscribe_url": "u"}).html \
        .startswith("<html><head></head><body><p>edited after deploy</p>")


def test_without_deployed_templates_the_files_are_read_as_validate_reads_them(tmp_path):
    """A database deployed before templates were recorded renders the files, never a link out."""
    root, store, tree = _setup(tmp_path)
    assert store.deployed_templates() is None
    (root / "templates" / "hello.html").unlink()
    (root / "templates" / "hello.html").symlink_to("/proc/self/environ")
    add_signups(store, 1, AT)
    report = run_tick(store, _runtime(store, tree, tmp_path), AT + timedelta(hours=1))
    assert report.counts["sent"] == 0
    assert list((tmp_path / "outbox").glob("*.eml")) == []
    assert "outside" in _sends(store)["c00000:welcome:1/1/hello"][1]
