"""Step execution: what an enrollment does when it is due, one step after another.

The engine's per-contact run (``runner.core.engine._Run``) decides *when*
steps execute; this module, *how*: emails (suppression, send windows,
frequency caps), waits, ``wait_for``, branches, splits, updates, webhooks and
exits. It sees the run only through ``RunState``, the explicit list of what
step execution may read and change, and records every outcome with
``run.decide``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from runner.core.conditions import Facts
from runner.core.localtime import SendTimes, add_duration, next_local_time
from runner.core.model import (
    BranchStep,
    Cap,
    EmailStep,
    ExitStep,
    Journey,
    Project,
    SplitStep,
    Stage,
    Step,
    SuppressStep,
    UpdateStep,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
    WebhookStep,
)
from runner.core.reads import attribute_key
from runner.core.state import EXITED, IDLE, Contact, ContactState, Enrollment, SendRecord, Wait

MAX_STEPS_PER_INSTANT = 200  # a stage-move loop with no wait stops here (validate reports it first)


def split_bucket(contact_id: str, journey_id: str, step_id: str) -> int:
    """A stable bucket 0..99: the same contact lands in the same variant in every version."""
    digest = hashlib.sha256(f"{contact_id}\x1f{journey_id}\x1f{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def send_key(enrollment: Enrollment, step_id: str) -> str:
    return f"{enrollment.id}/{enrollment.stage_seq}/{step_id}"


class RunState(Protocol):
    """What step execution may read and change in a contact's run (``runner.core.engine._Run``).

    The run owns its caches; steps reach them only through these methods, and
    tell the run what they changed (``invalidate``) rather than resetting its caches.
    """

    project: Project
    state: ContactState
    contact: Contact
    memory: dict[str, Any]
    now: datetime

    def zone_for(self, journey: Journey) -> ZoneInfo: ...
    def facts_for(self, journey: Journey, stage: str | None = None, since: datetime | None = None) -> Facts: ...
    def score(self, name: str) -> float: ...
    def send_times(self, journey: Journey, tz: ZoneInfo) -> SendTimes: ...
    def attribute_snapshot(self) -> dict[str, Any]: ...
    def invalidate(self, changed: Iterable[Hashable] | None = None) -> None: ...
    def decide(self, journey: Journey, enrollment: Enrollment, step_id: str | None, action: str, reason: str,
               key: str | None = None, detail: Mapping[str, Any] | None = None) -> None: ...
    def exit_enrollment(self, journey: Journey, enrollment: Enrollment, reason: str) -> None: ...
    def move_enrollment(self, journey: Journey, enrollment: Enrollment, stage: Stage, reason: str) -> None: ...
    def execute(self, journey: Journey, enrollment: Enrollment, step: Step) -> bool: ...


def run_steps(run: RunState, journey: Journey, enrollment: Enrollment) -> None:
    enrollment.due_at = None
    if enrollment.wait is not None and enrollment.wait.event is not None:
        # a wait_for whose timeout came: take the timeout path
        step = journey.steps[enrollment.wait.step or ""]
        assert isinstance(step, WaitForStep)  # only a wait_for waits for an event
        enrollment.wait = None
        enrollment.cursor = step.on_timeout
        run.decide(journey, enrollment, step.id, "timeout_path", f"no {step.event} within {step.timeout}")
    enrollment.wait = None
    for _ in range(MAX_STEPS_PER_INSTANT):
        if enrollment.status == EXITED:
            return
        if enrollment.cursor is None:
            _stage_done(run, journey, enrollment)
            return
        step = journey.steps[enrollment.cursor]
        if step.if_ is not None and not step.if_.evaluate(run.facts_for(journey, enrollment.stage)):
            run.decide(journey, enrollment, step.id, "skip", f"condition false: {step.if_.describe()}")
            enrollment.cursor = step.next
            continue
        if not run.execute(journey, enrollment, step):
            return  # waiting
    run.decide(journey, enrollment, enrollment.cursor, "halt", "too many steps without a wait (a stage-move loop?)")
    enrollment.cursor = None
    enrollment.status = IDLE
    enrollment.trigger = None


def _stage_done(run: RunState, journey: Journey, enrollment: Enrollment) -> None:
    if len(journey.stages) == 1:
        run.exit_enrollment(journey, enrollment, "completed")
    else:
        enrollment.status = IDLE
        enrollment.due_at = None
        enrollment.trigger = None  # idle: no step runs until another stage's entry sets its own

# ---------------------------------------------------------------- the built-in kinds' executors
# Each takes (run, journey, enrollment, step) and returns True to continue with the
# next step, False when the enrollment now waits (see ``runner.core.stepkinds``).


def execute_email(run: RunState, journey: Journey, enrollment: Enrollment, step: EmailStep) -> bool:
    return _email(run, journey, enrollment, step, run.zone_for(journey))


def execute_wait(run: RunState, journey: Journey, enrollment: Enrollment, step: WaitStep) -> bool:
    until = add_duration(run.now, step.duration, run.zone_for(journey))
    return _wait(run, journey, enrollment, step, until, f"wait {step.duration}")


def execute_wait_until(run: RunState, journey: Journey, enrollment: Enrollment, step: WaitUntilStep) -> bool:
    until = next_local_time(run.now, step.at, step.days, run.zone_for(journey))
    return _wait(run, journey, enrollment, step, until, f"until {step.at:%H:%M} local")


def execute_wait_for(run: RunState, journey: Journey, enrollment: Enrollment, step: WaitForStep) -> bool:
    timeout = add_duration(run.now, step.timeout, run.zone_for(journey))
    enrollment.wait = Wait(until=timeout, event=step.event, step=step.id)
    enrollment.due_at = timeout
    run.decide(journey, enrollment, step.id, "wait_for", f"{step.event} or timeout {step.timeout}",
               detail={"until": iso_text(timeout)})
    return False


def execute_branch(run: RunState, journey: Journey, enrollment: Enrollment, step: BranchStep) -> bool:
    facts = run.facts_for(journey, enrollment.stage)
    for index, (condition, first) in enumerate(step.cases):
        if condition.evaluate(facts):
            run.decide(journey, enrollment, step.id, "branch", f"case {index}: {condition.describe()}")
            enrollment.cursor = first
            return True
    run.decide(journey, enrollment, step.id, "branch", "else")
    enrollment.cursor = step.otherwise
    return True


def execute_exit(run: RunState, journey: Journey, enrollment: Enrollment, step: ExitStep) -> bool:
    run.exit_enrollment(journey, enrollment, step.reason)
    return False


def execute_suppress(run: RunState, journey: Journey, enrollment: Enrollment, step: SuppressStep) -> bool:
    """Every marketing email stops from now on, in every journey (transactional topics go on);
    production records it with the store's suppressions when it journals this decision."""
    run.state.stop_marketing(step.reason, run.now)
    run.decide(journey, enrollment, step.id, "suppress", step.reason, detail={"reason": step.reason})
    enrollment.cursor = step.next
    return True


