"""Subscription topics: declared in project.yaml, named by email steps, checked by validate,
honoured alike by the engine, `simulate` and production ticks.

The journey sends four emails an hour apart under three topics: ``newsletter``
(marketing), ``receipts`` (transactional) and the default ``marketing`` topic.
An unsubscribe from one topic stops that topic's emails; an unsubscribe from
everything stops every marketing topic but not receipts; a bounce stops all.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlite_utils import Database
from test_tick_kit import TINY_PROJECT, journey_cli, tiny_project, write_lines

from runner.delivery.unsubscribe import DEV_SECRET, verify_token
from runner.production import ingest
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.simulation.simulate import simulate
from runner.simulation.testcontacts import load_test_contacts
from runner.store import open_store

START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=1)
SIGNUP = START + timedelta(hours=9)  # news1 09:00, receipt 10:00, tips 11:00, news2 12:00
PROJECT = TINY_PROJECT + """\
catch_up: {policy: send_late}
topics:
  newsletter: {kind: marketing, description: "Our monthly newsletter"}
  receipts: {kind: transactional, description: "Receipts and account notices"}
"""
SERIES = """\
id: series
version: 1
name: Series
stages:
  - id: main
    entry: {event: signed_up}
    steps:
      - id: news1
        email: {template: hello, subject: "News", topic: newsletter}
      - wait: 1h
      - id: receipt
        email: {template: hello, subject: "Your receipt", topic: receipts}
      - wait: 1h
      - id: tips
        email: {template: tips, subject: "Tips"}
      - wait: 1h
      - id: news2
        email: {template: hello, subject: "More news", topic: newsletter}
