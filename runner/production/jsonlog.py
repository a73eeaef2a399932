"""Structured logs for ``journey run`` and ``journey serve``: one JSON object per line, redacted.

Log lines leave the machine (a log shipper, a support ticket), so what they may hold
is narrower than what the process sees: every line passes :class:`Redactor` first,
which masks email addresses (``a***@example.com``), unsubscribe tokens, HTTP
credentials and any secret the process was given (write keys, the unsubscribe
secret), in the message and in every structured field alike.

Standard library ``logging`` only: records carry their fields in ``extra={"fields": …}``
(see :func:`log_event`), and :class:`JsonFormatter` writes them with the time,
level, logger and message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

LOGGER = "journey"
FORMATS = ("json", "text")
MASK = "[redacted]"

# the local part as people write it (not every character RFC 5322 allows: "/", "=" or "?" before an
# address in a path or a query string stay visible, the address itself does not)
_EMAIL = re.compile(r"([A-Za-z0-9_%+-])[A-Za-z0-9._%+'-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# an unsubscribe token (runner.delivery.unsubscribe): base64url payload "." 43-character HMAC-SHA256
_TOKEN = re.compile(r"[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
_QUERY_SECRET = re.compile(r"(?i)\b(token|key|secret|signature|password|write_?key)=[^&\s\"']+")
_AUTHORIZATION = re.compile(r"(?i)\b(authorization:?\s*(?:basic|bearer)\s+)[A-Za-z0-9+/=._~-]+")


def mask_email(match: re.Match[str]) -> str:
    return f"{match.group(1)}***@{match.group(2)}"


class Redactor:
    """Masks what must never be written to a log line.

    ``secrets``: exact values to hide wherever they appear (write keys, the unsubscribe
    secret); values shorter than 4 characters are ignored (they would mask ordinary text).
    """

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        value = _AUTHORIZATION.sub(lambda m: m.group(1) + MASK, value)
        value = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={MASK}", value)
        value = _TOKEN.sub(MASK, value)
        return _EMAIL.sub(mask_email, value)

    def value(self, value: Any) -> Any:
        """``value`` with every string inside it redacted (mappings, lists, tuples)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [self.value(v) for v in value]
        return value


class RedactingFilter(logging.Filter):
    """Rewrites each record in place before any handler formats it (message, arguments, fields)."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = self.redactor.value(fields)
        if record.exc_info:  # a traceback's text may quote anything: keep only the exception's type
            kind = record.exc_info[0].__name__ if record.exc_info[0] else "error"
            record.msg = f"{record.msg} ({kind})"
            record.exc_info = None
            record.exc_text = None
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", **fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            document.update({k: v for k, v in fields.items() if k not in document})
        return json.dumps(document, ensure_ascii=False, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """The message, then its fields as ``key=value`` (for a terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if not isinstance(fields, Mapping) or not fields:
            return record.getMessage()
        return record.getMessage() + " " + " ".join(f"{k}={v}" for k, v in fields.items())


def default_format(stream: IO[str]) -> str:
    """JSON when the output goes to a file, a pipe or a log collector; text on a terminal."""
    return "text" if stream.isatty() else "json"


def configure(fmt: str, *, secrets: Iterable[str] = (), stream: IO[str] | None = None,
              loggers: Iterable[str] = (LOGGER,), level: int = logging.INFO) -> logging.Handler:
    """Send the records of ``loggers`` to ``stream`` (stdout) as ``fmt``, redacted; returns the handler.

    Replaces handlers this function installed before on the same loggers, so calling it
    twice (tests, a server restarted in-process) does not double every line."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter(Redactor(secrets)))
    handler.set_name("journey-structured")
    for name in loggers:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "journey-structured"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    return handler


def log_event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """One structured line: ``message`` and its ``fields`` (redacted by the handler's filter)."""
    logger.log(level, message, extra={"fields": fields})


def tick_fields(report: Any) -> dict[str, Any]:
    """What one tick's log line carries: its run, instant, contacts, counts and duration."""
    if not report.ran:
        return {"ran": False, "now": report.now.isoformat(), "lease_holder": report.holder}
    counts = {k: v for k, v in sorted(report.counts.items()) if not k.startswith("decision:")}
    decisions = {k.partition(":")[2]: v for k, v in sorted(report.counts.items()) if k.startswith("decision:")}
    fields: dict[str, Any] = {"run_id": report.run_id, "now": report.now.isoformat(), "contacts": report.contacts,
                              **counts, "decisions": decisions, "stopped": report.stopped}
    seconds = getattr(report, "seconds", None)
    if seconds is not None:
        fields["duration_seconds"] = round(seconds, 6)
    return fields


_SECRET_NAME = re.compile(r"(?i)(SECRET|PASSWORD|TOKEN|_KEYS?$|WRITE_KEY)")


def environment_secrets(environ: Mapping[str, str], names: Iterable[str] = (), urls: Iterable[str] = ()) -> list[str]:
    """Values a log line must never show: environment variables named like secrets (or in
    ``names``: the project's unsubscribe and webhook secret variables), each comma-separated
    part of them (``JOURNEY_WRITE_KEYS``), and passwords inside ``urls`` (an SMTP URL)."""
    wanted = set(names)
    values: list[str] = []
    for name, value in environ.items():
        if value and (name in wanted or _SECRET_NAME.search(name)):
            values.append(value)
            values.extend(part.strip() for part in value.split(",") if part.strip())
    for url in urls:
        _, _, rest = (url or "").partition("://")
        credentials, at, _ = rest.rpartition("@")
        if at and ":" in credentials:
            values.append(credentials.partition(":")[2])
    return values
