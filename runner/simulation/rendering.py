"""Simulated sends built the way production builds them: subject, HTML, text, headers.

A body template that fails for one contact (an attribute it lacks, a filter
given ``None``) makes production record that send as failed; a simulation
that rendered only subjects showed it as sent. ``SendRenderer`` builds each
send and webhook with production's own code (``Delivery.draft``, all of
``Delivery.build`` but the MIME encoding of the bodies: the
sandboxed renderer of ``runner.delivery.render``, the message builder, the
same context), with the development unsubscribe secret and no transport, and
turns every failure into a ``RenderFailure`` naming the contact, the step
and the template file:line. Nothing is delivered; the engine stays pure (it
only decides); rendering happens here, after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.core.engine import Decision
from runner.core.model import Journey, Project
from runner.core.vocabulary import SEND_ACTIONS
from runner.language.locales import localization_of

SIMULATED_TRANSPORT = "memory:"  # a development transport: the dev unsubscribe secret, nothing delivered


@dataclass(frozen=True)
class RenderFailure:
    """A simulated send that production could not build, and why."""

    contact: str
    journey: str
    step: str
    at: datetime
    key: str | None
    where: str  # templates/onboarding/nudge.html:12, "subject", or "" (not a template: an address, a header)
    message: str

    @property
    def reason(self) -> str:
        """What a timeline shows for the failed send."""
        return f"cannot be rendered: {self.where}: {self.message}" if self.where else f"cannot be built: {self.message}"

    def describe(self) -> str:
        at = self.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"contact {self.contact}, step {self.journey}.{self.step} at {at}: {self.reason}"


class SendRenderer:
    """Builds simulated sends like production; one per simulation (compiled templates are reused).

    ``once_per_shape``: build only the first send of each step for each
    *context shape* (the attribute and score names and their value types) and
    reuse its outcome for the others. That catches missing attributes and
    type errors but not a failure that depends on a value, so it is for
    measuring large audiences (benchmarks), never for ``journey test``.
    """

    def __init__(self, project: Project, journeys: Iterable[Journey], *, once_per_shape: bool = False):
        from runner.delivery.dispatch import Delivery

        self.project = project
        self.journeys = {(j.id, j.version): j for j in journeys}
        self.delivery = Delivery(project, SIMULATED_TRANSPORT, connect=False)
        self.once_per_shape = once_per_shape
        self._locale_attribute = localization_of(project.raw).attribute  # its value picks the templates
        self._outcomes: dict[tuple, RenderFailure | None] = {}
        self.built = 0  # sends actually built (fewer than asked for with once_per_shape)

    def build(self, decision: Decision) -> tuple[Any, RenderFailure | None]:
        """(the Outgoing production would deliver, None) or (None, why it cannot be built).

        An email's Outgoing holds its message as a draft (``Delivery.draft``): rendered,
        headers built and checked, bodies not MIME-encoded (nothing is delivered). It
        fails exactly where production's ``Delivery.build`` fails.

        With ``once_per_shape`` a send whose shape was already built returns
        (None, None) when that one succeeded.
        """
        if self.once_per_shape:
            shape = _send_shape(decision, self._locale_attribute)
            if shape in self._outcomes:
                known = self._outcomes[shape]
                return None, known and _for_decision(known, decision)
        journey = self.journeys.get((decision.journey, decision.version))
        outgoing, failure = None, None
        if journey is None:
            failure = _failure(decision, "", f"journey {decision.journey} v{decision.version} is not simulated")
        else:
            self.built += 1
            try:
                outgoing = self.delivery.draft(decision, journey)
            except Exception as error:  # noqa: BLE001 - untrusted templates and data: production records it as failed
                failure = self._describe(decision, error)
        if self.once_per_shape:
            self._outcomes[_send_shape(decision, self._locale_attribute)] = failure
        return outgoing, failure

    def failures(self, decisions: Iterable[Decision]) -> list[RenderFailure]:
        """Every send and webhook among ``decisions`` that cannot be built, in order."""
        found = []
        for decision in decisions:
            if decision.action in SEND_ACTIONS:
                _, failure = self.build(decision)
                if failure is not None:
                    found.append(failure)
        return found

    def _describe(self, decision: Decision, error: Exception) -> RenderFailure:
        from runner.delivery.render import STRING_TEMPLATE, RenderError

        if not isinstance(error, RenderError):
            return _failure(decision, "", str(error) or type(error).__name__)
        if error.template == STRING_TEMPLATE:
            where = "subject" if decision.action == "send" else "payload"
        else:
            where = self._template_path(error.template)
            if error.line:
                where += f":{error.line}"
        return _failure(decision, where, error.detail)

    def _template_path(self, template: str) -> str:
        """``templates/onboarding/nudge.html``: relative to the project when the file is inside it."""
        path = Path(self.project.templates_path) / template
        try:
            return os.path.relpath(path, self.project.root).replace(os.sep, "/")
        except ValueError:  # another drive (Windows)
            return str(path)


def _failure(decision: Decision, where: str, message: str) -> RenderFailure:
    return RenderFailure(decision.contact, decision.journey, decision.step or "", decision.at, decision.key, where,
                         message)


def _for_decision(failure: RenderFailure, decision: Decision) -> RenderFailure:
    return RenderFailure(decision.contact, failure.journey, failure.step, decision.at, decision.key, failure.where,
                         failure.message)


def _send_shape(decision: Decision, locale_attribute: str | None = None) -> tuple:
    """The send's step, its context's shape, and its locale's value (a Japanese reader gets
    other templates than an English one of the same shape)."""
    detail = decision.detail
    attributes = detail.get("attributes") or {}
    locale = attributes.get(locale_attribute) if locale_attribute and isinstance(attributes, dict) else None
    return (decision.journey, decision.version, decision.step, repr(locale), _shape(detail.get("attributes")),
            _shape(detail.get("scores")), _shape(detail.get("to")), _shape(detail.get("timezone")))


def _shape(value: Any) -> Any:
    """The names and value types of a context value, without the values (nested mappings
    followed; lists only by type). Key order counts: at worst the same shape is built twice."""
    if type(value) is dict:
        return tuple([(key, _shape(item) if type(item) is dict else type(item)) for key, item in value.items()])
    return type(value)
