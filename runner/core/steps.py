"""Step execution: what an enrollment does when it is due, one step after another.

``StepRunner`` is the part of the engine's per-contact run (``runner.core.engine._Run``)
that executes steps: emails (suppression, send windows, frequency caps),
waits, ``wait_for``, branches, splits, updates, webhooks and exits. It reads
and writes the run's state through ``self`` and records every outcome with
``self._decide``; the run decides *when* steps execute, this module *how*.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from runner.core.localtime import SendTimes, add_duration, next_local_time, send_times, zone
from runner.core.model import (
    BranchStep,
    EmailStep,
    ExitStep,
    Journey,
    SplitStep,
    UpdateStep,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
    WebhookStep,
)
from runner.core.reads import attribute_key
from runner.core.state import EXITED, IDLE, Enrollment, SendRecord, Wait

MAX_STEPS_PER_INSTANT = 200  # a stage-move loop with no wait stops here (validate reports it first)


def split_bucket(contact_id: str, journey_id: str, step_id: str) -> int:
    """A stable bucket 0..99: the same contact lands in the same variant in every version."""
    digest = hashlib.sha256(f"{contact_id}\x1f{journey_id}\x1f{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def send_key(enrollment: Enrollment, step_id: str) -> str:
    return f"{enrollment.id}/{enrollment.stage_seq}/{step_id}"


class StepRunner:
    """Executes an enrollment's steps for ``runner.core.engine._Run`` (a mixin: the run's state is ``self``)."""

    def zone_for(self, journey: Journey):
        """The zone ``journey``'s local times are in for this contact (remembered for the run)."""
        tz = self._zones.get(id(journey))
        if tz is None:
            tz = self._zones[id(journey)] = self._zone_for(journey)
        return tz

    def _zone_for(self, journey: Journey):
        settings = journey.settings
        if settings.timezone and settings.timezone != "contact":
            return zone(settings.timezone)
        name = self.contact.timezone or settings.default_timezone or self.project.default_timezone
        try:
            return zone(name)
        except ValueError:
            return zone(settings.default_timezone or self.project.default_timezone or "UTC")

    def _run_steps(self, journey: Journey, enrollment: Enrollment) -> None:
        enrollment.due_at = None
        if enrollment.wait is not None and enrollment.wait.event is not None:
            # a wait_for whose timeout came: take the timeout path
            step = journey.steps[enrollment.wait.step]
            enrollment.wait = None
            enrollment.cursor = step.on_timeout
            self._decide(journey, enrollment, step.id, "timeout_path", f"no {step.event} within {step.timeout}")
        enrollment.wait = None
        for _ in range(MAX_STEPS_PER_INSTANT):
            if enrollment.status == EXITED:
                return
            if enrollment.cursor is None:
                self._stage_done(journey, enrollment)
                return
            step = journey.steps[enrollment.cursor]
            if step.if_ is not None and not step.if_.evaluate(self.facts_for(journey, enrollment.stage)):
                self._decide(journey, enrollment, step.id, "skip", f"condition false: {step.if_.describe()}")
                enrollment.cursor = step.next
                continue
            if not self._execute(journey, enrollment, step):
                return  # waiting
        self._decide(journey, enrollment, enrollment.cursor, "halt", "too many steps without a wait (a stage-move loop?)")
        enrollment.cursor = None
        enrollment.status = IDLE

    def _stage_done(self, journey: Journey, enrollment: Enrollment) -> None:
        if len(journey.stages) == 1:
            self._exit(journey, enrollment, "completed")
        else:
            enrollment.status = IDLE
            enrollment.due_at = None

    def _execute(self, journey, enrollment, step) -> bool:
        """Run one step; True to continue with the next, False when the enrollment now waits."""
        if isinstance(step, EmailStep):
            return self._email(journey, enrollment, step, self.zone_for(journey))
        if isinstance(step, WaitStep):
            until = add_duration(self.now, step.duration, self.zone_for(journey))
            return self._wait(journey, enrollment, step, until, f"wait {step.duration}")
        if isinstance(step, WaitUntilStep):
            until = next_local_time(self.now, step.at, step.days, self.zone_for(journey))
            return self._wait(journey, enrollment, step, until, f"until {step.at:%H:%M} local")
        if isinstance(step, WaitForStep):
            timeout = add_duration(self.now, step.timeout, self.zone_for(journey))
            enrollment.wait = Wait(until=timeout, event=step.event, step=step.id)
            enrollment.due_at = timeout
            self._decide(journey, enrollment, step.id, "wait_for", f"{step.event} or timeout {step.timeout}",
                         detail={"until": iso_text(timeout)})
            return False
        if isinstance(step, BranchStep):
            facts = self.facts_for(journey, enrollment.stage)
            for index, (condition, first) in enumerate(step.cases):
                if condition.evaluate(facts):
                    self._decide(journey, enrollment, step.id, "branch", f"case {index}: {condition.describe()}")
                    enrollment.cursor = first
                    return True
            self._decide(journey, enrollment, step.id, "branch", "else")
            enrollment.cursor = step.otherwise
            return True
        if isinstance(step, SplitStep):
            return self._split(journey, enrollment, step)
        if isinstance(step, UpdateStep):
            return self._update(journey, enrollment, step)
        if isinstance(step, WebhookStep):
            return self._webhook(journey, enrollment, step)
        if isinstance(step, ExitStep):
            self._exit(journey, enrollment, step.reason)
            return False
        raise AssertionError(f"unknown step kind {step.kind}")  # pragma: no cover

    def _wait(self, journey, enrollment, step, until: datetime, reason: str) -> bool:
        enrollment.cursor = step.next
        if until <= self.now:
            # wait_until at exactly its local time: nothing to wait for. Blocking here would
            # set due_at == clock, which next_instant() never wakes (it only looks after the clock).
            self._decide(journey, enrollment, step.id, "wait", f"{reason} (already due)", detail={"until": iso_text(until)})
            return True
        enrollment.wait = Wait(until=until)
        enrollment.due_at = until
        self._decide(journey, enrollment, step.id, "wait", reason, detail={"until": iso_text(until)})
        return False

    def _defer(self, journey, enrollment, step, until: datetime, reason: str) -> bool:
        enrollment.due_at = until
        enrollment.wait = Wait(until=until)
        self._decide(journey, enrollment, step.id, "defer", reason, detail={"until": iso_text(until)})
        return False

    def _skip(self, journey, enrollment, step, reason: str) -> bool:
        self._decide(journey, enrollment, step.id, "skip", reason)
        enrollment.cursor = step.next
        return True

    def _email(self, journey, enrollment, step: EmailStep, tz) -> bool:
        settings = journey.settings
        if enrollment.holdout:
            return self._skip(journey, enrollment, step, "holdout")
        suppressed = self.state.suppressed_by(self.now)
        if suppressed:
            return self._skip(journey, enrollment, step, f"suppressed: {suppressed}")
        if not self.contact.attributes.get("email"):
            return self._skip(journey, enrollment, step, "no email address")
        if settings.send_window is not None or settings.quiet_hours is not None:
            closed = self._send_times(journey, tz).closed(self.now)
            if closed is not None:
                reason, opens = closed
                return self._defer(journey, enrollment, step, opens, reason)
        capped = self._cap_free_at(journey)
        if capped is not None:
            free_at, which = capped
            if settings.on_cap == "skip":
                return self._skip(journey, enrollment, step, f"frequency cap ({which})")
            return self._defer(journey, enrollment, step, free_at, f"frequency cap ({which})")
        key = send_key(enrollment, step.id)
        record = SendRecord(key, self.contact.id, journey.id, journey.version, step.id, self.now, "email")
        self.state.sends.append(record)
        self._decide(journey, enrollment, step.id, "send", f"email {step.template}", key=key, detail={
            "template": step.template, "subject": step.subject, "text_template": step.text_template,
            "from": step.sender, "reply_to": step.reply_to, "to": self.contact.attributes.get("email"),
            "attributes": self._attribute_snapshot(),
            "scores": {name: self.score(name) for name in self.project.scores},
            "timezone": str(tz.key),
        })
        enrollment.cursor = step.next
        return True

    def _send_times(self, journey: Journey, tz) -> SendTimes:
        """The send window and quiet hours of ``journey`` in zone ``tz`` (kept by the engine:
        hashing the settings for ``send_times`` at every send costs more than this lookup)."""
        key = (id(journey), tz.key)
        times = self.engine.send_times.get(key)
        if times is None:
            settings = journey.settings
            times = self.engine.send_times[key] = send_times(tz, settings.send_window, settings.quiet_hours)
        return times

    def _attribute_snapshot(self) -> dict:
        """The attributes as they are now, for a send's detail: one copy per attribute version,
        shared by the sends made while nothing changed them (details are read, not written)."""
        if self._snapshot is None or self._snapshot[0] != self.attribute_version:
            self._snapshot = (self.attribute_version, snapshot(self.contact.attributes))
        return self._snapshot[1]

    def _cap_free_at(self, journey: Journey) -> tuple[datetime, str] | None:
        """When a send over a frequency cap could go out, or None when no cap is reached
        (the journey's cap first, then the project's)."""
        sends = self.state.sends
        cap = journey.settings.frequency_cap
        if cap is not None and len(sends) >= cap.max:  # fewer sends of any kind cannot reach it
            free_at = self._cap_reached(cap, journey.id)
            if free_at is not None:
                return free_at, f"journey {cap.max} per {cap.per}"
        cap = self.project.frequency_cap
        if cap is not None and len(sends) >= cap.max:
            free_at = self._cap_reached(cap, None)
            if free_at is not None:
                return free_at, f"project {cap.max} per {cap.per}"
        return None

    def _cap_reached(self, cap, journey_id: str | None) -> datetime | None:
        """When the oldest email counting against ``cap`` (of ``journey_id``, or of every
        journey) leaves its window, if ``cap.max`` of them are in it now; None otherwise."""
        start = self.now - cap.per.approx
        recent = [
            s.at for s in self.state.sends
            if s.kind == "email" and s.at > start and (journey_id is None or s.journey_id == journey_id)
        ]
        if len(recent) < cap.max:
            return None
        recent.sort()
        return recent[len(recent) - cap.max] + cap.per.approx

    def _split(self, journey, enrollment, step: SplitStep) -> bool:
        bucket = split_bucket(self.contact.id, journey.id, step.id)
        if bucket < step.holdout:
            enrollment.holdout = True
            enrollment.variant[step.id] = "holdout"
            self._decide(journey, enrollment, step.id, "holdout", f"bucket {bucket} < holdout {step.holdout}",
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
        self._decide(journey, enrollment, step.id, "split", f"variant {chosen.name} (bucket {bucket})",
                     detail={"variant": chosen.name})
        enrollment.cursor = chosen.first
        return True

    def _update(self, journey, enrollment, step: UpdateStep) -> bool:
        changes = []
        for path, value in step.set.items():
            set_path(self.contact.attributes, path, value)
            changes.append(f"{path}={value!r}")
        if step.add_score:
            adjust = self.memory.setdefault("score_adjust", {})
            for name, points in step.add_score.items():
                adjust[name] = adjust.get(name, 0) + points
                changes.append(f"score {name} {points:+g}")
        if step.lifecycle_stage:
            self.contact.attributes["lifecycle_stage"] = step.lifecycle_stage
            changes.append(f"lifecycle_stage={step.lifecycle_stage}")
        self.invalidate(
            [attribute_key(path) for path in step.set] + [("score", name) for name in step.add_score]
            + (["lifecycle_stage"] if step.lifecycle_stage else [])
        )
        self._decide(journey, enrollment, step.id, "update", ", ".join(changes) or "no change",
                     detail={"set": dict(step.set), "add_score": dict(step.add_score)})
        enrollment.cursor = step.next
        if step.move_to:
            self._move(journey, enrollment, journey.stage(step.move_to), f"update step {step.id}")
        return True

    def _webhook(self, journey, enrollment, step: WebhookStep) -> bool:
        if enrollment.holdout:
            return self._skip(journey, enrollment, step, "holdout")
        key = send_key(enrollment, step.id)
        self.state.sends.append(SendRecord(key, self.contact.id, journey.id, journey.version, step.id, self.now, "webhook"))
        self._decide(journey, enrollment, step.id, "webhook", f"POST {step.url}", key=key, detail={
            "url": step.url, "payload": step.payload, "secret_env": step.secret_env,
            "attributes": self._attribute_snapshot(),
            "scores": {name: self.score(name) for name in self.project.scores},
        })
        enrollment.cursor = step.next
        return True


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


def set_path(attributes: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    target = attributes
    for part in parts[:-1]:
        nested = target.get(part)
        if not isinstance(nested, dict):
            nested = target[part] = {}
        target = nested
    target[parts[-1]] = value


JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def snapshot(attributes: Mapping[str, Any]) -> dict:
    """A deep-enough copy of the attributes as they are at the decision."""
    return {k: _snapshot_value(v) for k, v in attributes.items()}


def _snapshot_value(value: Any) -> Any:
    if type(value) in JSON_SCALARS:
        return value  # hot path: isinstance against typing.Mapping goes through the ABC machinery
    if isinstance(value, Mapping):
        return snapshot(value)
    return list(value) if isinstance(value, list) else value
