"""``journey bounces import FILE|DIR``: bounce and complaint mail into the suppression list.

A thin shell over ``runner.production.bounceimport``: it resolves the database
and the project's soft-bounce rule, prints the summary and chooses the exit
code (0 read, 1 some input unreadable; what was recorded before it is kept).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from runner.cli.common import DB_OPTION, open_db, project_root
from runner.core.bounces import COMPLAINT, HARD, SOFT

SHOWN_NAMES = 20  # unrecognised messages named; a whole mailbox of auto-replies should not flood the terminal


@click.group()
def bounces() -> None:
    """Record bounces and complaints that arrive as mail (plain SMTP set-ups)."""


@bounces.command("import")
@click.argument("path", metavar="FILE|DIR", type=click.Path(exists=True, path_type=Path))
@click.option("--now", "now_text", metavar="ISO",
              help="Record as of this instant instead of the clock (a report without a date takes it). "
                   "ISO 8601 with an offset, e.g. 2026-03-02T09:00:00Z.")
@click.option("--dry-run", is_flag=True, help="Read and report what would be recorded; store nothing.")
@DB_OPTION
def bounces_import(path: Path, now_text: str | None, dry_run: bool, db_path: Path | None) -> None:
    """Read delivery status notifications (RFC 3464) and abuse reports (ARF, RFC 5965)
    from FILE (.eml or mbox) or DIR (Maildir, or a folder of them).

    Hard bounces (5.x.x) and complaints suppress at their instant; soft bounces
    (4.x.x, delays) are counted, and the one that reaches project.yaml's
    bounces.soft limit suppresses. Importing the same mail again counts nothing twice.
    """
    from runner.cli.run import load_project_settings, parse_now
    from runner.core.bounces import rule_from_project
    from runner.production.bounceimport import import_reports

    now = parse_now(now_text)
    root = project_root()
    rule = rule_from_project(load_project_settings(root).raw)
    with open_db(db_path, root, read_only=dry_run) as store:
        result = import_reports(store, path, rule, now, dry_run=dry_run)
    for item in result.unreadable:
        click.echo(f"{item.name}: unreadable: {item.error}", err=True)
    for name in result.unrecognised[:SHOWN_NAMES]:
        click.echo(f"{name}: unrecognised (not a delivery status notification or abuse report)", err=True)
    if len(result.unrecognised) > SHOWN_NAMES:
        click.echo(f"… and {len(result.unrecognised) - SHOWN_NAMES} more unrecognised", err=True)
    outcome = result.outcome
    kinds = ", ".join(f"{outcome.by_kind.get(kind, 0)} {label}" for kind, label in
                      ((HARD, "hard"), (SOFT, "soft"), (COMPLAINT, "complaints")))
    verb = "would record" if dry_run else "recorded"
    click.echo(f"{path}: {result.messages} messages, {result.reports} reports: {verb} {outcome.counted} ({kinds}), "
               f"{outcome.duplicates} already recorded, {len(outcome.suppressed)} suppressed, "
               f"{outcome.unmatched} unmatched soft bounces, {len(result.unrecognised)} unrecognised")
    sys.exit(0 if result.ok else 1)