def _wait(run: RunState, journey: Journey, enrollment: Enrollment, step: Step, until: datetime, reason: str) -> bool:
    enrollment.cursor = step.next
    if until <= run.now:
        # wait_until at exactly its local time: nothing to wait for. Blocking here would
        # set due_at == clock, which next_instant() never wakes (it only looks after the clock).
        run.decide(journey, enrollment, step.id, "wait", f"{reason} (already due)", detail={"until": iso_text(until)})
        return True
    enrollment.wait = Wait(until=until)
    enrollment.due_at = until
    run.decide(journey, enrollment, step.id, "wait", reason, detail={"until": iso_text(until)})
    return False


def _defer(run: RunState, journey: Journey, enrollment: Enrollment, step: Step, until: datetime, reason: str) -> bool:
    enrollment.due_at = until
    enrollment.wait = Wait(until=until)
    run.decide(journey, enrollment, step.id, "defer", reason, detail={"until": iso_text(until)})
    return False


def _skip(run: RunState, journey: Journey, enrollment: Enrollment, step: Step, reason: str) -> bool:
    run.decide(journey, enrollment, step.id, "skip", reason)
    enrollment.cursor = step.next
    return True


def _email(run: RunState, journey: Journey, enrollment: Enrollment, step: EmailStep, tz: ZoneInfo) -> bool:
    settings = journey.settings
    if enrollment.holdout:
        return _skip(run, journey, enrollment, step, "holdout")
    topic = run.project.topic(step.topic)
    stopped = run.state.email_stop(topic.name, topic.marketing, run.now)
    if stopped:
        return _skip(run, journey, enrollment, step, stopped)
    if not run.contact.attributes.get("email"):
        return _skip(run, journey, enrollment, step, "no email address")
    if settings.send_window is not None or settings.quiet_hours is not None:
        closed = run.send_times(journey, tz).closed(run.now)
        if closed is not None:
            reason, opens = closed
            return _defer(run, journey, enrollment, step, opens, reason)
    capped = _cap_free_at(run, journey)
    if capped is not None:
        free_at, which = capped
        if settings.on_cap == "skip":
            return _skip(run, journey, enrollment, step, f"frequency cap ({which})")
        return _defer(run, journey, enrollment, step, free_at, f"frequency cap ({which})")
    key = send_key(enrollment, step.id)
    record = SendRecord(key, run.contact.id, journey.id, journey.version, step.id, run.now, "email")
    run.state.sends.append(record)
    run.decide(journey, enrollment, step.id, "send", f"email {step.template}", key=key, detail={
        "template": step.template, "subject": step.subject, "text_template": step.text_template,
        "from": step.sender, "reply_to": step.reply_to, "to": run.contact.attributes.get("email"),
        "attributes": run.attribute_snapshot(),
        "scores": {name: run.score(name) for name in run.project.scores},
        "timezone": str(tz.key), **trigger_detail(enrollment),
    })
    enrollment.cursor = step.next
    return True


