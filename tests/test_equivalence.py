"""One engine, two clocks: a simulation and a sequence of production ticks send the same ledger.

The sample project's test personas (examples/contacts.yaml) are simulated
over a month; the same contacts are imported into a real SQLite database and
their events arrive as Segment calls hour by hour, as a collector would
deliver them, while ``journey run --now`` ticks every hour (in-process, and
for a shorter period in real subprocesses). The send ledgers (key, contact,
journey, version, step, scheduled instant) must be identical, and so must
every other decision: production's decision journal (``journey history``)
holds exactly the simulation's decisions, reasons included (a suppress step's
sunset and project-wide exits among them), and every message in the outbox has
the subject and bodies the simulated decision renders to (the same context: the
abandoned cart's event included). The hourly
month runs on every transport: the outbox, SMTP with one and with four
connections (a real aiosmtpd relay; the CRM webhook then goes to a real
local HTTP receiver), console and memory.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import unquote

import pgkit
import pytest
from smtp_server import SmtpServer
from test_tick_kit import contact_lines, copy_sample, journey_cli, ledger_rows, segment_events, write_lines
from test_webhooks import SECRET as CRM_SECRET
from test_webhooks import Receiver

from runner.delivery.message import journey_key
from runner.production import ingest
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.simulation.simulate import ledger, simulate
from runner.simulation.testcontacts import load_test_contacts
from runner.store import open_store

START = datetime(2026, 3, 2, tzinfo=UTC)
CRM_URL = "https://crm.kitebase.test/hooks/journey-lead"


def _simulated(root: Path, end: datetime):
    tree = load_working_tree(root)
    contacts = load_test_contacts(root / "examples" / "contacts.yaml")
    sim = simulate(tree.project, tree.journeys, contacts, START, end)
    states = {c.id: c.state(START, tree.project.default_timezone) for c in contacts}
    return tree, sim, states


def _import_until(store, root: Path, events, imported: int, until: datetime, name: str) -> int:
    """Import the Segment calls with a timestamp up to ``until`` (as they would have arrived)."""
    batch = []
    while imported < len(events) and events[imported][0] <= until:
        batch.append(events[imported][1])
        imported += 1
    if batch:
        ingest.import_events(store, write_lines(root / name, batch), now=until)
    return imported


def _journal_key(row: dict) -> tuple:
    return (row["at"].astimezone(UTC), row["contact_id"], row["journey_id"], row["version"],
            str(row["stage"]), str(row["step"]), str(row["key"]), row["action"], row["reason"])


def _as_row(decision) -> dict:
    return {"at": decision.at, "contact_id": decision.contact, "journey_id": decision.journey,
            "version": decision.version, "stage": decision.stage, "step": decision.step, "key": decision.key,
            "action": decision.action, "reason": decision.reason}


TRANSPORTS = ["outbox", "smtp", "smtp-4-connections", "console", "memory"]


def _transport_url(name: str, tmp_path: Path, server: SmtpServer) -> str:
    return {"outbox": f"outbox:{tmp_path / 'outbox'}", "smtp": server.url(retries=0),
            "smtp-4-connections": server.url(retries=0, connections=4)}.get(name, name)


@contextmanager
def _crm(root: Path) -> Iterator[Receiver]:
    """A real HTTP receiver for the sample's CRM webhook (POSTed over the SMTP transports)."""
    receiver = Receiver()
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    path = root / "journeys" / "sales_handoff.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(CRM_URL, receiver.url), encoding="utf-8")
    with (root / "project.yaml").open("a", encoding="utf-8") as project:  # the receiver is on loopback
        project.write('\nwebhooks: {allow_networks: ["127.0.0.1/32"]}\n')
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join()


