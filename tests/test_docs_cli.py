"""The documentation covers every command, and the generated reference is current."""

from pathlib import Path

import click
import pytest

from runner.cli import COMMANDS, main
from runner.cli.reference import reference

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_up_to_date():
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == reference(), "docs/cli.md is stale: run python -m runner.cli.reference > docs/cli.md"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_exists_and_has_a_guide(name):
    ctx = click.Context(main, info_name="journey")
    command = main.get_command(ctx, name)
    assert command is not None, f"journey {name} is registered in COMMANDS but its module is missing"
    guides = [p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md"]
    assert any(f"journey {name}" in p.read_text(encoding="utf-8") for p in guides), (
        f"no guide in docs/ explains `journey {name}`"
    )
