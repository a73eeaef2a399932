"""Render email steps for test contacts exactly as production would send them.

The message comes from ``runner.delivery.dispatch.Delivery.build`` — the very code a
production tick uses (same renderer, context, unsubscribe token and
``build_message``) — fed with the send decision the simulation made for the
contact, so the attributes are those at the moment of the send. A contact
the simulation never brings to the step is rendered from its initial
attributes instead, and the output says so.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from runner.core.engine import Decision
from runner.core.model import EmailStep, Journey, Project
from runner.core.problems import JourneyError, UsageError
from runner.delivery.message import MailMessage
from runner.language.locales import describe, resolve
from runner.simulation.simulate import Simulation, simulate
from runner.simulation.testcontacts import TestContact

DEFAULT_DAYS = 30


@dataclass
class RenderedMessage:
    contact: str
    journey: str
    step: str
    at: datetime
    simulated: bool  # True: from the simulated send; False: initial attributes (step not reached)
    message: MailMessage | None = None
    error: str | None = None  # why it could not be rendered
    locale: str = ""  # in a localized project: the contact's locale and chain, and why when a value was not used

    @property
    def subject(self) -> str:
        return self.message.subject if self.message is not None else ""

    def part(self, subtype: str) -> str:
        if self.message is None:
            return ""
        body = self.message.parsed.get_body((subtype,))
        return body.get_content() if body is not None else ""

    @property
    def html(self) -> str:
        return self.part("html")

    @property
    def text(self) -> str:
        return self.part("plain")

    def eml(self) -> bytes:
        return self.message.as_bytes() if self.message is not None else b""


def _delivery(project: Project):
    """A production ``Delivery`` that never connects; the project's signing key when set, else the dev key."""
    from runner.delivery.dispatch import Delivery, resolve_transport_url

    transport_url = resolve_transport_url(None, project)
    if not os.environ.get(project.unsubscribe_secret_env):
        transport_url = "memory"  # the development key: previews never reach an inbox
    return Delivery(project, transport_url, connect=False)


def first_sends(simulation: Simulation) -> dict[tuple[str, str, str], Decision]:
    """(contact, journey, step) -> the first send decision the simulation made."""
    found: dict[tuple[str, str, str], Decision] = {}
    for decision in simulation.decisions:
        if decision.action == "send":
            found.setdefault((decision.contact, decision.journey, decision.step or ""), decision)
    return found


def preview_decision(project: Project, journey: Journey, step: EmailStep, contact: TestContact, at: datetime) -> Decision:
    """A send decision as the engine would make it, from the contact's initial attributes."""
    timezone = contact.timezone or journey.settings.default_timezone or project.default_timezone
    return Decision(
        at=at, contact=contact.id, journey=journey.id, version=journey.version, stage=step.stage, step=step.id,
        action="send", reason=f"email {step.template} (preview)", key=f"{contact.id}:{journey.id}:preview/1/{step.id}",
        detail={
            "template": step.template, "subject": step.subject, "text_template": step.text_template,
            "from": step.sender, "reply_to": step.reply_to, "to": contact.attributes.get("email"),
            "attributes": dict(contact.attributes), "scores": {name: 0.0 for name in project.scores},
            "timezone": timezone,
        },
    )


class MessageRenderer:
    """Renders (journey, step, contact) triples from one simulation."""

    def __init__(self, project: Project, journeys: Sequence[Journey], contacts: Sequence[TestContact],
                 start: datetime, end: datetime | None = None):
        self.project = project
        self.journeys = list(journeys)
        self.contacts = {c.id: c for c in contacts}
        self.start = start
        self.simulation = simulate(project, self.journeys, contacts, start, end or start + timedelta(days=DEFAULT_DAYS))
        self.sends = first_sends(self.simulation)
        self.delivery = _delivery(project)

    def render(self, journey: Journey, step_id: str, contact_id: str) -> RenderedMessage:
        step = journey.steps.get(step_id)
        if not isinstance(step, EmailStep):
            kinds = ", ".join(s.id for s in journey.email_steps())
            what = f"a {step.kind} step" if step else "not a step"
            raise UsageError(f"{journey.id}.{step_id} is {what}; email steps: {kinds}")
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise UsageError(f"no test contact '{contact_id}' (contacts: {', '.join(sorted(self.contacts))})")
        decision = self.sends.get((contact_id, journey.id, step_id))
        simulated = decision is not None
        if decision is None:
            decision = preview_decision(self.project, journey, step, contact, self.start)
        result = RenderedMessage(contact_id, journey.id, step_id, decision.at, simulated)
        settings = self.delivery.localization
        if settings.enabled:
            result.locale = describe(resolve(settings, decision.detail.get("attributes") or {}), settings.attribute)
        try:
            result.message = self.delivery.build(decision, journey).message
        except JourneyError as error:
            result.error = str(error)
        return result


