"""Which language a contact reads: the project's ``localization:`` settings, tags, fallback chains.

A contact's language is the value of one attribute the project names (``localization.attribute``),
normalised with Babel (``pt_BR``, ``pt-br`` and ``PT-BR`` are all ``pt-BR``). Its *fallback
chain* is that tag, then the tag with its territory dropped, and so on down to the language,
then the project's default: ``pt-BR`` -> ``pt`` -> ``en``. A template or subject is looked up
along the chain and the nearest one written is used; the unsuffixed template (and a plain
subject) are in the default language. A value that is missing, malformed or unknown to Babel
falls back to the default, and :func:`resolve` says why (``journey explain``, ``render``).

This module only decides; rendering (file names, Jinja filters) is runner.delivery's. It is
pure and cached: every send resolves its contact's value, and most contacts share a few.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.languages import get_official_languages

DEFAULT_LANGUAGE = "en"  # a project without ``localization:`` writes in English
MISSING_LEVELS = ("error", "warning")
# Babel's formatting functions, as Jinja filters (runner.delivery.localefilters renders them;
# validate needs their names to accept templates using them).
FORMAT_FILTERS = ("format_date", "format_datetime", "format_time", "format_timedelta", "format_number",
                  "format_decimal", "format_currency", "format_percent")


@dataclass(frozen=True)
class Localization:
    """The project's ``localization:`` block, tags normalised (``None`` where a tag is invalid)."""

    attribute: str | None = None  # the tracking-plan attribute holding the contact's locale
    default: str = DEFAULT_LANGUAGE
    locales: tuple[str, ...] = ()  # declared, the default included, in the project's order
    missing: str = "error"  # how validate reports a declared locale a localized step lacks

    @property
    def enabled(self) -> bool:
        return self.attribute is not None

    @property
    def others(self) -> tuple[str, ...]:
        """The declared locales besides the default (those with suffixed templates)."""
        return tuple(tag for tag in self.locales if tag != self.default)


@dataclass(frozen=True)
class Resolution:
    """A contact's locale: its fallback chain, and why it is not what the contact's value says."""

    chain: tuple[str, ...]  # nearest first; always ends with the default
    reason: str = ""  # empty when the value was used as it is

    @property
    def tag(self) -> str:
        return self.chain[0]


def describe(resolution: Resolution, attribute: str | None) -> str:
    """``locale ja-JP (then ja, en)``, and why the contact's value was not used when it was not."""
    text = f"locale {resolution.tag}"
    if len(resolution.chain) > 1:
        text += f" (then {', '.join(resolution.chain[1:])})"
    if resolution.reason:
        text += f": {attribute or 'the locale attribute'}: {resolution.reason}"
    return text


def localization_of(data: Mapping[str, Any] | None) -> Localization:
    """The ``localization:`` settings of a project's data (project.yaml as loaded), or the defaults."""
    block = (data or {}).get("localization")
    if not isinstance(block, Mapping):
        return Localization()
    default = normalize_tag(block.get("default")) or DEFAULT_LANGUAGE
    declared = [normalize_tag(value) for value in block.get("locales") or () if isinstance(value, str)]
    locales = tuple(dict.fromkeys([default, *(tag for tag in declared if tag)]))
    attribute = block.get("attribute")
    missing = block.get("missing")
    return Localization(
        attribute=attribute if isinstance(attribute, str) else None,
        default=default,
        locales=locales,
        missing=missing if missing in MISSING_LEVELS else "error",
    )


@functools.lru_cache(maxsize=1024)
def normalize_tag(value: Any) -> str | None:
    """A BCP 47 tag as Babel knows it (``pt_br`` -> ``pt-BR``), or None when Babel does not."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    try:
        locale = Locale.parse(value.strip().replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return None
    return tag_of(locale)


def tag_of(locale: Locale) -> str:
    """``Locale('pt', territory='BR')`` -> ``pt-BR``."""
    return "-".join(part for part in (locale.language, locale.script, locale.territory, locale.variant) if part)


def fallback_chain(tag: str, default: str) -> tuple[str, ...]:
    """``pt-BR`` -> (``pt-BR``, ``pt``, default): each tag with its last subtag dropped, then the default."""
    parts = tag.split("-")
    chain = ["-".join(parts[:size]) for size in range(len(parts), 0, -1)]
    return tuple(dict.fromkeys([*chain, default]))


@functools.lru_cache(maxsize=4096)
def _resolve(value: Any, default: str) -> Resolution:
    if value is None or value == "":
        return Resolution((default,), "" if value is None else "the locale attribute is empty")
    tag = normalize_tag(value)
    if tag is not None:
        return Resolution(fallback_chain(tag, default))
    if isinstance(value, str) and "-" in value.replace("_", "-"):
        language = normalize_tag(value.replace("_", "-").split("-")[0])
        if language is not None:
            return Resolution(fallback_chain(language, default),
                              f"{value!r} is not a locale Babel knows; its language {language!r} is used")
    return Resolution((default,), f"{str(value)[:40]!r} is not a locale Babel knows; the default {default!r} is used")


def resolve(settings: Localization, attributes: Mapping[str, Any]) -> Resolution:
    """The contact's chain from its attributes (the default alone when the project is not localized)."""
    if settings.attribute is None:
        return Resolution((settings.default,))
    value = attributes.get(settings.attribute)
    if isinstance(value, (dict, list)):
        return Resolution((settings.default,), f"the locale attribute is a {type(value).__name__}, not a tag")
    return _resolve(value, settings.default)


@functools.lru_cache(maxsize=256)
def text_direction(tag: str) -> str:
    """``rtl`` or ``ltr``, from Babel's CLDR data (Arabic, Hebrew, Persian, Urdu… are ``rtl``)."""
    try:
        return "rtl" if Locale.parse(tag.replace("-", "_")).text_direction == "rtl" else "ltr"
    except (ValueError, TypeError, UnknownLocaleError):
        return "ltr"


@functools.lru_cache(maxsize=256)
def display_name(tag: str) -> str:
    """The language's own name for itself (``日本語``, ``Türkçe``), for previews and reports."""
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return tag
    return locale.get_display_name(locale) or tag


def babel_locale(tag: str) -> Locale:
    """The Babel locale of a normalised tag (for the formatting filters)."""
    return _babel_locale(tag)


@functools.lru_cache(maxsize=256)
def _babel_locale(tag: str) -> Locale:
    return Locale.parse(tag.replace("-", "_"))


def language_of_country(code: str) -> str | None:
    """The main official language of a country code written as a locale (``jp`` -> ``ja``,
    ``kr`` -> ``ko``, ``ua`` -> ``uk``): the usual slip, worth a hint."""
    if not isinstance(code, str) or len(code) != 2 or not code.isalpha():
        return None
    languages = get_official_languages(code.upper())
    return languages[0] if languages else None


def variant_name(name: str, tag: str) -> str:
    """``onboarding/welcome.html`` in ``ja``: ``onboarding/welcome.ja.html``."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or "/" in suffix:
        return f"{name}.{tag}"
    return f"{stem}.{tag}.{suffix}"


__all__ = [
    "DEFAULT_LANGUAGE", "FORMAT_FILTERS", "Localization", "describe", "Resolution", "babel_locale", "display_name", "fallback_chain", "language_of_country",
    "localization_of", "normalize_tag", "resolve", "tag_of", "text_direction", "variant_name",
]
