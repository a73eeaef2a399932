"""What else a pull request changed besides journeys: templates and project.yaml, as ``journey diff --base``
and reviewers see them (a template edit changes what every journey using it sends)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from runner.core.problems import JourneyError
from runner.review.diff import JourneyDiff, format_json

MARKS = {"added": "+", "removed": "-", "changed": "*"}
STATUS = {"A": "added", "D": "removed"}


@dataclass(frozen=True)
class FileChange:
    file: str  # relative to the repository, posix
    status: str  # added removed changed
    added_lines: int | None = None  # None for binary files
    removed_lines: int | None = None

    def text(self) -> str:
        if self.status != "changed" or self.added_lines is None:
            return f"{self.file} {self.status}"
        return f"{self.file} changed (+{self.added_lines} -{self.removed_lines} lines)"


def changed_project_files(ref: str, root: Path, repo: Path) -> list[FileChange]:
    """project.yaml and the templates folder: tracked differences from ``ref`` plus untracked files."""
    from runner.review.gitbase import _git

    paths = [(root / name).resolve().relative_to(repo.resolve()).as_posix() for name in ("project.yaml", "templates")]
    statuses = _git(["diff", "--name-status", "--no-renames", ref, "--", *paths], repo)
    counts = _git(["diff", "--numstat", "--no-renames", ref, "--", *paths], repo)
    if statuses.returncode != 0 or counts.returncode != 0:
        raise JourneyError(f"git diff failed: {(statuses.stderr or counts.stderr).strip()}")
    lines: dict[str, tuple[int | None, int | None]] = {}
    for row in counts.stdout.splitlines():
        added, removed, name = row.split("\t", 2)
        lines[name] = (int(added), int(removed)) if added.isdigit() and removed.isdigit() else (None, None)
    found = [FileChange(name, STATUS.get(code[:1], "changed"), *lines.get(name, (None, None)))
             for code, name in (row.split("\t", 1) for row in statuses.stdout.splitlines())]
    untracked = _git(["ls-files", "--others", "--exclude-standard", "--", *paths], repo)
    found += [FileChange(name, "added") for name in untracked.stdout.splitlines()]
    return sorted(found, key=lambda change: change.file)


def format_with_files(fmt: str, diffs: list[JourneyDiff], files: list[FileChange],
                      journeys_text: str) -> str:
    """The journey diff (``journeys_text``, in ``fmt``) followed by the other files changed."""
    if fmt == "json":
        document = json.loads(format_json(diffs))
        document["files"] = [{"file": f.file, "status": f.status, "added_lines": f.added_lines,
                              "removed_lines": f.removed_lines} for f in files]
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if not files:
        return journeys_text
    if fmt == "markdown":
        icons = {"added": "➕", "removed": "➖", "changed": "✏️"}
        rows = [f"- {icons[f.status]} `{f.file}`{f.text()[len(f.file):]}" for f in files]
        return journeys_text + "\n### Templates and project settings\n\n" + "\n".join(rows) + "\n"
    rows = [f"  {MARKS[f.status]} {f.text()}" for f in files]
    return journeys_text + "\ntemplates and project settings\n" + "\n".join(rows) + "\n"
