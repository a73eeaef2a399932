"""Checks a JSON Schema cannot express: references, cycles, plans, zones, cron.

Every check reads the raw documents (so each finding has a line and column)
and is written defensively: it runs even when the schema already found
errors, so a marketer sees everything wrong with a file in one pass. Nothing
here builds the model or evaluates a condition.

Severity: what would break a journey at run time is an error; what is
probably a mistake but harmless (an unused segment, an attribute missing from
the tracking plan, steps after an ``exit``) is a warning, which
``journey validate --strict`` turns into a failure.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

from croniter import croniter

from runner.core.durations import format_duration
from runner.core.instants import too_long
from runner.core.model import DEFAULT_TOPIC
from runner.core.problems import ERROR, WARNING, Problem
from runner.core.stepkinds import STEP_KINDS
from runner.core.vocabulary import BUILTIN_ATTRIBUTES, BUILTIN_EVENTS
from runner.language import waitspans
from runner.language.schema import did_you_mean, place
from runner.language.yamlsource import YamlDocument

PathList = list  # a JSON path: keys and indexes, e.g. ["stages", 0, "entry"]

POSITIVE_DURATION_KEYS = frozenset({
    "wait", "timeout", "within", "older_than", "newer_than", "per", "after", "half_life", "max_lateness", "duration",
})
# Keys whose value is a duration that may be zero; every duration is bounded (``duration.too-long``).
DURATION_KEYS = POSITIVE_DURATION_KEYS | {"every", "first_delay", "max_delay", "max_age"}
_DURATION = re.compile(r"^(?=[0-9])([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$")
_WAITS = ("wait", "wait_until", "wait_for")
_DATE_TYPES = ("date", "datetime")


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def is_timezone(name: Any) -> bool:
    """Whether ``name`` is an IANA time zone name."""
    return isinstance(name, str) and name in _zones()


def is_cron(expression: Any) -> bool:
    """Whether ``expression`` is a valid five-field cron expression."""
    if not isinstance(expression, str) or len(expression.split()) != 5:
        return False
    return _valid_cron(expression)


@lru_cache(maxsize=1024)
def _valid_cron(expression: str) -> bool:
    # croniter takes milliseconds per expression; projects repeat the same few
    try:
        return bool(croniter.is_valid(expression))
    except Exception:  # noqa: BLE001 - croniter raises assorted errors on odd input
        return False


@dataclass
class ProjectContext:
    """What journey checks need from the project (defaults when there is no project.yaml)."""

    segments: dict[str, Any] = field(default_factory=dict)  # project-wide segment name -> condition
    scores: set[str] = field(default_factory=set)
    attributes: dict[str, Any] | None = None  # tracking plan; None = not declared, nothing to check
    events: dict[str, Any] | None = None
    templates_dir: Path | None = None
    topics: set[str] = field(default_factory=lambda: {DEFAULT_TOPIC})  # subscription topics email steps may name

    @classmethod
    def from_data(cls, data: Any, templates_dir: Path | None) -> ProjectContext:
        data = data if isinstance(data, dict) else {}
        plan = _mapping(data.get("tracking_plan"))
        attributes = plan.get("attributes")
        events = plan.get("events")
        return cls(
            segments=_mapping(data.get("segments")),
            scores={name for name in _mapping(data.get("scores")) if isinstance(name, str)},
            attributes=attributes if isinstance(attributes, dict) else None,
            events=events if isinstance(events, dict) else None,
            templates_dir=templates_dir,
            topics={DEFAULT_TOPIC, *(name for name in _mapping(data.get("topics")) if isinstance(name, str))},
        )


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------- shared checks


class _Checker:
    """Collects problems against one document."""

    def __init__(self, doc: YamlDocument, project: ProjectContext):
        self.doc = doc
        self.project = project
        self.problems: list[Problem] = []

    def report(self, path: PathList, code: str, message: str, *, severity: str = ERROR,
               hint: str | None = None, key: bool = False) -> None:
        self.problems.append(self.doc.problem(path, code, message, severity=severity, hint=hint, key=key))

    # -- generic value checks over the whole document

    def check_durations(self) -> None:
        for path, key, value in self.doc.find(DURATION_KEYS):
            if not (isinstance(value, str) and _DURATION.match(value)):
                continue
            if key in POSITIVE_DURATION_KEYS and not any(ch not in "0wdhms" for ch in value):
                self.report(path, "duration.zero", f"{place(path, self.doc.data)} is zero; it must be a positive duration",
                            hint="e.g. 1d")
            elif too_long(value):
                self.report(path, "duration.too-long",
                            f"{place(path, self.doc.data)} is {value}, longer than a century (36525d)",
                            hint="e.g. 365d for a year")

    def check_timezone(self, path: PathList, value: Any, *, allow_contact: bool = False) -> None:
        if not isinstance(value, str) or (allow_contact and value == "contact") or is_timezone(value):
            return
        suggestion = did_you_mean(value, _zones())
        extra = f"; did you mean `{suggestion}`?" if suggestion else ""
        allowed = "`contact` or an IANA zone" if allow_contact else "an IANA zone"
        self.report(path, "timezone.unknown", f"unknown time zone `{value}`{extra}",
                    hint=f"use {allowed} like Europe/Istanbul, America/New_York, UTC")

    # -- tracking plan

    def check_attribute(self, path: PathList, name: Any, *, expect_date: bool = False) -> None:
        if not isinstance(name, str) or self.project.attributes is None:
            return
        parts = name.split(".")
        if parts[0] in BUILTIN_ATTRIBUTES:
            return
        declarations: dict = self.project.attributes
        declaration: Any = None
        for depth, part in enumerate(parts):
            if part not in declarations:
                known = ".".join(parts[:depth]) or "the tracking plan"
                hint = did_you_mean(part, [k for k in declarations if isinstance(k, str)])
                extra = f"; did you mean `{'.'.join(parts[:depth] + [hint])}`?" if hint else ""
                self.report(path, "plan.attribute", f"attribute `{name}` is not declared in {known}{extra}",
                            severity=WARNING, hint="declare it under tracking_plan.attributes in project.yaml")
                return
            declaration = declarations[part]
            kind = declaration if isinstance(declaration, str) else _mapping(declaration).get("type")
            nested = _mapping(declaration).get("properties")
            if depth < len(parts) - 1:
                if kind != "object":
                    self.report(path, "plan.attribute",
                                f"attribute `{'.'.join(parts[:depth + 1])}` is a {kind}, it has no `{parts[depth + 1]}`",
                                severity=WARNING)
                    return
                if not isinstance(nested, dict):
                    return  # an object without declared properties: anything goes
                declarations = nested
        kind = declaration if isinstance(declaration, str) else _mapping(declaration).get("type")
        if expect_date and isinstance(kind, str) and kind not in _DATE_TYPES:
            self.report(path, "plan.type", f"`{name}` is declared as {kind}; a date entry needs a date or datetime")

    def check_topic(self, path: PathList, name: str) -> None:
        if name not in self.project.topics:
            suggestion = did_you_mean(name, sorted(self.project.topics))
            extra = f"; did you mean `{suggestion}`?" if suggestion else ""
            self.report(path, "ref.topic", f"unknown topic `{name}`{extra}",
                        hint=f"declare it under `topics:` in project.yaml (declared: {', '.join(sorted(self.project.topics))})")

    def check_event(self, path: PathList, name: Any, where: Any = None, where_path: PathList | None = None) -> None:
        if not isinstance(name, str) or self.project.events is None:
            return
        events = self.project.events
        if name not in events:
            if name in BUILTIN_EVENTS:
                return  # journeys may use the built-in events undeclared (their properties, once declared, are checked)
            suggestion = did_you_mean(name, [k for k in events if isinstance(k, str)] + sorted(BUILTIN_EVENTS))
            extra = f"; did you mean `{suggestion}`?" if suggestion else ""
            self.report(path, "plan.event", f"event `{name}` is not in the tracking plan{extra}", severity=WARNING,
                        hint="declare it under tracking_plan.events in project.yaml")
            return
        properties = _mapping(events[name]).get("properties") if isinstance(events[name], dict) else None
        if not isinstance(properties, dict) or not isinstance(where, dict):
            return
        for prop in where:
            if prop not in properties:
                suggestion = did_you_mean(str(prop), [str(k) for k in properties])
                extra = f"; did you mean `{suggestion}`?" if suggestion else ""
                self.report((where_path or path) + [prop], "plan.property",
                            f"event `{name}` has no property `{prop}` in the tracking plan{extra}",
                            severity=WARNING, key=True)


# ---------------------------------------------------------------- conditions


@dataclass
class _Refs:
    """What a set of conditions and steps refers to, with where."""

    segments: list[tuple[PathList, str]] = field(default_factory=list)
    stages: list[tuple[PathList, str]] = field(default_factory=list)
    scores: list[tuple[PathList, str]] = field(default_factory=list)


def _condition(checker: _Checker, refs: _Refs, spec: Any, path: PathList, depth: int = 0) -> None:
    if not isinstance(spec, dict) or depth > 100:
        return
    for key in ("all", "any"):
        for index, item in enumerate(_list(spec.get(key))):
            _condition(checker, refs, item, path + [key, index], depth + 1)
    if "not" in spec:
        _condition(checker, refs, spec["not"], path + ["not"], depth + 1)
    if isinstance(spec.get("segment"), str):
        refs.segments.append((path + ["segment"], spec["segment"]))
    if isinstance(spec.get("stage"), str):
        refs.stages.append((path + ["stage"], spec["stage"]))
    if isinstance(spec.get("score"), str):
        refs.scores.append((path + ["score"], spec["score"]))
    if "attribute" in spec:
        checker.check_attribute(path + ["attribute"], spec["attribute"])
    if "event" in spec:
        checker.check_event(path + ["event"], spec["event"], spec.get("where"), path + ["where"])


def _segment_problems(checker: _Checker, refs: _Refs, local: dict, project_segments: dict,
                      local_path: PathList, *, report_unused: bool) -> None:
    """Unknown segment references, cycles between segments, unused local segments."""
    known = {**{name: ("project", spec) for name, spec in project_segments.items()},
             **{name: ("local", spec) for name, spec in local.items()}}
    for path, name in refs.segments:
        if name not in known:
            suggestion = did_you_mean(name, [str(k) for k in known])
            extra = f"; did you mean `{suggestion}`?" if suggestion else ""
            checker.report(path, "ref.segment", f"there is no segment `{name}`{extra}",
                           hint="define it under `segments:` in this file or in project.yaml")
    # cycles among the segments defined here (project ones are checked with the project)
    graph: dict[str, list[str]] = {}
    for name, (_origin, spec) in known.items():
        inner = _Refs()
        _condition(_Checker(checker.doc, ProjectContext()), inner, spec, [])
        graph[name] = [target for _, target in inner.segments]
    reported: set[frozenset] = set()
    for name in local:
        cycle = _find_cycle(graph, name)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            checker.report(local_path + [name], "segment.cycle",
                           "segments refer to each other in a cycle: " + " -> ".join(cycle + [cycle[0]]),
                           hint="a segment cannot depend on itself", key=True)
    if report_unused:
        used = {target for _, target in refs.segments}
        for targets in graph.values():
            used.update(targets)
        for name in local:
            if name not in used:
                checker.report(local_path + [name], "segment.unused", f"segment `{name}` is never used",
                               severity=WARNING, key=True)


def _route(graph: dict[str, list[str]], start: str, goal: str) -> list[str] | None:
    """The stages from ``start`` to ``goal`` (both included) following ``graph``, if any."""
    trails = [[start]]
    seen = {start}
    while trails:
        trail = trails.pop(0)
        if trail[-1] == goal:
            return trail
        for target in graph.get(trail[-1], []):
            if target not in seen:
                seen.add(target)
                trails.append(trail + [target])
    return None


def _find_cycle(graph: dict[str, list[str]], start: str) -> list[str] | None:
    """A cycle through ``start`` (as a list of names), if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    visited: set[str] = set()
    while stack:
        node, trail = stack.pop()
        for target in graph.get(node, []):
            if target == start:
                return trail
            if target not in visited and target in graph:
                visited.add(target)
                stack.append((target, trail + [target]))
    return None


