"""Files -> checked documents -> model objects, with every problem found.

``load_project`` is the one way in for every command: it reads
``project.yaml`` and the journey files (and, when asked, test contacts,
scenarios and templates), runs all checks — YAML, schema, semantics,
templates — without stopping at the first problem, and builds
``runner.core.model`` objects only for files that have no errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.collector import collector_paused
from runner.core.problems import ERROR, JourneyError, Problem
from runner.language import eventcheck, localecheck, schema, semantics, templatecheck
from runner.language.projectfiles import UnsafeFile, home_of, read_inside
from runner.language.yamlsource import YamlDocument, load_bytes

if TYPE_CHECKING:
    from runner.core.model import Journey, Project

PROJECT_FILE = "project.yaml"
YAML_SUFFIXES = (".yaml", ".yml")
_SUBJECT = frozenset({"subject"})
_PAYLOAD = frozenset({"payload"})
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".hypothesis", ".pytest_cache"}


@dataclass
class LoadedProject:
    """A project as read from disk: the model (what is valid) and every problem."""

    root: Path  # folder holding project.yaml (or the cwd when there is none)
    project: Project  # runner.core.model.Project (defaults when there is no project.yaml)
    journeys: list[Journey]  # only files that have no errors
    problems: list[Problem]
    raw: dict[str, dict] = field(default_factory=dict)  # journey id -> raw mapping (for diff/graph)
    sources: dict[str, Path] = field(default_factory=dict)  # journey id -> file
    checked: list[Path] = field(default_factory=list)  # every file read (project, journeys, templates, ...)

    @property
    def ok(self) -> bool:
        """True when no problem is an error (warnings allowed)."""
        return not any(problem.severity == ERROR for problem in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == ERROR]


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the cwd) holding project.yaml.

    Without one anywhere above, the current directory is the root (a project
    of journeys with all project settings at their defaults).
    """
    here = Path(start) if start is not None else Path.cwd()
    here = _real(here)
    if here.is_file() or not here.exists():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return Path.cwd()


def _real(path: Path) -> Path:
    """``path`` with links resolved as far as they go (a link loop is left as it is, not an error)."""
    return Path(os.path.realpath(path))


def display_name(path: Path) -> str:
    """How a file is named in problems: relative to the cwd when it is below it."""
    try:
        return os.path.relpath(path)  # may contain .. — still clickable in editors and CI logs
    except ValueError:  # another drive (Windows)
        return str(path)


