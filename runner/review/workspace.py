"""Finding what the review commands look at: the project, one journey, test contacts.

Review commands accept a journey by id or by file, and must refuse a broken
project with its problems (never a traceback), so this module wraps
``runner.language.loader`` once for all of them.
"""

from __future__ import annotations

from pathlib import Path

from runner.core.model import Journey
from runner.core.problems import ERROR, JourneyError, UsageError
from runner.language.loader import LoadedProject, load_project
from runner.language.schema import check
from runner.language.yamlsource import YamlDocument, load_file

DEFAULT_CONTACTS = ("examples/contacts.yaml", "examples/contacts.jsonl", "examples/contacts.csv")


def load_checked(root: Path | None = None) -> LoadedProject:
    """The project with all its journeys; JourneyError (with the problems) when any has an error."""
    loaded = load_project(root, templates=False)
    if not loaded.ok:
        raise JourneyError(f"the project has {len(loaded.errors)} error(s); run `journey validate`", loaded.errors)
    return loaded


def select_journey(loaded: LoadedProject, name: str) -> Journey:
    """A journey of the project by id, or by the path of its file."""
    for journey in loaded.journeys:
        if journey.id == name:
            return journey
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UsageError(f"{name}: no such journey file")
        for journey in loaded.journeys:
            if Path(journey.source).resolve() == path.resolve():
                return journey
        return journey_from_file(path)
    known = ", ".join(sorted(j.id for j in loaded.journeys)) or "none"
    raise UsageError(f"no journey '{name}' in the project (journeys: {known})")


def journey_from_document(document: YamlDocument) -> Journey:
    from runner.core.build import build_journey

    try:
        return build_journey(document.data, document.file)
    except (JourneyError, ValueError, KeyError, TypeError) as error:
        raise JourneyError(f"{document.file}: journey cannot be built: {error}") from None


def journey_from_file(path: Path) -> Journey:
    """A journey straight from one file (outside the project, or one the project skips)."""
    document, problems = load_file(path)
    if document is None:
        raise JourneyError(f"{path}: cannot read the journey", problems)
    errors = [p for p in list(problems) + check(document, "journey") if p.severity == ERROR]
    if errors:
        raise JourneyError(f"{document.file}: not a valid journey file", errors)
    return journey_from_document(document)


def default_contacts(root: Path) -> Path | None:
    """The project's test contacts file when none is named (examples/contacts.yaml …)."""
    for candidate in DEFAULT_CONTACTS:
        if (root / candidate).is_file():
            return root / candidate
    return None
