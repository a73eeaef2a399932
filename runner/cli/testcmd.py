"""``journey test``: run scenario files and check their expectations.

A thin shell over runner.simulation.scenarios: finds the scenarios, runs each, prints
one line per scenario (and the details of each failure), writes JUnit XML
when asked and exits 1 when anything failed.
"""

from __future__ import annotations

from pathlib import Path

import click

from runner.core.problems import JourneyError


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the results as JUnit XML to this file (for CI).")
@click.option("-v", "--verbose", is_flag=True, help="Show every expectation, not only failures.")
def test(paths: tuple[Path, ...], junit_path: Path | None, verbose: bool) -> None:
    """Run scenario files (PATHS: files or folders; default: examples/ of the project).

    Each scenario simulates its contacts and checks its expectations; a
    failure shows the expectation, what happened instead and the contact's
    timeline around it. Exit code 1 when any scenario fails.
    """
    from runner.simulation.scenarios import (
        failure_text,
        find_scenarios,
        load_checked_project,
        run_scenario,
        write_junit,
    )

    loaded = load_checked_project()
    files = find_scenarios(paths or [loaded.root / "examples"])
    if not files:
        raise JourneyError("no scenario files (*.scenario.yaml) found")
    results = []
    for path in files:
        result = run_scenario(path, loaded)
        results.append(result)
        if result.passed:
            click.echo(f"ok   {result.name} ({path}, {len(result.checks)} expectations)")
        if verbose:
            for check in result.checks:
                click.echo(f"       {'ok  ' if check.passed else 'FAIL'} {check.expectation.describe()}: {check.message}")
        if not result.passed:
            click.echo(failure_text(result))
    if junit_path is not None:
        write_junit(results, junit_path)
    failed = sum(1 for r in results if not r.passed)
    checks = sum(len(r.checks) for r in results)
    click.echo(f"\n{len(results) - failed} of {len(results)} scenarios passed ({checks} expectations)")
    raise SystemExit(1 if failed else 0)
