"""The report as a reviewer reads it: counts on the diagram, send times in two zones, changed journeys first,
wide journeys stacked in columns (the browser checks are in test_report_screens.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_report_project import write_trial_project

from runner.review.diff import JourneyDiff
from runner.review.filechanges import FileChange
from runner.review.graph import build_graph, safe_id
from runner.review.mermaid import journey_mermaid, report_columns
from runner.review.reach import node_reach, reached_graph, reached_mermaid
from runner.review.reportorder import AFFECTED, CHANGED, UNCHANGED, place_journeys
from runner.review.sendtimes import local_text, sends_table, utc_text

REPO = Path(__file__).resolve().parents[1]


def _trial(tmp_path: Path):
    from runner.language.loader import load_project
    from runner.simulation.scenarios import DEFAULT_START
    from runner.simulation.simulate import simulate
    from runner.simulation.testcontacts import load_test_contacts

    root = write_trial_project(tmp_path)
    loaded = load_project(root)
    contacts = load_test_contacts(root / "examples" / "contacts.yaml")
    simulation = simulate(loaded.project, loaded.journeys, contacts, DEFAULT_START, DEFAULT_START + timedelta(days=30))
    [journey] = loaded.journeys
    return journey, simulation, loaded.project


def test_each_node_counts_the_test_contacts_that_reached_it(tmp_path: Path) -> None:
    journey, simulation, _ = _trial(tmp_path)
    reach = node_reach(journey, simulation.decisions)
    # ann and bob sign up; cat never enters. ann lands in the holdout, bob in variant a (see test_report.py)
    assert reach[safe_id("entry", "start")].contacts == {"ann", "bob"}
    assert reach[safe_id("step", "welcome")].contacts == {"ann", "bob"}
    assert reach[safe_id("step", "ab")].contacts == {"ann", "bob"}
    assert reach[safe_id("step", "tip_a")].contacts == {"bob"}
    for node in ("tip_b", "pro_mail", "route"):
        assert safe_id("step", node) not in reach, node
    assert safe_id("entry", "paid") not in reach
    no_click = {d.contact for d in simulation.decisions if d.action == "exit" and d.reason == "no_click"}
    assert no_click and reach[safe_id("step", "x")].contacts == no_click  # the exit step, by its stage and reason


def test_the_diagram_carries_the_counts_and_fades_what_no_contact_reaches(tmp_path: Path) -> None:
    journey, simulation, _ = _trial(tmp_path)
    graph, unreached = reached_graph(journey, simulation.decisions)
    assert graph.nodes[safe_id("step", "welcome")].lines[-1] == "2 test contacts"
    assert graph.nodes[safe_id("step", "tip_a")].lines[-1] == "1 test contact"
    assert graph.nodes[safe_id("step", "tip_b")].lines[-1] == "0 test contacts"
    assert {safe_id("step", "tip_b"), safe_id("step", "pro_mail"), safe_id("entry", "paid"), "rule_exit0",
            "goal_node"} <= set(unreached)
    assert safe_id("step", "welcome") not in unreached
    text = reached_mermaid(journey, simulation.decisions)
    [faded] = re.findall(r"^  class (\S+) unreached$", text, re.M)
    assert set(faded.split(",")) == set(unreached)
    assert "classDef unreached stroke-dasharray" in text


def test_a_skipped_step_counts_apart(tmp_path: Path) -> None:
    from runner.core.engine import Decision

    journey, _, _ = _trial(tmp_path)
    at = datetime(2026, 1, 5, tzinfo=UTC)
    decisions = [Decision(at, who, "trial", 1, "start", "welcome", action, "") for who, action in
                 (("ann", "send"), ("bob", "skip"), ("cat", "skip"))]
    assert node_reach(journey, decisions)[safe_id("step", "welcome")].line() == "1 test contact · 2 skipped"
    graph = build_graph(journey)
    assert graph.nodes[safe_id("step", "welcome")].lines[0] == "email welcome"
    skipped_by_all = [d for d in decisions if d.action == "skip"]
    _, unreached = reached_graph(journey, skipped_by_all)
    assert safe_id("step", "welcome") in unreached  # reached, but its email never tried: faded too


def test_wide_journeys_stack_their_boxes_in_two_columns() -> None:
    from runner.language.loader import load_project

    loaded = load_project(REPO)
    advocacy = next(j for j in loaded.journeys if j.id == "advocacy")
    graph = build_graph(advocacy)
    boxes = [group for group, _ in graph.stages] + ["leaving"]
    assert len(boxes) >= 4 and report_columns(graph) == 2
    stacked = re.findall(r"^  (\S+) ~~~ (\S+)$", journey_mermaid(advocacy, columns=2), re.M)
    assert stacked == list(zip(boxes, boxes[2:], strict=False))
    assert "~~~" not in journey_mermaid(advocacy)  # `journey graph` keeps Mermaid's own layout
    onboarding = build_graph(next(j for j in loaded.journeys if j.id == "onboarding"))
    assert report_columns(onboarding) is None


def test_send_times_in_the_contacts_zone_and_in_utc() -> None:
    winter = datetime(2026, 1, 8, 1, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 9, 8, 30, tzinfo=UTC)
    assert local_text(winter, "Asia/Tokyo") == "Thu 8 Jan 2026 10:00 Asia/Tokyo (UTC+09:00)"
    assert utc_text(winter) == "Thu 8 Jan 2026 01:00 UTC"
    assert local_text(summer, "America/New_York") == "Thu 9 Jul 2026 04:30 America/New_York (UTC-04:00)"
    assert local_text(winter, "America/New_York") == "Wed 7 Jan 2026 20:00 America/New_York (UTC-05:00)"
    assert local_text(winter, "UTC") == "Thu 8 Jan 2026 01:00 UTC (UTC+00:00)"


def test_the_sends_table_lists_every_send_in_time_order(tmp_path: Path) -> None:
    from runner.simulation.timeline import timeline_records

    _, simulation, project = _trial(tmp_path)
    records = timeline_records(simulation, project)
    table = sends_table(records)
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]*)</td>"
                      r'<td class="local">([^<]+)</td><td class="utc">([^<]+)</td></tr>', table)
    sends = sorted((r for r in records if r.action == "send"), key=lambda r: (r.at, r.contact))
    assert [(c, s) for c, s, *_ in rows] == [(r.contact, r.step) for r in sends] and len(rows) == 3
    assert rows[0][3] == "Mon 5 Jan 2026 10:00 UTC (UTC+00:00)" and rows[0][4] == "Mon 5 Jan 2026 10:00 UTC"
    assert sends_table([]) == "<p>No email sent in the simulation.</p>"


def test_changed_journeys_first_then_those_sending_a_changed_template(tmp_path: Path) -> None:
    from runner.language.loader import load_project

    loaded = load_project(REPO)
    diffs = {"sales_handoff": JourneyDiff("sales_handoff", "changed", 1, 2),
             "milestones": JourneyDiff("milestones", "added", None, 1),
             "advocacy": JourneyDiff("advocacy", "unchanged", 1, 1)}
    files = [FileChange("templates/onboarding/welcome_default.html", "changed", 1, 1),
             FileChange("templates/base.html", "changed", 2, 0)]
    placed = place_journeys(loaded.journeys, diffs, files)
    assert [(p.journey.id, p.group) for p in placed[:3]] == [
        ("milestones", CHANGED), ("sales_handoff", CHANGED), ("onboarding", AFFECTED)]
    assert placed[2].templates == ("templates/onboarding/welcome_default.html",)
    assert [p.journey.id for p in placed[3:]] == sorted(j.id for j in loaded.journeys
                                                        if j.id not in ("milestones", "sales_handoff", "onboarding"))
    assert {p.group for p in placed[3:]} == {UNCHANGED}
    assert [p.journey.id for p in place_journeys(loaded.journeys, None)] == sorted(j.id for j in loaded.journeys)


@pytest.mark.parametrize("file", ["templates/onboarding/welcome_default.txt", "site/templates/onboarding/welcome_default.ja.html"])
def test_a_template_is_found_in_any_part_locale_or_folder(file: str) -> None:
    from runner.language.loader import load_project

    loaded = load_project(REPO)
    placed = place_journeys(loaded.journeys, {}, [FileChange(file, "changed", 1, 1)])
    assert [(p.journey.id, p.templates) for p in placed if p.group == AFFECTED] == [("onboarding", (file,))]


def test_a_timeline_marker_tells_the_local_time_and_utc(tmp_path: Path) -> None:
    from runner.review.svgchart import timeline_svg
    from runner.simulation.timeline import timeline_records

    _, simulation, project = _trial(tmp_path)
    records = [r for r in timeline_records(simulation, project) if r.action == "send"]
    svg = timeline_svg(records, sorted({r.contact for r in records}), simulation.start, simulation.end)
    first = min(records, key=lambda r: r.at)
    assert f"<title>{first.local_time} ({first.timezone}; {first.at:%Y-%m-%dT%H:%M:%SZ}) — trial: send welcome" in svg
