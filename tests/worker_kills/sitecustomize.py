"""Deterministic SIGKILLs of ``journey run --workers N`` workers, for tests/test_workers.py.

Python imports ``sitecustomize`` at the start of every process whose path holds
this folder, the spawned workers included (a patch made in the parent would not
reach them). With ``JOURNEY_KILL_WORKERS=WORKER:N:MODE,...`` a worker process
(``journey-worker-WORKER``) kills itself with SIGKILL at its Nth SMTP message:

- ``before``: the message is handed over (its claim marked) but never sent;
- ``delivered``: the relay accepted it, the worker dies before reading the answer
  is recorded (the send is in doubt, delivered).

Moments are message counts, not sleeps, so a slow or fast machine kills at the
same point. Each worker dies once: a file ``killed-WORKER`` in ``JOURNEY_KILL_MARKS``
(a folder) records it, so the worker that replaces it lives.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("JOURNEY_KILL_WORKERS")

if _SPEC:
    import multiprocessing

    from runner.delivery import transports

    _PLAN = {int(worker): (int(number), mode) for worker, number, mode in
             (item.split(":") for item in _SPEC.split(",") if item)}
    _send = transports.SmtpTransport.send
    _count = 0

    def _worker() -> int | None:
        name = multiprocessing.current_process().name
        prefix = "journey-worker-"
        return int(name[len(prefix):]) if name.startswith(prefix) else None

    def _killing_send(self, message):  # type: ignore[no-untyped-def]
        global _count
        _count += 1
        number, mode = _PLAN.get(_worker() or 0, (0, ""))
        mark = os.path.join(os.environ["JOURNEY_KILL_MARKS"], f"killed-{_worker()}")
        if _count == number and not os.path.exists(mark):
            open(mark, "w").close()
            if mode == "delivered":
                _send(self, message)
            os.kill(os.getpid(), signal.SIGKILL)
        return _send(self, message)

    transports.SmtpTransport.send = _killing_send  # type: ignore[method-assign]
