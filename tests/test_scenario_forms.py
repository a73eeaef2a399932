"""Scenario forms of issue #13 §8: skips and deferrals with reasons, webhook calls, holdouts,
generated groups with share/count bounds, deploys mid-scenario, absolute instants.

Each form passes on the sample project, fails with what happened (contact, step, when) when
the journey changes, and is checked by validate (unknown names, did-you-mean, file:line:col).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_tick_kit import copy_sample

from runner.core.reasons import DEFER_REASONS, SKIP_REASONS, reason_matches, reason_name
from runner.language.loader import load_project, validate
from runner.language.resources import load_schema
from runner.simulation.generated import generate_contacts
from runner.simulation.scenarios import failure_text, run_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "examples" / "scenarios"
START = "2026-03-02T00:00:00Z"

CONTACTS = """\
contacts:
  - id: ada
    timezone: Europe/Istanbul
    attributes: {email: ada@example.com, first_name: Ada, source: newsletter}
    events:
      - {at: "+0d 10:00", event: signed_up}
  - id: bob
    timezone: Europe/Istanbul
    attributes: {email: bob@example.com, first_name: Bob, source: signup_form}
    events:
      - {at: "+0d 10:00", event: signed_up}
      - {at: "+1d 12:00", event: unsubscribed}
"""


def scenario(folder: Path, expectations: str, head: str = "journeys: [onboarding]\ncontacts: contacts.yaml\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "contacts.yaml").write_text(CONTACTS, encoding="utf-8")
    path = folder / "s.scenario.yaml"
    path.write_text(f"name: s\n{head}start: \"{START}\"\nduration: 10d\nexpect:\n{expectations}", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def loaded():
    return load_project(ROOT)


# ---------------------------------------------------------------- skipped, deferred, calls, holdout, absolute at


PASSING = """\
  - {contact: ada, skipped: {step: welcome_signup_form, reason: condition}, at: "+0d 10:00"}
  - {contact: ada, skipped: {step: welcome_signup_form}}
  - {contact: ada, deferred: {step: nudge, reason: send_window}, at: "2026-03-07T10:00:00+03:00"}
  - {contact: ada, receives: nudge, at: "2026-03-09T06:00:00Z"}
  - {contact: ada, receives: welcome_newsletter, within: ["2026-03-02T06:59:00Z", "+0d 10:00"]}
  - {contact: bob, exits: onboarding, reason: "exit:0", at: "+1d 12:00"}
