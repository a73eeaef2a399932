"""Signed unsubscribe tokens: who unsubscribes from which topic, unforgeable.

A token is ``v2.<payload>.<mac>``, base64url without padding: the payload is
the JSON array ``[contact_id, list_id, topic]`` (the topic the email was sent
under, or ``*`` for every marketing topic) and the mac is HMAC-SHA256 over a
versioned prefix plus the payload. Tokens from before topics,
``<payload>.<mac>`` with ``[contact_id, list_id]`` and the v1 prefix, stay
valid and mean ``*`` (an unsubscribe then stopped everything). Tokens do not
expire: an unsubscribe link must keep working for as long as the email sits
in an inbox.

The link is the project's ``unsubscribe.url`` with ``?token=…``;
:func:`unsubscribe_url` builds it at send time and :func:`unsubscribe_path`
gives the path ``journey serve`` answers it on, from the same setting.

The key comes from the environment variable the project names
(``unsubscribe.secret_env``, default ``JOURNEY_UNSUBSCRIBE_SECRET``). When it
is unset, :func:`load_secret` refuses for real transports (SMTP) and falls back
to :data:`DEV_SECRET` only for ``outbox:`` / ``console`` / ``memory``, whose
messages never reach a real inbox.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import json.encoder
import os
import re
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from runner.core.problems import JourneyError
from runner.core.vocabulary import ALL_TOPICS

DEFAULT_SECRET_ENV = "JOURNEY_UNSUBSCRIBE_SECRET"
DEV_SECRET = b"journey-runner-dev-secret-not-for-production"
MIN_SECRET_BYTES = 16
_DOMAIN = b"journey-unsubscribe:v1:"  # binds the mac to this use and format version (tokens before topics)
_DOMAIN_V2 = b"journey-unsubscribe:v2:"  # [contact_id, list_id, topic]
_V2 = "v2"
_DEV_TRANSPORTS = ("outbox:", "console", "memory")


class InvalidToken(JourneyError):
    """The token was forged, altered or truncated."""


class UnsubscribeToken(NamedTuple):
    """What a verified token grants: ``contact_id`` may unsubscribe from ``topic`` ("*": all marketing)."""

    contact_id: str
    list_id: str
    topic: str


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes, domain: bytes = _DOMAIN_V2) -> bytes:
    return hmac.digest(secret, domain + payload, hashlib.sha256)


# json.dumps(value, separators=(",", ":"), ensure_ascii=False), without a new encoder per call
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def make_token(secret: bytes, contact_id: str, list_id: str, topic: str = ALL_TOPICS) -> str:
    """A url-safe token that proves the bearer may unsubscribe ``contact_id`` from ``topic``
    (``list_id``: the journey the email came from, for the record)."""
    payload = _COMPACT_JSON.encode([contact_id, list_id, topic]).encode()
    return f"{_V2}.{_b64encode(payload)}.{_b64encode(_mac(secret, payload))}"


class TokenMaker:
    """``make_token`` for one secret, for every message of a tick or a simulation: the HMAC's
    key schedule (and the format's domain) is worked out once and copied per token, where
    the one-shot ``hmac.digest`` sets the key up (and looks SHA-256 up in OpenSSL) per call."""

    def __init__(self, secret: bytes):
        self._keyed = hmac.new(secret, _DOMAIN_V2, hashlib.sha256)

    def __call__(self, contact_id: str, list_id: str, topic: str = ALL_TOPICS) -> str:
        # json.dumps of a list of three strings (ensure_ascii=False, compact), without an encoder
        payload = f"[{_json_text(contact_id)},{_json_text(list_id)},{_json_text(topic)}]".encode()
        mac = self._keyed.copy()
        mac.update(payload)
        return f"{_V2}.{_b64encode(payload)}.{_b64encode(mac.digest())}"


_json_text = json.encoder.encode_basestring  # type: ignore[attr-defined]  # a JSON string literal, as json.dumps writes it


def verify_token(secret: bytes, token: str) -> UnsubscribeToken:
    """What ``token`` grants; raise :class:`InvalidToken` unless its mac matches (compared in
    constant time). A token from before topics grants ``*``."""
    try:
        parts = token.split(".")
        if len(parts) == 3 and parts[0] == _V2:
            domain, width = _DOMAIN_V2, 3
        elif len(parts) == 2:
            domain, width = _DOMAIN, 2  # a token from before topics
        else:
            raise ValueError("not a token")
        payload = _b64decode(parts[-2])
        mac = _b64decode(parts[-1])
    except (ValueError, AttributeError, binascii.Error):
        raise InvalidToken("malformed unsubscribe token") from None
    if not hmac.compare_digest(mac, _mac(secret, payload, domain)):
        raise InvalidToken("unsubscribe token signature does not match")
    try:
        fields = json.loads(payload)
    except (ValueError, TypeError):
        raise InvalidToken("malformed unsubscribe token payload") from None
    if width == 2 and isinstance(fields, list) and len(fields) == 2:
        fields = [*fields, ALL_TOPICS]
    if not isinstance(fields, list) or len(fields) != 3 or not all(isinstance(f, str) for f in fields):
        raise InvalidToken("malformed unsubscribe token payload")
    return UnsubscribeToken(*fields)


def unsubscribe_path(base_url: str) -> str:
    """The path the unsubscribe link (``base_url`` plus its token) is served on."""
    return urlsplit(base_url).path or "/"


def unsubscribe_url(base_url: str, token: str) -> str:
    """``base_url`` with ``token=<token>`` added to its query (other parameters kept)."""
    parts = urlsplit(base_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", token))
    return urlunsplit(parts._replace(query=urlencode(query)))


class UnsubscribeLinks:
    """``unsubscribe_url(base_url, token)`` for one base URL, which is parsed once, not per message.

    A token made by :func:`make_token` is base64url and a dot, which URL encoding leaves as
    it is, so the link is the base URL's text around it; any other token is encoded."""

    def __init__(self, base_url: str):
        self.parts = urlsplit(base_url)
        self.query = [(k, v) for k, v in parse_qsl(self.parts.query, keep_blank_values=True) if k != "token"]
        marked = self._url("0TOKEN0")
        self.fast = marked.count("token=0TOKEN0") == 1  # else (the base URL has it too) always encode
        self.before, _, self.after = marked.partition("token=0TOKEN0")

    def __call__(self, token: str) -> str:
        if self.fast and _URL_SAFE_TOKEN.fullmatch(token):
            return f"{self.before}token={token}{self.after}"
        return self._url(token)

    def _url(self, token: str) -> str:
        return urlunsplit(self.parts._replace(query=urlencode([*self.query, ("token", token)])))


_URL_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.-]+")  # what quote_plus leaves unchanged


def is_dev_transport(transport_url: str) -> bool:
    """Transports whose messages never reach a real inbox may use the dev secret."""
    return transport_url.startswith(_DEV_TRANSPORTS)


def load_secret(
    env_var: str = DEFAULT_SECRET_ENV,
    *,
    transport_url: str = "",
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The HMAC key from ``env_var``; the dev key only for outbox/console/memory transports."""
    value = (os.environ if environ is None else environ).get(env_var, "")
    if value:
        secret = value.encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise JourneyError(
                f"{env_var} is too short ({len(secret)} bytes); use at least {MIN_SECRET_BYTES} random bytes"
            )
        return secret
    if is_dev_transport(transport_url):
        return DEV_SECRET
    raise JourneyError(
        f"{env_var} is not set: unsubscribe links cannot be signed. Set it to a long random "
        f"value (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`) "
        f"and keep it stable: changing it invalidates links already sent."
    )
