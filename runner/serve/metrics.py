"""``GET /metrics``: the Prometheus text format, from this process and from the database.

Two kinds of figures:

- *this process*: events received by type, requests rejected by reason, unsubscribes from
  the link by source and topic (other modules record them through :func:`event_received`,
  :func:`request_rejected` and :func:`unsubscribed`), and the
  duration of the ticks this process ran (``--worker``: :func:`tick_finished`);
- *the database*, read at scrape time by :class:`DatabaseCollector`: ticks by status,
  decisions by action, ledger sends by state, the due backlog and in-doubt sends. They
  count the work of every process sharing the database (several workers, a cron
  ``journey run``), which no process counter could. ``Store.production_counters``
  reads them from counter tables and index ranges, so a scrape costs the same with a
  thousand enrollments or ten million.

The registry is this module's own (``CollectorRegistry``), never prometheus-client's
global one: importing a library that registers metrics changes nothing here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.production.jsonlog import log_event
from runner.serve.settings import ServeSettings
from runner.store.base import ProductionCounters

SCRAPE_TIMEOUT_SECONDS = 5.0  # a database that does not answer in time is reported down, not waited for
REJECTED_KEY = "journey.rejected"  # in the ASGI scope: the reason a handler gave (logged and counted once)
LOGGER = logging.getLogger("journey.serve")

# --- this process -----------------------------------------------------------------------------

disable_created_metrics()  # no ``*_created`` series: a scrape shows what operators read, nothing else

PROCESS = CollectorRegistry(auto_describe=True)
EVENTS_RECEIVED = Counter("journey_events_received", "Events accepted by this process, by type "
                          "(track, identify, alias, page, screen, group)", ["type"], registry=PROCESS)
REQUESTS_REJECTED = Counter("journey_requests_rejected", "Requests this process refused, by reason",
                            ["reason"], registry=PROCESS)
UNSUBSCRIBES = Counter("journey_unsubscribes", "Topic opt-outs this process recorded from the unsubscribe link, "
                       "by source (one-click, preferences) and topic (*: every marketing topic); a click that "
                       "changes nothing is not counted", ["source", "topic"], registry=PROCESS)
TICK_DURATION = Histogram("journey_tick_duration_seconds", "Wall-clock duration of the ticks this process ran",
                          buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=PROCESS)

# A rejection without a reason from its handler is counted under its status.
STATUS_REASONS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
                  422: "invalid", 429: "too_many_requests"}


def event_received(kind: str, count: int = 1) -> None:
    """``count`` events of ``kind`` (track, identify, …) were accepted and committed."""
    EVENTS_RECEIVED.labels(kind).inc(count)


def unsubscribed(source: str, topics: Iterable[str]) -> None:
    """Opt-outs from ``topics`` were recorded and committed (``source``: one-click, preferences)."""
    for topic in topics:
        UNSUBSCRIBES.labels(source, topic).inc()


def request_rejected(reason: str, scope: Scope | None = None) -> None:
    """A request was refused for ``reason`` (``bad_key``, ``too_large``, ``invalid_event`` …).

    Pass the request's ``scope`` (``request.scope``) so the rejection's log line names the
    reason and it is not counted a second time by :class:`RejectionLog`."""
    REQUESTS_REJECTED.labels(reason).inc()
    if scope is not None:
        scope[REJECTED_KEY] = reason


def tick_finished(report: Any) -> None:
    """A tick this process ran has ended (``TickReport``; its ``seconds`` set by ``run_tick``)."""
    if getattr(report, "seconds", None) is not None:
        TICK_DURATION.observe(report.seconds)


# --- the database -----------------------------------------------------------------------------

FINISHED = ("ok", "stopped", "failed", "died")  # run statuses that never change again: counters


class DatabaseCollector(Collector):
    """The figures every process writes to the database, as read for one scrape."""

    def __init__(self, counters: ProductionCounters | None, now: datetime):
        self.counters = counters
        self.now = now

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("journey_database_up", "1 when the database answered this scrape")
        up.add_metric([], 0 if self.counters is None else 1)
        yield up
        counters = self.counters
        if counters is None:
            return
        ticks = CounterMetricFamily("journey_ticks", "Finished ticks of every process, by status", labels=["status"])
        for status in FINISHED:
            ticks.add_metric([status], counters.ticks.get(status, 0))
        yield ticks
        running = GaugeMetricFamily("journey_ticks_running", "Ticks started and not finished (a dead process's "
                                    "run counts until the next tick closes it)")
        running.add_metric([], counters.ticks.get("running", 0))
        yield running
        decisions = CounterMetricFamily("journey_decisions", "Decisions journaled by every process, by action",
                                        labels=["action"])
        for action, n in sorted(counters.decisions.items()):
            decisions.add_metric([action], n)
        yield decisions
        sends = GaugeMetricFamily("journey_sends", "Send ledger rows by state (claimed, sent, failed, skipped, "
                                  "in_doubt); a send moves between states, so this is a gauge", labels=["state"])
        for state, n in sorted(counters.sends.items()):
            sends.add_metric([state], n)
        yield sends
        due = GaugeMetricFamily("journey_due_contacts", "Contacts whose wake-up has come (the due backlog)")
        due.add_metric([], counters.due)
        yield due
        age = GaugeMetricFamily("journey_due_oldest_seconds", "How long the oldest due wake-up has waited "
                                "(0 when nothing is due): a backlog the workers do not keep up with grows")
        age.add_metric([], max(0.0, (self.now - counters.oldest_due_at).total_seconds())
                       if counters.oldest_due_at else 0.0)
        yield age
        doubt = GaugeMetricFamily("journey_sends_in_doubt", "Sends claimed and never confirmed by a run that is "
                                  "gone: settle them with `journey resolve`")
        doubt.add_metric([], counters.in_doubt)
        yield doubt


def exposition(counters: ProductionCounters | None, now: datetime) -> bytes:
    """This process's metrics and the database's, in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Process())
    registry.register(DatabaseCollector(counters, now))
    return generate_latest(registry)


