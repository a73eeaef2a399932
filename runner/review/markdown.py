"""A simulation as GitHub-flavoured Markdown, for ``$GITHUB_STEP_SUMMARY`` and PR comments.

Reviewers see the numbers first (a summary table), then each journey's
diagram (GitHub renders ```mermaid fences), then every contact's timeline
folded in ``<details>``. GitHub refuses step summaries over 1 MiB, so the
output stops adding timelines before that and says how many it left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from runner.core.model import EmailStep, Journey, Project
from runner.review.graph import steps_in_file_order
from runner.review.mermaid import journey_mermaid
from runner.simulation.simulate import JourneySummary, Simulation
from runner.simulation.timeline import Record, iso, timeline_records

MAX_BYTES = 1024 * 1024  # GitHub's limit for one step summary
_NOTE_RESERVE = 512  # room kept for the truncation note


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell (no pipes, tags, backticks or line breaks)."""
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace("`", "\\`").replace("\r", " ").replace("\n", " "))


def _counts(counter: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items())) or "–"


def _sends(journey: Journey | None, summary: JourneySummary) -> str:
    """Sends per email step in file order (steps nobody got show 0: as telling as the others)."""
    if journey is None:
        return _counts(summary.sent)
    names = [step.id for step in steps_in_file_order(journey) if isinstance(step, EmailStep)]
    return ", ".join(f"{name} {summary.sent.get(name, 0)}" for name in names) or "–"


def summary_table(summaries: Sequence[JourneySummary], journeys: Sequence[Journey]) -> list[str]:
    by_id = {journey.id: journey for journey in journeys}
    lines = ["| journey | entered | sends per step | webhooks | split variants | goals | exits |",
             "| --- | ---: | --- | --- | --- | ---: | --- |"]
    for summary in summaries:
        lines.append(
            f"| {cell(summary.journey)} v{summary.version} | {summary.entered} "
            f"| {cell(_sends(by_id.get(summary.journey), summary))} | {cell(_counts(summary.webhooks))} "
            f"| {cell(_counts(summary.variants))} | {summary.goals} | {cell(_counts(summary.exits))} |"
        )
    return lines


def _detail(record: Record) -> str:
    if record.subject:
        return f"“{record.subject}”"
    if record.variant:
        return f"variant {record.variant}"
    return record.reason


def contact_timeline(contact: str, records: Sequence[Record]) -> str:
    sends = sum(1 for r in records if r.action == "send")
    lines = ["<details>", f"<summary>{cell(contact)}: {len(records)} decisions, {sends} emails</summary>", "",
             "| local time | journey | step | action | detail |", "| --- | --- | --- | --- | --- |"]
    for record in records:
        lines.append(f"| {cell(record.local_time)} | {cell(record.journey)} | {cell(record.step or '')} "
                     f"| {cell(record.action)} | {cell(_detail(record))} |")
    lines += ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def simulation_markdown(simulation: Simulation, summaries: Sequence[JourneySummary], journeys: Sequence[Journey],
                        project: Project, max_bytes: int = MAX_BYTES, records: Sequence[Record] | None = None) -> str:
    """Summary table, a Mermaid diagram per journey, then per-contact timelines; under ``max_bytes``.

    ``records``: the simulation's timeline when the caller has it (made here otherwise: subjects rendered again).
    """
    head = [f"## Journey simulation: {iso(simulation.start)} → {iso(simulation.end)}", "",
            f"{len(simulation.states)} test contacts, {len(simulation.decisions)} decisions.", ""]
    head += summary_table(summaries, journeys) + [""]
    for journey in sorted(journeys, key=lambda j: j.id):
        head += [f"### {cell(journey.name)} (`{journey.id}` v{journey.version})", "", "```mermaid",
                 journey_mermaid(journey).rstrip("\n"), "```", ""]
    text = "\n".join(head) + "\n"
    by_contact: dict[str, list[Record]] = {}
    for record in records if records is not None else timeline_records(simulation, project):
        by_contact.setdefault(record.contact, []).append(record)
    if not by_contact:
        return text
    text += "### Timelines per contact\n\n"
    size = len(text.encode("utf-8"))
    contacts = sorted(by_contact)
    for index, contact in enumerate(contacts):
        part = contact_timeline(contact, by_contact[contact])
        part_size = len(part.encode("utf-8"))
        if size + part_size > max_bytes - _NOTE_RESERVE:
            left = len(contacts) - index
            return text + (f"> **Truncated:** {left} of {len(contacts)} contact timelines left out to stay under "
                           f"{max_bytes // 1024} KiB; run `journey simulate` locally for all of them.\n")
        text += part
        size += part_size
    return text
