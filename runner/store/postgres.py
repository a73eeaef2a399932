"""``PostgresStore``: the runner's state in one PostgreSQL database (psycopg 3 and a pool).

The scale-out backend: any number of ``journey run`` and ``journey serve``
processes on any number of machines share one database. Same contract as
``SQLiteStore`` (``runner.store.base``), same answers (the contract tests and
``journey status``/``journey stats`` agree); what differs is how the guarantees
are kept when writers really run at once:

- a save locks its contacts (``SELECT … FOR UPDATE``, in id order) before it
  reads what changed since the load, so an import waits for the save or the save
  sees the import; ingestion (events, contacts, identity links) is serialised by
  a transaction-level advisory lock, so event ids are handed out in commit order
  and "events above the id seen at load" never misses one;
- a claim is ``INSERT … ON CONFLICT DO … RETURNING``: exactly one caller wins;
- a batch load reads in one ``REPEATABLE READ`` snapshot;
- the due query is an index range scan on ``contacts_due (wake_at, id)``.

The location is a URL: ``postgresql://user@host:5432/db?schema=name`` (``schema``:
the tables' schema, default ``public``, created if missing; ``pool_min``/
``pool_max``: connection pool bounds, default 1 and 4; every other parameter is
libpq's). A thread uses one connection for a whole ``transaction()``; calls
outside one borrow a pooled connection per call, so one store can serve the
threads of ``journey serve``. All datetimes are timezone-aware UTC; rows handed to
callers carry instants as the same fixed-width UTC text SQLite stores.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg_pool import ConnectionPool

from runner.core.addresses import email_key
from runner.core.problems import JourneyError
from runner.core.state import EXITED, Contact, ContactState, Event, SendRecord
from runner.core.vocabulary import (
    ALL_TOPICS,
    IDENTITY_EVENTS,
    RESUBSCRIBED,
    STEP_STOP,
    SUPPRESSING_EVENTS,
    SUPPRESSION_REASONS,
    UNSUBSCRIBED,
    event_topic,
)
from runner.store import pgmigrations, pgsql
from runner.store.base import ContactRow, EventRow, ProductionCounters, Store
from runner.store.codec import merge_patch, to_db_time, to_json
from runner.store.errors import MigrationError, NoDatabase
from runner.store.pgconnect import (
    ADAPTERS,
    CONNECT_TIMEOUT_SECONDS,
    connect_options,
    loads,
    parse_location,
    shaped,
    time_text,
)
from runner.store.pgerrors import translate, translating
from runner.store.rows import (
    COUNTED_SEND_STATES,
    INTERRUPTED_RESENDABLE,
    address_key,
    collect_events_after,
    decision_row,
    distinct_claims,
    enrollment_from_row,
    enrollment_to_row,
    same_row,
    step_stop_rows,
    stop_in_force,
    stops_of,
    suppression_details,
    suppression_target,
    suppression_topic,
)
from runner.store.sourcevalues import apply_patch, source_changes

# Commits that need not wait for the WAL flush (``set_commit_durability(power_safe=False)``):
# LOCAL, so the setting ends with its transaction and never stays on a pooled server
# connection (PgBouncer in transaction mode hands that connection to other clients).
ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"


@dataclass(slots=True)
class _SaveWrites:
    """The rows a batch save writes, gathered so each kind goes out in one round trip."""

    inserts: list[tuple[Any, ...]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    identities: list[tuple[str, str, datetime]] = field(default_factory=list)
    enrollments: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id: one row each in the upsert


@dataclass(slots=True)
class _ContactSave:
    """One contact of a batch save, its rows built before the transaction (``prepared_save``)."""

    state: ContactState
    wake_at: datetime | None
    snapshot: _Snapshot | None  # what the load saw; None: not loaded by this store
    memory: str  # JSON
    patch: str | None  # the engine's attribute changes as a merge patch; None: made from the row
    enrollments: list[dict[str, Any]]  # rows changed since the load
    holder: str | None  # whom this store leased the contact to (claim_due): the save releases it


@dataclass(slots=True)
class _Snapshot:
    """What ``load_contact_state`` saw, so ``save_contact_state`` writes only the engine's changes."""

    rev: int
    attributes: dict[str, Any]
    timezone: str | None
    last_event_id: int  # events with a higher id arrived after the load
    anonymous_ids: list[str]
    enrollment_rows: dict[str, dict[str, Any]]  # SQLite-shaped: unchanged enrollments are not rewritten
    event_rows: list[tuple[int, str, datetime]]  # (row id, message id, at) of the events loaded


