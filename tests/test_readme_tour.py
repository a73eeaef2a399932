"""The README's tour, followed literally: its commands, parsed from README.md, run in order.

A fresh copy of the project (a git repository whose ``origin/main`` is its
own commit, as in a fresh clone), the README's demo command first, then every
line of "A short tour" as a real shell command, with ``journey`` on the PATH.
Each must exit 0 without a traceback, and nothing absurd may happen: the
production tick after the demo must not catch up months of emails at once,
and the contact whose history the tour shows must have one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(REPO)}
    env.pop("GITHUB_ACTIONS", None)
    env.pop("JOURNEY_TRANSPORT", None)
    return root, env


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
