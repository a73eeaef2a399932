"""``journey demo``: the whole production path on the sample project, in one command.

Validate the project, create (or migrate) the SQLite database, import the
sample month (``examples/data/contacts.jsonl`` + ``events.jsonl``), deploy
the journeys, then run production ticks every hour over March 2026 with the
``--now`` clock, writing every email into the outbox. Running it again
sends nothing new: imports are idempotent, deployments unchanged, and every
send is already in the ledger.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.core.problems import JourneyError
from runner.language.templatecheck import read_templates
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick, status_report

DEMO_START = datetime(2026, 3, 1, tzinfo=UTC)
DEMO_END = datetime(2026, 4, 1, tzinfo=UTC)
DEMO_STEP = timedelta(hours=1)
DEMO_TRANSPORT = "outbox:outbox"
CONTACTS_FILE = Path("examples/data/contacts.jsonl")
EVENTS_FILE = Path("examples/data/events.jsonl")


@dataclass
class DemoResult:
    db_path: str  # where the database is, safe to print (a URL without its password)
    outbox: Path | None
    imported_contacts: int
    imported_events: int
    deployed: list[tuple[str, int]]
    ticks: int
    counts: dict[str, int] = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    clock: datetime | None = None  # the virtual instant of the last tick: where a `journey run --now` continues
    step: timedelta = DEMO_STEP

    @property
    def next_tick(self) -> datetime | None:
        """The instant the demo's next hourly tick would run at."""
        return self.clock + self.step if self.clock is not None else None


def run_demo(
    root: Path,
    db_path: str | Path,
    *,
    fresh: bool = False,
    transport_url: str = DEMO_TRANSPORT,
    start: datetime = DEMO_START,
    end: datetime = DEMO_END,
    step: timedelta = DEMO_STEP,
    say: Callable[[str], None] = lambda line: None,
    ticked: Callable[[datetime], None] = lambda now: None,
) -> DemoResult:
    """Run the demo (see the module doc); ``say`` receives progress lines, ``ticked`` each tick's instant."""
    from runner.delivery.dispatch import _outbox_dir
    from runner.production import ingest
    from runner.store import is_url, open_store, redacted

    tree = load_working_tree(root)
    say(f"validated {len(tree.journeys)} journeys in {root}")
    outbox = _outbox_dir(transport_url, tree.root)
    if fresh and is_url(str(db_path)):
        raise JourneyError(f"--fresh deletes a SQLite file; {redacted(db_path)} is a server database: "
                           "drop its schema yourself, or leave --fresh out")
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        if outbox is not None and outbox.is_dir():
            shutil.rmtree(outbox)
        say("--fresh: removed the database and the outbox")
    contacts_file, events_file = tree.root / CONTACTS_FILE, tree.root / EVENTS_FILE
    for required in (contacts_file, events_file):
        if not required.is_file():
            raise JourneyError(f"demo data missing: {required}")
    store = open_store(db_path)
    try:
        contacts = ingest.import_contacts(store, contacts_file, now=start)
        events = ingest.import_events(store, events_file, now=start)
        say(f"imported {contacts.imported} contacts ({contacts.duplicates} already stored), "
            f"{events.imported} events ({events.duplicates} already stored)")
        result = deploy(store, tree.journeys, datetime.now(UTC), read_templates(tree.project.templates_path))
        say("deployed " + (", ".join(f"{j} v{v}" for j, v in result.recorded) or "nothing new (already deployed)"))
        runtime = build_runtime(store, tree.project, transport_url)
        totals: dict[str, int] = {}
        ticks = 0
        clock = None
        try:
            now = start
            while now <= end:
                report = run_tick(store, runtime, now, lease_wait=30)
                ticks += 1
                ticked(now)
                clock = now
                for name, value in report.counts.items():
                    totals[name] = totals.get(name, 0) + value
                if now.hour == 0 and now.day % 7 == 1 or now == end:
                    say(f"  {now:%Y-%m-%d %H:%M}Z  {totals.get('sent', 0)} emails, "
                        f"{totals.get('webhooks', 0)} webhooks so far")
                now += step
        finally:
            if runtime.delivery is not None:
                runtime.delivery.close()
        status = status_report(store, end)
    finally:
        store.close()
    return DemoResult(store.location, outbox, contacts.imported, events.imported, result.recorded, ticks, totals, status,
                      clock, step)
