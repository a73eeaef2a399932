"""The shortcuts of the send path give what the plain way gives (docs/architecture.md, cache inventory).

- ``journey simulate`` builds each send as a draft (``Delivery.draft``): every
  template rendered, every header built and checked, the bodies not
  MIME-encoded. Finished, a draft is byte for byte the message production
  builds for the same decision, and it fails exactly where building fails.
- Unsubscribe links parse the project's base URL once; tokens reuse one JSON
  encoder and the one-shot HMAC; a ``TokenMaker`` copies one keyed HMAC per token.
- A subject without ``{`` is not rendered: its words are what Jinja prints.
- The timeline works out each (instant, zone) local time once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from email import utils

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_message import RENDERED
from test_tick_kit import REPO

from runner.delivery import message as M
from runner.delivery.dispatch import Delivery
from runner.delivery.message import (
    build_message,
    clean_header_text,
    draft_message,
    encode_key,
    list_id_header,
    message_id_for,
    parse_address,
)
from runner.delivery.render import RenderedEmail, Renderer, RenderError
from runner.delivery.unsubscribe import _DOMAIN_V2, TokenMaker, UnsubscribeLinks, make_token, unsubscribe_url
from runner.language.loader import load_project
from runner.simulation import timeline
from runner.simulation.rendering import SendRenderer
from runner.simulation.simulate import simulate
from runner.simulation.testcontacts import load_test_contacts

START = datetime(2026, 1, 5, tzinfo=UTC)
BOUNDARY = re.compile(rb'boundary="([^"]+)"')


def boundary_of(data: bytes) -> str:
    found = BOUNDARY.search(data)
    assert found is not None
    return found.group(1).decode()


@pytest.fixture(scope="module")
def sample_simulation():
    loaded = load_project(REPO)
    contacts = load_test_contacts(REPO / "examples" / "contacts.yaml")
    simulation = simulate(loaded.project, loaded.journeys, contacts, START, START + timedelta(days=60))
    return loaded.project, simulation


def test_simulated_drafts_finish_as_productions_messages(sample_simulation):
    project, simulation = sample_simulation
    production = Delivery(project, "outbox:outbox", connect=False)
    journeys = {(j.id, j.version): j for j in simulation.journeys}
    renderer = SendRenderer(project, simulation.journeys)
    sends = [d for d in simulation.decisions if d.action == "send"]
    assert len(sends) >= 40
    for decision in sends:
        simulated, failure = renderer.build(decision)
        assert failure is None, failure
        assert simulated.message is None and simulated.draft is not None  # the bodies were not encoded
        message = production.build(decision, journeys[decision.journey, decision.version]).message
        assert simulated.draft.finish(boundary_of(message.data)).data == message.data
        assert (simulated.subject, simulated.draft.subject) == (message.subject, message.subject)
        parts = [part.get_content() for part in message.parsed.iter_parts()]
        assert parts == [simulated.draft.text.removesuffix("\n") + "\n", simulated.draft.html.removesuffix("\n") + "\n"]


def plain_build_message(rendered, boundary: str, *, to, sender, reply_to, idempotency_key, list_id,
                        unsubscribe_url, unsubscribe_mailto, date) -> bytes:
    """build_message as it was before drafts, in one piece (with a given boundary)."""
    if date.tzinfo is None:
        raise ValueError("date must be timezone-aware")
    sender_box = parse_address(sender, role="sender")
    recipient = parse_address(to, role="recipient")
    domain = sender_box.domain
    subject = clean_header_text(rendered.subject)
    headers = [("From", sender_box.header_value()), ("To", recipient.header_value())]
    if reply_to:
        headers.append(("Reply-To", parse_address(reply_to, role="reply-to").header_value()))
    headers += [("Subject", M._text_header("Subject", subject)), ("Date", utils.format_datetime(date)),
                ("Message-ID", message_id_for(idempotency_key, domain)), ("List-Id", list_id_header(list_id, domain)),
                ("List-Unsubscribe", M._list_unsubscribe(unsubscribe_url, unsubscribe_mailto))]
    if unsubscribe_url.lower().startswith("https://"):
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    parts = [M._text_part(rendered.text, "plain"), M._text_part(rendered.html, "html")]
    headers += [(M.KEY_HEADER, encode_key(idempotency_key)), ("MIME-Version", "1.0"),
                ("Content-Type", f'multipart/alternative;{M.LINESEP} boundary="{boundary}"')]
    lines = [f"{name}: {value}" for name, value in headers]
    M._check_header_lines(lines)
    lines += ["", f"--{boundary}", parts[0], f"--{boundary}", parts[1], f"--{boundary}--", ""]
    return M.LINESEP.join(lines).encode("ascii")


BODIES = [("Hello Ada", "<p>Hello</p>"), ("Grüße\r\nzwei Zeilen\n", "<p>" + "x" * 200 + "</p>"), ("", ""),
          ("\x00 nul\tand tab", "=?utf-8?q?x?= <b>é</b>\r"), ("a\u2028b\x0c", "line\n" * 50)]
SUBJECTS = ["Welcome, Ada", "Subject ü " + "w" * 70, "=?utf-8?q?not-a-word?=", "x" * 300, "a\nb"]


@pytest.mark.parametrize(("text", "html"), BODIES)
@pytest.mark.parametrize("subject", SUBJECTS)
def test_a_draft_finishes_as_the_plain_builder_wrote(subject, text, html):
    rendered = RenderedEmail(subject, html, text)
    for arguments in (_arguments(), {**_arguments(), "reply_to": None, "unsubscribe_mailto": None,
                                     "unsubscribe_url": "http://a.test/u?token=" + "t" * 150,
                                     "sender": "Ünïcode Name <hello@acme.test>"}):
        expected = plain_build_message(rendered, "=_jr_fixed", **arguments)
        assert draft_message(rendered, **arguments).finish("=_jr_fixed").data == expected
        message = build_message(rendered, **arguments)
        assert message.data == plain_build_message(rendered, boundary_of(message.data), **arguments)


@pytest.mark.parametrize("change", [
    {"to": "not an address"}, {"to": "a@b.c, d@e.f"}, {"sender": "Acme <hello@>"}, {"reply_to": "nobody"},
    {"unsubscribe_mailto": "@example.com"}, {"list_id": "x" * 2000}, {"date": datetime(2026, 3, 2)},
    {"rendered": RenderedEmail("Hi", "<p>\ud800</p>", "text")}, {"rendered": RenderedEmail("Hi", "ok", "\udfff")},
    {"rendered": RenderedEmail("Hi \ud800", "ok", "ok")}, {"unsubscribe_url": "https://a.test/u?t=" + "x" * 1200},
])
def test_a_draft_fails_exactly_where_building_fails(change):
    arguments = {**_arguments(), **change}
    rendered = arguments.pop("rendered", RENDERED)
    with pytest.raises(Exception) as built:
        plain_build_message(rendered, "=_jr_fixed", **arguments)
    with pytest.raises(Exception) as drafted:
        draft_message(rendered, **arguments)
    assert (type(drafted.value), str(drafted.value)) == (type(built.value), str(built.value))


def _arguments() -> dict:
    return dict(to="ada@example.com", sender="Acme Cloud <hello@acme.test>", reply_to="support@acme.test",
                idempotency_key="ada:onboarding:1/1/welcome", list_id="onboarding",
                unsubscribe_url="https://acme.test/u?token=abc", unsubscribe_mailto="unsubscribe@acme.test",
                date=datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


@pytest.mark.parametrize("base", [
    "https://localhost/unsubscribe", "https://acme.test/unsubscribe?lang=tr", "https://acme.test/u?token=old&a=1",
    "https://acme.test/u?a=1&a=2&b=#top", "http://acme.test:8080/p/a%20th?x=%C3%BC", "https://acme.test/?=v&k",
    "https://user@acme.test/u;params?q=1", "/relative/path?q=1", "", "https://a.test/token=0TOKEN0?x=1",
    "https://a.test/u?x=1#token=0TOKEN0",
])
def test_unsubscribe_links_are_the_plain_url(base):
    links = UnsubscribeLinks(base)
    for contact, journey in (("ada", "onboarding"), ("çağrı ü", "winback"), ('q"uote', "a/b")):
        token = make_token(b"0123456789abcdef0123", contact, journey)
        assert links(token) == unsubscribe_url(base, token)
    for token in ("not a token", "a+b/c=", "ü.x", "0TOKEN0"):  # not make_token's: encoded the plain way
        assert links(token) == unsubscribe_url(base, token)


def plain_token(secret: bytes, contact: str, journey: str, topic: str = "*") -> str:
    """make_token as it was: a JSON encoder per call and hmac.new (v2: the topic in the payload)."""
    payload = json.dumps([contact, journey, topic], separators=(",", ":"), ensure_ascii=False).encode()
    mac = hmac.new(secret, _DOMAIN_V2 + payload, hashlib.sha256).digest()
    return f"v2.{_b64(payload)}.{_b64(mac)}"


def outcome(work, *args):
    try:
        return work(*args)
    except Exception as error:  # noqa: BLE001 - the same failure is part of the same answer
        return type(error)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=())), st.text(), st.binary(min_size=16, max_size=64))
def test_tokens_are_the_plain_computation(contact, journey, secret):
    assert outcome(make_token, secret, contact, journey) == outcome(plain_token, secret, contact, journey)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=16, max_size=100),
       st.lists(st.tuples(st.text(alphabet=st.characters(blacklist_categories=())), st.text(), st.text()),
                min_size=1, max_size=5))
def test_a_token_maker_gives_the_plain_tokens(secret, asks):
    """One TokenMaker (a keyed HMAC copied per token) for many tokens, keys longer than a
    SHA-256 block included: each is the plain token, its state carried into none of the next."""
    tokens = TokenMaker(secret)
    for contact, journey, topic in asks + asks:
        assert outcome(tokens, contact, journey, topic) == outcome(plain_token, secret, contact, journey, topic)


def test_a_lone_surrogate_fails_both_ways():
    assert outcome(make_token, b"k" * 16, "\ud800", "j") is outcome(plain_token, b"k" * 16, "\ud800", "j") \
        is UnicodeEncodeError
    assert outcome(TokenMaker(b"k" * 16), "\ud800", "j") is UnicodeEncodeError


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


LITERAL_SUBJECTS = ["Welcome", "", "  padded  ", "two\nlines\n", "crlf\r\nand\rcr", "tabs\tand\x0bvt\x0cff",
                    "unicode\u2028line\u00a0nbsp\x1cfs", "percent % hash # close } and %} #}", "ends with newline\n\n",
                    "Grüße aus İstanbul 🎉", "x" * 5000]


@pytest.mark.parametrize("subject", LITERAL_SUBJECTS)
def test_a_literal_subject_is_what_jinja_prints(subject, tmp_path):
    renderer = Renderer(tmp_path)
    assert renderer.render_subject(subject, {}) == " ".join(renderer.render_string(subject, {}).split())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="{", blacklist_categories=("Cs",))))
def test_any_literal_subject_is_what_jinja_prints(subject):
    renderer = _RENDERER
    assert renderer.render_subject(subject, {}) == " ".join(renderer.render_string(subject, {}).split())


_RENDERER = Renderer(REPO / "templates")


def test_a_subject_over_the_size_limit_still_fails(tmp_path):
    renderer = Renderer(tmp_path, size_limit=100)
    assert renderer.render_subject("y" * 100, {}) == "y" * 100
    with pytest.raises(RenderError, match="size limit"):
        renderer.render_subject("y" * 101, {})
    with pytest.raises(RenderError, match="undefined"):
        renderer.render_subject("{{ missing }}", {})


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()))
def test_date_headers_are_format_datetime(date):
    assert M._date_header(date.replace(tzinfo=None), date.utcoffset()) == utils.format_datetime(date)


def test_timeline_local_times_are_worked_out_per_record(sample_simulation):
    project, simulation = sample_simulation
    records = timeline.timeline_records(simulation, project, render_subjects=False)
    assert len({(r.at, r.timezone) for r in records}) < len(records)  # the cache is used
    assert [r.local_time for r in records] == [timeline.local_iso(r.at, r.timezone) for r in records]


DICT_NAMES = sorted(set(dir(dict)) | set(dir(type)) | {"first_name", "email", "", "items ", "__dict__", "mro"})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.one_of(st.sampled_from(DICT_NAMES), st.text(max_size=5)), st.integers(), max_size=6),
       st.one_of(st.sampled_from(DICT_NAMES), st.text(max_size=5)))
def test_a_dicts_attribute_is_what_the_sandbox_answers(values, name):
    """GuardedEnvironment.getattr gives a plain dict's item without the sandbox's AttributeError
    first: the same value as the sandbox's getattr, whether the name is a key, a dict method
    (the method wins, as in Jinja), a key and a method at once, or neither (undefined)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = Renderer(REPO / "templates").env
    for obj in (values, dict(values), type("Sub", (dict,), {})(values)):
        ours = environment.getattr(obj, name)
        plain = ImmutableSandboxedEnvironment.getattr(environment, obj, name)
        if isinstance(plain, jinja2.Undefined):
            assert type(ours) is type(plain) and ours._undefined_hint == plain._undefined_hint \
                and ours._undefined_name == plain._undefined_name and ours._undefined_obj is plain._undefined_obj
        else:
            assert ours == plain and type(ours) is type(plain)


def test_a_dicts_items_in_a_template_is_still_the_method():
    renderer = Renderer(REPO / "templates")
    context = {"contact": {"items": "key", "first_name": "Ada"}}
    assert renderer.render_string("{{ contact.first_name }} {{ contact.items() | list | length }}", context) == "Ada 2"