"""
CONTACT = {"id": "ada", "timezone": "UTC", "attributes": {"email": "ada@example.com", "first_name": "Ada"}}


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _event(name: str, at: datetime, **properties: str) -> dict:
    return {"event": name, "at": _iso(at), **({"properties": properties} if properties else {})}


def _simulated(root: Path, events: list[dict]) -> tuple[list[str], list[tuple[str, str]]]:
    """Steps sent and (step, reason) skipped by a simulation of ada with ``events``."""
    contacts = root / "contacts.yaml"
    contacts.write_text(json.dumps({"contacts": [{**CONTACT, "events": events}]}), encoding="utf-8")
    tree = load_working_tree(root)
    result = simulate(tree.project, tree.journeys, load_test_contacts(contacts), START, END)
    return ([d.step for d in result.decisions if d.action == "send"],
            [(d.step, d.reason) for d in result.decisions if d.action == "skip"])


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: Path) -> str:
    """Where production keeps its state: a SQLite file, or a fresh schema on the test PostgreSQL."""
    return str(tmp_path / "journey.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def _production(tmp_path: Path, root: Path, events: list[dict], database: str | None = None):
    """Hourly production ticks over the day, each event imported in the hour it happens."""
    tree = load_working_tree(root)
    store = open_store(database or tmp_path / "journey.db")
    ingest.import_contacts(store, write_lines(tmp_path / "contacts.jsonl", [json.dumps(CONTACT)]), now=START)
    deploy(store, tree.journeys, START)
    runtime = build_runtime(store, tree.project, f"outbox:{tmp_path / 'outbox'}")
    pending = list(events)
    for hour in range(25):
        now = START + timedelta(hours=hour)
        arrived = [e for e in pending if datetime.fromisoformat(e["at"]) <= now]
        if arrived:
            pending = [e for e in pending if e not in arrived]
            lines = [json.dumps({"type": "track", "userId": "ada", "event": e["event"], "timestamp": e["at"],
                                 "properties": e.get("properties", {}), "messageId": f"{e['event']}-{e['at']}"})
                     for e in arrived]
            assert ingest.import_events(store, write_lines(tmp_path / f"events-{hour}.jsonl", lines), now=now).ok
        run_tick(store, runtime, now)
    return store


def _produced(store) -> tuple[list[str], list[tuple[str, str]]]:
    history = store.contact_history("ada")
    sent = [row["step"] for row in history if row["action"] == "send" and row["send_state"] == "sent"]
    skipped = [(row["step"], row["reason"]) for row in history if row["action"] == "skip"]
    return sent, skipped


SCENARIOS = {
    "nothing": ([], ["news1", "receipt", "tips", "news2"], []),
    "unsubscribed from the newsletter": (
        [_event("unsubscribed", SIGNUP + timedelta(minutes=30), topic="newsletter")],
        ["news1", "receipt", "tips"], [("news2", "suppressed: unsubscribed from newsletter")]),
    "unsubscribed from everything": (
        [_event("unsubscribed", SIGNUP + timedelta(minutes=30))],
        ["news1", "receipt"], [("tips", "suppressed: unsubscribed"), ("news2", "suppressed: unsubscribed")]),
    "bounced": (
        [_event("email_bounced", SIGNUP + timedelta(minutes=30))],
        ["news1"], [("receipt", "suppressed: bounced"), ("tips", "suppressed: bounced"),
                    ("news2", "suppressed: bounced")]),
    "resubscribed to the newsletter": (
        [_event("unsubscribed", SIGNUP - timedelta(hours=1), topic="newsletter"),
         _event("resubscribed", SIGNUP + timedelta(hours=2, minutes=30), topic="newsletter")],
        ["receipt", "tips", "news2"], [("news1", "suppressed: unsubscribed from newsletter")]),
    "resubscribed without a topic (no effect of its own)": (
        [_event("unsubscribed", SIGNUP - timedelta(hours=1)),
         _event("resubscribed", SIGNUP + timedelta(hours=2, minutes=30))],
        ["receipt"], [("news1", "suppressed: unsubscribed"), ("tips", "suppressed: unsubscribed"),
                      ("news2", "suppressed: unsubscribed")]),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_topic_opt_outs_stop_the_same_emails_in_simulate_and_in_production(tmp_path, name, database):
    events, sent, skipped = SCENARIOS[name]
    root = tiny_project(tmp_path / "project", journeys={"series": SERIES}, project=PROJECT)
    signup = [_event("signed_up", SIGNUP)]
    assert _simulated(root, signup + events) == (sent, skipped)
    store = _production(tmp_path, root, signup + events, database)
    assert _produced(store) == (sent, skipped)
    store.close()


def test_opt_outs_are_recorded_listed_and_lifted_alike_by_both_stores(database):
    """What the unsubscribe link and the CLI rely on, on SQLite and on PostgreSQL: an event's
    topic opt-out, per contact; a resubscribe lifts it; ``unsubscribed`` by hand means "*";
    a bounce beside them; removing a contact's suppression lifts its opt-outs too."""
    from runner.store.base import ContactRow, EventRow

    store = open_store(database)
    try:
        store.write_contacts([ContactRow("ada", {"email": "Ada@Example.com"}), ContactRow("bob", {})], START)
        store.write_events([EventRow("ada", None, "unsubscribed", SIGNUP, {"topic": "newsletter"}, "u1"),
                            EventRow("bob", None, "unsubscribed", SIGNUP, {}, "u2")], START)
        assert sorted((r["contact_id"], r["topic"]) for r in store.suppressions()) == [("ada", "newsletter"), ("bob", "*")]
        assert [r["topic"] for r in store.suppressions("ada")] == ["newsletter"]
        assert store.load_contact_state("ada").opt_outs == {"newsletter": SIGNUP}
        store.write_events([EventRow("ada", None, "resubscribed", SIGNUP + timedelta(hours=1),
                                     {"topic": "newsletter"}, "r1")], START)
        assert store.suppressions("ada") == [] and store.load_contact_state("ada").opt_outs == {}
        store.add_suppression("ada@example.com", "unsubscribed", "cli", SIGNUP)
        store.add_suppression("ada", "bounced", "cli", SIGNUP + timedelta(hours=2))
        state = store.load_contact_state("ada")
        assert (state.opt_outs, state.suppressed) == ({"*": SIGNUP}, "bounced")
        assert [(r["reason"], r["topic"]) for r in store.suppressions("ada")] == [("unsubscribed", "*"), ("bounced", None)]
        assert store.is_suppressed("ada", END) == "unsubscribed" and store.is_suppressed("bob", END) == "unsubscribed"
        assert store.remove_suppression("bob") and store.suppressions("bob") == []
        assert not store.remove_suppression("bob")
    finally:
        store.close()


