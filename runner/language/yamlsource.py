"""Safe YAML loading that remembers where every value came from.

Marketers' files are untrusted input, so this module refuses what would hurt
us (huge files, binary data, alias bombs, absurd nesting) and turns every
other mistake into a ``Problem`` at ``file:line:col`` instead of an exception.

The document is composed once into PyYAML nodes (libyaml events, Python
composer so depth can be bounded); plain Python data is then built from the
nodes by hand so that duplicate keys and alias expansion can be checked and
so that any JSON path (``["stages", 0, "steps", 2, "email"]``) can be mapped
back to a line and column.

Scalars resolve like YAML 1.2's core schema, which is also what
yaml-language-server uses: ``true/false``, ``null``, ints and floats.
Unlike YAML 1.1 there are no ``yes/no/on/off`` booleans, no sexagesimal
numbers (``18:00`` stays the string ``"18:00"``) and no timestamps (dates
stay strings, so JSON Schema sees what the editor sees).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml._yaml import CParser
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.core.problems import ERROR, Problem

MAX_BYTES = 1024 * 1024  # a journey file is a few KiB; 1 MiB is plenty
MAX_DEPTH = 64  # nesting levels of mappings/sequences
MAX_ALIAS_NODES = 10_000  # nodes that aliases may copy in, in total

JsonPath = Sequence[str | int]

_INT = re.compile(r"[-+]?[0-9]+\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_OCT = re.compile(r"0o[0-7]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_SPECIAL_FLOATS = {
    ".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"),
    ".Inf": float("inf"), "+.Inf": float("inf"), "-.Inf": float("-inf"),
    ".INF": float("inf"), "+.INF": float("inf"), "-.INF": float("-inf"),
    ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan"),
}
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_TAB_INDENT = re.compile(r"^[ ]*\t", re.MULTILINE)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_IMPLICIT_TAG = "tag:journey-runner:plain"  # a plain scalar whose type _scalar decides


class _TooDeep(Exception):
    def __init__(self, node_mark: Any, recursive: bool = False):
        self.mark = node_mark
        self.recursive = recursive


class _AliasBomb(Exception):
    def __init__(self, node: Node):
        self.node = node


class _NodeLoader(Composer, CParser):
    """libyaml's fast event parser with PyYAML's Python composer on top.

    libyaml's own composer recurses in C and crashes the interpreter on
    deeply nested input; the Python one lets us stop at ``MAX_DEPTH``.
    """

    def __init__(self, stream: str):
        CParser.__init__(self, stream)
        Composer.__init__(self)
        self._depth = 0

    def compose_sequence_node(self, anchor: Any) -> Node:  # type: ignore[override]
        return self._nested(super().compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor: Any) -> Node:  # type: ignore[override]
        return self._nested(super().compose_mapping_node, anchor)

    def _nested(self, compose: Any, anchor: Any) -> Node:
        """Count collection nesting (scalars cannot nest) and stop past MAX_DEPTH."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise _TooDeep(event.start_mark if event is not None else None)
            return compose(anchor)
        finally:
            self._depth -= 1

    def descend_resolver(self, parent: Any, index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:  # type: ignore[override]
        # Tags are decided later, in _scalar; everything composes as str/seq/map.
        if kind is ScalarNode:
            return _IMPLICIT_TAG if implicit[0] else _STR_TAG
        if kind is SequenceNode:
            return "tag:yaml.org,2002:seq"
        return "tag:yaml.org,2002:map"


class _CNodeLoader(CParser):
    """libyaml's composer (twice as fast); only used when nesting is provably shallow.

    It recurses in C without a limit, so ``_compose`` first bounds the depth:
    every level of nesting costs a ``[``/``{`` or at least one more column on
    the deepest line, so brackets + the longest line bound the depth.
    """

    descend_resolver = _NodeLoader.descend_resolver
    ascend_resolver = _NodeLoader.ascend_resolver
    resolve = _NodeLoader.resolve


_C_COMPOSE_BOUND = 2000  # far below the depth at which libyaml's recursion would crash
# PyYAML 6.0.3+ ships a libyaml that stops flow nesting itself (at 1,000 levels) before our composer sees it.
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"


def _compose(text: str) -> Node | None:
    bound = text.count("[") + text.count("{") + max(map(len, text.splitlines()), default=0)
    loader = _CNodeLoader(text) if bound < _C_COMPOSE_BOUND else _NodeLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _scalar(node: ScalarNode) -> Any:
    """Resolve a scalar the YAML 1.2 core-schema way (quoted scalars stay strings)."""
    value = node.value
    if node.style is not None and node.style not in ("", None):
        return value  # quoted or block scalar: always a string
    if node.tag != _IMPLICIT_TAG:
        # explicit tags: honour the common ones, anything else stays text
        if node.tag == "tag:yaml.org,2002:int" and _INT.match(value):
            return int(value)
        if node.tag == "tag:yaml.org,2002:float" and _FLOAT.match(value):
            return float(value)
        if node.tag == "tag:yaml.org,2002:bool" and value in _TRUE | _FALSE:
            return value in _TRUE
        if node.tag == "tag:yaml.org,2002:null":
            return None
        return value  # !!str and unknown tags stay text
    if not value or value in _NULLS:
        return None
    first = value[0]
    if first.isalpha() and first not in "tTfFnN":
        return value  # fast path: most scalars are plain words
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value in _NULLS:
        return None
    if _INT.match(value):
        return int(value)
    if _HEX.match(value):
        return int(value, 16)
    if _OCT.match(value):
        return int(value[2:], 8)
    if _FLOAT.match(value):
        return float(value)
    if value in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value]
    return value


