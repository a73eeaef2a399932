"""One production tick: the same engine as ``simulate``, driven by the store's due index.

A tick takes the ``tick`` lease, asks the store for the contacts due at
``now`` (an index range scan: cost grows with what is due, not with what is
enrolled), and for each one loads its state, ``engine.advance(state, now)``,
delivers its sends through the ledger and saves the state with the engine's
next wake-up.

Nothing lost, nothing sent twice:

- every send is **claimed** in the ledger (committed) before the transport
  is called and **confirmed** after; a claim that already exists is never
  sent again. A crash between the two leaves at most that one send
  ``in_doubt`` for ``journey resolve``. Two transports batch this
  (``Tick._contacts_batched``): the outbox, which is idempotent, claims a
  whole batch in one commit and re-sends what a crash interrupted; a pool of
  N SMTP connections claims waves of N and sends each wave in parallel (at
  most N in doubt).
- a contact's state is saved only after all its sends are claimed, so a crash
  re-runs the contact from its previous state: the engine re-decides the same
  sends with the same keys, and the ledger turns them into no-ops.
- confirmations and state saves are queued and committed together with the
  next claim (or at the end of a batch): one transaction per send, not three.

Catch-up: a send whose decision instant is older than ``catch_up.max_lateness``
is skipped (ledger state ``skipped``, reason ``late``) under ``policy: skip``
and sent late under ``send_late``.

Late events (stored after the contact was processed past their timestamp)
are fed to the engine as happening just after the contact's clock, so they
still trigger entries, ``wait_for`` answers and exits; their stored time is
kept (conditions with ``within`` see the real time on later ticks).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

from runner.collector import collector_on_new_objects
from runner.core.durations import format_duration
from runner.core.engine import Decision, Engine, Outcome
from runner.core.model import EmailStep, Journey, Project
from runner.core.problems import JourneyError, shown
from runner.core.state import ContactState, SendRecord
from runner.delivery.dispatch import Delivery, Outgoing, step_detail
from runner.delivery.render import Renderer, RenderError
from runner.delivery.transports import PermanentError, TransientError
from runner.production.deploy import DeployedSet, deployed_set
from runner.store.base import Store
from runner.store.codec import from_db_time

LEASE_NAME = "tick"
HOUSEKEEPING_LEASE = "housekeeping"  # shared workers: who clears up after dead runs and retries, one at a time
WORKER_LEASE_PREFIX = "worker:"  # a shared worker's own lease: "worker:" + its holder name
LEASE_TTL = timedelta(minutes=2)
RENEW_EVERY = 30.0  # seconds; well inside the TTL
BATCH = 200  # contacts per due query; the lease is renewed and stop requests honoured between batches
RELAY_DOWN_AFTER = 3  # transient email failures in a row after which a run stops trying the relay
SEEN_EVENTS = "tick:seen_event_id"  # engine memory key: highest event row id this contact has been given


class LeaseLost(JourneyError):
    """Another run took the lease (ours expired): stop at once; the ledger keeps sends unique."""


class StoreWriteFailed(JourneyError):
    """A commit failed (a lock held too long, a full disk): stop the tick at once.

    Going on would deliver sends whose earlier confirmations and state saves
    are not recorded; stopping keeps what is committed a prefix of what happened.
    """


def holder_name() -> str:
    """Who holds a lease: host, process id and a random part (two runs in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def wall_clock() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- runtime


@dataclass
class Runtime:
    """What a tick needs besides the store; a worker keeps one across ticks."""

    project: Project
    deployed: DeployedSet
    engine: Engine
    delivery: Delivery | None  # None: decide only (no rendering)

    def refresh(self, store: Store) -> None:
        """Rebuild the engine when a deployment was recorded since."""
        latest = deployed_set(store)
        if latest.signature != self.deployed.signature:
            self.deployed = latest
            self.engine = Engine(self.project, latest.current, pinned=latest.pinned)
        if self.delivery is not None:
            templates = store.deployed_templates()
            if templates != self.delivery.templates:  # templates deployed since: render those
                self.delivery.templates = templates
                self.delivery.renderer = Renderer(self.project.templates_path, sources=templates)


def build_runtime(store: Store, project: Project, transport_url: str | None, *, dry_run: bool = False) -> Runtime:
    """The engine from the DEPLOYED journey versions, and the delivery pipeline."""
    deployed = deployed_set(store)
    if not deployed.current:
        raise JourneyError("nothing is deployed in this database: run `journey deploy` first")
    engine = Engine(project, deployed.current, pinned=deployed.pinned)
    delivery = None
    if transport_url is not None:
        delivery = Delivery(project, transport_url, connect=not dry_run, templates=store.deployed_templates())
    return Runtime(project, deployed, engine, delivery)


# ---------------------------------------------------------------- results


@dataclass
class TickReport:
    """What one tick did; ``counts`` go into the runs table."""

    now: datetime
    run_id: str | None = None
    ran: bool = True  # False: another run held the lease
    holder: str | None = None
    contacts: int = 0
    counts: Counter = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)  # dry run: what would happen
    stopped: bool = False  # a stop request ended it between batches
    seconds: float | None = None  # how long the tick took (wall clock), set by run_tick

    def summary(self) -> str:
        if not self.ran:
            return f"another run holds the lease ({self.holder}); nothing done"
        parts = [f"{self.contacts} contact(s)"]
        for name in ("would_send", "sent", "webhooks", "retried", "failed", "retryable", "gave_up", "late",
                     "already_claimed", "errors"):
            if self.counts.get(name):
                parts.append(f"{self.counts[name]} {name.replace('_', ' ')}")
        decided = sum(v for k, v in self.counts.items() if k.startswith("decision:"))
        parts.append(f"{decided} decision(s)")
        return ", ".join(parts)


