"""The store interface the runner talks to (a ``typing.Protocol``).

Production uses ``SQLiteStore``; a server database can take over by
implementing the same methods with the same guarantees:

- ``save_contact_state`` is one transaction and never hides outside changes
  (imports) that happened after ``load_contact_state``;
- ``claim_send`` is an atomic insert on the idempotency key: it returns True
  for exactly one caller, ever (a transient failure may be re-claimed);
- ``acquire_lease`` is atomic across processes;
- ``due_contacts`` answers from an index on ``wake_at`` (cost grows with
  what is due, not with what is enrolled).

All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from runner.state import ContactState, SendRecord

SUPPRESSION_REASONS = ("unsubscribed", "bounced", "complained", "manual")
SEND_STATES = ("claimed", "sent", "failed", "skipped", "in_doubt")


@dataclass(slots=True)
class ContactRow:
    """A contact as an import delivers it; attributes are merged into what is stored.

    ``changed_at`` is when the change happened (an identify call's timestamp);
    a contact that changes becomes due then (default: the import's ``now``).
    """

    id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    timezone: str | None = None
    anonymous_ids: list[str] = field(default_factory=list)
    changed_at: datetime | None = None


@dataclass(slots=True)
class EventRow:
    """An event as an import delivers it: under a contact id, an anonymous id, or both."""

    contact_id: str | None
    anonymous_id: str | None
    name: str
    at: datetime
    properties: dict[str, Any]
    message_id: str


@runtime_checkable
class Store(Protocol):
    # --- contact state (engine I/O) ---
    def load_contact_state(self, contact_id: str) -> ContactState: ...
    def save_contact_state(self, state: ContactState, wake_at: datetime | None) -> None: ...
    def due_contacts(self, now: datetime, limit: int) -> list[str]: ...

    # --- send ledger ---
    def claim_send(self, record: SendRecord, run_id: str) -> bool: ...
    def confirm_send(self, key: str, transport_id: str) -> None: ...
    def fail_send(self, key: str, error: str, permanent: bool) -> None: ...
    def skip_send(self, record: SendRecord, reason: str, run_id: str) -> None: ...
    def in_doubt_sends(self, now: datetime | None = None) -> list[dict]: ...
    def resolve_in_doubt(self, key: str, outcome: Literal["sent", "failed"]) -> None: ...

    # --- leases and runs ---
    def acquire_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool: ...
    def renew_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool: ...
    def release_lease(self, name: str, holder: str) -> None: ...
    def start_run(self, holder: str, now: datetime) -> str: ...
    def finish_run(self, run_id: str, counts: dict, status: str, now: datetime) -> None: ...

    # --- deployments ---
    def record_deployment(
        self, journey_id: str, version: int, content_hash: str, content: str, now: datetime
    ) -> bool: ...
    def deployments(self) -> list[dict]: ...
    def deployed(self, journey_id: str, version: int) -> dict | None: ...

    # --- suppressions ---
    def add_suppression(
        self, contact_or_email: str, reason: str, source: str, now: datetime
    ) -> None: ...
    def remove_suppression(self, contact_or_email: str) -> bool: ...
    def suppressions(self) -> list[dict]: ...
    def is_suppressed(self, contact_id: str) -> str | None: ...

    # --- status ---
    def status_summary(self, now: datetime) -> dict: ...

    # --- what the production tick and deploy plan ask ---
    def lease_holder(self, name: str) -> str | None: ...
    def unfinished_runs(self, recent: int = 50) -> list[dict]: ...
    def retryable_sends(self) -> list[dict]: ...
    def events_after(
        self, contact_id: str, anonymous_ids: list[str], after_id: int
    ) -> list[tuple[int, str, datetime]]: ...
    def wake_at(self, contact_id: str) -> datetime | None: ...
    def in_flight_by_step(self, journey_id: str) -> list[dict]: ...

    # --- bulk ingestion (runner.ingest) ---
    def transaction(self, durable: bool = False) -> AbstractContextManager[None]: ...
    def set_commit_durability(self, power_safe: bool) -> None: ...
    def write_contacts(self, rows: Iterable[ContactRow], now: datetime) -> int: ...
    def write_events(self, rows: list[EventRow], now: datetime) -> int: ...
    def link_identities(self, links: Iterable[tuple[str, str]], now: datetime) -> None: ...
    def existing_message_ids(self, message_ids: list[str]) -> set[str]: ...

    def close(self) -> None: ...