def _score_refs(checker: _Checker, refs: _Refs) -> None:
    for path, name in refs.scores:
        if name not in checker.project.scores:
            suggestion = did_you_mean(name, sorted(checker.project.scores))
            extra = f"; did you mean `{suggestion}`?" if suggestion else ""
            checker.report(path, "ref.score", f"there is no score `{name}`{extra}",
                           hint="define it under `scores:` in project.yaml", key=path[-2] == "add_score")


# ---------------------------------------------------------------- journeys


class _JourneyChecker(_Checker):
    def __init__(self, doc: YamlDocument, project: ProjectContext):
        super().__init__(doc, project)
        self.data: dict = doc.data if isinstance(doc.data, dict) else {}
        self.refs = _Refs()
        self.step_ids: dict[str, PathList] = {}
        self.moves: dict[str, list[tuple[str, PathList]]] = {}  # stage -> immediate stage moves
        self.templates: list[tuple[PathList, str, str]] = []  # (path, name, "html"|"text")
        self.waits_for: list[tuple[PathList, str, Any]] = []  # (path of the step, event, where)

    def run(self) -> list[Problem]:
        data = self.data
        self.check_durations()
        self._settings(_mapping(data.get("settings")))
        for name, spec in _mapping(data.get("segments")).items():
            _condition(self, self.refs, spec, ["segments", name])
        stage_ids = self._stages(_list(data.get("stages")))
        for index, spec in enumerate(_list(data.get("exit"))):
            _condition(self, self.refs, spec, ["exit", index])
        goal = _mapping(data.get("goal"))
        if "event" in goal:
            self.check_event(["goal", "event"], goal["event"], goal.get("where"), ["goal", "where"])
            self._waits_for_the_goal(goal)
        for path, name in self.refs.stages:
            if name not in stage_ids:
                suggestion = did_you_mean(name, stage_ids)
                extra = f"; did you mean `{suggestion}`?" if suggestion else ""
                self.report(path, "ref.stage", f"there is no stage `{name}` in this journey{extra}")
        _segment_problems(self, self.refs, _mapping(data.get("segments")), self.project.segments, ["segments"],
                          report_unused=True)
        _score_refs(self, self.refs)
        self._stage_loops()
        self._migration()
        self._templates()
        return self.problems

    def _settings(self, settings: dict) -> None:
        self.check_timezone(["settings", "timezone"], settings.get("timezone"), allow_contact=True)
        self.check_timezone(["settings", "default_timezone"], settings.get("default_timezone"))
        window = _mapping(settings.get("send_window"))
        if window.get("from") is not None and window.get("from") == window.get("to"):
            self.report(["settings", "send_window", "to"], "window.empty",
                        "the send window starts and ends at the same time, so nothing could ever be sent")
        quiet = _mapping(settings.get("quiet_hours"))
        if quiet.get("from") is not None and quiet.get("from") == quiet.get("to"):
            self.report(["settings", "quiet_hours", "to"], "window.empty",
                        "quiet hours start and end at the same time, so they never apply", severity=WARNING)

    def _stages(self, stages: list) -> list[str]:
        ids: list[str] = []
        for index, stage in enumerate(stages):
            if not isinstance(stage, dict):
                continue
            path: PathList = ["stages", index]
            stage_id = stage.get("id")
            if isinstance(stage_id, str):
                if stage_id in ids:
                    self.report(path + ["id"], "stage.duplicate-id", f"stage id `{stage_id}` is used twice")
                ids.append(stage_id)
            self._entry(_mapping(stage.get("entry")), path + ["entry"])
            steps = _list(stage.get("steps"))
            self._steps(steps, path + ["steps"])
            if isinstance(stage_id, str):
                self.moves.setdefault(stage_id, []).extend(_immediate_moves(steps, path + ["steps"])[0])
        return ids

    def _entry(self, entry: dict, path: PathList) -> None:
        if "event" in entry:
            self.check_event(path + ["event"], entry["event"], entry.get("where"), path + ["where"])
        if isinstance(entry.get("segment"), str):
            self.refs.segments.append((path + ["segment"], entry["segment"]))
        if "condition" in entry:
            _condition(self, self.refs, entry["condition"], path + ["condition"])
        if "if" in entry:
            _condition(self, self.refs, entry["if"], path + ["if"])
        if "attribute_changed" in entry:
            self.check_attribute(path + ["attribute_changed"], entry["attribute_changed"])
        if "date" in entry:
            self.check_attribute(path + ["date"], entry["date"], expect_date=True)
        if "schedule" in entry and not is_cron(entry["schedule"]):
            self.report(path + ["schedule"], "cron.invalid",
                        f"`{entry['schedule']}` is not a valid cron expression",
                        hint='five fields: minute hour day-of-month month weekday, e.g. "0 9 * * mon"')
        if "timezone" in entry:
            self.check_timezone(path + ["timezone"], entry["timezone"], allow_contact=True)

    def _steps(self, steps: list, path: PathList) -> None:
        exited_at: int | None = None
        for index, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            here = path + [index]
            if exited_at is not None and index == exited_at + 1:
                self.report(here, "step.unreachable",
                            "this step can never run: an `exit` step comes before it", severity=WARNING,
                            hint="remove it or move it before the exit")
            step_id = step.get("id")
            if isinstance(step_id, str):
                if step_id in self.step_ids:
                    first = self.doc.position(self.step_ids[step_id] + ["id"])[0]
                    self.report(here + ["id"], "step.duplicate-id",
                                f"step id `{step_id}` is used twice (first on line {first})",
                                hint="step ids must be unique in the journey: sends are keyed by them")
                else:
                    self.step_ids[step_id] = here
            if "if" in step:
                _condition(self, self.refs, step["if"], here + ["if"])
            self._action(step, here)
            if "exit" in step and "if" not in step and exited_at is None:
                exited_at = index

    def _action(self, step: dict, here: PathList) -> None:
        for name, kind in STEP_KINDS.items():  # what a kind checks itself, beyond its schema
            if kind.check is not None and name in step:
                for message in kind.check(step[name]):
                    self.report(here + [name], f"step.{name}", message)
        email = _mapping(step.get("email"))
        if isinstance(email.get("topic"), str):
            self.check_topic(here + ["email", "topic"], email["topic"])
        if isinstance(email.get("template"), str):
            self.templates.append((here + ["email", "template"], email["template"], "html"))
        if isinstance(email.get("text_template"), str):
            self.templates.append((here + ["email", "text_template"], email["text_template"], "text"))
        wait_for = _mapping(step.get("wait_for"))
        if "event" in wait_for:
            self.check_event(here + ["wait_for", "event"], wait_for["event"], wait_for.get("where"),
                             here + ["wait_for", "where"])
            self.waits_for.append((here, wait_for["event"], wait_for.get("where")))
        for key in ("on_event", "on_timeout"):
            self._steps(_list(step.get(key)), here + [key])
        branch = _mapping(step.get("branch"))
        for index, case in enumerate(_list(branch.get("cases"))):
            case = _mapping(case)
            if "if" in case:
                _condition(self, self.refs, case["if"], here + ["branch", "cases", index, "if"])
            self._steps(_list(case.get("steps")), here + ["branch", "cases", index, "steps"])
        self._steps(_list(branch.get("else")), here + ["branch", "else"])
        if isinstance(step.get("split"), dict):
            self._split(step["split"], here + ["split"])
        update = _mapping(step.get("update"))
        for attribute in _mapping(update.get("set")):
            self.check_attribute(here + ["update", "set", attribute], attribute)
        for score in _mapping(update.get("add_score")):
            self.refs.scores.append((here + ["update", "add_score", score], score))
        if isinstance(update.get("stage"), str):
            self.refs.stages.append((here + ["update", "stage"], update["stage"]))

    def _split(self, split: dict, path: PathList) -> None:
        variants = _list(split.get("variants"))
        names: set[str] = set()
        total = 0.0
        numeric = True
        for index, variant in enumerate(variants):
            variant = _mapping(variant)
            name = variant.get("name")
            if isinstance(name, str):
                if name in names:
                    self.report(path + ["variants", index, "name"], "split.duplicate-variant",
                                f"variant name `{name}` is used twice in this split")
                names.add(name)
            weight = variant.get("weight")
            if isinstance(weight, (int, float)) and not isinstance(weight, bool):
                total += weight
            else:
                numeric = False
            self._steps(_list(variant.get("steps")), path + ["variants", index, "steps"])
        holdout = split.get("holdout", 0)
        if isinstance(holdout, (int, float)) and not isinstance(holdout, bool):
            total += holdout
        else:
            numeric = False
        if numeric and variants and abs(total - 100) > 1e-9:
            self.report(path, "split.weights", f"variant weights plus holdout add up to {total:g}, not 100",
                        hint="adjust the weights so every contact lands in exactly one variant or the holdout",
                        key=True)

    def _stage_loops(self) -> None:
        graph = {stage: [target for target, _ in moves] for stage, moves in self.moves.items()}
        reported: set[frozenset] = set()
        for stage, moves in self.moves.items():
            for target, path in moves:
                back = [stage] if target == stage else _route(graph, target, stage)
                if back is None:
                    continue
                cycle = [stage] if target == stage else [stage] + back[:-1]
                if frozenset(cycle) in reported:
                    continue
                reported.add(frozenset(cycle))
                self.report(path, "stage.loop",
                            "contacts can move between stages " + " -> ".join(cycle + [cycle[0]]) +
                            " with no wait in between: an endless loop",
                            hint="add a wait before the `update: {stage: …}` step or guard it with `if:`")

    def _migration(self) -> None:
        migration = _mapping(self.data.get("migration"))
        version = self.data.get("version")
        start = migration.get("from")
        if isinstance(start, int) and isinstance(version, int) and not isinstance(start, bool) and start >= version:
            self.report(["migration", "from"], "migration.from",
                        f"migration.from is {start}, but it must name an older version than this one ({version})")
        for old, new in _mapping(migration.get("map")).items():
            if isinstance(new, str) and new not in self.step_ids:
                suggestion = did_you_mean(new, list(self.step_ids))
                extra = f"; did you mean `{suggestion}`?" if suggestion else ""
                self.report(["migration", "map", old], "ref.step", f"there is no step `{new}` in this version{extra}")

    def _waits_for_the_goal(self, goal: dict) -> None:
        """A ``wait_for`` on the goal event never answers: the goal is checked first and ends the enrollment.
        A goal with ``within`` counts only that long after entry: warned when the wait ends inside it
        (a journey of one stage, so the stage starts at entry; see ``waitspans``)."""
        if goal.get("exit_on_goal") is False:
            return  # the contact stays in: the event path runs
        window = None
        if "within" in goal:
            window = waitspans.latest_end([{"wait_for": {"timeout": goal["within"]}}], 0)
            if window is None:
                return  # a bad duration, reported by the schema
        stages = _list(self.data.get("stages"))
        for here, event, where in self.waits_for:
            if event != goal["event"] or (goal.get("where") and goal.get("where") != where):
                continue
            hint = "wait for another event, or set `exit_on_goal: false` on the goal"
            if window is None:
                self.report(here + ["wait_for", "event"], "wait_for.goal",
                            f"{place(here, self.data)} waits for `{event}`, the journey's goal: the goal wins "
                            "(the contact leaves the journey), so its `on_event` path can never run",
                            severity=WARNING, hint=hint)
                continue
            if len(stages) != 1 or len(here) != 4:
                continue  # a later stage, or a nested path, may start any time after entry
            latest = waitspans.latest_end(_list(_mapping(stages[0]).get("steps")), here[3])
            if latest is not None and latest <= window:
                self.report(here + ["wait_for", "event"], "wait_for.goal",
                            f"{place(here, self.data)} waits for `{event}`, the journey's goal, and ends at most "
                            f"{format_duration(latest)} after entry, inside the goal's {goal['within']}: the goal "
                            "wins (the contact leaves the journey), so its `on_event` path can never run (unless "
                            "deferred sends hold the contact that long)", severity=WARNING, hint=hint)

    def _templates(self) -> None:
        folder = self.project.templates_dir
        if folder is None:
            return
        for path, name, kind in self.templates:
            candidates = template_candidates(name, kind)
            if not any(is_file(folder / candidate) for candidate in candidates):
                suggestion = did_you_mean(_without_suffix(name), existing_templates(folder, kind))
                extra = f"; did you mean `{suggestion}`?" if suggestion else ""
                self.report(path, "ref.template",
                            f"template `{name}` not found (looked for {', '.join(candidates)} in {folder.name}/){extra}",
                            hint=f"create {folder.name}/{candidates[0]}")


