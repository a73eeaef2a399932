"""``SQLiteStore``: the runner's state in one SQLite file (WAL, busy timeout, foreign keys).

Every write runs in ``BEGIN IMMEDIATE`` so concurrent processes (an import
and a tick, two overlapping ticks) queue on the write lock instead of failing
half-way; readers never block in WAL mode. Hot queries (``due_contacts``,
event inserts) use the raw connection; sqlite-utils provides migrations and
the WAL switch.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from sqlite_utils import Database

from runner.core.addresses import email_key
from runner.core.problems import JourneyError
from runner.core.state import (
    EXITED,
    Contact,
    ContactState,
    Event,
    SendRecord,
)
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
from runner.store.base import ContactRow, EventRow, ProductionCounters, Store
from runner.store.codec import from_db_time, from_json, merge_patch, to_db_time, to_json
from runner.store.errors import (
    MigrationError,
    StoreBusy,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
)
from runner.store.migrations import apply_migrations, pending_migrations
from runner.store.rows import (
    CLAIM_CONFLICT,
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
from runner.store.sqliteerrors import translate, translating
from runner.store.sqlitelock import begin_immediate

BUSY_TIMEOUT_SECONDS = 30.0
CACHE_KIB = 32 * 1024  # page cache per connection: bounded, so memory stays flat
LOAD_CHUNK = 500  # contacts per batched read; SQLite allows 32,766 parameters per statement


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Snapshot:
    """What ``load_contact_state`` saw, so ``save_contact_state`` writes only the engine's changes."""

    rev: int
    attributes: dict[str, Any]
    timezone: str | None
    last_event_id: int  # events with a higher id arrived after the load
    anonymous_ids: list[str]
    enrollment_rows: dict[str, dict[str, Any]]  # as stored: unchanged enrollments are not rewritten


@dataclass(slots=True)
class _PreparedSave:
    """The rows of a batch save, built before its transaction (``SQLiteStore.prepared_save``)."""

    now: str
    updates: list[dict[str, Any]] = field(default_factory=list)  # contacts loaded by this store
    states: dict[str, tuple[ContactState, datetime | None]] = field(default_factory=dict)  # their states, by id
    identities: list[tuple[str, str, str]] = field(default_factory=list)
    enrollments: list[tuple[Any, ...]] = field(default_factory=list)  # changed since the load (_ENROLLMENT_COLUMNS)
    unprepared: list[tuple[ContactState, datetime | None]] = field(default_factory=list)  # no snapshot
    decisions: list[tuple[Any, ...]] = field(default_factory=list)  # _DECISION_COLUMNS
    stops: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)  # suppress steps'


