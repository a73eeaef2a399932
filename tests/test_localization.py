"""Localized messages (docs/localization.md): the locale chain, Babel's filters, per-locale
templates and subjects rendered as production renders them, validate's checks, the CLI, and a
Japanese email over real SMTP."""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from smtp_server import SmtpServer

from runner.delivery.dispatch import Delivery, localized_subject, message_locale
from runner.delivery.localefilters import LOCALE_FILTERS
from runner.delivery.render import Renderer, RenderError, locale_context
from runner.delivery.transports import open_transport
from runner.language.loader import load_project, validate
from runner.language.locales import (
    FORMAT_FILTERS,
    Localization,
    Resolution,
    fallback_chain,
    localization_of,
    normalize_tag,
    resolve,
    text_direction,
    variant_name,
)
from runner.simulation.rendering import SendRenderer
from runner.simulation.simulate import simulate
from runner.simulation.testcontacts import load_test_contacts

REPO = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 2, tzinfo=UTC)
READERS = {"selin": "tr", "salma": "ar", "aiko": "ja-JP", "wulan": "id"}  # the sample's contacts and their tags


# ---------------------------------------------------------------- tags and chains


@pytest.mark.parametrize(("value", "tag"), [
    ("pt-BR", "pt-BR"), ("pt_BR", "pt-BR"), ("PT-br", "pt-BR"), ("ja", "ja"), ("ja_JP", "ja-JP"), (" tr ", "tr"),
    ("zh-Hant", "zh-Hant"), ("xx", None), ("", None), ("not a tag", None), ("en-", None), (None, None), (42, None),
    ("x" * 200, None),
])
def test_tags_are_normalised_with_babel(value, tag):
    assert normalize_tag(value) == tag


def test_the_fallback_chain_drops_one_subtag_at_a_time_then_reaches_the_default():
    assert fallback_chain("pt-BR", "en") == ("pt-BR", "pt", "en")
    assert fallback_chain("zh-Hant-TW", "en") == ("zh-Hant-TW", "zh-Hant", "zh", "en")
    assert fallback_chain("en-GB", "en") == ("en-GB", "en")
    assert fallback_chain("en", "en") == ("en",)


def test_a_contacts_value_resolves_and_a_bad_one_falls_back_to_the_default_with_a_reason():
    settings = Localization(attribute="locale", default="en", locales=("en", "pt", "ja"))
    assert resolve(settings, {"locale": "pt_BR"}) == Resolution(("pt-BR", "pt", "en"))
    assert resolve(settings, {}) == Resolution(("en",))  # no value: the default, nothing to explain
    unknown = resolve(settings, {"locale": "klingon"})
    assert unknown.chain == ("en",) and "klingon" in unknown.reason and "default" in unknown.reason
    region = resolve(settings, {"locale": "ja-XX"})  # a territory Babel does not know: its language
    assert region.chain == ("ja", "en") and "ja" in region.reason
    assert resolve(settings, {"locale": ""}).reason == "the locale attribute is empty"
    assert resolve(settings, {"locale": {"a": 1}}).chain == ("en",)
    assert resolve(Localization(), {"locale": "ja"}) == Resolution(("en",))  # not localized: everyone reads the default


def test_settings_from_project_yaml_normalise_tags_and_put_the_default_first():
    settings = localization_of({"localization": {"attribute": "lang", "default": "EN", "locales": ["ja_jp", "tr", "en"],
                                                 "missing": "warning"}})
    assert settings == Localization(attribute="lang", default="en", locales=("en", "ja-JP", "tr"), missing="warning")
    assert settings.others == ("ja-JP", "tr")
    assert localization_of({}) == Localization() and not Localization().enabled


@pytest.mark.parametrize(("tag", "direction"), [
    ("ar", "rtl"), ("he", "rtl"), ("fa", "rtl"), ("ur", "rtl"), ("ar-EG", "rtl"),
    ("ja", "ltr"), ("tr", "ltr"), ("id", "ltr"), ("en", "ltr"), ("zz", "ltr"),
])
def test_text_direction_is_babels(tag, direction):
    assert text_direction(tag) == direction


