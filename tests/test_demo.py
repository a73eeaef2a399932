"""`journey demo` on the sample project: validate, import, deploy, tick, outbox; idempotent."""

from __future__ import annotations

import re

from test_tick_kit import copy_sample, journey_cli


def test_demo_sends_into_the_outbox_and_a_second_run_sends_nothing_new(tmp_path):
    root = copy_sample(tmp_path / "kitebase")
    first = journey_cli(["demo", "--days", "4"], cwd=root, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "validated 8 journeys" in first.stdout
    assert "imported 250 contacts" in first.stdout
    assert "advocacy v1" in first.stdout.split("deployed ", 1)[1].splitlines()[0]
    emails = list((root / "outbox").glob("*.eml"))
    sent = int(re.search(r"(\d+) email\(s\)", first.stdout).group(1))
    assert sent == len(emails) > 10
    assert (root / "journey.db").is_file()
    assert "deployments:" in first.stdout and "sends: sent" in first.stdout
    # the virtual clock: where a `journey run` continues (the last tick was 5 March 00:00)
    assert "the last tick ran at 2026-03-05T00:00:00Z" in first.stdout
    assert "`journey run --now 2026-03-05T01:00:00Z`" in first.stdout

    second = journey_cli(["demo", "--days", "4"], cwd=root, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "0 email(s) and 0 webhook(s) sent by this run" in second.stdout
    assert "nothing new (already deployed)" in second.stdout
    assert len(list((root / "outbox").glob("*.eml"))) == len(emails)

    fresh = journey_cli(["demo", "--days", "1", "--fresh"], cwd=root, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert "removed the database and the outbox" in fresh.stdout
    assert len(list((root / "outbox").glob("*.eml"))) < len(emails)


def on_terminal(args: list[str], cwd) -> tuple[int, str]:
    """Run ``journey ARGS`` with a pseudo-terminal as stdin/stdout/stderr (as a person would, CI unset):
    its exit code and everything it drew."""
    import os
    import pty
    import subprocess
    import sys

    main_side, child_side = pty.openpty()
    env = {key: value for key, value in os.environ.items() if key != "CI"} | {"COLUMNS": "100", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=cwd,
                               stdin=child_side, stdout=child_side, stderr=child_side, env=env)
    os.close(child_side)
    chunks = []
    while True:
        try:
            chunk = os.read(main_side, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_side)
    return process.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


def test_demo_shows_tick_progress_on_a_terminal_and_none_when_piped(tmp_path):
    root = copy_sample(tmp_path / "kitebase")
    code, drawn = on_terminal(["demo", "--days", "1"], root)
    assert code == 0 and "ticking" in drawn and "/25" in drawn  # hourly ticks of one day, both ends included
    piped = journey_cli(["demo", "--days", "1"], cwd=root, timeout=300)
    assert piped.returncode == 0 and "ticking" not in piped.stdout + piped.stderr
