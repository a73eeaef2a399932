"""Suppressions in production last, take effect at their instant, and match the simulation.

A bounce, a complaint or an unsubscribe between two emails of a series: the
simulation skips the second email ("suppressed: …"); production must never
send it, whether it ticks every hour or once to catch up, whether the event
came in an events import or inside a contacts import line, and whether it
was imported as it happened or ahead of its timestamp (an event imported
ahead must not suppress emails due before it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_tick_kit import TINY_PROJECT, tiny_project, write_lines

from runner.production import ingest
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.simulation.simulate import simulate
from runner.simulation.testcontacts import load_test_contacts
from runner.store import open_store

START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=4)
SIGNUP = START + timedelta(hours=9)  # hello at 09:00 on day 1, tips a day later
PROJECT = TINY_PROJECT + "catch_up: {policy: send_late}\n"  # a catch-up tick sends late what is due
CONTACT = {"id": "ada", "timezone": "UTC", "attributes": {"email": "ada@example.com", "first_name": "Ada"}}


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _scenario(tmp_path: Path, suppressing: str, at: datetime):
    """The tiny project, its simulation, and ada's events (signed up, then ``suppressing`` at ``at``)."""
    root = tiny_project(tmp_path / "project", project=PROJECT)
    events = [{"event": "signed_up", "at": _iso(SIGNUP)}, {"event": suppressing, "at": _iso(at)}]
    contacts = root / "contacts.yaml"
    contacts.write_text(json.dumps({"contacts": [{**CONTACT, "events": events}]}), encoding="utf-8")
    tree = load_working_tree(root)
    simulation = simulate(tree.project, tree.journeys, load_test_contacts(contacts), START, END)
    return root, tree, simulation, events


def _simulated(simulation) -> tuple[list, list]:
    sent = sorted((d.key, d.at) for d in simulation.decisions if d.action == "send")
    skipped = sorted((d.step, d.at, d.reason) for d in simulation.decisions if d.action == "skip")
    return sent, skipped


def _produced(store) -> tuple[list, list]:
    sent = sorted((key, datetime.fromisoformat(at)) for key, at in store.conn.execute(
        "SELECT key, scheduled_at FROM sends WHERE state = 'sent'"))
    skipped = sorted((row["step"], row["at"], row["reason"]) for row in store.contact_history("ada")
                     if row["action"] == "skip")
    return sent, skipped


def _import(store, tmp_path: Path, events: list[dict], delivery: str, now: datetime) -> None:
    if delivery == "events import":
        lines = [json.dumps({"type": "track", "userId": "ada", "event": e["event"], "timestamp": e["at"],
                             "messageId": f"{e['event']}-{e['at']}"}) for e in events]
        result = ingest.import_events(store, write_lines(tmp_path / f"events-{now:%d%H}.jsonl", lines), now=now)
    else:
        line = json.dumps({**CONTACT, "events": events})
        result = ingest.import_contacts(store, write_lines(tmp_path / f"contacts-{now:%d%H}.jsonl", [line]), now=now)
    assert result.ok, result.bad


def _production(tmp_path: Path, tree, events: list[dict], delivery: str, cadence: str, ahead: bool):
    """Run production over the scenario: hourly ticks or one catch-up tick at the end.

    ``ahead``: everything is imported at the start; otherwise each event is
    imported in the hour it happens (as a collector delivers it).
    """
    store = open_store(tmp_path / "journey.db")
    ingest.import_contacts(store, write_lines(tmp_path / "contacts.jsonl", [json.dumps(CONTACT)]), now=START)
    deploy(store, tree.journeys, START)
    runtime = build_runtime(store, tree.project, f"outbox:{tmp_path / 'outbox'}")
    if ahead:
        _import(store, tmp_path, events, delivery, START)
    ticks = [START + timedelta(hours=h) for h in range(int((END - START) / timedelta(hours=1)) + 1)]
    if cadence == "catch-up":
        ticks = [END]
    pending = [] if ahead else sorted(events, key=lambda e: e["at"])
    for now in ticks:
        arrived = [e for e in pending if datetime.fromisoformat(e["at"]) <= now]
        if arrived:
            pending = [e for e in pending if e not in arrived]
            _import(store, tmp_path, arrived, delivery, now)
        run_tick(store, runtime, now)
    return store


@pytest.mark.parametrize("cadence", ["hourly", "catch-up"])
@pytest.mark.parametrize("delivery", ["events import", "contacts import"])
@pytest.mark.parametrize("suppressing, reason", [("email_bounced", "bounced"), ("email_complained", "complained"),
                                                 ("unsubscribed", "unsubscribed")])
def test_a_suppression_between_two_emails_stops_the_second_in_production_as_in_the_simulation(
        tmp_path, suppressing, reason, delivery, cadence):
    root, tree, simulation, events = _scenario(tmp_path, suppressing, SIGNUP + timedelta(hours=6))
    sent, skipped = _simulated(simulation)
    assert [key.split("/")[-1] for key, _ in sent] == ["hello"]
    assert skipped == [("tips", SIGNUP + timedelta(days=1), f"suppressed: {reason}")]

    store = _production(tmp_path, tree, events, delivery, cadence, ahead=False)
    assert _produced(store) == (sent, skipped)
    suppressions = [(row["reason"], datetime.fromisoformat(row["at"])) for row in store.suppressions()]
    assert suppressions == [(reason, SIGNUP + timedelta(hours=6))]
    store.close()