def _without_suffix(name: str) -> str:
    return name.rsplit(".", 1)[0] if Path(name).suffix else name


def template_candidates(name: str, kind: str) -> list[str]:
    """File names the renderer would use for a template reference (see runner.delivery.render)."""
    if kind == "text":
        return [name if Path(name).suffix else f"{name}.txt"]
    base = name.removesuffix(".html").removesuffix(".htm")
    return [f"{base}.html"]


@cache
def existing_templates(folder: Path, kind: str) -> tuple[str, ...]:
    """The template names in ``folder``, without suffix, for "did you mean" (symbolic links not followed)."""
    suffixes = (".txt",) if kind == "text" else (".html", ".htm")
    names: list[str] = []
    for directory, _folders, files in os.walk(folder):  # errors are skipped: no suggestion, "not found" stands
        for file in files:
            if file.endswith(suffixes):
                relative = (Path(directory) / file).relative_to(folder).as_posix()
                names.append(relative.rsplit(".", 1)[0])
        if len(names) >= 5000:
            break
    return tuple(names)


@cache
def is_file(path: Path) -> bool:
    """Whether ``path`` is a file; absurd names (too long, NUL bytes) are simply not files."""
    try:
        return path.is_file()
    except (OSError, ValueError):  # name too long, NUL byte, ...: certainly not a template
        return False


