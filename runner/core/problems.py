"""Problems (diagnostics) and the domain error type.

A ``Problem`` points at ``file:line:col`` and says how to fix it. Lines and
columns are 1-based, as editors show them. Domain code raises
``JourneyError`` for bad input; the error presents itself (``show``, as
click's exceptions do) and the CLI catches it once, at the top, to show it
and exit with its code, never a traceback.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any, TextIO

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    file: str
    line: int
    col: int
    code: str  # stable identifier, e.g. "schema.unknown-key", "yaml.syntax"
    message: str
    severity: str = ERROR
    hint: str | None = None  # how to fix it, when there is more to say

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.severity}[{self.code}] {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class JourneyError(Exception):
    """Bad input or an impossible request; carries the exit code the CLI uses."""

    exit_code = 1

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = problems or []

    def show(self, file: TextIO | None = None) -> None:
        """Print the problems, one per line, then one ``error:`` line (to stderr by default)."""
        out = file if file is not None else sys.stderr
        for problem in self.problems:
            print(problem, file=out)
        print(f"error: {self}", file=out)


class UsageError(JourneyError):
    """The command was called wrongly (exit code 2)."""

    exit_code = 2


SHOWN_CHARACTERS = 80  # of a user's input quoted in a message


def shown(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """``value`` as an error message quotes it: its repr, or past ``limit`` characters its
    start, an ellipsis and its length. An input may be huge (a 100,000-character contact id):
    the message is about it, it need not repeat it."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(value)
    start = repr(text[:limit]) if isinstance(value, str) else text[:limit]
    return f"{start}… ({len(text):,} characters)"
