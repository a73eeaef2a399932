"""Both backends answer alike: one sequence of writes applied to a SQLite file and to a
PostgreSQL schema, then every read the CLI prints from compared value for value (an instant
may come as text or as a datetime; it must be the same instant). A difference here is a
difference ``journey status``, ``history``, ``stats`` and ``suppress list`` would show."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from runner.core.state import ACTIVE, Enrollment
from runner.store import open_store
from runner.store.base import ContactRow, EventRow
from runner.store.codec import to_db_time

from .conftest import _need_postgres
from .kit import at, blank, decision, full_state, instant, send

INSTANT_FIELDS = {"at", "next_wake_at", "claimed_at", "sent_at", "retry_at", "first_failed_at", "started_at",
                  "finished_at", "expires_at", "deployed_at"}
VOLATILE = {"sent_at", "deployed_at", "started_at", "finished_at", "claimed_at", "id", "run_id"}  # the wall clock


def _scenario(store) -> None:
    store.write_contacts([ContactRow("ada", {"email": "Ada@Example.com", "n": 1}, anonymous_ids=["anon-1"]),
                          ContactRow("bob", {"email": "bob@example.com"}, timezone="Europe/Berlin")], at(0))
    store.write_events([EventRow("ada", None, "signed_up", at(1), {"form": "x"}, "e1"),
                        EventRow(None, "anon-1", "page_viewed", at(0.5), {}, "e2"),
                        EventRow("bob", None, "email_opened", at(2), {"journey": "onboarding", "step": "welcome"}, "e3"),
                        EventRow("bob", None, "email_bounced", at(3), {"reason": "5.1.1 unknown user"}, "e4")], at(3))
    store.record_deployment("onboarding", 3, "h3", "id: onboarding", at(0))
    store.record_templates({"welcome.txt": "Hi"}, at(0))
    state = full_state()
    state.enrollments["onboarding"].variant = {"subject": "b"}
    store.save_contact_state(state, at(72), [decision("ada", 1, key="k1"),
                                             decision("ada", 2, "skip", step="nudge", key="k2", reason="capped")],
                             run_id="run-x")
    cem = blank("cem")
    cem.enrollments["onboarding"] = Enrollment(id="cem:onboarding:1", contact_id="cem", journey_id="onboarding",
                                               version=3, entered_at=at(0), stage="education", cursor="welcome",
                                               status=ACTIVE, due_at=at(1), variant={"subject": "a"}, goal_at=at(2))
    store.save_contact_state(cem, at(1))
    assert store.acquire_lease("tick", "host:1:aa", timedelta(minutes=5), at(0))
    run = store.start_run("host:1:aa", at(0))
    assert store.claim_sends([send("k1"), send("k3", step="nudge")], run, resendable=False) == [True, True]
    store.confirm_send("k1", "<m1@x>")
    assert store.claim_send(send("k4", "bob"), run)
    store.fail_send("k4", "421 later", permanent=False, retry_at=at(4), failed_at=at(3))
    store.skip_send(send("k2"), "capped", run)
    store.add_suppression("bob@example.com", "complained", "cli", at(5))
    store.finish_run(run, {"sent": 1}, "crashed", at(0))
    store.in_doubt_sends(at(1))


def _plain(value: Any, field: str = "") -> Any:
    """A value as both backends must agree on it."""
    if isinstance(value, dict):
        return {k: _plain(v, k) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [_plain(v, field) for v in value]
    if field in INSTANT_FIELDS and value is not None:
        return to_db_time(instant(value))
    if isinstance(value, datetime):
        return to_db_time(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == int(value) else float(value)
    return value


def _answers(store) -> dict[str, Any]:
    return {
        "status": store.status_summary(at(10)),
        "history ada": store.contact_history("ada"),
        "suppressions": store.suppressions(),
        "deployments": store.deployments(),
        "templates": store.deployed_templates(),
        "due": store.due_page(at(100), 10),
        "in flight": sorted(store.in_flight_by_step("onboarding"), key=str),
        "decisions": sorted(store.decision_counts(None, None, None), key=str),
        "sends": sorted(store.send_counts(None, None, None), key=str),
        "splits": sorted(store.split_outcomes(None, None, None), key=str),
        "engagement": store.engagement_counts(None, None, None),
        "retryable": store.retryable_sends(at(5)),
        "in doubt": store.in_doubt_sends(at(10), mark=False),
        "is suppressed": [store.is_suppressed(c) for c in ("ada", "bob", "cem")],
        "lease": store.lease("tick"),
    }


@pytest.fixture
def both(tmp_path, pg_url):
    _need_postgres()
    with closing(open_store(tmp_path / "journey.db")) as sqlite, closing(open_store(pg_url)) as postgresql:
        yield sqlite, postgresql


def test_both_backends_answer_alike(both):
    sqlite, postgresql = both
    _scenario(sqlite)
    _scenario(postgresql)
    expected, answered = _answers(sqlite), _answers(postgresql)
    assert expected["status"]["sends"] == {"failed": 1, "in_doubt": 1, "sent": 1, "skipped": 1}  # it did it all
    assert expected["is suppressed"] == [None, "bounced", None] and expected["splits"] and expected["engagement"]
    differ = {question: (_plain(answered[question]), _plain(expected[question]))
              for question in expected if _plain(answered[question]) != _plain(expected[question])}
    assert differ == {}, "PostgreSQL answers differently (postgresql, sqlite): " + repr(differ)
