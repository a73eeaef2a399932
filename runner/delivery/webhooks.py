"""Signed JSON webhooks (CRM hand-off), retried on server errors only.

The receiver can check authenticity with the shared secret:
``X-Journey-Signature: sha256=<hex HMAC-SHA256 of the raw body>``. The
``Idempotency-Key`` header repeats the send's key so the receiver can drop the
duplicates our retries may cause; ``X-Journey-Timestamp`` is informational
(it is not covered by the signature, as the contract signs the body only).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from runner.delivery.transports import PermanentError, TransientError

USER_AGENT = "journey-runner-webhook/1"
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
# 4xx replies that mean "later", not "never".
_RETRYABLE_4XX = frozenset({408, 425, 429})


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str) -> bool:
    """Receiver side: does ``header`` sign ``body`` with ``secret`` (constant-time)?"""
    return hmac.compare_digest(sign(secret, body).encode(), (header or "").encode())


def encode_payload(payload: dict) -> bytes:
    """Compact, key-sorted JSON; dates and other objects as strings."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False).encode()


def post_webhook(
    url: str,
    payload: dict,
    secret: bytes | None,
    idempotency_key: str,
    *,
    timeout: float = 10,
    retries: int = 3,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """POST ``payload``; return the 2xx status.

    Retries ``retries`` times with exponential backoff on 5xx, 408/425/429,
    timeouts and connection errors, then raises :class:`TransientError`; other
    4xx (and 3xx) raise :class:`PermanentError` at once.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise PermanentError(f"webhook URL must be http(s), not {url!r}")
    body = encode_payload(payload)
    attempt = 0
    while True:
        try:
            return _post_once(url, body, secret, idempotency_key, timeout)
        except TransientError as exc:
            if attempt >= retries:
                raise TransientError(f"{exc} (gave up after {attempt + 1} attempts)") from None
            sleep(backoff * (2**attempt))
            attempt += 1


def _post_once(url: str, body: bytes, secret: bytes | None, key: str, timeout: float) -> int:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": quote(key, safe=_HEADER_SAFE),  # HTTP headers are Latin-1: percent-encode the rest
        "X-Journey-Timestamp": str(int(time.time())),
    }
    if secret:
        headers["X-Journey-Signature"] = sign(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        reason = _reason(exc)
        if status >= 500 or status in _RETRYABLE_4XX:
            raise TransientError(f"webhook {url} answered {status} {reason}") from None
        raise PermanentError(f"webhook {url} answered {status} {reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # refused, DNS, TLS, timeout, cut off
        raise TransientError(f"webhook {url} unreachable: {getattr(exc, 'reason', exc)}") from None
    if not 200 <= status < 300:
        raise PermanentError(f"webhook {url} answered {status}")
    return status


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        detail = exc.read(200).decode("utf-8", "replace").strip()
    except OSError:
        detail = ""
    return f"{exc.reason}{': ' + detail if detail else ''}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A signed POST is not followed to another address; a redirect is an error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)
