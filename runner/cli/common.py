"""What several command modules share: the error a user sees, the ``--db`` option, the database.

Commands raise domain errors (``JourneyError``); the ``journey`` group catches
them once, at the top (``runner.cli.LazyGroup.invoke``), and each shows itself:
its problems, one ``error:`` line, its exit code, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from runner.core.problems import JourneyError
from runner.core.vocabulary import ALL_TOPICS
from runner.store.base import Store


class DatabaseLocation(click.ParamType):
    """``--db``: a SQLite file path or a ``postgresql://`` URL, kept as text (a ``Path`` would fold
    the URL's ``//``). ``must_exist``: a file that is not there is a usage error, as click's paths."""

    name = "database"

    def __init__(self, must_exist: bool = False):
        self.must_exist = must_exist

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from runner.store.errors import is_url

        text = str(value)
        if not is_url(text) and Path(text).is_dir():
            self.fail(f"{text!r} is a directory, not a database file", param, ctx)
        if self.must_exist and not is_url(text) and not Path(text).exists():
            self.fail(f"{text!r} does not exist", param, ctx)
        return text


DB_OPTION = click.option(
    "--db", "db_path", type=DatabaseLocation(), metavar="PATH|URL",
    help="SQLite file, or postgresql://user@host/dbname (default: JOURNEY_DB, then project.yaml 'database', "
         "then journey.db).",
)


def as_domain_error(error: Exception) -> JourneyError:
    """Any exception a command let through, as the domain error the user sees: a database
    failure is a ``StoreError`` (a ``JourneyError``) and says so; anything else is a bug to
    report, never a traceback."""
    if isinstance(error, JourneyError):
        return error
    return JourneyError(f"internal error ({type(error).__name__}: {error}); please report it")


def project_root() -> Path:
    from runner.language.loader import find_project_root

    return find_project_root()


@contextmanager
def open_db(db_path: str | Path | None, root: Path | None = None, *, must_exist: bool = False,
            read_only: bool = False) -> Iterator[Store]:
    """The store at ``--db`` / ``JOURNEY_DB`` / project.yaml ``database`` (found from ``root``,
    else the working directory), closed afterwards. ``read_only``: a command that only
    looks, and must work on a database it may not write (implies ``must_exist``; a server
    database that was never migrated says so when it opens)."""
    from runner.store.location import exists, open_store, resolve_db

    location = resolve_db(db_path, start=root)
    if (must_exist or read_only) and not exists(location):
        raise JourneyError(f"no database at {location}: run `journey deploy` (or `journey demo`) first")
    store = open_store(location, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def what_it_stops(topic: str | None) -> str:
    """A suppression stops every email; an unsubscribe, marketing topics (one or all)."""
    if topic is None:
        return "every email"
    return "all marketing topics" if topic == ALL_TOPICS else f"topic {topic}"
