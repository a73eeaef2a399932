"""Which database a command uses, and the one place that opens it by its location.

A location is a string: a ``postgresql://`` (or ``postgres://``) URL selects the
PostgreSQL store, anything else is a SQLite file. ``resolve_db`` picks it: ``--db``,
else ``JOURNEY_DB``, else the project's ``database`` key, else ``journey.db``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

import yaml

from runner.core.problems import JourneyError
from runner.store.base import Store
from runner.store.errors import BackendMissing, StoreUnavailable, is_url, redacted

DEFAULT_DB = "journey.db"
PROJECT_FILE = "project.yaml"
POSTGRES_MODULE = "runner.store.postgres"  # imported by name, only for a URL
POSTGRES_DRIVERS = ("psycopg", "psycopg_pool")
POSTGRES_EXTRA = "pip install 'journey-runner[postgresql]'"


def resolve_db(cli_value: str | Path | None, start: Path | None = None) -> str:
    """The database location: ``--db``, ``JOURNEY_DB``, project.yaml ``database``, ``journey.db``.

    A relative file path in project.yaml is relative to the project root (the folder
    holding project.yaml), so commands work from any subfolder; a URL is kept as it is.
    """
    if cli_value:
        return _known_kind(str(cli_value), "database")
    from_env = os.environ.get("JOURNEY_DB")
    if from_env:
        return _known_kind(from_env, "JOURNEY_DB")
    root = _project_root(start or Path.cwd())
    if root is None:
        return DEFAULT_DB
    database = _known_kind(_project_database(root / PROJECT_FILE) or DEFAULT_DB, "project.yaml database")
    return database if is_url(database) else str(root / database)


def _known_kind(location: str, where: str) -> str:
    """``location``, unless it is a URL of a kind no store opens (``unknown_kind``)."""
    problem = unknown_kind(location)
    if problem is not None:
        raise JourneyError(f"{where} {problem}")
    return location


def unknown_kind(location: str) -> str | None:
    """Why ``location`` is no database, for a URL of a kind no store opens (``mysql://``,
    ``sqlite://``: taken for a file name, it was answered "no database at mysql://…: run
    `journey deploy`"); None for a file path or a server URL."""
    scheme, sep, _rest = location.partition("://")
    if sep and scheme.isascii() and scheme.isalpha() and not is_url(location):
        return (f"{redacted(location)!r}: a database is a SQLite file path or a postgresql:// URL, "
                f"not {scheme}://")
    return None


def open_store(location: str | Path, *, read_only: bool = False) -> Store:
    """Open (creating and migrating as needed, unless ``read_only``) the store at ``location``.

    A URL opens PostgreSQL (``runner.store.postgres``, imported only then: SQLite users
    need no driver); anything else is a SQLite file."""
    text = str(location)
    if not is_url(text):
        from runner.store.sqlite import open_store as open_sqlite

        return open_sqlite(text, read_only=read_only)
    for driver in POSTGRES_DRIVERS:
        try:
            importlib.import_module(driver)
        except ImportError as error:
            raise BackendMissing(
                f"{redacted(text)} is a PostgreSQL database, but its driver is not installed ({error}): "
                f"{POSTGRES_EXTRA}"
            ) from None
    try:
        backend = importlib.import_module(POSTGRES_MODULE)
    except ModuleNotFoundError as error:
        if error.name != POSTGRES_MODULE:
            raise
        raise StoreUnavailable(f"{redacted(text)}: this version of journey-runner has no PostgreSQL store") from None
    open_postgres_store: Callable[..., Store] = backend.open_postgres_store
    return open_postgres_store(text, read_only=read_only)


def exists(location: str) -> bool:
    """Whether there is a database to open: a file on disk; a server URL is assumed to
    be there (opening it says clearly if it is not)."""
    return is_url(location) or Path(location).exists()


def _project_root(start: Path) -> Path | None:
    from runner.language.loader import find_project_root  # the loader owns project discovery

    try:
        found = find_project_root(start)
    except JourneyError:
        return None
    return Path(found) if found else None


def _project_database(project_file: Path) -> str | None:
    """The ``database`` key of project.yaml; a broken file is the validator's business."""
    try:
        data = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    value = data.get("database") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None
