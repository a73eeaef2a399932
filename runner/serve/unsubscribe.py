"""The unsubscribe link, served: RFC 8058 one-click unsubscribe, and the preferences page.

The path is the one in every message's ``List-Unsubscribe`` header: both come from the
project's ``unsubscribe.url`` through ``runner.delivery.unsubscribe`` (``unsubscribe_url``
at send time, ``unsubscribe_path`` here). The token in the link's query says which
contact may unsubscribe from which topic; it is verified in constant time, and a forged,
altered, truncated, other-secret or other-contact token gets ``403`` and changes nothing.

- ``POST`` with the body ``List-Unsubscribe=One-Click`` unsubscribes at once from the
  token's topic: no confirmation, no cookie, no redirect, and the same ``200`` when repeated.
- ``GET`` shows the page: a button that sends that same POST, the contact's topics as
  checkboxes (``action=preferences``), and an unsubscribe from all marketing
  (``action=everything``).

Every change is committed (``StoreAccess.write``) before the answer, so the very next
tick honours it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from functools import partial
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from runner.core.model import Topic
from runner.core.vocabulary import ALL_TOPICS
from runner.delivery.unsubscribe import InvalidToken, UnsubscribeToken, unsubscribe_path, verify_token
from runner.serve import metrics, optouts
from runner.serve.settings import ServeSettings
from runner.serve.unsubscribepage import HEADERS, done_page, preferences_page, refused_page

MAX_BODY_BYTES = 16 * 1024  # a form of checkboxes; anything bigger is not ours
ONE_CLICK = ("List-Unsubscribe", "One-Click")


class Refused(Exception):
    """A request answered with an error page: status, a metrics reason, a message for the reader."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def routes(settings: ServeSettings) -> list[BaseRoute]:
    path = unsubscribe_path(settings.project.unsubscribe_url)
    return [Route(path, partial(_endpoint, settings), methods=["GET", "POST"], name="unsubscribe")]


def openapi_paths() -> dict[str, Any]:
    """The link's two operations in ``GET /openapi.json`` (so the fuzz test sends them what it
    generates), at the default path (a project's ``unsubscribe.url`` may name another)."""
    html = {"text/html": {"schema": {"type": "string"}}}

    def answers(ok: str, *refusals: str) -> dict[str, Any]:
        described = {"200": ok, "400": "A form the page does not send", "403": "No token, two, or a token that "
                     "does not verify (forged, altered, truncated, another secret, another contact)",
                     "413": "A form over 16 KB", "503": "The unsubscribe secret is not configured"}
        return {status: {"description": text, "content": html} for status, text in described.items()
                if status == "200" or status in refusals}

    token = [{"name": "token", "in": "query", "required": True, "schema": {"type": "string"}}]
    form = {"type": "object", "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]},
                                             "action": {"type": "string", "enum": ["preferences", "everything"]},
                                             "topic": {"type": "array", "items": {"type": "string"}}}}
    return {"/unsubscribe": {
        "get": {"summary": "The preferences page", "parameters": token,
                "responses": answers("The page", "403", "503")},
        "post": {"summary": "RFC 8058 one-click unsubscribe (List-Unsubscribe=One-Click), or the page's forms",
                 "parameters": token,
                 "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": form}}},
                 "responses": answers("Unsubscribed, or the page again", "400", "403", "413", "503")},
    }}


async def _endpoint(settings: ServeSettings, request: Request) -> Response:
    try:
        token = _verified(settings, request)
        if request.method == "POST":
            return await _post(settings, request, token)
        return await _page(settings, request, token)
    except Refused as refused:
        metrics.request_rejected(refused.reason, request.scope)
        return _html(refused_page(refused.message), refused.status)