def test_variant_names_put_the_tag_before_the_extension():
    assert variant_name("onboarding/welcome.html", "ja") == "onboarding/welcome.ja.html"
    assert variant_name("footer.txt", "pt-BR") == "footer.pt-BR.txt"


def test_a_message_is_in_the_contacts_own_tag_only_when_its_template_is_in_the_contacts_language():
    assert message_locale(Resolution(("pt-BR", "pt", "en")), "pt") == "pt-BR"  # dates as Brazil writes them
    assert message_locale(Resolution(("ja", "en")), "en") == "en"  # no Japanese template: the English message


def test_the_subject_is_the_nearest_in_the_chain():
    class Step:
        subjects = {"en": "Hello", "pt": "Olá", "ja": "こんにちは"}

    assert localized_subject(Step(), Resolution(("pt-BR", "pt", "en")), "Hello") == "Olá"
    assert localized_subject(Step(), Resolution(("tr", "en")), "Hello") == "Hello"
    assert localized_subject(object(), Resolution(("ja", "en")), "Plain") == "Plain"


# ---------------------------------------------------------------- filters


def render(source: str, tag: str, zone: str = "Europe/Istanbul", **values) -> str:
    context = {"contact": {"timezone": zone}, "locale": locale_context(tag), **values}
    return Renderer(Path(".")).render_string(source, context)


def test_filter_names_are_babels_and_validate_knows_them():
    assert tuple(LOCALE_FILTERS) == FORMAT_FILTERS


@pytest.mark.parametrize(("tag", "expected"), [
    ("en", "12,480 | March 12, 2026 | €49.00 | 25%"),
    ("tr", "12.480 | 12 Mart 2026 | €49,00 | %25"),
    ("ja", "12,480 | 2026年3月12日 | €49.00 | 25%"),
    ("id", "12.480 | 12 Maret 2026 | €49,00 | 25%"),
])
def test_numbers_dates_currencies_and_percents_are_formatted_for_the_locale(tag, expected):
    source = "{{ 12480|format_number }} | {{ day|format_date('long') }} | {{ 49|format_currency('EUR') }} | " \
             "{{ 0.25|format_percent }}"
    assert render(source, tag, day="2026-03-12") == expected


def test_times_are_shown_in_the_contacts_zone():
    moment = datetime(2026, 3, 12, 23, 30, tzinfo=UTC)  # already the 13th in Tokyo
    assert render("{{ at|format_datetime('yyyy-MM-dd HH:mm') }}", "ja", "Asia/Tokyo", at=moment) == "2026-03-13 08:30"
    assert render("{{ at|format_date('short') }}", "ja", "Asia/Tokyo", at=moment) == "2026/03/13"
    assert render("{{ at|format_time('HH:mm') }}", "tr", "Europe/Istanbul", at="2026-03-12T23:30:00Z") == "02:30"
    assert render("{{ 3600|format_timedelta }}", "tr") == "1 saat"


@pytest.mark.parametrize(("source", "message"), [
    ("{{ 'soon'|format_date }}", "'soon' is not a date"),
    ("{{ 'abc'|format_number }}", "'abc' is not a number"),
    ("{{ '1e999999999'|format_decimal }}", "more than 100 digits"),
    ("{{ 5|format_currency('euros') }}", "ISO 4217"),
    ("{{ 5|format_decimal('0' * 100) }}", "at most 64 characters"),
    ("{{ true|format_number }}", "expected a number"),
])
def test_bad_values_are_render_errors_not_tracebacks(source, message):
    with pytest.raises(RenderError) as error:
        render(source, "en")
    assert message in str(error.value)


