"""`journey run --log-format json`: one JSON object per line, one line per tick with its counts, redacted.

The relay's refusals quote what a relay quotes (the recipient's address, a token, a
key); the worker's lines carry them through, masked. The redactor itself is checked
on the shapes it must catch.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from test_tick_kit import deployed_tiny_project, journey_cli

from runner.delivery.unsubscribe import make_token
from runner.production.jsonlog import Redactor, configure, environment_secrets, log_event

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
NOW = "2026-03-02T10:00:00Z"
WRITE_KEY = "wk_live_8f3a9c2e71d04b5f"
UNSUBSCRIBE_SECRET = "run-logs-test-secret-0123456789"
TOKEN = make_token(UNSUBSCRIBE_SECRET.encode(), "c00001", "all")


def test_json_run_logs_one_line_per_tick_with_counts_and_no_address_token_or_key(tmp_path, smtp_server):
    root, db, _ = deployed_tiny_project(tmp_path, 4, AT)
    smtp_server.rcpt_replies.extend([
        "250 OK",
        f"550 5.1.1 <c00001@example.com> unknown; ref {TOKEN} key {WRITE_KEY}",
    ])
    env = {"JOURNEY_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET, "JOURNEY_WRITE_KEYS": f"other-key-123,{WRITE_KEY}"}
    result = journey_cli(["run", "--now", NOW, "--db", str(db), "--log-format", "json",
                          "--transport", f"smtp://127.0.0.1:{smtp_server.port}?retries=0"], cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    ticks = [line for line in lines if line["message"] == "tick"]
    assert len(ticks) == 1
    tick = ticks[0]
    assert (tick["contacts"], tick["sent"], tick["failed"]) == (4, 3, 1)
    assert tick["decisions"]["send"] == 4 and tick["run_id"] and tick["duration_seconds"] > 0
    assert {line["level"] for line in lines} <= {"info", "error"} and all(line["time"] for line in lines)
    refusal = next(line["message"] for line in lines if line["message"].startswith("failed "))
    assert "c***@example.com" in refusal and "[redacted]" in refusal  # the line is there, masked
    text = result.stdout + result.stderr
    for secret in ("c00001@example.com", TOKEN, WRITE_KEY, UNSUBSCRIBE_SECRET):
        assert secret not in text
    assert "@example.com" not in text.replace("***@example.com", "")


def test_text_run_output_is_masked_too(tmp_path, smtp_server):
    root, db, _ = deployed_tiny_project(tmp_path, 2, AT)
    smtp_server.rcpt_replies.extend(["550 5.1.1 <c00000@example.com> unknown"])
    result = journey_cli(["run", "--now", NOW, "--db", str(db),
                          "--transport", f"smtp://127.0.0.1:{smtp_server.port}?retries=0"], cwd=root,
                         env={"JOURNEY_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET})
    assert result.returncode == 0, result.stderr
    assert "failed c00000:welcome" in result.stdout and "c***@example.com" in result.stdout
    assert "c00000@example.com" not in result.stdout
    assert result.stdout.splitlines()[-1].startswith("run ")  # the summary line, as before


def test_redactor_masks_addresses_tokens_credentials_and_given_secrets():
    redactor = Redactor(["s3cr3t-write-key"])
    line = (f"to Ada.Lovelace+x@mail.example.co.uk token={TOKEN} {TOKEN} key=abc "
            "Authorization: Basic czNjcjN0LXdyaXRlLWtleTo= with s3cr3t-write-key")
    masked = redactor.text(line)
    assert "A***@mail.example.co.uk" in masked
    for secret in ("Ada.Lovelace", TOKEN, "key=abc", "czNjcjN0", "s3cr3t-write-key"):
        assert secret not in masked, secret
    assert redactor.value({"traits": {"email": "bo@example.org", "n": 3}, "ids": ["x@y.io"]}) == {
        "traits": {"email": "b***@example.org", "n": 3}, "ids": ["x***@y.io"]}
    assert redactor.text("GET /contacts/grace+ops@navy.example.mil?email=o.b@x.io") == (
        "GET /contacts/g***@navy.example.mil?email=o***@x.io")
    assert redactor.text("run 20260302T100000Z-1a2b3c4d: 3 sent, 0 failed") == (
        "run 20260302T100000Z-1a2b3c4d: 3 sent, 0 failed")  # ordinary lines pass unchanged


def test_environment_secrets_split_key_lists_and_take_url_passwords():
    found = environment_secrets({"JOURNEY_WRITE_KEYS": "k-one-1,k-two-2", "HOME": "/root", "MY_HOOK": "hook-value"},
                                names=["MY_HOOK"], urls=["smtp://user:p4ssw0rd@relay:587"])
    assert {"k-one-1", "k-two-2", "hook-value", "p4ssw0rd"} <= set(found) and "/root" not in found


def test_structured_fields_are_redacted_and_handlers_are_not_doubled():
    import io

    stream = io.StringIO()
    configure("json", secrets=["hush-hush-key"], stream=stream, loggers=["journey.test"])
    configure("json", secrets=["hush-hush-key"], stream=stream, loggers=["journey.test"])
    log_event(logging.getLogger("journey.test"), "rejected", path="/v1/track", reason="bad key hush-hush-key",
              user={"email": "eve@example.net"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    document = json.loads(lines[0])
    assert document["reason"] == "bad key [redacted]" and document["user"] == {"email": "e***@example.net"}
    assert document["path"] == "/v1/track" and document["logger"] == "journey.test"


def test_the_json_worker_logs_each_tick_and_its_stop(tmp_path):
    import os
    import select
    import signal
    import subprocess
    import sys

    from test_tick_kit import REPO

    root, db, _ = deployed_tiny_project(tmp_path, 2, AT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "JOURNEY_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}
    worker = subprocess.Popen([sys.executable, "-m", "runner", "run", "--every", "1s", "--db", str(db),
                               "--log-format", "json"], cwd=root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([worker.stdout], [], [], 60)
        first = json.loads(worker.stdout.readline()) if ready else None
        assert first is not None and first["message"] == "tick" and first["contacts"] == 2
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1]["message"] == "stopped" and lines[-1]["ticks"] == 1 + sum(
        line["message"] == "tick" for line in lines)
    assert "@example.com" not in out.replace("***@example.com", "")
