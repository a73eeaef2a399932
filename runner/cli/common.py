"""What several command modules share: the error a user sees, the ``--db`` option, the database.

Commands raise domain errors (``JourneyError``); the ``journey`` group catches
them once, at the top (``runner.cli.LazyGroup.invoke``), and each shows itself:
its problems, one ``error:`` line, its exit code, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import click

from runner.core.problems import JourneyError, UsageError
from runner.core.vocabulary import ALL_TOPICS, step_stop_reason
from runner.store.base import Store


class DatabaseLocation(click.ParamType):
    """``--db``: a SQLite file path or a ``postgresql://`` URL, kept as text (a ``Path`` would fold
    the URL's ``//``). ``must_exist``: a file that is not there is a usage error, as click's paths."""

    name = "database"

    def __init__(self, must_exist: bool = False):
        self.must_exist = must_exist

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from runner.store.errors import is_url
        from runner.store.location import unknown_kind

        text = str(value)
        if not text.strip():
            self.fail("is empty: give a SQLite file path or a postgresql:// URL", param, ctx)
        problem = unknown_kind(text)
        if problem is not None:
            self.fail(problem, param, ctx)
        if not is_url(text) and Path(text).is_dir():
            self.fail(f"{text!r} is a directory, not a database file", param, ctx)
        if self.must_exist and not is_url(text) and not Path(text).exists():
            self.fail(f"{text!r} does not exist", param, ctx)
        return text


DB_OPTION = click.option(
    "--db", "db_path", type=DatabaseLocation(), metavar="PATH|URL",
    help="SQLite file, or postgresql://user@host/dbname (default: JOURNEY_DB, then project.yaml 'database', "
         "then journey.db).",
)


DEFAULT_DAYS = 30  # simulate, render and report look at the same month unless told otherwise
MAX_DAYS = 36525  # --days: a century; the instants the runner takes end in 2199 (runner.core.instants)


def in_calendar(instant: datetime, option: str, text: str) -> datetime:
    """An instant given on the command line, refused (a usage error) outside 1900-2199: the
    engine's date arithmetic past that overflowed (`--now 9999-12-31…` ran for minutes, then failed)."""
    from runner.core.instants import RANGE_TEXT, in_range

    if not in_range(instant):
        raise UsageError(f"{option} {text!r} is not {RANGE_TEXT}")
    return instant


def days_after(begin: datetime, days: int) -> datetime:
    """The end of ``--days`` from ``begin``: days positive, at most ``MAX_DAYS``, the end before 2200."""
    from runner.core.instants import in_range

    if days <= 0:
        raise UsageError("--days must be positive")
    if days > MAX_DAYS:
        raise UsageError(f"--days is at most {MAX_DAYS} (a century)")
    end = begin + timedelta(days=days)
    if not in_range(end):
        raise UsageError(f"--days {days} from {begin.isoformat()} ends after 2199")
    return end


class JourneyRef(click.ParamType):
    """A journey named by its id or by a file (or folder) path: an existing path stays a ``Path``,
    anything else is an id, resolved by ``journey_paths`` once the project is found."""

    name = "journey"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> Path | str:
        if isinstance(value, Path):
            return value
        text = str(value)
        path = Path(text)
        if path.exists():
            return path
        if path.suffix in (".yaml", ".yml") or "/" in text:
            self.fail(f"{text!r} does not exist (give a journey id or an existing file)", param, ctx)
        return text


JOURNEYS_ARGUMENT = click.argument("journeys", nargs=-1, type=JourneyRef(), metavar="[JOURNEY]...")


def journey_paths(refs: Sequence[Path | str]) -> list[Path]:
    """The files behind journey ids and paths, in the order given: an id is looked up among the
    project's journeys; an unknown one is a usage error naming the known ids."""
    ids = [ref for ref in refs if isinstance(ref, str)]
    if not ids:
        return [Path(ref) for ref in refs]
    from runner.language.loader import load_project

    loaded = load_project(templates=False)
    files = {journey.id: Path(journey.source) for journey in loaded.journeys}
    for name in ids:
        if name not in files:  # a journey with errors is not in the model: find its file by its `id:` line
            for path in _files_declaring(loaded.root / "journeys", name)[:1]:
                files[name] = path
        if name not in files:
            known = ", ".join(sorted(files)) or "none"
            raise UsageError(f"no journey '{name}' in the project (journeys: {known}); give its id or a file")
    return [files[ref] if isinstance(ref, str) else ref for ref in refs]


def journey_id(ref: Path | str) -> str:
    """The id of a journey named by its id or by its file (read from the file, which may be a draft)."""
    if isinstance(ref, str):
        return ref
    from runner.review.workspace import journey_from_file

    if not ref.is_file():
        raise UsageError(f"{ref}: give a journey id or one journey file, not a folder")
    return journey_from_file(ref).id


