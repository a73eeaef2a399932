"""Shared fixtures: a real SMTP server for any test that sends email.

Hypothesis runs without its per-example deadline: a deadline is a timed
assert, and on a loaded CI machine it fails tests that are correct.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("journey", deadline=None)
settings.load_profile("journey")

sys.path.insert(0, str(Path(__file__).parent))  # lets tests import smtp_server

from smtp_server import SmtpServer, TlsFiles  # noqa: E402


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain aiosmtpd server on 127.0.0.1; see tests/smtp_server.py for options."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    """A throwaway CA and server certificate for STARTTLS / SMTPS tests."""
    return TlsFiles.create(tmp_path)