# ---------------------------------------------------------------- writes


class _Writes:
    """Queued ledger/state writes, committed together with the next claim.

    Order is preserved: a contact's save is queued after its confirmations,
    and claims flush everything queued before them, so what is committed is
    always a prefix of what happened. Inside one transaction the order of its
    writes changes nothing of that (all of them or none): there ``counted`` writes
    run last, after the claim too (see ``later``).
    """

    def __init__(self, store: Store):
        self.store = store
        self.queue: list[tuple[Callable[[], Any], bool]] = []  # (write, counted)

    def later(self, write: Callable[[], Any], *, counted: bool = False) -> None:
        """Queue ``write`` for the next commit. ``counted``: it updates the ledger's counter rows
        (a batch's confirmations), which every worker's transactions update too: on a server
        database the row stays locked until the commit, so it runs last in its transaction."""
        self.queue.append((write, counted))

    def now(self, write: Callable[[], Any] | None = None, *, durable: bool = False) -> Any:
        """Commit the queue (and ``write``). ``durable``: fsync before returning (a claim
        must survive a power loss before the transport is called); other commits
        only need to survive a crashed process, which WAL gives without an fsync.

        A commit that fails keeps the queue (nothing of it was written) and raises
        ``StoreWriteFailed``: the caller stops, and ``salvage`` tries the queue again."""
        queued, self.queue = self.queue, []
        if not queued and write is None:
            return None
        try:
            with self.store.transaction(durable=durable):
                for queued_write, counted in queued:
                    if not counted:
                        queued_write()
                result = write() if write is not None else None
                for queued_write, counted in queued:  # last: see ``later``
                    if counted:
                        queued_write()
                return result
        except Exception as error:
            self.queue[:0] = queued
            raise StoreWriteFailed(f"cannot write to the database ({error}); the run stopped, "
                                   "what it committed stands and the next run goes on from there") from error

    def salvage(self) -> None:
        """After a failure: commit what the queue still holds, one write at a time, and stop
        at the first that fails (a confirmation alone may fit where a state save does not).
        Never raises; what is left is re-decided by the next run from the saved state."""
        while self.queue:
            try:
                with self.store.transaction():
                    self.queue[0][0]()
            except Exception:  # noqa: BLE001 - the run is already failing with the first error
                return
            self.queue.pop(0)


# ---------------------------------------------------------------- the tick


