"""Runtime state the engine reads and writes: contacts, events, enrollments, sends.

These are plain mutable dataclasses with no I/O. The engine receives a
``ContactState`` and returns an updated one with its decisions; the SQLite
store and the in-memory simulator both persist exactly these objects, which is
what makes a dry run predict production.

All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.core.vocabulary import STEP_STOP, step_stop


@dataclass(frozen=True, slots=True)
class Event:
    """Something a contact did (or that happened to it), at an instant."""

    name: str
    at: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    # Set on events recorded for an anonymous visitor; they count for the
    # contact from the instant an ``identify`` event links that id.
    anonymous_id: str | None = None


@dataclass(slots=True)
class Contact:
    """A known person: attributes (nested dicts allowed) and a time zone."""

    id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    timezone: str | None = None
    anonymous_ids: list[str] = field(default_factory=list)

    @property
    def email(self) -> str | None:
        return self.attributes.get("email")


# Enrollment.status values
ACTIVE = "active"  # running or waiting inside a stage
IDLE = "idle"  # stage steps done; waits for another stage's entry, an exit or the goal
EXITED = "exited"  # left (exit condition, exit step, goal, removed)


@dataclass(slots=True)
class Wait:
    """What an enrollment is blocked on: a time, or an event with a timeout."""

    until: datetime | None = None  # wake at this instant
    event: str | None = None  # for wait_for: the event name awaited
    step: str | None = None  # the wait_for step id whose paths continue


@dataclass(slots=True)
class Enrollment:
    """One stay of a contact in one journey, pinned to the version it entered."""

    id: str  # stable: f"{contact}:{journey}:{seq}"
    contact_id: str
    journey_id: str
    version: int
    entered_at: datetime
    stage: str
    stage_seq: int = 1  # increases on every stage entry; part of send keys
    cursor: str | None = None  # id of the next step to run in this stage; None = stage done
    status: str = ACTIVE
    wait: Wait | None = None
    due_at: datetime | None = None  # next instant the engine must look at it
    exit_reason: str | None = None
    exited_at: datetime | None = None
    goal_at: datetime | None = None
    variant: dict[str, str] = field(default_factory=dict)  # split step id -> variant name
    holdout: bool = False
    # the event that started or woke the steps now running (a stage entry by event, a wait_for
    # answer), which their templates see as ``event``; None when no event did (docs/language.md)
    trigger: Event | None = None


@dataclass(frozen=True, slots=True)
class SendRecord:
    """A send decision in the ledger; ``key`` is the idempotency key."""

    key: str  # f"{enrollment_id}/{stage_seq}/{step_id}"
    contact_id: str
    journey_id: str
    version: int
    step_id: str
    at: datetime  # engine (scheduled) instant; transport time is recorded separately
    kind: str = "email"  # email | webhook


@dataclass(slots=True)
class ContactState:
    """Everything the engine needs to know about one contact.

    ``clock`` is the instant up to which this contact has been processed;
    ``memory`` keeps condition truth values for edge-triggered entries
    (``segment becomes true``) and last seen attribute values.
    """

    contact: Contact
    events: list[Event] = field(default_factory=list)  # sorted by .at
    enrollments: dict[str, Enrollment] = field(default_factory=dict)  # journey id -> current
    past_enrollments: list[Enrollment] = field(default_factory=list)
    sends: list[SendRecord] = field(default_factory=list)
    suppressed: str | None = None  # reason (runner.core.vocabulary.SUPPRESSION_REASONS) or None
    suppressed_at: datetime | None = None  # from when (None: from the start); emails before it still go
    # topic opt-outs (unsubscribes): topic, or "*" for every marketing topic -> from when (None: from the start)
    opt_outs: dict[str, datetime | None] = field(default_factory=dict)
    clock: datetime | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    enrollment_seq: int = 0

    def suppress(self, reason: str, at: datetime | None) -> None:
        """Record a suppression effective from ``at``; the earliest one is kept."""
        if self.suppressed is None or (self.suppressed_at is not None and (at is None or at < self.suppressed_at)):
            self.suppressed, self.suppressed_at = reason, at

    def suppressed_by(self, at: datetime) -> str | None:
        """The suppression reason in effect at ``at``, or None."""
        if self.suppressed is None or (self.suppressed_at is not None and self.suppressed_at > at):
            return None
        return self.suppressed

    def opt_out(self, topic: str, at: datetime | None) -> None:
        """Record an unsubscribe from ``topic`` ("*": every marketing topic) effective
        from ``at``; the earliest one is kept, as for suppressions."""
        since = self.opt_outs.get(topic, at)
        if topic not in self.opt_outs or (since is not None and (at is None or at < since)):
            self.opt_outs[topic] = at

    def opt_in(self, topic: str, at: datetime) -> None:
        """Lift the opt-out of ``topic`` ("*": the unsubscribe from everything, and a ``suppress``
        step's stop: the contact asked for everything again) from ``at`` on."""
        lifted = [topic] + ([key for key in self.opt_outs if key.startswith(STEP_STOP)] if topic == "*" else [])
        for key in lifted:
            since = self.opt_outs.get(key, at)
            if key in self.opt_outs and (since is None or since <= at):
                del self.opt_outs[key]

    def stop_marketing(self, reason: str, at: datetime) -> None:
        """A ``suppress`` step: every marketing topic stops from ``at``, for ``reason`` (``sunset``);
        kept as the opt-out ``*:<reason>`` (runner.core.vocabulary.step_stop), so the stores keep and
        load it as they do any opt-out. Transactional topics keep flowing."""
        self.opt_out(step_stop(reason), at)

    def opted_out(self, topic: str, at: datetime) -> bool:
        """Whether ``topic`` itself is opted out at ``at`` (not counting "*")."""
        if topic not in self.opt_outs:
            return False
        since = self.opt_outs[topic]
        return since is None or since <= at

    def email_stop(self, topic: str, marketing: bool, at: datetime) -> str | None:
        """Why an email of ``topic`` may not go at ``at`` (the earliest stop in effect), or None.

        A suppression (bounce, complaint, manual) stops every email; an unsubscribe,
        from one topic or from all ("*"), and a ``suppress`` step ("*:<reason>") stop
        marketing topics only.
        """
        stops: list[tuple[datetime | None, str]] = []
        reason = self.suppressed_by(at)
        if reason is not None and (marketing or reason != "unsubscribed"):  # "unsubscribed": stored before topics
            stops.append((self.suppressed_at, f"suppressed: {reason}"))
        if marketing and self.opt_outs:  # most contacts opted out of nothing: no look at all
            if self.opted_out("*", at):
                stops.append((self.opt_outs["*"], "suppressed: unsubscribed"))
            if topic != "*" and self.opted_out(topic, at):
                stops.append((self.opt_outs[topic], f"suppressed: unsubscribed from {topic}"))
            for key, since in self.opt_outs.items():
                if key.startswith(STEP_STOP) and (since is None or since <= at):  # a suppress step's (sunset)
                    stops.append((since, f"suppressed: {key[len(STEP_STOP):]}"))
        if not stops:
            return None
        return min(stops, key=lambda stop: (stop[0] is not None, stop[0] or at))[1]
