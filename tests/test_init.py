"""`journey init DIR`: a new project that validates, tests, simulates and runs to an outbox as written.

Every check runs the real CLI in a subprocess on the files init wrote, as a new user would.
"""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from test_tick_kit import journey_cli

SCAFFOLD = {
    "project.yaml", "README.md", ".gitignore", ".pre-commit-config.yaml", ".github/workflows/journeys.yml",
    "journeys/welcome.yaml", "templates/base.html",
    "templates/welcome/welcome.html", "templates/welcome/welcome.txt",
    "templates/welcome/first_tip.html", "templates/welcome/first_tip.txt",
    "templates/welcome/nudge.html", "templates/welcome/nudge.txt",
    "examples/contacts.yaml", "examples/scenarios/welcome.scenario.yaml",
    "examples/data/contacts.jsonl", "examples/data/events.jsonl",
    "schemas/journey.schema.json", "schemas/project.schema.json",
    "schemas/contacts.schema.json", "schemas/scenario.schema.json",
}


def written(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scaffolded project, shared by the read-only checks below."""
    parent = tmp_path_factory.mktemp("init")
    made = journey_cli(["init", "acme-journeys"], cwd=parent)
    assert made.returncode == 0, made.stderr
    assert "wrote 21 files into acme-journeys" in made.stdout
    assert "cd acme-journeys && journey validate --strict && journey test" in made.stdout
    return parent / "acme-journeys"


def test_init_writes_every_file_of_a_project(project: Path):
    assert written(project) == SCAFFOLD
    settings = yaml.safe_load((project / "project.yaml").read_text())
    assert settings["name"] == "Acme Journeys"  # from the folder's name
    assert "Acme Journeys" in (project / "README.md").read_text()
    base = (project / "templates/base.html").read_text()
    assert "{{ unsubscribe_url }}" in base and 'class="footer"' in base


def test_the_scaffold_passes_validate_strict_and_test_at_once(project: Path):
    validated = journey_cli(["validate", "--strict"], cwd=project)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "no problems" in validated.stdout
    tested = journey_cli(["test"], cwd=project)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 of 1 scenarios passed (14 expectations)" in tested.stdout


def test_the_scaffold_simulates_and_renders(project: Path):
    simulated = journey_cli(["simulate", "--format", "json"], cwd=project)
    assert simulated.returncode == 0, simulated.stderr
    rendered = journey_cli(["render", "welcome", "welcome_email", "--contact", "ada"], cwd=project)
    assert rendered.returncode == 0, rendered.stderr
    assert "Subject: Welcome, Ada" in rendered.stdout and "List-Unsubscribe:" in rendered.stdout


def test_the_scaffold_runs_through_production_ticks_into_the_outbox(tmp_path: Path):
    made = journey_cli(["init", "shop"], cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "shop"
    demo = journey_cli(["demo"], cwd=root, timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "imported 5 contacts" in demo.stdout and "deployed welcome v1" in demo.stdout
    messages = sorted((root / "outbox").glob("*.eml"))
    # c001 and c004 get all three, c005 too (the project comes after the nudge); c002 reaches the
    # goal after two, c003 unsubscribes after two
    steps = sorted(path.name.split("_1_1_")[1].rsplit("-", 1)[0] for path in messages)
    assert steps == ["first_tip"] * 5 + ["nudge"] * 3 + ["welcome_email"] * 5
    parsed = email.message_from_bytes(messages[0].read_bytes())
    assert parsed["From"] == "Example Team <hello@example.com>" and parsed["List-Unsubscribe"]
    assert (root / "journey.db").is_file()
    ignored = (root / ".gitignore").read_text().split()
    assert "/outbox/" in ignored and "/journey.db*" in ignored


def test_the_ci_workflow_and_the_hook_run_the_strict_checks(project: Path):
    workflow = yaml.safe_load((project / ".github/workflows/journeys.yml").read_text())
    commands = [step.get("run", "") for step in workflow["jobs"]["check"]["steps"]]
    assert any("journey validate --strict" in run for run in commands)
    assert any("journey test" in run for run in commands)
    assert any("journey report --out" in run for run in commands)
    from runner import __version__

    assert workflow["env"]["JOURNEY_RUNNER"] == f"journey-runner=={__version__}"
    hooks = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    assert {hook["id"]: hook["entry"] for hook in hooks} == {
        "journey-validate": "journey validate --strict", "journey-version-bump": "journey validate --base origin/main"}


def test_init_refuses_a_folder_that_is_not_empty_and_names_what_it_would_overwrite(tmp_path: Path):
    (tmp_path / "project.yaml").write_text("name: mine\n")
    (tmp_path / "notes.txt").write_text("keep me\n")
    refused = journey_cli(["init"], cwd=tmp_path)  # DIR defaults to the current folder
    assert refused.returncode == 2
    assert "is not empty: it would overwrite project.yaml" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert written(tmp_path) == {"project.yaml", "notes.txt"}  # nothing written
    assert (tmp_path / "project.yaml").read_text() == "name: mine\n"

    forced = journey_cli(["init", "--force", "--name", "Mine"], cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "(replaced project.yaml)" in forced.stdout
    assert written(tmp_path) == SCAFFOLD | {"notes.txt"}
    assert (tmp_path / "notes.txt").read_text() == "keep me\n"  # files not in the scaffold are left alone
    assert yaml.safe_load((tmp_path / "project.yaml").read_text())["name"] == "Mine"


def test_init_refuses_a_folder_with_other_files_even_when_nothing_would_be_overwritten(tmp_path: Path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("x")
    refused = journey_cli(["init", "work"], cwd=tmp_path)
    assert refused.returncode == 2
    assert "none of the scaffold's files are there yet" in refused.stderr
    assert written(tmp_path / "work") == {"notes.txt"}


def test_a_name_with_yaml_characters_still_validates(tmp_path: Path):
    name = 'Acme: "Q&A" #1, émigré'
    made = journey_cli(["init", "p", "--name", name], cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert yaml.safe_load((tmp_path / "p/project.yaml").read_text())["name"] == name
    validated = journey_cli(["validate", "--strict"], cwd=tmp_path / "p")
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_the_wheel_ships_the_scaffold_and_init_writes_it_from_there(tmp_path: Path, built_wheel: Path):
    names = set(zipfile.ZipFile(built_wheel).namelist())
    assert {"runner/scaffold/project.yaml", "runner/scaffold/dot-github/workflows/journeys.yml",
            "runner/scaffold/dot-pre-commit-config.yaml", "runner/scaffold/dot-gitignore",
            "runner/scaffold/templates/base.html"} <= names
    probe = ("import runner, runner.cli; print(runner.__file__); "
             "runner.cli.main(['init', 'from-wheel'], standalone_mode=False)")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(built_wheel)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert str(built_wheel) in run.stdout.splitlines()[0]  # imported from the wheel, not the checkout
    assert written(tmp_path / "from-wheel") == SCAFFOLD


def test_a_folder_that_cannot_be_written_is_an_error_not_a_traceback(tmp_path: Path):
    (tmp_path / "file").write_text("not a folder")
    refused = journey_cli(["init", "file/project"], cwd=tmp_path)  # its parent is a file
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("error: cannot write the project into file/project: ")
    assert "internal error" not in refused.stderr and "Traceback" not in refused.stderr
