"""``journey stats`` output: plain text tables, Markdown, CSV and JSON of the same figures."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from runner.production.significance import Comparison
from runner.production.stats import StepFigures, VersionStats, Window

FORMATS = ("table", "json", "markdown", "csv")
STEP_COLUMNS = ("step", "kind", "reached", "of entered", "sent", "failed", "pending", "skipped", "opens", "clicks")


def render(found: list[VersionStats], window: Window, fmt: str) -> str:
    """The figures in ``fmt`` (one of ``FORMATS``)."""
    if fmt == "json":
        return json.dumps({"format": 1, "window": _window_dict(window),
                           "journeys": [stats.as_dict() for stats in found]}, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return to_csv(found)
    if fmt == "markdown":
        return to_markdown(found, window)
    return to_table(found, window)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def window_text(window: Window) -> str:
    if window.since is None and window.until is None:
        return "all time"
    return f"UTC days {window.since or 'start'} to {window.until or 'now'} (until excluded)"


def step_row(step: StepFigures) -> list[str]:
    """One funnel line, in ``STEP_COLUMNS`` order."""
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(step.skipped.items())) or "-"
    sends = step.kind in ("email", "webhook")
    opens = step.kind == "email"
    return [step.id, step.kind, str(step.reached), percent(step.rate),
            str(step.sent) if sends else "-", str(step.failed) if sends else "-",
            str(step.pending) if sends else "-", skipped,
            str(step.opens) if opens else "-", str(step.clicks) if opens else "-"]


def comparison_text(comparison: Comparison) -> str:
    c = comparison
    if c.p_value is None:
        return f"{c.a} vs {c.b}: {c.sentence}"
    return (f"{c.a} {c.conversions_a}/{c.contacts_a} ({percent(c.rate_a)}) vs {c.b} {c.conversions_b}/{c.contacts_b} "
            f"({percent(c.rate_b)}): {c.sentence}; p = {c.p_value:.3g} ({c.test})")


def to_table(found: list[VersionStats], window: Window) -> str:
    lines = [f"journey stats, {window_text(window)}"]
    if not found:
        lines.append("(nothing recorded yet for the deployed journeys in this window)")
    for stats in found:
        lines += ["", *_version_lines(stats)]
    return "\n".join(lines) + "\n"


def _version_lines(stats: VersionStats) -> Iterator[str]:
    yield f"{stats.journey} v{stats.version} — {stats.name}"
    goal = f"   goal ({stats.goal}): {stats.goals} ({percent(stats.goal_rate)})" if stats.goal else "   (no goal)"
    yield f"  entered {stats.entered}{goal}"
    if stats.exits:
        yield "  exited: " + ", ".join(f"{reason} {n}" for reason, n in sorted(stats.exits.items()))
    rows = [list(STEP_COLUMNS)] + [step_row(step) for step in stats.steps]
    widths = [max(len(row[i]) for row in rows) for i in range(len(STEP_COLUMNS))]
    left = {0, 1, STEP_COLUMNS.index("skipped")}  # text columns; numbers are right-aligned
    for row in rows:
        cells = (cell.ljust(width) if i in left else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
        yield ("  " + "  ".join(cells)).rstrip()
    for variant in stats.variants:
        conversions = f", {variant.conversions} converted ({percent(variant.rate)})" if stats.goal else ""
        yield f"  split {variant.split} / {variant.name}: {variant.contacts} contacts{conversions}"
    for comparison in stats.comparisons:
        yield "  variants: " + comparison_text(comparison)
    if stats.holdout is not None:
        yield "  holdout lift: " + comparison_text(stats.holdout)


def to_markdown(found: list[VersionStats], window: Window) -> str:
    lines = [f"# journey stats ({window_text(window)})"]
    if not found:
        lines += ["", "Nothing recorded yet for the deployed journeys in this window."]
    for stats in found:
        lines += ["", f"## {stats.journey} v{stats.version} — {stats.name}", ""]
        goal = f"; goal ({stats.goal}): **{stats.goals}** ({percent(stats.goal_rate)})" if stats.goal else ""
        lines.append(f"Entered **{stats.entered}**{goal}.")
        if stats.exits:
            lines.append("Exited: " + ", ".join(f"{reason} {n}" for reason, n in sorted(stats.exits.items())) + ".")
        lines += ["", "| " + " | ".join(STEP_COLUMNS) + " |", "|" + "---|" * len(STEP_COLUMNS)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in step_row(step)) + " |" for step in stats.steps]
        if stats.variants:
            lines += ["", "| split | variant | contacts | converted | rate |", "|---|---|---|---|---|"]
            lines += [f"| {v.split} | {v.name} | {v.contacts} | {v.conversions if stats.goal else '-'} | "
                      f"{percent(v.rate) if stats.goal else '-'} |" for v in stats.variants]
        for comparison in stats.comparisons:
            lines.append(f"\n- variants: {comparison_text(comparison)}")
        if stats.holdout is not None:
            lines.append(f"\n- holdout lift: {comparison_text(stats.holdout)}")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("journey", "version", "section", "item", "measure", "detail", "value")


def to_csv(found: list[VersionStats]) -> str:
    """One figure per line (journey, version, section, item, measure, detail, value): easy to pivot."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for stats in found:
        for row in _csv_rows(stats):
            writer.writerow([stats.journey, stats.version, *row])
    return out.getvalue()


def _csv_rows(stats: VersionStats) -> Iterator[tuple[str, str, str, str, Any]]:
    yield "journey", "", "entered", "", stats.entered
    if stats.goal:
        yield "journey", "", "goals", stats.goal, stats.goals
    for reason, n in sorted(stats.exits.items()):
        yield "journey", "", "exited", reason, n
    for step in stats.steps:
        for measure in ("reached", "sent", "failed", "pending", "deferred", "opens", "clicks"):
            yield "step", step.id, measure, "", getattr(step, measure)
        for reason, n in sorted(step.skipped.items()):
            yield "step", step.id, "skipped", reason, n
        for outcome, n in sorted(step.outcomes.items()):
            yield "step", step.id, "outcome", outcome, n
    for variant in stats.variants:
        yield "variant", f"{variant.split}/{variant.name}", "contacts", "", variant.contacts
        yield "variant", f"{variant.split}/{variant.name}", "conversions", "", variant.conversions
    comparisons = [(f"{c.a} vs {c.b}", c) for c in stats.comparisons]
    if stats.holdout is not None:
        comparisons.append(("treated vs holdout", stats.holdout))
    for item, c in comparisons:
        for measure in ("difference", "low", "high", "p_value"):
            yield "comparison", item, measure, c.test or "", getattr(c, measure)


def _window_dict(window: Window) -> dict[str, Any]:
    return {"journey": window.journey, "version": window.version, "since": window.since, "until": window.until}
