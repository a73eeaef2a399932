"""Static checks of Jinja templates: syntax, and variables nobody provides.

Templates render with ``StrictUndefined`` (runner.delivery.render), so a misspelt
variable fails at send time. Here we catch that before deploying: every name
a template reads must be in the render context, and ``contact.<attr>`` must
be declared in the project's tracking plan. Nothing is rendered; templates
are only parsed (in Jinja's sandboxed environment).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from jinja2 import TemplateAssertionError, TemplateNotFound, TemplateSyntaxError, meta, nodes, pass_context
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.core.problems import ERROR, WARNING, Problem
from runner.language.locales import FORMAT_FILTERS
from runner.language.projectfiles import UnsafeFile, read_inside, resolve_inside
from runner.language.schema import did_you_mean
from runner.language.semantics import BUILTIN_ATTRIBUTES
from runner.language.templatehints import syntax_hint
from runner.language.templateplace import syntax_place

# What runner.delivery.render.render_context provides, and the keys of its small mappings.
CONTEXT: dict[str, frozenset[str] | None] = {
    "contact": None,  # attributes: checked against the tracking plan
    "scores": None,  # score names: checked against the project's scores
    "journey": frozenset({"id", "version", "name"}),
    "step": frozenset({"id"}),
    "project": frozenset({"name"}),
    "unsubscribe_url": frozenset(),
    "now": frozenset(),
    "locale": frozenset({"tag", "language", "dir", "name"}),  # the language the message is written in
    # the event that started or woke the step: which steps have one, and its properties,
    # are checked per step (runner.language.eventcheck)
    "event": frozenset({"name", "properties", "timestamp"}),
}
_MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})
TEMPLATE_SUFFIXES = (".html", ".htm", ".txt")


class _AnalysisEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox for analysis only: nothing in a template is ever evaluated.

    Finding a template's variables runs Jinja's code generator, which folds
    constant expressions by computing them: ``{{ 'x'|center(10**9) }}`` or
    ``{{ 7**2000000 // 3**1000000 }}`` made validate take 20-45 s and 5.9 GB
    for a template it then called fine. Here every operator is intercepted and
    every filter needs the render context, so nothing can be folded.
    """

    intercepted_binops = frozenset(nodes._binop_to_func)
    intercepted_unops = frozenset(nodes._uaop_to_func)

    def __init__(self) -> None:
        super().__init__()
        self.filters = {name: _never_folded(function) for name, function in self.filters.items()}
        self.filters.update({name: _never_folded(None) for name in FORMAT_FILTERS})  # runner.delivery.localefilters
        self.tests = {name: _never_folded(function) for name, function in self.tests.items()}


def _never_folded(function: Any) -> Any:
    """A stand-in that Jinja cannot call at compile time (it asks for the render context)."""

    @pass_context
    def stand_in(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("templates are analysed, never rendered, during validation")

    return stand_in


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    return _AnalysisEnvironment()


@dataclass
class TemplateContext:
    """What templates may read beyond the fixed render context."""

    attributes: dict[str, Any] | None = None  # tracking plan attributes; None = not declared
    scores: set[str] | None = None  # project score names; None = unknown
    templates_dir: Path | None = None  # for {% include %} checks
    extra_names: set[str] = field(default_factory=set)

    @cached_property
    def fingerprint(self) -> str:
        """What the analysis of a template depends on (the include folder aside)."""
        return json.dumps([self.attributes, sorted(self.scores) if self.scores is not None else None,
                           sorted(self.extra_names)], sort_keys=True, default=str)


# (source, context fingerprint) -> (problems placed at line 1 / col 1, included names with lines).
# Subjects and templates repeat across journeys and across loads in one process.
_ANALYSED: dict[tuple[str, str], tuple[list[Problem], list[tuple[str, int]]]] = {}


def check_source(source: str, file: str, context: TemplateContext, *, line: int = 1, col: int = 1) -> list[Problem]:
    """Problems of one template text; ``line``/``col`` place it (a subject inside YAML)."""
    key = (source, context.fingerprint)
    if key not in _ANALYSED:
        if len(_ANALYSED) > 10_000:
            _ANALYSED.clear()
        _ANALYSED[key] = _analyse(source, context)
    found, includes = _ANALYSED[key]
    problems = [
        Problem(file, problem.line + line - 1, problem.col + (col - 1 if problem.line == 1 else 0), problem.code, problem.message,
                problem.severity, problem.hint)
        for problem in found
    ]
    if context.templates_dir is not None:
        for name, lineno in includes:
            why = include_problem(context.templates_dir, name)
            if why is not None:
                problems.append(Problem(file, line + lineno - 1, col, "template.missing", why))
    return problems


def payload_strings(value: Any, path: list[Any]) -> list[tuple[list[Any], str]]:
    """The strings of a webhook payload that are templates (runner.delivery.dispatch renders a
    string with ``{`` like a subject), with their paths, in mappings and lists at any depth."""
    if isinstance(value, str):
        return [(path, value)] if "{" in value else []
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in payload_strings(item, [*path, key])]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in payload_strings(item, [*path, index])]
    return []


