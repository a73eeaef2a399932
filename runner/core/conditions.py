"""Conditions are data: compiled once from YAML mappings into small objects.

Nothing here calls ``eval``. Each compiled condition can

* ``evaluate(facts)``: is it true for this contact at ``facts.now``?
* ``explain(facts)``: the same, as a tree of readable reasons (``journey explain``);
* ``next_change(facts)``: the earliest future instant at which the answer could
  flip by the passing of time alone (an event ageing out of a window, a date
  becoming "older than 60d"), so the engine can wake exactly then;
* ``evaluate_with_change(facts)``: both answers in one walk of the tree (the
  engine asks for both whenever an input changed);
* ``deps``: which events, attributes and scores it reads, so the engine only
  re-evaluates what a change can affect.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from runner.core.durations import Duration, parse_duration
from runner.core.state import Contact, Event

UTC = UTC
NOT_SET = object()
_EVENT_AT = operator.attrgetter("at")  # bisect key: event lists are sorted by time

ATTRIBUTE_OPERATORS = (
    "equals", "not_equals", "in", "not_in", "contains", "starts_with", "exists",
    "gt", "gte", "lt", "lte", "before", "after", "older_than", "newer_than",
)
COUNT_OPERATORS = ("gte", "gt", "lte", "lt", "equals")


class ConditionError(ValueError):
    """A condition mapping that cannot be compiled (schema checks usually catch it first)."""


# ---------------------------------------------------------------- facts


@dataclass(slots=True)
class Facts:
    """What a condition may read: one contact at one instant.

    ``events`` holds only events visible at ``now`` (the engine reveals them as
    virtual time passes), grouped by name and sorted by time. Slots: the engine
    makes several per instant and conditions read their fields in every leaf.
    """

    contact: Contact
    now: datetime
    events: Mapping[str, list[Event]]
    segments: Mapping[str, Condition] = field(default_factory=dict)
    score: Callable[[str], float] = lambda name: 0.0
    score_change: Callable[[str, float | None], datetime | None] = lambda name, threshold: None
    stage: str | None = None
    since: datetime | None = None  # ignore events before this (exit conditions)
    depth: int = 0
    # segment name -> truth, for this contact at ``now``: segments nest and repeat (``customers``
    # inside ``advocates`` inside three entries). Whoever changes the contact makes new Facts.
    memo: dict[str, bool] = field(default_factory=dict)

    def attribute(self, path: str) -> Any:
        return get_path(self.contact.attributes, path, self.contact)

    def events_named(self, name: str) -> list[Event]:
        found = self.events.get(name, ())
        if self.since is not None and found:
            return list(found[bisect.bisect_left(found, self.since, key=_EVENT_AT):])
        return list(found)


def get_path(attributes: Mapping[str, Any], path: str, contact: Contact | None = None) -> Any:
    """A nested attribute by dotted path (``meddic.metrics``), or NOT_SET."""
    value = attributes.get(path, NOT_SET)  # one probe: the commonest case is a plain name
    if value is not NOT_SET:
        return value
    if contact is not None and path == "timezone":
        return contact.timezone
    if contact is not None and path == "id":
        return contact.id
    if "." not in path:  # hot path: a plain name that is not set
        return NOT_SET
    value = attributes
    for part in path.split("."):
        # dict first: isinstance against typing.Mapping goes through the ABC machinery (slow)
        if (isinstance(value, dict) or isinstance(value, Mapping)) and part in value:
            value = value[part]
        else:
            return NOT_SET
    return value


def as_instant(value: Any) -> datetime | None:
    """Dates and datetimes (objects or ISO text) as aware UTC datetimes."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _number(value: Any) -> float | None:
    kind = type(value)
    if kind is int or kind is float:  # hot path; bool (an int subclass) is not a number here
        return float(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


# ---------------------------------------------------------------- matchers


@dataclass(frozen=True, slots=True)
class Matcher:
    """One operator and its expected value, applied to one attribute or property value.

    ``matches(value, now)`` is whether ``value`` (NOT_SET when absent) passes. It is
    not a method but a function made once per matcher by ``_prepare``, with the
    expected value already converted (a number, a lowered text, a parsed date):
    every leaf of every condition calls it.
    """

    op: str
    expected: Any
    matches: Callable[[Any, datetime], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matches", _prepare(self.op, self.expected))  # frozen: set once, here

    def next_change(self, value: Any, now: datetime) -> datetime | None:
        if self.op not in ("older_than", "newer_than"):
            return None
        instant = as_instant(value)
        if instant is None:
            return None
        boundary = instant + _duration(self.expected).approx
        if self.op == "older_than":
            boundary += timedelta(microseconds=1)  # strictly after the boundary
        return boundary if boundary > now else None

    def describe(self) -> str:
        return f"{self.op} {self.expected!r}"


Check = Callable[[Any, Any, datetime], bool]  # (value, expected, now) -> whether the operator holds


def _duration(text: Any) -> Duration:
    """``parse_duration``, remembered: matchers ask for the same few texts at every evaluation."""
    return _remembered_duration(text) if isinstance(text, (str, int)) else parse_duration(text)


@lru_cache(maxsize=1024)
def _remembered_duration(text: str | int) -> Duration:
    return parse_duration(text)


def _contains(value: Any, expected: Any, now: datetime) -> bool:
    if isinstance(value, str):
        return isinstance(expected, str) and expected.lower() in value.lower()
    return isinstance(value, (list, tuple, set)) and expected in value


def _ordered(compare: Callable[[Any, Any], bool]) -> Check:
    """A gt/gte/lt/lte check: numbers compare as numbers, else dates and datetimes as instants."""
    def check(value: Any, expected: Any, now: datetime) -> bool:
        left, right = _number(value), _number(expected)
        if left is None or right is None:
            left_at, right_at = as_instant(value), as_instant(expected)
            if left_at is None or right_at is None:
                return False
            return compare(left_at, right_at)
        return compare(left, right)
    return check


def _instants(compare: Callable[[Any, Any], bool]) -> Check:
    """A before/after check between two instants (False when either is not a date)."""
    def check(value: Any, expected: Any, now: datetime) -> bool:
        left, right = as_instant(value), as_instant(expected)
        if left is None or right is None:
            return False
        return compare(left, right)
    return check


def _age(older: bool) -> Check:
    """An older_than/newer_than check: ``now`` against the value plus the duration."""
    def check(value: Any, expected: Any, now: datetime) -> bool:
        instant = as_instant(value)
        if instant is None:
            return False
        boundary: datetime = instant + _duration(expected).approx
        return now > boundary if older else now <= boundary
    return check


# operator -> check(value, expected, now) for a value that is set (see Matcher.matches;
# ``_prepare`` has faster equivalents of the commonest ones)
_CHECKS: dict[str, Check] = {
    "equals": lambda value, expected, now: value == expected,
    "not_equals": lambda value, expected, now: value != expected,
    "in": lambda value, expected, now: value in expected,
    "not_in": lambda value, expected, now: value not in expected,
    "contains": _contains,
    "starts_with": lambda value, expected, now: isinstance(value, str) and value.startswith(str(expected)),
    "gt": _ordered(operator.gt),
    "gte": _ordered(operator.ge),
    "lt": _ordered(operator.lt),
    "lte": _ordered(operator.le),
    "before": _instants(operator.lt),
    "after": _instants(operator.gt),
    "older_than": _age(older=True),
    "newer_than": _age(older=False),
}


def _prepare(op: str, expected: Any) -> Callable[[Any, datetime], bool]:
    """``Matcher.matches`` for one operator and expected value.

    An unset value (NOT_SET or None) passes only ``not_equals``, ``not_in`` and
    ``exists: false``; a set one goes to the operator's ``_CHECKS`` entry. The
    commonest operators get an equivalent with the expected value worked out once
    (same answers, fewer calls); an unknown operator raises when it meets a set value.
    """
    if op == "exists":
        wanted = bool(expected)
        return lambda value, now: (value is not NOT_SET and value is not None) == wanted
    if op == "equals":
        return lambda value, now: value is not NOT_SET and value is not None and value == expected
    if op == "not_equals":
        return lambda value, now: value is NOT_SET or value is None or value != expected
    if op in ("gt", "gte", "lt", "lte") and _number(expected) is not None:
        # a number to compare with: a value that is not a number fails, as in _ordered
        # (a number is never an instant, so its fallback to instants cannot succeed)
        compare, right = _ORDER[op], _number(expected)
        assert right is not None  # checked just above

        def ordered(value: Any, now: datetime) -> bool:
            kind = type(value)
            if kind is int or kind is float:  # _number, inlined: counts and scores come here
                return compare(float(value), right)
            left = _number(value) if value is not NOT_SET and value is not None else None
            return left is not None and compare(left, right)
        return ordered
    if op in ("gt", "gte", "lt", "lte", "before", "after"):
        # instants (an expected number is handled above): the expected one parsed once, as in _instants
        compare, right_instant = _ORDER[op], as_instant(expected)

        def instants(value: Any, now: datetime) -> bool:
            if value is NOT_SET or value is None or right_instant is None:
                return False
            left = as_instant(value)
            return left is not None and compare(left, right_instant)
        return instants
    if op == "contains" and isinstance(expected, str):
        lowered = expected.lower()

        def contains(value: Any, now: datetime) -> bool:
            if isinstance(value, str):
                return lowered in value.lower()
            return isinstance(value, (list, tuple, set)) and expected in value
        return contains
    if op == "starts_with":
        prefix = str(expected)
        return lambda value, now: isinstance(value, str) and value.startswith(prefix)
    unset = op in ("not_equals", "not_in")
    check = _CHECKS.get(op)

    def generic(value: Any, now: datetime) -> bool:
        if value is NOT_SET or value is None:
            return unset
        if check is None:
            raise ConditionError(f"unknown operator '{op}'")
        return check(value, expected, now)
    return generic


_ORDER: dict[str, Callable[[Any, Any], bool]] = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
          "before": operator.lt, "after": operator.gt}


def compile_matcher(spec: Any) -> Matcher:
    """A property filter value: a literal (equality) or ``{op: value}``."""
    if isinstance(spec, Mapping):
        if len(spec) != 1:
            raise ConditionError(f"a property matcher takes exactly one operator, got {sorted(spec)}")
        (op, expected), = spec.items()
        if op not in ATTRIBUTE_OPERATORS:
            raise ConditionError(f"unknown operator '{op}'")
        return Matcher(op, expected)
    return Matcher("equals", spec)


def compile_where(where: Mapping[str, Any] | None) -> tuple[tuple[str, Matcher], ...]:
    return tuple((name, compile_matcher(spec)) for name, spec in (where or {}).items())


def where_matches(where: tuple[tuple[str, Matcher], ...], event: Event) -> bool:
    # a loop, not all(generator): asked for every new event against every event entry, most with no `where`
    for name, matcher in where:
        if not matcher.matches(get_path(event.properties, name), event.at):
            return False
    return True


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Deps:
    events: frozenset[str] = frozenset()
    attributes: frozenset[str] = frozenset()
    scores: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    stage: bool = False
    timed: bool = False  # may change by the passing of time alone

    def __or__(self, other: Deps) -> Deps:
        return Deps(
            self.events | other.events,
            self.attributes | other.attributes,
            self.scores | other.scores,
            self.segments | other.segments,
            self.stage or other.stage,
            self.timed or other.timed,
        )


@dataclass
class Explanation:
    holds: bool
    text: str
    children: list[Explanation] = field(default_factory=list)

    def lines(self, indent: int = 0) -> list[str]:
        mark = "✓" if self.holds else "✗"
        out = [f"{'  ' * indent}{mark} {self.text}"]
        for child in self.children:
            out.extend(child.lines(indent + 1))
        return out


class Condition:
    deps: Deps = Deps()

    def evaluate(self, facts: Facts) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def explain(self, facts: Facts) -> Explanation:
        return Explanation(self.evaluate(facts), self.describe())

    def next_change(self, facts: Facts) -> datetime | None:
        return None

    def evaluate_with_change(self, facts: Facts) -> tuple[bool, datetime | None]:
        """``(evaluate(facts), next_change(facts))``; composites override it to walk their parts once."""
        return self.evaluate(facts), self.next_change(facts)

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


def _earliest(instants: Iterable[datetime | None]) -> datetime | None:
    found = [i for i in instants if i is not None]
    return min(found) if found else None


class AllOf(Condition):
    def __init__(self, parts: list[Condition]) -> None:
        self.parts = parts
        self.deps = _union(parts)
        self._timed = _may_change_with_time(self.deps)  # asked at every next_change

    def evaluate(self, facts: Facts) -> bool:
        for part in self.parts:  # a loop, not all(generator): hot in every segment
            if not part.evaluate(facts):
                return False
        return True

    def explain(self, facts: Facts) -> Explanation:
        children = [part.explain(facts) for part in self.parts]
        return Explanation(all(c.holds for c in children), "all of", children)

    _settles_when = False  # all: a part that stays false keeps the whole false

    def next_change(self, facts: Facts) -> datetime | None:
        if not self._timed:
            return None  # hot in the engine's wake-up search: skip parts that cannot change
        changes = []
        for part in self.parts:
            change = part.next_change(facts)
            if change is None and part.evaluate(facts) == self._settles_when:
                # this part cannot flip by time and alone decides the answer: neither can the whole
                # (saves wake-ups like "30 days without app_opened" for contacts who never bought)
                return None
            changes.append(change)
        return _earliest(changes)

    def evaluate_with_change(self, facts: Facts) -> tuple[bool, datetime | None]:
        """One walk: each part's truth and change together (``next_change`` alone re-evaluates parts).

        The answer is ``settles_when`` as soon as one part has that truth (the
        evaluate short-circuit); parts are still walked in order until one with
        that truth cannot change, exactly as ``next_change`` walks them.
        """
        if not self._timed:
            return self.evaluate(facts), None
        settles = self._settles_when
        holds = not settles
        changes = []
        for part in self.parts:
            part_holds, change = part.evaluate_with_change(facts)
            if part_holds == settles:
                holds = settles
                if change is None:
                    return holds, None
            changes.append(change)
        return holds, _earliest(changes)

    def describe(self) -> str:
        return "all of (" + "; ".join(p.describe() for p in self.parts) + ")"


class AnyOf(AllOf):
    _settles_when = True  # any: a part that stays true keeps the whole true

    def evaluate(self, facts: Facts) -> bool:
        for part in self.parts:
            if part.evaluate(facts):
                return True
        return False

    def explain(self, facts: Facts) -> Explanation:
        children = [part.explain(facts) for part in self.parts]
        return Explanation(any(c.holds for c in children), "any of", children)

    def describe(self) -> str:
        return "any of (" + "; ".join(p.describe() for p in self.parts) + ")"


class Not(Condition):
    def __init__(self, part: Condition) -> None:
        self.part = part
        self.deps = part.deps
        self._timed = _may_change_with_time(self.deps)

    def evaluate(self, facts: Facts) -> bool:
        return not self.part.evaluate(facts)

    def explain(self, facts: Facts) -> Explanation:
        child = self.part.explain(facts)
        return Explanation(not child.holds, "not", [child])

    def next_change(self, facts: Facts) -> datetime | None:
        if not self._timed:
            return None
        return self.part.next_change(facts)

    def evaluate_with_change(self, facts: Facts) -> tuple[bool, datetime | None]:
        if not self._timed:
            return not self.part.evaluate(facts), None
        holds, change = self.part.evaluate_with_change(facts)
        return not holds, change

    def describe(self) -> str:
        return f"not ({self.part.describe()})"


class SegmentRef(Condition):
    MAX_DEPTH = 32  # references are checked for cycles at load time; this is a last guard

    def __init__(self, name: str) -> None:
        self.name = name
        self.deps = Deps(segments=frozenset([name]))

    def _target(self, facts: Facts) -> Condition:
        if facts.depth > self.MAX_DEPTH:
            raise ConditionError(f"segment '{self.name}' refers to itself")
        try:
            return facts.segments[self.name]
        except KeyError:
            raise ConditionError(f"unknown segment '{self.name}'") from None

    def evaluate(self, facts: Facts) -> bool:
        known = facts.memo.get(self.name)
        if known is not None:
            return known
        target = facts.segments.get(self.name) if facts.depth <= self.MAX_DEPTH else None  # _target, inlined
        if target is None:
            target = self._target(facts)  # raises the reason
        facts.depth += 1
        try:
            value = target.evaluate(facts)
        finally:
            facts.depth -= 1
        facts.memo[self.name] = value
        return value

    def explain(self, facts: Facts) -> Explanation:
        target = self._target(facts)
        facts.depth += 1
        try:
            child = target.explain(facts)
        finally:
            facts.depth -= 1
        return Explanation(child.holds, f"segment {self.name}", [child])

    def next_change(self, facts: Facts) -> datetime | None:
        target = self._target(facts)
        facts.depth += 1
        try:
            return target.next_change(facts)
        finally:
            facts.depth -= 1

    def evaluate_with_change(self, facts: Facts) -> tuple[bool, datetime | None]:
        known = facts.memo.get(self.name)
        if known is not None:
            return known, self.next_change(facts)
        target = self._target(facts)
        facts.depth += 1
        try:
            value, change = target.evaluate_with_change(facts)
        finally:
            facts.depth -= 1
        facts.memo[self.name] = value
        return value, change

    def describe(self) -> str:
        return f"segment {self.name}"


class AttributeIs(Condition):
    def __init__(self, path: str, matcher: Matcher) -> None:
        self.path, self.matcher = path, matcher
        self.deps = Deps(attributes=frozenset([path]), timed=matcher.op in ("older_than", "newer_than"))

    def evaluate(self, facts: Facts) -> bool:
        contact = facts.contact  # facts.attribute(), inlined: the commonest leaf of every segment
        return self.matcher.matches(get_path(contact.attributes, self.path, contact), facts.now)

    def explain(self, facts: Facts) -> Explanation:
        value = facts.attribute(self.path)
        shown = "not set" if value is NOT_SET else repr(value)
        holds = self.matcher.matches(value, facts.now)
        return Explanation(holds, f"{self.describe()} (is {shown})")

    def next_change(self, facts: Facts) -> datetime | None:
        return self.matcher.next_change(facts.attribute(self.path), facts.now)

    def evaluate_with_change(self, facts: Facts) -> tuple[bool, datetime | None]:
        value = facts.attribute(self.path)
        return self.matcher.matches(value, facts.now), self.matcher.next_change(value, facts.now)

    def describe(self) -> str:
        return f"{self.path} {self.matcher.describe()}"


class EventCount(Condition):
    """The event happened a number of times (default: at least once), optionally within a window."""

    def __init__(self, name: str, where: tuple[tuple[str, Matcher], ...], count: Matcher,
                 within: Duration | None) -> None:
        self.name, self.where, self.count, self.within = name, where, count, within
        self.deps = Deps(events=frozenset([name]), timed=within is not None)

    def matching(self, facts: Facts) -> Sequence[Event]:
        """The events that count (read-only: it may be the facts' own list)."""
        # events_named copies; without `since` the visible list itself will do
        found = facts.events.get(self.name, ()) if facts.since is None else facts.events_named(self.name)
        if self.within is not None:
            start = facts.now - self.within.approx
            found = [e for e in found if e.at > start]
        if self.where:
            found = [e for e in found if where_matches(self.where, e)]
        return found

    def evaluate(self, facts: Facts) -> bool:
        if self.within is None and not self.where:  # a plain count: no list to build
            found = facts.events.get(self.name, ())
            count = len(found)
            if facts.since is not None and found:
                count -= bisect.bisect_left(found, facts.since, key=_EVENT_AT)  # those before `since`
            return self.count.matches(count, facts.now)
        return self.count.matches(len(self.matching(facts)), facts.now)

    def explain(self, facts: Facts) -> Explanation:
        n = len(self.matching(facts))
        return Explanation(self.count.matches(n, facts.now), f"{self.describe()} (happened {n} times)")

    def next_change(self, facts: Facts) -> datetime | None:
        """The instant the answer flips as events age out of the window (None: never by time).

        Events leave the window oldest first, so after the i-th has left the count is
        ``n - i``; the first such count with a different answer marks the flip. Waking
        at every age-out instead would wake a contact for nothing most of the time.
        """
        if self.within is None:
            return None
        matching = self.matching(facts)
        return self._flip(matching, self.count.matches(len(matching), facts.now), facts.now)

    def _flip(self, matching: Sequence[Event], holds: bool, now: datetime) -> datetime | None:
        """``next_change`` for the events in the window and the answer they give now."""
        assert self.within is not None  # only counts within a window change by time
        window: timedelta = self.within.approx
        instants = sorted(e.at for e in matching)
        count = len(instants)
        for left, at in enumerate(instants, start=1):
            if self.count.matches(count - left, now) != holds:
                return at + window
        return None

    def evaluate_with_change(self, facts: Facts) -> tuple[bool, datetime | None]:
        if self.within is None:
            return self.evaluate(facts), None
        matching = self.matching(facts)  # once for both answers
        holds = self.count.matches(len(matching), facts.now)
        return holds, self._flip(matching, holds, facts.now)

    def describe(self) -> str:
        text = f"event {self.name}"
        if self.where:
            text += " where " + ", ".join(f"{k} {m.describe()}" for k, m in self.where)
        text += f" count {self.count.describe()}"
        if self.within is not None:
            text += f" within {self.within}"
        return text


class ScoreIs(Condition):
    def __init__(self, name: str, matcher: Matcher) -> None:
        self.name, self.matcher = name, matcher
        self.deps = Deps(scores=frozenset([name]))

    def evaluate(self, facts: Facts) -> bool:
        return self.matcher.matches(facts.score(self.name), facts.now)

    def explain(self, facts: Facts) -> Explanation:
        value = facts.score(self.name)
        # rounded for reading (decay makes 27.498371); a value that only rounds onto the threshold keeps its digits
        shown = f"{round(value, 1):g}"
        if self.matcher.matches(float(shown), facts.now) != self.matcher.matches(value, facts.now):
            shown = f"{value:g}"
        return Explanation(self.matcher.matches(value, facts.now), f"{self.describe()} (is {shown})")

    def next_change(self, facts: Facts) -> datetime | None:
        return facts.score_change(self.name, _number(self.matcher.expected))

    def describe(self) -> str:
        return f"score {self.name} {self.matcher.describe()}"


class InStage(Condition):
    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.deps = Deps(stage=True)

    def evaluate(self, facts: Facts) -> bool:
        return facts.stage == self.stage

    def describe(self) -> str:
        return f"in stage {self.stage}"


def _may_change_with_time(deps: Deps) -> bool:
    """Whether time alone may flip a condition: timed matchers, scores (decay), or a segment (unknown here)."""
    return deps.timed or bool(deps.scores) or bool(deps.segments)


def _union(parts: list[Condition]) -> Deps:
    deps = Deps()
    for part in parts:
        deps = deps | part.deps
    return deps


def _single_operator(spec: Mapping[str, Any], allowed: Iterable[str], what: str) -> Matcher:
    ops = [key for key in spec if key in allowed]
    if len(ops) != 1:
        raise ConditionError(f"{what} needs exactly one operator of {', '.join(allowed)}")
    return Matcher(ops[0], spec[ops[0]])


def compile_condition(spec: Any) -> Condition:
    """Compile a condition mapping (see docs/language.md) into a Condition."""
    if not isinstance(spec, Mapping) or not spec:
        raise ConditionError(f"a condition must be a mapping, not {spec!r}")
    if "all" in spec:
        return AllOf([compile_condition(part) for part in spec["all"]])
    if "any" in spec:
        return AnyOf([compile_condition(part) for part in spec["any"]])
    if "not" in spec:
        return Not(compile_condition(spec["not"]))
    if "segment" in spec:
        return SegmentRef(spec["segment"])
    if "attribute" in spec:
        return AttributeIs(spec["attribute"], _single_operator(spec, ATTRIBUTE_OPERATORS, "an attribute condition"))
    if "event" in spec:
        count_spec = spec.get("count") or {"gte": 1}
        count = _single_operator(count_spec, COUNT_OPERATORS, "an event count")
        within = parse_duration(spec["within"]) if spec.get("within") is not None else None
        return EventCount(spec["event"], compile_where(spec.get("where")), count, within)
    if "score" in spec:
        return ScoreIs(spec["score"], _single_operator(spec, COUNT_OPERATORS, "a score condition"))
    if "stage" in spec:
        return InStage(spec["stage"])
    raise ConditionError(f"unknown condition with keys {sorted(spec)}")
