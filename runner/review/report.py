"""A static HTML report for a pull request: diagrams, timelines, funnels, email previews, changes.

It opens from disk (``file://``) with no server and no network: Mermaid is
copied next to the page from the package's ``assets/`` folder, the timelines
are inline SVG, and email previews are sandboxed ``srcdoc`` iframes (the
rendered HTML can never run script or reach the report page), with the
``.eml``/``.html``/``.txt`` files written beside it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path

from runner.core.engine import Decision
from runner.core.model import EmailStep, Journey, Project, SplitStep
from runner.production.stats import VersionStats
from runner.review.diff import JourneyDiff
from runner.review.filechanges import FileChange
from runner.review.graph import build_graph, steps_in_file_order
from runner.review.mermaid import graph_mermaid, report_columns
from runner.review.production import CHART_JS, CHART_SCRIPT, production_section
from runner.review.production import STYLE as PRODUCTION_STYLE
from runner.review.reach import reached_mermaid
from runner.review.renderout import MessageRenderer, RenderedMessage, first_sends, write_message
from runner.review.reportorder import AFFECTED, CHANGED, UNCHANGED, Placed, place_journeys
from runner.review.sendtimes import local_text, sends_table, utc_text
from runner.review.svgchart import STYLE as CHART_STYLE
from runner.review.svgchart import legend_html, timeline_svg
from runner.review.variants import language_variants, variants_html
from runner.simulation.simulate import JourneySummary, Simulation, summarize
from runner.simulation.testcontacts import TestContact
from runner.simulation.timeline import Record, timeline_records

ASSETS = Path(__file__).parent / "assets"
MERMAID_JS = "mermaid.min.js"
# Mermaid draws labels at 16 px and scales a wide diagram down to the page; never below this scale (12.8 px
# text): a wider diagram keeps that size and scrolls sideways in its box instead.
DIAGRAM_MIN_SCALE = 0.8
PREVIEW_WIDTH = 540  # px: an email at the width a reader's client shows it (the sample's layout is 560 wide at most)
PREVIEW_HEIGHT = 640

PAGE_STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;margin:0;color:#202124;background:#fafafa}
header{background:#1a73e8;color:#fff;padding:16px 32px}header h1{margin:0;font-size:22px}
main{padding:16px 32px;max-width:1200px}
section.journey{background:#fff;border:1px solid #e0e0e0;border-radius:8px;padding:16px 24px;margin:16px 0}
h2{margin-top:0}h3{margin-bottom:6px}
nav a{margin-right:12px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #e0e0e0;padding:3px 8px;text-align:left}
td.num{text-align:right}.bar{display:inline-block;height:10px;background:#f9a825;vertical-align:middle}
.changes li.added{color:#1e8e3e}.changes li.removed{color:#b00020}.warning{color:#b00020;font-weight:600}
.previews{display:flex;flex-wrap:wrap;gap:12px}
.preview{border:1px solid #e0e0e0;border-radius:6px;padding:8px;background:#fff}
.preview iframe{display:block;border:1px solid #eee}
.preview .subject{font-weight:600}.preview .when{font-size:13px;color:#5f6368}
table.sends td.local{white-space:nowrap}table.sends td.utc{white-space:nowrap;color:#5f6368}
.badge{font-size:13px;font-weight:600;border-radius:10px;padding:2px 8px;vertical-align:middle;margin-left:6px}
.badge.changed,.badge.added{background:#fef7e0;color:#8a5300}.badge.removed{background:#fce8e6;color:#b00020}
.badge.affected{background:#e8f0fe;color:#174ea6}.badge.unchanged{background:#f1f3f4;color:#5f6368}
nav p{margin:4px 0}
.legend span{margin-right:14px;font-size:12px}
pre.mermaid{background:#fff}
.scroll{overflow-x:auto}
"""

BOOT_SCRIPT = """
mermaid.initialize({startOnLoad: false, securityLevel: 'strict', maxTextSize: 1000000, maxEdges: 5000,
                    flowchart: {htmlLabels: true}});
function keepReadable() {  // a wide diagram scrolls sideways rather than shrinking its text below MIN_SCALE
  document.querySelectorAll('pre.mermaid svg').forEach(function (svg) {
    var natural = svg.viewBox.baseVal.width;
    if (natural) { svg.style.minWidth = Math.ceil(natural * MIN_SCALE) + 'px'; }
  });
}
mermaid.run({querySelector: 'pre.mermaid'}).then(
  function () { keepReadable(); document.body.dataset.mermaid = 'done'; },
  function (error) { document.body.dataset.mermaid = 'failed'; console.error('mermaid: ' + error); }
);
"""