def test_filters_keep_the_sandboxs_size_budget():
    renderer = Renderer(Path("."), size_limit=1000)
    with pytest.raises(RenderError, match="size limit"):
        renderer.render_string("{{ ('9' * 2000)|format_number }}", {"contact": {}, "locale": locale_context("en")})


# ---------------------------------------------------------------- the sample project, rendered per locale


@pytest.fixture(scope="module")
def sample():
    loaded = load_project(REPO)
    contacts = [c for c in load_test_contacts(REPO / "examples" / "contacts.yaml") if c.id in (*READERS, "burak")]
    simulation = simulate(loaded.project, loaded.journeys, contacts, START, START + timedelta(days=10))
    journeys = {(j.id, j.version): j for j in simulation.journeys}
    sends = {(d.contact, d.step): d for d in simulation.decisions if d.action == "send"}
    return loaded.project, journeys, sends


WELCOME = {
    "selin": ("Kitebase'e hoş geldiniz, Selin", "Çalışma alanınız hazır.", "abonelikten çıkabilirsiniz", "ltr"),
    "salma": ("مرحبًا بك في Kitebase، سلمى", "مساحة عملك جاهزة.", "إلغاء الاشتراك", "rtl"),
    "aiko": ("佐藤 様、Kitebase へようこそ", "ワークスペースの準備が整いました。", "停止できます", "ltr"),
    "wulan": ("Selamat datang di Kitebase, Wulan", "Ruang kerja Anda sudah siap.", "Berhenti berlangganan", "ltr"),
    "burak": ("Welcome to Kitebase, Burak", "Your workspace is ready.", "Unsubscribe", "ltr"),
}


@pytest.mark.parametrize("contact", list(WELCOME))
def test_each_reader_gets_the_welcome_in_their_language_with_lang_and_dir(sample, contact):
    project, journeys, sends = sample
    decision = sends[contact, "welcome_signup_form"]
    message = Delivery(project, "memory:", connect=False).build(decision, journeys[decision.journey, decision.version]).message
    subject, opening, footer, direction = WELCOME[contact]
    tag = READERS.get(contact, "en")
    assert message.subject == subject and str(message["Subject"]) == subject
    text, html = (part.get_content() for part in message.parsed.iter_parts())
    assert f'<html lang="{tag}" dir="{direction}">' in html and f'<div class="wrapper" dir="{direction}"' in html
    assert opening in html and opening in text and footer in html
    assert (direction == "rtl") == (contact == "salma")


def test_the_nurture_email_formats_its_number_for_each_language(sample):
    project, journeys, sends = sample
    delivery = Delivery(project, "memory:", connect=False)
    numbers = {}
    for contact in READERS:
        decision = sends[contact, "nurture_signup_form"]
        message = delivery.build(decision, journeys[decision.journey, decision.version]).message
        numbers[contact] = next(part.get_content() for part in message.parsed.iter_parts())
    assert "Geçen ay 12.480 ekip" in numbers["selin"]
    assert "Bulan lalu, 12.480 tim" in numbers["wulan"]
    assert "先月は 12,480 のチーム" in numbers["aiko"]


def test_untranslated_steps_reach_readers_in_the_default_language(sample):
    project, journeys, sends = sample
    decision = sends["aiko", "nudge"]
    outgoing = Delivery(project, "memory:", connect=False).build(decision, journeys[decision.journey, decision.version])
    html = list(outgoing.message.parsed.iter_parts())[1].get_content()
    assert outgoing.subject == "Worth a second look?" and '<html lang="en" dir="ltr">' in html
    assert "Unsubscribe" in html  # the English footer: the message is in one language


def test_simulated_drafts_of_localized_sends_finish_as_productions_messages(sample):
    project, journeys, sends = sample
    production = Delivery(project, "outbox:outbox", connect=False)
    renderer = SendRenderer(project, journeys.values())
    for (contact, step), decision in sends.items():
        if contact not in READERS:
            continue
        simulated, failure = renderer.build(decision)
        assert failure is None, failure
        message = production.build(decision, journeys[decision.journey, decision.version]).message
        boundary = message.data.split(b'boundary="', 1)[1].split(b'"', 1)[0].decode()
        assert simulated.draft.finish(boundary).data == message.data, (contact, step)


