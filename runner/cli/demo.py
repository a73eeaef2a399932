"""``journey demo``: validate, import, deploy and run a month of the sample project."""

from __future__ import annotations

import click

from runner.cli.common import DB_OPTION, project_root, say, tick_progress
from runner.cli.run import format_status


@click.command("demo")
@click.option("--fresh", is_flag=True, help="Start over: delete the database and the outbox first.")
@click.option("--days", type=click.IntRange(1, 31), default=31, show_default=True,
              help="Run only the first DAYS days of the month (a quicker look).")
@DB_OPTION
def demo(fresh: bool, days: int, db_path: str | None) -> None:
    """Run the sample month end to end, emails into ./outbox.

    Validates the project, creates the database (default journey.db in the
    project), imports examples/data (contacts and a month of events),
    deploys the journeys and runs hourly production ticks over March 2026 on
    a virtual clock, and prints the `--now` to continue from with `journey
    run`. Safe to run twice: the second run sends nothing new.
    """
    from datetime import timedelta

    from runner.production.demo import DEMO_START, DEMO_STEP, run_demo
    from runner.store import resolve_db

    root = project_root()
    end = DEMO_START + timedelta(days=days)
    with tick_progress(DEMO_START, end, DEMO_STEP) as ticked:
        result = run_demo(root, resolve_db(db_path, start=root), fresh=fresh, end=end, say=say, ticked=ticked)
    click.echo("")
    click.echo(format_status(result.status))
    click.echo("")
    emails = result.counts.get("sent", 0)
    click.echo(f"{result.ticks} hourly ticks; {emails} email(s) and {result.counts.get('webhooks', 0)} webhook(s) "
               f"sent by this run ({result.counts.get('already_claimed', 0)} already in the ledger).")
    click.echo(f"database: {result.db_path}")
    if result.outbox is not None:
        count = len(list(result.outbox.glob("*.eml"))) if result.outbox.is_dir() else 0
        click.echo(f"outbox:   {result.outbox} ({count} .eml files)")
    if result.next_tick is not None:
        stamp = result.next_tick.strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(f"clock:    virtual; the last tick ran at {result.clock:%Y-%m-%dT%H:%M:%SZ}. Continue with "
                   f"`journey run --now {stamp}` (and `journey status --now {stamp}`): without --now a tick runs "
                   "at the system clock and sends everything due since then at once.")