def _is_merge_key(node: Node) -> bool:
    return node.value == "<<" and isinstance(node, ScalarNode) and node.style in (None, "")


@dataclass
class YamlDocument:
    """A parsed file: its data, its node tree and where each value sits."""

    file: str
    root: Node
    data: Any
    # (line, col) of a key that is really the rest of a text cut at a comma inside {…},
    # mapped to the text as it was meant: `{description: e.g. en, ja}` -> "e.g. en, ja"
    comma_cuts: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)

    def find(self, keys: frozenset[str]) -> list[tuple[list, str, Any]]:
        """Every (path, key, value) in the document whose key is one of ``keys``."""
        return find_keys(self.data, keys)

    def node_at(self, path: JsonPath) -> tuple[Node, Node | None, int]:
        """Follow ``path`` down the nodes as far as it goes.

        Returns the deepest node reached, the key node of the last mapping
        step taken (or None) and how many path items were consumed.
        """
        node, key_node, used = self.root, None, 0
        for item in path:
            found = _child(node, item)
            if found is None:
                break
            key_node, node = found
            used += 1
        return node, key_node, used

    def position(self, path: JsonPath, *, key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of the value at ``path``, or of its key when ``key``.

        A path that leads nowhere (a missing key) points at the deepest
        existing parent.
        """
        node, key_node, used = self.node_at(path)
        mark = key_node.start_mark if (key and key_node is not None and used == len(path)) else node.start_mark
        return mark.line + 1, mark.column + 1

    def problem(
        self,
        path: JsonPath,
        code: str,
        message: str,
        *,
        severity: str = ERROR,
        hint: str | None = None,
        key: bool = False,
    ) -> Problem:
        line, col = self.position(path, key=key)
        return Problem(self.file, line, col, code, message, severity, hint)


def find_keys(data: Any, keys: frozenset[str]) -> list[tuple[list, str, Any]]:
    """Every (path, key, value) of mapping entries below ``data`` whose key is in ``keys``.

    Iterative (documents can be deep); paths are built only for matches.
    """
    found: list[tuple[list, str, Any]] = []
    stack: list[tuple[Any, tuple]] = [(data, ())]
    while stack:
        node, here = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in keys:
                    found.append(([*here, key], key, value))
                if isinstance(value, (dict, list)):
                    stack.append((value, (*here, key)))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, (dict, list)):
                    stack.append((value, (*here, index)))
    return found


def _child(node: Node, item: str | int) -> tuple[Node | None, Node] | None:
    if isinstance(node, SequenceNode) and isinstance(item, int):
        if 0 <= item < len(node.value):
            return None, node.value[item]
        return None
    if isinstance(node, MappingNode):
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if _is_merge_key(key_node):
                merged.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
            elif isinstance(key_node, ScalarNode) and key_node.value == str(item):
                return key_node, value_node
        for source in merged:
            found = _child(source, item)
            if found is not None:
                return found
    return None


class _Builder:
    """Turns nodes into plain data, checking keys and alias expansion."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []
        self._seen: set[int] = set()
        self._alias_nodes = 0
        self._last_key: Node | None = None  # the key being built outside any alias expansion
        self._open: set[int] = set()  # collections being built on the current path
        self.comma_cuts: dict[tuple[int, int], tuple[str, str]] = {}

    def build(self, node: Node, depth: int = 1, via_alias: bool = False) -> Any:
        """``depth`` counts collections, as the composer does (the root is 1)."""
        if depth > MAX_DEPTH and not isinstance(node, ScalarNode):
            raise _TooDeep(node.start_mark)  # deep documents and recursive aliases end up here
        if id(node) in self._seen:
            via_alias = True  # the same node again: an alias expansion
        else:
            self._seen.add(id(node))
        if via_alias:
            self._alias_nodes += 1
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise _AliasBomb(self._last_key if self._last_key is not None else node)
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if id(node) in self._open:
            raise _TooDeep(node.start_mark, recursive=True)
        self._open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, depth + 1, via_alias) for item in node.value]
            assert isinstance(node, MappingNode)  # the composer makes scalars, sequences and mappings only
            return self._mapping(node, depth, via_alias)
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: MappingNode, depth: int, via_alias: bool) -> dict[str, Any]:
        result: dict[str, Any] = {}
        key_lines: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if _is_merge_key(key_node):
                merges.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
                continue
            if not isinstance(key_node, ScalarNode):
                mark = key_node.start_mark
                self._report(mark, "yaml.complex-key", "a key must be a plain word, not a list or mapping")
                continue
            key = key_node.value
            if key in result:
                if not via_alias:
                    self._report(
                        key_node.start_mark,
                        "yaml.duplicate-key",
                        f"duplicate key `{key}` (first on line {key_lines[key]})",
                        hint="YAML would silently keep only one of them; remove or rename one",
                    )
                continue
            key_lines[key] = key_node.start_mark.line + 1
            if not via_alias:
                self._last_key = key_node
            result[key] = self.build(value_node, depth + 1, via_alias)
        if node.flow_style:
            self._note_comma_cuts(node)
        for source in merges:
            if not isinstance(source, MappingNode):
                self._report(source.start_mark, "yaml.merge", "`<<` merges need a mapping (an `*alias` of one)")
                continue
            for key, value in self._mapping(source, depth, True).items():
                result.setdefault(key, value)
        return result

    def _note_comma_cuts(self, node: MappingNode) -> None:
        """Remember keys with no `:` that follow plain text in ``{…}``: a comma cut that text in two."""
        owner: tuple[str, str] | None = None  # (key, text so far) of the entry the cut text belongs to
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or not isinstance(value_node, ScalarNode):
                owner = None
                continue
            no_colon = value_node.value == "" and value_node.start_mark.index == key_node.end_mark.index
            if no_colon and owner is not None and key_node.style in (None, ""):
                owner = (owner[0], f"{owner[1]}, {key_node.value}")
                self.comma_cuts[(key_node.start_mark.line + 1, key_node.start_mark.column + 1)] = owner
            elif value_node.style in (None, "") and value_node.value:
                owner = (str(key_node.value), value_node.value)
            else:
                owner = None

    def _report(self, mark: Any, code: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, code, message, ERROR, hint))