def kind_of(path: Path) -> str:
    """Which schema a file follows, from its name (see docs/language.md)."""
    name = path.name
    if name == PROJECT_FILE:
        return "project"
    if path.suffix in templatecheck.TEMPLATE_SUFFIXES:
        return "template"
    stem = name.rsplit(".", 1)[0]
    if stem.endswith(".scenario"):
        return "scenario"
    if stem.startswith("contacts"):
        return "contacts"
    return "journey"


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files given, plus YAML and template files under folders given (sorted, no duplicates).

    Folders holding their own project.yaml below a folder given are other
    projects (test fixtures, examples) and are skipped.
    """
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if semantics.is_dir(path):
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(
                    d for d in dirs
                    if d not in _SKIP_DIRS and not d.startswith(".")
                    and not (Path(folder) / d / PROJECT_FILE).is_file()  # a nested project is not ours
                )
                for name in sorted(files):
                    if name.endswith(YAML_SUFFIXES + templatecheck.TEMPLATE_SUFFIXES):
                        found.append(Path(folder) / name)
        else:
            found.append(path)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(_real(path), path)
    return list(unique.values())


class _Load:
    """One run of the loader; keeps the project context and the problems."""

    def __init__(self, root: Path):
        self.root = root
        self.problems: list[Problem] = []
        self.project_data: dict[str, Any] | None = None
        self.project_ok = True
        self.templates_dir = root / "templates"
        self.context = semantics.ProjectContext(templates_dir=self.templates_dir)
        self.template_context = templatecheck.TemplateContext(templates_dir=self.templates_dir)
        self.journey_docs: list[tuple[Path, YamlDocument, list[Problem]]] = []
        self.used_templates: set[Path] = set()
        self.checked_templates: set[Path] = set()
        self.checked: list[Path] = []
        self.scenarios: list[YamlDocument] = []
        self.scenario_folders: dict[str, Path] = {}  # scenario file (as named in problems) -> its folder
        self.other_journey_docs: list[YamlDocument] = []  # the project's journeys not among the paths given

    def project(self) -> None:
        path = self.root / PROJECT_FILE
        if not path.is_file():
            return
        self.checked.append(path)
        doc, problems = self._load_yaml(path)
        if doc is not None:
            problems += schema.check(doc, "project")
            data = doc.data
            folder = data.get("templates") if isinstance(data.get("templates"), str) else "templates"
            self.templates_dir = self.root / folder
            self.context = semantics.ProjectContext.from_data(data, self.templates_dir)
            problems += semantics.check_project(doc, self.context)
            problems += localecheck.check_project(doc, self.context.attributes)
            self.project_data = data
        self.template_context = templatecheck.TemplateContext(
            attributes=self.context.attributes, scores=self.context.scores if doc is not None else None,
            templates_dir=self.templates_dir,
        )
        self.project_ok = not any(p.severity == ERROR for p in problems)
        self.problems += problems

    def journeys_dir(self) -> Path:
        data = self.project_data or {}
        folder = data.get("journeys")
        return self.root / (folder if isinstance(folder, str) else "journeys")

    def file(self, path: Path) -> None:
        kind = kind_of(path)
        if kind == "project" and _real(path) == _real(self.root / PROJECT_FILE):
            return  # already read as this project's file
        if kind == "template":
            self.template(path)
            return
        self.checked.append(path)
        doc, problems = self._load_yaml(path)
        if doc is not None:
            problems += schema.check(doc, kind)
            problems += self._semantics(kind, doc, path)
        if kind == "journey" and doc is not None:
            self.journey_docs.append((path, doc, problems))
        self.problems += problems

    def _load_yaml(self, path: Path) -> tuple[YamlDocument | None, list[Problem]]:
        """Parse a YAML file of the project, read only if it is a regular file inside it."""
        name = display_name(path)
        try:
            raw = read_inside(path, home_of(path, self.root))
        except UnsafeFile as unsafe:
            return None, [Problem(name, 1, 1, unsafe.code, str(unsafe))]
        return load_bytes(raw, name)

    def _semantics(self, kind: str, doc: YamlDocument, path: Path) -> list[Problem]:
        if kind == "journey":
            problems, templates = semantics.check_journey(doc, self.context)
            for _, name, template_kind in templates:
                for candidate in semantics.template_candidates(name, template_kind):
                    self.used_templates.add(self.templates_dir / candidate)
            return (problems + self._subjects(doc)
                    + eventcheck.check_journey_events(doc, self.context, self.templates_dir, display_name)
                    + localecheck.check_journey(doc, self.project_data, self.templates_dir))
        if kind == "project":
            other = semantics.ProjectContext.from_data(doc.data, None)
            return semantics.check_project(doc, other)
        if kind == "contacts":
            return semantics.check_contacts(doc)
        self.scenarios.append(doc)  # journey references are checked once all journeys are known
        self.scenario_folders[doc.file] = path.parent
        return semantics.check_scenario(doc, None, path.parent)

    def scenario_journeys(self) -> None:
        if not self.scenarios:
            return
        # an id of another type than text (a list, a mapping: hostile YAML) names no journey; schema says so
        known = {doc.data.get("id") for _, doc, _ in self.journey_docs if isinstance(doc.data.get("id"), str)}
        loaded = {_real(path) for path, _, _ in self.journey_docs}
        for path in expand_paths([self.journeys_dir()]):
            if kind_of(path) == "journey" and _real(path) not in loaded:
                doc, _ = self._load_yaml(path)
                if doc is not None:
                    if isinstance(doc.data.get("id"), str):
                        known.add(doc.data.get("id"))
                    self.other_journey_docs.append(doc)
        for doc in self.scenarios:
            self.problems += semantics.check_scenario_journeys(doc, known)

    def scenario_references(self, journeys: list[Journey], project_exits: int = 0) -> None:
        """The steps, stages and journeys scenarios' expectations name must exist (once journeys are built).

        Skipped while any journey of the project cannot be built: its errors
        come first, and its steps are unknown.
        """
        from runner.core.build import build_journey
        from runner.language.scenariorefs import check_references

        if not self.scenarios:
            return
        every = list(journeys)
        built = {j.id for j in journeys}
        for doc in self.other_journey_docs:
            if not isinstance(doc.data.get("id"), str):
                return  # not a journey id (hostile YAML): it cannot be built either
            if doc.data.get("id") in built:
                continue
            try:
                every.append(build_journey(doc.data, doc.file))
            except (JourneyError, ValueError, KeyError, TypeError, AttributeError):
                return
        if len({j.id for j in every}) < len(self.journey_docs) + len(self.other_journey_docs):
            return  # a journey failed to build (or two share an id): reported already
        failed = {p.file for p in self.problems if p.severity == ERROR}
        for doc in self.scenarios:
            if doc.file not in failed:
                versions, problems = scenario_versions(doc, self.scenario_folders[doc.file], self.root)
                self.problems += problems
                if not any(p.severity == ERROR for p in problems):
                    self.problems += check_references(doc, every, versions, project_exits)

    def _subjects(self, doc: YamlDocument) -> list[Problem]:
        """The template problems of every subject and webhook payload string (each rendered as a template)."""
        problems: list[Problem] = []
        texts: list[tuple[list[Any], Any]] = []
        for path, _key, value in doc.find(_SUBJECT):
            if len(path) < 2 or path[-2] != "email":
                continue
            # one subject, or one per locale ({en: …, ja: …}): each is a template
            texts += [(path, value)] if isinstance(value, str) else \
                [([*path, tag], text) for tag, text in value.items()] if isinstance(value, dict) else []
        for path, _key, value in doc.find(_PAYLOAD):
            if len(path) >= 2 and path[-2] == "webhook":
                texts += templatecheck.payload_strings(value, path)
        for place, text in texts:
            if not isinstance(text, str) or "{" not in text:
                continue  # plain text: nothing to parse
            line, col = doc.position(place)
            if getattr(doc.node_at(place)[0], "style", None) in ('"', "'"):
                col += 1  # the text starts after the quote: a syntax error's column counts from there
            problems += templatecheck.check_source(text, doc.file, self.template_context, line=line, col=col)
        return problems

    def template(self, path: Path) -> None:
        resolved = _real(path)
        if resolved in self.checked_templates:
            return
        self.checked_templates.add(resolved)
        self.checked.append(path)
        self.problems += templatecheck.check_file(path, display_name(path), self.template_context,
                                                  root=home_of(path, self.templates_dir))

    def journey_ids(self) -> None:
        self.problems += semantics.check_journey_ids([doc for _, doc, _ in self.journey_docs])


def load_project(root: Path | None = None, paths: Sequence[Path] = (), *, templates: bool | None = None,
                 examples: bool = False) -> LoadedProject:
    """Read and check a project; ``paths`` may be files or folders (default: the journeys folder).

    ``templates``: check template files — True: all of them; False: none
    (template *references* are still checked); None (default): all when no
    paths are given, else those the loaded journeys use. ``examples``: with no
    paths, also check the test contacts and scenarios under ``examples/``
    (what ``journey validate`` does; running commands leave them out, so a
    broken scenario never stops a simulation). Never raises for bad input:
    everything wrong is in ``LoadedProject.problems``.
    """
    with collector_paused():  # thousands of live YAML nodes: see runner.collector
        return _load_project(root, paths, templates, examples)


EXAMPLES_DIR = "examples"


def example_files(root: Path) -> list[Path]:
    """Test contacts and scenarios under the project's ``examples/`` folder."""
    folder = root / EXAMPLES_DIR
    if not semantics.is_dir(folder):
        return []
    return [path for path in expand_paths([folder]) if kind_of(path) in ("contacts", "scenario")]


