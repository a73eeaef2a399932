"""Write examples/contacts.yaml out as contacts.jsonl and contacts.csv.

The YAML file is the one people edit; the JSONL (same objects, events
included) and CSV (attributes only, nested ones as dotted columns, no events)
copies exist to show and test the other accepted formats. Run it after
editing the YAML:

    .venv/bin/python examples/export_contacts.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
FIRST_COLUMNS = ["id", "timezone", "email", "first_name", "last_name"]


def flatten(attributes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested attributes as dotted columns: {"meddic": {"metrics": m}} -> {"meddic.metrics": m}."""
    flat: dict[str, Any] = {}
    for name, value in attributes.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def csv_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Well-known columns first, then the rest in order of first appearance."""
    seen = [column for column in FIRST_COLUMNS]
    for row in rows:
        seen.extend(column for column in row if column not in seen)
    return seen


def export(source: Path = HERE / "contacts.yaml", target_dir: Path = HERE) -> tuple[Path, Path]:
    contacts = yaml.safe_load(source.read_text(encoding="utf-8"))["contacts"]
    jsonl = target_dir / (source.stem + ".jsonl")
    with jsonl.open("w", encoding="utf-8") as handle:
        for contact in contacts:
            handle.write(json.dumps(contact, ensure_ascii=False) + "\n")
    rows = [{"id": c["id"], "timezone": c.get("timezone", ""), **flatten(c.get("attributes") or {})} for c in contacts]
    table = target_dir / (source.stem + ".csv")
    with table.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=csv_columns(rows), restval="")
        writer.writeheader()
        writer.writerows(rows)
    return jsonl, table


if __name__ == "__main__":
    for path in export():
        print(f"wrote {path.relative_to(HERE.parent)}")
