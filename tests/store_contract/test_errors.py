"""What a failing database looks like to a caller, whichever the backend: the ``StoreError``
family (a ``JourneyError``: one clear line in the CLI), never the driver's own exception."""

from __future__ import annotations

import socket
from datetime import timedelta

import pg
import pytest

from runner.store import open_store
from runner.store.base import ContactRow
from runner.store.errors import StoreError, StoreReadOnly, StoreUnavailable

from .kit import at, send


def test_a_store_opened_read_only_refuses_every_write_and_still_reads(location, store):
    store.write_contacts([ContactRow("ada", {"plan": "free"})], at(0))
    reader = open_store(location, read_only=True)
    try:
        assert reader.read_only and not store.read_only
        assert reader.load_contact_state("ada").contact.attributes == {"plan": "free"}
        for write in (lambda: reader.acquire_lease("tick", "me", timedelta(minutes=1), at(0)),
                      lambda: reader.claim_send(send(), "r"),
                      lambda: reader.write_contacts([ContactRow("bob", {})], at(1))):
            with pytest.raises(StoreReadOnly):
                write()
        assert reader.in_doubt_sends(at(0), mark=False) == []  # what read-only commands ask
    finally:
        reader.close()
    assert sorted(store.load_contact_states(["ada", "bob"])) == ["ada"]


def test_opening_read_only_what_was_never_created_is_a_store_error(fresh_location):
    with pytest.raises(StoreError):
        open_store(fresh_location, read_only=True).close()


def test_a_database_that_cannot_be_reached_is_store_unavailable(location, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if location.startswith("postgresql://"):
        unreachable = pg.schema_url("nowhere", f"postgresql://journey:secret-pw@127.0.0.1:{port}/postgres")
    else:
        unreachable = str(tmp_path / "no" / "such" / "folder" / "journey.db")
    with pytest.raises(StoreUnavailable) as raised:
        open_store(unreachable).close()
    assert "secret-pw" not in str(raised.value)
    assert str(raised.value).startswith("database error: ")


def test_the_location_names_the_database_without_its_password(location, store):
    if not location.startswith("postgresql://"):
        assert store.location == location
        return
    scheme, _, rest = location.partition("://")
    user, _, host = rest.partition("@")
    with_password = f"{scheme}://{user.partition(':')[0]}:hunter2-pw@{host}"  # trust auth: any password opens it
    opened = open_store(with_password)
    try:
        assert "hunter2" not in opened.location and ":***@" in opened.location
    finally:
        opened.close()