def _load_project(root: Path | None, paths: Sequence[Path], templates: bool | None, examples: bool) -> LoadedProject:
    from runner.core.build import build_journey
    from runner.core.model import build_project

    if root is None:
        root = find_project_root(Path(paths[0]) if paths else None)
    root = Path(root)
    semantics.clear_caches()
    load = _Load(root)
    load.project()
    if not paths and not semantics.is_dir(load.journeys_dir()):
        folder = load.journeys_dir()
        load.problems.append(Problem(display_name(folder), 1, 1, "project.no-journeys",
                                     f"there is no journeys folder `{folder.name}/` in {display_name(root)}",
                                     hint="create it, set `journeys:` in project.yaml, or pass files to check"
                                     if semantics.is_file(root / "project.yaml") else
                                     "no project here either: `journey init` writes a new one that validates, "
                                     "or run this inside your project"))
    files = expand_paths(paths if paths else [load.journeys_dir()] if semantics.is_dir(load.journeys_dir()) else [])
    if examples and not paths:
        files += example_files(root)
    for path in files:
        load.file(path)
    load.journey_ids()
    load.scenario_journeys()
    if templates is True or (templates is None and not paths):
        every_template = templatecheck.template_files(load.templates_dir)
        for template in every_template:
            load.template(template)
        load.problems += localecheck.check_template_names(every_template, load.project_data, load.templates_dir,
                                                          display_name)
    if templates is not False:
        for template in sorted(load.used_templates):
            if semantics.is_file(template):
                load.template(template)

    problems = load.problems
    project = _build_project(build_project, load, root, problems)
    journeys: list[Journey] = []
    raw: dict[str, dict] = {}
    sources: dict[str, Path] = {}
    failed_files = {p.file for p in problems if p.severity == ERROR}
    for path, doc, _ in load.journey_docs:
        journey_id = doc.data.get("id")
        if doc.file in failed_files or not isinstance(journey_id, str) or journey_id in raw:
            continue
        try:
            journeys.append(build_journey(doc.data, str(path)))
        except (JourneyError, ValueError, KeyError, TypeError, AttributeError) as error:
            problems.append(doc.problem(["id"], "journey.invalid", f"journey `{journey_id}` cannot be built: {error}"))
            continue
        raw[journey_id] = doc.data
        sources[journey_id] = path
    load.scenario_references(journeys, len(project.exit))  # appends to problems (the same list)
    problems = sorted(set(problems), key=lambda p: (p.file, p.line, p.col, p.code, p.message))
    return LoadedProject(root=root, project=project, journeys=journeys, problems=problems, raw=raw, sources=sources,
                         checked=load.checked)


