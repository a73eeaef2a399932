"""Contact state, the engine's I/O: what is saved loads back whole, and a save never hides
what an import did after the load (base.py: ``save_contact_state`` ... never hides outside changes)."""

from __future__ import annotations

from datetime import datetime

import pytest

from runner.core.state import Contact, ContactState
from runner.store.base import ContactRow, EventRow

from .kit import at, blank, decision, full_state, send


def test_a_saved_state_loads_back_whole(store):
    state = full_state()
    store.save_contact_state(state, wake_at=at(72))
    store.write_events([EventRow("ada", None, "signed_up", at(0), {"form": "footer", "n": 1.5}, "m1"),
                        EventRow(None, "anon-17", "page_viewed", at(-1), {"path": "/pricing"}, "m2"),
                        EventRow(None, "anon-99", "page_viewed", at(-2), {}, "m3")], at(3))
    assert store.claim_send(send(), "run-1")
    loaded = store.load_contact_state("ada")
    assert loaded.contact == state.contact
    assert loaded.enrollments == state.enrollments
    assert loaded.past_enrollments == state.past_enrollments
    assert (loaded.clock, loaded.memory, loaded.enrollment_seq) == (state.clock, state.memory, 2)
    # the linked anonymous id's events count, the unlinked one's do not; in time order
    assert [(e.name, e.message_id) for e in loaded.events] == [("page_viewed", "m2"), ("signed_up", "m1")]
    assert loaded.events[1].properties == {"form": "footer", "n": 1.5}
    assert all(e.at.tzinfo is not None for e in loaded.events)
    assert loaded.sends == [send()]
    assert loaded.suppressed is None


def test_unknown_contacts_raise_key_error_alone_and_are_left_out_of_a_batch(store):
    with pytest.raises(KeyError):
        store.load_contact_state("nobody")
    store.save_contact_state(blank("ada"), None)
    store.save_contact_state(blank("bob"), None)
    assert sorted(store.load_contact_states(["bob", "nobody", "ada", "bob"])) == ["ada", "bob"]


def test_a_batched_load_equals_loading_each_contact_alone(store):
    """load_contact_states reads a batch (in chunks); the tick relies on it giving exactly what
    load_contact_state gives, suppressions, sends and anonymous ids included."""
    now = at(0)
    ids = [f"c{n:04d}" for n in range(1200)]  # more than one chunk
    store.write_contacts([ContactRow(cid, {"email": f"{cid.upper()}@Example.com"}, "Europe/Istanbul",
                                     [f"anon-{cid}"] if n % 3 == 0 else []) for n, cid in enumerate(ids)], now)
    store.write_events([EventRow(None, f"anon-{cid}", "page_viewed", at(1), {"n": n}, f"v-{cid}")
                        for n, cid in enumerate(ids) if n % 3 == 0], now)
    store.write_events([EventRow(cid, None, "signed_up", at(2), {}, f"s-{cid}") for cid in ids[::7]], now)
    store.add_suppression("c0005", "bounced", "test", now)
    store.add_suppression("c0010@example.com", "unsubscribed", "test", now)
    for key, contact in (("k1", "c0001"), ("k2", "c0002")):
        assert store.claim_send(send(key, contact), "run-1")
    batch = store.load_contact_states([*ids, "nobody"])
    assert sorted(batch) == ids  # unknown ids are left out
    assert batch == {cid: store.load_contact_state(cid) for cid in ids}
    assert batch["c0005"].suppressed == "bounced" and batch["c0010"].suppressed is None
    assert batch["c0010"].opt_outs == {"*": now}  # an unsubscribe is the opt-out of every marketing topic
    assert [e.name for e in batch["c0000"].events] == ["page_viewed", "signed_up"]
    assert [s.key for s in batch["c0001"].sends] == ["k1"]


def test_naive_datetimes_are_refused(store):
    with pytest.raises(ValueError, match="naive"):
        store.due_contacts(datetime(2026, 3, 2), 10)