class Tick:
    """One pass over the due contacts at ``now`` (see the module doc)."""

    def __init__(self, store: Store, runtime: Runtime, now: datetime, *, limit: int | None = None,
                 dry_run: bool = False, stop: Callable[[], bool] | None = None,
                 emit: Callable[[str], None] | None = None, holder: str | None = None,
                 lease_wait: float = 5.0, durable_claims: bool = False, shared: bool = False,
                 on_page: Callable[[TickReport], None] | None = None):
        self.store = store
        self.runtime = runtime
        self.now = now
        self.limit = limit
        self.dry_run = dry_run
        if not dry_run and runtime.delivery is None:
            raise JourneyError("a tick that sends needs a transport: build its runtime with a transport URL")
        self.stop = stop or (lambda: False)
        self.emit = emit
        self.on_page = on_page  # after each page of due contacts: the report so far (a terminal's progress)
        self.holder = holder or holder_name()
        self.lease_wait = lease_wait
        # shared: one of many workers. No global lease: the worker holds a lease of its own
        # (what tells the others it is alive) and shares the due work through contact leases.
        self.shared = shared
        self.lease_name = f"{WORKER_LEASE_PREFIX}{self.holder}" if shared else LEASE_NAME
        self.report = TickReport(now=now, holder=self.holder)
        self.writes = _Writes(store)
        self.tries: dict[str, tuple[int, datetime]] = {}  # retried sends: (this attempt's number, first failure)
        self.transient_streak = 0  # transient email failures in a row (see _watch_relay)
        self.relay_down: str | None = None
        self._renewed = time.monotonic()
        self._claimed = False  # contacts were leased to this run (see _finish)
        self._wakes: dict[str, datetime | None] = {}  # the page's wake-ups, by contact
        self._arrivals: dict[str, list[tuple[int, str, datetime]]] = {}  # the batch's late arrivals (see _load)
        self.durable_claims = durable_claims
        # An idempotent transport (the outbox) rewrites the same file for the same key, so a
        # whole batch can be claimed in one commit and a crash's unconfirmed claims re-sent;
        # a pool of connections sends a wave of claims at once (see _contacts_batched).
        transport = runtime.delivery.transport if runtime.delivery is not None else None
        self.resendable = bool(getattr(transport, "idempotent", False))
        self.wave = int(getattr(transport, "size", 1))  # a TransportPool sends this many at once
        # One connection to a transport that is not idempotent (plain SMTP, console, webhooks):
        # the batch is claimed at once but *queued* (a crash leaves those claims to be sent
        # again), and each send is marked as handed over just before its transport call.
        self.queued = not self.resendable and self.wave == 1
        self.batched = not dry_run
        if not dry_run:
            # WAL + NORMAL: every commit survives a killed process; only an OS crash or power
            # loss can undo the last commits. ``durable_claims`` fsyncs each claim (see _Writes.now).
            store.set_commit_durability(power_safe=False)
        project = runtime.project
        self.max_lateness = project.catch_up_max_lateness.approx if project.catch_up_max_lateness else None
        self.skip_late = project.catch_up_policy == "skip"

    @property
    def _delivery(self) -> Delivery:
        """The delivery pipeline; only a dry run goes without one (checked in ``__init__``)."""
        delivery = self.runtime.delivery
        if delivery is None:
            raise JourneyError("a tick that sends needs a transport")
        return delivery

    @property
    def _run_id(self) -> str:
        """This run's row in the runs table: the ledger is written only once it is started."""
        run_id = self.report.run_id
        if run_id is None:
            raise JourneyError("the ledger is written only by a started run")
        return run_id

    # ------------------------------------------------------------ driver

    def run(self) -> TickReport:
        if self.dry_run:
            with collector_on_new_objects():
                self._due_loop()
            return self.report
        if not self.shared and not self._acquire():
            self.report.ran = False
            self.report.holder = self._lease_holder()
            return self.report
        try:
            if self.shared:
                self.store.acquire_lease(self.lease_name, self.holder, LEASE_TTL, wall_clock())
                self._renewed = time.monotonic()
            self.report.run_id = self.store.start_run(self.holder, wall_clock())
            if self._housekeeper():
                self._clear_up_after_the_dead()
                self._retry_failed()
                self._end_housekeeping()
            with collector_on_new_objects():  # the process's long-lived objects are not walked at each collection
                self._due_loop()
            self.writes.now()
        except BaseException:
            self.writes.salvage()
            self._finish("failed", quietly=True)
            raise
        self._finish("stopped" if self.report.stopped else "ok")
        return self.report

    def _finish(self, status: str, *, quietly: bool = False) -> None:
        """Record the run's end and free the lease. ``quietly``: the run is already failing
        (the store may be what failed); the lease is still released if at all possible."""
        try:
            if self.report.run_id is not None:
                counts = dict(self.report.counts)
                counts["contacts"] = self.report.contacts
                self.store.finish_run(self.report.run_id, counts, status, wall_clock())
        except Exception:
            if not quietly:
                raise
        finally:
            try:
                if self._claimed:  # a failed batch's leases (a finished one released its own)
                    self.store.release_contacts(self.holder)
                self.store.release_lease(self.lease_name, self.holder)
                self._end_housekeeping()  # a run that failed during it
            except Exception:
                if not quietly:
                    raise

    def _due_loop(self) -> None:
        """Page through the due contacts by keyset (wake_at, id): each due row is read once.

        A contact whose new wake-up is still due and after the cursor comes round
        again in a later page; ``seen`` keeps it to one visit per tick. A run that
        writes claims each page (contact leases, see ``Store.claim_due``): contacts
        another worker holds are passed over, and the page's leases are released in
        the commit that saves its states.
        """
        seen: set[str] = set()
        cursor: tuple[str, str] | None = None
        remaining = self.limit
        while remaining is None or remaining > 0:
            if self.stop():
                self.report.stopped = True
                return
            size = BATCH if remaining is None else min(BATCH, remaining)
            page = self._page(size, cursor)
            if not page:
                return
            cursor = page[-1]
            self._wakes = {contact_id: from_db_time(wake) for wake, contact_id in page}
            due = [contact_id for _, contact_id in page if contact_id not in seen]
            seen.update(due)
            self._contacts(due)
            if not self.dry_run:  # committed with the next page's claim (or at the end of the run)
                leased = [contact_id for _, contact_id in page]
                self.writes.later(partial(self.store.release_contacts, self.holder, leased))
            if remaining is not None:
                remaining -= len(due)
            if self.on_page is not None:
                self.on_page(self.report)
            if len(page) < size:  # a short page is the last: nothing more is due
                return

    def _page(self, size: int, cursor: tuple[str, str] | None) -> list[tuple[str, str]]:
        """The next page of due contacts: read (a dry run), or claimed for this run.

        After the first page, the run's lease is renewed in the same transaction as the
        claim (and what the previous page queued): one write transaction less per page.
        A lease lost to another run claims nothing: what was queued is committed, then
        ``LeaseLost`` stops the run."""
        if self.dry_run:
            return self.store.due_page(self.now, size, cursor)
        renew = cursor is not None

        def claim() -> list[tuple[str, str]] | None:
            if renew and not self.store.renew_lease(self.lease_name, self.holder, LEASE_TTL, wall_clock()):
                return None
            return self.store.claim_due(self.now, self.holder, size, LEASE_TTL, cursor)

        page: list[tuple[str, str]] | None = self.writes.now(claim)
        if page is None:
            raise LeaseLost("lost the tick lease to another run; stopping (nothing is sent twice)")
        if renew:
            self._renewed = time.monotonic()
        self._claimed = self._claimed or bool(page)
        return page

    def _renew(self) -> None:
        """Extend the lease within a batch when it is slow (slow SMTP), and the contacts in
        hand too, so no other worker takes them over meanwhile (between pages, ``_page``
        renews the lease with its claim)."""
        if self.dry_run or time.monotonic() - self._renewed < RENEW_EVERY:
            return
        if not self.store.renew_lease(self.lease_name, self.holder, LEASE_TTL, wall_clock()):
            raise LeaseLost("lost the tick lease to another run; stopping (nothing is sent twice)")
        self.store.renew_contacts(self.holder, LEASE_TTL)
        self._renewed = time.monotonic()

    # ------------------------------------------------------------ lease

    def _acquire(self) -> bool:
        deadline = time.monotonic() + self.lease_wait
        while True:
            if self.store.acquire_lease(LEASE_NAME, self.holder, LEASE_TTL, wall_clock()):
                self._renewed = time.monotonic()
                return True
            holder = self._lease_holder()
            if holder and _dead_local_holder(holder):
                self.store.release_contacts(holder)  # its process is gone: take over now
                self.store.release_lease(LEASE_NAME, holder)
                continue
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def _housekeeper(self) -> bool:
        """Whether this run clears up after dead runs and retries failed sends this time.

        A tick alone (the ``tick`` lease) always does. Of shared workers, one at a time: the
        one that takes the ``housekeeping`` lease (the others go straight to the due work),
        so that two workers never claim the same retried keys at once, which on a server
        database would make their transactions wait on each other's rows in turn."""
        if not self.shared:
            return True
        while not self.store.acquire_lease(HOUSEKEEPING_LEASE, self.holder, LEASE_TTL, wall_clock()):
            holder = self.store.lease_holder(HOUSEKEEPING_LEASE)
            if not (holder and _dead_local_holder(holder)):
                return False
            self.store.release_lease(HOUSEKEEPING_LEASE, holder)  # its process is gone: take over now
        return True

    def _end_housekeeping(self) -> None:
        if self.shared:
            self.store.release_lease(HOUSEKEEPING_LEASE, self.holder)

    def _clear_up_after_the_dead(self) -> None:
        """Runs whose process is gone: their runs closed, their unconfirmed claims in doubt,
        then their contacts and leases freed. A holder that is a process on this host that
        no longer exists (a killed worker) is gone at once, not when its leases expire."""
        gone = [holder for holder in self.store.lease_holders() if _dead_local_holder(holder)]
        self._close_dead_runs(gone)
        self.store.in_doubt_sends(wall_clock(), gone_holders=gone)  # claims of dead runs become in_doubt
        for holder in gone:
            self.store.release_contacts(holder)
            self.store.release_lease(f"{WORKER_LEASE_PREFIX}{holder}", holder)

    def _close_dead_runs(self, gone: list[str]) -> None:
        """Runs left 'running' whose holder holds no live lease any more: they are gone."""
        alive = set(self.store.lease_holders(wall_clock())) - set(gone)
        for run in self.store.unfinished_runs():
            if run["holder"] != self.holder and run["holder"] not in alive:
                self.store.finish_run(run["id"], {}, "died", wall_clock())

    def _lease_holder(self) -> str | None:
        return self.store.lease_holder(LEASE_NAME)

    # ------------------------------------------------------------ contacts

    def _contacts(self, contact_ids: list[str]) -> None:
        loaded = self._load(contact_ids)
        if self.batched:
            self._contacts_batched(contact_ids, loaded)
            return
        for contact_id, state, outcome in self._advanced(contact_ids, loaded):
            try:
                for decision in outcome.decisions:
                    if decision.action in ("send", "webhook"):
                        self._deliver(decision)
            except (LeaseLost, StoreWriteFailed):
                raise
            except Exception as error:  # noqa: BLE001 - its committed sends stay committed; it stays due
                self._contact_failed(contact_id, error)
                continue
            if not self.dry_run:
                # its rows built now, outside the write transaction that runs after later contacts' claims
                self.writes.later(self.store.prepared_save([(state, outcome.wake_at)], outcome.decisions,
                                                           self.report.run_id))

    def _load(self, contact_ids: list[str]) -> dict[str, ContactState]:
        """The batch's states in one read per table, and the events each has not been given
        yet (late arrivals) in one more. If that fails (one contact's bad data), nothing is
        returned and each contact is loaded, and fails, on its own."""
        self._arrivals = {}
        try:
            loaded = self.store.load_contact_states(contact_ids)
            self._arrivals = self.store.events_after_many(
                [(contact_id, state.contact.anonymous_ids, int(state.memory.get(SEEN_EVENTS, 0)))
                 for contact_id, state in loaded.items()])
            return loaded
        except Exception:  # noqa: BLE001 - reported per contact by _advance
            return {}

    def _advanced(self, contact_ids: list[str], loaded: dict[str, ContactState]) -> Iterator[tuple[str, ContactState, Outcome]]:
        """(contact id, state, engine outcome) for each contact that could be advanced."""
        for contact_id in contact_ids:
            self._renew()
            advanced = self._advance(contact_id, loaded)
            if advanced is not None:
                yield contact_id, *advanced

    def _advance(self, contact_id: str, loaded: dict[str, ContactState]) -> tuple[ContactState, Outcome] | None:
        """Run the engine on the contact up to ``now``; None (reported) when its data is bad.

        A contact that fails stays due (retried next tick); the tick goes on.
        """
        try:
            state = loaded.get(contact_id) or self.store.load_contact_state(contact_id)
            late_arrivals(self.store, state, self._arrivals.get(contact_id))
            start = None
            if state.clock is None:  # its wake-up as the page read it (else as stored now)
                start = self._wakes.get(contact_id) or self.store.wake_at(contact_id) or self.now
                if state.events:
                    start = min(start, state.events[0].at)
            outcome = self.runtime.engine.advance(state, self.now, start=start)
        except LeaseLost:
            raise
        except Exception as error:  # noqa: BLE001 - one contact's bad data must not stop the tick
            self._contact_failed(contact_id, error)
            return None
        self.report.contacts += 1
        for decision in outcome.decisions:
            self.report.counts[f"decision:{decision.action}"] += 1
        return state, outcome

    def _contact_failed(self, contact_id: str, error: Exception) -> None:
        self.report.counts["errors"] += 1
        self._say(f"error: contact {contact_id}: {type(error).__name__}: {error}")

    def _contacts_batched(self, contact_ids: list[str], loaded: dict[str, ContactState]) -> None:
        """Decide the whole batch, then claim and deliver its sends in waves, then save.

        An idempotent transport (the outbox) takes the batch as one wave: one claim
        commit, one ``send_all`` (one file-system sync), and claims a crash leaves
        are sent again. A pool of N SMTP connections takes waves of N: each wave's
        claims in one (fsynced) commit, its messages sent in parallel, so a crash
        leaves at most N sends in doubt, one per connection. Either way the order is
        the per-send path's: nothing is delivered before its claim is committed, and
        the states (with their decisions) are saved in the batch's closing commit,
        after all their claims.
        """
        claims: list[tuple[SendRecord, Decision, Journey]] = []
        saves: list[tuple[ContactState, datetime | None]] = []
        decisions: list[Decision] = []
        for contact_id, state, outcome in self._advanced(contact_ids, loaded):
            try:
                prepared = [(decision, self._prepare(decision)) for decision in outcome.decisions
                            if decision.action in ("send", "webhook")]
            except Exception as error:  # noqa: BLE001 - as in the per-send path: it stays due
                self._contact_failed(contact_id, error)
                continue
            claims += [(ready[0], decision, ready[1]) for decision, ready in prepared if ready is not None]
            saves.append((state, outcome.wake_at))
            decisions.extend(outcome.decisions)
        size = len(claims) if (self.resendable or self.queued) else self.wave
        for start in range(0, len(claims), max(size, 1)):
            self._renew()
            self._claim_and_send(claims[start:start + size])
        if saves:  # the rows built now, outside the transaction that writes them (other workers wait for it)
            self.writes.later(self.store.prepared_save(saves, decisions, self.report.run_id))

    def _claim_and_send(self, wave: list[tuple[SendRecord, Decision, Journey]]) -> None:
        won = self.writes.now(lambda: self.store.claim_sends([record for record, _, _ in wave], self._run_id,
                                                              resendable=self.resendable or self.queued),
                              durable=self.durable_claims)
        claimed = [(decision, journey) for (_, decision, journey), ok in zip(wave, won, strict=True) if ok]
        if len(claimed) < len(wave):
            self.report.counts["already_claimed"] += len(wave) - len(claimed)
        if self.queued:
            self._send_each(claimed)
        else:
            self._send_all(claimed)

    def _send_each(self, claimed: list[tuple[Decision, Journey]]) -> None:
        """Queued claims, one message in flight at a time.

        Each is marked as handed to the transport in a commit (with the previous
        send's outcome) just before the call, so a crash leaves at most that one in
        doubt; the batch's claims not handed over yet are sent again by the next run.
        The transport works in a thread while the next message is built: the relay's
        round trips overlap the rendering instead of adding to it.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="journey-send") as sender:
            in_flight: tuple[Outgoing, Future[str]] | None = None
            for decision, journey in claimed:
                self._renew()
                outgoing = self._build(decision, journey)
                if in_flight is not None:
                    self._settle(*in_flight)
                    in_flight = None
                if outgoing is None:
                    continue
                if outgoing.kind == "email" and self.relay_down:  # not tried: nothing handed over
                    self._record(outgoing, TransientError(f"not tried: {self.relay_down}"))
                    continue
                self.writes.now(partial(self.store.mark_handed_over, outgoing.key), durable=self.durable_claims)
                in_flight = (outgoing, sender.submit(self._delivery.deliver, outgoing))
            if in_flight is not None:
                self._settle(*in_flight)

    def _settle(self, outgoing: Outgoing, sending: Future[str]) -> None:
        """Wait for one delivery and queue its outcome."""
        try:
            result: str | Exception = sending.result()
        except (TransientError, PermanentError) as error:
            result = error
        self._watch_relay(outgoing, result)
        self._record(outgoing, result)

    # ------------------------------------------------------------ sends

    def _prepare(self, decision: Decision) -> tuple[SendRecord, Journey] | None:
        """The ledger record and journey of a send, or None when it is not to be sent
        (too late under the catch-up policy: recorded as skipped; a dry run: reported)."""
        kind = "webhook" if decision.action == "webhook" else "email"
        record = SendRecord(_send_key(decision), decision.contact, decision.journey, decision.version,
                            _send_step(decision), decision.at, kind)
        late = self.max_lateness is not None and decision.at < self.now - self.max_lateness
        if late and self.skip_late:
            self.report.counts["late"] += 1
            self._say(f"skip {decision.key}: late ({decision.at.isoformat()})")
            if not self.dry_run:
                self.writes.later(lambda: self.store.skip_send(record, "late", self._run_id))
            return None
        journey = _journey(self.runtime.engine, decision)
        if self.dry_run:
            self._dry(decision, journey)
            return None
        return record, journey

    def _deliver(self, decision: Decision) -> None:
        prepared = self._prepare(decision)
        if prepared is None:
            return
        record, journey = prepared
        if not self._claim(record):
            self.report.counts["already_claimed"] += 1
            return
        self._send(decision, journey)

    def _claim(self, record: SendRecord) -> bool:
        """One claim, committed (with everything queued before it) before the transport is called."""
        return self.writes.now(lambda: self.store.claim_sends([record], self._run_id, resendable=self.resendable),
                               durable=self.durable_claims)[0]

    def _send(self, decision: Decision, journey: Journey) -> None:
        outgoing = self._build(decision, journey)
        if outgoing is None:
            return
        if outgoing.kind == "email" and self.relay_down:
            result: str | Exception = TransientError(f"not tried: {self.relay_down}")
        else:
            try:
                result = self._delivery.deliver(outgoing)
            except (TransientError, PermanentError) as error:
                result = error
        self._watch_relay(outgoing, result)
        self._record(outgoing, result)

    def _watch_relay(self, outgoing: Outgoing, result: str | Exception) -> None:
        """After RELAY_DOWN_AFTER transient email failures in a row (nothing delivered between),
        the relay is taken as down for the rest of this run: its emails are not tried (each a
        transient failure, retried with the backoff), so an outage costs a tick seconds, not
        the transport's timeouts and retries for every message."""
        if outgoing.kind != "email" or self.relay_down:
            return
        if not isinstance(result, TransientError):
            self.transient_streak = 0
            return
        self.transient_streak += 1
        if self.transient_streak >= RELAY_DOWN_AFTER:
            self.relay_down = f"the relay failed {self.transient_streak} times in a row in this run ({result})"
            self._say(f"relay down: {self.relay_down}; the other emails wait for their retry")

    def _send_all(self, claimed: list[tuple[Decision, Journey]]) -> None:
        """Build every claimed message, then hand them to the transport together."""
        built = [outgoing for decision, journey in claimed
                 if (outgoing := self._build(decision, journey)) is not None]
        delivered: list[tuple[str, str]] = []
        results: list[str | Exception]
        if self.relay_down:
            emails = [o for o in built if o.kind == "email"]
            others = [o for o in built if o.kind != "email"]
            not_tried: list[str | Exception] = [TransientError(f"not tried: {self.relay_down}") for _ in emails]
            built, results = emails + others, not_tried + self._delivery.deliver_all(others)
        else:
            results = self._delivery.deliver_all(built)
        for outgoing, result in zip(built, results, strict=True):
            self._watch_relay(outgoing, result)
            if isinstance(result, Exception):
                self._record(outgoing, result)
            else:
                self._count_delivered(outgoing)
                delivered.append((outgoing.key, result))
        if delivered:
            self.writes.later(lambda: self.store.confirm_sends(delivered), counted=True)

    def _build(self, decision: Decision, journey: Journey) -> Outgoing | None:
        """The message or webhook body; None (the failure recorded) when it cannot be built."""
        key = _send_key(decision)
        try:
            return self._delivery.build(decision, journey)
        except Exception as error:  # noqa: BLE001 - untrusted templates/data: nothing was sent, record why
            message = str(error) if isinstance(error, (RenderError, JourneyError, PermanentError)) else (
                f"{type(error).__name__}: {error}")
            self.report.counts["failed"] += 1
            self._say(f"failed {decision.key}: {message}")
            self.writes.later(lambda: self.store.fail_send(key, message, True))
            return None

    def _record(self, outgoing: Outgoing, result: str | Exception) -> None:
        """Queue the outcome of one delivery: confirmed, retryable or failed."""
        key = outgoing.key
        if isinstance(result, TransientError):
            self._retry_later(key, str(result))
        elif isinstance(result, Exception):
            self.report.counts["failed"] += 1
            self._say(f"failed {key}: {result}")
            self.writes.later(lambda: self.store.fail_send(key, str(result), True))
        else:
            self._count_delivered(outgoing)
            self.writes.later(lambda: self.store.confirm_send(key, result))

    def _retry_later(self, key: str, error: str) -> None:
        """A transient failure: tried again after the backoff, or failed for good once the
        send has been failing for the project's ``retry.max_age`` (a mail queue's lifetime)."""
        attempts, first_failed = self.tries.get(key, (1, self.now))
        policy = self.runtime.project.retry
        age = self.now - first_failed
        if age >= policy.max_age:
            message = f"gave up after {format_duration(age)} and {attempts} attempt(s): {error}"
            self.report.counts["gave_up"] += 1
            self._say(f"gave up {key}: {message}")
            self.writes.later(partial(self.store.fail_send, key, message, True))
            return
        retry_at = self.now + policy.delay(attempts)
        self.report.counts["retryable"] += 1
        self._say(f"retry later {key} (from {retry_at.isoformat()}): {error}")
        self.writes.later(partial(self.store.fail_send, key, error, False, retry_at=retry_at, failed_at=first_failed))

    def _count_delivered(self, outgoing: Outgoing) -> None:
        self.report.counts["webhooks" if outgoing.kind == "webhook" else "sent"] += 1

    def _dry(self, decision: Decision, journey: Journey) -> None:
        self.report.counts["would_send"] += 1
        if self.runtime.delivery is None:
            self._say(f"would {decision.action} {decision.key} at {decision.at.isoformat()}")
            return
        try:
            outgoing = self.runtime.delivery.build(decision, journey)
        except Exception as error:  # noqa: BLE001 - reported as it would be recorded
            self.report.counts["failed"] += 1
            self._say(f"would fail {decision.key}: {error}")
            return
        if outgoing.kind == "email":
            self._say(f"would send {decision.key} at {decision.at.isoformat()} to {outgoing.to}: {outgoing.subject}")
        else:
            self._say(f"would POST {decision.key} at {decision.at.isoformat()} to {outgoing.url}")

    def _say(self, line: str) -> None:
        self.report.lines.append(line)
        if self.emit is not None:
            self.emit(line)

    # ------------------------------------------------------------ retries

    def _retry_failed(self) -> None:
        """Re-send failures marked retryable whose backoff has passed (transient errors,
        in-doubt sends resolved as not sent, requeued sends)."""
        for row in self.store.retryable_sends(self.now):
            if self.stop():
                return
            self._renew()
            record = SendRecord(row["key"], row["contact_id"], row["journey_id"], row["version"],
                                row["step_id"], from_db_time(row["scheduled_at"]), row["kind"])
            self.tries[record.key] = (row["attempts"] + 1, from_db_time(row["first_failed_at"]) or self.now)
            late = self.max_lateness is not None and record.at < self.now - self.max_lateness
            if late and self.skip_late:
                self.writes.later(partial(self.store.fail_send, record.key, "late (catch-up policy skip)", True))
                self.report.counts["late"] += 1
                continue
            journey = self.runtime.engine.versions.get((record.journey_id, record.version))
            if journey is None or record.step_id not in journey.steps:
                continue
            state = self.store.load_contact_state(record.contact_id)
            # an email is not retried to a contact suppressed (or unsubscribed from its marketing
            # topic) by now; webhooks are not suppressed, as in the engine
            if record.kind == "email":
                step = journey.steps[record.step_id]
                topic = self.runtime.project.topic(step.topic if isinstance(step, EmailStep) else None)
                if state.email_stop(topic.name, topic.marketing, self.now):
                    self.writes.later(partial(self.store.fail_send, record.key, "suppressed", True))
                    continue
            decision = Decision(
                at=record.at, contact=record.contact_id, journey=record.journey_id, version=record.version,
                stage=None, step=record.step_id, action="webhook" if record.kind == "webhook" else "send",
                reason="retry", key=record.key,
                detail=step_detail(journey, record.step_id, state.contact, current_scores(self.runtime.engine, state),
                                   self.runtime.project, self._journaled_event(record)),
            )
            self.writes.now()  # the previous retry's outcome first: a claim's commit holds one ledger row
            if not self._claim(record):
                continue
            self.report.counts["retried"] += 1
            self._send(decision, journey)


    def _journaled_event(self, record: SendRecord) -> dict | None:
        """The event the send's own decision journaled (its templates' ``event``), so a retry
        renders what the first attempt rendered; None when no event started or woke the step."""
        for row in self.store.contact_history(record.contact_id, record.journey_id):
            if row["key"] == record.key and row["action"] in ("send", "webhook"):
                event = row["detail"].get("event")
                return event if isinstance(event, dict) else None
        return None


