"""Bounce and complaint webhooks of email providers, one module each: ``POST /webhooks/ses`` (Amazon SES
through SNS, runner.serve.providers.ses), ``POST /webhooks/mailgun`` (runner.serve.providers.mailgun)
and ``POST /webhooks/sendgrid`` (runner.serve.providers.sendgrid).

Each checks the provider's signature before reading anything else (a bad one: ``403`` and
nothing changes), maps the provider's events to ``Bounce`` records (runner.core.bounces)
and records them through ``runner.production.bounces`` — the same path as ``journey
bounces import`` — committed before the ``200``.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from runner.serve.providers import mailgun, sendgrid, ses
from runner.serve.settings import ServeSettings


def routes(settings: ServeSettings) -> list[BaseRoute]:
    return [*ses.routes(settings), *mailgun.routes(settings), *sendgrid.routes(settings)]


def openapi_paths() -> dict[str, Any]:
    """The three webhooks in ``GET /openapi.json`` (the fuzz test sends them what it generates)."""

    def refusal(what: str) -> dict[str, Any]:
        return {"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refusal"}}}}

    def operation(summary: str, body: dict[str, Any], extra: dict[str, str],
                  headers: tuple[str, ...] = ()) -> dict[str, Any]:
        answers = {"200": {"description": "Recorded (committed), already recorded, or nothing to record",
                           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookAnswer"}}}},
                   "400": refusal("A body that is no JSON object (array for SendGrid) or an event without a recipient"),
                   "403": refusal("The signature does not hold, is stale, or the provider is not configured"),
                   "408": refusal("The body did not arrive in time (30 s)"),
                   "413": refusal("A body over 1 MB")}
        answers.update({status: refusal(what) for status, what in extra.items()})
        parameters = [{"name": name, "in": "header", "required": True, "schema": {"type": "string"}} for name in headers]
        return {"post": {"summary": summary, "parameters": parameters, "responses": answers,
                         "requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}}

    text = {"type": "string"}
    sns = {"type": "object", "required": ["Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion",
                                          "Signature", "SigningCertURL"],
           "properties": {name: text for name in ("Type", "MessageId", "TopicArn", "Message", "Timestamp",
                                                  "SignatureVersion", "Signature", "SigningCertURL", "SubscribeURL",
                                                  "Token", "Subject")}}
    mailgun_body = {"type": "object", "required": ["signature", "event-data"], "properties": {
        "signature": {"type": "object", "properties": {"timestamp": text, "token": text, "signature": text}},
        "event-data": {"type": "object"}}}
    sendgrid_body = {"type": "array", "items": {"type": "object"}}
    return {
        "/webhooks/ses": operation("Amazon SES bounce and complaint notifications, through SNS", sns,
                                   {"502": "Confirming the SNS subscription failed (SNS sends it again)"}),
        "/webhooks/mailgun": operation("Mailgun failed and complained events", mailgun_body, {}),
        "/webhooks/sendgrid": operation("SendGrid Event Webhook (signed)", sendgrid_body, {},
                                        ("X-Twilio-Email-Event-Webhook-Signature",
                                         "X-Twilio-Email-Event-Webhook-Timestamp")),
    }


def openapi_components() -> dict[str, Any]:
    return {"schemas": {"WebhookAnswer": {"type": "object", "required": ["success"], "properties": {
        "success": {"type": "boolean", "enum": [True]}, "recorded": {"type": "integer"},
        "duplicates": {"type": "integer"}, "confirmed": {"type": "string"}}}}}
