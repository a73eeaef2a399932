"""Turn a rendered email into an RFC 5322 message with bulk-mail headers.

The Message-ID is derived from the send's idempotency key, so a message sent
again after a crash is recognisably the same message (and receivers that
de-duplicate on Message-ID drop it). Every value that can come from contact
data or templates is cleaned of control characters before it becomes a
header, so a subject or name with a newline cannot add headers.

Contact data reaches the body too, so nothing in it may shape the MIME
structure: the multipart boundary is random (``secrets``), starts with ``=_``
(which quoted-printable never writes) and is checked against every part; a
part with NUL or other control bytes, non-ASCII or a line over 78 octets is
quoted-printable; long names and subjects are RFC 2047-encoded and folded,
and a header that still cannot fit 998 octets is refused, never sent raw.

The bytes are written here rather than through ``email.message.EmailMessage``:
its header registry re-parses every header it is given and cost about 2 ms a
message, most of a busy tick. The encoders are still the standard library's
(``email.header`` for RFC 2047 words, ``binascii`` for quoted-printable), and
tests parse every shape of message back with ``email``'s strict policy.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy, utils
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import quote, unquote

from runner.core.problems import JourneyError
from runner.delivery.render import RenderedEmail
from runner.delivery.transports import PermanentError

KEY_HEADER = "X-Journey-Key"
LINESEP = "\n"  # files keep the platform's convention; SMTP sends CRLF (see ``MailMessage.wire_bytes``)
_MAX_LINE = 78  # RFC 5322's "SHOULD": longer headers are folded, longer body lines encoded
_HARD_LINE = 998  # RFC 5322's "MUST" (relays answer 500 Line too long past it)
_MAX_WORD = 60  # a longer unbroken word cannot be folded unless it is encoded
_MAX_ADDR_SPEC = 254  # RFC 5321's path limit, less the angle brackets
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_UNSAFE_7BIT = re.compile(r"[^\t\n\x20-\x7e]")  # NUL, CR, controls, DEL, non-ASCII
_KEY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%")
# An ASCII dot-atom address: the common case, accepted without the full RFC 5322 parser.
_SIMPLE_ADDR_SPEC = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                               r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")


class UnsendableMessage(PermanentError, JourneyError):
    """A message no relay would accept as built (bad contact data or config); never retried."""


class InvalidAddress(UnsendableMessage):
    """An address that cannot be used; never retried (bad contact data or config)."""


@dataclass(frozen=True)
class Mailbox:
    """One checked address: a display name (may be empty) and an ASCII addr-spec."""

    display_name: str
    addr_spec: str

    @property
    def domain(self) -> str:
        return self.addr_spec.rpartition("@")[2]

    def header_value(self) -> str:
        """``Name <a@b.c>``, the name quoted or RFC 2047-encoded (and folded) as it needs."""
        name = self.display_name
        # formataddr writes a quoted string or one encoded word: neither folds when long
        if any(len(word) > _MAX_WORD for word in name.split()) or (len(name) > _MAX_WORD and not name.isascii()):
            return f"{_encoded_words('', name)} <{self.addr_spec}>"
        return utils.formataddr((self.display_name, self.addr_spec), charset="utf-8")


@dataclass(frozen=True)
class MailMessage:
    """A finished message: the bytes to deliver and the envelope transports need."""

    data: bytes  # the whole message, LINESEP line endings, ASCII only
    sender: str  # envelope sender (addr-spec)
    recipient: str  # envelope recipient (addr-spec)
    key: str  # the idempotency key
    message_id: str
    subject: str  # as rendered (not encoded)

    @property
    def key_header(self) -> str:
        return encode_key(self.key)

    def as_bytes(self) -> bytes:
        return self.data

    def __bytes__(self) -> bytes:
        return self.data

    def wire_bytes(self) -> bytes:
        """The message with CRLF line endings, as SMTP's DATA wants it."""
        return self.data.replace(b"\n", b"\r\n")

    @functools.cached_property
    def parsed(self) -> EmailMessage:
        """What a receiver sees: the bytes parsed back (for previews, logs and tests)."""
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]

    def get(self, name: str, default=None):
        return self.parsed.get(name, default)

    def __getitem__(self, name: str):
        return self.parsed[name]


def clean_header_text(value: str) -> str:
    """One line of text: control characters and line breaks become single spaces."""
    return " ".join(_CONTROL.sub(" ", value).split())


def parse_address(value: str, *, role: str) -> Mailbox:
    """Exactly one mailbox (``a@b.c`` or ``Name <a@b.c>``); :class:`InvalidAddress` otherwise."""
    return _parse_address(value or "", role)


