"""What the bounce and complaint webhooks (runner.serve.providers) need, read once at start (``settings.bounces``).

From project.yaml: the soft-bounce rule (``bounces.soft``). From the environment (secrets
and account identifiers stay out of the repository):

- ``JOURNEY_SES_TOPIC_ARNS``: the SNS topics (comma-separated ARNs) whose SES notifications
  are accepted. SNS signs what *any* AWS account publishes, so the topic is what says the
  message is about our mail; without it the SES endpoint refuses everything.
- ``JOURNEY_MAILGUN_SIGNING_KEY``: Mailgun's HTTP webhook signing key; without it the Mailgun
  endpoint refuses everything.
- ``JOURNEY_SENDGRID_VERIFICATION_KEY``: SendGrid's Event Webhook verification key (base64 DER
  or PEM); without it the SendGrid endpoint refuses everything.

``fetch`` is how a signing certificate or a subscription URL is read over HTTPS; tests give
their own (no internet), production uses ``https_get``.
"""

from __future__ import annotations

import base64
import binascii
import ssl
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from runner.core.bounces import SoftBounceRule, rule_from_project
from runner.core.problems import JourneyError

SES_TOPICS_ENV = "JOURNEY_SES_TOPIC_ARNS"
MAILGUN_KEY_ENV = "JOURNEY_MAILGUN_SIGNING_KEY"
SENDGRID_KEY_ENV = "JOURNEY_SENDGRID_VERIFICATION_KEY"
FETCH_TIMEOUT_SECONDS = 5.0
MAX_FETCH_BYTES = 64 * 1024  # a signing certificate is a few KB; anything longer is not one
SNS_MAX_AGE = timedelta(days=1)  # SNS retries a delivery with the same signed timestamp; older is refused
MAILGUN_MAX_AGE = timedelta(minutes=15)  # Mailgun signs only timestamp + token, not the event: keep it fresh
SENDGRID_MAX_AGE = timedelta(days=1)  # SendGrid signs the body (a replay records nothing new) and retries for a day
MAX_BODY_BYTES = 1024 * 1024  # an SNS message is at most 256 KB; a Mailgun event a few KB

Fetch = Callable[[str], bytes]


def https_get(url: str) -> bytes:
    """GET ``url`` over verified HTTPS with a timeout, at most ``MAX_FETCH_BYTES``."""
    context = ssl.create_default_context()
    request = urllib.request.Request(url, headers={"User-Agent": "journey-runner"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS, context=context) as answer:  # noqa: S310
        return bytes(answer.read(MAX_FETCH_BYTES + 1))[: MAX_FETCH_BYTES + 1]


@dataclass(frozen=True)
class BounceSettings:
    rule: SoftBounceRule = field(default_factory=SoftBounceRule)
    ses_topic_arns: frozenset[str] = frozenset()
    mailgun_signing_key: bytes | None = None
    sendgrid_key: EllipticCurvePublicKey | None = field(default=None, compare=False)
    fetch: Fetch = field(default=https_get, compare=False, repr=False)


def load_bounce_settings(project_raw: Mapping[str, object], environ: Mapping[str, str]) -> BounceSettings:
    topics = frozenset(arn.strip() for arn in environ.get(SES_TOPICS_ENV, "").split(",") if arn.strip())
    key = environ.get(MAILGUN_KEY_ENV, "").strip()
    return BounceSettings(rule=rule_from_project(project_raw), ses_topic_arns=topics,
                          mailgun_signing_key=key.encode() if key else None,
                          sendgrid_key=_sendgrid_key(environ.get(SENDGRID_KEY_ENV, "")))


def _sendgrid_key(value: str) -> EllipticCurvePublicKey | None:
    """The SendGrid verification key: base64 DER (as SendGrid's settings page shows it) or PEM."""
    value = value.strip()
    if not value:
        return None
    try:
        key = load_pem_public_key(value.encode()) if value.startswith("-----") else load_der_public_key(
            base64.b64decode(value, validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, EllipticCurvePublicKey):
        raise JourneyError(f"{SENDGRID_KEY_ENV} is not an elliptic-curve public key (paste the verification key "
                           "from SendGrid's Event Webhook settings)")
    return key