def include_problem(templates_dir: Path, name: str) -> str | None:
    """Why ``{% include name %}`` would fail at render, or None: the name is looked up
    as Jinja's loader does (relative to the templates folder, no ``..``) and must be a
    regular file inside the folder."""
    try:
        pieces = split_template_path(name)
    except TemplateNotFound:
        return f"included template `{name}` cannot be named with `..`; names are relative to {templates_dir.name}/"
    path = templates_dir.joinpath(*pieces)
    if not os.path.lexists(path):
        return f"included template `{name}` not found in {templates_dir.name}/"
    try:
        real = resolve_inside(path, templates_dir)
        if not real.is_file():
            return f"included template `{name}` is not a regular file"
    except (UnsafeFile, OSError) as error:
        return f"included template `{name}`: {error}"
    return None


def _analyse(source: str, context: TemplateContext) -> tuple[list[Problem], list[tuple[str, int]]]:
    env = _environment()
    file, line, col = "", 1, 1
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as error:
        return [Problem(file, *syntax_place(env, source, error), "template.syntax",
                        f"template syntax error: {error.message}",
                        hint=syntax_hint(error.message or "", env.filters))], []
    except Exception as error:  # noqa: BLE001 - the lexer can fail in odd ways on hostile input
        return [Problem(file, line, col, "template.syntax", f"template syntax error: {error}")], []
    problems: list[Problem] = []

    def at(node: nodes.Node) -> tuple[int, int]:
        return line + (getattr(node, "lineno", 1) or 1) - 1, col

    try:
        undeclared = meta.find_undeclared_variables(tree) - set(CONTEXT) - set(env.globals) - context.extra_names
    except TemplateAssertionError as error:  # an unknown filter or test: compiling it for render fails the same way
        return [Problem(file, *syntax_place(env, source, error), "template.syntax",
                        f"template syntax error: {error.message}",
                        hint=syntax_hint(error.message or "", env.filters))], []
    undeclared -= _defined_in_branches(tree)
    for name_node in tree.find_all(nodes.Name):
        if name_node.ctx == "load" and name_node.name in undeclared:
            undeclared.discard(name_node.name)  # report each name once, at its first use
            suggestion = did_you_mean(name_node.name, CONTEXT)
            extra = f"; did you mean `{suggestion}`?" if suggestion else ""
            problems.append(Problem(file, *at(name_node), "template.variable",
                                    f"`{name_node.name}` is not available in templates{extra}",
                                    hint="templates see: " + ", ".join(CONTEXT)))
    for read in tree.find_all(nodes.Getattr):
        if _refused_attribute(read.attr):
            problems.append(Problem(file, *at(read), "template.unsafe",
                                    f"`.{read.attr}` is refused by the sandbox: every render of this template fails",
                                    hint="read the contact's data by name (contact.first_name); the sandbox "
                                         "refuses Python's own attributes (__class__, __init__, …)"))
    for call in tree.find_all(nodes.Call):  # '{0.__class__}'.format(contact): the same refusal, inside str.format
        method = call.node
        if (isinstance(method, nodes.Getattr) and method.attr in ("format", "format_map")
                and isinstance(method.node, nodes.Const) and isinstance(method.node.value, str)
                and any(_refused_attribute(name) for name in _FORMAT_ATTRIBUTE.findall(method.node.value))):
            problems.append(Problem(file, *at(call), "template.unsafe",
                                    "a format field reads an attribute the sandbox refuses: every render of this "
                                    "template fails", hint="format the contact's data by name ({0[first_name]})"))
    for node, chain in _chains(tree):
        if not any(_refused_attribute(part) for part in chain):
            problems.extend(_check_chain(chain, file, at(node), context))
    includes = [
        (node.template.value, node.lineno)  # type: ignore[attr-defined]  # all four node types have .template
        for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport))
        if isinstance(node.template, nodes.Const) and isinstance(node.template.value, str)  # type: ignore[attr-defined]
    ]
    return problems, includes


