"""``journey init``: the files of a new project, shipped inside the package.

The scaffold lives in ``runner/scaffold/`` as plain files, read through
``importlib.resources`` so an installed wheel writes the same project as a
checkout. A leading ``dot-`` in a shipped name stands for ``.``
(``dot-github/workflows/journeys.yml`` is written as
``.github/workflows/journeys.yml``): hidden files are easy to lose when
packaging. The project's JSON Schemas are copied into ``schemas/`` so the
editor modelines of the scaffold's YAML files work offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from runner import __version__
from runner.language.resources import SCHEMA_NAMES

HIDDEN_PREFIX = "dot-"
NAME_MARK = "__PROJECT_NAME__"  # the project's name, in project.yaml (as a quoted YAML string) and README.md
VERSION_MARK = "__RUNNER_VERSION__"  # this journey-runner's version, pinned in the CI workflow


@dataclass(frozen=True)
class ScaffoldFile:
    path: PurePosixPath  # where it goes, relative to the project folder
    text: str


def default_name(folder: Path) -> str:
    """A project name from its folder: ``acme-journeys`` -> ``Acme Journeys``."""
    words = folder.resolve().name.replace("-", " ").replace("_", " ").split()
    return " ".join(word[:1].upper() + word[1:] for word in words) or "My project"


def scaffold_files(name: str) -> list[ScaffoldFile]:
    """Every file of a new project called ``name``, in a stable order."""
    found = [
        ScaffoldFile(_target(relative), _fill(relative, resource.read_text(encoding="utf-8"), name))
        for relative, resource in _walk(files("runner") / "scaffold", PurePosixPath())
    ]
    schemas = files("runner") / "schemas"
    found += [
        ScaffoldFile(PurePosixPath("schemas", f"{schema}.schema.json"),
                     (schemas / f"{schema}.schema.json").read_text(encoding="utf-8"))
        for schema in SCHEMA_NAMES
    ]
    return sorted(found, key=lambda item: str(item.path))


def existing(folder: Path, planned: list[ScaffoldFile]) -> list[str]:
    """The scaffold's files that ``folder`` already has (what writing would overwrite)."""
    return [str(item.path) for item in planned if (folder / item.path).exists()]


def write(folder: Path, planned: list[ScaffoldFile]) -> None:
    """Write the files (folders made as needed; an existing file is replaced)."""
    for item in planned:
        target = folder.joinpath(*item.path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item.text, encoding="utf-8")


def _walk(folder: Traversable, prefix: PurePosixPath):
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            yield from _walk(entry, prefix / entry.name)
        else:
            yield prefix / entry.name, entry


def _target(relative: PurePosixPath) -> PurePosixPath:
    parts = [f".{part[len(HIDDEN_PREFIX):]}" if part.startswith(HIDDEN_PREFIX) else part for part in relative.parts]
    return PurePosixPath(*parts)


def _fill(relative: PurePosixPath, text: str, name: str) -> str:
    """The marks replaced: the name as a YAML double-quoted string in YAML (JSON's escapes are YAML's)."""
    if relative.suffix in (".yaml", ".yml"):
        quoted = json.dumps(name, ensure_ascii=False)
        text = text.replace(NAME_MARK, quoted)
    else:
        text = text.replace(NAME_MARK, name)
    return text.replace(VERSION_MARK, __version__)
