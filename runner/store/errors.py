"""What a store raises when the database fails: one family, whatever the backend.

Backends translate their driver's errors (``sqlite3.Error``, ``psycopg.Error``) at the
store boundary, so the CLI, the tick and the service catch ``StoreError`` and never
import a driver. Each is a ``JourneyError``: it shows itself as one ``error:`` line
(prefixed ``database error:``) and a non-zero exit code, never a traceback. Messages
name where the data lives through ``redacted``, so a password in a URL never shows.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from runner.core.problems import JourneyError

URL_SCHEMES = ("postgresql", "postgres")


class StoreError(JourneyError):
    """The database failed (not the input): what went wrong and what to do about it."""

    def __init__(self, message: str):
        super().__init__(f"database error: {message}")


class StoreUnavailable(StoreError):
    """The database cannot be opened or reached: a missing folder, no permission, no server."""


class BackendMissing(StoreUnavailable):
    """The location names a backend whose driver is not installed."""


class NoDatabase(StoreUnavailable):
    """A command that only reads opened a database that was never made (a PostgreSQL schema
    that does not exist, as a SQLite file that does not): it says so and creates nothing."""


class StoreBusy(StoreError):
    """Another process held the lock longer than the store waits (busy timeout, lock timeout)."""


class StoreFull(StoreError):
    """No space left for the write: the disk, a quota, the server's storage."""


class StoreReadOnly(StoreError):
    """A write to a database opened (or only writable) read-only."""


class StoreCorrupt(StoreError):
    """The location holds something that is not a healthy journey-runner database."""


class StoreConstraint(StoreError):
    """A write broke one of the schema's rules (a unique key, a check, a reference): a bug to report."""


class MigrationError(StoreError):
    """The schema cannot be brought up to date (or is newer than this version knows)."""


def is_url(location: str) -> bool:
    """True for a server database URL (``postgresql://…``, ``postgres://…``); anything else is a file."""
    scheme, sep, _rest = location.partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES


def redacted(location: object) -> str:
    """``location`` fit for a message or a log line: a URL's password (and any ``password=``
    parameter) becomes ``***``; a file path is returned as it is."""
    text = str(location)
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, has_password, _password = userinfo.partition(":")
            netloc = f"{user}:***@{hostport}" if has_password else f"{user}@{hostport}"
        query = "&".join(
            f"{name}=***" if name.lower() == "password" else pair
            for pair in parts.query.split("&") if pair
            for name in [pair.partition("=")[0]]
        )
        if netloc == parts.netloc and query == parts.query:
            return text  # nothing to hide: as written (urlunsplit drops an empty host's //)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # not even parseable: show the scheme only
        return text.partition("://")[0] + "://***"