@dataclass
class ReportInputs:
    project: Project
    journeys: Sequence[Journey]
    contacts: Sequence[TestContact] = ()
    start: datetime | None = None
    end: datetime | None = None
    diffs: list[JourneyDiff] | None = None  # with --base: what changed
    base_ref: str | None = None
    title: str = ""
    # with --db: each deployed version of a reported journey, and what production did with it
    production: Sequence[tuple[Journey, VersionStats]] = ()
    files: Sequence[FileChange] = ()  # with --base: templates and project.yaml changed


@dataclass
class _Preview:
    result: RenderedMessage
    links: dict[str, str]  # kind (eml, html, txt) -> path relative to the page
    timezone: str  # the contact's zone at the send


@dataclass
class _JourneyData:
    journey: Journey
    summary: JourneySummary | None
    records: list[Record] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    previews: list[_Preview] = field(default_factory=list)
    production: list[str] = field(default_factory=list)  # one HTML section per deployed version
    variants: str = ""  # translated steps in every language, side by side (runner.review.variants)


def _funnel(journey: Journey, summary: JourneySummary | None) -> str:
    """Entered, then every email and webhook step in file order with its count, then splits, goals, exits."""
    if summary is None:
        return "<p>No simulation (no test contacts).</p>"
    rows = [("entered", summary.entered)]
    for step in steps_in_file_order(journey):
        if isinstance(step, EmailStep):
            rows.append((f"✉ {step.id}", summary.sent.get(step.id, 0)))
        elif step.kind == "webhook":
            rows.append((f"webhook {step.id}", summary.webhooks.get(step.id, 0)))
        elif isinstance(step, SplitStep):
            for variant in step.variants:
                rows.append((f"split {step.id}: {variant.name} ({variant.weight}%)", summary.variants.get(f"{step.id}:{variant.name}", 0)))
            if step.holdout:
                rows.append((f"split {step.id}: holdout ({step.holdout}%)", summary.variants.get(f"{step.id}:holdout", 0)))
    rows.append(("goal reached", summary.goals))
    for reason, count in sorted(summary.exits.items()):
        rows.append((f"exit: {reason}", count))
    top = max([count for _, count in rows] + [1])
    body = "".join(
        f'<tr><td>{escape(name)}</td><td class="num">{count}</td>'
        f'<td><span class="bar" style="width:{int(200 * count / top)}px"></span></td></tr>'
        for name, count in rows
    )
    return f'<table class="funnel"><thead><tr><th>step</th><th>contacts</th><th></th></tr></thead><tbody>{body}</tbody></table>'


def _changes(diff: JourneyDiff | None) -> str:
    if diff is None:
        return ""
    warning = ""
    if diff.version_missing:
        warning = f'<p class="warning">Changed, but the version is still {diff.new_version}: bump it.</p>'
    items = "".join(f'<li class="{escape(c.kind)}">{escape(c.text)}</li>' for c in diff.changes)
    return f'<h3>What changed ({escape(diff.status)})</h3>{warning}<ul class="changes">{items}</ul>'


def _previews(previews: list[_Preview]) -> str:
    if not previews:
        return ""
    cards = []
    for preview in previews:
        result = preview.result
        files = " · ".join(f'<a href="{escape(path)}">{kind}</a>' for kind, path in preview.links.items())
        if result.error:
            frame = f'<p class="warning">cannot render: {escape(result.error)}</p>'
        else:
            frame = (f'<iframe sandbox="" title="{escape(result.step)}" srcdoc="{escape(result.html, quote=True)}" '
                     f'width="{PREVIEW_WIDTH}" height="{PREVIEW_HEIGHT}"></iframe>')
        cards.append(
            f'<div class="preview"><div class="subject">{escape(result.subject or result.step)}</div>'
            f"<div><small>{escape(result.step)} · to {escape(result.contact)}</small></div>"
            f'<div class="when">sent {escape(local_text(result.at, preview.timezone))} · {escape(utc_text(result.at))}</div>'
            f"{frame}<div>{files}</div></div>"
        )
    return f'<h3>Email previews</h3><div class="previews">{"".join(cards)}</div>'


