"""``journey plan`` and ``journey deploy``: what would change, and recording it.

Thin shells over ``runner.production.deploy``. Exit codes: 0 ok, 1 problems (invalid
project, a changed journey whose version was not bumped), 2 usage error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from runner.cli.common import DB_OPTION, open_db, project_root
from runner.core.problems import JourneyError

FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                             show_default=True)


@click.command("plan")
@FORMAT_OPTION
@DB_OPTION
def plan(fmt: str, db_path: str | None) -> None:
    """Show what deploying the working tree would change.

    Journeys added/removed, steps added/removed/changed, how many in-flight
    contacts sit at each removed or changed step, and where the contacts at
    each in-flight position (version, stage, next step) will continue: pinned
    to their version, mapped by a migration, or restarted (with a warning when
    a `map` restarts anyone). Exit 1 when the deploy would be refused (content
    changed without a version bump).
    """
    from runner.production.deploy import load_working_tree, make_plan

    tree = load_working_tree(project_root())
    with open_db(db_path, tree.root, empty_if_missing=True) as store:  # no database: every journey is new
        result = make_plan(store, tree.journeys)
    _print_plan(result, fmt)
    raise SystemExit(1 if result.refused else 0)


@click.command("deploy")
@FORMAT_OPTION
@DB_OPTION
def deploy(fmt: str, db_path: str | None) -> None:
    """Record the working tree's journey versions in the database.

    From now on `journey run` runs these versions. Contacts in flight stay on
    the version they entered unless the new version declares a `migration`.
    A journey whose content changed but whose `version` did not is refused,
    and then nothing is recorded. The templates are recorded too: production
    renders them as deployed, whatever the files hold later.
    """
    from runner.language.projectfiles import UnsafeFile
    from runner.language.templatecheck import read_templates
    from runner.production.deploy import deploy as record
    from runner.production.deploy import load_working_tree

    tree = load_working_tree(project_root())
    try:
        templates = read_templates(tree.project.templates_path)
    except UnsafeFile as unsafe:
        raise JourneyError(f"deploy refused; nothing was recorded: {unsafe}") from None
    with open_db(db_path, tree.root) as store:
        result = record(store, tree.journeys, datetime.now(UTC), templates)
    if fmt == "json":
        click.echo(json.dumps({
            "recorded": [{"journey": j, "version": v} for j, v in result.recorded],
            "unchanged": [{"journey": j, "version": v} for j, v in result.unchanged],
            **result.plan.as_dict(),
        }, indent=2))
        return
    _print_plan(result.plan, "text")
    for journey_id, version in result.recorded:
        click.echo(f"deployed {journey_id} v{version}")
    if not result.recorded:
        click.echo("nothing new to deploy")


def _print_plan(result: Any, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    for item in result.journeys:
        versions = _versions(item)
        click.echo(f"{_MARK[item.change]} {item.journey} {versions}: {item.change}")
        for label, steps in (("+", item.steps_added), ("-", item.steps_removed), ("~", item.steps_changed)):
            for step in steps:
                at = item.in_flight_at.get(step)
                suffix = f"  ({at} in-flight contact(s) here)" if at else ""
                click.echo(f"    {label} {step}{suffix}")
        if item.in_flight and item.change in ("changed", "removed"):
            pin = f"migrate {item.migration}" if item.migration else f"stay pinned to v{item.deployed_version} and older"
            click.echo(f"    {item.in_flight} contact(s) in flight: {pin}")
        for move in item.continuations:
            click.echo(f"      {_move_text(move)}")
        for warning in item.warnings:
            click.echo(f"    warning: {warning}")
        if item.message:
            click.echo(f"    {item.message}")


def _move_text(move: Any) -> str:
    """``v1 main/tips -> v2 main/survey: 2 contact(s), mapped`` (or ``..., stay pinned to v1``)."""
    here = f"v{move.version} {move.stage}/{move.step or '(stage done)'}"
    if move.outcome == "pinned":
        return f"{here}: {move.contacts} contact(s), stay pinned to v{move.version}"
    there = f"v{move.to_version} {move.to_stage}/{move.to_step or '(stage done)'}"
    outcome = "restart (the stage's emails are sent again)" if move.outcome == "restart" else move.outcome
    return f"{here} -> {there}: {move.contacts} contact(s), {outcome}"


_MARK = {"added": "+", "removed": "-", "changed": "~", "unchanged": "=", "refused": "!"}


def _versions(item: Any) -> str:
    if item.deployed_version is None:
        return f"v{item.new_version}"
    if item.new_version is None or item.new_version == item.deployed_version:
        return f"v{item.deployed_version}"
    return f"v{item.deployed_version} -> v{item.new_version}"