class _Process(Collector):
    """This process's counters and histogram, for a per-scrape registry."""

    def collect(self) -> Iterator[Any]:
        yield from PROCESS.collect()


async def metrics(request: Request) -> Response:
    now = datetime.now(UTC)
    counters: ProductionCounters | None
    try:
        counters = await asyncio.wait_for(
            request.app.state.store_access.read(lambda store: store.production_counters(now)),
            SCRAPE_TIMEOUT_SECONDS)
    except Exception as error:  # noqa: BLE001 - a scrape reports the database down, it never fails
        log_event(LOGGER, "metrics: the database did not answer", logging.WARNING, error=type(error).__name__)
        counters = None
    return Response(exposition(counters, now), media_type=CONTENT_TYPE_LATEST)


def routes(settings: ServeSettings) -> list[BaseRoute]:
    return [Route("/metrics", metrics, methods=["GET"])]


# --- one log line per rejected request ----------------------------------------------------------


class RejectionLog:
    """ASGI middleware: one structured line per request answered 4xx or 5xx (method, path,
    status, reason; never the body or the query string, which may hold a token), and the
    rejection counted under its reason unless its handler already did (``request_rejected``)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if status >= 400:
                self._record(scope, status)

    @staticmethod
    def _record(scope: Scope, status: int) -> None:
        reason = scope.get(REJECTED_KEY)
        if reason is None:
            reason = STATUS_REASONS.get(status, "server_error" if status >= 500 else f"http_{status}")
            REQUESTS_REJECTED.labels(reason).inc()
        level = logging.ERROR if status >= 500 else logging.INFO
        log_event(LOGGER, "request rejected", level, method=scope.get("method"), path=scope.get("path"),
                  status=status, reason=reason)
