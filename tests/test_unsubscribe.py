"""Unsubscribe tokens: round trip, forgery, tampering, secrets, topics, tokens from before topics."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
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
    unsubscribe_path,
    unsubscribe_url,
    verify_token,
)

SECRET = b"0123456789abcdef-test-secret"


def test_round_trip() -> None:
    token = make_token(SECRET, "ada", "onboarding")
    assert verify_token(SECRET, token) == ("ada", "onboarding", "*")  # no topic named: every marketing topic
    assert verify_token(SECRET, make_token(SECRET, "ada", "onboarding", "newsletter")).topic == "newsletter"
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


@given(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1))
def test_round_trip_any_ids(contact_id: str, list_id: str, topic: str) -> None:
    assert verify_token(SECRET, make_token(SECRET, contact_id, list_id, topic)) == (contact_id, list_id, topic)


def _token_before_topics(secret: bytes, contact_id: str, list_id: str) -> str:
    """A token as the release before topics made it (``<payload>.<mac>``, the v1 prefix)."""
    payload = json.dumps([contact_id, list_id], separators=(",", ":")).encode()
    mac = hmac.new(secret, b"journey-unsubscribe:v1:" + payload, hashlib.sha256).digest()
    return ".".join(base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in (payload, mac))


def test_a_token_from_before_topics_stays_valid_and_means_every_marketing_topic() -> None:
    assert verify_token(SECRET, _token_before_topics(SECRET, "ada", "onboarding")) == ("ada", "onboarding", "*")
    with pytest.raises(InvalidToken):
        verify_token(b"another-secret-of-enough-length", _token_before_topics(SECRET, "ada", "onboarding"))


def test_a_v1_mac_does_not_sign_a_v2_payload_and_back() -> None:
    """The versioned prefix binds a mac to its format: a v1 mac over a v2 payload (or the
    v2 mac without its version) is refused, so no token can be moved between formats."""
    v2 = make_token(SECRET, "ada", "onboarding", "newsletter")
    _, payload, mac = v2.split(".")
    with pytest.raises(InvalidToken):
        verify_token(SECRET, f"{payload}.{mac}")  # the v2 mac read as a v1 token
    old = _token_before_topics(SECRET, "ada", "onboarding")
    with pytest.raises(InvalidToken):
        verify_token(SECRET, "v2." + old)  # a v1 mac read as a v2 token
    with pytest.raises(InvalidToken):
        verify_token(SECRET, "v3." + old)


def test_a_topic_cannot_be_swapped_into_a_signed_token() -> None:
    genuine = make_token(SECRET, "ada", "onboarding", "newsletter")
    other = make_token(SECRET, "ada", "onboarding", "receipts")
    forged = ".".join([*other.split(".")[:2], genuine.split(".")[2]])  # receipts payload, newsletter's mac
    with pytest.raises(InvalidToken):
        verify_token(SECRET, forged)


def test_other_secret_is_rejected() -> None:
    token = make_token(b"another-secret-of-enough-length", "ada", "onboarding")
    with pytest.raises(InvalidToken):
        verify_token(SECRET, token)


def test_forged_payload_is_rejected() -> None:
    genuine = make_token(SECRET, "ada", "onboarding")
    other = make_token(SECRET, "bob", "onboarding")
    forged = ".".join([*other.split(".")[:2], genuine.split(".")[2]])  # bob's payload, ada's mac
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
    assert result == ("ada", "onboarding", "*")


@pytest.mark.parametrize("garbage", ["", ".", "abc", "a.b.c", "v2.a.b", "v2..", "!!!.???", "e30.e30", "v2.e30.e30", "a.b.c.d"])
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
    assert verify_token(SECRET, query["token"][0]) == ("ada", "news", "*")


def test_the_served_path_is_the_path_of_the_url_sent() -> None:
    url = unsubscribe_url("https://acme.test/email/unsubscribe?lang=tr", make_token(SECRET, "ada", "news"))
    assert unsubscribe_path("https://acme.test/email/unsubscribe?lang=tr") == urlsplit(url).path == "/email/unsubscribe"
    assert unsubscribe_path("https://acme.test") == "/"


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
