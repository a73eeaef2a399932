"""An email's inlined HTML and plain text, worked out once per template shape.

Converting HTML to text (inscriptis) cost about ten times the render itself,
and inlining CSS about as much as the render. Yet most of a message is the
same for every contact: only the values of the ``{{ expressions }}`` differ.
So the renderer marks each expression's value in its output (``ValueMarks``);
the HTML with the values replaced by placeholders is the message's *shape*,
which is inlined and converted to text once (``Shapes``); each message then
puts its own values into the shape's inlined HTML and text.

The result must be the bytes the long way gives (inline this message, convert
it), so a message takes the long way whenever the shortcut could differ:

* the template captures output (macros, call, filter and set blocks,
  ``super()``, ``self``, recursive loops): a marked value could end up inside
  a computation (``length``, ``replace``) instead of the output;
* a value is markup (``|safe``), empty, has line breaks, tabs, runs of
  spaces or spaces at either end, characters outside printable text, ``<``,
  ``>`` or ``"``, or was not HTML-escaped on output: inscriptis would fold or
  parse it differently from a placeholder, or the serializer escape it
  differently;
* a placeholder sits where a value can change the parse, the CSS matching
  or the text layout: in a tag or attribute name, a comment, a ``class``,
  ``id`` or ``style`` attribute, an attribute when the CSS has attribute
  selectors, an attribute value with a space, a ``<style>``/``<script>``
  element, or a table (whose columns are as wide as their text).

Text derived from HTML keeps every link as ``text (url)`` (the unsubscribe
link included): a text part without URLs leaves its reader nothing to click.
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2
import lxml.html
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from inscriptis.model.tag import CustomHtmlTagHandlerMapping
from jinja2 import nodes
from markupsafe import escape

OPEN, CLOSE = "\ue000", "\ue001"  # private-use characters around a marked value
_MARKED = re.compile(f"{OPEN}([^{OPEN}{CLOSE}]*){CLOSE}")
_PLACEHOLDER = re.compile(f"{OPEN}(\\d+){CLOSE}")
_ENTITY_BEFORE = re.compile(f"&[#\\w]*{OPEN}")  # a value could complete an entity started here
_SIMPLE_VALUE = re.compile(r'[^\s<>"\ue000\ue001]+(?: [^\s<>"\ue000\ue001]+)*')
# Node types whose output is captured into a value instead of streamed out.
_CAPTURING = (nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.AssignBlock, nodes.Import, nodes.FromImport)
_CAPTURING_NAMES = frozenset({"super", "self", "caller", "varargs", "kwargs"})
_RAW_TEXT = frozenset({"style", "script", "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext", "textarea"})
_LAYOUT_ATTRIBUTES = frozenset({"class", "id", "style"})
_TABLE = frozenset({"table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption"})


# ---------------------------------------------------------------- text with links


def _link_start(state: Any, attrs: dict) -> None:
    href = (attrs.get("href") or "").strip()
    links = state.__dict__.setdefault("journey_links", [])
    links.append(href)


def _link_end(state: Any) -> None:
    links = state.__dict__.get("journey_links") or [""]
    href = links.pop()
    if href:
        state.tags[-1].write(f" ({href})")


_TEXT_CONFIG = ParserConfig(custom_html_tag_handler_mapping=CustomHtmlTagHandlerMapping(
    start_tag_mapping={"a": _link_start}, end_tag_mapping={"a": _link_end}))


def html_to_text(html: str) -> str:
    """The text part for an HTML body: inscriptis' layout, each link as ``text (url)``."""
    return get_text(html, _TEXT_CONFIG).strip() + "\n"


# ---------------------------------------------------------------- marking values


@dataclass
class ValueMarks:
    """The values one render printed, in order; ``exact`` turns False when one cannot be reused."""

    values: list[str] = field(default_factory=list)
    exact: bool = True

    def wrap(self, value: Any) -> Any:
        """``value`` as printed, between markers (Jinja escapes the text, not the markers)."""
        if hasattr(value, "__html__"):  # markup is printed as it is: its text is not a value
            self.exact = False
            return value
        text = str(value)
        self.values.append(text)
        return f"{OPEN}{text}{CLOSE}"


marking: contextvars.ContextVar[ValueMarks | None] = contextvars.ContextVar("value_marks", default=None)


def split_marked(marked: str, marks: ValueMarks) -> tuple[str | None, tuple[str, ...] | None]:
    """(the HTML without markers, its static parts), the parts None when the values cannot be reused.

    The HTML is None when markers came from elsewhere (a value or markup containing
    one): the pairs are then ambiguous and the template must be rendered unmarked.
    """
    count = len(marks.values)
    if marked.count(OPEN) != count or marked.count(CLOSE) != count:
        return None, None
    pieces = _MARKED.split(marked)
    html = "".join(pieces)
    if not marks.exact or not all(_reusable(v, shown) for v, shown in zip(marks.values, pieces[1::2], strict=True)):
        return html, None
    return html, tuple(pieces[0::2])


def _reusable(value: str, printed: str) -> bool:
    """A value that inscriptis and the CSS inliner treat exactly as they treat a placeholder."""
    return value.isprintable() and _SIMPLE_VALUE.fullmatch(value) is not None and printed == escape(value)


