"""Import contacts and events into the store: streaming, batched, idempotent.

Files are read line by line (constant memory) and written in batches of
``BATCH_SIZE`` rows, one transaction each. A bad line is reported with its
line number and the rest is imported; ``strict=True`` stops at the first bad
line and keeps nothing of the file (everything runs in one transaction that
is rolled back). Re-importing a file changes nothing: events are deduplicated
by message id (derived from the content when a line has none) and contacts
are upserted by id.

Formats (see docs/data.md):

- contacts: CSV (``id,email,timezone,…``; other columns are attributes,
  ``a.b`` columns nest) or JSONL (``{"id", "timezone", "attributes",
  "anonymous_ids", "events"}`` like the test contacts);
- events: JSONL in the Segment spec (track, identify, alias, page, screen)
  or CSV (``user_id,anonymous_id,event,timestamp,message_id,properties`` or
  ``prop.*`` columns).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from runner.core.instants import RANGE_TEXT, in_range
from runner.core.problems import Problem, UsageError, shown
from runner.core.vocabulary import PAGE_EVENTS
from runner.store.base import ContactRow, EventRow, Store

BATCH_SIZE = 20000
MAX_REPORTED = 1000  # bad lines kept in the result; the count goes on
MAX_LINE_BYTES = 1024 * 1024  # longer lines are bad (and never held in memory whole)
FORMATS = ("csv", "jsonl")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# A JSON escape of a UTF-16 surrogate; a lone one cannot be stored as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

Progress = Callable[[int], None]  # called with the number of bytes just read


@dataclass(slots=True)
class ImportResult:
    """What an import did. ``aborted``: strict mode hit a bad line and kept nothing."""

    imported: int = 0
    duplicates: int = 0
    bad: list[Problem] = field(default_factory=list)
    bad_lines: int = 0
    skipped: int = 0
    aborted: bool = False

    @property
    def ok(self) -> bool:
        return self.bad_lines == 0

    def report_bad(self, problem: Problem) -> None:
        self.bad_lines += 1
        if len(self.bad) < MAX_REPORTED:
            self.bad.append(problem)


class BadLine(Exception):
    """One line that cannot be imported; the message says why, ``field`` names the key at fault."""

    def __init__(self, message: str, code: str = "import.invalid", field: str | None = None):
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True, slots=True)
class SegmentRows:
    """What one Segment call stores: its event, an identity link (anonymous id, user id) when
    it names both, and the identify traits (applied only if the event is new)."""

    event: EventRow
    link: tuple[str, str] | None
    identify: ContactRow | None


class _StrictAbort(Exception):
    pass


def detect_format(path: Path, given: str | None) -> str:
    """``csv`` or ``jsonl``: as given, else from the file extension."""
    if given:
        if given not in FORMATS:
            raise UsageError(f"unknown format {given!r}; use csv or jsonl")
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise UsageError(f"cannot tell the format of {path.name}; pass --format csv or --format jsonl")


# ---------------------------------------------------------------------- batching


@dataclass(slots=True)
class _Batch:
    """Rows parsed from up to BATCH_SIZE lines, written together."""

    contacts: list[ContactRow] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    # identify traits applied only if their event is new
    guarded_contacts: list[tuple[str, ContactRow]] = field(default_factory=list)
    lines: int = 0

    def __len__(self) -> int:
        return self.lines


class _Importer:
    """Drives parse -> batch -> store for one file, in normal or strict mode."""

    def __init__(
        self, store: Store, path: Path, strict: bool, now: datetime | None, counting: str
    ):
        self.counting = counting  # "contacts" or "events": what a duplicate is
        self.store = store
        self.path = path
        self.strict = strict
        self.now = now or datetime.now(UTC)
        self.result = ImportResult()
        self.batch = _Batch()

    def run(self, records: Iterator[tuple[int, Callable[[_Batch], None] | BadLine]]) -> ImportResult:
        if not self.strict:
            self._consume(records)
            return self.result
        try:
            with self.store.transaction():
                self._consume(records)
        except _StrictAbort:
            bad = self.result.bad[:1]
            self.result = ImportResult(bad=bad, bad_lines=1, aborted=True)
        return self.result

    def _consume(self, records: Iterator[tuple[int, Callable[[_Batch], None] | BadLine]]) -> None:
        for line_number, outcome in records:
            if isinstance(outcome, BadLine):
                self.result.report_bad(
                    Problem(str(self.path), line_number, 1, outcome.code, str(outcome))
                )
                if self.strict:
                    raise _StrictAbort
                continue
            if outcome is _skip:
                self.result.skipped += 1
                continue
            outcome(self.batch)
            self.batch.lines += 1
            if len(self.batch) >= BATCH_SIZE:
                self._flush()
        self._flush()

    def _flush(self) -> None:
        batch, self.batch = self.batch, _Batch()
        if not batch.lines:
            return
        changed, inserted = _write_rows(self.store, batch.contacts, batch.links, batch.events,
                                        batch.guarded_contacts, self.now)
        if self.counting == "events":
            duplicates = len(batch.events) - inserted
        else:
            duplicates = len(batch.contacts) - changed
        self.result.duplicates += duplicates
        self.result.imported += batch.lines - duplicates


# ---------------------------------------------------------------------- public API


def import_contacts(
    store: Store,
    path: str | Path,
    format: str | None = None,
    strict: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
    attribute_types: Mapping[str, str] | None = None,
) -> ImportResult:
    """Upsert contacts from CSV or JSONL; ``imported`` counts new or changed contacts.

    CSV cells are text; ``attribute_types`` (from the tracking plan, see
    ``attribute_types``) turns them into numbers and booleans, so a CSV import
    means the same as the JSONL one (``company_size >= 200`` works on both).
    JSONL values are already typed; the same plan refuses a line whose value
    has another type, as a CSV cell that cannot be converted is refused.
    """
    path = Path(path)
    kind = detect_format(path, format)
    if kind == "csv":
        records = _contact_csv_records(path, progress, attribute_types or {})
    else:
        records = _contact_jsonl_records(path, progress, attribute_types or {})
    return _Importer(store, path, strict, now, "contacts").run(records)


def attribute_types(tracking_plan: Mapping[str, Any]) -> dict[str, str]:
    """Dotted attribute path -> declared type, from a project's tracking plan."""
    types: dict[str, str] = {}

    def walk(attributes: Mapping[str, Any], prefix: str) -> None:
        for name, spec in (attributes or {}).items():
            kind = spec if isinstance(spec, str) else (spec or {}).get("type", "string")
            types[prefix + name] = kind
            if isinstance(spec, Mapping) and kind == "object":
                walk(spec.get("properties") or {}, f"{prefix}{name}.")

    walk(tracking_plan.get("attributes") or {}, "")
    return types


