"""The runner's own names: built-in events and their effects, decision actions, suppression reasons.

One list, so the parts cannot drift apart: the engine applies the effects,
the store links identities and records suppressions with them, the validator
lets journeys use the built-in names undeclared, and a test checks that the
docs (docs/data.md, docs/simulate.md) list exactly these names.
"""

from __future__ import annotations

from typing import Any

# --- events with an effect of their own

IDENTITY_EVENTS = ("identify", "alias")  # link an anonymous id to the contact from their instant
TRAIT_EVENTS = ("identify",)  # properties are traits, merged into the contact's attributes
# event name -> the suppression reason it records, effective from the event's instant
SUPPRESSING_EVENTS = {"unsubscribed": "unsubscribed", "email_bounced": "bounced", "email_complained": "complained"}

# --- events with no effect of their own that journeys may use without declaring them

DELIVERY_EVENTS = ("email_sent", "email_delivered", "email_opened", "email_clicked")  # as the email provider reports them
# a transient delivery failure (runner.core.bounces): counted; the one that reaches project.yaml's
# bounces.soft limit suppresses from its instant (reason "bounced"), in the engine and in the store
SOFT_BOUNCED = "email_soft_bounced"
RESUBSCRIBED = "resubscribed"  # with a ``topic`` property: lifts that topic's opt-out; else an event like any other
PAGE_EVENTS = {"page": "page_viewed", "screen": "screen_viewed"}  # what Segment page/screen calls are stored as

BUILTIN_EVENTS = frozenset({
    *IDENTITY_EVENTS, *SUPPRESSING_EVENTS, *DELIVERY_EVENTS, SOFT_BOUNCED, RESUBSCRIBED, *PAGE_EVENTS.values(),
})
BUILTIN_ATTRIBUTES = frozenset({"id", "email", "timezone", "lifecycle_stage", "anonymous_ids"})

# --- suppressions and topic opt-outs

MANUAL = "manual"
UNSUBSCRIBED = "unsubscribed"  # the one reason that stops only marketing topics: an opt-out, not a suppression
SUPPRESSION_REASONS = (*SUPPRESSING_EVENTS.values(), MANUAL)
ALL_TOPICS = "*"  # the opt-out of an unsubscribe from everything: every marketing topic
STEP_STOP = "*:"  # a ``suppress`` step's stop of every marketing topic is kept as the opt-out "*:<reason>"


def step_stop(reason: str) -> str:
    """The opt-out key a ``suppress`` step records: every marketing topic, for ``reason`` (``*:sunset``).
    Topic names cannot hold a colon, so it never clashes with a topic's opt-out."""
    return f"{STEP_STOP}{reason}"


def step_stop_reason(topic: str) -> str | None:
    """The reason of a ``suppress`` step's stop (``*:sunset`` -> ``sunset``); None for a topic's opt-out."""
    return topic[len(STEP_STOP):] if topic.startswith(STEP_STOP) else None


def event_topic(properties: dict[str, Any]) -> str:
    """The topic an ``unsubscribed``/``resubscribed`` event names (its ``topic``
    property); ``*`` (every marketing topic) when it names none."""
    topic = properties.get("topic")
    return topic if isinstance(topic, str) and topic else ALL_TOPICS

# --- decisions

# every ``Decision.action`` the engine takes (docs/simulate.md explains each)
ACTIONS = (
    "enter", "move", "wait", "wait_for", "event_path", "timeout_path", "branch", "split", "holdout",
    "update", "send", "webhook", "skip", "defer", "exit", "goal", "migrate", "halt", "suppress",
)
SEND_ACTIONS = ("send", "webhook")  # decisions that deliver something, under an idempotency key
SEND_FAILED = "send_failed"  # a timeline's send or webhook production could not build (not an engine decision)
TIMELINE_ACTIONS = (*ACTIONS, SEND_FAILED)
