"""One error path: every command shows a domain error the same way, caught once at the top of the CLI.

A domain error shows itself (``JourneyError.show``: its problems, then one
``error:`` line) and exits with its own code; bad input never shows a
traceback, whichever command met it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

from runner.core.problems import JourneyError, Problem, UsageError

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).parent / "hostile"


def journey(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_domain_error_shows_its_problems_then_one_error_line():
    problem = Problem("journeys/a.yaml", 3, 5, "schema.unknown-key", "unknown key `subjct`")
    out = io.StringIO()
    JourneyError("the project has 1 error(s)", [problem]).show(out)
    assert out.getvalue().splitlines() == [str(problem), "error: the project has 1 error(s)"]


def test_validate_shows_a_domain_usage_error_like_every_other_command(tmp_path: Path):
    # `validate --base` with an unknown ref: click's own "Usage: … Error: …" page before, now the one path
    project = tmp_path / "proj"
    shutil.copytree(HOSTILE, project, ignore=shutil.ignore_patterns("cases"))
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    result = journey(["validate", "--base", "no-such-ref"], project)
    assert result.returncode == UsageError.exit_code
    assert result.stderr.splitlines()[-1].startswith("error: unknown git ref 'no-such-ref'")
    assert "Traceback" not in result.stderr and "Usage:" not in result.stderr


def test_graph_of_a_broken_project_lists_its_problems_and_exits_one(tmp_path: Path):
    project = tmp_path / "proj"
    shutil.copytree(HOSTILE, project, ignore=shutil.ignore_patterns("cases"))
    path = project / "journeys" / "onboarding.yaml"
    path.write_text(path.read_text().replace("timezone: UTC", "timezone: Mars/Olympus"))
    result = journey(["graph", "onboarding"], project)
    lines = result.stderr.splitlines()
    assert result.returncode == 1
    assert lines[0].startswith("journeys/onboarding.yaml:") and "error[timezone.unknown]" in lines[0]
    assert lines[-1].startswith("error: the project has 1 error(s)")
    assert "Traceback" not in result.stderr


def test_a_database_error_is_a_message_not_a_traceback(tmp_path: Path):
    not_a_database = tmp_path / "journey.db"
    not_a_database.write_bytes(b"this is not an SQLite file" * 100)
    result = journey(["status", "--db", str(not_a_database)], ROOT)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr


def test_a_usage_error_raised_inside_a_command_exits_two(tmp_path: Path):
    result = journey(["resolve", "--sent", "--all-failed", "--db", str(tmp_path / "journey.db")], ROOT)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: give exactly one of --sent, --failed, --all-sent, --all-failed"]


def test_a_huge_input_is_quoted_short_with_its_length(tmp_path: Path):
    """A 100,000-character contact id, key or topic: the message shows its first 80 characters, an
    ellipsis and the length (``runner.core.problems.shown``), not 100 KB of it."""
    from test_tick_kit import copy_sample

    root = copy_sample(tmp_path / "project")
    (root / "c.csv").write_text("id,email\nada,ada@example.com\n", encoding="utf-8")
    assert journey(["contacts", "import", "c.csv", "--db", "x.db"], root).returncode == 0
    huge = "a" * 100_000
    quoted = f"'{'a' * 80}'… (100,000 characters)"
    expected = {
        ("history", huge): f"no contact {quoted} in x.db (see `journey contacts import`)",
        ("resolve", huge, "--sent"): f"not in doubt: {quoted} (see `journey status`)",
        ("suppress", "add", "ada", "--topic", huge): f"no topic {quoted} in project.yaml (marketing topics: marketing)",
        ("suppress", "add", huge): f"no contact {quoted} in the database (pass --unknown-contact to suppress it anyway)",
        ("suppress", "remove", huge): f"{quoted} is not suppressed",
    }
    for args, message in expected.items():
        result = journey([*args, "--db", "x.db"], root)
        assert result.returncode == 1, (args[:2], result.stderr[:300])
        assert result.stderr == f"error: {message}\n", (args[:2], result.stderr[:300])
