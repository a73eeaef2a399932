"""A simulation as something people read: records, a table, JSON, markdown.

``timeline_records`` turns engine decisions into flat, stable records (one per
decision) with the contact's local time and, for sends, the subject rendered
exactly as production would render it (same sandboxed renderer, same
context, the attribute snapshot taken at the decision). Formatting never
reads the clock or the environment, so the same inputs always print the same
bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runner.core.engine import Decision
from runner.core.localtime import zone
from runner.core.model import EmailStep, Journey, Project, Step
from runner.core.vocabulary import SEND_FAILED
from runner.simulation import jsontext
from runner.simulation.simulate import JourneySummary, Simulation, summarize

UTC = UTC
JSON_FORMAT_VERSION = 1


def iso(instant: datetime | None) -> str | None:
    """UTC instants as ``2026-03-02T09:00:00Z`` (stable, sortable)."""
    if instant is None:
        return None
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_iso(instant: datetime, tz_name: str) -> str:
    """The instant in ``tz_name`` with its offset: ``2026-03-02T12:00:00+03:00``."""
    return instant.astimezone(zone(tz_name)).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Record:
    """One line of the timeline (see docs/simulate.md for the JSON form)."""

    at: datetime
    local_time: str
    timezone: str
    contact: str
    journey: str
    version: int
    stage: str | None
    step: str | None
    action: str  # the engine's action; a send or webhook that cannot be built becomes send_failed
    reason: str
    key: str | None = None
    subject: str | None = None
    until: str | None = None  # waits and deferrals: when the contact is looked at again
    variant: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "at": iso(self.at), "local_time": self.local_time, "timezone": self.timezone,
            "contact": self.contact, "journey": self.journey, "version": self.version,
            "stage": self.stage, "step": self.step, "action": self.action, "reason": self.reason,
            "key": self.key,
        }
        if self.subject is not None:
            data["subject"] = self.subject
        if self.until is not None:
            data["until"] = self.until
        if self.variant is not None:
            data["variant"] = self.variant
        return data


def contact_zones(simulation: Simulation, project: Project) -> dict[str, str]:
    """Each contact's display zone: its own, else the project's default."""
    zones = {}
    for contact_id, state in simulation.states.items():
        name = state.contact.timezone or project.default_timezone or "UTC"
        try:
            zone(name)
        except ValueError:
            name = project.default_timezone or "UTC"
        zones[contact_id] = name
    return zones


def timeline_records(
    simulation: Simulation, project: Project, contact: str | None = None, render_subjects: bool = True,
) -> list[Record]:
    """One record per decision, time-ordered; every send and webhook built as production
    builds it (``runner.simulation.rendering``): sends show their rendered subject, and
    one that cannot be built becomes ``send_failed`` with the reason."""
    from runner.simulation.rendering import SendRenderer

    zones = contact_zones(simulation, project)
    renderer = SendRenderer(project, simulation.journeys) if render_subjects else None
    records = []
    local_times: dict[tuple[datetime, str], str] = {}  # contacts share instants (send windows, schedules)
    for decision in simulation.decisions:
        if contact is not None and decision.contact != contact:
            continue
        tz_name = zones.get(decision.contact) or project.default_timezone or "UTC"
        action, reason, subject = decision.action, decision.reason, None
        if action == "send":
            tz_name = str(decision.detail.get("timezone") or tz_name)
        if action in ("send", "webhook") and renderer is not None:
            outgoing, failure = renderer.build(decision)
            if failure is not None:
                action, reason = SEND_FAILED, failure.reason
            elif decision.action == "send":
                subject = outgoing.subject
        local_time = local_times.get((decision.at, tz_name))
        if local_time is None:
            local_time = local_times[decision.at, tz_name] = local_iso(decision.at, tz_name)
        records.append(Record(
            at=decision.at, local_time=local_time, timezone=tz_name,
            contact=decision.contact, journey=decision.journey, version=decision.version,
            stage=decision.stage, step=decision.step, action=action, reason=reason, key=decision.key,
            subject=subject, until=_until(decision), variant=decision.detail.get("variant"),
        ))
    return records


def _until(decision: Decision) -> str | None:
    text = decision.detail.get("until") if decision.action in ("wait", "wait_for", "defer") else None
    if not text:
        return None
    return iso(datetime.fromisoformat(text))


# ---------------------------------------------------------------- summaries


def summary_dict(summary: JourneySummary, failed: int = 0, emails: Sequence[str] = ()) -> dict[str, Any]:
    """A JourneySummary as plain JSON data: sends per email in ``emails`` order (the journey's, nobody's
    included, as the Markdown summary lists them), then any other step sorted; other counts key-sorted."""
    sent = {name: summary.sent.get(name, 0) for name in emails}
    sent.update(sorted((name, count) for name, count in summary.sent.items() if name not in sent))
    return {
        "journey": summary.journey,
        "version": summary.version,
        "entered": summary.entered,
        "sent": sent,
        "sent_total": sum(summary.sent.values()),
        "send_failed": failed,
        "webhooks": dict(sorted(summary.webhooks.items())),
        "variants": dict(sorted(summary.variants.items())),
        "holdout": summary.holdout,
        "goals": summary.goals,
        "exits": dict(sorted(summary.exits.items())),
        "skipped": dict(sorted(summary.skipped.items())),
        "deferred": dict(sorted(summary.deferred.items())),
    }


def summaries_for(simulation: Simulation, records: Sequence[Record],
                  step_order: Callable[[Journey], Sequence[Step]] | None = None) -> list[dict[str, Any]]:
    """The summary per journey; ``step_order`` (the review layer's file order) lists emails as
    the journey does, so every format shows them in one order."""
    failed: dict[str, int] = {}
    for record in records:
        if record.action == "send_failed":
            failed[record.journey] = failed.get(record.journey, 0) + 1
    journeys = {journey.id: journey for journey in simulation.journeys}

    def emails(journey_id: str) -> list[str]:
        journey = journeys.get(journey_id)
        if journey is None or step_order is None:
            return []
        return [step.id for step in step_order(journey) if isinstance(step, EmailStep)]

    return [summary_dict(s, failed.get(s.journey, 0), emails(s.journey)) for s in summarize(simulation)]


# ---------------------------------------------------------------- formats


def to_json(simulation: Simulation, records: Sequence[Record], summaries: list[dict[str, Any]]) -> str:
    """The documented JSON form: {format, start, end, journeys, events, summary}."""
    document = {
        "format": JSON_FORMAT_VERSION,
        "start": iso(simulation.start),
        "end": iso(simulation.end),
        "journeys": [{"id": j.id, "version": j.version} for j in sorted(simulation.journeys, key=lambda j: j.id)],
        "contacts": sorted(simulation.states),
        "events": [record.as_dict() for record in records],
        "summary": summaries,
    }
    return jsontext.dumps(document, indent=2) + "\n"  # json.dumps(indent=2, ensure_ascii=False)'s bytes


def _detail(record: Record) -> str:
    if record.subject is not None:
        return f'"{record.subject}"'
    text = record.reason
    if record.until and record.action in ("wait", "defer", "wait_for"):
        text = f"{text} (until {record.until})"
    return text


def to_table(
    simulation: Simulation, records: Sequence[Record], summaries: list[dict[str, Any]], width: int = 200,
) -> str:
    """A rich table of the timeline plus one summary table; plain text, no colour codes."""
    from rich import box
    from rich.table import Table

    summary_table = Table(title="Summary", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("journey", "entered", "sent (per step)", "goals", "exits", "skipped", "deferred"):
        summary_table.add_column(name, overflow="fold")
    for item in summaries:
        summary_table.add_row(
            f"{item['journey']} v{item['version']}", str(item["entered"]),
            _counts({**item["sent"], **item["webhooks"]}) + (f" (failed {item['send_failed']})" if item["send_failed"] else ""),
            str(item["goals"]), _counts(item["exits"]), _counts(item["skipped"]), _counts(item["deferred"]),
        )
    title = (f"Simulation {iso(simulation.start)} -> {iso(simulation.end)}: "
             f"{len(simulation.states)} contacts, {len(simulation.journeys)} journeys, {len(records)} decisions")
    return _plain_text([title], width) + decisions_text(records, width) + _plain_text([summary_table], width)


def history_records(rows: Sequence[dict[str, Any]], timezone_name: str) -> list[Record]:
    """Records from the production decision journal (``store.contact_history``), shown in the
    contact's zone; the same fields as a simulation's, without rendered subjects. A send
    shows what production did with it (``production_outcome``), not only what was decided."""
    records = []
    for row in rows:
        at = row["at"]
        detail = row.get("detail") or {}
        until = detail.get("until")
        action, reason = production_outcome(row)
        records.append(Record(
            at=at, local_time=local_iso(at, timezone_name), timezone=timezone_name, contact=row["contact_id"],
            journey=row["journey_id"], version=row["version"], stage=row["stage"], step=row["step"],
            action=action, reason=reason, key=row["key"],
            until=iso(datetime.fromisoformat(until)) if until else None, variant=detail.get("variant"),
        ))
    return records


def production_outcome(row: dict[str, Any]) -> tuple[str, str]:
    """(action, reason) of a journal row after delivery, from its ledger state: a send the
    tick skipped (catch-up policy) is a ``skip``, one that failed for good ``send_failed``
    (``webhook_failed``); one still retried or in doubt says so. Other rows are unchanged."""
    action, reason, state = row["action"], row["reason"], row.get("send_state")
    error = row.get("send_error") or ""
    if action not in ("send", "webhook") or state in (None, "sent"):
        return action, reason
    if state == "skipped":
        return "skip", error or "skipped"
    if state == "failed" and not row.get("send_retryable"):
        return f"{action}_failed", f"{reason}: {error}" if error else reason
    if state == "failed":
        return action, f"{reason} (not delivered yet, will retry: {error})"
    return action, f"{reason} ({state.replace('_', ' ')})"


def history_text(contact: str, timezone_name: str, records: Sequence[Record], width: int = 200) -> str:
    """``journey history`` as a table: the contact's production decisions, oldest first."""
    title = f"History of {contact} ({timezone_name}): {len(records)} decision(s) recorded by production ticks"
    return _plain_text([title], width) + decisions_text(records, width)


def decisions_text(records: Sequence[Record], width: int = 200) -> str:
    """One row per decision: when (UTC and local), who, where, what and why (see ``tabletext``)."""
    from runner.simulation.tabletext import table_text

    return table_text(decisions_columns, [decision_row(record) for record in records], width)


def decisions_columns() -> Any:
    """The decisions table without rows: its columns."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    for name in ("at (UTC)", "local", "contact", "journey", "stage", "step", "action"):
        table.add_column(name, no_wrap=True)
    table.add_column("detail", overflow="fold", ratio=1)
    return table


def decision_row(record: Record) -> tuple[str, ...]:
    return (iso(record.at) or "", record.local_time[:16].replace("T", " ") + " " + _short_zone(record),
            record.contact, f"{record.journey} v{record.version}", record.stage or "", record.step or "",
            record.action, _detail(record))


def _plain_text(renderables: Sequence[Any], width: int) -> str:
    """Rich renderables as plain text without colour codes or trailing spaces."""
    from runner.simulation.tabletext import plain_lines

    return plain_lines(renderables, width)


def _short_zone(record: Record) -> str:
    return record.local_time[19:] or "+00:00"


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counter.items()) or "-"
