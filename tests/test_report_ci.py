"""The CI recipe and the pre-commit hooks only call commands and options that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from runner.cli import main

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "journeys.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"


def workflow_commands() -> list[str]:
    """Every `journey …` command line in the workflow's run: blocks, expressions replaced by a ref."""
    data = yaml.safe_load(WORKFLOW.read_text())
    lines = []
    for job in data["jobs"].values():
        for step in job["steps"]:
            for line in (step.get("run") or "").splitlines():
                line = re.sub(r"\$\{\{[^}]*\}\}", "main", line.strip())
                line = line.split(">>")[0].strip()
                if line.startswith("journey "):
                    lines.append(line)
    return lines


def hook_commands() -> list[str]:
    return [" ".join([hook["entry"], *hook.get("args", [])]) for hook in yaml.safe_load(HOOKS.read_text())]


def test_the_workflow_runs_every_check_the_recipe_promises() -> None:
    commands = workflow_commands()
    expected = ["journey validate --strict --format github", "journey validate --base", "journey test --junit",
                "journey diff --base", "journey simulate", "journey report --out"]
    for prefix in expected:
        assert any(command.startswith(prefix) for command in commands), prefix
    assert "--format markdown" in next(c for c in commands if c.startswith("journey simulate"))
    data = yaml.safe_load(WORKFLOW.read_text())
    checkout = next(s for s in data["jobs"]["check"]["steps"] if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0


def test_ci_and_the_commit_hook_validate_strictly() -> None:
    """A warning (an attribute the tracking plan lacks: a typo) must not ship: CI and the hook fail on it."""
    validations = [c for c in workflow_commands() + hook_commands()
                   if c.startswith("journey validate") and "--base" not in c]
    assert validations and all("--strict" in shlex.split(c) for c in validations), validations


@pytest.mark.parametrize("command", workflow_commands() + hook_commands())
def test_commands_parse_with_the_real_cli(command: str) -> None:
    words = shlex.split(command)
    assert words[0] == "journey"
    context = click.Context(main, info_name="journey")
    sub = main.get_command(context, words[1])
    assert sub is not None, command
    sub.make_context(words[1], words[2:], parent=context)  # raises on an unknown option or a bad value