def test_one_renderer_keys_every_cache_by_locale_as_fresh_renderers_do():
    """Compiled templates, shapes and variant look-ups are shared by a tick's sends: rendering
    the same template in every language, in any order, with one renderer gives what a fresh
    renderer per message gives (the plain way), and each language keeps its own base/footer."""
    templates = REPO / "templates"
    shared = Renderer(templates)
    order = ["ja", "tr", "", "ar", "ja", "id", "", "tr", "ar"]
    for tag in order:
        variants = (tag,) if tag else ()
        context = {"contact": {"first_name": "Ada", "last_name": "Lovelace", "timezone": "UTC", "id": "ada"},
                   "scores": {}, "journey": {"id": "onboarding", "version": 3, "name": "x"},
                   "step": {"id": "welcome_signup_form"}, "project": {"name": "Kitebase"},
                   "unsubscribe_url": "https://kitebase.test/u?t=1", "now": START, "locale": locale_context(tag or "en")}
        for template in ("onboarding/welcome_signup_form", "onboarding/nurture_signup_form"):
            got = shared.render_email(template, "s", context, variants=variants)
            plain = Renderer(templates).render_email(template, "s", context, variants=variants)
            assert (got.html, got.text) == (plain.html, plain.text), (tag, template)
            assert f'lang="{tag or "en"}"' in got.html
    assert {name for name, _ in shared._variant_cache} >= {"onboarding/welcome_signup_form.html", "footer.html"}


def test_a_japanese_email_over_real_smtp_has_encoded_headers_and_utf8_bodies(sample, smtp_server: SmtpServer,
                                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_SECRET", "a-long-enough-test-secret-0123456789")
    project, journeys, sends = sample
    decision = sends["aiko", "welcome_signup_form"]
    delivery = Delivery(project, smtp_server.url(), transport=open_transport(smtp_server.url()))
    try:
        outgoing = delivery.build(decision, journeys[decision.journey, decision.version])
        delivery.deliver(outgoing)
    finally:
        delivery.close()
    received = smtp_server.messages[0]
    raw = received.data.replace(b"\r\n", b"\n")
    assert raw.isascii()  # 7-bit on the wire: RFC 2047 headers, quoted-printable bodies
    header = raw.split(b"\n\n", 1)[0].decode()
    subject_lines = header.split("Subject: ", 1)[1].split("\nDate:", 1)[0]
    assert "=?utf-8?" in subject_lines.lower() and all(len(line) <= 78 for line in subject_lines.split("\n"))
    assert str(make_header(decode_header(subject_lines.replace("\n", "")))) == "佐藤 様、Kitebase へようこそ"
    assert str(received.message["Subject"]) == "佐藤 様、Kitebase へようこそ"
    parts = list(received.message.iter_parts())
    assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["quoted-printable", "quoted-printable"]
    assert "ワークスペースの準備が整いました。" in parts[0].get_content()
    assert '<html lang="ja-JP" dir="ltr">' in parts[1].get_content()


# ---------------------------------------------------------------- validate


PROJECT = """\
name: Polyglot
localization:
  attribute: {attribute}
  default: en
  locales: [en, ja, pt-BR{extra}]
  missing: {missing}
tracking_plan:
  attributes:
    email: string
    locale: string
"""

JOURNEY = """\
id: hello
name: Hello
version: 1
stages:
  - id: main
    entry: {{event: signed_up}}
    steps:
      - id: welcome
        email:
          template: welcome
          subject: {subject}
      - id: later
        email:
          template: later
          subject: "Later"
"""


def polyglot(tmp_path: Path, *, subject: str = "{en: Hello, ja: こんにちは, pt: Olá}", variants=("ja", "pt"),
             attribute: str = "locale", missing: str = "error", extra: str = "") -> Path:
    (tmp_path / "project.yaml").write_text(PROJECT.format(attribute=attribute, missing=missing, extra=extra),
                                           encoding="utf-8")
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "hello.yaml").write_text(JOURNEY.format(subject=subject), encoding="utf-8")
    (tmp_path / "templates").mkdir()
    for name in ("welcome", "later", *(f"welcome.{tag}" for tag in variants)):
        (tmp_path / "templates" / f"{name}.html").write_text(
            '<html lang="{{ locale.tag }}" dir="{{ locale.dir }}"><p>{{ now|format_date }}</p></html>', encoding="utf-8")
    return tmp_path


