"""The documentation covers every command and option; the CLI reference is generated from the CLI."""

import re
from pathlib import Path

import click
import pytest

from runner.cli import COMMANDS, main
from runner.cli.reference import commands

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def _sections() -> dict[str, str]:
    """``journey …`` title -> its section of docs/cli.md."""
    parts = re.split(r"^## `(journey[^`]*)`$", REFERENCE, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


@pytest.mark.parametrize("title,command", [(t, c) for t, c, _ in commands()], ids=lambda v: str(v))
def test_cli_reference_documents_every_command_and_option(title, command):
    # Exact help text differs between click releases, so the reference is
    # compared by content: every command has a section naming all its options.
    section = _sections().get(title)
    assert section is not None, f"docs/cli.md has no section for `{title}`: run python -m runner.cli.reference > docs/cli.md"
    for param in command.params:
        if isinstance(param, click.Option):
            assert any(opt in section for opt in param.opts), f"`{title}` option {param.opts} is missing from docs/cli.md"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_exists_and_has_a_guide(name):
    ctx = click.Context(main, info_name="journey")
    command = main.get_command(ctx, name)
    assert command is not None, f"journey {name} is registered in COMMANDS but its module is missing"
    guides = [p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md"]
    assert any(f"journey {name}" in p.read_text(encoding="utf-8") for p in guides), (
        f"no guide in docs/ explains `journey {name}`"
    )
