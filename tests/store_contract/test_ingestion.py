"""Bulk ingestion: contacts upserted and merged, events deduplicated by message id,
anonymous ids linked once (the first link wins), all inside the caller's transaction."""

from __future__ import annotations

import pytest

from runner.store.base import ContactRow, EventRow

from .kit import at


def test_contacts_are_upserted_merged_and_counted_when_new_or_changed(store):
    assert store.write_contacts([ContactRow("ada", {"email": "ada@example.com", "a": {"x": 1}}, timezone="UTC"),
                                 ContactRow("bob", {})], at(0)) == 2
    assert store.write_contacts([ContactRow("ada", {"email": "ada@example.com"})], at(1)) == 0  # nothing new
    assert store.write_contacts([ContactRow("ada", {"a": {"y": 2}, "b": None})], at(2)) == 1
    ada = store.load_contact_state("ada").contact
    assert ada.attributes == {"email": "ada@example.com", "a": {"x": 1, "y": 2}}  # RFC 7396: null removes
    assert ada.timezone == "UTC"
    assert store.write_contacts([ContactRow("ada", {}, timezone="Europe/Berlin")], at(3)) == 1
    assert store.load_contact_state("ada").contact.timezone == "Europe/Berlin"


def test_a_snapshot_import_applies_only_what_its_source_changed(store):
    store.write_contacts([ContactRow("ada", {"plan": "free", "city": "Izmir"}, snapshot=True)], at(0))
    state = store.load_contact_state("ada")
    state.contact.attributes["plan"] = "trial"  # a journey set it
    store.save_contact_state(state, None)
    # the same source line again: the journey's value stays
    assert store.write_contacts([ContactRow("ada", {"plan": "free", "city": "Izmir"}, snapshot=True)], at(1)) == 0
    assert store.load_contact_state("ada").contact.attributes == {"plan": "trial", "city": "Izmir"}
    # the source changes the city: only that applies
    store.write_contacts([ContactRow("ada", {"plan": "free", "city": "Ankara"}, snapshot=True)], at(2))
    assert store.load_contact_state("ada").contact.attributes == {"plan": "trial", "city": "Ankara"}


def test_events_are_deduplicated_by_message_id(store):
    rows = [EventRow("ada", None, "signed_up", at(0), {"form": "footer"}, "m1"),
            EventRow(None, "anon-1", "page_viewed", at(1), {"path": "/"}, "m2")]
    assert store.write_events(rows, at(2)) == 2
    assert store.write_events(rows + [EventRow("ada", None, "clicked", at(3), {}, "m3")], at(4)) == 1
    assert store.existing_message_ids(["m1", "m3", "m9"]) == {"m1", "m3"}
    assert store.existing_message_ids([]) == set()
    assert [e.message_id for e in store.load_contact_state("ada").events] == ["m1", "m3"]


def test_new_and_replayed_batches_keep_input_order_and_wake_each_contact_at_its_earliest_event(store):
    """A batch of new events (PostgreSQL copies it straight into the table) and one holding a stored
    and a repeated message id (through the staging table) store the same way SQLite does."""
    ada = [EventRow("ada", None, "late", at(5), {"é": [1, {"b": 2, "a": None}]}, "a1"),
           EventRow("ada", "anon-1", "early", at(2), {}, "a2")]
    new = [*ada, EventRow("bob", None, "only", at(3), {"n": 1.5}, "b1"), EventRow(None, "anon-9", "visit", at(1), {}, "v1")]
    assert store.write_events(new, at(9)) == 4
    assert store.wake_at("ada") == at(2) and store.wake_at("bob") == at(3)  # created, due at their earliest
    assert [mid for _, mid, _ in sorted(store.events_after("ada", [], 0))] == ["a1", "a2"]  # ids: input order
    stored = {event.message_id: event for event in store.load_contact_state("ada").events}
    assert stored["a1"].properties == {"é": [1, {"b": 2, "a": None}]} and stored["a1"].at == at(5)
    store.save_contact_state(store.load_contact_state("ada"), wake_at=at(8))
    store.save_contact_state(store.load_contact_state("bob"), wake_at=None)
    replayed = [EventRow("bob", None, "more", at(7), {}, "b2"), ada[0],  # a stored id: not again, still wakes
                EventRow("bob", None, "twice", at(6), {}, "b3"), EventRow("bob", None, "twice", at(6), {}, "b3"),
                EventRow("cy", None, "first", at(4), {}, "c1")]
    assert store.write_events(replayed, at(10)) == 3
    assert (store.wake_at("ada"), store.wake_at("bob"), store.wake_at("cy")) == (at(5), at(6), at(4))
    assert [mid for _, mid, _ in sorted(store.events_after("bob", [], 0))] == ["b1", "b2", "b3"]
    ids = {mid: event_id for who in ("ada", "bob", "cy") for event_id, mid, _ in store.events_after(who, [], 0)}
    assert ids["a2"] < ids["b1"] < ids["b2"] < ids["b3"] < ids["c1"]