def problems_of(root: Path) -> list[str]:
    with contextlib.chdir(root):  # problems name files relative to the cwd
        return [str(problem) for problem in validate(root=root).problems]


def test_a_complete_translation_validates_clean_and_pt_covers_pt_br(tmp_path: Path):
    assert problems_of(polyglot(tmp_path)) == []  # `later` is not translated: everyone reads English, no word


def test_a_declared_locale_without_a_template_is_an_error_at_the_steps_template(tmp_path: Path):
    found = problems_of(polyglot(tmp_path, variants=("ja",)))
    assert found == [
        "journeys/hello.yaml:10:21: error[locale.missing-template] no `pt-BR` template for `welcome`: contacts "
        "reading pt-BR get the en one (write templates/welcome.pt-BR.html (and its .txt), or set "
        "localization.missing: warning while the translation is on its way)"]


def test_missing_can_be_a_warning(tmp_path: Path):
    root = polyglot(tmp_path, variants=("ja",), missing="warning")
    with contextlib.chdir(root):
        result = validate(root=root)
    assert [(p.severity, p.code) for p in result.problems] == [("warning", "locale.missing-template")]
    assert result.exit_code == 0 and validate(root=root, strict=True).exit_code == 1


def test_a_subject_missing_for_a_declared_locale_is_reported_at_the_subject(tmp_path: Path):
    found = problems_of(polyglot(tmp_path, subject="{en: Hello, ja: こんにちは}"))
    assert found == ["journeys/hello.yaml:11:20: error[locale.missing-subject] no `pt-BR` subject: contacts "
                     "reading pt-BR get the en one (add `pt-BR: …` to the subject)"]


def test_a_plain_subject_on_a_translated_template_misses_every_locale(tmp_path: Path):
    found = problems_of(polyglot(tmp_path, subject='"Hello"'))
    assert [p.split("] ")[1].split(":")[0] for p in found] == ["no `ja` subject", "no `pt-BR` subject"]
    assert "subject: {en: …, ja: …}" in found[0]


def test_subjects_for_undeclared_locales_and_without_the_default_are_errors(tmp_path: Path):
    found = problems_of(polyglot(tmp_path, subject="{ja: こんにちは, jp: x, pt: Olá}"))
    assert any("error[locale.subject] subject for `jp`, a locale the project does not declare (nor one it falls back "
               "to); did you mean `ja`?"
               in p for p in found)
    assert any("error[locale.default-subject] the subject has no `en` entry" in p for p in found)


def test_a_country_code_written_as_a_locale_gets_its_language_as_a_hint(tmp_path: Path):
    found = problems_of(polyglot(tmp_path, extra=", kr"))
    assert found == ["project.yaml:5:28: error[locale.tag] `kr` is not a locale Babel knows; `kr` is a country, its "
                     "language is `ko` (write a BCP 47 tag: ja (Japanese), ar (Arabic), pt-BR (Brazilian Portuguese), "
                     "zh-Hant)"]


