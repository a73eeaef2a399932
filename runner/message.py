"""Turn a rendered email into an RFC 5322 message with bulk-mail headers.

The Message-ID is derived from the send's idempotency key, so a message sent
again after a crash is recognisably the same message (and receivers that
de-duplicate on Message-ID drop it). Every value that can come from contact
data or templates is cleaned of control characters before it becomes a
header, so a subject or name with a newline cannot add headers.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from email import utils
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from urllib.parse import quote, unquote

from runner.problems import JourneyError
from runner.render import RenderedEmail
from runner.transports import PermanentError

KEY_HEADER = "X-Journey-Key"
# Headers holding long URLs or keys: folding them would turn a URL into an
# RFC 2047 encoded-word that no client can follow, so they are written whole.
_UNFOLDED = frozenset({"list-unsubscribe", "list-unsubscribe-post", "list-id", "x-journey-key", "message-id"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_KEY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%")


class InvalidAddress(PermanentError, JourneyError):
    """An address that cannot be used; never retried (bad contact data or config)."""


class _MailPolicy(EmailPolicy):
    """The default policy, except that URL/key headers are never folded."""

    def fold(self, name: str, value: str) -> str:
        if name.lower() in _UNFOLDED:
            return f"{name}: {value}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in _UNFOLDED:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


POLICY = _MailPolicy()


def clean_header_text(value: str) -> str:
    """One line of text: control characters and line breaks become single spaces."""
    return " ".join(_CONTROL.sub(" ", value).split())


def parse_address(value: str, *, role: str) -> Address:
    """Exactly one mailbox (``a@b.c`` or ``Name <a@b.c>``); :class:`InvalidAddress` otherwise."""
    text = clean_header_text(value or "")
    pairs = utils.getaddresses([text])
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        raise InvalidAddress(f"{role} address {value!r} is not a single email address")
    name, addr_spec = pairs[0]
    try:
        return Address(display_name=clean_header_text(name), addr_spec=addr_spec)
    except (ValueError, IndexError) as exc:
        raise InvalidAddress(f"{role} address {value!r} is invalid: {exc}") from None


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The same key always gives the same Message-ID."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<jr.{digest}@{domain}>"


def encode_key(idempotency_key: str) -> str:
    """The key as a header-safe ASCII string (percent-encoding anything else)."""
    return quote(idempotency_key, safe=_KEY_SAFE)


def journey_key(message: EmailMessage) -> str | None:
    """The idempotency key carried by a message built here, or None."""
    value = message.get(KEY_HEADER)
    return unquote(str(value)) if value is not None else None


def list_id_header(list_id: str, domain: str) -> str:
    """RFC 2919 List-Id: ``<list-id.domain>`` with only dot-atom characters."""
    label = re.sub(r"[^A-Za-z0-9-]+", "-", list_id).strip("-") or "list"
    return f"<{label}.{domain}>"


def build_message(
    rendered: RenderedEmail,
    *,
    to: str,
    sender: str,
    reply_to: str | None,
    idempotency_key: str,
    list_id: str,
    unsubscribe_url: str,
    unsubscribe_mailto: str | None,
    date: datetime,
) -> EmailMessage:
    """A multipart/alternative message (text, then HTML) with RFC 8058 one-click unsubscribe."""
    if date.tzinfo is None:
        raise ValueError("date must be timezone-aware")
    sender_address = parse_address(sender, role="sender")
    domain = sender_address.domain
    message = EmailMessage(policy=POLICY)
    message["From"] = sender_address
    message["To"] = parse_address(to, role="recipient")
    if reply_to:
        message["Reply-To"] = parse_address(reply_to, role="reply-to")
    message["Subject"] = clean_header_text(rendered.subject)
    message["Date"] = utils.format_datetime(date)
    message["Message-ID"] = message_id_for(idempotency_key, domain)
    message["List-Id"] = list_id_header(list_id, domain)
    unsubscribe = [f"<{_header_url(unsubscribe_url)}>"]
    if unsubscribe_mailto:
        mailbox = parse_address(unsubscribe_mailto.removeprefix("mailto:"), role="unsubscribe mailto")
        unsubscribe.append(f"<mailto:{mailbox.addr_spec}?subject=unsubscribe>")
    message["List-Unsubscribe"] = ", ".join(unsubscribe)
    if unsubscribe_url.lower().startswith("https://"):
        # RFC 8058 one-click only applies to an HTTPS URI.
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message[KEY_HEADER] = encode_key(idempotency_key)
    message.set_content(rendered.text, subtype="plain")
    message.add_alternative(rendered.html, subtype="html")
    for part in message.iter_parts():
        del part["MIME-Version"]  # belongs on the message only; add_alternative copies it onto a part
    # A boundary from the key makes a re-built message byte-identical.
    message.set_boundary(f"=_jr_{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}")
    return message


def _header_url(url: str) -> str:
    """A URL fit for an angle-bracketed header: ASCII, no spaces, no brackets."""
    return quote(clean_header_text(url), safe=":/?#[]@!$&'()*+,;=%~-._")