# Sending to such an address needs SMTPUTF8, which the runner does not speak (docs/email.md).
_NOT_ASCII = ("has non-ASCII characters, which the runner cannot send to: give an ASCII address, "
              "with an international domain in its xn-- form such as xn--bcher-kva.example")


@functools.lru_cache(maxsize=256)  # the sender, reply-to and mailto repeat on every message
def _parse_address(value: str, role: str) -> Mailbox:
    text = clean_header_text(value)
    if len(text) <= _MAX_ADDR_SPEC and _SIMPLE_ADDR_SPEC.fullmatch(text):  # a bare address: nothing to parse
        return Mailbox("", text)
    pairs = utils.getaddresses([text])
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        raise InvalidAddress(f"{role} address {value!r} is not a single email address")
    name, addr_spec = pairs[0]
    if addr_spec.startswith("@"):
        raise InvalidAddress(f"{role} address {value!r} has no local part before the @")
    if len(addr_spec) > _MAX_ADDR_SPEC:
        raise InvalidAddress(f"{role} address {value[:40]!r}… is longer than {_MAX_ADDR_SPEC} characters")
    if not addr_spec.isascii():  # before the parser, whose own words end in a stray ")"
        raise InvalidAddress(f"{role} address {value!r} {_NOT_ASCII}")
    if not _SIMPLE_ADDR_SPEC.fullmatch(addr_spec):
        try:  # the full parser: quoted local parts, comments
            addr_spec = Address(addr_spec=addr_spec).addr_spec
        except (ValueError, IndexError) as exc:
            raise InvalidAddress(f"{role} address {value!r} is invalid: {exc}") from None
    return Mailbox(clean_header_text(name), addr_spec)


@functools.lru_cache(maxsize=256)  # the project's sender and reply-to, on every message
def _header_value(mailbox: Mailbox) -> str:
    return mailbox.header_value()


@functools.lru_cache(maxsize=4096)  # many contacts are sent to at the same instant (send windows)
def _date_header(wall_time: datetime, offset: timedelta | None) -> str:
    """``utils.format_datetime`` of an aware date, keyed on what it prints: the wall time and
    the offset (equal instants in other zones print differently, so the instant is no key)."""
    return utils.format_datetime(wall_time.replace(tzinfo=timezone(offset or timedelta(0))))


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The same key always gives the same Message-ID."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<jr.{digest}@{domain}>"


def encode_key(idempotency_key: str) -> str:
    """The key as a header-safe ASCII string (percent-encoding anything else)."""
    return quote(idempotency_key, safe=_KEY_SAFE)


def journey_key(message) -> str | None:
    """The idempotency key carried by a message built here (or parsed back), or None."""
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
) -> MailMessage:
    """A multipart/alternative message (text, then HTML) with RFC 8058 one-click unsubscribe."""
    return draft_message(
        rendered, to=to, sender=sender, reply_to=reply_to, idempotency_key=idempotency_key, list_id=list_id,
        unsubscribe_url=unsubscribe_url, unsubscribe_mailto=unsubscribe_mailto, date=date,
    ).finish()


@dataclass(frozen=True)
class MessageDraft:
    """A message with every header written and checked, before its bodies are MIME-encoded.

    Everything that can refuse a message happens in :func:`draft_message`;
    :meth:`finish` only encodes, so ``journey simulate`` (which shows whether a
    send can be built, not its bytes) stops at the draft.
    """

    head: bytes  # the header lines up to MIME-Version, each ending in LINESEP
    text: str
    html: str
    sender: str
    recipient: str
    key: str
    message_id: str
    subject: str

    def finish(self, boundary: str | None = None) -> MailMessage:
        """The message's bytes (``boundary``: a given one, for tests; random otherwise)."""
        parts = [_text_part(self.text, "plain"), _text_part(self.html, "html")]
        boundary = boundary or _boundary(parts)
        lines = [f'Content-Type: multipart/alternative;{LINESEP} boundary="{boundary}"', "",
                 f"--{boundary}", parts[0], f"--{boundary}", parts[1], f"--{boundary}--", ""]
        data = self.head + LINESEP.join(lines).encode("ascii")
        return MailMessage(data, self.sender, self.recipient, self.key, self.message_id, self.subject)