def test_a_save_merges_the_engines_changes_into_attributes_imported_meanwhile(store):
    store.write_contacts([ContactRow("ada", {"email": "ada@example.com", "plan": "free", "nested": {"a": 1}})], at(0))
    state = store.load_contact_state("ada")
    # meanwhile an import changes an attribute and records an event
    store.write_contacts([ContactRow("ada", {"plan": "pro", "nested": {"b": 2}})], at(1))
    store.write_events([EventRow("ada", None, "purchased", at(1), {}, "p1")], at(1))
    # the engine, unaware, sets another attribute and wants to sleep for a week
    state.contact.attributes["lifecycle_stage"] = "customer"
    store.save_contact_state(state, wake_at=at(24 * 7))
    loaded = store.load_contact_state("ada")
    assert loaded.contact.attributes == {"email": "ada@example.com", "plan": "pro", "nested": {"a": 1, "b": 2},
                                         "lifecycle_stage": "customer"}
    assert store.due_contacts(at(2), 10) == ["ada"]  # the purchase imported meanwhile keeps it due


def test_an_import_that_only_changes_attributes_after_the_load_keeps_the_contact_due(store):
    store.write_contacts([ContactRow("ada", {"plan": "free"})], at(0))
    state = store.load_contact_state("ada")
    store.write_contacts([ContactRow("ada", {"plan": "pro"}, changed_at=at(5))], at(5))
    store.save_contact_state(state, wake_at=at(100))
    assert store.due_contacts(at(6), 10) == ["ada"]
    assert store.load_contact_state("ada").contact.attributes == {"plan": "pro"}


def test_an_outside_change_from_another_connection_is_not_hidden(store, other_store):
    """The import runs on another store object (another process in production)."""
    store.write_contacts([ContactRow("ada", {"plan": "free"})], at(0))
    state = store.load_contact_state("ada")
    other_store.write_contacts([ContactRow("ada", {"plan": "pro"})], at(1))
    other_store.write_events([EventRow("ada", None, "purchased", at(1), {}, "p1")], at(1))
    state.contact.attributes["stage"] = "customer"
    store.save_contact_state(state, wake_at=at(500))
    assert store.load_contact_state("ada").contact.attributes == {"plan": "pro", "stage": "customer"}
    assert store.due_contacts(at(2), 10) == ["ada"]


def test_without_outside_changes_the_engines_wake_up_wins(store):
    store.write_events([EventRow("ada", None, "signed_up", at(0), {}, "s1")], at(0))
    assert store.due_contacts(at(0), 10) == ["ada"]
    store.save_contact_state(store.load_contact_state("ada"), wake_at=at(48))
    assert store.due_contacts(at(47), 10) == []
    assert store.due_contacts(at(48), 10) == ["ada"]
    assert store.wake_at("ada") == at(48)
    store.save_contact_state(store.load_contact_state("ada"), wake_at=None)
    assert store.due_contacts(at(10_000), 10) == []
    assert store.wake_at("ada") is None


def test_the_engine_can_remove_an_attribute(store):
    store.write_contacts([ContactRow("ada", {"trial": True, "plan": "free"})], at(0))
    state = store.load_contact_state("ada")
    del state.contact.attributes["trial"]
    store.save_contact_state(state, wake_at=None)
    assert store.load_contact_state("ada").contact.attributes == {"plan": "free"}


def test_enrollments_move_from_current_to_past(store):
    state = full_state()
    store.save_contact_state(state, wake_at=at(72))
    state = store.load_contact_state("ada")
    leaving = state.enrollments.pop("onboarding")
    leaving.status, leaving.exit_reason, leaving.exited_at, leaving.cursor = "exited", "goal", at(80), None
    state.past_enrollments.append(leaving)
    store.save_contact_state(state, wake_at=None)
    loaded = store.load_contact_state("ada")
    assert loaded.enrollments == {}
    assert sorted(e.id for e in loaded.past_enrollments) == ["ada:onboarding:1", "ada:onboarding:2"]
    assert next(e for e in loaded.past_enrollments if e.id == "ada:onboarding:2").exited_at == at(80)