def _delivered_keys(name: str, tmp_path: Path, server: SmtpServer, runtime, printed: str) -> list[str]:
    """The idempotency key of every message the transport delivered, as it saw them."""
    if name == "outbox":
        return [journey_key(message_from_bytes(path.read_bytes(), policy=policy.default))
                for path in (tmp_path / "outbox").glob("*.eml")]
    if name.startswith("smtp"):
        return [journey_key(item.message) for item in server.messages]
    if name == "memory":
        return [message.key for message in runtime.delivery.transport.messages]
    return [unquote(key) for key in re.findall(r"^email to=.* key=(\S+) id=", printed, flags=re.MULTILINE)]


@pytest.fixture
def postgresql() -> Iterator[str]:
    yield from pgkit.fresh_schema_url()


def _ledger(store, location: str) -> list[tuple]:
    """The ledger's own rows (key, contact, journey, version, step, scheduled instant), read from
    the database itself: the sends table of the SQLite file or of the PostgreSQL schema."""
    if not pgkit.is_url(location):
        return ledger_rows(store)
    rows = pgkit.sql(location, "SELECT key, contact_id, journey_id, version, step_id, scheduled_at "
                               "FROM sends ORDER BY key")
    return [(k, c, j, v, s, at.astimezone(UTC).isoformat()) for k, c, j, v, s, at in rows]


BACKENDS = [*((name, "sqlite") for name in TRANSPORTS), ("outbox", "postgresql"), ("smtp", "postgresql")]


@pytest.mark.parametrize(("transport", "backend"), BACKENDS, ids=[f"{t}-{b}" for t, b in BACKENDS])
def test_hourly_ticks_send_exactly_what_the_simulation_sends(tmp_path, monkeypatch, capsys, request,
                                                             transport, backend):
    """On every transport: the per-send path (one SMTP connection, console, memory), the
    batched ones (the outbox, a pool of four SMTP connections) and their ledgers agree; on
    PostgreSQL as on SQLite (the batched outbox and the per-send SMTP path)."""
    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", "equivalence-secret-0123456789")
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", CRM_SECRET.decode())
    root = copy_sample(tmp_path / "project")
    with _crm(root) as crm, SmtpServer() as server:
        end = START + timedelta(days=30)
        tree, sim, states = _simulated(root, end)
        expected = ledger(sim.decisions)
        assert len(expected) > 40  # the personas exercise every journey
        location = str(tmp_path / "journey.db") if backend == "sqlite" else request.getfixturevalue("postgresql")
        store = open_store(location)
        ingest.import_contacts(store, write_lines(tmp_path / "contacts.jsonl", contact_lines(states)), now=START)
        deploy(store, tree.journeys, START)
        runtime = build_runtime(store, tree.project, _transport_url(transport, tmp_path, server))
        events = segment_events(states)
        imported = 0
        now = START
        while now <= end:
            imported = _import_until(store, tmp_path, events, imported, now, "events.jsonl")
            run_tick(store, runtime, now)
            now += timedelta(hours=1)
        runtime.delivery.close()
        delivered = _delivered_keys(transport, tmp_path, server, runtime, capsys.readouterr().out)
    produced = _ledger(store, location)
    states_sent = store.status_summary(end)["sends"]
    journal = sorted(_journal_key(row) for contact in states for row in store.contact_history(contact))
    store.close()

    assert produced == expected
    assert journal == sorted(_journal_key(_as_row(decision)) for decision in sim.decisions)
    assert {"enter", "send", "wait", "exit", "branch", "skip"} <= {row[7] for row in journal}
    assert states_sent == {"sent": len(expected)}  # none failed, none skipped
    emails = sorted(d.key for d in sim.decisions if d.action == "send")
    assert sorted(delivered) == emails  # each email reached the transport exactly once
    if transport == "outbox":
        _same_rendered_messages(tmp_path / "outbox", sim, tree, runtime)
    if transport.startswith("smtp"):  # webhooks are POSTed, signed, each once
        hooks = sorted(d.key for d in sim.decisions if d.action == "webhook")
        assert hooks and sorted(unquote(r["headers"]["Idempotency-Key"]) for r in crm.requests) == hooks
        assert all(r["signature_ok"] for r in crm.requests)


