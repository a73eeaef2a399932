"""`journey stats` after a month of real production ticks: every figure recounted from the journal.

The sample month runs through the real CLI (`journey demo`: import, deploy, hourly
ticks), with opens and clicks added to the events; the test then reads the raw
decision journal, the send ledger and the events table with plain sqlite3 and
counts every figure itself, in Python, the way a reader of `journey history`
would, and compares it with `journey stats --format json` (all time, and a week).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict

import pytest
from test_tick_kit import copy_sample, journey_cli

RAN = {"send", "skip", "webhook", "wait", "wait_for", "branch", "split", "holdout", "update"}
ENGAGEMENT = [  # (contact, event, journey, step, day): opens and clicks naming real steps, and one that names none
    ("u0010", "email_opened", "onboarding", "nudge", "2026-03-09"),
    ("u0011", "email_opened", "onboarding", "nudge", "2026-03-10"),
    ("u0011", "email_clicked", "onboarding", "nudge", "2026-03-10"),
    ("u0012", "email_opened", "onboarding", "community_invite", "2026-03-20"),
    ("u0013", "email_opened", "discovery", "popular_guides", "2026-03-12"),
    ("u0014", "email_clicked", "discovery", "popular_guides", "2026-03-16"),
    ("u0015", "email_opened", "onboarding", "no_such_step", "2026-03-12"),
]
WEEK = ("2026-03-08", "2026-03-15")


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    root = copy_sample(tmp_path_factory.mktemp("stats") / "kitebase")
    with (root / "examples/data/events.jsonl").open("a", encoding="utf-8") as events:
        for index, (contact, name, journey, step, day) in enumerate(ENGAGEMENT):
            events.write(json.dumps({"type": "track", "userId": contact, "event": name,
                                     "properties": {"journey": journey, "step": step},
                                     "timestamp": f"{day}T12:00:00Z", "messageId": f"stats-{index}"}) + "\n")
    done = journey_cli(["demo"], cwd=root, timeout=900)
    assert done.returncode == 0, done.stderr
    return root


def stats_json(root, *args):
    done = journey_cli(["stats", "--format", "json", *args], cwd=root)
    assert done.returncode == 0, done.stderr
    return {(v["journey"], v["version"]): v for v in json.loads(done.stdout)["journeys"]}


def recount(root, since="0000", until="9999"):
    """Every figure of `journey stats`, counted from the raw tables in Python."""
    db = sqlite3.connect(root / "journey.db")
    db.row_factory = sqlite3.Row
    figures = defaultdict(lambda: {"entered": 0, "goals": 0, "exits": Counter(), "steps": defaultdict(Counter),
                                   "variants": Counter()})
    enrollments = {}  # (contact, journey) -> the current enrollment, walked in journal order
    finished = []
    for row in db.execute("SELECT * FROM decisions ORDER BY contact_id, at, id"):
        journey = figures[(row["journey_id"], row["version"])]
        in_window = since <= row["at"][:10] < until
        action, step, key = row["action"], row["step"], (row["contact_id"], row["journey_id"])
        if action == "enter":
            enrollments[key] = {"journey": row["journey_id"], "version": row["version"], "at": row["at"],
                                "variant": {}, "converted": False}
        enrollment = enrollments.get(key)
        if action in ("split", "holdout"):
            enrollment["variant"][step] = json.loads(row["detail"])["variant"]
        elif action == "goal":
            enrollment["converted"] = True
        elif action == "migrate":
            enrollment["version"] = row["version"]
        elif action == "exit":
            finished.append(enrollments.pop(key))
        if not in_window:
            continue
        if action == "enter":
            journey["entered"] += 1
        elif action == "goal":
            journey["goals"] += 1
        elif action == "exit":
            journey["exits"][row["reason"]] += 1
        elif step is not None and action == "defer":
            journey["steps"][step]["deferred"] += 1
        elif step is not None and action in RAN:
            journey["steps"][step]["reached"] += 1
            if action == "skip":
                journey["steps"][step][f"skipped:{row['reason']}"] += 1
            elif action == "branch":
                journey["steps"][step][f"outcome:{row['reason']}"] += 1
            elif action in ("split", "holdout"):
                journey["steps"][step][f"outcome:{json.loads(row['detail'])['variant']}"] += 1
    for enrollment in [*finished, *enrollments.values()]:
        if enrollment["variant"] and since <= enrollment["at"][:10] < until:
            for split, name in enrollment["variant"].items():
                variants = figures[(enrollment["journey"], enrollment["version"])]["variants"]
                variants[(split, name, "contacts")] += 1
                variants[(split, name, "conversions")] += enrollment["converted"]
    for row in db.execute("SELECT * FROM sends"):
        if since <= row["scheduled_at"][:10] < until:
            state = {"claimed": "pending", "in_doubt": "pending"}.get(row["state"], row["state"])
            if state == "skipped":
                state = f"skipped:{row['error']}"
            figures[(row["journey_id"], row["version"])]["steps"][row["step_id"]][state] += 1
    engagement = Counter()
    for row in db.execute("SELECT * FROM events WHERE name IN ('email_opened', 'email_clicked')"):
        properties = json.loads(row["properties"])
        if since <= row["at"][:10] < until:
            engagement[(properties.get("journey"), properties.get("step"), row["name"])] += 1
    db.close()
    return figures, engagement


def shown_step(step):
    """A step of the JSON output in the recount's terms."""
    counts = Counter({name: step[name] for name in ("reached", "sent", "failed", "pending", "deferred")})
    counts.update({f"skipped:{reason}": n for reason, n in step["skipped"].items()})
    counts.update({f"outcome:{outcome}": n for outcome, n in step["outcomes"].items()})
    return +counts


