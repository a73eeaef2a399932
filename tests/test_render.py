"""The renderer: sandbox, strict variables, autoescape, limits, error locations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from runner.core.state import Contact
from runner.delivery.render import Renderer, RenderError, render_context


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    return write(
        tmp_path / "templates",
        {
            "base.html": "<html><head><style>p { color: red }</style></head><body>{% block body %}{% endblock %}"
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>',
            "welcome.html": '{% extends "base.html" %}{% block body %}<p>Hello {{ contact.first_name }}</p>{% endblock %}',
            "welcome.txt": "Hello {{ contact.first_name }} <{{ unsubscribe_url }}>",
            "nurture/newsletter.html": "<h1>Ideas</h1>\n<p>For {{ contact.company }} &amp; you</p>",
            "broken.html": "<p>line one</p>\n<p>{{ contact.first_name }}</p>\n<p>{{ contact.nickname }}</p>\n",
            "syntax.html": "<p>ok</p>\n{% if %}\n",
        },
    )


def context(**contact: object) -> dict:
    return {"contact": {"first_name": "Ada", "company": "Acme", **contact}, "unsubscribe_url": "https://u.test/?token=t"}


def test_renders_html_text_and_subject(templates: Path) -> None:
    email = Renderer(templates).render_email("welcome", "Welcome, {{ contact.first_name }}", context())
    assert email.subject == "Welcome, Ada"
    assert '<p style="color: red;">Hello Ada</p>' in email.html  # CSS inlined
    assert "<style>" not in email.html
    assert email.text == "Hello Ada <https://u.test/?token=t>"  # .txt used, not escaped


def test_text_is_derived_from_html_when_no_txt(templates: Path) -> None:
    email = Renderer(templates).render_email("nurture/newsletter", "Ideas", context())
    assert "Ideas" in email.text and "For Acme & you" in email.text
    assert "<" not in email.text


def test_contact_data_is_escaped_in_html_only(templates: Path) -> None:
    hostile = "<script>alert(1)</script>"
    email = Renderer(templates).render_email("welcome", "Hi {{ contact.first_name }}", context(first_name=hostile))
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert email.text.startswith("Hello <script>")  # plain text is not HTML
    assert email.subject == f"Hi {hostile}"


def test_joined_and_macro_output_is_escaped_in_html(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        {"t.html": "{% macro b(x) %}<b>{{ x }}</b>{% endmacro %}<p>{{ contact.first_name ~ '!' }}</p>{{ b(contact.first_name) }}"},
    )
    html = Renderer(folder).render_email("t", "s", context(first_name="<i>")).html
    assert "<p>&lt;i&gt;!</p>" in html and "<b>&lt;i&gt;</b>" in html


def test_ordinary_operators_still_work(templates: Path) -> None:
    out = Renderer(templates).render_string(
        "{{ 'a' ~ 'b' ~ 1 }}|{{ [1, 2] + [3] }}|{{ 'a' + 'b' }}|{{ 1 + 2 }}|{{ [1] * 3 }}|{{ {'a': [1, 2]} }}", context()
    )
    assert out == "ab1|[1, 2, 3]|ab|3|[1, 1, 1]|{'a': [1, 2]}"


def test_subject_is_one_line(templates: Path) -> None:
    email = Renderer(templates).render_email("welcome", "Hi {{ contact.first_name }}", context(first_name="A\r\nBcc: x"))
    assert email.subject == "Hi A Bcc: x"


def test_undefined_variable_names_template_and_line(templates: Path) -> None:
    with pytest.raises(RenderError) as caught:
        Renderer(templates).render_email("broken", "s", context())
    error = caught.value
    assert error.template == "broken.html" and error.line == 3
    assert "nickname" in str(error) and str(error).startswith("broken.html:3:")
    assert error.problems[0].line == 3 and error.problems[0].file.endswith("broken.html")


def test_errors_in_included_templates_name_that_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write(
        tmp_path,
        {
            "outer.html": "<p>one</p>\n{% include 'parts/inner.html' %}\n",
            "parts/inner.html": "<p>a</p>\n<p>b</p>\n<p>{{ contact.nickname }}</p>\n",
            "broken_outer.html": "{% include 'parts/broken.html' %}",
            "parts/broken.html": "ok\n\n{% for %}\n",
        },
    )
    with pytest.raises(RenderError) as caught:
        Renderer(folder).render_email("outer", "s", context())
    assert (caught.value.template, caught.value.line) == ("parts/inner.html", 3)
    monkeypatch.chdir(tmp_path.parent)  # a relative templates folder, as project.yaml gives it
    with pytest.raises(RenderError) as caught:
        Renderer(Path(tmp_path.name)).render_email("outer", "s", context())
    assert (caught.value.template, caught.value.line) == ("parts/inner.html", 3)
    assert caught.value.problems[0].file.endswith("parts/inner.html")
    with pytest.raises(RenderError) as caught:
        Renderer(folder).render_email("broken_outer", "s", context())
    assert (caught.value.template, caught.value.line) == ("parts/broken.html", 3)


def test_syntax_error_names_line(templates: Path) -> None:
    with pytest.raises(RenderError) as caught:
        Renderer(templates).render_email("syntax", "s", context())
    assert caught.value.line == 2


def test_missing_template(templates: Path) -> None:
    with pytest.raises(RenderError, match="not found"):
        Renderer(templates).render_email("nope", "s", context())


def test_default_filter_works_with_strict_undefined(templates: Path) -> None:
    renderer = Renderer(templates)
    assert renderer.render_string("Hi {{ contact.nickname | default('there') }}", context()) == "Hi there"
    with pytest.raises(RenderError, match="undefined"):
        renderer.render_string("Hi {{ contact.nickname }}", context())


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ contact.__class__ }}",
        "{{ [].append(1) }}",  # immutable sandbox: no mutation of data
        "{{ contact.update({'id': 'x'}) }}",
        "{{ range.__self__ }}",
    ],
)
def test_sandbox_escapes_are_blocked(templates: Path, source: str) -> None:
    with pytest.raises(RenderError, match="unsafe|not safely|undefined"):
        Renderer(templates).render_string(source, context())


BIG = "{% set big = 'x' * 1000000 %}"


@pytest.mark.parametrize(
    "source, reason",
    [
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loop"),
        ("{{ 'x' * 10**9 }}", "size limit"),
        ("{{ 10 ** 100000000 }}", "too large"),
        ("{{ '%999999999s' % 1 }}", "size limit"),
        ("{{ '{:>999999999}'.format(1) }}", "size limit"),
        ("{{ 'x' | center(999999999) }}", "size limit"),
        ("{{ ('x' * 1000000) | replace('', 'yy') }}", "size limit"),
        ("{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x') }}", "size limit"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nested"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "size limit",
        ),
        ("{% for i in range(100000) %}{% for j in range(100) %}xxxxxxxxxx{% endfor %}{% endfor %}", "size limit"),
        # a 1 MB string is fine; copies of it joined into something bigger are not:
        (BIG + "{% set y %}{% for i in range(1000) %}{{ big }}{% endfor %}{% endset %}", "size limit"),
        (BIG + "{% macro m() %}{% for i in range(1000) %}{{ big }}{% endfor %}{% endmacro %}{{ m() }}", "size limit"),
        (BIG + "{{ big ~ big }}", "size limit"),
        (BIG + "{{ big + big }}", "size limit"),
        (BIG + "{{ [big] * 1000 }}", "size limit"),
        (BIG + "{{ [big, big] }}", "size limit"),
        (BIG + "{{ [big, big] | join }}", "size limit"),
    ],
)
def test_exploding_templates_are_stopped(templates: Path, source: str, reason: str) -> None:
    # the time limit (tested on its own below) is out of the way: the guard named must fire, on any machine
    with pytest.raises(RenderError, match=reason):  # stopped by a guard, not finished (that would take hours)
        Renderer(templates, time_limit=600.0).render_string(source, context())


def test_time_limit_stops_a_slow_render(templates: Path) -> None:
    renderer = Renderer(templates, time_limit=0.2, loop_limit=10**12)
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(RenderError, match=r"longer than 0.2s"):
        renderer.render_string(source, context())


def test_limits_leave_ordinary_templates_alone(templates: Path) -> None:
    renderer = Renderer(templates, size_limit=10_000)
    out = renderer.render_string("{% for i in range(100) %}{{ '%03d' % i }}{{ 'ab' * 3 }}{% endfor %}", context())
    assert out.startswith("000ababab001ababab") and len(out) == 900
    with pytest.raises(RenderError, match="size limit"):
        renderer.render_string("{% for i in range(2000) %}{{ 'abcdef' }}{% endfor %}", context())


def test_large_numbers_as_data_are_fine(templates: Path) -> None:
    source = "{{ contact.revenue | round | int }} {{ '{:,}'.format(contact.revenue) }} {{ '%d' % contact.revenue }} {{ contact.revenue * 2 }}"
    out = Renderer(templates).render_string(source, context(revenue=5_000_000))
    assert out == "5000000 5,000,000 5000000 10000000"
    with pytest.raises(RenderError, match="size limit"):
        Renderer(templates).render_string("{{ 'x'.ljust(contact.revenue) }}", context(revenue=5_000_000))


def test_compiled_templates_are_cached(templates: Path) -> None:
    renderer = Renderer(templates)
    renderer.render_email("welcome", "Hi", context())
    first = renderer.env.get_template("welcome.html")
    (templates / "welcome.html").write_text("changed")
    renderer.render_email("welcome", "Hi", context())
    assert renderer.env.get_template("welcome.html") is first


def test_remote_stylesheets_are_not_fetched(tmp_path: Path) -> None:
    folder = write(tmp_path, {"t.html": '<link rel="stylesheet" href="http://127.0.0.1:9/x.css"><p>x</p>'})
    email = Renderer(folder).render_email("t", "s", {})
    assert "<p>x</p>" in email.html


def test_render_context_shape() -> None:
    contact = Contact(id="ada", attributes={"first_name": "Ada", "meddic": {"metrics": "ROI"}}, timezone="Europe/Istanbul")
    journey = SimpleNamespace(id="onboarding", version=3, name="Onboarding")
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    ctx = render_context(contact, {"lead": 42}, journey, "welcome", SimpleNamespace(name="Acme"), "https://u", now)
    assert ctx == {
        "contact": {"first_name": "Ada", "meddic": {"metrics": "ROI"}, "id": "ada", "timezone": "Europe/Istanbul"},
        "scores": {"lead": 42},
        "journey": {"id": "onboarding", "version": 3, "name": "Onboarding"},
        "step": {"id": "welcome"},
        "project": {"name": "Acme"},
        "unsubscribe_url": "https://u",
        "now": now,
        "locale": {"tag": "en", "language": "en", "dir": "ltr", "name": "English"},  # a project's default language
    }
    ctx["contact"]["first_name"] = "changed"
    assert contact.attributes["first_name"] == "Ada"  # the template context is a copy
    out = Renderer(Path(".")).render_string(
        "{{ contact.meddic.metrics }} {{ scores.lead }} {{ journey.id }}@{{ journey.version }} {{ now.year }}", ctx
    )
    assert out == "ROI 42 onboarding@3 2026"


def test_media_queries_survive_inlining(tmp_path: Path) -> None:
    folder = write(tmp_path, {"m.html": "<style>p{color:red} @media (max-width:600px){p{color:blue}}</style><p>x</p>"})
    html = Renderer(folder).render_email("m", "s", {}).html
    assert '<p style="color: red;">x</p>' in html
    assert "@media (max-width:600px)" in html


@pytest.mark.parametrize(
    "source, reason",
    [
        ("{{ ('x' * 1000000) | wordwrap(1) }}", "wordwrap longer than"),
        ("{{ ('www.a.test ' * 50000) | urlize }}", "urlize longer than"),
        ("{{ lipsum(100000) }}", "lipsum is limited"),
        ("{{ ('x' * 1000000) | list | sort }}", "100000 items"),
        ("{{ ('x,' * 200000).split(',') }}", "100000 items"),
    ],
)
def test_costly_builtins_are_capped_before_running(templates: Path, source: str, reason: str) -> None:
    with pytest.raises(RenderError, match=reason):
        Renderer(templates).render_string(source, context())


def test_small_uses_of_capped_builtins_work(templates: Path) -> None:
    out = Renderer(templates).render_string("{{ 'aaa bbb ccc' | wordwrap(4) }}|{{ lipsum(2, html=False) | length > 0 }}", context())
    assert out == "aaa\nbbb\nccc|True"


def test_ordinary_widths_joins_and_integer_arithmetic_still_render(tmp_path):
    """The limits on hostile sizes leave everyday formatting alone."""
    source = ("{{ '%5.2f' % 3.14159 }}|{{ '{:>6}'.format('ab') }}|{{ 'a\\nb'|indent(2, first=True) }}|"
              "{{ ['x', 'y']|join(', ') }}|{{ {'a': [1]}|tojson(indent=2)|length }}|{{ 1234 // 100 }}|"
              "{{ 7 % 3 }}|{{ 2 ** 64 }}|{{ ('\\t').expandtabs(4)|length }}|{{ '%(n)03d'|format(n=7) }}")
    rendered = Renderer(tmp_path).render_string(source, {})
    assert rendered == " 3.14|    ab|  a\n  b|x, y|22|12|1|18446744073709551616|4|007"