@pytest.mark.parametrize("cadence", ["hourly", "catch-up"])
@pytest.mark.parametrize("delivery", ["events import", "contacts import"])
def test_a_suppression_imported_ahead_of_its_time_spares_the_emails_due_before_it(tmp_path, delivery, cadence):
    """Unsubscribed at 12:00 on day 2, imported on day 1: hello (day 1) and tips (day 2, 09:00) still go."""
    root, tree, simulation, events = _scenario(tmp_path, "unsubscribed", SIGNUP + timedelta(days=1, hours=3))
    sent, skipped = _simulated(simulation)
    assert [key.split("/")[-1] for key, _ in sent] == ["hello", "tips"] and skipped == []

    store = _production(tmp_path, tree, events, delivery, cadence, ahead=True)
    assert _produced(store) == (sent, skipped)
    store.close()


def test_bounces_stored_before_the_fix_become_suppressions_when_the_database_is_opened(tmp_path):
    """A database whose bounce and complaint events never suppressed anyone is mended by a migration
    (the earliest per contact, at the event's time); unsubscribes were recorded all along and are left as they are."""
    import sqlite3

    from sqlite_utils import Database

    from runner.store import migrations as schema

    path = tmp_path / "old.db"
    old = Database(sqlite3.connect(path))
    schema.m001_initial(old)
    schema.m002_decisions(old)
    old.execute("CREATE TABLE schema_migrations (migration_set TEXT, name TEXT, applied_at TEXT)")
    for name in ("m001_initial", "m002_decisions"):
        old.execute("INSERT INTO schema_migrations VALUES ('journey-runner', ?, '2026-03-01')", (name,))
    for row in [("ada", None, "email_complained", "2026-03-05T10:00:00.000000+00:00", "c1"),
                ("ada", None, "email_bounced", "2026-03-04T10:00:00.000000+00:00", "b1"),
                (None, "anon-1", "email_bounced", "2026-03-06T10:00:00.000000+00:00", "b2"),
                ("cem", None, "unsubscribed", "2026-03-04T10:00:00.000000+00:00", "u1")]:
        old.execute("INSERT INTO events (contact_id, anonymous_id, name, at, message_id) VALUES (?, ?, ?, ?, ?)", row)
    old.conn.commit()
    old.conn.close()

    store = open_store(path)
    assert [(r["contact_id"], r["reason"], r["at"], r["source"]) for r in store.suppressions()] == [
        ("ada", "bounced", "2026-03-04T10:00:00.000000+00:00", "event:b1"),
        ("anon-1", "bounced", "2026-03-06T10:00:00.000000+00:00", "event:b2"),
    ]
    store.close()


# ---------------------------------------------------------------- retries of failed sends


def _retry_setup(tmp_path: Path, journeys: dict[str, str] | None = None, project: str = TINY_PROJECT):
    from test_tick_kit import add_signups

    root = tiny_project(tmp_path / "project", journeys=journeys, project=project)
    store = open_store(tmp_path / "journey.db")
    tree = load_working_tree(root)
    deploy(store, tree.journeys, START)
    add_signups(store, 1, SIGNUP)
    runtime = build_runtime(store, tree.project, f"outbox:{tmp_path / 'outbox'}")
    run_tick(store, runtime, SIGNUP + timedelta(minutes=5))
    (key,) = [key for (key,) in store.conn.execute("SELECT key FROM sends")]
    store.fail_send(key, "relay down", False, retry_at=SIGNUP + timedelta(minutes=10))  # a transient failure
    return store, runtime, key


def _unsubscribe(store, at: datetime) -> None:
    from runner.store.base import EventRow

    store.write_events([EventRow("c00000", None, "unsubscribed", at, {}, f"u-{at:%d%H%M}")], SIGNUP)


@pytest.mark.parametrize("unsubscribed_after, expected", [(timedelta(days=3), ("sent", None)),
                                                          (timedelta(minutes=30), ("failed", "suppressed"))])
def test_a_retried_email_is_refused_only_by_a_suppression_in_effect_when_it_is_retried(
        tmp_path, unsubscribed_after, expected):
    """An unsubscribe imported ahead of its time does not stop a retry due before it; one in effect does."""
    store, runtime, key = _retry_setup(tmp_path)
    _unsubscribe(store, SIGNUP + unsubscribed_after)
    run_tick(store, runtime, SIGNUP + timedelta(hours=1))
    assert store.conn.execute("SELECT state, error FROM sends WHERE key = ?", (key,)).fetchone() == expected
    store.close()


def test_a_webhook_is_retried_for_a_suppressed_contact_as_the_engine_sends_it(tmp_path):
    """Suppressions stop emails, not CRM hand-offs: the engine decides the webhook, so its retry goes out too."""
    handoff = ("id: handoff\nversion: 1\nname: Handoff\nstages:\n  - id: main\n    entry: {event: signed_up}\n"
               "    steps:\n      - id: tell_sales\n        webhook: {url: \"https://crm.tiny.test/hooks/lead\"}\n")
    store, runtime, key = _retry_setup(tmp_path, journeys={"handoff": handoff})
    _unsubscribe(store, SIGNUP - timedelta(days=1))
    assert store.is_suppressed("c00000") == "unsubscribed"
    run_tick(store, runtime, SIGNUP + timedelta(hours=1))
    assert store.conn.execute("SELECT state, attempts FROM sends WHERE key = ?", (key,)).fetchone() == ("sent", 2)
    store.close()
