"""Step kinds are declared in one place: a toy kind registered here is validated, simulated, described and drawn.

This is the worked example behind "How to add a step kind" in
docs/architecture.md: an ``sms`` step (a Step subclass and one
``StepKind``), used by a journey file in a copy of the fixture project,
without touching any runner module.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.core.model import Journey, Step
from runner.core.state import Enrollment
from runner.core.stepkinds import STEP_KINDS, DiagramStyle, StepKind, register_step_kind, unregister_step_kind
from runner.core.steps import RunState, send_key
from runner.language.loader import load_project, validate
from runner.review.dot import journey_dot
from runner.review.mermaid import journey_mermaid
from runner.simulation import testcontacts
from runner.simulation.simulate import simulate

HOSTILE = Path(__file__).parent / "hostile"
START = datetime(2026, 3, 2, tzinfo=UTC)


@dataclass(frozen=True)
class SmsStep(Step):
    text: str = ""


def execute_sms(run: RunState, journey: Journey, enrollment: Enrollment, step: SmsStep) -> bool:
    if not run.contact.attributes.get("phone"):
        run.decide(journey, enrollment, step.id, "skip", "no phone number")
    else:
        run.decide(journey, enrollment, step.id, "sms", f"sms to {run.contact.attributes['phone']}",
                   key=send_key(enrollment, step.id), detail={"text": step.text})
    enrollment.cursor = step.next
    return True


SMS = StepKind(
    "sms",
    build=lambda body, spec, common, nested: SmsStep(**common, text=body["text"]),
    execute=execute_sms,
    style=DiagramStyle(('[("', '")]'), "fill:#e0f7fa,stroke:#00838f", "cylinder", "#e0f7fa"),
    describe=lambda step, spec: [f"{step.id}: sms", step.text],
    check=lambda body: [f"an SMS holds 160 characters, this one {len(body['text'])}"] if len(body.get("text", "")) > 160 else [],
    schema={"type": "object", "additionalProperties": False, "required": ["text"],
            "properties": {"text": {"type": "string", "minLength": 1}}},
)

JOURNEY = """\
id: texting
version: 1
name: Texting
stages:
  - id: main
    entry: {event: signed_up}
    steps:
      - wait: 1h
      - id: hello_sms
        sms: {text: TEXT}
"""


@pytest.fixture
def sms_kind():
    register_step_kind(SMS)
    yield SMS
    unregister_step_kind("sms")


def project_with(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(HOSTILE, root, ignore=shutil.ignore_patterns("cases"))
    (root / "journeys" / "texting.yaml").write_text(JOURNEY.replace("TEXT", text))
    return root


def contact(contact_id: str, **attributes: Any) -> testcontacts.TestContact:
    return testcontacts.TestContact(contact_id, "UTC", attributes, [], [{"event": "signed_up", "at": "+1h"}])


def test_without_the_kind_an_sms_step_is_a_schema_error(tmp_path: Path):
    assert "sms" not in STEP_KINDS
    result = validate(root=project_with(tmp_path, '"Hi!"'))
    assert any(p.file.endswith("texting.yaml") and p.code.startswith("schema.") for p in result.problems)


def test_a_registered_kind_is_validated_with_its_schema_and_its_own_check(tmp_path: Path, sms_kind):
    assert validate(root=project_with(tmp_path / "ok", '"Hi!"')).problems == []
    too_long = validate(root=project_with(tmp_path / "long", "x" * 200)).problems
    assert [(p.code, p.line) for p in too_long] == [("step.sms", 10)]
    assert "160 characters, this one 200" in too_long[0].message
    wrong = validate(root=project_with(tmp_path / "wrong", "{txt: Hi}")).problems
    assert wrong and all(p.code.startswith("schema.") and p.line == 10 for p in wrong)


def test_a_registered_kind_is_simulated_by_its_executor(tmp_path: Path, sms_kind):
    loaded = load_project(project_with(tmp_path, '"Hi!"'))
    assert loaded.ok, loaded.errors
    texting = [j for j in loaded.journeys if j.id == "texting"]
    result = simulate(loaded.project, texting, [contact("ann", phone="+15550100"), contact("bob")],
                      START, START + timedelta(days=1))
    sms = [(d.contact, d.action, d.key, dict(d.detail)) for d in result.decisions if d.step == "hello_sms"]
    assert sms == [("ann", "sms", "ann:texting:1/1/hello_sms", {"text": "Hi!"}),
                   ("bob", "skip", None, {})]
    assert [d.at for d in result.decisions if d.step == "hello_sms"] == [START + timedelta(hours=2)] * 2


def test_a_registered_kind_is_described_and_drawn_in_its_style(tmp_path: Path, sms_kind):
    loaded = load_project(project_with(tmp_path, '"Hi!"'))
    journey = next(j for j in loaded.journeys if j.id == "texting")
    mermaid = journey_mermaid(journey)
    assert 'step_hello_sms[("hello_sms: sms<br/>Hi!")]' in mermaid
    assert "classDef k_sms fill:#e0f7fa,stroke:#00838f" in mermaid
    dot = journey_dot(journey)
    assert "shape=cylinder" in dot and 'fillcolor="#e0f7fa"' in dot and "Hi!" in dot
