"""Step kinds: everything the runner knows about one kind of step, declared in one place.

A ``StepKind`` says how a step of that kind is built from YAML (``build``),
what it does when an enrollment reaches it (``execute``), what else
``journey validate`` checks in it (``check``), how a diagram labels and
draws it (``describe``, ``style``) and, for kinds added after the built-in
ones, the JSON Schema of its body (``schema``). Every consumer looks kinds up
here: the journey builder (``runner.core.build``), the engine, the validator
(``runner.language.schema`` and ``semantics``) and the diagrams
(``runner.review.graph``, ``mermaid``, ``dot``).

A new kind (SMS, say) is one ``register_step_kind(StepKind(...))`` next to
its ``Step`` subclass; docs/architecture.md ("How to add a step kind") walks
through it, and tests/test_step_kinds.py registers a toy kind end to end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.core.conditions import compile_condition, compile_where
from runner.core.durations import parse_duration
from runner.core.localtime import parse_hhmm
from runner.core.model import (
    BranchStep,
    EmailStep,
    ExitStep,
    SplitStep,
    Step,
    SuppressStep,
    UpdateStep,
    Variant,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
    WebhookStep,
    weekday_set,
)
from runner.core.steps import (
    execute_branch,
    execute_email,
    execute_exit,
    execute_split,
    execute_suppress,
    execute_update,
    execute_wait,
    execute_wait_for,
    execute_wait_until,
    execute_webhook,
)

if TYPE_CHECKING:
    from runner.core.model import Journey
    from runner.core.state import Enrollment
    from runner.core.steps import RunState

# builds a nested step list (its specs, a path segment) and returns the id of its first step
NestedSteps = Callable[[list[Any], str], "str | None"]


@dataclass(frozen=True)
class DiagramStyle:
    """How diagrams draw a kind's nodes: a Mermaid shape and style, a Graphviz shape and fill."""

    mermaid_shape: tuple[str, str] = ('["', '"]')
    mermaid_style: str = "fill:#ffffff,stroke:#9aa0a6"
    dot_shape: str = "box"
    dot_fill: str = "#ffffff"
    dot_style: str = "filled"


@dataclass(frozen=True)
class StepKind:
    """One kind of step, with everything each layer needs to know about it."""

    name: str  # the YAML key that selects it (`email:`, `wait:`, …) and Step.kind
    # (body under the key, the whole step mapping, the common Step fields, nested-list builder) -> the Step
    build: Callable[[Any, Mapping[str, Any], dict[str, Any], NestedSteps], Step]
    # (run, journey, enrollment, step) -> True to continue with the next step, False when it now waits
    execute: Callable[[RunState, Journey, Enrollment, Any], bool]
    style: DiagramStyle = DiagramStyle()
    # (step, its YAML mapping) -> the lines a diagram node shows; None: the diagrams' own wording (built-ins)
    describe: Callable[[Any, Mapping[str, Any]], list[str]] | None = None
    # the step's body -> problems `journey validate` reports (messages), beyond the schema's
    check: Callable[[Any], list[str]] | None = None
    # JSON Schema of the body; None for the built-in kinds (schemas/journey.schema.json has them)
    schema: Mapping[str, Any] | None = None
    needs_id: bool = True  # sends and decisions are keyed by step id: most kinds need one


STEP_KINDS: dict[str, StepKind] = {}  # name -> kind, in registration order (the YAML key's priority)


def register_step_kind(kind: StepKind) -> StepKind:
    """Make ``kind`` known to every layer (a later registration of the same name replaces it)."""
    STEP_KINDS[kind.name] = kind
    return kind


def unregister_step_kind(name: str) -> None:
    """Forget a kind (tests that register a toy kind clean up after themselves)."""
    STEP_KINDS.pop(name, None)


def registered_schemas() -> dict[str, Mapping[str, Any]]:
    """The body schemas of kinds added to the built-in ones (name -> schema)."""
    return {name: kind.schema for name, kind in STEP_KINDS.items() if kind.schema is not None}


# ---------------------------------------------------------------- the built-in kinds

def _build_email(body: Any, spec: Mapping[str, Any], common: dict[str, Any], nested: NestedSteps) -> Step:
    subject = body.get("subject", "")
    subjects = dict(subject) if isinstance(subject, Mapping) else {}
    if subjects:  # {en: "...", ja: "..."}: the delivery picks the contact's nearest locale
        subject = next(iter(subjects.values()))
    return EmailStep(**common, template=body["template"], subject=subject, subjects=subjects, sender=body.get("from"),
                     reply_to=body.get("reply_to"), text_template=body.get("text_template"),
                     topic=body.get("topic"))