def safe_name(text: str) -> str:
    """A file name from an id (test contact ids are not trusted to be path-safe)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"
    return cleaned[:80]


def write_message(result: RenderedMessage, out: Path) -> dict[str, Path]:
    """Write .eml, .html and .txt under ``out/<journey>/<step>/``; returns the paths written."""
    folder = out / safe_name(result.journey) / safe_name(result.step)
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_name(result.contact)
    paths = {"eml": folder / f"{stem}.eml", "html": folder / f"{stem}.html", "txt": folder / f"{stem}.txt"}
    paths["eml"].write_bytes(result.eml())
    paths["html"].write_text(result.html, encoding="utf-8")
    paths["txt"].write_text(result.text, encoding="utf-8")
    return paths


@dataclass
class RenderRun:
    results: list[RenderedMessage] = field(default_factory=list)
    index: Path | None = None

    @property
    def failed(self) -> list[RenderedMessage]:
        return [r for r in self.results if r.error]


def render_all(renderer: MessageRenderer, journeys: Sequence[Journey], out: Path, step_id: str | None = None,
               contact_ids: Sequence[str] | None = None) -> RenderRun:
    """Every email step (or one) for every test contact (or the given ones), written under ``out`` with an index."""
    run = RenderRun()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for journey in journeys:
        steps = [s for s in journey.email_steps() if step_id is None or s.id == step_id]
        for step in sorted(steps, key=lambda s: s.id):
            for contact_id in contact_ids or sorted(renderer.contacts):
                result = renderer.render(journey, step.id, contact_id)
                run.results.append(result)
                paths = write_message(result, out) if result.message is not None else {}
                rows.append((result, {k: p.relative_to(out).as_posix() for k, p in paths.items()}))
    run.index = out / "index.html"
    run.index.write_text(index_html(rows), encoding="utf-8")
    return run


def index_html(rows: list[tuple[RenderedMessage, dict[str, str]]]) -> str:
    """A page linking every rendered message (opens from disk)."""
    esc = html.escape
    body = []
    for result, links in rows:
        how = "simulated send" if result.simulated else "not reached in the simulation: initial attributes"
        if result.error:
            files = f'<span class="error">cannot render: {esc(result.error)}</span>'
        else:
            files = " ".join(f'<a href="{esc(path)}">{kind}</a>' for kind, path in links.items())
        body.append(
            f"<tr><td>{esc(result.journey)}</td><td>{esc(result.step)}</td><td>{esc(result.contact)}</td>"
            f"<td>{esc(result.subject)}</td><td>{esc(result.at.isoformat())}<br><small>{how}</small></td>"
            f"<td>{files}</td></tr>"
        )
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Rendered emails</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top}.error{color:#b00020}</style>"
        "</head><body><h1>Rendered emails</h1><table><thead><tr><th>journey</th><th>step</th><th>contact</th>"
        "<th>subject</th><th>at</th><th>files</th></tr></thead><tbody>"
        + "".join(body) + "</tbody></table></body></html>\n"
    )


def describe_message(result: RenderedMessage) -> str:
    """The message as people check it: headers, then the text part, then the HTML part."""
    if result.message is None:
        return f"cannot render: {result.error}\n"
    how = "simulated send" if result.simulated else "step not reached in the simulation; initial attributes"
    lines = [f"# {result.journey}.{result.step} for {result.contact} at {result.at.isoformat()} ({how})"]
    if result.locale:
        lines.append(f"# {result.locale}")
    lines += [f"{name}: {value}" for name, value in result.message.parsed.items()]
    lines += ["", "--- text/plain ---", result.text.rstrip("\n"), "", "--- text/html ---", result.html.rstrip("\n")]
    return "\n".join(lines) + "\n"
