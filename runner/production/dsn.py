"""Delivery status notifications (RFC 3464) and abuse reports (ARF, RFC 5965) as bounces.

For plain SMTP set-ups, where bounces and complaints arrive as mail: each
message is read with the standard library's ``email`` parser and, when it is a
``multipart/report``, turned into ``Bounce`` records (runner.core.bounces):

- ``report-type=delivery-status``: one record per recipient block with
  ``Action: failed`` (a 5.x.x status is a hard bounce, a 4.x.x one soft) or
  ``Action: delayed`` (soft), from ``Final-Recipient`` (else
  ``Original-Recipient``), with the ``Diagnostic-Code``;
- ``report-type=feedback-report`` with ``Feedback-Type: abuse``: a complaint
  for ``Original-Rcpt-To``, else the reported message's ``To``.

The report's own Message-ID identifies it (a hash of its bytes when it has
none), so importing a file again counts nothing twice. The reported message's
``X-Journey-Key`` header, when the report quotes it, names the exact send.
"""

from __future__ import annotations

import errno
import hashlib
import mailbox
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote

from runner.core.bounces import COMPLAINT, HARD, SOFT, Bounce, kind_of_status, status_code
from runner.delivery.message import KEY_HEADER

MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # a report quoting a huge message is read only this far


@dataclass(frozen=True)
class ReadMessage:
    """One message read from the input: where it came from, and its bounces (None: not a report)."""

    name: str
    bounces: list[Bounce] | None


@dataclass(frozen=True)
class Unreadable:
    """Input that could not be read (missing, unreadable, not a mailbox)."""

    name: str
    error: str


def read_reports(path: Path, now: datetime) -> Iterator[ReadMessage | Unreadable]:
    """Every message under ``path``: an .eml file, an mbox file, a Maildir or a folder of them."""
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            yield from _maildir(path, now)
            return
        for child in sorted(path.rglob("*")):
            if child.is_file():
                yield from _file(child, now)
        return
    yield from _file(path, now)


def _file(path: Path, now: datetime) -> Iterator[ReadMessage | Unreadable]:
    try:
        data = _regular_bytes(path)
    except OSError as error:
        yield Unreadable(str(path), error.strerror or str(error))
        return
    if data.startswith(b"From "):
        try:
            box = mailbox.mbox(path, create=False)
            for index, key in enumerate(box.keys()):
                yield _message(f"{path}[{index + 1}]", box.get_bytes(key), now)
        except (OSError, mailbox.Error) as error:
            yield Unreadable(str(path), str(error))
        return
    if not _looks_like_mail(data):
        yield Unreadable(str(path), "not an email message (no header lines)")
        return
    yield _message(str(path), data, now)


