"""``POST /webhooks/ses``: Amazon SES bounce and complaint notifications, delivered by SNS.

Set up: an SNS topic receives the SES identity's (or configuration set's) bounce and
complaint notifications; an HTTPS subscription of the topic points here; the topic's ARN
is in ``JOURNEY_SES_TOPIC_ARNS``. Every message's SNS signature is checked first
(runner.serve.providers.sns); then:

- ``SubscriptionConfirmation``: the subscription is confirmed by fetching its
  ``SubscribeURL`` (an ``https://sns.<region>.amazonaws.com/`` URL, nothing else);
- ``Notification``: its ``Message`` is the SES notification: ``Bounce`` (``Permanent``:
  hard, ``Transient`` or ``Undetermined``: soft, one report per bounced recipient) or
  ``Complaint`` (one per complained recipient; a ``not-spam`` feedback is no complaint);
  other types (``Delivery``, …) are acknowledged and ignored;
- ``UnsubscribeConfirmation``: acknowledged.

The report's id is SES's ``feedbackId`` (the same bounce delivered twice is one), its
instant the bounce's or complaint's ``timestamp``, and the original message's
``X-Journey-Key`` header (SES includes the headers when "Include original headers" is on)
names the exact send.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runner.core.bounces import COMPLAINT, HARD, SOFT, Bounce, status_code
from runner.delivery.message import KEY_HEADER
from runner.serve.bouncesettings import SNS_MAX_AGE, BounceSettings
from runner.serve.providers.common import Refused, endpoint, json_body, record, recorded, text
from runner.serve.providers.sns import Certificates, NotAuthentic, is_sns_url, verify
from runner.serve.settings import ServeSettings

BOUNCE_KINDS = {"Permanent": HARD, "Transient": SOFT, "Undetermined": SOFT}


def routes(settings: ServeSettings) -> list[BaseRoute]:
    bounces: BounceSettings = settings.bounces
    certificates = Certificates(bounces.fetch)

    async def ses(request: Request) -> Response:
        message = await json_body(request)
        now = datetime.now(UTC)
        try:
            await asyncio.to_thread(verify, message, certificates, now, SNS_MAX_AGE)
        except NotAuthentic as error:
            raise Refused(403, "bad_signature", str(error)) from None
        if message.get("TopicArn") not in bounces.ses_topic_arns:
            raise Refused(403, "unknown_topic", "the SNS topic is not in JOURNEY_SES_TOPIC_ARNS")
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            return await _confirm(message, bounces)
        if kind == "UnsubscribeConfirmation":
            return JSONResponse({"success": True})
        try:
            notification = json.loads(message["Message"])
        except ValueError:
            raise Refused(400, "invalid_notification", "the SNS Message is not an SES notification (JSON)") from None
        found = notification_bounces(notification, fallback_id=str(message["MessageId"]), now=now)
        return recorded(await record(request, bounces, found) if found else None)

    return [Route("/webhooks/ses", endpoint(ses), methods=["POST"], name="webhooks-ses")]


async def _confirm(message: dict[str, Any], bounces: BounceSettings) -> Response:
    url = message.get("SubscribeURL")
    if not isinstance(url, str) or not is_sns_url(url):
        raise Refused(403, "bad_subscribe_url", "SubscribeURL is not an https://sns.<region>.amazonaws.com/ URL")
    try:
        await asyncio.to_thread(bounces.fetch, url)
    except Exception as error:  # noqa: BLE001 - SNS sends the confirmation again; say why it failed
        return JSONResponse({"success": False, "code": "confirmation_failed",
                             "message": f"confirming the subscription failed ({type(error).__name__})"},
                            status_code=502)
    return JSONResponse({"success": True, "confirmed": message.get("TopicArn")})


def notification_bounces(notification: Any, fallback_id: str, now: datetime) -> list[Bounce]:
    """The reports in an SES notification (``notificationType``, or ``eventType`` from an event destination)."""
    if not isinstance(notification, dict):
        raise Refused(400, "invalid_notification", "the SES notification is not a JSON object")
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = notification.get("mail")
    mail = mail if isinstance(mail, dict) else {}
    send_key = _send_key(mail)
    if kind == "Bounce":
        bounce = notification.get("bounce")
        return _reports(bounce, "bouncedRecipients", BOUNCE_KINDS.get(_field(bounce, "bounceType"), SOFT),
                        fallback_id, send_key, now)
    if kind == "Complaint":
        complaint = notification.get("complaint")
        if _field(complaint, "complaintFeedbackType") == "not-spam":
            return []
        return _reports(complaint, "complainedRecipients", COMPLAINT, fallback_id, send_key, now)
    return []


def _reports(report: Any, recipients_key: str, kind: str, fallback_id: str, send_key: str | None,
             now: datetime) -> list[Bounce]:
    if not isinstance(report, dict) or not isinstance(report.get(recipients_key), list):
        raise Refused(400, "invalid_notification", f"the SES notification has no {recipients_key} list")
    at = _instant(report.get("timestamp")) or now
    report_id = text(report.get("feedbackId"), 200) or fallback_id
    detail = text(report.get("bounceSubType")) or text(report.get("complaintFeedbackType")) or text(
        report.get("userAgent"))
    found = []
    for recipient in report[recipients_key]:
        address = text(recipient.get("emailAddress"), 320) if isinstance(recipient, dict) else ""
        if "@" not in address:
            continue
        diagnostic = text(recipient.get("diagnosticCode")) or detail
        status = text(recipient.get("status"), 20) or status_code(diagnostic)
        found.append(Bounce(kind=kind, recipient=address.strip(), at=at, report_id=report_id, source="ses",
                            diagnostic=diagnostic, status=status, send_key=send_key))
    return found


def _send_key(mail: dict[str, Any]) -> str | None:
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == KEY_HEADER.lower():
            value = text(header.get("value"), 1000)
            return unquote(value) if value else None
    return None


def _field(report: Any, name: str) -> str:
    return text(report.get(name), 100) if isinstance(report, dict) else ""


def _instant(value: Any) -> datetime | None:
    try:
        found = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)
