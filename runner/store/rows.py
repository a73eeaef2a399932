"""Rows shared by both stores: how contact state, decisions, enrollments and suppressions map
to table rows and back, so SQLiteStore and PostgresStore store and answer alike (the store
contract suite holds them to it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from runner.core.addresses import email_key
from runner.core.bounces import ADDRESS_SOURCE
from runner.core.bounces import describe as describe_bounce
from runner.core.problems import JourneyError
from runner.core.state import Enrollment, Event, SendRecord, Wait
from runner.core.vocabulary import ALL_TOPICS, UNSUBSCRIBED, step_stop, step_stop_reason
from runner.store.codec import from_db_time, from_json, to_db_time, to_json

INTERRUPTED_RESENDABLE = ("interrupted before confirmation; sent again "
                          "(an idempotent transport, or never handed to the transport)")


# sends that count as (possibly) delivered; the engine uses them for caps
COUNTED_SEND_STATES = ("claimed", "sent", "in_doubt")


# What a claim does to a key already in the ledger, on both stores (the end of their claims'
# INSERT): it retakes a failed send that may be retried, and wins nothing else; the keys won
# come back.
CLAIM_CONFLICT = """
ON CONFLICT (key) DO UPDATE SET
    state = 'claimed', claimed_at = excluded.claimed_at,
    attempts = sends.attempts + 1, run_id = excluded.run_id, error = NULL,
    retryable = excluded.retryable
WHERE sends.state = 'failed' AND sends.retryable = 1
RETURNING key
"""


def distinct_claims(records: list[SendRecord]) -> tuple[list[SendRecord], Callable[[set[str]], list[bool]]]:
    """A batch of claims as one statement takes them: each key once, at its first place (an
    upsert touches a row once a statement); and what tells, from the keys that statement won,
    which of ``records`` won: a key at its first place only, as one claim after the other would."""
    first = {record.key: index for index, record in reversed(list(enumerate(records)))}

    def won(keys: set[str]) -> list[bool]:
        return [record.key in keys and first[record.key] == index for index, record in enumerate(records)]

    return [records[index] for index in sorted(first.values())], won


def collect_events_after(rows: Iterable[tuple[int, str, Any, str | None, str | None]],
                          owners: dict[str, list[tuple[str, int]]],
                          found: dict[str, list[tuple[int, str, datetime]]]) -> None:
    """Each event row to every contact of the batch it belongs to (by its contact id or an
    anonymous id) whose ``after`` row id it is past; a row is given to a contact once."""
    for row_id, message_id, at, contact_id, anonymous_id in rows:
        instant = at if isinstance(at, datetime) else from_db_time(at)
        given: set[str] = set()
        for owner in (contact_id, anonymous_id):
            for target, after_id in owners.get(owner, ()) if owner is not None else ():
                if row_id > after_id and target not in given:
                    given.add(target)
                    found[target].append((row_id, message_id, instant))


def stops_of(contacts: dict[str, tuple[set[str], str | None]], rows: list[tuple[Any, ...]]
             ) -> tuple[dict[str, tuple[str, datetime]], dict[str, dict[str, datetime | None]]]:
    """Split suppression rows ``(contact_id, email, reason, at, topic)``, oldest first, among
    ``contacts`` (id -> (its ids, anonymous ones included; its lower-cased address)): each
    contact's earliest suppression (reason, at), and its topic opt-outs (topic -> the earliest
    instant). Both stores."""
    found: dict[str, tuple[str, datetime]] = {}
    opt_outs: dict[str, dict[str, datetime | None]] = {}
    for contact_id, (ids, address) in contacts.items():
        for target_id, email, reason, at, topic in rows:
            if target_id in ids or (email is not None and email == address):
                if topic is not None:
                    opt_outs.setdefault(contact_id, {}).setdefault(topic, at)
                elif contact_id not in found:
                    found[contact_id] = (reason, at)
    return found, opt_outs


def stop_in_force(suppression: tuple[str, datetime] | None, opt_outs: dict[str, datetime | None],
                  at: datetime | None) -> str | None:
    """The reason a contact gets no email at ``at`` (None: now), from its earliest suppression
    and its topic opt-outs (as :func:`stops_of` splits them): an unsubscribe from every marketing
    topic counts as a suppression from its instant, whichever came first wins."""
    for topic, since in opt_outs.items():  # the unsubscribe from every marketing topic, a suppress step's stop
        reason = UNSUBSCRIBED if topic == ALL_TOPICS else step_stop_reason(topic)
        if reason is not None and since is not None and (suppression is None or since < suppression[1]):
            suppression = (reason, since)
    if suppression is None or (at is not None and suppression[1] > at):
        return None
    return suppression[0]


def step_stop_rows(decisions: Iterable[Any]) -> list[tuple[str, str, str, str, str, str]]:
    """The suppression rows ``(target, contact_id, reason, at, source, topic)`` of the ``suppress``
    decisions among ``decisions``: a suppress step's stop of every marketing topic, kept as the
    opt-out ``*:<reason>`` and written in the transaction that journals the decision. Both stores."""
    rows = []
    for decision in decisions:
        if decision.action == "suppress":
            topic = step_stop(decision.reason)
            rows.append((suppression_target(decision.contact, topic)[0], decision.contact, decision.reason,
                         to_db_time(decision.at), f"step:{decision.journey}/{decision.step}", topic))
    return rows


def suppression_details(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Suppression rows whose ``detail`` column holds the suppressing event's properties (JSON
    text) with ``detail`` as the bounce's description (runner.core.bounces), else None; an
    address's bounce suppression (source ``bounce:<detail>``) gets source ``bounce``. Both stores."""
    for row in rows:
        row["detail"] = describe_bounce(from_json(row["detail"], {})) if row["detail"] else None
        if row["source"].startswith(ADDRESS_SOURCE):  # an address no contact has (runner.production.bounces)
            row["source"], row["detail"] = ADDRESS_SOURCE.rstrip(":"), row["source"][len(ADDRESS_SOURCE):]
    return rows