def _refused_attribute(name: str) -> bool:
    """An attribute the sandbox refuses on whatever a template reads (a mapping, text, a list, a
    number, a date): a name with a leading _ that such values have (``__class__``, ``__init__``).
    A leading _ they do not have reads the key of that name (``contact._score``), which is allowed."""
    return name.startswith("_") and any(hasattr(value, name) for value in _TEMPLATE_VALUES)


_FORMAT_ATTRIBUTE = re.compile(r"\{[^{}]*?\.(_\w*)")  # the attribute a str.format field reads: {0.__class__}
_TEMPLATE_VALUES: tuple[object, ...] = (object(), {}, "", [], 0, 0.0, datetime(2026, 1, 1, tzinfo=UTC))
_SCOPES = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.With, nodes.Block, nodes.Scope)


def _defined_in_branches(tree: nodes.Node) -> set[str]:
    """Names that ``{% set %}``, a macro or an import defines inside an ``{% if %}``.

    Jinja's own analysis counts them as undeclared (the branch may not run),
    but the template renders whenever it does (``{% if vip %}{% set hi =
    'Dear' %}{% else %}{% set hi = 'Hi' %}{% endif %}{{ hi }}``), so
    validate does not call them errors; a name read where no branch set it
    is still an undefined-variable error at render.
    """
    names: set[str] = set()

    def visit(node: nodes.Node, in_branch: bool) -> None:
        for child in node.iter_child_nodes():
            if in_branch:
                if isinstance(child, (nodes.Assign, nodes.AssignBlock)):
                    targets = [child.target, *child.target.find_all(nodes.Name)]
                    names.update(t.name for t in targets if isinstance(t, nodes.Name) and t.ctx == "store")
                elif isinstance(child, nodes.Macro):
                    names.add(child.name)
                elif isinstance(child, nodes.Import):
                    names.add(child.target)
                elif isinstance(child, nodes.FromImport):
                    names.update(n if isinstance(n, str) else n[1] for n in child.names)
            # an if's branches share the scope around them; a loop, macro or block has its own
            visit(child, isinstance(child, nodes.If) or (in_branch and not isinstance(child, _SCOPES)))

    visit(tree, False)
    return names


def _chains(tree: nodes.Node) -> Iterator[tuple[nodes.Node, list[str]]]:
    """Every ``root.a.b`` / ``root["a"]`` read, as (node, ["root", "a", "b"]), longest only."""
    inner: set[int] = set()
    found: list[tuple[nodes.Node, list[str]]] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        chain: list[str] = []
        current: Any = node
        while isinstance(current, (nodes.Getattr, nodes.Getitem)):
            if isinstance(current, nodes.Getattr):
                chain.append(current.attr)
            elif isinstance(current.arg, nodes.Const) and isinstance(current.arg.value, str):
                chain.append(current.arg.value)
            else:
                chain = []  # dynamic key: cannot check statically
                break
            inner.add(id(current.node))
            current = current.node
        if chain and isinstance(current, nodes.Name) and current.ctx == "load":
            found.append((node, [current.name] + chain[::-1]))
    for read, chain in found:
        if id(read) not in inner:
            yield read, chain


def event_reads(source: str) -> list[tuple[int, list[str]]]:
    """Where a template reads ``event`` (line in ``source``, chain: ``["event", "properties",
    "total"]``; ``["event"]`` for the bare name), longest chains only; none when it does not
    parse (check_source reports that)."""
    found = _EVENT_READS.get(source)
    if found is None:
        found = []
        try:
            tree = _environment().parse(source)
        except Exception:  # noqa: BLE001 - a syntax error is reported by check_source
            return []
        chained: set[int] = set()
        for node, chain in _chains(tree):
            if chain[0] == "event":
                found.append((getattr(node, "lineno", 1) or 1, chain))
                chained.update(id(name) for name in node.find_all(nodes.Name))
        for name in tree.find_all(nodes.Name):
            if name.name == "event" and name.ctx == "load" and id(name) not in chained:
                found.append((name.lineno or 1, ["event"]))
        if len(_EVENT_READS) > 10_000:
            _EVENT_READS.clear()
        _EVENT_READS[source] = found = sorted(found)
    return found


_EVENT_READS: dict[str, list[tuple[int, list[str]]]] = {}


