"""One neutral picture of a journey: nodes, edges and stage groups.

``mermaid`` and ``dot`` only print this graph, so both diagrams always show
the same thing. The graph is built from the compiled ``Journey`` (its steps
are flattened with ``next`` pointers, so every path's continuation is already
resolved) plus the raw mapping for the marketer's own wording.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.core.model import (
    BranchStep,
    EmailStep,
    ExitStep,
    Journey,
    SplitStep,
    Step,
    UpdateStep,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
    WebhookStep,
)
from runner.core.stepkinds import STEP_KINDS
from runner.review import describe


@dataclass
class Node:
    id: str  # safe for Mermaid and DOT: [A-Za-z0-9_], prefixed, never a keyword
    kind: str  # entry email wait wait_until wait_for branch split update webhook exit end goal rule
    lines: list[str]  # label lines, plain text (renderers escape)
    stage: str | None = None  # the stage group it is drawn in (None: outside every stage)


@dataclass
class Edge:
    source: str
    target: str
    label: str = ""
    dotted: bool = False


@dataclass
class JourneyGraph:
    journey_id: str
    title: str
    stages: list[tuple[str, str]]  # (group id, title) in file order
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def add(self, node: Node) -> Node:
        self.nodes[node.id] = node
        return node

    def link(self, source: str, target: str, label: str = "", dotted: bool = False) -> None:
        self.edges.append(Edge(source, target, label, dotted))

    def in_stage(self, group: str | None) -> list[Node]:
        return [node for node in self.nodes.values() if node.stage == group]


_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_id(prefix: str, name: str) -> str:
    """``prefix_name`` with every other character as ``_xx`` (hex): unique and keyword-proof."""
    return f"{prefix}_" + _UNSAFE.sub(lambda m: f"_{ord(m.group()):x}_", name)


def raw_steps(raw: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """step id -> (stage id, raw step mapping), with the model's positional ids for unnamed steps."""
    found: dict[str, tuple[str, Mapping[str, Any]]] = {}

    def walk(stage_id: str, specs: Any, path: str) -> None:
        if not isinstance(specs, list):
            return
        for index, spec in enumerate(specs):
            if not isinstance(spec, Mapping):
                continue
            position = f"{path}.{index}" if path else str(index)
            step_id = spec.get("id") or f"{stage_id}.{position}"
            found[step_id] = (stage_id, spec)
            for nested_path, nested in _children(spec, position):
                walk(stage_id, nested, nested_path)

    for stage in raw.get("stages") or []:
        if isinstance(stage, Mapping):
            walk(str(stage.get("id")), stage.get("steps"), "")
    return found


def steps_in_file_order(journey: Journey) -> list[Step]:
    """The journey's steps as the file lists them (the model builds each list back to front)."""
    order = {step_id: index for index, step_id in enumerate(raw_steps(journey.raw or {}))}
    return sorted(journey.steps.values(), key=lambda step: order.get(step.id, len(order)))


def _children(spec: Mapping[str, Any], position: str) -> Iterator[tuple[str, Any]]:
    """The nested step lists of a step, with the path segment the model builder uses."""
    if "wait_for" in spec:
        yield f"{position}.on_event", spec.get("on_event")
        yield f"{position}.on_timeout", spec.get("on_timeout")
    branch = spec.get("branch")
    if isinstance(branch, Mapping):
        for i, case in enumerate(branch.get("cases") or []):
            if isinstance(case, Mapping):
                yield f"{position}.case{i}", case.get("steps")
        yield f"{position}.else", branch.get("else")
    split = spec.get("split")
    if isinstance(split, Mapping):
        for variant in split.get("variants") or []:
            if isinstance(variant, Mapping):
                yield f"{position}.{variant.get('name')}", variant.get("steps")


def _step_lines(step: Step, spec: Mapping[str, Any]) -> list[str]:
    """What a step does, in a few short lines (as its kind describes it, else the built-in wording)."""
    kind = STEP_KINDS.get(step.kind)
    if kind is not None and kind.describe is not None:
        lines = kind.describe(step, spec)
    elif isinstance(step, EmailStep):
        lines = [f"email {step.id}", f"subject: {step.subject}", f"template: {step.template}"]
    elif isinstance(step, WaitStep):
        lines = [f"wait {step.duration}"]
    elif isinstance(step, WaitUntilStep):
        lines = [f"{describe.wait_until_text(spec.get('wait_until'))}"]
    elif isinstance(step, WaitForStep):
        body = spec.get("wait_for") or {}
        lines = [f"{step.id}: wait for {step.event}{describe.where_text(body.get('where'))}",
                 f"timeout {step.timeout}"]
    elif isinstance(step, BranchStep):
        lines = [f"{step.id}: branch"]
    elif isinstance(step, SplitStep):
        lines = [f"{step.id}: split"]
    elif isinstance(step, UpdateStep):
        lines = [f"{step.id}: {describe.update_text(spec.get('update'))}"]
    elif isinstance(step, WebhookStep):
        lines = [f"{step.id}: webhook", f"POST {step.url}"]
    elif isinstance(step, ExitStep):
        lines = [f"exit: {step.reason}"]
    else:  # pragma: no cover - every kind is listed above
        lines = [step.id]
    if spec.get("if") is not None:
        lines.append(f"only if {describe.condition_text(spec['if'])}")
    return lines


