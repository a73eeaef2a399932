"""Suppressions: by contact id, by address (any case) and through a linked anonymous id;
a suppressing event suppresses once, from its own time."""

from __future__ import annotations

import pytest

from runner.core.addresses import email_key
from runner.core.problems import JourneyError
from runner.core.state import Contact, ContactState
from runner.serve.optouts import Preferences, preferences
from runner.store.base import ContactRow, EventRow

from .kit import at, decision, instant


def test_suppression_by_id_email_and_anonymous_id(store):
    store.write_contacts([ContactRow("ada", {"email": "Ada@Example.com"}, anonymous_ids=["anon-1"]),
                          ContactRow("bob", {"email": "bob@example.com"}),
                          ContactRow("cem", {})], at(0))
    store.add_suppression("ADA@example.COM", "bounced", "cli", at(1))
    store.add_suppression("bob", "complained", "cli", at(1))
    store.add_suppression("anon-1", "unsubscribed", "event:x", at(2))
    assert store.is_suppressed("ada") == "bounced"
    assert store.is_suppressed("bob") == "complained"
    assert store.is_suppressed("cem") is None and store.is_suppressed("nobody") is None
    assert store.load_contact_state("bob").suppressed == "complained"
    assert store.remove_suppression("ada@example.com")
    assert store.is_suppressed("ada") == "unsubscribed"  # still, through its anonymous id
    assert not store.remove_suppression("ada@example.com")
    with pytest.raises(JourneyError, match="unknown suppression reason"):
        store.add_suppression("cem", "annoyed", "cli", at(3))
    with pytest.raises(JourneyError):
        store.add_suppression("  ", "manual", "cli", at(3))
    assert {s["reason"] for s in store.suppressions()} == {"complained", "unsubscribed"}


def test_a_suppression_applies_from_its_instant(store):
    store.write_contacts([ContactRow("ada", {"email": "ada@example.com"})], at(0))
    store.add_suppression("ada", "manual", "cli", at(5))
    assert store.is_suppressed("ada", at(4)) is None
    assert store.is_suppressed("ada", at(5)) == "manual"
    state = store.load_contact_state("ada")
    assert (state.suppressed, state.suppressed_at) == ("manual", at(5))


def test_suppressing_events_suppress_once_at_their_time(store):
    store.write_contacts([ContactRow("ada", {"email": "ada@example.com"})], at(0))
    store.write_events([EventRow("ada", None, "email_bounced", at(3), {"journey": "j", "step": "s"}, "b1")], at(4))
    assert store.is_suppressed("ada") == "bounced"
    (row,) = store.suppressions()
    assert (row["contact_id"], row["reason"], row["source"], instant(row["at"])) == ("ada", "bounced", "event:b1", at(3))
    assert store.remove_suppression("ada")  # an operator lifts it
    store.write_events([EventRow("ada", None, "email_bounced", at(3), {}, "b1")], at(5))  # the same export again
    assert store.is_suppressed("ada") is None  # a replay does not suppress again
    store.write_events([EventRow("ada", None, "unsubscribed", at(6), {}, "u1")], at(6))
    assert store.is_suppressed("ada") == "unsubscribed"


def test_the_same_address_on_two_contacts_is_suppressed_for_both(store):
    store.write_contacts([ContactRow("ada", {"email": "shared@example.com"}),
                          ContactRow("ada2", {"email": "SHARED@example.com"})], at(0))
    store.add_suppression("shared@example.com", "complained", "cli", at(1))
    assert store.is_suppressed("ada") == store.is_suppressed("ada2") == "complained"
    assert store.contacts_by_email(["Shared@Example.com", "none@example.com"]) == {
        "shared@example.com": ["ada", "ada2"]}


