"""``python -m runner`` is the same as the ``journey`` command."""

from runner.cli import main

main(prog_name="journey")