"""


def test_new_forms_pass(tmp_path, loaded):
    result = run_scenario(scenario(tmp_path, PASSING), loaded)
    assert result.error is None, result.error
    assert [c.message for c in result.checks if not c.passed] == []
    assert len(result.checks) == 6


@pytest.mark.parametrize("expectation, instead", [
    ('{contact: ada, skipped: {step: welcome_signup_form, reason: cap}}',
     "skip Mon 2026-03-02 10:00 +03: condition false: segment from_signup_form"),
    ('{contact: ada, skipped: {step: welcome_newsletter}}', "never skipped at welcome_newsletter; its decisions: "
                                                            "Mon 2026-03-02 10:00 +03 send"),
    ('{contact: ada, deferred: {step: nudge, reason: quiet_hours}}',
     "defer Sat 2026-03-07 10:00 +03: outside send window"),
    ('{contact: ada, deferred: {step: nudge}, at: "+4d 10:00"}', "defer Sat 2026-03-07 10:00 +03"),
    ('{contact: bob, deferred: {step: nudge}}', "never deferred; step nudge was not reached"),
    ('{contact: ada, receives: nudge, at: "2026-03-09T10:00:00Z"}', "sent at Mon 2026-03-09 09:00 +03, outside"),
])
def test_new_forms_fail_and_say_what_happened(tmp_path, loaded, expectation, instead):
    result = run_scenario(scenario(tmp_path, f"  - {expectation}\n"), loaded)
    assert result.error is None and not result.passed
    check = result.checks[0]
    assert instead in check.message
    assert check.context  # the contact's timeline around it


def test_calls_count_webhook_calls(tmp_path, loaded):
    head = "journeys: [sales_handoff]\ncontacts: ../../examples/contacts.yaml\n"
    path = tmp_path / "a" / "b" / "s.scenario.yaml"
    path.parent.mkdir(parents=True)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "contacts.yaml").write_text((ROOT / "examples" / "contacts.yaml").read_text())
    expectations = [
        "{contact: faisal, calls: {step: crm_handoff, times: 1}}",
        "{contact: faisal, calls: {step: crm_handoff}, at: \"+0d 09:20\"}",
        "{contact: noura, calls: {step: crm_handoff, times: 0}}",
        "{contact: faisal, calls: {step: crm_handoff, times: 2}}",
        "{contact: faisal, calls: {step: crm_handoff}, at: \"+1d 09:20\"}",
        "{contact: noura, calls: {step: crm_handoff}}",
    ]
    path.write_text(f"name: s\n{head}start: \"{START}\"\nduration: 12d\nexpect:\n"
                    + "".join(f"  - {e}\n" for e in expectations), encoding="utf-8")
    result = run_scenario(path, loaded)
    assert result.error is None, result.error
    assert [c.passed for c in result.checks] == [True, True, True, False, False, False]
    assert result.checks[3].message == "1 call(s) at Mon 2026-03-02 09:20 +03"
    assert result.checks[4].message == "called at Mon 2026-03-02 09:20 +03, outside the expected time"
    assert result.checks[5].message == "never called; step crm_handoff was not reached"


def test_holdout_names_the_split_and_the_bucket(tmp_path, loaded):
    path = tmp_path / "s.scenario.yaml"
    (tmp_path / "contacts.yaml").write_text((ROOT / "examples" / "contacts.yaml").read_text())
    path.write_text(f"name: s\njourneys: [advocacy]\ncontacts: contacts.yaml\nstart: \"{START}\"\nduration: 10d\n"
                    "expect:\n  - {contact: mei, holdout: ask_split}\n  - {contact: dewi, holdout: ask_split}\n"
                    "  - {contact: mei, skipped: {step: ask_split}}\n", encoding="utf-8")
    result = run_scenario(path, loaded)
    assert "step `ask_split` is a `split` step: it has no `if` and sends nothing, so it is never skipped" in result.error
    path.write_text(path.read_text().replace("  - {contact: mei, skipped: {step: ask_split}}\n", ""))
    result = run_scenario(path, loaded)
    assert [c.passed for c in result.checks] == [True, False]
    assert result.checks[0].message == "held out at Thu 2026-03-05 10:00 JST: bucket 2 < holdout 10"
    assert result.checks[1].message.startswith("not held out: Thu 2026-03-05 10:00 WIB split: variant referral")


# ---------------------------------------------------------------- the reason vocabulary


def test_reason_names_match_the_engines_texts():
    assert reason_name("frequency cap (journey 1 per 1d)", SKIP_REASONS) == "cap"
    assert reason_name("suppressed: bounced", SKIP_REASONS) == "bounced"
    assert reason_name("suppressed: unsubscribed from product_news", SKIP_REASONS) == "unsubscribed"
    assert reason_matches("suppressed: unsubscribed from product_news", "suppressed", SKIP_REASONS)
    assert reason_name("condition false: segment gated", SKIP_REASONS) == "condition"
    assert reason_name("no email address", SKIP_REASONS) == "no_email"
    assert reason_name("holdout", SKIP_REASONS) == "holdout"
    assert reason_name("quiet hours", DEFER_REASONS) == "quiet_hours"
    assert reason_name("outside send window", DEFER_REASONS) == "send_window"
    assert reason_name("frequency cap (project 3 per 7d)", DEFER_REASONS) == "cap"
    assert not reason_matches("holdouts", "holdout", SKIP_REASONS)


def test_every_skip_and_defer_reason_of_the_sample_simulation_has_a_name(loaded):
    """The engine's reasons as a month of the sample project gives them: each one has a short name."""
    from runner.simulation.simulate import simulate
    from runner.simulation.testcontacts import load_test_contacts

    contacts = load_test_contacts(ROOT / "examples" / "contacts.yaml")
    from datetime import UTC, datetime

    simulation = simulate(loaded.project, loaded.journeys, contacts, datetime(2026, 3, 2, tzinfo=UTC),
                          datetime(2026, 4, 30, tzinfo=UTC))
    seen = {"skip": set(), "defer": set()}
    for d in simulation.decisions:
        if d.action in seen and d.step is not None:
            table = SKIP_REASONS if d.action == "skip" else DEFER_REASONS
            assert reason_name(d.reason, table) is not None, d.reason
            seen[d.action].add(reason_name(d.reason, table))
    assert {"condition", "holdout", "cap"} <= seen["skip"]
    assert {"send_window", "cap"} <= seen["defer"]


