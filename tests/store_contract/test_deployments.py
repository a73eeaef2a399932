"""Deployments and templates: a deployed journey version is immutable (contacts in flight
stay pinned to it), and the templates a deploy read are what production renders."""

from __future__ import annotations

import pytest

from runner.core.problems import JourneyError
from runner.core.state import ACTIVE, IDLE, Enrollment

from .kit import at, blank


def test_a_deployed_version_is_immutable(store):
    assert store.record_deployment("onboarding", 3, "h3", "id: onboarding\nversion: 3\n", at(0))
    assert not store.record_deployment("onboarding", 3, "h3", "id: onboarding\nversion: 3\n", at(1))
    with pytest.raises(JourneyError, match="bump its version"):
        store.record_deployment("onboarding", 3, "other", "changed", at(2))
    assert store.record_deployment("onboarding", 4, "h4", "v4", at(3))
    assert store.record_deployment("billing", 1, "b1", "b", at(3))
    assert [(d["journey_id"], d["version"]) for d in store.deployments()] == [
        ("billing", 1), ("onboarding", 3), ("onboarding", 4)]
    deployed = store.deployed("onboarding", 3)
    assert (deployed["content"], deployed["content_hash"]) == ("id: onboarding\nversion: 3\n", "h3")
    assert store.deployed("onboarding", 9) is None and store.deployed("nothing", 1) is None


def test_the_deployed_templates_are_the_last_set_recorded(store):
    assert store.deployed_templates() is None  # never recorded: production reads the files
    first = {"welcome.html": "<p>Hi {{ contact.first_name }}</p>", "welcome.txt": "Hi ünïcode ✓"}
    assert store.record_templates(first, at(0))
    assert not store.record_templates(dict(first), at(1))  # the same set: nothing changes
    assert store.deployed_templates() == first
    second = {"welcome.html": "<p>Hello</p>"}
    assert store.record_templates(second, at(2))
    assert store.deployed_templates() == second  # a template removed from the project is gone


def test_in_flight_contacts_per_version_stage_and_step(store):
    def enrolled(contact: str, version: int, cursor: str | None, status: str) -> None:
        state = blank(contact)
        state.enrollments["onboarding"] = Enrollment(
            id=f"{contact}:onboarding:1", contact_id=contact, journey_id="onboarding", version=version,
            entered_at=at(0), stage="education", cursor=cursor, status=status)
        store.save_contact_state(state, None)

    enrolled("a", 3, "welcome", ACTIVE)
    enrolled("b", 3, "welcome", ACTIVE)
    enrolled("c", 4, "nudge", ACTIVE)
    enrolled("d", 4, None, IDLE)
    rows = sorted(store.in_flight_by_step("onboarding"), key=lambda r: (r["version"], str(r["step"])))
    assert [(r["version"], r["stage"], r["step"], r["contacts"]) for r in rows] == [
        (3, "education", "welcome", 2), (4, "education", None, 1), (4, "education", "nudge", 1)]
    assert store.in_flight_by_step("billing") == []
