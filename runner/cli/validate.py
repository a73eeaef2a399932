"""``journey validate``: check journeys, the project file and templates before they run."""

from __future__ import annotations

from pathlib import Path

import click

from runner.cli.common import JourneyRef, journey_paths
from runner.language.diagnostics import FORMATS, default_format, render


@click.command("validate")
@click.argument("refs", nargs=-1, type=JourneyRef(), metavar="[JOURNEY|PATH]...")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format (default: text; github when GITHUB_ACTIONS=true).")
@click.option("--strict", is_flag=True, help="Fail on warnings too (unused segments, undeclared attributes, ...).")
@click.option("--base", "base_ref", metavar="REF",
              help="Also report journeys changed since this git ref that kept their version (e.g. origin/main).")
def validate(refs: tuple[Path | str, ...], fmt: str | None, strict: bool, base_ref: str | None) -> None:
    """Check journey files, project.yaml and templates; report every problem.

    Journey ids, files or folders (default: the project's journeys folder,
    project.yaml and all templates). Exit code 0: no errors; 1: problems
    found (warnings count with --strict); 2: usage error.
    """
    from runner.language.loader import validate as run_validation

    fmt = fmt or default_format()
    paths = tuple(journey_paths(refs))
    result = run_validation(paths, strict=strict)
    if base_ref is not None:  # see docs/review.md
        from runner.language.loader import find_project_root
        from runner.review.gitbase import version_bump_problems

        root = find_project_root(paths[0] if paths else None)
        result.problems = sorted(result.problems + version_bump_problems(root, base_ref))
    click.echo(render(result.problems, result.files, fmt), nl=False)
    raise SystemExit(result.exit_code)
