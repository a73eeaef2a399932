"""What several command modules share: error exits, the ``--db`` option, the database.

Every command ends a domain error the same way (its problems, one ``error:``
line, its exit code, never a traceback), so that lives here once.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from runner.core.problems import JourneyError

DB_OPTION = click.option(
    "--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite database (default: JOURNEY_DB, then project.yaml 'database', then journey.db).",
)


def fail(error: JourneyError) -> None:
    """Print a domain error and its problems; exit with its code, never a traceback."""
    for problem in error.problems:
        click.echo(str(problem), err=True)
    click.echo(f"error: {error}", err=True)
    sys.exit(error.exit_code)


@contextmanager
def domain_errors() -> Iterator[None]:
    """JourneyError and database errors become messages and exit codes."""
    try:
        yield
    except JourneyError as error:
        fail(error)
    except sqlite3.Error as error:
        fail(JourneyError(f"database error: {error}"))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # noqa: BLE001 - last resort: never a traceback for the operator
        fail(JourneyError(f"internal error ({type(error).__name__}: {error}); please report it"))


def project_root() -> Path:
    from runner.language.loader import find_project_root

    return find_project_root()


@contextmanager
def open_db(db_path: Path | None, root: Path | None = None, *, must_exist: bool = False) -> Iterator[Any]:
    """The store at ``--db`` / ``JOURNEY_DB`` / project.yaml ``database`` (found from ``root``,
    else the working directory), closed afterwards."""
    from runner.store import open_store, resolve_db_path

    path = resolve_db_path(db_path, start=root)
    if must_exist and not path.exists():
        raise JourneyError(f"no database at {path}: run `journey deploy` (or `journey demo`) first")
    store = open_store(path)
    try:
        yield store
    finally:
        store.close()
