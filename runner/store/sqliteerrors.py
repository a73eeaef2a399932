"""``sqlite3.Error`` as the ``StoreError`` family: the SQLite store's errors at its boundary.

``translating`` wraps every public method of the store class once, so no caller (the
CLI, the tick, the service) ever sees a driver error; the original stays chained as
``__cause__`` for debugging.
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from runner.store.errors import (
    StoreBusy,
    StoreConstraint,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
)

# primary result codes (the low byte of an extended code), https://sqlite.org/rescode.html
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 3, 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_AUTH, SQLITE_NOTADB = 11, 13, 14, 23, 26

C = TypeVar("C", bound=type)


def translate(error: sqlite3.Error, location: object) -> StoreError:
    """The store error a user sees for ``error`` on the database at ``location``."""
    code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(error)
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or "locked" in text:
        return StoreBusy(f"{text} ({location}): another process held it past the busy timeout; "
                         "try again when that command has finished")
    if code == SQLITE_FULL or "disk is full" in text:
        return StoreFull(f"{text} ({location}): free some space and run the command again; "
                         "what was committed before stays")
    if code == SQLITE_READONLY or "readonly" in text:
        return StoreReadOnly(f"{text} ({location}): check the permissions of the file and its folder")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return StoreCorrupt(f"{location} is not a journey-runner database, or it is damaged ({text})")
    if code in (SQLITE_PERM, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_AUTH):
        return StoreUnavailable(f"cannot use {location} ({text}): check that its folder exists and is writable")
    if isinstance(error, sqlite3.IntegrityError):
        return StoreConstraint(f"{text} ({location}): the write was rolled back; please report it")
    return StoreError(f"{text} ({location})")


@contextmanager
def translated(location: object) -> Iterator[None]:
    """Run a block; a ``sqlite3.Error`` leaving it becomes the matching ``StoreError``."""
    try:
        yield
    except sqlite3.Error as error:
        raise translate(error, location) from error


def translating(cls: C) -> C:
    """``cls`` with every public method (and context manager) translating ``sqlite3.Error``.

    The instance's ``location`` names the database in the messages."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_") or not callable(member) or isinstance(member, (staticmethod, classmethod, type)):
            continue
        wrapped = _context_manager(member) if _returns_context_manager(member) else _method(member)
        setattr(cls, name, wrapped)
    return cls


def _method(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            raise translate(error, self.location) from error
    return call


def _context_manager(method: Callable[..., Any]) -> Callable[..., Any]:
    """A ``@contextmanager`` method: errors at entry, inside the block and at exit (COMMIT)."""
    @functools.wraps(method)
    @contextmanager
    def call(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with translated(self.location), method(self, *args, **kwargs) as value:
            yield value
    return call


def _returns_context_manager(method: Callable[..., Any]) -> bool:
    wrapped = getattr(method, "__wrapped__", None)
    return wrapped is not None and inspect.isgeneratorfunction(wrapped)
