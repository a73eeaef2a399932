"""What journeys and conditions read: the map from inputs to the answers they can change.

A condition's truth can only change when an event it reads becomes visible,
when an attribute it reads changes, or at its own ``next_change``. The engine
remembers answers against these inputs and skips whatever nothing has touched;
this module works out, once per journey version, what those inputs are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runner.core.conditions import Condition
from runner.core.model import Journey, Project, Stage, WaitForStep


@dataclass(frozen=True)
class Reads:
    """What can change a condition's answer, besides time: these event names becoming
    visible, or these attributes changing (top-level names; ``("score", name)`` for a
    score's manual adjustments)."""

    events: frozenset[str] = frozenset()
    attributes: frozenset[AttributeKey] = frozenset()
    stage: bool = False  # reads the enrollment's stage

    def __or__(self, other: Reads) -> Reads:
        return Reads(self.events | other.events, self.attributes | other.attributes, self.stage or other.stage)


# what a change is tracked by: a top-level attribute name, or ("score", name) for adjustments
AttributeKey = str | tuple[str, str]
_UNKNOWN = Reads(frozenset({"\x00not looked up yet"}))  # by identity, in caches where None is an answer


def attribute_key(path: str) -> str:
    """The top-level attribute a dotted path lives in: the unit of change tracking."""
    return path.split(".", 1)[0]


def exit_rules(journey: Journey, project: Project) -> tuple[tuple[str, Condition], ...]:
    """``journey``'s exit rules, then the project's, each with its exit reason's label.
    Built once per journey version by the engine (``Engine.exit_rules``), as its segments are."""
    return (
        *((f"exit:{index}", condition) for index, condition in enumerate(journey.exit)),
        *((f"project_exit:{index}", condition) for index, condition in enumerate(project.exit)),
    )


class JourneyReads:
    """What each journey's entries, exits and conditions read (through segments and scores).

    Computed once per journey version and condition, asked several times per
    instant. The engine is one (``Engine`` subclasses it): the answers depend
    only on the journeys and the project, never on a contact.
    """

    def __init__(self, project: Project, segments: Mapping[tuple[str, int], Mapping[str, Condition]]) -> None:
        self.project = project
        self.segments = segments  # (journey id, version) -> its segments merged over the project's
        # scores that time alone can only lower (event points >= 0 expire or decay; `when` rules
        # cannot flip by time): below a threshold they never cross it by waiting
        self.score_only_falls = {
            name: all(
                rule.points >= 0 if rule.event else not (
                    rule.when is not None and (rule.when.deps.timed or rule.when.deps.segments or rule.when.deps.scores))
                for rule in model.rules
            )
            for name, model in project.scores.items()
        }
        self._reads: dict[tuple[int, str, int], Reads | None] = {}
        self._entry_reads: dict[tuple[int, str, int], Reads | None] = {}
        self._interest: dict[tuple[int, str, int], Reads | None] = {}
        self._watches: dict[tuple[int, str, int], frozenset[str]] = {}
        self._score_when: dict[str, frozenset[AttributeKey] | None] = {}
        self._score_reads: dict[str, Reads | None] = {}

    def entry_reads(self, journey: Journey) -> Reads | None:
        """What can make a stage entry of ``journey`` fire: trigger event names, condition
        inputs, date attributes (None: unknown). ``attribute_changed`` entries: see ``watches``.

        An entry's ``if`` guard is not among them: it is checked only when its trigger
        fires (a new event, a schedule or date coming round, a condition becoming true),
        so a change to what the guard reads cannot by itself make anything fire."""
        key = (id(journey), journey.id, journey.version)
        known = self._entry_reads.get(key, _UNKNOWN)
        if known is not _UNKNOWN:
            return known
        reads = Reads()
        for stage in journey.stages:
            entry = stage.entry
            if entry.event:
                reads |= Reads(events=frozenset([entry.event]))
            if entry.kind == "date":
                assert entry.attribute is not None  # a date entry names its attribute
                reads |= Reads(attributes=frozenset([attribute_key(entry.attribute)]))
            if entry.condition is not None:
                found = self.reads(entry.condition, journey)
                if found is None:
                    self._entry_reads[key] = None
                    return None
                reads |= found
        self._entry_reads[key] = reads
        return reads

    def exits(self, journey: Journey) -> tuple[tuple[str, Condition], ...]:
        """Every exit rule of an enrollment in ``journey``, each with the label its exit decision
        gives: the journey's own (``exit:0``, …), then project.yaml's (``project_exit:0``, …),
        which hold for every journey and every version in flight (docs/language.md)."""
        return exit_rules(journey, self.project)

    def interest(self, journey: Journey) -> Reads | None:
        """What can change anything for a contact enrolled in ``journey`` and not due:
        entries, exit conditions, the goal and ``wait_for`` steps (None: unknown)."""
        key = (id(journey), journey.id, journey.version)
        known = self._interest.get(key, _UNKNOWN)
        if known is _UNKNOWN:
            reads = self.entry_reads(journey)
            for _, condition in self.exits(journey):
                found = self.reads(condition, journey)
                reads = None if reads is None or found is None else reads | found
            if reads is not None:
                names = set(reads.events)
                if journey.goal is not None:
                    names.add(journey.goal.event)
                names.update(step.event for step in journey.steps.values() if isinstance(step, WaitForStep))
                reads = Reads(frozenset(names), reads.attributes, reads.stage)
            known = self._interest[key] = reads
        return known

    def watching_stages(self, journey: Journey) -> list[Stage]:
        """The stages of ``journey`` with an ``attribute_changed`` entry."""
        return [stage for stage in journey.stages if stage.entry.kind == "attribute_changed"]

    def watches(self, journey: Journey) -> frozenset[str]:
        """The attribute paths ``journey``'s ``attribute_changed`` entries fire on."""
        key = (id(journey), journey.id, journey.version)
        watched = self._watches.get(key)
        if watched is None:
            watched = self._watches[key] = frozenset(
                stage.entry.attribute for stage in journey.stages
                if stage.entry.kind == "attribute_changed" and stage.entry.attribute is not None
            )
        return watched

    def reads(self, condition: Condition, journey: Journey) -> Reads | None:
        """Every event name and attribute ``condition`` reads, through segments and scores (None: unknown).

        A condition's truth can only change when one of these events becomes
        visible, when one of these attributes changes, or at its own
        ``next_change``; the run uses this to skip re-evaluating conditions
        nothing has touched.
        """
        key = (id(condition), journey.id, journey.version)
        reads = self._reads.get(key, _UNKNOWN)
        if reads is _UNKNOWN:
            reads = self._reads[key] = self._resolve_reads(condition, self.segments[(journey.id, journey.version)])
        return reads

    def _resolve_reads(self, condition: Condition, segments: Mapping[str, Condition]) -> Reads | None:
        names: set[str] = set()
        attributes: set[AttributeKey] = set()
        stage = False
        pending = [condition]
        seen_segments: set[str] = set()
        seen_scores: set[str] = set()
        while pending:
            deps = pending.pop().deps
            names |= deps.events
            stage = stage or deps.stage
            attributes.update(attribute_key(path) for path in deps.attributes)
            for name in deps.segments - seen_segments:
                seen_segments.add(name)
                if name not in segments:
                    return None
                pending.append(segments[name])
            for name in deps.scores - seen_scores:
                seen_scores.add(name)
                attributes.add(("score", name))  # update steps' add_score
                model = self.project.scores.get(name)
                for rule in model.rules if model else ():
                    if rule.event:
                        names.add(rule.event)
                    if rule.when is not None:
                        pending.append(rule.when)
        return Reads(frozenset(names), frozenset(attributes), stage)

    def score_when_attributes(self, name: str) -> frozenset[AttributeKey] | None:
        """The attributes a score's ``when`` rules read, when they read nothing else (None otherwise)."""
        if name not in self._score_when:
            keys: set[AttributeKey] = set()
            model = self.project.scores.get(name)
            for rule in model.rules if model else ():
                if rule.event or rule.when is None:
                    continue
                deps = rule.when.deps
                if deps.events or deps.segments or deps.scores or deps.stage or deps.timed:
                    self._score_when[name] = None
                    break
                keys.update(attribute_key(path) for path in deps.attributes)
            else:
                self._score_when[name] = frozenset(keys)
        return self._score_when[name]

    def score_reads(self, name: str) -> Reads | None:
        """What a score reads besides time: its rules' events, its ``when`` rules' attributes and
        its manual adjustments (None: a ``when`` rule reads more, see ``score_when_attributes``)."""
        if name not in self._score_reads:
            attributes = self.score_when_attributes(name)
            model = self.project.scores.get(name)
            self._score_reads[name] = None if attributes is None or model is None else Reads(
                frozenset(rule.event for rule in model.rules if rule.event), attributes | {("score", name)})
        return self._score_reads[name]