def _parts(message) -> tuple[str, str, str]:
    return (str(message["Subject"]), message.get_body(("plain",)).get_content(),
            message.get_body(("html",)).get_content())


def _same_rendered_messages(outbox: Path, sim, tree, runtime) -> None:
    """Every email production delivered has the subject and bodies the simulated decision renders
    to: the same render context (attributes, scores, the event that started or woke the step)."""
    journeys = {(j.id, j.version): j for j in tree.journeys}
    simulated = {d.key: d for d in sim.decisions if d.action == "send"}
    delivered = {journey_key(m): m for m in (message_from_bytes(path.read_bytes(), policy=policy.default)
                                             for path in outbox.glob("*.eml"))}
    assert delivered.keys() == simulated.keys()
    for key, message in delivered.items():
        decision = simulated[key]
        built = runtime.delivery.build(decision, journeys[(decision.journey, decision.version)]).message
        assert _parts(message) == _parts(message_from_bytes(bytes(built), policy=policy.default)), key
    # the abandoned cart's emails show the cart of the event that started the journey
    reminder = _parts(delivered["nora:abandoned_cart:1/1/cart_reminder"])
    assert reminder[0] == "You left Business in your cart (EUR 1440.00)"
    assert "Kitebase Business (annual seat) x 12: EUR 96.00" in reminder[1] and "Total: EUR 1440.00" in reminder[1]
    assert "EUR 1440.00" in _parts(delivered["nora:abandoned_cart:1/1/cart_nudge"])[1]  # after the wait_for's timeout


def test_journey_run_subprocesses_every_eight_hours_match_the_simulation(tmp_path):
    root = copy_sample(tmp_path / "project")
    end = START + timedelta(days=2)
    tree, sim, states = _simulated(root, end)
    expected = ledger(sim.decisions)
    assert expected

    db = tmp_path / "journey.db"
    write_lines(tmp_path / "contacts.jsonl", contact_lines(states))
    store = open_store(db)
    ingest.import_contacts(store, tmp_path / "contacts.jsonl", now=START)
    store.close()
    deployed = journey_cli(["deploy", "--db", str(db)], cwd=root)
    assert deployed.returncode == 0, deployed.stderr
    events = segment_events(states)
    imported = 0
    now = START
    while now <= end:
        store = open_store(db)
        imported = _import_until(store, tmp_path, events, imported, now, "events.jsonl")
        store.close()
        result = journey_cli(["run", "--now", now.isoformat(), "--db", str(db), "-q",
                              "--transport", f"outbox:{tmp_path / 'outbox'}"], cwd=root)
        assert result.returncode == 0, result.stderr
        now += timedelta(hours=8)
    store = open_store(db)
    assert ledger_rows(store) == expected
    store.close()


def test_contacts_imported_upfront_with_their_events_give_the_same_ledger(tmp_path):
    """The other import path: every contact with all its future events in one JSONL file."""
    import json

    root = copy_sample(tmp_path / "project")
    end = START + timedelta(days=30)
    tree, sim, states = _simulated(root, end)
    lines = [
        json.dumps({
            "id": s.contact.id, "timezone": s.contact.timezone, "attributes": s.contact.attributes,
            "anonymous_ids": s.contact.anonymous_ids,
            "events": [{"event": e.name, "at": e.at.isoformat(), "properties": e.properties,
                        **({"anonymous_id": e.anonymous_id} if e.anonymous_id else {})} for e in s.events],
        })
        for s in states.values()
    ]
    store = open_store(tmp_path / "journey.db")
    result = ingest.import_contacts(store, write_lines(tmp_path / "contacts.jsonl", lines), now=START)
    assert result.ok
    deploy(store, tree.journeys, START)
    runtime = build_runtime(store, tree.project, "outbox:" + str(tmp_path / "outbox"))
    now = START
    while now <= end:
        run_tick(store, runtime, now)
        now += timedelta(hours=1)
    assert ledger_rows(store) == ledger(sim.decisions)
    store.close()
