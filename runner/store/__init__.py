"""Persistent runner state: the ``Store`` interface and its SQLite implementation.

``resolve_db_path`` is the one place that decides which database a command
uses: ``--db``, else ``JOURNEY_DB``, else the project's ``database`` key,
else ``journey.db``.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from runner.core.problems import JourneyError
from runner.store.base import ContactRow, EventRow, Store
from runner.store.sqlite import SQLiteStore, open_store

__all__ = ["ContactRow", "EventRow", "SQLiteStore", "Store", "open_store", "resolve_db_path"]

DEFAULT_DB = "journey.db"
PROJECT_FILE = "project.yaml"


def resolve_db_path(cli_value: str | Path | None, start: Path | None = None) -> Path:
    """The database path: ``--db``, ``JOURNEY_DB``, project.yaml ``database``, ``journey.db``.

    A relative ``database`` in project.yaml is relative to the project root
    (the folder holding project.yaml), so commands work from any subfolder.
    """
    if cli_value:
        return Path(cli_value)
    from_env = os.environ.get("JOURNEY_DB")
    if from_env:
        return Path(from_env)
    root = _project_root(start or Path.cwd())
    if root is None:
        return Path(DEFAULT_DB)
    database = _project_database(root / PROJECT_FILE)
    return root / (database or DEFAULT_DB)


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
