"""The journey engine: pure, per contact, in time order.

``Engine.advance(state, until)`` replays everything that happens to one
contact between its clock and ``until`` — events becoming visible, waits
expiring, schedules firing, conditions flipping as time passes — one instant at
a time, and returns the decisions taken (each with its reason) and the next
instant it must be woken. It never reads a clock, a file or the network.

Because decisions are made at the instant they are due (not when a driver
happens to call), a simulation that jumps from wake-up to wake-up and a
production tick every few minutes make exactly the same decisions; only the
moment the transport is called differs.

The per-contact run is split by concern: ``runner.core.reads`` works out what
journeys and conditions read (so untouched answers are not recomputed),
``runner.core.steps`` executes steps; this module holds the instant loop, entries,
goals, exits, moves, migrations and the decisions.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from runner.core.bounces import EVENT_OF, HARD, rule_from_project
from runner.core.conditions import NOT_SET, Condition, Facts, as_instant, get_path, where_matches
from runner.core.localtime import SendTimes, next_annual, send_times, zone
from runner.core.localtime import next_cron as _next_cron_uncached
from runner.core.memo import Memo, Stamp
from runner.core.migration import continuation
from runner.core.model import Entry, Journey, Project, ScoreModel, ScoreRule, Stage, Step, WaitForStep
from runner.core.reads import AttributeKey, JourneyReads, Reads, attribute_key, exit_rules
from runner.core.state import ACTIVE, EXITED, IDLE, ContactState, Enrollment, Event
from runner.core.stepkinds import STEP_KINDS
from runner.core.steps import JSON_SCALARS, iso_text, run_steps, set_path, snapshot
from runner.core.vocabulary import (
    IDENTITY_EVENTS,
    RESUBSCRIBED,
    SOFT_BOUNCED,
    SUPPRESSING_EVENTS,
    TRAIT_EVENTS,
    UNSUBSCRIBED,
    event_topic,
)

_BEFORE_ANY_INSTANT = datetime.min.replace(tzinfo=UTC)  # a run's ``now`` until its first instant
_NO_NAMES: frozenset[str] = frozenset()  # the new event names of an instant without events
MAX_SETTLE_PASSES = 5  # journeys re-checking attribute changes made by update steps at one instant
T = TypeVar("T")  # what a Memo or Stamp remembers


@dataclass(frozen=True)
class Decision:
    """One thing the engine decided, with why. Sends and webhooks carry their idempotency key."""

    at: datetime
    contact: str
    journey: str
    version: int
    stage: str | None
    step: str | None
    action: str  # one of runner.core.vocabulary.ACTIONS
    reason: str
    key: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    decisions: list[Decision]
    wake_at: datetime | None


class _CronSpans:
    """``next_cron`` answers, remembered as spans: every ``after`` in [lo, fire) has the answer ``fire``.

    Schedule entries ask "next fire after now" at every instant of every
    contact; croniter re-parses the expression on each call (~1 ms). Fires
    are rare (yearly, monthly, daily), so a handful of spans answer almost
    every question with a bisect. Pure: the answer is the uncached one.
    """

    MAX_SPANS = 100_000

    def __init__(self) -> None:
        self.fires: dict[tuple[str, str], list[datetime]] = {}  # sorted fire instants per (cron, zone)
        self.lows: dict[tuple[str, str, datetime], datetime] = {}  # (cron, zone, fire) -> lowest ``after`` known

    def next(self, expression: str, after: datetime, tz: ZoneInfo) -> datetime:
        key = (expression, tz.key)
        fires = self.fires.setdefault(key, [])
        index = bisect.bisect_right(fires, after)
        if index < len(fires):
            fire = fires[index]
            low = self.lows[(expression, tz.key, fire)]
            if low <= after:
                return fire
        if len(self.lows) > self.MAX_SPANS:  # a long-running process with minute crons: start afresh
            self.fires.clear()
            self.lows.clear()
            fires = self.fires.setdefault(key, [])
        fire = _next_cron_uncached(expression, after, tz)
        span = (expression, tz.key, fire)
        if span not in self.lows:
            bisect.insort(fires, fire)
            self.lows[span] = after
        else:
            self.lows[span] = min(self.lows[span], after)
        return fire


_cron_spans = _CronSpans()


def next_cron(expression: str, after: datetime, tz: ZoneInfo) -> datetime:
    """The first cron fire strictly after ``after`` (``runner.core.localtime.next_cron``, span-cached)."""
    return _cron_spans.next(expression, after, tz)


class Engine(JourneyReads):
    """Decides what happens to contacts; holds the journeys, no state of its own."""

    def __init__(self, project: Project, journeys: Sequence[Journey], pinned: Iterable[Journey] = ()) -> None:
        self.project = project
        self.soft_bounces = rule_from_project(project.raw)  # when soft bounces suppress (bounces.soft)
        # higher priority first: it wins a shared frequency cap and ties
        self.journeys = sorted(journeys, key=lambda j: (-j.settings.priority, j.id))
        self.versions = {(j.id, j.version): j for j in list(pinned) + list(journeys)}
        self.current = {j.id: j for j in journeys}
        # journey segments shadow the project's; merged once, not per evaluation
        self.segments = {
            key: ({**project.segments, **j.segments} if j.segments else project.segments)
            for key, j in self.versions.items()
        }
        super().__init__(project, self.segments)  # what journeys read (runner.core.reads)
        # each version's exit rules and the project's, labelled; built once, as the segments are
        self.exit_rules = {key: exit_rules(j, project) for key, j in self.versions.items()}
        self.send_times: dict[tuple[int, str], SendTimes] = {}  # (id(journey), zone) -> see _Run._send_times
        # attributes that `attribute_changed` entries watch
        # cast: build_entry gives every attribute_changed entry its attribute (mypy cannot see the kind)
        self.watched_attributes = cast(list[str], [
            stage.entry.attribute
            for journey in self.journeys for stage in journey.stages
            if stage.entry.kind == "attribute_changed"
        ])

    # ------------------------------------------------------------ public

    def advance(self, state: ContactState, until: datetime, start: datetime | None = None) -> Outcome:
        """Process ``state`` up to ``until`` (inclusive); mutate and return its decisions."""
        run = _Run(self, state)
        if state.clock is None:
            first = start or (state.events[0].at if state.events else until)
            run.process(min(first, until), previous=None)
        while True:
            instant = run.next_instant()
            if instant is None or instant > until:
                break
            run.process(instant, previous=state.clock)
        if state.clock is None or state.clock < until:
            state.clock = until
        outcome = Outcome(run.decisions, run.next_instant())
        run.release()
        return outcome

    def view(self, state: ContactState, at: datetime) -> ContactView:
        """The engine's own read of a contact at ``at`` without deciding anything.

        ``journey explain`` and re-rendering a retried send use it, so they see
        exactly the events, segments and scores the engine decides with (a
        second implementation of "which events count" would drift).
        """
        view = _Run(self, state)
        view.now = at
        return view

    def exits(self, journey: Journey) -> tuple[tuple[str, Condition], ...]:
        """``JourneyReads.exits``: the labelled rules built at construction for the versions it runs."""
        rules = self.exit_rules.get((journey.id, journey.version))
        return rules if rules is not None else exit_rules(journey, self.project)

    def journey_for(self, enrollment: Enrollment) -> Journey:
        """The version an enrollment is pinned to (the current one when that version is unknown)."""
        return self.versions.get((enrollment.journey_id, enrollment.version)) or self.current[enrollment.journey_id]


class _Run:
    """One ``advance`` call: the engine's working memory for one contact.

    Step execution (``runner.core.steps``) sees it through ``RunState``, the methods
    and fields listed there; everything else here is the run's own.
    """

    def __init__(self, engine: Engine, state: ContactState) -> None:
        self.engine = engine
        self.project = engine.project
        self.state = state
        self.contact = state.contact
        self.decisions: list[Decision] = []
        self.memory = state.memory
        self.links = self._identity_links()
        self.visible: dict[str, list[Event]] = {}
        self.revealed_names: list[str] = []  # names of events in the order they became visible
        self.revealed = 0  # state.events[:revealed] are visible or known-invisible
        self._scores: dict[str, float] = {}  # name -> score now
        self._score_parts_now: dict[str, tuple[float, float]] = {}  # name -> (constant, decaying) now
        self._zones: dict[int, ZoneInfo] = {}  # id(journey) -> its zone for this contact (see zone_for)
        # date entries' next occurrences: (attribute value, local year, after, occurrence) (see _next_date)
        self._dates: dict[tuple[int, int], tuple[Any, int, datetime, datetime]] = {}
        self._schedules: dict[int, tuple[datetime, datetime]] = {}  # schedule entries' (after, next fire) (see _next_schedule)
        self._when_holds: dict[str, Stamp[list[bool | None]]] = {}  # score name -> its `when` rules' truths
        self._rule_matches: dict[tuple[str, int], tuple[int, list[Event]]] = {}  # (score, rule index) -> (events seen, matching)
        self._steady_scores: dict[str, Memo[tuple[float, float]]] = {}  # score name -> its parts while time cannot change them
        self._snapshot: tuple[int, dict[str, Any]] | None = None  # (attribute version, send details' attribute copy)
        self._facts_cache: dict[tuple[str, int, str | None, datetime | None], Facts] = {}
        # condition results with the inputs they were computed from (see ``condition_memo``)
        self._memo: dict[tuple[Condition, str, int, str | None, datetime | None], Memo[tuple[bool, datetime | None]]] = {}
        # (journey, version, stage) -> the instant until which no entry can fire by time alone
        self._entries_quiet: dict[tuple[str, int, str | None], Memo[datetime | None]] = {}
        # journey id -> its next time-driven instant, recorded by _entry_wake
        self._journey_wake: dict[str, Stamp[datetime | None]] = {}
        self._unsettled: set[str] = set()  # journeys whose enrollment must be looked at next (see _untouched)
        self.attribute_version = 0  # bumped whenever this run changes attributes or score adjustments
        self._changed_at: dict[Hashable, int] = {}  # attribute key (see Reads) -> the attribute_version of its last change
        self._remembered_version = -1  # attribute_version when watched attributes were last remembered
        # the entry wake-up last written to memory and last read back from it (formatting and
        # parsing it at every instant costs more than remembering both)
        self._wake: tuple[datetime | None, str | None] = (None, None)
        self._wake_read: tuple[str | None, datetime | None] = (None, None)
        self.now: datetime = _BEFORE_ANY_INSTANT  # set by process (or view) before anything reads it
        if state.clock is not None:
            self._reveal_until(state.clock, initial=True)

    def release(self) -> None:
        """Drop the per-call caches; cached Facts refer back to this run, a cycle
        reference counting alone would not free."""
        self._facts_cache.clear()
        self._memo.clear()
        self._entries_quiet.clear()

    # ------------------------------------------------------------ time

    def next_instant(self) -> datetime | None:
        """The next instant with work: an event, a due enrollment or a time-driven entry."""
        # a running minimum of the candidates after the clock (asked once per instant: no lists)
        clock = self.state.clock
        earliest = None
        events = self.state.events
        if self.revealed < len(events):
            at = events[self.revealed].at
            if clock is None or at > clock:
                earliest = at
        for enrollment in self.state.enrollments.values():
            due = enrollment.due_at
            if due is not None and (clock is None or due > clock) and (earliest is None or due < earliest):
                earliest = due
        entry_wake = self.memory.get("entry_wake")
        if entry_wake is not None:
            if entry_wake != self._wake_read[0]:
                self._wake_read = (entry_wake, as_instant(entry_wake))
            wake = self._wake_read[1]
            if wake is not None and (clock is None or wake > clock) and (earliest is None or wake < earliest):
                earliest = wake
        return earliest

    # ------------------------------------------------------------ events and identity

    def _identity_links(self) -> dict[str, datetime | None]:
        """Anonymous id -> the instant it was linked: the first identify/alias event naming
        it, or None (linked from the start) for an id listed on the contact without one."""
        links: dict[str, datetime | None] = {anon: None for anon in self.contact.anonymous_ids}
        linked_by_event: set[str] = set()
        for event in self.state.events:  # sorted: the first link wins
            anon = event.anonymous_id
            if event.name in IDENTITY_EVENTS and anon and anon not in linked_by_event:
                links[anon] = event.at
                linked_by_event.add(anon)
        return links

    def _linked(self, anonymous_id: str, at: datetime) -> bool:
        if anonymous_id not in self.links:
            return False
        linked_at = self.links[anonymous_id]
        return linked_at is None or linked_at <= at

    def _make_visible(self, event: Event) -> None:
        self.revealed_names.append(event.name)
        bucket = self.visible.setdefault(event.name, [])
        if not bucket or bucket[-1].at <= event.at:
            bucket.append(event)
        else:
            bisect.insort(bucket, event, key=lambda e: e.at)

    def _reveal_until(self, instant: datetime, initial: bool = False) -> list[Event]:
        """Make events up to ``instant`` visible; return those new at this instant."""
        new: list[Event] = []
        events = self.state.events
        while self.revealed < len(events) and events[self.revealed].at <= instant:
            event = events[self.revealed]
            self.revealed += 1
            if event.anonymous_id and event.name not in IDENTITY_EVENTS and not self._linked(event.anonymous_id, instant):
                continue  # an anonymous visitor's event; it becomes visible when the id is linked
            self._make_visible(event)
            new.append(event)
        if initial:
            return []
        # an identity link makes that visitor's earlier events count now
        for event in new:
            if event.name in IDENTITY_EVENTS and event.anonymous_id:
                if event.anonymous_id not in self.contact.anonymous_ids:
                    self.contact.anonymous_ids.append(event.anonymous_id)
                for earlier in events[: self.revealed]:
                    if earlier.anonymous_id == event.anonymous_id and earlier.name not in IDENTITY_EVENTS and earlier.at < event.at:
                        bucket = self.visible.get(earlier.name, [])
                        if earlier not in bucket:
                            self._make_visible(earlier)
                            new.append(earlier)
        return new

    def _apply_event_effects(self, events: list[Event]) -> None:
        for event in events:
            if event.name in TRAIT_EVENTS and event.properties:
                traits = {k: v for k, v in event.properties.items() if k != "anonymous_id"}
                _merge_traits(self.contact.attributes, traits)
                self.invalidate([attribute_key(name) for name in traits])
            reason = SUPPRESSING_EVENTS.get(event.name)
            if reason and event.at <= self.now:
                if reason == UNSUBSCRIBED:  # an opt-out: stops marketing topics, not transactional ones
                    self.state.opt_out(event_topic(event.properties), event.at)
                else:
                    self.state.suppress(reason, event.at)
            elif event.name == RESUBSCRIBED and "topic" in event.properties and event.at <= self.now:
                self.state.opt_in(event_topic(event.properties), event.at)
            elif event.name == SOFT_BOUNCED and event.at <= self.now:
                self._count_soft_bounce(event)

    def _count_soft_bounce(self, event: Event) -> None:
        """The soft bounce that makes ``bounces.soft`` limit within its window suppresses from its
        instant, as a bounce (runner.core.bounces; production also records it as an event)."""
        soft = self.visible.get(SOFT_BOUNCED, ())
        if self.engine.soft_bounces.reached((e.at for e in soft), event.at) is not None:
            self.state.suppress(SUPPRESSING_EVENTS[EVENT_OF[HARD]], event.at)

    def invalidate(self, changed: Iterable[Hashable] | None = None) -> None:
        """The one way the run forgets answers (see "Cache inventory" in docs/architecture.md).

        Always drops what holds for one instant and one set of attributes (scores,
        the instant's Facts and the segment truths they remember). With ``changed``,
        the attribute keys (see ``Reads``) changed now: the attribute version moves on,
        so every versioned record (``Memo``, ``Stamp``) re-checks what it read.
        """
        self._scores = {}
        self._score_parts_now = {}
        self._facts_cache = {}
        if changed is not None:
            self.attribute_version += 1
            for key in changed:
                self._changed_at[key] = self.attribute_version

    def _attributes_unchanged(self, seen: Memo[T] | Stamp[T], attributes: frozenset[AttributeKey]) -> bool:
        """Whether none of ``attributes`` changed since ``seen.version``; if so, moves
        ``seen.version`` to the current version so the next check is one comparison."""
        version = seen.version
        if version == self.attribute_version:
            return True
        changed_at = self._changed_at
        for key in attributes:
            if changed_at.get(key, -1) > version:
                return False
        seen.version = self.attribute_version
        return True

    # ------------------------------------------------------------ what steps read (see runner.core.steps.RunState)

    def execute(self, journey: Journey, enrollment: Enrollment, step: Step) -> bool:
        """Run one step by its kind (``runner.core.stepkinds``); True to continue, False when it waits."""
        return STEP_KINDS[step.kind].execute(self, journey, enrollment, step)

    def zone_for(self, journey: Journey) -> ZoneInfo:
        """The zone ``journey``'s local times are in for this contact (remembered for the run)."""
        tz = self._zones.get(id(journey))
        if tz is None:
            tz = self._zones[id(journey)] = self._zone_for(journey)
        return tz

    def _zone_for(self, journey: Journey) -> ZoneInfo:
        settings = journey.settings
        if settings.timezone and settings.timezone != "contact":
            return zone(settings.timezone)
        name = self.contact.timezone or settings.default_timezone or self.project.default_timezone
        try:
            return zone(name)
        except ValueError:
            return zone(settings.default_timezone or self.project.default_timezone or "UTC")

    def send_times(self, journey: Journey, tz: ZoneInfo) -> SendTimes:
        """The send window and quiet hours of ``journey`` in zone ``tz`` (kept by the engine:
        hashing the settings for ``send_times`` at every send costs more than this lookup)."""
        key = (id(journey), tz.key)
        times = self.engine.send_times.get(key)
        if times is None:
            settings = journey.settings
            times = self.engine.send_times[key] = send_times(tz, settings.send_window, settings.quiet_hours)
        return times

    def attribute_snapshot(self) -> dict[str, Any]:
        """The attributes as they are now, for a send's detail: one copy per attribute version,
        shared by the sends made while nothing changed them (details are read, not written)."""
        if self._snapshot is None or self._snapshot[0] != self.attribute_version:
            self._snapshot = (self.attribute_version, snapshot(self.contact.attributes))
        return self._snapshot[1]

    # ------------------------------------------------------------ facts and scores

    def _make_facts(self, stage: str | None = None, since: datetime | None = None,
                    segments: Mapping[str, Condition] | None = None) -> Facts:
        # positional: keyword arguments cost more than the rest of the call
        return Facts(self.contact, self.now, self.visible, self.project.segments if segments is None else segments,
                     self.score, self.score_change, stage, since)

    def facts_for(self, journey: Journey, stage: str | None = None, since: datetime | None = None) -> Facts:
        """Facts for conditions of ``journey`` at ``now`` (cached for the instant)."""
        key = (journey.id, journey.version, stage, since)
        facts = self._facts_cache.get(key)
        if facts is None:
            facts = self._facts_cache[key] = self._make_facts(stage, since, self.engine.segments[key[:2]])
        return facts

    def condition_memo(self, condition: Condition, journey: Journey, stage: str | None,
                       since: datetime | None = None) -> tuple[bool, datetime | None]:
        """(holds, next_change) of a condition at ``now``, recomputed only when an input changed.

        Inputs: the events it reads (any of those names revealed since), the attributes
        it reads (any change), the stage and ``since`` (part of the key), and time (valid
        until its own next_change). A memo lives for one ``advance`` call, so attributes
        changed outside the engine between production ticks are always seen.
        """
        # the condition itself, not id(): conditions hash and compare by identity, one call less
        key = (condition, journey.id, journey.version, stage, since)
        hit = self._memo.get(key)
        reads: Reads | None
        if hit is not None:
            # most calls: nothing revealed or changed since the answer and it is not due;
            # checked inline, as _inputs_unchanged would (a call costs more than the check)
            until = hit.until
            if hit.version == self.attribute_version and hit.position == len(self.revealed_names) \
                    and (until is None or self.now < until):
                return hit.answer
            if self._inputs_unchanged(hit):
                return hit.answer
            reads = hit.reads  # only memoised when known
        else:
            reads = self.engine.reads(condition, journey)
        if reads is None:
            return condition.evaluate_with_change(self.facts_for(journey, stage, since))
        # a condition that does not read the stage (or events, which ``since`` filters)
        # has the same answer for every stage (or ``since``): share one memo among them
        shared = (condition, journey.id, journey.version, stage if reads.stage else None, since if reads.events else None)
        if shared != key:
            hit = self._memo.get(shared)
            if hit is not None and self._inputs_unchanged(hit):
                self._memo[key] = hit
                return hit.answer
        answer = condition.evaluate_with_change(self.facts_for(journey, stage, since))
        self._memo[key] = self._memo[shared] = Memo(self.attribute_version, len(self.revealed_names), reads, answer, answer[1])
        return answer

    def _inputs_unchanged(self, seen: Memo[T]) -> bool:
        """Whether nothing a remembered answer read has changed and its time has not come;
        moves its version and reveal-log position past irrelevant changes."""
        until = seen.until
        if until is not None and self.now >= until:
            return False
        log = self.revealed_names
        position = seen.position
        if position < len(log):
            names = seen.reads.events
            for index in range(position, len(log)):
                if log[index] in names:
                    return False
            seen.position = len(log)
        return seen.version == self.attribute_version or self._attributes_unchanged(seen, seen.reads.attributes)

    def score(self, name: str) -> float:
        if name not in self._scores:
            constant, decaying = self._score_parts(name)
            self._scores[name] = round(constant + decaying, 6)
        return self._scores[name]

    def _score_parts(self, name: str) -> tuple[float, float]:
        """(points that do not decay, points from events that decay) at ``now`` (cached for the instant).

        Parts that no event counted in are kept across instants (see ``_compute_score_parts``)
        until an event the score reads is revealed or an attribute it reads changes.
        """
        parts = self._score_parts_now.get(name)
        if parts is None:
            steady = self._steady_scores.get(name)
            if steady is not None and self._inputs_unchanged(steady):
                parts = steady.answer
            else:
                parts = self._compute_score_parts(name)
            self._score_parts_now[name] = parts
        return parts

    def _compute_score_parts(self, name: str) -> tuple[float, float]:
        """The score's parts now; remembered as steady when no event counted in them: then
        time cannot change them (events outside a window stay outside), only new events
        or attribute changes can, and only when ``when`` rules read nothing but attributes."""
        model = self.project.scores.get(name)
        constant = float(self.memory.get("score_adjust", {}).get(name, 0.0))
        decaying = 0.0
        if model is None:
            return constant, decaying
        counted = False
        when_holds = self._score_when_holds(name, model)
        half_life = model.half_life.approx.total_seconds() if model.half_life is not None else None
        now = self.now
        visible = self.visible
        for index, rule in enumerate(model.rules):
            if rule.event:
                if rule.event not in visible:
                    continue  # none of these events (yet): the commonest case
                start = now - rule.within.approx if rule.within is not None else None
                for event in self._rule_events(name, index, rule):
                    if start is not None and event.at <= start:
                        continue
                    counted = True
                    if half_life is None:
                        constant += rule.points
                    else:
                        age = (now - event.at).total_seconds()
                        decaying += rule.points * 0.5 ** (age / half_life)
            elif rule.when is not None and when_holds[index]:
                constant += rule.points
        reads = self.engine.score_reads(name)
        if not counted and reads is not None:
            self._steady_scores[name] = Memo(self.attribute_version, len(self.revealed_names), reads, (constant, decaying), None)
        else:
            self._steady_scores.pop(name, None)
        return constant, decaying

    def _rule_events(self, name: str, index: int, rule: ScoreRule) -> Sequence[Event]:
        """The visible events a score's event rule counts (its ``where`` applied), in order.

        Remembered until another event of that name becomes visible (visible lists
        only ever grow), so a page-view filter is not re-run at every instant.
        """
        assert rule.event is not None  # asked for event rules only (see _compute_score_parts)
        bucket = self.visible.get(rule.event, ())
        if not rule.where:
            return bucket
        known = self._rule_matches.get((name, index))
        if known is None or known[0] != len(bucket):
            known = self._rule_matches[(name, index)] = (len(bucket), [e for e in bucket if where_matches(rule.where, e)])
        return known[1]

    def _score_when_holds(self, name: str, model: ScoreModel) -> list[bool | None]:
        """Per rule of a score, whether its ``when`` condition holds now (None: not a ``when`` rule).

        Kept while none of the attributes they read changes, when those conditions
        read attributes only (no events, segments, scores or time): the points are
        still added up in rule order, so the sum is exactly the uncached one.
        """
        attributes = self.engine.score_when_attributes(name)
        known = self._when_holds.get(name)
        if known is not None and attributes is not None and self._attributes_unchanged(known, attributes):
            return known.value
        base = self._make_facts()
        holds = [rule.when.evaluate(base) if not rule.event and rule.when is not None else None for rule in model.rules]
        self._when_holds[name] = Stamp(self.attribute_version, holds)
        return holds

    def score_change(self, name: str, threshold: float | None = None) -> datetime | None:
        """The next instant a score crosses ``threshold`` by time alone (events ageing out, decay)."""
        model = self.project.scores.get(name)
        if model is None:
            return None
        if threshold is not None and self.engine.score_only_falls[name] and self.score(name) < threshold:
            return None  # time can only lower this score and it is already below: no crossing, no wake-up
        boundaries = [
            event.at + rule.within.approx
            for rule in model.rules if rule.event and rule.within is not None
            for event in self.visible.get(rule.event, ())
            if event.at + rule.within.approx > self.now
        ]
        if model.half_life is not None and threshold is not None:
            constant, decaying = self._score_parts(name)
            if decaying > 0 and constant < threshold <= constant + decaying:
                # constant + decaying * 2^(-t/h) = threshold  =>  t = h * log2(decaying / (threshold - constant))
                seconds = model.half_life.approx.total_seconds() * math.log2(decaying / (threshold - constant))
                boundaries.append(self.now + timedelta(seconds=math.ceil(seconds) + 1))
        return min(boundaries) if boundaries else None

    # ------------------------------------------------------------ one instant

    def process(self, instant: datetime, previous: datetime | None) -> None:
        self.now = instant
        self.invalidate()
        new_events = self._reveal_until(instant)
        self._apply_event_effects(new_events)
        # from here on, a change is one an update step made at this instant
        changed_attributes = self._take_attribute_changes()
        self._each_journey(new_events, changed_attributes, previous)
        for _ in range(MAX_SETTLE_PASSES):
            # An update step changed an attribute that an `attribute_changed` entry watches:
            # every journey sees that change at this same instant (not at some later wake-up,
            # and not never). No new events and previous=now: events, dates and schedules
            # already fired in the first pass and must not fire twice.
            if self.attribute_version == self._remembered_version:
                break  # nothing changed an attribute since they were remembered
            changed_attributes = self._take_attribute_changes()
            if not changed_attributes:
                break
            self.invalidate()
            self._each_journey([], changed_attributes, instant)
        earliest = self._entry_wake()
        if earliest is not self._wake[0]:  # often the very same stamp as at the last instant
            self._wake = (earliest, iso_text(earliest) if earliest else None)
            if earliest is None or earliest.tzinfo is UTC:
                self._wake_read = (self._wake[1], earliest)  # what next_instant would parse back
        self.memory["entry_wake"] = self._wake[1]
        if self.state.clock is None or self.state.clock < instant:
            self.state.clock = instant

    def _each_journey(self, new_events: list[Event], changed_attributes: Mapping[str, tuple[Any, Any]],
                      previous: datetime | None) -> None:
        """Look at every journey at this instant; stamp each one looked at with its next wake-up.

        The stamp is taken right after the look, while its inputs are fresh;
        ``_entry_wake`` retakes it if a later journey changed an attribute it reads.
        """
        new_names: AbstractSet[str] = {event.name for event in new_events} if new_events else _NO_NAMES
        enrollments = self.state.enrollments
        for journey in self.engine.journeys:
            enrollment = enrollments.get(journey.id)
            if enrollment is not None and journey.migration is not None and enrollment.version != journey.version:
                self._migrate(journey)  # moves it to this version in place, or leaves it pinned
            if enrollment is not None and enrollment.status != EXITED:
                pinned = self.engine.journey_for(enrollment)
                if (not changed_attributes or self._watched_unchanged(pinned, changed_attributes)) \
                        and self._untouched(pinned, enrollment, new_names):
                    continue
                self._enrolled(pinned, enrollment, new_events, changed_attributes, previous)
            else:
                quiet = self._entries_quiet_now(journey, None, changed_attributes)
                if quiet is None:
                    self._not_enrolled(journey, new_events, changed_attributes, previous)
                    if journey.id not in enrollments:  # nothing fired: the look just recorded is fresh
                        quiet = self._entries_quiet.get((journey.id, journey.version, None))
                if quiet is not None:  # no entry can fire: nothing to decide
                    self._set_stamp(journey.id, quiet.answer)
                    continue
            self._set_stamp(journey.id, self._journey_wake_now(journey))

    def _set_stamp(self, journey_id: str, wake: datetime | None) -> None:
        """Record ``journey_id``'s next time-driven instant, as of the current attribute version."""
        stamp = self._journey_wake.get(journey_id)
        if stamp is None:
            self._journey_wake[journey_id] = Stamp(self.attribute_version, wake)
        else:  # in place: stamps are rewritten for every journey at every instant
            stamp.version = self.attribute_version
            stamp.value = wake

    def _untouched(self, journey: Journey, enrollment: Enrollment, new_names: AbstractSet[str]) -> bool:
        """Whether nothing at this instant can affect this enrollment, so visiting it would
        decide nothing: it is not due, no event it reads arrived, no attribute changed
        since its last look, and none of its time-driven instants has come."""
        if enrollment.due_at is not None and enrollment.due_at <= self.now:
            return False
        interest = self.engine.interest(journey)
        if interest is None or not new_names.isdisjoint(interest.events):
            return False
        if journey.id in self._unsettled:
            return False  # an exit condition held at its last look: the next look exits
        stamp = self._journey_wake.get(journey.id)
        if stamp is None or not self._attributes_unchanged(stamp, interest.attributes):
            return False
        return stamp.value is None or self.now < stamp.value

    def _enrolled(self, journey: Journey, enrollment: Enrollment, new_events: list[Event],
                  changed: Mapping[str, tuple[Any, Any]], previous: datetime | None) -> None:
        if self._goal_reached(journey, enrollment, new_events):
            return
        for label, condition in self.engine.exits(journey):
            if self.condition_memo(condition, journey, enrollment.stage, enrollment.entered_at)[0]:
                self.exit_enrollment(journey, enrollment, f"{label} {condition.describe()}")
                return
        fired = self._fired_stages(journey, new_events, changed, previous, enrollment.stage)
        moved = False
        if fired:
            stage, reason = fired[0]
            if stage.id != enrollment.stage:
                self.move_enrollment(journey, enrollment, stage, reason)
                enrollment.trigger = _entry_event(stage, new_events)
                moved = True
        wait = enrollment.wait
        if not moved and wait is not None and wait.event is not None:
            assert wait.step is not None  # a wait for an event names its wait_for step
            step = journey.steps[wait.step]
            assert isinstance(step, WaitForStep)  # only a wait_for waits for an event
            answer = next((e for e in new_events if e.name == wait.event and (not step.where or where_matches(step.where, e))), None)
            if answer is not None:
                enrollment.cursor = step.on_event
                enrollment.wait = None
                enrollment.due_at = self.now
                enrollment.trigger = answer  # its on_event steps, and the steps after them, see this event
                self.decide(journey, enrollment, step.id, "event_path", f"{wait.event} happened")
        if enrollment.due_at is not None and enrollment.due_at <= self.now:
            run_steps(self, journey, enrollment)

    def _not_enrolled(self, journey: Journey, new_events: list[Event], changed: Mapping[str, tuple[Any, Any]],
                      previous: datetime | None) -> None:
        fired = self._fired_stages(journey, new_events, changed, previous, None)
        if not fired:
            return
        stage, reason = fired[0]
        if not self._may_enter(journey):
            self._decide_free(journey, stage.id, None, "skip", f"re-entry not allowed ({self._reentry_text(journey)})")
            return
        self.state.enrollment_seq += 1
        enrollment = Enrollment(
            id=f"{self.contact.id}:{journey.id}:{self.state.enrollment_seq}",
            contact_id=self.contact.id, journey_id=journey.id, version=journey.version,
            entered_at=self.now, stage=stage.id, stage_seq=1, cursor=stage.first, status=ACTIVE, due_at=self.now,
            trigger=_entry_event(stage, new_events),
        )
        self.state.enrollments[journey.id] = enrollment
        self.decide(journey, enrollment, None, "enter", reason)
        run_steps(self, journey, enrollment)

    # ------------------------------------------------------------ entries

    def _fired_stages(self, journey: Journey, new_events: list[Event], changed: Mapping[str, tuple[Any, Any]],
                      previous: datetime | None, current_stage: str | None) -> list[tuple[Stage, str]]:
        """Stages whose entry fires now, best first (priority, then file order).

        Edge-triggered entries remember their last truth value per journey and
        stage. When none of the entries' inputs changed since the last full look
        (their events and attributes, an attribute an ``attribute_changed`` entry
        watches, the stage) and no time boundary has come, evaluating them again
        would give the same answers: nothing fires. When only a watched attribute
        changed, only ``attribute_changed`` entries can fire; the others would
        find the truth they remembered (unless an entry reads the stage, and so
        may have remembered it for another stage).
        """
        quiet = self._entries_quiet.get((journey.id, journey.version, current_stage))
        if quiet is not None and self._inputs_unchanged(quiet):
            if not changed or self._watched_unchanged(journey, changed):
                return []
            if not quiet.reads.stage:
                return self._fire(journey, self.engine.watching_stages(journey), new_events, changed, previous, current_stage)
        fired = self._fire(journey, journey.stages, new_events, changed, previous, current_stage)
        reads = self.engine.entry_reads(journey)
        if reads is not None:
            wake = self._journey_entry_wake(journey, current_stage)  # also the instant the look expires
            self._entries_quiet[(journey.id, journey.version, current_stage)] = Memo(
                self.attribute_version, len(self.revealed_names), reads, wake, wake,
            )
        return fired

    def _fire(self, journey: Journey, stages: Iterable[Stage], new_events: list[Event],
              changed: Mapping[str, tuple[Any, Any]], previous: datetime | None,
              current_stage: str | None) -> list[tuple[Stage, str]]:
        """Which of ``stages`` have an entry firing now, best first (priority, then file order)."""
        fired: list[tuple[Stage, str]] = []
        for stage in stages:
            if not new_events and stage.entry.kind == "event":
                continue  # an event entry fires only on a new event
            reason = self._entry_fires(journey, stage, new_events, changed, previous, current_stage)
            if reason:
                fired.append((stage, reason))
        if len(fired) > 1:
            fired.sort(key=_stage_rank)
        return fired

    def _entries_quiet_now(self, journey: Journey, current_stage: str | None,
                           changed: Mapping[str, tuple[Any, Any]]) -> Memo[datetime | None] | None:
        """The journey's last full look at its entries (its answer: their next time-driven
        instant), when none of their inputs changed since (see ``_fired_stages``)."""
        quiet = self._entries_quiet.get((journey.id, journey.version, current_stage))
        if quiet is None or (changed and not self._watched_unchanged(journey, changed)):
            return None
        return quiet if self._inputs_unchanged(quiet) else None

    def _journey_entry_wake(self, journey: Journey, current_stage: str | None) -> datetime | None:
        """The first instant after now at which one of the journey's entries could fire by time alone."""
        now = self.now
        earliest = None
        for stage in journey.stages:
            entry = stage.entry
            kind = entry.kind
            if kind == "date":
                wake = self._next_date(entry, journey, now)
            elif kind == "schedule":
                wake = self._next_schedule(entry, journey, now)
            elif kind == "segment" or kind == "condition":
                assert entry.condition is not None  # build_entry compiles it for these kinds
                wake = self.condition_memo(entry.condition, journey, current_stage)[1]
            else:
                continue
            if wake is not None and wake > now and (earliest is None or wake < earliest):
                earliest = wake
        return earliest

    def _entry_fires(self, journey: Journey, stage: Stage, new_events: list[Event], changed: Mapping[str, tuple[Any, Any]],
                     previous: datetime | None, current_stage: str | None) -> str | None:
        entry = stage.entry
        kind = entry.kind
        reason = None
        if kind == "event":
            for event in new_events:  # usually none or one
                if event.name == entry.event and where_matches(entry.where, event):
                    reason = f"event {entry.event}"
                    break
        elif kind == "segment" or kind == "condition":
            key = f"edge:{journey.id}:{stage.id}"
            assert entry.condition is not None  # build_entry compiles it for these kinds
            holds = self.condition_memo(entry.condition, journey, current_stage)[0]
            was = self.memory.get(key, False)
            self.memory[key] = holds
            if holds and not was:
                reason = f"{entry.condition.describe()} became true"
        elif kind == "attribute_changed":
            if entry.attribute in changed:
                assert entry.attribute is not None  # build_entry gives this kind its attribute
                old, new = changed[entry.attribute]
                if (not entry.has_to or new == entry.to) and (not entry.has_from or old == entry.from_):
                    reason = f"{entry.attribute} changed from {old!r} to {new!r}"
        elif kind == "date":
            occurrence = self._next_date(entry, journey, previous)
            if occurrence is not None and occurrence <= self.now:
                reason = f"date {entry.attribute} {entry.offset}"
        elif kind == "schedule":
            if previous is not None and self._next_schedule(entry, journey, previous) <= self.now:
                reason = f"schedule {entry.cron}"
        if reason and entry.if_ is not None and not entry.if_.evaluate(self.facts_for(journey, current_stage)):
            return None
        return reason

    def _entry_zone(self, entry: Entry, journey: Journey) -> ZoneInfo:
        if entry.timezone and entry.timezone != "contact":
            return zone(entry.timezone)
        return self.zone_for(journey)

    def _next_schedule(self, entry: Entry, journey: Journey, after: datetime) -> datetime:
        """The schedule entry's first fire strictly after ``after``.

        Remembered per entry as a span, like ``_CronSpans`` but without its shared
        keys: the answer is the same fire for any ``after`` from the one it was
        computed for up to the fire itself (the zone is fixed for the run's contact).
        """
        known = self._schedules.get(id(entry))
        if known is not None and known[0] <= after < known[1]:
            return known[1]
        assert entry.cron is not None  # build_entry gives a schedule entry its expression
        fire = next_cron(entry.cron, after, self._entry_zone(entry, journey))
        self._schedules[id(entry)] = (after, fire)
        return fire

    def _next_date(self, entry: Entry, journey: Journey, after: datetime | None) -> datetime | None:
        """The date entry's first occurrence after ``after``.

        Remembered per entry: the same answer holds for any ``after`` from the one
        it was computed for up to the occurrence itself, in the same local year
        (``next_annual`` starts its search from that year), while the attribute
        is the very same value.
        """
        if after is None:
            return None
        assert entry.attribute is not None  # build_entry gives a date entry its attribute
        value = get_path(self.contact.attributes, entry.attribute)
        tz = self.zone_for(journey)
        year = after.astimezone(tz).year
        key = (id(entry), id(journey))
        known = self._dates.get(key)
        if known is not None and known[0] is value and known[1] == year and known[2] <= after < known[3]:
            return known[3]
        anchor = as_instant(value)
        if anchor is None:
            return None
        occurrence = next_annual(anchor.date(), after, entry.offset, entry.at, tz)
        self._dates[key] = (value, year, after, occurrence)
        return occurrence

    def _watched_unchanged(self, journey: Journey, changed: Mapping[str, Any]) -> bool:
        """Whether none of ``journey``'s ``attribute_changed`` entries watches a changed attribute."""
        return not changed or self.engine.watches(journey).isdisjoint(changed)

    def _take_attribute_changes(self) -> dict[str, tuple[Any, Any]]:
        """Watched attributes whose value differs from the last look: name -> (old, new).

        Remembers the current values (and the attribute version they belong to),
        so the next look reports only later changes.
        """
        if self.attribute_version == self._remembered_version:
            return {}  # in this run attributes change only through the engine, which counts it
        seen = self.memory.setdefault("attributes", {})
        changed: dict[str, tuple[Any, Any]] = {}
        for path in self.engine.watched_attributes:
            value = _jsonable(get_path(self.contact.attributes, path))
            if path in seen and seen[path] != value:
                changed[path] = (seen[path], value)
            seen[path] = value
        self._remembered_version = self.attribute_version
        return changed

    def _entry_wake(self) -> datetime | None:
        """The next instant an entry or exit could fire by time alone (dates, schedules, ageing conditions).

        Each journey's own next such instant was stamped at its look at this instant
        (or, untouched, at an earlier one); a stamp is retaken when an attribute the
        journey reads changed since (see ``_untouched``).
        """
        earliest = None
        version = self.attribute_version
        stamps = self._journey_wake
        for journey in self.engine.journeys:
            stamp = stamps.get(journey.id)
            if stamp is None or (stamp.version != version and not self._stamp_unchanged(journey, stamp)):
                self._set_stamp(journey.id, self._journey_wake_now(journey))
                stamp = stamps[journey.id]
            wake = stamp.value
            if wake is not None and (earliest is None or wake < earliest):
                earliest = wake
        return earliest

    def _stamp_unchanged(self, journey: Journey, stamp: Stamp[datetime | None]) -> bool:
        """Whether no attribute the journey reads (entries; an enrollment's exits too) changed since ``stamp``."""
        if stamp.version == self.attribute_version:
            return True
        enrollment = self.state.enrollments.get(journey.id)
        reads = self.engine.interest(self.engine.journey_for(enrollment)) if enrollment else self.engine.entry_reads(journey)
        return reads is not None and self._attributes_unchanged(stamp, reads.attributes)

    def _journey_wake_now(self, journey: Journey) -> datetime | None:
        """The next instant after now at which ``journey``'s entries or its enrollment's exits could fire by time.

        Notes in ``_unsettled`` an enrollment whose exit condition already holds (it
        entered or moved at this instant, after exits were checked).
        """
        self._unsettled.discard(journey.id)
        enrollment = self.state.enrollments.get(journey.id)
        pinned = self.engine.journey_for(enrollment) if enrollment else journey
        current_stage = enrollment.stage if enrollment else None
        quiet = self._entries_quiet.get((pinned.id, pinned.version, current_stage))
        if quiet is not None and self._inputs_unchanged(quiet):
            earliest = quiet.answer
        else:
            earliest = self._journey_entry_wake(pinned, current_stage)
        if earliest is not None and not earliest > self.now:
            earliest = None
        if enrollment is not None:
            for _, condition in self.engine.exits(pinned):
                holds, wake = self.condition_memo(condition, pinned, enrollment.stage, enrollment.entered_at)
                if holds:
                    self._unsettled.add(journey.id)
                if wake is not None and wake > self.now and (earliest is None or wake < earliest):
                    earliest = wake
        return earliest

    def _may_enter(self, journey: Journey) -> bool:
        past = [e for e in self.state.past_enrollments if e.journey_id == journey.id]
        if not past:
            return True
        policy = journey.settings.reentry
        if policy.policy == "always":
            return True
        if policy.policy == "after":
            last = max(e.entered_at for e in past)
            assert policy.after is not None  # build_settings reads `after` for this policy
            return self.now >= last + policy.after.approx
        return False

    @staticmethod
    def _reentry_text(journey: Journey) -> str:
        policy = journey.settings.reentry
        return f"after {policy.after}" if policy.policy == "after" else policy.policy

    # ------------------------------------------------------------ goals, exits, moves, migrations

    def _goal_reached(self, journey: Journey, enrollment: Enrollment, new_events: list[Event]) -> bool:
        goal = journey.goal
        if goal is None or enrollment.goal_at is not None or not new_events:
            return False
        hit = next((e for e in new_events if e.name == goal.event and where_matches(goal.where, e) and e.at >= enrollment.entered_at), None)
        if hit is None:
            return False
        if goal.within is not None and self.now > enrollment.entered_at + goal.within.approx:
            return False
        enrollment.goal_at = self.now
        self.decide(journey, enrollment, None, "goal", f"{goal.event} within {goal.within or 'any time'}")
        if goal.exit_on_goal:
            self.exit_enrollment(journey, enrollment, "goal")
            return True
        return False

    def exit_enrollment(self, journey: Journey, enrollment: Enrollment, reason: str) -> None:
        enrollment.status = EXITED
        enrollment.exit_reason = reason
        enrollment.exited_at = self.now
        enrollment.due_at = None
        enrollment.wait = None
        enrollment.cursor = None
        enrollment.trigger = None
        self.decide(journey, enrollment, None, "exit", reason)
        self.state.past_enrollments.append(enrollment)
        del self.state.enrollments[enrollment.journey_id]

    def move_enrollment(self, journey: Journey, enrollment: Enrollment, stage: Stage, reason: str) -> None:
        old = enrollment.stage
        enrollment.stage = stage.id
        enrollment.stage_seq += 1
        enrollment.cursor = stage.first
        enrollment.status = ACTIVE
        enrollment.wait = None
        enrollment.due_at = self.now
        enrollment.trigger = None  # an entry by event sets its event (``_enrolled``); an update step's move has none
        self.decide(journey, enrollment, None, "move", f"{old} -> {stage.id}: {reason}")

    def _migrate(self, journey: Journey) -> None:
        enrollment = self.state.enrollments.get(journey.id)
        migration = journey.migration
        if enrollment is None or enrollment.version == journey.version or migration is None:
            return
        if migration.from_version != enrollment.version:
            return
        target = continuation(journey, enrollment.stage, enrollment.cursor)
        old_version = enrollment.version
        enrollment.version = journey.version
        enrollment.stage = target.stage
        enrollment.cursor = target.cursor
        if target.restart:
            enrollment.stage_seq += 1
        if target.restart or (enrollment.wait is not None and enrollment.wait.event is not None):
            # a wait_for belongs to the old version's step: continue at the target now
            enrollment.wait = None
            enrollment.due_at = self.now
        enrollment.status = ACTIVE if enrollment.cursor else IDLE
        self.decide(journey, enrollment, enrollment.cursor, "migrate", f"v{old_version} -> v{journey.version} ({migration.strategy})")

    # ------------------------------------------------------------ decisions

    def decide(self, journey: Journey, enrollment: Enrollment, step_id: str | None, action: str, reason: str,
               key: str | None = None, detail: Mapping[str, Any] | None = None) -> None:
        """Record a decision about ``enrollment`` (its version and stage) at now."""
        self.decisions.append(_decision(
            self.now, self.contact.id, journey.id, enrollment.version, enrollment.stage, step_id, action, reason,
            key, detail or {},
        ))

    def _decide_free(self, journey: Journey, stage_id: str | None, step_id: str | None, action: str, reason: str) -> None:
        """Record a decision about ``journey`` itself (no enrollment: a refused entry) at now."""
        self.decisions.append(_decision(
            self.now, self.contact.id, journey.id, journey.version, stage_id, step_id, action, reason, None, {},
        ))


_new_object = object.__new__


def _entry_event(stage: Stage, new_events: list[Event]) -> Event | None:
    """The event that fired ``stage``'s entry now (the first that matches), or None for an
    entry of another kind: what the stage's steps see as ``event`` in their templates."""
    entry = stage.entry
    if entry.kind != "event":
        return None
    return next((e for e in new_events if e.name == entry.event and where_matches(entry.where, e)), None)


def _stage_rank(fired: tuple[Stage, str]) -> tuple[int, int]:
    """Best first: higher stage priority, then file order."""
    return -fired[0].priority, fired[0].index


def _decision(at: datetime, contact: str, journey: str, version: int, stage: str | None, step: str | None,
              action: str, reason: str, key: str | None, detail: Mapping[str, Any]) -> Decision:
    """A Decision built without the frozen dataclass ``__init__`` (one ``object.__setattr__``
    per field): the engine makes one per decision, several per contact and instant.
    Equal, field for field, to ``Decision(at, contact, …)``."""
    decision = _new_object(Decision)
    decision.__dict__.update(
        at=at, contact=contact, journey=journey, version=version, stage=stage, step=step,
        action=action, reason=reason, key=key, detail=detail,
    )
    return decision


def _merge_traits(attributes: dict[str, Any], traits: Mapping[str, Any]) -> None:
    """Apply identify traits as a JSON merge patch (RFC 7386), as the store does.

    Nested objects merge (``{meddic: {champion: …}}`` keeps ``meddic.metrics``),
    ``null`` removes an attribute, and a dotted name sets a nested attribute.
    """
    for name, value in traits.items():
        if "." in name:
            set_path(attributes, name, value)
        elif value is None:
            attributes.pop(name, None)
        elif isinstance(value, Mapping) and isinstance(attributes.get(name), dict):
            _merge_traits(attributes[name], value)
        else:
            attributes[name] = snapshot(value) if isinstance(value, Mapping) else value


def _jsonable(value: Any) -> Any:
    """The value as it reads back from the store's JSON, so memory compares the same in both drivers."""
    if value is NOT_SET:
        return None
    if type(value) in JSON_SCALARS:
        return value  # hot path: a JSON round trip gives the same value back
    return json.loads(json.dumps(value, default=str, sort_keys=True))


# The read-only use of a run's working memory (``Engine.view``): facts_for(), score().
ContactView = _Run
