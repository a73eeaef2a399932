"""Files shipped inside the package (the JSON Schemas).

``schemas/`` reaches the wheel through the ``runner/schemas`` link, so the
schemas are always read through ``importlib.resources`` — never by a path
relative to the repository, which would break once installed.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

SCHEMA_NAMES = ("journey", "project", "contacts", "scenario")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema ``schemas/<name>.schema.json`` (cached; do not mutate)."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}; expected one of {', '.join(SCHEMA_NAMES)}")
    resource = files("runner") / "schemas" / f"{name}.schema.json"
    return json.loads(resource.read_text(encoding="utf-8"))
