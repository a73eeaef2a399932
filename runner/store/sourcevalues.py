"""Who owns an attribute: a contacts import changes only what its source changed.

A contacts import (a CRM export, a nightly sync) delivers the source's
current values, most of them the same as last time. Applying them as they
are would revert what journeys set since (`lead_status: sql` back to the
CRM's stale `new`). So the store remembers, per contact, the values imports
last delivered (``contacts.imported``), and an import applies only the values
that differ from those: a change at the source. A value a journey set stays
until the source changes its own value; then the newer change wins.

Pure functions over JSON-like values (RFC 7396 merge patches: objects merge,
``null`` removes).
"""

from __future__ import annotations

from typing import Any


def source_changes(values: dict[str, Any], delivered: dict[str, Any]) -> dict[str, Any]:
    """The merge patch of ``values`` that differs from what the source ``delivered`` last time."""
    patch: dict[str, Any] = {}
    for key, value in values.items():
        before = delivered.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = source_changes(value, before)
            if nested:
                patch[key] = nested
        elif not _same(value, before):
            patch[key] = value
    return patch


def apply_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``target`` with the RFC 7396 merge ``patch`` applied (a new dict; nulls remove keys)."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            before = merged.get(key)
            merged[key] = apply_patch(before if isinstance(before, dict) else {}, value)
        else:
            merged[key] = value
    return merged


def _same(value: Any, before: Any) -> bool:
    """Equal as JSON values (``1`` is not ``true``; an absent key is ``null``)."""
    return type(value) is type(before) and value == before