def test_schema_enums_and_docs_list_exactly_the_reason_names():
    expectation = load_schema("scenario")["definitions"]["expectation"]["properties"]
    assert expectation["skipped"]["properties"]["reason"]["enum"] == list(SKIP_REASONS)
    assert expectation["deferred"]["properties"]["reason"]["enum"] == list(DEFER_REASONS)
    docs = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    for name in {*SKIP_REASONS, *DEFER_REASONS}:
        assert f"`{name}`" in docs, name


# ---------------------------------------------------------------- validate: names, reasons, instants


@pytest.mark.parametrize("expectation, message", [
    ('{contact: ada, skipped: {step: nurture_newsleter, reason: condition}}',
     "there is no step `nurture_newsleter` in the journeys this scenario runs; did you mean `nurture_newsletter`?"),
    ('{contact: ada, deferred: {step: wait_click}}',
     "step `wait_click` is a `wait_for` step: only an email waits for a send window, quiet hours or a cap"),
    ('{contact: ada, calls: {step: nudge, times: 1}}', "step `nudge` is a `email` step: only a `webhook` step makes calls"),
    ('{contact: ada, holdout: nudj}', "there is no step `nudj` in the journeys this scenario runs; did you mean `nudge`?"),
    ('{contact: ada, exits: onboarding, reason: "exit:2"}',
     "journey `onboarding` never exits with reason `exit:2`; did you mean `exit:1`?"),
    ('{contact: ada, exits: onboarding, reason: "project_exit:3"}',
     "journey `onboarding` never exits with reason `project_exit:3`; did you mean `project_exit:0`?"),
    ('{contact: ada, exits: onboarding, reason: completd}',
     "journey `onboarding` never exits with reason `completd`; did you mean `completed`?"),
    ('{contact: ada, skipped: {step: nudge, reason: capped}}', "use one of: condition, holdout, suppressed, "
                                                               "unsubscribed, bounced, complained, manual, no_email, "
                                                               "cap; did you mean `cap`?"),
    ('{contact: ada, receives: nudge, at: "2026-03-09T09:00"}', "write 2026-03-09T09:00Z (UTC) or 2026-03-09T09:00+03:00"),
    ('{contact: ada, receives: nudge, share: 10%}', "`share` counts the contacts of a generated group"),
    ('{group: leads, emails: 0, share: [20%, 10%]}', "`share: ['20%', '10%']` starts above where it ends"),
    ('{group: leads, emails: 0, share: 120%}', "a share is at most 100%"),
    ('{group: lead, emails: 0}', "there is no generated group `lead` in this scenario; did you mean `leads`?"),
])
def test_validate_and_test_reject_what_can_never_be_met(tmp_path, loaded, expectation, message):
    head = "journeys: [onboarding]\ncontacts: contacts.yaml\ngenerate: [{group: leads, count: 3}]\n"
    path = scenario(tmp_path, f"  - {expectation}\n", head)
    result = run_scenario(path, loaded)
    assert result.error is not None and message in result.error, result.error
    assert re.search(r"s\.scenario\.yaml:8:\d+: error\[", result.error)
    problems = validate([path], ROOT).problems
    assert any(message in (p.message + " " + (p.hint or "")) for p in problems), problems


def test_every_exit_reason_a_journey_can_give_is_accepted(tmp_path):
    reasons = ["completed", "goal", "exit:0", "exit:1", "project_exit:0"]
    path = scenario(tmp_path, "".join(f'  - {{contact: ada, exits: onboarding, reason: "{r}"}}\n' for r in reasons))
    assert validate([path], ROOT).problems == []


