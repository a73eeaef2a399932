"""Webhooks against a real local HTTP server that verifies signatures."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runner.delivery.transports import PermanentError, TransientError
from runner.delivery.webhooks import BlockedAddress, allowed_networks, post_webhook, sign, verify_signature

SECRET = b"crm-shared-secret-0123456789"
LOCAL = allowed_networks(["127.0.0.1/32"])  # the receivers below listen on loopback


class Receiver(ThreadingHTTPServer):
    """Records requests; answers with scripted statuses (default 200)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses: deque[int] = deque()
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/lead"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append(
            {
                "path": self.path,
                "body": body,
                "headers": dict(self.headers),
                "signature_ok": verify_signature(SECRET, body, self.headers.get("X-Journey-Signature", "")),
            }
        )
        status = self.server.statuses.popleft() if self.server.statuses else 200
        self.send_response(status)
        if status in (301, 302, 307):
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


PAYLOAD = {"contact": {"id": "ada", "email": "ada@example.com"}, "journey": "onboarding", "score": 55}


def test_signed_post(receiver: Receiver) -> None:
    before = int(time.time())
    status = post_webhook(receiver.url, PAYLOAD, SECRET, "ada:onboarding:1/2/tell_sales", allow_networks=LOCAL)
    assert status == 200
    [request] = receiver.requests
    assert request["signature_ok"] is True
    assert json.loads(request["body"]) == PAYLOAD
    headers = request["headers"]
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Idempotency-Key"] == "ada:onboarding:1/2/tell_sales"
    assert before <= int(headers["X-Journey-Timestamp"]) <= int(time.time())
    assert headers["X-Journey-Signature"] == sign(SECRET, request["body"])


def test_unicode_key_and_payload(receiver: Receiver) -> None:
    from urllib.parse import unquote

    post_webhook(receiver.url, {"name": "Çağla Şahin", "city": "İstanbul"}, SECRET, "çağla:onboarding:1/1/tell_sales", allow_networks=LOCAL)
    [request] = receiver.requests
    assert request["signature_ok"]
    assert json.loads(request["body"]) == {"name": "Çağla Şahin", "city": "İstanbul"}
    assert unquote(request["headers"]["Idempotency-Key"]) == "çağla:onboarding:1/1/tell_sales"


def test_signature_detects_tampering() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, body)
    assert verify_signature(SECRET, body, header)
    assert not verify_signature(SECRET, b'{"a":2}', header)
    assert not verify_signature(b"other-secret-xxxxxxxx", body, header)
    assert not verify_signature(SECRET, body, "")


def test_unsigned_without_secret(receiver: Receiver) -> None:
    post_webhook(receiver.url, PAYLOAD, None, "k", allow_networks=LOCAL)
    assert "X-Journey-Signature" not in receiver.requests[0]["headers"]


def test_server_errors_are_retried_with_backoff(receiver: Receiver) -> None:
    receiver.statuses.extend([503, 500])
    sleeps: list[float] = []
    assert post_webhook(receiver.url, PAYLOAD, SECRET, "k", allow_networks=LOCAL, backoff=0.1, sleep=sleeps.append) == 200
    assert sleeps == [0.1, 0.2]
    assert len(receiver.requests) == 3
    assert {r["headers"]["Idempotency-Key"] for r in receiver.requests} == {"k"}  # same key every attempt


def test_gives_up_after_retries(receiver: Receiver) -> None:
    receiver.statuses.extend([502] * 10)
    sleeps: list[float] = []
    with pytest.raises(TransientError, match="502.*gave up after 3 attempts"):
        post_webhook(receiver.url, PAYLOAD, SECRET, "k", allow_networks=LOCAL, retries=2, backoff=0.01, sleep=sleeps.append)
    assert len(receiver.requests) == 3 and sleeps == [0.01, 0.02]


def test_rate_limit_is_transient(receiver: Receiver) -> None:
    receiver.statuses.extend([429])
    assert post_webhook(receiver.url, PAYLOAD, SECRET, "k", allow_networks=LOCAL, sleep=lambda _: None) == 200


@pytest.mark.parametrize("status", [400, 401, 404, 422, 302])
def test_client_errors_and_redirects_are_permanent(receiver: Receiver, status: int) -> None:
    receiver.statuses.append(status)
    with pytest.raises(PermanentError, match=str(status)):
        post_webhook(receiver.url, PAYLOAD, SECRET, "k", allow_networks=LOCAL, sleep=lambda _: pytest.fail("must not retry"))
    assert len(receiver.requests) == 1


def test_unreachable_is_transient() -> None:
    server = Receiver()
    url = server.url
    server.server_close()  # nothing listens on that port any more
    with pytest.raises(TransientError, match="unreachable"):
        post_webhook(url, PAYLOAD, SECRET, "k", allow_networks=LOCAL, retries=1, timeout=2, sleep=lambda _: None)


def test_only_http_urls() -> None:
    with pytest.raises(PermanentError, match="http"):
        post_webhook("file:///etc/passwd", PAYLOAD, SECRET, "k")


# ------------------------------------------------------------ through Delivery


def _delivery(tmp_path, monkeypatch, allow: list[str] | None):
    from runner.core.model import Project
    from runner.delivery.dispatch import Delivery

    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", "s" * 40)
    raw = {"webhooks": {"allow_networks": allow}} if allow is not None else {}
    return Delivery(Project(root=tmp_path, raw=raw), "smtp://127.0.0.1:1", connect=False)


def _outgoing(url: str, secret_env: str | None = "CRM_SECRET"):
    from runner.delivery.dispatch import Outgoing

    return Outgoing("ada:j:1/1/hook", "webhook", url, url=url, payload=dict(PAYLOAD), secret_env=secret_env)


def test_delivery_reaches_a_private_receiver_only_when_the_project_allows_it(receiver, tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_SECRET", SECRET.decode())
    with pytest.raises(BlockedAddress, match="127.0.0.1"):
        _delivery(tmp_path, monkeypatch, None).deliver(_outgoing(receiver.url))
    assert receiver.requests == []
    assert _delivery(tmp_path, monkeypatch, ["127.0.0.1/32"]).deliver(_outgoing(receiver.url)) == "http 200"
    assert [r["signature_ok"] for r in receiver.requests] == [True]


def test_delivery_never_sends_unsigned_when_the_secret_env_is_unset(receiver, tmp_path, monkeypatch):
    monkeypatch.delenv("CRM_SECRET", raising=False)
    delivery = _delivery(tmp_path, monkeypatch, ["127.0.0.1/32"])
    with pytest.raises(TransientError, match=r"\$CRM_SECRET is not set"):
        delivery.deliver(_outgoing(receiver.url))
    assert receiver.requests == []
    assert delivery.deliver(_outgoing(receiver.url, secret_env=None)) == "http 200"  # no secret declared: unsigned


def test_a_bad_network_in_the_project_is_an_error_not_a_traceback(tmp_path, monkeypatch):
    from runner.core.problems import JourneyError

    with pytest.raises(JourneyError, match="allow_networks"):
        _delivery(tmp_path, monkeypatch, ["not-a-network"])


def test_validate_checks_the_allowed_networks(tmp_path):
    from runner.language.loader import validate

    (tmp_path / "journeys").mkdir()
    (tmp_path / "project.yaml").write_text(
        'name: x\nwebhooks:\n  allow_networks:\n    - "10.0.0.0/8"\n    - "10.0.0.0/33"\n', encoding="utf-8")
    problems = [(p.line, p.code) for p in validate([], root=tmp_path).problems]
    assert problems == [(5, "project.network")]
