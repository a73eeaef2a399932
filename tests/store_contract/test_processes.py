"""Real processes racing on one database: a lease and a send claim have exactly one winner
each, and processes opening a database nobody has opened migrate it once, all at once
(base.py: ``acquire_lease`` is atomic across processes; migrations run under a lock)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.store import open_store
from runner.store.base import ContactRow

RACER = Path(__file__).with_name("racer.py")
REPO = Path(__file__).resolve().parents[2]
NAMES = 200


def race(tmp_path: Path, location: str, what: str, racers: int = 2, count: int = NAMES) -> list:
    flag = tmp_path / "go"
    processes = [
        subprocess.Popen([sys.executable, str(RACER), location, f"proc-{n}", what, str(flag), str(count)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        for n in range(racers)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(Path(f"{flag}.proc-{n}").exists() for n in range(racers)):
            assert time.monotonic() < deadline, "racers did not start"
            assert all(p.poll() is None for p in processes), [p.communicate() for p in processes if p.poll() is not None]
            time.sleep(0.01)
        flag.write_text("go")
        results = []
        for process in processes:
            out, err = process.communicate(timeout=180)
            assert process.returncode == 0, err
            results.append(json.loads(out))
    finally:  # a failed or timed-out race leaves no racer behind (they would hold the database)
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def test_two_processes_never_both_acquire_a_lease(tmp_path, location, store):
    a, b = race(tmp_path, location, "lease")
    assert not set(a) & set(b)
    assert sorted(a + b) == list(range(NAMES))
    assert {store.lease_holder(f"lease-{i}") for i in a} <= {"proc-0"}
    assert {store.lease_holder(f"lease-{i}") for i in b} <= {"proc-1"}


def test_two_processes_never_both_claim_a_send(tmp_path, location, store):
    a, b = race(tmp_path, location, "claim")
    assert not set(a) & set(b)
    assert sorted(a + b) == list(range(NAMES))
    assert store.status_summary(datetime.now(UTC))["sends"] == {"claimed": NAMES}


def test_two_processes_leasing_due_contacts_never_share_one(tmp_path, location, store):
    """Workers sharing the due work: each contact is leased to one worker at a time (claim_due)."""
    store.write_contacts([ContactRow(f"c{n:03d}", {}, changed_at=datetime(2026, 3, 1, tzinfo=UTC))
                          for n in range(NAMES)], datetime(2026, 3, 1, tzinfo=UTC))
    a, b = race(tmp_path, location, "due")
    assert not set(a) & set(b)
    assert sorted(a + b) == [f"c{n:03d}" for n in range(NAMES)]
    now, ttl = datetime(2026, 3, 2, tzinfo=UTC), timedelta(minutes=5)
    assert store.claim_due(now, "third", NAMES, ttl) == []  # all leased, to the racers
    store.release_contacts("proc-0")  # its process is gone: its contacts come back, the other's do not
    assert sorted(contact_id for _, contact_id in store.claim_due(now, "third", NAMES, ttl)) == sorted(a)


def test_processes_opening_a_new_database_at_once_migrate_it_once(tmp_path, fresh_location):
    """Without the lock, a second process would apply a migration again and fail on what the
    first created (a table that exists, a duplicate record of the migration)."""
    pending = race(tmp_path, fresh_location, "open", racers=4, count=0)
    assert pending == [[], [], [], []]
    with closing(open_store(fresh_location)) as store:
        assert store.pending_migrations() == []
        assert store.record_deployment("j", 1, "h", "content", datetime.now(UTC))
