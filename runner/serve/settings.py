"""The service's configuration, read once at start: project.yaml's ``serve:`` section and the environment.

Handlers never read files or the environment themselves: everything they need is here,
frozen, so a request costs no project reload. Concerns that need settings of their own
add a small nested dataclass (``settings.events``, ``settings.worker``, …).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from runner.core.durations import parse_duration
from runner.core.instants import too_long
from runner.core.model import Project
from runner.core.problems import JourneyError
from runner.delivery.unsubscribe import load_secret
from runner.production.deploy import load_project_file
from runner.serve.bouncesettings import BounceSettings, load_bounce_settings

WRITE_KEYS_ENV = "JOURNEY_WRITE_KEYS"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_EVERY = "60s"


@dataclass(frozen=True)
class EventLimits:
    """Segment's HTTP Tracking API limits (32 KB an event, 500 KB a batch), and the
    decompressed size a gzip body may reach before it is refused (a gzip bomb gets 413)."""

    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    read_seconds: float = 30.0  # a body must arrive within this (a slow client is answered 408)


@dataclass(frozen=True)
class WorkerSettings:
    """``--worker``: the tick loop inside the service (as ``journey run --every``)."""

    every: timedelta = timedelta(seconds=60)
    transport_url: str | None = None  # None: JOURNEY_TRANSPORT, project.yaml, outbox:outbox


@dataclass(frozen=True)
class ServeSettings:
    project_root: Path
    project: Project
    db: str  # a SQLite path or a postgresql:// URL (runner.store.resolve_db)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    write_keys: tuple[bytes, ...] = ()
    unsubscribe_secret: bytes | None = None  # None: not configured (a real transport without the env var)
    events: EventLimits = field(default_factory=EventLimits)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    bounces: BounceSettings = field(default_factory=BounceSettings)  # the provider webhooks (runner.serve.providers)

    def accepts_write_key(self, key: str) -> bool:
        """Is ``key`` one of the write keys? Every key is compared, in constant time."""
        given = key.encode("utf-8", "surrogatepass")
        matched = False
        for known in self.write_keys:
            matched |= hmac.compare_digest(given, known)
        return matched


def load_settings(project_root: Path, db: str | Path | None, environ: Mapping[str, str],
                  *, host: str | None = None, port: int | None = None) -> ServeSettings:
    """Settings from project.yaml (``serve:``: host, port, every) and the environment
    (``JOURNEY_WRITE_KEYS``, the unsubscribe secret, ``JOURNEY_DB``); ``host``/``port``
    (the command line) win over project.yaml."""
    from runner.delivery.dispatch import resolve_transport_url
    from runner.store import resolve_db

    root = Path(project_root)
    project = load_project_file(root)
    section = _serve_section(root / "project.yaml")
    transport_url = resolve_transport_url(None, project)
    try:
        secret: bytes | None = load_secret(project.unsubscribe_secret_env, transport_url=transport_url,
                                           environ=environ)
    except JourneyError:
        if environ.get(project.unsubscribe_secret_env):
            raise  # set but unusable (too short): stop at start, as `journey run` does, not 503 every link
        secret = None
    every_text = str(section.get("every", DEFAULT_EVERY))
    try:
        if too_long(every_text):  # before the timedelta, which overflows
            raise ValueError(f"'{every_text}' is longer than a century (36525d)")
        every = parse_duration(every_text).approx
    except ValueError as error:
        raise JourneyError(f"project.yaml serve.every: {error}") from None
    if every.total_seconds() <= 0:
        raise JourneyError("project.yaml serve.every must be a positive duration (e.g. 60s)")
    return ServeSettings(
        project_root=root,
        project=project,
        db=resolve_db(db or environ.get("JOURNEY_DB"), start=root),
        host=host or _section_value(section, "host", DEFAULT_HOST, str, "text"),
        port=port if port is not None else _section_port(section),
        write_keys=parse_write_keys(environ.get(WRITE_KEYS_ENV, "")),
        unsubscribe_secret=secret,
        worker=WorkerSettings(every=every, transport_url=transport_url),
        bounces=load_bounce_settings(project.raw, environ),
    )


def parse_write_keys(text: str) -> tuple[bytes, ...]:
    """``JOURNEY_WRITE_KEYS``: comma-separated; blanks around a key are dropped."""
    return tuple(key.strip().encode("utf-8") for key in text.split(",") if key.strip())


def _section_value(section: dict[str, Any], key: str, default: Any, kind: type, name: str) -> Any:
    """``serve.<key>`` of the type the schema says; a wrong one stops the service with where to look."""
    value = section.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise JourneyError(f"project.yaml serve.{key} must be {name}, not {value!r} (`journey validate` shows where)")
    return value


def _section_port(section: dict[str, Any]) -> int:
    port = _section_value(section, "port", DEFAULT_PORT, int, "a whole number from 0 to 65535")
    if not 0 <= port <= 65535:
        raise JourneyError(f"project.yaml serve.port must be a whole number from 0 to 65535, not {port} "
                           "(`journey validate` shows where)")
    return int(port)


def _serve_section(path: Path) -> dict[str, Any]:
    """project.yaml's ``serve:`` mapping (validated by the project schema; empty when absent)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise JourneyError(f"{path} cannot be read ({error}); run `journey validate`") from None
    section = data.get("serve") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}