def test_a_suppress_step_is_stored_with_its_decision_and_stops_marketing_only(store):
    """A ``suppress`` decision journaled with the contact's state records the stop of every
    marketing topic (``*:<reason>``) in the same transaction: listed with its reason and
    source, loaded back into the state the engine decides with, lifted by a remove."""
    store.write_contacts([ContactRow("ada", {"email": "ada@example.com"})], at(0))
    state = store.load_contact_state("ada")
    assert isinstance(state, ContactState)
    state.stop_marketing("sunset", at(3))
    stop = decision("ada", 3, "suppress", step="reengage.2", journey="reengage", reason="sunset",
                    detail={"reason": "sunset"})
    store.save_contact_state(state, None, [stop])
    (row,) = store.suppressions("ada")
    assert (row["contact_id"], row["reason"], row["topic"], row["source"], instant(row["at"])) == (
        "ada", "sunset", "*:sunset", "step:reengage/reengage.2", at(3))
    loaded = store.load_contact_state("ada")
    assert loaded.opt_outs == {"*:sunset": at(3)}
    assert loaded.email_stop("marketing", True, at(4)) == "suppressed: sunset"
    assert loaded.email_stop("receipts", False, at(4)) is None  # transactional goes on
    assert store.is_suppressed("ada", at(2)) is None and store.is_suppressed("ada", at(3)) == "sunset"
    # the same decision again (a replayed batch) keeps the first instant
    later = store.load_contact_state("ada")
    store.save_contact_state(later, None, [decision("ada", 9, "suppress", step="reengage.2", journey="reengage",
                                                    reason="sunset")])
    assert [instant(r["at"]) for r in store.suppressions("ada")] == [at(3)]
    assert preferences(store, "ada", at(4)) == Preferences(True, frozenset())  # the page shows: nothing
    assert store.remove_suppression("ada")
    assert store.load_contact_state("ada").opt_outs == {} and store.is_suppressed("ada") is None
    # sunset again; the contact resubscribes to everything (the preferences page): lifted too
    store.save_contact_state(store.load_contact_state("ada"), None, [stop])
    store.write_events([EventRow("ada", None, "resubscribed", at(5), {"topic": "*"}, "resub-1")], at(5))
    assert store.suppressions("ada") == [] and store.load_contact_state("ada").opt_outs == {}


@pytest.mark.parametrize("write", ["import", "import over a row", "tick save", "save of an unloaded state"])
def test_a_non_ascii_address_is_kept_and_matched_by_one_rule(store, write):
    """Whatever writes a contact's address (an import creating or updating the row, the tick
    saving what the engine changed), it is stored as ``email_key`` says (Python's str.lower of
    the whole address), so lookups and suppressions by the address in any case find it. The
    databases' lower() lowers ASCII only (SQLite) or by the locale (PostgreSQL)."""
    address = "ÖZGE.İLKER@Örnek.com.tr"
    if write == "import":
        store.write_contacts([ContactRow("ozge", {"email": address})], at(0))
    else:
        store.write_contacts([ContactRow("ozge", {"email": "old@example.com", "plan": "free"})], at(0))
        if write == "import over a row":
            store.write_contacts([ContactRow("ozge", {"email": address})], at(1))
        elif write == "tick save":
            state = store.load_contact_state("ozge")
            state.contact.attributes["email"] = address
            store.save_contact_state(state, None)
        else:
            store.save_contact_state(ContactState(Contact("ozge", {"email": address, "plan": "free"})), None)
    key = email_key(address)
    assert key == "özge.i̇lker@örnek.com.tr"
    assert store.contacts_by_email(["özge.i̇lker@ÖRNEK.COM.TR"]) == {key: ["ozge"]}
    store.add_suppression("Özge.İlker@örnek.com.tr", "manual", "cli", at(2))
    assert store.is_suppressed("ozge") == "manual"
    assert store.load_contact_state("ozge").suppressed == "manual"
    assert [row["email"] for row in store.suppressions("ozge")] == [key]
    # an update that leaves the address alone keeps its key
    store.write_contacts([ContactRow("ozge", {"plan": "pro"})], at(3))
    state = store.load_contact_state("ozge")
    state.contact.attributes["score"] = 3
    store.save_contact_state(state, None)
    assert store.contacts_by_email([address]) == {key: ["ozge"]}
