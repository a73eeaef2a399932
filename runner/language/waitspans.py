"""How long steps keep a contact at most, counting what waits: for the goal-window check.

A ``wait_for`` on the goal event can never answer while the goal counts (the goal
is checked first and ends the enrollment). A goal with ``within`` counts only for
that long after entry, so the wait is pointless only when it is sure to end inside
the window: ``latest_end`` is the longest a stage's steps can take up to the end of
that wait — waits, the timeouts of earlier ``wait_for`` steps and their longer
path, the longer case of a branch or split, a ``wait_until`` at most a week (a
day without ``days``), plus an hour for a clock change. Sends count as instant
(a send window or cap may defer them; the warning says so), and any step whose
time is not known (an unknown kind, a bad duration) makes the answer ``None``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from runner.core.durations import parse_duration

INSTANT_KINDS = ("email", "update", "webhook", "exit")
CLOCK_CHANGE = timedelta(hours=1)


def latest_end(steps: list, index: int) -> timedelta | None:
    """The longest time from the start of ``steps`` to the end of the ``wait_for`` at ``index``."""
    before = span(steps[:index])
    timeout = _duration(_mapping(_mapping(steps[index]).get("wait_for")).get("timeout"))
    return None if before is None or timeout is None else before + timeout


def span(steps: Any) -> timedelta | None:
    """The longest time these steps can keep a contact, sends counted as instant; None when unknown."""
    if not isinstance(steps, list):
        return timedelta(0) if steps is None else None
    total = timedelta(0)
    for step in steps:
        part = _step_span(_mapping(step))
        if part is None:
            return None
        total += part
    return total


def _step_span(step: dict) -> timedelta | None:
    if "wait" in step:
        return _duration(step["wait"])
    if "wait_until" in step:
        week = bool(_mapping(step["wait_until"]).get("days"))
        return timedelta(days=7 if week else 1) + CLOCK_CHANGE
    if "wait_for" in step:
        timeout = _duration(_mapping(step["wait_for"]).get("timeout"))
        return _plus(timeout, _longest([step.get("on_event"), step.get("on_timeout")]))
    if "branch" in step:
        branch = _mapping(step["branch"])
        return _longest([_mapping(case).get("steps") for case in _list(branch.get("cases"))] + [branch.get("else")])
    if "split" in step:
        return _longest([_mapping(variant).get("steps") for variant in _list(_mapping(step["split"]).get("variants"))])
    if any(kind in step for kind in INSTANT_KINDS):
        return timedelta(0)
    return None


def _longest(paths: list) -> timedelta | None:
    spans = [span(path) for path in paths]
    return None if any(part is None for part in spans) else max((part for part in spans if part), default=timedelta(0))


def _plus(first: timedelta | None, second: timedelta | None) -> timedelta | None:
    return None if first is None or second is None else first + second


def _duration(text: Any) -> timedelta | None:
    try:
        return parse_duration(text).approx
    except ValueError:
        return None


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []
