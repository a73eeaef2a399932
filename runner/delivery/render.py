"""Render email templates written by marketers, safely.

Templates are untrusted input: they render in Jinja2's immutable sandbox with
``StrictUndefined`` (a typo in a variable is an error, not an empty string),
HTML autoescaping for ``.html`` files, and two budgets per render:

* **time** (default 2 s): checked at every loop iteration, every function,
  macro and filter call and every 64 chunks of output. A single builtin call
  cannot be interrupted, so the limit can be overrun by the duration of one
  such call; the size caps below keep those to about a second at worst.
* **size** (default 1 MiB): the output and every intermediate string must
  stay below it, collections below 100,000 items, integers used as sizes
  (``center``, ``indent``, format widths) below it; ``'x' * 10**9``,
  ``10 ** 10 ** 10`` and ``'%999999999s' % 1`` are refused *before* they
  allocate. Where a size multiplies (``indent`` and ``expandtabs`` by the
  lines or tabs, ``join`` and ``translate`` by the items or characters, the
  widths of a whole format string), the product is what is checked; widths
  taken from arguments (``'%*s'``, ``'{0:{1}}'``) are refused. Loops are
  capped at ``loop_limit`` iterations per render.
* **integers** stay below ``MAX_INT_BITS`` (about 2,400 digits) in
  arithmetic: big-integer ``*``, ``**``, ``//`` and ``%`` cost time no
  budget check could interrupt (one ``//`` ran 30 s past a 2 s limit).

No threads or signals are used, so a stopped render leaves nothing running.
Any failure becomes :class:`RenderError` naming the template and line.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import os
import re
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import css_inline
import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace, generate_lorem_ipsum

from runner.core.problems import JourneyError, Problem
from runner.delivery.htmltext import (
    Shapes,
    ValueMarks,
    captures_output,
    html_to_text,
    marking,
    split_marked,
    text_fits,
)
from runner.delivery.localefilters import LOCALE_FILTERS
from runner.language.locales import DEFAULT_LANGUAGE, display_name, text_direction, variant_name
from runner.language.projectfiles import UnsafeFile, read_inside

HTML_EXTENSIONS = (".html", ".htm")
MAX_ITEMS = 100_000  # list/dict size cap (Jinja's sandbox caps range() at the same)
LIPSUM_MAX_PARAGRAPHS = 100
# Filters whose cost grows faster than their input: smaller input caps keep
# each call within milliseconds (wordwrap(1) on 1 MiB takes half a minute).
HEAVY_FILTER_INPUT = {"do_wordwrap": 64 * 1024, "do_urlize": 256 * 1024}
MAX_INT_BITS = 8192  # operands and results of integer arithmetic (2,466 digits)
MAX_JSON_INDENT = 64
_GUARD_FILTER = "_journey_loop_guard"
STRING_TEMPLATE = "<string>"  # the name of a string's errors (subjects, webhook payload values)


class RenderError(JourneyError):
    """A template failed to compile or render; names the template and line."""

    def __init__(self, template: str, line: int | None, message: str, file: str | None = None,
                 label: str | None = None):
        self.template = template
        self.line = line
        self.detail = message
        self.label = label
        if label:  # a string template (a subject): its name, not Jinja's "<string>:1"
            where = f"{label}, line {line}" if line and line > 1 else label
        else:
            where = f"{template}:{line}" if line else template
        problem = Problem(
            file=file or template, line=line or 1, col=1, code="template.render", message=message
        )
        super().__init__(f"{where}: {message}", [problem])

    def named(self, label: str) -> RenderError:
        """The same error for a string template, named as its author knows it (``the subject
        of step 'hello'``)."""
        return RenderError(self.template, self.line, self.detail, label=label)


class LimitExceeded(SecurityError):
    """A render went over its time, size or loop budget."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@dataclass
