"""The store's value codec: instants keep their order as text, and the merge
patch the store writes with SQLite's json_patch reproduces the engine's change."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.store.codec import from_db_time, from_json, merge_patch, to_db_time, to_json

keys = st.text(alphabet="abcdefgh._", min_size=1, max_size=4)
scalars = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=6), st.booleans())
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)), max_leaves=8)
documents = st.dictionaries(keys, values, max_size=5)


@given(documents, documents)
def test_json_patch_of_merge_patch_gives_the_new_document(before, after):
    conn = sqlite3.connect(":memory:")
    patched = conn.execute("SELECT json_patch(?, ?)",
                           (to_json(before), to_json(merge_patch(before, after)))).fetchone()[0]
    assert json.loads(patched) == after


instants = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31),
                        timezones=st.sampled_from([UTC, timezone(timedelta(hours=3)),
                                                   timezone(timedelta(hours=-9, minutes=-30))]))


@given(instants, instants)
def test_text_order_is_time_order(a, b):
    assert (to_db_time(a) < to_db_time(b)) == (a < b)
    assert from_db_time(to_db_time(a)) == a


def test_naive_instants_are_refused():
    with pytest.raises(ValueError):
        to_db_time(datetime(2026, 3, 2, 9))


def _plain_db_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


@given(st.lists(instants, min_size=1, max_size=6))
def test_remembered_db_times_are_the_plain_conversion(values):
    """to_db_time remembers UTC instants' texts: asked again (or for an equal instant in
    another zone), it still gives exactly the plain conversion."""
    for value in values + [v.astimezone(UTC) for v in values] + values:
        assert to_db_time(value) == _plain_db_time(value)


def test_remembered_db_times_keep_a_dst_fold_apart():
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    first, second = datetime(2026, 11, 1, 1, 30, tzinfo=zone), datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=zone)
    assert first == second  # one wall time (the same zone compares wall times): one dict key
    assert [to_db_time(first), to_db_time(second), to_db_time(first)] == [
        "2026-11-01T05:30:00.000000+00:00", "2026-11-01T06:30:00.000000+00:00", "2026-11-01T05:30:00.000000+00:00"]


def test_a_naive_instant_is_refused_after_its_aware_twin_was_remembered():
    to_db_time(datetime(2026, 3, 2, 9, tzinfo=UTC))
    with pytest.raises(ValueError):
        to_db_time(datetime(2026, 3, 2, 9))


odd_scalars = st.one_of(scalars, st.none(), st.floats(allow_nan=True, allow_infinity=True), st.text(),
                        st.datetimes(timezones=st.just(UTC)), st.decimals(allow_nan=False))
odd_values = st.recursive(odd_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=10)


@given(odd_values)
def test_to_json_is_json_dumps_with_the_store_options(value):
    """to_json reuses one C encoder: the text is json.dumps's, for any value (floats, text
    with surrogates and quotes, values json cannot encode given as their str)."""
    plain = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)
    assert to_json(value) == plain
    assert to_json(value) == plain  # and again: the encoder keeps nothing from one value to the next


@given(st.lists(st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                          st.text(max_size=4)), min_size=1, max_size=6))
def test_null_and_bool_adapters_bind_what_sqlite3_binds_without_them(values):
    """codec registers adapters for None and bools (sqlite3 formats two AttributeErrors per
    such parameter without one): every value is stored as the plain binding stores it."""
    import runner.store.codec  # noqa: F401 - registers them

    def stored() -> list[tuple[str, object]]:
        conn = sqlite3.connect(":memory:")
        conn.execute(f"CREATE TABLE t ({', '.join(f'c{n}' for n in range(len(values)))})")
        conn.execute(f"INSERT INTO t VALUES ({', '.join('?' * len(values))})", values)
        row = conn.execute(f"SELECT {', '.join(f'typeof(c{n}), c{n}' for n in range(len(values)))} FROM t").fetchone()
        conn.execute("UPDATE t SET c0 = ? WHERE c0 IS ?", (values[0], values[0]))  # a parameter compared, too
        return list(row) + [conn.execute("SELECT total_changes()").fetchone()[0]]

    adapted = stored()
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)] is not None
    saved = {key: sqlite3.adapters.pop((kind, sqlite3.PrepareProtocol)) for kind in (type(None), bool)
             for key in [(kind, sqlite3.PrepareProtocol)]}
    try:
        assert stored() == adapted
    finally:
        sqlite3.adapters.update(saved)


json_texts = st.one_of(
    odd_values.map(lambda value: json.dumps(value, default=str)),  # spaces after separators, NaN, Infinity
    odd_values.map(lambda value: json.dumps(value, separators=(",", ":"), default=str)),
    st.builds(lambda text, before, after: before + text + after,
              odd_values.map(lambda value: json.dumps(value, default=str)), st.sampled_from(["", " ", "\n", "\t "]),
              st.sampled_from(["", " ", "\n", "x", "}", ",1"])),
    st.text(max_size=12))


@given(json_texts)
def test_from_json_is_json_loads(text):
    """from_json runs json's scanner itself when the text is one value and nothing else; any
    other text (whitespace around it, trailing data, not JSON) goes to json.loads: the same
    value, or the same error."""
    def outcome(work):
        try:
            return ("value", work(text))
        except ValueError as error:
            return ("error", type(error), str(error))

    plain = outcome(json.loads)
    assert repr(outcome(from_json)) == repr(plain)  # repr: NaN equals itself there
