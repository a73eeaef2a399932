"""Persistent runner state: the ``Store`` interface, its backends and how one is chosen.

``resolve_db`` is the one place that decides which database a command uses:
``--db``, else ``JOURNEY_DB``, else the project's ``database`` key, else
``journey.db``; ``open_store`` opens it (a ``postgresql://`` URL: PostgreSQL;
anything else: a SQLite file). Failures raise the ``StoreError`` family.
"""

from __future__ import annotations

from pathlib import Path

from runner.store.base import ContactRow, EventRow, Store
from runner.store.errors import StoreError, StoreUnavailable, is_url, redacted
from runner.store.location import DEFAULT_DB, open_store, resolve_db
from runner.store.sqlite import SQLiteStore

__all__ = ["DEFAULT_DB", "ContactRow", "EventRow", "SQLiteStore", "Store", "StoreError", "is_url", "open_store",
           "redacted", "resolve_db", "resolve_db_path"]


def resolve_db_path(cli_value: str | Path | None, start: Path | None = None) -> Path:
    """``resolve_db`` for callers that need a SQLite file (a URL is a clear error)."""
    location = resolve_db(cli_value, start)
    if is_url(location):
        raise StoreUnavailable(f"{redacted(location)} is a server database, not a file: this needs a SQLite file")
    return Path(location)