class _Budget:
    """What one render may still spend; lives in a context variable."""

    deadline: float
    size_limit: int
    loops_left: int
    time_limit: float

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"render took longer than {self.time_limit:g}s")

    @property
    def item_limit(self) -> int:
        """Collections are capped lower than strings: no email needs 100,000 list items."""
        return min(self.size_limit, MAX_ITEMS)

    def check_size(self, value: Any) -> Any:
        """Refuse a string, or a collection that would print as one, above the limits."""
        if isinstance(value, (str, bytes)):
            if len(value) > self.size_limit:
                raise LimitExceeded(f"text longer than the size limit ({self.size_limit} characters)")
        elif isinstance(value, _COLLECTIONS):
            if len(value) > self.item_limit:
                raise LimitExceeded(f"collection larger than the size limit ({self.item_limit} items)")
            if _weight(value, self.size_limit) > self.size_limit:
                raise LimitExceeded(f"collection larger than the size limit ({self.size_limit} characters as text)")
        return value

    def check_int(self, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > self.size_limit:
            raise LimitExceeded(f"number {value} is above the size limit ({self.size_limit})")


_COLLECTIONS = (list, tuple, dict, set, frozenset)


def _weight(value: Any, limit: int) -> int:
    """About how many characters ``value`` becomes as text; stops counting past ``limit``."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if not isinstance(value, _COLLECTIONS):
        return 8
    items = itertools.chain.from_iterable(value.items()) if isinstance(value, dict) else value
    total = 2
    for item in items:
        total += 2 + (len(item) if isinstance(item, (str, bytes)) else _weight(item, limit - total))
        if total > limit:
            break
    return total


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("render_budget", default=None)
# The contact's locales besides the default, nearest first, while one of its messages renders:
# a template it extends or includes resolves to its nearest variant (``GuardedEnvironment.join_path``).
_variants: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("render_variants", default=())


def _current() -> _Budget | None:
    return _budget.get()


# Calls whose integer arguments are sizes (widths, counts): those must stay
# below the size limit. Other integers (prices, ids, timestamps) are data.
SIZE_ARGUMENT_FILTERS = frozenset({"do_center", "do_indent", "do_wordwrap", "do_truncate", "do_slice", "do_batch"})
SIZE_ARGUMENT_STR_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
COUNT_ARGUMENT_FILTERS = frozenset({"do_slice", "do_batch"})  # they build that many lists or items


def _check_call(args: tuple, kwargs: dict, *, sizes: bool = False) -> None:
    budget = _current()
    if budget is None:
        return
    budget.tick()
    for value in (*args, *kwargs.values()):
        if sizes:
            budget.check_int(value)
        budget.check_size(value)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d+))?")


@functools.lru_cache(maxsize=4096)
def _format_widths(fmt: str) -> int:
    """All widths and precisions of a printf- or str.format-style string added up
    (what formatting it may allocate); -1 for a width taken from the arguments."""
    numbers = [n for match in _PERCENT_SPEC.finditer(fmt) for n in match.groups() if n]
    try:
        for _, _, spec, _ in string.Formatter().parse(fmt):
            if spec and "{" in spec:
                return -1
            numbers += re.findall(r"\d+", spec or "")
    except ValueError:
        pass  # not a str.format template; Python reports it when it is used as one
    if "*" in numbers:
        return -1
    return sum(int(n) for n in numbers)


def _check_format_widths(fmt: Any) -> None:
    """Refuse printf- and str.format-style widths that would allocate too much, before formatting."""
    budget = _current()
    if budget is None or not isinstance(fmt, str):
        return
    if "%" in fmt or "{" in fmt:
        widths = _format_widths(fmt)
        if widths < 0:
            raise LimitExceeded("widths taken from arguments ('%*s', '{0:{1}}') are not allowed in templates")
        if widths > budget.size_limit:
            raise LimitExceeded(f"format widths add up to {widths}, above the size limit ({budget.size_limit})")


def _check_growth(name: str, text: Any, args: tuple, kwargs: dict) -> None:
    """Refuse a string method or filter whose result multiplies a size argument
    (by lines, tabs, items or characters) past the size limit, before it runs."""
    budget = _current()
    if budget is None or not isinstance(text, str):
        return
    estimate = 0
    if name in ("indent", "do_indent"):
        width = kwargs.get("width", args[0] if args else 4)
        width = len(width) if isinstance(width, str) else width
        estimate = len(text) + (width if isinstance(width, int) else 0) * (text.count("\n") + 1)
    elif name == "expandtabs":
        size = kwargs.get("tabsize", args[0] if args else 8)
        estimate = len(text) + (size if isinstance(size, int) else 0) * text.count("\t")
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        estimate = len(text) * longest
    if estimate > budget.size_limit:
        raise LimitExceeded(f"{name.removeprefix('do_')} would make about {estimate} characters, "
                            f"above the size limit ({budget.size_limit})")


def _bounded_join(separator: str, items: Any) -> list:
    """The items of a join as a list, refused when joining them would pass the size limit."""
    budget = _current()
    items = list(items)
    if budget is not None:
        if len(items) > budget.item_limit:
            raise LimitExceeded(f"joining more than {budget.item_limit} items")
        estimate = len(separator) * max(len(items) - 1, 0) + _weight(items, budget.size_limit)
        if estimate > budget.size_limit:
            raise LimitExceeded(f"join would make about {estimate} characters, above the size limit ({budget.size_limit})")
    return items


def _check_replace(text: Any, old: Any, new: Any) -> None:
    budget = _current()
    if budget is None or not all(isinstance(v, str) for v in (text, old, new)):
        return
    hits = len(text) + 1 if old == "" else text.count(old)
    if len(text) + hits * max(len(new) - len(old), 0) > budget.size_limit:
        raise LimitExceeded(f"replace would exceed the size limit ({budget.size_limit})")


def _guard_filter(func: Callable) -> Callable:
    """Wrap a built-in filter with the call checks (filters bypass ``call``)."""

    name = func.__name__
    special = name in ("do_format", "do_replace", "do_indent", "do_join", "do_tojson") or name in HEAVY_FILTER_INPUT
    sizes = name in SIZE_ARGUMENT_FILTERS
    counts = name in COUNT_ARGUMENT_FILTERS

    @functools.wraps(func)  # keeps jinja_pass_arg, so context passing still works
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_call(args, kwargs, sizes=sizes)
        if special:
            values = [a for a in args if not isinstance(a, (jinja2.runtime.Context, jinja2.Environment, nodes.EvalContext))]
            if name == "do_format" and values:
                _check_format_widths(values[0])
            elif name == "do_replace" and len(values) >= 3:
                _check_replace(str(values[0]), values[1], values[2])
            elif name == "do_indent" and values:
                _check_growth(name, str(values[0]), tuple(values[1:]), kwargs)
            elif name == "do_join" and values:
                separator = values[1] if len(values) > 1 else kwargs.get("d", "")
                args = tuple(a if a is not values[0] else _bounded_join(str(separator), values[0]) for a in args)
            elif name == "do_tojson":
                indent = kwargs.get("indent", values[1] if len(values) > 1 else None)
                if isinstance(indent, int) and indent > MAX_JSON_INDENT:
                    raise LimitExceeded(f"tojson indent above {MAX_JSON_INDENT}")
            elif values and len(str(values[0])) > HEAVY_FILTER_INPUT.get(name, 1 << 62):
                raise LimitExceeded(f"input of {name.removeprefix('do_')} longer than {HEAVY_FILTER_INPUT[name]} characters")
        budget = _current()
        if counts and budget is not None:
            plain = [a for a in args if not isinstance(a, (jinja2.runtime.Context, jinja2.Environment, nodes.EvalContext))]
            for value in plain[1:2]:
                if isinstance(value, int) and value > budget.item_limit:
                    raise LimitExceeded(f"{name.removeprefix('do_')} into more than {budget.item_limit} parts")
        result = func(*args, **kwargs)
        return budget.check_size(result) if budget else result

    return guarded


def _loop_guard(iterable: Any) -> Any:
    """Yield from ``iterable``, spending one loop iteration of the budget each time."""
    budget = _current()
    for item in iterable:
        if budget is not None:
            budget.loops_left -= 1
            if budget.loops_left < 0:
                raise LimitExceeded("too many loop iterations in one render")
            budget.tick()
        yield item


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    """Jinja's ``lipsum`` with at most ``LIPSUM_MAX_PARAGRAPHS`` paragraphs of at most 1,000 words."""
    if n > LIPSUM_MAX_PARAGRAPHS or max > 1000:
        raise LimitExceeded(f"lipsum is limited to {LIPSUM_MAX_PARAGRAPHS} paragraphs of 1000 words")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


class _GuardedNamespace(Namespace):
    """``namespace()`` whose attributes cannot grow past the size limit."""

    def __setitem__(self, name: str, value: Any) -> None:
        budget = _current()
        if budget is not None:
            budget.tick()
            budget.check_size(value)
        super().__setitem__(name, value)


class _GuardedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``a ~ b`` routed through a size check."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"{join}(environment.checked_pieces((")
        for piece in node.nodes:
            self.visit(piece, frame)
            self.write(", ")
        self.write(")))")


def _finalize(value: Any) -> Any:
    """Every ``{{ expression }}`` passes here before it becomes text (marked when asked: see htmltext)."""
    budget = _current()
    if budget is not None:
        budget.check_size(value)
    marks = marking.get()
    return value if marks is None else marks.wrap(value)


_DICT_ATTRIBUTES = frozenset(dir(dict))  # every name getattr finds on a plain dict (it has no instance attributes)


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox plus the time/size/loop budget hooks described above."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})
    code_generator_class = _GuardedCodeGenerator

    @staticmethod
    def concat(pieces: Any) -> str:
        """Join a buffer (macro body, ``{% set %}`` block) only if the result fits."""
        pieces = pieces if isinstance(pieces, list) else list(pieces)
        budget = _current()
        if budget is not None:
            budget.tick()
            if sum(len(p) for p in pieces) > budget.size_limit:
                raise LimitExceeded(f"captured output larger than the size limit ({budget.size_limit} characters)")
        return "".join(pieces)

    @staticmethod
    def checked_pieces(pieces: tuple) -> tuple:
        """The operands of ``~``, refused before joining if the result would not fit."""
        budget = _current()
        if budget is not None:
            budget.tick()
            if _weight(pieces, budget.size_limit) > budget.size_limit:
                raise LimitExceeded(f"joined text larger than the size limit ({budget.size_limit} characters)")
        return pieces

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.filters.update(LOCALE_FILTERS)
        self.filters = {name: _guard_filter(f) for name, f in self.filters.items()}
        self.variant_of: Callable[[str, tuple[str, ...]], tuple[str, str | None]] | None = None
        self.filters[_GUARD_FILTER] = _loop_guard
        self.globals["namespace"] = _GuardedNamespace
        self.globals["lipsum"] = _bounded_lipsum

    def join_path(self, template: str, parent: str) -> str:
        """``{% extends "base.html" %}`` and ``{% include "footer.html" %}`` in a message for a
        Japanese contact load ``base.ja.html`` and ``footer.ja.html`` when they exist. Jinja caches
        compiled templates by the name returned here, so each variant is its own cache entry."""
        variants = _variants.get()
        if variants and self.variant_of is not None:
            return self.variant_of(template, variants)[0]
        return template

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``contact.first_name``: on a dict, a name no dict attribute has is its item, which is
        what the sandbox answers after ``getattr(obj, attribute)`` has raised (and formatted) an
        AttributeError, some 2,000 instructions a look-up. Anything else goes the sandbox's way."""
        if type(obj) is dict and type(attribute) is str and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass  # the sandbox's undefined, below
        return super().getattr(obj, attribute)

    def make_globals(self, d: Any) -> dict[str, Any]:  # type: ignore[override]
        """A template's globals as one dict, not Jinja's ChainMap over the environment's: each
        render copied the chain into new dicts twice (6% of building a send). The globals are
        set in ``__init__``, before any template is loaded, and never change after."""
        return {**self.globals, **(d or {})}

    def compile(self, source: Any, name: str | None = None, filename: str | None = None, raw: bool = False, defer_init: bool = False) -> Any:  # type: ignore[override]
        """Parse, then route every ``for`` loop's iterable through the loop guard."""
        if isinstance(source, str):
            source = self.parse(source, name, filename)
        for loop in source.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _GUARD_FILTER, [], [], None, None, lineno=loop.lineno)
        # Jinja folds constant filter calls at compile time; a budget makes an
        # oversized one (``'x'|center(10**9)``) fail there and run guarded later.
        token = _budget.set(self.compile_budget())
        unmarked = marking.set(None)  # constants folded now must not keep a render's value marks
        try:
            return super().compile(source, name, filename, raw=raw, defer_init=defer_init)  # type: ignore[call-overload]
        finally:
            marking.reset(unmarked)
            _budget.reset(token)

    def compile_budget(self) -> _Budget:
        return _Budget(deadline=time.monotonic() + 10.0, size_limit=1 << 20, loops_left=0, time_limit=10.0)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        target = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        fmt_self = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        sized = (isinstance(fmt_self, str) and name in SIZE_ARGUMENT_STR_METHODS) or (
            isinstance(fmt_self, int) and name == "to_bytes")
        _check_call(args, kwargs, sizes=sized)
        if isinstance(fmt_self, str):
            if name in ("format", "format_map"):
                _check_format_widths(fmt_self)
            elif name == "replace" and len(args) >= 2:
                _check_replace(fmt_self, args[0], args[1])
            elif name in ("expandtabs", "translate"):
                _check_growth(name, fmt_self, args, kwargs)
            elif name == "join" and args:
                args = (_bounded_join(fmt_self, args[0]), *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        budget = _current()
        return budget.check_size(result) if budget else result

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        budget = _current()
        if budget is not None:
            budget.tick()
            _check_binop(budget, op, left, right)
        result = self.binop_table[op](left, right)
        return budget.check_size(result) if budget else result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_binop(budget: _Budget, op: str, left: Any, right: Any) -> None:
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and _is_int(times):
                if _weight(seq, budget.size_limit) * max(times, 0) > budget.size_limit:
                    raise LimitExceeded(f"repetition larger than the size limit ({budget.size_limit})")
        if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise LimitExceeded(f"number too large (integers are limited to {MAX_INT_BITS} bits)")
    elif op == "**":
        if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
            if left.bit_length() * min(right, MAX_INT_BITS + 1) > MAX_INT_BITS:
                raise LimitExceeded(f"number too large (integers are limited to {MAX_INT_BITS} bits)")
    elif op in ("%", "//") and _is_int(left) and _is_int(right):
        if max(left.bit_length(), right.bit_length()) > MAX_INT_BITS:
            raise LimitExceeded(f"number too large (integers are limited to {MAX_INT_BITS} bits)")
    elif op == "%":
        _check_format_widths(left)
    elif op == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        if _weight(left, budget.size_limit) + _weight(right, budget.size_limit) > budget.size_limit:
            raise LimitExceeded(f"sum larger than the size limit ({budget.size_limit})")


class ProjectTemplateLoader(jinja2.BaseLoader):
    """Templates from the project's folder, read as validate reads them: names
    relative to the folder (no ``..``), regular files inside it once links are
    resolved, bounded in size; ``sources`` (name -> text), when given, are
    rendered instead of the files (what was deployed)."""

    def __init__(self, folder: Path, sources: dict[str, str] | None = None):
        self.folder = Path(folder)
        self.sources = sources

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = jinja2.loaders.split_template_path(template)
        path = os.path.normpath(os.path.join(self.folder, *pieces))
        if self.sources is not None:
            name = "/".join(pieces)
            if name not in self.sources:
                raise jinja2.TemplateNotFound(template)
            return self.sources[name], path, lambda: True
        if not os.path.lexists(path):
            raise jinja2.TemplateNotFound(template)
        try:
            source = read_inside(Path(path), self.folder).decode("utf-8-sig")
        except UnsafeFile as unsafe:
            raise jinja2.TemplateError(str(unsafe)) from None
        return source, path, lambda: True


def _locate(exc: BaseException, name: str, filename: str | None, templates_dir: Path) -> tuple[str, str | None, int | None]:
    """(template name, file, line) of the innermost template frame; included templates count."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.name or name, exc.filename or filename, exc.lineno
    root = os.path.abspath(templates_dir) + os.sep
    found: tuple[str, str | None, int | None] = (name, filename, getattr(exc, "lineno", None))
    tb = exc.__traceback__
    while tb is not None:
        frame_file = tb.tb_frame.f_code.co_filename
        if frame_file == filename:
            found = (name, filename, tb.tb_lineno)
        elif not frame_file.startswith("<") and os.path.abspath(frame_file).startswith(root):
            # a template it extends, includes or imports
            found = (os.path.relpath(os.path.abspath(frame_file), root).replace(os.sep, "/"), frame_file, tb.tb_lineno)
        tb = tb.tb_next
    return found


class Renderer:
    """Renders a project's email templates; one per project, reused across sends."""

    def __init__(
        self,
        templates_dir: Path,
        *,
        time_limit: float = 2.0,
        size_limit: int = 1 << 20,
        loop_limit: int = 1_000_000,
        sources: dict[str, str] | None = None,
    ):
        self.templates_dir = Path(templates_dir)
        self.time_limit = time_limit
        self.size_limit = size_limit
        self.loop_limit = loop_limit
        self.env = GuardedEnvironment(
            loader=ProjectTemplateLoader(self.templates_dir, sources),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(HTML_EXTENSIONS, default_for_string=False, default=False),
            auto_reload=False,  # templates are deployed code; compile each once per renderer
            finalize=_finalize,
        )
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
        self._from_string = functools.lru_cache(maxsize=1024)(self._compile_string)
        self._exists_cache: dict[str, bool] = {}
        self._shapes = Shapes(self._inliner.inline)
        self._streams_output: dict[tuple[str, tuple[str, ...]], bool] = {}
        self._templates: dict[str, jinja2.Template] = {}  # name -> compiled: see _load
        self._variant_cache: dict[tuple[str, tuple[str, ...]], tuple[str, str | None]] = {}
        self.env.variant_of = self.variant

    def _compile_string(self, source: str) -> jinja2.Template:
        return self.env.from_string(source)

    def render_email(
        self, template: str, subject: str, context: dict, text_template: str | None = None,
        variants: tuple[str, ...] = (),
    ) -> RenderedEmail:
        """Render subject, HTML (CSS inlined) and text (``.txt`` or derived from the HTML).

        ``variants``: the contact's locales besides the project's default, nearest first. The
        HTML is the nearest variant written (``welcome.ja.html``, else ``welcome.html``), and so
        is every template it extends or includes; the text is the ``.txt`` of the same locale,
        else derived from that HTML (never the default language's text under a translated HTML).
        """
        html_name, tag = self.variant(f"{html_stem(template)}.html", variants)
        variants = same_language(variants, tag)  # one message, one language: an English email gets the English footer
        if text_template:
            text_name = self.variant(_with_suffix(text_template, ".txt"), variants)[0]
        else:
            text_name = variant_name(f"{html_stem(template)}.txt", tag) if tag else f"{html_stem(template)}.txt"
        derive_text = not (text_template or self._exists(text_name))
        token = _variants.set(variants)
        try:
            html, text = self._html_and_text(html_name, context, derive_text, variants)
            if text is None:
                text = self._render_file(text_name, context)
            return RenderedEmail(subject=self.render_subject(subject, context), html=html, text=text)
        finally:
            _variants.reset(token)

    def variant(self, name: str, variants: tuple[str, ...]) -> tuple[str, str | None]:
        """(the nearest variant of ``name`` that exists, its locale): ``welcome.ja.html``, ``ja``;
        ``welcome.html``, None when no variant in ``variants`` is written. Cached per name and
        variants (a tick sends the same few templates in the same few languages)."""
        key = (name, variants)
        found = self._variant_cache.get(key)
        if found is None:
            found = next(((variant_name(name, tag), tag) for tag in variants if self._exists(variant_name(name, tag))),
                         (name, None))
            self._variant_cache[key] = found
        return found

    def render_subject(self, subject: str, context: dict) -> str:
        """The subject on one line. Without ``{`` there is no Jinja tag to run: Jinja would
        print the text as it is (newlines normalised, the last one dropped), so the words
        are joined without a render; size-limit checks are left to the render."""
        if "{" not in subject and len(subject) <= self.size_limit:
            return " ".join(subject.split())
        return " ".join(self.render_string(subject, context).split())

    def _html_and_text(self, name: str, context: dict, derive_text: bool,
                       variants: tuple[str, ...] = ()) -> tuple[str, str | None]:
        """The HTML with CSS inlined, and the text derived from it when asked.

        Both come from the template's shape when its values allow (once per shape,
        see ``runner.delivery.htmltext``); otherwise from this message's HTML.
        """
        html = None
        if self._reusable(name, variants):
            marks = ValueMarks()
            token = marking.set(marks)
            try:
                marked = self._render_file(name, context)
            except RenderError:
                marked = ""  # rendered again unmarked below, which reports the error
            finally:
                marking.reset(token)
            html, static = split_marked(marked, marks) if marked else (None, None)
            shape = self._shapes.get(static, derive_text) if static is not None else None
            if shape is not None and shape.fits(marks.values):
                html = shape.fill_html(marks.values)
                if not derive_text:
                    return html, None
                return html, shape.fill_text(marks.values) if text_fits(marks.values) else html_to_text(html)
        if html is None:
            html = self._render_file(name, context)
        try:
            html = self._inliner.inline(html)
        except Exception as exc:  # noqa: BLE001 - InlineError, or anything the parser trips on
            raise RenderError(name, None, f"CSS inlining failed: {exc}") from None
        return html, html_to_text(html) if derive_text else None

    def _reusable(self, name: str, variants: tuple[str, ...] = ()) -> bool:
        """Can this template's shape be reused: does it stream all its output (no captures)?
        Keyed by the variants too: the templates it extends or includes depend on them."""
        key = (name, variants)
        if key not in self._streams_output:
            self._streams_output[key] = not captures_output(self.env, name)
        return self._streams_output[key]

    def render_string(self, source: str, context: dict) -> str:
        """Render a Jinja string (subjects, webhook payload values); never autoescaped."""
        try:
            compiled = self._from_string(source)
        except Exception as exc:  # noqa: BLE001 - untrusted input: every failure is a RenderError
            raise _render_error(STRING_TEMPLATE, None, exc, self.templates_dir) from None
        return self._run(compiled, STRING_TEMPLATE, context)

    def _render_file(self, name: str, context: dict) -> str:
        try:
            compiled = self._templates.get(name) or self._load(name)
        except jinja2.TemplateNotFound:
            raise RenderError(name, None, f"template not found in {self.templates_dir}") from None
        except Exception as exc:  # noqa: BLE001
            raise _render_error(name, getattr(exc, "filename", None), exc, self.templates_dir) from None
        return self._run(compiled, name, context)

    def _load(self, name: str) -> jinja2.Template:
        """Compile a template once per renderer (the sources do not change under it; Jinja's own
        cache is bounded, and its look-up made a weak reference per render)."""
        compiled = self._templates[name] = self.env.get_template(name)
        return compiled

    def _exists(self, name: str) -> bool:
        """Is there such a template? Cached, like the compiled templates themselves."""
        if name not in self._exists_cache:
            try:
                self.env.get_template(name)
                self._exists_cache[name] = True
            except jinja2.TemplateNotFound:
                self._exists_cache[name] = False
            except Exception:  # noqa: BLE001 - it exists but is broken: render it to report why
                self._exists_cache[name] = True
        return self._exists_cache[name]

    def _run(self, compiled: jinja2.Template, name: str, context: dict) -> str:
        budget = _Budget(
            deadline=time.monotonic() + self.time_limit,
            size_limit=self.size_limit,
            loops_left=self.loop_limit,
            time_limit=self.time_limit,
        )
        token = _budget.set(budget)
        size = 0
        chunks: list[str] = []
        try:
            for chunk in compiled.generate(context):
                size += len(chunk)
                if size > self.size_limit:
                    raise LimitExceeded(f"output larger than the size limit ({self.size_limit} characters)")
                chunks.append(chunk)
                if not len(chunks) & 63:  # output is cheap; loops and calls tick on their own
                    budget.tick()
        except Exception as exc:  # noqa: BLE001
            raise _render_error(name, compiled.filename, exc, self.templates_dir) from None
        finally:
            _budget.reset(token)
        return "".join(chunks)


def same_language(variants: tuple[str, ...], tag: str | None) -> tuple[str, ...]:
    """The variants in the language of ``tag`` (``pt-BR``, ``pt`` for ``pt``); none for the default (None)."""
    if tag is None:
        return ()
    language = tag.split("-")[0]
    return tuple(variant for variant in variants if variant.split("-")[0] == language)


def html_stem(template: str) -> str:
    """A step's template name without its HTML extension (``onboarding/welcome``)."""
    return template.removesuffix(".html").removesuffix(".htm")


def _with_suffix(name: str, suffix: str) -> str:
    return name if Path(name).suffix else name + suffix


def _render_error(name: str, filename: str | None, exc: BaseException, templates_dir: Path) -> RenderError:
    name, filename, line = _locate(exc, name, filename or "<template>", templates_dir)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, RecursionError):
        message = "too deeply nested (recursion limit)"
    elif isinstance(exc, jinja2.UndefinedError):
        message = f"undefined variable: {message}"
    return RenderError(name, line, message, file=None if filename == "<template>" else filename)


def render_context(
    contact: Any,
    scores: dict,
    journey: Any,
    step_id: str,
    project: Any,
    unsubscribe_url: str,
    now: datetime,
    locale: dict | None = None,
    event: dict | None = None,
) -> dict:
    """The variables a template sees; the same mapping in simulation and production.

    ``locale``: :func:`locale_context` of the language the message is written in.
    ``event``: the send decision's ``event`` detail (the event that started or woke the
    step); templates see ``event.name``, ``event.properties`` and ``event.timestamp`` (an
    aware datetime, like ``now``), and no ``event`` at all when no event did."""
    contact_vars = dict(contact.attributes)
    contact_vars["id"] = contact.id
    contact_vars["timezone"] = contact.timezone
    context = {
        "contact": contact_vars,
        "scores": dict(scores),
        "journey": {"id": journey.id, "version": journey.version, "name": journey.name},
        "step": {"id": step_id},
        "project": {"name": project.name},
        "unsubscribe_url": unsubscribe_url,
        "now": now,
        "locale": locale if locale is not None else locale_context(DEFAULT_LANGUAGE),
    }
    if event is not None:
        context["event"] = {"name": event["name"], "properties": dict(event.get("properties") or {}),
                            "timestamp": datetime.fromisoformat(event["timestamp"])}
    return context


@functools.lru_cache(maxsize=256)
def _locale_values(tag: str) -> tuple[tuple[str, str], ...]:
    return (("tag", tag), ("language", tag.split("-")[0]), ("dir", text_direction(tag)), ("name", display_name(tag)))


def locale_context(tag: str) -> dict:
    """What templates see as ``locale``: ``tag`` (``pt-BR``, for ``<html lang>``), ``language``
    (``pt``), ``dir`` (``rtl`` or ``ltr``, Babel's text direction) and ``name`` (``português``)."""
    return dict(_locale_values(tag))


__all__ = ["RenderError", "RenderedEmail", "Renderer", "render_context", "locale_context", "LimitExceeded"]
