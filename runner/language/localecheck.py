"""Checks of localized messages: project.yaml's ``localization:``, and each translated email step.

A step is *translated* once it has a subject per locale or a template variant for a declared
locale (``welcome.ja.html``). A translated step must then cover every declared locale: a
template and a subject in that locale or one of its fallbacks before the default (``pt-BR``
is covered by ``pt``). Otherwise contacts reading that language get the default one, which
is what ``localization.missing`` reports, as an error or a warning. Steps nobody translated
yet go out in the default language to everyone, without a word: translating is gradual.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.core.problems import ERROR, WARNING, Problem
from runner.language.locales import (
    Localization,
    fallback_chain,
    language_of_country,
    localization_of,
    normalize_tag,
    variant_name,
)
from runner.language.schema import did_you_mean
from runner.language.semantics import is_file
from runner.language.yamlsource import YamlDocument

_EMAIL = frozenset({"email"})


def _suggest(written: str, locales: tuple[str, ...]) -> str | None:
    """A declared locale close to a misspelt one: the language of a country code (``jp``: ``ja``), or by spelling."""
    language = language_of_country(written)
    if language is not None and language in locales:
        return language
    return did_you_mean(written, locales)


def check_project(doc: YamlDocument, attributes: Mapping[str, Any] | None) -> list[Problem]:
    """The attribute is in the tracking plan; the default and every declared locale is a tag Babel knows."""
    block = doc.data.get("localization") if isinstance(doc.data, dict) else None
    if not isinstance(block, dict):
        return []
    problems: list[Problem] = []
    attribute = block.get("attribute")
    if isinstance(attribute, str) and attributes is not None and attribute not in attributes:
        close = did_you_mean(attribute, [name for name in attributes if isinstance(name, str)])
        problems.append(doc.problem(
            ["localization", "attribute"], "locale.attribute",
            f"`{attribute}` is not an attribute of the tracking plan" + (f"; did you mean `{close}`?" if close else ""),
            hint=f"declare it under tracking_plan.attributes ({attribute}: string) or name the one holding locales"))
    places: list[tuple[list, Any]] = [(["localization", "default"], block.get("default"))]
    locales = block.get("locales")
    if isinstance(locales, list):
        places += [(["localization", "locales", n], value) for n, value in enumerate(locales)]
    for path, value in places:
        if isinstance(value, str) and normalize_tag(value) is None:
            language = language_of_country(value)
            problems.append(doc.problem(
                path, "locale.tag", f"`{value}` is not a locale Babel knows"
                + (f"; `{value}` is a country, its language is `{language}`" if language else ""),
                hint="write a BCP 47 tag: ja (Japanese), ar (Arabic), pt-BR (Brazilian Portuguese), zh-Hant"))
    return problems


def check_journey(doc: YamlDocument, project_data: Mapping[str, Any] | None, templates_dir: Path | None) -> list[Problem]:
    """Per-locale subjects name declared locales; translated steps cover every declared locale."""
    settings = localization_of(project_data)
    block = (project_data or {}).get("localization")
    problems: list[Problem] = []
    for path, _key, body in doc.find(_EMAIL):
        if isinstance(body, dict) and isinstance(body.get("template"), str):
            problems += _check_step(doc, [*path], body, settings, isinstance(block, Mapping), templates_dir)
    return problems


def _check_step(doc: YamlDocument, path: list, body: dict, settings: Localization, localized: bool,
                templates_dir: Path | None) -> list[Problem]:
    subject = body.get("subject")
    subjects = subject if isinstance(subject, dict) else None
    problems: list[Problem] = []
    if subjects is not None and not localized:
        return [doc.problem([*path, "subject"], "locale.subject",
                            "a subject per locale needs `localization:` in project.yaml",
                            hint="declare localization (attribute, default, locales), or write one subject")]
    tags: dict[str, str] = {}  # normalised -> as written
    # a declared locale, or a fallback of one (a `pt` subject serves `pt-BR` and `pt-PT`)
    known = {near for tag in settings.locales for near in fallback_chain(tag, settings.default)}
    for written in subjects or {}:
        tag = normalize_tag(written)
        if tag is None or tag not in known:
            close = _suggest(str(written), settings.locales)
            problems.append(doc.problem(
                [*path, "subject", written], "locale.subject",
                f"subject for `{written}`, a locale the project does not declare (nor one it falls back to)"
                + (f"; did you mean `{close}`?" if close else ""),
                hint=f"declared in localization.locales: {', '.join(settings.locales)}", key=True))
        else:
            tags[tag] = str(written)
    if subjects is not None and settings.default not in tags:
        problems.append(doc.problem(
            [*path, "subject"], "locale.default-subject",
            f"the subject has no `{settings.default}` entry, the default language: contacts without a "
            "translation would get no subject",
            hint=f"add `{settings.default}: …`, in the language of the unsuffixed templates"))
    if not settings.others or templates_dir is None:
        return problems
    stem = str(body["template"]).removesuffix(".html").removesuffix(".htm")
    written_in = {tag for tag in settings.others if is_file(templates_dir / variant_name(f"{stem}.html", tag))}
    if not written_in and subjects is None:
        return problems  # not translated (yet): everyone reads the default language
    severity = WARNING if settings.missing == "warning" else ERROR
    for tag in settings.others:
        chain = fallback_chain(tag, settings.default)[:-1]  # the default is no translation
        if not any(near in written_in or is_file(templates_dir / variant_name(f"{stem}.html", near))
                   for near in chain):
            problems.append(doc.problem(
                [*path, "template"], "locale.missing-template",
                f"no `{tag}` template for `{stem}`: contacts reading {tag} get the {settings.default} one",
                severity=severity,
                hint=f"write {templates_dir.name}/{variant_name(f'{stem}.html', tag)} (and its .txt), or set "
                     "localization.missing: warning while the translation is on its way"))
        if not any(near in tags for near in chain):
            place = [*path, "subject"]
            problems.append(doc.problem(
                place, "locale.missing-subject",
                f"no `{tag}` subject: contacts reading {tag} get the {settings.default} one",
                severity=severity,
                hint=f"add `{tag}: …` to the subject" if subjects is not None
                else f"write the subject per locale: subject: {{{settings.default}: …, {tag}: …}}"))
    return problems


def check_template_names(files: list[Path], project_data: Mapping[str, Any] | None, templates_dir: Path,
                         display: Any) -> list[Problem]:
    """A template variant nobody gets: its locale is not declared (``welcome.ko.html``), or it is a
    country code where a language was meant (``welcome.jp.html`` next to ``welcome.html``)."""
    settings = localization_of(project_data)
    if not settings.enabled:
        return []
    known = {near for tag in settings.locales for near in fallback_chain(tag, settings.default)}
    problems: list[Problem] = []
    for path in files:
        stem, dot, written = path.stem.rpartition(".")
        if not dot or not stem:
            continue
        tag = normalize_tag(written)
        language = language_of_country(written) if tag is None else None
        if tag is not None and tag not in known:
            message = f"a template for `{written}`, a locale the project does not declare: nobody gets it"
            hint = f"add {tag} to localization.locales: [{', '.join(settings.locales)}], or rename it"
        elif language in known and is_file(path.parent / f"{stem}{path.suffix}"):
            message = f"`{written}` is a country, not a language: nobody gets this template"
            hint = f"rename it {stem}.{language}{path.suffix}"
        else:
            continue
        problems.append(Problem(display(path), 1, 1, "locale.undeclared", message, WARNING, hint))
    return problems


__all__ = ["check_journey", "check_project", "check_template_names"]
