"""The journey model: frozen objects built once from schema-valid YAML mappings.

Journeys are built by ``runner.core.build.build_journey`` (steps come from
the step-kind registry, ``runner.core.stepkinds``); projects, settings and
entries here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from runner.core.conditions import Condition, Matcher, compile_condition, compile_where
from runner.core.durations import Duration, parse_duration
from runner.core.localtime import WEEKDAYS, parse_hhmm
from runner.core.problems import JourneyError

# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class TimeRange:
    """A local time range; ``days`` (0 = Monday) limits the days it opens on."""

    start: time
    end: time
    days: frozenset[int] | None = None


@dataclass(frozen=True)
class Cap:
    max: int
    per: Duration


@dataclass(frozen=True)
class Reentry:
    policy: str = "never"  # never | always | after
    after: Duration | None = None


@dataclass(frozen=True)
class Settings:
    timezone: str = "contact"
    default_timezone: str | None = None
    send_window: TimeRange | None = None
    quiet_hours: TimeRange | None = None
    reentry: Reentry = Reentry()
    frequency_cap: Cap | None = None
    on_cap: str = "defer"
    priority: int = 0


# ---------------------------------------------------------------- entries and steps


@dataclass(frozen=True)
class Entry:
    kind: str  # event | segment | condition | attribute_changed | date | schedule
    event: str | None = None
    where: tuple[tuple[str, Matcher], ...] = ()
    condition: Condition | None = None  # segment/condition entries (segment compiled as a reference)
    attribute: str | None = None  # attribute_changed / date
    to: Any = None
    from_: Any = None
    has_to: bool = False
    has_from: bool = False
    offset: Duration = Duration()
    at: time = time(9, 0)
    cron: str | None = None
    timezone: str = "contact"
    if_: Condition | None = None


@dataclass(frozen=True)
class Step:
    id: str
    kind: str
    stage: str
    next: str | None  # the step after this one (None: the stage is done)
    if_: Condition | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmailStep(Step):
    template: str = ""
    subject: str = ""  # a subject per locale: the first one written (summaries and diagrams show it)
    subjects: Mapping[str, str] = field(default_factory=dict)  # locale tag -> subject (docs/localization.md)
    sender: str | None = None
    reply_to: str | None = None
    text_template: str | None = None
    topic: str | None = None  # subscription topic; None: the project's default_topic


@dataclass(frozen=True)
class WaitStep(Step):
    duration: Duration = Duration()


@dataclass(frozen=True)
class WaitUntilStep(Step):
    at: time = time(9, 0)
    days: frozenset[int] | None = None


@dataclass(frozen=True)
class WaitForStep(Step):
    event: str = ""
    where: tuple[tuple[str, Matcher], ...] = ()
    timeout: Duration = Duration()
    on_event: str | None = None  # first step of the path (None: continue after)
    on_timeout: str | None = None


@dataclass(frozen=True)
class BranchStep(Step):
    cases: tuple[tuple[Condition, str | None], ...] = ()
    otherwise: str | None = None


@dataclass(frozen=True)
class Variant:
    name: str
    weight: int
    first: str | None


@dataclass(frozen=True)
class SplitStep(Step):
    variants: tuple[Variant, ...] = ()
    holdout: int = 0


@dataclass(frozen=True)
class UpdateStep(Step):
    set: Mapping[str, Any] = field(default_factory=dict)
    add_score: Mapping[str, float] = field(default_factory=dict)
    move_to: str | None = None
    lifecycle_stage: str | None = None


@dataclass(frozen=True)
class WebhookStep(Step):
    url: str = ""
    payload: Mapping[str, Any] | None = None
    secret_env: str | None = None


@dataclass(frozen=True)
class ExitStep(Step):
    reason: str = "exit_step"


@dataclass(frozen=True)
class SuppressStep(Step):
    """Stops every marketing email to the contact, in every journey, from now on (a sunset)."""

    reason: str = "suppressed"


@dataclass(frozen=True)
class Stage:
    id: str
    name: str
    priority: int
    entry: Entry
    first: str | None  # first step id
    index: int


@dataclass(frozen=True)
class Goal:
    event: str
    where: tuple[tuple[str, Matcher], ...] = ()
    within: Duration | None = None
    exit_on_goal: bool = True


@dataclass(frozen=True)
class Migration:
    from_version: int
    strategy: str  # restart | map
    step_map: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Journey:
    id: str
    version: int
    name: str
    settings: Settings
    stages: tuple[Stage, ...]
    steps: Mapping[str, Step]
    segments: Mapping[str, Condition]
    exit: tuple[Condition, ...] = ()
    goal: Goal | None = None
    migration: Migration | None = None
    description: str = ""
    owner: str = ""
    lifecycle: tuple[str, ...] = ()
    source: str = ""
    content_hash: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def stage(self, stage_id: str) -> Stage:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)

    def email_steps(self) -> list[EmailStep]:
        return [step for step in self.steps.values() if isinstance(step, EmailStep)]


# ---------------------------------------------------------------- project


@dataclass(frozen=True)
class ScoreRule:
    points: float
    event: str | None = None
    where: tuple[tuple[str, Matcher], ...] = ()
    within: Duration | None = None
    when: Condition | None = None


@dataclass(frozen=True)
class ScoreModel:
    name: str
    rules: tuple[ScoreRule, ...]
    half_life: Duration | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How transient delivery failures are retried (project.yaml ``retry``): like a mail
    queue, with waits doubling from ``first_delay`` up to ``max_delay``, until ``max_age``
    after the first failure; then the send fails for good."""

    max_age: timedelta = timedelta(days=3)
    first_delay: timedelta = timedelta(minutes=5)
    max_delay: timedelta = timedelta(hours=1)

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt."""
        if attempts >= 32:  # doubling this often passes any sane max_delay
            return self.max_delay
        delay: timedelta = self.first_delay * 2 ** max(attempts - 1, 0)
        return min(delay, self.max_delay)


MARKETING = "marketing"  # Topic.kind: stopped by an unsubscribe
TRANSACTIONAL = "transactional"  # Topic.kind: not stopped by an unsubscribe (only by bounces, complaints, manual)
DEFAULT_TOPIC = "marketing"  # always declared; the default ``default_topic`` (email steps naming no topic)


@dataclass(frozen=True)
class Topic:
    """A subscription topic (project.yaml ``topics``): what a contact can opt out of."""

    name: str
    kind: str = MARKETING
    description: str = ""

    @property
    def marketing(self) -> bool:
        return self.kind != TRANSACTIONAL


@dataclass(frozen=True)
class Project:
    root: Path
    name: str = "journeys"
    journeys_dir: str = "journeys"
    templates_dir: str = "templates"
    database: str = "journey.db"
    transport: str = "outbox:outbox"
    sender: str = "Journeys <journeys@localhost>"
    reply_to: str | None = None
    default_timezone: str = "UTC"
    frequency_cap: Cap | None = None
    unsubscribe_url: str = "https://localhost/unsubscribe"
    unsubscribe_mailto: str | None = None
    unsubscribe_secret_env: str = "JOURNEY_UNSUBSCRIBE_SECRET"
    catch_up_policy: str = "send_late"
    catch_up_max_lateness: Duration | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    scores: Mapping[str, ScoreModel] = field(default_factory=dict)
    segments: Mapping[str, Condition] = field(default_factory=dict)
    tracking_plan: Mapping[str, Any] = field(default_factory=dict)
    topics: Mapping[str, Topic] = field(default_factory=lambda: {DEFAULT_TOPIC: Topic(DEFAULT_TOPIC)})
    default_topic: str = DEFAULT_TOPIC
    # project.yaml ``exit``: conditions that end an enrollment in every journey, as a journey's own exits
    exit: tuple[Condition, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def templates_path(self) -> Path:
        return self.root / self.templates_dir

    def topic(self, name: str | None) -> Topic:
        """The topic an email step sends under (its own, else the default). A name the
        project does not declare (``journey validate`` refuses it) counts as marketing."""
        name = name or self.default_topic
        return self.topics.get(name) or Topic(name)



# ---------------------------------------------------------------- builders


def content_hash(data: Mapping[str, Any]) -> str:
    """A hash of a journey's meaning (key order and comments do not matter)."""
    canonical = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def weekday_set(names: Any) -> frozenset[int] | None:
    """Weekday names (mon, tue, …) as numbers 0-6; None (every day) when none are given."""
    if not names:
        return None
    return frozenset(WEEKDAYS.index(name) for name in names)


