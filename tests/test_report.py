"""``journey report``: a static HTML report that opens from disk and renders in a real browser."""

from __future__ import annotations

import re
import subprocess
from html import unescape
from pathlib import Path

import pytest
from chromium import needs_chromium
from test_report_project import TRIAL_JOURNEY, run_journey, write_trial_project

from runner.review.report import ASSETS, MERMAID_JS


def simulated(root: Path) -> list:
    """The decisions the report's default simulation makes (30 days from the default start)."""
    from datetime import timedelta

    from runner.language.loader import load_project
    from runner.simulation.scenarios import DEFAULT_START
    from runner.simulation.simulate import simulate
    from runner.simulation.testcontacts import load_test_contacts

    loaded = load_project(root)
    contacts = load_test_contacts(root / "examples" / "contacts.yaml")
    return simulate(loaded.project, loaded.journeys, contacts, DEFAULT_START, DEFAULT_START + timedelta(days=30)).decisions


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trial project in a git repo with one uncommitted change, reported with --base HEAD."""
    root = write_trial_project(tmp_path_factory.mktemp("project"))
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "base"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True)
    (root / "journeys" / "trial.yaml").write_text(TRIAL_JOURNEY.replace("- wait: 2d", "- wait: 3d"))
    (root / "project.yaml").write_text((root / "project.yaml").read_text() + "# tuned\n")
    (root / "templates" / "spare.txt").write_text("not used yet\n")
    out = root / "report"
    result = run_journey(["report", "--out", str(out), "--base", "HEAD"], root, process=True)
    assert result.returncode == 0, result.stderr
    assert f"report written: {out / 'index.html'}" in result.stdout
    return out


def test_report_ships_mermaid_and_one_diagram_per_journey(report: Path) -> None:
    page = (report / "index.html").read_text()
    assert (report / "assets" / MERMAID_JS).read_bytes() == (ASSETS / MERMAID_JS).read_bytes()
    assert '<script src="assets/mermaid.min.js"></script>' in page
    diagrams = re.findall(r'<pre class="mermaid">(.*?)</pre>', page, re.S)
    assert len(diagrams) == 1 and unescape(diagrams[0]).startswith("flowchart TD")
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://cdn" not in page


def test_report_timeline_funnel_previews_and_changes(report: Path) -> None:
    page = (report / "index.html").read_text()
    markers = re.findall(r'<(?:circle|rect|polygon) class="marker [^"]+" data-action="([a-z_]+)"', page)
    decisions = simulated(report.parent)
    for action in ("enter", "send", "split", "holdout", "exit", "goal"):
        assert markers.count(action) == sum(1 for d in decisions if d.action == action), action
    assert markers.count("enter") == 2 and markers.count("send") == 3  # ann and bob; welcome x2, bob's tip_a
    assert "Hi Ann &quot;quoted&quot; &lt;b&gt;#1; `x` | end" in page  # hover title with the rendered subject
    funnel = dict(re.findall(r'<tr><td>([^<]+)</td><td class="num">(\d+)</td>', page))
    assert funnel["entered"] == "2" and funnel["✉ welcome"] == "2" and funnel["✉ tip_a"] == "1"
    assert funnel["split ab: holdout (10%)"] == "1"
    assert funnel["exit: no_click"] == str(sum(1 for d in decisions if d.action == "exit" and d.reason == "no_click"))
    iframes = re.findall(r'<iframe sandbox="" title="([^"]+)" srcdoc="', page)
    assert sorted(iframes) == ["tip_a", "welcome"]
    for link in re.findall(r'href="(emails/[^"]+)"', page):
        assert (report / link).is_file()
    assert "wait after welcome: wait 2d → 3d" in page
    assert "Changed, but the version is still 1: bump it." in page
    assert "project.yaml changed (+1 -0 lines)" in page and "templates/spare.txt added" in page


def test_report_without_test_contacts_still_draws_the_journeys(tmp_path: Path) -> None:
    root = write_trial_project(tmp_path)
    (root / "examples" / "contacts.yaml").unlink()
    result = run_journey(["report", "--out", str(root / "out")], root)
    assert result.returncode == 0, result.stderr
    page = (root / "out" / "index.html").read_text()
    assert '<pre class="mermaid">' in page and "<svg class=\"timeline\"" not in page


def test_report_refuses_a_broken_project(tmp_path: Path) -> None:
    root = write_trial_project(tmp_path)
    (root / "journeys" / "trial.yaml").write_text(TRIAL_JOURNEY.replace("wait: 2d", "wait: soon"))
    result = run_journey(["report", "--out", str(root / "out")], root, process=True)
    assert result.returncode == 1 and "trial.yaml:" in result.stderr and "Traceback" not in result.stderr


def open_report(browser, index: Path) -> tuple[object, list[str], list[str]]:
    """Open the page from disk; wait until Mermaid finished; collect console errors and requests."""
    errors: list[str] = []
    requests: list[str] = []
    page = browser.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(index.as_uri())
    page.wait_for_function("document.body.dataset.mermaid !== undefined", timeout=60_000)
    return page, errors, requests


@needs_chromium
def test_report_renders_in_a_real_browser_from_disk(report: Path, browser) -> None:
    page, errors, requests = open_report(browser, report / "index.html")
    assert page.evaluate("document.body.dataset.mermaid") == "done"
    assert page.locator("pre.mermaid svg").count() == page.locator("pre.mermaid").count() == 1
    # the hostile subject survived as text inside the diagram
    assert '"quoted" <b>#1; `x` | end' in page.locator("pre.mermaid svg").text_content()
    box = page.locator("svg.timeline").first.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 40
    assert page.locator("svg.timeline .marker").count() >= 6
    assert page.locator("iframe[srcdoc]").count() == 2
    page.close()
    assert errors == []
    assert all(url.startswith(("file://", "about:", "data:")) for url in requests), requests


@needs_chromium
def test_every_sample_journey_diagram_renders_in_mermaid(tmp_path: Path, browser) -> None:
    from runner.language.loader import load_project
    from runner.review.report import ReportInputs, build_report

    loaded = load_project(Path(__file__).resolve().parents[1])
    assert len(loaded.journeys) >= 6
    index, failures = build_report(ReportInputs(loaded.project, loaded.journeys), tmp_path / "samples")
    page, errors, _ = open_report(browser, index)
    assert page.evaluate("document.body.dataset.mermaid") == "done"
    assert page.locator("pre.mermaid svg").count() == len(loaded.journeys)
    assert page.locator("pre.mermaid svg .node").count() >= sum(len(j.steps) for j in loaded.journeys)
    page.close()
    assert errors == [] and failures == []