def is_dir(path: Path) -> bool:
    """Whether ``path`` is a folder; absurd names are simply not folders."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def clear_caches() -> None:
    """Forget cached file lookups (between runs in one process, e.g. tests)."""
    is_file.cache_clear()
    existing_templates.cache_clear()


def _immediate_moves(steps: list, path: PathList) -> tuple[list[tuple[str, PathList]], bool]:
    """Stage moves reachable from the start of ``steps`` without waiting.

    Returns the moves (target stage, path of the ``stage`` value) and whether
    a contact can run off the end of the list without waiting or moving.
    A step guarded by ``if`` might be skipped, so its wait does not count.
    """
    moves: list[tuple[str, PathList]] = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        here = path + [index]
        guarded = "if" in step
        if any(key in step for key in _WAITS) or "exit" in step:
            if not guarded:
                return moves, False
            continue
        update = _mapping(step.get("update"))
        if isinstance(update.get("stage"), str):
            moves.append((update["stage"], here + ["update", "stage"]))
            if not guarded:
                return moves, False
        paths: list[tuple[list, PathList]] = []
        if isinstance(step.get("branch"), dict):
            branch = step["branch"]
            for number, case in enumerate(_list(branch.get("cases"))):
                paths.append((_list(_mapping(case).get("steps")), here + ["branch", "cases", number, "steps"]))
            paths.append((_list(branch.get("else")), here + ["branch", "else"]))
        if isinstance(step.get("split"), dict):
            for number, variant in enumerate(_list(step["split"].get("variants"))):
                paths.append((_list(_mapping(variant).get("steps")), here + ["split", "variants", number, "steps"]))
            paths.append(([], here))  # the holdout runs straight on
        if paths:
            falls_through = False
            for inner_steps, inner_path in paths:
                inner_moves, through = _immediate_moves(inner_steps, inner_path)
                moves.extend(inner_moves)
                falls_through = falls_through or through
            if not falls_through and not guarded:
                return moves, False
    return moves, True


def check_journey(doc: YamlDocument, project: ProjectContext) -> tuple[list[Problem], list[tuple[PathList, str, str]]]:
    """Semantic problems of one journey file, and the templates it uses (path, name, kind)."""
    checker = _JourneyChecker(doc, project)
    return checker.run(), checker.templates


def check_journey_ids(docs: list[YamlDocument]) -> list[Problem]:
    """Journey ids must be unique across all files of the project."""
    problems: list[Problem] = []
    first: dict[str, YamlDocument] = {}
    for doc in docs:
        journey_id = doc.data.get("id") if isinstance(doc.data, dict) else None
        if not isinstance(journey_id, str):
            continue
        if journey_id in first:
            problems.append(doc.problem(["id"], "journey.duplicate-id",
                                        f"journey id `{journey_id}` is also used by {first[journey_id].file}",
                                        hint="journey ids must be unique in the project"))
        else:
            first[journey_id] = doc
    return problems


# ---------------------------------------------------------------- project, contacts, scenarios


def check_project(doc: YamlDocument, project: ProjectContext) -> list[Problem]:
    """Semantic problems of project.yaml."""
    checker = _Checker(doc, project)
    data = _mapping(doc.data)
    checker.check_durations()
    checker.check_timezone(["default_timezone"], data.get("default_timezone"))
    refs = _Refs()
    for name, spec in _mapping(data.get("segments")).items():
        _condition(checker, refs, spec, ["segments", name])
    for index, spec in enumerate(_list(data.get("exit"))):  # exit rules of every journey
        _condition(checker, refs, spec, ["exit", index])
    for name, score in _mapping(data.get("scores")).items():
        for index, rule in enumerate(_list(_mapping(score).get("rules"))):
            rule = _mapping(rule)
            here: PathList = ["scores", name, "rules", index]
            if "event" in rule:
                checker.check_event(here + ["event"], rule["event"], rule.get("where"), here + ["where"])
            if "when" in rule:
                _condition(checker, refs, rule["when"], here + ["when"])
    for path, name in refs.stages:
        checker.report(path, "ref.stage", f"`stage: {name}` only makes sense inside a journey")
    _segment_problems(checker, refs, _mapping(data.get("segments")), {}, ["segments"], report_unused=False)
    _score_refs(checker, refs)
    _default_topic(checker, data)
    for index, network in enumerate(_list(_mapping(data.get("webhooks")).get("allow_networks"))):
        try:
            ipaddress.ip_network(str(network), strict=False)
        except ValueError:
            checker.report(["webhooks", "allow_networks", index], "project.network",
                           f"`{network}` is not an IP network (write 127.0.0.1/32, 10.0.0.0/8 or fd00::/8)")
    return checker.problems


def _default_topic(checker: _Checker, data: dict) -> None:
    """``default_topic`` names a declared marketing topic: a transactional default would
    let every unnamed email past an unsubscribe."""
    name = data.get("default_topic")
    if not isinstance(name, str):
        return
    if name not in checker.project.topics:
        checker.check_topic(["default_topic"], name)
    elif _mapping(_mapping(data.get("topics")).get(name)).get("kind") == "transactional":
        checker.report(["default_topic"], "project.topic",
                       f"default_topic `{name}` is transactional: emails that name no topic would ignore unsubscribes",
                       hint="make the default a marketing topic; name transactional topics on their steps")


def check_contacts(doc: YamlDocument) -> list[Problem]:
    """Semantic problems of a test contacts file: zones, duplicate ids."""
    checker = _Checker(doc, ProjectContext())
    contacts = _list(_mapping(doc.data).get("contacts"))
    _contacts(checker, contacts, ["contacts"])
    return checker.problems


def _contacts(checker: _Checker, contacts: list, path: PathList) -> None:
    seen: set[str] = set()
    for index, contact in enumerate(contacts):
        contact = _mapping(contact)
        contact_id = contact.get("id")
        if isinstance(contact_id, str):
            if contact_id in seen:
                checker.report(path + [index, "id"], "contact.duplicate-id", f"contact id `{contact_id}` is used twice")
            seen.add(contact_id)
        checker.check_timezone(path + [index, "timezone"], contact.get("timezone"))


def check_scenario(doc: YamlDocument, journey_ids: set[str] | None, base: Path | None) -> list[Problem]:
    """Semantic problems of a scenario: journeys and contacts it names must exist."""
    checker = _Checker(doc, ProjectContext())
    data = _mapping(doc.data)
    checker.check_durations()
    if journey_ids is not None:
        checker.problems += check_scenario_journeys(doc, journey_ids)
    contacts = data.get("contacts")
    if isinstance(contacts, str) and base is not None and not is_file(base / contacts):
        checker.report(["contacts"], "ref.contacts", f"contacts file `{contacts}` not found next to this scenario")
    if isinstance(contacts, list):
        _contacts(checker, contacts, ["contacts"])
    if contacts is None and not data.get("generate"):
        checker.report(["name"], "scenario.no-contacts", "the scenario has no contacts",
                       hint="`contacts:` (a file or an inline list) or `generate:` (a group of generated contacts)")
    groups = sorted({g["group"] for g in _list(data.get("generate")) if isinstance(g, dict) and isinstance(g.get("group"), str)})
    for index, spec in enumerate(_list(data.get("expect"))):
        group = spec.get("group") if isinstance(spec, dict) else None
        if isinstance(group, str) and group not in groups:
            suggestion = did_you_mean(group, groups)
            extra = f"; did you mean `{suggestion}`?" if suggestion else ""
            checker.report(["expect", index, "group"], "ref.contact",
                           f"there is no generated group `{group}` in this scenario{extra}",
                           hint=None if groups else "generate one under `generate:`")
        _bounds(checker, spec, ["expect", index])
        for key in ("share", "count", "among"):
            if isinstance(spec, dict) and key in spec and "group" not in spec:
                checker.report(["expect", index, key], "scenario.group-only",
                               f"`{key}` counts the contacts of a generated group; this expectation is about one contact",
                               hint="write `group: NAME` (a group under `generate:`) instead of `contact:`, or drop "
                                    f"`{key}`")
    return checker.problems


def _bounds(checker: _Checker, spec: Any, path: PathList) -> None:
    """A group expectation's ``share``/``count`` bounds: low first, a share no more than 100%."""
    if not isinstance(spec, dict):
        return
    for key in ("share", "count"):
        value = spec.get(key)
        values: list[Any] = value if isinstance(value, list) else [value]
        if key == "share":
            values = [float(v[:-1]) for v in values if isinstance(v, str) and re.fullmatch(r"[0-9]+(\.[0-9]+)?%", v)]
            if any(v > 100 for v in values):
                checker.report([*path, key], "scenario.bounds", f"a share is at most 100%: `{key}: {value}` can never "
                               "be met", hint="write shares as 0% to 100%")
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == 2 and numbers[0] > numbers[1]:
            checker.report([*path, key], "scenario.bounds", f"`{key}: {value}` starts above where it ends",
                           hint="write the lower bound first: [low, high]")


def check_scenario_journeys(doc: YamlDocument, journey_ids: set[str]) -> list[Problem]:
    """A scenario's ``journeys:`` (and its deploys') must name journeys of the project, or journey files."""
    checker = _Checker(doc, ProjectContext())
    data = _mapping(doc.data)
    named = [(["journeys", index], name) for index, name in enumerate(_list(data.get("journeys")))]
    deploys = data.get("deploy")
    for where, deploy in ([(["deploy"], deploys)] if isinstance(deploys, dict) else
                          [(["deploy", i], d) for i, d in enumerate(_list(deploys))]):
        named += [([*where, "journeys", index], name) for index, name in enumerate(_list(_mapping(deploy).get("journeys")))]
    for path, name in named:
        # a journey file (a version the working tree does not hold) is checked by the loader
        if isinstance(name, str) and name not in journey_ids and not name.endswith((".yaml", ".yml")):
            suggestion = did_you_mean(name, sorted(journey_ids))
            extra = f"; did you mean `{suggestion}`?" if suggestion else ""
            checker.report(path, "ref.journey", f"there is no journey `{name}`{extra}")
    return checker.problems
