"""``journey test``: scenarios, every expectation kind passing and failing, JUnit XML."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from runner.language.loader import load_project
from runner.simulation.scenarios import run_scenario

ROOT = Path(__file__).resolve().parent.parent

CONTACTS = """\
contacts:
  - id: ada
    timezone: Europe/Istanbul
    attributes: {email: ada@example.com, first_name: Ada, source: newsletter}
    events:
      - {at: "+0d 10:00", event: signed_up}
      - {at: "+3d 11:00", event: email_clicked, properties: {journey: onboarding}}
      - {at: "+4d 12:00", event: demo_booked}
  - id: bob
    timezone: Europe/Istanbul
    attributes: {email: bob@example.com, first_name: Bob, source: signup_form}
    events:
      - {at: "+0d 10:00", event: signed_up}
      - {at: "+1d 12:00", event: unsubscribed}
"""


def scenario(tmp_path: Path, expectations: str, name: str = "s") -> Path:
    (tmp_path / "contacts.yaml").write_text(CONTACTS, encoding="utf-8")
    path = tmp_path / f"{name}.scenario.yaml"
    path.write_text(
        f"name: {name}\njourneys: [onboarding]\ncontacts: contacts.yaml\n"
        f'start: "2026-03-02T00:00:00Z"\nduration: 10d\nexpect:\n{expectations}', encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def loaded():
    return load_project(ROOT)


PASSING = """\
  - {contact: ada, receives: welcome_newsletter, at: "+0d 10:00"}
  - {contact: ada, receives: onboarding.nurture_newsletter, within: ["+2d 09:00", "+2d 11:00"]}
  - {contact: ada, never_receives: nudge}
  - {contact: ada, in_stage: education, at: "+3d"}
  - {contact: ada, reaches_goal: onboarding}
  - {contact: ada, exits: onboarding, reason: goal}
  - {contact: ada, emails: 3}
  - {contact: bob, exits: onboarding, reason: "exit:0"}
  - {contact: bob, never_receives: nurture_signup_form}
  - {contact: bob, emails: 1}
