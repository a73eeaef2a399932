"""SQLite specifics of processes racing on one file: several processes opening a new file at
once record each migration exactly once (in ``schema_migrations``). The backend-neutral
races (leases, send claims, migrating once) are in tests/store_contract/test_processes.py."""

from __future__ import annotations

import subprocess
import sys

from runner.store import open_store


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
        assert store.pending_migrations() == []  # every migration recorded (the list grows: no names here)
    assert len(applied) == len(set(applied)) >= 13  # each exactly once
