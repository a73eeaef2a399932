"""``POST /webhooks/sendgrid``: SendGrid's Event Webhook (signed), its bounces and spam reports.

SendGrid signs ``timestamp + raw body`` with ECDSA (P-256, SHA256) and sends the signature
(base64 DER) in ``X-Twilio-Email-Event-Webhook-Signature`` and the timestamp in
``X-Twilio-Email-Event-Webhook-Timestamp``; the verification key is in
``JOURNEY_SENDGRID_VERIFICATION_KEY`` (base64 DER as SendGrid shows it, or PEM). The body is a
JSON array of events; ``sg_event_id`` is each report's id, so a retried post counts once. A
timestamp more than a day old (or 5 minutes ahead) is refused as a replay.

``bounce`` of type ``bounce`` is a hard bounce, of type ``blocked`` a soft one; ``spamreport``
a complaint. ``deferred`` is not counted (SendGrid keeps trying and reports a ``bounce`` if
it gives up), nor are ``dropped``, deliveries, opens and clicks.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runner.core.bounces import COMPLAINT, HARD, SOFT, Bounce, status_code
from runner.serve.bouncesettings import MAX_BODY_BYTES, SENDGRID_MAX_AGE, BounceSettings
from runner.serve.providers.common import Refused, endpoint, raw_body, record, recorded, text
from runner.serve.settings import ServeSettings

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
BOUNCE_TYPES = {"bounce": HARD, "blocked": SOFT}


def routes(settings: ServeSettings) -> list[BaseRoute]:
    bounces: BounceSettings = settings.bounces

    async def sendgrid(request: Request) -> Response:
        body = await raw_body(request, MAX_BODY_BYTES)
        verify(bounces.sendgrid_key, body, request.headers.get(SIGNATURE_HEADER, ""),
               request.headers.get(TIMESTAMP_HEADER, ""), datetime.now(UTC))
        try:
            events = json.loads(body)
        except (ValueError, RecursionError):
            raise Refused(400, "invalid_json", "the body is not JSON") from None
        if not isinstance(events, list):
            raise Refused(400, "invalid_json", "the body is not a JSON array of events")
        found = [bounce for event in events for bounce in event_bounces(event)]
        return recorded(await record(request, bounces, found) if found else None)

    return [Route("/webhooks/sendgrid", endpoint(sendgrid), methods=["POST"], name="webhooks-sendgrid")]


def verify(key: ec.EllipticCurvePublicKey | None, body: bytes, signature: str, timestamp: str,
           now: datetime, max_age: timedelta = SENDGRID_MAX_AGE) -> None:
    """Raise ``Refused`` (403) unless ``signature`` is SendGrid's over ``timestamp + body`` and fresh."""
    if key is None:
        raise Refused(403, "not_configured", "SendGrid webhooks are off: set JOURNEY_SENDGRID_VERIFICATION_KEY")
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise Refused(403, "bad_signature", "the signature does not match (check JOURNEY_SENDGRID_VERIFICATION_KEY)"
                      ) from None
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise Refused(403, "bad_signature", "the signature's timestamp is not a number")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    if signed_at < now - max_age or signed_at > now + timedelta(minutes=5):
        raise Refused(403, "stale_timestamp", f"the signature's timestamp {signed_at.isoformat()} is too old "
                      "(or ahead): a replay")


def event_bounces(event: Any) -> list[Bounce]:
    """The report one SendGrid event makes (none for the events that are no bounce or complaint)."""
    if not isinstance(event, dict):
        raise Refused(400, "invalid_event", "each event must be a JSON object")
    name = event.get("event")
    if name == "bounce":
        kind = BOUNCE_TYPES.get(text(event.get("type"), 20) or "bounce")
    elif name == "spamreport":
        kind = COMPLAINT
    else:
        return []
    recipient = text(event.get("email"), 320).strip()
    report_id = text(event.get("sg_event_id"), 200)
    if kind is None or "@" not in recipient or not report_id:
        raise Refused(400, "invalid_event", f"a {name} event needs 'email', 'sg_event_id' (and a known 'type')")
    try:
        at = datetime.fromtimestamp(int(event.get("timestamp")), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        raise Refused(400, "invalid_event", "'timestamp' must be seconds since 1970") from None
    diagnostic = text(event.get("reason"))
    return [Bounce(kind=kind, recipient=recipient, at=at, report_id=report_id, source="sendgrid",
                   diagnostic=diagnostic, status=text(event.get("status"), 20) or status_code(diagnostic))]
