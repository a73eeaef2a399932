"""Durations written the way marketers write them: ``30m``, ``2d``, ``1w``, ``1d12h``.

Days and weeks are *calendar* units in the contact's time zone (``wait: 1d``
from 09:00 lands at 09:00 the next local day, also across a DST change);
hours, minutes and seconds are absolute. ``Duration`` keeps the two parts
apart so the engine can add them correctly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

DURATION_RE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


@dataclass(frozen=True)
class Duration:
    days: int = 0  # calendar days (weeks included)
    seconds: int = 0  # absolute seconds
    text: str = ""

    @cached_property
    def approx(self) -> timedelta:
        """The duration as a fixed timedelta (a day as 24h): for windows and limits.

        Cached (no slots, so there is a ``__dict__`` to keep it in): the engine asks
        for score and event windows many times per simulated instant.
        """
        return timedelta(days=self.days, seconds=self.seconds)

    def __str__(self) -> str:
        return self.text or format_duration(self.approx)


def parse_duration(text: str | int) -> Duration:
    """Parse ``"1w2d3h"``; raise ValueError with a readable message otherwise."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"a duration must be text like '2d' or '30m', not {text!r}")
    raw = str(text).strip()
    match = DURATION_RE.match(raw)
    if not raw or not match:
        raise ValueError(f"'{raw}' is not a duration: use a number and a unit, largest first, like 30m, 2d, 1w or 1d12h")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return Duration(days=weeks * 7 + days, seconds=hours * 3600 + minutes * 60 + seconds, text=raw)


def format_duration(delta: timedelta) -> str:
    """The shortest duration text for a timedelta (``timedelta(days=2)`` -> ``2d``)."""
    total = int(delta.total_seconds())
    if total == 0:
        return "0s"
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
