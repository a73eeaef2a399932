"""Events in, Segment-compatible: ``POST /v1/track``, ``/identify``, ``/alias``, ``/page``, ``/screen``,
``/group`` and ``/batch``, with the payloads, limits and answers of Segment's HTTP Tracking API.

Each call is mapped to store rows by the importer's own function
(``runner.production.ingest.parse_segment``): an event sent here is stored exactly as the
same line given to ``journey events import`` would be. The rows are committed (through
``StoreAccess``, group commit) before the ``200``, so an answered event survives a kill and
its contact is due at once. ``messageId`` deduplicates: a retried call is stored once.

Answers: ``200 {"success": true}``; ``400`` naming the field and the reason (in a batch,
the good events are kept and each bad one is listed by index); ``401`` for a missing or
unknown write key; ``408`` for a body that does not arrive within 30 s; ``413`` past 32 KB an event or 500 KB a batch (after decompression: a
gzip bomb is cut off at the limit); ``415`` for a ``Content-Encoding`` other than gzip.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import zlib
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runner.production.ingest import BadLine, SegmentRows, json_value, parse_segment, write_segment_rows
from runner.serve import metrics
from runner.serve.settings import ServeSettings
from runner.serve.storeaccess import StoreAccess

CALLS = ("track", "identify", "alias", "page", "screen", "group")
OK = b'{"success":true}'
MAX_ERRORS = 100  # bad events listed in one answer (a batch may hold thousands)


@dataclass
class Rejected(Exception):
    """A request answered with an error: status, a short code, a message, per-event errors."""

    status: int
    code: str
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)

    def response(self, request: Request) -> Response:
        body: dict[str, Any] = {"success": False, "code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        headers = {"WWW-Authenticate": 'Basic realm="journey"'} if self.status == 401 else None
        metrics.request_rejected(self.code, request.scope)
        return JSONResponse(body, status_code=self.status, headers=headers)


def routes(settings: ServeSettings) -> list[BaseRoute]:
    found: list[BaseRoute] = [
        Route(f"/v1/{call}", _endpoint(partial(_single, settings, call)), methods=["POST"], name=f"events-{call}")
        for call in CALLS
    ]
    found.append(Route("/v1/batch", _endpoint(partial(_batch, settings)), methods=["POST"], name="events-batch"))
    return found


Handler = Callable[[Request, StoreAccess], Coroutine[Any, Any, Response]]


def _endpoint(handler: Handler) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, request.app.state.store_access)
        except Rejected as rejected:
            return rejected.response(request)

    return endpoint


# ---------------------------------------------------------------- the calls


async def _single(settings: ServeSettings, call: str, request: Request, access: StoreAccess) -> Response:
    payload = await _authorized_payload(request, settings, settings.events.max_event_bytes)
    received = datetime.now(UTC)
    try:
        rows = _rows(call, payload, received.isoformat())
    except BadLine as bad:
        raise Rejected(400, "invalid_event", _described(bad), [_error(bad)]) from None
    if rows is not None:
        await access.write(partial(_store, [rows], received))
    metrics.event_received(call)
    return Response(OK, media_type="application/json")


async def _batch(settings: ServeSettings, request: Request, access: StoreAccess) -> Response:
    limits = settings.events
    payload = await _authorized_payload(request, settings, limits.max_batch_bytes)
    items = payload.get("batch")
    if not isinstance(items, list):
        raise Rejected(400, "invalid_batch", "'batch' must be a list of calls", [{"field": "batch",
                                                                                  "message": "must be a list"}])
    received = datetime.now(UTC)
    # only a body past the per-event limit can hold an event past it
    sized = request.state.body_bytes > limits.max_event_bytes
    received_text = received.isoformat()  # once a request, not once a call
    good: list[SegmentRows] = []
    accepted: Counter[str] = Counter()  # calls by type (a group call is accepted, not stored)
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise BadLine("each call in 'batch' must be an object", "import.field", "batch")
            if sized and _size(item) > limits.max_event_bytes:
                raise BadLine(f"the call is larger than {limits.max_event_bytes // 1024} KB", "import.too-long")
            call = item.get("type")
            if call not in CALLS:
                raise BadLine(f"'type' must be one of {', '.join(CALLS)}", "import.field", "type")
            rows = _rows(str(call), item, received_text)
        except BadLine as bad:
            if len(errors) < MAX_ERRORS:
                errors.append({"index": index, **_error(bad)})
            continue
        accepted[str(call)] += 1
        if rows is not None:
            good.append(rows)
    if good:
        await access.write(partial(_store, good, received))
    for kind, count in accepted.items():
        metrics.event_received(kind, count)
    if errors:
        bad_count = len(items) - len(good)
        raise Rejected(400, "invalid_events", f"{bad_count} of {len(items)} calls were refused (the others "
                       "are stored); see 'errors'", errors)
    return Response(OK, media_type="application/json")


def _rows(call: str, payload: dict[str, Any], received: str) -> SegmentRows | None:
    """The store rows of one call (None: a group call, accepted and not stored, as the importer skips it)."""
    if call == "group":
        if payload.get("groupId") in (None, ""):
            raise BadLine("group needs a 'groupId'", "import.field", "groupId")
        if payload.get("userId") in (None, "") and payload.get("anonymousId") in (None, ""):
            raise BadLine("needs 'userId' or 'anonymousId'", "import.field", "userId")
        return None
    # the endpoint names the call; the server's clock is the receipt time (the time of last resort)
    return parse_segment({**payload, "type": call, "receivedAt": received})


def _store(rows: list[SegmentRows], received: datetime, store: Any) -> int:
    return write_segment_rows(store, rows, received)


def _error(bad: BadLine) -> dict[str, Any]:
    return {"field": bad.field, "message": str(bad)} if bad.field else {"message": str(bad)}


def _described(bad: BadLine) -> str:
    return f"{bad.field}: {bad}" if bad.field else str(bad)


def _size(item: dict[str, Any]) -> int:
    return len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))


# ---------------------------------------------------------------- the request: key, body, JSON


async def _authorized_payload(request: Request, settings: ServeSettings, limit: int) -> dict[str, Any]:
    """The request's JSON object, once its write key is known (HTTP Basic user name, else the
    body's ``writeKey``, as Segment accepts both)."""
    if not settings.write_keys:
        raise Rejected(401, "unauthorized", "no write keys are configured: set JOURNEY_WRITE_KEYS")
    header = request.headers.get("authorization")
    if header is not None and not settings.accepts_write_key(_basic_user(header)):
        raise Rejected(401, "unauthorized", "unknown write key (HTTP Basic user name)")
    payload = _json_object(await _body(request, limit, settings.events.read_seconds))
    if header is None:
        key = payload.get("writeKey")
        if not isinstance(key, str) or not settings.accepts_write_key(key):
            raise Rejected(401, "unauthorized", "a write key is needed: HTTP Basic user name, or 'writeKey'")
    return payload


