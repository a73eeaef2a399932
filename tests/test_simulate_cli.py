"""``journey simulate`` and ``journey explain`` as marketers run them: real processes, real files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from runner.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONTACTS = """\
contacts:
  - id: ada
    timezone: Europe/Istanbul
    attributes: {email: ada@example.com, first_name: Ada, source: newsletter}
    events:
      - {at: "+0d 10:00", event: signed_up}
      - {at: "+3d 11:00", event: email_clicked, properties: {journey: onboarding}}
  - id: bob
    timezone: America/New_York
    attributes: {email: bob@example.com, first_name: Bob, source: ebook, content_title: Remote Work}
    events:
      - {at: "+0d 23:00", event: signed_up}
      - {at: "+4d", event: unsubscribed}
"""


def journey_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.yaml"
    path.write_text(CONTACTS, encoding="utf-8")
    return path


def test_same_inputs_print_byte_identical_output_in_separate_processes(contacts):
    for fmt in ("json", "table"):
        args = ("simulate", "--contacts", str(contacts), "--start", "2026-03-02T00:00:00Z", "--days", "10", "--format", fmt)
        first, second = journey_cli(*args), journey_cli(*args)
        assert first.returncode == 0, first.stderr
        assert first.stdout == second.stdout and first.stdout


def test_json_records_have_the_documented_fields_rendered_subjects_and_local_times(contacts):
    out = journey_cli("simulate", "--contacts", str(contacts), "--start", "2026-03-02T00:00:00Z", "--days", "10",
                      "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["start"] == "2026-03-02T00:00:00Z" and doc["end"] == "2026-03-12T00:00:00Z"
    for record in doc["events"]:
        assert {"at", "local_time", "contact", "journey", "version", "stage", "step", "action", "reason", "key"} <= set(record)
    welcome = next(r for r in doc["events"] if r["action"] == "send" and r["contact"] == "bob")
    # start is Sun 1 March 19:00 in New York: Bob signs up Sun 23:00, deferred to Mon 09:00 local
    assert welcome["step"] == "welcome_gated" and welcome["subject"] == "Your copy of Remote Work"
    assert welcome["at"] == "2026-03-02T14:00:00Z" and welcome["local_time"] == "2026-03-02T09:00:00-05:00"
    assert welcome["key"] == "bob:onboarding:1/1/welcome_gated"
    defer = next(r for r in doc["events"] if r["action"] == "defer" and r["contact"] == "bob")
    assert defer["reason"] == "outside send window" and defer["until"] == "2026-03-02T14:00:00Z"
    exit_ = next(r for r in doc["events"] if r["action"] == "exit" and r["contact"] == "bob")
    assert exit_["reason"].startswith("exit:0")
    onboarding = next(s for s in doc["summary"] if s["journey"] == "onboarding")
    assert onboarding["entered"] == 2 and onboarding["sent"]["welcome_newsletter"] == 1
    assert onboarding["exits"] == {"completed": 1, "exit:0": 1}


def test_table_shows_subjects_reasons_and_summary(contacts):
    out = journey_cli("simulate", "--contacts", str(contacts), "--start", "2026-03-02T00:00:00Z", "--days", "10",
                      "--contact", "ada")
    assert out.returncode == 0, out.stderr
    assert '"You\'re in: Kitebase Field Notes"' in out.stdout
    assert "condition false: segment gated" in out.stdout
    assert "2026-03-02 10:00 +03:00" in out.stdout
    assert "bob" not in out.stdout and "Summary" in out.stdout


def test_subject_render_failure_is_a_failed_send_not_a_crash(tmp_path):
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "project.yaml").write_text("name: t\ndefault_timezone: UTC\n")
    (tmp_path / "journeys").mkdir()
    (tmp_path / "templates" / "t.html").write_text("<p>hi</p>")
    (tmp_path / "journeys" / "j.yaml").write_text(
        "id: j\nversion: 1\nname: J\nstages:\n  - id: s\n    entry: {event: signed_up}\n    steps:\n"
        "      - id: boom\n        email: {template: t, subject: \"{{ contact.first_name.upper() * 10**9 }}\"}\n"
        "      - id: fine\n        email: {template: t, subject: \"Hello {{ contact.first_name }}\"}\n")
    (tmp_path / "c.yaml").write_text(
        "contacts:\n  - id: x\n    attributes: {email: x@example.com, first_name: X}\n"
        "    events: [{at: '+1h', event: signed_up}]\n")
    out = journey_cli("simulate", "--contacts", "c.yaml", "--format", "json", cwd=tmp_path)
    assert out.returncode == 1, out.stderr  # production would fail that send
    records = json.loads(out.stdout)["events"]
    failed = [r for r in records if r["action"] == "send_failed"]
    assert [r["step"] for r in failed] == ["boom"] and "cannot be rendered: subject:" in failed[0]["reason"]
    assert [r["subject"] for r in records if r["action"] == "send"] == ["Hello X"]
    assert "Traceback" not in out.stderr


def test_default_start_is_fixed_not_the_wall_clock(contacts):
    runner = CliRunner()
    outputs = []
    for now in ("2020-01-01", "2031-07-15"):
        with freeze_time(now):
            result = runner.invoke(main, ["simulate", "--contacts", str(contacts), "--format", "json"])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["start"] == "2026-01-05T00:00:00Z"


def test_bad_input_exits_cleanly(tmp_path, contacts):
    missing = journey_cli("simulate", "--contacts", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    both = journey_cli("simulate", "--contacts", str(contacts), "--days", "3", "--until", "2026-03-01T00:00:00Z")
    assert both.returncode == 2 and "not both" in both.stderr
    bad_time = journey_cli("simulate", "--contacts", str(contacts), "--start", "yesterday")
    assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr
    bad_event = tmp_path / "bad.yaml"
    bad_event.write_text("contacts:\n  - id: z\n    events: [{at: 'soon', event: x}]\n")
    out = journey_cli("simulate", "--contacts", str(bad_event))
    assert out.returncode == 1 and "'soon' is not a time" in out.stderr and "Traceback" not in out.stderr
    bad_zone = tmp_path / "zone.yaml"
    bad_zone.write_text("contacts:\n  - id: m\n    timezone: Mars/Olympus\n    events: [{at: '+0d 10:00', event: x}]\n")
    out = journey_cli("simulate", "--contacts", str(bad_zone))
    assert out.returncode == 1 and "unknown time zone 'Mars/Olympus'" in out.stderr and "Traceback" not in out.stderr


def test_markdown_format(contacts):
    out = journey_cli("simulate", "--contacts", str(contacts), "--start", "2026-03-02T00:00:00Z", "--format", "markdown")
    assert out.returncode == 0, out.stderr
    assert "<details>" in out.stdout and len(out.stdout.encode()) < 1 << 20


def test_explain_says_which_segments_and_stages_hold_and_why(contacts):
    out = journey_cli("explain", "ada", "--contacts", str(contacts), "--start", "2026-03-02T00:00:00Z",
                      "--at", "2026-03-06T00:00:00Z")
    assert out.returncode == 0, out.stderr
    assert "✓ newsletter (onboarding)" in out.stdout
    assert "source equals 'newsletter' (is 'newsletter')" in out.stdout
    assert "✗ gated (onboarding)" in out.stdout
    assert "Journey onboarding v3: in stage education (active)" in out.stdout
    as_json = journey_cli("explain", "bob", "--contacts", str(contacts), "--start", "2026-03-02T00:00:00Z",
                          "--at", "2026-03-08T00:00:00Z", "--format", "json")
    doc = json.loads(as_json.stdout)
    assert doc["suppressed"] == "unsubscribed"
    onboarding = next(j for j in doc["journeys"] if j["journey"] == "onboarding")
    assert onboarding["enrolled"] is False and onboarding["past"][0]["reason"].startswith("exit:0")
    unknown = journey_cli("explain", "zed", "--contacts", str(contacts), "--at", "2026-03-08T00:00:00Z")
    assert unknown.returncode == 2 and "no contact 'zed'" in unknown.stderr


def test_every_command_has_help():
    for command in ("simulate", "explain", "test"):
        out = journey_cli(command, "--help")
        assert out.returncode == 0 and "Usage:" in out.stdout


def test_the_same_contacts_as_yaml_and_jsonl_simulate_identically_csv_works_too():
    args = ("simulate", "--start", "2026-03-02T00:00:00Z", "--days", "30", "--format", "json", "--contacts")
    as_yaml = journey_cli(*args, "examples/contacts.yaml")
    as_jsonl = journey_cli(*args, "examples/contacts.jsonl")
    as_csv = journey_cli(*args, "examples/contacts.csv")
    assert as_yaml.returncode == as_jsonl.returncode == as_csv.returncode == 0, as_csv.stderr
    assert as_yaml.stdout == as_jsonl.stdout
    assert len(json.loads(as_yaml.stdout)["events"]) > 100
    assert json.loads(as_csv.stdout)["contacts"] == json.loads(as_yaml.stdout)["contacts"]


BODY_FAILS_FOR_ONE = """\
<p>Hi {{ contact.first_name }},</p>
<p>your plan: {{ contact.plan.upper() }}</p>
"""


def body_failure_project(root: Path) -> Path:
    """A journey whose body template needs `plan`, which contact `noplan` lacks; subjects render for all."""
    (root / "templates").mkdir(parents=True)
    (root / "journeys").mkdir()
    (root / "project.yaml").write_text("name: t\ndefault_timezone: UTC\n")
    (root / "templates" / "plan.html").write_text(BODY_FAILS_FOR_ONE)
    (root / "journeys" / "j.yaml").write_text(
        "id: j\nversion: 1\nname: J\nstages:\n  - id: s\n    entry: {event: signed_up}\n    steps:\n"
        "      - id: welcome\n        email: {template: plan, subject: \"Hello {{ contact.first_name }}\"}\n")
    (root / "c.yaml").write_text(
        "contacts:\n"
        "  - id: withplan\n    attributes: {email: a@example.com, first_name: A, plan: pro}\n"
        "    events: [{at: '+1h', event: signed_up}]\n"
        "  - id: noplan\n    attributes: {email: b@example.com, first_name: B}\n"
        "    events: [{at: '+2h', event: signed_up}]\n")
    return root


@pytest.mark.parametrize("output_format", ["json", "table", "markdown"])
def test_a_body_template_failing_for_one_contact_is_a_failed_send_in_every_format(tmp_path, output_format):
    root = body_failure_project(tmp_path / "p")
    out = journey_cli("simulate", "--contacts", "c.yaml", "--format", output_format, cwd=root)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "send_failed" in out.stdout and "templates/plan.html:2" in out.stdout
    assert "error: 1 send(s) cannot be built" in out.stderr
    assert "contact noplan, step j.welcome" in out.stderr and "templates/plan.html:2: undefined variable" in out.stderr
    if output_format == "json":
        records = json.loads(out.stdout)["events"]
        assert [(r["contact"], r["action"]) for r in records if r["step"] == "welcome"] == [
            ("withplan", "send"), ("noplan", "send_failed")]


def test_simulate_and_explain_name_a_journey_by_id_or_file_and_default_to_the_examples_contacts(contacts):
    by_id = journey_cli("simulate", "onboarding", "--start", "2026-03-02T00:00:00Z", "--days", "5", "--format", "json")
    by_file = journey_cli("simulate", "journeys/onboarding.yaml", "--contacts", "examples/contacts.yaml",
                          "--start", "2026-03-02T00:00:00Z", "--days", "5", "--format", "json")
    assert by_id.returncode == 0 and by_file.returncode == 0, by_id.stderr + by_file.stderr
    assert by_id.stdout == by_file.stdout
    assert {r["journey"] for r in json.loads(by_id.stdout)["events"]} == {"onboarding"}
    explained = journey_cli("explain", "ada", "onboarding", "--contacts", str(contacts), "--start", "2026-03-02T00:00:00Z",
                            "--at", "2026-03-06T00:00:00Z", "--format", "json")
    assert explained.returncode == 0, explained.stderr
    assert [j["journey"] for j in json.loads(explained.stdout)["journeys"]] == ["onboarding"]
    unknown = journey_cli("simulate", "onbording", "--days", "1")
    assert unknown.returncode == 2 and "no journey 'onbording'" in unknown.stderr and "onboarding" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    missing_file = journey_cli("simulate", "journeys/nope.yaml", "--days", "1")
    assert missing_file.returncode == 2 and "does not exist" in missing_file.stderr


def test_summaries_list_emails_in_the_journeys_order_in_every_format():
    # the journey's file order, emails nobody got included: the same list in JSON, table and Markdown
    # (four of the five signup-form leads read Turkish, Arabic, Japanese and Indonesian: selin, salma, aiko, wulan)
    expected = ("welcome_signup_form 5, welcome_gated 2, welcome_newsletter 2, welcome_default 0, nurture_signup_form 5, "
                "nurture_gated 2, nurture_newsletter 1, deep_dive 1, nudge 6, community_invite 7")
    outputs = {fmt: journey_cli("simulate", "onboarding", "--format", fmt) for fmt in ("json", "table", "markdown")}
    assert all(out.returncode == 0 for out in outputs.values()), [out.stderr for out in outputs.values()]
    sent = json.loads(outputs["json"].stdout)["summary"][0]["sent"]
    assert ", ".join(f"{name} {count}" for name, count in sent.items()) == expected
    summary = outputs["table"].stdout.split("Summary", 1)[1]  # rich may fold the cell over two lines
    in_table = [f"{name} {count}" for name, count in re.findall(r"\b([a-z_]+) (\d+)\b", summary) if name in sent]
    assert ", ".join(in_table) == expected
    assert f"| onboarding v3 | 9 | {expected} |" in outputs["markdown"].stdout


def test_explain_rounds_scores_and_shows_no_passing_entry_for_a_journey_the_contact_is_not_in():
    from datetime import UTC, datetime

    from runner.simulation.explain import ContactExplanation, explanation_lines

    at = datetime(2026, 1, 20, tzinfo=UTC)
    lines = explanation_lines(ContactExplanation("x", at, "UTC", {}, {"lead": 27.498371}, None, [], []))
    assert "  scores: lead 27.5" in lines
    from runner.core.conditions import Facts, compile_condition
    from runner.core.state import Contact

    hot = compile_condition({"score": "lead", "gte": 50})

    def facts(score: float) -> Facts:
        return Facts(contact=Contact("x", {}, "UTC"), now=at, events={}, score=lambda name: score)

    assert hot.explain(facts(27.498371)).text == "score lead gte 50 (is 27.5)"
    assert hot.explain(facts(49.97)).text == "score lead gte 50 (is 49.97)"  # never "is 50" on a failing check
    # deniz reached the onboarding goal and left: its signed_up entry fired once, it is not in the journey now
    out = journey_cli("explain", "deniz", "onboarding", "advocacy", "--at", "2026-01-20T00:00:00Z")
    assert out.returncode == 0, out.stderr
    onboarding = out.stdout.split("Journey onboarding", 1)[1]
    assert "✓ entry" not in onboarding and "✗ entry on event signed_up" in onboarding
    assert "not in the journey (left at" in onboarding
    advocacy = out.stdout.split("Journey advocacy", 1)[1].split("Journey ", 1)[0]
    assert "✓ entry" not in advocacy and "not in the journey (no entry has fired)" in advocacy


def test_simulate_shows_progress_on_a_terminal_and_none_when_piped():
    from test_demo import on_terminal

    code, drawn = on_terminal(["simulate", "--days", "3"], ROOT)
    contacts = len(json.loads(journey_cli("simulate", "--days", "3", "--format", "json").stdout)["contacts"])
    assert code == 0 and "simulating" in drawn and f"/{contacts}" in drawn
    piped = journey_cli("simulate", "--days", "3")
    assert piped.returncode == 0 and "simulating" not in piped.stdout + piped.stderr