def _cap_free_at(run: RunState, journey: Journey) -> tuple[datetime, str] | None:
    """When a send over a frequency cap could go out, or None when no cap is reached
    (the journey's cap first, then the project's)."""
    sends = run.state.sends
    cap = journey.settings.frequency_cap
    if cap is not None and len(sends) >= cap.max:  # fewer sends of any kind cannot reach it
        free_at = _cap_reached(run, cap, journey.id)
        if free_at is not None:
            return free_at, f"journey {cap.max} per {cap.per}"
    cap = run.project.frequency_cap
    if cap is not None and len(sends) >= cap.max:
        free_at = _cap_reached(run, cap, None)
        if free_at is not None:
            return free_at, f"project {cap.max} per {cap.per}"
    return None


def _cap_reached(run: RunState, cap: Cap, journey_id: str | None) -> datetime | None:
    """When the oldest email counting against ``cap`` (of ``journey_id``, or of every
    journey) leaves its window, if ``cap.max`` of them are in it now; None otherwise."""
    start = run.now - cap.per.approx
    recent = [
        s.at for s in run.state.sends
        if s.kind == "email" and s.at > start and (journey_id is None or s.journey_id == journey_id)
    ]
    if len(recent) < cap.max:
        return None
    recent.sort()
    oldest: datetime = recent[len(recent) - cap.max]
    return oldest + cap.per.approx


def execute_split(run: RunState, journey: Journey, enrollment: Enrollment, step: SplitStep) -> bool:
    bucket = split_bucket(run.contact.id, journey.id, step.id)
    if bucket < step.holdout:
        enrollment.holdout = True
        enrollment.variant[step.id] = "holdout"
        run.decide(journey, enrollment, step.id, "holdout", f"bucket {bucket} < holdout {step.holdout}",
                     detail={"variant": "holdout"})
        enrollment.cursor = step.next
        return True
    threshold = step.holdout
    chosen = step.variants[-1]
    for variant in step.variants:
        threshold += variant.weight
        if bucket < threshold:
            chosen = variant
            break
    enrollment.variant[step.id] = chosen.name
    run.decide(journey, enrollment, step.id, "split", f"variant {chosen.name} (bucket {bucket})",
                 detail={"variant": chosen.name})
    enrollment.cursor = chosen.first
    return True


