"""``journey init``: write a new project that validates and tests green at once."""

from __future__ import annotations

from pathlib import Path

import click

from runner.core.problems import JourneyError, UsageError


@click.command("init")
@click.argument("folder", metavar="[DIR]", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The project's name (default: from DIR's name, e.g. acme-journeys -> Acme Journeys).")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty, replacing the scaffold's "
              "files that are already there (other files are left alone).")
def init(folder: Path, name: str | None, force: bool) -> None:
    """Write a new journey project into DIR (default: the current folder).

    project.yaml with a tracking plan, one journey (journeys/welcome.yaml) and
    its templates (a base layout with footer and unsubscribe link, HTML and
    text), test contacts, a scenario, the JSON Schemas for editors, the CI
    workflow (.github/workflows/journeys.yml), a pre-commit configuration and a
    README that says what to edit first. It passes `journey validate --strict`
    and `journey test` as written. A folder that is not empty is refused
    unless --force.
    """
    from runner.language import scaffold

    planned = scaffold.scaffold_files(name or scaffold.default_name(folder))
    if folder.is_dir() and any(folder.iterdir()) and not force:
        clashes = scaffold.existing(folder, planned)
        what = (f"it would overwrite {_listed(clashes)}" if clashes
                else "none of the scaffold's files are there yet, but it would write among other files")
        raise UsageError(f"{folder} is not empty: {what}. Give an empty or new DIR, or --force to write anyway")
    replaced = scaffold.existing(folder, planned)
    try:
        scaffold.write(folder, planned)
    except OSError as error:  # a read-only or missing parent, a full disk: say so, never a traceback
        raise JourneyError(f"cannot write the project into {folder}: {error.strerror or error} "
                           f"({error.filename or folder})") from None
    click.echo(f"wrote {len(planned)} files into {folder}" + (f" (replaced {_listed(replaced)})" if replaced else ""))
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder} && "
    click.echo(f"next: {where}journey validate --strict && journey test; then edit what README.md lists first")


def _listed(paths: list[str], shown: int = 10) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more
