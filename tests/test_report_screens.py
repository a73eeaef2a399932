"""The report as a reviewer sees it, in a real headless Chromium: facts measured in the browser (order of the
journeys, the diagram's text size, counts in the boxes, send times, preview width) and screenshots compared
with the reference images in tests/screenshots/ (see tests/screenshots.py for the tolerance).

The project is this module's own, not the sample's, so that other changes to the
sample do not move the pictures: three journeys, one changed since the git base
(five stages: wide), one sending a template the change edits, one unchanged
(first by id, so "changed first" is seen), and three test contacts in three zones; one step
is translated (English, Turkish, Arabic: scripts the machine's DejaVu fonts draw; no CJK font is
installed, so Japanese would be drawn as boxes) so the language variants show too.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from chromium import needs_chromium
from screenshots import REFERENCES, assert_matches_reference, compare
from test_report_project import run_journey

from runner.review.report import DIAGRAM_MIN_SCALE, PREVIEW_WIDTH

PROJECT_YAML = """\
name: Screens Co
sender: {from: "Screens Co <hello@screens.test>"}
default_timezone: UTC
unsubscribe: {url: "https://screens.test/unsubscribe", mailto: "unsubscribe@screens.test"}
localization: {attribute: locale, default: en, locales: [en, tr, ar], missing: warning}
tracking_plan:
  attributes:
    locale: {type: string, description: "Language the contact reads."}
    first_name: {type: string}
    plan: {type: string}
"""

ALPHA = """\
id: alpha
version: 1
name: Alpha welcome
stages:
  - id: start
    entry: {event: signed_up}
    steps:
      - id: hello
        email: {template: hello, subject: "Hello {{ contact.first_name }}"}
      - wait: 1d
"""

ZETA = """\
id: zeta
version: 1
name: Zeta newsletter
stages:
  - id: readers
    entry: {event: subscribed}
    steps:
      - id: issue_one
        email: {template: news, subject: "Issue one"}
"""

WIDE = """\
id: wide
version: 1
name: A wide journey
description: Five stages side by side in Mermaid's own layout.
settings:
  send_window: {from: "09:00", to: "18:00"}
stages:
  - id: trial
    name: Trial started
    entry: {event: trial_started}
    steps:
      - id: trial_tips
        email:
          template: tips
          subject: {en: "Three tips for your trial", tr: "Deneme süreniz için üç ipucu", ar: "ثلاث نصائح لتجربتك"}
      - wait: 2d
      - id: trial_nudge
        email: {template: hello, subject: "How is the trial going?"}
  - id: paid
    name: Paying customer
    entry: {event: purchased}
    steps:
      - id: plan_check
        branch:
          cases: [{if: {attribute: plan, equals: pro}, steps: [{id: pro_welcome, email: {template: hello, subject: "Welcome to Pro"}}]}]
          else: [{id: basic_welcome, email: {template: hello, subject: "Welcome aboard"}}]
  - id: quiet
    name: Gone quiet
    entry: {event: went_quiet}
    steps:
      - id: miss_you
        email: {template: hello, subject: "We miss you"}
      - exit: quiet_done
  - id: renewal
    name: Renewal
    entry: {event: renewal_due}
    steps:
      - id: renew_reminder
        email: {template: hello, subject: "Your renewal is coming up"}
  - id: feedback
    name: Feedback
    entry: {event: ticket_closed}
    steps:
      - id: survey
        email: {template: hello, subject: "Two questions about your ticket"}
