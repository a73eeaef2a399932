"""``GET /metrics``: process counters, the database's counters of every process, the tick histogram."""

from __future__ import annotations

import json
import logging
import sqlite3
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families
from test_tick_kit import journey_cli

from runner.serve import metrics

NOW = "2026-03-02T10:00:00Z"


def scrape(get) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed by prometheus-client's own parser."""
    answer = get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")  # the Prometheus text format
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def test_database_figures_count_the_work_of_other_processes(client, serve_project):
    before = scrape(client.get)
    assert before[("journey_database_up", ())] == 1
    assert before[("journey_due_contacts", ())] == 2  # the two signups, due since the deploy
    assert before[("journey_due_oldest_seconds", ())] > 0
    assert before[("journey_ticks_total", (("status", "ok"),))] == 0

    # a cron `journey run` in another process does the work; the service's scrape sees it
    result = journey_cli(["run", "--now", NOW, "--db", str(serve_project.db)], cwd=serve_project.root)
    assert result.returncode == 0, result.stderr
    after = scrape(client.get)
    assert after[("journey_ticks_total", (("status", "ok"),))] == 1
    assert after[("journey_sends", (("state", "sent"),))] == 2
    assert after[("journey_decisions_total", (("action", "send"),))] == 2
    with sqlite3.connect(serve_project.db) as conn:  # the contacts' next wake-ups (their journey's waits)
        due = conn.execute("SELECT count(*) FROM contacts WHERE wake_at <= strftime('%Y-%m-%dT%H:%M:%f', 'now')")
        assert after[("journey_due_contacts", ())] == due.fetchone()[0]
    assert after[("journey_sends_in_doubt", ())] == 0


def test_process_counters_move_with_what_other_modules_record(client, caplog):
    key_event = ("journey_events_received_total", (("type", "track"),))
    key_not_found = ("journey_requests_rejected_total", (("reason", "not_found"),))
    before = scrape(client.get)
    metrics.event_received("track", 3)
    with caplog.at_level(logging.INFO, logger="journey.serve"):
        assert client.get("/no-such-page?token=abc").status_code == 404
    after = scrape(client.get)
    assert after[key_event] - before.get(key_event, 0) == 3
    assert after[key_not_found] - before.get(key_not_found, 0) == 1
    rejected = [r for r in caplog.records if r.getMessage() == "request rejected"]
    assert len(rejected) == 1
    assert rejected[0].fields == {"method": "GET", "path": "/no-such-page", "status": 404, "reason": "not_found"}


def test_a_reason_given_by_the_handler_is_counted_once(client):
    from starlette.requests import Request

    scope = {"type": "http", "method": "POST", "path": "/v1/track", "headers": []}
    before = scrape(client.get)
    metrics.request_rejected("bad_key", Request(scope).scope)
    metrics.RejectionLog._record(scope, 401)
    after = scrape(client.get)
    key = ("journey_requests_rejected_total", (("reason", "bad_key"),))
    assert after[key] - before.get(key, 0) == 1
    assert after.get(("journey_requests_rejected_total", (("reason", "unauthorized"),)), 0) == before.get(
        ("journey_requests_rejected_total", (("reason", "unauthorized"),)), 0)


def test_the_worker_observes_its_ticks_and_logs_one_json_line_each(serve_process, serve_project):
    server = serve_process("--worker")
    deadline = time.monotonic() + 120  # generous: the suite runs on a shared, loaded machine
    while True:
        try:
            figures = scrape(lambda path: httpx.get(server.url + path, timeout=30))
        except httpx.TransportError:  # a scrape that timed out under load: ask again
            figures = {}
        # A scrape reads the database's figures first and this process's histogram as it writes the
        # answer: a tick that ends in between is in the histogram and not yet in the database's
        # figures. The next scrape has both.
        if (figures.get(("journey_tick_duration_seconds_count", ()), 0) >= 1
                and figures.get(("journey_ticks_total", (("status", "ok"),)), 0) >= 1):
            break
        assert time.monotonic() < deadline, f"no tick observed: {figures}"
        time.sleep(0.2)
    assert figures[("journey_sends", (("state", "sent"),))] >= 2, figures  # the welcome emails, at least
    code, out, err = server.stop()
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    ticks = [line for line in lines if line["message"] == "tick" and line.get("ran", True)]
    assert ticks and all(tick["duration_seconds"] > 0 and tick["run_id"] for tick in ticks), out
    with sqlite3.connect(serve_project.db) as conn:
        sent = conn.execute("SELECT count(*) FROM sends WHERE state = 'sent'").fetchone()[0]
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert sum(tick.get("sent", 0) for tick in ticks) == sent, out  # the lines add up to the ledger
    assert len(ticks) == runs, out  # one line per tick that ran
    assert "@example.com" not in out


def test_metrics_and_readiness_on_postgresql(pg_url, serve_project, tmp_path):
    from datetime import timedelta

    from starlette.testclient import TestClient
    from test_tick_kit import add_signups

    from runner.production.deploy import deploy, load_working_tree
    from runner.production.tick import build_runtime, run_tick
    from runner.serve.app import build_app
    from runner.serve.settings import load_settings
    from runner.store import open_store

    from .conftest import DEPLOYED_AT

    store = open_store(pg_url)
    try:
        add_signups(store, 3, DEPLOYED_AT)
        deploy(store, load_working_tree(serve_project.root).journeys, DEPLOYED_AT)
        settings = load_settings(serve_project.root, pg_url, {"JOURNEY_WRITE_KEYS": "k-123456"}, port=0)
        with TestClient(build_app(settings)) as client:
            assert client.get("/readyz").json()["status"] == "ready"
            before = scrape(client.get)
            assert before[("journey_due_contacts", ())] == 3 and before[("journey_database_up", ())] == 1
            runtime = build_runtime(store, settings.project, f"outbox:{tmp_path / 'outbox'}")
            run_tick(store, runtime, DEPLOYED_AT + timedelta(minutes=1))
            runtime.delivery.close()
            after = scrape(client.get)
        assert after[("journey_ticks_total", (("status", "ok"),))] == 1
        assert after[("journey_sends", (("state", "sent"),))] == 3
        assert after[("journey_decisions_total", (("action", "send"),))] == 3
    finally:
        store.close()
