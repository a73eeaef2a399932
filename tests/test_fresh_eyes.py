"""A new user's hostile pass over the commands README.md and docs/ show: what failed, fixed, as the
user meets it (a real ``journey`` subprocess in a copy of the sample project).

Each case was an ``internal error (…); please report it`` or a misleading message before:
a journey ``id:`` that is a list, a duration or an instant past the calendar's end, a
``--db`` that is empty or of another kind, a folder the system refuses to make, the
status of an empty database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def journey(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def clean(result: subprocess.CompletedProcess) -> bool:
    """No traceback and no 'internal error': the user was told what to fix."""
    both = result.stdout + result.stderr
    return "Traceback" not in both and "internal error" not in both


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample project (journeys, templates, examples, project.yaml), copied once."""
    root = tmp_path_factory.mktemp("sample")
    for name in ("journeys", "templates", "examples", "schemas"):
        shutil.copytree(ROOT / name, root / name)
    shutil.copy(ROOT / "project.yaml", root / "project.yaml")
    return root


@pytest.fixture
def project(sample: Path, tmp_path: Path) -> Path:
    """A copy of the sample project this test may break."""
    root = tmp_path / "project"
    shutil.copytree(sample, root)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# -- validation (hostile YAML)


@pytest.mark.parametrize("value", ["[a, b]", "{a: 1}"])
def test_a_journey_id_that_is_no_text_is_a_schema_error_even_with_scenarios(project: Path, value: str):
    # the scenarios' journey references put the ids in a set: a list id was unhashable
    edit(project / "journeys" / "onboarding.yaml", "\nid: onboarding\n", f"\nid: {value}\n")
    result = journey(["validate"], project)
    assert result.returncode == 1 and clean(result)
    assert "journeys/onboarding.yaml:6:5: error[schema.type] id must be text" in result.stdout
    subset = journey(["validate", "journeys/customer_lifecycle.yaml", "examples/scenarios"], project)
    assert subset.returncode == 0 and clean(subset)


def test_a_duration_past_a_century_is_a_validate_error_and_simulate_stops_on_it(project: Path):
    edit(project / "journeys" / "onboarding.yaml", "wait: 2d", "wait: 99999999999999999d")
    result = journey(["validate"], project)
    assert result.returncode == 1 and clean(result)
    assert ("journeys/onboarding.yaml:60:15: error[duration.too-long] step 5 in stage `education` (wait) is "
            "99999999999999999d, longer than a century (36525d)") in result.stdout
    simulated = journey(["simulate", "--days", "3"], project)
    assert simulated.returncode == 1 and clean(simulated)
    assert "error[duration.too-long]" in simulated.stderr


def test_a_century_itself_is_allowed(project: Path):
    edit(project / "journeys" / "onboarding.yaml", "wait: 2d", "wait: 36525d")
    assert journey(["validate"], project).returncode == 0
    simulated = journey(["simulate", "--days", "3"], project)
    assert simulated.returncode == 0 and clean(simulated)


def test_a_project_duration_past_a_century_is_a_validate_error(project: Path):
    edit(project / "project.yaml", "per: 7d}", "per: 9999999999999999999w}")
    result = journey(["validate"], project)
    assert result.returncode == 1 and clean(result)
    assert "project.yaml:27:30: error[duration.too-long] frequency_cap.per is 9999999999999999999w" in result.stdout


@pytest.mark.parametrize(("old", "new"), [
    ('start: "2026-03-02T00:00:00Z"', 'start: "9999-12-31T00:00:00Z"'),
    ('start: "2026-03-02T00:00:00Z"', 'start: "0001-01-01T00:00:00Z"'),
    ('at: "+4d 16:00"', 'at: "+99999999999999d 16:00"'),
])
def test_a_scenario_time_past_the_calendar_fails_the_scenario_with_its_text(project: Path, old: str, new: str):
    scenario = project / "examples" / "scenarios" / "milestones.scenario.yaml"
    edit(scenario, old, new)
    result = journey(["test", str(scenario)], project)
    assert result.returncode == 1 and clean(result)
    assert f"'{new.split(': ', 1)[1].strip(chr(34))}' is not a time between 1900 and 2199" in result.stdout


# -- the command line's instants, durations and --db


