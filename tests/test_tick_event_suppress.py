"""Production, through the real CLI, on SQLite and PostgreSQL (issue #13 §2, §3).

Each ``journey run --now`` is its own process, so every tick starts from what the store
kept: the cart email due a day after its ``cart_abandoned`` event renders that event
(kept with the waiting enrollment), a ``suppress`` step is recorded like any suppression
(``journey suppress list``, ``journey history``) and stops the next marketing email while
a transactional one still goes, and project.yaml's ``exit`` ends another journey.
Simulation decides the same (the journal holds exactly its decisions).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pgkit
import pytest
from test_tick_kit import journey_cli, tiny_project

from runner.delivery.message import journey_key
from runner.language.loader import load_project
from runner.simulation.simulate import simulate
from runner.simulation.testcontacts import load_test_contacts

PROJECT = """\
name: Shop
sender: {from: "Shop <hello@shop.test>"}
default_timezone: UTC
unsubscribe: {url: "https://shop.test/unsubscribe", mailto: "unsubscribe@shop.test"}
topics:
  marketing: {kind: marketing}
  receipts: {kind: transactional}
exit:
  - {event: account_closed}
tracking_plan:
  attributes:
    email: {type: string, format: email}
    first_name: string
  events:
    cart_abandoned: {properties: {total: number, items: list}}
    signed_up: {properties: {}}
    account_closed: {properties: {}}
"""

CART = """\
id: cart
version: 1
name: Cart
stages:
  - id: main
    entry: {event: cart_abandoned}
    steps:
      - wait: 1d
      - id: reminder
        email: {template: reminder, subject: "Your cart: {{ event.properties.total }} ({{ event.name }})"}
      - wait: 1d
      - id: sunset
        suppress: {reason: sunset}
      - id: after_sunset
        email: {template: plain, subject: "More news"}
      - id: receipt
        email: {template: plain, subject: "Your receipt", topic: receipts}
"""

NEWS = """\
id: news
version: 1
name: News
stages:
  - id: main
    entry: {event: signed_up}
    steps:
      - wait: 10d
      - id: monthly
        email: {template: plain, subject: "Monthly"}
"""

TEMPLATES = {
    "reminder.html": "<p>{% for item in event.properties['items'] %}{{ item }}; {% endfor %}"
                     "total {{ event.properties.total }} at {{ event.timestamp.isoformat() }}</p>"
                     "<p><a href=\"{{ unsubscribe_url }}\">unsubscribe</a></p>",
    "plain.html": "<p>Hello {{ contact.first_name }}</p><p><a href=\"{{ unsubscribe_url }}\">unsubscribe</a></p>",
}

START = datetime(2026, 3, 2, tzinfo=UTC)
CONTACTS = """\
contacts:
  - id: ada
    timezone: UTC
    attributes: {email: ada@example.com, first_name: Ada}
    events:
      - {at: "2026-03-02T10:00:00Z", event: cart_abandoned, properties: {total: 42.5, items: [mug, tea]}}
      - {at: "2026-03-02T10:00:00Z", event: signed_up}
  - id: bob
    timezone: UTC
    attributes: {email: bob@example.com, first_name: Bob}
    events:
      - {at: "2026-03-02T11:00:00Z", event: signed_up}
      - {at: "2026-03-03T12:00:00Z", event: account_closed}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "journey.db")
    else:
        yield from pgkit.fresh_schema_url()


def _cli(root: Path, *args: str, env: dict | None = None) -> str:
    result = journey_cli(list(args), cwd=root,
                         env={"JOURNEY_UNSUBSCRIBE_SECRET": "tick-event-secret-0123456789", **(env or {})})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_ticks_render_the_event_after_a_restart_and_record_the_sunset(tmp_path, database):
    root = tiny_project(tmp_path / "shop", {"cart": CART, "news": NEWS}, PROJECT, TEMPLATES)
    (root / "examples").mkdir()
    (root / "examples" / "contacts.yaml").write_text(CONTACTS)
    contacts = load_test_contacts(root / "examples" / "contacts.yaml")
    states = {c.id: c.state(START, "UTC") for c in contacts}
    (tmp_path / "contacts.jsonl").write_text("".join(
        json.dumps({"id": s.contact.id, "timezone": "UTC", "attributes": s.contact.attributes}) + "\n"
        for s in states.values()))
    (tmp_path / "events.jsonl").write_text("".join(
        json.dumps({"type": "track", "userId": s.contact.id, "event": e.name, "properties": e.properties,
                    "timestamp": e.at.isoformat(), "messageId": f"{s.contact.id}-{i}"}) + "\n"
        for s in states.values() for i, e in enumerate(s.events)))
    outbox = tmp_path / "outbox"
    _cli(root, "contacts", "import", str(tmp_path / "contacts.jsonl"), "--db", database)
    _cli(root, "events", "import", str(tmp_path / "events.jsonl"), "--db", database)
    _cli(root, "deploy", "--db", database)
    for hours in (10, 30, 34, 58, 60, 14 * 24):  # a process per tick: each starts from what the store kept
        now = START + timedelta(hours=hours)
        _cli(root, "run", "--now", now.isoformat(), "--db", database, "-q", "--transport", f"outbox:{outbox}")

    messages = {journey_key(m): m for m in (message_from_bytes(p.read_bytes(), policy=policy.default)
                                            for p in outbox.glob("*.eml"))}
    assert sorted(messages) == ["ada:cart:1/1/receipt", "ada:cart:1/1/reminder"]
    reminder = messages["ada:cart:1/1/reminder"]
    assert str(reminder["Subject"]) == "Your cart: 42.5 (cart_abandoned)"
    assert "mug; tea; total 42.5 at 2026-03-02T10:00:00+00:00" in reminder.get_body(("html",)).get_content()

    listed = json.loads(_cli(root, "suppress", "list", "--format", "json", "--db", database))
    assert [(r["contact_id"], r["reason"], r["source"]) for r in listed] == [("ada", "sunset", "step:cart/sunset")]
    assert "all marketing topics" in _cli(root, "suppress", "list", "--db", database, env={"COLUMNS": "200"})
    history = json.loads(_cli(root, "history", "ada", "--format", "json", "--db", database))["events"]
    decided = [(row["step"], row["action"], row["reason"]) for row in history]
    assert ("sunset", "suppress", "sunset") in decided
    assert ("after_sunset", "skip", "suppressed: sunset") in decided
    assert ("monthly", "skip", "suppressed: sunset") in decided  # another journey's marketing email
    assert ("receipt", "send", "email plain") in decided  # transactional goes on
    bob = json.loads(_cli(root, "history", "bob", "--format", "json", "--db", database))["events"]
    assert [(row["journey"], row["reason"]) for row in bob if row["action"] == "exit"] == [
        ("news", "project_exit:0 event account_closed count gte 1")]

    # simulation decides exactly the same
    loaded = load_project(root)
    sim = simulate(loaded.project, loaded.journeys, contacts, START, START + timedelta(days=14))
    journal = sorted((row["contact"], row["journey"], str(row["step"]), row["action"], row["reason"])
                     for contact in ("ada", "bob")
                     for row in json.loads(_cli(root, "history", contact, "--format", "json", "--db", database))["events"])
    assert journal == sorted((d.contact, d.journey, str(d.step), d.action, d.reason) for d in sim.decisions)
