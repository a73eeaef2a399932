"""Text parts derived from HTML keep their links; shapes give the bytes the long way gives.

The long way is what every message used to cost: render the HTML, inline its
CSS, convert it to text. Messages now take it only when a template's shape
cannot be reused (see ``runner.delivery.htmltext``); these tests hold the
shortcut to the long way's bytes, links aside.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import css_inline
import inscriptis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tick_kit import REPO, copy_sample

from runner.delivery.htmltext import html_to_text
from runner.delivery.message import build_message
from runner.delivery.render import RenderedEmail, Renderer, locale_context
from runner.production.demo import DEMO_START, run_demo
from runner.simulation.testcontacts import load_test_contacts

SAMPLE_TEMPLATES = sorted(p.relative_to(REPO / "templates").as_posix().removesuffix(".html")
                          for p in (REPO / "templates").rglob("*.html")
                          if p.name != "base.html" and not p.name.startswith("footer."))  # partials of base.html
UNSUBSCRIBE = "https://kitebase.test/unsubscribe?token=eyJhZGEiXQ.c2lnbmF0dXJl"
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def sample_contexts() -> list[dict]:
    contacts = load_test_contacts(REPO / "examples" / "contacts.yaml")
    return [_context({**c.attributes, "id": c.id, "timezone": c.timezone}) for c in contacts]


def _context(contact: dict, unsubscribe: str = UNSUBSCRIBE) -> dict:
    return {"contact": contact, "scores": {"engagement": 12}, "step": {"id": "welcome"}, "now": AT,
            "journey": {"id": "onboarding", "version": 2, "name": "Onboarding"},
            "project": {"name": "Kitebase"}, "unsubscribe_url": unsubscribe, "locale": locale_context("en"),
            "event": CART_EVENT}  # what the abandoned-cart templates read (the step's event, see render_context)


# The event of the sample's abandoned-cart journey, as examples/contacts.yaml sends it.
CART_EVENT = {"name": "cart_abandoned", "timestamp": AT, "properties": {
    "cart_id": "c-1042", "plan": "business", "total": 1440.0, "currency": "EUR",
    "url": "https://kitebase.test/checkout/c-1042",
    "items": [{"name": "Kitebase Business (annual seat)", "quantity": 12, "price": 96.0},
              {"name": "Priority support", "quantity": 1, "price": 288.0}]}}


def the_long_way(renderer: Renderer, template: str, context: dict, *, links: bool = True) -> tuple[str, str]:
    """(HTML, text) as every message was made before shapes: render, inline, convert."""
    html = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True).inline(
        renderer._render_file(f"{template}.html", context))
    if (renderer.templates_dir / f"{template}.txt").exists():
        return html, renderer._render_file(f"{template}.txt", context)
    text = html_to_text(html) if links else inscriptis.get_text(html).strip() + "\n"
    return html, text


def message_bytes(html: str, text: str, key: str) -> bytes:
    """The message's bytes, its (random) MIME boundary replaced by a fixed one."""
    data = build_message(RenderedEmail("Hi", html, text), to="ada@example.com", sender="Kitebase <hi@kitebase.test>",
                         reply_to=None, idempotency_key=key, list_id="onboarding", unsubscribe_url=UNSUBSCRIBE,
                         unsubscribe_mailto=None, date=AT).data
    boundary = re.search(rb'boundary="([^"]+)"', data).group(1)
    return data.replace(boundary, b"=_BOUNDARY")


def test_every_sample_message_keeps_its_bytes_except_for_links_in_derived_text():
    renderer = Renderer(REPO / "templates")
    reference = Renderer(REPO / "templates")
    changed = set()
    for template in SAMPLE_TEMPLATES:
        for context in sample_contexts():
            key = f"{context['contact']['id']}:{template}"
            email = renderer.render_email(template, "Hi", context)
            old_html, old_text = the_long_way(reference, template, context, links=False)
            new = message_bytes(email.html, email.text, key)
            if new == message_bytes(old_html, old_text, key):
                continue
            # on purpose: derived text parts gained " (url)" after each link's text
            assert email.html == old_html, template
            hrefs = re.findall(r'href="([^"]*)"', old_html)
            assert hrefs and all(f" ({href.replace('&amp;', '&')})" in email.text for href in hrefs), template
            without_links = email.text
            for href in hrefs:
                without_links = without_links.replace(f" ({href.replace('&amp;', '&')})", "")
            assert without_links == old_text, template
            changed.add(template)
    assert changed == {"onboarding/welcome_newsletter"}  # the only sample template without a .txt


