"""runner.production.ingest on real files and real SQLite databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pgkit
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runner.production.ingest as ingest
from runner.core.problems import UsageError
from runner.production.ingest import BadLine, import_contacts, import_events
from runner.store import open_store

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "journey.db") as opened:
        yield opened


def jsonl(path, *objects):
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


def track(i, user="ada", event="page_viewed", **extra):
    return {"type": "track", "userId": user, "event": event, "messageId": f"m{i}",
            "timestamp": f"2026-03-02T09:{i % 60:02d}:00Z", "properties": {"n": i}, **extra}


def count(store, table):
    return store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # events: no protocol method counts them


def contact_ids(store, expected: list[str]) -> list[str]:
    """The stored contacts, through the protocol: all of them if they are the ``expected`` ones."""
    found = sorted(store.load_contact_states(expected))
    assert store.status_summary(NOW)["contacts"] == len(found), "other contacts are stored too"
    return found


# ---------------------------------------------------------------- contacts


def test_contacts_csv_columns_become_nested_attributes(tmp_path, store):
    path = tmp_path / "contacts.csv"
    path.write_text(
        "id,email,timezone,first_name,meddic.metrics,meddic.champion,source\n"
        "ada,ada@example.com,Europe/Istanbul,Ada,ARR +20%,Grace,newsletter\n"
        "bob,bob@example.com,,Bob,,,\n", encoding="utf-8")
    result = import_contacts(store, path, now=NOW)
    assert (result.imported, result.duplicates, result.bad) == (2, 0, [])
    ada = store.load_contact_state("ada").contact
    assert ada.timezone == "Europe/Istanbul"
    assert ada.attributes == {"email": "ada@example.com", "first_name": "Ada", "source": "newsletter",
                              "meddic": {"metrics": "ARR +20%", "champion": "Grace"}}
    assert store.load_contact_state("bob").contact.attributes == {"email": "bob@example.com",
                                                                   "first_name": "Bob"}
    # new contacts are due now, so segment entries see them
    assert set(store.due_contacts(NOW, 10)) == {"ada", "bob"}


def test_contacts_reimport_is_idempotent_and_merges(tmp_path, store):
    path = tmp_path / "contacts.csv"
    path.write_text("id,email,plan\nada,ada@example.com,free\n", encoding="utf-8")
    assert import_contacts(store, path, now=NOW).imported == 1
    state = store.load_contact_state("ada")
    store.save_contact_state(state, wake_at=None)  # processed: not due any more
    again = import_contacts(store, path, now=NOW + timedelta(hours=1))
    assert (again.imported, again.duplicates) == (0, 1)
    assert store.due_contacts(NOW + timedelta(days=1), 10) == []  # unchanged data wakes nobody
    (tmp_path / "more.csv").write_text("id,company\nada,Acme\n", encoding="utf-8")
    changed = import_contacts(store, tmp_path / "more.csv", now=NOW + timedelta(hours=2))
    assert changed.imported == 1
    assert store.load_contact_state("ada").contact.attributes == {
        "email": "ada@example.com", "plan": "free", "company": "Acme"}
    assert store.due_contacts(NOW + timedelta(days=1), 10) == ["ada"]
    assert store.status_summary(NOW)["contacts"] == 1


def test_contacts_jsonl_like_test_contacts_with_events_and_anonymous_ids(tmp_path, store):
    path = jsonl(tmp_path / "contacts.jsonl",
                 {"id": "ada", "timezone": "Europe/Istanbul",
                  "attributes": {"email": "ada@example.com", "first_name": "Ada"},
                  "anonymous_ids": ["anon-17"],
                  "events": [{"at": "2026-03-02T09:30:00Z", "event": "page_viewed",
                              "properties": {"path": "/pricing"}}]},
                 {"id": "bob", "attributes": {"email": "bob@example.com"}})
    result = import_contacts(store, path, now=NOW)
    assert result.imported == 2 and not result.bad
    state = store.load_contact_state("ada")
    assert state.contact.anonymous_ids == ["anon-17"]
    assert [(e.name, e.at) for e in state.events] == [
        ("page_viewed", datetime(2026, 3, 2, 9, 30, tzinfo=UTC))]
    assert import_contacts(store, path, now=NOW).duplicates == 2
    assert count(store, "events") == 1


def test_bad_contact_lines_are_reported_and_the_rest_imported(tmp_path, store):
    path = tmp_path / "contacts.csv"
    path.write_bytes(
        b"id,email,timezone\n"
        b"ada,ada@example.com,Europe/Istanbul\n"
        b",nobody@example.com,UTC\n"
        b"bob,bob@example.com,Mars/Olympus\n"
        b"cem,not-an-email,UTC\n"
        b"dee,dee@example.com\n"
        b"eve,\xff\xfe@example.com,UTC\n"
        b"fay,fay@example.com,UTC\n")
    result = import_contacts(store, path, now=NOW)
    assert result.imported == 2
    assert [(p.line, p.code) for p in result.bad] == [
        (3, "import.field"), (4, "import.timezone"), (5, "import.email"), (6, "import.csv"),
        (7, "import.encoding")]
    assert all(p.file == str(path) for p in result.bad)
    assert "Mars/Olympus" in result.bad[1].message
    assert contact_ids(store, ["ada", "fay"]) == ["ada", "fay"]


def test_strict_import_keeps_nothing_of_a_bad_file_and_everything_before(tmp_path, store, monkeypatch):
    monkeypatch.setattr(ingest, "BATCH_SIZE", 3)  # the bad line comes after committed-size batches
    good = tmp_path / "good.csv"
    good.write_text("id,email\nold,old@example.com\n", encoding="utf-8")
    import_contacts(store, good, now=NOW)
    rows = "".join(f"c{i},c{i}@example.com\n" for i in range(10))
    bad = tmp_path / "bad.csv"
    bad.write_text("id,email\n" + rows + "oops,not-an-email\nlast,last@example.com\n", encoding="utf-8")
    result = import_contacts(store, bad, strict=True, now=NOW)
    assert result.aborted and result.imported == 0
    assert [(p.line, p.code) for p in result.bad] == [(12, "import.email")]
    assert contact_ids(store, ["old"]) == ["old"]
    assert not store.conn.in_transaction
    # the same file without strict keeps the good lines
    relaxed = import_contacts(store, bad, now=NOW)
    assert relaxed.imported == 11 and relaxed.bad_lines == 1


def test_csv_without_required_columns_is_one_bad_line(tmp_path, store):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("email,name\nada@example.com,Ada\nbob@example.com,Bob\n", encoding="utf-8")
    result = import_contacts(store, contacts, now=NOW)
    assert [(p.line, p.code) for p in result.bad] == [(1, "import.csv")]
    assert "lacks column id" in result.bad[0].message
    events = tmp_path / "events.csv"
    events.write_text("id,email\nada,ada@example.com\n", encoding="utf-8")
    result = import_events(store, events, now=NOW)
    assert result.bad_lines == 1
    assert "user_id or anonymous_id, event, timestamp" in result.bad[0].message
    assert store.status_summary(NOW)["contacts"] == 0


def test_unknown_format_is_a_usage_error(tmp_path, store):
    path = tmp_path / "contacts.xlsx"
    path.write_text("x")
    with pytest.raises(UsageError, match="--format"):
        import_contacts(store, path)


# ---------------------------------------------------------------- events


def test_segment_track_events_are_stored_once(tmp_path, store):
    path = jsonl(tmp_path / "events.jsonl", *(track(i) for i in range(7)), track(3))
    result = import_events(store, path, now=NOW)
    assert (result.imported, result.duplicates) == (7, 1)
    again = import_events(store, path, now=NOW)
    assert (again.imported, again.duplicates) == (0, 8)
    assert count(store, "events") == 7
    events = store.load_contact_state("ada").events
    assert [e.properties["n"] for e in events] == list(range(7))
    assert events[0].at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_each_event_makes_its_contact_due_at_the_event_time(tmp_path, store):
    jsonl(tmp_path / "a.jsonl", track(30), track(50, user="bob"))
    import_events(store, tmp_path / "a.jsonl", now=NOW)
    at = lambda minute: datetime(2026, 3, 2, 9, minute, tzinfo=UTC)  # noqa: E731
    assert store.due_contacts(at(29), 10) == []
    assert store.due_contacts(at(30), 10) == ["ada"]
    store.save_contact_state(store.load_contact_state("ada"), wake_at=at(59) + timedelta(days=2))
    jsonl(tmp_path / "b.jsonl", track(40))  # an earlier event than the engine's wake-up
    import_events(store, tmp_path / "b.jsonl", now=NOW)
    assert store.due_contacts(at(45), 10) == ["ada"]
    assert store.due_contacts(at(59), 10) == ["ada", "bob"]


def test_anonymous_events_count_once_identify_links_them(tmp_path, store):
    path = jsonl(
        tmp_path / "events.jsonl",
        {"type": "page", "anonymousId": "anon-17", "name": "Pricing", "messageId": "p1",
         "timestamp": "2026-03-01T08:00:00Z", "properties": {"path": "/pricing"}},
        {"type": "track", "anonymousId": "anon-17", "event": "content_downloaded",
         "messageId": "d1", "timestamp": "2026-03-01T08:05:00+01:00"},
        {"type": "identify", "userId": "ada", "anonymousId": "anon-17", "messageId": "i1",
         "timestamp": "2026-03-02T10:00:00Z",
         "traits": {"email": "ada@example.com", "first_name": "Ada", "timezone": "Europe/Istanbul"}},
        {"type": "track", "anonymousId": "anon-17", "event": "page_viewed", "messageId": "p2",
         "timestamp": "2026-03-03T10:00:00Z"},
    )
    result = import_events(store, path, now=NOW)
    assert result.imported == 4 and not result.bad
    state = store.load_contact_state("ada")
    assert state.contact.anonymous_ids == ["anon-17"]
    assert state.contact.timezone == "Europe/Istanbul"
    assert state.contact.attributes == {"email": "ada@example.com", "first_name": "Ada"}
    assert [e.name for e in state.events] == ["content_downloaded", "page_viewed", "identify",
                                              "page_viewed"]
    assert state.events[1].properties == {"path": "/pricing", "name": "Pricing"}
    # the visitor's events and the linking identify keep the anonymous id (the engine
    # counts them from the link); nothing else carries it
    assert [e.anonymous_id for e in state.events] == ["anon-17"] * 4
    # rows stay under the anonymous id: the merge is a join, not a rewrite
    assert count(store, "events WHERE contact_id IS NULL") == 3
    # the contact is due from its anonymous past
    assert store.due_contacts(datetime(2026, 3, 1, 7, 5, tzinfo=UTC), 10) == ["ada"]


def test_alias_links_a_previous_id(tmp_path, store):
    path = jsonl(
        tmp_path / "events.jsonl",
        {"type": "track", "anonymousId": "cookie-1", "event": "signed_up", "messageId": "s1",
         "timestamp": "2026-03-01T08:00:00Z"},
        {"type": "alias", "previousId": "cookie-1", "userId": "ada", "messageId": "a1",
         "timestamp": "2026-03-01T09:00:00Z"},
    )
    assert import_events(store, path, now=NOW).imported == 2
    events = store.load_contact_state("ada").events
    assert [(e.name, e.anonymous_id) for e in events] == [("signed_up", "cookie-1"),
                                                          ("alias", "cookie-1")]
    assert events[1].at == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert store.due_contacts(datetime(2026, 3, 1, 8, tzinfo=UTC), 10) == ["ada"]


def test_a_replayed_identify_does_not_revert_newer_traits(tmp_path, store):
    first = {"type": "identify", "userId": "ada", "messageId": "i1",
             "timestamp": "2026-03-01T08:00:00Z", "traits": {"plan": "free"}}
    second = {"type": "identify", "userId": "ada", "messageId": "i2",
              "timestamp": "2026-03-05T08:00:00Z", "traits": {"plan": "pro"}}
    import_events(store, jsonl(tmp_path / "a.jsonl", first, second), now=NOW)
    result = import_events(store, jsonl(tmp_path / "b.jsonl", first), now=NOW)
    assert result.duplicates == 1
    assert store.load_contact_state("ada").contact.attributes == {"plan": "pro"}


def test_unsubscribed_event_adds_a_suppression_once(tmp_path, store):
    path = jsonl(tmp_path / "events.jsonl",
                 {"type": "track", "userId": "ada", "event": "unsubscribed", "messageId": "u1",
                  "timestamp": "2026-03-04T09:30:00+03:00"})
    import_events(store, path, now=NOW)
    assert store.is_suppressed("ada") == "unsubscribed"
    (row,) = store.suppressions()
    assert row["source"] == "event:u1" and row["at"].startswith("2026-03-04T06:30:00")
    store.remove_suppression("ada")  # resubscribed by an operator
    import_events(store, path, now=NOW)  # replaying the old file does not undo that
    assert store.is_suppressed("ada") is None


def test_bad_event_lines_report_line_and_reason(tmp_path, store):
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([
        json.dumps(track(1)),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"type": "track", "event": "x", "timestamp": "2026-03-02T09:00:00Z"}),
        json.dumps({**track(2), "timestamp": "2026-03-02 09:00"}),
        json.dumps({**track(3), "timestamp": "yesterday"}),
        json.dumps({**track(4), "event": ""}),
        json.dumps({**track(5), "properties": "nope"}),
        json.dumps({"type": "shout", "userId": "ada", "timestamp": "2026-03-02T09:00:00Z"}),
        json.dumps({"type": "group", "userId": "ada", "groupId": "acme"}),
        "",
        json.dumps(track(6)),
    ]) + "\n", encoding="utf-8")
    result = import_events(store, path, now=NOW)
    assert result.imported == 2 and result.skipped == 1
    assert [(p.line, p.code) for p in result.bad] == [
        (2, "import.json"), (3, "import.json"), (4, "import.field"), (5, "import.timestamp"),
        (6, "import.timestamp"), (7, "import.field"), (8, "import.field"), (9, "import.field")]
    assert "UTC offset" in result.bad[3].message


def test_events_csv_with_json_and_prop_columns(tmp_path, store):
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,anonymous_id,event,timestamp,message_id,properties,prop.plan,prop.utm.source\n"
        'ada,,purchased,2026-03-02T09:00:00Z,e1,"{""amount"": 49.5}",pro,google\n'
        ",anon-9,page_viewed,2026-03-02T08:00:00Z,,,,\n"
        "ada,,signed_up,2026-03-02,e3,,,\n", encoding="utf-8")
    result = import_events(store, path, now=NOW)
    assert result.imported == 2 and [p.line for p in result.bad] == [4]
    (event,) = store.load_contact_state("ada").events
    assert event.properties == {"amount": 49.5, "plan": "pro", "utm": {"source": "google"}}
    # no message id: a content hash keeps re-imports idempotent
    assert import_events(store, path, now=NOW).duplicates == 2
    assert count(store, "events") == 2


def test_large_import_crosses_batches_and_stays_consistent(tmp_path, store, monkeypatch):
    monkeypatch.setattr(ingest, "BATCH_SIZE", 7)
    objects = [track(i, user=f"u{i % 5}") for i in range(100)]
    path = jsonl(tmp_path / "events.jsonl", *objects, *objects[:10])
    result = import_events(store, path, now=NOW)
    assert (result.imported, result.duplicates) == (100, 10)
    assert store.status_summary(NOW)["contacts"] == 5
    assert sorted(store.due_contacts(datetime(2026, 3, 2, 9, 4, tzinfo=UTC), 10)) == [
        "u0", "u1", "u2", "u3", "u4"]


def test_progress_reports_every_byte(tmp_path, store):
    path = jsonl(tmp_path / "events.jsonl", *(track(i) for i in range(20)))
    seen = []
    import_events(store, path, now=NOW, progress=seen.append)
    assert sum(seen) == path.stat().st_size


def test_hostile_lines_are_bad_lines_not_crashes(tmp_path, store, monkeypatch):
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([
        json.dumps(track(1)),
        json.dumps({**track(2), "properties": {"blob": "x" * 20_000}}),  # too long
        "[" * 100_000,  # too long and absurdly nested
        '{"a":' * 3000 + "1" + "}" * 3000,  # nested past the parser's limit, under the cap
        json.dumps(track(3)),
    ]) + "\n", encoding="utf-8")
    monkeypatch.setattr(ingest, "MAX_LINE_BYTES", 64 * 1024)
    result = import_events(store, path, now=NOW)
    assert result.imported == 3
    assert [(p.line, p.code) for p in result.bad] == [(3, "import.too-long"), (4, "import.json")]
    monkeypatch.setattr(ingest, "MAX_LINE_BYTES", 4096)
    result = import_events(store, path, now=NOW)
    assert [(p.line, p.code) for p in result.bad] == [
        (2, "import.too-long"), (3, "import.too-long"), (4, "import.too-long")]
    assert result.duplicates == 2


def test_csv_too_long_or_undecodable_lines_do_not_shift_line_numbers(tmp_path, store, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_LINE_BYTES", 1024)
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"id,email\n" + b"a,a@example.com\n" + b"b," + b"x" * 5000 + b"\n"
                     + b"c,\xff@example.com\n" + b"d,d@example.com\n")
    result = import_contacts(store, path, now=NOW)
    assert [(p.line, p.code) for p in result.bad] == [(3, "import.too-long"), (4, "import.encoding")]
    assert contact_ids(store, ["a", "d"]) == ["a", "d"]


def test_csv_cells_take_the_tracking_plan_types(tmp_path):
    """A CSV import means the same as JSONL: numbers and booleans by the tracking plan."""
    from runner.production.ingest import attribute_types, import_contacts
    from runner.store import open_store

    plan = {"attributes": {
        "company_size": {"type": "integer"}, "nps": "number", "returned": "boolean",
        "meddic": {"type": "object", "properties": {"metrics": "string"}},
    }}
    source = tmp_path / "contacts.csv"
    source.write_text(
        "id,email,company_size,nps,returned,meddic.metrics\n"
        "c1,c1@example.com,1200,9.5,true,cut churn\n"
        "c2,c2@example.com,lots,7,false,\n",
        encoding="utf-8",
    )
    store = open_store(tmp_path / "journey.db")
    result = import_contacts(store, source, attribute_types=attribute_types(plan))
    attributes = store.load_contact_state("c1").contact.attributes
    assert attributes["company_size"] == 1200 and attributes["nps"] == 9.5 and attributes["returned"] is True
    assert attributes["meddic"] == {"metrics": "cut churn"}
    assert result.imported == 1 and result.bad_lines == 1
    assert "company_size" in result.bad[0].message and result.bad[0].line == 3


_JSONISH = st.text(alphabet=st.sampled_from(list('{}[]:,"\\ u0123456789.eE+-truefalsnNIfiyd\n\r\t\ufeff\ud800é')), max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.one_of(_JSONISH, st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
).map(json.dumps)), st.sampled_from(["", "\n", " \n", "\r\n", "x"]))
def test_a_line_decodes_as_json_loads_decodes_it(text, ending):
    """``_decoded``'s shortcut (one value and its newline) gives json.loads's value, or its error."""
    line = text + ending

    def outcome(decode):
        try:
            return "value", decode(line)
        except json.JSONDecodeError as error:
            return "error", error.msg, error.pos
        except (BadLine, ValueError, RecursionError) as error:
            return "error", type(error).__name__, str(error)

    assert repr(outcome(ingest._decoded)) == repr(
        outcome(lambda line: json.loads(line, parse_constant=ingest._refuse_constant)))


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
)
_LINES = st.one_of(
    _JSONISH.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
    st.dictionaries(st.text(max_size=4), _VALUES, max_size=4).map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.text(max_size=4), _VALUES, max_size=4).map(
        lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")),
)


@settings(max_examples=400, deadline=None)
@given(_LINES, st.sampled_from([b"", b"\n", b" \n", b"\r\n", b"x"]), st.sampled_from([1, 2]))
def test_orjson_reads_a_line_as_the_long_way_does(raw, ending, number):
    """``_fast_object`` (orjson) gives the long way's object for every line it takes, or leaves it."""
    line = raw + ending
    fast = ingest._fast_object(line)
    if fast is not None:
        assert repr(fast) == repr(ingest._json_object(number, line))