def test_many_message_ids_are_looked_up_at_once(store):
    store.write_events([EventRow("ada", None, "e", at(0), {}, f"m{n}") for n in range(1200)], at(1))
    asked = [f"m{n}" for n in range(0, 2400, 2)]
    assert store.existing_message_ids(asked) == {f"m{n}" for n in range(0, 1200, 2)}


def test_the_first_link_of_an_anonymous_id_wins_and_brings_its_past(store):
    store.write_events([EventRow(None, "anon-1", "page_viewed", at(1), {}, "p1")], at(1))
    store.write_contacts([ContactRow("ada", {}), ContactRow("bob", {})], at(2))
    for name in ("ada", "bob"):
        store.save_contact_state(store.load_contact_state(name), wake_at=None)
    store.link_identities([("anon-1", "ada")], at(3))
    store.link_identities([("anon-1", "bob")], at(4))  # too late: ada has it
    ada, bob = store.load_contact_state("ada"), store.load_contact_state("bob")
    assert (ada.contact.anonymous_ids, bob.contact.anonymous_ids) == (["anon-1"], [])
    assert [e.message_id for e in ada.events] == ["p1"] and bob.events == []
    assert store.due_contacts(at(5), 10) == ["ada"]  # woken at the visitor's past


def test_a_link_to_an_unknown_contact_creates_it(store):
    store.link_identities([("anon-9", "newbie")], at(0))
    assert store.load_contact_state("newbie").contact.anonymous_ids == ["anon-9"]


def test_writes_in_a_transaction_that_fails_are_all_undone(store):
    store.write_contacts([ContactRow("ada", {"plan": "free"})], at(0))
    with pytest.raises(RuntimeError, match="stop"), store.transaction():
        store.write_contacts([ContactRow("ada", {"plan": "pro"}), ContactRow("bob", {})], at(1))
        store.write_events([EventRow("ada", None, "bought", at(1), {}, "m1")], at(1))
        raise RuntimeError("stop")
    assert store.load_contact_states(["ada", "bob"]).keys() == {"ada"}
    assert store.load_contact_state("ada").contact.attributes == {"plan": "free"}
    assert store.existing_message_ids(["m1"]) == set()


def test_a_nested_transaction_that_fails_undoes_only_itself(store):
    with store.transaction():
        store.write_contacts([ContactRow("ada", {})], at(0))
        with pytest.raises(RuntimeError), store.transaction():
            store.write_contacts([ContactRow("bob", {})], at(0))
            raise RuntimeError("inner")
        store.write_contacts([ContactRow("cem", {})], at(0))
    assert sorted(store.load_contact_states(["ada", "bob", "cem"])) == ["ada", "cem"]


def test_a_durable_transaction_and_relaxed_commits_keep_what_they_wrote(store, other_store):
    store.set_commit_durability(False)
    with store.transaction(durable=True):
        store.write_contacts([ContactRow("ada", {})], at(0))
    store.write_contacts([ContactRow("bob", {})], at(0))
    store.set_commit_durability(True)
    assert sorted(other_store.load_contact_states(["ada", "bob"])) == ["ada", "bob"]  # committed: others see it
