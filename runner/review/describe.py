"""Plain-language text for conditions, entries and steps, read from the raw YAML mapping.

The diagrams and the semantic diff both show marketers what a journey does;
they must say it the same way, in words close to what the marketer wrote
(``source = newsletter``, ``score lead ≥ 50``), so both use this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPERATORS = {
    "equals": "=", "not_equals": "≠", "in": "in", "not_in": "not in", "contains": "contains",
    "starts_with": "starts with", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤",
    "before": "before", "after": "after", "older_than": "older than", "newer_than": "newer than",
}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def value_text(value: Any) -> str:
    """A YAML value as a marketer wrote it: lists in brackets, no Python quotes."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def matcher_text(spec: Any) -> str:
    """``{gte: 50}`` -> ``≥ 50``; a literal -> ``= literal``."""
    if isinstance(spec, Mapping) and len(spec) == 1:
        (op, expected), = spec.items()
        if op == "exists":
            return "is set" if expected else "is not set"
        return f"{OPERATORS.get(op, op)} {value_text(expected)}"
    return f"= {value_text(spec)}"


def where_text(where: Any) -> str:
    if not isinstance(where, Mapping) or not where:
        return ""
    return " where " + ", ".join(f"{name} {matcher_text(spec)}" for name, spec in where.items())


def count_text(count: Any) -> str:
    if not isinstance(count, Mapping) or not count:
        return ""
    (op, n), = list(count.items())[:1]
    if op == "equals" and n == 0:
        return " never"
    return f" {OPERATORS.get(op, op)} {n} times"


def condition_text(spec: Any) -> str:
    """One condition as a short phrase."""
    if not isinstance(spec, Mapping):
        return value_text(spec)
    if "all" in spec:
        return "all of (" + "; ".join(condition_text(c) for c in _list(spec["all"])) + ")"
    if "any" in spec:
        return "any of (" + "; ".join(condition_text(c) for c in _list(spec["any"])) + ")"
    if "not" in spec:
        return f"not ({condition_text(spec['not'])})"
    if "segment" in spec:
        return f"segment {spec['segment']}"
    if "stage" in spec:
        return f"in stage {spec['stage']}"
    if "score" in spec:
        rest = {k: v for k, v in spec.items() if k != "score"}
        return f"score {spec['score']} {matcher_text(rest)}"
    if "event" in spec:
        text = f"event {spec['event']}{where_text(spec.get('where'))}{count_text(spec.get('count'))}"
        if spec.get("within"):
            text += f" within {spec['within']}"
        return text
    if "attribute" in spec:
        rest = {k: v for k, v in spec.items() if k != "attribute"}
        return f"{spec['attribute']} {matcher_text(rest)}"
    return value_text(spec)


def entry_text(spec: Any) -> str:
    """A stage entry: what makes a contact enter or move here."""
    if not isinstance(spec, Mapping):
        return value_text(spec)
    if "event" in spec:
        text = f"on event {spec['event']}{where_text(spec.get('where'))}"
    elif "segment" in spec:
        text = f"when segment {spec['segment']} becomes true"
    elif "condition" in spec:
        text = f"when {condition_text(spec['condition'])} becomes true"
    elif "attribute_changed" in spec:
        text = f"when {spec['attribute_changed']} changes"
        if "from" in spec:
            text += f" from {value_text(spec['from'])}"
        if "to" in spec:
            text += f" to {value_text(spec['to'])}"
    elif "date" in spec:
        offset = spec.get("offset")
        text = f"yearly on {spec['date']}" + (f" {offset}" if offset else "") + f" at {spec.get('at', '09:00')}"
    elif "schedule" in spec:
        text = f"on schedule {spec['schedule']} ({spec.get('timezone', 'contact')} time)"
    else:
        text = value_text(spec)
    if spec.get("if") is not None:
        text += f" if {condition_text(spec['if'])}"
    return text


def goal_text(spec: Any) -> str:
    if not isinstance(spec, Mapping):
        return value_text(spec)
    text = f"event {spec.get('event')}{where_text(spec.get('where'))}"
    if spec.get("within"):
        text += f" within {spec['within']}"
    if spec.get("exit_on_goal") is False:
        text += " (keeps going)"
    return text


def wait_until_text(spec: Any) -> str:
    if not isinstance(spec, Mapping):
        return f"wait until {value_text(spec)}"
    days = spec.get("days")
    when = f"{'/'.join(value_text(d) for d in _list(days))} " if days else "next "
    return f"wait until {when}{spec.get('time')}"


def step_kind(spec: Mapping[str, Any]) -> str:
    for kind in ("email", "wait", "wait_until", "wait_for", "branch", "split", "update", "webhook", "exit"):
        if kind in spec:
            return kind
    return "step"


def update_text(body: Any) -> str:
    if not isinstance(body, Mapping):
        return "update"
    parts = [f"set {k} = {value_text(v)}" for k, v in _mapping(body.get("set")).items()]
    parts += [f"{name} score {points:+g}" if isinstance(points, (int, float)) else f"{name} score {points}"
              for name, points in _mapping(body.get("add_score")).items()]
    if body.get("lifecycle_stage"):
        parts.append(f"lifecycle stage → {body['lifecycle_stage']}")
    if body.get("stage"):
        parts.append(f"move to stage {body['stage']}")
    return ", ".join(parts) or "update (no change)"