def _badge(placed: Placed | None, diff: JourneyDiff | None) -> str:
    if diff is not None and diff.status != UNCHANGED:
        return f'<span class="badge {escape(diff.status)}">{escape(diff.status)}</span>'
    if placed is not None and placed.group == AFFECTED:
        return '<span class="badge affected">template changed</span>'
    return ""


def _diagram(data: _JourneyData) -> str:
    journey = data.journey
    if data.summary is not None:
        text = reached_mermaid(journey, data.decisions)
        note = ("<p><small>Each box says how many test contacts reached it in the simulation; "
                "faded, dashed boxes were reached by none.</small></p>")
    else:
        graph = build_graph(journey)
        text, note = graph_mermaid(graph, report_columns(graph)), ""
    return f'<h3>Diagram</h3>{note}<div class="scroll diagram"><pre class="mermaid">{escape(text)}</pre></div>'


def _journey_section(data: _JourneyData, placed: Placed | None, diff: JourneyDiff | None,
                     start: datetime | None, end: datetime | None) -> str:
    journey = data.journey
    group = placed.group if placed is not None else UNCHANGED
    parts = [f'<section class="journey" id="j-{escape(journey.id)}" data-group="{group}">',
             f"<h2>{escape(journey.name)} <small>({escape(journey.id)} v{journey.version})</small>"
             f"{_badge(placed, diff)}</h2>"]
    if journey.description:
        parts.append(f"<p>{escape(journey.description)}</p>")
    parts.append(_changes(diff))
    if placed is not None and placed.templates:
        parts.append("<p>Sends templates this change edits: "
                     + ", ".join(f"<code>{escape(file)}</code>" for file in placed.templates) + ".</p>")
    parts.append(_diagram(data))
    if data.summary is not None and start is not None and end is not None:
        contacts = sorted({r.contact for r in data.records})
        parts.append("<h3>Simulated timelines</h3>")
        if contacts:
            parts.append(legend_html())
            parts.append(f'<div class="scroll">{timeline_svg(data.records, contacts, start, end, journey.id)}</div>')
        else:
            parts.append("<p>No test contact entered this journey.</p>")
        parts.append("<h3>Funnel</h3>" + _funnel(journey, data.summary))
        parts.append("<h3>Sends</h3>" + sends_table(data.records))
    parts.append(_previews(data.previews))
    parts.append(data.variants)
    parts.extend(data.production)
    parts.append("</section>")
    return "".join(parts)


def _removed_section(diff: JourneyDiff) -> str:
    return (f'<section class="journey" id="j-{escape(diff.journey)}" data-group="{CHANGED}"><h2>{escape(diff.journey)} '
            f'<small>(removed)</small>{_badge(None, diff)}</h2>{_changes(diff)}</section>')


def build_report(inputs: ReportInputs, out: Path) -> tuple[Path, list[RenderedMessage]]:
    """Write ``out/index.html`` (plus assets and rendered emails); returns the page and failed renders."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    shutil.copyfile(ASSETS / MERMAID_JS, out / "assets" / MERMAID_JS)
    diffs = {d.journey: d for d in inputs.diffs or []}
    placed = place_journeys(inputs.journeys, diffs if inputs.base_ref is not None else None, inputs.files,
                            inputs.project.templates_dir)
    journeys = [p.journey for p in placed]
    data = {j.id: _JourneyData(j, None) for j in journeys}
    start, end = inputs.start, inputs.end
    if inputs.contacts and start is not None and end is not None:
        renderer = MessageRenderer(inputs.project, journeys, inputs.contacts, start, end)
        simulation = renderer.simulation
        for summary in summarize(simulation):
            if summary.journey in data:
                data[summary.journey].summary = summary
        for decision in simulation.decisions:
            if decision.journey in data:
                data[decision.journey].decisions.append(decision)
        for record in timeline_records(simulation, inputs.project):
            if record.journey in data:
                data[record.journey].records.append(record)
        _add_previews(renderer, simulation, data, out)
        for entry in data.values():
            entry.variants = variants_html(language_variants(renderer, entry.journey))
    for deployed, stats in inputs.production:
        if deployed.id in data:
            data[deployed.id].production.append(production_section(deployed, stats))
    if inputs.production:
        shutil.copyfile(ASSETS / CHART_JS, out / "assets" / CHART_JS)
    sections = [_journey_section(data[p.journey.id], p, diffs.get(p.journey.id), start, end)
                for p in placed if p.group != UNCHANGED]
    sections += [_removed_section(d) for d in sorted(diffs.values(), key=lambda d: d.journey) if d.journey not in data]
    sections += [_journey_section(data[p.journey.id], p, diffs.get(p.journey.id), start, end)
                 for p in placed if p.group == UNCHANGED]
    page = _page(inputs, placed, sections, diffs)
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    failures = [preview.result for entry in data.values() for preview in entry.previews if preview.result.error]
    return index, failures


def _add_previews(renderer: MessageRenderer, simulation: Simulation, data: dict[str, _JourneyData], out: Path) -> None:
    """One preview per email step: the first contact the simulation sent it to."""
    for (contact, journey_id, step_id), decision in sorted(first_sends(simulation).items(), key=lambda item: item[1].at):
        entry = data.get(journey_id)
        if entry is None or any(preview.result.step == step_id for preview in entry.previews):
            continue
        result = renderer.render(entry.journey, step_id, contact)
        links = {}
        if result.message is not None:
            paths = write_message(result, out / "emails")
            links = {kind: path.relative_to(out).as_posix() for kind, path in paths.items()}
        timezone = str(decision.detail.get("timezone") or _default_zone(renderer))
        entry.previews.append(_Preview(result, links, timezone))


def _default_zone(renderer: MessageRenderer) -> str:
    """The zone of a send whose decision names none: the project's default, else UTC."""
    return renderer.project.default_timezone or "UTC"


