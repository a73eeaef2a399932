"""A safety net for engine refactors: one hash of everything the engine decides.

Advances synthetic contacts (built exactly as ``bench_simulate.py`` builds
them: persona copies with seeded shifts) through the sample project and
hashes every decision field, every wake-up, and each contact's final state
(enrollments, past enrollments, sends, suppression, clock, memory,
attributes). Two runs:

- ``2000x2``: 2,000 contacts advanced in two legs (to day 45, then day 90),
  as production ticks would, so state carried between calls counts;
- ``10000x1``: 10,000 contacts advanced in one leg, as ``journey simulate`` does.

A behaviour-neutral change keeps both hashes identical. Record them on the
base commit, then compare after every step:

    .venv/bin/python benchmarks/decision_hash.py --save /tmp/base-hashes.json
    .venv/bin/python benchmarks/decision_hash.py --compare /tmp/base-hashes.json

Prints figures, asserts nothing except with ``--compare`` (exit 1 on a difference).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_simulate import DAYS, START, personas, synthetic  # noqa: E402

from runner.core.engine import Engine  # noqa: E402
from runner.language.loader import load_project  # noqa: E402

RUNS = {"2000x2": (2_000, 2), "10000x1": (10_000, 1)}


def _text(value: object) -> str:
    """A canonical JSON text: sorted keys, datetimes and other objects by str()."""
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def decision_hash(count: int, legs: int) -> tuple[str, int]:
    """The hash of ``count`` contacts advanced over the period in ``legs`` equal calls, and its decision count."""
    loaded = load_project(ROOT)
    if not loaded.ok:
        raise SystemExit("the sample project has errors: " + "; ".join(map(str, loaded.errors)))
    engine = Engine(loaded.project, loaded.journeys)
    stops = [START + timedelta(days=DAYS * (leg + 1) / legs) for leg in range(legs)]
    digest = hashlib.sha256()
    decisions = 0
    for state in synthetic(personas(loaded.project.default_timezone), count):
        for leg, until in enumerate(stops):
            outcome = engine.advance(state, until, start=START if leg == 0 else None)
            decisions += len(outcome.decisions)
            for d in outcome.decisions:
                digest.update(_text([d.at, d.contact, d.journey, d.version, d.stage, d.step, d.action,
                                     d.reason, d.key, d.detail]).encode())
            digest.update(_text(["wake", outcome.wake_at]).encode())
        digest.update(_text(dataclasses.asdict(state)).encode())  # every field, new ones too
    return digest.hexdigest(), decisions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="write the hashes to this JSON file")
    parser.add_argument("--compare", type=Path, help="compare with hashes saved earlier; exit 1 on a difference")
    args = parser.parse_args()
    hashes = {}
    for name, (count, legs) in RUNS.items():
        hashes[name], decisions = decision_hash(count, legs)
        print(f"{name}: {hashes[name]} ({decisions:,} decisions)")
    if args.save:
        args.save.write_text(json.dumps(hashes, indent=2) + "\n")
    if args.compare:
        expected = json.loads(args.compare.read_text())
        differing = [name for name in RUNS if expected.get(name) != hashes[name]]
        print("identical" if not differing else f"DIFFERENT: {', '.join(differing)}")
        return 1 if differing else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
