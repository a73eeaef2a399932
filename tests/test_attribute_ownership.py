"""Re-importing contacts does not revert what journeys set (runner/store/sourcevalues.py).

A contacts import applies only the values its source changed since the
previous import; a value a journey set stays until the source changes its
own. The demo ("safe to run twice") and a nightly CRM import are the cases
that reverted `lead_status` before.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from test_tick_kit import TINY_PROJECT, copy_sample, journey_cli, tiny_project, write_lines

from runner.production import ingest
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.store import open_store
from runner.store.sourcevalues import apply_patch, source_changes

START = datetime(2026, 3, 2, tzinfo=UTC)
QUALIFY = """\
id: qualify
version: 1
name: Qualify
stages:
  - id: main
    entry: {event: demo_booked}
    steps:
      - id: mark
        update: {set: {lead_status: sql, meddic: {champion: yes}}}
"""


def _attributes(store, contact_id: str = "ada") -> dict:
    return store.load_contact_state(contact_id).contact.attributes


def _crm(tmp_path, name: str, lead_status: str, plan: str = "free"):
    return write_lines(tmp_path / name, ["id,email,lead_status,plan,meddic.champion",
                                         f"ada,ada@example.com,{lead_status},{plan},no"])


def test_a_nightly_crm_import_keeps_what_a_journey_set_until_the_crm_changes_it(tmp_path):
    root = tiny_project(tmp_path / "project", journeys={"qualify": QUALIFY}, project=TINY_PROJECT, templates={})
    store = open_store(tmp_path / "journey.db")
    tree = load_working_tree(root)
    deploy(store, tree.journeys, START)
    runtime = build_runtime(store, tree.project, f"outbox:{tmp_path / 'outbox'}")
    assert ingest.import_contacts(store, _crm(tmp_path, "night1.csv", "new"), now=START).imported == 1
    ingest.import_events(store, write_lines(tmp_path / "events.jsonl", [json.dumps(
        {"type": "track", "userId": "ada", "event": "demo_booked", "timestamp": "2026-03-02T10:00:00Z", "messageId": "d1"})]),
        now=START)
    run_tick(store, runtime, START + timedelta(hours=12))
    assert _attributes(store)["lead_status"] == "sql" and _attributes(store)["meddic"] == {"champion": "yes"}

    # the next nights the CRM still says `new` and `no`: the journey's values stand; its own change applies
    second = ingest.import_contacts(store, _crm(tmp_path, "night2.csv", "new", plan="pro"), now=START + timedelta(days=1))
    assert _attributes(store) == {"email": "ada@example.com", "lead_status": "sql", "plan": "pro",
                                  "meddic": {"champion": "yes"}}
    assert second.imported == 1  # plan changed
    third = ingest.import_contacts(store, _crm(tmp_path, "night3.csv", "new", plan="pro"), now=START + timedelta(days=2))
    assert third.imported == 0 and third.duplicates == 1 and _attributes(store)["lead_status"] == "sql"
    # a sales rep changes the status in the CRM: that is newer than the journey's update, so it wins
    ingest.import_contacts(store, _crm(tmp_path, "night4.csv", "customer", plan="pro"), now=START + timedelta(days=3))
    assert _attributes(store)["lead_status"] == "customer"
    store.close()


def test_identify_traits_are_changes_and_a_stale_import_does_not_revert_them(tmp_path):
    with open_store(tmp_path / "journey.db") as store:
        ingest.import_contacts(store, _crm(tmp_path, "night1.csv", "new"), now=START)
        ingest.import_events(store, write_lines(tmp_path / "events.jsonl", [json.dumps(
            {"type": "identify", "userId": "ada", "traits": {"plan": "pro"}, "timestamp": "2026-03-02T10:00:00Z",
             "messageId": "i1"})]), now=START)
        ingest.import_contacts(store, _crm(tmp_path, "night2.csv", "new"), now=START + timedelta(days=1))
        assert _attributes(store)["plan"] == "pro"


def test_the_first_import_and_jsonl_nulls_still_apply():
    assert source_changes({"a": 1, "b": {"c": 2}}, {}) == {"a": 1, "b": {"c": 2}}
    assert source_changes({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 2}}) == {"b": {"d": 3}}
    assert source_changes({"gone": None}, {"gone": "x"}) == {"gone": None}  # the source removed it
    assert source_changes({"never": None}, {}) == {}  # nothing changed at the source
    assert source_changes({"flag": 1}, {"flag": True}) == {"flag": 1}  # JSON types differ
    assert apply_patch({"a": 1, "b": {"c": 2}}, {"a": None, "b": {"d": 3}}) == {"b": {"c": 2, "d": 3}}


def test_the_demo_twice_reverts_no_attribute(tmp_path):
    """`journey demo` says it is safe to run twice: the second run's import must not undo the journeys' updates."""
    root = copy_sample(tmp_path / "kitebase")
    sources = {line["id"]: line.get("attributes", {}) for line in map(json.loads, (
        root / "examples" / "data" / "contacts.jsonl").read_text().splitlines())}

    def attributes() -> dict:
        with open_store(root / "journey.db") as store:
            return {cid: json.loads(text) for cid, text in store.conn.execute("SELECT id, attributes FROM contacts")}

    assert journey_cli(["demo", "--days", "8"], cwd=root, timeout=300).returncode == 0
    first = attributes()
    set_by_journeys = [cid for cid, values in sources.items()
                       if any(first[cid].get(key) != value for key, value in values.items())]
    assert len(set_by_journeys) >= 3  # the journeys changed imported values (lead_status), so the test means something
    second = journey_cli(["demo", "--days", "8"], cwd=root, timeout=300)
    assert second.returncode == 0, second.stderr
    assert attributes() == first
