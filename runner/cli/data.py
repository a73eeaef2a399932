"""``journey contacts import``, ``journey events import``, ``journey suppress …``.

Thin shells over ``runner.production.ingest`` and the store: they resolve the database,
show a progress bar on a terminal, print the bad lines and choose the exit
code (0 all imported, 1 bad lines or bad input, 2 usage error).
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click

from runner.cli.common import DB_OPTION, open_db, progress_shown, project_root, what_it_stops
from runner.core.problems import JourneyError, shown
from runner.core.vocabulary import MANUAL, SUPPRESSION_REASONS, UNSUBSCRIBED
from runner.store.base import Store
from runner.store.errors import StoreError

SHOWN_PROBLEMS = 50  # bad lines printed; a wrong file should not flood the terminal

@contextmanager
def _progress(path: Path, label: str) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar over the file's bytes, only on a terminal and never in CI (``progress_shown``)."""
    if not progress_shown():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        f"[bold]{label}", BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True
    ) as bar:
        task = bar.add_task(label, total=path.stat().st_size)
        yield lambda size: bar.advance(task, size)


def _tracking_plan_types() -> dict[str, str]:
    """Attribute types from the project's tracking plan ({} outside a project)."""
    from runner.language.loader import find_project_root
    from runner.language.yamlsource import load_file
    from runner.production import ingest

    project_file = find_project_root() / "project.yaml"
    if not project_file.is_file():
        return {}
    document, _problems = load_file(project_file)
    data = document.data if document is not None and isinstance(document.data, dict) else {}
    plan = data.get("tracking_plan")
    return ingest.attribute_types(plan) if isinstance(plan, dict) else {}


def _run_import(kind: str, path: Path, format: str | None, strict: bool, db_path: str | None,
                now_text: str | None) -> None:
    from runner.cli.run import parse_now
    from runner.production import ingest

    try:
        format = ingest.detect_format(path, format)  # before the database is created
        now = parse_now(now_text)
        options = {"attribute_types": _tracking_plan_types()} if kind == "contacts" else {}
        importer = ingest.import_contacts if kind == "contacts" else ingest.import_events
        with open_db(db_path) as store, _progress(path, f"importing {kind}") as progress:
            result = importer(store, path, format=format, strict=strict, now=now, progress=progress, **options)
    except StoreError as error:  # locked past the busy timeout, disk full, no server, …
        raise type(error)(f"{_without_prefix(error)}; batches committed before it are kept") from None
    for problem in result.bad[:SHOWN_PROBLEMS]:
        click.echo(str(problem), err=True)
    if result.bad_lines > SHOWN_PROBLEMS:
        click.echo(f"… and {result.bad_lines - SHOWN_PROBLEMS} more bad lines", err=True)
    if result.aborted:
        click.echo(f"{path}: strict mode: stopped at the first bad line; nothing imported", err=True)
        sys.exit(1)
    summary = f"{path}: {result.imported} {kind} imported, {result.duplicates} already stored"
    if result.skipped:
        summary += f", {result.skipped} skipped"
    if result.bad_lines:
        summary += f", {result.bad_lines} bad lines"
    click.echo(summary)
    sys.exit(0 if result.ok else 1)


def _without_prefix(error: StoreError) -> str:
    """The message a ``StoreError`` was made with (its constructor adds ``database error:``)."""
    return str(error).removeprefix("database error: ")


FILE_ARGUMENT = click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
)
FORMAT_OPTION = click.option(
    "--format",
    "format",
    type=click.Choice(["csv", "jsonl"]),
    help="File format (default: from the extension: .csv, .jsonl/.ndjson).",
)
STRICT_OPTION = click.option(
    "--strict", is_flag=True, help="Stop at the first bad line and import nothing of the file."
)


def _now_option(effect: str) -> Callable:
    return click.option(
        "--now", "now_text", metavar="ISO",
        help=f"Import as of this instant instead of the clock, for a backfill replayed with `journey run --now` "
             f"({effect}). ISO 8601 with an offset, e.g. 2026-03-02T09:00:00Z.",
    )


@click.group()
def contacts() -> None:
    """Manage contacts in the production database."""


@contacts.command("import")
@FILE_ARGUMENT
@FORMAT_OPTION
@STRICT_OPTION
@_now_option("contacts new or changed by the import are due at this instant")
@DB_OPTION
def contacts_import(file: Path, format: str | None, strict: bool, now_text: str | None, db_path: str | None) -> None:
    """Upsert contacts from FILE (CSV: id,email,timezone,… or JSONL).

    Other CSV columns become attributes (meddic.metrics nests). Re-importing
    is safe: contacts are upserted by id, attributes merged.
    """
    _run_import("contacts", file, format, strict, db_path, now_text)


@click.group()
def events() -> None:
    """Manage events in the production database."""


@events.command("import")
@FILE_ARGUMENT
@FORMAT_OPTION
@STRICT_OPTION
@_now_option("recorded as the time contacts were created and anonymous ids linked; events make their "
             "contact due at their own timestamps")
