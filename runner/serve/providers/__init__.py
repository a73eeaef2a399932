"""Bounce and complaint webhooks of email providers, one module each: ``POST /webhooks/ses`` (Amazon SES
through SNS, runner.serve.providers.ses), ``POST /webhooks/mailgun`` (runner.serve.providers.mailgun)
and ``POST /webhooks/sendgrid`` (runner.serve.providers.sendgrid).

Each checks the provider's signature before reading anything else (a bad one: ``403`` and
nothing changes), maps the provider's events to ``Bounce`` records (runner.core.bounces)
and records them through ``runner.production.bounces`` — the same path as ``journey
bounces import`` — committed before the ``200``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from runner.serve.providers import mailgun, sendgrid, ses
from runner.serve.settings import ServeSettings


def routes(settings: ServeSettings) -> list[BaseRoute]:
    return [*ses.routes(settings), *mailgun.routes(settings), *sendgrid.routes(settings)]
