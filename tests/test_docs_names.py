"""Every ``runner.x.y`` the documentation names exists (docs/run.md once named a
``load_state`` that did not)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
NAME = re.compile(r"(?<![\w.\-/])runner(?:\.[A-Za-z_]\w*)+")


def _names() -> list[tuple[str, str]]:
    found = {(path.name, match.group(0).rstrip(".")) for path in DOCUMENTS
             for match in NAME.finditer(path.read_text(encoding="utf-8"))}
    return sorted(found)


def _resolves(dotted: str) -> bool:
    """Import the longest module prefix, then look the rest up as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_the_documents_name_runner_attributes():
    assert len(_names()) >= 20  # the pattern finds the library API sections


@pytest.mark.parametrize(("document", "name"), _names(), ids=lambda value: value)
def test_documented_name_resolves(document: str, name: str):
    assert _resolves(name), f"{document} names {name}, which does not exist"
