"""`journey report --db`: production figures beside the simulated ones, drawn offline in a real browser."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest
from chromium import needs_chromium
from test_report import open_report
from test_stats import build_trial
from test_tick_kit import journey_cli

from runner.review.production import CHART_JS
from runner.review.report import ASSETS


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> tuple[Path, dict]:
    """The trial project after two ticks, its stats as JSON, and its report with --db."""
    root = build_trial(tmp_path_factory.mktemp("trial"), contacts=200)
    stats = journey_cli(["stats", "--format", "json"], cwd=root)
    assert stats.returncode == 0, stats.stderr
    [version] = json.loads(stats.stdout)["journeys"]
    done = journey_cli(["report", "--out", "report", "--db", "journey.db"], cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "report", version


def charts(page_html: str) -> list[dict]:
    return [json.loads(unescape(spec)) for spec in re.findall(r'<canvas class="stats-chart"[^>]* data-chart="([^"]*)"',
                                                               page_html)]


def test_report_shows_the_production_figures_of_the_deployed_version(reported):
    out, version = reported
    page = (out / "index.html").read_text(encoding="utf-8")
    assert (out / "assets" / CHART_JS).read_bytes() == (ASSETS / CHART_JS).read_bytes()
    assert '<script src="assets/chart.umd.min.js"></script>' in page and "https://" not in page.split("<main>")[1]
    steps = {step["id"]: step for step in version["steps"]}
    funnel, rates = charts(page)
    assert funnel["labels"][0] == "entered" and funnel["values"][0] == version["entered"] == 200
    assert dict(zip(funnel["labels"][1:-1], funnel["values"][1:-1], strict=True)) == {
        f"{step['kind']} {step['id']}": step["reached"] for step in version["steps"]}
    assert funnel["values"][-1] == version["goals"]
    assert rates["values"] == [round(100 * v["rate"], 2) for v in version["variants"]]
    diagram = unescape(re.findall(r'<div class="production".*?<pre class="mermaid">(.*?)</pre>', page, re.S)[0])
    short = steps["short_mail"]
    assert f"ran {short['reached']} (" in diagram and f"sent {short['sent']}" in diagram
    assert f"entered {version['entered']}" in diagram and f"reached {version['goals']} (" in diagram
    lift = version["holdout"]
    assert unescape(page).count(lift["sentence"]) == 1
    assert f"{100 * lift['low']:.1f} to {100 * lift['high']:.1f}" in page


def test_report_without_db_has_no_production_part(reported):
    out, _ = reported
    plain = journey_cli(["report", "--out", "plain"], cwd=out.parent)
    assert plain.returncode == 0, plain.stderr
    page = (out.parent / "plain" / "index.html").read_text(encoding="utf-8")
    assert '<canvas class="stats-chart"' not in page and "chart.umd" not in page and not (out.parent / "plain" / "assets" / CHART_JS).exists()
    missing = journey_cli(["report", "--out", "x", "--db", "nope.db"], cwd=out.parent)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@needs_chromium
def test_production_charts_and_counted_diagram_render_in_a_real_browser(reported, browser):
    out, version = reported
    page, errors, requests = open_report(browser, out / "index.html")
    page.wait_for_function("document.body.dataset.charts !== undefined", timeout=60_000)
    assert page.evaluate("document.body.dataset.charts") == "done"
    assert page.evaluate("document.body.dataset.mermaid") == "done"
    drawn = page.evaluate("""Array.from(document.querySelectorAll('canvas.stats-chart')).map(function (canvas) {
        var chart = Chart.getChart(canvas);
        return {values: chart.data.datasets[0].data, bars: chart.getDatasetMeta(0).data.length,
                width: canvas.getBoundingClientRect().width};
    })""")
    assert [chart["values"][0] for chart in drawn][:1] == [version["entered"]]
    assert all(chart["bars"] == len(chart["values"]) > 2 and chart["width"] > 300 for chart in drawn)
    svg_text = page.locator(".production pre.mermaid svg").text_content()
    assert f"entered {version['entered']}" in svg_text
    page.close()
    assert errors == []
    assert all(url.startswith(("file://", "about:", "data:")) for url in requests), requests