def _basic_user(header: str) -> str:
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""
    return decoded.partition(":")[0]


async def _body(request: Request, limit: int, read_seconds: float) -> bytes:
    """The body, decompressed, refused past ``limit`` bytes without reading (or inflating) further,
    and past ``read_seconds`` (a client trickling a body holds a connection and a task)."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise Rejected(415, "unsupported_encoding", f"Content-Encoding {encoding[:40]!r} is not supported; "
                       "send gzip or no encoding")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Rejected(413, "too_large", _too_large(limit))
    try:
        async with asyncio.timeout(read_seconds):
            raw = await _read(request, limit)
    except TimeoutError:
        raise Rejected(408, "timeout", f"the body did not arrive within {read_seconds:g} s") from None
    if encoding == "gzip":
        raw = _gunzip(raw, limit)
    request.state.body_bytes = len(raw)
    return raw


async def _read(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "too_large", _too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise Rejected(400, "invalid_body", "the body is not valid gzip") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise Rejected(413, "too_large", _too_large(limit) + " (decompressed)")
    if not inflater.eof:
        raise Rejected(400, "invalid_body", "the gzip body is truncated")
    return out


def _too_large(limit: int) -> str:
    return f"the body is larger than {limit // 1024} KB (Segment's limits: 32 KB a call, 500 KB a batch)"


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Rejected(400, "invalid_body", f"the body is not UTF-8 ({error.reason} at byte {error.start})") from None
    value = json_value(text, "invalid JSON")
    if isinstance(value, BadLine):
        raise Rejected(400, "invalid_json", str(value))
    if not isinstance(value, dict):
        raise Rejected(400, "invalid_json", "the body must be a JSON object")
    return value


# ---------------------------------------------------------------- OpenAPI (runner.serve.openapi)

_ID = {"oneOf": [{"type": "string"}, {"type": "number"}], "description": "A string or a number"}
_COMMON = {
    "userId": _ID, "anonymousId": _ID,
    "messageId": {"type": "string", "description": "Deduplicates: a call with a stored messageId is not stored again"},
    "timestamp": {"type": "string", "format": "date-time", "description": "When it happened (default: receipt)"},
    "context": {"type": "object"}, "integrations": {"type": "object"},
    "writeKey": {"type": "string", "description": "The write key, when not sent as the HTTP Basic user name"},
}
_WHO = [{"required": ["userId"]}, {"required": ["anonymousId"]}]
_CALLS: dict[str, dict[str, Any]] = {
    "track": {"properties": {"event": {"type": "string", "minLength": 1}, "properties": {"type": "object"}},
              "required": ["event"], "anyOf": _WHO},
    "identify": {"properties": {"traits": {"type": "object"}}, "anyOf": _WHO},
    "alias": {"properties": {"previousId": _ID}, "required": ["userId", "previousId"]},
    "page": {"properties": {"name": {"type": "string"}, "properties": {"type": "object"}}, "anyOf": _WHO},
    "screen": {"properties": {"name": {"type": "string"}, "properties": {"type": "object"}}, "anyOf": _WHO},
    "group": {"properties": {"groupId": _ID, "traits": {"type": "object"}}, "required": ["groupId"], "anyOf": _WHO},
}


def openapi_components() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        call.title(): {"type": "object", **spec, "properties": {**_COMMON, **spec["properties"]}}
        for call, spec in _CALLS.items()
    }
    schemas["BatchCall"] = {"type": "object", "required": ["type"],
                            "properties": {**_COMMON, "type": {"type": "string", "enum": list(CALLS)}}}
    schemas["Batch"] = {"type": "object", "required": ["batch"], "properties": {
        "batch": {"type": "array", "items": {"$ref": "#/components/schemas/BatchCall"}},
        "context": {"type": "object"}, "writeKey": {"type": "string"}, "sentAt": {"type": "string"}}}
    schemas["Success"] = {"type": "object", "required": ["success"], "properties": {"success": {"type": "boolean",
                                                                                                 "enum": [True]}}}
    schemas["Refusal"] = {"type": "object", "required": ["success", "code", "message"], "properties": {
        "success": {"type": "boolean", "enum": [False]}, "code": {"type": "string"}, "message": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["message"], "properties": {
            "index": {"type": "integer", "description": "The call's position in 'batch'"},
            "field": {"type": "string"}, "message": {"type": "string"}}}}}}
    return {"schemas": schemas, "securitySchemes": {"writeKey": {
        "type": "http", "scheme": "basic", "description": "The write key as user name, no password"}}}


def openapi_paths() -> dict[str, Any]:
    def refusal(what: str) -> dict[str, Any]:
        return {"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refusal"}}}}

    def operation(schema: str, summary: str) -> dict[str, Any]:
        return {"post": {
            "summary": summary,
            "security": [{"writeKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{schema}"}}}},
            "responses": {
                "200": {"description": "Stored (committed) or already stored",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Success"}}}},
                "400": refusal("A bad call (the field and the reason); in a batch, the others are stored"),
                "401": refusal("No write key, or an unknown one"),
                "408": refusal("The body did not arrive in time (30 s)"),
                "413": refusal("Over 32 KB a call or 500 KB a batch (after decompression)"),
                "415": refusal("A Content-Encoding other than gzip"),
            },
        }}

    paths = {f"/v1/{call}": operation(call.title(), f"Segment {call} call") for call in CALLS}
    paths["/v1/batch"] = operation("Batch", "Several calls; good calls are kept, each bad one reported")
    return paths