_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def _typed_cell(column: str, value: str, kind: str | None) -> Any:
    """A CSV cell as the tracking plan's type says; BadLine when it cannot be."""
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            number = float(value)
            if not math.isfinite(number):
                raise BadLine(f"column '{column}': '{value}' is not a finite number", "import.field")
            return int(number) if number.is_integer() and "." not in value else number
    except ValueError as error:
        if "int_max_str_digits" in str(error):
            raise BadLine(f"column '{column}': {_digits_message(error)}", "import.field") from None
        raise BadLine(f"column '{column}': {shown(value)} is not a{'n' if kind == 'integer' else ''} {kind}", "import.field") from None
    if kind == "boolean":
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise BadLine(f"column '{column}': '{value}' is not a boolean (use true or false)", "import.field")
    return value


def import_events(
    store: Store,
    path: str | Path,
    format: str | None = None,
    strict: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import Segment-style events; ``duplicates`` counts message ids already stored."""
    path = Path(path)
    kind = detect_format(path, format)
    parse = _event_csv_records if kind == "csv" else _event_jsonl_records
    return _Importer(store, path, strict, now, "events").run(parse(path, progress))


# ---------------------------------------------------------------------- reading lines


def _raw_lines(path: Path, progress: Progress | None) -> Iterator[tuple[int, bytes | BadLine]]:
    """(line number, bytes) for every line; a line over MAX_LINE_BYTES is a BadLine,
    skipped in chunks so one hostile line cannot exhaust memory."""
    with path.open("rb") as handle:
        number = 0
        while True:
            raw = handle.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            if progress is not None:
                progress(len(raw))
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = handle.readline(MAX_LINE_BYTES)
                    if progress is not None:
                        progress(len(raw))
                yield number, BadLine(
                    f"line longer than {MAX_LINE_BYTES // 1024} KiB", "import.too-long"
                )
                continue
            yield number, raw


def _decode(number: int, raw: bytes) -> str | BadLine:
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        return BadLine(f"not UTF-8 text ({error.reason})", "import.encoding")


def _lines(path: Path, progress: Progress | None) -> Iterator[tuple[int, str | BadLine]]:
    """(line number, text) for every non-blank line; unreadable lines become BadLine."""
    for number, raw in _raw_lines(path, progress):
        text = raw if isinstance(raw, BadLine) else _decode(number, raw)
        if isinstance(text, BadLine) or not text.isspace() and text:  # isspace: what strip() strips, no copy
            yield number, text


def _json_objects(path: Path, progress: Progress | None) -> Iterator[tuple[int, dict | BadLine]]:
    """(line number, object) for every non-blank line; a line that is no JSON object is a BadLine.

    orjson reads the lines it reads as ``json`` does (``_fast_object``); any other line goes
    the long way (``_json_object``), which gives every value and message."""
    for number, raw in _raw_lines(path, progress):
        if not isinstance(raw, BadLine):
            value = _fast_object(raw)
            if value is not None:
                yield number, value
                continue
        outcome = _json_object(number, raw)
        if outcome is not None:
            yield number, outcome


def _json_object(number: int, raw: bytes | BadLine) -> dict | BadLine | None:
    """One line the plain way: decoded, None when blank, parsed by ``json_value``, an object."""
    text = raw if isinstance(raw, BadLine) else _decode(number, raw)
    if isinstance(text, BadLine):
        return text
    if not text or text.isspace():  # isspace: what strip() strips, no copy
        return None
    value = json_value(text, "invalid JSON")
    if isinstance(value, BadLine):
        return value
    if not isinstance(value, dict):
        return BadLine("each line must be a JSON object", "import.json")
    return value


# For ``_fast_object``: a line's bytes with digits as 0, opening brackets as [, the rest as spaces.
_SHAPE = bytes(48 if 48 <= byte <= 57 else 91 if byte in b"[{" else 32 for byte in range(256))
_LONG_NUMBER = b"0" * 19  # orjson reads an integer past 64 bits as a float; json keeps it whole
_FAST_BRACKETS = 200  # well under json's recursion limit (orjson allows nesting to 1,024)


def _fast_object(raw: bytes) -> dict | None:
    """The object on this line by orjson (2-3x faster than ``json``), or None: not a line orjson
    reads as ``json_value`` does. orjson refuses what ``json_value`` refuses (NaN, Infinity, lone
    surrogates, a BOM, bad UTF-8, numbers overflowing to infinity), and more; the lines it would read
    differently (integers past 64 bits, nesting that json finds too deep) are left to the long way
    by their shape, before parsing."""
    if b"\\u0000" in raw:  # orjson keeps a NUL, which json_value refuses
        return None
    shape = raw.translate(_SHAPE)
    if _LONG_NUMBER in shape or len(raw) > 2 * _FAST_BRACKETS and shape.count(b"[") > _FAST_BRACKETS:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if type(value) is dict else None


def _refuse_constant(name: str) -> Any:
    raise BadLine(f"{name} is not a number JSON allows (use null or a finite number)", "import.json")


# One decoder for every line: json.loads with an argument builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _decoded(text: str) -> Any:
    """``json.loads(text)`` with ``_DECODER``: a line that is one value and its newline is decoded
    without the two whitespace scans of ``decode``; anything else goes the long way, for the
    same value or the same error."""
    try:
        value, end = _DECODER.raw_decode(text)
    except json.JSONDecodeError:
        end = -1
    if end >= 0 and (end == len(text) or end == len(text) - 1 and text[end] == "\n"):
        return value
    if text.startswith("\ufeff"):  # as json.loads says it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


def json_value(text: str, what: str) -> Any:
    """Parse one JSON text, or a BadLine saying why not.

    Beyond syntax: NaN and Infinity (not JSON, and they break comparisons),
    integers past Python's 4,300-digit limit, nesting too deep, lone UTF-16
    surrogates (``"\\ud800"``), which no UTF-8 database can store, and NUL
    characters (``"\\u0000"``), which PostgreSQL cannot store in text: refused
    on every backend, so a file imports the same into SQLite and PostgreSQL.
    """
    try:
        value = _decoded(text)
    except json.JSONDecodeError as error:
        return BadLine(f"{what}: {error.msg} (column {error.colno})", "import.json")
    except BadLine as bad:
        return bad
    except RecursionError:
        return BadLine(f"{what}: nested too deeply", "import.json")
    except ValueError as error:  # int() over sys.get_int_max_str_digits()
        return BadLine(f"{what}: {_digits_message(error)}", "import.json")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) and _any_string(value, _SURROGATE.search):
        return BadLine(f"{what}: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)", "import.encoding")
    if "\\u0000" in text and _any_string(value, _holds_nul):
        return BadLine(_NUL_MESSAGE.format(what=f"{what}: a string"), "import.encoding")
    return value


def _digits_message(error: ValueError) -> str:
    """Python's refusal of an integer too long to convert, without its advice to raise the limit
    (``sys.set_int_max_str_digits``: the runner's setting, not the user's to change)."""
    if "int_max_str_digits" not in str(error):
        return str(error)
    return f"a number has more than {sys.get_int_max_str_digits():,} digits"


_NUL_MESSAGE = "{what} holds a NUL character (\\u0000), which the database cannot store"


def _holds_nul(text: str) -> bool:
    return "\0" in text


def _any_string(value: Any, test: Callable[[str], object]) -> bool:
    """Does ``test`` hold for any key or string inside ``value`` (nested dicts and lists)?"""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if test(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _csv_rows(
    path: Path, progress: Progress | None, required: tuple[tuple[str, ...], ...]
) -> Iterator[tuple[int, dict | BadLine]]:
    """(first line of the record, {column: cell}) for every CSV record after the header.

    ``required``: groups of columns of which the header must name at least
    one each; a header without them is one bad line 1 and nothing more.
    """
    undecodable: dict[int, BadLine] = {}

    def texts() -> Iterator[str]:
        for number, raw in _raw_lines(path, progress):
            text = raw if isinstance(raw, BadLine) else _decode(number, raw)
            if isinstance(text, str) and "\0" in text:
                text = BadLine(_NUL_MESSAGE.format(what="the line"), "import.encoding")
            if isinstance(text, BadLine):
                undecodable[number] = text
                yield "\n"  # keeps the reader's line count; the record is reported bad
            else:
                yield text

    reader = csv.reader(texts())
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as error:
        yield 1, BadLine(f"unreadable CSV header: {error}", "import.csv")
        return
    header = [name.strip() for name in header]
    missing = [" or ".join(group) for group in required if not set(group) & set(header)]
    if missing:
        yield 1, BadLine(
            f"the header lacks column {', '.join(missing)} (found: {', '.join(header)})",
            "import.csv",
        )
        return
    last_line = reader.line_num
    while True:
        start = last_line + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            last_line = reader.line_num
            yield start, BadLine(f"unreadable CSV: {error}", "import.csv")
            continue
        last_line = reader.line_num
        bad = next((undecodable.pop(n) for n in range(start, last_line + 1) if n in undecodable), None)
        if bad is not None:
            yield start, bad
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            yield start, BadLine(
                f"expected {len(header)} columns ({', '.join(header)}), found {len(cells)}",
                "import.csv",
            )
            continue
        yield start, dict(zip(header, cells, strict=True))


# ---------------------------------------------------------------------- contacts


def _contact_csv_records(path: Path, progress: Progress | None, types: Mapping[str, str]):
    for number, row in _csv_rows(path, progress, (("id",),)):
        yield number, _parse_or_bad(lambda r: _contact_from_csv(r, types), row)


def _contact_jsonl_records(path: Path, progress: Progress | None, types: Mapping[str, str]):
    for number, obj in _json_objects(path, progress):
        yield number, _parse_or_bad(lambda o: _contact_from_json(o, types), obj)


def _contact_from_csv(row: dict[str, str], types: Mapping[str, str]) -> Callable[[_Batch], None]:
    contact_id = row.get("id", "").strip()
    if not contact_id:
        raise BadLine("missing contact id (column 'id')", "import.field")
    attributes: dict[str, Any] = {}
    timezone = None
    for column, cell in row.items():
        value = cell.strip()
        if column == "id" or not value:
            continue
        if column == "timezone":
            timezone = _timezone(value)
        elif column == "anonymous_ids":
            continue
        else:
            _set_dotted(attributes, column, _typed_cell(column, value, types.get(column)))
    _check_email(attributes)
    anonymous_ids = [a.strip() for a in row.get("anonymous_ids", "").split(";") if a.strip()]
    contact = ContactRow(contact_id, attributes, timezone, anonymous_ids, snapshot=True)
    return lambda batch: batch.contacts.append(contact)


def _contact_from_json(obj: dict, types: Mapping[str, str]) -> Callable[[_Batch], None]:
    contact_id = _identifier(obj.get("id"))
    if contact_id is None:
        raise BadLine("missing contact id ('id')", "import.field")
    attributes = obj.get("attributes", {})
    if not isinstance(attributes, dict):
        raise BadLine("'attributes' must be an object", "import.field")
    attributes = dict(attributes)
    if isinstance(obj.get("email"), str):
        attributes.setdefault("email", obj["email"])
    _check_types(attributes, types)
    _check_email(attributes)
    timezone = _timezone(obj["timezone"]) if obj.get("timezone") is not None else None
    anonymous_ids = obj.get("anonymous_ids", [])
    if not isinstance(anonymous_ids, list) or not all(isinstance(a, str) and a for a in anonymous_ids):
        raise BadLine("'anonymous_ids' must be a list of strings", "import.field")
    events = obj.get("events", [])
    if not isinstance(events, list):
        raise BadLine("'events' must be a list", "import.field")
    rows: list[EventRow] = []
    links: list[tuple[str, str]] = []
    for index, item in enumerate(events):
        if not isinstance(item, dict) or not isinstance(item.get("event"), str) or not item["event"]:
            raise BadLine(f"events[{index}] needs an 'event' name", "import.field")
        at = _instant(item.get("at"), f"events[{index}].at")
        properties = _object(item.get("properties"), f"events[{index}].properties")
        anonymous_id = _identifier(item.get("anonymous_id"))
        if anonymous_id is not None:  # the test contacts' identify: links the visitor
            links.append((anonymous_id, contact_id))
        message_id = item.get("message_id") or _derived_id(
            contact_id, anonymous_id, item["event"], at, properties
        )
        rows.append(
            EventRow(contact_id, anonymous_id, item["event"], at, properties, str(message_id))
        )
    contact = ContactRow(contact_id, attributes, timezone, list(anonymous_ids), snapshot=True)

    def add(batch: _Batch) -> None:
        batch.contacts.append(contact)
        batch.links.extend(links)
        batch.events.extend(rows)

    return add


# ---------------------------------------------------------------------- events

IGNORED_TYPES = {"group"}


def _event_jsonl_records(path: Path, progress: Progress | None):
    for number, obj in _json_objects(path, progress):
        if not isinstance(obj, BadLine) and obj.get("type") in IGNORED_TYPES:
            yield number, _skip
            continue
        yield number, _parse_or_bad(_segment_event, obj)


def _event_csv_records(path: Path, progress: Progress | None):
    required = (("user_id", "anonymous_id"), ("event",), ("timestamp",))
    for number, row in _csv_rows(path, progress, required):
        yield number, _parse_or_bad(_csv_event, row)


def _skip(batch: _Batch) -> None:
    """A Segment call the runner does not use (group); counted as skipped."""


def _segment_event(obj: dict) -> Callable[[_Batch], None]:
    return _add_rows(parse_segment(obj))


def parse_segment(obj: dict) -> SegmentRows:
    """Map one Segment call (track, identify, alias, page, screen) to store rows; BadLine says
    what is wrong (``field``: the offending key). The one mapping of both ``journey events
    import`` and the events API (``runner.serve.events``)."""
    kind = obj.get("type") or ("track" if "event" in obj else None)
    user_id = _identifier(obj.get("userId"))
    anonymous_id = _identifier(obj.get("anonymousId"))
    if kind == "alias":
        previous_id = _identifier(obj.get("previousId")) or anonymous_id
        if user_id is None or previous_id is None:
            raise BadLine("alias needs 'userId' and 'previousId'", "import.field",
                          "userId" if user_id is None else "previousId")
        anonymous_id = previous_id
    if user_id is None and anonymous_id is None:
        raise BadLine("needs 'userId' or 'anonymousId'", "import.field", "userId")
    at = _instant(_first_present(obj, "timestamp", "originalTimestamp", "sentAt", "receivedAt"), "timestamp")
    if kind == "alias":
        name, properties = "alias", {}
    elif kind == "track":
        event = obj.get("event")
        if not isinstance(event, str) or not event.strip():
            raise BadLine("track needs an 'event' name", "import.field", "event")
        name = event
        properties = _object(obj.get("properties"), "properties")
    elif kind in PAGE_EVENTS:
        name = PAGE_EVENTS[kind]
        properties = _object(obj.get("properties"), "properties")
        if isinstance(obj.get("name"), str):
            properties.setdefault("name", obj["name"])
    elif kind == "identify":
        name = "identify"
        if obj.get("traits") is None and isinstance(obj.get("context"), dict) and "traits" in obj["context"]:
            properties = _object(obj["context"]["traits"], "context.traits")  # RudderStack's SDKs send them there
        else:
            properties = _object(obj.get("traits"), "traits")
    else:
        raise BadLine(
            f"unknown type {kind!r}; use track, identify, alias, page or screen", "import.field", "type"
        )
    message_id = _identifier(obj.get("messageId")) or _derived_id(
        user_id, anonymous_id, name, at, properties
    )
    return _event_rows(user_id, anonymous_id, name, at, properties, message_id, obj)


def _csv_event(row: dict[str, str]) -> Callable[[_Batch], None]:
    user_id = row.get("user_id", "").strip() or None
    anonymous_id = row.get("anonymous_id", "").strip() or None
    if user_id is None and anonymous_id is None:
        raise BadLine("needs 'user_id' or 'anonymous_id'", "import.field")
    name = row.get("event", "").strip()
    if not name:
        raise BadLine("missing event name (column 'event')", "import.field")
    at = _instant(row.get("timestamp", "").strip() or None, "timestamp")
    properties: dict[str, Any] = {}
    if row.get("properties", "").strip():
        properties = json_value(row["properties"], "'properties' is not valid JSON")
        if isinstance(properties, BadLine):
            raise properties
        properties = _object(properties, "properties")
    for column, cell in row.items():
        if column.startswith("prop.") and cell.strip():
            _set_dotted(properties, column[len("prop."):], cell.strip())
    message_id = row.get("message_id", "").strip() or _derived_id(
        user_id, anonymous_id, name, at, properties
    )
    return _add_rows(_event_rows(user_id, anonymous_id, name, at, properties, message_id, {}))


def _event_rows(
    user_id: str | None,
    anonymous_id: str | None,
    name: str,
    at: datetime,
    properties: dict[str, Any],
    message_id: str,
    segment: dict,
) -> SegmentRows:
    """Store rows for one event: the event, a link when both ids are given, and
    (only if the event is new) identify traits. The store records the suppressions
    of new suppressing events itself."""
    event = EventRow(user_id, anonymous_id, name, at, properties, message_id)
    identify: ContactRow | None = None
    if name == "identify" and user_id is not None:
        traits = dict(properties)
        timezone = traits.pop("timezone", None) or _object(segment.get("context"), "context").get("timezone")
        identify = ContactRow(
            user_id, traits, _timezone(timezone, "traits.timezone") if timezone else None, changed_at=at
        )
        _check_email(traits, "traits.email")
    link = (anonymous_id, user_id) if user_id is not None and anonymous_id is not None else None
    return SegmentRows(event, link, identify)


def _add_rows(rows: SegmentRows) -> Callable[[_Batch], None]:
    def add(batch: _Batch) -> None:
        batch.events.append(rows.event)
        if rows.link is not None:
            batch.links.append(rows.link)
        if rows.identify is not None:
            batch.guarded_contacts.append((rows.event.message_id, rows.identify))

    return add


def write_segment_rows(store: Store, rows: list[SegmentRows], now: datetime) -> int:
    """Write parsed Segment calls in one transaction; returns how many events were new
    (a message id already stored is a duplicate: its identify traits are not applied again)."""
    links = [row.link for row in rows if row.link is not None]
    guarded = [(row.event.message_id, row.identify) for row in rows if row.identify is not None]
    return _write_rows(store, [], links, [row.event for row in rows], guarded, now)[1]


def _write_rows(store: Store, contacts: list[ContactRow], links: list[tuple[str, str]], events: list[EventRow],
                guarded: list[tuple[str, ContactRow]], now: datetime) -> tuple[int, int]:
    """Contacts, identity links, events, and the identify traits of events not stored yet, in one
    transaction: (contacts new or changed, events new)."""
    with store.transaction():
        seen = store.existing_message_ids([mid for mid, _ in guarded]) if guarded else set()
        # two identify calls with one message id in the same write apply their traits once
        fresh = {mid: row for mid, row in guarded if mid not in seen}
        contacts = contacts + list(fresh.values())
        changed = store.write_contacts(contacts, now) if contacts else 0
        if links:
            store.link_identities(links, now)
        inserted = store.write_events(events, now) if events else 0  # suppressing events suppress
    return changed, inserted


# ---------------------------------------------------------------------- field helpers


def _parse_or_bad(parse: Callable[[Any], Callable[[_Batch], None]], value: Any):
    if isinstance(value, BadLine):
        return value
    try:
        return parse(value)
    except BadLine as bad:
        return bad


def _identifier(value: Any) -> str | None:
    """Ids may arrive as strings or numbers; empty means absent."""
    if type(value) is str:  # the common case, first
        return value.strip() or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _first_present(obj: dict, *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _instant(value: Any, where: str) -> datetime:
    """An ISO 8601 instant with an offset (or Z), as aware UTC."""
    if not isinstance(value, str) or not value.strip():
        raise BadLine(f"missing {where} (ISO 8601 with an offset, e.g. 2026-03-02T09:30:00Z)", "import.timestamp", where)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadLine(f"{where} {shown(value)} is not an ISO 8601 date-time", "import.timestamp", where) from None
    if parsed.tzinfo is None:
        raise BadLine(f"{where} {shown(value)} needs a UTC offset (Z or +03:00)", "import.timestamp", where)
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        instant = None
    if instant is None or not in_range(instant):
        raise BadLine(f"{where} {shown(value)} is not {RANGE_TEXT}", "import.timestamp", where)
    return instant


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadLine(f"'{where}' must be an object", "import.field", where)
    return dict(value)


@lru_cache(maxsize=1024)
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _timezone(value: Any, field: str = "timezone") -> str:
    if not isinstance(value, str) or not _known_zone(value.strip()):
        raise BadLine(f"unknown time zone {shown(value)} (use an IANA name like Europe/Istanbul)", "import.timezone", field)
    return value.strip()


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "date": (str,), "datetime": (str,), "list": (list,), "object": (dict,),
    "integer": (int,), "number": (int, float), "boolean": (bool,),
}


def _check_types(attributes: Mapping[str, Any], types: Mapping[str, str], prefix: str = "") -> None:
    """JSONL attribute values against the tracking plan (null clears, so it is allowed)."""
    for name, value in attributes.items():
        path = prefix + str(name)
        kind = types.get(path)
        if isinstance(value, dict):
            if kind not in (None, "object"):
                raise BadLine(f"attribute '{path}': an object is not a{'n' if kind == 'integer' else ''} {kind}", "import.field")
            _check_types(value, types, path + ".")
            continue
        if kind is None or value is None or kind not in _JSON_TYPES:
            continue
        wrong_bool = isinstance(value, bool) and kind != "boolean"
        whole = kind == "integer" and isinstance(value, float) and value.is_integer()  # JSON Schema's view
        if wrong_bool or not (whole or isinstance(value, _JSON_TYPES[kind])):
            article = "an" if kind == "integer" else "a"
            raise BadLine(f"attribute '{path}': {json.dumps(value)[:60]} is not {article} {kind}", "import.field")


def _check_email(attributes: dict[str, Any], field: str = "email") -> None:
    email = attributes.get("email")
    if email is not None and (not isinstance(email, str) or not EMAIL.match(email)):
        raise BadLine(f"invalid email address {shown(email)}", "import.email", field)


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    """``meddic.metrics`` -> target["meddic"]["metrics"] = value."""
    *parents, leaf = dotted.split(".")
    node = target
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def _derived_id(
    user_id: str | None, anonymous_id: str | None, name: str, at: datetime, properties: dict
) -> str:
    """A stable message id for lines without one, so re-imports stay idempotent."""
    content = json.dumps(
        [user_id, anonymous_id, name, at.isoformat(), properties], sort_keys=True, default=str
    )
    return "sha1:" + hashlib.sha1(content.encode("utf-8")).hexdigest()
