"""The unsubscribe link, served: RFC 8058 one-click, the preferences page, tokens refused.

The project has two marketing topics (the default ``marketing`` and ``newsletter``) and a
transactional one (``receipts``). Requests go through Starlette's TestClient, and through
a real uvicorn for the link taken from a sent message and for the next-tick test.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tick_kit import TINY_PROJECT, add_signups, tiny_project

from runner.delivery.unsubscribe import make_token
from runner.production.deploy import deploy, load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.serve.settings import ServeSettings
from runner.serve.unsubscribepage import STYLE
from runner.store import open_store

from .conftest import DEPLOYED_AT, ServeProject

PROJECT = TINY_PROJECT + """\
topics:
  newsletter: {description: "The monthly newsletter"}
  receipts: {kind: transactional, description: "Receipts"}
"""
SERIES = """\
id: welcome
version: 1
name: Welcome
stages:
  - id: main
    entry: {event: signed_up}
    steps:
      - id: hello
        email: {template: hello, subject: "Hello {{ contact.first_name }}"}
      - wait: 1h
      - id: tips
        email: {template: tips, subject: "Tips for {{ contact.first_name }}"}
"""
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


@pytest.fixture
def serve_project(tmp_path: Path) -> ServeProject:
    """Overrides conftest's: the topics project, deployed, with c00000 and c00001 signed up."""
    root = tiny_project(tmp_path / "project", journeys={"welcome": SERIES}, project=PROJECT)
    db = tmp_path / "journey.db"
    store = open_store(db)
    ids = add_signups(store, 2, DEPLOYED_AT)
    deploy(store, load_working_tree(root).journeys, DEPLOYED_AT)
    store.close()
    return ServeProject(root, db, ids)


@pytest.fixture(autouse=True)
def _dev_secret(monkeypatch):
    """The tick in this process and the server sign and check with the same (development) key."""
    monkeypatch.delenv("JOURNEY_UNSUBSCRIBE_SECRET", raising=False)


def link(settings: ServeSettings, contact: str = "c00000", topic: str = "marketing") -> str:
    assert settings.unsubscribe_secret is not None
    return f"/unsubscribe?token={make_token(settings.unsubscribe_secret, contact, 'welcome', topic)}"


def snapshot(db: Path) -> tuple[list, list]:
    """Everything an unsubscribe could change: the suppressions and the events."""
    with sqlite3.connect(db) as conn:
        return (conn.execute("SELECT * FROM suppressions ORDER BY target").fetchall(),
                conn.execute("SELECT contact_id, name, properties FROM events ORDER BY id").fetchall())


def opt_outs(db: Path, contact: str = "c00000") -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT reason, topic FROM suppressions WHERE contact_id = ? ORDER BY topic",
                            (contact,)).fetchall()


# ---------------------------------------------------------------- one click


def test_one_click_unsubscribes_at_once_with_no_cookie_no_redirect_and_the_same_answer_again(
        client, serve_settings, serve_project):
    first = client.post(link(serve_settings, topic="newsletter"), **ONE_CLICK, follow_redirects=False)
    assert first.status_code == 200, first.text
    assert "set-cookie" not in first.headers and "location" not in first.headers
    assert "You are unsubscribed from The monthly newsletter." in first.text
    assert opt_outs(serve_project.db) == [("unsubscribed", "newsletter")]
    before = snapshot(serve_project.db)
    again = client.post(link(serve_settings, topic="newsletter"), **ONE_CLICK, follow_redirects=False)
    assert (again.status_code, again.text) == (200, first.text)
    assert snapshot(serve_project.db) == before  # nothing written the second time
    assert opt_outs(serve_project.db, "c00001") == []