def test_the_attribute_must_be_in_the_tracking_plan_and_locales_must_be_known(tmp_path: Path):
    found = problems_of(polyglot(tmp_path, attribute="locle", extra=", klingon"))
    assert "project.yaml:3:14: error[locale.attribute] `locle` is not an attribute of the tracking plan; " \
           "did you mean `locale`?" in found[0]
    assert any(p.startswith("project.yaml:5:28: error[locale.tag] `klingon` is not a locale Babel knows") for p in found)


def test_a_subject_per_locale_needs_localization(tmp_path: Path):
    root = polyglot(tmp_path)
    text = (root / "project.yaml").read_text(encoding="utf-8")
    (root / "project.yaml").write_text(text.split("localization:")[0] + "tracking_plan:" + text.split("tracking_plan:")[1],
                                       encoding="utf-8")
    assert any("error[locale.subject] a subject per locale needs `localization:` in project.yaml" in p
               for p in problems_of(root))


def test_a_subjects_template_variables_are_checked_in_every_locale(tmp_path: Path):
    found = problems_of(polyglot(tmp_path, subject="{en: Hello, ja: '{{ contact.nme }}', pt: Olá}"))
    assert any("journeys/hello.yaml:11:37: warning[template.attribute]" in p and "nme" in p for p in found)


# ---------------------------------------------------------------- the CLI and scenarios


def journey(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180)


def test_cli_validate_fails_on_a_missing_translation_without_a_traceback(tmp_path: Path):
    result = journey("validate", cwd=polyglot(tmp_path, variants=("ja",)))
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    assert "journeys/hello.yaml:10:21: error[locale.missing-template] no `pt-BR` template" in result.stdout


