"""``journey simulate`` and ``journey explain``: thin shells over the engine.

Logic lives in runner.simulation.simulate (the virtual clock), runner.simulation.timeline (what is
printed) and runner.simulation.explain; this module parses options, turns domain errors
into exit codes and prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import click

from runner.cli.common import (
    DEFAULT_DAYS,
    JOURNEYS_ARGUMENT,
    contacts_path,
    days_after,
    in_calendar,
    journey_paths,
    terminal_progress,
)
from runner.core.problems import JourneyError, UsageError

FORMATS = ("table", "json", "markdown")


def parse_instant(text: str, option: str) -> datetime:
    from runner.core.conditions import as_instant

    instant = as_instant(text)
    if instant is None:
        raise UsageError(f"{option}: '{text}' is not an ISO 8601 time (e.g. 2026-03-02T00:00:00Z)")
    return in_calendar(instant, option, text)


def load_inputs(journeys: tuple[Path | str, ...], contacts_file: Path | None):
    """(loaded project, test contacts); JourneyError on any problem."""
    from runner.simulation.scenarios import check_contacts, load_checked_project
    from runner.simulation.testcontacts import load_test_contacts

    loaded = load_checked_project(journey_paths(journeys))
    if not loaded.journeys:
        raise JourneyError("no journeys to simulate (give journey ids or files, or run inside a project)")
    contacts = load_test_contacts(contacts_path(contacts_file, loaded.root))
    check_contacts(contacts)  # duplicate ids and unknown zones are errors
    return loaded, contacts


def _counted(contacts: list, advance: Callable[[str], None]) -> Iterator:
    """The contacts, each reported to the progress bar as the simulation takes it."""
    for contact in contacts:
        advance(contact.id)
        yield contact


def period(start: str | None, days: int | None, until: str | None) -> tuple[datetime, datetime]:

    from runner.simulation.scenarios import DEFAULT_START

    if days is not None and until is not None:
        raise UsageError("give --days or --until, not both")
    begin = parse_instant(start, "--start") if start else DEFAULT_START
    if until is not None:
        end = parse_instant(until, "--until")
        if end <= begin:
            raise UsageError(f"--until ({until}) must be after the start ({begin.isoformat()})")
        return begin, end
    return begin, days_after(begin, days if days is not None else DEFAULT_DAYS)


CONTACTS_OPTION = click.option(
    "--contacts", "contacts_file", type=click.Path(dir_okay=False, path_type=Path),
    help="Test contacts: YAML (contacts: list), JSONL or CSV (default: the project's examples/contacts.yaml).",
)


@click.command()
@JOURNEYS_ARGUMENT
@CONTACTS_OPTION
@click.option("--start", help="Simulation start, ISO 8601 (default: 2026-01-05T00:00:00Z, a Monday).")
@click.option("--days", type=int, help=f"How many days to simulate (default: {DEFAULT_DAYS}).")
@click.option("--until", help="Simulate up to this ISO 8601 instant instead of --days.")
@click.option("--contact", "contact_id", help="Show only this contact's timeline.")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True)
def simulate(journeys, contacts_file, start, days, until, contact_id, output_format) -> None:
    """Simulate JOURNEYs (ids, files or folders; default: the project's) over virtual time.

    Prints every decision (entries, stage moves, waits, sends with their
    rendered subject, skips and deferrals with the reason, goals, exits) in
    UTC and the contact's local time, then a summary per journey. The same
    inputs always print the same output.

    Every send is rendered in full (subject, HTML, text) and built as
    production builds it; one that cannot be (a template failing for that
    contact) shows as `send_failed` with the template file:line, is listed on
    stderr, and the exit code is 1.
    """
    from runner.review.graph import steps_in_file_order
    from runner.review.markdown import simulation_markdown
    from runner.simulation import timeline
    from runner.simulation.simulate import simulate as run_simulation
    from runner.simulation.simulate import summarize

    try:
        begin, end = period(start, days, until)
        loaded, contacts = load_inputs(journeys, contacts_file)
        if contact_id is not None and contact_id not in {c.id for c in contacts}:
            raise UsageError(f"--contact: no contact '{contact_id}' in {contacts_file or 'examples/contacts.yaml'}")
        if contact_id is not None:  # contacts never influence each other: simulate only this one
            contacts = [c for c in contacts if c.id == contact_id]
        with terminal_progress("simulating", len(contacts)) as advance:
            simulation = run_simulation(loaded.project, loaded.journeys, _counted(contacts, advance), begin, end)
        records = timeline.timeline_records(simulation, loaded.project, contact=contact_id)

        def summaries() -> list[dict]:  # emails in the journey's order, as the Markdown summary lists them
            return timeline.summaries_for(simulation, records, steps_in_file_order)

        if output_format == "json":
            click.echo(timeline.to_json(simulation, records, summaries()), nl=False)
        elif output_format == "markdown":  # the timeline made above: subjects are not rendered twice
            click.echo(simulation_markdown(simulation, summarize(simulation), simulation.journeys, loaded.project,
                                           records=records), nl=False)
        else:
            click.echo(timeline.to_table(simulation, records, summaries()), nl=False)
    except ValueError as error:  # a condition or time the checks let through: a message, never a traceback
        raise JourneyError(str(error)) from None
    failed = [record for record in records if record.action == "send_failed"]
    if failed:  # production would record these sends as failed: the output above shows them in place
        click.echo(f"error: {len(failed)} send(s) cannot be built as production would build them:", err=True)
        for record in failed:
            click.echo(f"  contact {record.contact}, step {record.journey}.{record.step} at {timeline.iso(record.at)}: "
                       f"{record.reason}", err=True)
        raise SystemExit(1)


@click.command()
@click.argument("contact_id", metavar="CONTACT")
@JOURNEYS_ARGUMENT
@CONTACTS_OPTION
@click.option("--at", "at_text", required=True, help="The instant to explain, ISO 8601.")
@click.option("--start", help="Simulation start, ISO 8601 (default: 2026-01-05T00:00:00Z).")
@click.option("--format", "output_format", type=click.Choice(("text", "json")), default="text", show_default=True)
def explain(contact_id, journeys, contacts_file, at_text, start, output_format) -> None:
    """Explain which segments and stages CONTACT is in at --at, and why.

    JOURNEYs (ids, files or folders) narrow it; default: the project's.

    The contact is simulated from --start up to --at; each segment, stage
    entry and exit condition is then shown with the parts that held (✓) or
    failed (✗).
    """
    from runner.simulation.explain import explain_contact, explanation_dict, explanation_lines

    try:
        at = parse_instant(at_text, "--at")
        begin = parse_instant(start, "--start") if start else None
        loaded, contacts = load_inputs(journeys, contacts_file)
        contact = next((c for c in contacts if c.id == contact_id), None)
        if contact is None:
            raise UsageError(f"no contact '{contact_id}' in {contacts_file or 'examples/contacts.yaml'}")
        from runner.simulation.scenarios import DEFAULT_START

        begin = begin or DEFAULT_START
        if at < begin:
            raise UsageError(f"--at ({at_text}) is before the start ({begin.isoformat()})")
        result = explain_contact(loaded.project, loaded.journeys, contact, begin, at)
    except ValueError as error:
        raise JourneyError(str(error)) from None
    if output_format == "json":
        click.echo(json.dumps(explanation_dict(result), indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(explanation_lines(result)))