def _range(spec: Mapping[str, Any] | None) -> TimeRange | None:
    if not spec:
        return None
    return TimeRange(parse_hhmm(spec["from"]), parse_hhmm(spec["to"]), weekday_set(spec.get("days")))


def _cap(spec: Mapping[str, Any] | None) -> Cap | None:
    return Cap(int(spec["max"]), parse_duration(spec["per"])) if spec else None


def condition_or_none(spec: Any) -> Condition | None:
    return compile_condition(spec) if spec is not None else None


def build_settings(spec: Mapping[str, Any] | None) -> Settings:
    spec = spec or {}
    reentry_spec = spec.get("reentry", "never")
    if isinstance(reentry_spec, Mapping):
        reentry = Reentry("after", parse_duration(reentry_spec["after"]))
    else:
        reentry = Reentry(str(reentry_spec))
    return Settings(
        timezone=spec.get("timezone", "contact"),
        default_timezone=spec.get("default_timezone"),
        send_window=_range(spec.get("send_window")),
        quiet_hours=_range(spec.get("quiet_hours")),
        reentry=reentry,
        frequency_cap=_cap(spec.get("frequency_cap")),
        on_cap=spec.get("on_cap", "defer"),
        priority=int(spec.get("priority", 0)),
    )


def build_entry(spec: Mapping[str, Any]) -> Entry:
    if_ = condition_or_none(spec.get("if"))
    if "event" in spec:
        return Entry("event", event=spec["event"], where=compile_where(spec.get("where")), if_=if_)
    if "segment" in spec:
        return Entry("segment", condition=compile_condition({"segment": spec["segment"]}), if_=if_)
    if "condition" in spec:
        return Entry("condition", condition=compile_condition(spec["condition"]), if_=if_)
    if "attribute_changed" in spec:
        return Entry(
            "attribute_changed", attribute=spec["attribute_changed"],
            to=spec.get("to"), has_to="to" in spec, from_=spec.get("from"), has_from="from" in spec, if_=if_,
        )
    if "date" in spec:
        offset = spec.get("offset", "0d")
        negative = isinstance(offset, str) and offset.startswith("-")
        duration = parse_duration(offset.lstrip("+-") if isinstance(offset, str) else offset)
        if negative:
            duration = Duration(-duration.days, -duration.seconds, str(offset))
        return Entry("date", attribute=spec["date"], offset=duration, at=parse_hhmm(spec.get("at", "09:00")), if_=if_)
    if "schedule" in spec:
        return Entry("schedule", cron=spec["schedule"], timezone=spec.get("timezone", "contact"), if_=if_)
    raise JourneyError(f"unknown entry with keys {sorted(spec)}")