def _files_declaring(folder: Path, journey_id: str) -> list[Path]:
    """Journey files under ``folder`` whose top-level ``id:`` is ``journey_id`` (read as text: they may not parse)."""
    import re

    line = re.compile(rf"^id:\s*['\"]?{re.escape(journey_id)}['\"]?\s*(#.*)?$", re.M)
    found = [path for pattern in ("*.yaml", "*.yml") for path in folder.rglob(pattern)]
    return sorted(path for path in found if line.search(path.read_text(encoding="utf-8", errors="replace")))


def contacts_path(contacts_file: Path | None, root: Path) -> Path:
    """``--contacts``, else the project's examples/contacts.yaml: every command has the same default."""
    from runner.review.workspace import default_contacts

    path = contacts_file or default_contacts(root)
    if path is None:
        raise UsageError("give --contacts FILE (no examples/contacts.yaml in the project)")
    return path


def progress_shown() -> bool:
    """Progress is drawn only on a terminal and never in CI: piped output and CI logs stay
    line-for-line what the command prints."""
    return sys.stdout.isatty() and not os.environ.get("CI")


@contextmanager
def terminal_progress(label: str, total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar (``label``, done/total, what is at hand), only where ``progress_shown``.
    Yields ``advance(what)``."""
    if not progress_shown():
        yield lambda what: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  transient=True) as bar:
        task = bar.add_task("", total=total)
        yield lambda what: bar.update(task, advance=1, description=what)


def say(line: str, *, err: bool = False) -> None:
    """``click.echo`` to the ``sys.stdout`` (or ``sys.stderr``) of this moment: under a progress
    display, which redirects them, the line prints above the bar. Plain ``click.echo`` writes to the
    terminal's byte buffer beneath the redirect, so the line ran into the bar's own text."""
    click.echo(line, file=sys.stderr if err else sys.stdout)


@contextmanager
def tick_progress(start: datetime, end: datetime, step: timedelta) -> Iterator[Callable[[datetime], None]]:
    """``terminal_progress`` over virtual-clock ticks from ``start`` to ``end`` (both included)."""
    with terminal_progress("ticking", int((end - start) / step) + 1) as advance:
        yield lambda now: advance(f"{now:%Y-%m-%d %H:%M}Z")


def as_domain_error(error: Exception) -> JourneyError:
    """Any exception a command let through, as the domain error the user sees: a database
    failure is a ``StoreError`` (a ``JourneyError``) and says so, a file the system refused
    names the file and the reason; anything else is a bug to report, never a traceback."""
    if isinstance(error, JourneyError):
        return error
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        # the file system said no (a path too long, a folder that cannot be made): the user's to fix, not a bug
        return JourneyError(f"{error.filename}: {error.strerror}")
    return JourneyError(f"internal error ({type(error).__name__}: {error}); please report it")


def project_root() -> Path:
    from runner.language.loader import find_project_root

    return find_project_root()


@contextmanager
def open_db(db_path: str | Path | None, root: Path | None = None, *, must_exist: bool = False,
            read_only: bool = False, empty_if_missing: bool = False) -> Iterator[Store]:
    """The store at ``--db`` / ``JOURNEY_DB`` / project.yaml ``database`` (found from ``root``,
    else the working directory), closed afterwards. Only a command that writes creates the
    database; ``must_exist``: one that needs its data refuses a missing one;
    ``empty_if_missing``: one that only reads answers a missing one as an empty database
    (in memory: no file is created). ``read_only``: a command that only looks, and must work
    on a database it may not write (implies ``must_exist``; a server database that was never
    migrated says so when it opens)."""
    from runner.store.errors import NoDatabase, redacted
    from runner.store.location import exists, open_store, resolve_db

    location = resolve_db(db_path, start=root)
    missing = f"no database at {redacted(location)}: run `journey deploy` (or `journey demo`) first"
    if not exists(location):
        if must_exist or read_only:
            raise JourneyError(missing)
        if empty_if_missing:
            location = ":memory:"
    try:
        store = open_store(location, read_only=read_only)
    except NoDatabase:  # a server database: only opening it tells
        raise JourneyError(missing) from None
    try:
        yield store
    finally:
        store.close()


def what_it_stops(topic: str | None) -> str:
    """A suppression stops every email; an unsubscribe, marketing topics (one or all); a suppress step, all marketing."""
    if topic is None:
        return "every email"
    if topic == ALL_TOPICS or step_stop_reason(topic) is not None:  # an unsubscribe from all, a suppress step
        return "all marketing topics"
    return f"topic {topic}"
