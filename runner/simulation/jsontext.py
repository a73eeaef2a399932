"""``json.dumps(value, indent=2, ensure_ascii=False)``, the same bytes, at the C encoder's speed.

With ``indent`` set, the standard library encodes in pure Python (about 3.6
times slower than its C encoder), which made a large ``journey simulate
--format json`` cost as much as the simulation. The C encoder is used here
for every container that holds only scalars (a timeline event): encoded
compactly with ``",\\n"`` between items (a raw line break cannot occur inside
an encoded string, which escapes it), each line break then indented.
Containers of containers are laid out here, exactly as ``json`` lays them out.
"""

from __future__ import annotations

import json
from typing import Any

_CONTAINERS = (dict, list, tuple)
_SCALARS = frozenset({str, int, float, bool, type(None)})
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",\n", ": ")).encode
_scalar = json.JSONEncoder(ensure_ascii=False).encode


def dumps(value: Any, indent: int = 2) -> str:
    """What ``json.dumps(value, indent=indent, ensure_ascii=False)`` returns."""
    return _encode(value, 0, indent)


def _encode(value: Any, level: int, indent: int) -> str:
    if not isinstance(value, _CONTAINERS) or not value:
        return _scalar(value)
    inner = "\n" + " " * (indent * (level + 1))
    outer = "\n" + " " * (indent * level)
    is_dict = isinstance(value, dict)
    items = value.values() if isinstance(value, dict) else value
    if is_dict and set(map(type, value)) != {str}:
        # json turns other keys into strings its own way: let it, then indent
        return json.dumps(value, indent=indent, ensure_ascii=False).replace("\n", outer)
    if not isinstance(value, dict) and all(map(_flat_dict, value)):
        return _flat_dicts(value, inner, outer, indent)
    opening, closing = ("{", "}") if is_dict else ("[", "]")
    if set(map(type, items)) <= _SCALARS:
        compact = _compact(value)
        return opening + inner + compact[1:-1].replace("\n", inner) + outer + closing
    if isinstance(value, dict):
        parts = [_scalar(key) + ": " + _encode(item, level + 1, indent)
                 for key, item in value.items()]
    else:
        parts = [_encode(item, level + 1, indent) for item in value]
    return opening + inner + ("," + inner).join(parts) + outer + closing


def _flat_dict(item: Any) -> bool:
    """A non-empty dict of string keys and scalar values (a timeline event)."""
    return type(item) is dict and bool(item) and set(map(type, item)) == {str} and set(map(type, item.values())) <= _SCALARS


def _flat_dicts(items: list | tuple, inner: str, outer: str, indent: int) -> str:
    """A list of flat dicts in one C-encoder call.

    Compactly, ``[{"a": 1,\n"b": 2},\n{"a": 3,\n"b": 4}]``: every raw line break is
    a separator, and one followed by ``{`` (not a key's ``"``) separates two dicts.
    NUL never occurs in the encoded text (it is escaped), so it marks those first.
    """
    keys = inner + " " * indent
    body = _compact(items)[2:-2].replace("},\n{", "\0").replace("\n", keys).replace("\0", f"{inner}}},{inner}{{{keys}")
    return f"[{inner}{{{keys}{body}{inner}}}{outer}]"
