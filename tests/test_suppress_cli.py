"""The sample's sunset series through the CLI, as a marketer runs it (issue #13 §3): `journey
simulate` shows the suppress decision and the skipped marketing email of another journey,
`journey explain` lists project.yaml's exit rule with the journey's own and names the
sunset once it is in force. Real subprocesses, on the sample project itself."""

from __future__ import annotations

import json

from test_tick_kit import REPO, journey_cli

START = "2026-03-02T00:00:00Z"


def _json(*args: str) -> dict:
    result = journey_cli(list(args), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_simulate_shows_the_sunset_and_the_marketing_email_it_stops_in_another_journey():
    events = _json("simulate", "journeys/sunset.yaml", "journeys/milestones.yaml", "--start", START, "--days", "30",
                   "--format", "json")["events"]
    sven = [(e["journey"], e["step"], e["action"], e["reason"]) for e in events if e["contact"] == "sven"]
    assert ("sunset", "sunset_contact", "suppress", "sunset") in sven
    assert ("milestones", "reward_10", "skip", "suppressed: sunset") in sven
    assert ("sunset", "stopped_notice", "send", "email sunset/stopped") in sven  # an account notice still goes
    assert sven.index(("sunset", "sunset_contact", "suppress", "sunset")) < sven.index(
        ("milestones", "reward_10", "skip", "suppressed: sunset"))


def test_explain_lists_the_project_exit_rule_and_the_sunset_in_force():
    before = _json("explain", "sven", "sunset", "--start", START, "--at", "2026-03-10T00:00:00Z", "--format", "json")
    (journey,) = before["journeys"]
    assert [(rule["rule"], rule["holds"]) for rule in journey["exits"]] == [
        ("exit:0", False), ("exit:1", False), ("project_exit:0", False)]
    assert "account_closed" in journey["exits"][2]["text"]
    assert before["suppressed"] is None
    after = _json("explain", "sven", "sunset", "--start", START, "--at", "2026-03-25T00:00:00Z", "--format", "json")
    assert after["suppressed"] == "sunset"
    text = journey_cli(["explain", "sven", "sunset", "--start", START, "--at", "2026-03-10T00:00:00Z"], cwd=REPO).stdout
    assert "  project_exit:0:\n    ✗ event account_closed" in text