def _retry_policy(data: Mapping[str, Any]) -> RetryPolicy:
    defaults = RetryPolicy()
    return RetryPolicy(**{
        name: parse_duration(data[name]).approx if data.get(name) else getattr(defaults, name)
        for name in ("max_age", "first_delay", "max_delay")
    })


def build_topics(spec: Mapping[str, Any] | None) -> dict[str, Topic]:
    """project.yaml ``topics``; the default ``marketing`` topic always exists, so email
    steps that name no topic keep working when a project starts declaring topics."""
    topics = {DEFAULT_TOPIC: Topic(DEFAULT_TOPIC)}
    for name, body in (spec or {}).items():
        body = body or {}
        topics[name] = Topic(name, body.get("kind", MARKETING), body.get("description", ""))
    return topics


def build_project(data: Mapping[str, Any] | None, root: Path) -> Project:
    """Build the Project from project.yaml's mapping (None: all defaults)."""
    data = data or {}
    sender = data.get("sender") or {}
    unsubscribe = data.get("unsubscribe") or {}
    catch_up = data.get("catch_up") or {}
    scores = {}
    for name, spec in (data.get("scores") or {}).items():
        rules = tuple(
            ScoreRule(
                points=float(rule["points"]), event=rule.get("event"), where=compile_where(rule.get("where")),
                within=parse_duration(rule["within"]) if rule.get("within") else None,
                when=condition_or_none(rule.get("when")),
            )
            for rule in spec.get("rules") or []
        )
        decay = spec.get("decay") or {}
        scores[name] = ScoreModel(name, rules, parse_duration(decay["half_life"]) if decay.get("half_life") else None)
    defaults = Project(root=root)
    return Project(
        root=root,
        name=data.get("name", defaults.name),
        journeys_dir=data.get("journeys", defaults.journeys_dir),
        templates_dir=data.get("templates", defaults.templates_dir),
        database=data.get("database", defaults.database),
        transport=data.get("transport", defaults.transport),
        sender=sender.get("from", defaults.sender),
        reply_to=sender.get("reply_to"),
        default_timezone=data.get("default_timezone", defaults.default_timezone),
        frequency_cap=_cap(data.get("frequency_cap")),
        unsubscribe_url=unsubscribe.get("url", defaults.unsubscribe_url),
        unsubscribe_mailto=unsubscribe.get("mailto"),
        unsubscribe_secret_env=unsubscribe.get("secret_env", defaults.unsubscribe_secret_env),
        catch_up_policy=catch_up.get("policy", "send_late"),
        catch_up_max_lateness=parse_duration(catch_up["max_lateness"]) if catch_up.get("max_lateness") else None,
        retry=_retry_policy(data.get("retry") or {}),
        scores=scores,
        segments={name: compile_condition(spec) for name, spec in (data.get("segments") or {}).items()},
        tracking_plan=data.get("tracking_plan") or {},
        topics=build_topics(data.get("topics")),
        default_topic=data.get("default_topic", defaults.default_topic),
        exit=tuple(compile_condition(spec) for spec in data.get("exit") or []),
        raw=data,
    )