def test_shapes_give_the_long_ways_bytes_for_every_sample_message():
    renderer = Renderer(REPO / "templates")
    reference = Renderer(REPO / "templates")
    for template in SAMPLE_TEMPLATES:
        for context in sample_contexts():
            email = renderer.render_email(template, "Hi", context)
            assert (email.html, email.text) == the_long_way(reference, template, context), template
    assert renderer._shapes._shape.cache_info().currsize >= len(SAMPLE_TEMPLATES)  # the shortcut was taken


def test_derived_text_keeps_links_as_text_and_url():
    html = '<p>Read <a href="https://k.test/a?x=1&amp;y=2">the guide</a>.</p><p><a href="mailto:a@k.test">Write</a></p>'
    assert html_to_text(html) == "Read the guide (https://k.test/a?x=1&y=2).\n\nWrite (mailto:a@k.test)\n"


TRICKY_TEMPLATES = {
    "plain.html": '<html><head><style>p { color: red } .x { font-weight: bold }</style><title>{{ contact.first_name }}'
                  '</title></head><body><p class="x">Hi {{ contact.first_name }}, {{ contact.company }}!</p>'
                  '<p><a href="https://k.test/?n={{ contact.first_name }}&amp;c={{ contact.company }}">Go</a></p>'
                  '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>',
    "table.html": "<table><tr><td>Name</td><td>{{ contact.first_name }}</td></tr>"
                  "<tr><td>{{ contact.company }}</td><td>x</td></tr></table><p>{{ contact.first_name }}</p>",
    "attributes.html": '<style>[title^="A"] { color: blue } .A { color: red }</style>'
                       '<p class="{{ contact.first_name }}" title={{ contact.company }}>{{ contact.first_name }}</p>'
                       "<!-- {{ contact.company }} --><pre>  {{ contact.company }}  </pre>",
    "captures.html": "{% macro hi(n) %}<b>{{ n }}</b>{% endmacro %}{{ hi(contact.first_name) }}"
                     "{% set who %}{{ contact.company }}{% endset %}<p>{{ who|length }} {{ who }}</p>",
    "markup.html": "<p>{{ contact.first_name|safe }} / {{ contact.company|e }}</p>"
                   "{% autoescape false %}<p>{{ contact.company }}</p>{% endautoescape %}",
    "child.html": '{% extends "plain.html" %}',
    "empty.html": "<p>Dear {{ contact.first_name }} {{ contact.company }} team</p><ul><li>{{ contact.company }}</li></ul>",
}
NAMES = st.one_of(
    st.sampled_from(["Ada", "O'Brien", "Ana María", "  Ada  ", "", "A&B", "<i>x</i>", 'say "hi"', "a\nb", "x\ue000y",
                     "\ue0011\ue000", "Zoë\u00a0Z", "#top", "&amp;", "a  b", "\t", "[x]"]),
    st.text(max_size=12),
    st.text(alphabet="&;#<>\"' aAxl1t\u00e9\n", max_size=8),
)


@pytest.fixture(scope="module")
def tricky(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tricky")
    for name, text in TRICKY_TEMPLATES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=NAMES, company=NAMES, template=st.sampled_from(sorted(t.removesuffix(".html") for t in TRICKY_TEMPLATES)))
def test_shapes_give_the_long_ways_bytes_for_any_values(tricky, first, company, template):
    renderer = _shared(tricky)
    context = _context({"first_name": first, "company": company})
    email = renderer.render_email(template, "s", context)
    assert (email.html, email.text) == the_long_way(Renderer(tricky), template, context)


_renderers: dict[Path, Renderer] = {}


def _shared(folder: Path) -> Renderer:
    """One renderer across examples, so shapes made for one value are reused for the next."""
    return _renderers.setdefault(folder, Renderer(folder))


@pytest.mark.parametrize("text_parts", ["as shipped", "derived from the HTML"])
def test_every_sent_text_part_carries_its_unsubscribe_url(tmp_path, text_parts):
    """A week of the demo through the outbox: every message, with the sample's .txt templates or without."""
    root = copy_sample(tmp_path / "project")
    if text_parts == "derived from the HTML":
        for text in (root / "templates").rglob("*.txt"):
            if text.with_suffix(".html").exists():
                text.unlink()
    run_demo(root, tmp_path / "journey.db", end=DEMO_START + timedelta(days=7))
    files = sorted((root / "outbox").glob("*.eml"))
    assert len(files) > 100
    missing = []
    for path in files:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        url = str(message["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
        text = message.get_body(preferencelist=("plain",)).get_content()
        if url not in text:
            missing.append(path.name)
    assert missing == []