@pytest.mark.parametrize("window", [None, WEEK], ids=["all-time", "one-week"])
def test_every_figure_is_the_journal_recounted(month, window):
    args = ["--since", window[0], "--until", window[1]] if window else []
    shown = stats_json(month, *args)
    figures, engagement = recount(month, *(window or ()))
    assert set(shown) == {key for key, counted in figures.items()
                          if counted["entered"] or counted["steps"] or counted["variants"]}
    assert sum(v["entered"] for v in shown.values()) > (100 if window else 500)
    for key, version in shown.items():
        counted = figures[key]
        assert version["entered"] == counted["entered"], key
        assert version["goals"] == counted["goals"], key
        assert version["exits"] == dict(counted["exits"]), key
        steps = {step["id"]: step for step in version["steps"]}
        for step_id, step in steps.items():
            assert shown_step(step) == +counted["steps"][step_id], (key, step_id)
        assert set(counted["steps"]) <= set(steps), key  # nothing counted on a step the funnel leaves out
        variants = Counter()
        for variant in version["variants"]:
            variants[(variant["split"], variant["name"], "contacts")] += variant["contacts"]
            variants[(variant["split"], variant["name"], "conversions")] += variant["conversions"]
        assert +variants == +counted["variants"], key
        for step_id, step in steps.items():
            assert step["opens"] == engagement[(key[0], step_id, "email_opened")], (key, step_id)
            assert step["clicks"] == engagement[(key[0], step_id, "email_clicked")], (key, step_id)


def test_the_month_has_what_the_figures_are_about(month):
    """The recount is not vacuous: sends, skips by reason, exits, goals, a split with a holdout, opens."""
    shown = stats_json(month)
    onboarding, advocacy = shown[("onboarding", 3)], shown[("advocacy", 1)]
    assert onboarding["goals"] > 0 and onboarding["exits"]["goal"] == onboarding["goals"]
    nudge = next(step for step in onboarding["steps"] if step["id"] == "nudge")
    assert nudge["sent"] > 0 and (nudge["opens"], nudge["clicks"]) == (2, 1)
    reasons = {reason for version in shown.values() for step in version["steps"] for reason in step["skipped"]}
    assert "holdout" in reasons and any(reason.startswith("condition false") for reason in reasons)
    names = {variant["name"]: variant["contacts"] for variant in advocacy["variants"]}
    assert set(names) == {"referral", "testimonial", "holdout"} and all(names.values())
    assert advocacy["holdout"] is None  # advocacy has no goal: nothing to convert to, so no lift claimed
