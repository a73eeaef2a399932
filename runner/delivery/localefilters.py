"""Babel's formatting functions as Jinja filters, for the contact's locale and time zone.

``{{ contact.renewal_date|format_date('long') }}`` writes ``12 Mart 2026`` to a Turkish
contact and ``2026年3月12日`` to a Japanese one; ``{{ 12480|format_number }}`` writes ``12.480``
and ``12,480``, each as the locale does. The filters keep Babel's names
(``format_date``, ``format_datetime``, ``format_time``, ``format_number``,
``format_decimal``, ``format_currency``, ``format_percent``, ``format_timedelta``) and
arguments (``format``: ``short``, ``medium``, ``long``, ``full`` or a CLDR pattern).

The locale is the render context's ``locale.tag`` (the language the message is written in,
runner.delivery.render), the zone the contact's (``contact.timezone``, else UTC). Values are
what templates see: dates, datetimes and numbers, or their ISO 8601 / decimal text (contact
attributes often arrive as text). Marketers' templates are untrusted: these filters are
wrapped with the sandbox's call checks like every built-in one, patterns are short, and
numbers are refused before Babel expands a huge exponent into digits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import dates, numbers
from jinja2 import pass_context
from jinja2.runtime import Context

from runner.language.locales import DEFAULT_LANGUAGE, babel_locale

MAX_PATTERN = 64  # a CLDR pattern longer than this is no date or number format
MAX_EXPONENT = 100  # digits either side of the point: more is no amount anyone is emailed


class FormatError(ValueError):
    """A value or pattern a formatting filter cannot use; the render reports it at its line."""


def _locale_of(context: Context) -> Any:
    locale = context.get("locale")
    tag = locale.get("tag") if isinstance(locale, dict) else None
    return babel_locale(tag if isinstance(tag, str) else DEFAULT_LANGUAGE)


def _zone_of(context: Context) -> tzinfo:
    contact = context.get("contact")
    name = contact.get("timezone") if isinstance(contact, dict) else None
    return _zone(name) if isinstance(name, str) else UTC


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _pattern(value: Any, filter_name: str) -> Any:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_PATTERN):
        raise FormatError(f"{filter_name}: format must be short, medium, long, full or a CLDR pattern "
                          f"of at most {MAX_PATTERN} characters")
    return value


def _as_datetime(value: Any, filter_name: str) -> datetime | date:
    """A date or an aware datetime (naive ones are UTC) from a value or its ISO 8601 text."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip()) if "T" in value or " " in value.strip() \
                else date.fromisoformat(value.strip())
        except ValueError:
            raise FormatError(f"{filter_name}: {value[:40]!r} is not a date or time (ISO 8601: 2026-03-12, "
                              "2026-03-12T09:30:00Z)") from None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    raise FormatError(f"{filter_name}: expected a date or time, got {type(value).__name__}")


def _as_number(value: Any, filter_name: str) -> int | float | Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise FormatError(f"{filter_name}: expected a number, got {type(value).__name__}")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise FormatError(f"{filter_name}: {str(value)[:40]!r} is not a number") from None
    if number.is_finite() and number and abs(number.adjusted()) > MAX_EXPONENT:
        raise FormatError(f"{filter_name}: {str(value)[:40]} has more than {MAX_EXPONENT} digits")
    return number if isinstance(value, str) else value


@pass_context
def format_date(context: Context, value: Any, format: str = "medium") -> str:  # noqa: A002 - Babel's name
    moment = _as_datetime(value, "format_date")
    if isinstance(moment, datetime):
        moment = moment.astimezone(_zone_of(context)).date()
    return dates.format_date(moment, _pattern(format, "format_date"), locale=_locale_of(context))


@pass_context
def format_datetime(context: Context, value: Any, format: str = "medium") -> str:  # noqa: A002
    moment = _as_datetime(value, "format_datetime")
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(), tzinfo=UTC)
    return dates.format_datetime(moment, _pattern(format, "format_datetime"), tzinfo=_zone_of(context),
                                 locale=_locale_of(context))


@pass_context
def format_time(context: Context, value: Any, format: str = "medium") -> str:  # noqa: A002
    moment = _as_datetime(value, "format_time")
    if not isinstance(moment, datetime):
        raise FormatError("format_time: expected a time of day, got a date without one")
    return dates.format_time(moment, _pattern(format, "format_time"), tzinfo=_zone_of(context),
                             locale=_locale_of(context))


@pass_context
def format_timedelta(context: Context, value: Any, granularity: str = "second", format: str = "long",  # noqa: A002
                     add_direction: bool = False) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = timedelta(seconds=float(_as_number(value, "format_timedelta")))
    if not isinstance(value, timedelta):
        raise FormatError(f"format_timedelta: expected a duration or seconds, got {type(value).__name__}")
    if format not in ("narrow", "short", "medium", "long"):
        raise FormatError("format_timedelta: format must be narrow, short, medium or long")
    if granularity not in ("year", "month", "week", "day", "hour", "minute", "second"):
        raise FormatError("format_timedelta: granularity must be year, month, week, day, hour, minute or second")
    return dates.format_timedelta(value, granularity=granularity, format=format,  # type: ignore[arg-type]
                                  add_direction=bool(add_direction), locale=_locale_of(context))


@pass_context
def format_decimal(context: Context, value: Any, format: str | None = None) -> str:  # noqa: A002
    return numbers.format_decimal(_as_number(value, "format_decimal"), _pattern(format, "format_decimal"),
                                  locale=_locale_of(context))


@pass_context
def format_number(context: Context, value: Any) -> str:
    """Babel's ``format_number`` (deprecated there for ``format_decimal``, which this is)."""
    return numbers.format_decimal(_as_number(value, "format_number"), locale=_locale_of(context))


@pass_context
def format_currency(context: Context, value: Any, currency: str, format: str | None = None) -> str:  # noqa: A002
    if not isinstance(currency, str) or not currency.isalpha() or len(currency) != 3:
        raise FormatError(f"format_currency: currency must be an ISO 4217 code (EUR, TRY, JPY), not {currency!r}")
    return numbers.format_currency(_as_number(value, "format_currency"), currency.upper(),
                                   _pattern(format, "format_currency"), locale=_locale_of(context))


@pass_context
def format_percent(context: Context, value: Any, format: str | None = None) -> str:  # noqa: A002
    return numbers.format_percent(_as_number(value, "format_percent"), _pattern(format, "format_percent"),
                                  locale=_locale_of(context))


LOCALE_FILTERS: dict[str, Callable[..., str]] = {
    "format_date": format_date,
    "format_datetime": format_datetime,
    "format_time": format_time,
    "format_timedelta": format_timedelta,
    "format_number": format_number,
    "format_decimal": format_decimal,
    "format_currency": format_currency,
    "format_percent": format_percent,
}

__all__ = ["LOCALE_FILTERS", "FormatError"]
