"""``journey db``: whole-database operations (``copy``: SQLite <-> PostgreSQL).

A thin shell over ``runner.store.copy``; exit codes: 0 copied, 1 refused or failed
(the destination keeps what it held), 2 usage error.
"""

from __future__ import annotations

from contextlib import closing

import click

from runner.cli.common import DatabaseLocation


@click.group("db")
def db() -> None:
    """Whole-database operations: move a database between SQLite and PostgreSQL."""


@db.command("copy")
@click.argument("source", type=DatabaseLocation(must_exist=True), metavar="SRC")
@click.argument("destination", type=DatabaseLocation(), metavar="DST")
@click.option("--force", is_flag=True, help="Replace what DST holds (by default a DST with any row is refused).")
def copy(source: str, destination: str, force: bool) -> None:
    """Copy everything in SRC into DST: contacts, identities, events, deployments and
    templates, enrollments, the send ledger, the decision journal, suppressions, runs,
    leases and the stats counters.

    Each of SRC and DST is a SQLite file or a postgresql:// URL (?schema=NAME picks a
    schema). DST is created and migrated as needed; SRC must be current and is only
    read. The copy is one transaction in DST: if it fails, DST keeps what it held.
    Stop every `journey run` and `journey serve` on SRC first: what they write during
    the copy is not copied.
    """
    from runner.store.copy import copy_database
    from runner.store.location import open_store

    with closing(open_store(source, read_only=True)) as reader, closing(open_store(destination)) as writer:
        report = copy_database(reader, writer, force=force)
    click.echo(f"copied {sum(report.rows.values())} rows from {reader.location} to {writer.location}")
    for line in report.lines():
        click.echo(f"  {line}")