@pytest.mark.parametrize(("args", "message"), [
    (["simulate", "--days", "99999999999999"], "error: --days is at most 36525 (a century)"),
    (["simulate", "--start", "9999-12-31T00:00:00Z"], "error: --start '9999-12-31T00:00:00Z' is not between 1900 and 2199"),
    (["simulate", "--start", "0001-01-01T00:00:00Z"], "error: --start '0001-01-01T00:00:00Z' is not between 1900 and 2199"),
    (["simulate", "--start", "2199-06-01T00:00:00Z", "--days", "365"],
     "error: --days 365 from 2199-06-01T00:00:00+00:00 ends after 2199"),
    (["explain", "elif", "--at", "9999-12-31T23:59:59Z"], "error: --at '9999-12-31T23:59:59Z' is not between 1900 and 2199"),
    (["render", "onboarding", "welcome_newsletter", "--contact", "elif", "--days", "999999999999"],
     "error: --days is at most 36525 (a century)"),
    (["run", "--now", "9999-12-31T23:59:59Z"], "error: --now '9999-12-31T23:59:59Z' is not between 1900 and 2199"),
    (["status", "--now", "0001-01-01T00:00:00Z"], "error: --now '0001-01-01T00:00:00Z' is not between 1900 and 2199"),
    (["run", "--every", "99999999999999999w"], "error: --every: '99999999999999999w' is longer than a century (36525d)"),
    (["requeue", "--since", "yesterday"], "error: --since 'yesterday' is not an ISO 8601 date-time"),
])
def test_an_instant_or_span_past_the_calendar_is_a_usage_error(sample: Path, args: list[str], message: str):
    result = journey(args, sample)
    assert result.returncode == 2 and clean(result), result.stderr
    assert result.stderr.splitlines()[-1].startswith(message), result.stderr


@pytest.mark.parametrize(("db", "message"), [
    ("", "Invalid value for '--db': is empty: give a SQLite file path or a postgresql:// URL"),
    ("mysql://user:pw@host/db", "Invalid value for '--db': 'mysql://user:***@host/db': a database is a SQLite file "
                                "path or a postgresql:// URL, not mysql://"),
    ("sqlite:///tmp/x.db", "a database is a SQLite file path or a postgresql:// URL, not sqlite://"),
])
def test_a_db_that_is_empty_or_of_another_kind_says_so(sample: Path, db: str, message: str):
    result = journey(["deploy", "--db", db], sample)
    assert result.returncode == 2 and clean(result)
    assert message in result.stderr
    assert "pw" not in result.stderr
    assert not list(sample.glob("mysql*")) and not list(sample.glob("sqlite*"))


def test_a_folder_the_system_refuses_names_itself_and_the_reason(sample: Path, tmp_path: Path):
    long_name = tmp_path / ("x" * 300)
    result = journey(["init", str(long_name)], sample)
    assert result.returncode == 1 and clean(result)
    assert result.stderr.splitlines()[-1] == f"error: {long_name}: File name too long"


def test_the_status_of_a_database_with_nothing_deployed_lists_no_deployment(sample: Path, tmp_path: Path):
    db = tmp_path / "empty.db"
    assert journey(["contacts", "import", str(sample / "examples" / "data" / "contacts.jsonl"), "--db", str(db)],
                   sample).returncode == 0
    result = journey(["status", "--db", str(db), "--now", "2026-04-01T00:00:00Z"], sample)
    assert result.returncode == 0 and clean(result)
    lines = result.stdout.splitlines()
    assert lines[lines.index("deployments:") + 1] == "  (none)"


@pytest.mark.parametrize("args", [["graph", "onboarding", "--format", "dot"], ["validate", "--format", "json"]])
def test_a_reader_that_went_away_ends_the_command_quietly(sample: Path, args: list[str]):
    # `journey graph onboarding --format dot | dot -Tsvg` without Graphviz: an internal error before
    process = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=sample, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the interpreter has even started: every write meets a closed pipe
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 1
    assert stderr == ""


# -- test contacts named with --contacts (not validated first)


@pytest.mark.parametrize(("text", "message"), [
    ("contacts:\n  - id: a\n    events: 7\n", "contact 'a': events must be a list, not 7"),
    ("contacts:\n  - id: a\n    events:\n      - [1, 2]\n",
     "contact 'a': event 1 must be a mapping with `at` and an `event` name, not [1, 2]"),
    ("contacts:\n  - id: a\n    events:\n      - {at: '+1d', event: [x]}\n", "contact 'a': event 1 must be a mapping"),
    ("contacts:\n  - id: a\n    attributes: [1]\n", "contact 'a': attributes must be a mapping, not [1]"),
    ("contacts:\n  - id: [a]\n", "a contact id is text, not ['a']"),
])
def test_test_contacts_of_the_wrong_shape_say_what_is_wrong(sample: Path, tmp_path: Path, text: str, message: str):
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(text, encoding="utf-8")
    result = journey(["simulate", "--contacts", str(contacts), "--days", "2"], sample)
    assert result.returncode == 1 and clean(result)
    assert result.stderr.splitlines()[-1].startswith(f"error: {contacts}: {message}")


def test_test_contacts_that_are_a_fifo_are_refused_not_waited_for(sample: Path, tmp_path: Path):
    fifo = tmp_path / "contacts.yaml"
    os.mkfifo(fifo)
    result = journey(["simulate", "--contacts", str(fifo), "--days", "2"], sample, timeout=60)  # hung before
    assert result.returncode == 1 and clean(result)
    assert result.stderr.splitlines()[-1] == f"error: {fifo} is a FIFO; only regular files are read"


