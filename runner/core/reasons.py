"""Why a step was skipped or deferred, by the short names scenarios use.

The engine explains each ``skip`` and ``defer`` decision in words
(``frequency cap (journey 2 per 7d)``, ``suppressed: bounced``); a scenario
says ``skipped: {step: nurture, reason: cap}``. One table maps each short name
to the engine's texts it stands for, so the scenario schema's enum, the docs
(docs/testing.md) and the checker cannot drift apart (tests/test_scenario_forms.py
checks the schema and the docs against it, and that every skip and deferral of a two-month sample simulation has a name).
"""

from __future__ import annotations

from runner.core.localtime import OUTSIDE_WINDOW, QUIET_HOURS

# short name -> the engine's reason text, or its prefix when it ends with ":" or " ("
SKIP_REASONS: dict[str, str] = {
    "condition": "condition false:",  # the step's `if` was false
    "holdout": "holdout",  # the contact is in a split's holdout
    "suppressed": "suppressed:",  # any suppression or unsubscribe in effect
    "unsubscribed": "suppressed: unsubscribed",  # from everything or from the step's topic
    "bounced": "suppressed: bounced",
    "complained": "suppressed: complained",
    "manual": "suppressed: manual",
    "no_email": "no email address",
    "cap": "frequency cap (",  # a frequency cap reached, with `on_cap: skip`
}
DEFER_REASONS: dict[str, str] = {
    "send_window": OUTSIDE_WINDOW,
    "quiet_hours": QUIET_HOURS,
    "cap": "frequency cap (",  # a frequency cap reached, with `on_cap: defer` (the default)
}


def reason_matches(actual: str, name: str, table: dict[str, str]) -> bool:
    """Whether the engine's ``actual`` reason is one ``name`` (a key of ``table``) stands for."""
    text = table[name]
    if text.endswith((":", "(")):
        return actual.startswith(text)
    return actual == text or actual.startswith(f"{text} ")  # "unsubscribed" also covers "… from <topic>"


def reason_name(actual: str, table: dict[str, str]) -> str | None:
    """The most specific short name for the engine's ``actual`` reason (None when none fits)."""
    fitting = [name for name in table if reason_matches(actual, name, table)]
    return max(fitting, key=lambda name: len(table[name]), default=None)