@pytest.mark.parametrize("line", [
    b'{"n": 18446744073709551616}\n',  # orjson: a float
    b'{"n": -9223372036854775809}\n',
    b'{"n": 1e400}\n',  # json: infinity
    b'\xef\xbb\xbf{"n": 1}\n',  # a BOM
    b'{"s": "\\ud800"}\n',  # a lone surrogate
    b'{"s": "\xed\xa0\x80"}\n',
    b'{"n": NaN}\n',
    b'[' * 300 + b']' * 300 + b'\n',
    b'{"a":' * 300 + b'1' + b'}' * 300 + b'\n',
    b'[1, 2]\n',
    b' \t\n',
])
def test_lines_orjson_would_read_otherwise_go_the_long_way(line):
    assert ingest._fast_object(line) is None


def test_ordinary_lines_take_orjson(tmp_path):
    """The shortcut is taken (else the comparison above proves nothing for Segment lines)."""
    path = jsonl(tmp_path / "events.jsonl", *(track(i) for i in range(3)))
    assert [ingest._fast_object(line) for line in path.read_bytes().splitlines(keepends=True)] == [
        track(i) for i in range(3)]


def test_bad_lines_keep_their_messages(tmp_path, store):
    """Lines orjson refuses are told as json tells them (the messages of the code before orjson)."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"type": "track",\n{"n": NaN}\n{"s": "\\ud800"}\n\xff\n' + json.dumps(track(1)).encode() + b"\n")
    result = import_events(store, path, now=NOW)
    assert [(p.line, p.message) for p in result.bad] == [
        (1, "invalid JSON: Expecting property name enclosed in double quotes (column 1)"),
        (2, "NaN is not a number JSON allows (use null or a finite number)"),
        (3, "invalid JSON: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)"),
        (4, "not UTF-8 text (invalid start byte)")]
    assert result.imported == 1


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    """A fresh store on each backend (PostgreSQL: a schema of its own, dropped afterwards)."""
    if request.param == "sqlite":
        location = str(tmp_path / "journey.db")
    else:
        schemas = pgkit.fresh_schema_url()
        location = next(schemas)
        request.addfinalizer(lambda: next(schemas, None))
    with open_store(location) as opened:
        yield opened


def test_a_nul_character_is_a_bad_line_on_every_backend(tmp_path, any_store):
    """PostgreSQL stores no NUL in text: one such event failed the whole import there ("database
    error", exit 1) while SQLite kept it. Now it is a bad line on both, and the rest imports."""
    path = tmp_path / "events.jsonl"
    nul_value = {**track(1), "properties": {"plan": "a\0b"}}
    nul_key = {**track(2), "properties": {"a\0": 1}}
    path.write_text("".join(json.dumps(o) + "\n" for o in (nul_value, nul_key, track(3))), encoding="utf-8")
    result = import_events(any_store, path, now=NOW)
    message = "invalid JSON: a string holds a NUL character (\\u0000), which the database cannot store"
    assert [(p.line, p.code, p.message) for p in result.bad] == [
        (1, "import.encoding", message), (2, "import.encoding", message)]
    assert result.imported == 1
    assert [message_id for _, message_id, _ in any_store.events_after("ada", [], 0)] == ["m3"]