def _decode(raw: bytes, file: str) -> tuple[str | None, list[Problem]]:
    if b"\x00" in raw[:8192]:
        return None, [Problem(file, 1, 1, "file.binary", "this is a binary file, not YAML text")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        return None, [
            Problem(
                file, line, col, "file.encoding",
                f"the file is not UTF-8 (byte 0x{raw[error.start]:02x})",
                hint="save it as UTF-8",
            )
        ]
    return text, []


def parse_text(text: str, file: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse YAML text; returns the document (None when unusable) and problems."""
    tab = _TAB_INDENT.search(text)
    if tab:
        line = text.count("\n", 0, tab.start()) + 1
        col = tab.end() - tab.start()
        return None, [
            Problem(file, line, col, "yaml.tab", "tab used for indentation; YAML allows only spaces",
                    hint="replace tabs with spaces")
        ]
    try:
        root = _compose(text)
    except _TooDeep as deep:
        if deep.recursive:
            return None, [_at(file, deep.mark, "yaml.too-deep", "this anchor contains an alias of itself: endless nesting",
                              hint="an `*alias` cannot be used inside the value its `&anchor` names")]
        return None, [_at(file, deep.mark, "yaml.too-deep", f"nested more than {MAX_DEPTH} levels deep")]
    except RecursionError:
        return None, [Problem(file, 1, 1, "yaml.too-deep", f"nested more than {MAX_DEPTH} levels deep")]
    except yaml.MarkedYAMLError as error:
        if error.problem == _LIBYAML_TOO_DEEP:
            return None, [_at(file, error.problem_mark, "yaml.too-deep", f"nested more than {MAX_DEPTH} levels deep")]
        return None, [_syntax_problem(file, error)]
    except yaml.YAMLError as error:
        return None, [Problem(file, 1, 1, "yaml.syntax", str(error).strip())]
    if root is None or (isinstance(root, ScalarNode) and root.value == "" and root.style in (None, "")):
        return None, [Problem(file, 1, 1, "file.empty", "the file is empty")]
    builder = _Builder(file)
    try:
        data = builder.build(root)
    except _AliasBomb as bomb:
        where = f"`{bomb.node.value}`" if isinstance(bomb.node, ScalarNode) else "this value"
        return None, [
            _at(file, bomb.node.start_mark, "yaml.alias-bomb",
                f"{where} expands its aliases to more than {MAX_ALIAS_NODES:,} values (a \"billion laughs\" document?)",
                hint="anchors and aliases may share a little configuration, not multiply it")
        ]
    except _TooDeep as deep:
        if deep.recursive:
            return None, [_at(file, deep.mark, "yaml.too-deep", "this anchor contains an alias of itself: endless nesting",
                              hint="an `*alias` cannot be used inside the value its `&anchor` names")]
        return None, [_at(file, deep.mark, "yaml.too-deep", f"nested more than {MAX_DEPTH} levels deep")]
    document = YamlDocument(file, root, data, builder.comma_cuts)
    problems = builder.problems
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else "a single value"
        problems.append(Problem(file, root.start_mark.line + 1, root.start_mark.column + 1, "yaml.not-mapping",
                                f"the file must be a mapping of `key: value` lines, not {kind}"))
        return None, problems
    return document, problems


def load_file(path: Path, file: str | None = None) -> tuple[YamlDocument | None, list[Problem]]:
    """Read and parse ``path``; ``file`` is the name shown in problems."""
    name = file if file is not None else str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return None, [Problem(name, 1, 1, "file.too-large",
                                  f"the file is {size:,} bytes; the limit is {MAX_BYTES:,}")]
        raw = path.read_bytes()
    except OSError as error:
        return None, [Problem(name, 1, 1, "file.unreadable", f"cannot read the file: {error.strerror or error}")]
    if len(raw) > MAX_BYTES:  # grew between stat and read
        return None, [Problem(name, 1, 1, "file.too-large", f"the file is over {MAX_BYTES:,} bytes")]
    return load_bytes(raw, name)


def load_bytes(raw: bytes, file: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Decode and parse a file's bytes already read (safely, by the caller)."""
    text, problems = _decode(raw, file)
    if text is None:
        return None, problems
    return parse_text(text, file)


def _at(file: str, mark: Any, code: str, message: str, hint: str | None = None) -> Problem:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Problem(file, line, col, code, message, ERROR, hint)


def _syntax_problem(file: str, error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    message = error.problem or "invalid YAML"
    if error.context:
        message = f"{message} ({error.context})"
    return _at(file, mark, "yaml.syntax", f"YAML syntax error: {message}")
