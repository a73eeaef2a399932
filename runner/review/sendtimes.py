"""Send times as a reviewer checks them: in the contact's own time zone, and in UTC beside it.

A send window or a quiet hour is about the contact's clock; logs, databases and
the ESP speak UTC. The report shows both, with the weekday, so "Tuesday 10:00
in Tokyo" and "Tuesday 01:00 UTC" are read side by side. English names, not
the machine's locale: the same inputs always print the same page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from runner.core.localtime import zone
from runner.simulation.timeline import Record

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SENT_ACTIONS = ("send", "send_failed")


def _when(instant: datetime) -> str:
    return f"{_DAYS[instant.weekday()]} {instant.day} {_MONTHS[instant.month - 1]} {instant.year} {instant:%H:%M}"


def local_text(at: datetime, timezone: str) -> str:
    """``Thu 8 Jan 2026 10:00 Europe/Istanbul (UTC+03:00)``."""
    local = at.astimezone(zone(timezone))
    offset = local.strftime("%z") or "+0000"
    return f"{_when(local)} {timezone} (UTC{offset[:3]}:{offset[3:]})"


def utc_text(at: datetime) -> str:
    """``Thu 8 Jan 2026 07:00 UTC``."""
    return f"{_when(at.astimezone(UTC))} UTC"


def sends_table(records: Sequence[Record]) -> str:
    """Every simulated send of a journey, in time order: contact, step, subject, local time, UTC."""
    rows = []
    for record in sorted((r for r in records if r.action in SENT_ACTIONS), key=lambda r: (r.at, r.contact)):
        failed = ' <span class="warning">(cannot render)</span>' if record.action != "send" else ""
        rows.append(
            f"<tr><td>{escape(record.contact)}</td><td>{escape(record.step or '')}</td>"
            f"<td>{escape(record.subject or '')}{failed}</td>"
            f'<td class="local">{escape(local_text(record.at, record.timezone))}</td>'
            f'<td class="utc">{escape(utc_text(record.at))}</td></tr>'
        )
    if not rows:
        return "<p>No email sent in the simulation.</p>"
    return ('<table class="sends"><thead><tr><th>contact</th><th>step</th><th>subject</th>'
            "<th>contact's local time</th><th>UTC</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