@DB_OPTION
def events_import(file: Path, format: str | None, strict: bool, now_text: str | None, db_path: str | None) -> None:
    """Import events from FILE (Segment JSONL: track, identify, alias, page; or CSV).

    Events are deduplicated by messageId; each makes its contact due so the
    next `journey run` processes it.
    """
    _run_import("events", file, format, strict, db_path, now_text)


@click.group()
def suppress() -> None:
    """Stop email to a contact or address (bounces, complaints: all; unsubscribes: marketing)."""


@suppress.command("add")
@click.argument("email_or_id")
@click.option(
    "--reason", type=click.Choice(SUPPRESSION_REASONS), default=MANUAL, show_default=True
)
@click.option("--topic", metavar="TOPIC", help="Unsubscribe from this marketing topic of project.yaml only "
              "(as the preferences page does); the reason is then 'unsubscribed'.")
@click.option("--unknown-contact", is_flag=True,
              help="Accept a contact id the database does not hold (yet); without it that is an error.")
@DB_OPTION
@click.pass_context
def suppress_add(ctx: click.Context, email_or_id: str, reason: str, topic: str | None, unknown_contact: bool,
                 db_path: str | None) -> None:
    """Suppress EMAIL_OR_ID (an email address with @, else a known contact id).

    An address must be a valid addr-spec (a@b.example); a contact id must be
    in the database unless --unknown-contact says it may arrive later. With
    --topic, only that marketing topic's emails stop.
    """
    if topic is not None:
        if ctx.get_parameter_source("reason") is not click.core.ParameterSource.DEFAULT and reason != UNSUBSCRIBED:
            raise click.UsageError(f"--topic records an unsubscribe from the topic: leave out --reason {reason}")
        reason = UNSUBSCRIBED
        _check_marketing_topic(topic)
    with open_db(db_path) as store:
        target = _suppression_target(store, email_or_id, unknown_contact)
        store.add_suppression(target, reason, "cli", datetime.now(UTC), topic)
    click.echo(f"suppressed {target} ({reason}{f' from {topic}' if topic else ''})")


def _check_marketing_topic(topic: str) -> None:
    """A topic an unsubscribe can stop: declared in project.yaml, and marketing (no
    unsubscribe stops a transactional topic's emails)."""
    from runner.cli.run import load_project_settings

    topics = load_project_settings(project_root()).topics
    marketing = sorted(name for name, declared in topics.items() if declared.marketing)
    if topic not in topics:
        hint = difflib.get_close_matches(topic, list(topics), n=1)
        raise JourneyError(f"no topic {shown(topic)} in project.yaml"
                           + (f" (did you mean {hint[0]!r}?)" if hint else f" (marketing topics: {', '.join(marketing)})"))
    if topic not in marketing:
        raise JourneyError(f"topic {shown(topic)} is transactional: no unsubscribe stops it "
                           "(leave out --topic to suppress every email)")


def _suppression_target(store: Store, value: str, unknown_contact: bool) -> str:
    """The address or contact id to suppress, checked: a typo must not pass silently."""
    from runner.delivery.message import InvalidAddress, parse_address

    text = value.strip()
    if "@" in text:
        try:
            mailbox = parse_address(text, role="suppressed")
        except InvalidAddress as error:
            raise JourneyError(str(error)) from None
        if mailbox.display_name or mailbox.addr_spec != text:
            raise JourneyError(f"{shown(value)} is not a bare email address (write it as name@example.com)")
        return text
    if not text or text != value or not text.isprintable():
        raise JourneyError(f"{shown(value)} is not a contact id (no spaces or control characters around it)")
    if not unknown_contact and text not in store.load_contact_states([text]):
        raise JourneyError(f"no contact {shown(text)} in the database (pass --unknown-contact to suppress it anyway)")
    return text


@suppress.command("remove")
@click.argument("email_or_id")
@DB_OPTION
def suppress_remove(email_or_id: str, db_path: str | None) -> None:
    """Lift the suppression of EMAIL_OR_ID (exit 1 if it was not suppressed)."""
    with open_db(db_path, empty_if_missing=True) as store:
        removed = store.remove_suppression(email_or_id)
    if not removed:
        click.echo(f"error: {shown(email_or_id)} is not suppressed", err=True)
        sys.exit(1)
    click.echo(f"removed suppression of {email_or_id}")


@suppress.command("list")
@click.option(
    "--format", "format", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@DB_OPTION
def suppress_list(format: str, db_path: str | None) -> None:
    """List suppressed contacts and addresses."""
    with open_db(db_path, empty_if_missing=True) as store:
        rows = store.suppressions()
    if format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no suppressions")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("contact / email", "reason", "stops", "since", "source", "detail", box=None)
    for row in rows:
        table.add_row(row["email"] or row["contact_id"], row["reason"], what_it_stops(row["topic"]), row["at"],
                      row["source"], row.get("detail") or "")
    Console(soft_wrap=True).print(table)

