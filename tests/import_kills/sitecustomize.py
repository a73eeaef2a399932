"""A SIGKILL in the middle of ``journey events import``, for tests/test_import_kill.py.

Python imports ``sitecustomize`` at the start of every process whose path holds this
folder. With ``JOURNEY_KILL_IMPORT=BATCH:N`` the import writes batches of BATCH rows and
kills itself at its Nth write: inside the write's transaction, after the batch's rows,
contacts and wake-ups went to the database and before the commit. Batches are counts,
not sleeps, so a slow or fast machine dies at the same point.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("JOURNEY_KILL_IMPORT")

if _SPEC:
    from runner.production import ingest

    _batch, _nth = (int(part) for part in _SPEC.split(":"))
    ingest.BATCH_SIZE = _batch
    _write_rows = ingest._write_rows
    _writes = 0

    def _killing_write_rows(store, *args, **kwargs):  # type: ignore[no-untyped-def]
        global _writes
        _writes += 1
        if _writes < _nth:
            return _write_rows(store, *args, **kwargs)
        with store.transaction():
            _write_rows(store, *args, **kwargs)  # a savepoint inside the transaction the kill leaves open
            os.kill(os.getpid(), signal.SIGKILL)

    ingest._write_rows = _killing_write_rows
