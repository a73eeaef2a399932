"""``POST /webhooks/mailgun``: Mailgun's ``failed`` and ``complained`` webhook events.

Mailgun signs ``timestamp + token`` with the HTTP webhook signing key
(``JOURNEY_MAILGUN_SIGNING_KEY``; HMAC-SHA256, hex) and posts the signature with the event
(JSON: ``{"signature": {...}, "event-data": {...}}``). The signature is compared in
constant time; a timestamp older than 15 minutes (or 5 minutes ahead) is refused as a
replay. The signature does not cover the event, so a token is the report's id: a token
seen again with a different event is refused (in this process; across restarts the
15 minutes are the limit), and a retried one counts once.

``failed`` with severity ``permanent`` is a hard bounce, ``temporary`` a soft one;
``complained`` a complaint; other events are acknowledged and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runner.core.bounces import COMPLAINT, HARD, SOFT, Bounce, status_code
from runner.serve.bouncesettings import MAILGUN_MAX_AGE, BounceSettings
from runner.serve.providers.common import Refused, endpoint, json_body, record, recorded, text
from runner.serve.settings import ServeSettings

SEVERITIES = {"permanent": HARD, "temporary": SOFT}
REMEMBERED_TOKENS = 100_000  # tokens kept to refuse one reused with another event (bounded memory)


class Tokens:
    """Tokens seen, with a hash of the event each came with (LRU, bounded)."""

    def __init__(self, size: int = REMEMBERED_TOKENS):
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def same_event(self, token: str, event_hash: str) -> bool:
        """Remember ``token`` with ``event_hash``; False when it came before with another event."""
        with self._lock:
            known = self._seen.setdefault(token, event_hash)
            self._seen.move_to_end(token)
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)
        return hmac.compare_digest(known, event_hash)


def routes(settings: ServeSettings) -> list[BaseRoute]:
    bounces: BounceSettings = settings.bounces
    tokens = Tokens()

    async def mailgun(request: Request) -> Response:
        document = await json_body(request)
        token = verified_token(document, bounces.mailgun_signing_key, datetime.now(UTC))
        event = document.get("event-data")
        if not isinstance(event, dict):
            raise Refused(400, "invalid_event", "'event-data' must be an object")
        event_hash = hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()
        if not tokens.same_event(token, event_hash):
            raise Refused(403, "replayed_token", "this signature's token came before with another event")
        found = event_bounces(event, token)
        return recorded(await record(request, bounces, found) if found else None)

    return [Route("/webhooks/mailgun", endpoint(mailgun), methods=["POST"], name="webhooks-mailgun")]


def verified_token(document: dict[str, Any], key: bytes | None, now: datetime) -> str:
    """The signature's token when the signature is Mailgun's and fresh; else ``Refused`` (403)."""
    if key is None:
        raise Refused(403, "not_configured", "Mailgun webhooks are off: set JOURNEY_MAILGUN_SIGNING_KEY")
    signature = document.get("signature")
    if not isinstance(signature, dict):
        raise Refused(403, "bad_signature", "the 'signature' object is missing")
    timestamp, token, given = (text(signature.get(name), 200) for name in ("timestamp", "token", "signature"))
    expected = hmac.new(key, f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not token or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Refused(403, "bad_signature", "the signature does not match (check JOURNEY_MAILGUN_SIGNING_KEY)")
    if not timestamp.isdigit():
        raise Refused(403, "bad_signature", "the signature's timestamp is not a number")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    if signed_at < now - MAILGUN_MAX_AGE or signed_at > now + timedelta(minutes=5):
        raise Refused(403, "stale_timestamp", f"the signature's timestamp {signed_at.isoformat()} is too old "
                      "(or ahead): a replay")
    return token


def event_bounces(event: dict[str, Any], token: str) -> list[Bounce]:
    """The report a Mailgun event makes (none for deliveries, opens, clicks, …)."""
    name = event.get("event")
    if name == "failed":
        kind = SEVERITIES.get(text(event.get("severity"), 20))
    elif name == "complained":
        kind = COMPLAINT
    else:
        return []
    recipient = text(event.get("recipient"), 320).strip()
    if kind is None or "@" not in recipient:
        raise Refused(400, "invalid_event", "a failed or complained event needs 'recipient' (and 'severity')")
    try:
        at = datetime.fromtimestamp(float(event.get("timestamp")), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        raise Refused(400, "invalid_event", "'timestamp' must be seconds since 1970") from None
    status = event.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    diagnostic = " ".join(part for part in (str(status.get("code", "")), text(status.get("message")) or
                                            text(status.get("description"))) if part)
    reason = text(event.get("reason"), 50)
    if reason and kind != COMPLAINT:
        diagnostic = f"{diagnostic} ({reason})" if diagnostic else reason
    return [Bounce(kind=kind, recipient=recipient, at=at, report_id=token, source="mailgun",
                   diagnostic=diagnostic, status=status_code(diagnostic))]
