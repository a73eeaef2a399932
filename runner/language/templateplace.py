"""Where in a template a syntax error is: its line and column (``file:line:col``).

Jinja's ``TemplateSyntaxError`` carries a line and no column. The column comes from the
token Jinja stopped at: the template is parsed again over a token stream that remembers
where each token's text begins in the source (the lexer's raw lexemes, in order). A lexer
error names its offset itself (``unexpected char '!' at 12``). An unknown filter or test
(found when the tree is compiled) points at its name on the line. Failing all that, the
column is the line's first tag or value (``{%``, ``{{``), else its first character.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from jinja2 import Environment, TemplateSyntaxError
from jinja2.lexer import Token, TokenStream
from jinja2.parser import Parser

_OFFSET = re.compile(r" at (\d+)$")  # the lexer's "unexpected char '!' at 12"
_NAMED = re.compile(r"(?:filter|test) named '([^']+)'")  # "No filter named 'upperr'."
_TAG = re.compile(r"\{[{%#]")


def syntax_place(env: Environment, source: str, error: TemplateSyntaxError) -> tuple[int, int]:
    """(line, column), both from 1, of ``error`` in ``source``."""
    line = error.lineno or 1
    message = error.message or ""
    offset = _OFFSET.search(message)
    at = int(offset.group(1)) if offset else _failing_offset(env, source)
    if at is not None and 0 <= at <= len(source):
        at_line = source.count("\n", 0, at) + 1
        if at_line == line:
            return line, at - (source.rfind("\n", 0, at) + 1) + 1
    text = _line(source, line)
    named = _NAMED.search(message)
    if named:
        found = re.search(rf"\b{re.escape(named.group(1))}\b", text)
        if found:
            return line, found.start() + 1
    tag = _TAG.search(text)
    if tag:
        return line, tag.start() + 1
    return line, len(text) - len(text.lstrip()) + 1


def _line(source: str, line: int) -> str:
    lines = source.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _failing_offset(env: Environment, source: str) -> int | None:
    """Where Jinja stopped in ``source``: the token the parser failed at, or where the lexer
    could not go on (it runs lazily, as the parser asks); None when nothing fails."""
    where: dict[int, tuple[Token, int]] = {}  # id(token) -> (token, offset): the token kept alive
    state = {"offset": 0, "end": 0, "lexer_failed": False}

    def raw() -> Iterator[tuple[int, str, str]]:
        lexemes = env.lexer.tokeniter(source, None)
        while True:
            try:
                lineno, kind, text = next(lexemes)
            except StopIteration:
                return
            except TemplateSyntaxError:
                state["lexer_failed"] = True
                raise
            found = source.find(text, state["end"]) if text else -1
            state["offset"] = found if found >= 0 else state["end"]
            state["end"] = state["offset"] + len(text)
            yield lineno, kind, text

    def placed() -> Iterator[Token]:
        for token in env.lexer.wrap(raw()):
            where[id(token)] = (token, state["offset"])
            yield token

    parser: Any = Parser(env, "")
    try:
        parser.stream = TokenStream(placed(), None, None)
        parser.parse()
    except TemplateSyntaxError:
        if state["lexer_failed"]:
            return int(state["end"])
        current = parser.stream.current
        if current.type == "eof":
            return len(source.rstrip("\n"))
        found = where.get(id(current))
        return found[1] if found is not None and found[0] is current else None
    return None