"""


def test_every_expectation_kind_can_pass(tmp_path, loaded):
    result = run_scenario(scenario(tmp_path, PASSING), loaded)
    assert result.error is None
    assert [c.passed for c in result.checks] == [True] * 10, [c.message for c in result.checks if not c.passed]


@pytest.mark.parametrize("expectation, instead", [
    ('{contact: ada, receives: welcome_newsletter, at: "+0d 11:00"}', "outside the expected time"),
    ('{contact: bob, receives: nudge}', "never sent"),
    ('{contact: ada, never_receives: deep_dive}', "sent at Thu 2026-03-05 11:00"),
    ('{contact: ada, in_stage: education, at: "+6d"}', "the contact is in no journey"),
    ('{contact: bob, reaches_goal: onboarding}', "no goal; exited"),
    ('{contact: bob, exits: onboarding, reason: goal}', "exited Tue 2026-03-03 12:00"),
    ('{contact: ada, emails: 5}', "3 email(s): onboarding.welcome_newsletter"),
])
def test_every_expectation_kind_can_fail_and_says_what_happened(tmp_path, loaded, expectation, instead):
    result = run_scenario(scenario(tmp_path, f"  - {expectation}\n"), loaded)
    assert result.error is None and not result.passed
    check = result.checks[0]
    assert instead in check.message
    assert check.context  # the contact's timeline around it


def test_unknown_contact_is_an_error_not_a_crash(tmp_path, loaded):
    result = run_scenario(scenario(tmp_path, "  - {contact: zed, emails: 1}\n"), loaded)
    assert result.error and "s.scenario.yaml:7:15: error[ref.contact] there is no contact `zed`" in result.error


def test_journey_test_on_the_sample_scenarios_passes_and_writes_junit(tmp_path):
    junit = tmp_path / "junit.xml"
    out = subprocess.run([sys.executable, "-m", "runner", "test", "--junit", str(junit)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    suites = ET.parse(junit).getroot()
    scenarios = sorted((ROOT / "examples").rglob("*.scenario.yaml"))
    assert suites.get("failures") == "0" and suites.get("errors") == "0"
    assert len(suites.findall("testsuite")) == len(scenarios) > 0
    for case in suites.iter("testcase"):
        assert int(case.get("assertions")) > 0


def test_journey_test_failure_exit_code_output_and_junit(tmp_path):
    path = scenario(tmp_path, PASSING + '  - {contact: ada, receives: nudge, at: "+5d 10:00"}\n', "broken")
    junit = tmp_path / "out" / "junit.xml"
    out = subprocess.run([sys.executable, "-m", "runner", "test", str(path), "--junit", str(junit)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "expected (line 17): ada receives nudge at +5d 10:00 local" in out.stdout
    assert "instead: never sent" in out.stdout and "timeline of ada (local time):" in out.stdout
    assert "0 of 1 scenarios passed" in out.stdout
    case = ET.parse(junit).getroot().find("testsuite/testcase")
    failure = case.find("failure")
    assert failure is not None and "1 of 11 expectations failed" == failure.get("message")
    assert case.get("assertions") == "11"


def test_invalid_scenario_file_reports_problems_with_lines(tmp_path):
    path = tmp_path / "bad.scenario.yaml"
    path.write_text("name: bad\ncontacts: []\nexpect:\n  - {contact: a, recieves: x}\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "runner", "test", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "bad.scenario.yaml:4" in out.stdout and "Traceback" not in out.stderr


# ---------------------------------------------------------------- what expectations name must exist


@pytest.mark.parametrize("expectation, message", [
    ("{contact: ada, never_receives: nuge}", "there is no step `nuge` in the journeys this scenario runs; "
                                             "did you mean `nudge`?"),
    ("{contact: ada, receives: onboarding.nurture_newsleter}",
     "there is no step `nurture_newsleter` in journey `onboarding`; did you mean `onboarding.nurture_newsletter`?"),
    ("{contact: ada, receives: onbording.nudge}", "there is no step `onbording.nudge` in the journeys this "
                                                  "scenario runs; did you mean `onboarding.nudge`?"),
    ("{contact: ada, in_stage: educaton}", "there is no stage `educaton`"),
    ("{contact: ada, exits: onboardin}", "there is no journey `onboardin`; did you mean `onboarding`?"),
    ("{contact: ada, reaches_goal: sales_handoff}", "journey `sales_handoff` is not one this scenario runs"),
    ("{contact: ada, never_receives: field_notes_plain}",
     "`field_notes_plain` is a template, not a step; the step(s) that send it: onboarding.welcome_newsletter"),
    ("{contact: ada, never_receives: wait_click}", "step `wait_click` is a `wait_for` step: it sends nothing"),
    ("{contact: adda, emails: 1}", "there is no contact `adda` in this scenario; did you mean `ada`?"),
])
def test_unknown_steps_stages_journeys_templates_and_contacts_are_errors_at_file_line_col(
        tmp_path, loaded, expectation, message):
    path = scenario(tmp_path, PASSING + f"  - {expectation}\n")
    result = run_scenario(path, loaded)
    assert not result.passed and not result.checks
    assert message in result.error
    line = f"  - {expectation}"
    offending = message.split("`")[1] if "contact" not in message else "adda"
    column = line.index(next(word for word in line.replace("}", " ").split() if offending in word)) + 1
    assert f"s.scenario.yaml:17:{column}: error[ref." in result.error


def test_a_step_of_a_journey_the_scenario_does_not_run_is_named(tmp_path, loaded):
    step = next(s for s in loaded.raw["sales_handoff"]["stages"][0]["steps"] if "email" in s)["id"]
    result = run_scenario(scenario(tmp_path, f"  - {{contact: ada, never_receives: {step}}}\n"), loaded)
    assert f"step `{step}` is in journey `sales_handoff`, which this scenario does not run" in result.error


def test_journey_test_fails_on_a_misspelt_step_with_did_you_mean(tmp_path):
    path = scenario(tmp_path, "  - {contact: ada, never_receives: nuge}\n", "typo")
    out = subprocess.run([sys.executable, "-m", "runner", "test", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "typo.scenario.yaml:7:36: error[ref.scenario] there is no step `nuge`" in out.stdout
    assert "did you mean `nudge`?" in out.stdout


def test_a_send_whose_body_fails_for_a_contact_fails_the_scenario(tmp_path):
    from test_simulate_cli import body_failure_project

    root = body_failure_project(tmp_path / "p")
    (root / "s.scenario.yaml").write_text(
        "name: welcome\ncontacts: c.yaml\nexpect:\n"
        "  - {contact: withplan, receives: welcome}\n  - {contact: noplan, receives: welcome}\n")
    out = subprocess.run([sys.executable, "-m", "runner", "test", "s.scenario.yaml", "--junit", "junit.xml"],
                         cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "FAIL welcome" in out.stdout and "0 of 1 scenarios passed" in out.stdout
    assert ("send fails in production: contact noplan, step j.welcome at 2026-01-05T02:00:00Z: cannot be rendered: "
            "templates/plan.html:2: undefined variable") in out.stdout
    assert "withplan" not in out.stdout.split("send fails in production")[1]
    failure = ET.parse(root / "junit.xml").getroot().find("testsuite/testcase/failure")
    assert failure is not None and "1 send(s) cannot be rendered" in failure.get("message")