def address_key(attributes: dict[str, Any]) -> str | None:
    """The ``contacts.email`` column of these attributes (runner.core.addresses)."""
    return email_key(attributes.get("email"))


def suppression_topic(reason: str, topic: str | None) -> str | None:
    """The topic a suppression row records: a topic opt-out is an unsubscribe (from that
    topic); ``unsubscribed`` without one is the opt-out of every marketing topic ("*"); other
    reasons stop every email (None). Both stores' ``add_suppression``."""
    if topic is not None and reason != UNSUBSCRIBED:
        raise JourneyError(f"a topic opt-out is an unsubscribe: reason {reason!r} stops every email, not a topic")
    return topic if topic is not None else ALL_TOPICS if reason == UNSUBSCRIBED else None


def suppression_target(contact_or_email: str, topic: str | None = None) -> tuple[str, str | None, str | None]:
    """(target key, contact_id, email): anything with an ``@`` is an email address.
    A topic opt-out has a target of its own (``topic:<topic>:contact:<id>``), beside
    the contact's suppression (``contact:<id>``)."""
    value = contact_or_email.strip()
    if not value:
        raise JourneyError("give a contact id or an email address to suppress")
    prefix = f"topic:{topic}:" if topic is not None else ""
    if "@" in value:
        address = email_key(value)
        return f"{prefix}email:{address}", None, address
    return f"{prefix}contact:{value}", value, None


# What the journal keeps of a decision's detail: what a reader needs to follow the
# timeline. Attribute snapshots and rendered content stay out (the ledger and the
# outbox/mail server have the message). A send's ``event`` stays in: a retry renders
# the event its templates saw at the decision (runner.production.tick).
JOURNAL_DETAIL = ("until", "variant", "set", "add_score", "event")


def decision_row(decision: Any, run_id: str | None) -> dict[str, Any]:
    detail = {name: decision.detail[name] for name in JOURNAL_DETAIL if name in decision.detail}
    return {
        "contact_id": decision.contact, "at": to_db_time(decision.at), "journey_id": decision.journey,
        "version": decision.version, "stage": decision.stage, "step": decision.step,
        "action": decision.action, "reason": decision.reason, "key": decision.key,
        "detail": to_json(detail), "run_id": run_id,
    }


def same_row(stored: dict[str, Any] | None, row: dict[str, Any]) -> bool:
    """Does the stored row already hold every value of ``row``?"""
    return stored is not None and all(stored.get(column) == value for column, value in row.items())


def enrollment_to_row(enrollment: Enrollment) -> dict[str, Any]:
    wait = enrollment.wait
    return {
        "id": enrollment.id,
        "contact_id": enrollment.contact_id,
        "journey_id": enrollment.journey_id,
        "version": enrollment.version,
        "stage": enrollment.stage,
        "stage_seq": enrollment.stage_seq,
        "cursor": enrollment.cursor,
        "status": enrollment.status,
        "wait": None if wait is None else to_json(_wait_data(wait, enrollment.trigger)),
        "due_at": to_db_time(enrollment.due_at),
        "entered_at": to_db_time(enrollment.entered_at),
        "exited_at": to_db_time(enrollment.exited_at),
        "exit_reason": enrollment.exit_reason,
        "goal_at": to_db_time(enrollment.goal_at),
        "variant": to_json(enrollment.variant),
        "holdout": int(enrollment.holdout),
    }


def _wait_data(wait: Wait, trigger: Event | None) -> dict[str, Any]:
    """The ``wait`` column: what the enrollment waits for and, when an event started or woke
    its steps, that event (``trigger``), so a step due after the wait renders it after a
    restart. An enrollment keeps its trigger only while it waits (idle or exited: none)."""
    data: dict[str, Any] = {"until": to_db_time(wait.until), "event": wait.event, "step": wait.step}
    if trigger is not None:
        data["trigger"] = {"name": trigger.name, "at": to_db_time(trigger.at), "properties": trigger.properties}
    return data


def enrollment_from_row(row: dict[str, Any]) -> Enrollment:
    wait_data = from_json(row["wait"])
    wait = None
    trigger = None
    if wait_data is not None:
        wait = Wait(
            until=from_db_time(wait_data.get("until")),
            event=wait_data.get("event"),
            step=wait_data.get("step"),
        )
        stored = wait_data.get("trigger")  # absent from rows written before events reached templates
        if stored is not None:
            trigger = Event(stored["name"], from_db_time(stored["at"]), stored.get("properties") or {})
    return Enrollment(
        id=row["id"],
        contact_id=row["contact_id"],
        journey_id=row["journey_id"],
        version=row["version"],
        entered_at=from_db_time(row["entered_at"]),
        stage=row["stage"],
        stage_seq=row["stage_seq"],
        cursor=row["cursor"],
        status=row["status"],
        wait=wait,
        due_at=from_db_time(row["due_at"]),
        exit_reason=row["exit_reason"],
        exited_at=from_db_time(row["exited_at"]),
        goal_at=from_db_time(row["goal_at"]),
        variant=from_json(row["variant"], {}),
        holdout=bool(row["holdout"]),
        trigger=trigger,
    )