class _Builder:
    def __init__(self, journey: Journey):
        self.journey = journey
        self.raw = journey.raw or {}
        self.specs = raw_steps(self.raw)
        self.single_stage = len(journey.stages) == 1
        self.graph = JourneyGraph(
            journey.id, f"{journey.name} ({journey.id} v{journey.version})",
            [(safe_id("s", stage.id), f"Stage: {stage.name}") for stage in journey.stages],
        )

    def build(self) -> JourneyGraph:
        raw_stages = [s for s in self.raw.get("stages") or [] if isinstance(s, Mapping)]
        for stage, raw_stage in zip(self.journey.stages, raw_stages, strict=False):
            group = safe_id("s", stage.id)
            entry = self.graph.add(Node(
                safe_id("entry", stage.id), "entry",
                [f"enter {stage.id}", describe.entry_text(raw_stage.get("entry"))]
                + ([f"priority {stage.priority}"] if stage.priority else []),
                group,
            ))
            self.graph.link(entry.id, self._target(stage.first, stage.id))
        for step in steps_in_file_order(self.journey):
            self._step(step)
        self._leaving()
        return self.graph

    def _target(self, step_id: str | None, stage_id: str) -> str:
        """The node a path continues to: a step, or the stage's end."""
        if step_id is not None:
            return safe_id("step", step_id)
        end_id = safe_id("end", stage_id)
        if end_id not in self.graph.nodes:
            text = ["completed (exits)"] if self.single_stage else [f"stays in {stage_id}", "until another stage's entry"]
            self.graph.add(Node(end_id, "end", text, safe_id("s", stage_id)))
        return end_id

    def _step(self, step: Step) -> None:
        spec = self.specs.get(step.id, ("", {}))[1]
        node = self.graph.add(Node(safe_id("step", step.id), step.kind, _step_lines(step, spec), safe_id("s", step.stage)))
        def following() -> str:
            return self._target(step.next, step.stage)

        if isinstance(step, BranchStep):
            raw_cases = (spec.get("branch") or {}).get("cases") or []
            for index, (_, first) in enumerate(step.cases):
                case = raw_cases[index] if index < len(raw_cases) else {}
                self.graph.link(node.id, self._target(first, step.stage), f"if {describe.condition_text(case.get('if'))}")
            self.graph.link(node.id, self._target(step.otherwise, step.stage), "else")
        elif isinstance(step, SplitStep):
            for variant in step.variants:
                self.graph.link(node.id, self._target(variant.first, step.stage), f"{variant.name} {variant.weight}%")
            if step.holdout:
                self.graph.link(node.id, following(), f"holdout {step.holdout}% (no sends)", dotted=True)
        elif isinstance(step, WaitForStep):
            self.graph.link(node.id, self._target(step.on_event, step.stage), f"on {step.event}")
            self.graph.link(node.id, self._target(step.on_timeout, step.stage), f"timeout {step.timeout}")
        elif isinstance(step, ExitStep):
            pass  # the exit node is the end of this path
        elif isinstance(step, UpdateStep) and step.move_to:
            self.graph.link(node.id, safe_id("entry", step.move_to), f"move to {step.move_to}")
        else:
            self.graph.link(node.id, following())
        # A step whose `if` is false is skipped. Linear steps already continue at
        # `following`; steps that fork or leave need the skip drawn.
        forks = isinstance(step, (BranchStep, SplitStep, WaitForStep, ExitStep))
        moves = isinstance(step, UpdateStep) and step.move_to is not None
        if spec.get("if") is not None and (forks or moves):
            self.graph.link(node.id, following(), "skipped", dotted=True)

    def _leaving(self) -> None:
        """Exit rules and the goal: they apply at any step, so they stand apart."""
        for index, spec in enumerate(self.raw.get("exit") or []):
            self.graph.add(Node(safe_id("rule", f"exit{index}"), "rule",
                                [f"exit:{index}", f"leaves when {describe.condition_text(spec)}"]))
        if self.raw.get("goal"):
            self.graph.add(Node("goal_node", "goal", ["goal", describe.goal_text(self.raw["goal"])]))


def build_graph(journey: Journey) -> JourneyGraph:
    """The journey's picture: a group per stage, a node per step, labelled edges for every path."""
    return _Builder(journey).build()
