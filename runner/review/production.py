"""The report's production part (``journey report --db``): what each deployed version did.

Beside the simulated figures, per deployed journey version: its diagram with the
production counts written into every step, the funnel as a chart, and the split
variants and the holdout with their 95% intervals (``runner.production.stats``).
Charts are drawn by Chart.js, copied next to the page from ``assets/`` like
Mermaid, from data in each canvas's ``data-chart`` attribute: no network, and
the page works from ``file://``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape

from runner.core.model import EmailStep, Journey, WebhookStep
from runner.production.significance import Comparison
from runner.production.stats import StepFigures, VersionStats
from runner.production.statstext import percent
from runner.review.graph import build_graph, safe_id, steps_in_file_order
from runner.review.mermaid import graph_mermaid, report_columns

CHART_JS = "chart.umd.min.js"
# Draws every canvas.stats-chart from its data-chart JSON; body[data-charts] says when done.
CHART_SCRIPT = """
(function () {
  try {
    document.querySelectorAll('canvas.stats-chart').forEach(function (canvas) {
      var spec = JSON.parse(canvas.dataset.chart);
      new Chart(canvas, {type: 'bar', data: {labels: spec.labels, datasets: [{label: spec.label, data: spec.values,
        backgroundColor: spec.color}]}, options: {indexAxis: spec.horizontal ? 'y' : 'x', animation: false,
        responsive: false, plugins: {legend: {display: false}}, scales: {x: {beginAtZero: true}, y: {beginAtZero: true}}}});
    });
    document.body.dataset.charts = 'done';
  } catch (error) {
    document.body.dataset.charts = 'failed';
    console.error('charts: ' + error);
  }
})();
"""
STYLE = """
.production{border-top:2px solid #1a73e8;margin-top:16px;padding-top:4px}
.production .sentence{font-weight:600}
canvas.stats-chart{max-width:100%}
"""


def production_section(journey: Journey, stats: VersionStats) -> str:
    """One deployed version's production figures, as an HTML fragment."""
    entered = stats.entered
    parts = [f'<div class="production" id="prod-{escape(journey.id)}-v{journey.version}">',
             f"<h3>Production: v{journey.version}</h3>",
             f"<p>Entered <b>{entered}</b>"
             + (f"; goal ({escape(stats.goal)}) reached by <b>{stats.goals}</b> ({percent(stats.goal_rate)})"
                if stats.goal else "")
             + (f"; exited: {escape(', '.join(f'{r} {n}' for r, n in sorted(stats.exits.items())))}"
                if stats.exits else "") + ".</p>",
             '<h4>Diagram with production counts</h4>',
             f'<div class="scroll"><pre class="mermaid">{escape(counted_mermaid(journey, stats))}</pre></div>',
             "<h4>Funnel</h4>", _funnel_chart(journey, stats)]
    parts.append(_variants(stats))
    parts.append("</div>")
    return "".join(parts)


def counted_mermaid(journey: Journey, stats: VersionStats) -> str:
    """The journey's Mermaid diagram with each step's production counts in its label."""
    graph = build_graph(journey)
    for step in stats.steps:
        node = graph.nodes.get(safe_id("step", step.id))
        if node is not None:
            node.lines.append(_count_line(step, journey))
    for node in graph.nodes.values():
        if node.kind == "rule":  # exit:<index>: the exits whose reason starts so
            prefix = node.lines[0] + " "
            node.lines.append(f"exited {sum(n for reason, n in stats.exits.items() if reason.startswith(prefix))}")
        elif node.kind == "end" and "completed" in stats.exits:
            node.lines.append(f"completed {stats.exits['completed']}")
    goal = graph.nodes.get("goal_node")
    if goal is not None:
        goal.lines.append(f"reached {stats.goals} ({percent(stats.goal_rate)})")
    entry = graph.nodes.get(safe_id("entry", journey.stages[0].id))  # entries of every stage, on the first
    if entry is not None:
        entry.lines.append(f"entered {stats.entered}")
    return graph_mermaid(graph, report_columns(graph))


def _count_line(step: StepFigures, journey: Journey) -> str:
    kind = journey.steps[step.id]
    text = f"ran {step.reached} ({percent(step.rate)})"
    if isinstance(kind, EmailStep | WebhookStep):
        text += f" · sent {step.sent}"
        skipped = sum(step.skipped.values())
        if skipped:
            text += f" · skipped {skipped}"
        if step.failed:
            text += f" · failed {step.failed}"
    return text


def chart(label: str, labels: list[str], values: Sequence[float], color: str, horizontal: bool = True,
          height: int | None = None) -> str:
    """A canvas Chart.js draws on load (see ``CHART_SCRIPT``)."""
    spec = {"label": label, "labels": labels, "values": values, "color": color, "horizontal": horizontal}
    height = height or max(120, 28 * len(labels) + 40)
    return (f'<canvas class="stats-chart" width="720" height="{height}" role="img" aria-label="{escape(label)}" '
            f'data-chart="{escape(json.dumps(spec), quote=True)}"></canvas>')


def _funnel_chart(journey: Journey, stats: VersionStats) -> str:
    """Entered, each step's runs in file order, then the goal."""
    shown = {step.id: step for step in stats.steps}
    labels, values = ["entered"], [stats.entered]
    for step in steps_in_file_order(journey):
        if step.id in shown:
            labels.append(f"{step.kind} {step.id}")
            values.append(shown[step.id].reached)
    if stats.goal:
        labels.append("goal reached")
        values.append(stats.goals)
    return chart(f"{journey.id} v{journey.version} funnel", labels, values, "#1a73e8")


def _variants(stats: VersionStats) -> str:
    if not stats.variants:
        return ""
    rows = "".join(
        f"<tr><td>{escape(v.split)}</td><td>{escape(v.name)}</td><td class=\"num\">{v.contacts}</td>"
        f"<td class=\"num\">{v.conversions if stats.goal else '-'}</td>"
        f"<td class=\"num\">{percent(v.rate) if stats.goal else '-'}</td></tr>" for v in stats.variants)
    parts = ["<h4>Variants</h4>",
             "<table class=\"variants\"><thead><tr><th>split</th><th>variant</th><th>contacts</th>"
             f"<th>converted</th><th>rate</th></tr></thead><tbody>{rows}</tbody></table>"]
    if not stats.goal:
        parts.append("<p>No goal: nothing to convert to, so no comparison is made.</p>")
        return "".join(parts)
    parts.append(chart(f"{stats.journey} v{stats.version} conversion by variant (%)",
                       [f"{v.split}: {v.name}" for v in stats.variants],
                       [round(100 * (v.rate or 0), 2) for v in stats.variants], "#f9a825"))
    comparisons = [("variants", c) for c in stats.comparisons]
    if stats.holdout is not None:
        comparisons.append(("holdout lift", stats.holdout))
    if comparisons:
        parts.append("<table class=\"comparisons\"><thead><tr><th></th><th>difference</th><th>95% interval</th>"
                     "<th>p-value</th><th>test</th><th>in words</th></tr></thead><tbody>")
        parts += [_comparison_row(kind, c) for kind, c in comparisons]
        parts.append("</tbody></table>")
    return "".join(parts)


def _comparison_row(kind: str, c: Comparison) -> str:
    if c.difference is None or c.low is None or c.high is None or c.p_value is None:
        cells = '<td colspan="4"></td>'
    else:
        cells = (f'<td class="num">{100 * c.difference:+.1f} pts</td>'
                 f'<td class="num">{100 * c.low:.1f} to {100 * c.high:.1f}</td>'
                 f'<td class="num">{c.p_value:.3g}</td><td>{escape(c.test or "")}</td>')
    return (f"<tr><td>{escape(kind)}: {escape(c.a)} vs {escape(c.b)}</td>{cells}"
            f'<td class="sentence">{escape(c.sentence)}</td></tr>')
