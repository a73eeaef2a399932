"""Crash safety: SIGKILL `journey run` mid-send, again and again, against a real SMTP server.

Thousands of contacts are due; each `journey run` (a real subprocess) sends
to an aiosmtpd server and is killed while sending: the server kills it when a
(seeded) random message number comes in, before answering, with the message
kept or not. Crash points are counted in messages, never timed, so a fast and
a slow machine kill at the same points. After each kill one send is left
claimed-but-unconfirmed (with a pool of N connections, at most N: one wave).
At the end the operator's job is done the way docs/run.md says: every in-doubt
key is looked up on the server and resolved --sent or --failed, and one more
run sends what is left. Then every expected message has been received exactly
once. The outbox is killed the same way from inside (tests/crashing_journey.py).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from smtp_server import SmtpServer
from test_tick_kit import REPO, add_signups, journey_cli, tiny_project

from runner.delivery.message import journey_key
from runner.production.deploy import deploy, load_working_tree
from runner.store import open_store

CONTACTS = 2000
KILLS = 12
AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
NOW = "2026-03-02T10:00:00+00:00"  # the welcome email of every contact is due, the tips one is not
SECRET = {"JOURNEY_UNSUBSCRIBE_SECRET": "crash-test-secret-0123456789"}
CRASHING_JOURNEY = REPO / "tests" / "crashing_journey.py"


def _received_keys(server: SmtpServer) -> Counter:
    with server.lock:
        return Counter(journey_key(item.message) for item in server.messages)


def _unconfirmed(db) -> list[str]:
    """Claims never confirmed (the outbox's: sent again by the next run)."""
    return _keys(db, "state IN ('claimed', 'in_doubt')")


def _handed_over_unconfirmed(db) -> list[str]:
    """Sends a crash may have left in doubt: handed to the transport, never confirmed (a batch's
    queued claims not yet handed over are not: the next run sends them)."""
    return _keys(db, "state = 'in_doubt' OR (state = 'claimed' AND retryable = 0)")


def _keys(db, where: str) -> list[str]:
    store = open_store(db)
    try:
        return [key for (key,) in store.conn.execute(f"SELECT key FROM sends WHERE {where} ORDER BY key")]
    finally:
        store.close()


def _start_run(root, db, server: SmtpServer, connections: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "--now", NOW, "--db", str(db), "-q",
         "--transport", f"smtp://127.0.0.1:{server.port}?retries=0&timeout=5&connections={connections}"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.parametrize("connections", [1, 4])
def test_sigkill_mid_send_never_loses_or_duplicates_a_message(tmp_path, smtp_server, connections):
    """With a pool of N connections a wave of N sends is claimed at once: at most N in doubt per kill."""
    rng = random.Random(20260302)
    root = tiny_project(tmp_path / "project")
    db = tmp_path / "journey.db"
    store = open_store(db)
    ids = add_signups(store, CONTACTS, AT)
    deploy(store, load_working_tree(root).journeys, AT)
    store.close()
    expected = {f"{cid}:welcome:1/1/hello" for cid in ids}

    kills = 0
    in_doubt_after_kill: list[int] = []
    for _ in range(KILLS):  # each run sends at most 80 + a wave: thousands stay due, so every run is killed
        before = len(_handed_over_unconfirmed(db))
        crash = smtp_server.kill_sender_at(len(smtp_server.messages) + rng.randint(1, 80),
                                           delivered=rng.random() < 0.5)
        process = crash.sender(_start_run(root, db, smtp_server, connections))
        process.wait()
        assert process.returncode == -signal.SIGKILL, process.stderr.read() if process.stderr else ""
        process.stderr.close()
        kills += 1
        in_doubt_after_kill.append(len(_handed_over_unconfirmed(db)) - before)

    assert all(1 <= n <= connections for n in in_doubt_after_kill), in_doubt_after_kill
    print(f"{kills} kills, in doubt after each: {in_doubt_after_kill}")

    # Finish the work, then resolve what the crashes left in doubt by asking the server.
    finished = journey_cli(["run", "--now", NOW, "--db", str(db), "-q", "--transport",
                            f"smtp://127.0.0.1:{smtp_server.port}?retries=0"], cwd=root, env=SECRET)
    assert finished.returncode == 0, finished.stderr
    status = journey_cli(["status", "--format", "json", "--db", str(db)], cwd=root)
    assert status.returncode == 0, status.stderr
    import json

    in_doubt = [row["key"] for row in json.loads(status.stdout)["in_doubt"]]
    assert len(in_doubt) <= kills * connections
    assert len(in_doubt) == sum(in_doubt_after_kill)
    received = _received_keys(smtp_server)
    delivered = [key for key in in_doubt if received[key]]
    lost = [key for key in in_doubt if not received[key]]
    print(f"in doubt: {len(delivered)} delivered (resolve --sent), {len(lost)} not (resolve --failed)")
    for keys, flag in ((delivered, "--sent"), (lost, "--failed")):
        if keys:
            resolved = journey_cli(["resolve", *keys, flag, "--db", str(db)], cwd=root)
            assert resolved.returncode == 0, resolved.stderr
    final = journey_cli(["run", "--now", NOW, "--db", str(db), "-q", "--transport",
                         f"smtp://127.0.0.1:{smtp_server.port}?retries=0"], cwd=root, env=SECRET)
    assert final.returncode == 0, final.stderr

    received = _received_keys(smtp_server)
    assert set(received) == expected  # nothing lost
    assert max(received.values()) == 1  # nothing sent twice
    store = open_store(db)
    states = store.status_summary(datetime.now(UTC))["sends"]
    runs = store.production_counters(datetime.now(UTC)).ticks  # runs per status
    store.close()
    assert states == {"sent": CONTACTS}
    assert runs == {"died": kills, "ok": 2}  # every killed run was closed by the next one


def test_sigkill_with_the_outbox_resends_interrupted_batches_and_leaves_nothing_in_doubt(tmp_path):
    """The outbox is idempotent (same key, same file), so the tick claims a batch at once and
    syncs its files together; a kill anywhere leaves claims that the next run sends again."""
    rng = random.Random(20261123)
    root = tiny_project(tmp_path / "project")
    db = tmp_path / "journey.db"
    outbox = tmp_path / "outbox"
    store = open_store(db)
    ids = add_signups(store, CONTACTS, AT)
    deploy(store, load_working_tree(root).journeys, AT)
    store.close()
    env = {**os.environ, "PYTHONPATH": str(REPO), **SECRET}
    command = [sys.executable, "-m", "runner", "run", "--now", NOW, "--db", str(db), "-q",
               "--transport", f"outbox:{outbox}"]

    interrupted = []
    for n in range(KILLS):
        # Kill at the run's message 2-150, before, within or after writing its batch (tests/crashing_journey.py).
        # Interrupted claims are re-sent first, one by one: from 2 on, each run confirms at least one of them,
        # so no message is interrupted MAX_SEND_ATTEMPTS times; 12 x 150 < CONTACTS, so every run is killed.
        at = rng.randint(2, 150)
        mode = ("claimed", "partial", "written")[n % 3]
        killed = subprocess.run([sys.executable, str(CRASHING_JOURNEY), *command[3:]], cwd=root,
                                env={**env, "JOURNEY_CRASH_AT": f"{at}:{mode}"}, capture_output=True, text=True)
        assert killed.returncode == -signal.SIGKILL, (at, mode, killed.stderr)
        interrupted.append(len(_unconfirmed(db)))
    assert max(interrupted) > 1, interrupted  # whole batches were cut off between claim and confirm

    finished = journey_cli(command[3:], cwd=root, env=SECRET)
    assert finished.returncode == 0, finished.stderr

    files = sorted(outbox.glob("*.eml"))
    keys = Counter(journey_key(message_from_bytes(path.read_bytes(), policy=policy.default)) for path in files)
    assert set(keys) == {f"{cid}:welcome:1/1/hello" for cid in ids}  # nothing lost
    assert max(keys.values()) == 1  # one file per message, whatever was re-sent
    assert all(path.read_bytes().rstrip().endswith(b"--") for path in files)  # every file is whole
    store = open_store(db)
    states = store.status_summary(datetime.now(UTC))["sends"]
    resent = store.conn.execute("SELECT count(*) FROM sends WHERE attempts > 1").fetchone()[0]  # no protocol answer
    journal = store.production_counters(datetime.now(UTC)).decisions  # per action
    store.close()
    # the journal is written with the states: re-run contacts never have their decisions twice
    assert journal == {"enter": CONTACTS, "send": CONTACTS, "wait": CONTACTS}
    assert states == {"sent": CONTACTS}  # nothing left in doubt for an operator
    assert resent >= max(interrupted)  # the interrupted claims were sent again, through the ledger
