"""Which event each step's templates may read as ``event``, checked against the tracking plan.

The engine gives a send's templates the event that started or woke its step
(runner.core.engine, docs/language.md "The event in templates"): the event of a stage
entered by an ``entry: {event: …}``, replaced by a ``wait_for``'s answer for its
``on_event`` steps and the steps after it; a timeout keeps the one before; a stage
entered otherwise (a segment, a schedule, an update step's move) has none. This
module walks a journey's steps with the same rules and reports, at the place a
template (or subject, or a webhook's payload string) reads ``event``:

- ``template.event`` (error): a step no event starts or wakes reads ``event``;
  (warning) a step that some paths reach with no event (a timeout in a stage not
  entered by an event, an update step moving contacts into the stage);
- ``template.event-property`` (warning): ``event.properties.x`` where none of the
  step's events declares ``x`` in the tracking plan, with the nearest declared name.

A template that asks ``event is defined`` guards itself: only its properties are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.core.problems import ERROR, WARNING, Problem
from runner.language.projectfiles import UnsafeFile, read_inside
from runner.language.schema import did_you_mean
from runner.language.semantics import ProjectContext, is_file, template_candidates
from runner.language.templatecheck import event_guarded, event_reads, payload_strings
from runner.language.yamlsource import YamlDocument

PathList = list[Any]
_MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})


@dataclass(frozen=True)
class Triggers:
    """The events a step may see: their names, and whether some path reaches it with none."""

    names: frozenset[str] = frozenset()
    none: bool = True

    def __or__(self, other: Triggers) -> Triggers:
        return Triggers(self.names | other.names, self.none or other.none)


def step_triggers(stages: list[Any]) -> list[tuple[PathList, dict[str, Any], Triggers]]:
    """Every step of the journey's ``stages`` (YAML), with its path and the events it may see."""
    moved_into = {target for stage in stages if isinstance(stage, dict)
                  for target in _update_moves(_list(stage.get("steps")))}
    found: list[tuple[PathList, dict[str, Any], Triggers]] = []
    for index, stage in enumerate(stages):
        if not isinstance(stage, dict):
            continue
        entry = stage.get("entry")
        event = entry.get("event") if isinstance(entry, dict) else None
        moved = isinstance(stage.get("id"), str) and stage["id"] in moved_into  # hostile YAML: ids of any type
        start = Triggers(frozenset([event]), moved) if isinstance(event, str) else Triggers()
        _walk(_list(stage.get("steps")), ["stages", index, "steps"], start, found)
    return found


def _walk(steps: list[Any], path: PathList, current: Triggers,
          found: list[tuple[PathList, dict[str, Any], Triggers]]) -> Triggers:
    """Record each step of a list with what it sees; return what the steps after the list see."""
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        here = path + [index]
        found.append((here, step, current))
        wait_for = step.get("wait_for")
        if isinstance(wait_for, dict) and isinstance(wait_for.get("event"), str):
            answered = Triggers(frozenset([wait_for["event"]]), False)
            current = (_walk(_list(step.get("on_event")), here + ["on_event"], answered, found)
                       | _walk(_list(step.get("on_timeout")), here + ["on_timeout"], current, found))
        branch = step.get("branch")
        if isinstance(branch, dict):
            ends = [_walk(_list(case.get("steps")), here + ["branch", "cases", number, "steps"], current, found)
                    for number, case in enumerate(_list(branch.get("cases"))) if isinstance(case, dict)]
            ends.append(_walk(_list(branch.get("else")), here + ["branch", "else"], current, found))
            current = _union(ends)
        split = step.get("split")
        if isinstance(split, dict):
            ends = [_walk(_list(variant.get("steps")), here + ["split", "variants", number, "steps"], current, found)
                    for number, variant in enumerate(_list(split.get("variants"))) if isinstance(variant, dict)]
            current = _union([current, *ends])  # holdout contacts go straight on
    return current


def _update_moves(steps: list[Any]) -> set[str]:
    """The stages update steps in ``steps`` (nested lists too) move contacts to: their steps
    start with no event (the engine gives a move by an update step none)."""
    targets: set[str] = set()
    for step in steps:
        if not isinstance(step, dict):
            continue
        update = step.get("update")
        if isinstance(update, dict) and isinstance(update.get("stage"), str):
            targets.add(update["stage"])
        nested = [*_list(step.get("on_event")), *_list(step.get("on_timeout"))]
        branch, split = step.get("branch"), step.get("split")
        if isinstance(branch, dict):
            nested += [s for case in _list(branch.get("cases")) if isinstance(case, dict) for s in _list(case.get("steps"))]
            nested += _list(branch.get("else"))
        if isinstance(split, dict):
            nested += [s for v in _list(split.get("variants")) if isinstance(v, dict) for s in _list(v.get("steps"))]
        targets |= _update_moves(nested)
    return targets