# ---------------------------------------------------------------- helpers


def run_tick(store: Store, runtime: Runtime, now: datetime, **options: Any) -> TickReport:
    """One tick (see ``Tick``); ``options``: limit, dry_run, stop, emit, holder, lease_wait."""
    started = time.monotonic()
    report = Tick(store, runtime, now, **options).run()
    report.seconds = time.monotonic() - started
    return report


def late_arrivals(store: Store, state: ContactState,
                  new_events: list[tuple[int, str, datetime]] | None = None) -> None:
    """Make a loaded state what the engine must see: late arrivals moved to just
    after the contact's clock, and sends past the clock dropped.

    An event stored since the contact was last processed, with a timestamp at
    or before the instant it had been processed to, would otherwise count only
    as history (no entry, no ``wait_for`` answer). Its stored time is kept.
    ``new_events``: what ``store.events_after`` would answer, read already for a batch.
    """
    if new_events is None:
        seen = int(state.memory.get(SEEN_EVENTS, 0))
        new_events = store.events_after(state.contact.id, state.contact.anonymous_ids, seen)
    if new_events:
        state.memory[SEEN_EVENTS] = max(row_id for row_id, _, _ in new_events)
    if new_events and state.clock is not None:
        late = {message_id for _, message_id, at in new_events if at <= state.clock}
        if late:
            after_clock = state.clock + timedelta(microseconds=1)
            state.events = sorted(
                (replace(e, at=after_clock) if e.message_id in late else e for e in state.events),
                key=lambda e: e.at,
            )
    # sends decided after the clock are being re-decided (a crash before the save):
    # drop them so caps see exactly what they saw the first time
    state.sends = [s for s in state.sends if state.clock is not None and s.at <= state.clock]


