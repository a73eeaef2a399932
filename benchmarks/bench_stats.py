"""``journey stats`` at scale: 1M enrollments, 10M journal rows, 3M sends, 1M opens and clicks.

Builds a journeys project (one journey: welcome email, a split into two emails with a
10% holdout, waits, a last email, a goal) and a database whose rows are generated
straight into SQLite with bulk inserts through the store's own schema, so the
triggers keep the stats counters exactly as production ticks would. Then, in the
same run:

- stats:      ``journey stats --db DB`` as a real subprocess (the target: <= 2 s);
- stats json: ``journey stats --format json`` (the same figures, as JSON);
- in-process: ``journey_stats`` + the table, without interpreter start-up;
- bare:       ``journey --version`` as a subprocess: the floor of any command;
- journal:    the funnel counted from the journal itself (a covering-index
  ``GROUP BY`` over every decision): what the counters save.

    .venv/bin/python benchmarks/bench_stats.py [--enrollments 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.production.deploy import deploy, load_working_tree
from runner.production.stats import Window, journey_stats
from runner.production.statstext import render
from runner.review.graph import steps_in_file_order
from runner.store import open_store
from runner.store.codec import to_db_time

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 90
CHUNK = 20_000
PROJECT = """\
name: Bench
sender: {from: "Bench <hello@bench.test>"}
default_timezone: UTC
unsubscribe: {url: "https://bench.test/unsubscribe", mailto: "unsubscribe@bench.test"}
"""
JOURNEY = """\
id: trial
version: 1
name: Trial
stages:
  - id: main
    entry: {event: signed_up}
    steps:
      - id: welcome
        email: {template: hello, subject: "Hi"}
      - id: first_wait
        wait: 1d
      - id: pick
        split:
          variants:
            - name: short
              weight: 45
              steps:
                - id: short_mail
                  email: {template: hello, subject: "Short"}
            - name: long
              weight: 45
              steps:
                - id: long_mail
                  email: {template: tips, subject: "Long"}
          holdout: 10
      - id: pause
        wait: 3d
      - id: last_mail
        email: {template: tips, subject: "Last"}
      - id: cool_down
        wait: 7d
goal: {event: purchased, within: 14d}
"""
TEMPLATES = {"hello.html": "<p>Hi</p><a href=\"{{ unsubscribe_url }}\">unsubscribe</a>",
             "tips.html": "<p>Tips</p><a href=\"{{ unsubscribe_url }}\">unsubscribe</a>"}


def make_project(root: Path) -> Path:
    (root / "journeys").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "project.yaml").write_text(PROJECT, encoding="utf-8")
    (root / "journeys" / "trial.yaml").write_text(JOURNEY, encoding="utf-8")
    for name, text in TEMPLATES.items():
        (root / "templates" / name).write_text(text, encoding="utf-8")
    return root


def enrollment_rows(i: int, total: int, rng: random.Random) -> tuple[tuple, list[tuple], list[tuple], list[tuple]]:
    """One contact's enrollment, its ~10 journal rows, ~3 ledger rows and opens/clicks."""
    contact, enrollment = f"c{i}", f"c{i}:trial:1"
    entered = START + timedelta(days=i * DAYS / total, seconds=rng.randrange(3600))
    at = [to_db_time(entered + timedelta(days=d)) for d in (0, 1, 4, 11)]
    bucket = rng.randrange(100)
    variant = "holdout" if bucket < 10 else ("short" if bucket < 55 else "long")
    converted = rng.random() < (0.08 if variant == "holdout" else 0.10 if variant == "short" else 0.11)
    goal_at = to_db_time(entered + timedelta(days=2)) if converted else None
    decisions = [
        (contact, at[0], None, "enter", "event signed_up", None, "{}"),
        (contact, at[0], "welcome", "defer", "send window", None, "{}"),
        (contact, at[0], "welcome", "send", "email hello", f"{enrollment}/1/welcome", "{}"),
        (contact, at[0], "first_wait", "wait", "wait 1d", None, "{}"),
        (contact, at[1], "pick", "holdout" if variant == "holdout" else "split", f"variant {variant} (bucket {bucket})",
         None, f'{{"variant":"{variant}"}}'),
    ]
    sends = [(f"{enrollment}/1/welcome", contact, "welcome", at[0], "sent", None)]
    if variant != "holdout":
        mail = f"{variant}_mail"
        decisions.append((contact, at[1], mail, "send", f"email {mail}", f"{enrollment}/1/{mail}", "{}"))
        sends.append((f"{enrollment}/1/{mail}", contact, mail, at[1], "sent" if bucket % 50 else "failed", None))
    decisions.append((contact, at[1], "pause", "wait", "wait 3d", None, "{}"))
    if converted:
        decisions += [(contact, goal_at, None, "goal", "purchased within 14d", None, "{}"),
                      (contact, goal_at, None, "exit", "goal", None, "{}")]
    elif variant == "holdout":
        decisions += [(contact, at[2], "last_mail", "skip", "holdout", None, "{}"),
                      (contact, at[2], "cool_down", "wait", "wait 7d", None, "{}"),
                      (contact, at[3], None, "exit", "completed", None, "{}")]
    else:
        decisions += [(contact, at[2], "last_mail", "defer", "quiet hours", None, "{}"),
                      (contact, at[2], "last_mail", "send", "email last_mail", f"{enrollment}/1/last_mail", "{}"),
                      (contact, at[2], "cool_down", "wait", "wait 7d", None, "{}"),
                      (contact, at[3], None, "exit", "completed", None, "{}")]
        sends.append((f"{enrollment}/1/last_mail", contact, "last_mail", at[2], "sent", None))
    exit_at, exit_reason = decisions[-1][1], decisions[-1][4]
    enrollment_row = (enrollment, contact, to_db_time(entered), exit_at, exit_reason, goal_at,
                      f'{{"pick":"{variant}"}}', int(variant == "holdout"))
    opens = [(contact, name, at[0], '{"journey":"trial","step":"welcome"}', f"{contact}-{name}")
             for name, chance in (("email_opened", 0.25), ("email_clicked", 0.08)) if rng.random() < chance]
    return enrollment_row, decisions, sends, opens