def test_cli_render_shows_a_readers_message_in_their_language():
    result = journey("render", "onboarding", "welcome_signup_form", "--contact", "salma", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "Subject: مرحبًا بك في Kitebase، سلمى" in result.stdout
    assert '<html lang="ar" dir="rtl">' in result.stdout


def test_a_scenarios_subject_expectation_fails_on_another_language(tmp_path: Path):
    scenario = tmp_path / "wrong.scenario.yaml"
    scenario.write_text(textwrap.dedent(f"""\
        name: wrong language
        journeys: [onboarding]
        contacts: {REPO / "examples" / "contacts.yaml"}
        start: "2026-03-02T00:00:00Z"
        duration: 3d
        expect:
          - {{contact: aiko, receives: welcome_signup_form, subject: "Welcome to Kitebase, 愛子"}}
        """), encoding="utf-8")
    result = journey("test", str(scenario), cwd=REPO)
    assert result.returncode == 1
    assert "with subject 'Welcome to Kitebase, 愛子'" in result.stdout
    assert "sent with another subject" in result.stdout and "佐藤 様、Kitebase へようこそ" in result.stdout


def test_building_once_per_shape_still_builds_each_locale(tmp_path: Path):
    """Benchmarks build one send per context shape; two readers of the same shape but other
    locales get other templates, so a failure in one language is not hidden by the other."""
    from runner.core.engine import Decision

    root = polyglot(tmp_path)
    (root / "templates" / "welcome.ja.html").write_text("<p>{{ contact.nickname }}</p>", encoding="utf-8")
    loaded = load_project(root)
    journey = loaded.journeys[0]
    renderer = SendRenderer(loaded.project, loaded.journeys, once_per_shape=True)

    def send(contact: str, locale: str) -> Decision:
        detail = {"template": "welcome", "subject": "Hello", "text_template": None, "from": None, "reply_to": None,
                  "to": f"{contact}@example.com", "attributes": {"email": f"{contact}@example.com", "locale": locale},
                  "scores": {}, "timezone": "UTC"}
        return Decision(START, contact, journey.id, journey.version, "main", "welcome", "send", "email welcome",
                        f"{contact}:hello:1/1/welcome", detail)

    assert renderer.build(send("ann", "en"))[1] is None
    assert renderer.build(send("bob", "en")) == (None, None)  # same shape, same locale: reused
    _, failure = renderer.build(send("aya", "ja"))
    assert failure is not None and failure.where == "templates/welcome.ja.html:1" and "nickname" in failure.message
    assert renderer.built == 2


def test_cli_render_says_why_a_contacts_locale_was_not_used(tmp_path: Path):
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(textwrap.dedent("""\
        contacts:
          - id: kim
            timezone: Asia/Seoul
            attributes: {email: kim@example.com, first_name: Kim, source: signup_form, locale: klingon}
            events:
              - {at: "+0d 10:00", event: signed_up, properties: {source: signup_form}}
          - id: ana
            timezone: America/Sao_Paulo
            attributes: {email: ana@example.com, first_name: Ana, source: signup_form, locale: pt_BR}
            events:
              - {at: "+0d 10:00", event: signed_up, properties: {source: signup_form}}
        """), encoding="utf-8")
    kim = journey("render", "onboarding", "welcome_signup_form", "--contact", "kim", "--contacts", str(contacts), cwd=REPO)
    assert kim.returncode == 0, kim.stderr
    assert kim.stdout.splitlines()[1] == "# locale en: locale: 'klingon' is not a locale Babel knows; the default 'en' is used"
    assert "Subject: Welcome to Kitebase, Kim" in kim.stdout and '<html lang="en" dir="ltr">' in kim.stdout
    ana = journey("render", "onboarding", "welcome_signup_form", "--contact", "ana", "--contacts", str(contacts), cwd=REPO)
    assert ana.stdout.splitlines()[1] == "# locale pt-BR (then pt, en)"  # not translated into Portuguese: English
    assert "Subject: Welcome to Kitebase, Ana" in ana.stdout and '<html lang="en" dir="ltr">' in ana.stdout


def test_template_variants_nobody_gets_are_warnings(tmp_path: Path):
    root = polyglot(tmp_path, variants=("ja", "pt", "ko", "jp"))
    found = problems_of(root)
    assert found == [
        "templates/welcome.jp.html:1:1: warning[locale.undeclared] `jp` is a country, not a language: nobody gets "
        "this template (rename it welcome.ja.html)",
        "templates/welcome.ko.html:1:1: warning[locale.undeclared] a template for `ko`, a locale the project does not "
        "declare: nobody gets it (add ko to localization.locales: [en, ja, pt-BR], or rename it)",
    ]


def test_diff_tells_subject_changes_locale_by_locale():
    from runner.review.diff import diff_journeys

    old = {"id": "j", "version": 1, "stages": [{"id": "s", "entry": {"event": "e"}, "steps": [
        {"id": "welcome", "email": {"template": "welcome", "subject": "Welcome"}}]}]}
    new = copy.deepcopy(old)
    new["stages"][0]["steps"][0]["email"]["subject"] = {"en": "Welcome", "ja": "ようこそ"}
    assert [c.text for c in diff_journeys(old, new).changes][:1] == ["step welcome: subject (ja) added “ようこそ”"]
    newer = copy.deepcopy(new)
    newer["stages"][0]["steps"][0]["email"]["subject"] = {"en": "Welcome!", "tr": "Hoş geldiniz"}
    assert [c.text for c in diff_journeys(new, newer).changes][:3] == [
        "step welcome: subject (en) “Welcome” → “Welcome!”", "step welcome: subject (ja) removed “ようこそ”",
        "step welcome: subject (tr) added “Hoş geldiniz”"]


def test_a_template_name_too_long_for_the_file_system_is_a_problem_not_a_crash(tmp_path: Path):
    """Looking for its locale variants (``<name>.ja.html``) must not raise ENAMETOOLONG (test_mutations found it)."""
    root = polyglot(tmp_path)
    journey = root / "journeys" / "hello.yaml"
    journey.write_text(journey.read_text(encoding="utf-8").replace("template: later", f"template: {'a' * 300}"),
                       encoding="utf-8")
    found = problems_of(root)
    assert any("a" * 300 in problem and "error[" in problem for problem in found), found
