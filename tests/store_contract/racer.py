"""A racing process for the contract's cross-process tests: ``python racer.py LOCATION NAME WHAT FLAG N``.

Opens the store at LOCATION (for ``open``: a database nobody opened yet, so it migrates),
says it is ready (FLAG.NAME), waits for FLAG, then races for N leases or send claims
(``lease``/``claim``), or leases pages of due contacts until none is left (``due``) from its own end of the list, and prints the ones it won as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.core.state import SendRecord
from runner.store import open_store


def main(location: str, name: str, what: str, flag: str, count: int) -> None:
    if what == "open":  # the race is the opening itself
        Path(f"{flag}.{name}").write_text("ready")
        _wait_for(flag)
        store = open_store(location)
        print(json.dumps(store.pending_migrations()))
        store.close()
        return
    store = open_store(location)
    Path(f"{flag}.{name}").write_text("ready")
    _wait_for(flag)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    order = range(count) if name.endswith("0") else reversed(range(count))  # meet in the middle
    won: list = []
    if what == "due":  # pages of due contacts, leased, by keyset until none is left for this holder
        cursor = None
        while page := store.claim_due(now, name, 7, timedelta(minutes=5), cursor):
            won.extend(contact_id for _, contact_id in page)
            cursor = page[-1]
        store.close()
        print(json.dumps(won))
        return
    for i in order:
        if what == "lease":
            ok = store.acquire_lease(f"lease-{i}", name, timedelta(minutes=5), now)
        else:
            ok = store.claim_send(SendRecord(key=f"key-{i}", contact_id="ada", journey_id="j", version=1,
                                             step_id="s", at=now), name)
        if ok:
            won.append(i)
    store.close()
    print(json.dumps(won))


def _wait_for(flag: str) -> None:
    while not Path(flag).exists():
        time.sleep(0.0005)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