def event_guarded(source: str) -> bool:
    """Whether a template asks ``event is defined`` (or ``undefined``): it renders for a step no
    event starts as well, so reading ``event`` there is no mistake."""
    try:
        tree = _environment().parse(source)
    except Exception:  # noqa: BLE001 - a syntax error is reported by check_source
        return False
    return any(test.name in ("defined", "undefined") and isinstance(test.node, nodes.Name) and test.node.name == "event"
               for test in tree.find_all(nodes.Test))


def _check_chain(chain: list[str], file: str, where: tuple[int, int], context: TemplateContext) -> list[Problem]:
    root, first = chain[0], chain[1]
    if root not in CONTEXT:
        return []
    allowed = CONTEXT[root]
    if allowed is not None:
        if first in allowed or (root == "now"):
            return []
        if not allowed:  # unsubscribe_url is a plain string: methods/filters only
            return []
        suggestion = did_you_mean(first, allowed)
        extra = f"; did you mean `{suggestion}`?" if suggestion else ""
        return [Problem(file, *where, "template.variable", f"`{root}.{first}` does not exist{extra}",
                        hint=f"`{root}` has: " + ", ".join(sorted(allowed)))]
    if root == "scores":
        if context.scores is None or first in context.scores or first in _MAPPING_METHODS:
            return []
        suggestion = did_you_mean(first, sorted(context.scores))
        extra = f"; did you mean `{suggestion}`?" if suggestion else ""
        return [Problem(file, *where, "template.score", f"there is no score `{first}`{extra}", WARNING,
                        "define it under `scores:` in project.yaml")]
    return _check_contact(chain[1:], file, where, context)


def _check_contact(parts: list[str], file: str, where: tuple[int, int], context: TemplateContext) -> list[Problem]:
    if context.attributes is None or parts[0] in BUILTIN_ATTRIBUTES or parts[0] in _MAPPING_METHODS:
        return []
    declarations: Any = context.attributes
    for depth, part in enumerate(parts):
        if not isinstance(declarations, dict):
            return []
        if part not in declarations:
            if depth > 0 and part in _MAPPING_METHODS:
                return []
            suggestion = did_you_mean(part, [str(k) for k in declarations])
            shown = ".".join(["contact"] + parts[: depth + 1])
            extra = f"; did you mean `{'.'.join(['contact'] + parts[:depth] + [suggestion])}`?" if suggestion else ""
            return [Problem(file, *where, "template.attribute",
                            f"`{shown}` is not declared in the tracking plan{extra}", WARNING,
                            "declare it under tracking_plan.attributes in project.yaml")]
        declaration = declarations[part]
        if not isinstance(declaration, dict) or declaration.get("type") != "object":
            return []  # a scalar: what follows is a method or filter of the value
        declarations = declaration.get("properties")
    return []


def check_file(path: Path, file: str, context: TemplateContext, *, root: Path | None = None) -> list[Problem]:
    """Problems of one template file, read safely: a regular file inside ``root`` (default:
    its own folder) once links are resolved, bounded in size, not binary, UTF-8."""
    try:
        raw = read_inside(path, root if root is not None else path.parent)
    except UnsafeFile as unsafe:
        return [Problem(file, 1, 1, unsafe.code, str(unsafe))]
    if b"\x00" in raw[:8192]:
        return [Problem(file, 1, 1, "file.binary", "this is a binary file, not a template")]
    try:
        source = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        return [Problem(file, before.count(b"\n") + 1, len(before) - (before.rfind(b"\n") + 1) + 1,
                        "file.encoding", "the template is not UTF-8", ERROR, "save it as UTF-8")]
    return check_source(source, file, context)


def template_files(folder: Path) -> list[Path]:
    """Every template file under ``folder``, sorted."""
    try:
        if not folder.is_dir():
            return []
    except (OSError, ValueError):  # a folder name nobody could create
        return []
    # not only regular files: a FIFO, device or link loop named like a template gets its diagnostic
    return sorted(p for p in folder.rglob("*") if p.suffix in TEMPLATE_SUFFIXES and not p.is_dir())


def read_templates(folder: Path) -> dict[str, str]:
    """Every template under ``folder`` (name relative to it -> text), read safely;
    :class:`UnsafeFile` for the first one that may not be read."""
    templates: dict[str, str] = {}
    for path in template_files(folder):
        try:
            templates[path.relative_to(folder).as_posix()] = read_inside(path, folder).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UnsafeFile("file.encoding", f"{path} is not UTF-8") from None
    return templates
