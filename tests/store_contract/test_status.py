"""``status_summary``: what ``journey status`` prints, from any backend."""

from __future__ import annotations

from datetime import timedelta

from .kit import at, blank, full_state, send


def test_status_counts_enrollments_exits_sends_suppressions_runs_and_leases(store):
    store.save_contact_state(full_state(), wake_at=at(72))
    store.save_contact_state(blank("bob"), wake_at=at(200))
    run = store.start_run("host:1", at(0))
    assert store.claim_send(send("k1"), run)
    store.confirm_send("k1", "<m@x>")
    store.skip_send(send("k2"), "suppressed", run)
    store.add_suppression("bob", "manual", "cli", at(1))
    assert store.acquire_lease("tick", "host:1", timedelta(minutes=5), at(0))
    store.finish_run(run, {"sent": 1}, "ok", at(0))
    summary = store.status_summary(at(100))
    assert summary["enrollments"] == [{"journey_id": "onboarding", "version": 3, "stage": "education",
                                       "step": "wait_click", "status": "active", "contacts": 1, "due": 1}]
    assert summary["exits"] == [{"journey_id": "onboarding", "exit_reason": "exit:0", "contacts": 1}]
    assert (summary["contacts"], summary["due_contacts"]) == (2, 1)
    assert summary["sends"] == {"sent": 1, "skipped": 1}
    assert summary["suppressions"] == {"manual": 1}
    assert [r["status"] for r in summary["runs"]] == ["ok"]
    assert [(lease["name"], lease["holder"]) for lease in summary["leases"]] == [("tick", "host:1")]
    assert store.status_summary(at(10))["due_contacts"] == 0
    assert store.status_summary(at(10))["enrollments"][0]["due"] == 0


def test_status_of_an_empty_store(store):
    summary = store.status_summary(at(0))
    assert (summary["contacts"], summary["due_contacts"], summary["next_wake_at"]) == (0, 0, None)
    assert summary["enrollments"] == summary["exits"] == summary["runs"] == summary["in_doubt"] == []
    assert summary["sends"] == summary["suppressions"] == {}
