"""What several command modules share: the error a user sees, the ``--db`` option, the database.

Commands raise domain errors (``JourneyError``); the ``journey`` group catches
them once, at the top (``runner.cli.LazyGroup.invoke``), and each shows itself:
its problems, one ``error:`` line, its exit code, never a traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from runner.core.problems import JourneyError
from runner.store.base import Store

DB_OPTION = click.option(
    "--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite database (default: JOURNEY_DB, then project.yaml 'database', then journey.db).",
)


def as_domain_error(error: Exception) -> JourneyError:
    """Any exception a command let through, as the domain error the user sees: a database
    error says so; anything else is a bug to report, never a traceback."""
    if isinstance(error, JourneyError):
        return error
    if isinstance(error, sqlite3.Error):
        return JourneyError(f"database error: {error}")
    return JourneyError(f"internal error ({type(error).__name__}: {error}); please report it")


def project_root() -> Path:
    from runner.language.loader import find_project_root

    return find_project_root()


@contextmanager
def open_db(db_path: Path | None, root: Path | None = None, *, must_exist: bool = False,
            read_only: bool = False) -> Iterator[Store]:
    """The store at ``--db`` / ``JOURNEY_DB`` / project.yaml ``database`` (found from ``root``,
    else the working directory), closed afterwards. ``read_only``: a command that only
    looks, and must work on a database it may not write (implies ``must_exist``)."""
    from runner.store import open_store, resolve_db_path

    path = resolve_db_path(db_path, start=root)
    if (must_exist or read_only) and not path.exists():
        raise JourneyError(f"no database at {path}: run `journey deploy` (or `journey demo`) first")
    store = open_store(path, read_only=read_only)
    try:
        yield store
    finally:
        store.close()