def test_one_click_in_multipart_form_data_too(client, serve_settings, serve_project):
    answer = client.post(link(serve_settings), files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200, answer.text
    assert opt_outs(serve_project.db) == [("unsubscribed", "marketing")]


def test_a_token_without_a_topic_unsubscribes_from_every_marketing_topic(client, serve_settings, serve_project):
    answer = client.post(link(serve_settings, topic="*"), **ONE_CLICK)
    assert answer.status_code == 200 and "all marketing email" in answer.text
    assert opt_outs(serve_project.db) == [("unsubscribed", "*")]


# ---------------------------------------------------------------- tokens refused


def _forged(settings: ServeSettings) -> dict[str, str]:
    genuine = make_token(settings.unsubscribe_secret, "c00000", "welcome", "marketing")
    other = make_token(settings.unsubscribe_secret, "c00001", "welcome", "marketing")
    version, payload, mac = genuine.split(".")
    return {
        "other contact (its payload, this mac)": f"{other.rsplit('.', 1)[0]}.{mac}",
        "other topic (its payload, this mac)": ".".join([*make_token(settings.unsubscribe_secret, "c00000", "welcome",
                                                                     "*").split(".")[:2], mac]),
        "truncated": genuine[:-6],
        "mac cut off": f"{version}.{payload}",
        "other secret": make_token(b"some-other-secret-of-enough-bytes", "c00000", "welcome", "marketing"),
        "garbage": "v2.!!!.???",
        "empty": "",
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_truncated_other_secret_and_other_contact_tokens_get_403_and_change_nothing(
        client, serve_settings, serve_project, method):
    before = snapshot(serve_project.db)
    for name, token in _forged(serve_settings).items():
        answer = client.request(method, f"/unsubscribe?token={token}", **(ONE_CLICK if method == "POST" else {}))
        assert answer.status_code == 403, name
        assert "not valid" in answer.text or "incomplete" in answer.text
    for query in ("", "?token=a&token=b"):
        assert client.request(method, f"/unsubscribe{query}", **(ONE_CLICK if method == "POST" else {})).status_code == 403
    assert snapshot(serve_project.db) == before


def test_the_forms_refuse_what_they_do_not_offer(client, serve_settings, serve_project):
    url = link(serve_settings)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    before = snapshot(serve_project.db)
    assert client.post(url, content=b"List-Unsubscribe=Two-Clicks", headers=form).status_code == 400
    assert client.post(url, content=b"action=preferences&topic=receipts", headers=form).status_code == 400
    assert client.post(url, content=b"action=preferences&topic=nope", headers=form).status_code == 400
    assert client.post(url, content=b"\xff\xfe", headers=form).status_code == 400
    assert client.post(url, content=b"x=" + b"y" * 20_000, headers=form).status_code == 413
    assert snapshot(serve_project.db) == before


# ---------------------------------------------------------------- the page


def test_the_page_offers_the_confirm_button_and_the_topics_with_a_strict_policy(client, serve_settings):
    page = client.get(link(serve_settings, topic="newsletter"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy_header = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy_header and "form-action 'self'" in policy_header
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    assert "set-cookie" not in page.headers
    html = page.text
    assert '<html lang="en">' in html and "<script" not in html and "src=" not in html and "http" not in html
    assert f"<style>{STYLE}</style>" in html  # the one inline style, allowed by its hash
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in html
    assert "Stop receiving “The monthly newsletter”?" in html
    assert '<input type="checkbox" name="topic" value="newsletter" checked>' in html
    assert '<input type="checkbox" name="topic" value="marketing" checked>' in html
    assert 'value="receipts"' not in html and "Always sent, as part of the service: Receipts." in html
    assert "<legend>Email I want to receive</legend>" in html


def test_preferences_are_saved_and_shown(client, serve_settings, serve_project):
    url = link(serve_settings)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    saved = client.post(url, content=b"action=preferences&topic=marketing", headers=form)
    assert saved.status_code == 200 and "Your preferences are saved." in saved.text
    assert opt_outs(serve_project.db) == [("unsubscribed", "newsletter")]
    assert '<input type="checkbox" name="topic" value="newsletter">' in saved.text
    client.post(url, content=b"action=preferences&topic=marketing&topic=newsletter", headers=form)
    assert opt_outs(serve_project.db) == []  # resubscribed
    everything = client.post(url, content=b"action=everything", headers=form)
    assert "You are unsubscribed from all marketing email." in everything.text
    assert opt_outs(serve_project.db) == [("unsubscribed", "*")]
    assert 'value="marketing" checked' not in everything.text
    client.post(url, content=b"action=preferences&topic=newsletter", headers=form)
    assert opt_outs(serve_project.db) == [("unsubscribed", "marketing")]  # "*" gave way to one topic


def test_metrics_count_the_unsubscribes_the_link_recorded_by_source_and_topic(client, serve_settings):
    """``journey_unsubscribes_total{source, topic}`` in ``/metrics``: one per opt-out recorded
    (a repeated click, or a form that changes nothing, adds none)."""
    from .test_metrics import scrape

    def moved(before: dict, after: dict) -> dict:
        return {dict(labels)["source"] + " " + dict(labels)["topic"]: after[(name, labels)] - before.get((name, labels), 0)
                for name, labels in after if name == "journey_unsubscribes_total"
                and after[(name, labels)] != before.get((name, labels), 0)}

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    before = scrape(client.get)
    for _ in range(2):  # the second click changes nothing
        assert client.post(link(serve_settings, topic="newsletter"), **ONE_CLICK).status_code == 200
    assert client.post(link(serve_settings, "c00001", topic="*"), **ONE_CLICK).status_code == 200
    assert moved(before, scrape(client.get)) == {"one-click newsletter": 1, "one-click *": 1}
    before = scrape(client.get)
    url = link(serve_settings)
    assert client.post(url, content=b"action=preferences", headers=form).status_code == 200  # marketing off too
    assert client.post(url, content=b"action=preferences", headers=form).status_code == 200  # nothing new
    assert client.post(url, content=b"action=everything", headers=form).status_code == 200
    assert moved(before, scrape(client.get)) == {"preferences marketing": 1, "preferences *": 1}


# ---------------------------------------------------------------- the link in a sent message, the next tick


def _tick(serve_project: ServeProject, tmp_path: Path, now: datetime) -> None:
    store = open_store(serve_project.db)
    try:
        runtime = build_runtime(store, load_working_tree(serve_project.root).project, f"outbox:{tmp_path / 'outbox'}")
        run_tick(store, runtime, now)
    finally:
        store.close()


def _sent(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT contact_id, step_id FROM sends WHERE state = 'sent' ORDER BY contact_id, step_id"
                            ).fetchall()


@pytest.mark.parametrize("unsubscribe", [True, False])
def test_an_unsubscribe_from_the_header_link_is_honoured_by_the_very_next_tick(
        live_server, serve_project, tmp_path, unsubscribe):
    """c00000 signed up an hour ago: a tick sends hello now, tips is due in a minute. The POST
    to the List-Unsubscribe URL of that hello, over real HTTP, is answered after its commit;
    the tick right after it must not send tips (without the POST it does)."""
    now = datetime.now(UTC)
    store = open_store(serve_project.db)
    signup = now - timedelta(minutes=59)
    add_signups(store, 1, signup, prefix="n")
    store.close()
    _tick(serve_project, tmp_path, now)
    (hello,) = [p for p in (tmp_path / "outbox").glob("*.eml") if "n00000" in p.name]
    message = message_from_bytes(hello.read_bytes(), policy=policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = urlsplit(str(message["List-Unsubscribe"]).split(",")[0].strip().strip("<>"))
    assert url.scheme == "https" and url.path == "/unsubscribe"
    if unsubscribe:
        answer = httpx.post(f"{live_server.url}{url.path}?{url.query}", **ONE_CLICK, timeout=30)
        assert answer.status_code == 200, answer.text
    _tick(serve_project, tmp_path, signup + timedelta(hours=1, seconds=1))  # tips is due
    sent = [step for contact, step in _sent(serve_project.db) if contact == "n00000"]
    assert sent == (["hello"] if unsubscribe else ["hello", "tips"])
    if unsubscribe:
        store = open_store(serve_project.db)
        (skip,) = [row for row in store.contact_history("n00000") if row["action"] == "skip"]
        assert (skip["step"], skip["reason"]) == ("tips", "suppressed: unsubscribed from marketing")
        store.close()


# ---------------------------------------------------------------- the page in a real browser



@needs_chromium
def test_the_page_works_in_a_real_browser_by_its_labels_and_roles(live_server, serve_project):
    """Headless Chromium: the inline style applies under the page's CSP (nothing refused, no
    request leaves the server), the checkboxes are found by their labels and the buttons by
    their roles, saving preferences and the confirm button work, and no cookie is set."""
    from playwright.sync_api import sync_playwright

    url = live_server.url + link(live_server.settings, topic="newsletter")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            console: list[str] = []
            requests: list[str] = []
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url)
            assert page.evaluate("getComputedStyle(document.body).maxWidth") == "576px"  # 36rem: the style ran
            newsletter = page.get_by_label("The monthly newsletter")
            assert newsletter.is_checked() and page.get_by_label("Marketing").is_checked()
            newsletter.uncheck()
            page.get_by_role("button", name="Save preferences").click()
            assert page.get_by_role("status").inner_text() == "Your preferences are saved."
            assert not page.get_by_label("The monthly newsletter").is_checked()
            assert opt_outs(serve_project.db) == [("unsubscribed", "newsletter")]
            page.get_by_role("button", name="Unsubscribe from all marketing email").click()
            assert page.get_by_role("status").inner_text() == "You are unsubscribed from all marketing email."
            assert opt_outs(serve_project.db) == [("unsubscribed", "*"), ("unsubscribed", "newsletter")]
            assert context.cookies() == []
            assert console == []  # no CSP refusal, no error
            assert all(seen.startswith(live_server.url) for seen in requests), requests
        finally:
            browser.close()


# ---------------------------------------------------------------- bad input, with a valid token


def test_the_link_is_in_the_openapi_description_the_fuzz_test_reads():
    from runner.serve.openapi import describe

    operations = describe()["paths"]["/unsubscribe"]
    assert set(operations) == {"get", "post"}
    assert set(operations["post"]["responses"]) == {"200", "400", "403", "413", "503"}


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(str.encode),
       content_type=st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz",
                                     "multipart/form-data", "text/plain", "", "application/x-www-form-urlencoded; "
                                     "charset=latin-1", "multipart/form-data; boundary=\"ä\""]),
       extra=st.sampled_from(["", "&topic=newsletter", "&action=everything", "&token="]))
def test_no_body_with_a_valid_token_gets_a_server_error(unsubscribe_client, body, content_type, extra):
    """Whatever arrives with a genuine token, the answer is a page (200) or a refusal (400, 413,
    403 for a second token), never a 500; and nothing but opt-outs of c00000 is ever written."""
    client, settings = unsubscribe_client
    headers = {"Content-Type": content_type.encode()} if content_type else {}  # raw bytes, as a client may send
    answer = client.post(link(settings) + extra, content=body, headers=headers)
    assert answer.status_code in (200, 400, 403, 413), (answer.status_code, answer.text[:200])
    assert answer.headers["content-type"].startswith("text/html")


@pytest.fixture(scope="module")
def unsubscribe_client(tmp_path_factory):
    """One app for the property test's many requests (a function-scoped fixture would be shared anyway)."""
    from starlette.testclient import TestClient

    from runner.serve.app import build_app
    from runner.serve.settings import load_settings

    project = serve_project.__wrapped__(tmp_path_factory.mktemp("unsubscribe"))
    settings = load_settings(project.root, project.db, {}, host="127.0.0.1", port=0)
    with TestClient(build_app(settings), raise_server_exceptions=False) as client:
        yield client, settings
