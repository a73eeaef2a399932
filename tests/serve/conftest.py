"""Fixtures for ``journey serve``: a deployed tiny project, the app in a TestClient, a real server.

``client``: Starlette's TestClient over the app (in-process, lifespan run: the store is open).
``live_server``: the same app served by a real uvicorn on a free 127.0.0.1 port, in a thread,
for clients that speak real HTTP (the Segment and RudderStack SDKs, slow clients).
``serve_process``: a real ``journey serve`` subprocess (SIGKILL, SIGTERM, ``--worker``).
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient
from test_tick_kit import REPO, deployed_tiny_project

from runner.serve.app import build_app
from runner.serve.server import bind
from runner.serve.settings import ServeSettings, load_settings

WRITE_KEY = "wk_test_0123456789abcdef"
OTHER_KEY = "wk_second_key_for_rotation"
DEPLOYED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def basic_auth(key: str = WRITE_KEY) -> dict[str, str]:
    """The Authorization header Segment's clients send: the write key as user name, no password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@dataclass
class ServeProject:
    root: Path
    db: Path
    contacts: list[str]


@pytest.fixture
def serve_project(tmp_path: Path) -> ServeProject:
    """The tiny welcome journey deployed, with two signed-up contacts (c00000, c00001)."""
    root, db, ids = deployed_tiny_project(tmp_path, 2, DEPLOYED_AT)
    return ServeProject(root, db, ids)


@pytest.fixture
def serve_settings(serve_project: ServeProject) -> ServeSettings:
    environ = {"JOURNEY_WRITE_KEYS": f"{WRITE_KEY}, {OTHER_KEY}"}
    return load_settings(serve_project.root, serve_project.db, environ, host="127.0.0.1", port=0)


@pytest.fixture
def client(serve_settings: ServeSettings) -> Iterator[TestClient]:
    with TestClient(build_app(serve_settings), raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class LiveServer:
    url: str
    port: int
    settings: ServeSettings
    server: uvicorn.Server


@contextmanager
def serving(app: Any) -> Iterator[tuple[str, uvicorn.Server]]:
    """A real uvicorn serving ``app`` on a free 127.0.0.1 port, in a thread: (base URL, server)."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False, timeout_keep_alive=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def live_server(serve_settings: ServeSettings) -> Iterator[LiveServer]:
    """The app served by a real uvicorn on a free port (in a thread; stopped and joined afterwards)."""
    with serving(build_app(serve_settings)) as (url, server):
        yield LiveServer(url, int(url.rsplit(":", 1)[1]), serve_settings, server)


@dataclass
class ServeProcess:
    process: subprocess.Popen
    url: str

    def stop(self, timeout: float = 60) -> tuple[int, str, str]:
        """SIGTERM, then wait: (exit code, rest of stdout, stderr)."""
        self.process.terminate()
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err


@pytest.fixture
def serve_process(serve_project: ServeProject) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``journey serve --port 0`` (extra arguments allowed) in the project; killed afterwards."""
    started: list[subprocess.Popen] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServeProcess:
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "JOURNEY_WRITE_KEYS": WRITE_KEY, **(env or {})}
        process = subprocess.Popen(
            [sys.executable, "-m", "runner", "serve", "--port", "0", "--db", str(serve_project.db), *args],
            cwd=serve_project.root, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        started.append(process)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else ""
        assert "listening on " in line, f"journey serve did not start: {line!r} {process.stderr.read() if not ready else ''}"
        if line.startswith("{"):  # --log-format json, the default when stdout is a pipe
            line = json.loads(line)["message"]
        return ServeProcess(process, line.split("listening on ", 1)[1].split()[0])

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)