@translating
class SQLiteStore:
    """The production store; see ``runner.store.base.Store`` for the contract.

    Every public method raises the ``StoreError`` family, never ``sqlite3.Error``
    (``runner.store.sqliteerrors.translating``)."""

    def __init__(self, path: str | Path, *, read_only: bool = False):
        self.path = Path(path)
        self.location = str(path)
        self.read_only = read_only
        try:
            conn = _connect_read_only(self.path) if read_only else sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
            )
        except sqlite3.Error as error:
            raise StoreUnavailable(f"cannot open database {self.path}: {error}") from error
        self.conn = conn
        self.db = Database(conn)
        self._snapshots: dict[str, _Snapshot] = {}
        self._savepoints = itertools.count()  # names for nested transactions; unique per connection
        self._synchronous = "FULL"
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            conn.execute("PRAGMA synchronous = FULL")  # power-safe until a caller relaxes it
            if read_only:
                pending = pending_migrations(self.db)
            else:
                self.db.enable_wal()
                apply_migrations(self.db)
        except sqlite3.Error as error:
            conn.close()
            raise _opening_error(error, self.path) from error
        if read_only and pending:
            conn.close()
            raise MigrationError(
                f"{self.path} needs migrating ({', '.join(pending)} pending) but is opened read-only: "
                "run a command that writes (`journey run`, `journey deploy`) with write access first"
            )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions

    def set_commit_durability(self, power_safe: bool) -> None:
        """How durable a commit is by default. In WAL mode ``synchronous = NORMAL``
        survives a killed process but an OS crash or power cut can undo the last
        commits; ``FULL`` (power-safe) fsyncs every commit."""
        self._synchronous = "FULL" if power_safe else "NORMAL"
        self.conn.execute(f"PRAGMA synchronous = {self._synchronous}")

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[None]:
        """A write transaction (``BEGIN IMMEDIATE``); nested calls become savepoints.

        A nested block that fails rolls back only itself; the outermost block
        commits or rolls back everything. ``durable``: this commit is fsynced
        whatever ``set_commit_durability`` says (a send claim before the transport call).
        """
        if durable and not self.conn.in_transaction and self._synchronous != "FULL":
            self.conn.execute("PRAGMA synchronous = FULL")
            try:
                with self.transaction():
                    yield
            finally:
                self.conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            return
        if self.conn.in_transaction:
            name = f"sp_{next(self._savepoints)}"
            self.conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:  # SQLite itself rolls everything back on a full disk
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
                raise
            self.conn.execute(f"RELEASE {name}")
            return
        begin_immediate(self.conn)  # waits for another writer in short naps
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    # ------------------------------------------------------------------ contact state

    def load_contact_state(self, contact_id: str) -> ContactState:
        """Contact, its events (also those under its anonymous ids), enrollments, sends."""
        states = self.load_contact_states([contact_id])
        if contact_id not in states:
            raise KeyError(contact_id)
        return states[contact_id]

    def load_contact_states(self, contact_ids: list[str]) -> dict[str, ContactState]:
        """``load_contact_state`` for a batch (the tick's due contacts): one query per
        table for the whole batch, in one read snapshot. Unknown ids are left out."""
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")  # one consistent snapshot for all reads
            try:
                return self.load_contact_states(contact_ids)
            finally:
                self.conn.execute("COMMIT")
        ids = list(dict.fromkeys(contact_ids))
        states: dict[str, ContactState] = {}
        for start in range(0, len(ids), LOAD_CHUNK):  # bounded IN (...) lists, whatever the caller asks
            states.update(self._load_contact_states(ids[start:start + LOAD_CHUNK]))
        return states

    def _load_contact_states(self, ids: list[str]) -> dict[str, ContactState]:
        rows = {row["id"]: row for row in self._rows(
            f"SELECT *, email AS email_key FROM contacts WHERE id IN ({_marks(ids)})", ids)}
        anonymous: dict[str, list[str]] = {contact_id: [] for contact_id in rows}
        for contact_id, anonymous_id in self.conn.execute(
            f"""SELECT contact_id, anonymous_id FROM identities WHERE contact_id IN ({_marks(rows)})
                ORDER BY linked_at, anonymous_id""", list(rows)):
            anonymous[contact_id].append(anonymous_id)
        # every id (contact or anonymous) -> the contacts of the batch it belongs to
        owners: dict[str, list[str]] = defaultdict(list)
        for contact_id, anonymous_ids in anonymous.items():
            for some_id in (contact_id, *anonymous_ids):
                owners[some_id].append(contact_id)
        events = self._events_of(owners)
        sends = self._sends_of(list(rows))
        suppressed, opt_outs = self._suppressions_of(rows, anonymous)
        enrollment_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self._rows(f"SELECT * FROM enrollments WHERE contact_id IN ({_marks(rows)}) "
                              "ORDER BY entered_at, id", list(rows)):
            enrollment_rows[row["contact_id"]].append(row)
        last_event_id = self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        states = {}
        for contact_id, row in rows.items():
            state = ContactState(
                contact=Contact(id=contact_id, attributes=from_json(row["attributes"], {}),
                                timezone=row["timezone"], anonymous_ids=anonymous[contact_id]),
                events=events.get(contact_id, []),
                sends=sends.get(contact_id, []),
                suppressed=suppressed[contact_id][0] if contact_id in suppressed else None,
                suppressed_at=suppressed[contact_id][1] if contact_id in suppressed else None,
                opt_outs=opt_outs.get(contact_id, {}),
                clock=from_db_time(row["clock"]),
                memory=from_json(row["memory"], {}),
                enrollment_seq=row["enrollment_seq"],
            )
            for enrollment in map(enrollment_from_row, enrollment_rows[contact_id]):
                if enrollment.status == EXITED:
                    state.past_enrollments.append(enrollment)
                else:
                    state.enrollments[enrollment.journey_id] = enrollment
            self._snapshots[contact_id] = _Snapshot(
                rev=row["rev"],
                attributes=from_json(row["attributes"], {}),
                timezone=row["timezone"],
                last_event_id=last_event_id,
                anonymous_ids=list(anonymous[contact_id]),
                enrollment_rows={r["id"]: r for r in enrollment_rows[contact_id]},
            )
            states[contact_id] = state
        return states

    def _events_of(self, owners: dict[str, list[str]]) -> dict[str, list[Event]]:
        """Events under any of the ids, in time order, per owning contact."""
        ids = list(owners)
        cursor = self.conn.execute(
            f"""SELECT name, at, properties, message_id, contact_id, anonymous_id FROM events
                WHERE contact_id IN ({_marks(ids)}) OR anonymous_id IN ({_marks(ids)})
                ORDER BY at, id""",
            ids + ids,
        )
        found: dict[str, list[Event]] = defaultdict(list)
        for name, at, props, mid, owner, anon in cursor:
            event = Event(
                name=name,
                at=from_db_time(at),
                properties=from_json(props, {}),
                message_id=mid,
                # an anonymous visitor's event, or the identify/alias that links the
                # visitor, keeps its anonymous id: the engine counts those events from
                # the instant of the link, as in a simulation
                anonymous_id=anon if owner is None or name in IDENTITY_EVENTS else None,
            )
            for contact_id in dict.fromkeys([*owners.get(owner, ()), *owners.get(anon, ())]):
                found[contact_id].append(event)
        return found

    def _sends_of(self, contact_ids: list[str]) -> dict[str, list[SendRecord]]:
        """The batch's counted sends. Through ``sends_contact`` by name: left to itself (no
        ANALYZE statistics) SQLite took ``sends_state`` and read every sent row of the ledger
        for each page, so a catch-up's cost per send grew with the sends before it."""
        cursor = self.conn.execute(
            f"""SELECT key, contact_id, journey_id, version, step_id, scheduled_at, kind
                FROM sends INDEXED BY sends_contact WHERE contact_id IN ({_marks(contact_ids)}) AND state IN ({_marks(COUNTED_SEND_STATES)})
                ORDER BY scheduled_at, key""",
            (*contact_ids, *COUNTED_SEND_STATES),
        )
        found: dict[str, list[SendRecord]] = defaultdict(list)
        for key, cid, jid, version, step, at, kind in cursor:
            found[cid].append(SendRecord(key=key, contact_id=cid, journey_id=jid, version=version,
                                         step_id=step, at=from_db_time(at), kind=kind))
        return found

    def _suppressions_of(
        self, rows: dict[str, dict[str, Any]], anonymous: dict[str, list[str]]
    ) -> tuple[dict[str, tuple[str, datetime]], dict[str, dict[str, datetime | None]]]:
        """Each contact's earliest suppression (by its id, an anonymous id, or its email):
        its reason and the instant it takes effect; and its topic opt-outs (topic -> the
        earliest instant), which stop marketing topics only."""
        ids = [some_id for contact_id in rows for some_id in (contact_id, *anonymous[contact_id])]
        emails = sorted({row["email_key"] for row in rows.values() if row["email_key"] is not None})
        # no emails: no ``OR email IN ()``, which SQLite answers by reading the whole table
        by_email = f" OR email IN ({_marks(emails)})" if emails else ""
        suppressions = self.conn.execute(
            f"""SELECT contact_id, email, reason, at, topic FROM suppressions
                WHERE contact_id IN ({_marks(ids)}){by_email} ORDER BY at""",
            (*ids, *emails),
        ).fetchall()
        whose = {contact_id: ({contact_id, *anonymous[contact_id]}, row["email_key"]) for contact_id, row in rows.items()}
        return stops_of(whose, [(target_id, email, reason, from_db_time(at), topic)
                                for target_id, email, reason, at, topic in suppressions])

    def save_contact_state(self, state: ContactState, wake_at: datetime | None,
                           decisions: Iterable[Any] = (), run_id: str | None = None) -> None:
        """Write the engine's result in one transaction.

        Attributes are written as a merge patch of what the engine changed.
        If an import touched the contact since it was loaded (``rev`` moved)
        or recorded events for it, the earlier wake-up wins, so nothing
        imported meanwhile is lost.

        ``decisions`` (the engine's, that led to this state) go to the decision
        journal in the same transaction: a crash keeps both or neither, so a
        re-run contact never has its decisions twice.
        """
        self.save_contact_states([(state, wake_at)], decisions, run_id)

    def save_contact_states(self, results: list[tuple[ContactState, datetime | None]],
                            decisions: Iterable[Any] = (), run_id: str | None = None) -> None:
        """``save_contact_state`` for a batch, in one transaction."""
        self.prepared_save(results, decisions, run_id)()

    def prepared_save(self, results: list[tuple[ContactState, datetime | None]],
                      decisions: Iterable[Any] = (), run_id: str | None = None) -> Callable[[], None]:
        """``save_contact_states`` with its rows built now, before any lock is taken; the
        call returned writes them, in one transaction (or the caller's).

        The write lock is one for every worker of a database: what a worker holds it for
        is what the others wait for. So the JSON, the journal and enrollment rows and the
        attribute patches are made here, and the transaction only runs the statements.
        Whether an import touched a contact since its load (``rev``) is decided by the
        update itself."""
        prepared = _PreparedSave(to_db_time(_utcnow()))
        for state, wake_at in results:
            contact = state.contact
            snapshot = self._snapshots.pop(contact.id, None)
            if snapshot is None:  # not loaded by this store: saved as before, reading its row first
                prepared.unprepared.append((state, wake_at))
                continue
            prepared.updates.append({
                "id": contact.id, "rev": snapshot.rev, "seen_event": snapshot.last_event_id,
                "patch": to_json(merge_patch(snapshot.attributes, contact.attributes)),
                "email": address_key(contact.attributes),
                "tz_changed": contact.timezone != snapshot.timezone, "timezone": contact.timezone,
                "clock": to_db_time(state.clock), "memory": to_json(state.memory), "seq": state.enrollment_seq,
                "wake": to_db_time(wake_at), "now": prepared.now})
            prepared.states[contact.id] = (state, wake_at)
            if contact.anonymous_ids != snapshot.anonymous_ids:
                prepared.identities += [(anonymous_id, contact.id, prepared.now) for anonymous_id in contact.anonymous_ids]
            rows = [enrollment_to_row(e) for e in (*state.past_enrollments, *state.enrollments.values())]
            prepared.enrollments += [_enrollment_values(row) for row in rows
                                     if not same_row(snapshot.enrollment_rows.get(row["id"]), row)]
        decisions = list(decisions)
        prepared.decisions = [_decision_values(decision_row(d, run_id)) for d in decisions]
        prepared.stops = step_stop_rows(decisions)
        return partial(self.write_prepared_save, prepared)

    def write_prepared_save(self, prepared: _PreparedSave) -> None:
        """Write what ``prepared_save`` built, in one transaction (see there)."""
        with self.transaction():
            # Events stored since the loads? Usually none: then no contact needs the per-contact look.
            newest_event = self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
            updates = [self._late_events_wake(update, newest_event) for update in prepared.updates]
            written = 0
            for (sql, values), batch in ((_SAVE_STATE_BY_POSITION, [u for u in updates if u["patch"] == "{}"]),
                                         (_SAVE_STATE_AND_ATTRIBUTES_BY_POSITION,
                                          [u for u in updates if u["patch"] != "{}"])):
                if batch:
                    written += self.conn.executemany(sql, map(values, batch)).rowcount
            if written < len(updates):  # a row gone since the load: written whole, as a new contact
                found = {row[0] for row in self.conn.execute(
                    f"SELECT id FROM contacts WHERE id IN ({_marks(updates)})", [u["id"] for u in updates])}
                for update in updates:
                    if update["id"] not in found:
                        self._save(*prepared.states[update["id"]], prepared.now, newest_event)
            self.conn.executemany(
                "INSERT OR IGNORE INTO identities (anonymous_id, contact_id, linked_at) VALUES (?, ?, ?)",
                prepared.identities)
            self.conn.executemany(_UPSERT_ENROLLMENT, prepared.enrollments)
            for state, wake_at in prepared.unprepared:
                self._save(state, wake_at, prepared.now, newest_event)
            self.conn.executemany(_INSERT_DECISION, prepared.decisions)
            if prepared.stops:  # a suppress step's; the earlier one of a target is kept
                self.conn.executemany(_INSERT_STEP_STOP, prepared.stops)

    def _late_events_wake(self, update: dict[str, Any], newest_event: int) -> dict[str, Any]:
        """``update`` waking the contact at its earliest event stored since the load, if that
        is earlier (a copy: the prepared rows stay as built, for a retry)."""
        if newest_event <= update["seen_event"]:
            return update
        first = self._first_event_since(update["id"], update["seen_event"])
        if first is None:
            return update
        return {**update, "wake": min(update["wake"], first) if update["wake"] else first}

    def contact_history(self, contact_id: str, journey_id: str | None = None) -> list[dict[str, Any]]:
        """The contact's journal, oldest first (optionally one journey's); ``at`` as a UTC datetime.

        A send or webhook carries what the ledger says became of it (``send_state``,
        ``send_error``, ``send_retryable``; None when it was never claimed)."""
        rows = self._rows(
            """SELECT d.at, d.contact_id, d.journey_id, d.version, d.stage, d.step, d.action, d.reason, d.key,
                      d.detail, d.run_id, s.state AS send_state, s.error AS send_error,
                      s.retryable AS send_retryable
               FROM decisions AS d
               LEFT JOIN sends AS s ON s.key = d.key AND d.action IN ('send', 'webhook')
               WHERE d.contact_id = :contact AND (:journey IS NULL OR d.journey_id = :journey)
               ORDER BY d.at, d.id""",
            {"contact": contact_id, "journey": journey_id},
        )
        for row in rows:
            row["at"] = from_db_time(row["at"])
            row["detail"] = from_json(row["detail"], {})
        return rows

    def _save(self, state: ContactState, wake_at: datetime | None, now: str, newest_event: int) -> None:
        """One contact of ``save_contact_states`` (inside its transaction)."""
        contact = state.contact
        rows = self._rows(
            "SELECT rev, attributes, timezone, wake_at FROM contacts WHERE id = ?", (contact.id,)
        )
        snapshot = self._snapshots.pop(contact.id, None)
        wake = to_db_time(wake_at)
        if not rows:
            self.conn.execute(
                """INSERT INTO contacts (id, email, timezone, attributes, created_at, updated_at,
                       wake_at, clock, memory, enrollment_seq)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    contact.id, address_key(contact.attributes), contact.timezone,
                    to_json(contact.attributes), now, now, wake, to_db_time(state.clock),
                    to_json(state.memory), state.enrollment_seq,
                ),
            )
        else:
            current = rows[0]
            before = snapshot.attributes if snapshot else from_json(current["attributes"], {})
            timezone = current["timezone"]
            if contact.timezone != (snapshot.timezone if snapshot else timezone):
                timezone = contact.timezone
            if snapshot is not None:
                for outside in (
                    current["wake_at"] if snapshot.rev != current["rev"] else None,
                    self._first_event_since(contact.id, snapshot.last_event_id)
                    if newest_event > snapshot.last_event_id else None,
                ):
                    if outside is not None:
                        wake = min(wake, outside) if wake else outside
            self.conn.execute(
                """UPDATE contacts SET
                       attributes = json_patch(attributes, :patch),
                       email = CASE WHEN json_type(:patch, '$.email') IS NULL THEN email ELSE :email END,
                       timezone = :timezone, clock = :clock, memory = :memory,
                       enrollment_seq = :seq, wake_at = :wake, updated_at = :now
                   WHERE id = :id""",
                {
                    "patch": to_json(merge_patch(before, contact.attributes)),
                    "email": address_key(contact.attributes),
                    "timezone": timezone,
                    "clock": to_db_time(state.clock),
                    "memory": to_json(state.memory),
                    "seq": state.enrollment_seq,
                    "wake": wake,
                    "now": now,
                    "id": contact.id,
                },
            )
        if snapshot is None or contact.anonymous_ids != snapshot.anonymous_ids:
            self.conn.executemany(
                "INSERT OR IGNORE INTO identities (anonymous_id, contact_id, linked_at) VALUES (?, ?, ?)",
                [(anonymous_id, contact.id, now) for anonymous_id in contact.anonymous_ids],
            )
        stored = snapshot.enrollment_rows if snapshot else {}
        rows = [enrollment_to_row(e) for e in (*state.past_enrollments, *state.enrollments.values())]
        self.conn.executemany(_UPSERT_ENROLLMENT, [_enrollment_values(row) for row in rows
                                                   if not same_row(stored.get(row["id"]), row)])

    def _first_event_since(self, contact_id: str, last_event_id: int) -> str | None:
        """Earliest time of the contact's events recorded after ``last_event_id``."""
        return self.conn.execute(FIRST_EVENT_SINCE_SQL, {"after": last_event_id, "id": contact_id}).fetchone()[0]

    def due_contacts(self, now: datetime, limit: int) -> list[str]:
        """Contacts whose ``wake_at`` has come, oldest first (an index range scan)."""
        return [contact_id for _, contact_id in self.due_page(now, limit)]

    def due_page(self, now: datetime, limit: int, after: tuple[str, str] | None = None) -> list[tuple[str, str]]:
        """The next ``limit`` due contacts after the cursor ``after``, as (wake_at, id) keys in order.

        Keyset pagination: the last key of a page is the next page's cursor, so a
        tick reading all that is due reads each row once (an index range scan on
        (wake_at, id), never an OFFSET or a growing LIMIT).
        """
        if after is None:
            return self.conn.execute(DUE_FIRST_PAGE_SQL, (to_db_time(now), limit)).fetchall()
        return self.conn.execute(DUE_NEXT_PAGE_SQL, (to_db_time(now), after[0], after[1], limit)).fetchall()

    # ------------------------------------------------------------------ contact leases (many workers)

    def claim_due(self, now: datetime, holder: str, limit: int, lease_ttl: timedelta,
                  after: tuple[str, str] | None = None) -> list[tuple[str, str]]:
        """Lease the next ``limit`` due contacts after the cursor ``after`` to ``holder``
        for ``lease_ttl`` of wall-clock time; returns their (wake_at, id) keys in order.

        ``due_page`` with a lease: contacts another holder leased (unexpired) are passed
        over, so workers sharing the due index never advance one contact at once, and a
        killed worker's contacts are claimable again once its lease expires. One short
        ``BEGIN IMMEDIATE`` (an ``UPDATE … RETURNING`` over a keyset range of the due index):
        rows read grow with what is due and in flight, not with what is enrolled.
        """
        wall = _utcnow()
        params: dict[str, Any] = {"now": to_db_time(now), "holder": holder, "limit": limit,
                                  "wall": to_db_time(wall), "until": to_db_time(wall + lease_ttl)}
        keyset = ""
        if after is not None:
            keyset = "AND (wake_at, id) > (:after_wake, :after_id)"
            params.update(after_wake=after[0], after_id=after[1])
        with self.transaction():
            rows = self.conn.execute(CLAIM_DUE_SQL.format(keyset=keyset), params).fetchall()
        return sorted(rows)

    def renew_contacts(self, holder: str, lease_ttl: timedelta) -> int:
        """Extend every contact lease ``holder`` has (a slow batch keeps its contacts)."""
        with self.transaction():
            return self.conn.execute(
                "UPDATE contacts SET lease_until = ? WHERE lease_holder = ?",
                (to_db_time(_utcnow() + lease_ttl), holder)).rowcount

    def release_contacts(self, holder: str, contact_ids: Iterable[str] | None = None) -> None:
        """Free ``holder``'s leases on ``contact_ids`` (None: all it has; its process is gone)."""
        with self.transaction():
            if contact_ids is None:
                self.conn.execute("UPDATE contacts SET lease_holder = NULL, lease_until = NULL "
                                  "WHERE lease_holder = ?", (holder,))
                return
            ids = list(contact_ids)
            for start in range(0, len(ids), LOAD_CHUNK):
                chunk = ids[start:start + LOAD_CHUNK]
                self.conn.execute(f"UPDATE contacts SET lease_holder = NULL, lease_until = NULL "
                                  f"WHERE lease_holder = ? AND id IN ({_marks(chunk)})", (holder, *chunk))

    def lease_holders(self, now: datetime | None = None) -> list[str]:
        """Holders of named leases (the tick's, each worker's): unexpired at ``now``, or all."""
        return [holder for (holder,) in self.conn.execute(
            "SELECT DISTINCT holder FROM leases WHERE ? IS NULL OR expires_at > ? ORDER BY holder",
            (to_db_time(now), to_db_time(now)))]

    def contact_leases(self, now: datetime) -> dict[str, Any]:
        """The workers' contact leases for ``/readyz``: how many contacts are leased, by how
        many holders, the oldest expiry and how many have expired at ``now`` (a killed worker's,
        free for the taking). Read from the partial index of leased contacts: in flight only."""
        count, holders, oldest, expired = self.conn.execute(
            "SELECT count(*), count(DISTINCT lease_holder), min(lease_until), coalesce(sum(lease_until <= ?), 0) "
            "FROM contacts WHERE lease_holder IS NOT NULL", (to_db_time(now),)).fetchone()
        return {"count": count, "holders": holders, "oldest_expires_at": from_db_time(oldest), "expired": expired}

    # ------------------------------------------------------------------ send ledger

    def claim_send(self, record: SendRecord, run_id: str) -> bool:
        """Claim a send before calling the transport; False means never send it.

        The key is unique: only one claim ever wins, except that a transient
        failure (``fail_send(..., permanent=False)``) may be claimed again
        (the tick retries it when its ``retry_at`` has come, until the project's
        ``retry.max_age``; then it fails for good).
        """
        return self.claim_sends([record], run_id, resendable=False)[0]

    def claim_sends(self, records: list[SendRecord], run_id: str, *, resendable: bool) -> list[bool]:
        """Claim several sends in one transaction (each as ``claim_send``), in one statement
        (up to ``STATEMENT_ROWS``): a key back from ``RETURNING`` is a win; a key twice in the
        batch wins at most once, the first time (as one claim after the other would).

        ``resendable``: the transport is idempotent (the same key rewrites the
        same file), so a claim a crash leaves unconfirmed is sent again by the
        next run instead of waiting in doubt for an operator.
        """
        if not records:
            return []
        claims, won_of = distinct_claims(records)
        statements = [(_claim_sends_sql(len(chunk)), [
            to_db_time(_utcnow()), run_id, int(resendable),
            *(value for record in chunk for value in (record.key, record.contact_id, record.journey_id, record.version,
                                                       record.step_id, record.kind, to_db_time(record.at)))])
            for chunk in _chunks(claims, STATEMENT_ROWS)]
        with self.transaction():
            won = {key for sql, params in statements for (key,) in self.conn.execute(sql, params)}
        return won_of(won)

    def mark_handed_over(self, key: str) -> None:
        """A queued claim (``claim_sends(..., resendable=True)``) is about to go to a transport
        that is not idempotent: from now on a crash leaves it in doubt, not to be sent again."""
        with self.transaction():
            self.conn.execute("UPDATE sends SET retryable = 0 WHERE key = ? AND state = 'claimed'", (key,))

    def confirm_send(self, key: str, transport_id: str) -> None:
        self.confirm_sends([(key, transport_id)])

    def confirm_sends(self, delivered: list[tuple[str, str]]) -> None:
        """``confirm_send`` for many (key, transport id) pairs in one statement (a key twice: the last)."""
        if not delivered:
            return
        now = to_db_time(_utcnow())
        statements = [(_confirm_sends_sql(len(chunk)), [now, *(value for pair in chunk for value in pair)])
                      for chunk in _chunks(list(dict(delivered).items()), STATEMENT_ROWS)]
        with self.transaction():
            for sql, params in statements:
                self.conn.execute(sql, params)

    def fail_send(self, key: str, error: str, permanent: bool, *, retry_at: datetime | None = None,
                  failed_at: datetime | None = None) -> None:
        """Record a failed delivery. A transient one (not ``permanent``) is tried again
        from ``retry_at``; ``failed_at`` is kept as the first failure's time (its age)."""
        with self.transaction():
            self.conn.execute(
                """UPDATE sends SET state = 'failed', error = ?, retryable = ?, retry_at = ?,
                       first_failed_at = coalesce(first_failed_at, ?) WHERE key = ?""",
                (error, 0 if permanent else 1, None if permanent else to_db_time(retry_at),
                 to_db_time(failed_at), key),
            )

    def requeue_sends(self, keys: Iterable[str] = (), *, since: datetime | None = None,
                      until: datetime | None = None, every: bool = False) -> list[str]:
        """Failed sends (for good or not) made retryable again, due at once and with a fresh
        age: those named by ``keys``, scheduled in [``since``, ``until``), or ``every`` one.
        Returns the keys requeued; a named key that is not failed is an error."""
        keys = list(keys)
        with self.transaction():
            failed = {key for (key,) in self.conn.execute(
                f"SELECT key FROM sends WHERE state = 'failed' AND key IN ({_marks(keys)})", keys)} if keys else set()
            missing = [key for key in keys if key not in failed]
            if missing:
                raise JourneyError(f"not failed: {', '.join(missing)} (see `journey status`)")
            chosen = set(failed)
            if every or since is not None or until is not None:
                chosen.update(key for (key,) in self.conn.execute(
                    """SELECT key FROM sends WHERE state = 'failed'
                       AND (:since IS NULL OR scheduled_at >= :since) AND (:until IS NULL OR scheduled_at < :until)""",
                    {"since": to_db_time(since), "until": to_db_time(until)}))
            self.conn.executemany(
                """UPDATE sends SET retryable = 1, retry_at = NULL, first_failed_at = NULL,
                       error = 'requeued: ' || coalesce(error, '') WHERE key = ?""",
                [(key,) for key in chosen])
        return sorted(chosen)

    def skip_send(self, record: SendRecord, reason: str, run_id: str) -> None:
        """Record a send the engine decided not to make (suppressed, capped, holdout)."""
        with self.transaction():
            self.conn.execute(
                """INSERT OR IGNORE INTO sends (key, contact_id, journey_id, version, step_id, kind,
                       scheduled_at, state, error, run_id)
                   VALUES (?, ?, ?, ?, ?, ?, ?, 'skipped', ?, ?)""",
                (
                    record.key, record.contact_id, record.journey_id, record.version,
                    record.step_id, record.kind, to_db_time(record.at), reason, run_id,
                ),
            )

    def in_doubt_sends(self, now: datetime | None = None, *, gone_holders: Iterable[str] = (),
                       mark: bool = True) -> list[dict]:
        """Sends claimed by runs that finished or died without confirming them.

        A run is alive while it is unfinished and its holder still holds an
        unexpired lease, unless the holder is in ``gone_holders`` (a process
        known to be dead: its lease has not expired yet); claims of other runs
        are marked ``in_doubt`` here (the transport may or may not have
        delivered them) and listed. Resendable claims (an idempotent transport)
        are not in doubt: they become retryable failures, and the next tick
        sends them again. ``mark=False`` lists the same sends and writes nothing
        (a read-only database).
        """
        gone = list(gone_holders)
        alive = f"""EXISTS (
                       SELECT 1 FROM runs JOIN leases ON leases.holder = runs.holder
                       WHERE runs.id = sends.run_id AND runs.finished_at IS NULL
                         AND leases.expires_at > ? AND leases.holder NOT IN ({_marks(gone)}))"""
        params = (to_db_time(now or _utcnow()), *gone)
        if not mark:
            return self._rows(
                f"""SELECT * FROM sends WHERE state = 'in_doubt' OR (state = 'claimed' AND retryable = 0
                    AND NOT {alive}) ORDER BY claimed_at, key""", params)
        with self.transaction():
            self.conn.execute(
                f"""UPDATE sends SET
                       state = CASE retryable WHEN 1 THEN 'failed' ELSE 'in_doubt' END,
                       error = CASE retryable WHEN 1 THEN ? ELSE error END
                   WHERE state = 'claimed' AND NOT {alive}""",
                (INTERRUPTED_RESENDABLE, *params),
            )
            return self._rows(
                "SELECT * FROM sends WHERE state = 'in_doubt' ORDER BY claimed_at, key"
            )

    def resolve_in_doubt(self, key: str, outcome: Literal["sent", "failed"]) -> None:
        """An operator's verdict on an in-doubt send: delivered, or not (may be retried)."""
        if outcome not in ("sent", "failed"):
            raise JourneyError(f"outcome must be 'sent' or 'failed', not {outcome!r}")
        with self.transaction():
            if outcome == "sent":
                sql = "UPDATE sends SET state = 'sent', sent_at = coalesce(sent_at, claimed_at) WHERE key = ? AND state = 'in_doubt'"
            else:
                sql = "UPDATE sends SET state = 'failed', retryable = 1, error = 'resolved as not sent' WHERE key = ? AND state = 'in_doubt'"
            if self.conn.execute(sql, (key,)).rowcount != 1:
                raise JourneyError(f"no in-doubt send with key {key!r}")

    # ------------------------------------------------------------------ leases and runs

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Take the lease if it is free, expired, or already ours (atomic)."""
        with self.transaction():
            cursor = self.conn.execute(
                """INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                       expires_at = excluded.expires_at
                   WHERE leases.expires_at <= ? OR leases.holder = excluded.holder""",
                (name, holder, to_db_time(now + ttl), to_db_time(now)),
            )
            return cursor.rowcount == 1

    def renew_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Extend our lease; False if it expired and someone else took it."""
        with self.transaction():
            cursor = self.conn.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?",
                (to_db_time(now + ttl), name, holder),
            )
            return cursor.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def start_run(self, holder: str, now: datetime) -> str:
        run_id = f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        with self.transaction():
            self.conn.execute(
                "INSERT INTO runs (id, holder, started_at, status) VALUES (?, ?, ?, 'running')",
                (run_id, holder, to_db_time(now)),
            )
        return run_id

    def finish_run(self, run_id: str, counts: dict, status: str, now: datetime) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET finished_at = ?, counts = ?, status = ? WHERE id = ?",
                (to_db_time(now), to_json(counts), status, run_id),
            )

    # ------------------------------------------------------------------ deployments

    def record_deployment(
        self, journey_id: str, version: int, content_hash: str, content: str, now: datetime
    ) -> bool:
        """Record a deployed journey version; True if new, False if already deployed as is.

        A version is immutable once deployed: contacts in flight are pinned to
        it. Changed content under the same version is refused.
        """
        with self.transaction():
            existing = self.deployed(journey_id, version)
            if existing is not None:
                if existing["content_hash"] != content_hash:
                    raise JourneyError(
                        f"journey {journey_id!r} version {version} is already deployed with "
                        "different content; bump its version"
                    )
                return False
            self.conn.execute(
                """INSERT INTO deployments (journey_id, version, content_hash, content, deployed_at)
                   VALUES (?, ?, ?, ?, ?)""",
                (journey_id, version, content_hash, content, to_db_time(now)),
            )
            return True

    def deployments(self) -> list[dict]:
        return self._rows("SELECT * FROM deployments ORDER BY journey_id, version")

    def record_templates(self, templates: dict[str, str], now: datetime) -> bool:
        """Make ``templates`` (name -> source) the deployed set; True if it changed."""
        wanted = {name: hashlib.sha256(source.encode()).hexdigest() for name, source in templates.items()}
        with self.transaction():
            current = dict(self.conn.execute("SELECT name, sha256 FROM deployed_templates").fetchall())
            if current == wanted:
                return False
            self.conn.execute("DELETE FROM deployed_templates")
            self.conn.executemany(
                "INSERT INTO deployed_templates (name, sha256, content, deployed_at) VALUES (?, ?, ?, ?)",
                [(name, wanted[name], source, to_db_time(now)) for name, source in sorted(templates.items())])
            return True

    def deployed_templates(self) -> dict[str, str] | None:
        """The deployed templates (name -> source); None if no deploy ever recorded them."""
        rows = self.conn.execute("SELECT name, content FROM deployed_templates").fetchall()
        return dict(rows) if rows else None

    def deployed(self, journey_id: str, version: int) -> dict | None:
        rows = self._rows(
            "SELECT * FROM deployments WHERE journey_id = ? AND version = ?", (journey_id, version)
        )
        return rows[0] if rows else None

    # ------------------------------------------------------------------ suppressions

    def add_suppression(self, contact_or_email: str, reason: str, source: str, now: datetime,
                        topic: str | None = None) -> None:
        """Suppress a contact id or an email address (case-insensitive). Reason
        ``unsubscribed`` records the opt-out of ``topic`` (default "*": every marketing
        topic) instead, as the preferences page's events do: transactional email still goes."""
        if reason not in SUPPRESSION_REASONS:
            raise JourneyError(
                f"unknown suppression reason {reason!r}; use one of {', '.join(SUPPRESSION_REASONS)}"
            )
        topic = suppression_topic(reason, topic)
        target, contact_id, email = suppression_target(contact_or_email, topic)
        with self.transaction():
            self.conn.execute(
                """INSERT INTO suppressions (target, contact_id, email, reason, at, source, topic)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (target) DO UPDATE SET reason = excluded.reason,
                       at = excluded.at, source = excluded.source""",
                (target, contact_id, email, reason, to_db_time(now), source, topic),
            )

    def remove_suppression(self, contact_or_email: str) -> bool:
        """Lift every suppression and topic opt-out of a contact id or an address."""
        target, _, _ = suppression_target(contact_or_email)
        with self.transaction():
            cursor = self.conn.execute(
                "DELETE FROM suppressions WHERE target = :t OR (topic IS NOT NULL AND target = 'topic:' || topic || ':' || :t)",
                {"t": target})
            return cursor.rowcount > 0

    def suppressions(self, contact_id: str | None = None) -> list[dict]:
        """Every suppression and topic opt-out, oldest first; with ``contact_id``, that contact's
        (by its id, its anonymous ids or its address). ``topic``: None for a suppression (every
        email stops), the topic of an unsubscribe ("*": every marketing topic); ``detail`` says
        which bounce or complaint made it (``hard_bounce: 5.1.1 …``, runner.core.bounces) when
        an event did, else None."""
        rows = self._rows(
            """SELECT s.contact_id, s.email, s.reason, s.at, s.source, s.topic, e.properties AS detail
               FROM suppressions s LEFT JOIN events e
                 ON s.source LIKE 'event:%' AND e.message_id = substr(s.source, 7)
               WHERE :c IS NULL OR s.contact_id = :c
                  OR s.contact_id IN (SELECT anonymous_id FROM identities WHERE contact_id = :c)
                  OR s.email = (SELECT email FROM contacts WHERE id = :c)
               ORDER BY s.at, s.target""", {"c": contact_id})
        return suppression_details(rows)

    def contacts_by_email(self, emails: list[str]) -> dict[str, list[str]]:
        """The contact ids stored under each address (case-insensitive; lower-cased keys)."""
        keys = sorted({email_key(email) for email in emails})
        found: dict[str, list[str]] = defaultdict(list)
        for start in range(0, len(keys), LOAD_CHUNK):
            chunk = keys[start:start + LOAD_CHUNK]
            for contact_id, email in self.conn.execute(
                f"SELECT id, email FROM contacts WHERE email IN ({_marks(chunk)}) ORDER BY id", chunk
            ):
                found[email].append(contact_id)
        return dict(found)

    def is_suppressed(self, contact_id: str, at: datetime | None = None) -> str | None:
        """The suppression reason for a contact (by id, anonymous ids or email), or None;
        with ``at``, only a suppression already in effect at that instant counts."""
        rows = self._rows("SELECT email AS email_key FROM contacts WHERE id = ?", (contact_id,))
        anonymous_ids = [
            r[0]
            for r in self.conn.execute(
                "SELECT anonymous_id FROM identities WHERE contact_id = ?", (contact_id,)
            )
        ]
        row = rows[0] if rows else {"email_key": None}
        hard, opt_outs = self._suppressions_of({contact_id: row}, {contact_id: anonymous_ids})
        return stop_in_force(hard.get(contact_id), opt_outs.get(contact_id, {}), at)

    # ------------------------------------------------------------------ status

    def status_summary(self, now: datetime) -> dict:
        """Counts for ``journey status``: where contacts are, what is due, what went wrong."""
        now_text = to_db_time(now)
        return {
            "contacts": self.conn.execute("SELECT count(*) FROM contacts").fetchone()[0],
            "due_contacts": self.conn.execute(
                "SELECT count(*) FROM contacts WHERE wake_at <= ?", (now_text,)
            ).fetchone()[0],
            "next_wake_at": self.conn.execute(
                "SELECT min(wake_at) FROM contacts WHERE wake_at > ?", (now_text,)
            ).fetchone()[0],
            "enrollments": self._rows(
                """SELECT journey_id, version, stage, cursor AS step, status, count(*) AS contacts,
                          sum(due_at <= :now) AS due
                   FROM enrollments WHERE status != 'exited'
                   GROUP BY journey_id, version, stage, cursor, status
                   ORDER BY journey_id, version, stage, cursor, status""",
                {"now": now_text},
            ),
            "exits": self._rows(
                """SELECT journey_id, exit_reason, count(*) AS contacts FROM enrollments
                   WHERE status = 'exited' GROUP BY journey_id, exit_reason
                   ORDER BY journey_id, exit_reason"""
            ),
            "sends": dict(
                self.conn.execute("SELECT state, count(*) FROM sends GROUP BY state ORDER BY state")
            ),
            "failures": self._rows(
                """SELECT key, contact_id, journey_id, step_id, error, attempts, retryable, retry_at,
                          first_failed_at
                   FROM sends WHERE state = 'failed' ORDER BY claimed_at DESC LIMIT 20"""
            ),
            "in_doubt": self._rows(
                """SELECT key, contact_id, journey_id, step_id, claimed_at, run_id
                   FROM sends WHERE state = 'in_doubt' ORDER BY claimed_at"""
            ),
            "suppressions": dict(
                self.conn.execute(
                    "SELECT reason, count(*) FROM suppressions GROUP BY reason ORDER BY reason"
                )
            ),
            "runs": [
                {**row, "counts": from_json(row["counts"], {})}
                for row in self._rows("SELECT * FROM runs ORDER BY started_at DESC LIMIT 10")
            ],
            "leases": self._rows("SELECT * FROM leases ORDER BY name"),
        }

    # ------------------------------------------------------------------ bulk ingestion

    def write_contacts(self, rows: Iterable[ContactRow], now: datetime) -> int:
        """Upsert contacts, merging attributes (RFC 7396); returns how many were new or changed.

        A contact that is new or changed becomes due at ``changed_at`` (or
        ``now``), so segment entries see the change; re-importing the same
        data changes nothing and wakes nobody.
        """
        now_text = to_db_time(now)
        changed = 0
        links: list[tuple[str, str]] = []
        rows = list(rows)
        with self.transaction():
            delivered = self._imported_values([row.id for row in rows if row.snapshot])
            for row in rows:
                wake = to_db_time(row.changed_at) if row.changed_at else now_text
                attributes, imported = row.attributes, None
                if row.snapshot:  # only what the source changed since its last import (runner.store.sourcevalues)
                    before = delivered.get(row.id, {})
                    attributes = source_changes(row.attributes, before)
                    if attributes:
                        delivered[row.id] = apply_patch(before, row.attributes)
                        imported = to_json(delivered[row.id])
                cursor = self.conn.execute(_UPSERT_CONTACT, {
                    "id": row.id,
                    "email": address_key(attributes),
                    "timezone": row.timezone,
                    "attributes": to_json(attributes),
                    "imported": imported,
                    "now": now_text,
                    "wake": wake,
                })
                changed += cursor.rowcount
                if imported is not None and not cursor.rowcount:  # the source changed to what a journey had set
                    self.conn.execute("UPDATE contacts SET imported = ? WHERE id = ?", (imported, row.id))
                links.extend((anonymous_id, row.id) for anonymous_id in row.anonymous_ids)
            if links:
                self.link_identities(links, now)
        return changed

    def _imported_values(self, contact_ids: list[str]) -> dict[str, dict[str, Any]]:
        """What contacts imports last delivered for these contacts (``contacts.imported``)."""
        found: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(contact_ids))
        for start in range(0, len(ids), LOAD_CHUNK):
            chunk = ids[start:start + LOAD_CHUNK]
            found.update((contact_id, from_json(values, {})) for contact_id, values in self.conn.execute(
                f"SELECT id, imported FROM contacts WHERE id IN ({_marks(chunk)})", chunk))
        return found

    def write_events(self, rows: list[EventRow], now: datetime) -> int:
        """Insert events (``message_id`` deduplicates); returns how many were new.

        Contacts named by ``contact_id`` are created if unknown; each event
        makes its contact due at the event's time (``wake_at = min(wake_at,
        at)``), also through an already linked anonymous id.
        """
        now_text = to_db_time(now)
        records = []
        contact_wake: dict[str, str] = {}
        anonymous_wake: dict[str, str] = {}
        for row in rows:
            at = to_db_time(row.at)
            records.append(
                (row.contact_id, row.anonymous_id, row.name, at, to_json(row.properties), row.message_id)
            )
            if row.contact_id is not None:
                if at < contact_wake.get(row.contact_id, "~"):
                    contact_wake[row.contact_id] = at
            elif row.anonymous_id is not None and at < anonymous_wake.get(row.anonymous_id, "~"):
                anonymous_wake[row.anonymous_id] = at
        suppressing = [row for row in rows if row.name in SUPPRESSING_EVENTS
                       or (row.name == RESUBSCRIBED and "topic" in row.properties)]
        with self.transaction():
            self.conn.executemany(
                _CREATE_OR_WAKE_CONTACT,
                [(cid, now_text, now_text, at) for cid, at in contact_wake.items()],
            )
            if suppressing:  # before the insert: only events new to the store suppress
                self._record_suppressions(suppressing)
            inserted = self.conn.executemany(
                """INSERT OR IGNORE INTO events (contact_id, anonymous_id, name, at, properties, message_id)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                records,
            ).rowcount
            self.conn.executemany(
                _WAKE_LINKED_CONTACT, [(at, anon, at) for anon, at in anonymous_wake.items()]
            )
        return inserted

    def _record_suppressions(self, rows: list[EventRow]) -> None:
        """Suppressions for the suppressing events (``email_bounced``, ``email_complained``)
        and topic opt-outs for ``unsubscribed`` events (their ``topic``, else "*") the
        store does not hold yet, effective at each event's time; a ``resubscribed`` event
        naming a topic lifts that topic's opt-out made at or before it.

        They are written once, when the event first arrives: a replayed export
        does not re-suppress someone an operator resubscribed. The earliest
        suppression of a target is kept, as the engine keeps it.
        """
        seen = self.existing_message_ids([row.message_id for row in rows])
        for row in sorted(rows, key=lambda row: row.at):  # in time order: an opt-out, then its lifting
            who = row.contact_id or row.anonymous_id
            if row.message_id in seen or not who:
                continue
            if row.name == RESUBSCRIBED:
                self.conn.execute("DELETE FROM suppressions WHERE target = ? AND at <= ?",
                                  (suppression_target(who, event_topic(row.properties))[0], to_db_time(row.at)))
                if event_topic(row.properties) == ALL_TOPICS:  # back to everything: a suppress step's stop too
                    self.conn.execute("DELETE FROM suppressions WHERE contact_id = ? AND topic LIKE ? AND at <= ?",
                                      (who, f"{STEP_STOP}%", to_db_time(row.at)))
                continue
            reason = SUPPRESSING_EVENTS[row.name]
            topic = event_topic(row.properties) if reason == UNSUBSCRIBED else None
            self.conn.execute(
                """INSERT INTO suppressions (target, contact_id, email, reason, at, source, topic)
                   VALUES (?, ?, NULL, ?, ?, ?, ?)
                   ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, at = excluded.at,
                       source = excluded.source
                   WHERE excluded.at < suppressions.at""",
                (suppression_target(who, topic)[0], who, reason, to_db_time(row.at), f"event:{row.message_id}", topic),
            )

    def link_identities(self, links: Iterable[tuple[str, str]], now: datetime) -> None:
        """Link anonymous ids to contacts (the first link wins) and wake each contact
        at its anonymous past, so earlier visits count from now on."""
        now_text = to_db_time(now)
        with self.transaction():
            for anonymous_id, contact_id in links:
                self.conn.execute(
                    "INSERT OR IGNORE INTO contacts (id, created_at, updated_at) VALUES (?, ?, ?)",
                    (contact_id, now_text, now_text),
                )
                linked = self.conn.execute(
                    """INSERT OR IGNORE INTO identities (anonymous_id, contact_id, linked_at)
                       VALUES (?, ?, ?)""",
                    (anonymous_id, contact_id, now_text),
                ).rowcount
                if linked:
                    self.conn.execute(
                        """UPDATE contacts SET wake_at = min(coalesce(wake_at, earliest.at), earliest.at),
                               rev = rev + 1
                           FROM (SELECT min(at) AS at FROM events WHERE anonymous_id = ?) AS earliest
                           WHERE contacts.id = ? AND earliest.at IS NOT NULL""",
                        (anonymous_id, contact_id),
                    )

    def existing_message_ids(self, message_ids: list[str]) -> set[str]:
        """Which of these message ids are stored already (to apply identify/unsubscribe once)."""
        found: set[str] = set()
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                mid for (mid,) in self.conn.execute(
                    f"SELECT message_id FROM events WHERE message_id IN ({marks})", chunk
                )
            )
        return found


    # ------------------------------------------------------------------ production ticks (runner.production.tick)

    def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` (expired or not), or None."""
        row = self.conn.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def unfinished_runs(self, recent: int = 50) -> list[dict]:
        """Runs among the ``recent`` newest that never finished (index on started_at: constant cost)."""
        return [
            row for row in self._rows(
                "SELECT id, holder, started_at, finished_at FROM runs ORDER BY started_at DESC LIMIT ?",
                (recent,),
            )
            if row["finished_at"] is None
        ]

    def retryable_sends(self, now: datetime | None = None) -> list[dict]:
        """Failed sends that ``claim_send`` would let a caller claim again and whose
        ``retry_at`` has come by ``now`` (None: all of them), oldest first."""
        return self._rows(
            """SELECT key, contact_id, journey_id, version, step_id, kind, scheduled_at, attempts,
                      first_failed_at FROM sends
               WHERE state = 'failed' AND retryable = 1 AND (:now IS NULL OR retry_at IS NULL OR retry_at <= :now)
               ORDER BY scheduled_at, key""",
            {"now": to_db_time(now)},
        )

    def events_after(self, contact_id: str, anonymous_ids: list[str], after_id: int) -> list[tuple[int, str, datetime]]:
        """(row id, message id, at) of the contact's events stored after row ``after_id``."""
        ids = [contact_id, *anonymous_ids]
        marks = ",".join("?" * len(ids))
        cursor = self.conn.execute(
            f"""SELECT id, message_id, at FROM events
                WHERE (contact_id IN ({marks}) OR anonymous_id IN ({marks})) AND id > ?""",
            (*ids, *ids, after_id),
        )
        return [(row_id, message_id, from_db_time(at)) for row_id, message_id, at in cursor]

    def events_after_many(self, wanted: list[tuple[str, list[str], int]]) -> dict[str, list[tuple[int, str, datetime]]]:
        """``events_after`` for a batch of (contact id, anonymous ids, after row id), in one
        read (a tick's page: one query per table, not one per contact)."""
        found: dict[str, list[tuple[int, str, datetime]]] = {contact_id: [] for contact_id, _, _ in wanted}
        if not wanted:
            return found
        owners: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for contact_id, anonymous_ids, after_id in wanted:
            for some_id in (contact_id, *anonymous_ids):
                owners[some_id].append((contact_id, after_id))
        ids = list(owners)
        after = min(after_id for _, _, after_id in wanted)
        for start in range(0, len(ids), LOAD_CHUNK):
            chunk = ids[start:start + LOAD_CHUNK]
            cursor = self.conn.execute(
                f"""SELECT id, message_id, at, contact_id, anonymous_id FROM events
                    WHERE (contact_id IN ({_marks(chunk)}) OR anonymous_id IN ({_marks(chunk)})) AND id > ?
                    ORDER BY id""", (*chunk, *chunk, after))
            collect_events_after(cursor, owners, found)
        return found

    def wake_at(self, contact_id: str) -> datetime | None:
        """The instant the contact is due (None: not due at all)."""
        row = self.conn.execute("SELECT wake_at FROM contacts WHERE id = ?", (contact_id,)).fetchone()
        return from_db_time(row[0]) if row else None

    def in_flight_by_step(self, journey_id: str) -> list[dict]:
        """Enrollments not exited in a journey, per version, stage and next step (``step``: None when idle)."""
        return self._rows(
            """SELECT version, stage, cursor AS step, count(*) AS contacts FROM enrollments
               WHERE journey_id = ? AND status != 'exited' GROUP BY version, stage, cursor""",
            (journey_id,),
        )

    # ------------------------------------------------------------------ service health and metrics

    def production_counters(self, now: datetime) -> ProductionCounters:
        """Counts for ``/metrics``: counter tables kept by triggers, and two index ranges
        (what is due, what is in doubt). Cost grows with days and steps, not contacts."""
        now_text = to_db_time(now)
        due, oldest = self.conn.execute(METRICS_DUE_SQL, (now_text,)).fetchone()
        return ProductionCounters(
            ticks=dict(self.conn.execute(METRICS_RUNS_SQL).fetchall()),
            decisions=dict(self.conn.execute(METRICS_DECISIONS_SQL).fetchall()),
            sends=dict(self.conn.execute(METRICS_SENDS_SQL).fetchall()),
            due=due,
            oldest_due_at=from_db_time(oldest),
            in_doubt=self.conn.execute(METRICS_IN_DOUBT_SQL).fetchone()[0],
        )

    def pending_migrations(self) -> list[str]:
        """Migrations this database still needs (a process with older code opened it)."""
        return pending_migrations(self.db)

    def lease(self, name: str) -> dict | None:
        """The lease ``name``: who holds it and until when (expired or not), or None."""
        row = self.conn.execute("SELECT holder, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
        return {"holder": row[0], "expires_at": from_db_time(row[1])} if row else None

    # ------------------------------------------------------------------ stats (runner.production.stats)

    def decision_counts(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]:
        """Journal decisions per journey, version, step, action and detail (a skip's or
        exit's reason, a split's variant) on UTC days ``since`` <= day < ``until``."""
        return self._rows(*stats_query(STATS_DECISIONS_SQL, journey_id, since, until))

    def send_counts(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]:
        """Ledger rows per journey, version, step, kind, state and detail (a skip's reason)."""
        return self._rows(*stats_query(STATS_SENDS_SQL, journey_id, since, until))

    def split_outcomes(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]:
        """Enrollments that reached a split, entered on days ``since`` <= day < ``until``: per
        journey, version and variants (``{split step: variant}``): enrollments ``n``, of them
        ``converted`` reached the goal (within its window: the engine records no later goal)."""
        rows = self._rows(*stats_query(STATS_SPLITS_SQL, journey_id, since, until))
        for row in rows:
            row["variant"] = from_json(row["variant"], {})
        return rows

    def engagement_counts(self, journey_id: str | None, since: str | None, until: str | None) -> list[dict]:
        """``email_opened``/``email_clicked`` events per journey and step (from their
        properties) on UTC days ``since`` <= day < ``until``."""
        return self._rows(*stats_query(STATS_ENGAGEMENT_SQL, journey_id, since, until))


def _opening_error(error: sqlite3.Error, path: Path) -> StoreError:
    """Why a file could not be opened as a store: busy, full and unwritable say so; anything
    else (not SQLite, damaged, another application's tables) is not a journey-runner database."""
    translated = translate(error, path)
    if type(translated) in (StoreBusy, StoreFull, StoreReadOnly, StoreUnavailable):
        return translated
    return StoreCorrupt(f"{path} is not a journey-runner database ({error})")


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write. A WAL database needs its ``-shm`` file; where that
    cannot be created (a read-only folder or mount, no writer running) the file is read
    as immutable, which is what it is from here."""
    base = f"file:{quote(str(path.absolute()))}?mode=ro"
    conn = sqlite3.connect(base, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
    return sqlite3.connect(base + "&immutable=1", uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)


def open_store(path: str | Path, *, read_only: bool = False) -> Store:
    """Open (creating and migrating as needed) the SQLite store at ``path``.

    ``read_only``: for commands that only look (status, dry runs, history): the
    file is opened read-only, nothing is created, switched or migrated (a
    database that needs migrating is a clear error)."""
    return SQLiteStore(path, read_only=read_only)


DUE_FIRST_PAGE_SQL = "SELECT wake_at, id FROM contacts WHERE wake_at <= ? ORDER BY wake_at, id LIMIT ?"
DUE_NEXT_PAGE_SQL = ("SELECT wake_at, id FROM contacts WHERE wake_at <= ? AND (wake_at, id) > (?, ?) "
                     "ORDER BY wake_at, id LIMIT ?")
DUE_CONTACTS_SQL = DUE_FIRST_PAGE_SQL
# the due keyset page of ``due_page``, less what another holder has leased, leased to :holder
CLAIM_DUE_SQL = """
UPDATE contacts SET lease_holder = :holder, lease_until = :until
WHERE id IN (SELECT id FROM contacts WHERE wake_at <= :now {keyset}
             AND (lease_holder IS NULL OR lease_holder = :holder OR lease_until <= :wall)
             ORDER BY wake_at, id LIMIT :limit)
RETURNING wake_at, id
"""

# events only ever move wake_at earlier; skipping no-op writes keeps backfills cheap
_CREATE_OR_WAKE_CONTACT = """
INSERT INTO contacts (id, created_at, updated_at, wake_at) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET wake_at = excluded.wake_at
WHERE contacts.wake_at IS NULL OR excluded.wake_at < contacts.wake_at
"""
_WAKE_LINKED_CONTACT = """
UPDATE contacts SET wake_at = ?
WHERE id = (SELECT contact_id FROM identities WHERE anonymous_id = ?)
  AND (wake_at IS NULL OR wake_at > ?)
"""

_UPSERT_CONTACT = """
INSERT INTO contacts (id, email, timezone, attributes, created_at, updated_at, wake_at, rev, imported)
VALUES (:id, :email, :timezone, :attributes, :now, :now, :wake, 1, coalesce(:imported, '{}'))
ON CONFLICT (id) DO UPDATE SET
    attributes = json_patch(contacts.attributes, excluded.attributes),
    imported = coalesce(:imported, contacts.imported),
    email = CASE WHEN json_type(excluded.attributes, '$.email') IS NULL THEN contacts.email ELSE excluded.email END,
    timezone = coalesce(excluded.timezone, contacts.timezone),
    updated_at = excluded.updated_at,
    wake_at = min(coalesce(contacts.wake_at, excluded.wake_at), excluded.wake_at),
    rev = contacts.rev + 1
WHERE json_patch(contacts.attributes, excluded.attributes) IS NOT contacts.attributes
   OR coalesce(excluded.timezone, contacts.timezone) IS NOT contacts.timezone
"""

# Only rows above the id seen at load: a range of the events' rowid, empty unless something arrived.
FIRST_EVENT_SINCE_SQL = """
WITH ids(value) AS (SELECT :id UNION ALL SELECT anonymous_id FROM identities WHERE contact_id = :id)
SELECT min(at) FROM events
WHERE id > :after AND (contact_id IN (SELECT value FROM ids) OR anonymous_id IN (SELECT value FROM ids))
"""

# A batch's claims and confirmations are one statement each, their rows a list of VALUES bound
# by position: against a JSON array read by ``json_each`` and ``json_extract`` (which parses
# the row again for each column) a claim costs 5.0 instead of 7.9 µs, a confirmation 5.0
# instead of 5.7 (600 sends, thread CPU, best of 9). SQLite allows 32,766 parameters.
STATEMENT_ROWS = 1000


def _chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _values(rows: int, width: int) -> str:
    """``(?, ?), (?, ?)``: a VALUES list of ``rows`` rows of ``width`` parameters each."""
    return ", ".join([f"({', '.join('?' * width)})"] * rows)


def _claim_sends_sql(rows: int) -> str:
    """Claims of ``rows`` distinct keys (the upsert of ``claim_send``): the keys that come back
    are the claims won. Parameters: claimed_at, run_id, retryable, then per claim key,
    contact, journey, version, step, kind, scheduled_at."""
    return _CLAIM_SENDS.replace("{rows}", _values(rows, 7))


def _confirm_sends_sql(rows: int) -> str:
    """Confirmations of ``rows`` distinct keys. Parameters: now, then per send key, transport id."""
    return _CONFIRM_SENDS.replace("{rows}", _values(rows, 2))


_CLAIM_SENDS = """
INSERT INTO sends (key, contact_id, journey_id, version, step_id, kind, scheduled_at, state, claimed_at,
                   attempts, run_id, retryable)
SELECT column1, column2, column3, column4, column5, column6, column7, 'claimed', ?, 1, ?, ?
FROM (VALUES {rows}) WHERE true
""" + CLAIM_CONFLICT

_CONFIRM_SENDS = """
UPDATE sends SET state = 'sent', sent_at = ?, transport_id = batch.column2, error = NULL
FROM (VALUES {rows}) AS batch WHERE sends.key = batch.column1
"""

# A saved contact's state; the wake-up is the engine's unless an import changed the contact
# since its load (``rev`` moved): then the earlier of the two (nothing imported is hidden).
_SAVE_STATE = """
UPDATE contacts SET
    timezone = CASE WHEN :tz_changed THEN :timezone ELSE timezone END,
    clock = :clock, memory = :memory, enrollment_seq = :seq, updated_at = :now,
    wake_at = CASE WHEN rev = :rev THEN :wake
                   WHEN :wake IS NULL OR wake_at IS NULL THEN coalesce(:wake, wake_at)
                   ELSE min(:wake, wake_at) END
WHERE id = :id
"""
# ... and the attributes the engine changed, as a merge patch; the email column follows when the
# patch names the address (its key computed in Python: runner.core.addresses)
_SAVE_STATE_AND_ATTRIBUTES = _SAVE_STATE.replace("UPDATE contacts SET", """UPDATE contacts SET
    attributes = json_patch(attributes, :patch),
    email = CASE WHEN json_type(:patch, '$.email') IS NULL THEN email ELSE :email END,""")


def _by_position(sql: str) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    """``sql`` with its named parameters numbered (``:name`` -> ``?N``, in order of first use)
    and what picks their values out of a row's dict in that order (see below: why)."""
    names = list(dict.fromkeys(re.findall(r":(\w+)", sql)))
    return re.sub(r":(\w+)", lambda found: f"?{names.index(found.group(1)) + 1}", sql), itemgetter(*names)


_SAVE_STATE_BY_POSITION = _by_position(_SAVE_STATE)
_SAVE_STATE_AND_ATTRIBUTES_BY_POSITION = _by_position(_SAVE_STATE_AND_ATTRIBUTES)

# The rows a busy tick writes by the thousand are bound by position: Python's sqlite3 binds a
# named parameter by building its name as a string and looking it up in the row's dict, for
# every parameter of every row (about 2 of 10 µs an enrollment row, 1 of 4 a journal row,
# inside the write lock); the tuples are made with the rest of a save, before the lock.
_ENROLLMENT_COLUMNS = ("id", "contact_id", "journey_id", "version", "stage", "stage_seq", "cursor", "status",
                       "wait", "due_at", "entered_at", "exited_at", "exit_reason", "goal_at", "variant", "holdout")
_enrollment_values = itemgetter(*_ENROLLMENT_COLUMNS)
_UPSERT_ENROLLMENT = f"""
INSERT INTO enrollments ({", ".join(_ENROLLMENT_COLUMNS)}) VALUES ({", ".join("?" for _ in _ENROLLMENT_COLUMNS)})
ON CONFLICT (id) DO UPDATE SET
    version = excluded.version, stage = excluded.stage, stage_seq = excluded.stage_seq,
    cursor = excluded.cursor, status = excluded.status, wait = excluded.wait,
    due_at = excluded.due_at, exited_at = excluded.exited_at,
    exit_reason = excluded.exit_reason, goal_at = excluded.goal_at,
    variant = excluded.variant, holdout = excluded.holdout
"""


# ``/metrics``: counter tables (m004, m010) read whole (a few rows per day and step), the due
# backlog as a range of the (wake_at, id) index, in-doubt sends through sends(state).
METRICS_RUNS_SQL = "SELECT status, n FROM run_counts WHERE n != 0"
METRICS_DECISIONS_SQL = "SELECT action, sum(n) FROM decision_counts GROUP BY action HAVING sum(n) != 0"
METRICS_SENDS_SQL = "SELECT state, sum(n) FROM send_counts GROUP BY state HAVING sum(n) != 0"
METRICS_DUE_SQL = "SELECT count(*), min(wake_at) FROM contacts WHERE wake_at <= ?"
METRICS_IN_DOUBT_SQL = "SELECT count(*) FROM sends WHERE state = 'in_doubt'"

# ``journey stats``: sums over the counters that triggers on the journal, the ledger, the
# events and the enrollments keep (runner.store.migrations, m004 and m008).
# ``:journey`` NULL means every journey; days are UTC 'YYYY-MM-DD', ``:until`` exclusive.
STATS_DECISIONS_SQL = """
SELECT journey_id, version, step, action, detail, sum(n) AS n FROM decision_counts
WHERE true {journey} AND day >= :since AND day < :until
GROUP BY journey_id, version, step, action, detail HAVING sum(n) != 0
"""
STATS_SENDS_SQL = """
SELECT journey_id, version, step_id, kind, state, detail, sum(n) AS n FROM send_counts
WHERE true {journey} AND day >= :since AND day < :until
GROUP BY journey_id, version, step_id, kind, state, detail HAVING sum(n) != 0
"""
STATS_SPLITS_SQL = """
SELECT journey_id, version, variant, sum(n) AS n, sum(CASE WHEN converted THEN n ELSE 0 END) AS converted
FROM split_counts WHERE true {journey} AND day >= :since AND day < :until
GROUP BY journey_id, version, variant HAVING sum(n) != 0
"""
STATS_ENGAGEMENT_SQL = """
SELECT journey_id, step, name, sum(n) AS n FROM engagement_counts
WHERE journey_id != '' {journey} AND day >= :since AND day < :until
GROUP BY journey_id, step, name HAVING sum(n) != 0
"""


def stats_query(template: str, journey_id: str | None, since: str | None, until: str | None) -> tuple[str, dict]:
    """A stats query and its parameters: one journey or all (the filter is left out rather
    than written ``:journey IS NULL OR ...``, which keeps SQLite off the index), and a
    window of days that is open where no bound is given."""
    sql = template.replace("{journey}", "AND journey_id = :journey" if journey_id is not None else "")
    return sql, {"journey": journey_id, "since": since or "0000-00-00", "until": until or "9999-99-99"}


_INSERT_STEP_STOP = """INSERT INTO suppressions (target, contact_id, reason, at, source, topic)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (target) DO NOTHING"""
_DECISION_COLUMNS = ("contact_id", "at", "journey_id", "version", "stage", "step", "action", "reason", "key", "detail",
                     "run_id")
_decision_values = itemgetter(*_DECISION_COLUMNS)
_INSERT_DECISION = (f"INSERT INTO decisions ({', '.join(_DECISION_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _DECISION_COLUMNS)})")


def _marks(values: Iterable[Any]) -> str:
    """``?, ?, ?``: one placeholder per value, for an ``IN (...)`` list."""
    return ", ".join("?" for _ in values)


