"""``simulation_markdown``: the step summary CI posts (summary first, diagrams, folded timelines, < 1 MiB)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from test_report_project import run_journey, write_trial_project

from runner.language.loader import load_project
from runner.review.markdown import MAX_BYTES, cell, simulation_markdown
from runner.simulation.scenarios import DEFAULT_START
from runner.simulation.simulate import simulate, summarize
from runner.simulation.testcontacts import TestContact as SimContact
from runner.simulation.testcontacts import load_test_contacts


def trial_simulation(root: Path, contacts=None):
    loaded = load_project(root)
    contacts = contacts if contacts is not None else load_test_contacts(root / "examples" / "contacts.yaml")
    simulation = simulate(loaded.project, loaded.journeys, contacts, DEFAULT_START, DEFAULT_START + timedelta(days=14))
    return loaded, simulation


def test_summary_table_comes_first_then_diagrams_then_folded_timelines(tmp_path: Path) -> None:
    loaded, simulation = trial_simulation(write_trial_project(tmp_path))
    text = simulation_markdown(simulation, summarize(simulation), loaded.journeys, loaded.project)
    table = text.index("| journey | entered |")
    fence = text.index("```mermaid\nflowchart TD")
    details = text.index("<details>")
    assert table < fence < details
    row = next(line for line in text.splitlines() if line.startswith("| trial v1 |"))
    sends = sum(1 for d in simulation.decisions if d.action == "send" and d.step == "welcome")
    assert f"| 2 | welcome {sends}, tip_a 1, tip_b 0, o " in row
    # one folded timeline per contact with decisions, each a table of its decisions
    contacts = sorted({d.contact for d in simulation.decisions})
    assert re.findall(r"<summary>(\w+):", text) == contacts
    assert text.count("<details>") == text.count("</details>") == len(contacts)
    assert "| tip_a | send | “B”" not in text and "| tip_a | send | “A” |" in text


def test_cells_cannot_break_the_table() -> None:
    assert cell("a|b<script>`x`\nnext") == "a\\|b&lt;script&gt;\\`x\\` next"


def test_output_stays_under_the_limit_with_a_note(tmp_path: Path) -> None:
    root = write_trial_project(tmp_path)
    many = [
        SimContact(f"c{i:04d}", "UTC", {"email": f"c{i}@example.com", "first_name": "X" * 50}, [],
                    [{"at": "+0d 10:00", "event": "signed_up"}])
        for i in range(400)
    ]
    loaded, simulation = trial_simulation(root, many)
    full = simulation_markdown(simulation, summarize(simulation), loaded.journeys, loaded.project)
    assert "Truncated" not in full and full.count("<details>") == 400
    limit = len(full.encode()) // 3
    cut = simulation_markdown(simulation, summarize(simulation), loaded.journeys, loaded.project, max_bytes=limit)
    assert len(cut.encode()) <= limit
    kept = cut.count("<details>")
    assert 0 < kept < 400 and cut.count("</details>") == kept
    assert f"**Truncated:** {400 - kept} of 400 contact timelines left out" in cut
    assert MAX_BYTES == 1024 * 1024


def test_simulate_command_prints_it(tmp_path: Path) -> None:
    root = write_trial_project(tmp_path)
    result = run_journey(["simulate", "--contacts", "examples/contacts.yaml", "--format", "markdown"], root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("## Journey simulation: 2026-01-05T00:00:00Z → 2026-02-04T00:00:00Z")  # 30 days, as render and report
    assert "```mermaid" in result.stdout
