"""A relay outage loses no mail: transient failures are retried with backoff until ``retry.max_age``.

Each tick is a real `journey run --now` process sending to a real aiosmtpd
relay that first answers 451 to every message, then refuses connections
(stopped), then comes back on the same port. Every message is delivered
exactly once afterwards, however many ticks the outage lasted. Past
``max_age`` a send fails for good, visibly (run summary, status, history),
and `journey requeue` puts it back by key, by scheduled range or all at once.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from smtp_server import SmtpServer
from test_tick_kit import TINY_PROJECT, add_signups, journey_cli, tiny_project

from runner.delivery.message import journey_key
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.store import open_store

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
SECRET = {"JOURNEY_UNSUBSCRIBE_SECRET": "relay-outage-secret-0123456789"}
BUSY = "451 4.3.0 relay busy, try later"


def _project(tmp_path: Path, project: str = TINY_PROJECT) -> tuple[Path, Path, list[str]]:
    root = tiny_project(tmp_path / "project", project=project)
    db = tmp_path / "journey.db"
    store = open_store(db)
    ids = add_signups(store, 20, AT, prefix="a") + add_signups(store, 20, AT + timedelta(minutes=30), prefix="b")
    deploy(store, load_working_tree(root).journeys, AT)
    store.close()
    return root, db, ids


def _tick(root: Path, db: Path, server: SmtpServer, at: datetime) -> str:
    result = journey_cli(["run", "--now", at.isoformat(), "--db", str(db), "-q", "--transport",
                          server.url(retries=0, timeout=5)], cwd=root, env=SECRET)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _received(server: SmtpServer) -> Counter:
    with server.lock:
        return Counter(journey_key(item.message) for item in server.messages)


def _status(root: Path, db: Path, at: datetime) -> dict:
    result = journey_cli(["status", "--format", "json", "--now", at.isoformat(), "--db", str(db)], cwd=root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _ledger(db: Path) -> dict[str, tuple]:
    store = open_store(db)
    try:
        return {key: (state, retryable, attempts) for key, state, retryable, attempts in store.conn.execute(
            "SELECT key, state, retryable, attempts FROM sends")}
    finally:
        store.close()


def _keys(ids: list[str]) -> set[str]:
    return {f"{cid}:welcome:1/1/hello" for cid in ids}


def test_five_ticks_of_relay_outage_then_every_message_goes_out_once(tmp_path):
    root, db, ids = _project(tmp_path)
    start = AT + timedelta(hours=1)
    with SmtpServer() as server:
        server.outage = BUSY
        for hour in range(3):  # 451 to every message
            summary = _tick(root, db, server, start + timedelta(hours=hour))
            assert "40 retryable" in summary, summary
        server.stop()
        for hour in range(3, 5):  # connection refused
            summary = _tick(root, db, server, start + timedelta(hours=hour))
            assert "40 retryable" in summary, summary
        status = _status(root, db, start + timedelta(hours=4, minutes=30))
        assert status["sends"] == {"failed": 40}
        assert all(row["retryable"] and row["retry_at"] for row in status["failures"])
        assert _received(server) == Counter()

        server.outage = None
        server.start()  # the relay is back, on the same port
        summary = _tick(root, db, server, start + timedelta(hours=5))
        assert "40 retried" in summary and "40 sent" in summary, summary
        again = _tick(root, db, server, start + timedelta(hours=6))
    received = _received(server)
    assert set(received) == _keys(ids) and max(received.values()) == 1  # every message, once
    assert "sent" not in again
    assert {value for value in _ledger(db).values()} == {("sent", 0, 6)}


def test_retries_back_off_exponentially_between_ticks(tmp_path, monkeypatch):
    """first_delay 20m doubling, max_delay 1h: ticks every 10 minutes retry at +20m, +40m, +60m (capped), +60m."""
    monkeypatch.setenv(*next(iter(SECRET.items())))
    project = TINY_PROJECT + "retry: {first_delay: 20m, max_delay: 1h}\n"
    root, db, _ = _project(tmp_path, project)
    start = AT + timedelta(hours=1)
    attempts_seen = []
    store = open_store(db)
    with SmtpServer() as server:
        server.outage = BUSY
        runtime = build_runtime(store, load_working_tree(root).project, server.url(retries=0))
        for minutes in range(0, 190, 10):
            run_tick(store, runtime, start + timedelta(minutes=minutes))
            attempts_seen.append(store.conn.execute("SELECT max(attempts) FROM sends").fetchone()[0])
        runtime.delivery.close()
    store.close()
    # attempt 1 at 0m, 2 at 20m, 3 at 60m (20+40), 4 at 120m (60+60, capped), 5 at 180m
    changes = [10 * n for n in range(1, len(attempts_seen)) if attempts_seen[n] != attempts_seen[n - 1]]
    assert attempts_seen[0] == 1 and changes == [20, 60, 120, 180], attempts_seen


def test_past_max_age_a_send_fails_visibly_and_requeue_brings_it_back(tmp_path):
    project = TINY_PROJECT + "retry: {max_age: 3h, first_delay: 30m, max_delay: 1h}\n"
    root, db, ids = _project(tmp_path, project)
    start = AT + timedelta(hours=1)
    with SmtpServer() as server:
        server.outage = BUSY
        for hour in range(3):
            assert "40 retryable" in _tick(root, db, server, start + timedelta(hours=hour))
        summary = _tick(root, db, server, start + timedelta(hours=3))  # 3 h after the first failure
        assert "40 gave up" in summary, summary
        assert {state for state, _, _ in _ledger(db).values()} == {"failed"}
        assert {retryable for _, retryable, _ in _ledger(db).values()} == {0}

        status = journey_cli(["status", "--now", (start + timedelta(hours=3)).isoformat(), "--db", str(db)],
                             cwd=root).stdout
        assert "permanent" in status and "gave up after 3h" in status and "will retry" not in status
        history = json.loads(journey_cli(["history", "a00000", "--format", "json", "--db", str(db)],
                                         cwd=root).stdout)["events"]
        hello = next(e for e in history if e["step"] == "hello")
        assert hello["action"] == "send_failed" and "gave up after 3h" in hello["reason"] and BUSY in hello["reason"]

        server.outage = None
        assert "sent" not in _tick(root, db, server, start + timedelta(hours=4))  # failed for good stays failed
        assert _received(server) == Counter()

        one = journey_cli(["requeue", "a00000:welcome:1/1/hello", "--db", str(db)], cwd=root)
        assert one.returncode == 0 and "requeued 1 send(s)" in one.stdout, one.stderr
        assert "1 sent" in _tick(root, db, server, start + timedelta(hours=5))
        ranged = journey_cli(["requeue", "--since", (AT + timedelta(minutes=15)).isoformat(),
                              "--until", (AT + timedelta(hours=1)).isoformat(), "--db", str(db)], cwd=root)
        assert ranged.returncode == 0 and "requeued 20 send(s)" in ranged.stdout, ranged.stderr
        assert "20 sent" in _tick(root, db, server, start + timedelta(hours=6))
        every = journey_cli(["requeue", "--all-failed", "--db", str(db)], cwd=root)
        assert every.returncode == 0 and "requeued 19 send(s)" in every.stdout, every.stderr
        assert "19 sent" in _tick(root, db, server, start + timedelta(hours=7))

        not_failed = journey_cli(["requeue", "a00000:welcome:1/1/hello", "--db", str(db)], cwd=root)
        assert not_failed.returncode == 1 and "not failed" in not_failed.stderr
        assert "Traceback" not in not_failed.stderr
    received = _received(server)
    assert set(received) == _keys(ids) and max(received.values()) == 1
    assert {state for state, _, _ in _ledger(db).values()} == {"sent"}


@pytest.mark.parametrize("connections", [1, 4])
def test_a_run_stops_trying_a_relay_that_is_down_and_the_next_run_sends_everything(tmp_path, monkeypatch,
                                                                                   connections):
    """Three transient failures in a row: the run's other emails are not handed to the relay
    (each a transient failure with its backoff), so an outage costs a tick three attempts
    (one wave with a pool), not one per message."""
    monkeypatch.setenv(*next(iter(SECRET.items())))
    root, db, ids = _project(tmp_path)
    store = open_store(db)
    with SmtpServer() as server:
        server.outage = BUSY
        url = server.url(retries=0, connections=connections)
        runtime = build_runtime(store, load_working_tree(root).project, url)
        down = run_tick(store, runtime, AT + timedelta(hours=1))
        assert down.counts["retryable"] == 40 and server.refused == max(3, connections)
        assert any(line.startswith("relay down:") for line in down.lines)
        failures = {error for (error,) in store.conn.execute("SELECT error FROM sends")}
        assert BUSY in str(failures) and any(error.startswith("not tried: the relay failed 3 times")
                                             for error in failures)
        server.outage = None
        back = run_tick(store, runtime, AT + timedelta(hours=2))
        runtime.delivery.close()
    store.close()
    assert back.counts["retried"] == 40 and back.counts["sent"] == 40
    received = _received(server)
    assert set(received) == _keys(ids) and max(received.values()) == 1


CART = """\
id: cart
version: 1
name: Cart
stages:
  - id: main
    entry: {event: cart_abandoned}
    steps:
      - id: reminder
        email: {template: reminder, subject: "Your cart: {{ event.properties.total }}"}
