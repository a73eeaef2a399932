"""Generate docs/cli.md from the commands' own help texts.

The reference is generated, never hand-edited, so it cannot drift from the
CLI: ``python -m runner.cli.reference > docs/cli.md`` rewrites it, and a test
fails when the committed file differs from what the CLI says.
"""

from __future__ import annotations

import click

from runner.cli import main

HEADER = """# Command reference

Generated from `journey … --help` by `python -m runner.cli.reference > docs/cli.md`;
a test keeps it in sync. Exit codes everywhere: 0 ok, 1 problems found, 2 usage error
(1, silently, when the reader of the output went away: `journey graph … | dot` without dot).
The guides explain each command in depth: see the links in the README.
"""


def _walk(command: click.Command, path: list[str], ctx: click.Context):
    """Every command under ``command``, with a context made the way click makes it
    (so group settings such as ``-h`` apply); arguments are not required here."""
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                sub_ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True)
                yield from _walk(sub, path + [name], sub_ctx)


def commands() -> list[tuple[str, click.Command, click.Context]]:
    """(``journey …`` title, command, context) for the whole CLI, in reference order."""
    root_ctx = main.make_context("journey", [], resilient_parsing=True)
    return [(" ".join(["journey", *path]), command, ctx) for path, command, ctx in _walk(main, [], root_ctx)]


def reference() -> str:
    """The whole reference as Markdown."""
    parts = [HEADER]
    for title, command, ctx in commands():
        text = command.get_help(ctx).replace("\r\n", "\n")
        parts.append(f"## `{title}`\n\n```text\n{text}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    click.echo(reference(), nl=False)
