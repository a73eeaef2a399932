"""A contact's topic opt-outs, read and changed from the unsubscribe link (store functions).

Every change is an event, as an import would deliver it: ``unsubscribed`` with the
topic (``*``: every marketing topic) or ``resubscribed`` with the topic. So the store
records the opt-out (``journey suppress list``, ``journey history``: reason and source)
and wakes the contact, the engine applies it at the event's instant, and a simulation
given the same events decides the same. These functions run on the store's thread
(``StoreAccess``); a change is committed before the HTTP answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from runner.core.vocabulary import ALL_TOPICS, RESUBSCRIBED, UNSUBSCRIBED, step_stop_reason
from runner.store.base import EventRow, Store
from runner.store.codec import from_db_time


@dataclass(frozen=True)
class Preferences:
    """What a contact has opted out of, now."""

    everything: bool  # unsubscribed from every marketing topic
    topics: frozenset[str]  # marketing topics opted out of one by one

    def receives(self, topic: str) -> bool:
        return not self.everything and topic not in self.topics


def preferences(store: Store, contact_id: str, now: datetime) -> Preferences:
    """The contact's opt-outs in effect at ``now`` (by its id, anonymous ids or address)."""
    topics = {row["topic"] for row in store.suppressions(contact_id)
              if row["topic"] is not None and from_db_time(row["at"]) <= now}
    stopped = {topic for topic in topics if step_stop_reason(topic) is not None}  # a sunset: every marketing topic
    return Preferences(ALL_TOPICS in topics or bool(stopped), frozenset(topics - {ALL_TOPICS} - stopped))


def unsubscribe(store: Store, contact_id: str, topic: str, now: datetime, source: str) -> bool:
    """Opt ``contact_id`` out of ``topic`` ("*": every marketing topic) from ``now``;
    False (and nothing written) when it already is: a repeated click changes nothing."""
    current = preferences(store, contact_id, now)
    if current.everything or topic in current.topics:
        return False
    _record(store, contact_id, [(UNSUBSCRIBED, topic)], now, source)
    return True


def save_preferences(store: Store, contact_id: str, wanted: Iterable[str], marketing: Iterable[str],
                     now: datetime, source: str) -> list[str]:
    """Make the contact receive exactly the ``wanted`` marketing topics (of ``marketing``);
    the topics newly opted out of (for ``/metrics``).

    An unsubscribe from everything gives way to per-topic opt-outs once any topic is
    wanted; with none wanted it stays as it is (it already stops them all).
    """
    wanted = set(wanted)
    current = preferences(store, contact_id, now)
    if current.everything and not wanted:
        return []
    changes = [(RESUBSCRIBED, ALL_TOPICS)] if current.everything else []
    for topic in sorted(set(marketing)):
        if topic in wanted and topic in current.topics:
            changes.append((RESUBSCRIBED, topic))
        elif topic not in wanted and topic not in current.topics:
            changes.append((UNSUBSCRIBED, topic))
    if changes:
        _record(store, contact_id, changes, now, source)
    return [topic for name, topic in changes if name == UNSUBSCRIBED]


def _record(store: Store, contact_id: str, changes: list[tuple[str, str]], now: datetime, source: str) -> None:
    """The changes as events at ``now``, with message ids that name where they came from."""
    store.write_events([
        EventRow(contact_id, None, name, now, {"topic": topic}, f"{source}-{uuid.uuid4().hex}")
        for name, topic in changes
    ], now)
