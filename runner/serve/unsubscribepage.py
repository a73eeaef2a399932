"""The unsubscribe and preferences page: small, self-contained HTML (no script, no external
asset), with a Content-Security-Policy that allows only its own inline style and forms
posting back to this site.

Every value from the project or the request is HTML-escaped; the token goes back only in
the forms' own URL (``action``), never into a link another site could receive (the page
sends ``Referrer-Policy: no-referrer``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from html import escape

from runner.core.model import Topic
from runner.serve.optouts import Preferences

STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a;"
    "background:#fff}h1{font-size:1.5rem}fieldset{border:1px solid #767676;border-radius:4px;margin:1rem 0}"
    "label{display:block;margin:.25rem 0}button{font:inherit;padding:.4rem 1rem;margin:.5rem 0;cursor:pointer}"
    ".status{padding:.5rem;border-left:4px solid #1a7f37;background:#f0f7f2}.note{color:#4d4d4d}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
HEADERS = {
    "Content-Security-Policy": (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def topic_label(topic: Topic) -> str:
    return topic.description or topic.name.replace("_", " ").capitalize()


def preferences_page(*, action: str, token_topic: Topic | None, prefs: Preferences, topics: Sequence[Topic],
                     status: str | None = None) -> str:
    """The page for a valid link: confirm the unsubscribe, or choose topics.

    ``action``: the URL the forms post to (the link itself, token included);
    ``token_topic``: what the link unsubscribes from (None: every marketing topic).
    """
    marketing = [topic for topic in topics if topic.marketing]
    transactional = [topic for topic in topics if not topic.marketing]
    what = f"“{escape(topic_label(token_topic))}”" if token_topic is not None else "all marketing email"
    parts = [f'<p class="status" role="status">{escape(status)}</p>' if status else ""]
    parts.append(
        f'<form method="post" action="{escape(action)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f"<p>Stop receiving {what}?</p>"
        '<button type="submit">Unsubscribe</button></form>'
    )
    boxes = "".join(
        f'<label><input type="checkbox" name="topic" value="{escape(topic.name)}"'
        f'{" checked" if prefs.receives(topic.name) else ""}> {escape(topic_label(topic))}</label>'
        for topic in marketing
    )
    parts.append(
        f'<form method="post" action="{escape(action)}">'
        '<input type="hidden" name="action" value="preferences">'
        f"<fieldset><legend>Email I want to receive</legend>{boxes}</fieldset>"
        '<button type="submit">Save preferences</button></form>'
    )
    if transactional:
        names = ", ".join(escape(topic_label(topic)) for topic in transactional)
        parts.append(f'<p class="note">Always sent, as part of the service: {names}.</p>')
    parts.append(
        f'<form method="post" action="{escape(action)}">'
        '<input type="hidden" name="action" value="everything">'
        '<button type="submit">Unsubscribe from all marketing email</button></form>'
    )
    return _document("Email preferences", "".join(parts))


def done_page(what: str) -> str:
    """The answer to a one-click unsubscribe: the same every time it is repeated."""
    return _document("Unsubscribed", f'<p class="status" role="status">You are unsubscribed from {escape(what)}.</p>')


def refused_page(message: str) -> str:
    return _document("Link not valid", f"<p>{escape(message)}</p>")


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{escape(title)}</title><style>{STYLE}</style></head>'
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
