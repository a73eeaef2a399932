"""Simulated timelines as inline SVG swimlanes: one lane per contact, a marker per decision.

People would rather look at a chart than read a table of decisions: where the
sends cluster, who moved stage, who left and when. Each marker carries a
``<title>`` (the browser's hover tooltip) with the local time and UTC, the
step and the subject. Plain SVG text, no script: it renders from disk and in any browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from runner.simulation.timeline import Record, iso

LANE_HEIGHT = 28
LABEL_WIDTH = 140
CHART_WIDTH = 760
TOP = 24

# action -> (css class, legend text); actions not listed are not drawn
MARKERS = {
    "enter": ("m-enter", "entered"),
    "move": ("m-move", "moved stage"),
    "send": ("m-send", "email sent"),
    "send_failed": ("m-fail", "send failed"),
    "webhook": ("m-webhook", "webhook"),
    "split": ("m-split", "split / holdout"),
    "holdout": ("m-split", "split / holdout"),
    "defer": ("m-defer", "deferred / skipped"),
    "skip": ("m-defer", "deferred / skipped"),
    "goal": ("m-goal", "goal"),
    "exit": ("m-exit", "exited"),
}

STYLE = """
.timeline text{font:12px system-ui,sans-serif;fill:#333}
.timeline .grid{stroke:#e0e0e0}
.timeline .lane{stroke:#bbb;stroke-width:1}
.m-enter{fill:#1a73e8}.m-move{fill:#9334e6}.m-send{fill:#f9a825}.m-fail{fill:#b00020}
.m-webhook{fill:#1e8e3e}.m-split{fill:#d93025;opacity:.6}.m-defer{fill:#9aa0a6}
.m-goal{fill:#1e8e3e}.m-exit{fill:#d93025}
"""


@dataclass
class _Scale:
    start: datetime
    end: datetime

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        fraction = min(max((at - self.start).total_seconds() / span, 0.0), 1.0)
        return LABEL_WIDTH + fraction * CHART_WIDTH


def _shape(action: str, x: float, y: float, title: str) -> str:
    css = MARKERS[action][0]
    tip = f"<title>{escape(title)}</title>"
    if action in ("enter", "move"):
        points = f"{x - 6:.1f},{y - 6:.1f} {x + 6:.1f},{y:.1f} {x - 6:.1f},{y + 6:.1f}"
        return f'<polygon class="marker {css}" data-action="{action}" points="{points}">{tip}</polygon>'
    if action in ("exit", "goal"):
        return f'<rect class="marker {css}" data-action="{action}" x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10">{tip}</rect>'
    radius = 3 if action in ("defer", "skip", "split", "holdout") else 5
    return f'<circle class="marker {css}" data-action="{action}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}">{tip}</circle>'


def _title(record: Record) -> str:
    what = record.action.replace("_", " ")
    text = f"{record.local_time} ({record.timezone}; {iso(record.at)}) — {record.journey}: {what}"
    if record.step:
        text += f" {record.step}"
    if record.subject:
        text += f" “{record.subject}”"
    if record.variant:
        text += f" [{record.variant}]"
    if record.reason and record.action not in ("send",):
        text += f" — {record.reason}"
    return text


def timeline_svg(records: Sequence[Record], contacts: Sequence[str], start: datetime, end: datetime,
                 caption: str = "") -> str:
    """An SVG swimlane chart of ``records`` (one lane per contact, in the order given)."""
    scale = _Scale(start, end)
    height = TOP + LANE_HEIGHT * max(len(contacts), 1) + 10
    width = LABEL_WIDTH + CHART_WIDTH + 20
    out = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{escape(caption or "timeline")}">']
    days = max(int((end - start).total_seconds() // 86400), 1)
    step = 1 if days <= 14 else 7 if days <= 120 else 30
    for day in range(0, days + 1, step):
        x = scale.x(start + timedelta(days=day))
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{height - 6}"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP - 10}" text-anchor="middle">+{day}d</text>')
    lanes = {contact: TOP + LANE_HEIGHT * index + LANE_HEIGHT // 2 for index, contact in enumerate(contacts)}
    for contact, y in lanes.items():
        out.append(f'<text x="{LABEL_WIDTH - 8}" y="{y + 4}" text-anchor="end">{escape(contact)}</text>')
        out.append(f'<line class="lane" x1="{LABEL_WIDTH}" y1="{y}" x2="{LABEL_WIDTH + CHART_WIDTH}" y2="{y}"/>')
    stacked: dict[tuple[str, int], int] = {}  # markers at one spot are fanned out so each keeps its tooltip
    for record in records:
        if record.action in MARKERS and record.contact in lanes:
            x = scale.x(record.at)
            spot = (record.contact, round(x / 4))
            shift = stacked.get(spot, 0)
            stacked[spot] = shift + 1
            out.append(_shape(record.action, x + 5 * shift, lanes[record.contact], _title(record)))
    out.append("</svg>")
    return "".join(out)


def legend_html() -> str:
    seen: dict[str, str] = {}
    for css, text in MARKERS.values():
        seen.setdefault(text, css)
    items = "".join(
        f'<span><svg width="12" height="12"><circle class="{css}" cx="6" cy="6" r="5"/></svg> {escape(text)}</span>'
        for text, css in seen.items()
    )
    return f'<p class="legend">{items}</p>'
