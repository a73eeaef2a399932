"""How fast is `journey validate` on a big project? (target: >= 500 files/s)

Generates 1,000 journey files shaped like the samples (copies of the
project's own journeys/*.yaml with fresh ids; a built-in fixture journey when
there are none) in a temporary project, then times:

* baseline: plain ``yaml.safe_load`` of every file (the floor: just parsing);
* validate: the same work ``journey validate`` does in-process
  (``runner.language.loader.validate``: YAML with positions, schema, semantics,
  templates, model building), and once as a real ``journey validate``
  subprocess (startup included).

Prints files/s for both and the ratio. Run: ``.venv/bin/python benchmarks/bench_validate.py``
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runner.language.loader import validate  # noqa: E402

FILES = 1000
FALLBACK = REPO / "tests" / "hostile"


def make_project(folder: Path, count: int) -> Path:
    """A project with ``count`` journeys copied from the samples, each with its own id."""
    source = REPO if (REPO / "journeys").is_dir() and list((REPO / "journeys").glob("*.yaml")) else FALLBACK
    shutil.copy(source / "project.yaml", folder / "project.yaml")
    shutil.copytree(source / "templates", folder / "templates")
    samples = sorted((source / "journeys").glob("*.yaml"))
    journeys = folder / "journeys"
    journeys.mkdir()
    for number in range(count):
        sample = samples[number % len(samples)]
        text = sample.read_text(encoding="utf-8")
        text = re.sub(r"(?m)^id: (\S+)", lambda m, number=number: f"id: {m.group(1)}_{number}", text, count=1)
        (journeys / f"{sample.stem}_{number}.yaml").write_text(text, encoding="utf-8")
    return folder


def best_of(runs: int, action) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds over ``runs`` (CPU time is steadier on a busy machine)."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp), FILES)
        files = sorted((root / "journeys").glob("*.yaml"))
        lines = sum(f.read_text().count("\n") for f in files) // len(files)

        def baseline() -> None:
            for file in files:
                with open(file, encoding="utf-8") as handle:
                    yaml.safe_load(handle)

        def baseline_libyaml() -> None:
            for file in files:
                with open(file, encoding="utf-8") as handle:
                    yaml.load(handle, Loader=yaml.CSafeLoader)

        outcome = {}

        def run_validate() -> None:
            outcome["result"] = validate([], root=root)

        validate([], root=root)  # warm up: schemas compiled, zones listed

        def run_cli() -> None:
            completed = subprocess.run([sys.executable, "-m", "runner", "validate"], cwd=root,
                                       capture_output=True, text=True)
            assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
        base = best_of(3, baseline)
        fast = best_of(3, baseline_libyaml)
        full = best_of(3, run_validate)
        wall = time.perf_counter()
        run_cli()
        cli_wall = time.perf_counter() - wall
        result = outcome["result"]
        assert result.files >= FILES, result.files
        errors = [p for p in result.problems if p.severity == "error"]
        print(f"journeys: {FILES} files (~{lines} lines each), {result.files} files checked in total")
        print(f"problems: {len(errors)} errors, {len(result.problems) - len(errors)} warnings")
        print(f"{'':34s}{'wall files/s':>14s}{'cpu files/s':>14s}")
        for label, (wall, cpu) in [("baseline yaml.safe_load", base), ("baseline yaml CSafeLoader", fast),
                                   ("journey validate (in-process)", full)]:
            print(f"{label:34s}{FILES / wall:14.0f}{FILES / cpu:14.0f}")
        print(f"{'journey validate (subprocess)':34s}{FILES / cli_wall:14.0f}{'':>14s}  (one run, with startup)")
        print(f"ratio validate / safe_load time   : {full[0] / base[0]:.2f}x wall, {full[1] / base[1]:.2f}x cpu")
        print(f"ratio validate / CSafeLoader time : {full[0] / fast[0]:.2f}x wall, {full[1] / fast[1]:.2f}x cpu")
        verdict = "met" if FILES / full[1] >= 500 else "NOT met"
        print(f"target >= 500 files/s             : {verdict} (on CPU time; wall time depends on machine load)")


if __name__ == "__main__":
    main()