def _regular_bytes(path: Path) -> bytes:
    """The first ``MAX_MESSAGE_BYTES`` of ``path``, a regular file, opened without blocking: a FIFO
    (in a Maildir, or named itself) hung the import; it is an OSError (unreadable) now."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(MAX_MESSAGE_BYTES)
    finally:
        os.close(fd)


def _message(name: str, data: bytes, now: datetime) -> ReadMessage | Unreadable:
    try:
        return ReadMessage(name, bounces_of(data, now))
    except RecursionError:  # MIME parts nested thousands deep: the parser's recursion, not a report
        return Unreadable(name, "MIME parts nested too deeply")


def _looks_like_mail(data: bytes) -> bool:
    """Whether the bytes start with a header field (``Name: value``): anything else (an
    archive, an image, an empty file) is no message at all."""
    first = data.lstrip(b"\r\n")[:1000].split(b"\n", 1)[0]
    name, colon, _value = first.partition(b":")
    return bool(colon) and bool(name) and all(33 <= byte <= 126 for byte in name)


def _maildir(path: Path, now: datetime) -> Iterator[ReadMessage | Unreadable]:
    """The messages of ``new/`` and ``cur/``, by key (the file name before Maildir's ``:2,`` flags),
    each read as a regular file (``mailbox.Maildir.get_bytes`` would wait on a FIFO)."""
    try:
        files = {entry.name.split(":", 1)[0]: Path(entry.path)
                 for sub in ("new", "cur") for entry in os.scandir(path / sub) if not entry.name.startswith(".")}
    except OSError as error:
        yield Unreadable(str(path), error.strerror or str(error))
        return
    for key in sorted(files):
        try:
            data = _regular_bytes(files[key])
        except OSError as error:
            yield Unreadable(f"{path}/{key}", error.strerror or str(error))
            continue
        yield _message(f"{path}/{key}", data, now)


def bounces_of(data: bytes, now: datetime) -> list[Bounce] | None:
    """The bounces or complaint one message reports; None when it is no DSN or abuse report
    (an auto-reply, a plain-text bounce): the caller lists it as unrecognised."""
    message = message_from_bytes(data, policy=policy.compat32)
    if message.get_content_type() != "multipart/report":
        return None
    report_type = str(message.get_param("report-type") or "").lower()
    report_id = _report_id(message, data)
    sent = _reported_headers(message)
    send_key = _send_key(sent)
    if report_type == "delivery-status":
        return _delivery_status(message, report_id, send_key, now)
    if report_type == "feedback-report":
        return _feedback(message, report_id, send_key, sent, now)
    return None


def _delivery_status(message: Message, report_id: str, send_key: str | None, now: datetime) -> list[Bounce] | None:
    blocks = _blocks(message, "delivery-status")
    if not blocks:
        return None
    per_message, recipients = blocks[0], blocks[1:]
    # when the delivery failed: the recipient's last attempt, else when the report was written
    fallback = _date(message.get("Date")) or _date(per_message.get("Arrival-Date")) or now
    found = []
    for block in recipients:
        action = str(block.get("Action", "")).strip().lower()
        status = str(block.get("Status", "")).strip()
        diagnostic = _text(block.get("Diagnostic-Code", ""))
        if action == "delayed":
            kind: str | None = SOFT
        elif action == "failed":
            kind = kind_of_status(status) or kind_of_status(diagnostic) or HARD
        else:  # delivered, relayed, expanded: not a failure
            continue
        recipient = _recipient(block.get("Final-Recipient")) or _recipient(block.get("Original-Recipient"))
        if recipient is None or kind is None:
            continue
        at = _date(block.get("Last-Attempt-Date")) or fallback
        found.append(Bounce(kind=kind, recipient=recipient, at=at, report_id=report_id, source="dsn",
                            diagnostic=diagnostic, status=status_code(status) or status_code(diagnostic),
                            send_key=send_key))
    return found or None


def _feedback(message: Message, report_id: str, send_key: str | None, sent: Message | None,
              now: datetime) -> list[Bounce] | None:
    blocks = _blocks(message, "feedback-report")
    if not blocks:
        return None
    fields = blocks[0]
    if str(fields.get("Feedback-Type", "")).strip().lower() != "abuse":
        return None
    recipient = _recipient(fields.get("Original-Rcpt-To")) or (_recipient(sent.get("To")) if sent else None)
    if recipient is None:
        return None
    # when the recipient complained: the report's date (Arrival-Date is when the message arrived)
    at = _date(message.get("Date")) or _date(fields.get("Arrival-Date")) or _date(fields.get("Received-Date")) or now
    agent = _text(fields.get("User-Agent", ""))
    return [Bounce(kind=COMPLAINT, recipient=recipient, at=at, report_id=report_id, source="arf",
                   diagnostic=f"abuse report from {agent}" if agent else "abuse report", send_key=send_key)]


def _blocks(message: Message, subtype: str) -> list[Message]:
    """The header blocks of the report's machine-readable part (``message/<subtype>``)."""
    for part in message.walk():
        if part.get_content_type() not in (f"message/{subtype}", f"message/global-{subtype}"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            return [block for block in payload if isinstance(block, Message) and len(block.keys())]
        text = payload if isinstance(payload, str) else ""
        return [HeaderParser().parsestr(chunk) for chunk in text.replace("\r\n", "\n").split("\n\n") if chunk.strip()]
    return []


def _reported_headers(message: Message) -> Message | None:
    """The headers of the message the report is about, when it quotes them."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind in ("text/rfc822-headers", "text/global-headers"):
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return BytesHeaderParser().parsebytes(raw)
    return None


def _send_key(sent: Message | None) -> str | None:
    value = sent.get(KEY_HEADER) if sent is not None else None
    return unquote(_text(value)) if value else None


def _report_id(message: Message, data: bytes) -> str:
    value = _text(message.get("Message-ID", "")).strip().strip("<>")
    return value or "sha256:" + hashlib.sha256(data).hexdigest()[:32]


def _recipient(value: object) -> str | None:
    """The address of a ``Final-Recipient: rfc822; a@b.example`` field (or a plain address)."""
    if not value:
        return None
    text = _text(value)
    _type, semicolon, address = text.partition(";")
    address = address if semicolon else text
    _name, addr = parseaddr(address.strip())
    addr = addr.strip()
    return addr if "@" in addr and " " not in addr and addr.isascii() else None


def _date(value: object) -> datetime | None:
    if not value:
        return None
    try:
        found = parsedate_to_datetime(_text(value))
    except (TypeError, ValueError, IndexError):
        return None
    if found is None:
        return None
    if found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return found.astimezone(UTC)


def _text(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""