def current_scores(engine: Engine, state: ContactState) -> dict[str, Any]:
    """Scores at the contact's clock (for re-rendering a retried send)."""
    view = engine.view(state, state.clock or wall_clock())
    return {name: view.score(name) for name in engine.project.scores}


def _journey(engine: Engine, decision: Decision) -> Journey:
    return engine.versions.get((decision.journey, decision.version)) or engine.current[decision.journey]


def _send_key(decision: Decision) -> str:
    """A send's ledger key: the engine gives one to every send and webhook it decides."""
    if decision.key is None:
        raise JourneyError(f"a {decision.action} decision without a key: {decision}")
    return decision.key


def _send_step(decision: Decision) -> str:
    """The step a send belongs to: every send and webhook is decided by one."""
    if decision.step is None:
        raise JourneyError(f"a {decision.action} decision without a step: {decision}")
    return decision.step


def dead_lease_holders(store: Store) -> list[str]:
    """Lease holders (the tick's, each worker's) that are processes on this host that are
    gone (killed, crashed): their claims are in doubt now, not when their leases expire."""
    return [holder for holder in store.lease_holders() if _dead_local_holder(holder)]


def _dead_local_holder(holder: str) -> bool:
    """True when the lease holder is a process on this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------- status and resolve


def status_report(store: Store, now: datetime) -> dict:
    """Everything ``journey status`` shows: the store's summary plus the deployments.

    Claimed sends of runs that are gone (a dead process holding the lease
    included) are marked ``in_doubt`` first, so a crash shows up here at once,
    before the next tick. A read-only store is only read: they are listed as
    in doubt without being marked.
    """
    in_doubt = store.in_doubt_sends(now, gone_holders=dead_lease_holders(store), mark=not store.read_only)
    summary = store.status_summary(now)
    summary["in_doubt"] = [{k: row[k] for k in ("key", "contact_id", "journey_id", "step_id", "claimed_at", "run_id")}
                           for row in in_doubt]
    summary["deployments"] = [
        {k: row[k] for k in ("journey_id", "version", "content_hash", "deployed_at")}
        for row in store.deployments()
    ]
    summary["now"] = now.isoformat()
    return summary


def resolve_sends(store: Store, keys: list[str], outcome: Literal["sent", "failed"], *, every: bool = False,
                  now: datetime | None = None) -> list[str]:
    """Settle in-doubt sends: ``sent`` (delivered: never send again) or ``failed``
    (not delivered: the next tick sends it again). ``every``: all in-doubt sends."""
    in_doubt = {row["key"] for row in store.in_doubt_sends(now or wall_clock(), gone_holders=dead_lease_holders(store))}
    targets = sorted(in_doubt) if every else list(keys)
    unknown = [key for key in targets if key not in in_doubt]
    if unknown:
        raise JourneyError(f"not in doubt: {', '.join(shown(key) for key in unknown)} (see `journey status`)")
    with store.transaction():
        for key in targets:
            store.resolve_in_doubt(key, outcome)
    return targets
