"""Bounce and complaint webhooks: Amazon SES through SNS, and Mailgun (runner.serve.providers).

The providers' documented sample payloads (tests/serve/payloads/README.md), signed here:
SNS with a certificate generated for the test (served by an injected fetch, no internet,
only for an ``https://sns.<region>.amazonaws.com/`` URL), Mailgun with a test signing key.
What must hold: a good report suppresses the right contact at its instant and is committed
before the 200; the same report again counts once; a bad signature, a foreign certificate
URL, an unknown topic or a replayed old timestamp gets 403 and changes nothing; the next
tick honours the suppression.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.production.deploy import load_working_tree
from runner.production.tick import build_runtime, run_tick
from runner.serve.bouncesettings import BounceSettings, load_bounce_settings
from runner.serve.providers.sns import SIGNED_FIELDS
from runner.serve.settings import load_settings
from runner.store import open_store
from runner.store.base import ContactRow

PAYLOADS = Path(__file__).parent / "payloads"
TOPIC = "arn:aws:sns:us-west-2:123456789012:MyTopic"
CERT_URL = "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
MAILGUN_KEY = "key-test-mailgun-signing-0123456789"
PEOPLE = {"jane": "jane@example.com", "richard": "Richard@example.com", "alice": "alice@example.com",
          "sam": "example@test.com"}
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(SENDGRID_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def _certificate(key: rsa.RSAPrivateKey, days: int = 30) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=days)).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SNS_CERT = _certificate(SNS_KEY)


class FakeHttps:
    """The fetch the service uses for certificates and subscription URLs: what it was asked, no network."""

    def __init__(self, pages: dict[str, bytes]):
        self.pages = pages
        self.asked: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        if url not in self.pages:
            raise OSError(f"no page at {url}")
        return self.pages[url]


@pytest.fixture
def https():
    return FakeHttps({CERT_URL: SNS_CERT})


@pytest.fixture
def serve_settings(serve_project, https):
    """The shared settings, with the SNS topic, a Mailgun key and the fake HTTPS; PEOPLE stored as contacts."""
    store = open_store(serve_project.db)
    store.write_contacts([ContactRow(cid, {"email": email}) for cid, email in PEOPLE.items()], datetime.now(UTC))
    store.close()
    environ = {"JOURNEY_SES_TOPIC_ARNS": f"{TOPIC}, arn:aws:sns:eu-west-1:123456789012:Other",
               "JOURNEY_MAILGUN_SIGNING_KEY": MAILGUN_KEY, "JOURNEY_SENDGRID_VERIFICATION_KEY": SENDGRID_PUBLIC}
    settings = load_settings(serve_project.root, serve_project.db, environ, host="127.0.0.1", port=0)
    return dataclasses.replace(settings, bounces=dataclasses.replace(settings.bounces, fetch=https))


def sns(message: dict, *, version: str = "2", key: rsa.RSAPrivateKey = SNS_KEY, at: datetime | None = None) -> bytes:
    """An SNS envelope signed as SNS signs it (SignatureVersion 1: SHA1, 2: SHA256)."""
    message = {**message, "SignatureVersion": version, "SigningCertURL": message.get("SigningCertURL", CERT_URL),
               "Timestamp": (at or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    text = "".join(f"{name}\n{message[name]}\n" for name in SIGNED_FIELDS[message["Type"]] if name in message)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    message["Signature"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), digest)).decode()
    return json.dumps(message).encode()


def ses_notification(name: str, **changes) -> dict:
    """The documented SNS notification envelope carrying the documented SES notification ``name``."""
    envelope = json.loads((PAYLOADS / "ses" / "notification.json").read_text())
    content = json.loads((PAYLOADS / "ses" / name).read_text())
    for path, value in changes.items():  # e.g. bounce__timestamp="…"
        target = content
        *parents, last = path.split("__")
        for parent in parents:
            target = target[parent]
        target[last] = value
    envelope.update(TopicArn=TOPIC, Message=json.dumps(content), MessageId=f"sns-{name}-{len(changes)}")
    del envelope["Subject"]
    return envelope


def mailgun(name: str, *, key: str = MAILGUN_KEY, at: float | None = None, token: str | None = None,
            **event_changes) -> dict:
    """A documented Mailgun sample, signed with ``key`` at ``at`` (now)."""
    payload = json.loads((PAYLOADS / "mailgun" / name).read_text())
    payload["event-data"].update(event_changes)
    signature = payload["signature"]
    signature["timestamp"] = str(int(at if at is not None else time.time()))
    signature["token"] = token or signature["token"]
    signature["signature"] = hmac.new(key.encode(), (signature["timestamp"] + signature["token"]).encode(),
                                      hashlib.sha256).hexdigest()
    return payload


def suppressions(db: Path) -> dict[str, tuple[str, str, str | None]]:
    store = open_store(db)
    try:
        return {row["contact_id"] or row["email"]: (row["reason"], row["at"][:19], row["detail"])
                for row in store.suppressions()}
    finally:
        store.close()


def event_count(db: Path) -> int:
    store = open_store(db)
    try:
        return store.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        store.close()


# ---------------------------------------------------------------- Amazon SES through SNS


def test_a_subscription_is_confirmed_at_its_sns_url_signature_version_1(client, https):
    confirmation = json.loads((PAYLOADS / "ses" / "subscription_confirmation.json").read_text())
    unreachable = client.post("/webhooks/ses", content=sns(confirmation, version="1"))
    assert unreachable.status_code == 502 and unreachable.json()["code"] == "confirmation_failed"  # SNS sends it again
    https.pages[confirmation["SubscribeURL"]] = b"<ConfirmSubscriptionResponse/>"
    answer = client.post("/webhooks/ses", content=sns(confirmation, version="1"),
                         headers={"x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert answer.status_code == 200, answer.text
    assert https.asked == [CERT_URL, confirmation["SubscribeURL"], confirmation["SubscribeURL"]]  # the cert once


def test_ses_bounce_and_complaint_suppress_at_their_instant_and_count_once(client, serve_project):
    bounce = sns(ses_notification("bounce_permanent.json"))
    first = client.post("/webhooks/ses", content=bounce)
    assert first.status_code == 200 and first.json() == {"success": True, "recorded": 1, "duplicates": 0}
    assert client.post("/webhooks/ses", content=bounce).json() == {"success": True, "recorded": 0, "duplicates": 1}
    assert client.post("/webhooks/ses", content=sns(ses_notification("complaint.json"), version="1")).status_code == 200
    assert suppressions(serve_project.db) == {
        "jane": ("bounced", "2016-01-27T14:59:38", "hard_bounce: smtp; 550 5.1.1 <jane@example.com>... User (ses)"),
        "richard": ("complained", "2016-01-27T14:59:38", "complaint: abuse (ses)"),
    }
    assert event_count(serve_project.db) == 2 + 2  # the project's two signups, one event per report


def test_ses_transient_bounces_suppress_at_the_third_within_seven_days(client, serve_project):
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    for n in range(3):
        at = (start + timedelta(days=2 * n)).isoformat().replace("+00:00", "Z")
        notification = ses_notification("bounce_permanent.json", bounce__bounceType="Transient",
                                         bounce__bounceSubType="MailboxFull", bounce__timestamp=at,
                                         bounce__feedbackId=f"soft-{n}")
        notification["MessageId"] = f"sns-soft-{n}"
        assert client.post("/webhooks/ses", content=sns(notification)).status_code == 200
        assert ("jane" in suppressions(serve_project.db)) == (n == 2)
    reason, at, detail = suppressions(serve_project.db)["jane"]
    assert (reason, at) == ("bounced", "2026-03-06T09:00:00") and detail.startswith("soft_bounces: 3 within 7d")


def test_the_send_key_in_the_original_headers_picks_the_exact_contact(client, serve_project):
    store = open_store(serve_project.db)
    store.write_contacts([ContactRow("jane-2", {"email": "jane@example.com"})], datetime.now(UTC))
    store.close()
    notification = ses_notification("bounce_permanent.json")
    content = json.loads(notification["Message"])
    content["mail"]["headers"].append({"name": "X-Journey-Key", "value": "jane-2:welcome:1/1/hello"})
    notification["Message"] = json.dumps(content)
    assert client.post("/webhooks/ses", content=sns(notification)).status_code == 200
    assert set(suppressions(serve_project.db)) == {"jane-2"}


@pytest.mark.parametrize("case", ["tampered", "other key", "foreign cert url", "http cert url", "cert url lookalike",
                                  "unknown topic", "old timestamp", "version 3", "no signature"])
def test_an_ses_message_not_provably_from_our_topic_gets_403_and_changes_nothing(client, serve_project, https, case):
    before = event_count(serve_project.db)
    notification = ses_notification("bounce_permanent.json")
    urls = {"foreign cert url": "https://evil.example/sns.us-west-2.amazonaws.com/cert.pem",
            "http cert url": CERT_URL.replace("https://", "http://"),
            "cert url lookalike": "https://sns.us-west-2.amazonaws.com.evil.example/cert.pem"}
    if case in urls:
        notification["SigningCertURL"] = urls[case]
        https.pages[urls[case]] = SNS_CERT  # even a fetch that would answer is never asked
    if case == "unknown topic":
        notification["TopicArn"] = "arn:aws:sns:us-west-2:999999999999:Attacker"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if case == "other key" else SNS_KEY
    at = datetime.now(UTC) - timedelta(days=2) if case == "old timestamp" else None
    body = json.loads(sns(notification, key=key, at=at, version="3" if case == "version 3" else "2"))
    if case == "version 3":
        body["SignatureVersion"] = "3"
    if case == "tampered":
        body["Message"] = body["Message"].replace("jane@example.com", "richard@example.com")
    if case == "no signature":
        del body["Signature"]
    answer = client.post("/webhooks/ses", content=json.dumps(body))
    assert answer.status_code == 403, answer.text
    why = {"tampered": "does not match", "other key": "does not match", "foreign cert url": "SigningCertURL",
           "http cert url": "SigningCertURL", "cert url lookalike": "SigningCertURL", "unknown topic": "topic",
           "old timestamp": "too old", "version 3": "SignatureVersion", "no signature": "Signature is missing"}[case]
    assert why in answer.json()["message"]
    assert event_count(serve_project.db) == before and suppressions(serve_project.db) == {}
    assert not any(url in https.asked for url in urls.values())


def test_bad_bodies_get_400_or_413_never_500(client):
    assert client.post("/webhooks/ses", content=b"{not json").status_code == 400
    assert client.post("/webhooks/ses", content=b"[1, 2]").status_code == 400
    assert client.post("/webhooks/ses", content=b"[" * 100_000).status_code == 400
    assert client.post("/webhooks/ses", content=b" " * (1024 * 1024 + 1)).status_code == 413
    assert client.post("/webhooks/mailgun", content=json.dumps({"signature": 5})).status_code == 403


def test_a_delivery_notification_is_acknowledged_and_ignored(client, serve_project):
    notification = ses_notification("bounce_without_dsn.json")
    content = json.loads(notification["Message"])
    notification["Message"] = json.dumps({"notificationType": "Delivery", "mail": content["mail"]})
    answer = client.post("/webhooks/ses", content=sns(notification))
    assert answer.json() == {"success": True, "recorded": 0, "duplicates": 0}
    assert suppressions(serve_project.db) == {}


def test_without_configured_topics_ses_refuses_everything(serve_project, https):
    from starlette.testclient import TestClient

    from runner.serve.app import build_app

    settings = load_settings(serve_project.root, serve_project.db, {}, host="127.0.0.1", port=0)
    settings = dataclasses.replace(settings, bounces=dataclasses.replace(settings.bounces, fetch=https))
    with TestClient(build_app(settings)) as client:
        answer = client.post("/webhooks/ses", content=sns(ses_notification("bounce_permanent.json")))
        assert answer.status_code == 403 and answer.json()["code"] == "unknown_topic"
        answer = client.post("/webhooks/mailgun", json=mailgun("failed_permanent.json"))
        assert answer.status_code == 403 and answer.json()["code"] == "not_configured"


# ---------------------------------------------------------------- Mailgun


def test_mailgun_failed_and_complained_samples(client, serve_project):
    answer = client.post("/webhooks/mailgun", json=mailgun("failed_permanent.json"))
    assert answer.status_code == 200 and answer.json()["recorded"] == 1
    assert suppressions(serve_project.db)["alice"] == (
        "bounced", "2018-03-19T15:11:02",
        "hard_bounce: 605 Not delivering to previously bounced address (suppress-bounce) (mailgun)")
    assert client.post("/webhooks/mailgun", json=mailgun("complained.json", recipient="jane@example.com")).status_code == 200
    assert suppressions(serve_project.db)["jane"][0] == "complained"


def test_mailgun_temporary_failures_count_until_the_limit(client, serve_project):
    start = time.time() - 3600
    for n in range(3):
        payload = mailgun("failed_temporary.json", token=f"{'t' * 48}{n:02d}", timestamp=start + n * 60)
        assert client.post("/webhooks/mailgun", json=payload).json()["recorded"] == 1
        assert ("alice" in suppressions(serve_project.db)) == (n == 2)
    assert suppressions(serve_project.db)["alice"][2].startswith(
        "soft_bounces: 3 within 7d; 452 4.2.2 The email account that you tried to reach is over quota.")


@pytest.mark.parametrize("case", ["wrong key", "old timestamp", "future timestamp", "no signature", "bad hex"])
def test_a_mailgun_event_not_signed_now_with_our_key_gets_403_and_changes_nothing(client, serve_project, case):
    before = event_count(serve_project.db)
    at = {"old timestamp": time.time() - 3600, "future timestamp": time.time() + 3600}.get(case)
    payload = mailgun("failed_permanent.json", key="key-someone-else" if case == "wrong key" else MAILGUN_KEY, at=at)
    if case == "no signature":
        del payload["signature"]
    if case == "bad hex":
        payload["signature"]["signature"] = "é" * 64
    answer = client.post("/webhooks/mailgun", json=payload)
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == ("stale_timestamp" if "timestamp" in case else "bad_signature")
    assert event_count(serve_project.db) == before and suppressions(serve_project.db) == {}


def test_a_mailgun_token_reused_for_another_event_is_refused_a_retry_counts_once(client, serve_project):
    payload = mailgun("failed_permanent.json")
    assert client.post("/webhooks/mailgun", json=payload).json()["recorded"] == 1
    assert client.post("/webhooks/mailgun", json=payload).json() == {"success": True, "recorded": 0, "duplicates": 1}
    forged = copy.deepcopy(payload)
    forged["event-data"]["recipient"] = "jane@example.com"  # the signature covers only timestamp and token
    answer = client.post("/webhooks/mailgun", json=forged)
    assert answer.status_code == 403 and answer.json()["code"] == "replayed_token"
    assert set(suppressions(serve_project.db)) == {"alice"}


# ---------------------------------------------------------------- SendGrid


def sendgrid(names: list[str], *, key: ec.EllipticCurvePrivateKey = SENDGRID_KEY, at: float | None = None,
             **changes) -> tuple[bytes, dict[str, str]]:
    """SendGrid's documented sample events (each its own sg_event_id), signed as SendGrid signs a post."""
    events = []
    for n, name in enumerate(names):
        event = json.loads((PAYLOADS / "sendgrid" / f"{name}.json").read_text())
        events.append({**event, "sg_event_id": f"{name}-{n}-{event['sg_event_id']}", **changes})
    body = json.dumps(events).encode()
    timestamp = str(int(at if at is not None else time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                  "X-Twilio-Email-Event-Webhook-Timestamp": timestamp, "Content-Type": "application/json"}


def test_the_sendgrid_verifier_accepts_sendgrids_own_test_vector():
    from runner.serve.bouncesettings import load_bounce_settings
    from runner.serve.providers.common import Refused
    from runner.serve.providers.sendgrid import verify

    key = load_bounce_settings({}, {"JOURNEY_SENDGRID_VERIFICATION_KEY": (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu"
        "/1FwCM/QmGUhA==")}).sendgrid_key
    signature = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
    payload = b'{"category":"example_payload","event":"test_event","message_id":"message_id"}'
    signed_at = datetime.fromtimestamp(1588788367, UTC)
    verify(key, payload, signature, "1588788367", signed_at)  # no exception: SendGrid's signature holds
    for bad in (payload.replace(b"test_event", b"bounce"), payload + b" "):
        with pytest.raises(Refused):
            verify(key, bad, signature, "1588788367", signed_at)
    with pytest.raises(Refused, match="too old"):
        verify(key, payload, signature, "1588788367", signed_at + timedelta(days=2))


def test_sendgrid_bounces_and_spam_reports_from_the_documented_samples(client, serve_project):
    body, headers = sendgrid(["delivered", "deferred", "blocked", "blocked", "spamreport", "bounce"])
    answer = client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert answer.status_code == 200 and answer.json() == {"success": True, "recorded": 4, "duplicates": 0}
    assert client.post("/webhooks/sendgrid", content=body, headers=headers).json()["duplicates"] == 4
    # two blocks (soft: under the limit), then the spam report and the bounce at one instant: the first recorded stays
    assert suppressions(serve_project.db)["sam"] == ("complained", "2017-12-15T00:59:29", "complaint (sendgrid)")
    store = open_store(serve_project.db)
    names = sorted(event.name for event in store.load_contact_state("sam").events)
    store.close()
    assert names == ["email_bounced", "email_complained", "email_soft_bounced", "email_soft_bounced"]


@pytest.mark.parametrize("case", ["other key", "tampered", "old timestamp", "no headers", "not configured"])
def test_a_sendgrid_post_not_signed_by_our_key_gets_403_and_changes_nothing(client, serve_project, case):
    before = event_count(serve_project.db)
    body, headers = sendgrid(["bounce"], key=ec.generate_private_key(ec.SECP256R1()) if case == "other key"
                             else SENDGRID_KEY, at=time.time() - 3 * 86400 if case == "old timestamp" else None)
    if case == "tampered":
        body = body.replace(b"example@test.com", b"jane@example.com")
    if case == "no headers":
        headers = {}
    target = client
    if case == "not configured":
        from starlette.testclient import TestClient

        from runner.serve.app import build_app

        settings = client.app.state.settings
        target = TestClient(build_app(dataclasses.replace(
            settings, bounces=dataclasses.replace(settings.bounces, sendgrid_key=None))))
    answer = target.post("/webhooks/sendgrid", content=body, headers=headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == {"old timestamp": "stale_timestamp", "not configured": "not_configured"}.get(
        case, "bad_signature")
    assert event_count(serve_project.db) == before and suppressions(serve_project.db) == {}


# ---------------------------------------------------------------- end to end, over real HTTP


def test_a_bounce_over_http_is_honoured_by_the_very_next_tick(live_server, serve_project, tmp_path):
    """c00000 and c00001 got hello at 09:00 on 2 March; c00000's address bounces at 12:00; the
    tick at 10:00 next day sends tips to c00001 only."""
    notification = ses_notification("bounce_permanent.json", bounce__timestamp="2026-03-02T12:00:00Z")
    content = json.loads(notification["Message"])
    content["bounce"]["bouncedRecipients"][0]["emailAddress"] = "c00000@example.com"
    notification["Message"] = json.dumps(content)
    tree = load_working_tree(serve_project.root)
    store = open_store(serve_project.db)
    runtime = build_runtime(store, tree.project, f"outbox:{tmp_path / 'outbox'}")
    run_tick(store, runtime, datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    answer = httpx.post(f"{live_server.url}/webhooks/ses", content=sns(notification), timeout=30)
    assert answer.status_code == 200 and answer.json()["recorded"] == 1
    run_tick(store, runtime, datetime(2026, 3, 3, 10, tzinfo=UTC))
    sent = sorted(store.conn.execute("SELECT contact_id, step_id FROM sends WHERE state = 'sent'").fetchall())
    skipped = [(row["step"], row["reason"]) for row in store.contact_history("c00000") if row["action"] == "skip"]
    store.close()
    assert sent == [("c00000", "hello"), ("c00001", "hello"), ("c00001", "tips")]
    assert skipped == [("tips", "suppressed: bounced")]


def test_settings_read_the_environment_and_project_rule():
    settings = load_bounce_settings({"bounces": {"soft": {"limit": 5, "within": "3d"}}},
                                    {"JOURNEY_SES_TOPIC_ARNS": " a , b,", "JOURNEY_MAILGUN_SIGNING_KEY": " k "})
    assert (settings.rule.limit, str(settings.rule.within)) == (5, "3d")
    assert settings.ses_topic_arns == frozenset({"a", "b"}) and settings.mailgun_signing_key == b"k"
    assert BounceSettings().ses_topic_arns == frozenset() and BounceSettings().mailgun_signing_key is None
    from runner.core.problems import JourneyError

    with pytest.raises(JourneyError, match="JOURNEY_SENDGRID_VERIFICATION_KEY is not an elliptic-curve public key"):
        load_bounce_settings({}, {"JOURNEY_SENDGRID_VERIFICATION_KEY": "bm90IGEga2V5"})


def test_the_webhooks_are_described_for_the_fuzz_run():
    from runner.serve.openapi import describe

    paths = describe()["paths"]
    for path in ("/webhooks/ses", "/webhooks/mailgun", "/webhooks/sendgrid"):
        assert {"200", "400", "403", "408", "413"} <= set(paths[path]["post"]["responses"])


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                         max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(event=st.dictionaries(st.sampled_from(["event", "severity", "recipient", "timestamp", "delivery-status",
                                               "reason", "email", "type", "sg_event_id"]), json_values, max_size=9),
       name=st.sampled_from(["failed", "complained", "bounce", "spamreport", "delivered"]))
def test_provider_events_of_any_shape_map_or_are_refused_never_raise_otherwise(event, name):
    """What a signed event may hold is still input: it maps to reports or is refused (400), nothing else."""
    from runner.serve.providers import mailgun as mailgun_module
    from runner.serve.providers import sendgrid as sendgrid_module
    from runner.serve.providers import ses as ses_module
    from runner.serve.providers.common import Refused

    event = {**event, "event": name}
    now = datetime.now(UTC)
    for parse in (lambda: mailgun_module.event_bounces(event, "token"), lambda: sendgrid_module.event_bounces(event),
                  lambda: ses_module.notification_bounces({"notificationType": "Bounce", "bounce": event}, "id", now),
                  lambda: ses_module.notification_bounces({"notificationType": "Complaint", "complaint": event,
                                                           "mail": event}, "id", now)):
        try:
            found = parse()
        except Refused as refused:
            assert refused.status == 400
        else:
            assert all(bounce.at.tzinfo is not None and "@" in bounce.recipient for bounce in found)
