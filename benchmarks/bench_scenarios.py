"""How much does a scenario over generated contacts cost beyond its simulation? Prints figures, asserts nothing.

The sample scenario examples/scenarios/advocacy_holdout_share.scenario.yaml
(advocates who buy, a split with a 10% holdout, three group expectations) is
run with its group at several sizes. CPU time (``time.process_time``: the
machine may be shared) of each part, best of ``ROUNDS``:

- generate: drawing the contacts from the spec;
- simulate: the bare baseline, the engine advancing them (``simulate``);
- check: the group expectations, over the simulation;
- render: every send rendered in full, as ``journey test`` does;
- scenario: ``run_scenario`` end to end (load, generate, simulate, check, render),
  and its ratio to the bare simulation in the same run.

    .venv/bin/python benchmarks/bench_scenarios.py             # 1,000 and 10,000 contacts
    .venv/bin/python benchmarks/bench_scenarios.py 500 5000    # other sizes
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.language.loader import load_project  # noqa: E402
from runner.simulation.generated import generate_contacts  # noqa: E402
from runner.simulation.rendering import SendRenderer  # noqa: E402
from runner.simulation.scenarios import ExpectationChecker, load_scenario, run_scenario  # noqa: E402
from runner.simulation.simulate import simulate  # noqa: E402

SAMPLE = ROOT / "examples" / "scenarios" / "advocacy_holdout_share.scenario.yaml"
ROUNDS = 3


def cpu(work) -> tuple[float, object]:
    """Best CPU seconds of ROUNDS runs of ``work()``, and its last result."""
    best, result = float("inf"), None
    for _ in range(ROUNDS):
        began = time.process_time()
        result = work()
        best = min(best, time.process_time() - began)
    return best, result


def measure(loaded, spec: dict, size: int, folder: Path) -> str:
    """One line of figures for a group of ``size`` contacts."""
    journeys = [j for j in loaded.journeys if j.id == "advocacy"]
    spec["generate"][0]["count"] = size
    path = folder / f"advocates_{size}.scenario.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    scenario = load_scenario(path, loaded.journeys, loaded.project.default_timezone)
    generate, _ = cpu(lambda: generate_contacts(spec["generate"], scenario.start, "UTC"))
    bare, simulation = cpu(lambda: simulate(loaded.project, journeys, scenario.contacts, scenario.start, scenario.end))
    checker = ExpectationChecker(scenario, loaded.project, journeys, simulation)
    check, checks = cpu(lambda: [checker.check(e) for e in scenario.expectations])
    render, _ = cpu(lambda: SendRenderer(loaded.project, journeys).failures(simulation.decisions))
    whole, result = cpu(lambda: run_scenario(path, loaded))
    assert result.error is None, result.error
    return (f"{size:>9,} {generate:>9.3f} {bare:>9.3f} {check:>9.3f} {render:>9.3f} {whole:>9.3f} "
            f"{whole / bare:>5.2f}x  ({sum(c.passed for c in checks)}/{len(checks)} expectations hold)")


def main(sizes: list[int]) -> None:
    loaded = load_project(ROOT)
    spec = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    print(f"{'contacts':>9} {'generate':>9} {'simulate':>9} {'check':>9} {'render':>9} {'scenario':>9} {'ratio':>6}"
          "  (CPU seconds, best of 3)")
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            print(measure(loaded, spec, size, Path(folder)))


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [1_000, 10_000])
