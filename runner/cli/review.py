"""``journey graph``, ``journey diff``, ``journey render``, ``journey report``: reviewing journeys.

Thin shells over ``runner.review``: parse options, call the plain modules,
print; domain errors reach the user through the ``journey`` group (exit codes:
0 ok, 1 problems, 2 usage).
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from runner.cli.common import DEFAULT_DAYS, DatabaseLocation, contacts_path, days_after, in_calendar, open_db
from runner.core.problems import JourneyError, UsageError


def _period(start: str | None, days: int) -> tuple[datetime, datetime]:
    from runner.core.conditions import as_instant
    from runner.simulation.scenarios import DEFAULT_START

    begin = DEFAULT_START
    if start:
        instant = as_instant(start)
        if instant is None:
            raise UsageError(f"--start: '{start}' is not an ISO 8601 time (e.g. 2026-03-02T00:00:00Z)")
        begin = in_calendar(instant, "--start", start)
    return begin, days_after(begin, days)


def _contacts(loaded: Any, contacts_file: Path | None, required: bool) -> list:
    from runner.review.workspace import default_contacts
    from runner.simulation.testcontacts import contacts_by_id, load_test_contacts

    if not required and contacts_file is None and default_contacts(loaded.root) is None:
        return []
    contacts = load_test_contacts(contacts_path(contacts_file, loaded.root))
    contacts_by_id(contacts)
    return contacts


START_OPTION = click.option("--start", help="Simulation start, ISO 8601 (default: 2026-01-05T00:00:00Z, a Monday).")
DAYS_OPTION = click.option("--days", type=int, default=DEFAULT_DAYS, show_default=True, help="Days to simulate.")
CONTACTS_OPTION = click.option(
    "--contacts", "contacts_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Test contacts: YAML, JSONL or CSV (default: the project's examples/contacts.yaml).",
)


@click.command("graph")
@click.argument("journey")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
def graph(journey: str, fmt: str) -> None:
    """Draw JOURNEY (an id or a file) as a Mermaid flowchart or Graphviz DOT.

    Shows stages (one box each), entries, steps, waits with durations,
    branches, split weights and holdout, wait_for paths, exits and the goal.
    Paste Mermaid into a GitHub comment inside ```mermaid fences; render DOT
    with `dot -Tsvg`.
    """
    from runner.review.dot import journey_dot
    from runner.review.mermaid import journey_mermaid
    from runner.review.workspace import journey_from_file, load_checked, select_journey

    if Path(journey).is_file():
        chosen = journey_from_file(Path(journey))
    else:
        chosen = select_journey(load_checked(), journey)
    click.echo(journey_dot(chosen) if fmt == "dot" else journey_mermaid(chosen), nl=False)


@click.command("diff")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--base", "base_ref", help="Compare every journey changed since this git ref (e.g. origin/main).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
def diff(files: tuple[Path, ...], base_ref: str | None, fmt: str) -> None:
    """Show what changed between two journey files (OLD NEW) or since a git ref (--base REF).

    A semantic diff: stages and steps added, removed or reordered, timing
    ("wait 2d → 3d"), conditions, subjects, templates, splits, settings, and
    whether the version was bumped. With --base, the templates and project.yaml
    changed since REF are listed too (with lines added and removed). Exit code 0 when the diff could be
    computed (changes or not), 1 when a file cannot be read, 2 for usage errors.
    """
    from runner.language.yamlsource import load_file
    from runner.review.diff import FORMATTERS, diff_journeys
    from runner.review.gitbase import compare_with_base

    if base_ref is not None:
        if files:
            raise UsageError("give two files or --base REF, not both")
        comparison = compare_with_base(None, base_ref)
        if comparison.problems:
            raise JourneyError("some changed journey files cannot be read", comparison.problems)
        from runner.language.loader import find_project_root
        from runner.review.filechanges import changed_project_files, format_with_files
        from runner.review.gitbase import repo_root

        root = find_project_root()
        other_files = changed_project_files(base_ref, root, repo_root(root))
        click.echo(format_with_files(fmt, comparison.diffs, other_files, FORMATTERS[fmt](comparison.diffs)), nl=False)
        return
    else:
        if len(files) != 2:
            raise UsageError("give two journey files (OLD NEW), or --base REF")
        documents = []
        for path in files:
            document, problems = load_file(path)
            if document is None:
                raise JourneyError(f"{path}: cannot read the journey", problems)
            documents.append(document)
        old, new = documents
        diffs = [diff_journeys(old.data, new.data, old.file, new.file)]
    click.echo(FORMATTERS[fmt](diffs), nl=False)


@click.command("render")
@click.argument("journey")
@click.argument("step", required=False)
@click.option("--contact", "contact_id", help="Test contact id (required without --out).")
@CONTACTS_OPTION
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write .eml, .html and .txt files (every email step and contact unless narrowed) and index.html.")
@click.option("--eml", "raw_eml", is_flag=True, help="Print the raw RFC 5322 message instead of headers + parts.")
@START_OPTION
@DAYS_OPTION
def render(journey: str, step: str | None, contact_id: str | None, contacts_file: Path | None, out_dir: Path | None,
           raw_eml: bool, start: str | None, days: int) -> None:
    """Render STEP of JOURNEY for a test contact exactly as production would send it.

    The contact is simulated; its attributes at the moment of the send are
    used (its initial attributes when the simulation never reaches the
    step). Same renderer, message builder and unsubscribe token as `journey
    run`. With --out, writes every email step (or STEP) for every test
    contact (or --contact) plus an index.html linking them.
    """
    from runner.review.renderout import MessageRenderer, describe_message, render_all
    from runner.review.workspace import load_checked, select_journey

    loaded = load_checked()
    chosen = select_journey(loaded, journey)
    contacts = _contacts(loaded, contacts_file, required=True)
    begin, end = _period(start, days)
    if out_dir is None and (step is None or contact_id is None):
        raise UsageError("name a STEP and a --contact, or give --out DIR to render them all")
    # a draft file outside the project is simulated in place of the project's version
    journeys = [j for j in loaded.journeys if j.id != chosen.id] + [chosen]
    renderer = MessageRenderer(loaded.project, journeys, contacts, begin, end)
    if step is not None and step not in chosen.steps:
        raise UsageError(f"no step '{step}' in {chosen.id} (email steps: {', '.join(s.id for s in chosen.email_steps())})")
    if out_dir is None:
        assert step is not None and contact_id is not None  # refused above without --out
        result = renderer.render(chosen, step, contact_id)
        if result.error:
            raise JourneyError(f"{chosen.id}.{step} for {contact_id}: {result.error}")
        if raw_eml:
            click.echo(result.eml().decode("utf-8", "replace"), nl=False)
        else:
            click.echo(describe_message(result), nl=False)
        return
    run = render_all(renderer, [chosen], out_dir, step, [contact_id] if contact_id else None)
    click.echo(f"{len(run.results) - len(run.failed)} messages written to {out_dir}; open {run.index}")
    for failure in run.failed:
        click.echo(f"error: {failure.journey}.{failure.step} for {failure.contact}: {failure.error}", err=True)
    sys.exit(1 if run.failed else 0)


def _production(db_path: str) -> list:
    """(deployed journey version, its stats) for every version production touched."""
    from runner.production.deploy import deployed_set
    from runner.production.stats import journey_stats
    from runner.review.graph import steps_in_file_order

    with open_db(db_path, must_exist=True) as store:
        if not store.deployments():
            raise JourneyError(f"nothing is deployed in {store.location}: run `journey deploy` first")
        deployed = deployed_set(store)
        journeys = {(j.id, j.version): j for j in deployed.current + deployed.pinned}
        found = journey_stats(store, journeys.values(), step_order=steps_in_file_order)
    return [(journeys[(stats.journey, stats.version)], stats) for stats in found]


def _changed_files(root: Path, base_ref: str | None) -> list:
    """With --base, the templates and project.yaml changed since the ref (as ``journey diff --base`` lists them)."""
    if base_ref is None:
        return []
    from runner.review.filechanges import changed_project_files
    from runner.review.gitbase import repo_root

    return changed_project_files(base_ref, root, repo_root(root))


@click.command("report")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for index.html, its assets and the rendered emails.")
@CONTACTS_OPTION
@click.option("--base", "base_ref", help="Also show what changed since this git ref (e.g. origin/main).")
@START_OPTION
@DAYS_OPTION
@click.option("--db", "db_path", type=DatabaseLocation(must_exist=True), metavar="PATH|URL",
              help="Also show production figures from this database (a SQLite file or a postgresql:// URL), "
              "beside the simulated ones: counts on every step of each deployed version's diagram, the funnel as a chart, variants "
              "and holdout with 95% intervals (as `journey stats`).")
def report(out_dir: Path, contacts_file: Path | None, base_ref: str | None, start: str | None, days: int,
           db_path: str | None) -> None:
    """Write a static HTML report for a pull request (opens from disk, no server).

    Per journey: its diagram, each test contact's simulated timeline as a
    chart, funnel counts per step and split variant, email previews, and with
    --base what changed since that ref; with --db, what production did with
    each deployed version. Exit code 1 when the project has errors or an
    email cannot be rendered (the report still shows it).
    """
    from runner.review.gitbase import compare_with_base
    from runner.review.report import ReportInputs, build_report
    from runner.review.workspace import load_checked

    loaded = load_checked()
    contacts = _contacts(loaded, contacts_file, required=False)
    begin, end = _period(start, days)
    diffs = None
    if base_ref is not None:
        comparison = compare_with_base(loaded.root, base_ref)
        if comparison.problems:
            raise JourneyError("some changed journey files cannot be read", comparison.problems)
        diffs = comparison.diffs
    inputs = ReportInputs(loaded.project, loaded.journeys, contacts, begin if contacts else None,
                          end if contacts else None, diffs, base_ref, files=_changed_files(loaded.root, base_ref),
                          production=_production(db_path) if db_path is not None else ())
    index, failures = build_report(inputs, out_dir)
    click.echo(f"report written: {index}")
    for failure in failures:
        click.echo(f"error: {failure.journey}.{failure.step} for {failure.contact}: {failure.error}", err=True)
    sys.exit(1 if failures else 0)
