"""Signed JSON webhooks (CRM hand-off), retried on server errors only.

The receiver can check authenticity with the shared secret:
``X-Journey-Signature: sha256=<hex HMAC-SHA256 of the raw body>``. The
``Idempotency-Key`` header repeats the send's key so the receiver can drop the
duplicates our retries may cause; ``X-Journey-Timestamp`` is informational
(it is not covered by the signature, as the contract signs the body only).

Journeys are written by marketers, so a webhook URL is untrusted: every
address its host resolves to must be public (not loopback, private,
link-local, shared or reserved) unless the project allows the network
(``webhooks.allow_networks``), and the connection goes to the address that
was checked (no second lookup, no proxy). Each attempt has a total deadline:
a receiver that trickles its answer a byte at a time is cut off when it
passes, not after every read's own timeout.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from runner.delivery.transports import PermanentError, TransientError

USER_AGENT = "journey-runner-webhook/1"
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
# 4xx replies that mean "later", not "never".
_RETRYABLE_4XX = frozenset({408, 425, 429})


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddress(PermanentError):
    """The webhook's host resolves to an address the project does not allow."""


def allowed_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``webhooks.allow_networks`` from project.yaml (``127.0.0.1/32``, ``10.0.0.0/8``, ``::1``)."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def check_address(host: str, address: IPAddress, allowed: tuple[IPNetwork, ...]) -> None:
    """Refuse a non-public address outside ``allowed`` (the SSRF guard)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address in network for network in allowed):
        return
    if address.is_global and not address.is_multicast:
        return
    kind = next((name for name in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved")
                 if getattr(address, f"is_{name}")), "non-public")
    raise BlockedAddress(f"webhook host {host} resolves to {address}, a {kind.replace('_', '-')} address; "
                         "allow its network under webhooks.allow_networks in project.yaml if it is meant")


@dataclass
class _Attempt:
    """One request's limits: the networks allowed and the instant it must end by."""

    allowed: tuple[IPNetwork, ...]
    deadline: float

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("webhook request passed its deadline")
        return left

    def connect(self, address: tuple[str, int], timeout: Any = None, source_address: Any = None) -> socket.socket:
        """``socket.create_connection`` to a checked address, cut off at the deadline."""
        host, port = address
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host}: {exc.strerror}") from None
        for *_, sockaddr in infos:  # every address: a name must not mix public and private ones
            check_address(host, ipaddress.ip_address(str(sockaddr[0]).partition("%")[0]), self.allowed)
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(self.remaining())
            sock.connect(sockaddr)
        except BaseException:
            sock.close()
            raise
        # reads and writes each have their own timeout; the watchdog bounds them all together
        watchdog = threading.Timer(self.remaining(), functools.partial(_cut_off, sock))
        watchdog.daemon = True
        watchdog.start()
        self.watchdogs.append(watchdog)
        return sock

    def __post_init__(self) -> None:
        self.watchdogs: list[threading.Timer] = []

    def finish(self) -> None:
        for watchdog in self.watchdogs:
            watchdog.cancel()


def _cut_off(sock: socket.socket) -> None:
    """Wake a read blocked on ``sock`` (it then fails) once the deadline has passed."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, attempt: _Attempt, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._create_connection = attempt.connect


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, attempt: _Attempt, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._create_connection = attempt.connect


class _CheckedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, attempt: _Attempt):
        super().__init__()
        self.attempt = attempt

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_CheckedHTTPConnection, attempt=self.attempt), req)


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, attempt: _Attempt):
        super().__init__()
        self.attempt = attempt

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_CheckedHTTPSConnection, attempt=self.attempt), req,
                            context=self._context)  # type: ignore[attr-defined]  # urllib's own; typeshed omits it


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
    allow_networks: tuple[IPNetwork, ...] = (),
) -> int:
    """POST ``payload``; return the 2xx status.

    ``timeout`` bounds each attempt as a whole (connect, send, every read).
    Retries ``retries`` times with exponential backoff on 5xx, 408/425/429,
    timeouts and connection errors, then raises :class:`TransientError`; other
    4xx (and 3xx) raise :class:`PermanentError` at once, and so does a host
    resolving to a non-public address outside ``allow_networks``
    (:class:`BlockedAddress`).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise PermanentError(f"webhook URL must be http(s), not {url!r}")
    if "@" in parts.netloc:  # user info: credentials in a URL, or a host that is not what it seems
        raise PermanentError(f"webhook URL {url!r} must not carry user info (user@host)")
    body = encode_payload(payload)
    attempt = 0
    while True:
        try:
            return _post_once(url, body, secret, idempotency_key, timeout, allow_networks)
        except TransientError as exc:
            if attempt >= retries:
                raise TransientError(f"{exc} (gave up after {attempt + 1} attempts)") from None
            sleep(backoff * (2**attempt))
            attempt += 1


def _post_once(url: str, body: bytes, secret: bytes | None, key: str, timeout: float,
               allowed: tuple[IPNetwork, ...]) -> int:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": quote(key, safe=_HEADER_SAFE),  # HTTP headers are Latin-1: percent-encode the rest
        "X-Journey-Timestamp": str(int(time.time())),
    }
    if secret:
        headers["X-Journey-Signature"] = sign(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    attempt = _Attempt(allowed, time.monotonic() + timeout)
    opener = urllib.request.build_opener(  # no proxy: the checked address is the one connected to
        urllib.request.ProxyHandler({}), _NoRedirect, _CheckedHTTPHandler(attempt), _CheckedHTTPSHandler(attempt))
    try:
        with opener.open(request, timeout=timeout) as response:
            status = response.status
            attempt.remaining()  # a reply completed after the deadline still counts as too slow
    except BlockedAddress:
        raise
    except urllib.error.HTTPError as exc:
        status = exc.code
        reason = _reason(exc)
        if status >= 500 or status in _RETRYABLE_4XX:
            raise TransientError(f"webhook {url} answered {status} {reason}") from None
        raise PermanentError(f"webhook {url} answered {status} {reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # refused, DNS, TLS, timeout, cut off
        cause = getattr(exc, "reason", exc)
        if isinstance(cause, BlockedAddress):
            raise cause from None
        if time.monotonic() >= attempt.deadline:
            cause = f"no complete answer within {timeout:g}s"
        raise TransientError(f"webhook {url} unreachable: {cause}") from None
    finally:
        attempt.finish()
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
