"""``journey explain``: where a contact is at an instant, and why.

The contact is simulated from the start up to ``at`` with the production
engine; then every segment, every stage entry and every exit condition is
evaluated against the contact's facts at that instant (visible events, lead
scores with decay, attributes as updated by the journeys) and explained with
``Condition.explain``. What it says is what the engine would decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.core.conditions import Explanation, Facts
from runner.core.engine import ContactView, Engine
from runner.core.model import Journey, Project, Stage
from runner.core.state import ContactState
from runner.core.vocabulary import step_stop_reason
from runner.simulation.testcontacts import TestContact
from runner.simulation.timeline import iso


@dataclass
class JourneyView:
    """One journey from the contact's point of view at the instant."""

    journey: str
    version: int
    enrolled: bool
    stage: str | None = None
    status: str | None = None
    entered_at: datetime | None = None
    next_step: str | None = None
    due_at: datetime | None = None
    waiting_for: str | None = None
    entries: list[tuple[str, Explanation]] = field(default_factory=list)  # stage id -> why its entry holds/fails
    exits: list[tuple[str, Explanation]] = field(default_factory=list)  # (exit:0 / project_exit:0, why)
    past: list[tuple[datetime | None, str | None]] = field(default_factory=list)  # (exited at, reason)


@dataclass
class ContactExplanation:
    contact: str
    at: datetime
    timezone: str
    attributes: dict[str, Any]
    scores: dict[str, float]
    suppressed: str | None
    segments: list[tuple[str, str, Explanation]]  # (scope: project or journey id, segment name, why)
    journeys: list[JourneyView]


def explain_contact(
    project: Project, journeys: Sequence[Journey], contact: TestContact, start: datetime, at: datetime,
) -> ContactExplanation:
    """Simulate ``contact`` from ``start`` to ``at`` and explain its segments and stages then."""
    engine = Engine(project, journeys)
    state = contact.state(start, project.default_timezone)
    engine.advance(state, max(at, start), start=start)
    run = _facts_source(engine, state, max(at, start))
    base = run.facts_for(journeys[0]) if journeys else None
    segments: list[tuple[str, str, Explanation]] = []
    if base is not None:
        for name, condition in sorted(project.segments.items()):
            segments.append(("project", name, condition.explain(run.facts_for(journeys[0]))))
    views = []
    for journey in sorted(journeys, key=lambda j: j.id):
        for name, condition in sorted(journey.segments.items()):
            segments.append((journey.id, name, condition.explain(run.facts_for(journey))))
        views.append(_journey_view(engine, run, state, journey))
    return ContactExplanation(
        contact=contact.id, at=at, timezone=state.contact.timezone or project.default_timezone,
        attributes=dict(state.contact.attributes), scores={name: run.score(name) for name in sorted(project.scores)},
        suppressed=_suppressed(state, max(at, start)), segments=segments, journeys=views,
    )


def _suppressed(state: ContactState, at: datetime) -> str | None:
    """The suppression in effect (every email stops), else an unsubscribe from everything
    (marketing stops), else the topics opted out of; None when email flows."""
    reason = state.suppressed_by(at)
    if reason is not None:
        return reason
    if state.opted_out("*", at):
        return "unsubscribed"
    stopped = sorted(reason for topic in state.opt_outs
                     if (reason := step_stop_reason(topic)) is not None and state.opted_out(topic, at))
    if stopped:  # a suppress step's: every marketing topic
        return stopped[0]
    topics = sorted(topic for topic in state.opt_outs if state.opted_out(topic, at) and step_stop_reason(topic) is None)
    return f"unsubscribed from {', '.join(topics)}" if topics else None


def _facts_source(engine: Engine, state: ContactState, at: datetime) -> ContactView:
    """The engine's own view of the contact at ``at`` (same visibility and score rules)."""
    return engine.view(state, at)


def _journey_view(engine: Engine, run: ContactView, state: ContactState, journey: Journey) -> JourneyView:
    enrollment = state.enrollments.get(journey.id)
    pinned = engine.journey_for(enrollment) if enrollment else journey
    stage_id = enrollment.stage if enrollment else None
    facts = run.facts_for(pinned, stage_id)
    view = JourneyView(journey.id, pinned.version, enrollment is not None)
    if enrollment is not None:
        view.stage, view.status, view.entered_at = enrollment.stage, enrollment.status, enrollment.entered_at
        view.next_step, view.due_at = enrollment.cursor, enrollment.due_at
        view.waiting_for = enrollment.wait.event if enrollment.wait else None
        exit_facts = run.facts_for(pinned, stage_id, since=enrollment.entered_at)
        view.exits = [(label, condition.explain(exit_facts)) for label, condition in engine.exits(pinned)]
    view.past = [(e.exited_at, e.exit_reason) for e in state.past_enrollments if e.journey_id == journey.id]
    view.entries = [(stage.id, _entry_explanation(stage, facts)) for stage in pinned.stages]
    if enrollment is None:  # an entry that "holds" would claim the contact is in: say why it is not
        view.entries = [(stage_id, _not_in(why, view.past)) for stage_id, why in view.entries]
    return view


