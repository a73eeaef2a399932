"""``journey report`` shows a translated step's language variants side by side (runner/review/variants.py):
one message per declared locale, rendered as production renders it, checked in the page's HTML and in a
real headless Chromium (the five languages in one row, Arabic right to left)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import pytest
from chromium import needs_chromium
from test_report import open_report
from test_report_project import run_journey

from runner.language.loader import load_project
from runner.review.renderout import MessageRenderer
from runner.review.variants import language_variants, variants_html
from runner.simulation.testcontacts import load_test_contacts

REPO = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample_variants():
    loaded = load_project(REPO)
    contacts = load_test_contacts(REPO / "examples" / "contacts.yaml")
    onboarding = next(j for j in loaded.journeys if j.id == "onboarding")
    renderer = MessageRenderer(loaded.project, [onboarding], contacts, START)
    return language_variants(renderer, onboarding)


def test_only_translated_steps_get_variants_one_per_declared_locale(sample_variants):
    assert list(sample_variants) == ["welcome_signup_form", "nurture_signup_form"]  # file order; nudge is English only
    for row in sample_variants.values():
        assert [variant.locale for variant in row] == ["en", "tr", "ar", "ja", "id"]
        assert all(variant.result.error is None for variant in row)


def test_each_variant_is_a_reader_of_that_language_with_their_message(sample_variants):
    row = {variant.locale: variant for variant in sample_variants["welcome_signup_form"]}
    assert {tag: (v.result.contact, v.stand_in) for tag, v in row.items()} == {
        "en": ("burak", False), "tr": ("selin", False), "ar": ("salma", False), "ja": ("aiko", False),
        "id": ("wulan", False)}
    assert row["ja"].result.subject == "佐藤 様、Kitebase へようこそ"
    assert '<html lang="ar" dir="rtl">' in row["ar"].result.html
    assert "Çalışma alanınız hazır." in row["tr"].result.text


def test_a_language_no_test_contact_reads_is_shown_from_another_send(sample_variants):
    loaded = load_project(REPO)
    contacts = [c for c in load_test_contacts(REPO / "examples" / "contacts.yaml") if c.id in ("burak", "selin")]
    onboarding = next(j for j in loaded.journeys if j.id == "onboarding")
    row = language_variants(MessageRenderer(loaded.project, [onboarding], contacts, START), onboarding)
    ja = next(v for v in row["welcome_signup_form"] if v.locale == "ja")
    assert ja.stand_in and ja.result.contact == "burak"  # the step's first recipient, as a Japanese reader
    assert ja.result.subject == "Şahin 様、Kitebase へようこそ" and 'lang="ja"' in ja.result.html
    assert "as ja, from the send to burak" in variants_html(row)


def test_a_project_without_localization_has_no_variants_section(tmp_path: Path):
    from test_report_project import write_trial_project

    root = write_trial_project(tmp_path)
    loaded = load_project(root)
    contacts = load_test_contacts(root / "examples" / "contacts.yaml")
    renderer = MessageRenderer(loaded.project, loaded.journeys, contacts, START)
    assert all(language_variants(renderer, journey) == {} for journey in loaded.journeys)
    assert variants_html({}) == ""


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("variants") / "report"
    result = run_journey(["report", "--out", str(out)], REPO)
    assert result.returncode == 0, result.stderr
    return out / "index.html"


def test_the_report_has_the_variants_after_the_previews(sample_report: Path):
    page = sample_report.read_text(encoding="utf-8")
    section = page.split("<h3>Language variants</h3>", 1)[1]
    assert page.index("<h3>Email previews</h3>") < page.index("<h3>Language variants</h3>")
    assert re.findall(r'data-locale="([a-z-]+)"', section) == ["en", "tr", "ar", "ja", "id"] * 2
    assert '<div class="subject" lang="ar" dir="rtl">مرحبًا بك في Kitebase، سلمى</div>' in section
    assert "日本語 (ja)" in section and "Türkçe (tr)" in section
    assert '<html lang="ja-JP" dir="ltr">' in unescape(section)


@needs_chromium
def test_the_variants_sit_side_by_side_in_a_real_browser(sample_report: Path, browser) -> None:
    page, errors, requests = open_report(browser, sample_report)
    page.set_viewport_size({"width": 2400, "height": 1200})
    cards = page.locator(".variants").first.locator(".variant")
    assert cards.count() == 5
    boxes = [cards.nth(n).bounding_box() for n in range(5)]
    assert len({round(box["y"]) for box in boxes}) == 1  # one row
    assert [box["x"] for box in boxes] == sorted(box["x"] for box in boxes)  # en, tr, ar, ja, id from the left
    frame = page.frame_locator('.variants iframe[title="welcome_signup_form (ar)"]')
    assert frame.locator("html").get_attribute("dir") == "rtl"
    heading = frame.locator("h1")
    assert heading.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert heading.text_content() == "مرحبًا بك في Kitebase"
    japanese = page.frame_locator('.variants iframe[title="welcome_signup_form (ja)"]').locator("h1")
    assert japanese.evaluate("e => getComputedStyle(e).direction") == "ltr"
    page.close()
    assert errors == []
    assert all(url.startswith(("file://", "about:", "data:")) for url in requests), requests