def scenario_versions(doc: YamlDocument, folder: Path, root: Path) -> tuple[dict[str, Journey], list[Problem]]:
    """The journey files a scenario names (``journeys:``, ``deploy:``), loaded and checked as journeys.

    Keyed by the text that names each file; the problems are the files' own
    (at their file:line:col), or a missing file at the scenario's line:col.
    """
    from runner.language.scenariorefs import journey_file_items

    versions: dict[str, Journey] = {}
    problems: list[Problem] = []
    for path, text in journey_file_items(doc.data):
        file = folder / text
        if not semantics.is_file(file):
            problems.append(doc.problem(path, "ref.journey", f"journey file `{text}` not found next to this scenario",
                                        hint="a journey id of the project, or a journey file relative to the scenario"))
            continue
        loaded = _load_project(root, [file], None, False)
        problems += loaded.errors
        if loaded.ok and loaded.journeys:
            versions[text] = loaded.journeys[0]
    return versions, problems


@dataclass
class Validation:
    """What ``journey validate`` reports: the problems, how many files, and the exit code."""

    problems: list[Problem]
    files: int
    strict: bool = False

    @property
    def failed(self) -> bool:
        return any(p.severity == ERROR or self.strict for p in self.problems)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def validate(paths: Sequence[Path] = (), root: Path | None = None, *, strict: bool = False) -> Validation:
    """Check files or folders (default: project.yaml, the journeys, the templates, and the
    test contacts and scenarios under examples/).

    Never raises for bad input. ``strict`` makes warnings fail too.
    """
    loaded = load_project(root, [Path(p) for p in paths], examples=True)
    return Validation(loaded.problems, len(loaded.checked), strict)


def _build_project(build_project: Any, load: _Load, root: Path, problems: list[Problem]) -> Project:
    if load.project_data is None or not load.project_ok:
        return build_project(None, root)
    try:
        return build_project(load.project_data, root)
    except (JourneyError, ValueError, KeyError, TypeError, AttributeError) as error:
        problems.append(Problem(display_name(root / PROJECT_FILE), 1, 1, "project.invalid",
                                f"the project cannot be built: {error}"))
        return build_project(None, root)
