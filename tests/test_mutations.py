"""Randomly broken journeys never crash `journey validate`.

Hypothesis mutates the sample journeys (journeys/*.yaml, or the fixture
journey in tests/hostile when there are none): it deletes and renames keys,
swaps types and values, and corrupts the text. Whatever comes out, validation
must report problems — never raise — and every problem must point at a real
line and column.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.language import schema
from runner.language.loader import load_project, validate
from runner.language.yamlsource import load_file

REPO = Path(__file__).resolve().parent.parent
HOSTILE = REPO / "tests" / "hostile"
SAMPLES = sorted((REPO / "journeys").glob("*.yaml")) or [HOSTILE / "journeys" / "onboarding.yaml"]
ROOT = REPO if (REPO / "project.yaml").exists() and (REPO / "journeys").is_dir() else HOSTILE
TEXTS = [path.read_text(encoding="utf-8") for path in SAMPLES]
DATA = [load_file(path)[0].data for path in SAMPLES]

ODD_VALUES = st.sampled_from([
    None, True, 0, -1, 3.5, "", "x", "2days", "0d", "25:99", "Mars/Base", "* * *", "{{ broken", [], {}, [1, "a"],
    {"all": []}, {"segment": "nope"}, {"event": 5}, "a" * 300, 10**30,
])


def _nodes(data: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _nodes(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _nodes(value, path + (index,))
    return found


def _get(data: Any, path: tuple) -> Any:
    for item in path:
        data = data[item]
    return data


def _mutate(draw, data, actions: list[str], *, wrap_in_mapping: bool) -> str:
    """YAML text of ``data`` after 1-4 random structural mutations drawn from ``actions``."""
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _nodes(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _get(data, path[:-1]), path[-1]
        action = draw(st.sampled_from(actions))
        if action == "delete":
            del parent[last]
        elif action == "rename" and isinstance(parent, dict):
            new = draw(st.sampled_from([last[:-1], last + "s", last.upper(), "x_" + last, "if", "email", "id"]))
            parent[new] = parent.pop(last)
        elif action == "odd":
            parent[last] = copy.deepcopy(draw(ODD_VALUES))  # never mutate the shared samples
        elif action == "swap":
            other = draw(st.sampled_from(paths))
            try:
                parent[last] = yaml.safe_load(yaml.safe_dump(_get(data, other)))
            except (KeyError, IndexError, TypeError):
                pass
        elif wrap_in_mapping and not draw(st.booleans()):
            parent[last] = {"x": parent[last]}
        else:
            parent[last] = [parent[last]]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@st.composite
def mutated(draw) -> str:
    """YAML text of a sample journey after 1-4 random structural mutations."""
    index = draw(st.integers(0, len(DATA) - 1))
    data = yaml.safe_load(yaml.safe_dump(DATA[index]))  # a deep copy
    return _mutate(draw, data, ["delete", "rename", "odd", "swap", "wrap"], wrap_in_mapping=True)


PROJECT_TEXT = (HOSTILE / "project.yaml").read_text(encoding="utf-8")
PROJECT_DATA = load_file(HOSTILE / "project.yaml")[0].data


@st.composite
def mutated_project(draw) -> str:
    """The fixture project.yaml after 1-4 random structural mutations."""
    data = yaml.safe_load(yaml.safe_dump(PROJECT_DATA))
    return _mutate(draw, data, ["delete", "odd", "wrap"], wrap_in_mapping=False)


@st.composite
def corrupted(draw) -> str:
    """A sample's text with characters inserted, deleted or replaced."""
    text = TEXTS[draw(st.integers(0, len(TEXTS) - 1))]
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, max(0, len(text) - 1)))
        junk = draw(st.sampled_from(["\t", ":", "- ", "{", "]", "&a ", "*a", "\"", "'", "#", "\n  ", "!!python/object ",
                                     "<<: *a\n", "\u00e9", "\x00", "%", "|", ">", "? "]))
        if draw(st.booleans()):
            text = text[:at] + junk + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
    return text


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module's mutants (hypothesis calls a test many times; tmp_path is per call)."""
    return tmp_path_factory.mktemp("mutations")


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture project's journeys and templates, beside a project.yaml each example rewrites."""
    copy = tmp_path_factory.mktemp("mutated-project")
    for folder in ("journeys", "templates"):
        shutil.copytree(HOSTILE / folder, copy / folder)
    return copy


def _check(text: str, work: Path) -> None:
    path = work / "mutant.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = validate([path], root=ROOT)  # must not raise
    assert result.exit_code in (0, 1)
    lines = text.count("\n") + 2
    for problem in result.problems:
        assert problem.line >= 1 and problem.col >= 1 and problem.code and problem.message
        if problem.file.endswith("mutant.yaml"):
            assert problem.line <= lines, problem


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_structural_mutations_never_crash(work: Path, text: str):
    _check(text, work)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted())
def test_text_corruption_never_crashes(work: Path, text: str):
    _check(text, work)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fast_and_full_schema_validators_agree(text: str):
    data = yaml.safe_load(text)
    assert schema.is_valid(data, "journey") == schema.validator("journey").is_valid(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_project())
def test_project_file_mutations_never_crash(project_copy: Path, text: str):
    (project_copy / "project.yaml").write_text(text, encoding="utf-8")
    loaded = load_project(project_copy)  # must not raise, and still gives a usable Project
    assert loaded.project is not None and loaded.root == project_copy
    for problem in loaded.problems:
        assert problem.line >= 1 and problem.col >= 1


def test_real_cli_runs_on_mutants_show_no_traceback(tmp_path: Path):
    rng = random.Random(20261123)
    environment = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}
    for number in range(5):
        text = TEXTS[number % len(TEXTS)]
        for _ in range(6):
            at = rng.randrange(len(text))
            text = text[:at] + rng.choice(["\t", ": ", "{", "]", "*x", "\"", "- "]) + text[at + rng.randrange(3):]
        path = tmp_path / f"cli_mutant_{number}.yaml"
        path.write_text(text, encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "runner", "validate", str(path)], cwd=ROOT,
                                capture_output=True, text=True, env=environment, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode in (0, 1)
