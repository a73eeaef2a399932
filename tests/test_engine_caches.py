"""The run's caches change no decision: remembered answers equal answers worked out afresh.

Every ``Engine.advance`` call starts a new run with empty caches. Advancing
contacts one wake-up at a time (a fresh run per instant, so nothing is
remembered across instants) must decide exactly what one call over the whole
period decides (where ``Memo``/``Stamp`` records, date and schedule spans,
score parts and attribute snapshots live for 90 days). This pins every
cross-instant cache of docs/architecture.md's "Cache inventory" to the plain
computation, on the sample project's personas shifted as the benchmarks
shift them.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_simulate import DAYS, START, personas, synthetic  # noqa: E402

from runner.core.engine import Engine  # noqa: E402
from runner.language.loader import load_project  # noqa: E402


def decisions_in_one_call(engine: Engine, state) -> list:
    return list(engine.advance(state, START + timedelta(days=DAYS), start=START).decisions)


def decisions_instant_by_instant(engine: Engine, state) -> list:
    end = START + timedelta(days=DAYS)
    outcome = engine.advance(state, START, start=START)
    decisions = list(outcome.decisions)
    while outcome.wake_at is not None and outcome.wake_at <= end:
        outcome = engine.advance(state, outcome.wake_at)  # a fresh run: empty caches
        decisions.extend(outcome.decisions)
    outcome = engine.advance(state, end)
    return decisions + list(outcome.decisions)


def test_remembered_answers_decide_what_fresh_runs_decide():
    loaded = load_project(ROOT)
    engine = Engine(loaded.project, loaded.journeys)
    templates = personas(loaded.project.default_timezone)
    count = 4 * len(templates)
    remembered = [decisions_in_one_call(engine, s) for s in synthetic(templates, count)]
    fresh = [decisions_instant_by_instant(engine, s) for s in synthetic(templates, count)]
    assert sum(map(len, remembered)) > 10 * count  # a real workload: sends, waits, moves, exits
    assert fresh == remembered