def captures_output(env: jinja2.Environment, name: str, seen: set[str] | None = None) -> bool:
    """Does the template (or one it extends or includes) capture output into values?"""
    seen = set() if seen is None else seen
    if name in seen:
        return False
    seen.add(name)
    try:
        source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        tree = env.parse(source, name)
    except Exception:  # noqa: BLE001 - the render reports it
        return True
    if any(True for _ in tree.find_all(_CAPTURING)):
        return True
    if any(loop.recursive for loop in tree.find_all(nodes.For)):
        return True
    if any(n.name in _CAPTURING_NAMES for n in tree.find_all(nodes.Name)):
        return True
    for node in tree.find_all((nodes.Extends, nodes.Include)):
        template = node.template  # type: ignore[attr-defined]  # both node types have .template
        if not isinstance(template, nodes.Const) or not isinstance(template.value, str):
            return True
        if captures_output(env, env.join_path(template.value, name), seen):  # a locale's variant, when rendering one
            return True
    return False


# ---------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Shape:
    """One template shape, inlined (and converted to text when asked): static parts and value slots."""

    html: tuple[str | int, ...]  # inlined HTML: text pieces and value indexes
    text: tuple[str | int, ...] | None  # None: not worked out yet
    attribute_slots: frozenset[int]  # values inside attribute values (must not contain spaces)

    def fill_html(self, values: list[str]) -> str:
        return _fill(self.html, [v.replace("&", "&amp;") for v in values])

    def fill_text(self, values: list[str]) -> str:
        return _fill(self.text or (), values)

    def fits(self, values: list[str]) -> bool:
        """Values in attribute slots must not contain spaces (an unquoted value would end there)."""
        return not any(" " in values[i] for i in self.attribute_slots)


def text_fits(values: list[str]) -> bool:
    """inscriptis unescapes the text it writes once more: a value with ``&`` could become another character."""
    return not any("&" in value for value in values)


def _fill(parts: tuple[str | int, ...], values: list[str]) -> str:
    return "".join(values[part] if isinstance(part, int) else part for part in parts)


def _slots(text: str) -> tuple[str | int, ...]:
    pieces = _PLACEHOLDER.split(text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(pieces))


class Shapes:
    """Inlined HTML and text of each template shape seen, computed on first use (bounded)."""

    def __init__(self, inline: Callable[[str], str], size: int = 512):
        self.inline = inline
        self._shape = functools.lru_cache(maxsize=size)(self._make)
        self._text = functools.lru_cache(maxsize=size)(self._make_text)

    def get(self, static: tuple[str, ...], with_text: bool) -> Shape | None:
        """The shape for these static parts; None when a value there could change more than its own bytes."""
        shape = self._shape(static)
        if shape is None or not with_text:
            return shape
        text = self._text(static)
        return None if text is None else Shape(shape.html, text, shape.attribute_slots)

    def _make(self, static: tuple[str, ...]) -> Shape | None:
        skeleton = _skeleton(static)
        slots = _slot_places(skeleton, len(static) - 1, for_text=False)
        if slots is None:
            return None
        try:
            inlined = self.inline(skeleton)
        except Exception:  # noqa: BLE001 - the long way reports it
            return None
        parts = _slots(inlined)
        if sorted(p for p in parts if isinstance(p, int)) != list(range(len(static) - 1)):
            return None  # the inliner dropped or repeated a placeholder
        return Shape(parts, None, slots)

    def _make_text(self, static: tuple[str, ...]) -> tuple[str | int, ...] | None:
        skeleton = _skeleton(static)
        if _slot_places(skeleton, len(static) - 1, for_text=True) is None:
            return None
        try:
            return _slots(html_to_text(self.inline(skeleton)))
        except Exception:  # noqa: BLE001 - the long way reports it
            return None


def _skeleton(static: tuple[str, ...]) -> str:
    out = [static[0]]
    for index, part in enumerate(static[1:]):
        out += [f"{OPEN}{index}{CLOSE}", part]
    return "".join(out)


def _slot_places(skeleton: str, count: int, *, for_text: bool) -> frozenset[int] | None:
    """The placeholders found in attribute values; None when one is anywhere unsafe (see the module doc)."""
    try:
        root = lxml.html.document_fromstring(skeleton)
    except Exception:  # noqa: BLE001 - not parseable as a document: take the long way
        return None
    found: list[int] = []
    in_attributes: set[int] = set()
    styles = " ".join(style.text or "" for style in root.iter("style"))
    for element in root.iter():
        if not isinstance(element.tag, str):  # comments, processing instructions
            if _PLACEHOLDER.search(element.text or ""):
                return None
            found += [int(n) for n in _PLACEHOLDER.findall(element.tail or "")]
            continue
        if _PLACEHOLDER.search(element.tag):
            return None
        texts = (element.text or "", element.tail or "", *element.attrib.values())
        if for_text and any(_ENTITY_BEFORE.search(text) for text in texts):
            return None
        for name, value in element.attrib.items():
            if _PLACEHOLDER.search(str(name)):  # str already (parsed from text); lxml's types allow bytes
                return None
            slots = [int(n) for n in _PLACEHOLDER.findall(str(value))]
            if slots and (name.lower() in _LAYOUT_ATTRIBUTES or "[" in styles):
                return None
            found += slots
            in_attributes.update(slots)
        text_slots = [int(n) for n in _PLACEHOLDER.findall(element.text or "")]
        tail_slots = [int(n) for n in _PLACEHOLDER.findall(element.tail or "")]
        if text_slots and element.tag.lower() in _RAW_TEXT:
            return None
        if for_text and ((text_slots and _in_table(element)) or (tail_slots and _in_table(element.getparent()))):
            return None
        found += text_slots + tail_slots
    if sorted(found) != list(range(count)):
        return None  # a placeholder the parser moved, merged or dropped
    return frozenset(in_attributes)


def _in_table(holder: Any) -> bool:
    """Is text held by this element laid out as part of a table?"""
    return holder is not None and any(e.tag in _TABLE for e in (holder, *holder.iterancestors()))
