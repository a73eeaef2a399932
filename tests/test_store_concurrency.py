"""Two real processes racing on one SQLite file: leases and send claims have
exactly one winner each; an import and a tick interleave without loss."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

from runner.core.state import Contact, ContactState, SendRecord
from runner.store import EventRow, open_store

NAMES = 300

RACER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from runner.core.state import SendRecord
    from runner.store import open_store

    db, holder, what, start_flag = sys.argv[1:5]
    store = open_store(db)
    Path(start_flag + "." + holder).write_text("ready")
    while not Path(start_flag).exists():   # start both racers at once
        time.sleep(0.0002)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    won = []
    order = range(int(sys.argv[5]))
    for i in (order if holder == "proc-a" else reversed(order)):  # meet in the middle
        if what == "lease":
            ok = store.acquire_lease(f"lease-{i}", holder, timedelta(minutes=5), now)
        else:
            record = SendRecord(key=f"key-{i}", contact_id="ada", journey_id="j", version=1,
                                step_id="s", at=now)
            ok = store.claim_send(record, holder)
        if ok:
            won.append(i)
    print(json.dumps(won))
    """
)


def race(tmp_path, what: str) -> tuple[list[int], list[int]]:
    db = tmp_path / "journey.db"
    open_store(db).close()
    flag = tmp_path / "go"
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), holder, what, str(flag), str(NAMES)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for holder in ("proc-a", "proc-b")
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.{h}").exists() for h in ("proc-a", "proc-b")):
        assert time.monotonic() < deadline, "racers did not start"
        time.sleep(0.01)
    flag.write_text("go")
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        results.append(json.loads(out))
    return results[0], results[1]


def test_two_processes_never_both_acquire_a_lease(tmp_path):
    a, b = race(tmp_path, "lease")
    assert not set(a) & set(b)
    assert sorted(a + b) == list(range(NAMES))
    with open_store(tmp_path / "journey.db") as store:
        holders = dict(store.conn.execute("SELECT name, holder FROM leases"))
    assert {holders[f"lease-{i}"] for i in a} <= {"proc-a"}
    assert {holders[f"lease-{i}"] for i in b} <= {"proc-b"}


def test_two_processes_never_both_claim_a_send(tmp_path):
    a, b = race(tmp_path, "claim")
    assert not set(a) & set(b)
    assert sorted(a + b) == list(range(NAMES))
    with open_store(tmp_path / "journey.db") as store:
        assert store.conn.execute("SELECT count(*) FROM sends").fetchone()[0] == NAMES


def test_claim_send_across_two_connections(tmp_path):
    db = tmp_path / "journey.db"
    first, second = open_store(db), open_store(db)
    record = SendRecord(key="k", contact_id="ada", journey_id="j", version=1, step_id="s",
                        at=datetime(2026, 3, 2, tzinfo=UTC))
    assert first.claim_send(record, "run-1") is True
    assert second.claim_send(record, "run-2") is False
    assert first.claim_send(record, "run-1") is False
    first.close()
    second.close()


def test_two_processes_opening_a_new_database_migrate_once(tmp_path):
    db = tmp_path / "fresh.db"
    code = f"from runner.store import open_store; open_store({str(db)!r}).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with open_store(db) as store:
        applied = [name for (name,) in store.conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert applied == ["m001_initial", "m002_decisions", "m003_event_suppressions", "m004_stats_counts",
        "m005_imported_values", "m006_send_retries", "m007_due_keyset", "m008_split_counts",
        "m009_deployed_templates", "m010_run_counts",
        "m011_contact_leases"]  # each exactly once


def test_event_imported_while_the_engine_works_is_not_lost(tmp_path):
    """Tick loads, import writes from another connection, tick saves a late wake-up."""
    db = tmp_path / "journey.db"
    tick, importer = open_store(db), open_store(db)
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    tick.save_contact_state(ContactState(contact=Contact(id="ada")), wake_at=t0)
    state = tick.load_contact_state("ada")
    importer.write_events([EventRow("ada", None, "clicked", t0 + timedelta(minutes=1), {}, "c1")],
                          t0)
    tick.save_contact_state(state, wake_at=t0 + timedelta(days=3))
    assert tick.due_contacts(t0 + timedelta(minutes=1), 10) == ["ada"]
    assert [e.name for e in tick.load_contact_state("ada").events] == ["clicked"]
    tick.close()
    importer.close()
