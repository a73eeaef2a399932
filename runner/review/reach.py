"""How many test contacts reach each part of a journey in the report's simulation, drawn into its diagram.

A reviewer reads the diagram to see what a change does; the counts say which
paths the test contacts actually walk, and the faded, dashed boxes show the
paths none of them walk (a branch nobody takes, a step its ``if:`` skips for
every contact), which is where a change goes untested.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from runner.core.engine import Decision
from runner.core.model import ExitStep, Journey
from runner.review.graph import JourneyGraph, build_graph, safe_id
from runner.review.mermaid import graph_mermaid, report_columns

UNREACHED_STYLE = "stroke-dasharray:5 4,opacity:0.55"


@dataclass
class NodeReach:
    """The test contacts that reached a diagram node, and those for whom the step was skipped (``if:`` false)."""

    contacts: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)

    def line(self) -> str:
        count = len(self.contacts)
        text = f"{count} test contact{'' if count == 1 else 's'}"
        if self.skipped:
            text += f" · {len(self.skipped)} skipped"
        return text


def node_reach(journey: Journey, decisions: Iterable[Decision]) -> dict[str, NodeReach]:
    """Diagram node id -> the test contacts that reached it (entries, steps, exit steps and rules, the goal)."""
    reach: dict[str, NodeReach] = defaultdict(NodeReach)
    exit_steps = {(step.stage, step.reason): safe_id("step", step.id)
                  for step in journey.steps.values() if isinstance(step, ExitStep)}
    single_stage = len(journey.stages) == 1
    for decision in decisions:
        if decision.journey != journey.id:
            continue
        who = decision.contact
        if decision.action in ("enter", "move") and decision.stage is not None:
            reach[safe_id("entry", decision.stage)].contacts.add(who)
        elif decision.action == "skip" and decision.step is not None:
            reach[safe_id("step", decision.step)].skipped.add(who)
        elif decision.step is not None:
            reach[safe_id("step", decision.step)].contacts.add(who)
        elif decision.action == "goal":
            reach["goal_node"].contacts.add(who)
        elif decision.action == "exit":
            for node in _exit_nodes(decision, exit_steps, single_stage):
                reach[node].contacts.add(who)
    return dict(reach)


def _exit_nodes(decision: Decision, exit_steps: dict[tuple[str, str], str], single_stage: bool) -> list[str]:
    """The nodes an exit decision stands for: an exit step, an exit rule, or a one-stage journey's end."""
    reason = decision.reason
    if reason.startswith("exit:"):
        return [safe_id("rule", reason.split(" ", 1)[0].replace(":", ""))]
    if reason == "completed" and single_stage and decision.stage is not None:
        return [safe_id("end", decision.stage)]
    step = exit_steps.get((decision.stage or "", reason))
    return [step] if step is not None else []


def reached_graph(journey: Journey, decisions: Iterable[Decision]) -> tuple[JourneyGraph, list[str]]:
    """The journey's graph with a count line on every node the simulation can reach; and the nodes no contact ran."""
    graph = build_graph(journey)
    reach = node_reach(journey, decisions)
    unreached = []
    for node in graph.nodes.values():
        if node.kind == "end" and len(journey.stages) > 1:
            continue  # "stays in STAGE": no decision marks arriving there
        found = reach.get(node.id, NodeReach())
        node.lines.append(found.line())
        if not found.contacts:  # never reached, or skipped by every contact: its email was never tried
            unreached.append(node.id)
    return graph, unreached


def reached_mermaid(journey: Journey, decisions: Iterable[Decision]) -> str:
    """The report's diagram: counts of test contacts on every node, unreached nodes faded and dashed."""
    graph, unreached = reached_graph(journey, decisions)
    text = graph_mermaid(graph, report_columns(graph))
    if unreached:
        text += f"  classDef unreached {UNREACHED_STYLE}\n  class {','.join(unreached)} unreached\n"
    return text
