"""The CI gates, run by the test suite so that `bash .ci/test` fails on any finding.

- ruff (pyflakes, bugbear, pyupgrade, isort; configured in pyproject.toml) over the repository;
- mypy over runner/ (default level, stricter per module; [tool.mypy] in pyproject.toml);
- the wheel ships ``runner/py.typed``, so users' type checkers read our annotations;
- constraints.txt, the lock `bash .ci/test` installs from, pins every dependency of
  pyproject.toml at a version its range allows (regenerate it with `bash .ci/lock`).

docs/ci.md describes each gate and how to fix what it finds.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "constraints.txt"


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    result = _tool("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = _tool("mypy")  # what to check and how strictly: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_wheel_ships_py_typed(built_wheel: Path):
    assert "runner/py.typed" in zipfile.ZipFile(built_wheel).namelist()


def _pins(text: str) -> dict[str, Version]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue  # a pin for another Python or platform (the lock is universal)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def lock_problems(pyproject: str, lock: str) -> list[str]:
    """What constraints.txt lacks for pyproject.toml: unlocked dependencies, pins outside their range."""
    project = tomllib.loads(pyproject)["project"]
    declared = [Requirement(text) for text in project["dependencies"] + project["optional-dependencies"]["test"]]
    pins = _pins(lock)
    problems = []
    for requirement in declared:
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement} is not locked")
        elif pinned not in requirement.specifier:
            problems.append(f"{requirement} is locked at {pinned}, outside its range")
    return problems


def test_the_lock_pins_every_dependency_within_its_range():
    problems = lock_problems((REPO / "pyproject.toml").read_text(encoding="utf-8"), LOCK.read_text(encoding="utf-8"))
    assert not problems, f"constraints.txt is out of date with pyproject.toml; run `bash .ci/lock`: {problems}"


def test_the_lock_check_sees_a_new_dependency_and_a_raised_floor():
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    lock = LOCK.read_text(encoding="utf-8")
    grown = pyproject.replace('dependencies = [\n', 'dependencies = [\n  "journey-runner-not-a-package>=1.0",\n  "click>=99",\n', 1)
    assert lock_problems(grown, lock) == [
        "journey-runner-not-a-package>=1.0 is not locked", f"click>=99 is locked at {_pins(lock)['click']}, outside its range"]