# ---------------------------------------------------------------- generated contacts and group expectations


GENERATED = """\
generate:
  - group: leads
    count: 400
    seed: 3
    timezone: {one_of: {Europe/Istanbul: 3, Asia/Tokyo: 1}}
    attributes:
      email: "{id}@example.com"
      first_name: Lead
      source: {one_of: {newsletter: 1, signup_form: 1}}
      company_size: {between: [5, 50]}
    events:
      - {at: {between: ["+0d 09:00", "+0d 17:00"]}, event: signed_up}
      - {at: "+1d 12:00", event: unsubscribed, share: 25%}
"""


def test_generated_contacts_are_the_same_for_the_same_spec_and_differ_with_the_seed():
    from datetime import UTC, datetime

    import yaml

    spec = yaml.safe_load(GENERATED)["generate"]
    start = datetime(2026, 3, 2, tzinfo=UTC)
    first = generate_contacts(spec, start, "UTC")["leads"]
    again = generate_contacts(spec, start, "UTC")["leads"]
    assert [(c.id, c.timezone, c.attributes, c.events) for c in first] == \
           [(c.id, c.timezone, c.attributes, c.events) for c in again]
    assert first[0].id == "leads-001" and first[-1].id == "leads-400"
    assert first[6].attributes["email"] == "leads-007@example.com"
    assert {c.timezone for c in first} == {"Europe/Istanbul", "Asia/Tokyo"}
    assert all(5 <= c.attributes["company_size"] <= 50 and isinstance(c.attributes["company_size"], int) for c in first)
    unsubscribed = sum(1 for c in first if len(c.events) == 2)
    assert 70 <= unsubscribed <= 130  # about 25% of 400
    other = generate_contacts([{**spec[0], "seed": 4}], start, "UTC")["leads"]
    assert [c.attributes for c in other] != [c.attributes for c in first]


def test_group_expectations_count_shares_and_name_the_contacts_that_break_them(tmp_path, loaded):
    head = "journeys: [onboarding]\n" + GENERATED
    expectations = (
        "  - {group: leads, exits: onboarding, reason: \"exit:0\", share: [15%, 35%]}\n"
        "  - {group: leads, among: {exits: onboarding, reason: \"exit:0\"}, never_receives: nurture_newsletter}\n"
        "  - {group: leads, receives: welcome_newsletter, count: [150, 250]}\n"
        "  - {group: leads, exits: onboarding, share: [1%, 5%]}\n"
        "  - {group: leads, among: {receives: welcome_signup_form}, receives: nurture_signup_form}\n"
    )
    result = run_scenario(scenario(tmp_path, expectations, head), loaded)
    assert result.error is None, result.error
    assert [c.passed for c in result.checks] == [True, True, True, False, False]
    too_many = result.checks[3]
    assert re.match(r"\d+ of 400 \([\d.]+%\); they include leads-\d+: exited at Tue 2026-03-03 12:00", too_many.message)
    assert too_many.contact and too_many.context  # the timeline of one contact that tipped it
    some_not = result.checks[4]
    assert re.search(r"not met by leads-\d+: never sent; step nurture_signup_form was not reached", some_not.message)
    assert "exit: exit:0 event unsubscribed" in some_not.context[-1]  # why: the timeline of the first of them
    text = failure_text(result)
    assert "between 1% and 5% of group leads: exits onboarding" in text
    assert f"timeline of {too_many.contact} (local time):" in text


# ---------------------------------------------------------------- deploys


V2 = "versions/onboarding.v2.yaml"


def _deploy_scenario(folder: Path, deploy: str, expectations: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "versions").mkdir(exist_ok=True)
    (folder / V2).write_text((SCENARIOS / V2).read_text().replace("../../../schemas", "../../schemas"))
    return scenario(folder, expectations, f"journeys: [{V2}]\ndeploy: {deploy}\ncontacts: contacts.yaml\n")


def test_a_deploy_with_a_restart_migration_restarts_contacts_in_flight(tmp_path, loaded):
    path = _deploy_scenario(tmp_path, '{at: "+1d 12:00", journeys: [onboarding]}',
                            '  - {contact: ada, receives: welcome_newsletter, at: "+2d 10:00"}\n'
                            '  - {contact: ada, receives: community_invite}\n'
                            '  - {contact: ada, never_receives: community_invite}\n')
    result = run_scenario(path, loaded)
    assert result.error is None, result.error
    assert [c.passed for c in result.checks] == [True, True, False]