exit: [{event: unsubscribed}]
goal: {event: upgraded, within: 30d}
"""

HELLO_HTML = """\
<!doctype html><html><body style="margin:0;background:#f4f5f7;font-family:sans-serif;color:#1f2933">
<div style="max-width:560px;margin:0 auto;padding:24px"><div style="background:#fff;border-radius:8px;padding:32px">
<p style="font-size:18px;font-weight:700;color:#2f6fed;margin:0 0 24px">Screens Co</p>
<h1 style="font-size:22px;margin:0 0 16px">Hello {{ contact.first_name }}</h1>
<p style="font-size:16px;line-height:1.55">This preview should be readable where it stands, without a click:
two or three lines of text at the size a reader's email client shows them.</p>
<p style="font-size:12px;color:#7b8794"><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</div></div></body></html>
"""
HELLO_TXT = "Hello {{ contact.first_name }}\nUnsubscribe: {{ unsubscribe_url }}\n"
TIPS = {
    "en": ("en", "ltr", "Three tips for your trial", "Invite your team, connect your calendar, and set one goal."),
    "tr": ("tr", "ltr", "Üç ipucu", "Ekibinizi davet edin, takviminizi bağlayın ve tek bir hedef belirleyin."),
    "ar": ("ar", "rtl", "ثلاث نصائح", "ادعُ فريقك، واربط تقويمك، وحدد هدفًا واحدًا."),
}
TIPS_HTML = """\
<!doctype html><html lang="{lang}" dir="{dir}"><body style="margin:0;background:#f4f5f7;font-family:sans-serif">
<div style="max-width:560px;margin:0 auto;padding:24px"><div style="background:#fff;border-radius:8px;padding:32px">
<h1 style="font-size:22px;margin:0 0 16px">{title}</h1><p style="font-size:16px;line-height:1.55">{body}</p>
<p style="font-size:12px"><a href="{{{{ unsubscribe_url }}}}">Unsubscribe</a></p></div></div></body></html>
"""
NEWS_HTML = "<html><body><p>Issue one for {{ contact.first_name }}</p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></body></html>\n"

CONTACTS = """\
contacts:
  - id: aiko
    timezone: Asia/Tokyo
    attributes: {email: aiko@example.com, first_name: Aiko, plan: pro, locale: tr}
    events:
      - {at: "+0d 10:00", event: trial_started}
      - {at: "+4d 11:00", event: purchased}
      - {at: "+5d 12:00", event: subscribed}
  - id: ben
    timezone: America/New_York
    attributes: {email: ben@example.com, first_name: Ben, locale: en}
    events:
      - {at: "+0d 08:00", event: signed_up}
      - {at: "+1d 09:30", event: trial_started}
      - {at: "+6d 10:00", event: went_quiet}
  - id: cem
    timezone: Europe/Istanbul
    attributes: {email: cem@example.com, first_name: Cem, locale: ar}
    events:
      - {at: "+2d 14:00", event: purchased}
"""


def write_screens_project(root: Path) -> Path:
    for folder in ("journeys", "templates", "examples"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    files = {"project.yaml": PROJECT_YAML, "journeys/alpha.yaml": ALPHA, "journeys/wide.yaml": WIDE,
             "journeys/zeta.yaml": ZETA, "templates/hello.html": HELLO_HTML, "templates/hello.txt": HELLO_TXT,
             "templates/news.html": NEWS_HTML, "templates/news.txt": "Issue one\n{{ unsubscribe_url }}\n",
             "examples/contacts.yaml": CONTACTS, "templates/tips.txt": "Three tips\n{{ unsubscribe_url }}\n"}
    for locale, (lang, direction, title, body) in TIPS.items():
        suffix = "" if locale == "en" else f".{locale}"
        files[f"templates/tips{suffix}.html"] = TIPS_HTML.format(lang=lang, dir=direction, title=title, body=body)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project committed as the base, then the wide journey changed (v2) and the news template edited."""
    root = write_screens_project(tmp_path_factory.mktemp("screens"))
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "base"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True)
    changed = WIDE.replace("version: 1", "version: 2").replace("- wait: 2d", "- wait: 3d")
    (root / "journeys" / "wide.yaml").write_text(changed, encoding="utf-8")
    (root / "templates" / "news.html").write_text(NEWS_HTML.replace("Issue one", "Issue #1"), encoding="utf-8")
    out = root / "report"
    result = run_journey(["report", "--out", str(out), "--base", "HEAD"], root, process=True)
    assert result.returncode == 0, result.stderr
    return out


