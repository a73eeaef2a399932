"""Identify traits merge into attributes exactly as the store merges them (JSON merge patch)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner.core.engine import Engine
from runner.core.model import build_project
from runner.core.state import Contact, ContactState, Event
from runner.store.codec import merge_patch

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def advance_with_traits(attributes, *traits):
    engine = Engine(build_project({}, Path(".")), [])
    events = [Event("identify", START + timedelta(hours=i), dict(t)) for i, t in enumerate(traits)]
    state = ContactState(Contact("c1", attributes), events)
    engine.advance(state, START + timedelta(days=1), start=START)
    return state.contact.attributes


def test_nested_traits_merge_instead_of_replacing():
    attributes = advance_with_traits(
        {"email": "a@example.com", "meddic": {"metrics": "cut churn 20%", "champion": None}},
        {"meddic": {"champion": "CTO"}},
    )
    assert attributes["meddic"] == {"metrics": "cut churn 20%", "champion": "CTO"}


def test_null_trait_removes_and_dotted_trait_sets_nested():
    attributes = advance_with_traits(
        {"email": "a@example.com", "plan": "pro", "meddic": {"metrics": "m"}},
        {"plan": None, "meddic.economic_buyer": "CFO"},
    )
    assert "plan" not in attributes
    assert attributes["meddic"] == {"metrics": "m", "economic_buyer": "CFO"}


def test_engine_and_store_merge_alike(tmp_path):
    """The same identify call, replayed by the engine and imported into a real SQLite store."""
    import json

    from runner.production.ingest import import_contacts, import_events
    from runner.store import open_store

    before = {"email": "a@example.com", "meddic": {"metrics": "m", "pain": "p"}, "plan": "pro"}
    traits = {"meddic": {"pain": None, "champion": "CTO"}, "company": "Acme", "plan": None}
    engine_result = advance_with_traits(json.loads(json.dumps(before)), traits)

    (tmp_path / "contacts.jsonl").write_text(json.dumps({"id": "c1", "attributes": before}) + "\n", encoding="utf-8")
    (tmp_path / "events.jsonl").write_text(json.dumps({
        "type": "identify", "userId": "c1", "traits": traits,
        "timestamp": START.isoformat(), "messageId": "m-1",
    }) + "\n", encoding="utf-8")
    store = open_store(tmp_path / "journey.db")
    import_contacts(store, tmp_path / "contacts.jsonl")
    import_events(store, tmp_path / "events.jsonl")
    store_result = store.load_contact_state("c1").contact.attributes

    assert engine_result == store_result == _apply_merge_patch(before, traits)


def _apply_merge_patch(target, patch):
    """RFC 7386 reference semantics, written out independently of both implementations."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _apply_merge_patch(result[key], value)
        else:
            result[key] = value
    return result


def test_store_codec_merge_patch_is_the_inverse_used_on_save():
    # the store saves attribute changes as a merge patch from before to after
    before = {"meddic": {"metrics": "m"}, "plan": "pro"}
    after = {"meddic": {"metrics": "m", "champion": "CTO"}}
    assert _apply_merge_patch(before, merge_patch(before, after)) == after
