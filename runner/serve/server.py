"""Run the service: uvicorn on a bound socket and, with ``--worker``, the tick loop in a thread.

SIGTERM (or SIGINT) is uvicorn's to catch: it stops accepting, lets requests in flight
finish and runs the shutdown that closes the store. Then the tick loop is stopped the
way ``journey run --every`` stops on a signal: its current batch finishes, the lease is
released, and the process exits 0. A tick loop that cannot run (nothing deployed)
stops the service: ``--worker`` promises both.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn

from runner.core.problems import JourneyError
from runner.production.jsonlog import log_event, tick_fields
from runner.production.tick import TickReport
from runner.production.worker import StopFlag
from runner.serve.app import build_app
from runner.serve.metrics import LOGGER, tick_finished
from runner.serve.settings import ServeSettings

GRACEFUL_SECONDS = 30  # a request still running after this is cut off at shutdown


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: a free one, read back from the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise JourneyError(f"cannot listen on {host}:{port} ({error.strerror}); choose another --port") from None
    sock.listen(2048)  # connections made before uvicorn has started wait in the backlog
    sock.set_inheritable(True)
    return sock


def serve(settings: ServeSettings, *, worker: bool = False, log: Callable[[str], None] = print) -> None:
    """Serve until SIGTERM/SIGINT; with ``worker``, tick every ``settings.worker.every`` meanwhile."""
    from runner.store import open_store

    open_store(settings.db).close()  # a database that cannot open (or migrate) is an error now, not at start-up
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(build_app(settings), lifespan="on", log_level=os.environ.get("JOURNEY_LOG_LEVEL", "warning"),
                            timeout_graceful_shutdown=GRACEFUL_SECONDS, access_log=False, server_header=False,
                            log_config=None)  # uvicorn's own lines go through runner.serve.logs (JSON, redacted)
    server = uvicorn.Server(config)
    ticks = TickThread(settings, log, on_fatal=lambda: setattr(server, "should_exit", True)) if worker else None
    flag = ticks.flag if ticks is not None else StopFlag()
    # uvicorn takes SIGTERM/SIGINT while it serves and raises the signal again once it has shut
    # down gracefully; these handlers (also for a signal before uvicorn has started) stop both
    with _stop_on_signals(flag, server):
        if ticks is not None:
            ticks.start()
        try:
            log(f"journey serve: listening on http://{host}:{port}" + (" with the tick worker" if worker else ""))
            server.run(sockets=[sock])
        finally:
            sock.close()
            if ticks is not None:
                ticks.stop()
    if not server.started:
        raise JourneyError("journey serve could not start (see the messages above)")
    if ticks is not None and ticks.error is not None:
        raise ticks.error
    log("journey serve: stopped")


class TickThread:
    """``journey run --every`` in a thread, with its own store connection."""

    def __init__(self, settings: ServeSettings, log: Callable[[str], None], on_fatal: Callable[[], None]):
        self.settings = settings
        self.log = log
        self.on_fatal = on_fatal  # a loop that cannot run stops the whole service
        self.flag = StopFlag()
        self.error: JourneyError | None = None
        self._thread = threading.Thread(target=self._run, name="journey-ticks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to stop after its current batch, and wait for it."""
        self.flag.set()
        self._thread.join()

    def _run(self) -> None:
        from runner.delivery.dispatch import durable_by_default
        from runner.production.tick import build_runtime
        from runner.production.worker import run_loop
        from runner.store import open_store

        settings = self.settings
        url = settings.worker.transport_url or "outbox:outbox"

        def ticked(report: TickReport) -> None:
            """The tick's duration into /metrics, its counts into one log line."""
            tick_finished(report)
            log_event(LOGGER, "tick", **tick_fields(report))

        try:
            store = open_store(settings.db)
        except JourneyError as error:
            self.error = error
            self.on_fatal()
            return
        try:
            runtime = build_runtime(store, settings.project, url)
            try:
                run_loop(store, runtime, settings.worker.every, stop=self.flag,
                         durable_claims=durable_by_default(url, os.environ.get("JOURNEY_FSYNC")),
                         on_tick=ticked, on_error=lambda message: self.log(f"error: {message}"))
            finally:
                if runtime.delivery is not None:
                    runtime.delivery.close()
        except JourneyError as error:
            self.error = error
            self.on_fatal()
        finally:
            store.close()


@contextmanager
def _stop_on_signals(flag: StopFlag, server: uvicorn.Server) -> Iterator[None]:
    """SIGTERM/SIGINT stop the tick loop after its batch and the server (restored afterwards)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        flag.set(signum)
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
