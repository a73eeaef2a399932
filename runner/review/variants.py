"""A translated email step's language variants, side by side, for ``journey report``.

A reviewer of a translation wants every language of one email next to the others: does
each say the same, is Arabic right to left, did the footer follow? For each *translated*
step (a subject per locale, or a template variant for a declared locale:
docs/localization.md) this renders one message per declared locale with production's own
code (``Delivery.build``). Each is the message of a test contact who reads that locale and
got the step in the simulation when there is one; otherwise it is the step's first
recipient with the locale attribute set to that locale ("as ja"), so every language shows
even when no test contact reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from runner.core.engine import Decision
from runner.core.model import EmailStep, Journey
from runner.delivery.render import html_stem
from runner.language.locales import Localization, display_name, localization_of, resolve, text_direction
from runner.review.graph import steps_in_file_order
from runner.review.renderout import MessageRenderer, RenderedMessage

VARIANT_WIDTH = 420  # px: five languages of a 560 px email still read side by side on a wide screen
VARIANT_HEIGHT = 560

CSS = (".variants{display:flex;gap:12px;overflow-x:auto;padding-bottom:8px}"
       ".variant{flex:0 0 auto;border:1px solid #e0e0e0;border-radius:6px;padding:8px;background:#fafafa}"
       ".variant .locale{font-weight:600}.variant .subject{margin:4px 0;unicode-bidi:plaintext}"
       ".variant iframe{border:1px solid #ddd;background:#fff}")


@dataclass
class Variant:
    """One language of one step: the locale, and the message a reader of it gets."""

    locale: str
    result: RenderedMessage
    stand_in: bool  # True: another test contact's send, with the locale attribute set to ``locale``


def translated_steps(journey: Journey, settings: Localization, renderer: MessageRenderer) -> list[EmailStep]:
    """The journey's email steps with a subject per locale or a template variant for a declared locale."""
    templates = renderer.delivery.renderer
    emails = [step for step in steps_in_file_order(journey) if isinstance(step, EmailStep)]
    return [step for step in emails
            if step.subjects or templates.variant(f"{html_stem(step.template)}.html", settings.others)[1] is not None]


def language_variants(renderer: MessageRenderer, journey: Journey) -> dict[str, list[Variant]]:
    """Step id -> one rendered message per declared locale (the default first), for translated steps."""
    settings = localization_of(renderer.project.raw)
    if not settings.enabled or not settings.others:
        return {}
    found: dict[str, list[Variant]] = {}
    for step in translated_steps(journey, settings, renderer):
        sends = sorted((d for (_, journey_id, step_id), d in renderer.sends.items()
                        if journey_id == journey.id and step_id == step.id), key=lambda d: (d.at, d.contact))
        if not sends:
            continue
        found[step.id] = [_variant(renderer, journey, settings, tag, sends) for tag in settings.locales]
    return found


def _variant(renderer: MessageRenderer, journey: Journey, settings: Localization, tag: str,
             sends: list[Decision]) -> Variant:
    readers = [d for d in sends if resolve(settings, d.detail.get("attributes") or {}).tag.split("-")[0]
               == tag.split("-")[0]]
    if readers:
        return Variant(tag, _render(renderer, journey, readers[0]), stand_in=False)
    first = sends[0]
    attributes = {**(first.detail.get("attributes") or {}), str(settings.attribute): tag}
    stand_in = Decision(first.at, first.contact, first.journey, first.version, first.stage, first.step, first.action,
                        first.reason, first.key, {**first.detail, "attributes": attributes})
    return Variant(tag, _render(renderer, journey, stand_in), stand_in=True)


def _render(renderer: MessageRenderer, journey: Journey, decision: Decision) -> RenderedMessage:
    result = RenderedMessage(decision.contact, journey.id, decision.step or "", decision.at, simulated=True)
    try:
        result.message = renderer.delivery.build(decision, journey).message
    except Exception as error:  # noqa: BLE001 - untrusted templates: the report shows why, as production records it
        result.error = str(error) or type(error).__name__
    return result


def variants_html(variants: dict[str, list[Variant]]) -> str:
    """The report's "Language variants" part of a journey's section ("" when nothing is translated)."""
    if not variants:
        return ""
    parts = [f"<style>{CSS}</style><h3>Language variants</h3>"]
    for step_id, row in variants.items():
        parts.append(f"<h4>{escape(step_id)} <small>({len(row)} languages)</small></h4><div class=\"variants\">")
        for variant in row:
            result = variant.result
            direction = text_direction(variant.locale)
            who = f"as {variant.locale}, from the send to {result.contact}" if variant.stand_in else f"to {result.contact}"
            if result.error:
                frame = f'<p class="warning">cannot render: {escape(result.error)}</p>'
            else:
                frame = (f'<iframe sandbox="" title="{escape(step_id)} ({escape(variant.locale)})" '
                         f'srcdoc="{escape(result.html, quote=True)}" width="{VARIANT_WIDTH}" '
                         f'height="{VARIANT_HEIGHT}"></iframe>')
            parts.append(
                f'<div class="variant" data-locale="{escape(variant.locale)}" style="width:{VARIANT_WIDTH}px">'
                f'<div class="locale">{escape(display_name(variant.locale))} ({escape(variant.locale)})</div>'
                f'<div class="subject" lang="{escape(variant.locale)}" dir="{direction}">{escape(result.subject)}</div>'
                f"<div><small>{escape(who)}</small></div>{frame}</div>")
        parts.append("</div>")
    return "".join(parts)


__all__ = ["Variant", "language_variants", "translated_steps", "variants_html"]