def test_without_a_migration_contacts_in_flight_stay_pinned_to_their_version(tmp_path):
    root = copy_sample(tmp_path / "p")
    journey = root / "journeys" / "onboarding.yaml"
    journey.write_text(journey.read_text().replace("migration: {from: 2, strategy: restart}\n", ""))
    shipped = root / "examples" / "scenarios" / "onboarding_v3_deploy.scenario.yaml"
    result = run_scenario(shipped, load_project(root))
    assert result.error is None, result.error
    failed = {c.expectation.line: c for c in result.checks if not c.passed}
    # ada stays on v2: no second welcome, no community invite; can (entered after the deploy) runs v3
    assert sorted(c.expectation.describe() for c in failed.values()) == [
        "ada has step community_invite deferred with reason cap at +8d 10:00 local",
        "ada receives 5 email(s) in total",
        "ada receives community_invite at +9d 10:00 local",
        "ada receives welcome_newsletter at 2026-03-04T10:00:00+03:00",
    ]
    text = failure_text(result)
    assert "instead: 3 email(s): onboarding.welcome_newsletter, onboarding.nurture_newsletter, onboarding.nudge" in text


def test_a_deploy_production_would_refuse_fails_the_scenario(tmp_path, loaded):
    folder = tmp_path / "s"
    path = _deploy_scenario(folder, '{at: "+1d", journeys: [versions/onboarding.v2b.yaml]}',
                            "  - {contact: ada, emails: 3}\n")
    changed = (folder / V2).read_text().replace('subject: "Worth a second look?"', 'subject: "Another look?"')
    (folder / "versions" / "onboarding.v2b.yaml").write_text(changed)
    result = run_scenario(path, loaded)
    assert "the deploy is refused: journey `onboarding`: content changed but version 2 is already deployed: " \
           "bump `version`" in result.error
    (folder / "versions" / "onboarding.v2b.yaml").write_text(changed.replace("version: 2", "version: 1"))
    result = run_scenario(path, loaded)
    assert "version 1 is older than the deployed version 2" in result.error


def test_a_missing_or_broken_journey_file_is_an_error_at_its_line(tmp_path, loaded):
    path = _deploy_scenario(tmp_path, '{at: "+1d", journeys: [versions/onboardng.v3.yaml]}',
                            "  - {contact: ada, emails: 3}\n")
    result = run_scenario(path, loaded)
    assert "s.scenario.yaml:3:32: error[ref.journey]" in result.error and "journey file `versions/onboardng.v3.yaml` not found" in result.error
    (tmp_path / V2).write_text((tmp_path / V2).read_text().replace("wait: 2d", "wait: 2 days"))
    path.write_text(path.read_text().replace("versions/onboardng.v3.yaml", "onboarding"))
    result = run_scenario(path, loaded)
    assert re.search(r"onboarding\.v2\.yaml:\d+:\d+: error\[schema\.pattern\].*write 2d", result.error), result.error
    problems = validate([path], ROOT).problems  # journey validate reports it the same way
    assert [(p.file.endswith("onboarding.v2.yaml"), p.code, p.hint) for p in problems] == [
        (True, "schema.pattern", "write 2d")]


# ---------------------------------------------------------------- each shipped sample fails when its journey changes


def _sample_after(tmp_path: Path, journey: str, old: str, new: str):
    root = copy_sample(tmp_path / "p")
    path = root / "journeys" / f"{journey}.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return root, load_project(root)


def test_the_holdout_sample_fails_when_the_holdout_changes(tmp_path):
    root, loaded = _sample_after(tmp_path, "advocacy", "weight: 45\n", "weight: 40\n")
    path = root / "journeys" / "advocacy.yaml"
    path.write_text(path.read_text().replace("holdout: 10", "holdout: 20"))
    loaded = load_project(root)
    result = run_scenario(root / "examples/scenarios/advocacy_holdout_share.scenario.yaml", loaded)
    failed = [c for c in result.checks if not c.passed]
    assert [c.expectation.describe() for c in failed] == [
        "between 8% and 12% of group advocates: is held out at split ask_split"]
    assert re.match(r"\d{3} of 1000 \(\d+(\.\d)?%\); they include advocates-\d{4}: held out at ", failed[0].message)


