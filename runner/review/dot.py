"""A journey as a Graphviz DOT digraph (``dot -Tsvg journey.dot``).

Same picture as the Mermaid diagram (both print ``graph.JourneyGraph``): a
``cluster_`` subgraph per stage, one node per step, labelled edges for every
path. Labels are DOT quoted strings with ``\\`` and ``"`` escaped, so a
subject line cannot break out of its label.
"""

from __future__ import annotations

from runner.core.model import Journey
from runner.core.stepkinds import STEP_KINDS
from runner.review.graph import JourneyGraph, Node, build_graph

# nodes that are not steps (steps draw as their kind says: runner.core.stepkinds)
_SHAPES = {"entry": "cds", "end": "ellipse", "goal": "doublecircle", "rule": "note"}
_FILLS = {"entry": "#e8f0fe", "end": "#ffffff", "goal": "#e6f4ea", "rule": "#fce8e6"}


def quote(text: str) -> str:
    """A DOT quoted string (backslashes and quotes escaped, line breaks as ``\\n``)."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r", "").replace("\n", "\\n")
    return f'"{escaped}"'


def _node(node: Node) -> str:
    label = quote("\n".join(" ".join(line.split()) for line in node.lines))
    kind = STEP_KINDS.get(node.kind)
    if kind is not None:
        shape, style, fill = kind.style.dot_shape, kind.style.dot_style, kind.style.dot_fill
    else:
        shape, style, fill = _SHAPES.get(node.kind, "box"), "filled", _FILLS.get(node.kind, "#ffffff")
    return f'{node.id} [label={label}, shape={shape}, style="{style}", fillcolor="{fill}"];'


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
