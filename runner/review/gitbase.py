"""Journeys as they were at a git ref (``git show REF:path``), compared with the work tree.

Pull-request checks compare the branch with its base: which journey files
changed, what each meant before, and whether a changed journey bumped its
version. Only ``git`` itself is run (no library), with arguments as a list,
never a shell string.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from runner.core.problems import ERROR, JourneyError, Problem, UsageError
from runner.language.loader import display_name, find_project_root
from runner.language.yamlsource import YamlDocument, load_file, parse_text
from runner.review.diff import JourneyDiff, diff_journeys, meaning_hash

JOURNEY_SUFFIXES = (".yaml", ".yml")


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise UsageError("git is not installed; --base needs git") from None


def repo_root(path: Path) -> Path:
    result = _git(["rev-parse", "--show-toplevel"], path)
    if result.returncode != 0:
        raise UsageError(f"{path} is not inside a git repository; --base needs one")
    return Path(result.stdout.strip())


def check_ref(ref: str, cwd: Path) -> None:
    if ref.startswith("-"):
        raise UsageError(f"'{ref}' is not a git ref")
    result = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd)
    if result.returncode != 0:
        raise UsageError(f"unknown git ref '{ref}' (fetch it first, e.g. `git fetch origin main`)")


def show(ref: str, path: Path, repo: Path) -> str | None:
    """The file's text at ``ref``, or None when it did not exist there."""
    relative = path.resolve().relative_to(repo.resolve()).as_posix()
    result = _git(["show", f"{ref}:{relative}"], repo)
    if result.returncode != 0:
        return None
    return result.stdout


def changed_files(ref: str, folder: Path, repo: Path) -> list[Path]:
    """Files under ``folder`` that differ between ``ref`` and the work tree (untracked included)."""
    relative = folder.resolve().relative_to(repo.resolve()).as_posix() or "."
    tracked = _git(["diff", "--name-only", "--no-renames", ref, "--", relative], repo)
    if tracked.returncode != 0:
        raise JourneyError(f"git diff failed: {tracked.stderr.strip()}")
    untracked = _git(["ls-files", "--others", "--exclude-standard", "--", relative], repo)
    names = tracked.stdout.splitlines() + untracked.stdout.splitlines()
    return sorted({repo / name for name in names if name.endswith(JOURNEY_SUFFIXES)})


def _document(text: str | None, name: str) -> tuple[YamlDocument | None, list[Problem]]:
    if text is None:
        return None, []
    return parse_text(text, name)


def journeys_folder(root: Path) -> Path:
    """The project's journeys folder (project.yaml ``journeys:``, default ``journeys``)."""
    project_file = root / "project.yaml"
    folder = "journeys"
    if project_file.is_file():
        document, _ = load_file(project_file)
        if document is not None and isinstance(document.data.get("journeys"), str):
            folder = document.data["journeys"]
    return root / folder


@dataclass
class BaseComparison:
    """Every journey that changed since a ref: the diffs, plus files that could not be read."""

    ref: str
    diffs: list[JourneyDiff] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    documents: dict[str, YamlDocument] = field(default_factory=dict)  # journey id -> work-tree document


def _by_id(documents: list[YamlDocument]) -> dict[str, YamlDocument]:
    found: dict[str, YamlDocument] = {}
    for document in documents:
        journey_id = document.data.get("id")
        if isinstance(journey_id, str) and journey_id not in found:
            found[journey_id] = document
    return found


def compare_with_base(root: Path | None, ref: str) -> BaseComparison:
    """Diff every journey file changed between ``ref`` and the work tree (matched by journey id)."""
    root = Path(root) if root is not None else find_project_root()
    repo = repo_root(root)
    check_ref(ref, repo)
    comparison = BaseComparison(ref)
    old_docs: list[YamlDocument] = []
    new_docs: list[YamlDocument] = []
    for path in changed_files(ref, journeys_folder(root), repo):
        name = display_name(path)
        old_doc, _ = _document(show(ref, path, repo), f"{ref}:{name}")
        if old_doc is not None:
            old_docs.append(old_doc)
        if path.is_file():
            new_doc, problems = load_file(path, name)
            comparison.problems += [p for p in problems if p.severity == ERROR]
            if new_doc is not None:
                new_docs.append(new_doc)
    before, after = _by_id(old_docs), _by_id(new_docs)
    comparison.documents = after
    for journey_id in sorted(set(before) | set(after)):
        old_doc, new_doc = before.get(journey_id), after.get(journey_id)
        result = diff_journeys(
            old_doc.data if old_doc else None, new_doc.data if new_doc else None,
            old_doc.file if old_doc else None, new_doc.file if new_doc else None,
        )
        if result.status != "unchanged":
            comparison.diffs.append(result)
    return comparison


def version_bump_problems(root: Path | None, base_ref: str) -> list[Problem]:
    """An error at the ``version`` key of every journey that changed since ``base_ref`` but kept its version."""
    comparison = compare_with_base(root, base_ref)
    problems = []
    for result in comparison.diffs:
        if not result.version_missing:
            continue
        document = comparison.documents[result.journey]
        assert result.old_version is not None  # a version can only be missing from a journey the base has
        problems.append(document.problem(
            ["version"], "journey.version-not-bumped",
            f"journey `{result.journey}` changed since {base_ref} but its version is still {result.new_version}",
            hint=f"set `version: {result.old_version + 1}` so contacts in flight stay on v{result.old_version}",
            key=True,
        ))
    return problems


__all__ = ["BaseComparison", "compare_with_base", "version_bump_problems", "meaning_hash"]
