"""``psycopg.Error`` as the ``StoreError`` family: the PostgreSQL store's errors at its boundary.

As ``runner.store.sqliteerrors`` does for SQLite: ``translating`` wraps every public
method of the store class (and its ``transaction`` context manager), so no caller sees
a driver error. The SQLSTATE class says which: no server or no access is
``StoreUnavailable``, a lock or deadlock is ``StoreBusy``, a full disk ``StoreFull``, a
write in a read-only transaction ``StoreReadOnly``, a broken rule ``StoreConstraint``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import PoolTimeout

from runner.store.errors import (
    StoreBusy,
    StoreConstraint,
    StoreError,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
)

C = TypeVar("C", bound=type)
_UNAVAILABLE = ("08", "28", "3D", "57P")  # connection, authorisation, no such database, shutting down
_BUSY = ("55P03", "40P01", "40001")  # lock timeout, deadlock, serialisation failure


def translate(error: Exception, location: object) -> StoreError:
    """The store error a user sees for ``error`` on the database at ``location``."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, PoolTimeout):
        return StoreUnavailable(f"no connection to {location} in time ({text}): is the server up and reachable?")
    code = getattr(error, "sqlstate", None) or ""
    if isinstance(error, psycopg.OperationalError) and not code or code.startswith(_UNAVAILABLE) or code == "53300":
        return StoreUnavailable(f"cannot use {location} ({text}): check that the server is up, the URL's host, "
                                "database and user, and that it accepts this connection")
    if code in _BUSY:
        return StoreBusy(f"{text} ({location}): another process held the rows longer than the store waits; "
                         "try again when it has finished")
    if code == "53100":
        return StoreFull(f"{text} ({location}): the server's disk is full; free space and run the command again "
                         "(what was committed before stays)")
    if code == "25006":
        return StoreReadOnly(f"{text} ({location}): this command opened the database read-only, "
                             "or the server accepts no writes (a standby)")
    if code.startswith("23"):
        return StoreConstraint(f"{text} ({location}): a write broke the schema's rules; please report it")
    return StoreError(f"{text} ({location})")


def translating(cls: C) -> C:
    """``cls`` with every public method (and context manager) translating driver errors;
    the instance's ``location`` names the database in the messages."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_") or not callable(member) or isinstance(member, (staticmethod, classmethod, type)):
            continue
        wrapped = getattr(member, "__wrapped__", None)
        is_context = wrapped is not None and inspect.isgeneratorfunction(wrapped)
        setattr(cls, name, _context_manager(member) if is_context else _method(member))
    return cls


def _method(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (psycopg.Error, PoolTimeout) as error:
            raise translate(error, self.location) from error
    return call


def _context_manager(method: Callable[..., Any]) -> Callable[..., Any]:
    """A ``@contextmanager`` method: errors at entry, inside the block and at exit (COMMIT)."""
    @functools.wraps(method)
    @contextmanager
    def call(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            with method(self, *args, **kwargs) as value:
                yield value
        except (psycopg.Error, PoolTimeout) as error:
            raise translate(error, self.location) from error
    return call