def open_page(browser, index: Path, errors: list[str]):
    """The page at 1280 px wide, Mermaid done, fonts loaded; then as tall as the page so every iframe paints."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(index.as_uri())
    page.wait_for_function("document.body.dataset.mermaid !== undefined", timeout=120_000)
    page.evaluate("document.fonts.ready.then(() => true)")
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": height})
    for handle in page.locator("iframe").element_handles():
        frame = handle.content_frame()
        if frame is not None:
            frame.wait_for_load_state("load")
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")  # painted
    return page


# What the browser measures: the effective size of a diagram's text is its computed font size times the
# scale the SVG is drawn at (its width on the page over its viewBox width).
DIAGRAM_TEXT = """
() => Array.from(document.querySelectorAll('section.journey')).filter(s => s.querySelector('pre.mermaid svg')).map(s => {
  const svg = s.querySelector('pre.mermaid svg');
  const label = svg.querySelector('.nodeLabel');
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  return [s.id, parseFloat(getComputedStyle(label).fontSize) * scale];
})
"""


@needs_chromium
def test_changed_journeys_come_first(report: Path, browser) -> None:
    errors: list[str] = []
    page = open_page(browser, report / "index.html", errors)
    sections = page.evaluate("Array.from(document.querySelectorAll('section.journey')).map(s => [s.id, s.dataset.group])")
    assert sections == [["j-wide", "changed"], ["j-zeta", "affected"], ["j-alpha", "unchanged"]]
    nav = page.locator("nav").inner_text()
    assert nav.index("Changed (1): wide") < nav.index("Sends a changed template (1): zeta") < nav.index("Unchanged (1): alpha")
    assert page.locator("#j-wide h2 .badge").inner_text() == "changed"
    assert "templates/news.html" in page.locator("#j-zeta").inner_text()
    page.close()
    assert errors == []


@needs_chromium
def test_the_diagram_text_stays_readable_and_counts_the_test_contacts(report: Path, browser) -> None:
    errors: list[str] = []
    page = open_page(browser, report / "index.html", errors)
    sizes = dict(page.evaluate(DIAGRAM_TEXT))
    assert set(sizes) == {"j-wide", "j-zeta", "j-alpha"}
    assert all(size >= 12 for size in sizes.values()), sizes
    wide = page.locator("#j-wide pre.mermaid svg")
    text = " ".join(wide.locator(".node").all_text_contents())
    # aiko and ben start the trial; aiko (pro) and cem purchase; ben goes quiet; nobody renews or closes a ticket
    for label, count in (("Three tips for your trial", "2 test contacts"), ("Welcome to Pro", "1 test contact"),
                         ("Welcome aboard", "1 test contact"), ("We miss you", "1 test contact"),
                         ("Your renewal is coming up", "0 test contacts")):
        node = wide.locator(".node", has_text=label)
        assert count in (node.text_content() or ""), (label, node.text_content())
    assert "exit: quiet_done" in text
    faded = wide.locator(".node.unreached")
    assert faded.count() >= 4  # renewal and feedback: their entries and emails; the goal; the exit rule
    assert page.evaluate("getComputedStyle(document.querySelector('#j-wide .node.unreached > :first-child')).opacity") == "0.55"
    page.close()
    assert errors == []


@needs_chromium
def test_sends_are_shown_in_local_time_and_utc(report: Path, browser) -> None:
    errors: list[str] = []
    page = open_page(browser, report / "index.html", errors)
    rows = page.locator("#j-wide table.sends tbody tr")
    cells = [row.locator("td").all_inner_texts() for row in rows.all()]
    aiko = next(c for c in cells if c[0] == "aiko" and c[1] == "trial_tips")
    assert aiko[3] == "Mon 5 Jan 2026 10:00 Asia/Tokyo (UTC+09:00)" and aiko[4] == "Mon 5 Jan 2026 01:00 UTC"
    ben = next(c for c in cells if c[0] == "ben" and c[1] == "trial_tips")
    assert ben[3].endswith("America/New_York (UTC-05:00)") and ben[4].endswith("UTC")
    when = page.locator("#j-wide .preview .when").first.inner_text()
    assert "Asia/Tokyo (UTC+09:00)" in when and when.endswith(" UTC")
    page.close()
    assert errors == []


@needs_chromium
def test_previews_are_readable_without_a_click(report: Path, browser) -> None:
    errors: list[str] = []
    page = open_page(browser, report / "index.html", errors)
    frames = page.locator("#j-wide .preview iframe")
    assert frames.count() >= 4
    box = frames.first.bounding_box()
    assert box is not None and box["width"] >= PREVIEW_WIDTH and box["height"] >= 600
    frame = frames.first.element_handle().content_frame()
    text_size = frame.evaluate("parseFloat(getComputedStyle(document.querySelector('h1 + p')).fontSize)")
    fits = frame.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert text_size == 16 and fits  # full-size text, no sideways scrolling inside the preview
    page.close()
    assert errors == []


@needs_chromium
@pytest.mark.parametrize("name, selector", [
    ("report-top", "header, main > p, main > ul, main > nav"),
    ("wide-diagram", "#j-wide .diagram"),
    ("wide-sends", "#j-wide table.sends"),
    ("wide-previews", "#j-wide .previews"),
    ("wide-variants", "#j-wide .variants"),  # the language variants view (runner/review/variants.py)
])
def test_report_matches_the_reference_screenshots(report: Path, browser, tmp_path: Path, name: str,
                                                   selector: str) -> None:
    errors: list[str] = []
    page = open_page(browser, report / "index.html", errors)
    png = _shot(page, selector)
    page.close()
    assert errors == []
    assert_matches_reference(png, name, tmp_path / "screenshots")


def _shot(page, selector: str) -> bytes:
    boxes = [b for b in (e.bounding_box() for e in page.locator(selector).all()) if b is not None]
    top, bottom = min(b["y"] for b in boxes), max(b["y"] + b["height"] for b in boxes)
    left, right = min(b["x"] for b in boxes), max(b["x"] + b["width"] for b in boxes)
    return page.screenshot(clip={"x": left, "y": top, "width": right - left, "height": bottom - top}, animations="disabled")


@needs_chromium
@pytest.mark.parametrize("name, selector, change", [
    ("wide-sends", "#j-wide table.sends", "table.sends td{padding:3px 12px}"),  # wider cells: the table reflows
    ("wide-previews", "#j-wide .previews", ".preview .when{font-weight:700}"),  # bold lines above the previews
    ("wide-diagram", "#j-wide .diagram", "pre.mermaid .node rect{stroke-width:3px !important}"),
])
def test_a_layout_change_fails_the_comparison(report: Path, browser, name: str, selector: str, change: str) -> None:
    """The tolerance lets noise through, not a change: the same shots with one style changed must differ."""
    from PIL import Image

    page = open_page(browser, report / "index.html", [])
    page.add_style_tag(content=change)
    page.wait_for_timeout(300)
    changed = Image.open(io.BytesIO(_shot(page, selector)))
    page.close()
    assert not compare(Image.open(REFERENCES / f"{name}.png"), changed).ok


@needs_chromium
def test_every_sample_journey_reads_at_12px_or_more(tmp_path: Path, browser) -> None:
    """The sample project's report with its test contacts: every diagram's text is at least 12 px on the page."""
    from datetime import timedelta

    from runner.language.loader import load_project
    from runner.review.report import ReportInputs, build_report
    from runner.simulation.scenarios import DEFAULT_START
    from runner.simulation.testcontacts import load_test_contacts

    repo = Path(__file__).resolve().parents[1]
    loaded = load_project(repo)
    contacts = load_test_contacts(repo / "examples" / "contacts.yaml")
    index, failures = build_report(ReportInputs(loaded.project, loaded.journeys, contacts, DEFAULT_START,
                                                DEFAULT_START + timedelta(days=30)), tmp_path / "samples")
    errors: list[str] = []
    page = open_page(browser, index, errors)
    sizes = dict(page.evaluate(DIAGRAM_TEXT))
    assert set(sizes) == {f"j-{j.id}" for j in loaded.journeys}
    assert min(sizes.values()) >= 16 * DIAGRAM_MIN_SCALE >= 12, sizes
    page.close()
    assert errors == [] and failures == []


def test_the_comparison_passes_the_same_image_and_fails_a_moved_box_or_a_new_size() -> None:
    from PIL import Image, ImageDraw

    reference = Image.open(REFERENCES / "wide-sends.png").convert("RGB")
    assert compare(reference, reference.copy()).ok
    moved = reference.copy()  # the first rows' text 6 px lower, as a reflow would put it
    moved.paste(reference.crop((0, 0, 400, 120)), (0, 6))
    assert not compare(reference, moved).ok and compare(reference, moved).size_ok
    taller = Image.new("RGB", (reference.width, reference.height + 4), "white")
    taller.paste(reference, (0, 0))
    assert not compare(reference, taller).size_ok
    noisy = reference.copy()  # a faint one-pixel speck every 5 px: anti-aliasing noise, not a change
    draw = ImageDraw.Draw(noisy)
    for x in range(0, noisy.width, 5):
        for y in range(0, noisy.height, 5):
            r, g, b = noisy.getpixel((x, y))
            draw.point((x, y), fill=(max(r - 60, 0), max(g - 60, 0), max(b - 60, 0)))
    assert compare(reference, noisy).ok