"""


def test_a_retried_send_renders_the_event_its_decision_journaled(tmp_path, monkeypatch):
    """The retry rebuilds the send from the deployed step and the contact as it is now; the event
    that started the step comes from the send's own journaled decision (the enrollment, done by
    then, no longer holds it), so the retry renders what the first attempt would have."""
    from runner.store.base import ContactRow, EventRow

    monkeypatch.setenv(*next(iter(SECRET.items())))
    templates = {"reminder.html": "<p>{{ event.name }}: {{ event.properties.total }}</p>"
                                  "<p><a href=\"{{ unsubscribe_url }}\">unsubscribe</a></p>"}
    root = tiny_project(tmp_path / "project", {"cart": CART}, templates=templates)
    store = open_store(tmp_path / "journey.db")
    store.write_contacts([ContactRow("ada", {"email": "ada@example.com"})], AT)
    store.write_events([EventRow("ada", None, "cart_abandoned", AT, {"total": 19.9}, "cart-1")], AT)
    deploy(store, load_working_tree(root).journeys, AT)
    with SmtpServer() as server:
        server.outage = BUSY
        runtime = build_runtime(store, load_working_tree(root).project, server.url(retries=0))
        run_tick(store, runtime, AT + timedelta(hours=1))
        assert _received(server) == Counter()
        assert "cart" not in store.load_contact_state("ada").enrollments  # completed: no event kept there
        server.outage = None
        report = run_tick(store, runtime, AT + timedelta(hours=2))
        runtime.delivery.close()
        with server.lock:
            subjects = [str(item.message["Subject"]) for item in server.messages]
            bodies = [item.message.get_body(("html",)).get_content() for item in server.messages]
    store.close()
    assert report.counts["retried"] == 1
    assert subjects == ["Your cart: 19.9"]
    assert "cart_abandoned: 19.9" in bodies[0]
