"""``python tests/crashing_journey.py ARGS``: the real ``journey`` CLI, SIGKILLed at a fixed point of the outbox.

A deterministic crash point for tests/test_crash.py, instead of killing after
a wall-clock delay (which a fast machine outruns and a slow one never reaches).
``JOURNEY_CRASH_AT=N:MODE`` kills the process when the outbox is handed the
Nth message of this run:

- ``claimed``: before writing that message's batch (its claims are committed, no file is written);
- ``partial``: after writing the messages of the batch that come before it;
- ``written``: after writing the whole batch (every file in place, none confirmed in the ledger).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

from runner.cli import main
from runner.delivery import transports

MODES = ("claimed", "partial", "written")


def crash_at(number: int, mode: str) -> None:
    """Wrap the outbox's ``send_all`` (``send`` goes through it too) to die at message ``number``."""
    if mode not in MODES:
        raise SystemExit(f"JOURNEY_CRASH_AT: mode must be one of {MODES}, not {mode!r}")
    write_batch = transports.OutboxTransport.send_all
    handed = 0

    def send_all(self: transports.OutboxTransport, messages: Iterable) -> list:
        nonlocal handed
        batch = list(messages)
        if handed + len(batch) < number:
            handed += len(batch)
            return write_batch(self, batch)
        before = number - handed - 1  # messages of this batch that come before the Nth
        if mode == "partial":
            write_batch(self, batch[:before])
        elif mode == "written":
            write_batch(self, batch)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: the process was killed")

    transports.OutboxTransport.send_all = send_all  # type: ignore[method-assign]


if __name__ == "__main__":
    number, mode = os.environ["JOURNEY_CRASH_AT"].split(":")
    crash_at(int(number), mode)
    main(prog_name="journey")
