"""`journey validate` end to end: formats, exit codes, and never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.language.loader import find_project_root, load_project, validate

HOSTILE = Path(__file__).parent / "hostile"
CASES = HOSTILE / "cases"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the clean fixture project (project.yaml, one journey, templates)."""
    root = tmp_path / "proj"
    shutil.copytree(HOSTILE, root, ignore=shutil.ignore_patterns("cases"))
    return root


def run_cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=120)


def invoke(args: list[str], cwd: Path, env: dict | None = None):
    runner = CliRunner()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return runner.invoke(main, args, env={"GITHUB_ACTIONS": None, **(env or {})})
    finally:
        os.chdir(old)


def break_journey(root: Path) -> Path:
    path = root / "journeys" / "onboarding.yaml"
    text = path.read_text().replace("subject: \"Three ideas for you\"", "subjct: \"Three ideas for you\"")
    text = text.replace("timezone: UTC", "timezone: Mars/Olympus")
    path.write_text(text)
    return path


def test_clean_project_exits_zero_with_a_summary(project: Path):
    result = run_cli(["validate"], project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("checked, no problems")
    assert "7 files" in result.stdout


def test_problems_are_listed_in_file_order_and_exit_one(project: Path):
    break_journey(project)
    result = run_cli(["validate"], project)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("journeys/onboarding.yaml:38:")
    assert "error[schema.unknown-key] unknown key `subjct`" in lines[0] and "did you mean `subject`?" in lines[0]
    assert lines[1].startswith("journeys/onboarding.yaml:79:46:") and "error[timezone.unknown]" in lines[1]
    assert lines[-1] == "2 errors, 0 warnings in 7 files checked"
    assert "Traceback" not in result.stderr


def test_json_format(project: Path):
    break_journey(project)
    result = invoke(["validate", "--format", "json"], project)
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["summary"] == {"errors": 2, "warnings": 0, "files": 7}
    first = document["problems"][0]
    assert {k: first[k] for k in ("file", "line", "col", "code", "severity")} == {
        "file": "journeys/onboarding.yaml", "line": 38, "col": 47, "code": "schema.unknown-key", "severity": "error",
    }


def test_github_format_is_chosen_in_github_actions(project: Path):
    break_journey(project)
    result = invoke(["validate"], project, env={"GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith("::error file=journeys/onboarding.yaml,line=38,col=47,title=schema.unknown-key::unknown key")
    explicit = invoke(["validate", "--format", "text"], project, env={"GITHUB_ACTIONS": "true"})
    assert explicit.output.startswith("journeys/onboarding.yaml:38:47: error")


def test_github_format_escapes_newlines_and_percent():
    from runner.core.problems import Problem
    from runner.language.diagnostics import format_github

    out = format_github([Problem("a,b:c.yaml", 1, 2, "x.y", "50% off\nnow", "warning")], 1)
    assert out.splitlines()[0] == "::warning file=a%2Cb%3Ac.yaml,line=1,col=2,title=x.y::50%25 off%0Anow"


def test_warnings_pass_unless_strict(project: Path):
    path = project / "journeys" / "onboarding.yaml"
    path.write_text(path.read_text().replace("segments:\n", "segments:\n  spare: {attribute: plan, exists: true}\n", 1))
    relaxed = invoke(["validate"], project)
    assert relaxed.exit_code == 0 and "warning[segment.unused] segment `spare` is never used" in relaxed.output
    strict = invoke(["validate", "--strict"], project)
    assert strict.exit_code == 1 and "1 warning" in strict.output


def test_paths_may_be_files_or_folders_and_all_are_reported(project: Path):
    result = invoke(["validate", str(CASES / "step_wait_zero.yaml"), str(CASES / "dup_ids")], project)
    assert result.exit_code == 1
    assert "duration.zero" in result.output and "journey.duplicate-id" in result.output


def test_missing_path_is_a_usage_error(project: Path):
    result = run_cli(["validate", "nope.yaml"], project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr


def test_unknown_format_is_a_usage_error(project: Path):
    assert invoke(["validate", "--format", "xml"], project).exit_code == 2


def test_help():
    result = CliRunner().invoke(main, ["validate", "--help"])
    assert result.exit_code == 0 and "--strict" in result.output and "--format" in result.output


def test_every_hostile_case_runs_through_the_real_cli_without_a_traceback(tmp_path: Path):
    result = run_cli(["validate", str(CASES)], HOSTILE)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stderr == ""
    assert result.stdout.count("error[") >= 80


def test_a_folder_without_project_uses_defaults(tmp_path: Path):
    (tmp_path / "journeys").mkdir()
    shutil.copy(HOSTILE / "journeys" / "onboarding.yaml", tmp_path / "journeys" / "onboarding.yaml")
    result = run_cli(["validate"], tmp_path)
    # no project.yaml: no tracking plan to check against, no scores, no templates folder
    assert result.returncode == 1
    assert "ref.score" in result.stdout and "ref.template" in result.stdout
    assert "plan." not in result.stdout


def test_load_project_api(project: Path):
    loaded = load_project(project)
    assert loaded.ok and [j.id for j in loaded.journeys] == ["onboarding"]
    assert loaded.root == project and loaded.project.name == "Acme Cloud lifecycle"
    assert loaded.sources["onboarding"] == project / "journeys" / "onboarding.yaml"
    assert loaded.raw["onboarding"]["version"] == 3
    broken = break_journey(project)
    loaded = load_project(project)
    assert not loaded.ok and loaded.journeys == [] and len(loaded.errors) == 2
    assert all(p.file.endswith("onboarding.yaml") for p in loaded.problems)
    assert broken.exists()


def test_find_project_root_walks_up(project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    assert find_project_root(project / "journeys" / "onboarding.yaml") == project
    assert find_project_root(project / "templates" / "nurture") == project
    monkeypatch.chdir(project / "journeys")
    assert find_project_root() == project
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    monkeypatch.chdir(lonely)
    assert find_project_root() == lonely.resolve() or find_project_root() == Path.cwd()


def test_validate_function_reports_strictness(project: Path):
    assert validate([], root=project).exit_code == 0
    assert validate([CASES / "cond_unused_segment.yaml"], root=project, strict=True).exit_code == 1
    assert validate([CASES / "cond_unused_segment.yaml"], root=project).exit_code == 0


def test_an_empty_folder_says_there_are_no_journeys(tmp_path: Path):
    result = run_cli(["validate"], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "journeys:1:1: error[project.no-journeys]" in result.stdout
    assert "`journey init` writes a new one" in result.stdout  # no project.yaml either: where to start
    (tmp_path / "project.yaml").write_text("name: x\n")
    inside = run_cli(["validate"], tmp_path)
    assert "journey init" not in inside.stdout and "create it, set `journeys:` in project.yaml" in inside.stdout


@pytest.mark.parametrize("source,place,at", [
    ("<p>Hi</p>\n<p>{{ contact.first_name }</p>\n", "2:26", "}</p>"),  # a lone } (the lexer)
    ("line one\n  {% iff contact.plan %}x{% endif %}\n", "2:6", "iff"),  # an unknown tag (the parser)
    ("{{ contact.first_name | upperr }}\n", "1:25", "upperr"),  # an unknown filter (the compiler)
    ("a\nb {{ contact.first_name contact.plan }}\n", "2:25", "contact.plan"),  # two values, no operator
    ("{{ 'a }}\n", "1:4", "'a"),  # the lexer names the offset itself
    ("{% if contact.plan %}a\n", "1:23", ""),  # the end of the template, where `endif` is missing
])
def test_a_template_syntax_error_is_placed_at_its_column(project: Path, source: str, place: str, at: str):
    """Jinja gives a syntax error's line only; validate adds the column of the token it stopped at."""
    (project / "templates" / "welcome.html").write_text(source)
    result = run_cli(["validate"], project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"templates/welcome.html:{place}: error[template.syntax]" in result.stdout, result.stdout
    line, col = (int(n) for n in place.split(":"))
    assert source.splitlines()[line - 1][col - 1:].startswith(at)


def test_a_syntax_error_in_a_subject_is_placed_inside_the_yaml(project: Path):
    path = project / "journeys" / "onboarding.yaml"
    path.write_text(path.read_text().replace('subject: "Welcome, {{ contact.first_name }}"',
                                             'subject: "Welcome, {{ contact.first_name }"'))
    result = run_cli(["validate"], project)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "first_name }" in text)
    col = path.read_text().splitlines()[line - 1].index("first_name }") + len("first_name ") + 1
    assert f"onboarding.yaml:{line}:{col}: error[template.syntax]" in result.stdout, result.stdout


def test_template_checks_can_be_skipped(project: Path):
    (project / "templates" / "broken.html").write_text("{% if %}\n")
    assert [p.code for p in load_project(project).problems] == ["template.syntax"]
    assert load_project(project, templates=False).problems == []
    only_used = load_project(project, [project / "journeys"])
    assert only_used.problems == []  # broken.html is not used by any journey


def test_absurd_folder_names_in_project_yaml_do_not_crash(project: Path):
    path = project / "project.yaml"
    path.write_text(path.read_text().replace("templates: templates", "templates: " + "a" * 300)
                    .replace("journeys: journeys", "journeys: " + "j" * 300))
    loaded = load_project(project)
    assert [p.code for p in loaded.problems] == ["project.no-journeys"]


def test_every_problem_code_is_documented():
    """Each code the checks can produce has a row in docs/validate.md."""
    import re

    repo = Path(__file__).resolve().parent.parent
    sources = ["yamlsource", "schema", "semantics", "templatecheck", "loader", "scenariorefs", "localecheck"]
    text = "\n".join((repo / "runner" / "language" / f"{name}.py").read_text() for name in sources)
    codes = set(re.findall(r'"((?:yaml|file|schema|ref|segment|plan|duration|timezone|cron|window|stage|step|split|'
                           r'migration|journey|contact|template|project|locale)\.[a-z]+(?:-[a-z]+)*)"', text))
    codes -= {"project.yaml", "journey.db"}  # file names, not codes
    documented = (repo / "docs" / "validate.md").read_text()
    assert len(codes) > 40
    assert sorted(code for code in codes if f"`{code}`" not in documented) == []


# ---------------------------------------------------------------- examples/: test contacts and scenarios


def _sample_with_broken_examples(tmp_path: Path) -> Path:
    from test_tick_kit import copy_sample

    root = copy_sample(tmp_path / "sample")
    scenario = root / "examples" / "scenarios" / "onboarding_sources.scenario.yaml"
    scenario.write_text(scenario.read_text(encoding="utf-8").replace(
        "{contact: elif, never_receives: nudge}", "{contact: elif, never_receives: last_nuge}"), encoding="utf-8")
    contacts = root / "examples" / "contacts.yaml"
    contacts.write_text(contacts.read_text(encoding="utf-8").replace("Europe/Istanbul", "Europe/Istambul", 1),
                        encoding="utf-8")
    return root


def test_validate_without_paths_checks_the_examples_scenarios_and_test_contacts(tmp_path: Path):
    root = _sample_with_broken_examples(tmp_path)
    result = run_cli(["validate"], root)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    problems = [line for line in result.stdout.splitlines() if ": error[" in line]
    assert len(problems) == 2, result.stdout
    contacts, scenario = problems
    assert contacts.startswith("examples/contacts.yaml:") and "unknown time zone `Europe/Istambul`" in contacts
    line = next(n for n, text in enumerate((root / "examples/scenarios/onboarding_sources.scenario.yaml")
                                           .read_text().splitlines(), 1) if "last_nuge" in text)
    assert scenario.startswith(f"examples/scenarios/onboarding_sources.scenario.yaml:{line}:37: error[ref.scenario]")
    assert "there is no step `last_nuge`" in scenario


def test_validate_of_one_scenario_checks_its_steps_against_the_project_journeys(tmp_path: Path):
    root = _sample_with_broken_examples(tmp_path)
    result = run_cli(["validate", "examples/scenarios/onboarding_sources.scenario.yaml"], root)
    assert result.returncode == 1 and "there is no step `last_nuge`" in result.stdout


def test_running_commands_do_not_load_the_examples(tmp_path: Path):
    # a broken scenario fails `journey validate` and `journey test`, never a simulation or a tick
    root = _sample_with_broken_examples(tmp_path)
    assert not any(p.file.startswith("examples") for p in load_project(root).problems)


def test_validate_names_a_journey_by_id_as_by_file_even_a_broken_one(project):
    by_id = run_cli(["validate", "onboarding", "--format", "json"], project)
    by_file = run_cli(["validate", "journeys/onboarding.yaml", "--format", "json"], project)
    assert by_id.returncode == by_file.returncode == 0, by_id.stderr
    assert by_id.stdout == by_file.stdout
    journey = project / "journeys" / "onboarding.yaml"
    journey.write_text(journey.read_text(encoding="utf-8").replace("id: onboarding", "id: onboarding\nbogus_key: 1"),
                       encoding="utf-8")
    broken = run_cli(["validate", "onboarding"], project)
    assert broken.returncode == 1 and "bogus_key" in broken.stdout + broken.stderr, broken.stdout + broken.stderr
    unknown = run_cli(["validate", "onbording"], project)
    assert unknown.returncode == 2 and "no journey 'onbording'" in unknown.stderr and "Traceback" not in unknown.stderr