@translating
class PostgresStore:
    """The scale-out store; see ``runner.store.base.Store`` for the contract and the module doc.

    Every public method raises the ``StoreError`` family, never ``psycopg.Error``
    (``runner.store.pgerrors.translating``)."""

    def __init__(self, url: str, *, read_only: bool = False, pool_min: int | None = None,
                 pool_max: int | None = None):
        where = parse_location(url)
        self.location = where.shown
        self.path = Path(where.shown)  # the Store protocol names data by a path; messages use ``location``
        self.schema = where.schema
        self.read_only = read_only
        self._snapshots: dict[str, _Snapshot] = {}
        self._leased: dict[str, str] = {}  # contact id -> holder, of the leases claim_due took
        self._local = threading.local()
        self._power_safe = True
        kwargs = {"autocommit": True, "context": ADAPTERS, "options": connect_options(where, read_only),
                  "connect_timeout": CONNECT_TIMEOUT_SECONDS, "prepare_threshold": where.prepare_threshold}
        self._migrate(where.conninfo, kwargs)
        low = where.pool_min if pool_min is None else pool_min
        high = max(low, 1, where.pool_max if pool_max is None else pool_max)
        self.pool = ConnectionPool(where.conninfo, min_size=low, max_size=high, kwargs=kwargs, open=False,
                                   name=f"journey-{self.schema}", timeout=60)
        try:
            self.pool.open(wait=low > 0, timeout=CONNECT_TIMEOUT_SECONDS * 2)
        except Exception as error:  # the pool's own timeout or the driver's: the server went away
            self.pool.close()
            raise translate(error, self.location) from error

    def _migrate(self, conninfo: str, kwargs: dict[str, Any]) -> None:
        """Check the server answers, then bring the schema up to date (or, read-only, check it is)."""
        try:
            conn = psycopg.connect(conninfo, **kwargs)
        except psycopg.Error as error:
            raise translate(error, self.location) from None
        with conn:
            if self.read_only:
                try:
                    made = pgmigrations.schema_exists(conn, self.schema)
                    pending = pgmigrations.pending_migrations(conn)
                except psycopg.Error as error:
                    raise translate(error, self.location) from error
                if not made:
                    raise NoDatabase(f"{self.location}: no schema {self.schema}")
                if pending:
                    raise MigrationError(
                        f"{self.location} needs migrating ({', '.join(pending)} pending) but is opened read-only: "
                        "run a command that writes (`journey run`, `journey deploy`) with write access first")
                return
            try:
                pgmigrations.apply_migrations(conn, self.schema)
            except psycopg.Error as error:
                raise MigrationError(f"cannot bring {self.location} up to date ({str(error).strip()}): "
                                     "check that the user may create tables in the schema") from error

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ connections and transactions

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The thread's connection inside ``transaction()``, else one borrowed from the pool."""
        pinned = getattr(self._local, "conn", None)
        if pinned is not None:
            yield pinned
            return
        with self.pool.connection() as conn:
            yield conn

    def set_commit_durability(self, power_safe: bool) -> None:
        """How durable a commit is by default: the server's ``synchronous_commit`` (on unless
        the role or server says otherwise: power-safe), or off for each of this store's
        transactions (``SET LOCAL``: a crash of the database server can lose the last
        commits, never corrupt them)."""
        self._power_safe = power_safe

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[None]:
        """A write transaction on this thread's connection; nested calls become savepoints.

        A nested block that fails rolls back only itself; the outermost block commits
        or rolls back everything. ``durable``: this commit waits for the WAL flush
        whatever ``set_commit_durability`` says (a send claim before the transport call).
        """
        pinned = getattr(self._local, "conn", None)
        if pinned is not None:
            with pinned.transaction():
                yield
            return
        with self.pool.connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    if not (self._power_safe or durable):
                        conn.execute(ASYNC_COMMIT)
                    yield
            finally:
                self._local.conn = None

    @contextmanager
    def _writing(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection of the caller's transaction as it is (no savepoint: one round trip
        to open it and one to release it, twice a page of a busy tick), else a transaction
        of its own. For writes that let a failure end the caller's transaction: whoever
        wants to go on after one wraps them in ``transaction()`` itself (serve's group commit)."""
        pinned = getattr(self._local, "conn", None)
        if pinned is not None:
            yield pinned
            return
        with self.transaction():
            yield self._local.conn

    @contextmanager
    def _autocommit(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for one statement committed on its own.

        Power-safe: plain autocommit (one round trip). Otherwise the statement runs in a
        transaction of its own that sets ``synchronous_commit`` off with ``SET LOCAL``, all
        pipelined (still one round trip): the setting ends with the transaction, so a
        connection goes back to the pool, or to PgBouncer, with the server's default."""
        with self.pool.connection() as conn:
            if self._power_safe:
                yield conn
                return
            with conn.pipeline(), conn.transaction():
                conn.execute(ASYNC_COMMIT)
                yield conn

    @contextmanager
    def _snapshot_read(self, pipelined: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A connection reading one consistent snapshot (inside a caller's transaction: that one).
        ``pipelined``: its BEGIN and COMMIT go with the reads around them (a caller that reads
        every result before asking for the next, as ``_load`` does, in a pipeline)."""
        pinned = getattr(self._local, "conn", None)
        if pinned is not None:
            yield pinned
            return
        with self.pool.connection() as conn, conn.pipeline() if pipelined else nullcontext():
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None
                conn.execute("COMMIT")

    def _rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Rows as dicts, shaped as SQLite's store returns them (instants as text, JSON as text)."""
        with self._connection() as conn:
            cursor = conn.execute(sql, params)
            names = [column.name for column in cursor.description or ()]
            return [{name: shaped(value) for name, value in zip(names, row, strict=True)} for row in cursor]

    def _write(self, sql: str, params: Any = None) -> int:
        """One statement that writes, committed on its own (autocommit: no BEGIN/COMMIT round trips)
        unless a ``transaction()`` is open on this thread; returns the rows it changed."""
        pinned = getattr(self._local, "conn", None)
        if pinned is not None:
            return int(pinned.execute(sql, params).rowcount)
        with self._autocommit() as conn:
            cursor = conn.execute(sql, params)
        return int(cursor.rowcount)  # read after the pipeline's sync

    def _one(self, sql: str, params: Any = None) -> Any:
        with self._connection() as conn:
            row = conn.execute(sql, params).fetchone()
            return row[0] if row else None

    def _ingest_lock(self, conn: psycopg.Connection[Any]) -> None:
        """Serialise ingestion (events, contacts, links) in this schema until the transaction ends:
        event ids are then handed out in commit order (see the module doc)."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"journey-runner ingest {self.schema}",))

    # ------------------------------------------------------------------ contact state

    def load_contact_state(self, contact_id: str) -> ContactState:
        """Contact, its events (also those under its anonymous ids), enrollments, sends."""
        states = self.load_contact_states([contact_id])
        if contact_id not in states:
            raise KeyError(contact_id)
        return states[contact_id]

    def load_contact_states(self, contact_ids: list[str]) -> dict[str, ContactState]:
        """``load_contact_state`` for a batch: one query per table, in one snapshot. Unknown ids are left out."""
        ids = list(dict.fromkeys(contact_ids))
        if not ids:
            return {}
        with self._snapshot_read(pipelined=True) as conn:
            return self._load(conn, ids)

    def _load(self, conn: psycopg.Connection[Any], ids: list[str]) -> dict[str, ContactState]:
        """The batch's rows in two round trips (a pipeline): what is read by the contacts' ids,
        then what needs their anonymous ids and addresses (events, suppressions). Rows of
        unknown ids are none, so every query may ask for all ``ids``."""
        with conn.pipeline():
            contact_rows = conn.execute(pgsql.LOAD_CONTACTS, (ids,))
            link_rows = conn.execute(pgsql.LOAD_IDENTITIES, (ids,))
            send_rows = conn.execute(pgsql.LOAD_SENDS, (ids, list(COUNTED_SEND_STATES)))
            enrollment_cursor = conn.execute(pgsql.LOAD_ENROLLMENTS, (ids,))
            newest = conn.execute("SELECT coalesce(max(id), 0) FROM events")
            rows = {row[0]: row for row in contact_rows}
            anonymous: dict[str, list[str]] = {contact_id: [] for contact_id in rows}
            for contact_id, anonymous_id in link_rows:
                anonymous[contact_id].append(anonymous_id)
            owners: dict[str, list[str]] = defaultdict(list)
            for contact_id, anonymous_ids in anonymous.items():
                for some_id in (contact_id, *anonymous_ids):
                    owners[some_id].append(contact_id)
            emails = {contact_id: row[7] for contact_id, row in rows.items()}
            event_cursor = conn.execute(pgsql.LOAD_EVENTS, (list(owners), list(owners)))
            suppression_cursor = self._suppressions_query(conn, emails, anonymous)
            sends = self._sends_from(send_rows)
            enrollment_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
            names = [column.name for column in enrollment_cursor.description or ()]
            for values in enrollment_cursor:
                row = {name: shaped(value) for name, value in zip(names, values, strict=True)}
                enrollment_rows[row["contact_id"]].append(row)
            last_event_id = newest.fetchone()[0]  # type: ignore[index]
            events, event_rows = self._events_from(event_cursor, owners)
            suppressed, opt_outs = self._stops_from(suppression_cursor.fetchall(), emails, anonymous)
        states = {}
        for contact_id, (_, attributes, timezone, clock, memory, seq, rev, _email) in rows.items():
            state = ContactState(
                contact=Contact(id=contact_id, attributes=attributes, timezone=timezone,
                                anonymous_ids=anonymous[contact_id]),
                events=events.get(contact_id, []),
                sends=sends.get(contact_id, []),
                suppressed=suppressed[contact_id][0] if contact_id in suppressed else None,
                suppressed_at=suppressed[contact_id][1] if contact_id in suppressed else None,
                opt_outs=opt_outs.get(contact_id, {}),
                clock=clock,
                memory=memory,
                enrollment_seq=seq,
            )
            for enrollment in map(enrollment_from_row, enrollment_rows[contact_id]):
                if enrollment.status == EXITED:
                    state.past_enrollments.append(enrollment)
                else:
                    state.enrollments[enrollment.journey_id] = enrollment
            self._snapshots[contact_id] = _Snapshot(
                rev=rev, attributes=loads(to_json(attributes)), timezone=timezone, last_event_id=last_event_id,
                anonymous_ids=list(anonymous[contact_id]),
                enrollment_rows={r["id"]: r for r in enrollment_rows[contact_id]},
                event_rows=event_rows.get(contact_id, []),
            )
            states[contact_id] = state
        return states

    @staticmethod
    def _events_from(cursor: psycopg.Cursor[Any], owners: dict[str, list[str]]
                     ) -> tuple[dict[str, list[Event]], dict[str, list[tuple[int, str, datetime]]]]:
        """Events under any of the ids, in time order, per owning contact; and their
        (row id, message id, at), which ``events_after`` answers from."""
        found: dict[str, list[Event]] = defaultdict(list)
        stored: dict[str, list[tuple[int, str, datetime]]] = defaultdict(list)
        for name, at, properties, message_id, owner, anonymous_id, row_id in cursor:
            event = Event(name=name, at=at, properties=properties, message_id=message_id,
                          anonymous_id=anonymous_id if owner is None or name in IDENTITY_EVENTS else None)
            for contact_id in dict.fromkeys([*owners.get(owner, ()), *owners.get(anonymous_id, ())]):
                found[contact_id].append(event)
                stored[contact_id].append((row_id, message_id, at))
        return found, stored

    @staticmethod
    def _sends_from(cursor: psycopg.Cursor[Any]) -> dict[str, list[SendRecord]]:
        found: dict[str, list[SendRecord]] = defaultdict(list)
        for key, contact_id, journey_id, version, step, at, kind in cursor:
            found[contact_id].append(SendRecord(key=key, contact_id=contact_id, journey_id=journey_id,
                                                version=version, step_id=step, at=at, kind=kind))
        return found

    def _suppressions_of(self, conn: psycopg.Connection[Any], emails: dict[str, str | None],
                         anonymous: dict[str, list[str]]
                         ) -> tuple[dict[str, tuple[str, datetime]], dict[str, dict[str, datetime | None]]]:
        """Each contact's earliest suppression and its topic opt-outs (as SQLiteStore's)."""
        return self._stops_from(self._suppressions_query(conn, emails, anonymous).fetchall(), emails, anonymous)

    @staticmethod
    def _suppressions_query(conn: psycopg.Connection[Any], emails: dict[str, str | None],
                            anonymous: dict[str, list[str]]) -> psycopg.Cursor[Any]:
        ids = [some_id for contact_id in emails for some_id in (contact_id, *anonymous[contact_id])]
        keys = sorted({email for email in emails.values() if email is not None})
        return conn.execute("SELECT contact_id, email, reason, at, topic FROM suppressions "
                            "WHERE contact_id = ANY(%b) OR email = ANY(%b) ORDER BY at", (ids, keys))

    @staticmethod
    def _stops_from(suppressions: list[tuple[Any, ...]], emails: dict[str, str | None],
                    anonymous: dict[str, list[str]]
                    ) -> tuple[dict[str, tuple[str, datetime]], dict[str, dict[str, datetime | None]]]:
        whose = {contact_id: ({contact_id, *anonymous[contact_id]}, address) for contact_id, address in emails.items()}
        return stops_of(whose, suppressions)

    def save_contact_state(self, state: ContactState, wake_at: datetime | None,
                           decisions: Iterable[Any] = (), run_id: str | None = None) -> None:
        """Write the engine's result in one transaction (see ``save_contact_states``)."""
        self.save_contact_states([(state, wake_at)], decisions, run_id)

    def save_contact_states(self, results: list[tuple[ContactState, datetime | None]],
                            decisions: Iterable[Any] = (), run_id: str | None = None) -> None:
        """The engine's results and their decisions in one transaction (see ``write_prepared_save``)."""
        self.prepared_save(results, decisions, run_id)()

    def prepared_save(self, results: list[tuple[ContactState, datetime | None]],
                      decisions: Iterable[Any] = (), run_id: str | None = None) -> Callable[[], None]:
        """``save_contact_states`` with its rows built now, outside any transaction; the call
        returned writes them. A shorter transaction holds its locks (the contacts', the
        counters' rows its triggers update) for less time."""
        saves = []
        for state, wake_at in results:
            contact = state.contact
            snapshot = self._snapshots.pop(contact.id, None)
            stored = snapshot.enrollment_rows if snapshot else {}
            rows = [enrollment_to_row(e) for e in (*state.past_enrollments, *state.enrollments.values())]
            saves.append(_ContactSave(
                state, wake_at, snapshot, to_json(state.memory),
                to_json(merge_patch(snapshot.attributes, contact.attributes)) if snapshot else None,
                [row for row in rows if not same_row(stored.get(row["id"]), row)], self._leased.get(contact.id)))
        decisions = list(decisions)
        rows = [decision_row(decision, run_id) for decision in decisions]
        journal = [[row[name] for row in rows] for name in pgsql.DECISION_COLUMNS] if rows else None
        return partial(self.write_prepared_save, saves, journal, step_stop_rows(decisions))

    def write_prepared_save(self, saves: list[_ContactSave], journal: list[list[Any]] | None,
                            stops: list[tuple[str, str, str, str, str, str]]) -> None:
        """Write what ``prepared_save`` built, in one transaction.

        The contacts are locked first (in id order: two savers never deadlock), then
        what changed since the load is read: an import touched the contact (``rev``
        moved) or stored events for it; then the earlier wake-up wins, so nothing
        imported meanwhile is lost. Attributes are written as a merge patch of what
        the engine changed. The batch's writes go out a statement per kind of row.
        """
        now = datetime.now(UTC)
        with self._writing() as conn:
            ids = sorted({save.state.contact.id for save in saves})
            current = {row[0]: row for row in conn.execute(
                "SELECT id, rev, attributes, timezone, wake_at FROM contacts WHERE id = ANY(%b) ORDER BY id FOR UPDATE",
                (ids,))}
            newest_event = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]  # type: ignore[index]
            writes = _SaveWrites()
            for save in saves:
                self._save(conn, writes, save, now, newest_event, current.get(save.state.contact.id))
            with conn.cursor() as cursor:
                for sql, params in ((pgsql.INSERT_CONTACT, writes.inserts), (pgsql.INSERT_IDENTITY, writes.identities)):
                    if params:
                        cursor.executemany(sql, params)
            self._update_contacts(conn, writes.updates, now)
            if writes.enrollments:
                enrollments = list(writes.enrollments.values())
                conn.execute(pgsql.UPSERT_ENROLLMENTS,
                             [[row[name] for row in enrollments] for name in pgsql.ENROLLMENT_COLUMNS])
            if journal:
                conn.execute(pgsql.INSERT_DECISIONS, journal)
            if stops:  # a suppress step's; the earlier one of a target is kept
                with conn.cursor() as cursor:
                    cursor.executemany(pgsql.INSERT_STEP_STOP, stops)

    @staticmethod
    def _update_contacts(conn: psycopg.Connection[Any], updates: list[dict[str, Any]], now: datetime) -> None:
        """The batch's contact rows in one statement (``UPDATE_CONTACTS``); row by row only
        when a contact comes twice (then the last one wins, as one update after the other)."""
        if not updates:
            return
        if len({update["id"] for update in updates}) < len(updates):
            with conn.cursor() as cursor:
                cursor.executemany(pgsql.UPDATE_CONTACT, updates)
            return
        conn.execute(pgsql.UPDATE_CONTACTS, {"now": now, **{
            plural: [update[name] for update in updates] for plural, name in (
                ("ids", "id"), ("patches", "patch"), ("emails", "email"), ("timezones", "timezone"), ("clocks", "clock"),
                ("memories", "memory"), ("seqs", "seq"), ("wakes", "wake"), ("holders", "holder"))}})

    def _save(self, conn: psycopg.Connection[Any], writes: _SaveWrites, save: _ContactSave, now: datetime,
              newest_event: int, current: tuple[Any, ...] | None) -> None:
        """One contact of ``write_prepared_save``: its rows, queued in ``writes`` (its row is locked)."""
        state, snapshot = save.state, save.snapshot
        contact = state.contact
        wake = save.wake_at
        if current is None:
            writes.inserts.append((contact.id, address_key(contact.attributes), contact.timezone,
                                   to_json(contact.attributes), now, now, wake, state.clock, save.memory,
                                   state.enrollment_seq))
        else:
            _, rev, attributes, timezone, current_wake = current
            if contact.timezone != (snapshot.timezone if snapshot else timezone):
                timezone = contact.timezone
            if snapshot is not None:
                for outside in (
                    current_wake if snapshot.rev != rev else None,
                    self._first_event_since(conn, contact.id, snapshot.last_event_id)
                    if newest_event > snapshot.last_event_id else None,
                ):
                    if outside is not None:
                        wake = min(wake, outside) if wake else outside
            writes.updates.append({
                "patch": save.patch if save.patch is not None else to_json(merge_patch(attributes, contact.attributes)),
                "email": address_key(contact.attributes),
                "timezone": timezone, "clock": state.clock, "memory": save.memory, "seq": state.enrollment_seq,
                "wake": wake, "now": now, "id": contact.id, "holder": save.holder})
        if snapshot is None or contact.anonymous_ids != snapshot.anonymous_ids:
            writes.identities.extend((anonymous_id, contact.id, now) for anonymous_id in contact.anonymous_ids)
        writes.enrollments.update((row["id"], row) for row in save.enrollments)

    def _first_event_since(self, conn: psycopg.Connection[Any], contact_id: str, last_event_id: int) -> datetime | None:
        """Earliest time of the contact's events recorded after ``last_event_id``."""
        row = conn.execute(pgsql.FIRST_EVENT_SINCE, {"after": last_event_id, "id": contact_id}).fetchone()
        return row[0] if row else None

    def contact_history(self, contact_id: str, journey_id: str | None = None) -> list[dict[str, Any]]:
        """The contact's journal, oldest first (optionally one journey's); ``at`` as a UTC datetime,
        with what the ledger says became of each send (``send_state``, ``send_error``, ``send_retryable``)."""
        with self._connection() as conn:
            cursor = conn.execute(pgsql.CONTACT_HISTORY, {"contact": contact_id, "journey": journey_id})
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor]

    def due_contacts(self, now: datetime, limit: int) -> list[str]:
        """Contacts whose ``wake_at`` has come, oldest first (an index range scan)."""
        return [contact_id for _, contact_id in self.due_page(now, limit)]

    def due_page(self, now: datetime, limit: int, after: tuple[str, str] | None = None) -> list[tuple[str, str]]:
        """The next ``limit`` due contacts after the cursor ``after``, as (wake_at text, id) keys in order:
        keyset pagination on the index ``contacts_due (wake_at, id)``."""
        with self._connection() as conn:
            if after is None:
                rows = conn.execute(pgsql.DUE_FIRST_PAGE, (now, limit)).fetchall()
            else:
                rows = conn.execute(pgsql.DUE_NEXT_PAGE, (now, after[0], after[1], limit)).fetchall()
        return [(to_db_time(wake), contact_id) for wake, contact_id in rows]

    # ------------------------------------------------------------------ contact leases (many workers)

    def claim_due(self, now: datetime, holder: str, limit: int, lease_ttl: timedelta,
                  after: tuple[str, str] | None = None) -> list[tuple[str, str]]:
        """Lease the next ``limit`` due contacts after ``after`` to ``holder`` (see SQLiteStore):
        ``SELECT … FOR UPDATE SKIP LOCKED`` and the lease columns, in one statement."""
        params: dict[str, Any] = {"now": now, "holder": holder, "limit": limit, "ttl": lease_ttl}
        keyset = ""
        if after is not None:
            keyset = "AND (wake_at, id) > (%(after_wake)s::timestamptz, %(after_id)s)"
            params.update(after_wake=after[0], after_id=after[1])
        sql = pgsql.CLAIM_DUE.format(keyset=keyset)
        pinned = getattr(self._local, "conn", None)
        if pinned is not None:  # inside the caller's transaction
            rows = pinned.execute(sql, params).fetchall()
        else:
            with self._autocommit() as conn:  # one statement, one commit
                cursor = conn.execute(sql, params)
            rows = cursor.fetchall()
        self._leased.update((contact_id, holder) for _, contact_id in rows)
        return sorted((to_db_time(wake), contact_id) for wake, contact_id in rows)

    def renew_contacts(self, holder: str, lease_ttl: timedelta) -> int:
        """Extend every contact lease ``holder`` has (the partial index: what it holds)."""
        return self._write("UPDATE contacts SET lease_until = now() + %s WHERE lease_holder = %s", (lease_ttl, holder))

    def release_contacts(self, holder: str, contact_ids: Iterable[str] | None = None) -> None:
        """Free ``holder``'s leases on ``contact_ids`` (None: all it has). Those a save released
        already (``write_prepared_save``) are passed over: found by key, nothing written."""
        if contact_ids is None:
            self._leased = {cid: someone for cid, someone in self._leased.items() if someone != holder}
            self._write("UPDATE contacts SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = %s",
                        (holder,))
            return
        ids = list(contact_ids)
        for contact_id in ids:
            if self._leased.get(contact_id) == holder:
                del self._leased[contact_id]
        self._write(pgsql.RELEASE_CONTACTS, {"ids": ids, "holder": holder})

    def lease_holders(self, now: datetime | None = None) -> list[str]:
        """Holders of named leases (the tick's, each worker's): unexpired at ``now``, or all."""
        return [row["holder"] for row in self._rows(
            "SELECT DISTINCT holder FROM leases WHERE %(now)s::timestamptz IS NULL OR expires_at > %(now)s "
            "ORDER BY holder", {"now": now})]

    def contact_leases(self, now: datetime) -> dict[str, Any]:
        """The workers' contact leases for ``/readyz`` (see SQLiteStore.contact_leases)."""
        (row,) = self._rows(
            "SELECT count(*) AS count, count(DISTINCT lease_holder) AS holders, min(lease_until) AS oldest, "
            "count(*) FILTER (WHERE lease_until <= %(now)s) AS expired FROM contacts WHERE lease_holder IS NOT NULL",
            {"now": now})
        return {"count": row["count"], "holders": row["holders"], "oldest_expires_at": row["oldest"],
                "expired": row["expired"]}

    # ------------------------------------------------------------------ send ledger

    def claim_send(self, record: SendRecord, run_id: str) -> bool:
        """Claim a send before calling the transport; False means never send it (see SQLiteStore)."""
        return self.claim_sends([record], run_id, resendable=False)[0]

    def claim_sends(self, records: list[SendRecord], run_id: str, *, resendable: bool) -> list[bool]:
        """Claim several sends in one statement; each wins only if its key is new (or a
        retryable failure): a key back from ``RETURNING`` is a win. A key twice in the batch
        wins at most once, the first time (as one claim after the other would)."""
        if not records:
            return []
        batch, won_of = distinct_claims(records)
        params = {"claimed_at": datetime.now(UTC), "run_id": run_id, "retryable": int(resendable),
                  "keys": [r.key for r in batch], "contacts": [r.contact_id for r in batch],
                  "journeys": [r.journey_id for r in batch], "versions": [r.version for r in batch],
                  "steps": [r.step_id for r in batch], "kinds": [r.kind for r in batch],
                  "scheduled": [r.at for r in batch]}
        with self._writing() as conn:
            won = {key for (key,) in conn.execute(pgsql.CLAIM_SENDS, params)}
        return won_of(won)

    def mark_handed_over(self, key: str) -> None:
        """A queued claim is about to go to a transport that is not idempotent: a crash now leaves it in doubt."""
        self._write("UPDATE sends SET retryable = 0 WHERE key = %s AND state = 'claimed'", (key,))

    def confirm_send(self, key: str, transport_id: str) -> None:
        self.confirm_sends([(key, transport_id)])

    def confirm_sends(self, delivered: list[tuple[str, str]]) -> None:
        """``confirm_send`` for many (key, transport id) pairs in one statement (a key twice: the last)."""
        if not delivered:
            return
        ids = dict(delivered)
        self._write(pgsql.CONFIRM_SENDS, {"now": datetime.now(UTC), "keys": list(ids), "ids": list(ids.values())})

    def fail_send(self, key: str, error: str, permanent: bool, *, retry_at: datetime | None = None,
                  failed_at: datetime | None = None) -> None:
        """Record a failed delivery; a transient one is tried again from ``retry_at``."""
        self._write(
            """UPDATE sends SET state = 'failed', error = %s, retryable = %s, retry_at = %s,
                   first_failed_at = coalesce(first_failed_at, %s) WHERE key = %s""",
            (error, 0 if permanent else 1, None if permanent else retry_at, failed_at, key))

    def requeue_sends(self, keys: Iterable[str] = (), *, since: datetime | None = None,
                      until: datetime | None = None, every: bool = False) -> list[str]:
        """Failed sends made retryable again, due at once and with a fresh age (see SQLiteStore)."""
        keys = list(keys)
        with self.transaction(), self._connection() as conn:
            failed = {key for (key,) in conn.execute(
                "SELECT key FROM sends WHERE state = 'failed' AND key = ANY(%b)", (keys,))} if keys else set()
            missing = [key for key in keys if key not in failed]
            if missing:
                raise JourneyError(f"not failed: {', '.join(missing)} (see `journey status`)")
            chosen = set(failed)
            if every or since is not None or until is not None:
                chosen.update(key for (key,) in conn.execute(pgsql.REQUEUE_RANGE, {"since": since, "until": until}))
            with conn.cursor() as cursor:
                cursor.executemany(pgsql.REQUEUE, [(key,) for key in sorted(chosen)])
        return sorted(chosen)

    def skip_send(self, record: SendRecord, reason: str, run_id: str) -> None:
        """Record a send the engine decided not to make (suppressed, capped, holdout)."""
        self._write(pgsql.SKIP_SEND, (record.key, record.contact_id, record.journey_id, record.version,
                                      record.step_id, record.kind, record.at, reason, run_id))

    def in_doubt_sends(self, now: datetime | None = None, *, gone_holders: Iterable[str] = (),
                       mark: bool = True) -> list[dict]:
        """Sends claimed by runs that finished or died without confirming them (see SQLiteStore)."""
        params = {"now": now or datetime.now(UTC), "gone": list(gone_holders), "resendable": INTERRUPTED_RESENDABLE}
        if not mark:
            return self._rows(pgsql.IN_DOUBT_LIST, params)
        self._write(pgsql.IN_DOUBT_MARK, params)
        return self._rows("SELECT * FROM sends WHERE state = 'in_doubt' ORDER BY claimed_at, key")

    def resolve_in_doubt(self, key: str, outcome: Literal["sent", "failed"]) -> None:
        """An operator's verdict on an in-doubt send: delivered, or not (may be retried)."""
        if outcome not in ("sent", "failed"):
            raise JourneyError(f"outcome must be 'sent' or 'failed', not {outcome!r}")
        if outcome == "sent":
            sql = ("UPDATE sends SET state = 'sent', sent_at = coalesce(sent_at, claimed_at) "
                   "WHERE key = %s AND state = 'in_doubt'")
        else:
            sql = ("UPDATE sends SET state = 'failed', retryable = 1, error = 'resolved as not sent' "
                   "WHERE key = %s AND state = 'in_doubt'")
        with self.transaction(), self._connection() as conn:
            if conn.execute(sql, (key,)).rowcount != 1:
                raise JourneyError(f"no in-doubt send with key {key!r}")

    # ------------------------------------------------------------------ leases and runs

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Take the lease if it is free, expired, or already ours (one atomic upsert)."""
        return self._write(pgsql.ACQUIRE_LEASE, (name, holder, now + ttl, now)) == 1

    def renew_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Extend our lease; False if it expired and someone else took it."""
        return self._write("UPDATE leases SET expires_at = %s WHERE name = %s AND holder = %s",
                           (now + ttl, name, holder)) == 1

    def release_lease(self, name: str, holder: str) -> None:
        self._write("DELETE FROM leases WHERE name = %s AND holder = %s", (name, holder))

    def start_run(self, holder: str, now: datetime) -> str:
        run_id = f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self._write("INSERT INTO runs (id, holder, started_at, status) VALUES (%s, %s, %s, 'running')",
                    (run_id, holder, now))
        return run_id

    def finish_run(self, run_id: str, counts: dict, status: str, now: datetime) -> None:
        self._write("UPDATE runs SET finished_at = %s, counts = %s::json, status = %s WHERE id = %s",
                    (now, to_json(counts), status, run_id))

    # ------------------------------------------------------------------ deployments

    def record_deployment(self, journey_id: str, version: int, content_hash: str, content: str,
                          now: datetime) -> bool:
        """Record a deployed journey version; True if new, False if already deployed as is.
        Changed content under the same version is refused (in-flight contacts are pinned to it)."""
        with self.transaction(), self._connection() as conn:
            inserted = conn.execute(
                """INSERT INTO deployments (journey_id, version, content_hash, content, deployed_at)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                (journey_id, version, content_hash, content, now)).rowcount
            if inserted:
                return True
            existing = self.deployed(journey_id, version)
            if existing is not None and existing["content_hash"] != content_hash:
                raise JourneyError(f"journey {journey_id!r} version {version} is already deployed with "
                                   "different content; bump its version")
            return False

    def deployments(self) -> list[dict]:
        return self._rows("SELECT * FROM deployments ORDER BY journey_id, version")

    def record_templates(self, templates: dict[str, str], now: datetime) -> bool:
        """Make ``templates`` (name -> source) the deployed set; True if it changed."""
        wanted = {name: hashlib.sha256(source.encode()).hexdigest() for name, source in templates.items()}
        with self.transaction(), self._connection() as conn:
            conn.execute("LOCK TABLE deployed_templates IN SHARE ROW EXCLUSIVE MODE")  # two deploys: one after the other
            current = dict(conn.execute("SELECT name, sha256 FROM deployed_templates").fetchall())
            if current == wanted:
                return False
            conn.execute("DELETE FROM deployed_templates")
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO deployed_templates (name, sha256, content, deployed_at) VALUES (%s, %s, %s, %s)",
                    [(name, wanted[name], source, now) for name, source in sorted(templates.items())])
            return True

    def deployed_templates(self) -> dict[str, str] | None:
        """The deployed templates (name -> source); None if no deploy ever recorded them."""
        with self._connection() as conn:
            rows = conn.execute("SELECT name, content FROM deployed_templates").fetchall()
        return dict(rows) if rows else None

    def deployed(self, journey_id: str, version: int) -> dict | None:
        rows = self._rows("SELECT * FROM deployments WHERE journey_id = %s AND version = %s", (journey_id, version))
        return rows[0] if rows else None

    # ------------------------------------------------------------------ suppressions

    def add_suppression(self, contact_or_email: str, reason: str, source: str, now: datetime,
                        topic: str | None = None) -> None:
        """Suppress a contact id or an email address (case-insensitive); ``unsubscribed`` is the
        opt-out of ``topic`` (default: every marketing topic), as SQLiteStore.add_suppression."""
        if reason not in SUPPRESSION_REASONS:
            raise JourneyError(f"unknown suppression reason {reason!r}; use one of {', '.join(SUPPRESSION_REASONS)}")
        topic = suppression_topic(reason, topic)
        target, contact_id, email = suppression_target(contact_or_email, topic)
        with self.transaction(), self._connection() as conn:
            conn.execute(pgsql.UPSERT_SUPPRESSION, (target, contact_id, email, reason, now, source, topic))

    def remove_suppression(self, contact_or_email: str) -> bool:
        """Lift every suppression and topic opt-out of a contact id or an address."""
        target, _, _ = suppression_target(contact_or_email)
        return self._write("DELETE FROM suppressions WHERE target = %(t)s "
                           "OR (topic IS NOT NULL AND target = 'topic:' || topic || ':' || %(t)s)", {"t": target}) > 0

    def suppressions(self, contact_id: str | None = None) -> list[dict]:
        """Every suppression and topic opt-out, oldest first (as SQLiteStore.suppressions)."""
        return suppression_details(self._rows(
            """SELECT s.contact_id, s.email, s.reason, s.at, s.source, s.topic, e.properties AS detail
               FROM suppressions s LEFT JOIN events e
                 ON s.source LIKE 'event:%%' AND e.message_id = substr(s.source, 7)
               WHERE %(c)s::text IS NULL OR s.contact_id = %(c)s
                  OR s.contact_id IN (SELECT anonymous_id FROM identities WHERE contact_id = %(c)s)
                  OR s.email = (SELECT email FROM contacts WHERE id = %(c)s)
               ORDER BY s.at, s.target""", {"c": contact_id}))

    def contacts_by_email(self, emails: list[str]) -> dict[str, list[str]]:
        """The contact ids stored under each address (case-insensitive; lower-cased keys)."""
        found: dict[str, list[str]] = defaultdict(list)
        keys = sorted({email_key(email) for email in emails})
        if keys:
            with self._connection() as conn:
                for contact_id, email in conn.execute(
                        "SELECT id, email FROM contacts WHERE email = ANY(%b) ORDER BY id", (keys,)):
                    found[email].append(contact_id)
        return dict(found)

    def is_suppressed(self, contact_id: str, at: datetime | None = None) -> str | None:
        """The suppression reason for a contact (by id, anonymous ids or email), or None;
        with ``at``, only a suppression already in effect at that instant counts."""
        with self._connection() as conn:
            email = conn.execute("SELECT email FROM contacts WHERE id = %s", (contact_id,)).fetchone()
            anonymous_ids = [anonymous_id for (anonymous_id,) in conn.execute(
                "SELECT anonymous_id FROM identities WHERE contact_id = %s", (contact_id,))]
            hard, opt_outs = self._suppressions_of(conn, {contact_id: email[0] if email else None},
                                                   {contact_id: anonymous_ids})
        return stop_in_force(hard.get(contact_id), opt_outs.get(contact_id, {}), at)

    # ------------------------------------------------------------------ status

    def status_summary(self, now: datetime) -> dict:
        """Counts for ``journey status``, shaped exactly as SQLiteStore's."""
        with self._snapshot_read():
            one = self._one
            return {
                "contacts": one("SELECT count(*) FROM contacts"),
                "due_contacts": one("SELECT count(*) FROM contacts WHERE wake_at <= %s", (now,)),
                "next_wake_at": time_text(one("SELECT min(wake_at) FROM contacts WHERE wake_at > %s", (now,))),
                "enrollments": self._rows(pgsql.STATUS_ENROLLMENTS, {"now": now}),
                "exits": self._rows(pgsql.STATUS_EXITS),
                "sends": {row["state"]: row["n"] for row in self._rows(
                    "SELECT state, count(*) AS n FROM sends GROUP BY state ORDER BY state")},
                "failures": self._rows(pgsql.STATUS_FAILURES),
                "in_doubt": self._rows("SELECT key, contact_id, journey_id, step_id, claimed_at, run_id "
                                       "FROM sends WHERE state = 'in_doubt' ORDER BY claimed_at"),
                "suppressions": {row["reason"]: row["n"] for row in self._rows(
                    "SELECT reason, count(*) AS n FROM suppressions GROUP BY reason ORDER BY reason")},
                "runs": [{**row, "counts": loads(row["counts"])}
                         for row in self._rows("SELECT * FROM runs ORDER BY started_at DESC LIMIT 10")],
                "leases": self._rows("SELECT * FROM leases ORDER BY name"),
            }

    # ------------------------------------------------------------------ bulk ingestion

    def write_contacts(self, rows: Iterable[ContactRow], now: datetime) -> int:
        """Upsert contacts, merging attributes (RFC 7396); returns how many were new or changed.

        The upserts go out pipelined (``executemany``), one round trip per batch. A
        contact that is new or changed becomes due at ``changed_at`` (or ``now``).
        """
        rows = list(rows)
        params = []
        delivered_ids: list[str] = []
        with self.transaction():
            conn = self._local.conn
            self._ingest_lock(conn)
            delivered = self._imported_values(conn, [row.id for row in rows if row.snapshot])
            for row in sorted(rows, key=lambda row: row.id):  # in id order, as saves lock: no deadlock between them
                attributes, imported = row.attributes, None
                if row.snapshot:  # only what the source changed since its last import (runner.store.sourcevalues)
                    before = delivered.get(row.id, {})
                    attributes = source_changes(row.attributes, before)
                    if attributes:
                        delivered[row.id] = apply_patch(before, row.attributes)
                        imported = to_json(delivered[row.id])
                        delivered_ids.append(row.id)
                params.append({"id": row.id, "email": address_key(attributes), "timezone": row.timezone,
                               "attributes": to_json(attributes), "imported": imported, "now": now,
                               "wake": row.changed_at or now})
            changed = 0
            if params:
                with conn.cursor() as cursor:
                    cursor.executemany(pgsql.UPSERT_CONTACT, params, returning=True)
                    while True:
                        changed += len(cursor.fetchall())
                        if not cursor.nextset():
                            break
            if delivered_ids:  # the source changed to what a journey had set: remember what it delivered
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "UPDATE contacts SET imported = %s::jsonb WHERE id = %s AND imported IS DISTINCT FROM %s::jsonb",
                        [(to_json(delivered[cid]), cid, to_json(delivered[cid])) for cid in dict.fromkeys(delivered_ids)])
            links = [(anonymous_id, row.id) for row in rows for anonymous_id in row.anonymous_ids]
            if links:
                self.link_identities(links, now)
        return changed

    def _imported_values(self, conn: psycopg.Connection[Any], contact_ids: list[str]) -> dict[str, dict[str, Any]]:
        """What contacts imports last delivered for these contacts (``contacts.imported``)."""
        if not contact_ids:
            return {}
        return dict(conn.execute("SELECT id, imported FROM contacts WHERE id = ANY(%b)",
                                 (list(dict.fromkeys(contact_ids)),)).fetchall())

    def write_events(self, rows: list[EventRow], now: datetime) -> int:
        """Insert events (``message_id`` deduplicates); returns how many were new.

        One look-up finds which message ids are stored already. A batch of events all
        new (a first import) goes straight into ``events`` by ``COPY``, and one statement
        then creates or wakes their contacts (each at its earliest event) from the rows
        just stored; a batch holding a stored or repeated message id (a re-import) goes
        by ``COPY`` into a temporary table, from which the same statement reads and one
        ``INSERT … ON CONFLICT DO NOTHING`` keeps the new events. Either way ids follow
        the input order. Contacts named by ``contact_id`` are created if unknown; each
        event, new or not, makes its contact due at the event's time, also through an
        already linked anonymous id.
        """
        anonymous_wake: dict[str, datetime] = {}
        for row in rows:
            if row.contact_id is None and row.anonymous_id is not None and (
                    row.anonymous_id not in anonymous_wake or row.at < anonymous_wake[row.anonymous_id]):
                anonymous_wake[row.anonymous_id] = row.at
        suppressing = [row for row in rows if row.name in SUPPRESSING_EVENTS
                       or (row.name == RESUBSCRIBED and "topic" in row.properties)]
        with self.transaction():
            conn = self._local.conn
            self._ingest_lock(conn)
            message_ids = [row.message_id for row in rows]
            last_id, stored = conn.execute(pgsql.EVENTS_STORED, (message_ids,)).fetchone()
            if stored or len(set(message_ids)) < len(rows):
                inserted = self._stage_events(conn, rows, now)
            else:
                inserted = self._copy_new_events(conn, rows, now, last_id)
            if suppressing:  # only events new to the store suppress
                self._record_suppressions(conn, suppressing, set(stored))
            for anonymous_id in sorted(anonymous_wake):
                at = anonymous_wake[anonymous_id]
                locked = conn.execute(pgsql.LOCK_LINKED_CONTACT, (anonymous_id,)).fetchone()
                if locked:  # a second statement: it sees a save that committed while we waited
                    conn.execute(pgsql.WAKE_CONTACT, (at, locked[0], at))
        return inserted

    @staticmethod
    def _copy_new_events(conn: psycopg.Connection[Any], rows: list[EventRow], now: datetime, last_id: int) -> int:
        """Events none of which is stored: ``COPY`` into ``events``, then their contacts created or woken
        from the rows above ``last_id`` (ingestion is serialised: every one of them is ours)."""
        with conn.cursor() as cursor, cursor.copy(pgsql.EVENTS_COPY) as copy:
            copy.set_types(pgsql.EVENTS_COPY_TYPES)
            for row in rows:
                copy.write_row((row.contact_id, row.anonymous_id, row.name, row.at, row.properties, row.message_id))
        conn.execute(pgsql.CREATE_OR_WAKE_COPIED, {"now": now, "since": last_id})
        return len(rows)

    @staticmethod
    def _stage_events(conn: psycopg.Connection[Any], rows: list[EventRow], now: datetime) -> int:
        """Events some of which are stored (or repeated): through the temporary table, the new ones kept."""
        conn.execute(pgsql.STAGE)
        conn.execute("TRUNCATE journey_events_in")
        with conn.cursor() as cursor, cursor.copy(pgsql.STAGE_COPY) as copy:
            copy.set_types(pgsql.STAGE_COPY_TYPES)
            for number, row in enumerate(rows):
                copy.write_row((number, row.contact_id, row.anonymous_id, row.name, row.at, row.properties,
                                row.message_id))
        conn.execute(pgsql.CREATE_OR_WAKE_STAGED, {"now": now})
        return int(conn.execute(pgsql.STAGE_INSERT).rowcount)

    def _record_suppressions(self, conn: psycopg.Connection[Any], rows: list[EventRow], stored: set[str]) -> None:
        """Suppressions and topic opt-outs for the events the store did not hold (``stored``: the
        message ids it held before this write), and a ``resubscribed`` topic's opt-out lifted
        (as SQLiteStore._record_suppressions)."""
        for row in sorted(rows, key=lambda row: row.at):  # in time order: an opt-out, then its lifting
            who = row.contact_id or row.anonymous_id
            if row.message_id in stored or not who:
                continue
            if row.name == RESUBSCRIBED:
                conn.execute("DELETE FROM suppressions WHERE target = %s AND at <= %s",
                             (suppression_target(who, event_topic(row.properties))[0], row.at))
                if event_topic(row.properties) == ALL_TOPICS:  # back to everything: a suppress step's stop too
                    conn.execute("DELETE FROM suppressions WHERE contact_id = %s AND topic LIKE %s AND at <= %s",
                                 (who, f"{STEP_STOP}%", row.at))
                continue
            reason = SUPPRESSING_EVENTS[row.name]
            topic = event_topic(row.properties) if reason == UNSUBSCRIBED else None
            conn.execute(pgsql.EVENT_SUPPRESSION, (suppression_target(who, topic)[0], who, reason, row.at,
                                                   f"event:{row.message_id}", topic))

    def link_identities(self, links: Iterable[tuple[str, str]], now: datetime) -> None:
        """Link anonymous ids to contacts (the first link wins) and wake each contact
        at its anonymous past, so earlier visits count from now on."""
        links = list(links)
        first: dict[str, str] = {}
        for anonymous_id, contact_id in links:
            first.setdefault(anonymous_id, contact_id)  # a later link of the same id would not win
        with self.transaction():
            conn = self._local.conn
            self._ingest_lock(conn)
            for contact_id in sorted({contact_id for _, contact_id in links}):  # in id order, as saves lock
                conn.execute("INSERT INTO contacts (id, created_at, updated_at) VALUES (%s, %s, %s) "
                             "ON CONFLICT DO NOTHING", (contact_id, now, now))
            for anonymous_id, contact_id in sorted(first.items(), key=lambda link: (link[1], link[0])):
                linked = conn.execute("INSERT INTO identities (anonymous_id, contact_id, linked_at) "
                                      "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                                      (anonymous_id, contact_id, now)).rowcount
                if linked:
                    conn.execute(
                        """UPDATE contacts SET wake_at = least(coalesce(wake_at, earliest.at), earliest.at),
                               rev = rev + 1
                           FROM (SELECT min(at) AS at FROM events WHERE anonymous_id = %s) AS earliest
                           WHERE contacts.id = %s AND earliest.at IS NOT NULL""", (anonymous_id, contact_id))

    def existing_message_ids(self, message_ids: list[str]) -> set[str]:
        """Which of these message ids are stored already (to apply identify/unsubscribe once)."""
        if not message_ids:
            return set()
        with self._connection() as conn:
            return {mid for (mid,) in conn.execute("SELECT message_id FROM events WHERE message_id = ANY(%b)",
                                                   (message_ids,))}

    # ------------------------------------------------------------------ production ticks (runner.production.tick)

    def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` (expired or not), or None."""
        return self._one("SELECT holder FROM leases WHERE name = %s", (name,))  # type: ignore[no-any-return]

    def unfinished_runs(self, recent: int = 50) -> list[dict]:
        """Runs among the ``recent`` newest that never finished (index on started_at: constant cost)."""
        return [row for row in self._rows(
            "SELECT id, holder, started_at, finished_at FROM runs ORDER BY started_at DESC LIMIT %s", (recent,))
            if row["finished_at"] is None]

    def retryable_sends(self, now: datetime | None = None) -> list[dict]:
        """Failed sends ``claim_send`` would let a caller claim again, whose ``retry_at`` has come by ``now``."""
        return self._rows(
            """SELECT key, contact_id, journey_id, version, step_id, kind, scheduled_at, attempts, first_failed_at
               FROM sends WHERE state = 'failed' AND retryable = 1
                 AND (%(now)s::timestamptz IS NULL OR retry_at IS NULL OR retry_at <= %(now)s)
               ORDER BY scheduled_at, key""", {"now": now})

    def events_after(self, contact_id: str, anonymous_ids: list[str], after_id: int) -> list[tuple[int, str, datetime]]:
        """(row id, message id, at) of the contact's events stored after row ``after_id``.

        Between a load of the contact and its save (the tick asks right after loading), the
        answer comes from the events that load read, in its snapshot: no round trip per
        contact, and an event stored since is left for the next tick to see as new (the save
        keeps the contact due for it) rather than counted as seen without being given to the
        engine. Otherwise the database is asked."""
        snapshot = self._snapshots.get(contact_id)
        if snapshot is not None and snapshot.anonymous_ids == list(anonymous_ids):
            return [row for row in snapshot.event_rows if row[0] > after_id]
        ids = [contact_id, *anonymous_ids]
        with self._connection() as conn:
            return [(row_id, message_id, at) for row_id, message_id, at in conn.execute(
                "SELECT id, message_id, at FROM events WHERE (contact_id = ANY(%b) OR anonymous_id = ANY(%b)) "
                "AND id > %s", (ids, ids, after_id))]

    def events_after_many(self, wanted: list[tuple[str, list[str], int]]) -> dict[str, list[tuple[int, str, datetime]]]:
        """``events_after`` for a batch, in one query (see SQLiteStore)."""
        found: dict[str, list[tuple[int, str, datetime]]] = {contact_id: [] for contact_id, _, _ in wanted}
        if not wanted:
            return found
        owners: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for contact_id, anonymous_ids, after_id in wanted:
            for some_id in (contact_id, *anonymous_ids):
                owners[some_id].append((contact_id, after_id))
        ids = list(owners)
        after = min(after_id for _, _, after_id in wanted)
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT id, message_id, at, contact_id, anonymous_id FROM events "
                "WHERE (contact_id = ANY(%b) OR anonymous_id = ANY(%b)) AND id > %s ORDER BY id",
                (ids, ids, after)).fetchall()
        collect_events_after(rows, owners, found)
        return found

    def wake_at(self, contact_id: str) -> datetime | None:
        """The instant the contact is due (None: not due at all)."""
        return self._one("SELECT wake_at FROM contacts WHERE id = %s", (contact_id,))  # type: ignore[no-any-return]

    def in_flight_by_step(self, journey_id: str) -> list[dict]:
        """Enrollments not exited in a journey, per version, stage and next step."""
        return self._rows(
            """SELECT version, stage, cursor AS step, count(*) AS contacts FROM enrollments
               WHERE journey_id = %s AND status <> 'exited' GROUP BY version, stage, cursor""", (journey_id,))

    # ------------------------------------------------------------------ service health and metrics

    def production_counters(self, now: datetime) -> ProductionCounters:
        """Counts for ``/metrics``: counter tables kept by triggers, and two index ranges
        (what is due, what is in doubt). Cost grows with days and steps, not contacts."""
        with self._snapshot_read() as conn:
            due, oldest = conn.execute(pgsql.METRICS_DUE, (now,)).fetchone() or (0, None)
            return ProductionCounters(
                ticks=dict(conn.execute(pgsql.METRICS_RUNS).fetchall()),
                decisions=dict(conn.execute(pgsql.METRICS_DECISIONS).fetchall()),
                sends=dict(conn.execute(pgsql.METRICS_SENDS).fetchall()),
                due=due,
                oldest_due_at=oldest,
                in_doubt=self._one(pgsql.METRICS_IN_DOUBT),
            )

    def pending_migrations(self) -> list[str]:
        """Migrations this schema still needs (a process with older code opened it)."""
        with self._connection() as conn:
            return pgmigrations.pending_migrations(conn)

    def lease(self, name: str) -> dict | None:
        """The lease ``name``: who holds it and until when (expired or not), or None."""
        with self._connection() as conn:
            row = conn.execute("SELECT holder, expires_at FROM leases WHERE name = %s", (name,)).fetchone()
        return {"holder": row[0], "expires_at": row[1]} if row else None

    # ------------------------------------------------------------------ stats (runner.production.stats)

    def decision_counts(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]:
        """Journal decisions per journey, version, step, action and detail on UTC days in [since, until)."""
        return self._rows(*pgsql.stats_query(pgsql.STATS_DECISIONS, journey_id, since, until))

    def send_counts(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]:
        """Ledger rows per journey, version, step, kind, state and detail."""
        return self._rows(*pgsql.stats_query(pgsql.STATS_SENDS, journey_id, since, until))

    def split_outcomes(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]:
        """Enrollments that reached a split, per journey, version and variants, and how many converted."""
        rows = self._rows(*pgsql.stats_query(pgsql.STATS_SPLITS, journey_id, since, until))
        for row in rows:
            row["variant"] = loads(row["variant"])
        return rows

    def engagement_counts(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]:
        """``email_opened``/``email_clicked`` events per journey and step on UTC days in [since, until)."""
        return self._rows(*pgsql.stats_query(pgsql.STATS_ENGAGEMENT, journey_id, since, until))


def open_postgres_store(url: str, *, read_only: bool = False) -> Store:
    """Open (creating the schema and migrating as needed) the PostgreSQL store at ``url``.

    ``read_only``: for commands that only look: every transaction is read-only and
    nothing is migrated (a schema that needs migrating is a clear error)."""
    return PostgresStore(url, read_only=read_only)
