"""Amazon SNS messages: their signature checked (SignatureVersion 1 and 2) before anything is believed.

SNS signs a canonical text of the message's fields with the private key of a certificate
it names in ``SigningCertURL``. The certificate is fetched only from
``https://sns.<region>.amazonaws.com/…pem`` (anything else could be an attacker's
certificate), with a timeout, and kept (a few per region: SNS rotates them rarely).
Version 1 signs with SHA1, version 2 with SHA256 (both RSA PKCS#1 v1.5).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from runner.serve.bouncesettings import MAX_FETCH_BYTES, Fetch

_SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-gov)?-[a-z]+-\d{1,2}\.amazonaws\.com")
# the fields each message type signs, in this order (AWS: "Verifying the signatures of Amazon SNS messages")
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
CACHED_CERTIFICATES = 32


class NotAuthentic(Exception):
    """The message is not provably from SNS (the answer is 403); the text says why."""


def is_sns_url(url: str, *, suffix: str = "") -> bool:
    """Whether ``url`` is ``https://sns.<region>.amazonaws.com/…`` (ending in ``suffix``), nothing else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme == "https" and port is None and parts.username is None and parts.password is None
            and _SNS_HOST.fullmatch(parts.hostname or "") is not None and parts.path.startswith("/")
            and parts.path.endswith(suffix))


def signed_text(message: dict[str, Any]) -> bytes:
    """The canonical text SNS signs: ``Name\\nvalue\\n`` for each signed field present."""
    kind = message.get("Type")
    fields = SIGNED_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise NotAuthentic(f"unknown SNS message Type {str(kind)[:40]!r}")
    lines = []
    for name in fields:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise NotAuthentic(f"SNS message field {name} is missing or not text")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


class Certificates:
    """Signing certificates by URL: fetched once (``fetch``, with its timeout), kept, bounded."""

    def __init__(self, fetch: Fetch, size: int = CACHED_CERTIFICATES):
        self._fetch = fetch
        self._size = size
        self._keys: OrderedDict[str, tuple[rsa.RSAPublicKey, datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, url: str, now: datetime) -> rsa.RSAPublicKey:
        if not is_sns_url(url, suffix=".pem"):
            raise NotAuthentic("SigningCertURL is not https://sns.<region>.amazonaws.com/….pem")
        with self._lock:
            found = self._keys.get(url)
            if found is not None:
                self._keys.move_to_end(url)
        if found is None:
            found = self._load(url)
            with self._lock:
                self._keys[url] = found
                while len(self._keys) > self._size:
                    self._keys.popitem(last=False)
        key, expires = found
        if expires < now:
            raise NotAuthentic("the SNS signing certificate has expired")
        return key

    def _load(self, url: str) -> tuple[rsa.RSAPublicKey, datetime]:
        try:
            pem = self._fetch(url)
        except Exception as error:  # noqa: BLE001 - any failure to fetch is the same answer
            raise NotAuthentic(f"the SNS signing certificate could not be fetched ({type(error).__name__})") from None
        if len(pem) > MAX_FETCH_BYTES:
            raise NotAuthentic("the SNS signing certificate is too large")
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise NotAuthentic("the SNS signing certificate is not a PEM certificate") from None
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise NotAuthentic("the SNS signing certificate has no RSA key")
        return key, certificate.not_valid_after_utc


def verify(message: dict[str, Any], certificates: Certificates, now: datetime, max_age: timedelta) -> None:
    """Raise ``NotAuthentic`` unless ``message`` carries a valid SNS signature and is recent."""
    version = message.get("SignatureVersion")
    algorithm = HASHES.get(version) if isinstance(version, str) else None
    if algorithm is None:
        raise NotAuthentic(f"SignatureVersion {str(version)[:10]!r} is not 1 or 2")
    text = signed_text(message)
    signature = message.get("Signature")
    if not isinstance(signature, str) or not signature:
        raise NotAuthentic("the Signature is missing")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise NotAuthentic("the Signature is not base64") from None
    url = message.get("SigningCertURL")
    key = certificates.key(url if isinstance(url, str) else "", now)
    try:
        key.verify(raw, text, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise NotAuthentic("the SNS signature does not match the message") from None
    try:
        stamp = datetime.fromisoformat(str(message.get("Timestamp")).replace("Z", "+00:00"))
    except ValueError:
        raise NotAuthentic("the Timestamp is not an ISO 8601 instant") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    if stamp < now - max_age or stamp > now + timedelta(minutes=5):
        raise NotAuthentic(f"the message's Timestamp {stamp.isoformat()} is too old (or ahead): a replay")