def test_a_failed_save_leaves_the_previous_state(store):
    store.save_contact_state(full_state(), wake_at=at(72))
    broken = store.load_contact_state("ada")
    broken.enrollments["onboarding"].status = "bogus"  # not a status: the schema refuses it
    broken.clock = at(99)
    with pytest.raises(Exception):  # noqa: B017 - the backend's refusal; what matters is what is left
        store.save_contact_state(broken, wake_at=at(100))
    assert store.load_contact_state("ada").clock == at(2)
    assert store.due_contacts(at(72), 10) == ["ada"]
    store.save_contact_state(blank("bob"), wake_at=at(1))  # the store still works
    assert store.due_contacts(at(72), 10) == ["bob", "ada"]


def test_a_batch_save_writes_every_state_and_its_journal_in_one_go(store):
    store.write_contacts([ContactRow(name, {}) for name in ("ada", "bob")], at(0))
    states = store.load_contact_states(["ada", "bob"])
    for state in states.values():
        state.clock = at(5)
    journal = [decision("ada", 5, key="k-ada"), decision("bob", 5, "skip", key="k-bob", reason="suppressed")]
    store.save_contact_states([(states["ada"], at(10)), (states["bob"], None)], journal, run_id="run-1")
    assert store.load_contact_state("ada").clock == at(5) == store.load_contact_state("bob").clock
    assert store.due_contacts(at(20), 10) == ["ada"]
    assert [(row["action"], row["key"], row["run_id"]) for row in store.contact_history("bob")] == [
        ("skip", "k-bob", "run-1")]


def test_the_journal_is_written_with_the_state_and_read_oldest_first(store):
    store.save_contact_state(blank("ada"), None)
    run = store.start_run("tick-1", at(0))
    assert store.claim_send(send("k1"), run)
    store.confirm_send("k1", "<m1@x>")
    journal = [decision("ada", 3, "exit", step=None, reason="exit:0", journey="trial"),
               decision("ada", 1, key="k1", detail={"variant": "b", "ignored": True}),
               decision("ada", 2, "skip", step="nudge", key="k2", reason="capped")]
    store.save_contact_state(store.load_contact_state("ada"), None, journal, run_id=run)
    history = store.contact_history("ada")
    assert [(row["at"], row["action"], row["step"]) for row in history] == [
        (at(1), "send", "welcome"), (at(2), "skip", "nudge"), (at(3), "exit", None)]
    assert history[0]["detail"] == {"variant": "b"}  # only the journal's detail fields are kept
    assert history[0]["send_state"] == "sent" and history[1]["send_state"] is None
    assert [row["action"] for row in store.contact_history("ada", "trial")] == ["exit"]
    assert store.contact_history("nobody") == []


def test_events_after_lists_what_arrived_since_an_event_id(store):
    store.write_contacts([ContactRow("ada", {}, anonymous_ids=["anon-1"])], at(0))
    store.write_events([EventRow("ada", None, "a", at(1), {}, "m1")], at(1))
    (first,) = store.events_after("ada", ["anon-1"], 0)
    store.write_events([EventRow(None, "anon-1", "b", at(2), {}, "m2"), EventRow("bob", None, "c", at(2), {}, "m3")],
                       at(2))
    later = store.events_after("ada", ["anon-1"], first[0])
    assert [(message_id, when) for _, message_id, when in later] == [("m2", at(2))]
    assert later[0][0] > first[0]


def test_contact_state_of_a_contact_without_anything(store):
    store.save_contact_state(ContactState(contact=Contact(id="zed", attributes={})), None)
    loaded = store.load_contact_state("zed")
    assert (loaded.events, loaded.enrollments, loaded.past_enrollments, loaded.sends) == ([], {}, [], [])
    assert loaded.clock is None and loaded.memory == {}
