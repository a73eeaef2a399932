"""Output formats for problems: text for people, JSON for tools, GitHub annotations for CI.

Each formatter takes the problems (already sorted by file and line) and
returns the whole output as one string, so the CLI only has to print it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

from runner.core.problems import ERROR, WARNING, Problem

FORMATS = ("text", "json", "github")


def default_format() -> str:
    """``github`` inside GitHub Actions (annotations appear on the diff), else ``text``."""
    return "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"


def counts(problems: Sequence[Problem]) -> dict[str, int]:
    errors = sum(1 for p in problems if p.severity == ERROR)
    return {"errors": errors, "warnings": len(problems) - errors}


def summary(problems: Sequence[Problem], files: int) -> str:
    """One line: ``3 errors, 1 warning in 12 files`` (or ``12 files OK``)."""
    numbers = counts(problems)
    checked = f"{files} file{'s' if files != 1 else ''}"
    if not problems:
        return f"{checked} checked, no problems"
    parts = [f"{numbers['errors']} error{'s' if numbers['errors'] != 1 else ''}"]
    parts.append(f"{numbers['warnings']} warning{'s' if numbers['warnings'] != 1 else ''}")
    return f"{', '.join(parts)} in {checked} checked"


def format_text(problems: Sequence[Problem], files: int) -> str:
    """``file:line:col: error[code] message (hint)`` lines and a summary line."""
    lines = [str(problem) for problem in problems]
    lines.append(summary(problems, files))
    return "\n".join(lines) + "\n"


def format_json(problems: Sequence[Problem], files: int) -> str:
    """``{"problems": [...], "summary": {...}}``, stable keys for tools."""
    document = {
        "problems": [problem.as_dict() for problem in problems],
        "summary": {**counts(problems), "files": files},
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(problems: Sequence[Problem], files: int) -> str:
    """GitHub Actions workflow commands: one ``::error``/``::warning`` annotation each."""
    lines = []
    for problem in problems:
        level = "warning" if problem.severity == WARNING else "error"
        message = problem.message + (f" ({problem.hint})" if problem.hint else "")
        lines.append(
            f"::{level} file={_escape_property(problem.file)},line={problem.line},col={problem.col},"
            f"title={_escape_property(problem.code)}::{_escape_data(message)}"
        )
    lines.append(summary(problems, files))
    return "\n".join(lines) + "\n"


FORMATTERS: dict[str, Callable[[Sequence[Problem], int], str]] = {
    "text": format_text,
    "json": format_json,
    "github": format_github,
}


def render(problems: Sequence[Problem], files: int, fmt: str) -> str:
    """The output for ``fmt`` (one of ``FORMATS``)."""
    return FORMATTERS[fmt](problems, files)
