"""The ``journey`` command line: a thin shell over the pure core.

This package is the only place that imports click. Each command lives in its
own module under ``runner.cli`` and exposes a click command object named in
``COMMANDS``; commands are imported lazily so ``journey --help`` stays fast and
one broken optional dependency cannot take the whole CLI down.

Exit codes: 0 ok, 1 problems found, 2 usage error. Errors take one path:
commands raise ``JourneyError`` (or let any other exception through) and
``LazyGroup.invoke`` catches it once, shows it and exits with its code.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from runner import __version__

# command name -> "module:attribute" under runner.cli
COMMANDS: dict[str, str] = {
    "init": "init:init",
    "validate": "validate:validate",
    "simulate": "simulate:simulate",
    "explain": "simulate:explain",
    "test": "testcmd:test",
    "contacts": "data:contacts",
    "events": "data:events",
    "suppress": "data:suppress",
    "bounces": "bounces:bounces",
    "plan": "deploy:plan",
    "deploy": "deploy:deploy",
    "run": "run:run",
    "status": "run:status",
    "history": "run:history",
    "resolve": "run:resolve",
    "requeue": "run:requeue",
    "demo": "demo:demo",
    "graph": "review:graph",
    "diff": "review:diff",
    "render": "review:render",
    "report": "review:report",
    "stats": "stats:stats",
    "db": "db:db",
    "serve": "serve:serve",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._module_exists(name))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None or not self._module_exists(name):
            return None
        module_name, attribute = target.split(":")
        module = importlib.import_module(f"runner.cli.{module_name}")
        return getattr(module, attribute)

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a domain error (or any other) shows itself and sets the exit code."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # the reader went away (`journey graph | dot` without dot): nothing left to say
            _silence_stdout()
            raise click.exceptions.Exit(1) from None
        except Exception as error:  # noqa: BLE001 - the one place errors reach the user: never a traceback
            from runner.cli.common import as_domain_error

            domain = as_domain_error(error)
            domain.show()
            raise click.exceptions.Exit(domain.exit_code) from None

    @staticmethod
    def _module_exists(name: str) -> bool:
        module_name = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(f"runner.cli.{module_name}") is not None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not meet the closed pipe again."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="journey")
def main() -> None:
    """Journey-as-code: validate, simulate, test and run lifecycle journeys."""


if __name__ == "__main__":  # pragma: no cover
    main()