def test_the_calls_sample_fails_when_the_webhook_goes(tmp_path):
    root, loaded = _sample_after(tmp_path, "sales_handoff", "        webhook:", "        if: {attribute: nope, exists: true}\n        webhook:")
    result = run_scenario(root / "examples/scenarios/sales_handoff.scenario.yaml", loaded)
    failed = {c.expectation.describe(): c.message for c in result.checks if not c.passed}
    assert failed["faisal gets 1 call(s) from webhook step crm_handoff"].startswith(
        "never called; last decision on crm_handoff: skip: condition false")


def test_the_deferred_sample_fails_when_the_cap_changes(tmp_path):
    root, loaded = _sample_after(tmp_path, "onboarding", "on_cap: defer", "on_cap: skip")
    result = run_scenario(root / "examples/scenarios/cross_journey_cap.scenario.yaml", loaded)
    failed = {c.expectation.describe(): c.message for c in result.checks if not c.passed}
    assert failed["leyla has step nurture_gated deferred with reason cap at +2d 10:00 local"] == (
        "never deferred at nurture_gated; its decisions: Wed 2026-03-04 10:00 +03 skip: frequency cap "
        "(project 3 per 7d)")


def test_journey_test_prints_group_and_deploy_failures(tmp_path):
    root, _ = _sample_after(tmp_path, "advocacy", "weight: 45\n", "weight: 35\n")
    path = root / "journeys" / "advocacy.yaml"
    path.write_text(path.read_text().replace("holdout: 10", "holdout: 30"))
    out = subprocess.run([sys.executable, "-m", "runner", "test", "examples/scenarios/advocacy_holdout_share.scenario.yaml",
                          "--junit", "junit.xml"], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "expected (line 24): between 8% and 12% of group advocates: is held out at split ask_split" in out.stdout
    assert re.search(r"timeline of advocates-\d{4} \(local time\):\n.*holdout: bucket", out.stdout, re.S)
    assert (root / "junit.xml").is_file()


def test_a_deploy_mid_scenario_decides_what_production_decides_around_a_real_deploy(tmp_path, monkeypatch):
    """The sample deploy scenario's contacts, imported into a real SQLite store: v2 deployed, hourly
    ticks, a tick just before the deploy instant, v3 deployed (`deploy`, as `journey deploy` does),
    hourly ticks again. Ledger and journal equal the scenario's simulation, versions included."""
    from datetime import UTC, datetime, timedelta

    from test_equivalence import _as_row, _journal_key
    from test_tick_kit import contact_lines, ledger_rows, segment_events, write_lines

    from runner.production import ingest
    from runner.production.deploy import deploy
    from runner.production.tick import build_runtime, run_tick
    from runner.simulation.releases import Deploy, Releases
    from runner.simulation.scenarios import load_scenario
    from runner.simulation.simulate import ledger, simulate
    from runner.store import open_store

    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", "deploy-scenario-secret-0123456789")
    loaded = load_project(ROOT)
    v2 = load_project(ROOT, [SCENARIOS / V2]).journeys[0]
    v3 = next(j for j in loaded.journeys if j.id == "onboarding")
    assert (v2.version, v3.version) == (2, 3)
    scenario = load_scenario(SCENARIOS / "onboarding_v3_deploy.scenario.yaml")
    start, end = scenario.start, scenario.end
    deployed_at = datetime(2026, 3, 3, 9, tzinfo=UTC)  # "+1d 12:00" in Istanbul
    releases = Releases(loaded.project, [v2], [Deploy(deployed_at, (v3,))])
    simulation = simulate(loaded.project, [v2], scenario.contacts, start, end, releases)
    assert {(d.version, d.action) for d in simulation.decisions} >= {(2, "send"), (3, "migrate"), (3, "send")}

    states = {c.id: c.state(start, loaded.project.default_timezone) for c in scenario.contacts}
    store = open_store(tmp_path / "journey.db")
    ingest.import_contacts(store, write_lines(tmp_path / "contacts.jsonl", contact_lines(states)), now=start)
    deploy(store, [v2], start)
    runtime = build_runtime(store, loaded.project, "memory")
    events = segment_events(states)
    imported = 0
    now = start
    ticks = [start + timedelta(hours=h) for h in range(int((end - start).total_seconds() // 3600) + 1)]
    ticks = sorted({*ticks, deployed_at - timedelta(microseconds=1)})
    for now in ticks:
        if now >= deployed_at and runtime.deployed.current[0].version == 2:
            deploy(store, [v3], deployed_at)
            runtime = build_runtime(store, loaded.project, "memory")
        batch = [line for at, line in events[imported:] if at <= now]
        if batch:
            ingest.import_events(store, write_lines(tmp_path / f"events-{imported}.jsonl", batch), now=now)
            imported += len(batch)
        run_tick(store, runtime, now)
    produced = ledger_rows(store)
    journal = sorted(_journal_key(row) for contact in states for row in store.contact_history(contact))
    store.close()
    def utc(rows):  # an absolute event time keeps its offset in the simulation: the same instant
        return [(*row[:-1], datetime.fromisoformat(row[-1]).astimezone(UTC)) for row in rows]

    assert utc(produced) == utc(ledger(simulation.decisions))
    assert journal == sorted(_journal_key(_as_row(d)) for d in simulation.decisions)


def test_the_skipped_sample_fails_when_the_condition_goes(tmp_path):
    root, loaded = _sample_after(tmp_path, "onboarding", "        if: {segment: newsletter}\n", "")
    result = run_scenario(root / "examples/scenarios/onboarding_sources.scenario.yaml", loaded)
    failed = {c.expectation.describe(): c.message for c in result.checks if not c.passed}
    assert failed["burak has step welcome_newsletter skipped with reason condition at +0d 10:00 local"] == (
        "never skipped at welcome_newsletter; its decisions: Mon 2026-03-02 10:00 +03 defer: frequency cap "
        "(journey 1 per 1d); Tue 2026-03-03 10:00 +03 send: email onboarding/welcome_newsletter")


@pytest.mark.parametrize("name", ["advocacy_holdout_share", "onboarding_v3_deploy", "onboarding_sources"])
def test_checker_shortcuts_answer_what_the_plain_computation_answers(name, loaded):
    """The checker's decisions by contact are the simulation's scan, and the stages at the end are a replay
    (docs/architecture.md, cache inventory): for every contact of three samples, and every expectation."""
    from runner.simulation.releases import Deploy, Releases
    from runner.simulation.scenarios import ExpectationChecker, _journey_files, _named_journeys, load_scenario
    from runner.simulation.simulate import simulate
    from runner.simulation.testcontacts import resolve_time

    path = SCENARIOS / f"{name}.scenario.yaml"
    versions = _journey_files(path, loaded)
    scenario = load_scenario(path, loaded.journeys, loaded.project.default_timezone, versions)
    journeys = _named_journeys(loaded.journeys, scenario.journey_ids, versions, "")
    releases = Releases(loaded.project, journeys, [
        Deploy(resolve_time(d.at, scenario.start, loaded.project.default_timezone), tuple(
            _named_journeys(loaded.journeys, list(d.journeys), versions, ""))) for d in scenario.deploys])
    simulation = simulate(loaded.project, journeys, scenario.contacts, scenario.start, scenario.end, releases)
    checker = ExpectationChecker(scenario, loaded.project, journeys, simulation, releases)
    for contact in scenario.contacts:
        assert checker.decisions(contact.id) == simulation.for_contact(contact.id)
        assert checker.stages_at(contact.id, scenario.end) == checker.replayed_stages(contact.id, scenario.end)
    fast = [(c.passed, c.message, c.context) for c in map(checker.check, scenario.expectations)]
    checker.decisions = simulation.for_contact  # the plain look-up
    checker.stages_at = checker.replayed_stages
    assert [(c.passed, c.message, c.context) for c in map(checker.check, scenario.expectations)] == fast
