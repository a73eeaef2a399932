"""The store interface the runner talks to (a ``typing.Protocol``).

Two backends implement it, chosen by location (``runner.store.location``):
``SQLiteStore`` (a file) and the PostgreSQL store (a ``postgresql://`` URL).
Each keeps the same guarantees, held by one contract suite over both
(``tests/store_contract/``):

- ``save_contact_state`` is one transaction and never hides outside changes
  (imports) that happened after ``load_contact_state``;
- ``claim_send`` is an atomic insert on the idempotency key: it returns True
  for exactly one caller, ever (a transient failure may be re-claimed);
- ``acquire_lease`` is atomic across processes;
- ``claim_due`` leases each due contact to one holder at a time (until its
  lease expires), so workers sharing the due work never advance one contact
  at once;
- ``due_contacts`` answers from an index on ``wake_at`` (cost grows with
  what is due, not with what is enrolled).

All datetimes are timezone-aware UTC. A failing database raises the
``runner.store.errors.StoreError`` family, never a driver's own exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from runner.core.state import ContactState, SendRecord

SEND_STATES = ("claimed", "sent", "failed", "skipped", "in_doubt")


@dataclass(slots=True)
class ContactRow:
    """A contact as an import delivers it; attributes are merged into what is stored.

    ``changed_at`` is when the change happened (an identify call's timestamp);
    a contact that changes becomes due then (default: the import's ``now``).
    ``snapshot``: the attributes are a source's current values (a contacts
    import line), applied only where they differ from what imports delivered
    last time, so values journeys set since are not reverted; otherwise they
    are changes (identify traits), applied as they are.
    """

    id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    timezone: str | None = None
    anonymous_ids: list[str] = field(default_factory=list)
    changed_at: datetime | None = None
    snapshot: bool = False


@dataclass(slots=True)
class EventRow:
    """An event as an import delivers it: under a contact id, an anonymous id, or both."""

    contact_id: str | None
    anonymous_id: str | None
    name: str
    at: datetime
    properties: dict[str, Any]
    message_id: str


@dataclass(slots=True)
class ProductionCounters:
    """What ``/metrics`` reports from the database, for every process that wrote to it.

    Each figure must come from an index or a counter table: a scrape every few
    seconds may not read the contacts, enrollments, journal or ledger row by row.
    """

    ticks: dict[str, int]  # runs per status (running, ok, stopped, failed)
    decisions: dict[str, int]  # journal decisions per action (send, skip, exit, ...)
    sends: dict[str, int]  # ledger rows per state (claimed, sent, failed, skipped, in_doubt)
    due: int  # contacts whose wake-up has come (the due backlog)
    oldest_due_at: datetime | None  # the earliest wake-up that has come (None: nothing due)
    in_doubt: int  # sends claimed and never confirmed by a run that is gone


@runtime_checkable
class Store(Protocol):
    location: str  # where the data lives, safe to print: a file path, or a URL without its password (redacted)
    read_only: bool  # opened only to look (status, dry runs, history): nothing may be written

    # --- contact state (engine I/O) ---
    def load_contact_state(self, contact_id: str) -> ContactState: ...
    def load_contact_states(self, contact_ids: list[str]) -> dict[str, ContactState]: ...
    def save_contact_state(self, state: ContactState, wake_at: datetime | None,
                           decisions: Iterable[Any] = (), run_id: str | None = None) -> None: ...
    def save_contact_states(self, results: list[tuple[ContactState, datetime | None]],
                            decisions: Iterable[Any] = (), run_id: str | None = None) -> None: ...
    # ``save_contact_states`` in two steps: its rows built now, before any lock, written by the
    # call returned (in one transaction, or the caller's): what a transaction holds is what
    # other workers wait for (SQLite's single writer, PostgreSQL's row locks)
    def prepared_save(self, results: list[tuple[ContactState, datetime | None]],
                      decisions: Iterable[Any] = (), run_id: str | None = None) -> Callable[[], None]: ...
    def contact_history(self, contact_id: str, journey_id: str | None = None) -> list[dict[str, Any]]: ...
    def due_contacts(self, now: datetime, limit: int) -> list[str]: ...
    def due_page(self, now: datetime, limit: int, after: tuple[str, str] | None = None) -> list[tuple[str, str]]: ...

    # --- contact leases: workers sharing the due work (runner.production.tick) ---
    def claim_due(self, now: datetime, holder: str, limit: int, lease_ttl: timedelta,
                  after: tuple[str, str] | None = None) -> list[tuple[str, str]]: ...
    def renew_contacts(self, holder: str, lease_ttl: timedelta) -> int: ...
    def release_contacts(self, holder: str, contact_ids: Iterable[str] | None = None) -> None: ...
    def lease_holders(self, now: datetime | None = None) -> list[str]: ...
    # {"count", "holders", "oldest_expires_at" (datetime or None), "expired"}: for /readyz
    def contact_leases(self, now: datetime) -> dict[str, Any]: ...

    # --- send ledger ---
    def claim_send(self, record: SendRecord, run_id: str) -> bool: ...
    def claim_sends(self, records: list[SendRecord], run_id: str, *, resendable: bool) -> list[bool]: ...
    def mark_handed_over(self, key: str) -> None: ...
    def confirm_send(self, key: str, transport_id: str) -> None: ...
    def confirm_sends(self, delivered: list[tuple[str, str]]) -> None: ...
    def fail_send(self, key: str, error: str, permanent: bool, *, retry_at: datetime | None = None,
                  failed_at: datetime | None = None) -> None: ...
    def requeue_sends(self, keys: Iterable[str] = (), *, since: datetime | None = None,
                      until: datetime | None = None, every: bool = False) -> list[str]: ...
    def skip_send(self, record: SendRecord, reason: str, run_id: str) -> None: ...
    def in_doubt_sends(self, now: datetime | None = None, *, gone_holders: Iterable[str] = (),
                       mark: bool = True) -> list[dict]: ...
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
    def record_templates(self, templates: dict[str, str], now: datetime) -> bool: ...
    def deployed_templates(self) -> dict[str, str] | None: ...
    def deployed(self, journey_id: str, version: int) -> dict | None: ...

    # --- suppressions ---
    def add_suppression(
        self, contact_or_email: str, reason: str, source: str, now: datetime, topic: str | None = None
    ) -> None: ...  # topic: an unsubscribe from that topic only
    def remove_suppression(self, contact_or_email: str) -> bool: ...
    # contact_id, email, reason, at, source, topic (None: a suppression), detail (None: not a bounce)
    def suppressions(self, contact_id: str | None = None) -> list[dict]: ...
    def contacts_by_email(self, emails: list[str]) -> dict[str, list[str]]: ...  # lower-cased address -> ids
    def is_suppressed(self, contact_id: str, at: datetime | None = None) -> str | None: ...

    # --- status ---
    def status_summary(self, now: datetime) -> dict: ...

    # --- what the production tick and deploy plan ask ---
    def lease_holder(self, name: str) -> str | None: ...
    def unfinished_runs(self, recent: int = 50) -> list[dict]: ...
    def retryable_sends(self, now: datetime | None = None) -> list[dict]: ...
    def events_after(
        self, contact_id: str, anonymous_ids: list[str], after_id: int
    ) -> list[tuple[int, str, datetime]]: ...
    def events_after_many(
        self, wanted: list[tuple[str, list[str], int]]
    ) -> dict[str, list[tuple[int, str, datetime]]]: ...
    def wake_at(self, contact_id: str) -> datetime | None: ...
    def in_flight_by_step(self, journey_id: str) -> list[dict]: ...

    # --- journey stats (runner.production.stats): counts the database aggregates ---
    # ``since``/``until``: UTC days 'YYYY-MM-DD' (until exclusive), None for no bound
    def decision_counts(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]: ...
    def send_counts(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]: ...
    def split_outcomes(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]: ...
    def engagement_counts(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]: ...

    # --- what a running service reports (runner.serve.health, runner.serve.metrics) ---
    # ``production_counters``: read at every scrape, so only from indexes and counter tables
    # (SQLite: run_counts (m010), decision_counts and send_counts (m004), the due index on
    # contacts(wake_at, id), sends(state)); cost must not grow with contacts or enrollments.
    def production_counters(self, now: datetime) -> ProductionCounters: ...
    def pending_migrations(self) -> list[str]: ...  # names not applied yet (empty: schema current)
    def lease(self, name: str) -> dict | None: ...  # {"holder", "expires_at" (datetime)} or None

    # --- bulk ingestion (runner.production.ingest) ---
    def transaction(self, durable: bool = False) -> AbstractContextManager[None]: ...
    def set_commit_durability(self, power_safe: bool) -> None: ...
    def write_contacts(self, rows: Iterable[ContactRow], now: datetime) -> int: ...
    def write_events(self, rows: list[EventRow], now: datetime) -> int: ...
    def link_identities(self, links: Iterable[tuple[str, str]], now: datetime) -> None: ...
    def existing_message_ids(self, message_ids: list[str]) -> set[str]: ...

    def close(self) -> None: ...