def _nav(placed: Sequence[Placed], diffs: dict[str, JourneyDiff], compared: bool) -> str:
    def links(items: Sequence[str]) -> str:
        return "".join(f'<a href="#j-{escape(item)}">{escape(item)}</a>' for item in items)

    if not compared:
        return f"<nav>{links([p.journey.id for p in placed])}</nav>"
    removed = sorted(d.journey for d in diffs.values() if d.status == "removed")
    groups = [("Changed", [p.journey.id for p in placed if p.group == CHANGED] + removed),
              ("Sends a changed template", [p.journey.id for p in placed if p.group == AFFECTED]),
              ("Unchanged", [p.journey.id for p in placed if p.group == UNCHANGED])]
    rows = "".join(f"<p><b>{title} ({len(ids)}):</b> {links(ids) or 'none'}</p>" for title, ids in groups
                   if ids or title != "Sends a changed template")
    return f"<nav>{rows}</nav>"


def _page(inputs: ReportInputs, placed: Sequence[Placed], sections: list[str], diffs: dict[str, JourneyDiff]) -> str:
    title = inputs.title or f"Journeys report — {inputs.project.name}"
    period = ""
    if inputs.start is not None and inputs.end is not None:
        period = f"Simulated {inputs.start.isoformat()} → {inputs.end.isoformat()} with {len(inputs.contacts)} test contacts."
    base = ""
    if inputs.base_ref is not None:
        missing = [d.journey for d in diffs.values() if d.version_missing]
        base = (f"<p>Compared with <code>{escape(inputs.base_ref)}</code>: {len(diffs)} journey(s) changed"
                + (f'; <span class="warning">version not bumped: {escape(", ".join(missing))}</span>' if missing else "")
                + ". Changed journeys come first.</p>")
        if inputs.files:  # a template or project setting changes what every journey using it sends
            base += ("<p>Templates and project settings changed:</p><ul>"
                     + "".join(f"<li>{escape(change.text())}</li>" for change in inputs.files) + "</ul>")
    nav = _nav(placed, diffs, inputs.base_ref is not None)
    production = ""
    if inputs.production:
        versions = ", ".join(f"{j.id} v{j.version}" for j, _ in inputs.production)
        period += f" Production figures of the deployed versions: {versions}."
        production = f'<script src="assets/{CHART_JS}"></script><script>{CHART_SCRIPT}</script>'
    sizes = f".preview{{width:{PREVIEW_WIDTH + 2}px}}"  # the card as wide as its email (and its border); lines above wrap
    boot = f"var MIN_SCALE = {DIAGRAM_MIN_SCALE};\n{BOOT_SCRIPT}"
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{PAGE_STYLE}{sizes}{CHART_STYLE}{PRODUCTION_STYLE}</style></head>"
        f"<body><header><h1>{escape(title)}</h1></header><main><p>{escape(period)}</p>{base}{nav}"
        + "".join(sections)
        + f'</main>{production}<script src="assets/{MERMAID_JS}"></script><script>{boot}</script></body></html>\n'
    )
