"""``journey graph``: Mermaid and DOT diagrams that parse, with the journey's whole shape in them."""

from __future__ import annotations

import re
from pathlib import Path

import pydot
import pytest
import yaml
from test_report_project import TRIAL_JOURNEY, run_journey, write_trial_project

from runner.core.build import build_journey
from runner.review.dot import journey_dot
from runner.review.graph import build_graph, safe_id
from runner.review.mermaid import escape, journey_mermaid

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "journeys").glob("*.yaml"))
NODE_LINE = re.compile(r'^\s+([A-Za-z0-9_]+)(>"|\["|\(\["|\{\{"|\{"|\[/"|\[\["|\(\(")(.*)("\]|"\]\)|"\}\}|"\}|"/\]|"\]\]|"\)\))$')
EDGE_LINE = re.compile(r'^\s+([A-Za-z0-9_]+) (-->|-\.->)(\|"([^"]*)"\|)? ([A-Za-z0-9_]+)$')


def trial():
    return build_journey(yaml.safe_load(TRIAL_JOURNEY), "trial.yaml")


def parse_mermaid(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]], list[str]]:
    """A strict reader of the subset we emit: every line must be a known statement."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    groups: list[str] = []
    depth = 0
    for line in lines[1:]:
        if match := re.match(r'^  subgraph ([A-Za-z0-9_]+)\["([^"]*)"\]$', line):
            groups.append(match.group(1))
            depth += 1
        elif line == "  end":
            depth -= 1
        elif line.strip() == "direction TB" or re.match(r"^  (classDef|class) ", line):
            continue
        elif match := NODE_LINE.match(line):
            nodes[match.group(1)] = match.group(3)
        elif match := EDGE_LINE.match(line):
            edges.append((match.group(1), match.group(5), match.group(4) or ""))
        else:
            raise AssertionError(f"unexpected Mermaid line: {line!r}")
        assert depth in (0, 1)
    assert depth == 0
    return nodes, edges, groups


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_journeys_give_well_formed_mermaid(path: Path) -> None:
    journey = build_journey(yaml.safe_load(path.read_text()), str(path))
    nodes, edges, groups = parse_mermaid(journey_mermaid(journey))
    assert len([g for g in groups if g.startswith("s_")]) == len(journey.stages)
    for source, target, _ in edges:
        assert source in nodes and target in nodes, (source, target)
    for step_id in journey.steps:
        assert safe_id("step", step_id) in nodes
    for label in nodes.values():
        content = re.sub(r"#[a-z0-9]+;", "", label.replace("<br/>", ""))
        assert not set('"<>;`|#') & set(content), label


def test_mermaid_escapes_hostile_labels_and_keyword_ids() -> None:
    text = journey_mermaid(trial())
    nodes, edges, _ = parse_mermaid(text)
    welcome = nodes["step_welcome"]
    assert "#quot;quoted#quot;" in welcome and "#lt;b#gt;#35;1#59; #96;x#96; #124; end" in welcome
    # step ids `end`, `o` and `x` never appear bare as node ids
    assert {"step_end", "step_o", "step_x"} <= set(nodes)
    assert not {"end", "o", "x"} & set(nodes)
    assert escape('a"b<c>d#e;f`g') == "a#quot;b#lt;c#gt;d#35;e#59;f#96;g"


def test_graph_shows_waits_splits_holdout_wait_for_paths_exits_and_goal() -> None:
    graph = build_graph(trial())
    labels = {(e.source, e.target): e.label for e in graph.edges}
    assert labels[("step_ab", "step_tip_a")] == "a 45%"
    assert labels[("step_ab", "step_tip_b")] == "b 45%"
    assert labels[("step_ab", "step_end")] == "holdout 10% (no sends)"
    assert labels[("step_end", "step_o")] == "on clicked"
    assert labels[("step_end", "step_x")] == "timeout 3d"
    assert labels[("step_route", "step_pro_mail")] == "if plan = pro"
    assert labels[("step_route", safe_id("step", "paid.0.else.0"))] == "else"
    lines = {node.id: " / ".join(node.lines) for node in graph.nodes.values()}
    assert lines[safe_id("step", "start.2")] == "wait 2d"
    assert lines["step_x"] == "exit: no_click"
    assert "on event signed_up" in lines["entry_start"]
    assert lines["rule_exit0"] == "exit:0 / leaves when event unsubscribed"
    assert lines["goal_node"] == "goal / event upgraded within 30d"
    assert graph.nodes["step_welcome"].stage == "s_start" and graph.nodes["step_pro_mail"].stage == "s_paid"


@pytest.mark.parametrize("path", SAMPLES + [None], ids=[p.stem for p in SAMPLES] + ["trial"])
def test_dot_parses_with_pydot_and_matches_the_graph(path: Path | None) -> None:
    journey = trial() if path is None else build_journey(yaml.safe_load(path.read_text()), str(path))
    graph = build_graph(journey)
    parsed = pydot.graph_from_dot_data(journey_dot(journey))
    assert parsed and len(parsed) == 1
    dot = parsed[0]
    clusters = dot.get_subgraphs()
    assert len([c for c in clusters if c.get_name().startswith("cluster_s_")]) == len(journey.stages)
    node_names = {n.get_name() for c in clusters for n in c.get_nodes()}
    assert node_names == set(graph.nodes)
    assert len(dot.get_edges()) == len(graph.edges)
    edge_labels = {e.get_label().strip('"') for e in dot.get_edges() if e.get_label()}
    assert edge_labels == {e.label for e in graph.edges if e.label}


def test_dot_quotes_labels() -> None:
    dot = journey_dot(trial())
    assert '\\"quoted\\"' in dot
    (parsed,) = pydot.graph_from_dot_data(dot)
    welcome = next(n for c in parsed.get_subgraphs() for n in c.get_nodes() if n.get_name() == "step_welcome")
    assert '"quoted"' in welcome.get_label().replace('\\"', '"')


def test_graph_command_by_id_and_by_file(tmp_path: Path) -> None:
    write_trial_project(tmp_path)
    by_id = run_journey(["graph", "trial"], tmp_path, process=True)
    assert by_id.returncode == 0, by_id.stderr
    by_file = run_journey(["graph", "journeys/trial.yaml"], tmp_path)
    assert by_file.stdout == by_id.stdout
    parse_mermaid(by_id.stdout)
    dot = run_journey(["graph", "trial", "--format", "dot"], tmp_path)
    assert dot.returncode == 0 and pydot.graph_from_dot_data(dot.stdout)


def test_graph_command_errors_are_clear(tmp_path: Path) -> None:
    write_trial_project(tmp_path)
    unknown = run_journey(["graph", "nope"], tmp_path)
    assert unknown.returncode == 2 and "no journey 'nope'" in unknown.stderr and "trial" in unknown.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: broken\nversion: 1\nname: B\nstages: [{id: s, entry: {event: x}, steps: [{wait: soon}]}]\n")
    result = run_journey(["graph", str(broken)], tmp_path, process=True)
    assert result.returncode == 1
    assert "broken.yaml:" in result.stderr and "Traceback" not in result.stderr