def draft_message(
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
) -> MessageDraft:
    """The headers of :func:`build_message`'s message, built and checked, and its bodies."""
    if date.tzinfo is None:
        raise ValueError("date must be timezone-aware")
    sender_box = parse_address(sender, role="sender")
    recipient = parse_address(to, role="recipient")
    domain = sender_box.domain
    subject = clean_header_text(rendered.subject)
    message_id = message_id_for(idempotency_key, domain)
    headers = [("From", _header_value(sender_box)), ("To", recipient.header_value())]
    if reply_to:
        headers.append(("Reply-To", _header_value(parse_address(reply_to, role="reply-to"))))
    headers += [
        ("Subject", _text_header("Subject", subject)),
        ("Date", _date_header(date.replace(tzinfo=None), date.utcoffset())),
        # URLs and keys are written whole: folding would break a URL a client must follow.
        ("Message-ID", message_id),
        ("List-Id", list_id_header(list_id, domain)),
        ("List-Unsubscribe", _list_unsubscribe(unsubscribe_url, unsubscribe_mailto)),
    ]
    if unsubscribe_url.lower().startswith("https://"):
        # RFC 8058 one-click only applies to an HTTPS URI.
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    headers += [
        (KEY_HEADER, encode_key(idempotency_key)),  # the outbox names files after it
        ("MIME-Version", "1.0"),
    ]
    lines = [f"{name}: {value}" for name, value in headers]
    _check_header_lines(lines)  # the Content-Type line finish() adds is short: it always fits
    for body in (rendered.text, rendered.html):
        if not body.isascii():
            body.encode("utf-8")  # a lone surrogate fails here, as it would in finish()
    head = (LINESEP.join(lines) + LINESEP).encode("ascii")
    return MessageDraft(head, rendered.text, rendered.html, sender_box.addr_spec, recipient.addr_spec,
                        idempotency_key, message_id, subject)


def _list_unsubscribe(url: str, mailto: str | None) -> str:
    targets = [f"<{_header_url(url)}>"]
    if mailto:
        mailbox = parse_address(mailto.removeprefix("mailto:"), role="unsubscribe mailto")
        targets.append(f"<mailto:{mailbox.addr_spec}?subject=unsubscribe>")
    return ", ".join(targets)


def _fits_plain(text: str, used: int) -> bool:
    """Can ``text`` go out as it is (ASCII, no encoded-word look-alike, foldable words)?"""
    if not text.isascii() or "=?" in text:
        return False
    return used + len(text) <= _MAX_LINE or all(len(word) <= _MAX_WORD for word in text.split())


def _encoded_words(name: str, text: str) -> str:
    """RFC 2047 UTF-8 encoded words, folded: any word length fits."""
    return Header(text, "utf-8", header_name=name or None).encode(linesep=LINESEP)


def _text_header(name: str, text: str) -> str:
    """Plain when it can be; otherwise folded and, for non-ASCII or unbreakable words, RFC 2047-encoded."""
    if text.isascii() and "=?" not in text and len(name) + 2 + len(text) <= _MAX_LINE:
        return text
    if _fits_plain(text, len(name) + 2):
        return Header(text, "us-ascii", header_name=name).encode(linesep=LINESEP)
    return _encoded_words(name, text)


def _check_header_lines(lines: list[str]) -> None:
    """Refuse a message whose header would break the 998-octet limit (a relay refuses it anyway)."""
    for line in lines:
        for physical in line.split(LINESEP):
            if len(physical) > _HARD_LINE:
                name = line.partition(":")[0]
                raise UnsendableMessage(f"the {name} header would be longer than {_HARD_LINE} octets")


def _boundary(parts: list[str]) -> str:
    """A random boundary that occurs in no part (contact data cannot guess or forge it)."""
    while True:
        boundary = f"=_jr_{secrets.token_hex(16)}"
        if not any(boundary in part for part in parts):
            return boundary


def _text_part(body: str, subtype: str) -> str:
    """One body part: 7bit when short printable ASCII lines allow it, quoted-printable otherwise."""
    # only CR LF and CR are line breaks here (str.splitlines would also break at
    # form feeds and U+2028, changing what the contact reads)
    text = body.replace("\r\n", "\n").replace("\r", "\n").removesuffix("\n").replace("\n", LINESEP) + LINESEP
    if not _UNSAFE_7BIT.search(text) and all(len(line) <= _MAX_LINE for line in text.split(LINESEP)):
        encoding, payload = "7bit", text
    else:
        encoding = "quoted-printable"
        payload = binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")
    return (f'Content-Type: text/{subtype}; charset="utf-8"{LINESEP}'
            f"Content-Transfer-Encoding: {encoding}{LINESEP}{LINESEP}{payload}")


def _header_url(url: str) -> str:
    """A URL fit for an angle-bracketed header: ASCII, no spaces, no brackets."""
    return quote(clean_header_text(url), safe=":/?#[]@!$&'()*+,;=%~-._")
