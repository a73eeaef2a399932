"""Deployments: versions recorded, changed content refused, pinned versions, migrations, plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_tick_kit import WELCOME, add_signups, journey_cli, tiny_project

from runner.core.problems import JourneyError
from runner.production.deploy import deploy, deployed_set, load_working_tree, make_plan
from runner.production.tick import build_runtime, run_tick
from runner.store import open_store

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
# v2 changes the second email and adds a third
WELCOME_V2 = WELCOME.replace("version: 1", "version: 2").replace(
    'subject: "Tips for {{ contact.first_name }}"', 'subject: "New tips for {{ contact.first_name }}"'
) + """\
      - id: survey
        email: {template: tips, subject: "Survey"}
"""


def _write(root: Path, text: str) -> None:
    (root / "journeys" / "welcome.yaml").write_text(text, encoding="utf-8")


def _deploy(store, root: Path, now: datetime = AT):
    return deploy(store, load_working_tree(root).journeys, now)


def _subjects(store, tmp_path: Path) -> dict[str, str]:
    from email import message_from_bytes, policy

    subjects = {}
    for path in (tmp_path / "outbox").glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        subjects[str(message["X-Journey-Key"])] = str(message["Subject"])
    return subjects


def test_deploy_records_each_version_once(tmp_path):
    root = tiny_project(tmp_path / "p")
    store = open_store(tmp_path / "j.db")
    first = _deploy(store, root)
    assert first.recorded == [("welcome", 1)]
    again = _deploy(store, root)
    assert again.recorded == [] and again.unchanged == [("welcome", 1)]
    (row,) = store.deployments()
    assert row["version"] == 1 and json.loads(row["content"])["id"] == "welcome"
    assert row["content_hash"] == load_working_tree(root).journeys[0].content_hash


def test_changed_content_without_a_version_bump_is_refused_and_nothing_is_recorded(tmp_path):
    root = tiny_project(tmp_path / "p")
    store = open_store(tmp_path / "j.db")
    _deploy(store, root)
    _write(root, WELCOME.replace("wait: 1d", "wait: 2d"))  # same version 1
    other = WELCOME.replace("id: welcome", "id: other")
    (root / "journeys" / "other.yaml").write_text(other, encoding="utf-8")
    with pytest.raises(JourneyError) as raised:
        _deploy(store, root)
    assert "nothing was recorded" in str(raised.value)
    assert "bump" in raised.value.problems[0].message
    assert [(r["journey_id"], r["version"]) for r in store.deployments()] == [("welcome", 1)]

    # the CLI says the same, exit 1, no traceback
    result = journey_cli(["deploy", "--db", str(tmp_path / "j.db")], cwd=root)
    assert result.returncode == 1
    assert "bump" in result.stderr and "Traceback" not in result.stderr
    plan = journey_cli(["plan", "--db", str(tmp_path / "j.db"), "--format", "json"], cwd=root)
    assert plan.returncode == 1
    changes = {j["journey"]: j["change"] for j in json.loads(plan.stdout)["journeys"]}
    assert changes == {"welcome": "refused", "other": "added"}


def test_in_flight_contacts_stay_on_the_version_they_entered(tmp_path):
    root = tiny_project(tmp_path / "p")
    store = open_store(tmp_path / "j.db")
    _deploy(store, root)
    add_signups(store, 1, AT, prefix="old")
    tree = load_working_tree(root)
    outbox = f"outbox:{tmp_path / 'outbox'}"
    run_tick(store, build_runtime(store, tree.project, outbox), AT + timedelta(hours=1))

    _write(root, WELCOME_V2)
    _deploy(store, root, AT + timedelta(hours=2))
    add_signups(store, 1, AT + timedelta(hours=3), prefix="new")
    runtime = build_runtime(store, tree.project, outbox)
    assert [j.version for j in runtime.deployed.pinned] == [1]
    run_tick(store, runtime, AT + timedelta(days=3))

    versions = dict(store.conn.execute("SELECT key, version FROM sends").fetchall())
    assert versions == {
        "old00000:welcome:1/1/hello": 1, "old00000:welcome:1/1/tips": 1,
        "new00000:welcome:1/1/hello": 2, "new00000:welcome:1/1/tips": 2, "new00000:welcome:1/1/survey": 2,
    }
    subjects = _subjects(store, tmp_path)
    assert subjects["old00000:welcome:1/1/tips"] == "Tips for Old00000"  # the v1 step, pinned
    assert subjects["new00000:welcome:1/1/tips"] == "New tips for New00000"


def test_a_migration_moves_in_flight_contacts_to_the_new_version(tmp_path):
    root = tiny_project(tmp_path / "p")
    store = open_store(tmp_path / "j.db")
    _deploy(store, root)
    add_signups(store, 1, AT)
    tree = load_working_tree(root)
    outbox = f"outbox:{tmp_path / 'outbox'}"
    run_tick(store, build_runtime(store, tree.project, outbox), AT + timedelta(hours=1))

    _write(root, WELCOME_V2 + "migration: {from: 1, map: {tips: survey}}\n")
    plan = make_plan(store, load_working_tree(root).journeys)
    (item,) = plan.journeys
    assert item.change == "changed" and item.steps_changed == ["tips"] and item.steps_added == ["survey"]
    assert item.in_flight == 1 and item.migration == "from v1: map"
    _deploy(store, root, AT + timedelta(hours=2))
    run_tick(store, build_runtime(store, tree.project, outbox), AT + timedelta(days=3))

    rows = store.conn.execute("SELECT key, version FROM sends ORDER BY key").fetchall()
    # the contact waited on v1 (next step: tips) and the map sends it to v2's survey instead
    assert rows == [("c00000:welcome:1/1/hello", 1), ("c00000:welcome:1/1/survey", 2)]
    (enrollment,) = store.conn.execute("SELECT version, status FROM enrollments").fetchall()
    assert enrollment == (2, "exited")


def test_plan_counts_in_flight_contacts_at_removed_and_changed_steps(tmp_path):
    root = tiny_project(tmp_path / "p")
    store = open_store(tmp_path / "j.db")
    _deploy(store, root)
    add_signups(store, 4, AT)
    tree = load_working_tree(root)
    run_tick(store, build_runtime(store, tree.project, f"outbox:{tmp_path / 'o'}"), AT + timedelta(hours=1))
    # v2 drops the tips step the four contacts wait for
    _write(root, WELCOME.replace("version: 1", "version: 2").split("      - wait: 1d")[0] + "      - wait: 2d\n")
    result = journey_cli(["plan", "--db", str(tmp_path / "j.db")], cwd=root)
    assert result.returncode == 0, result.stderr
    assert "~ welcome v1 -> v2: changed" in result.stdout
    assert "- tips  (4 in-flight contact(s) here)" in result.stdout
    assert "4 contact(s) in flight: stay pinned to v1" in result.stdout
    store.close()


def test_the_tick_runs_deployed_versions_not_the_working_tree(tmp_path):
    root = tiny_project(tmp_path / "p")
    store = open_store(tmp_path / "j.db")
    _deploy(store, root)
    _write(root, WELCOME_V2)  # edited but not deployed
    add_signups(store, 1, AT)
    tree = load_working_tree(root)
    runtime = build_runtime(store, tree.project, f"outbox:{tmp_path / 'o'}")
    assert [(j.id, j.version) for j in deployed_set(store).current] == [("welcome", 1)]
    run_tick(store, runtime, AT + timedelta(days=3))
    assert {v for (v,) in store.conn.execute("SELECT version FROM sends")} == {1}


def test_run_without_a_deployment_is_a_clear_error(tmp_path):
    root = tiny_project(tmp_path / "p")
    open_store(tmp_path / "j.db").close()
    result = journey_cli(["run", "--db", str(tmp_path / "j.db")], cwd=root)
    assert result.returncode == 1
    assert "journey deploy" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- where in-flight contacts continue

WELCOME_PAUSE = WELCOME.replace("      - wait: 1d\n", "      - id: pause\n        wait: 1d\n")
WELCOME_PAUSE_V2 = WELCOME_PAUSE.replace("version: 1", "version: 2") + """\
      - id: survey
        email: {template: tips, subject: "Survey"}
