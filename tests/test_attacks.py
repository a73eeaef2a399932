"""The attack corpus in tests/attacks/: one hostile input per file, each refused cleanly.

Every class has its folder and its contract (docs/security.md has the figures):

- ``imports/``: a contacts or events file (the name says which) whose second
  record is hostile and whose first and third are good. The import keeps the
  two good records and reports the bad one by line, with ``--strict`` it keeps
  nothing, and never a traceback. The tracking plan below types the
  attributes the contact cases use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.production.ingest import attribute_types, import_contacts, import_events
from runner.store import open_store

ATTACKS = Path(__file__).parent / "attacks"
PLAN = {"attributes": {"company_size": "integer", "nps": "number", "vip": "boolean"}}


def _cases(kind: str) -> list[Path]:
    return sorted((ATTACKS / kind).iterdir())


def _import(path: Path, store, strict: bool = False):
    if path.name.startswith("contacts"):
        return import_contacts(store, path, strict=strict, attribute_types=attribute_types(PLAN))
    return import_events(store, path, strict=strict)


@pytest.mark.parametrize("case", _cases("imports"), ids=lambda p: p.name)
def test_import_attack_loses_only_its_line(case: Path, tmp_path):
    bad_line = 3 if case.suffix == ".csv" else 2  # a CSV header is line 1
    with open_store(tmp_path / "journey.db") as store:
        result = _import(case, store)
        assert [p.line for p in result.bad] == [bad_line], result.bad
        assert result.imported == 2
        table = "contacts" if case.name.startswith("contacts") else "events"
        assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 2
    with open_store(tmp_path / "strict.db") as store:
        strict = _import(case, store, strict=True)
        assert strict.aborted and strict.imported == 0
        assert store.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_import_attacks_exit_non_zero_without_a_traceback(tmp_path):
    """The CLI reports each hostile line by file:line and exits 1."""
    (tmp_path / "project.yaml").write_text(json.dumps({"name": "attacks", "tracking_plan": PLAN}), encoding="utf-8")
    for case in _cases("imports"):
        kind = "contacts" if case.name.startswith("contacts") else "events"
        run = subprocess.run([sys.executable, "-m", "runner", kind, "import", str(case), "--db", "j.db"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 1, (case.name, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr
        line = 3 if case.suffix == ".csv" else 2
        assert f"{case}:{line}:" in run.stderr, (case.name, run.stderr)
