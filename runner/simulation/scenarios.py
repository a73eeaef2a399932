"""Scenarios: a simulation with expectations, checked like a unit test.

A scenario (``*.scenario.yaml``, format in docs/language.md and
docs/testing.md) names contacts, a start, a duration, the journeys to run and
what must happen. ``run_scenario`` simulates it with the same engine
production runs and checks each expectation against the decisions; a failure
says what was expected, what happened instead, and shows the contact's
timeline around it. ``write_junit`` records the results for CI.

Expectation times are local to the contact (``+2d 10:00``): resolved with the
same rules as test-contact event times.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runner.core.durations import parse_duration
from runner.core.engine import Decision
from runner.core.localtime import zone
from runner.core.model import Journey, Project
from runner.core.problems import ERROR, JourneyError, Problem
from runner.core.reasons import DEFER_REASONS, SKIP_REASONS, reason_matches
from runner.language.loader import LoadedProject, load_project
from runner.simulation.generated import generate_contacts, percent
from runner.simulation.releases import Deploy, Releases
from runner.simulation.rendering import RenderFailure, SendRenderer
from runner.simulation.simulate import Simulation, simulate
from runner.simulation.testcontacts import TestContact, contacts_by_id, load_test_contacts, resolve_time

UTC = UTC
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; never the wall clock
DEFAULT_DURATION = "14d"
EXPECTATION_KINDS = ("receives", "never_receives", "in_stage", "reaches_goal", "exits", "emails",
                     "skipped", "deferred", "calls", "holdout")
SCENARIO_SUFFIXES = (".scenario.yaml", ".scenario.yml")


# ---------------------------------------------------------------- project


def load_checked_project(paths: Sequence[Path] = (), root: Path | None = None) -> LoadedProject:
    """The project and its journeys; JourneyError listing the problems when any is an error."""
    loaded = load_project(root=root, paths=list(paths))
    if not loaded.ok:
        raise JourneyError(
            f"the project has {len(loaded.errors)} error(s); fix them first (journey validate shows them)",
            loaded.errors,
        )
    return loaded


def select_journeys(journeys: Sequence[Journey], ids: Sequence[str] | None, where: str = "") -> list[Journey]:
    """The journeys named by ``ids`` (all when None), in the order given; unknown ids are errors."""
    if not ids:
        return list(journeys)
    by_id = {j.id: j for j in journeys}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise JourneyError(f"{where}unknown journey(s): {', '.join(missing)} (known: {', '.join(sorted(by_id))})")
    return [by_id[i] for i in ids]


def check_contacts(contacts: Sequence[TestContact]) -> dict[str, TestContact]:
    """Contacts by id; JourneyError for duplicate ids or a time zone that does not exist."""
    from runner.core.localtime import is_zone

    for contact in contacts:
        if contact.timezone is not None and not is_zone(contact.timezone):
            raise JourneyError(f"{contact.source}: contact '{contact.id}': unknown time zone '{contact.timezone}' "
                               "(use an IANA name like Europe/Istanbul)")
    return contacts_by_id(contacts)


# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class Expectation:
    """One ``expect:`` item: a kind, its target and optional time constraints.

    About one ``contact``, or about a generated ``group`` (``contact`` empty):
    then ``share``/``count`` bound how many of the group (of those ``among``
    holds for) meet it; without either, every one of them must.
    """

    index: int
    contact: str
    kind: str  # one of EXPECTATION_KINDS
    target: Any  # step, stage, journey id, or the email count
    at: str | None = None
    within: tuple[str, str] | None = None
    reason: str | None = None
    line: int = 0
    times: int | None = None  # calls: how many
    group: str | None = None
    among: Expectation | None = None
    share: tuple[float, float] | None = None
    count: tuple[int, int] | None = None
    subject: str | None = None  # receives: the subject as rendered (in the contact's language)

    def describe(self) -> str:
        if self.group is not None:
            return f"{self._bound()} of group {self.group}{self._among()}: {self.predicate()}"
        return f"{self.contact} {self.predicate()}"

    def predicate(self) -> str:
        """What the expectation says of its contact, without naming the contact."""
        text = f"{self.kind.replace('_', ' ')} {self.target}"
        if self.kind == "emails":
            text = f"receives {self.target} email(s) in total"
        elif self.kind in ("skipped", "deferred"):
            text = f"has step {self.target} {self.kind}"
        elif self.kind == "calls":
            text = f"gets {'calls' if self.times is None else f'{self.times} call(s)'} from webhook step {self.target}"
        elif self.kind == "holdout":
            text = f"is held out at split {self.target}"
        if self.reason:
            text += f" with reason {self.reason}"
        if self.subject is not None:
            text += f" with subject {self.subject!r}"
        if self.at:
            text += f" at {self.at}{_local(self.at)}"
        if self.within:
            text += f" within [{self.within[0]}, {self.within[1]}]{_local(self.within[0])}"
        return text

    def _bound(self) -> str:
        if self.share is not None:
            low, high = (_percent_text(x) for x in self.share)
            return f"between {low} and {high}" if low != high else f"exactly {low}"
        if self.count is not None:
            return f"between {self.count[0]} and {self.count[1]}" if self.count[0] != self.count[1] \
                else f"exactly {self.count[0]}"
        return "every contact"

    def _among(self) -> str:
        return f" that {self.among.predicate()}" if self.among is not None else ""


def _local(text: str) -> str:
    """" local" after a relative time (the contact's clock); absolute instants carry their zone."""
    return " local" if text.strip().startswith("+") else ""


def _percent_text(share: float) -> str:
    return f"{share * 100:.4g}%"


@dataclass(frozen=True)
class DeploySpec:
    """A ``deploy:`` item as written: when (resolved in the project's time zone) and which journeys."""

    at: str
    journeys: tuple[str, ...]  # journey ids (the working tree's version) or journey files
    line: int


@dataclass
class Scenario:
    name: str
    path: Path
    contacts: list[TestContact]
    start: datetime
    duration: str
    journey_ids: list[str] | None
    expectations: list[Expectation]
    description: str = ""
    groups: dict[str, list[str]] = field(default_factory=dict)  # generated group -> its contact ids
    deploys: list[DeploySpec] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        return self.start + parse_duration(self.duration).approx


@dataclass
class Check:
    expectation: Expectation
    passed: bool
    message: str = ""  # what happened (instead)
    context: list[str] = field(default_factory=list)  # the contact's timeline around it
    contact: str | None = None  # whose timeline ``context`` is, when not the expectation's contact (a group's)


@dataclass
class ScenarioResult:
    scenario: Scenario | None
    path: Path
    checks: list[Check] = field(default_factory=list)
    error: str | None = None  # the scenario could not run (bad file, unknown contact, ...)
    seconds: float = 0.0
    render_failures: list[RenderFailure] = field(default_factory=list)  # sends production could not build

    @property
    def name(self) -> str:
        return self.scenario.name if self.scenario else self.path.name

    @property
    def passed(self) -> bool:
        return self.error is None and not self.render_failures and all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


# ---------------------------------------------------------------- loading


def find_scenarios(paths: Iterable[Path]) -> list[Path]:
    """Scenario files given, or found under folders given (sorted)."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.name.endswith(SCENARIO_SUFFIXES) and p.is_file()))
        elif path.exists():
            found.append(path)
        else:
            raise JourneyError(f"{path}: no such file or folder")
    return found


def load_scenario(path: Path, journeys: Sequence[Journey] | None = None, default_timezone: str = "UTC",
                  versions: dict[str, Journey] | None = None, project_exits: int = 0) -> Scenario:
    """Read and check a scenario file; JourneyError with problems when it is not valid.

    With ``journeys`` (the project's), the journeys, stages and steps its
    expectations name must exist in those it runs (``runner.language.scenariorefs``);
    ``versions``: the journey files it names (``journeys:``, ``deploy:``), by the
    text that names them; ``project_exits``: how many exit rules project.yaml
    has. Generated contacts are drawn in ``default_timezone``
    unless their spec gives a zone.
    """
    from runner.language import schema, semantics
    from runner.language.loader import display_name
    from runner.language.scenariorefs import check_references, deploy_items
    from runner.language.yamlsource import load_file

    name = display_name(path)
    doc, problems = load_file(path, name)
    if doc is not None:
        problems += schema.check(doc, "scenario")
        problems += semantics.check_scenario(doc, {j.id for j in journeys} if journeys is not None else None,
                                             path.parent)
        if journeys is not None and not any(p.severity == ERROR for p in problems):
            problems += check_references(doc, journeys, versions, project_exits)
    errors = [p for p in problems if p.severity == ERROR]
    if doc is None or errors:
        raise JourneyError(f"{name}: the scenario is not valid", errors)
    data = doc.data
    start = resolve_time(data["start"], DEFAULT_START, "UTC", name) if data.get("start") else DEFAULT_START
    contacts = _scenario_contacts(data.get("contacts"), path, name) if data.get("contacts") is not None else []
    groups = generate_contacts(data.get("generate") or [], start, default_timezone, name)
    for members in groups.values():
        contacts += members
    if not contacts:
        raise JourneyError(f"{name}: the scenario has no contacts (a file name, an inline list, or `generate:`)")
    unknown = _unknown_contacts(doc, contacts)
    if unknown:
        raise JourneyError(f"{name}: the scenario is not valid", unknown)
    expectations = [_expectation(doc, spec, ["expect", index], index) for index, spec in enumerate(data.get("expect") or [])]
    deploys = [
        DeploySpec(str(spec["at"]), tuple(str(j) for j in spec["journeys"]), doc.position(where)[0])
        for where, spec in deploy_items(data.get("deploy"))
    ]
    return Scenario(
        name=str(data["name"]), path=path, contacts=contacts, start=start,
        duration=str(data.get("duration") or DEFAULT_DURATION), journey_ids=data.get("journeys"),
        expectations=expectations, description=str(data.get("description") or ""),
        groups={group: [c.id for c in members] for group, members in groups.items()}, deploys=deploys,
    )


def _expectation(doc: Any, spec: dict[str, Any], path: list, index: int) -> Expectation:
    """One ``expect:`` item (or the ``among:`` filter of a group expectation) as an Expectation."""
    kind = next(k for k in EXPECTATION_KINDS if k in spec)
    within = spec.get("within")
    target, reason, times = spec[kind], spec.get("reason"), None
    if kind in ("skipped", "deferred", "calls"):
        target, reason, times = spec[kind]["step"], spec[kind].get("reason"), spec[kind].get("times")
    share = spec.get("share")
    count = spec.get("count")
    among = spec.get("among")
    return Expectation(
        index=index, contact=str(spec.get("contact") or ""), kind=kind,
        target=target, at=spec.get("at"), within=(within[0], within[1]) if within else None, reason=reason,
        line=doc.position(path)[0], times=times, group=spec.get("group"),
        among=_expectation(doc, among, [*path, "among"], 0) if among is not None else None,
        share=_bounds(share, percent) if share is not None else None,
        count=_bounds(count, int) if count is not None else None,
        subject=spec.get("subject") if isinstance(spec.get("subject"), str) else None,
    )


def _bounds(value: Any, convert: Any) -> tuple[Any, Any]:
    """``[low, high]`` or one value (exactly that), converted."""
    if isinstance(value, list):
        return convert(value[0]), convert(value[1])
    return convert(value), convert(value)


def _unknown_contacts(doc: Any, contacts: list[TestContact]) -> list[Problem]:
    """Expectations about a contact the scenario does not have, at their file:line:col
    (a group's name is checked with the file: ``semantics.check_scenario``)."""
    from runner.language.schema import did_you_mean

    known = {contact.id for contact in contacts}
    problems = []
    for index, spec in enumerate(doc.data.get("expect") or []):
        contact = spec.get("contact")
        if contact is not None and str(contact) not in known:
            suggestion = did_you_mean(str(contact), sorted(known))
            extra = f"; did you mean `{suggestion}`?" if suggestion else ""
            problems.append(doc.problem(["expect", index, "contact"], "ref.contact",
                                        f"there is no contact `{contact}` in this scenario{extra}"))
    return problems


def _scenario_contacts(spec: Any, path: Path, name: str) -> list[TestContact]:
    if isinstance(spec, str):
        return load_test_contacts(path.parent / spec)
    return [
        TestContact(
            id=str(item["id"]), timezone=item.get("timezone"), attributes=dict(item.get("attributes") or {}),
            anonymous_ids=[str(a) for a in item.get("anonymous_ids") or []],
            events=list(item.get("events") or []), source=name,
        )
        for item in spec
    ]


# ---------------------------------------------------------------- running


def run_scenario(path: Path, loaded: LoadedProject) -> ScenarioResult:
    """Load, simulate and check one scenario; never raises for bad input."""
    began = time.perf_counter()
    result = ScenarioResult(None, path)
    try:
        versions = _journey_files(path, loaded)
        scenario = load_scenario(path, loaded.journeys, loaded.project.default_timezone or "UTC", versions,
                                 len(loaded.project.exit))
        result.scenario = scenario
        journeys = _named_journeys(loaded.journeys, scenario.journey_ids, versions, f"{path}: ")
        check_contacts(scenario.contacts)
        releases = Releases(loaded.project, journeys, [
            Deploy(resolve_time(spec.at, scenario.start, loaded.project.default_timezone or "UTC", str(path)),
                   tuple(_named_journeys(loaded.journeys, list(spec.journeys), versions, f"{path}: ")),
                   f"{path}:{spec.line}")
            for spec in scenario.deploys
        ])
        simulation = simulate(loaded.project, journeys, scenario.contacts, scenario.start, scenario.end, releases)
        checker = ExpectationChecker(scenario, loaded.project, journeys, simulation, releases)
        result.checks = [checker.check(e) for e in scenario.expectations]
        # every send rendered in full, as production renders it: a template failing for a contact fails here
        result.render_failures = SendRenderer(loaded.project, releases.every).failures(simulation.decisions)
    except JourneyError as error:
        details = "".join(f"\n  {problem}" for problem in error.problems)
        result.error = f"{error}{details}"
    except ValueError as error:  # a condition or time the checks let through: report it, never crash
        result.error = f"{path}: {error}"
    result.seconds = time.perf_counter() - began
    return result


def _journey_files(path: Path, loaded: LoadedProject) -> dict[str, Journey]:
    """The journey files the scenario names, loaded and checked (JourneyError with their problems)."""
    from runner.language.loader import display_name, scenario_versions
    from runner.language.yamlsource import load_file

    doc, _problems = load_file(path, display_name(path))
    if doc is None:
        return {}  # load_scenario reports it
    versions, problems = scenario_versions(doc, path.parent, loaded.root)
    errors = [p for p in problems if p.severity == ERROR]
    if errors:
        raise JourneyError(f"{display_name(path)}: a journey file it names is not valid", errors)
    return versions


def _named_journeys(journeys: Sequence[Journey], items: Sequence[str] | None, versions: dict[str, Journey],
                    where: str) -> list[Journey]:
    """The journeys ``items`` name: project journey ids or journey files (all the project's when None)."""
    if not items:
        return list(journeys)
    files = [versions[item] for item in items if item in versions]
    ids = [item for item in items if item not in versions]
    return select_journeys(journeys, ids, where) + files if ids else files


class ExpectationChecker:
    """Checks expectations against one simulation's decisions."""

    def __init__(self, scenario: Scenario, project: Project, journeys: Sequence[Journey], simulation: Simulation,
                 releases: Releases | None = None):
        self.scenario = scenario
        self.project = project
        self.journeys = list(journeys)
        self.simulation = simulation
        self.releases = releases or Releases(project, journeys)
        self.contacts = contacts_by_id(scenario.contacts)
        self._renderer: SendRenderer | None = None  # built at the first `subject:` expectation
        self._decisions: dict[str, list[Decision]] = {}  # contact -> decisions in time order (one pass, not one per look)
        for decision in simulation.decisions:
            self._decisions.setdefault(decision.contact, []).append(decision)
        self.explain = True  # failures carry the contact's timeline (not while counting a group)

    # -- helpers

    def zone_name(self, contact_id: str) -> str:
        name = self.contacts[contact_id].timezone or self.project.default_timezone or "UTC"
        try:
            zone(name)
        except ValueError:
            return self.project.default_timezone or "UTC"
        return name

    def when(self, contact_id: str, text: str) -> datetime:
        return resolve_time(text, self.scenario.start, self.zone_name(contact_id), str(self.scenario.path))

    def local(self, contact_id: str, instant: datetime) -> str:
        return instant.astimezone(zone(self.zone_name(contact_id))).strftime("%a %Y-%m-%d %H:%M %Z")

    def decisions(self, contact_id: str) -> list[Decision]:
        return self._decisions.get(contact_id, [])

    def window(self, e: Expectation) -> tuple[datetime, datetime] | None:
        """The instants an ``at`` (that minute) or ``within`` (inclusive) expectation allows."""
        if e.at:
            moment = self.when(e.contact, e.at)
            return moment, moment + timedelta(seconds=59)
        if e.within:
            return self.when(e.contact, e.within[0]), self.when(e.contact, e.within[1])
        return None

    def step_matches(self, decision: Decision, target: str) -> bool:
        if "." in target and decision.step != target:
            journey, _, step = target.partition(".")
            return decision.journey == journey and decision.step == step
        return decision.step == target

    def timeline(self, contact_id: str, around: datetime | None = None, limit: int = 12) -> list[str]:
        """The contact's decisions (around an instant when given), one readable line each."""
        decisions = self.decisions(contact_id)
        if around is not None and decisions:
            nearest = min(range(len(decisions)), key=lambda i: abs((decisions[i].at - around).total_seconds()))
            low = max(0, nearest - limit // 2)
            decisions = decisions[low: low + limit]
        elif len(decisions) > limit:
            decisions = decisions[:limit]
        return [
            f"{self.local(contact_id, d.at)}  {d.journey}/{d.stage or '-'}/{d.step or '-'}  {d.action}: {d.reason}"
            for d in decisions
        ]

    # -- checks

    def check(self, e: Expectation) -> Check:
        if e.group is not None:
            return self._check_group(e)
        return getattr(self, f"_check_{e.kind}")(e)

    def _check_group(self, e: Expectation) -> Check:
        """How many of a generated group (of those ``among`` holds for) meet ``e``, against its bounds."""
        members = self.scenario.groups[e.group or ""]
        explain, self.explain = self.explain, False
        try:
            if e.among is not None:
                members = [c for c in members if self.check(replace(e.among, contact=c)).passed]
            checks = {c: self.check(replace(e, group=None, among=None, contact=c)) for c in members}
        finally:
            self.explain = explain
        passed = [c for c, check in checks.items() if check.passed]
        failed = [c for c, check in checks.items() if not check.passed]
        total = len(members)
        share = len(passed) / total if total else 1.0
        if e.share is not None:
            ok = e.share[0] - 1e-9 <= share <= e.share[1] + 1e-9
        elif e.count is not None:
            ok = e.count[0] <= len(passed) <= e.count[1]
        else:
            ok = not failed
        tally = f"{len(passed)} of {total} ({_percent_text(share)})"
        if ok:
            return Check(e, True, tally)
        # the contacts that tip the count the wrong way: those that met it when too many did, else those that did not
        too_many = (e.share is not None and share > e.share[1]) or (e.count is not None and len(passed) > e.count[1])
        culprits = passed if too_many else failed
        shown = "; ".join(f"{c}: {checks[c].message}" for c in culprits[:3])
        more = f"; … ({len(culprits) - 3} more)" if len(culprits) > 3 else ""
        first = culprits[0] if culprits else None
        context = self.timeline(first) if first is not None else []
        if not culprits:
            return Check(e, False, f"{tally}: no contact to count", [])
        return Check(e, False, f"{tally}; {'they include' if too_many else 'not met by'} {shown}{more}", context,
                     first)

    def _failed(self, e: Expectation, message: str, around: datetime | None = None) -> Check:
        return Check(e, False, message, self.timeline(e.contact, around) if self.explain else [])

    def _in_window(self, e: Expectation, decisions: list[Decision]) -> tuple[list[Decision], tuple | None]:
        window = self.window(e)
        if window is None:
            return decisions, None
        return [d for d in decisions if window[0] <= d.at <= window[1]], window

    def _check_receives(self, e: Expectation) -> Check:
        sends = [d for d in self.decisions(e.contact) if d.action in ("send", "webhook") and self.step_matches(d, e.target)]
        matching, window = self._in_window(e, sends)
        if matching and e.subject is not None:
            return self._check_subject(e, matching)
        if matching:
            return Check(e, True, f"sent at {self.local(e.contact, matching[0].at)}")
        if sends:
            times = ", ".join(self.local(e.contact, d.at) for d in sends)
            return self._failed(e, f"sent at {times}, outside the expected time", window[0] if window else None)
        others = [d for d in self.decisions(e.contact) if d.step == e.target or self.step_matches(d, e.target)]
        if others:
            last = others[-1]
            return self._failed(e, f"never sent; last decision on {e.target}: {last.action}: {last.reason}", last.at)
        return self._failed(e, f"never sent; step {e.target} was not reached",
                            window[0] if window else None)

    def _check_subject(self, e: Expectation, sends: list[Decision]) -> Check:
        """The send's subject as production renders it (so in the contact's language) is ``e.subject``."""
        if self._renderer is None:
            self._renderer = SendRenderer(self.project, self.releases.every)
        subjects = []
        for decision in sends:
            outgoing, failure = self._renderer.build(decision)
            subject = outgoing.subject if outgoing is not None else f"(cannot be built: {failure and failure.reason})"
            if subject == e.subject:
                return Check(e, True, f"sent at {self.local(e.contact, decision.at)}: {subject!r}")
            subjects.append(f"{self.local(e.contact, decision.at)}: {subject!r}")
        return self._failed(e, f"sent with another subject: {'; '.join(subjects)}", sends[0].at)

    def _check_never_receives(self, e: Expectation) -> Check:
        sends = [d for d in self.decisions(e.contact) if d.action in ("send", "webhook") and self.step_matches(d, e.target)]
        if not sends:
            return Check(e, True, "not sent")
        return self._failed(e, f"sent at {self.local(e.contact, sends[0].at)} ({sends[0].key})", sends[0].at)

    def _check_in_stage(self, e: Expectation) -> Check:
        moment = self.when(e.contact, e.at) if e.at else self.scenario.end
        journey_id, _, stage = str(e.target).rpartition(".")
        stages = self.stages_at(e.contact, moment)
        hits = [j for j, s in stages.items() if s == stage and (not journey_id or j == journey_id)]
        if hits:
            return Check(e, True, f"in {hits[0]}.{stage} at {self.local(e.contact, moment)}")
        where = ", ".join(f"{j}.{s}" for j, s in sorted(stages.items())) or "no journey"
        return self._failed(e, f"at {self.local(e.contact, moment)} the contact is in {where}", moment)

    def stages_at(self, contact_id: str, moment: datetime) -> dict[str, str]:
        """Journey id -> stage the contact is in at ``moment`` (replayed by the engine up to it).

        At the end of the simulation the simulated state is that replay already: a group's
        ``in_stage`` at the end reads it instead of replaying every contact (docs/architecture.md,
        cache inventory; ``replayed_stages`` is the plain version)."""
        if moment == self.scenario.end and contact_id in self.simulation.states:
            state = self.simulation.states[contact_id]
            return {journey_id: e.stage for journey_id, e in state.enrollments.items()}
        return self.replayed_stages(contact_id, moment)

    def replayed_stages(self, contact_id: str, moment: datetime) -> dict[str, str]:
        """``stages_at`` by replaying the contact from the start up to ``moment``."""
        state = self.contacts[contact_id].state(self.scenario.start, self.project.default_timezone)
        self.releases.advance(state, max(moment, self.scenario.start), self.scenario.start)
        return {journey_id: e.stage for journey_id, e in state.enrollments.items()}

    def _check_reaches_goal(self, e: Expectation) -> Check:
        goals = [d for d in self.decisions(e.contact) if d.action == "goal" and d.journey == e.target]
        matching, window = self._in_window(e, goals)
        if matching:
            return Check(e, True, f"goal at {self.local(e.contact, matching[0].at)}")
        if goals:
            return self._failed(e, f"goal at {self.local(e.contact, goals[0].at)}, outside the expected time", goals[0].at)
        exits = [d for d in self.decisions(e.contact) if d.action == "exit" and d.journey == e.target]
        if exits:
            return self._failed(e, f"no goal; exited at {self.local(e.contact, exits[0].at)}: {exits[0].reason}", exits[0].at)
        entered = any(d.action == "enter" and d.journey == e.target for d in self.decisions(e.contact))
        return self._failed(e, "no goal" + ("" if entered else f"; never entered {e.target}"))

    def _check_exits(self, e: Expectation) -> Check:
        exits = [d for d in self.decisions(e.contact) if d.action == "exit" and d.journey == e.target]
        if e.reason:
            wanted = [d for d in exits if exit_reason_matches(d.reason, e.reason)]
        else:
            wanted = exits
        matching, window = self._in_window(e, wanted)
        if matching:
            return Check(e, True, f"exited at {self.local(e.contact, matching[0].at)}: {matching[0].reason}")
        if exits:
            text = "; ".join(f"{self.local(e.contact, d.at)}: {d.reason}" for d in exits)
            return self._failed(e, f"exited {text}", exits[0].at)
        entered = any(d.action == "enter" and d.journey == e.target for d in self.decisions(e.contact))
        return self._failed(e, "did not exit" if entered else f"never entered {e.target}")

    def _check_emails(self, e: Expectation) -> Check:
        sends = [d for d in self.decisions(e.contact) if d.action == "send"]
        if len(sends) == int(e.target):
            return Check(e, True, f"{len(sends)} email(s)")
        steps = ", ".join(f"{d.journey}.{d.step}" for d in sends) or "none"
        return self._failed(e, f"{len(sends)} email(s): {steps}")


    def _check_skipped(self, e: Expectation) -> Check:
        return self._check_held_back(e, "skip", SKIP_REASONS, "skipped")

    def _check_deferred(self, e: Expectation) -> Check:
        return self._check_held_back(e, "defer", DEFER_REASONS, "deferred")

    def _check_held_back(self, e: Expectation, action: str, table: dict[str, str], done: str) -> Check:
        """A ``skip`` or ``defer`` decision at the step (for the reason, in the window, when given)."""
        at_step = [d for d in self.decisions(e.contact) if self.step_matches(d, e.target)]
        held = [d for d in at_step if d.action == action]
        wanted = [d for d in held if e.reason is None or reason_matches(d.reason, e.reason, table)]
        matching, window = self._in_window(e, wanted)
        if matching:
            return Check(e, True, f"{action} at {self.local(e.contact, matching[0].at)}: {matching[0].reason}")
        if held:
            text = "; ".join(f"{self.local(e.contact, d.at)}: {d.reason}" for d in held)
            return self._failed(e, f"{action} {text}", held[0].at)
        if at_step:
            last = at_step[-1]
            return self._failed(e, f"never {done} at {e.target}; its decisions: "
                                   + "; ".join(f"{self.local(e.contact, d.at)} {d.action}: {d.reason}"
                                               for d in at_step[:3]), last.at)
        return self._failed(e, f"never {done}; step {e.target} was not reached", window[0] if window else None)

    def _check_calls(self, e: Expectation) -> Check:
        calls = [d for d in self.decisions(e.contact) if d.action == "webhook" and self.step_matches(d, e.target)]
        matching, window = self._in_window(e, calls)
        times = ", ".join(self.local(e.contact, d.at) for d in matching)
        if (e.times is None and matching) or (e.times is not None and len(matching) == e.times):
            return Check(e, True, f"{len(matching)} call(s)" + (f" at {times}" if times else ""))
        if matching:
            return self._failed(e, f"{len(matching)} call(s) at {times}", matching[0].at)
        others = [d for d in self.decisions(e.contact) if self.step_matches(d, e.target)]
        if calls:
            all_times = ", ".join(self.local(e.contact, d.at) for d in calls)
            return self._failed(e, f"called at {all_times}, outside the expected time", window[0] if window else None)
        if others:
            last = others[-1]
            return self._failed(e, f"never called; last decision on {e.target}: {last.action}: {last.reason}", last.at)
        return self._failed(e, f"never called; step {e.target} was not reached", window[0] if window else None)

    def _check_holdout(self, e: Expectation) -> Check:
        at_split = [d for d in self.decisions(e.contact) if d.action in ("split", "holdout")
                    and self.step_matches(d, e.target)]
        matching, _window = self._in_window(e, [d for d in at_split if d.action == "holdout"])
        if matching:
            return Check(e, True, f"held out at {self.local(e.contact, matching[0].at)}: {matching[0].reason}")
        if at_split:
            first = at_split[0]
            return self._failed(e, f"not held out: {self.local(e.contact, first.at)} {first.action}: {first.reason}",
                                first.at)
        return self._failed(e, f"not held out; split {e.target} was not reached")


def exit_reason_matches(actual: str, wanted: str) -> bool:
    """``exit:0`` matches the engine's ``exit:0 <condition>``; other reasons match exactly."""
    return actual == wanted or actual.split(" ", 1)[0] == wanted


# ---------------------------------------------------------------- reporting


def failure_text(result: ScenarioResult) -> str:
    """What a person reads when a scenario fails."""
    lines = [f"FAIL {result.name} ({result.path})"]
    if result.error:
        lines.append(f"  cannot run: {result.error}")
    for failure in result.render_failures:
        lines.append(f"  send fails in production: {failure.describe()}")
    for check in result.failures:
        e = check.expectation
        lines.append(f"  expected (line {e.line}): {e.describe()}")
        lines.append(f"  instead: {check.message}")
        if check.context:
            lines.append(f"  timeline of {check.contact or e.contact} (local time):")
            lines.extend(f"    {line}" for line in check.context)
    return "\n".join(lines)


def write_junit(results: Sequence[ScenarioResult], path: Path) -> None:
    """JUnit XML: one testsuite per scenario file, one testcase per scenario, expectations as assertions."""
    root = ET.Element("testsuites", {
        "name": "journey test", "tests": str(len(results)),
        "failures": str(sum(1 for r in results if r.error is None and not r.passed)),
        "errors": str(sum(1 for r in results if r.error is not None)),
        "time": f"{sum(r.seconds for r in results):.3f}",
    })
    for result in results:
        suite = ET.SubElement(root, "testsuite", {
            "name": str(result.path), "tests": "1",
            "failures": "1" if result.error is None and not result.passed else "0",
            "errors": "1" if result.error is not None else "0", "time": f"{result.seconds:.3f}",
        })
        case = ET.SubElement(suite, "testcase", {
            "name": result.name, "classname": result.path.stem.removesuffix(".scenario"),
            "file": str(result.path), "assertions": str(len(result.checks)), "time": f"{result.seconds:.3f}",
        })
        if result.error is not None:
            error = ET.SubElement(case, "error", {"message": result.error.splitlines()[0]})
            error.text = result.error
        elif not result.passed:
            message = f"{len(result.failures)} of {len(result.checks)} expectations failed"
            if result.render_failures:
                message += f"; {len(result.render_failures)} send(s) cannot be rendered"
            failure = ET.SubElement(case, "failure", {"message": message})
            failure.text = failure_text(result)
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(
            f"{'ok  ' if c.passed else 'FAIL'} {c.expectation.describe()}: {c.message}" for c in result.checks
        )
    tree = ET.ElementTree(root)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
