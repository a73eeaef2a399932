"""A big rich table as plain text, laid out by rich, written without rich's per-cell cost.

``journey simulate``'s timeline is one rich table of tens of thousands of rows;
rich renders each cell through its segment pipeline, which cost ten times the
simulation being printed. The layout, though, depends only on a few cells:
each column's width comes from its widest cell and its longest word. So rich
lays out a *proxy* table holding only those cells (the exact widths it would
give the whole table), and the rows are written here with those widths: the
same bytes, since a no-wrap cell is its text padded to the column, and a
folded cell's lines come from rich's own ``Text.wrap``.

Where that would not be the same (a no-wrap cell cut to fit, text that rich
reads as markup or emoji codes and fails on, control characters), the whole
table is printed by rich instead. Only tables without edges padding
(``pad_edge=False``), with one line per row and a simple header rule
(``box.SIMPLE_HEAD``) are written here; ``tests/test_tabletext.py`` compares
both ways.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from rich import box
from rich._emoji_codes import EMOJI
from rich.cells import cell_len
from rich.console import Console
from rich.errors import MarkupError
from rich.markup import render as render_markup
from rich.table import Table
from rich.text import Text

_EMOJI_CODE = re.compile(r":(\S*?)(?:-(?:emoji|text))?:")  # rich's emoji codes (rich._emoji_replace)


def console_for(width: int, buffer: io.StringIO | None = None) -> Console:
    """The console every plain-text table is printed on: no colours, fixed width."""
    return Console(file=buffer or io.StringIO(), width=width, color_system=None, force_terminal=False,
                   legacy_windows=False)


def plain_lines(renderables: Sequence[Any], width: int) -> str:
    """Rich renderables as plain text without colour codes or trailing spaces."""
    buffer = io.StringIO()
    console = console_for(width, buffer)
    for renderable in renderables:
        console.print(renderable)
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def table_text(make_table: Any, rows: Sequence[Sequence[str]], width: int) -> str:
    """``make_table()`` (an empty rich table: its columns) filled with ``rows``, as ``plain_lines`` prints it."""
    table = make_table()
    fast = _written(table, rows, width)
    if fast is not None:
        return fast
    for row in rows:
        table.add_row(*row)
    return plain_lines([table], width)


def _written(table: Table, rows: Sequence[Sequence[str]], width: int) -> str | None:
    """The table's text, written here; None when only rich can say what it looks like."""
    columns = table.columns
    if table.box is not box.SIMPLE_HEAD or table.pad_edge or table.title or table.caption or not table.show_header \
            or not table.show_edge or table.show_lines or table.padding != (0, 1, 0, 1) or table.leading \
            or len(columns) < 2 or any(c.justify != "left" or c.vertical != "top" or c.width or c.min_width or c.max_width
                   for c in columns):
        return None
    shown = [row for row in map(_shown, rows) if row is not None]
    if len(shown) < len(rows):
        return None  # a cell that is not plain text
    console = console_for(width)
    proxy = Table(*[_copy(column) for column in columns], box=table.box, pad_edge=False, expand=table.expand,
                  show_header=True)
    for index in _deciding_rows(shown, len(columns)):
        proxy.add_row(*rows[index])
    widths = proxy._calculate_column_widths(console, console.options.update_width(width - proxy._extra_width))
    last = len(columns) - 1
    spaces = [(0 if i == 0 else 1, 0 if i == last else 1) for i in range(len(columns))]
    inner = [w - left - right for w, (left, right) in zip(widths, spaces, strict=True)]
    for column, room in zip(columns, inner, strict=True):
        if column.no_wrap and any(_width(row[column._index]) > room for row in shown):
            return None  # rich would cut the cell: leave it to rich
    headers = [c.header if isinstance(c.header, str) else "" for c in columns]
    if any(_width(header) > room for header, room in zip(headers, inner, strict=True)):
        return None  # a folded header sits at the bottom of its row: leave it to rich
    lines = ["", *_row_lines(headers, columns, inner, spaces, console)]
    lines.append((" " + "─" * (sum(widths) + len(widths) - 1)).rstrip())
    # the common row, printable ASCII that fits: one format call (str.format pads by characters)
    simple = " " + "   ".join(f"{{:<{room}}}" for room in inner[:-1]) + "   {}"
    folding = [(i, inner[i]) for i, column in enumerate(columns) if not column.no_wrap]
    for row in shown:
        if "".join(row).isascii() and all(len(row[i]) <= room for i, room in folding):
            lines.append(simple.format(*row).rstrip())
        else:
            lines += _row_lines(row, columns, inner, spaces, console)
    lines.append("")
    return "".join(line + "\n" for line in lines)


def _shown(row: Sequence[str]) -> Sequence[str] | None:
    """The row's cells as rich prints them (markup and emoji codes applied); None if in doubt."""
    joined = " ".join(row)  # a space: no emoji code spans two cells
    if joined.isprintable() and "[" not in joined and not _has_emoji_code(joined):
        return row
    cells = []
    for cell in row:
        if not cell.isprintable():
            return None
        if "[" in cell or _has_emoji_code(cell):
            try:
                cell = render_markup(cell).plain
            except MarkupError:
                return None
        cells.append(cell)
    return cells


def _has_emoji_code(text: str) -> bool:
    return ":" in text and any(name.lower() in EMOJI for name in _EMOJI_CODE.findall(text))


def _width(text: str) -> int:
    """Cells on screen (rich's ``cell_len``; one per character for printable ASCII)."""
    return len(text) if text.isascii() else cell_len(text)


def _deciding_rows(shown: Sequence[Sequence[str]], count: int) -> list[int]:
    """The rows holding each column's widest cell and longest word: they decide every width."""
    chosen: set[int] = set()
    if not shown:
        return []
    for cells in zip(*shown, strict=True):
        widths = list(map(len if "".join(cells).isascii() else _width, cells))
        chosen.add(max(range(len(widths)), key=widths.__getitem__))
        best, best_index = -1, 0
        for index, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            if width > best:  # a cell no wider than the longest word so far cannot hold a longer one
                word = max(map(_width, cell.split()), default=0) if " " in cell else width
                if word > best:
                    best, best_index = word, index
        chosen.add(best_index)
    return sorted(chosen)


def _copy(column: Any) -> Any:
    from copy import copy

    fresh = copy(column)
    fresh._cells = []
    return fresh


def _row_lines(row: Sequence[str], columns: Sequence[Any], inner: Sequence[int], spaces: Sequence[tuple[int, int]],
               console: Console) -> list[str]:
    """One row's lines: cells padded to their column; folded cells over several lines."""
    parts = []
    folded: dict[int, list[str]] = {}
    for index, (column, text, room, (left, right)) in enumerate(zip(columns, row, inner, spaces, strict=True)):
        width = _width(text)
        if width > room and not column.no_wrap:
            wrapped = Text(text).wrap(console, room, justify="left", overflow=column.overflow or "fold")
            folded[index] = [line.plain for line in wrapped] or [""]
            text, width = folded[index][0], _width(folded[index][0])
        parts.append(" " * left + text + " " * (room - width + right))
    out = [(" " + " ".join(parts)).rstrip()]
    for number in range(1, max((len(lines) for lines in folded.values()), default=1)):
        parts = []
        for index, (room, (left, right)) in enumerate(zip(inner, spaces, strict=True)):
            lines = folded.get(index, ())
            text = lines[number] if number < len(lines) else ""
            parts.append(" " * left + text + " " * (room - _width(text) + right))
        out.append((" " + " ".join(parts)).rstrip())
    return out
