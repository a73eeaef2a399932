"""Turn one send/webhook decision into an effect: render, build, deliver.

The ledger choreography (claim before, confirm after) lives in
``runner.production.tick``; this module only knows how to make a message out of a
decision and hand it to a transport. One ``Delivery`` is built per tick or
worker, so the Jinja environment, compiled templates and the SMTP connection
are reused across sends.

Webhooks follow the email transport: with a real transport (``smtp://``,
``smtps://``) they are POSTed (signed, retried on 5xx); with a development
transport (``outbox:``, ``console``, ``memory``) they are written next to the
emails (``outbox/<key>.webhook.json``), printed or kept, so a demo or a test
never calls a CRM.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.core.model import EmailStep, Journey, Project, WebhookStep
from runner.core.problems import JourneyError
from runner.core.state import Contact
from runner.core.vocabulary import ALL_TOPICS
from runner.delivery.message import MailMessage, MessageDraft, draft_message
from runner.delivery.render import STRING_TEMPLATE, Renderer, RenderError, html_stem, locale_context, render_context
from runner.delivery.transports import PermanentError, TransientError, Transport, open_transport
from runner.delivery.unsubscribe import TokenMaker, UnsubscribeLinks, is_dev_transport, load_secret
from runner.delivery.webhooks import allowed_networks, encode_payload, post_webhook
from runner.language.locales import Resolution, localization_of, normalize_tag, resolve

DEFAULT_TRANSPORT = "outbox:outbox"

__all__ = ["Delivery", "Outgoing", "resolve_transport_url", "DEFAULT_TRANSPORT", "PermanentError", "TransientError"]


def resolve_transport_url(cli_value: str | None, project: Project) -> str:
    """``--transport``, else ``JOURNEY_TRANSPORT``, else project.yaml ``transport``, else outbox:outbox."""
    return cli_value or os.environ.get("JOURNEY_TRANSPORT") or project.transport or DEFAULT_TRANSPORT


@dataclass
class Outgoing:
    """What one decision becomes: an email message or a webhook body, ready to deliver."""

    key: str
    kind: str  # email | webhook
    to: str
    subject: str = ""
    message: MailMessage | None = None
    draft: MessageDraft | None = None  # ``Delivery.draft``: the message before its bodies are encoded
    url: str = ""
    payload: dict = field(default_factory=dict)
    secret_env: str | None = None


class Delivery:
    """Renders and delivers decisions for one project through one transport."""

    def __init__(self, project: Project, transport_url: str, *, transport: Transport | None = None,
                 connect: bool = True, templates: dict[str, str] | None = None):
        self.project = project
        self.transport_url = transport_url
        self.templates = templates  # the deployed sources; None: the files (checked as validate reads them)
        self.renderer = Renderer(project.templates_path, sources=templates)
        self.secret = load_secret(project.unsubscribe_secret_env, transport_url=transport_url)
        self.dev = is_dev_transport(transport_url)
        self.transport = transport
        if self.transport is None and connect:
            self.transport = open_transport(transport_url, base_dir=project.root)
        self._outbox = _outbox_dir(transport_url, project.root)
        self._unsubscribe_url = UnsubscribeLinks(project.unsubscribe_url)
        self._token = TokenMaker(self.secret)
        self.localization = localization_of(project.raw)
        webhook_settings = project.raw.get("webhooks") or {}
        try:
            self._allowed_networks = allowed_networks(webhook_settings.get("allow_networks") or ())
        except ValueError as error:
            raise JourneyError(f"project.yaml webhooks.allow_networks: {error}") from None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------ building

    def build(self, decision: Any, journey: Journey) -> Outgoing:
        """The message (or webhook body) for a ``send``/``webhook`` decision.

        Raises ``RenderError`` for a broken template and ``InvalidAddress`` for
        an unusable address: both are permanent for this send.
        """
        outgoing = self.draft(decision, journey)
        if outgoing.draft is not None:
            outgoing.message, outgoing.draft = outgoing.draft.finish(), None
        return outgoing

    def draft(self, decision: Any, journey: Journey) -> Outgoing:
        """What ``build`` makes, but an email's message left as a draft (``Outgoing.draft``):
        rendered, its headers built and checked, its bodies not yet MIME-encoded. Fails
        exactly when ``build`` fails; ``journey simulate`` stops here."""
        try:
            return self._draft(decision, journey)
        except RenderError as error:
            if error.template != STRING_TEMPLATE:
                raise
            what = "subject" if decision.action == "send" else "payload"
            raise error.named(f"the {what} of step '{decision.step}' in journey '{journey.id}'") from None

    def _draft(self, decision: Any, journey: Journey) -> Outgoing:
        detail = decision.detail
        contact = Contact(decision.contact, dict(detail.get("attributes") or {}), detail.get("timezone"))
        unsubscribe = self._unsubscribe_url(self._token(
            decision.contact, journey.id, self.unsubscribe_topic(journey, decision.step)))
        resolution = resolve(self.localization, contact.attributes)
        variants = resolution.chain[:-1]  # the default language is the unsuffixed templates
        written_in = self.localization.default
        if decision.action == "send" and variants:
            written_in = self.renderer.variant(f"{html_stem(detail['template'])}.html", variants)[1] or written_in
        context = render_context(contact, detail.get("scores") or {}, journey, decision.step, self.project,
                                 unsubscribe, decision.at, locale_context(message_locale(resolution, written_in)),
                                 detail.get("event"))
        if decision.action == "webhook":
            return self._webhook(decision, journey, context)
        subject = localized_subject(journey.steps.get(decision.step), resolution, detail["subject"])
        rendered = self.renderer.render_email(detail["template"], subject, context, detail.get("text_template"),
                                              variants)
        draft = draft_message(
            rendered,
            to=str(detail.get("to") or ""),
            sender=detail.get("from") or self.project.sender,
            reply_to=detail.get("reply_to") or self.project.reply_to,
            idempotency_key=decision.key,
            list_id=journey.id,
            unsubscribe_url=unsubscribe,
            unsubscribe_mailto=self.project.unsubscribe_mailto,
            date=decision.at,
        )
        return Outgoing(decision.key, "email", str(detail.get("to") or ""), rendered.subject, draft=draft)

    def unsubscribe_topic(self, journey: Journey, step_id: str | None) -> str:
        """What the email's unsubscribe link stops: its own marketing topic; from a
        transactional email (which an unsubscribe cannot stop), every marketing topic."""
        step = journey.steps.get(step_id) if step_id else None
        topic = self.project.topic(step.topic if isinstance(step, EmailStep) else None)
        return topic.name if topic.marketing else ALL_TOPICS

    def _webhook(self, decision: Any, journey: Journey, context: dict) -> Outgoing:
        detail = decision.detail
        payload = {
            "key": decision.key,
            "contact": {"id": decision.contact, **(detail.get("attributes") or {})},
            "scores": dict(detail.get("scores") or {}),
            "journey": {"id": journey.id, "version": journey.version, "step": decision.step},
            "at": decision.at.isoformat(),
        }
        extra = detail.get("payload") or {}
        payload["data"] = self._render_values(extra, context)
        return Outgoing(decision.key, "webhook", detail.get("url", ""), url=detail.get("url", ""),
                        payload=payload, secret_env=detail.get("secret_env"))

    def _render_values(self, value: Any, context: dict) -> Any:
        """Jinja strings inside a webhook payload are rendered (sandboxed) like subjects."""
        if isinstance(value, str):
            return self.renderer.render_string(value, context) if "{" in value else value
        if isinstance(value, Mapping):
            return {k: self._render_values(v, context) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render_values(v, context) for v in value]
        return value

    # ------------------------------------------------------------ delivering

    def deliver(self, outgoing: Outgoing) -> str:
        """Hand it to the transport; returns a transport id. Raises TransientError/PermanentError."""
        if outgoing.kind == "email":
            if self.transport is None:
                raise TransientError("no transport open")
            assert outgoing.message is not None  # build() gives every email its message
            return self.transport.send(outgoing.message)
        return self._deliver_webhook(outgoing)

    def deliver_all(self, outgoings: list[Outgoing]) -> list[str | Exception]:
        """Deliver several; each result is a transport id or the Transient/PermanentError.

        Emails go to the transport's ``send_all`` when it has one (the outbox
        syncs a batch at once; a pool sends in parallel), one by one otherwise.
        """
        results: list[str | Exception | None] = [None] * len(outgoings)
        emails = [n for n, outgoing in enumerate(outgoings) if outgoing.kind == "email"]
        send_all = getattr(self.transport, "send_all", None)
        if emails and send_all is not None:
            for n, result in zip(emails, send_all([outgoings[n].message for n in emails]), strict=True):
                results[n] = result
        for n, outgoing in enumerate(outgoings):
            if results[n] is None:
                try:
                    results[n] = self.deliver(outgoing)
                except (TransientError, PermanentError) as error:
                    results[n] = error
        return results  # type: ignore[return-value]

    def _deliver_webhook(self, outgoing: Outgoing) -> str:
        if not self.dev:
            secret_value = os.environ.get(outgoing.secret_env or "", "")
            if outgoing.secret_env and not secret_value:  # never send unsigned what the receiver expects signed
                raise TransientError(f"webhook secret ${outgoing.secret_env} is not set; not sending it unsigned")
            status = post_webhook(outgoing.url, outgoing.payload, secret_value.encode() or None, outgoing.key,
                                  allow_networks=self._allowed_networks)
            return f"http {status}"
        if self._outbox is not None:
            self._outbox.mkdir(parents=True, exist_ok=True)
            path = self._outbox / _webhook_file(outgoing.key)
            body = json.dumps({"url": outgoing.url, "payload": outgoing.payload}, indent=2, sort_keys=True,
                              ensure_ascii=False, default=str)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(body + "\n", encoding="utf-8")
            os.replace(tmp, path)
            return path.name
        return f"webhook:{hashlib.sha256(encode_payload(outgoing.payload)).hexdigest()[:12]}"


def message_locale(resolution: Resolution, written_in: str) -> str:
    """The locale a message is in: the contact's own tag when its template is written in the
    contact's language (a ``pt`` template for ``pt-BR`` formats dates as Brazil does), else the
    language the template is written in (a Japanese contact without a Japanese template reads
    the default language, with its dates, numbers and direction)."""
    if resolution.tag.split("-")[0] == written_in.split("-")[0]:
        return resolution.tag
    return written_in


def localized_subject(step: Any, resolution: Resolution, subject: str) -> str:
    """The subject in the nearest locale of the contact's chain (``subject: {en: …, ja: …}``);
    ``subject`` (the decision's) when the step has a single one."""
    subjects = getattr(step, "subjects", None)
    if not subjects:
        return subject
    by_tag = {normalize_tag(tag) or tag: text for tag, text in subjects.items()}
    return next((by_tag[tag] for tag in resolution.chain if tag in by_tag), subject)


def _outbox_dir(transport_url: str, root: Path) -> Path | None:
    if not transport_url.startswith("outbox:"):
        return None
    folder = Path(transport_url.removeprefix("outbox:").removeprefix("//"))
    return folder if folder.is_absolute() else root / folder


def _webhook_file(key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._")[:80]
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.webhook.json"


def step_detail(journey: Journey, step_id: str, contact: Contact, scores: dict, project: Project,
                event: dict | None = None) -> dict:
    """A decision's ``detail`` rebuilt from the deployed step (to retry a failed send later);
    ``event``: the event the original decision journaled (its templates' ``event``)."""
    step = journey.steps[step_id]
    attributes = dict(contact.attributes)
    woke = {"event": event} if event is not None else {}
    if isinstance(step, EmailStep):
        return {
            "template": step.template, "subject": step.subject, "text_template": step.text_template,
            "from": step.sender, "reply_to": step.reply_to, "to": attributes.get("email"),
            "attributes": attributes, "scores": scores, "timezone": contact.timezone or project.default_timezone,
            **woke,
        }
    if isinstance(step, WebhookStep):
        return {"url": step.url, "payload": step.payload, "secret_env": step.secret_env,
                "attributes": attributes, "scores": scores, **woke}
    raise PermanentError(f"step {step_id!r} of {journey.id} v{journey.version} is not a send step")


def durable_by_default(transport_url: str, env_value: str | None) -> bool:
    """Whether send claims are fsynced before the transport call when no flag says so.

    ``JOURNEY_FSYNC`` decides when set. Otherwise claims are durable for transports
    whose messages reach real inboxes: without an fsync an operating-system crash or
    power cut can undo the last claim after its message left, and the next run would
    send it again. The outbox and console need no fsync (a repeated key rewrites the
    same file), which keeps the demo and local runs fast.
    """
    if env_value is not None and env_value.strip() != "":
        return env_value.strip().lower() not in ("0", "false", "no", "off")
    return not is_dev_transport(transport_url)
