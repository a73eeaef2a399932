"""The one normalisation of an email address: how it is stored and how it is matched.

Every path that keeps or looks up an address goes through ``email_key``: contacts written by
imports and by the tick on SQLite and on PostgreSQL, suppressions by address, bounce reports.
The databases' own ``lower()`` would disagree with it and with each other (SQLite's lowers
ASCII only, PostgreSQL's follows the database's locale), so no SQL statement lower-cases an
address: the key is computed here and written as a parameter.
"""

from __future__ import annotations

from typing import overload


@overload
def email_key(address: str) -> str: ...
@overload
def email_key(address: object) -> str | None: ...
def email_key(address: object) -> str | None:
    """The whole address lower-cased by Python's Unicode ``str.lower`` (``ÖZGE@Örnek.com.tr``
    -> ``özge@örnek.com.tr``), as docs/store.md promises; None for no address (missing, not text)."""
    return address.lower() if isinstance(address, str) else None
