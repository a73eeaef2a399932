"""Unsubscribe tokens: round trip, forgery, tampering, secrets."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.core.problems import JourneyError
from runner.delivery.unsubscribe import (
    DEV_SECRET,
    InvalidToken,
    load_secret,
    make_token,
    unsubscribe_url,
    verify_token,
)

SECRET = b"0123456789abcdef-test-secret"


def test_round_trip() -> None:
    token = make_token(SECRET, "ada", "onboarding")
    assert verify_token(SECRET, token) == ("ada", "onboarding")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


@given(st.text(min_size=1), st.text(min_size=1))
def test_round_trip_any_ids(contact_id: str, list_id: str) -> None:
    assert verify_token(SECRET, make_token(SECRET, contact_id, list_id)) == (contact_id, list_id)


def test_other_secret_is_rejected() -> None:
    token = make_token(b"another-secret-of-enough-length", "ada", "onboarding")
    with pytest.raises(InvalidToken):
        verify_token(SECRET, token)


def test_forged_payload_is_rejected() -> None:
    genuine = make_token(SECRET, "ada", "onboarding")
    other = make_token(SECRET, "bob", "onboarding")
    forged = other.split(".")[0] + "." + genuine.split(".")[1]  # bob's payload, ada's mac
    with pytest.raises(InvalidToken):
        verify_token(SECRET, forged)


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_truncated_token_is_rejected(cut: int) -> None:
    token = make_token(SECRET, "ada", "onboarding")
    with pytest.raises(InvalidToken):
        verify_token(SECRET, token[:-cut])


@given(st.integers(min_value=0), st.sampled_from("AZaz09-_."))
def test_any_single_character_change_is_rejected(position: int, replacement: str) -> None:
    token = make_token(SECRET, "ada", "onboarding")
    position %= len(token)
    if token[position] == replacement:
        return
    altered = token[:position] + replacement + token[position + 1 :]
    try:
        result = verify_token(SECRET, altered)
    except InvalidToken:
        return
    # base64 padding bits can absorb a change in the last character without changing the bytes
    assert result == ("ada", "onboarding")


@pytest.mark.parametrize("garbage", ["", ".", "abc", "a.b.c", "!!!.???", "e30.e30"])
def test_garbage_is_rejected(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        verify_token(SECRET, garbage)


def test_invalid_token_is_a_journey_error() -> None:
    assert issubclass(InvalidToken, JourneyError)


def test_url_keeps_existing_query() -> None:
    token = make_token(SECRET, "ada", "news")
    url = unsubscribe_url("https://acme.test/unsubscribe?lang=tr", token)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("https://acme.test/unsubscribe?")
    assert query == {"lang": ["tr"], "token": [token]}
    assert verify_token(SECRET, query["token"][0]) == ("ada", "news")


def test_secret_from_environment() -> None:
    assert load_secret("MY_SECRET", environ={"MY_SECRET": "s" * 32}) == b"s" * 32


def test_missing_secret_is_an_error_for_smtp() -> None:
    with pytest.raises(JourneyError, match="MY_SECRET is not set"):
        load_secret("MY_SECRET", transport_url="smtp://relay:25", environ={})


@pytest.mark.parametrize("transport", ["outbox:outbox", "console", "memory"])
def test_dev_secret_only_for_local_transports(transport: str) -> None:
    assert load_secret("MY_SECRET", transport_url=transport, environ={}) == DEV_SECRET


def test_short_secret_is_refused() -> None:
    with pytest.raises(JourneyError, match="too short"):
        load_secret("MY_SECRET", environ={"MY_SECRET": "short"})
