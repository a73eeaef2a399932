"""Bounces and complaints: what a provider's or a mail server's report means for a contact.

Pure rules, shared by the provider webhooks (``runner.serve.providers``) and
``journey bounces import`` (``runner.production.bounces``), so a bounce counts
the same whichever way it arrives:

- a hard bounce (a permanent failure, status 5.x.x) suppresses at its instant;
- a complaint (a spam report, ARF feedback-type abuse) suppresses at its instant;
- a soft bounce (a transient failure, 4.x.x) is counted; the one that makes
  ``limit`` within ``within`` suppresses at its instant (``bounces.soft`` in
  project.yaml, default 3 within 7d).

Each report is stored as an event (``email_bounced``, ``email_soft_bounced``,
``email_complained``) under the provider's id for it, so a provider's retry or
a re-imported file is recognised and counts once. The engine applies the soft
rule to ``email_soft_bounced`` events itself (simulate decides as production).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runner.core.addresses import email_key
from runner.core.durations import Duration, parse_duration
from runner.core.problems import JourneyError

HARD = "hard_bounce"
SOFT = "soft_bounce"
COMPLAINT = "complaint"
SOFT_LIMIT = "soft_bounces"  # the kind recorded on the suppression a soft bounce over the limit makes
KINDS = (HARD, SOFT, COMPLAINT)

# the event each kind of report is stored as (runner.core.vocabulary names them)
EVENT_OF = {HARD: "email_bounced", SOFT: "email_soft_bounced", COMPLAINT: "email_complained"}
SOFT_BOUNCE_EVENT = EVENT_OF[SOFT]
ADDRESS_SOURCE = "bounce:"  # a suppression of an address no contact has: the source is this and the detail

DIAGNOSTIC_LIMIT = 300  # characters of a provider's diagnostic kept: enough to read, not a mail body
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class Bounce:
    """One report about one recipient: a bounce (hard or soft) or a complaint.

    ``report_id`` is the provider's id for the report (an SNS message id, a
    Mailgun event id, a DSN's Message-ID): the same report delivered twice has
    the same id. ``send_key`` is the idempotency key of the message it is about
    when the report carries our ``X-Journey-Key`` header.
    """

    kind: str
    recipient: str
    at: datetime
    report_id: str
    source: str  # ses, mailgun, dsn, arf
    diagnostic: str = ""
    status: str = ""
    send_key: str | None = None

    def address(self) -> str:
        """The recipient as addresses are stored and matched (runner.core.addresses)."""
        return email_key(self.recipient)

    def event_id(self) -> str:
        """The stored event's message id: one per report and recipient."""
        return f"{self.source}:{self.report_id}:{self.address()}"

    def properties(self) -> dict[str, Any]:
        """What the stored event carries, shown by ``journey suppress list`` and ``journey history``."""
        found: dict[str, Any] = {"bounce": self.kind, "recipient": self.recipient, "source": self.source}
        if self.status:
            found["status"] = self.status
        if self.diagnostic:
            found["diagnostic"] = clean_diagnostic(self.diagnostic)
        if self.send_key:
            found["send_key"] = self.send_key
        return found


@dataclass(frozen=True, slots=True)
class SoftBounceRule:
    """Soft bounces suppress once ``limit`` of them fall within ``within``."""

    limit: int = 3
    within: Duration = parse_duration("7d")

    def reached(self, times: Iterable[datetime], at: datetime) -> int | None:
        """The number of soft bounces in the window ending at ``at`` if it reaches the limit, else None."""
        start = at - self.within.approx
        count = sum(1 for time in times if start < time <= at)
        return count if count >= self.limit else None

    def first_reached(self, times: Iterable[datetime]) -> tuple[datetime, int] | None:
        """The earliest instant at which the limit is reached (and the count then), or None."""
        ordered = sorted(times)
        for at in ordered:
            count = self.reached(ordered, at)
            if count is not None:
                return at, count
        return None


def rule_from_project(data: Mapping[str, Any]) -> SoftBounceRule:
    """The soft-bounce rule of project.yaml's mapping (``bounces: {soft: {limit, within}}``)."""
    bounces = data.get("bounces") or {}
    soft = bounces.get("soft") if isinstance(bounces, Mapping) else None
    soft = soft or {}
    default = SoftBounceRule()
    try:
        limit = int(soft.get("limit", default.limit))
        within = parse_duration(soft["within"]) if "within" in soft else default.within
    except (TypeError, ValueError, AttributeError) as error:
        raise JourneyError(f"project.yaml bounces.soft is not valid ({error}); run `journey validate`") from None
    if limit < 1:
        raise JourneyError("project.yaml bounces.soft.limit must be 1 or more; run `journey validate`")
    return SoftBounceRule(limit=limit, within=within)


def kind_of_status(status: str) -> str | None:
    """HARD for an enhanced status 5.x.x, SOFT for 4.x.x (RFC 3463), None otherwise."""
    match = _STATUS.search(status or "")
    if match is None:
        return None
    return {"5": HARD, "4": SOFT}.get(match.group(1))


def status_code(text: str) -> str:
    """The first enhanced status code (``5.1.1``) in a diagnostic, or ''."""
    match = _STATUS.search(text or "")
    return ".".join(match.groups()) if match else ""


def clean_diagnostic(text: str) -> str:
    """A diagnostic on one line, control characters out, at most ``DIAGNOSTIC_LIMIT`` characters."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= DIAGNOSTIC_LIMIT else flat[: DIAGNOSTIC_LIMIT - 1] + "…"


def contact_of_send_key(key: str) -> str | None:
    """The contact id inside an idempotency key ``contact:journey:seq/stage_seq/step``, or None."""
    enrollment, slash, _rest = key.rpartition("/")
    enrollment, slash2, _stage = enrollment.rpartition("/")
    if not slash or not slash2:
        return None
    contact, _journey, seq = enrollment.rsplit(":", 2) if enrollment.count(":") >= 2 else ("", "", "")
    return contact if contact and seq.isdigit() else None


def describe(properties: Mapping[str, Any]) -> str | None:
    """A suppression's detail from its event's properties: ``hard_bounce: 5.1.1 smtp; 550 … (ses)``."""
    kind = properties.get("bounce")
    if kind not in (*KINDS, SOFT_LIMIT):
        return None
    parts = [str(kind)]
    if kind == SOFT_LIMIT and properties.get("count"):
        parts.append(f"{properties['count']} within {properties.get('within', '?')}")
    diagnostic = properties.get("diagnostic") or properties.get("status")
    if diagnostic:
        parts.append(str(diagnostic))
    text = ": ".join(parts[:2]) + ("; " + "; ".join(parts[2:]) if len(parts) > 2 else "")
    source = properties.get("source")
    return f"{text} ({source})" if source else text