def test_each_email_carries_an_unsubscribe_link_for_its_own_topic(tmp_path):
    """A marketing email's link stops its topic; a receipt's link (a transactional topic no
    unsubscribe stops) stops every marketing topic; the one-click header is always there."""
    root = tiny_project(tmp_path / "project", journeys={"series": SERIES}, project=PROJECT)
    store = _production(tmp_path, root, [_event("signed_up", SIGNUP)])
    store.close()
    topics = {}
    for path in sorted((tmp_path / "outbox").glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        url = str(message["List-Unsubscribe"]).split(",")[0].strip("<> ")
        assert urlsplit(url).path == "/unsubscribe"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        token = verify_token(DEV_SECRET, parse_qs(urlsplit(url).query)["token"][0])
        topics[str(message["Subject"])] = (token.contact_id, token.list_id, token.topic)
    assert topics == {"News": ("ada", "series", "newsletter"), "Your receipt": ("ada", "series", "*"),
                      "Tips": ("ada", "series", "marketing"), "More news": ("ada", "series", "newsletter")}


def test_suppress_list_and_history_show_opt_outs_with_reason_and_source(tmp_path):
    root = tiny_project(tmp_path / "project", journeys={"series": SERIES}, project=PROJECT)
    events = [_event("signed_up", SIGNUP), _event("unsubscribed", SIGNUP + timedelta(minutes=30), topic="newsletter")]
    _production(tmp_path, root, events).close()
    db = str(tmp_path / "journey.db")
    listed = journey_cli(["suppress", "list", "--db", db], cwd=root, env={"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    assert "topic newsletter" in listed.stdout and "unsubscribed" in listed.stdout
    assert f"event:unsubscribed-{_iso(SIGNUP + timedelta(minutes=30))}" in listed.stdout
    as_json = json.loads(journey_cli(["suppress", "list", "--format", "json", "--db", db], cwd=root).stdout)
    assert [(r["contact_id"], r["reason"], r["topic"]) for r in as_json] == [("ada", "unsubscribed", "newsletter")]
    history = journey_cli(["history", "ada", "--db", db], cwd=root)
    assert history.returncode == 0, history.stderr
    assert "suppressed: unsubscribed from newsletter" in history.stdout  # the skip
    assert "unsubscribed since 2026-03-02T09:30:00.000000+00:00: topic newsletter (source event:unsubscribed-" in history.stdout
    document = json.loads(journey_cli(["history", "ada", "--format", "json", "--db", db], cwd=root).stdout)
    assert [(r["reason"], r["topic"]) for r in document["opt_outs"]] == [("unsubscribed", "newsletter")]
    assert "suppression" not in document  # an unsubscribe is not a suppression: receipts still go
    removed = journey_cli(["suppress", "remove", "ada", "--db", db], cwd=root)
    assert removed.returncode == 0, removed.stderr  # lifting a contact's suppression lifts its topic opt-outs too
    assert journey_cli(["suppress", "list", "--db", db], cwd=root).stdout.strip() == "no suppressions"


def test_suppress_add_with_a_topic_records_the_opt_out_the_preferences_page_records(tmp_path, database):
    """`journey suppress add ID|ADDRESS --topic T`: an unsubscribe from T only (reason
    unsubscribed, topic T, as the page's events are stored), listed as "topic T"; the engine's
    contact then skips T's emails and still gets the others. A topic not declared, or
    transactional (no unsubscribe stops it), is refused with nothing stored."""
    from runner.store.base import ContactRow

    root = tiny_project(tmp_path / "project", journeys={"series": SERIES}, project=PROJECT)
    with open_store(database) as store:
        store.write_contacts([ContactRow("ada", {"email": "ada@example.com"}), ContactRow("bob", {"email": "Bob@Example.com"})],
                             START)

    def cli(*args: str):
        return journey_cli(["suppress", *args, "--db", database], cwd=root, env={"COLUMNS": "200"})

    for args, code, said in ((["add", "ada", "--topic", "newsleter"], 1, "did you mean 'newsletter'"),
                             (["add", "ada", "--topic", "receipts"], 1, "transactional"),
                             (["add", "ada", "--topic", "newsletter", "--reason", "bounced"], 2, "leave out --reason")):
        refused = cli(*args)
        assert (refused.returncode, said in refused.stderr, "Traceback" in refused.stderr) == (code, True, False), refused
    assert cli("list").stdout.strip() == "no suppressions"
    added = cli("add", "ada", "--topic", "newsletter")
    assert added.returncode == 0 and "suppressed ada (unsubscribed from newsletter)" in added.stdout, added.stderr
    assert cli("add", "bob@example.com", "--topic", "newsletter", "--reason", "unsubscribed").returncode == 0
    listed = cli("list")
    assert listed.stdout.count("topic newsletter") == 2 and "every email" not in listed.stdout, listed.stdout
    rows = json.loads(cli("list", "--format", "json").stdout)
    assert sorted((r["contact_id"] or r["email"], r["reason"], r["topic"], r["source"]) for r in rows) == [
        ("ada", "unsubscribed", "newsletter", "cli"), ("bob@example.com", "unsubscribed", "newsletter", "cli")]
    later = datetime.now(UTC) + timedelta(minutes=1)
    with open_store(database) as store:
        for contact_id in ("ada", "bob"):
            state = store.load_contact_state(contact_id)
            assert state.email_stop("newsletter", True, later) == "suppressed: unsubscribed from newsletter"
            assert state.email_stop("marketing", True, later) is None and state.email_stop("receipts", False, later) is None


def test_an_unsubscribe_stored_before_topics_becomes_the_opt_out_of_every_marketing_topic(tmp_path):
    """The migration moves an old ``unsubscribed`` suppression under a target of its own, so a
    later bounce of the same contact is recorded beside it (and stops receipts too)."""
    from runner.store import migrations as schema
    from runner.store.base import EventRow

    path = tmp_path / "old.db"
    store = open_store(path)
    store.close()
    old = Database(sqlite3.connect(path))
    old.execute("DELETE FROM schema_migrations WHERE name = 'm012_topic_opt_outs'")
    old.execute("ALTER TABLE suppressions DROP COLUMN topic")
    old.execute("INSERT INTO contacts (id, email, created_at, updated_at) VALUES ('ada', 'ada@example.com', 'x', 'x')")
    old.execute("""INSERT INTO suppressions (target, contact_id, email, reason, at, source)
                   VALUES ('contact:ada', 'ada', NULL, 'unsubscribed', '2026-03-02T09:30:00.000000+00:00', 'event:u1')""")
    old.conn.commit()
    old.conn.close()
    assert "m012_topic_opt_outs" in [m.name for m in schema.migrations.pending(Database(sqlite3.connect(path)))]

    store = open_store(path)
    state = store.load_contact_state("ada")
    assert state.suppressed is None and state.opt_outs == {"*": datetime(2026, 3, 2, 9, 30, tzinfo=UTC)}
    store.write_events([EventRow("ada", None, "email_bounced", SIGNUP + timedelta(hours=1), {}, "b1")], START)
    assert [(r["reason"], r["topic"]) for r in store.suppressions()] == [("unsubscribed", "*"), ("bounced", None)]
    state = store.load_contact_state("ada")
    assert state.suppressed == "bounced" and "*" in state.opt_outs
    assert state.email_stop("receipts", False, END) == "suppressed: bounced"
    assert store.is_suppressed("ada", END) == "unsubscribed"  # the earliest stop
    store.close()


# ---------------------------------------------------------------- journey validate


def _validate(root: Path) -> list[dict]:
    result = journey_cli(["validate", "--format", "json"], cwd=root)
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)["problems"]


def test_an_unknown_topic_is_an_error_at_its_line_with_the_nearest_name(tmp_path):
    typo = SERIES.replace("topic: receipts", "topic: reciepts")
    root = tiny_project(tmp_path / "project", journeys={"series": typo}, project=PROJECT)
    (problem,) = _validate(root)
    line = next(number for number, text in enumerate(typo.splitlines(), 1) if "reciepts" in text)
    assert (problem["file"].endswith("journeys/series.yaml"), problem["line"], problem["code"]) == (True, line, "ref.topic")
    assert problem["col"] == typo.splitlines()[line - 1].index("reciepts") + 1
    assert "unknown topic `reciepts`; did you mean `receipts`?" in problem["message"]
    text = journey_cli(["validate"], cwd=root)
    assert text.returncode == 1 and f"series.yaml:{line}:" in text.stdout and "error[ref.topic]" in text.stdout


def test_topics_are_checked_in_project_yaml(tmp_path):
    project = PROJECT + "default_topic: receipts\n"
    root = tiny_project(tmp_path / "project", journeys={"series": SERIES}, project=project)
    assert [p["code"] for p in _validate(root)] == ["project.topic"]
    root = tiny_project(tmp_path / "p2", journeys={"series": SERIES}, project=PROJECT + "default_topic: newsleter\n")
    (problem,) = _validate(root)
    assert problem["code"] == "ref.topic" and "did you mean `newsletter`?" in problem["message"]
    root = tiny_project(tmp_path / "p3", journeys={"series": SERIES},
                        project=PROJECT.replace("kind: transactional", "kind: transactionl"))
    assert [p["code"] for p in _validate(root)] == ["schema.enum"]


def test_a_project_without_topics_keeps_its_journeys_valid_under_the_default_topic(tmp_path):
    root = tiny_project(tmp_path / "project")
    assert _validate(root) == []
    tree = load_working_tree(root)
    assert tree.project.topic(None).name == "marketing" and tree.project.topic(None).marketing
