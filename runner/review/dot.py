"""A journey as a Graphviz DOT digraph (``dot -Tsvg journey.dot``).

Same picture as the Mermaid diagram (both print ``graph.JourneyGraph``): a
``cluster_`` subgraph per stage, one node per step, labelled edges for every
path. Labels are DOT quoted strings with ``\\`` and ``"`` escaped, so a
subject line cannot break out of its label.
"""

from __future__ import annotations

from runner.core.model import Journey
from runner.review.graph import JourneyGraph, Node, build_graph

_SHAPES = {
    "entry": "cds", "email": "box", "wait": "box", "wait_until": "box", "wait_for": "hexagon",
    "branch": "diamond", "split": "hexagon", "update": "parallelogram", "webhook": "box3d",
    "exit": "doublecircle", "end": "ellipse", "goal": "doublecircle", "rule": "note",
}
_FILLS = {
    "entry": "#e8f0fe", "email": "#fff8e1", "wait": "#f1f3f4", "wait_until": "#f1f3f4", "wait_for": "#f3e8fd",
    "branch": "#f3e8fd", "split": "#fce8e6", "update": "#e6f4ea", "webhook": "#e6f4ea", "exit": "#fce8e6",
    "end": "#ffffff", "goal": "#e6f4ea", "rule": "#fce8e6",
}


def quote(text: str) -> str:
    """A DOT quoted string (backslashes and quotes escaped, line breaks as ``\\n``)."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r", "").replace("\n", "\\n")
    return f'"{escaped}"'


def _node(node: Node) -> str:
    label = quote("\n".join(" ".join(line.split()) for line in node.lines))
    shape = _SHAPES.get(node.kind, "box")
    style = "rounded,filled" if node.kind in ("wait", "wait_until") else "filled"
    return f'{node.id} [label={label}, shape={shape}, style="{style}", fillcolor="{_FILLS.get(node.kind, "#ffffff")}"];'


def graph_dot(graph: JourneyGraph) -> str:
    """DOT text for an already built graph."""
    out = [
        f"digraph {quote(graph.journey_id)} {{",
        f"  label={quote(graph.title)};",
        '  labelloc="t";',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for group, title in graph.stages:
        out.append(f"  subgraph cluster_{group} {{")
        out.append(f"    label={quote(title)};")
        out.extend(f"    {_node(node)}" for node in graph.in_stage(group))
        out.append("  }")
    outside = graph.in_stage(None)
    if outside:
        out.append("  subgraph cluster_leaving {")
        out.append(f"    label={quote('Leaves the journey at any step')};")
        out.extend(f"    {_node(node)}" for node in outside)
        out.append("  }")
    for edge in graph.edges:
        attributes = []
        if edge.label:
            attributes.append(f"label={quote(edge.label)}")
        if edge.dotted:
            attributes.append("style=dashed")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        out.append(f"  {edge.source} -> {edge.target}{suffix};")
    out.append("}")
    return "\n".join(out) + "\n"


def journey_dot(journey: Journey) -> str:
    """The journey as a Graphviz digraph, one cluster per stage."""
    return graph_dot(build_graph(journey))