def execute_update(run: RunState, journey: Journey, enrollment: Enrollment, step: UpdateStep) -> bool:
    changes = []
    for path, value in step.set.items():
        set_path(run.contact.attributes, path, value)
        changes.append(f"{path}={value!r}")
    if step.add_score:
        adjust = run.memory.setdefault("score_adjust", {})
        for name, points in step.add_score.items():
            adjust[name] = adjust.get(name, 0) + points
            changes.append(f"score {name} {points:+g}")
    if step.lifecycle_stage:
        run.contact.attributes["lifecycle_stage"] = step.lifecycle_stage
        changes.append(f"lifecycle_stage={step.lifecycle_stage}")
    run.invalidate(
        [attribute_key(path) for path in step.set] + [("score", name) for name in step.add_score]
        + (["lifecycle_stage"] if step.lifecycle_stage else [])
    )
    run.decide(journey, enrollment, step.id, "update", ", ".join(changes) or "no change",
                 detail={"set": dict(step.set), "add_score": dict(step.add_score)})
    enrollment.cursor = step.next
    if step.move_to:
        run.move_enrollment(journey, enrollment, journey.stage(step.move_to), f"update step {step.id}")
    return True


def execute_webhook(run: RunState, journey: Journey, enrollment: Enrollment, step: WebhookStep) -> bool:
    if enrollment.holdout:
        return _skip(run, journey, enrollment, step, "holdout")
    key = send_key(enrollment, step.id)
    run.state.sends.append(SendRecord(key, run.contact.id, journey.id, journey.version, step.id, run.now, "webhook"))
    run.decide(journey, enrollment, step.id, "webhook", f"POST {step.url}", key=key, detail={
        "url": step.url, "payload": step.payload, "secret_env": step.secret_env,
        "attributes": run.attribute_snapshot(),
        "scores": {name: run.score(name) for name in run.project.scores}, **trigger_detail(enrollment),
    })
    enrollment.cursor = step.next
    return True


def trigger_detail(enrollment: Enrollment) -> dict[str, Any]:
    """A send's ``event`` detail: the event that started or woke the steps now running (its
    templates' ``event``), as the journal keeps it; nothing when no event did."""
    trigger = enrollment.trigger
    if trigger is None:
        return {}
    return {"event": {"name": trigger.name, "properties": trigger.properties, "timestamp": iso_text(trigger.at)}}


_ISO_TEXTS: dict[datetime, str] = {}  # UTC instant -> its isoformat() (see iso_text)


def iso_text(at: datetime) -> str:
    """``at.isoformat()``, remembered for UTC instants: wake-ups and waits end at the same
    few thousand instants (09:00 local, a schedule) for every contact, and formatting an
    aware datetime costs more than a lookup. Other zones are formatted each time: equal
    instants in two zones are one dict key but two texts."""
    if at.tzinfo is not UTC:
        return at.isoformat()
    text = _ISO_TEXTS.get(at)
    if text is None:
        if len(_ISO_TEXTS) >= 8192:
            _ISO_TEXTS.clear()
        text = _ISO_TEXTS[at] = at.isoformat()
    return text


def set_path(attributes: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    target = attributes
    for part in parts[:-1]:
        nested = target.get(part)
        if not isinstance(nested, dict):
            nested = target[part] = {}
        target = nested
    target[parts[-1]] = value


JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def snapshot(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep-enough copy of the attributes as they are at the decision."""
    return {k: _snapshot_value(v) for k, v in attributes.items()}


def _snapshot_value(value: Any) -> Any:
    if type(value) in JSON_SCALARS:
        return value  # hot path: isinstance against typing.Mapping goes through the ABC machinery
    if isinstance(value, Mapping):
        return snapshot(value)
    return list(value) if isinstance(value, list) else value
