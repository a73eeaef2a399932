"""Shared fixtures: a real SMTP server for any test that sends email.

Hypothesis runs without its per-example deadline: a deadline is a timed
assert, and on a loaded CI machine it fails tests that are correct.

Tests leave nothing behind: the run gets a private temporary folder (``TMPDIR``,
inherited by the CLI subprocesses too), and whatever is still in it at the end
is an error naming it; ``tmp_path`` and ``tmp_path_factory`` stay where pytest
keeps them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("journey", deadline=None)
settings.load_profile("journey")

sys.path.insert(0, str(Path(__file__).parent))  # lets tests import smtp_server

from chromium import browser  # noqa: E402,F401 - headless Chromium for the page tests
from pg import pg_url, pytest_terminal_summary  # noqa: E402,F401 - PostgreSQL's fixture and summary line
from smtp_server import SmtpServer, TlsFiles  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
_PRIVATE_TMP = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Before collection (module-level code runs then): point every temporary file of the run at one folder."""
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())  # pytest's own tmp_path root
    private = Path(tempfile.mkdtemp(prefix="journey-tests-"))
    config.stash[_PRIVATE_TMP] = private
    os.environ["TMPDIR"] = str(private)
    tempfile.tempdir = str(private)


def pytest_unconfigure(config: pytest.Config) -> None:
    private = config.stash.get(_PRIVATE_TMP, None)
    if private is not None:
        shutil.rmtree(private, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(pytestconfig: pytest.Config) -> Iterator[None]:
    """After the last test: the private temporary folder must be empty (tests use tmp_path)."""
    yield
    private = pytestconfig.stash[_PRIVATE_TMP]
    leftovers = sorted(path.name for path in private.iterdir())
    assert not leftovers, f"tests left these in the temporary folder, use tmp_path instead: {leftovers}"


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's wheel, built once per run from the checkout (as ``pip wheel .`` would for a user)."""
    folder = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(folder)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    return next(folder.glob("journey_runner-*.whl"))


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain aiosmtpd server on 127.0.0.1; see tests/smtp_server.py for options."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    """A throwaway CA and server certificate for STARTTLS / SMTPS tests."""
    return TlsFiles.create(tmp_path)
