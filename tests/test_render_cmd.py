"""``journey render``: messages exactly as production sends them, with the attributes at send time."""

from __future__ import annotations

import re
from email import message_from_bytes, message_from_string, policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from test_report_project import run_journey, write_trial_project

from runner.delivery.dispatch import Delivery
from runner.delivery.unsubscribe import DEV_SECRET, verify_token
from runner.language.loader import load_project
from runner.review.renderout import MessageRenderer, first_sends
from runner.simulation.scenarios import DEFAULT_START
from runner.simulation.testcontacts import load_test_contacts

SECRET = "a-long-enough-test-secret-0123456789"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_trial_project(tmp_path)


def token_of(message) -> str:
    first = str(message["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    return parse_qs(urlsplit(first).query)["token"][0]


def test_render_uses_the_attributes_at_the_moment_of_the_send(project: Path) -> None:
    result = run_journey(["render", "trial", "welcome", "--contact", "ann"], project)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "(simulated send)" in out.splitlines()[0]
    assert "Subject: Hi Ann \"quoted\" <b>#1; `x` | end" in out
    assert "To: ann@example.com" in out and "From: Trial Co <hello@trial.test>" in out
    # the update step ran before the email: the simulated attributes, not the initial ones
    assert "Hello Ann, hint=from-update" in out.split("--- text/plain ---")[1]
    assert "hint=from-update" in out.split("--- text/html ---")[1]


def test_a_contact_that_never_reaches_the_step_uses_its_initial_attributes(project: Path) -> None:
    result = run_journey(["render", "trial", "welcome", "--contact", "cat"], project)
    assert result.returncode == 0, result.stderr
    assert "step not reached in the simulation; initial attributes" in result.stdout.splitlines()[0]
    assert "Hello Cat, hint=none" in result.stdout


def test_raw_message_has_both_parts_and_a_valid_unsubscribe_token(project: Path) -> None:
    result = run_journey(["render", "trial", "welcome", "--contact", "ann", "--eml"], project)
    message = message_from_string(result.stdout, policy=policy.default)
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None
    assert message["X-Journey-Key"] == "ann:trial:1/1/welcome"
    assert verify_token(DEV_SECRET, token_of(message)) == ("ann", "trial", "marketing")  # the default topic
    signed = run_journey(["render", "trial", "welcome", "--contact", "ann", "--eml"], project,
                         env={"JOURNEY_UNSUBSCRIBE_SECRET": SECRET})
    assert verify_token(SECRET.encode(), token_of(message_from_string(signed.stdout, policy=policy.default))) == ("ann", "trial", "marketing")


def test_render_builds_the_same_bytes_as_the_production_delivery(project: Path) -> None:
    loaded = load_project(project)
    contacts = load_test_contacts(project / "examples" / "contacts.yaml")
    renderer = MessageRenderer(loaded.project, loaded.journeys, contacts, DEFAULT_START)
    journey = loaded.journeys[0]
    decision = first_sends(renderer.simulation)[("bob", "trial", "tip_a")]
    production = Delivery(loaded.project, "memory", connect=False).build(decision, journey).message
    preview = renderer.render(journey, "tip_a", "bob").eml()
    assert _without_boundary(preview) == _without_boundary(bytes(production))


def _without_boundary(data: bytes) -> bytes:
    """The message with its (random, per build) MIME boundary replaced by a fixed one."""
    boundary = message_from_bytes(data, policy=policy.default).get_boundary()
    return data.replace(boundary.encode(), b"BOUNDARY")


def test_out_writes_every_step_for_every_contact_with_an_index(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    result = run_journey(["render", "trial", "--out", str(out)], project)
    assert result.returncode == 0, result.stderr
    assert "15 messages written" in result.stdout  # 5 email steps x 3 contacts
    emls = sorted(out.rglob("*.eml"))
    assert len(emls) == 15
    for eml in emls:
        message = message_from_bytes(eml.read_bytes(), policy=policy.default)
        assert eml.with_suffix(".html").read_text() == message.get_body(("html",)).get_content()
        assert eml.with_suffix(".txt").read_text() == message.get_body(("plain",)).get_content()
    index = (out / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', index)
    assert len(links) == 15 * 3 and all((out / link).is_file() for link in links)


def test_out_narrowed_to_one_step_and_contact(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "one"
    result = run_journey(["render", "trial", "welcome", "--contact", "bob", "--out", str(out)], project)
    assert result.returncode == 0, result.stderr
    assert [p.relative_to(out).as_posix() for p in sorted(out.rglob("*.eml"))] == ["trial/welcome/bob.eml"]


@pytest.mark.parametrize("args, message", [
    (["render", "trial", "welcome", "--contact", "nobody"], "no test contact 'nobody'"),
    (["render", "trial", "ab", "--contact", "ann"], "trial.ab is a split step"),
    (["render", "trial", "nope", "--contact", "ann"], "no step 'nope' in trial"),
    (["render", "trial", "welcome"], "name a STEP and a --contact"),
    (["render", "ghost", "welcome", "--contact", "ann"], "no journey 'ghost'"),
])
def test_usage_errors(project: Path, args: list[str], message: str) -> None:
    result = run_journey(args, project)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_template_that_fails_at_render_time_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    (project / "templates" / "welcome.html").write_text("<p>{{ contact.first_name.upper(1, 2) }}</p>\n")
    result = run_journey(["render", "trial", "welcome", "--contact", "ann"], project, process=True)
    assert result.returncode == 1
    assert "welcome.html:1" in result.stderr and "Traceback" not in result.stderr
    out = tmp_path / "broken"
    all_of_them = run_journey(["render", "trial", "--out", str(out)], project)
    assert all_of_them.returncode == 1 and "cannot render" in (out / "index.html").read_text()
