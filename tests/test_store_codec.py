"""The store's value codec: instants keep their order as text, and the merge
patch the store writes with SQLite's json_patch reproduces the engine's change."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.store.codec import from_db_time, merge_patch, to_db_time, to_json

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