def _verified(settings: ServeSettings, request: Request) -> UnsubscribeToken:
    secret = settings.unsubscribe_secret
    if secret is None:
        raise Refused(503, "unsubscribe_unconfigured", "Unsubscribing is not available right now; "
                      "reply to the email to unsubscribe.")
    tokens = request.query_params.getlist("token")
    if len(tokens) != 1:
        raise Refused(403, "bad_token", "This unsubscribe link is incomplete. Use the link from the email.")
    try:
        return verify_token(secret, tokens[0])
    except InvalidToken:
        raise Refused(403, "bad_token", "This unsubscribe link is not valid. Use the link from the email.") from None


async def _page(settings: ServeSettings, request: Request, token: UnsubscribeToken,
                status: str | None = None) -> Response:
    prefs = await request.app.state.store_access.read(
        partial(optouts.preferences, contact_id=token.contact_id, now=datetime.now(UTC)))
    topics = list(settings.project.topics.values())
    page = preferences_page(action=_action(request), token_topic=_topic(settings, token.topic), prefs=prefs,
                            topics=topics, status=status)
    return _html(page)


async def _post(settings: ServeSettings, request: Request, token: UnsubscribeToken) -> Response:
    form = await _form(request)
    access = request.app.state.store_access
    now = datetime.now(UTC)
    action = form.get("action", [])
    if form.get(ONE_CLICK[0]) == [ONE_CLICK[1]] and not action:
        if await access.write(partial(optouts.unsubscribe, contact_id=token.contact_id, topic=token.topic, now=now,
                                      source="one-click")):
            metrics.unsubscribed("one-click", [token.topic])
        return _html(done_page(_described(settings, token.topic)))
    if action == ["everything"]:
        if await access.write(partial(optouts.unsubscribe, contact_id=token.contact_id, topic=ALL_TOPICS, now=now,
                                      source="preferences")):
            metrics.unsubscribed("preferences", [ALL_TOPICS])
        return await _page(settings, request, token, "You are unsubscribed from all marketing email.")
    if action == ["preferences"]:
        marketing = [name for name, topic in settings.project.topics.items() if topic.marketing]
        wanted = form.get("topic", [])
        unknown = sorted(set(wanted) - set(marketing))
        if unknown:
            raise Refused(400, "unknown_topic", f"There is no topic called {unknown[0][:60]!r} to choose.")
        metrics.unsubscribed("preferences", await access.write(partial(
            optouts.save_preferences, contact_id=token.contact_id, wanted=wanted, marketing=marketing, now=now,
            source="preferences")))
        return await _page(settings, request, token, "Your preferences are saved.")
    raise Refused(400, "bad_form", "Unsubscribe with the button on the page (or the one-click body "
                  "List-Unsubscribe=One-Click).")


async def _form(request: Request) -> dict[str, list[str]]:
    """The POST body's fields: form-urlencoded (what RFC 8058 senders and browsers send) or
    multipart/form-data; refused past ``MAX_BODY_BYTES`` or when it is not text."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, "too_large", "The form is too large.")
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.lower().startswith("multipart/form-data"):
            return _multipart(content_type, body)
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "bad_form", "The form could not be read.") from None


def _multipart(content_type: str, body: bytes) -> dict[str, list[str]]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    fields: dict[str, list[str]] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields.setdefault(name, []).append(payload.decode("utf-8"))
    if not fields:
        raise ValueError("no fields")
    return fields


def _topic(settings: ServeSettings, name: str) -> Topic | None:
    """The token's topic as the project declares it (None: every marketing topic)."""
    return None if name == ALL_TOPICS else settings.project.topic(name)


def _described(settings: ServeSettings, name: str) -> str:
    topic = _topic(settings, name)
    return "all marketing email" if topic is None else (topic.description or topic.name)


def _action(request: Request) -> str:
    """The link itself (path and token), where the page's forms post."""
    return f"{request.url.path}?token={quote(request.query_params['token'], safe='')}"


def _html(page: str, status: int = 200) -> Response:
    return HTMLResponse(page, status_code=status, headers=HEADERS)
