"""journey validate's answer about a template equals what rendering it does.

Each case is a template, a contact, and whether it renders; validate must
report an error exactly for the ones that do not. Before, an include of
``/etc/passwd`` or ``../../outside.html`` passed validate and failed at
render, and a ``{% set %}`` or macro inside ``{% if %}`` was an error for
validate though it rendered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.core.problems import ERROR
from runner.delivery.render import Renderer, RenderError
from runner.language.templatecheck import TemplateContext, check_source

CASES = [
    # (id, template, renders)
    ("include-partial", "{% include 'partial.html' %}", True),
    ("include-nested-folder", "{% include 'parts/footer.html' %}", True),
    ("include-absolute", "{% include '/etc/passwd' %}", False),
    ("include-absolute-inside-name", "{% include '/partial.html' %}", True),  # Jinja drops the leading /
    ("include-parent", "{% include '../../outside.html' %}", False),
    ("include-parent-then-back", "{% include 'parts/../partial.html' %}", False),  # '..' is refused outright
    ("include-missing", "{% include 'nope.html' %}", False),
    ("include-folder", "{% include 'parts' %}", False),
    ("set-in-if-and-else", "{% if contact.vip %}{% set hi = 'Dear' %}{% else %}{% set hi = 'Hi' %}{% endif %}{{ hi }}",
     True),
    ("set-in-taken-if", "{% if contact.first_name %}{% set hi = 'Hi' %}{% endif %}{{ hi }}", True),
    ("set-in-elif", "{% if contact.vip %}{% set hi = 1 %}{% elif true %}{% set hi = 2 %}{% endif %}{{ hi }}", True),
    ("macro-in-if", "{% if true %}{% macro greet(n) %}Hi {{ n }}{% endmacro %}{% endif %}{{ greet('Ada') }}", True),
    ("import-in-if", "{% if true %}{% import 'macros.html' as m %}{% endif %}{{ m.hello() }}", True),
    ("from-import-in-if", "{% if true %}{% from 'macros.html' import hello %}{% endif %}{{ hello() }}", True),
    ("set-block-in-if", "{% if true %}{% set body %}text{% endset %}{% endif %}{{ body }}", True),
    ("set-inside-for-read-after", "{% for i in [1] %}{% set last = i %}{% endfor %}{{ last }}", False),
    ("set-inside-macro-read-outside", "{% macro m() %}{% set inner = 1 %}{% endmacro %}{{ inner }}", False),
    ("plain-set", "{% set hi = 'Hi' %}{{ hi }}", True),
    ("undefined", "{{ greeting }}", False),
    ("unknown-filter", "{{ contact.first_name|de- fault('friend') }}", False),  # a traceback in validate before
    ("loop-variable", "{% for i in [1, 2] %}{{ loop.index }}{% endfor %}", True),
]


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("project") / "templates"
    (folder / "parts").mkdir(parents=True)
    (folder / "partial.html").write_text("partial", encoding="utf-8")
    (folder / "parts" / "footer.html").write_text("footer", encoding="utf-8")
    (folder / "macros.html").write_text("{% macro hello() %}hello{% endmacro %}", encoding="utf-8")
    (folder.parent.parent / "outside.html").write_text("outside", encoding="utf-8")
    return folder


@pytest.mark.parametrize(("source", "renders"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_agrees_with_render(templates: Path, source: str, renders: bool):
    errors = [p for p in check_source(source, "t.html", TemplateContext(templates_dir=templates)) if p.severity == ERROR]
    try:
        Renderer(templates).render_string(source, {"contact": {"first_name": "Ada", "vip": True}})
        rendered = True
    except RenderError:
        rendered = False
    assert rendered is renders, "the table is wrong about rendering"
    assert (not errors) is renders, [p.message for p in errors]