def _build_wait_for(body: Any, spec: Mapping[str, Any], common: dict[str, Any], nested: NestedSteps) -> Step:
    return WaitForStep(
        **common, event=body["event"], where=compile_where(body.get("where")), timeout=parse_duration(body["timeout"]),
        on_event=nested(spec.get("on_event") or [], "on_event"), on_timeout=nested(spec.get("on_timeout") or [], "on_timeout"),
    )


def _build_branch(body: Any, spec: Mapping[str, Any], common: dict[str, Any], nested: NestedSteps) -> Step:
    cases = tuple(
        (compile_condition(case["if"]), nested(case.get("steps") or [], f"case{i}"))
        for i, case in enumerate(body.get("cases") or [])
    )
    return BranchStep(**common, cases=cases, otherwise=nested(body.get("else") or [], "else"))


def _build_split(body: Any, spec: Mapping[str, Any], common: dict[str, Any], nested: NestedSteps) -> Step:
    variants = tuple(Variant(v["name"], int(v["weight"]), nested(v.get("steps") or [], v["name"])) for v in body["variants"])
    return SplitStep(**common, variants=variants, holdout=int(body.get("holdout", 0)))


def _build_update(body: Any, spec: Mapping[str, Any], common: dict[str, Any], nested: NestedSteps) -> Step:
    return UpdateStep(**common, set=dict(body.get("set") or {}), add_score=dict(body.get("add_score") or {}),
                      move_to=body.get("stage"), lifecycle_stage=body.get("lifecycle_stage"))


_LIGHT = ('(["', '"])')
for _kind in (
    StepKind("email", _build_email, execute_email,
             DiagramStyle(('["', '"]'), "fill:#fff8e1,stroke:#f9a825", "box", "#fff8e1")),
    StepKind("wait", lambda body, spec, common, nested: WaitStep(**common, duration=parse_duration(body)), execute_wait,
             DiagramStyle(_LIGHT, "fill:#f1f3f4,stroke:#9aa0a6", "box", "#f1f3f4", "rounded,filled"), needs_id=False),
    StepKind("wait_until",
             lambda body, spec, common, nested: WaitUntilStep(**common, at=parse_hhmm(body["time"]), days=weekday_set(body.get("days"))),
             execute_wait_until, DiagramStyle(_LIGHT, "fill:#f1f3f4,stroke:#9aa0a6", "box", "#f1f3f4", "rounded,filled"), needs_id=False),
    StepKind("wait_for", _build_wait_for, execute_wait_for,
             DiagramStyle(('{{"', '"}}'), "fill:#f3e8fd,stroke:#9334e6", "hexagon", "#f3e8fd")),
    StepKind("branch", _build_branch, execute_branch,
             DiagramStyle(('{"', '"}'), "fill:#f3e8fd,stroke:#9334e6", "diamond", "#f3e8fd")),
    StepKind("split", _build_split, execute_split,
             DiagramStyle(('{{"', '"}}'), "fill:#fce8e6,stroke:#d93025", "hexagon", "#fce8e6")),
    StepKind("update", _build_update, execute_update,
             DiagramStyle(('[/"', '"/]'), "fill:#e6f4ea,stroke:#1e8e3e", "parallelogram", "#e6f4ea")),
    StepKind("webhook",
             lambda body, spec, common, nested: WebhookStep(**common, url=body["url"], payload=body.get("payload"),
                                                             secret_env=body.get("secret_env")),
             execute_webhook, DiagramStyle(('[["', '"]]'), "fill:#e6f4ea,stroke:#1e8e3e", "box3d", "#e6f4ea")),
    StepKind("exit",
             lambda body, spec, common, nested: ExitStep(**common, reason=str(body) if body not in (None, True) else "exit_step"),
             execute_exit, DiagramStyle(('(("', '"))'), "fill:#fce8e6,stroke:#d93025", "doublecircle", "#fce8e6"),
             needs_id=False),
    StepKind("suppress",
             lambda body, spec, common, nested: SuppressStep(**common, reason=str(body["reason"])),
             execute_suppress, DiagramStyle(('[/"', '"/]'), "fill:#fce8e6,stroke:#d93025", "parallelogram", "#fce8e6"),
             describe=lambda step, spec: [f"suppress: {step.reason}"], needs_id=False),
):
    register_step_kind(_kind)
