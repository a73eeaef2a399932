"""Messages: structure, headers parsed back, determinism, injection safety."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy, utils

import pytest

from runner.delivery.message import InvalidAddress, build_message, journey_key, message_id_for
from runner.delivery.render import RenderedEmail
from runner.delivery.transports import PermanentError

RENDERED = RenderedEmail(subject="Welcome, Ada", html="<p>Hello <b>Ada</b></p>", text="Hello Ada")
DATE = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LONG_URL = "https://acme.test/unsubscribe?token=" + "A" * 120 + "." + "b" * 43


def build(**overrides: object):
    arguments = dict(
        to="ada@example.com",
        sender="Acme Cloud <hello@acme.test>",
        reply_to="support@acme.test",
        idempotency_key="ada:onboarding:1/1/welcome",
        list_id="onboarding",
        unsubscribe_url=LONG_URL,
        unsubscribe_mailto="unsubscribe@acme.test",
        date=DATE,
    )
    arguments.update(overrides)
    rendered = arguments.pop("rendered", RENDERED)
    return build_message(rendered, **arguments)  # type: ignore[arg-type]


def parsed(message):
    """What a receiver sees: the bytes on the wire, parsed back."""
    return message_from_bytes(message.as_bytes(), policy=policy.default)


def test_structure_and_headers() -> None:
    received = parsed(build())
    assert received.get_content_type() == "multipart/alternative"
    parts = list(received.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]  # text first
    assert [p["MIME-Version"] for p in parts] == [None, None] and received["MIME-Version"] == "1.0"
    assert parts[0].get_content().strip() == "Hello Ada"
    assert parts[1].get_content().strip() == "<p>Hello <b>Ada</b></p>"
    assert received["From"].addresses[0].addr_spec == "hello@acme.test"
    assert received["From"].addresses[0].display_name == "Acme Cloud"
    assert str(received["To"]) == "ada@example.com"
    assert str(received["Reply-To"]) == "support@acme.test"
    assert str(received["Subject"]) == "Welcome, Ada"
    assert received["Date"].datetime == DATE
    assert str(received["List-Id"]) == "<onboarding.acme.test>"
    assert str(received["X-Journey-Key"]) == "ada:onboarding:1/1/welcome"


def test_rfc8058_one_click_headers() -> None:
    message = build()
    raw = message.as_bytes()
    # The long URL is written whole on one line: folding would break it.
    assert f"List-Unsubscribe: <{LONG_URL}>, <mailto:unsubscribe@acme.test?subject=unsubscribe>".encode() in raw
    received = parsed(message)
    assert str(received["List-Unsubscribe"]) == f"<{LONG_URL}>, <mailto:unsubscribe@acme.test?subject=unsubscribe>"
    assert str(received["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert all(len(line) <= 998 for line in raw.split(b"\n"))


def test_one_click_needs_https() -> None:
    received = parsed(build(unsubscribe_url="http://acme.test/u?token=t", unsubscribe_mailto=None))
    assert str(received["List-Unsubscribe"]) == "<http://acme.test/u?token=t>"
    assert received["List-Unsubscribe-Post"] is None


def test_message_id_is_deterministic() -> None:
    first, again = build(), build()
    other = build(idempotency_key="ada:onboarding:1/1/nudge")
    assert first["Message-ID"] == again["Message-ID"] == message_id_for("ada:onboarding:1/1/welcome", "acme.test")
    assert first["Message-ID"] != other["Message-ID"]
    # the same message when rebuilt, but never the same boundary: contact data cannot forge one
    assert first.parsed.get_content_type() == again.parsed.get_content_type() == "multipart/alternative"
    assert first.parsed.get_boundary() != again.parsed.get_boundary()
    assert first.as_bytes().replace(first.parsed.get_boundary().encode(), b"B") == \
        again.as_bytes().replace(again.parsed.get_boundary().encode(), b"B")
    assert str(parsed(first)["Message-ID"]).endswith("@acme.test>")


def test_header_injection_from_subject_and_names() -> None:
    hostile = RenderedEmail(subject="Hi\r\nBcc: victim@evil.test\nX-Evil: 1", html="<p>x</p>", text="x")
    message = build(rendered=hostile, sender="Acme\r\n Team <hello@acme.test>", to="Ada\r\nLovelace <ada@example.com>")
    received = parsed(message)
    assert received["Bcc"] is None and received["X-Evil"] is None
    assert str(received["Subject"]) == "Hi Bcc: victim@evil.test X-Evil: 1"
    assert received["From"].addresses[0].display_name == "Acme Team"
    assert received["To"].addresses[0].display_name == "Ada Lovelace"
    assert [a.addr_spec for a in received["To"].addresses] == ["ada@example.com"]
    with pytest.raises(InvalidAddress):  # an address list smuggled into a name is refused
        build(sender="Acme\r\nBcc: a@evil.test <hello@acme.test>")


def test_unicode_subject_and_body_survive() -> None:
    rendered = RenderedEmail(subject="Hoş geldin, Ayşe — مرحبا " * 3, html="<p>Merhaba Ayşe</p>", text="Merhaba Ayşe")
    received = parsed(build(rendered=rendered))
    assert str(received["Subject"]) == ("Hoş geldin, Ayşe — مرحبا " * 3).strip()
    assert received.get_body(("plain",)).get_content().strip() == "Merhaba Ayşe"


def test_unusual_keys_are_carried_exactly() -> None:
    key = "çağla ü:onboarding:1/1/welcome"
    message = build(idempotency_key=key)
    assert journey_key(parsed(message)) == key
    assert message.as_bytes().isascii()


@pytest.mark.parametrize("to", ["", "not-an-address", "a@example.com, b@example.com", "a@example.com\nBcc: b@x.test"])
def test_bad_recipient_is_permanent(to: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        build(to=to)
    assert isinstance(caught.value, PermanentError)


def test_naive_date_is_refused() -> None:
    with pytest.raises(ValueError):
        build(date=datetime(2026, 3, 2, 9, 30))


def test_long_ascii_subject_is_folded_and_reads_back_whole() -> None:
    subject = "Your weekly digest: " + " ".join(f"topic{n}" for n in range(30))
    message = build(rendered=RenderedEmail(subject=subject, html="<p>x</p>", text="x"))
    assert all(len(line) <= 78 for line in message.as_bytes().split(b"\n") if line.startswith((b"Subject", b" ")))
    assert str(parsed(message)["Subject"]) == subject


def test_subject_that_looks_like_an_encoded_word_is_carried_literally() -> None:
    subject = "Hello =?utf-8?q?not=20a=20word?="
    assert str(parsed(build(rendered=RenderedEmail(subject=subject, html="<p>x</p>", text="x")))["Subject"]) == subject


@pytest.mark.parametrize("name", ['Acme, "Cloud" Team', "Ayşe Yılmaz", "Dr. O'Neil (Support)"])
def test_display_names_with_specials_or_unicode_read_back(name: str) -> None:
    sender = utils.formataddr((name, "hello@acme.test"))  # how an operator would quote it in project.yaml
    address = parsed(build(sender=sender))["From"].addresses[0]
    assert (address.display_name, address.addr_spec) == (name, "hello@acme.test")


def test_bodies_read_back_exactly_whatever_their_lines() -> None:
    text = "trailing spaces   \n" + "x" * 300 + "\n. a dot line\nFrom the start\ttab\nünïcode ✓ \u2028 \x0c\n"
    html = "<p>" + "long " * 200 + "</p>\r\n<p>crlf</p>"
    received = parsed(build(rendered=RenderedEmail(subject="s", html=html, text=text)))
    assert received.get_body(("plain",)).get_content() == text
    assert received.get_body(("html",)).get_content() == html.replace("\r\n", "\n") + "\n"
    raw = build(rendered=RenderedEmail(subject="s", html=html, text=text)).as_bytes()
    body = raw.partition(b"\n\n")[2]
    assert raw.isascii() and all(len(line) <= 78 for line in body.split(b"\n"))  # quoted-printable keeps lines short


def test_short_ascii_bodies_stay_readable_7bit() -> None:
    raw = build().as_bytes()
    assert b"Content-Transfer-Encoding: 7bit" in raw and b"\n\nHello Ada\n" in raw


def test_wire_bytes_use_crlf_everywhere() -> None:
    wire = build().wire_bytes()
    assert b"\r\n" in wire and b"\n" not in wire.replace(b"\r\n", b"")


def test_non_ascii_address_is_refused() -> None:
    with pytest.raises(InvalidAddress):
        build(to="çağla@example.com")


def test_quoted_local_part_is_accepted() -> None:
    assert parsed(build(to='"ada lovelace"@example.com'))["To"].addresses[0].username == "ada lovelace"


def test_a_boundary_found_in_a_part_is_drawn_again(monkeypatch) -> None:
    """A random boundary that happens to occur in the body is never used."""
    draws = iter(["a" * 32, "b" * 32])
    monkeypatch.setattr("runner.delivery.message.secrets.token_hex", lambda n: next(draws))
    hostile = RenderedEmail(subject="Hi", html="<p>x</p>", text="--=_jr_" + "a" * 32 + "\n")
    received = parsed(build(rendered=hostile))
    assert received.get_boundary() == "=_jr_" + "b" * 32
    assert [p.get_content_type() for p in received.iter_parts()] == ["text/plain", "text/html"]