"""


def _waiting_contacts(tmp_path: Path, count: int):
    """A project with WELCOME_PAUSE deployed and ``count`` contacts waiting in `pause` (next step: tips)."""
    root = tiny_project(tmp_path / "p", journeys={"welcome": WELCOME_PAUSE})
    store = open_store(tmp_path / "j.db")
    _deploy(store, root)
    add_signups(store, count, AT)
    run_tick(store, build_runtime(store, load_working_tree(root).project, f"outbox:{tmp_path / 'o'}"),
             AT + timedelta(hours=1))
    return root, store


def test_plan_warns_when_a_map_names_the_step_contacts_are_at_and_so_restarts_them(tmp_path):
    root, store = _waiting_contacts(tmp_path, 3)
    # the author maps the wait the contacts sit in; their position is the next step, tips
    _write(root, WELCOME_PAUSE_V2 + "migration: {from: 1, map: {pause: survey}}\n")
    (item,) = make_plan(store, load_working_tree(root).journeys).journeys
    assert [(m.version, m.step, m.contacts, m.to_version, m.to_step, m.outcome) for m in item.continuations] == [
        (1, "tips", 3, 2, "hello", "restart")]
    (warning,) = item.warnings
    assert "restarts 3 contact(s)" in warning and "`pause`" in warning and "`tips`" in warning

    result = journey_cli(["plan", "--db", str(tmp_path / "j.db")], cwd=root)
    assert result.returncode == 0, result.stderr
    assert "v1 main/tips -> v2 main/hello: 3 contact(s), restart" in result.stdout
    assert "warning: the map restarts 3 contact(s)" in result.stdout
    as_json = json.loads(journey_cli(["plan", "--db", str(tmp_path / "j.db"), "--format", "json"], cwd=root).stdout)
    assert as_json["journeys"][0]["continuations"][0]["to_step"] == "hello"

    # the plan predicted the engine: the stage restarts and hello goes out again under a new stage visit
    _deploy(store, root, AT + timedelta(hours=2))
    run_tick(store, build_runtime(store, load_working_tree(root).project, f"outbox:{tmp_path / 'o'}"),
             AT + timedelta(days=2))
    assert "c00000:welcome:1/2/hello" in {key for (key,) in store.conn.execute("SELECT key FROM sends")}
    store.close()


def test_plan_shows_where_mapped_and_pinned_contacts_continue(tmp_path):
    root, store = _waiting_contacts(tmp_path, 2)
    _write(root, WELCOME_PAUSE_V2 + "migration: {from: 1, map: {tips: survey}}\n")
    (item,) = make_plan(store, load_working_tree(root).journeys).journeys
    assert [(m.step, m.contacts, m.to_step, m.outcome) for m in item.continuations] == [
        ("tips", 2, "survey", "mapped")]
    assert item.warnings == []
    text = journey_cli(["plan", "--db", str(tmp_path / "j.db")], cwd=root).stdout
    assert "v1 main/tips -> v2 main/survey: 2 contact(s), mapped" in text and "warning" not in text

    _write(root, WELCOME_PAUSE_V2)  # no migration: they stay where they are, on v1
    (item,) = make_plan(store, load_working_tree(root).journeys).journeys
    assert [(m.version, m.step, m.to_version, m.to_step, m.outcome) for m in item.continuations] == [
        (1, "tips", 1, "tips", "pinned")]
    store.close()


TWO_STAGES = """\
id: welcome
version: 1
name: Welcome
stages:
  - id: main
    entry: {event: signed_up}
    steps:
      - id: hello
        email: {template: hello, subject: "Hello"}
  - id: upgraded
    entry: {event: upgraded}
    steps:
      - id: tips
        email: {template: tips, subject: "Tips"}
"""


def test_plan_warns_that_contacts_whose_stage_is_done_restart_it(tmp_path):
    root = tiny_project(tmp_path / "p", journeys={"welcome": TWO_STAGES})
    store = open_store(tmp_path / "j.db")
    _deploy(store, root)
    add_signups(store, 2, AT)
    run_tick(store, build_runtime(store, load_working_tree(root).project, f"outbox:{tmp_path / 'o'}"),
             AT + timedelta(hours=1))  # hello sent: idle in `main`, waiting for `upgraded`
    _write(root, TWO_STAGES.replace("version: 1", "version: 2") + "migration: {from: 1, map: {hello: tips}}\n")
    (item,) = make_plan(store, load_working_tree(root).journeys).journeys
    assert [(m.stage, m.step, m.contacts, m.to_step, m.outcome) for m in item.continuations] == [
        ("main", None, 2, "hello", "restart")]
    (warning,) = item.warnings
    assert "restarts 2 contact(s) at v1 main/(stage done)" in warning
    assert "the map names `hello`, which they have passed (their stage is done)" in warning
    store.close()
