"""``journey diff``: a semantic diff marketers can read, from two files or against a git ref."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from test_report_project import TRIAL_JOURNEY, run_journey, write_trial_project

from runner.review.diff import diff_journeys, format_markdown, format_text
from runner.review.gitbase import compare_with_base, version_bump_problems

OLD = yaml.safe_load(TRIAL_JOURNEY)


def changed(**edits) -> dict:
    new = copy.deepcopy(OLD)
    for edit in edits.values():
        edit(new)
    return new


def texts(old: dict, new: dict) -> list[str]:
    return [change.text for change in diff_journeys(old, new).changes]


def test_identical_journeys_have_no_changes() -> None:
    result = diff_journeys(OLD, copy.deepcopy(OLD))
    assert result.status == "unchanged" and result.changes == [] and not result.version_missing


def test_timing_subject_and_template_changes_read_like_sentences() -> None:
    def edit(new):
        steps = new["stages"][0]["steps"]
        steps[2]["wait"] = "3d"
        steps[1]["email"]["subject"] = "Welcome aboard"
        steps[1]["email"]["template"] = "welcome_v2"
        steps[4]["wait_for"]["timeout"] = "5d"
        new["version"] = 2

    result = diff_journeys(OLD, changed(a=edit))
    lines = [c.text for c in result.changes]
    assert "wait after welcome: wait 2d → 3d" in lines
    assert any(line.startswith("step welcome: subject “Hi {{ contact.first_name }}") and line.endswith("→ “Welcome aboard”") for line in lines)
    assert "step welcome: template “welcome” → “welcome_v2”" in lines
    assert "step end: timeout 3d → 5d" in lines
    assert "version 1 → 2" in lines and not result.version_missing


def test_missing_version_bump_is_flagged() -> None:
    def edit(new):
        new["stages"][0]["steps"][2]["wait"] = "1d"

    result = diff_journeys(OLD, changed(a=edit))
    assert result.version_missing
    assert result.changes[-1].text == "version NOT bumped: still 1 (was 1); bump it so contacts in flight keep v1"
    assert "! version NOT bumped" in format_text([result])
    assert "[!WARNING]" in format_markdown([result])


def test_steps_added_removed_and_reordered() -> None:
    def edit(new):
        steps = new["stages"][0]["steps"]
        steps.insert(0, {"id": "hello", "email": {"template": "welcome", "subject": "Hello"}})
        tag = steps.pop(1)  # `tag` moves after `welcome`
        steps.insert(2, tag)
        new["stages"][1]["steps"] = []  # route (and pro_mail, the else wait) removed

    lines = texts(OLD, changed(a=edit))
    assert "step hello added in start: email “Hello” (welcome)" in lines
    assert any(line.startswith("step route removed from paid") for line in lines)
    assert any(line.startswith("step pro_mail removed from route.case 1") for line in lines)
    assert "step tag reordered: now after welcome" in lines or "step welcome reordered: now after hello" in lines
    assert not any(line.startswith("wait after") and ("added" in line or "removed" in line) for line in lines), lines


def test_split_condition_settings_stage_exit_and_goal_changes() -> None:
    def edit(new):
        split = new["stages"][0]["steps"][3]["split"]
        split["variants"][0]["weight"] = 60
        split["variants"][1]["weight"] = 35
        split["holdout"] = 5
        new["stages"][1]["steps"][0]["branch"]["cases"][0]["if"] = {"attribute": "plan", "in": ["pro", "team"]}
        new["stages"][1]["entry"] = {"event": "purchased", "where": {"amount": {"gte": 100}}}
        new["settings"]["send_window"]["to"] = "18:00"
        new["settings"]["reentry"] = "always"
        new["exit"].append({"attribute": "plan", "equals": "enterprise"})
        new["goal"]["within"] = "14d"
        new["stages"].reverse()

    lines = texts(OLD, changed(a=edit))
    assert "step ab: split a 45% → 60%, b 45% → 35%" in lines
    assert "step ab: holdout 10% → 5%" in lines
    assert "step route: case 1 if plan = pro → if plan in [pro, team]" in lines
    assert "stage paid entry: on event purchased → on event purchased where amount ≥ 100" in lines
    assert "settings.send_window: {from: 08:00, to: 20:00} → {from: 08:00, to: 18:00}" in lines
    assert "settings.reentry added: always" in lines
    assert "exit:1 added: leaves when plan = enterprise" in lines
    assert "goal: event upgraded within 30d → event upgraded within 14d" in lines
    assert "stages reordered: start, paid → paid, start" in lines


def test_step_condition_added_and_kind_changed() -> None:
    def edit(new):
        steps = new["stages"][0]["steps"]
        steps[1]["if"] = {"segment": "vip"}
        steps[0] = {"id": "tag", "webhook": {"url": "https://crm.test/hook"}}

    lines = texts(OLD, changed(a=edit))
    assert "step welcome: now only if segment vip" in lines
    assert "step tag: update → webhook (webhook POST https://crm.test/hook)" in lines


def test_added_and_removed_journeys() -> None:
    assert diff_journeys(None, OLD).status == "added"
    assert diff_journeys(OLD, None).status == "removed"


@pytest.mark.parametrize("weird", [{"id": "x", "version": 1, "stages": "nope"}, {"id": "x", "stages": [1, None, {"steps": 5}]}])
def test_malformed_mappings_do_not_crash(weird: dict) -> None:
    diff_journeys(OLD, weird)
    diff_journeys(weird, OLD)


def test_diff_command_on_two_files_in_every_format(tmp_path: Path) -> None:
    old = tmp_path / "old.yaml"
    new = tmp_path / "new.yaml"
    old.write_text(TRIAL_JOURNEY)
    new.write_text(TRIAL_JOURNEY.replace("- wait: 2d", "- wait: 3d").replace("version: 1", "version: 2"))
    text = run_journey(["diff", str(old), str(new)], tmp_path)
    assert text.returncode == 0, text.stderr
    assert "trial (changed, v1 → v2)" in text.stdout and "wait after welcome: wait 2d → 3d" in text.stdout
    data = json.loads(run_journey(["diff", str(old), str(new), "--format", "json"], tmp_path).stdout)
    (journey,) = data["journeys"]
    assert journey["journey"] == "trial" and journey["version_missing"] is False
    assert {"area": "steps", "kind": "changed", "subject": "wait after welcome", "text": "wait after welcome: wait 2d → 3d",
            "old": "2d", "new": "3d"} in journey["changes"]
    markdown = run_journey(["diff", str(old), str(new), "--format", "markdown"], tmp_path).stdout
    assert markdown.startswith("### `trial` — changed, v1 → v2")


def test_diff_command_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(TRIAL_JOURNEY)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    result = run_journey(["diff", str(good), str(bad)], tmp_path, process=True)
    assert result.returncode == 1 and "bad.yaml:" in result.stderr and "Traceback" not in result.stderr
    assert run_journey(["diff", str(good)], tmp_path).returncode == 2


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write_trial_project(tmp_path)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    return tmp_path


def test_base_ref_finds_changed_added_and_removed_journeys(repo: Path) -> None:
    journey_file = repo / "journeys" / "trial.yaml"
    journey_file.write_text(TRIAL_JOURNEY.replace("- wait: 2d", "- wait: 3d"))
    (repo / "journeys" / "fresh.yaml").write_text(TRIAL_JOURNEY.replace("id: trial", "id: fresh"))
    comparison = compare_with_base(repo, "HEAD")
    assert [(d.journey, d.status) for d in comparison.diffs] == [("fresh", "added"), ("trial", "changed")]
    problems = version_bump_problems(repo, "HEAD")
    (problem,) = problems
    lines = TRIAL_JOURNEY.splitlines()
    assert (problem.line, problem.col) == (lines.index("version: 1") + 1, 1)
    assert problem.code == "journey.version-not-bumped" and problem.file.endswith("trial.yaml")
    assert "still 1" in problem.message and "version: 2" in problem.hint

    journey_file.write_text(TRIAL_JOURNEY.replace("- wait: 2d", "- wait: 3d").replace("version: 1", "version: 2"))
    assert version_bump_problems(repo, "HEAD") == []
    journey_file.unlink()
    (removed,) = [d for d in compare_with_base(repo, "HEAD").diffs if d.journey == "trial"]
    assert removed.status == "removed"


def test_a_comment_only_change_needs_no_bump(repo: Path) -> None:
    (repo / "journeys" / "trial.yaml").write_text("# reworded comment\n" + TRIAL_JOURNEY)
    assert compare_with_base(repo, "HEAD").diffs == []
    assert version_bump_problems(repo, "HEAD") == []


def test_diff_base_command(repo: Path) -> None:
    (repo / "journeys" / "trial.yaml").write_text(TRIAL_JOURNEY.replace('subject: "Thanks"', 'subject: "Thank you"'))
    result = run_journey(["diff", "--base", "HEAD"], repo)
    assert result.returncode == 0, result.stderr
    assert "step o: subject “Thanks” → “Thank you”" in result.stdout
    assert "! version NOT bumped" in result.stdout
    unknown = run_journey(["diff", "--base", "no-such-ref"], repo)
    assert unknown.returncode == 2 and "unknown git ref 'no-such-ref'" in unknown.stderr
    assert run_journey(["diff", "--base", "--upload-pack=x"], repo).returncode == 2


KEYS = ["id", "version", "name", "stages", "steps", "entry", "wait", "email", "subject", "template", "split",
        "variants", "weight", "holdout", "branch", "cases", "else", "if", "wait_for", "on_event", "on_timeout",
        "timeout", "exit", "goal", "settings", "segments", "update", "set", "stage", "event", "where"]


def yaml_values():
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["2d", "a", "", "x y"]))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
        max_leaves=30,
    )


def test_diff_never_crashes_on_arbitrary_yaml_shapes() -> None:
    from hypothesis import example, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=120, deadline=None)
    @example(old={}, new={"id": None, "stages": 1})
    @example(old={"stages": [{"id": "s", "steps": [{"wait_until": {"days": [1, None]}},
                                                   {"update": {"set": [1], "add_score": 2}}]}]},
             new={"segments": {"a": {"all": 3}}, "exit": [{"any": None}]})
    @given(st.dictionaries(st.sampled_from(KEYS), yaml_values(), max_size=6),
           st.dictionaries(st.sampled_from(KEYS), yaml_values(), max_size=6))
    def check(old: dict, new: dict) -> None:
        result = diff_journeys(old, new)
        format_text([result])
        format_markdown([result])
        diff_journeys(OLD, new)
        diff_journeys(old, OLD)

    check()


def test_validate_base_reports_the_missing_bump_at_the_version_key(repo: Path) -> None:
    journey_file = repo / "journeys" / "trial.yaml"
    journey_file.write_text(TRIAL_JOURNEY.replace('subject: "Thanks"', 'subject: "Thank you"'))
    line = TRIAL_JOURNEY.splitlines().index("version: 1") + 1
    result = run_journey(["validate", "--base", "HEAD", "--format", "github"], repo, process=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"::error file=journeys/trial.yaml,line={line},col=1" in result.stdout
    assert "journey `trial` changed since HEAD but its version is still 1" in result.stdout
    journey_file.write_text(journey_file.read_text().replace("version: 1", "version: 2"))
    assert run_journey(["validate", "--base", "HEAD"], repo).returncode == 0
    unknown = run_journey(["validate", "--base", "no-such-ref"], repo)
    assert unknown.returncode == 2 and "unknown git ref" in unknown.stderr


def test_an_added_journey_is_described_by_its_stages_and_steps_not_a_count() -> None:
    added = texts(None, OLD)
    assert added[0] == "journey trial added" and not any("(2 stages)" in text for text in added)
    assert any(text.startswith("stage paid added") and "purchased" in text for text in added)
    assert "step welcome in start: email “Hi {{ contact.first_name }} \"quoted\" <b>#1; `x` | end” (welcome)" in added
    assert "step tip_a in ab.variant a: email “A” (welcome)" in added
    assert "wait after welcome in start: wait 2d" in added
    removed = texts(OLD, None)
    assert removed[0] == "journey trial removed" and "step o in end.on_event: email “Thanks” (welcome)" in removed


def test_diff_base_covers_template_and_project_changes(repo: Path) -> None:
    welcome = repo / "templates" / "welcome.html"
    welcome.write_text(welcome.read_text(encoding="utf-8") + "<p>One more line</p>\n", encoding="utf-8")
    (repo / "templates" / "fresh.txt").write_text("new\n", encoding="utf-8")
    (repo / "project.yaml").write_text((repo / "project.yaml").read_text(encoding="utf-8") + "# tuned\n",
                                       encoding="utf-8")
    text = run_journey(["diff", "--base", "HEAD"], repo)
    assert text.returncode == 0, text.stderr
    assert "no journey changed" in text.stdout
    assert "* templates/welcome.html changed (+1 -0 lines)" in text.stdout
    assert "+ templates/fresh.txt added" in text.stdout and "* project.yaml changed (+1 -0 lines)" in text.stdout
    as_json = json.loads(run_journey(["diff", "--base", "HEAD", "--format", "json"], repo).stdout)
    assert {f["file"]: f["status"] for f in as_json["files"]} == {
        "project.yaml": "changed", "templates/fresh.txt": "added", "templates/welcome.html": "changed"}
    markdown = run_journey(["diff", "--base", "HEAD", "--format", "markdown"], repo).stdout
    assert "templates/welcome.html" in markdown and "project.yaml" in markdown
