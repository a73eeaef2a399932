"""One engine, two clocks: a simulation and a sequence of production ticks send the same ledger.

The sample project's test personas (examples/contacts.yaml) are simulated
over a month; the same contacts are imported into a real SQLite database and
their events arrive as Segment calls hour by hour, as a collector would
deliver them, while ``journey run --now`` ticks every hour (in-process, and
for a shorter period in real subprocesses). The send ledgers (key, contact,
journey, version, step, scheduled instant) must be identical, and so must
every other decision: production's decision journal (``journey history``)
holds exactly the simulation's decisions, reasons included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_tick_kit import contact_lines, copy_sample, journey_cli, ledger_rows, segment_events, write_lines

from runner.production import ingest
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.simulation.simulate import ledger, simulate
from runner.simulation.testcontacts import load_test_contacts
from runner.store import open_store

START = datetime(2026, 3, 2, tzinfo=UTC)


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


def test_hourly_ticks_send_exactly_what_the_simulation_sends(tmp_path):
    root = copy_sample(tmp_path / "project")
    end = START + timedelta(days=30)
    tree, sim, states = _simulated(root, end)
    expected = ledger(sim.decisions)
    assert len(expected) > 40  # the personas exercise every journey

    store = open_store(tmp_path / "journey.db")
    ingest.import_contacts(store, write_lines(tmp_path / "contacts.jsonl", contact_lines(states)), now=START)
    deploy(store, tree.journeys, START)
    runtime = build_runtime(store, tree.project, "outbox:" + str(tmp_path / "outbox"))
    events = segment_events(states)
    imported = 0
    now = START
    while now <= end:
        imported = _import_until(store, tmp_path, events, imported, now, "events.jsonl")
        run_tick(store, runtime, now)
        now += timedelta(hours=1)
    produced = ledger_rows(store)
    states_sent = dict(store.conn.execute("SELECT state, count(*) FROM sends GROUP BY state").fetchall())
    journal = sorted(_journal_key(row) for contact in states for row in store.contact_history(contact))
    store.close()

    assert produced == expected
    assert journal == sorted(_journal_key(_as_row(decision)) for decision in sim.decisions)
    assert {"enter", "send", "wait", "exit", "branch", "skip"} <= {row[7] for row in journal}
    assert states_sent == {"sent": len(expected)}  # none failed, none skipped
    emails = sum(1 for d in sim.decisions if d.action == "send")
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == emails


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
