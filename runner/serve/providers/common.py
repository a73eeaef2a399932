"""What the provider webhooks share: the refusal, the bounded body, the recording of reports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from runner.core.bounces import EVENT_OF, Bounce
from runner.production.bounces import BounceOutcome, record_bounces
from runner.serve import metrics
from runner.serve.bouncesettings import MAX_BODY_BYTES, BounceSettings


@dataclass
class Refused(Exception):
    """A webhook request answered with an error (nothing recorded): status, a short code, a message."""

    status: int
    code: str
    message: str

    def response(self, request: Request) -> Response:
        metrics.request_rejected(self.code, request.scope)
        return JSONResponse({"success": False, "code": self.code, "message": self.message}, status_code=self.status)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def endpoint(handler: Handler) -> Handler:
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except Refused as refused:
            return refused.response(request)

    return answer


async def raw_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body's bytes, refused past ``limit`` (413) without reading further, or when it does not
    arrive within the events API's read time (408: a slow client holds nothing for long)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, "too_large", f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    seconds = request.app.state.settings.events.read_seconds
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Refused(413, "too_large", f"the body is larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(408, "timeout", f"the body did not arrive within {seconds:g} s") from None
    return b"".join(chunks)


async def json_body(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object, refused past ``limit`` bytes (413) or when it is no JSON object (400)."""
    body = await raw_body(request, limit)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise Refused(400, "invalid_json", "the body is not JSON") from None
    if not isinstance(document, dict):
        raise Refused(400, "invalid_json", "the body is not a JSON object")
    return document


async def record(request: Request, settings: BounceSettings, bounces: list[Bounce]) -> BounceOutcome:
    """Record the reports (committed when this returns) and count them in /metrics."""
    access = request.app.state.store_access
    outcome: BounceOutcome = await access.write(partial(record_bounces, bounces=bounces, rule=settings.rule,
                                                        now=datetime.now(UTC)))
    for kind, count in outcome.by_kind.items():
        metrics.event_received(EVENT_OF[kind], count)
    return outcome


def recorded(outcome: BounceOutcome | None) -> Response:
    counts = {"recorded": outcome.counted if outcome else 0, "duplicates": outcome.duplicates if outcome else 0}
    return JSONResponse({"success": True, **counts})


def text(value: object, limit: int = 500) -> str:
    """A provider's string field (anything else: '') cut to ``limit`` characters."""
    return value[:limit] if isinstance(value, str) else ""
