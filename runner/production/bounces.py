"""Recording bounces and complaints in the store: one path for provider webhooks and ``journey bounces import``.

A report becomes an event of its contact (``email_bounced``, ``email_soft_bounced``,
``email_complained``; runner.core.bounces) at the report's instant, under an id
made of the provider's id for it, so a retried webhook or a re-imported file is
recognised and counts once. The store suppresses at the event's instant (as for
any imported suppressing event) and the engine honours it from that instant.

The report goes to the exact contact when it carries our ``X-Journey-Key`` and
that contact still has the address that bounced; else to every contact with the
address. A hard bounce or complaint for an address no contact has suppresses the
address itself (``journey suppress list`` shows it); a soft bounce for it is
only counted as unmatched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from runner.core.addresses import email_key
from runner.core.bounces import (
    ADDRESS_SOURCE,
    EVENT_OF,
    HARD,
    SOFT,
    SOFT_LIMIT,
    Bounce,
    SoftBounceRule,
    contact_of_send_key,
    describe,
)
from runner.core.state import ContactState
from runner.core.vocabulary import SUPPRESSING_EVENTS
from runner.store.base import EventRow, Store
from runner.store.codec import to_db_time


@dataclass
class BounceOutcome:
    """What recording a set of reports did (the numbers ``journey bounces import`` prints)."""

    counted: int = 0  # reports new to the store
    duplicates: int = 0  # reports stored before (provider retries, re-imported files)
    unmatched: int = 0  # soft bounces for an address no contact has (nothing stored)
    suppressed: list[str] = field(default_factory=list)  # contacts and addresses suppressed by these reports
    by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # new reports per kind


def record_bounces(store: Store, bounces: Iterable[Bounce], rule: SoftBounceRule, now: datetime,
                   *, dry_run: bool = False) -> BounceOutcome:
    """Store the reports in one durable transaction and say what they did; with ``dry_run``
    only say it (the store may be read-only)."""
    if dry_run:
        return _record(store, list(bounces), rule, now, write=False)
    with store.transaction(durable=True):  # reads and writes together: two deliveries of a report count once
        return _record(store, list(bounces), rule, now, write=True)


def _record(store: Store, bounces: list[Bounce], rule: SoftBounceRule, now: datetime, write: bool) -> BounceOutcome:
    outcome = BounceOutcome()
    reports = list({bounce.event_id(): bounce for bounce in bounces}.values())
    owners = _owners(store, reports)
    rows: list[EventRow] = []
    addresses: dict[str, Bounce] = {}
    for bounce in reports:
        contacts = owners[bounce.event_id()]
        if not contacts:
            if bounce.kind == SOFT:
                outcome.unmatched += 1
            else:
                addresses.setdefault(bounce.address(), bounce)
            continue
        rows += [EventRow(contact_id=contact_id, anonymous_id=None, name=EVENT_OF[bounce.kind], at=bounce.at,
                          properties=bounce.properties(), message_id=f"{bounce.event_id()}>{contact_id}")
                 for contact_id in contacts]
    stored = store.existing_message_ids([row.message_id for row in rows])
    new_rows = [row for row in rows if row.message_id not in stored]
    new_reports = {row.message_id.rsplit(">", 1)[0] for row in new_rows}
    for bounce in reports:
        if bounce.event_id() in new_reports:
            outcome.counted += 1
            outcome.by_kind[bounce.kind] += 1
        elif owners[bounce.event_id()]:
            outcome.duplicates += 1
    states = store.load_contact_states(sorted({row.contact_id for row in new_rows if row.contact_id}))
    new_rows += _soft_limit_rows(states, new_rows, rule)
    outcome.suppressed = [contact_id for contact_id, state in sorted(states.items())
                          if state.suppressed is None and _suppresses(new_rows, contact_id)]
    new_addresses = _unsuppressed_addresses(store, addresses)
    outcome.counted += len(new_addresses)
    for bounce in new_addresses.values():
        outcome.by_kind[bounce.kind] += 1
    outcome.duplicates += len(addresses) - len(new_addresses)
    outcome.suppressed += sorted(new_addresses)
    if write:
        if new_rows:
            store.write_events(new_rows, now)
        for address, bounce in sorted(new_addresses.items()):
            reason = SUPPRESSING_EVENTS[EVENT_OF[bounce.kind]]
            store.add_suppression(address, reason, f"{ADDRESS_SOURCE}{describe(bounce.properties())}", bounce.at)
    return outcome


def _owners(store: Store, reports: list[Bounce]) -> dict[str, list[str]]:
    """The contacts each report is about (by its event id): the send key's contact when it
    still has the address, else every contact with the address."""
    by_email = store.contacts_by_email([bounce.recipient for bounce in reports])
    keyed = {bounce.event_id(): contact_of_send_key(bounce.send_key) for bounce in reports if bounce.send_key}
    exact = store.load_contact_states(sorted({cid for cid in keyed.values() if cid}))
    owners: dict[str, list[str]] = {}
    for bounce in reports:
        contact_id = keyed.get(bounce.event_id())
        state = exact.get(contact_id) if contact_id else None
        email = state.contact.email if state is not None else None
        if email_key(email) == bounce.address() and contact_id:
            owners[bounce.event_id()] = [contact_id]
        else:
            owners[bounce.event_id()] = by_email.get(bounce.address(), [])
    return owners


def _soft_limit_rows(states: dict[str, ContactState], new_rows: list[EventRow], rule: SoftBounceRule) -> list[EventRow]:
    """An ``email_bounced`` event at the first soft bounce, from the earliest new one on, that makes
    the limit within the window, for each contact not suppressed by then. New reports late for
    their instant (out of order) still suppress at the instant the limit was reached; a contact an
    operator lifted the suppression of is suppressed again only by soft bounces counted anew, as
    the engine does. Its id is the contact and the instant: recording the same reports again
    derives nothing new."""
    soft_name = EVENT_OF[SOFT]
    incoming: dict[str, list[EventRow]] = defaultdict(list)
    for row in new_rows:
        if row.name == soft_name and row.contact_id:
            incoming[row.contact_id].append(row)
    derived = []
    for contact_id, arrived in sorted(incoming.items()):
        state = states.get(contact_id)
        stored = [event for event in state.events if event.name == soft_name] if state else []
        times = sorted({event.at for event in stored} | {row.at for row in arrived})
        earliest_new = min(row.at for row in arrived)
        reached = next(((at, count) for at in times if at >= earliest_new
                        and (count := rule.reached(times, at)) is not None), None)
        if reached is None:
            continue
        at, count = reached
        if state is not None and state.suppressed_by(at) is not None:
            continue  # already suppressed then: nothing to add
        last = next((row.properties for row in arrived if row.at == at), None) or next(
            (event.properties for event in stored if event.at == at), {})
        properties = {"bounce": SOFT_LIMIT, "count": count, "within": str(rule.within), "recipient": last.get("recipient"),
                      "source": last.get("source")}
        if last.get("diagnostic"):
            properties["diagnostic"] = last["diagnostic"]
        derived.append(EventRow(contact_id=contact_id, anonymous_id=None, name=EVENT_OF[HARD], at=at,
                                properties={k: v for k, v in properties.items() if v is not None},
                                message_id=f"soft-bounces:{contact_id}:{to_db_time(at)}"))
    return derived


def _suppresses(rows: list[EventRow], contact_id: str) -> bool:
    return any(row.contact_id == contact_id and row.name in SUPPRESSING_EVENTS for row in rows)


def _unsuppressed_addresses(store: Store, addresses: dict[str, Bounce]) -> dict[str, Bounce]:
    """The addresses (no contact has them) not suppressed yet, so a retried report does not move
    the suppression's instant. No event records a report for an address, so one imported again
    after ``journey suppress remove`` of the address suppresses it again."""
    if not addresses:
        return {}
    suppressed = {row["email"] for row in store.suppressions() if row.get("email") and row.get("topic") is None}
    return {address: bounce for address, bounce in addresses.items() if address not in suppressed}


@dataclass(frozen=True)
class Suppression:
    """A contact's suppression in effect, with the bounce or complaint that made it (``detail``;
    None for other suppressions): what ``journey history`` shows under the decisions."""

    reason: str
    at: datetime | None
    detail: str | None


def suppression_of(state: ContactState) -> Suppression | None:
    if state.suppressed is None:
        return None
    detail = None
    for event in state.events:
        if event.at == state.suppressed_at and event.name in SUPPRESSING_EVENTS:
            detail = describe(event.properties)
            if detail:
                break
    return Suppression(state.suppressed, state.suppressed_at, detail)
