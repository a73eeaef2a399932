"""The README's tour, followed literally: its commands, parsed from README.md, run in order.

A fresh copy of the project (a git repository whose ``origin/main`` is its
own commit, as in a fresh clone), the README's demo command first, then every
line of "A short tour" as a real shell command, with ``journey`` on the PATH.
Each must exit 0 without a traceback, and nothing absurd may happen: the
production tick after the demo must not catch up months of emails at once,
and the contact whose history the tour shows must have one.

Then "Production as a service", as one shell script (its server runs in the background
and is stopped by the block's own last line), on a free port instead of 8000: the service
must get ready, take the events (curl and Segment's own client), honour the unsubscribe
click and show the figures in ``/metrics``; its log is JSON lines.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from smtp_server import free_port
from test_tick_kit import REPO, copy_sample

README = REPO / "README.md"


def bash_blocks(text: str) -> list[list[str]]:
    """The lines of every ```bash block, in order."""
    return [block.splitlines() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def demo_command(text: str) -> str:
    """The demo part of the README's first command (the set-up before it is this test's own)."""
    first = bash_blocks(text)[0][0].split("#")[0]
    return first.split("&&")[-1].strip().replace(".venv/bin/journey", "journey")


def tour_commands(text: str) -> list[str]:
    """Every command line of "A short tour", after ``source .venv/bin/activate``."""
    section = text.split("## A short tour", 1)[1]
    lines = [line for line in bash_blocks(section)[0] if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0] == "source .venv/bin/activate", lines[0]
    return lines[1:]


def fresh_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The sample project as a fresh clone has it, and an environment with `journey` on the PATH."""
    root = copy_sample(tmp_path / "kitebase")
    git = ["git", "-c", "user.name=Tour", "-c", "user.email=tour@example.com", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "sample"],
                 ["update-ref", "refs/remotes/origin/main", "HEAD"]):
        subprocess.run([*git, *args], cwd=root, check=True, capture_output=True)
    shims = tmp_path / "bin"
    shims.mkdir()
    shim = shims / "journey"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m runner "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    # `source .venv/bin/activate`: this interpreter's pip and python first
    path = os.pathsep.join([str(shims), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(REPO)}
    env.pop("GITHUB_ACTIONS", None)
    env.pop("JOURNEY_TRANSPORT", None)
    return root, env


def service_script(text: str, port: int) -> str:
    """The bash block of "Production as a service", on ``port`` instead of 8000."""
    section = text.split("## Production as a service", 1)[1]
    return "\n".join(bash_blocks(section)[0]).replace("8000", str(port))


def run_service_tour(text: str, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The block as one script (``bash -e``: the first failing line stops it); the server it
    starts in the background is killed with the script's process group if a line failed."""
    script = subprocess.Popen(["bash", "-e", "-c", service_script(text, free_port())], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = script.communicate(timeout=300)
    finally:
        try:
            os.killpg(script.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(script.args, script.returncode, out, err)


def run_line(line: str, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", line], cwd=root, env=env, capture_output=True, text=True, timeout=600)


def emails(root: Path) -> int:
    return len(list((root / "outbox").glob("*.eml")))


def test_the_readme_tour_runs_in_order_on_a_fresh_copy(tmp_path):
    text = README.read_text(encoding="utf-8")
    root, env = fresh_copy(tmp_path)

    demo = demo_command(text)
    assert demo == "journey demo"
    result = run_line(demo, root, env)
    assert result.returncode == 0, result.stdout + result.stderr
    after_demo = emails(root)
    assert after_demo > 100  # the demo month

    outputs = {}
    for line in tour_commands(text):
        before = emails(root)
        result = run_line(line, root, env)
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, line
        outputs[line] = result.stdout
        if line.startswith("journey run"):
            # one tick after the demo's last one: no catch-up burst (836 emails at the wall clock)
            assert emails(root) - before < 10, result.stdout

    runs = [line for line in outputs if line.startswith("journey run")]
    assert runs, "the tour runs a production tick"
    history = next(out for line, out in outputs.items() if line.startswith("journey history"))
    recorded = re.search(r": (\d+) decision\(s\) recorded", history)
    assert recorded and int(recorded.group(1)) > 0, history
    assert " send " in history
    assert emails(root) - after_demo < 10

    service = run_service_tour(text, root, env)
    assert service.returncode == 0, f"{service.stdout}\n{service.stderr}"
    assert '"status":"ready"' in service.stdout and "Traceback" not in service.stderr
    figures = dict(line.rsplit(" ", 1) for line in service.stdout.splitlines() if line.startswith("journey_"))
    assert float(figures['journey_events_received_total{type="identify"}']) == 1
    assert float(figures['journey_events_received_total{type="track"}']) == 2  # curl, then Segment's client
    assert float(figures["journey_database_up"]) == 1 and "journey_due_contacts" in figures
    log = [json.loads(line) for line in (root / "serve.log").read_text(encoding="utf-8").splitlines()]
    assert log[0]["message"].startswith("journey serve: listening on") and log[-1]["message"] == "journey serve: stopped"
    assert any(line["message"] == "tick" for line in log)
    with sqlite3.connect(root / "live.db") as live:
        names = [name for (name,) in live.execute("SELECT name FROM events WHERE contact_id = 'elif' ORDER BY id")]
    assert {"signed_up", "page_viewed", "unsubscribed"} <= set(names)  # curl, Segment's client, the click
