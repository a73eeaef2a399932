"""``journey stats``: production figures per deployed journey version (funnel, variants, holdout).

A thin shell over ``runner.production.stats`` (the figures) and
``runner.production.statstext`` (their formats); exit codes: 0 ok, 1 problems, 2 usage error.
"""

from __future__ import annotations

from pathlib import Path

import click

from runner.cli.common import DB_OPTION, JourneyRef, journey_id, open_db, project_root
from runner.core.problems import JourneyError

DAY = click.DateTime(formats=["%Y-%m-%d"])


@click.command("stats")
@click.argument("journey", required=False, type=JourneyRef())
@click.option("--since", type=DAY, help="First UTC day counted (YYYY-MM-DD).")
@click.option("--until", type=DAY, help="First UTC day no longer counted (YYYY-MM-DD; excluded).")
@click.option("--version", "version", type=click.IntRange(min=1), help="Only this deployed version.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown", "csv"]), default="table",
              show_default=True)
@DB_OPTION
def stats(journey: Path | str | None, since, until, version: int | None, fmt: str, db_path: str | None) -> None:
    """Show what production did with each deployed journey version (all, or JOURNEY: an id or a file).

    The funnel: entered, how often each step ran (and its share of the
    entries), sent / skipped by reason / failed per email step, opens and
    clicks (email_opened / email_clicked events naming the journey and step),
    exits by reason, goal reached within its window. Each pair of split
    variants and the treated contacts against the holdout are compared with a
    95% interval and a p-value. Days are UTC: the funnel counts what happened
    on them; variants compare the contacts who entered on them.
    """
    from runner.production.deploy import deployed_set
    from runner.production.stats import Window, journey_stats
    from runner.production.statstext import render
    from runner.review.graph import steps_in_file_order

    journey = journey_id(journey) if journey is not None else None
    window = Window(journey, version, since and f"{since:%Y-%m-%d}", until and f"{until:%Y-%m-%d}")
    if since and until and until <= since:
        raise JourneyError("--until must be a later day than --since")
    with open_db(db_path, project_root(), must_exist=True) as store:
        if not store.deployments():
            raise JourneyError("nothing is deployed in this database: run `journey deploy` first")
        deployed = deployed_set(store)
        journeys = deployed.current + deployed.pinned
        _check_known(journeys, journey, version)
        found = journey_stats(store, journeys, window, step_order=steps_in_file_order)
    click.echo(render(found, window, fmt), nl=False)


def _check_known(journeys: list, journey: str | None, version: int | None) -> None:
    """A JOURNEY or --version that was never deployed is a mistake, not an empty report."""
    ids = sorted({j.id for j in journeys})
    if journey is not None and journey not in ids:
        raise JourneyError(f"no deployed journey {journey!r} (deployed: {', '.join(ids)})")
    versions = sorted({j.version for j in journeys if journey in (None, j.id)})
    if version is not None and version not in versions:
        raise JourneyError(f"no deployed version {version} of {journey or 'any journey'} "
                           f"(deployed: {', '.join(f'v{v}' for v in versions)})")
