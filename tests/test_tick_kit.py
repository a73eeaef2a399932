"""Helpers for the production tests (deploy, tick, run CLI, crash, equivalence, demo).

No tests here: a copy of the sample project in a temp folder, Segment-style
event lines built from test contacts, and a way to run the real CLI in a
subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.core.state import ContactState

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PARTS = ("project.yaml", "journeys", "templates", "examples")


def copy_sample(target: Path, parts: Iterable[str] = SAMPLE_PARTS) -> Path:
    """The sample project (Kitebase) copied into ``target``; returns the project root."""
    target.mkdir(parents=True, exist_ok=True)
    for part in parts:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=shutil.ignore_patterns("outbox", "*.db*"))
        else:
            shutil.copy2(source, target / part)
    return target


def journey_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 120,
                **kwargs) -> subprocess.CompletedProcess:
    """Run ``journey ARGS`` in a real subprocess (``python -m runner``)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout, **kwargs)


def contact_lines(states: dict[str, ContactState]) -> list[str]:
    """Contacts as import JSONL (attributes, time zone, anonymous ids; no events)."""
    return [
        json.dumps({"id": s.contact.id, "timezone": s.contact.timezone, "attributes": s.contact.attributes,
                    "anonymous_ids": s.contact.anonymous_ids})
        for s in states.values()
    ]


def segment_events(states: dict[str, ContactState]) -> list[tuple[datetime, str]]:
    """Every test-contact event as a Segment call (time, JSON line), in time order.

    Anonymous visitors' events carry only ``anonymousId``; ``identify`` calls
    carry both ids (that is what links them) and their properties as traits.
    """
    lines = []
    for state in states.values():
        cid = state.contact.id
        for index, event in enumerate(state.events):
            stamp = event.at.isoformat().replace("+00:00", "Z")
            call = {"timestamp": stamp, "messageId": f"{cid}-{index}"}
            if event.name in ("identify", "alias"):
                call |= {"type": "identify", "userId": cid, "traits": dict(event.properties)}
                if event.anonymous_id:
                    call["anonymousId"] = event.anonymous_id
            elif event.anonymous_id:
                call |= {"type": "track", "anonymousId": event.anonymous_id, "event": event.name,
                         "properties": dict(event.properties)}
            else:
                call |= {"type": "track", "userId": cid, "event": event.name, "properties": dict(event.properties)}
            lines.append((event.at, json.dumps(call, ensure_ascii=False)))
    lines.sort(key=lambda item: item[0])
    return lines


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def ledger_rows(store) -> list[tuple]:
    """The production send ledger: (key, contact, journey, version, step, scheduled instant)."""
    rows = store.conn.execute(
        "SELECT key, contact_id, journey_id, version, step_id, scheduled_at FROM sends ORDER BY key"
    ).fetchall()
    return [(k, c, j, v, s, datetime.fromisoformat(at).isoformat()) for k, c, j, v, s, at in rows]


# ---------------------------------------------------------------- a tiny project for ledger tests

TINY_PROJECT = """\
name: Tiny
sender: {from: "Tiny <hello@tiny.test>"}
default_timezone: UTC
unsubscribe: {url: "https://tiny.test/unsubscribe", mailto: "unsubscribe@tiny.test"}
"""

WELCOME = """\
id: welcome
version: 1
name: Welcome
stages:
  - id: main
    entry: {event: signed_up}
    steps:
      - id: hello
        email: {template: hello, subject: "Hello {{ contact.first_name }}"}
      - wait: 1d
      - id: tips
        email: {template: tips, subject: "Tips for {{ contact.first_name }}"}
"""

TEMPLATES = {
    "hello.html": "<p>Hi {{ contact.first_name }}!</p><p><a href=\"{{ unsubscribe_url }}\">unsubscribe</a></p>",
    "tips.html": "<p>Tips, {{ contact.first_name }}.</p><p><a href=\"{{ unsubscribe_url }}\">unsubscribe</a></p>",
}


def tiny_project(root: Path, journeys: dict[str, str] | None = None, project: str = TINY_PROJECT,
                 templates: dict[str, str] | None = None) -> Path:
    """A small valid project: project.yaml, journeys/<id>.yaml, templates/."""
    (root / "journeys").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(parents=True, exist_ok=True)
    (root / "project.yaml").write_text(project, encoding="utf-8")
    for journey_id, text in (journeys if journeys is not None else {"welcome": WELCOME}).items():
        (root / "journeys" / f"{journey_id}.yaml").write_text(text, encoding="utf-8")
    for name, text in (templates if templates is not None else TEMPLATES).items():
        path = root / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def add_signups(store, count: int, at: datetime, prefix: str = "c", event: str = "signed_up") -> list[str]:
    """``count`` contacts with an email address, each with one ``event`` at ``at``."""
    from runner.store.base import ContactRow, EventRow

    ids = [f"{prefix}{n:05d}" for n in range(count)]
    store.write_contacts(
        [ContactRow(cid, {"email": f"{cid}@example.com", "first_name": cid.title()}) for cid in ids], at
    )
    store.write_events([EventRow(cid, None, event, at, {}, f"{cid}-{event}-{at.isoformat()}") for cid in ids], at)
    return ids


def deployed_tiny_project(tmp_path: Path, contacts: int, at: datetime, **project: Any) -> tuple[Path, Path, list[str]]:
    """``tiny_project`` (``project``: its keyword arguments) deployed at ``at`` into ``tmp_path/journey.db``,
    with ``contacts`` signups at ``at``: (project root, database, contact ids)."""
    from runner.production.deploy import deploy, load_working_tree
    from runner.store import open_store

    root = tiny_project(tmp_path / "project", **project)
    db = tmp_path / "journey.db"
    store = open_store(db)
    ids = add_signups(store, contacts, at)
    deploy(store, load_working_tree(root).journeys, at)
    store.close()
    return root, db, ids
