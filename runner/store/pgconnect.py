"""How the PostgreSQL store talks to its server: the URL, the connection options, the adapters.

``parse_location`` splits the store's own URL parameters (``schema``, ``pool_min``,
``pool_max``, ``prepare_threshold``) from libpq's; every connection sets the schema
as its ``search_path``, UTC as its time zone, a lock timeout (a lock held longer is
``StoreBusy``, never a hang) and the planner's price of a random page read
(``RANDOM_PAGE_COST``). ``ADAPTERS`` read JSON with sorted keys (as SQLite hands back
what ``to_json`` wrote) and refuse naive datetimes (as ``to_db_time`` does);
``shaped`` turns a column value into what SQLite's store returns for it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.adapt import AdaptersMap, Dumper, PyFormat
from psycopg.types.datetime import DatetimeBinaryDumper, DatetimeDumper
from psycopg.types.json import set_json_dumps, set_json_loads

from runner.core.problems import JourneyError
from runner.store.codec import to_db_time, to_json
from runner.store.errors import redacted

CONNECT_TIMEOUT_SECONDS = 10
LOCK_TIMEOUT = "30s"  # as SQLite's busy timeout: a lock held longer is an error, not a hang
# The planner's price of a random page read, for this store's sessions only. PostgreSQL's
# default (4) prices a spinning disk; the store's statements read and write pages of rows
# by key from a working set in memory. At 4 the planner scanned whole enrollments and sends
# tables of a few thousand rows for a page of 200 contacts, and kept that plan (a prepared
# statement's generic plan) while the tables grew: a tick's cost grew with what it had
# written (docs/run.md, *The server's CPU a send*; tests/test_postgres_store.py).
RANDOM_PAGE_COST = "1.1"
POOL_MIN, POOL_MAX = 1, 4
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_OUR_PARAMETERS = ("schema", "pool_min", "pool_max", "prepare_threshold")


def _sorted_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return dict(sorted(pairs))


def loads(data: str | bytes) -> Any:
    """JSON with keys in sorted order at every level, as SQLite hands back what ``to_json`` wrote
    (``jsonb`` keeps its own key order)."""
    return json.loads(data, object_pairs_hook=_sorted_object)


def _aware_only(base: type[Dumper]) -> type[Dumper]:
    """``base`` refusing a naive datetime, as ``to_db_time`` does for SQLite (PostgreSQL would
    take it as the session's zone: a silent shift, not data)."""

    class AwareDumper(base):  # type: ignore[valid-type, misc]
        def upgrade(self, obj: datetime, format: PyFormat) -> Dumper:
            if obj.tzinfo is None or obj.utcoffset() is None:
                raise ValueError(f"naive datetime {obj!r}: the store only keeps aware UTC instants")
            return super().upgrade(obj, format)  # type: ignore[no-any-return]

    return AwareDumper


ADAPTERS = AdaptersMap(psycopg.adapters)
set_json_loads(loads, ADAPTERS)
set_json_dumps(to_json, ADAPTERS)  # a dict dumped as json/jsonb (binary COPY) is the text SQLite would keep
ADAPTERS.register_dumper(datetime, _aware_only(DatetimeDumper))
ADAPTERS.register_dumper(datetime, _aware_only(DatetimeBinaryDumper))


@dataclass(frozen=True, slots=True)
class PostgresLocation:
    """What a ``postgresql://`` URL names: libpq's connection string, the schema, the pool bounds."""

    conninfo: str
    schema: str
    pool_min: int
    pool_max: int
    shown: str  # for messages: no password
    prepare_threshold: int | None = 5  # psycopg's default; None: never prepare (PgBouncer, transaction mode)


def parse_location(url: str) -> PostgresLocation:
    """Split our parameters (``schema``, ``pool_min``, ``pool_max``) off a URL; the rest is libpq's."""
    parts = urlsplit(url)
    ours = {name: value for name, value in parse_qsl(parts.query) if name in _OUR_PARAMETERS}
    theirs = [(name, value) for name, value in parse_qsl(parts.query) if name not in _OUR_PARAMETERS]
    schema = ours.get("schema", "public")
    if not _SCHEMA_NAME.fullmatch(schema):
        raise JourneyError(f"schema {schema!r} in the database URL: use letters, digits and _ "
                           "(starting with a letter or _), at most 63 characters")
    try:
        pool_min = int(ours.get("pool_min", POOL_MIN))
        pool_max = int(ours.get("pool_max", max(POOL_MAX, pool_min)))
    except ValueError as error:
        raise JourneyError(f"pool_min/pool_max in the database URL must be whole numbers ({error})") from None
    if not 0 <= pool_min <= pool_max or pool_max < 1:
        raise JourneyError("pool_min/pool_max in the database URL: need 0 <= pool_min <= pool_max and pool_max >= 1")
    threshold = ours.get("prepare_threshold", "5")
    if threshold.lower() != "none" and not threshold.isdigit():
        raise JourneyError(f"prepare_threshold in the database URL: a whole number or none, not {threshold!r}")
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(theirs), parts.fragment))
    shown = redacted(url)
    return PostgresLocation(conninfo, schema, pool_min, pool_max, shown,
                            None if threshold.lower() == "none" else int(threshold))


def connect_options(location: PostgresLocation, read_only: bool) -> str:
    options = [f"-c search_path={location.schema}", "-c TimeZone=UTC", f"-c lock_timeout={LOCK_TIMEOUT}",
               f"-c random_page_cost={RANDOM_PAGE_COST}"]
    if read_only:
        options.append("-c default_transaction_read_only=on")
    return " ".join(options)


def shaped(value: Any) -> Any:
    """A column value as SQLite's store hands it out: instants as UTC text, JSON as compact text."""
    if isinstance(value, datetime):
        return to_db_time(value)
    if isinstance(value, dict | list):
        return to_json(value)
    return value


def time_text(value: datetime | None) -> str | None:
    return None if value is None else to_db_time(value)
