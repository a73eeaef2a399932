"""`journey run --every` on a terminal: a status line (the tick at hand, a countdown to the next);
piped, in CI, with --quiet or --log-format json: only its lines, exactly as before."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from test_tick_kit import REPO, deployed_tiny_project

SIGNUP = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # long past: the first tick sends both emails to everyone
CONTACTS = 450  # three pages of due contacts (runner.production.tick.BATCH = 200)


def worker_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    return env | {"PYTHONPATH": str(REPO), "COLUMNS": "120", "TERM": "xterm"} | extra


def run_until(process: subprocess.Popen, read, seen, timeout: float = 240) -> str:
    """Read the worker's output until ``seen(output)``, then SIGTERM it and read to the end."""
    output = ""
    deadline = time.monotonic() + timeout
    while not seen(output) and time.monotonic() < deadline and process.poll() is None:
        output += read(0.2)
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout  # the batch at hand finishes first: read until the worker is gone
    while time.monotonic() < deadline:
        chunk = read(1)
        output += chunk
        if not chunk and process.poll() is not None:
            break
    return output


def on_terminal(args: list[str], cwd: Path, seen, **env: str) -> tuple[int, str]:
    main_side, child_side = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=cwd, stdin=child_side,
                               stdout=child_side, stderr=child_side, env=worker_env(**env))
    os.close(child_side)

    def read(wait: float) -> str:
        ready, _, _ = select.select([main_side], [], [], wait)
        if not ready:
            return ""
        try:
            return os.read(main_side, 65536).decode("utf-8", "replace")
        except OSError:  # the child closed the terminal
            return ""

    try:
        drawn = run_until(process, read, seen)
    finally:
        os.close(main_side)
    return process.wait(timeout=120), drawn


def piped(args: list[str], cwd: Path, seen) -> tuple[int, str]:
    process = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=worker_env())
    fd = process.stdout.fileno()

    def read(wait: float) -> str:
        ready, _, _ = select.select([fd], [], [], wait)
        return os.read(fd, 65536).decode("utf-8", "replace") if ready else ""

    output = run_until(process, read, seen)
    process.stdout.close()
    return process.wait(timeout=120), output


def ticks_in(output: str) -> int:
    return sum(1 for line in output.splitlines() if line.lstrip("\r\x1b[2K").startswith("run "))


@pytest.fixture(scope="module")
def worker_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root, db, _ids = deployed_tiny_project(tmp_path_factory.mktemp("worker"), CONTACTS, SIGNUP)
    return root, db


def test_run_every_draws_the_tick_and_a_countdown_on_a_terminal(worker_project, tmp_path):
    root, db = worker_project
    copy = tmp_path / "journey.db"
    copy.write_bytes(db.read_bytes())
    args = ["run", "--every", "2s", "--db", str(copy), "--transport", f"outbox:{tmp_path / 'outbox'}"]
    code, drawn = on_terminal(args, root, lambda out: ticks_in(out) >= 1 and "next tick in" in out)
    assert code == 0, drawn
    assert "ticking every 2s" in drawn
    # after a tick: its counts and the countdown (which tick depends on how long the first one took)
    assert re.search(r"tick \d+: \d+ contacts, \d+ sent · next tick in [0-2]s", drawn), drawn
    assert "stopped after" in drawn and "Traceback" not in drawn
    # the tick lines print above the status line, each on a line of its own (cleared first, never run into it)
    assert f"{CONTACTS} contact(s), {2 * CONTACTS} sent" in drawn
    pieces = [piece.strip() for piece in re.split(r"[\r\n]+", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn))]
    for piece in filter(None, pieces):
        assert piece.startswith(("run ", "stopped after")) or ("ticking every" in piece and "contact(s)" not in piece)


@pytest.mark.parametrize("how", ["piped", "CI", "quiet", "json"])
def test_run_every_stays_quiet_when_piped_in_ci_quiet_or_json(worker_project, tmp_path, how):
    root, db = worker_project
    copy = tmp_path / "journey.db"
    copy.write_bytes(db.read_bytes())
    args = ["run", "--every", "1s", "--db", str(copy), "--transport", f"outbox:{tmp_path / 'outbox'}"]
    if how == "piped":
        code, output = piped(args, root, lambda out: ticks_in(out) >= 2)
    else:
        extra = {"quiet": ["--quiet"], "json": ["--log-format", "json"]}.get(how, [])
        env = {"CI": "true"} if how == "CI" else {}
        code, output = on_terminal(args + extra, root, lambda out: out.count("\n") >= 2, **env)
    assert code == 0, output
    assert "ticking" not in output and "next tick" not in output and "\x1b[?25l" not in output, output  # no cursor games
    if how in ("piped", "CI", "quiet"):
        lines = [line for line in output.replace("\r\n", "\n").split("\n") if line]
        assert lines[0].startswith("run ") and f"{CONTACTS} contact(s), {2 * CONTACTS} sent" in lines[0], lines
        assert all(line.startswith(("run ", "stopped after")) for line in lines), lines


def test_a_tick_reports_each_page_of_due_contacts(worker_project, tmp_path):
    """The hook behind the status line: the report so far after each page, in order."""
    from runner.production.deploy import load_project_file
    from runner.production.tick import build_runtime, run_tick
    from runner.store import open_store

    root, db = worker_project
    copy = tmp_path / "journey.db"
    copy.write_bytes(db.read_bytes())
    store = open_store(copy)
    runtime = build_runtime(store, load_project_file(root), f"outbox:{tmp_path / 'outbox'}")
    pages: list[tuple[int, int]] = []
    try:
        report = run_tick(store, runtime, datetime(2026, 3, 2, 10, tzinfo=UTC),
                          on_page=lambda so_far: pages.append((so_far.contacts, so_far.counts["sent"])))
    finally:
        runtime.delivery.close()
        store.close()
    assert pages == [(200, 200), (400, 400), (450, 450)]
    assert report.contacts == CONTACTS


def test_the_status_line_reads_the_tick_so_far_then_the_countdown():
    from rich.console import Console
    from rich.progress import Progress

    from runner.cli.workerprogress import StatusColumn, TickProgress
    from runner.production.tick import TickReport

    column = StatusColumn()
    with Progress(column, console=Console(file=StringIO(), force_terminal=True), auto_refresh=False) as bar:
        task_id = bar.add_task("", total=None)
        progress = TickProgress(bar, task_id)
        task = bar.tasks[0]
        assert column.render(task).plain == "first tick starting"
        report = TickReport(now=datetime.now(UTC), holder="test")
        report.contacts = 200
        report.counts["sent"] = 7
        progress.page(report)
        assert column.render(task).plain == "tick 1: 200 contacts, 7 sent so far"
        from datetime import timedelta

        progress.ticked(report, timedelta(minutes=5))
        text = column.render(task).plain
        assert text.startswith("tick 1: 200 contacts, 7 sent · next tick in ") and text.endswith("s")
        assert 290 <= int(text.rsplit(" ", 1)[1][:-1]) <= 300
        progress.ticked(TickReport(now=datetime.now(UTC) - timedelta(minutes=10), holder="test"), timedelta(minutes=5))
        assert column.render(task).plain == "tick 2: 0 contacts, 0 sent · next tick starting"