def _union(ends: list[Triggers]) -> Triggers:
    result = ends[0]
    for end in ends[1:]:
        result = result | end
    return result


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_journey_events(doc: YamlDocument, project: ProjectContext, templates_dir: Path,
                         name_of: Callable[[Path], str]) -> list[Problem]:
    """Problems of the ``event`` reads of every email step's subject and templates, and of
    every webhook step's payload strings (rendered with the same context, ``event`` included)."""
    data = doc.data if isinstance(doc.data, dict) else {}
    problems: list[Problem] = []
    for here, step, triggers in step_triggers(_list(data.get("stages"))):
        step_id = str(step.get("id") or "")
        webhook = step.get("webhook")
        if isinstance(webhook, dict):
            for place, text in payload_strings(webhook.get("payload"), here + ["webhook", "payload"]):
                if "event" not in text:
                    continue
                line, col = doc.position(place)
                problems += _check_reads(text, doc.file, line, col, step_id, triggers, project)
        email = step.get("email")
        if not isinstance(email, dict):
            continue
        subject = email.get("subject")
        if isinstance(subject, str) and "event" in subject:
            line, col = doc.position(here + ["email", "subject"])
            problems += _check_reads(subject, doc.file, line, col, step_id, triggers, project)
        for path in _template_files(email, templates_dir):
            try:
                source = read_inside(path, templates_dir).decode("utf-8-sig")
            except (UnsafeFile, OSError, UnicodeDecodeError):
                continue  # reported by the template checks
            if "event" in source:
                problems += _check_reads(source, name_of(path), 1, 1, step_id, triggers, project)
    return problems


def _template_files(email: dict[str, Any], templates_dir: Path) -> list[Path]:
    """The files an email step renders: its HTML, its text (named, or beside the HTML)."""
    names: list[str] = []
    template = email.get("template")
    if isinstance(template, str):
        names += template_candidates(template, "html")
        base = template.removesuffix(".html").removesuffix(".htm")
        if not isinstance(email.get("text_template"), str):
            names.append(f"{base}.txt")
    if isinstance(email.get("text_template"), str):
        names += template_candidates(email["text_template"], "text")
    return [templates_dir / name for name in names if is_file(templates_dir / name)]


def _check_reads(source: str, file: str, line: int, col: int, step_id: str, triggers: Triggers,
                 project: ProjectContext) -> list[Problem]:
    reads = event_reads(source)
    if not reads:
        return []
    guarded = event_guarded(source)
    problems: list[Problem] = []
    first_line = line + reads[0][0] - 1
    if not triggers.names and not guarded:
        shown = ".".join(reads[0][1])
        return [Problem(file, first_line, col, "template.event",
                        f"step `{step_id}` reads `{shown}`, but no event starts or wakes it "
                        "(its stage is not entered by an event, and it is not after a `wait_for`)", ERROR,
                        "use `event` in steps of a stage with `entry: {event: …}`, or in and after a "
                        "`wait_for`'s `on_event` steps; or guard it with `{% if event is defined %}`")]
    if triggers.none and not guarded:
        problems.append(Problem(file, first_line, col, "template.event",
                                f"step `{step_id}` reads `{'.'.join(reads[0][1])}`, but on some paths no event "
                                f"reaches it (a timeout, or an update step moving contacts into its stage); "
                                f"it may see {_names(triggers.names)}", WARNING,
                                "guard it with `{% if event is defined %}`"))
    for offset, chain in reads:
        if len(chain) < 3 or chain[1] != "properties" or chain[2] in _MAPPING_METHODS:
            continue
        problem = _property_problem(chain[2], triggers.names, project)
        if problem is not None:
            message, hint = problem
            problems.append(Problem(file, line + offset - 1, col, "template.event-property",
                                    f"step `{step_id}`: {message}", WARNING, hint))
    return problems


def _property_problem(name: str, events: frozenset[str], project: ProjectContext) -> tuple[str, str] | None:
    """Why ``event.properties.<name>`` is not declared for ``events`` (None: declared, or unknown)."""
    if project.events is None:
        return None
    declared: set[str] = set()
    for event in events:
        spec = project.events.get(event)
        properties = spec.get("properties") if isinstance(spec, dict) else None
        if not isinstance(properties, dict):
            return None  # an event the tracking plan does not describe: nothing to check against
        declared |= {str(key) for key in properties}
    if name in declared:
        return None
    suggestion = did_you_mean(name, sorted(declared))
    extra = f"; did you mean `event.properties.{suggestion}`?" if suggestion else ""
    return (f"`event.properties.{name}` is not a property of {_names(events)} in the tracking plan{extra}",
            "declare it under tracking_plan.events.<event>.properties in project.yaml"
            + (f" (declared: {', '.join(sorted(declared))})" if declared else ""))


def _names(events: frozenset[str]) -> str:
    return " or ".join(f"`{name}`" for name in sorted(events))