def populate(store, total: int, rng: random.Random) -> dict[str, int]:
    """Every row, in chunks of ``CHUNK`` contacts, each chunk one transaction."""
    conn, counts = store.conn, {"enrollments": 0, "decisions": 0, "sends": 0, "events": 0}
    created = to_db_time(START)
    for start in range(0, total, CHUNK):
        enrollments, decisions, sends, events = [], [], [], []
        for i in range(start, min(total, start + CHUNK)):
            row, made, ledger, opens = enrollment_rows(i, total, rng)
            enrollments.append(row)
            decisions += made
            sends += ledger
            events += opens
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO contacts (id, created_at, updated_at) VALUES (?, ?, ?)",
                         [(row[1], created, created) for row in enrollments])
        conn.executemany(
            """INSERT INTO enrollments (id, contact_id, journey_id, version, stage, status, entered_at,
                   exited_at, exit_reason, goal_at, variant, holdout)
               VALUES (?, ?, 'trial', 1, 'main', 'exited', ?, ?, ?, ?, ?, ?)""", enrollments)
        conn.executemany(
            """INSERT INTO decisions (contact_id, at, journey_id, version, stage, step, action, reason, key, detail)
               VALUES (?, ?, 'trial', 1, 'main', ?, ?, ?, ?, ?)""", decisions)
        conn.executemany(
            """INSERT INTO sends (key, contact_id, journey_id, version, step_id, scheduled_at, state, error)
               VALUES (?, ?, 'trial', 1, ?, ?, ?, ?)""", sends)
        conn.executemany("INSERT INTO events (contact_id, name, at, properties, message_id) VALUES (?, ?, ?, ?, ?)",
                         events)
        conn.execute("COMMIT")
        for name, rows in (("enrollments", enrollments), ("decisions", decisions), ("sends", sends),
                           ("events", events)):
            counts[name] += len(rows)
    conn.execute("ANALYZE")
    return counts


def timed(run, repeat: int = 5) -> tuple[float, float]:
    """Median wall time and median CPU time (this process and its children) of ``repeat``
    runs, in seconds: on a shared machine the CPU time is the steadier figure."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu_before, started = _cpu(), time.perf_counter()
        run()
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu_before)
    return statistics.median(walls), statistics.median(cpus)


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cli(root: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert done.returncode == 0, done.stderr


def journal_funnel(store) -> list:
    """The funnel counted from the journal itself, as it would be without the counters."""
    return store.conn.execute("""SELECT journey_id, version, step, action, count(*) FROM decisions
                                 INDEXED BY decisions_stats_bench GROUP BY journey_id, version, step, action""").fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="Build in DIR and keep it (else a temporary folder); "
                        "a database already built there is timed again without rebuilding.")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = (options.keep or Path(tmp)) / "bench"
        db = root / "journey.db"
        if db.exists():
            store = open_store(db)
            counts = {name: store.conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                      for name in ("enrollments", "decisions", "sends", "events")}
            print("reused: " + ", ".join(f"{n:,} {name}" for name, n in counts.items()), flush=True)
        else:
            make_project(root)
            store = open_store(db)
            store.set_commit_durability(False)
            deploy(store, load_working_tree(root).journeys, START)
            built = time.perf_counter()
            counts = populate(store, options.enrollments, random.Random(14))
            build_s = time.perf_counter() - built
            print(f"built in {build_s:.0f} s: " + ", ".join(f"{n:,} {name}" for name, n in counts.items()), flush=True)
        journeys = load_working_tree(root).journeys
        found = journey_stats(store, journeys, Window(), step_order=steps_in_file_order)
        print(render(found, Window(), "table"))
        results = {
            "stats": timed(lambda: cli(root, "stats", "--db", str(db))),
            "stats json": timed(lambda: cli(root, "stats", "--db", str(db), "--format", "json")),
            "in-process": timed(lambda: render(journey_stats(store, journeys, Window(), steps_in_file_order),
                                               Window(), "table")),
            "bare": timed(lambda: cli(root, "--version")),
        }
        store.conn.execute("CREATE INDEX IF NOT EXISTS decisions_stats_bench ON decisions(journey_id, version, step, action)")
        results["journal"] = timed(lambda: journal_funnel(store), repeat=3)
        store.close()
    bare_wall, bare_cpu = results["bare"]
    print(f"{'measure':<12} {'wall s':>8} {'x bare':>7} {'cpu s':>8} {'x bare':>7}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<12} {wall:>8.3f} {wall / bare_wall:>7.2f} {cpu:>8.3f} {cpu / bare_cpu:>7.2f}")
    wall, cpu = results["stats"]
    print(f"target: journey stats <= 2 s over {counts['enrollments']:,} enrollments and {counts['decisions']:,} "
          f"journal rows: {wall:.2f} s wall, {cpu:.2f} s cpu: {'met' if max(wall, cpu) <= 2 else 'NOT met'}")

if __name__ == "__main__":
    main()