def test_test_contacts_with_an_alias_bomb_are_refused_with_its_line(sample: Path, tmp_path: Path):
    contacts = tmp_path / "contacts.yaml"
    rows = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{b}: &{b} [{', '.join(['*' + a] * 9)}]" for a, b in zip("abcd", "bcde", strict=True)]
    contacts.write_text("\n".join(rows) + "\ncontacts: []\n", encoding="utf-8")
    result = journey(["simulate", "--contacts", str(contacts), "--days", "2"], sample)
    assert result.returncode == 1 and clean(result)
    assert f"{contacts}:5:1: error[yaml.alias-bomb]" in result.stderr


def test_an_id_past_64_characters_is_a_validate_error_not_a_failed_send(project: Path):
    # a 5,000-character journey id passed validate; every send failed (List-Id over 998 octets)
    edit(project / "journeys" / "onboarding.yaml", "\nid: onboarding\n", "\nid: " + "a" * 5000 + "\n")
    result = journey(["validate", "journeys/onboarding.yaml"], project)
    assert result.returncode == 1 and clean(result)
    assert result.stdout.splitlines()[0] == (
        "journeys/onboarding.yaml:6:5: error[schema.too-long] id is 5000 characters long; at most 64")
    edit(project / "journeys" / "onboarding.yaml", "a" * 5000, "a" * 64)
    assert journey(["validate", "journeys/onboarding.yaml"], project).returncode == 0


def test_a_database_of_another_kind_in_the_environment_or_project_says_so(project: Path):
    # "no database at mysql://x: run `journey deploy`" before; deploy tried to open a file "mysql:/x"
    env = {**os.environ, "JOURNEY_DB": "mysql://user:pw@host/db"}
    result = subprocess.run([sys.executable, "-m", "runner", "status"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1 and clean(result)
    assert result.stderr.splitlines()[-1] == ("error: JOURNEY_DB 'mysql://user:***@host/db': a database is a SQLite "
                                              "file path or a postgresql:// URL, not mysql://")
    edit(project / "project.yaml", "\ndatabase: journey.db\n", '\ndatabase: "sqlite:///x.db"\n')
    deployed = journey(["deploy"], project)
    assert deployed.returncode == 1 and clean(deployed)
    assert deployed.stderr.splitlines()[-1] == ("error: project.yaml database 'sqlite:///x.db': a database is a "
                                                "SQLite file path or a postgresql:// URL, not sqlite://")
    assert not list(project.glob("sqlite*"))


# -- journey bounces import


def test_bounces_in_a_maildir_with_a_fifo_are_read_around_it(sample: Path, tmp_path: Path):
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1").write_bytes(b"From: someone@example.com\nSubject: hello\n\nnot a bounce\n")
    os.mkfifo(maildir / "new" / "2")
    result = journey(["bounces", "import", str(maildir), "--db", str(tmp_path / "j.db")], sample, timeout=60)
    assert clean(result)  # waited on the FIFO for ever before
    assert f"{maildir}/2: unreadable: not a regular file" in result.stdout + result.stderr
    assert f"{maildir}/1: unrecognised" in result.stdout + result.stderr


def test_a_bounce_nested_thousands_deep_is_unreadable_not_an_internal_error(sample: Path, tmp_path: Path):
    parts = "".join(f"--b{i}\nContent-Type: multipart/mixed; boundary=b{i + 1}\n\n" for i in range(2000))
    message = tmp_path / "deep.eml"
    message.write_text("From: a@example.com\nContent-Type: multipart/mixed; boundary=b0\n\n" + parts, encoding="ascii")
    result = journey(["bounces", "import", str(message), "--db", str(tmp_path / "j.db")], sample)
    assert result.returncode == 1 and clean(result)
    assert f"{message}: unreadable: MIME parts nested too deeply" in result.stdout + result.stderr


def test_sigint_while_a_worker_starts_stops_it_as_documented(sample: Path, tmp_path: Path):
    # `journey run --every`: SIGINT/SIGTERM finish the batch and exit 0 (docs/run.md). A SIGINT that came
    # while the worker was still opening the database was click's "Aborted!", exit 1.
    import signal
    import time

    db = tmp_path / "j.db"
    assert journey(["deploy", "--db", str(db)], sample).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "runner", "run", "--every", "1s", "--db", str(db)], cwd=sample,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fds = Path(f"/proc/{process.pid}/fd")
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:  # the database open: past the imports
        try:
            if any(os.path.realpath(fd) == str(db) for fd in fds.iterdir()):
                break
        except OSError:
            pass
    process.send_signal(signal.SIGINT)  # now, or a moment later, inside the loop: both must stop cleanly
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Aborted" not in err and "Traceback" not in err
    assert out.splitlines()[-1].startswith("stopped after ")