def _not_in(why: Explanation, past: list[tuple[datetime | None, str | None]]) -> Explanation:
    """An entry of a journey the contact is not in never shows as passing: it fired and the contact
    left (when, why), or it has not fired (a trigger waits for its change, event or schedule)."""
    if not why.holds:
        return why
    exited_at, reason = past[-1] if past else (None, None)
    outcome = f"left at {iso(exited_at)}: {reason}" if past else "no entry has fired"
    return Explanation(False, f"{why.text}; not in the journey ({outcome})", why.children)


def _entry_explanation(stage: Stage, facts: Facts) -> Explanation:
    entry = stage.entry
    if entry.kind in ("segment", "condition") and entry.condition is not None:
        explanation = entry.condition.explain(facts)
        text = f"entry (fires when it becomes true): {explanation.text}"
        result = Explanation(explanation.holds, text, explanation.children)
    elif entry.kind == "event":
        seen = facts.events_named(entry.event or "")
        last = f"last at {iso(seen[-1].at)}" if seen else "never happened"
        result = Explanation(bool(seen), f"entry on event {entry.event} ({len(seen)} so far, {last})")
    elif entry.kind == "attribute_changed":
        value = facts.attribute(entry.attribute or "")
        result = Explanation(True, f"entry when {entry.attribute} changes (now {_show(value)})")
    elif entry.kind == "date":
        value = facts.attribute(entry.attribute or "")
        result = Explanation(_is_set(value), f"entry yearly on {entry.attribute} {entry.offset} at {entry.at:%H:%M} "
                                             f"(now {_show(value)})")
    else:
        result = Explanation(True, f"entry on schedule {entry.cron} ({entry.timezone})")
    if entry.if_ is not None:
        guard = entry.if_.explain(facts)
        result.children.append(Explanation(guard.holds, f"if: {guard.text}", guard.children))
        result.holds = result.holds and guard.holds  # the entry only fires when its `if` holds too
    return result


def score_text(value: float) -> str:
    """A decayed score for reading (27.5, not 27.498371); JSON keeps the exact value."""
    return f"{round(value, 1):g}"


def _is_set(value: Any) -> bool:
    from runner.core.conditions import NOT_SET

    return value is not NOT_SET and value is not None


def _show(value: Any) -> str:
    return "not set" if not _is_set(value) else repr(value)


# ---------------------------------------------------------------- output


def explanation_lines(result: ContactExplanation) -> list[str]:
    """The explanation as indented text (✓ holds, ✗ does not)."""
    lines = [f"{result.contact} at {iso(result.at)} ({result.timezone})"]
    if result.suppressed:
        stops = "marketing topics stop" if result.suppressed.startswith("unsubscribed") else "no email is sent"
        lines.append(f"  suppressed: {result.suppressed} ({stops})")
    if result.scores:
        lines.append("  scores: " + ", ".join(f"{k} {score_text(v)}" for k, v in result.scores.items()))
    lines.append("")
    lines.append("Segments")
    for scope, name, why in result.segments:
        mark = "✓" if why.holds else "✗"
        lines.append(f"  {mark} {name} ({scope})")
        lines.extend(why.lines(2)[1:] if why.children else [f"      {why.text}"])
    for view in result.journeys:
        lines.append("")
        if view.enrolled:
            status = f"in stage {view.stage} ({view.status}) since entering at {iso(view.entered_at)}"
            if view.waiting_for:
                status += f"; waiting for {view.waiting_for} until {iso(view.due_at)}"
            elif view.next_step:
                status += f"; next step {view.next_step} at {iso(view.due_at)}"
        else:
            status = "not enrolled"
        lines.append(f"Journey {view.journey} v{view.version}: {status}")
        for exited_at, reason in view.past:
            lines.append(f"  left at {iso(exited_at)}: {reason}")
        for stage_id, why in view.entries:
            current = " (current)" if view.stage == stage_id else ""
            lines.append(f"  stage {stage_id}{current}:")
            lines.extend(why.lines(2))
        for label, why in view.exits:
            lines.append(f"  {label}:")
            lines.extend(why.lines(2))
    return lines


def explanation_dict(result: ContactExplanation) -> dict[str, Any]:
    def tree(why: Explanation) -> dict[str, Any]:
        return {"holds": why.holds, "text": why.text, "children": [tree(c) for c in why.children]}

    return {
        "contact": result.contact, "at": iso(result.at), "timezone": result.timezone,
        "suppressed": result.suppressed, "scores": result.scores,
        "segments": [{"scope": s, "segment": n, **tree(w)} for s, n, w in result.segments],
        "journeys": [
            {
                "journey": v.journey, "version": v.version, "enrolled": v.enrolled, "stage": v.stage,
                "status": v.status, "entered_at": iso(v.entered_at), "next_step": v.next_step,
                "due_at": iso(v.due_at), "waiting_for": v.waiting_for,
                "entries": [{"stage": s, **tree(w)} for s, w in v.entries],
                "exits": [{"rule": label, **tree(w)} for label, w in v.exits],
                "past": [{"exited_at": iso(at), "reason": reason} for at, reason in v.past],
            }
            for v in result.journeys
        ],
    }
