"""A journey as a Mermaid flowchart that renders on GitHub and in the HTML report.

Mermaid's syntax has pitfalls for text written by marketers: quotes, ``<``,
``>``, ``#``, ``;``, backticks and pipes end or change a label, and node ids
like ``end`` (or ones starting with ``o``/``x`` after a link) change the
syntax. So every label is quoted with each risky character written as a
Mermaid entity code (``#quot;``, ``#35;``), and every node id comes from
``graph.safe_id`` (prefixed, ``[A-Za-z0-9_]`` only).
"""

from __future__ import annotations

from runner.core.model import Journey
from runner.core.stepkinds import STEP_KINDS
from runner.review.graph import JourneyGraph, Node, build_graph

# character -> Mermaid entity code (decoded by Mermaid back to the character)
_ENTITIES = {
    '"': "#quot;", "<": "#lt;", ">": "#gt;", "#": "#35;", ";": "#59;", "`": "#96;", "&": "#amp;",
    "|": "#124;", "{": "#123;", "}": "#125;", "[": "#91;", "]": "#93;", "\\": "#92;",
}
_TRANSLATE = str.maketrans(_ENTITIES)
WRAP_FROM_BOXES = 4  # the report stacks a journey's boxes in two columns from this many on (see report_columns)
MAX_LINE = 80  # longer label lines are cut with an ellipsis: diagrams are for overview

# node kind -> (opening, closing) of its Mermaid shape; steps draw as their kind says (runner.core.stepkinds)
_SHAPES = {
    "entry": ('>"', '"]'),
    "end": ('(["', '"])'),
    "goal": ('(("', '"))'),
    "rule": ('["', '"]'),
}
_STYLES = {
    "entry": "fill:#e8f0fe,stroke:#1a73e8",
    "end": "fill:#ffffff,stroke:#9aa0a6",
    "goal": "fill:#e6f4ea,stroke:#1e8e3e",
    "rule": "fill:#fce8e6,stroke:#d93025",
}


def escape(text: str) -> str:
    """Text safe inside a quoted Mermaid label (one line)."""
    text = " ".join(str(text).split())
    if len(text) > MAX_LINE:
        text = text[: MAX_LINE - 1] + "…"
    return text.translate(_TRANSLATE)


def _label(lines: list[str]) -> str:
    return "<br/>".join(escape(line) for line in lines if line)


def _node(node: Node) -> str:
    kind = STEP_KINDS.get(node.kind)
    opening, closing = kind.style.mermaid_shape if kind else _SHAPES.get(node.kind, ('["', '"]'))
    return f"{node.id}{opening}{_label(node.lines)}{closing}"


def graph_mermaid(graph: JourneyGraph, columns: int | None = None) -> str:
    """Mermaid text for an already built graph; ``columns``: stack the stage boxes in that many columns.

    Mermaid lays unconnected stage boxes side by side, so a journey of many
    stages is drawn wide and scaled down until its text cannot be read. An
    invisible link (``~~~``) from each box to the one ``columns`` further on
    stacks them instead, which keeps the drawing narrow and the text full size.
    """
    out = ["flowchart TD"]
    for group, title in graph.stages:
        out.append(f'  subgraph {group}["{escape(title)}"]')
        out.append("    direction TB")
        out.extend(f"    {_node(node)}" for node in graph.in_stage(group))
        out.append("  end")
    outside = graph.in_stage(None)
    if outside:
        out.append('  subgraph leaving["Leaves the journey at any step"]')
        out.extend(f"    {_node(node)}" for node in outside)
        out.append("  end")
    groups = [group for group, _ in graph.stages] + (["leaving"] if outside else [])
    for edge in graph.edges:
        arrow = "-.->" if edge.dotted else "-->"
        label = f'|"{escape(edge.label)}"|' if edge.label else ""
        out.append(f"  {edge.source} {arrow}{label} {edge.target}")
    if columns:
        out.extend(f"  {above} ~~~ {below}" for above, below in zip(groups, groups[columns:], strict=False))
    used = sorted({node.kind for node in graph.nodes.values()})
    for kind in used:
        step_kind = STEP_KINDS.get(kind)
        out.append(f"  classDef k_{kind} {step_kind.style.mermaid_style if step_kind else _STYLES.get(kind, 'fill:#fff')}")
    for kind in used:
        ids = ",".join(node.id for node in graph.nodes.values() if node.kind == kind)
        out.append(f"  class {ids} k_{kind}")
    return "\n".join(out) + "\n"


def journey_mermaid(journey: Journey, columns: int | None = None) -> str:
    """The journey as a Mermaid flowchart (``flowchart TD``), one subgraph per stage."""
    return graph_mermaid(build_graph(journey), columns)


def report_columns(graph: JourneyGraph) -> int | None:
    """How many columns the report stacks a journey's boxes in: two from four boxes on, else Mermaid's layout."""
    boxes = len(graph.stages) + (1 if graph.in_stage(None) else 0)
    return 2 if boxes >= WRAP_FROM_BOXES else None
