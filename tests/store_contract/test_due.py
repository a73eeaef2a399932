"""The due index: a tick finds due work by ``wake_at``, oldest first, page after page,
and imports move a contact's wake-up earlier only (base.py: ``due_contacts`` answers from
an index on ``wake_at``; the plans themselves are each backend's own tests)."""

from __future__ import annotations

from runner.store.base import ContactRow, EventRow

from .kit import at, blank


def _wake(store, wakes: dict) -> None:
    for name, wake in wakes.items():
        store.save_contact_state(blank(name), wake_at=wake)


def test_due_contacts_are_those_whose_wake_up_has_come_oldest_first(store):
    _wake(store, {"c": at(3), "a": at(1), "b": at(2), "later": at(50), "never": None})
    assert store.due_contacts(at(10), limit=10) == ["a", "b", "c"]
    assert store.due_contacts(at(10), limit=2) == ["a", "b"]
    assert store.due_contacts(at(2), limit=10) == ["a", "b"]  # wake_at <= now: the instant itself is due
    assert store.due_contacts(at(0), limit=10) == []


def test_due_pages_follow_each_other_by_keyset(store):
    """Each page starts after the previous page's last (wake_at, id): every due contact once, none twice."""
    wakes = {f"c{n:02d}": at(n % 4) for n in range(10)} | {"later": at(50), "never": None}
    _wake(store, wakes)
    pages, cursor = [], None
    while page := store.due_page(at(10), 3, cursor):
        pages.append([contact_id for _, contact_id in page])
        cursor = page[-1]
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    due = sorted((n for n, w in wakes.items() if w and w <= at(10)), key=lambda n: (wakes[n], n))
    assert sum(pages, []) == due


def test_a_page_cursor_survives_contacts_saved_between_pages(store):
    """A contact advanced between pages moves out of the range the cursor has passed: nothing twice."""
    _wake(store, {f"c{n}": at(n) for n in range(6)})
    first = store.due_page(at(10), 3)
    for _, contact_id in first:
        store.save_contact_state(store.load_contact_state(contact_id), wake_at=at(100))
    second = store.due_page(at(10), 3, first[-1])
    assert [contact_id for _, contact_id in second] == ["c3", "c4", "c5"]
    assert store.due_page(at(10), 3, second[-1]) == []


def test_an_imported_event_makes_its_contact_due_at_the_events_time_earlier_only(store):
    _wake(store, {"ada": at(100), "bob": at(1)})
    store.write_events([EventRow("ada", None, "clicked", at(5), {}, "e1"),
                        EventRow("bob", None, "clicked", at(7), {}, "e2")], at(8))
    assert store.wake_at("ada") == at(5)  # earlier: moved
    assert store.wake_at("bob") == at(1)  # later than its wake-up: left alone
    assert store.due_contacts(at(6), 10) == ["bob", "ada"]


def test_an_event_under_a_linked_anonymous_id_wakes_its_contact(store):
    store.write_contacts([ContactRow("ada", {}, anonymous_ids=["anon-1"])], at(0))
    store.save_contact_state(store.load_contact_state("ada"), wake_at=None)
    store.write_events([EventRow(None, "anon-1", "page_viewed", at(3), {}, "e1")], at(4))
    assert store.due_contacts(at(4), 10) == ["ada"]


def test_an_event_for_an_unknown_contact_creates_it_due(store):
    store.write_events([EventRow("newbie", None, "signed_up", at(2), {}, "e1")], at(2))
    assert store.due_contacts(at(2), 10) == ["newbie"]
    assert store.load_contact_state("newbie").contact.attributes == {}


def test_a_contact_import_wakes_what_it_changed_and_nothing_else(store):
    store.write_contacts([ContactRow("ada", {"plan": "free"}), ContactRow("bob", {"plan": "free"})], at(0))
    for name in ("ada", "bob"):
        store.save_contact_state(store.load_contact_state(name), wake_at=None)
    assert store.write_contacts([ContactRow("ada", {"plan": "pro"}, changed_at=at(3)),
                                 ContactRow("bob", {"plan": "free"})], at(4)) == 1
    assert store.due_contacts(at(10), 10) == ["ada"]
    assert store.wake_at("ada") == at(3)


def test_status_counts_due_contacts_and_the_next_wake_up(store):
    _wake(store, {"a": at(1), "b": at(2), "c": at(30), "d": None})
    summary = store.status_summary(at(2))
    assert (summary["contacts"], summary["due_contacts"]) == (4, 2)
    from .kit import instant

    assert instant(summary["next_wake_at"]) == at(30)
