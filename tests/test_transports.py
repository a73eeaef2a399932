"""Transports against a real SMTP server (aiosmtpd), a real folder, real stdout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from smtp_server import SmtpServer, TlsFiles

from runner.core.problems import JourneyError
from runner.delivery.message import build_message
from runner.delivery.render import RenderedEmail
from runner.delivery.transports import (
    ConsoleTransport,
    MemoryTransport,
    OutboxTransport,
    PermanentError,
    SmtpTransport,
    TransientError,
    TransportPool,
    open_pool,
    open_transport,
    smtp_settings,
)


def message(key: str = "ada:onboarding:1/1/welcome", to: str = "ada@example.com", subject: str = "Welcome"):
    return build_message(
        RenderedEmail(subject=subject, html="<p>Hello</p>", text="Hello"),
        to=to,
        sender="Acme <hello@acme.test>",
        reply_to=None,
        idempotency_key=key,
        list_id="onboarding",
        unsubscribe_url="https://acme.test/u?token=t",
        unsubscribe_mailto="unsubscribe@acme.test",
        date=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
    )


# ------------------------------------------------------------------- SMTP


def test_sends_over_one_reused_connection(smtp_server: SmtpServer) -> None:
    transport = open_transport(smtp_server.url())
    messages = [message(key=f"k{i}", to=f"c{i}@example.com") for i in range(5)]
    ids = [transport.send(m) for m in messages]
    transport.close()
    assert ids == [f"2.0.0 Ok: queued as Q{i}" for i in range(1, 6)]
    assert smtp_server.connections == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [[f"c{i}@example.com"] for i in range(5)]
    assert smtp_server.messages[0].mail_from == "hello@acme.test"
    assert smtp_server.messages[0].tls is False
    received = smtp_server.messages[0].message
    assert str(received["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert str(received["X-Journey-Key"]) == "k0"
    # The server stores exactly the bytes we built (aiosmtpd has already undone dot-stuffing and CRLF).
    assert smtp_server.messages[0].data.replace(b"\r\n", b"\n") == messages[0].as_bytes()


def test_reconnects_when_the_server_drops_the_connection() -> None:
    with SmtpServer(drop_after_data=True) as server:
        transport = open_transport(server.url(retries=2))
        for i in range(3):
            transport.send(message(key=f"k{i}"))
        transport.close()
    assert len(server.messages) == 3  # each sent exactly once
    assert server.connections == 3


def test_idle_connection_closed_by_the_server_is_reopened_before_sending(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runner.delivery.transports as transports

    transport = open_transport(smtp_server.url(retries=0))  # no retries: the check must do it
    transport.send(message(key="first"))
    smtp_server.close_connections()  # the relay times the idle session out
    monkeypatch.setattr(transports, "IDLE_CHECK_SECONDS", 0.0)
    transport.send(message(key="second"))
    transport.close()
    assert [str(m.message["X-Journey-Key"]) for m in smtp_server.messages] == ["first", "second"]
    assert smtp_server.connections == 2


def test_transient_reply_is_retried(smtp_server: SmtpServer) -> None:
    smtp_server.replies.extend(["451 4.3.0 try again later"])
    sleeps: list[float] = []
    transport = SmtpTransport(smtp_settings(smtp_server.url(backoff=0.25))[0], sleep=sleeps.append)
    assert transport.send(message()) == "2.0.0 Ok: queued as Q1"
    transport.close()
    assert len(smtp_server.messages) == 1
    assert sleeps == [0.25]
    assert smtp_server.connections == 1  # a 4xx reply does not cost the connection


def test_retries_back_off_exponentially_then_give_up(smtp_server: SmtpServer) -> None:
    smtp_server.replies.extend(["451 4.3.0 busy"] * 4)
    sleeps: list[float] = []
    transport = SmtpTransport(smtp_settings(smtp_server.url(retries=3, backoff=0.1))[0], sleep=sleeps.append)
    with pytest.raises(TransientError, match="451.*gave up after 4 attempts"):
        transport.send(message())
    assert sleeps == [0.1, 0.2, 0.4]
    assert smtp_server.messages == []
    assert transport.send(message()) == "2.0.0 Ok: queued as Q1"  # the connection still works
    transport.close()


def test_permanent_reply_is_not_retried(smtp_server: SmtpServer) -> None:
    smtp_server.replies.extend(["550 5.1.1 no such user", "250 ignored"])
    sleeps: list[float] = []
    transport = SmtpTransport(smtp_settings(smtp_server.url())[0], sleep=sleeps.append)
    with pytest.raises(PermanentError, match="550"):
        transport.send(message())
    transport.close()
    assert sleeps == [] and smtp_server.messages == []
    assert list(smtp_server.replies) == ["250 ignored"]  # exactly one attempt


def test_deferred_recipient_is_retried(smtp_server: SmtpServer) -> None:
    smtp_server.rcpt_replies.extend(["450 4.2.1 mailbox busy"])
    transport = open_transport(smtp_server.url())
    transport.send(message())
    transport.close()
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ada@example.com"]]


def test_refused_recipient_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.rcpt_replies.extend(["550 5.1.1 user unknown"])
    transport = open_transport(smtp_server.url())
    with pytest.raises(PermanentError, match="recipient refused.*550"):
        transport.send(message())
    transport.send(message(key="next"))  # the connection is still good for the next one
    transport.close()
    assert len(smtp_server.messages) == 1 and smtp_server.connections == 1


def test_unreachable_server_is_transient() -> None:
    with SmtpServer() as server:
        url = server.url(retries=1, timeout=2)
    with pytest.raises(TransientError, match="gave up after 2 attempts"):
        open_transport(url).send(message())


def test_starttls_and_auth(tls_files: TlsFiles) -> None:
    with SmtpServer(tls=tls_files, users={"mailer": "s3cret:/@"}) as server:
        transport = open_transport(server.url(user="mailer", password="s3cret%3A%2F%40", starttls="true"))
        transport.send(message())
        transport.send(message(key="k2"))
        transport.close()
    assert [m.tls for m in server.messages] == [True, True]
    assert [m.authenticated_as for m in server.messages] == ["mailer", "mailer"]
    assert server.connections == 1


def test_wrong_password_is_transient_not_permanent(tls_files: TlsFiles) -> None:
    with SmtpServer(tls=tls_files, users={"mailer": "right"}) as server:
        transport = open_transport(server.url(user="mailer", password="wrong", retries=0))
        with pytest.raises(TransientError, match="authentication failed"):
            transport.send(message())
    assert server.messages == []


def test_untrusted_certificate_is_refused(tls_files: TlsFiles, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    stranger = TlsFiles.create(tmp_path / "other")  # a CA that did not sign the server's cert
    with SmtpServer(tls=tls_files) as server:
        url = server.url(starttls="true", retries=0, cafile=stranger.ca_file)
        with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            open_transport(url).send(message())
    assert server.messages == []


def test_credentials_never_travel_in_clear(smtp_server: SmtpServer) -> None:
    transport = open_transport(smtp_server.url(user="u", password="p", retries=0))
    with pytest.raises(TransientError, match="without TLS"):
        transport.send(message())
    assert smtp_server.messages == []


def test_starttls_required_but_not_offered(smtp_server: SmtpServer) -> None:
    with pytest.raises(TransientError, match="does not offer STARTTLS"):
        open_transport(smtp_server.url(starttls="true", retries=0)).send(message())


def test_implicit_tls(tls_files: TlsFiles) -> None:
    with SmtpServer(tls=tls_files, implicit_tls=True) as server:
        url = server.url()
        assert url.startswith("smtps://")
        transport = open_transport(url)
        transport.send(message())
        transport.close()
    assert server.messages[0].tls is True


def test_pool_spreads_over_connections(smtp_server: SmtpServer) -> None:
    pool = open_transport(smtp_server.url(connections=4))
    assert isinstance(pool, TransportPool)
    results = pool.send_all(message(key=f"k{i}") for i in range(40))
    pool.close()
    assert all(isinstance(r, str) and r.startswith("2.0.0") for r in results)
    assert sorted(str(m.message["X-Journey-Key"]) for m in smtp_server.messages) == sorted(f"k{i}" for i in range(40))
    assert 1 <= smtp_server.connections <= 4


def test_pool_uses_all_its_connections_against_a_slow_server() -> None:
    with SmtpServer(data_delay=0.05) as server:
        pool = open_pool(server.url(), 4)
        results = pool.send_all(message(key=f"k{i}") for i in range(12))
        pool.close()
    assert all(isinstance(r, str) for r in results)
    assert len(server.messages) == 12
    assert server.connections == 4


def test_pool_reports_failures_in_order(smtp_server: SmtpServer) -> None:
    pool = open_pool(smtp_server.url(retries=0), 1)
    smtp_server.replies.extend(["250 x", "550 5.7.1 rejected", "250 y"])
    results = pool.send_all([message(key="a"), message(key="b"), message(key="c")])
    pool.close()
    assert isinstance(results[1], PermanentError)
    assert [r for r in results if isinstance(r, str)] == ["x", "y"]


# ----------------------------------------------------------- URL handling


def test_smtp_url_options() -> None:
    settings, connections = smtp_settings(
        "smtp://us%40er:p%3Ass@mail.test:2525?starttls=false&timeout=3&retries=5&backoff=2&connections=4"
    )
    assert (settings.host, settings.port, settings.username, settings.password) == ("mail.test", 2525, "us@er", "p:ss")
    assert (settings.starttls, settings.timeout, settings.retries, settings.backoff) == ("false", 3.0, 5, 2.0)
    assert connections == 4
    assert smtp_settings("smtps://mail.test")[0].port == 465
    assert smtp_settings("smtp://mail.test")[0].port == 25


@pytest.mark.parametrize(
    "url, message_part",
    [
        ("ftp://x", "unknown transport"),
        ("smtp://mail.test?bogus=1", "unknown SMTP transport option"),
        ("smtp://mail.test?starttls=maybe", "true or false"),
        ("smtp://mail.test?timeout=soon", "must be a number"),
        ("smtp://", "no host"),
        ("outbox:", "needs a folder"),
    ],
)
def test_bad_urls_are_clear_errors(url: str, message_part: str) -> None:
    with pytest.raises(JourneyError, match=message_part):
        open_transport(url)


def test_password_is_not_echoed_in_errors() -> None:
    with pytest.raises(JourneyError) as caught:
        open_transport("smtp://user:hunter2@?x=1")
    assert "hunter2" not in str(caught.value)


# --------------------------------------------------- outbox / console / memory


def test_outbox_is_idempotent_and_atomic(tmp_path: Path) -> None:
    transport = open_transport("outbox:mail", base_dir=tmp_path)
    assert isinstance(transport, OutboxTransport)
    first = transport.send(message())
    second = transport.send(message(subject="Welcome (resent)"))
    other = transport.send(message(key="ada:onboarding:1/1/nudge"))
    files = sorted(p.name for p in (tmp_path / "mail").iterdir())
    assert first == second and other != first
    assert files == sorted([first, other])  # no temp files left behind
    assert first.startswith("ada_onboarding_1_1_welcome-") and first.endswith(".eml")
    from email import message_from_bytes, policy

    saved = message_from_bytes((tmp_path / "mail" / first).read_bytes(), policy=policy.default)
    assert str(saved["Subject"]) == "Welcome (resent)"  # overwritten, not duplicated


def test_outbox_names_cannot_escape_the_folder(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path / "out")
    name = transport.send(message(key="../../etc/passwd"))
    assert (tmp_path / "out" / name).is_file() and "/" not in name


def test_console_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    transport = open_transport("console")
    assert isinstance(transport, ConsoleTransport)
    result = transport.send(message())
    out = capsys.readouterr().out
    assert "to=Ada" not in out and "to=ada@example.com" in out
    assert "subject='Welcome'" in out and "key=ada:onboarding:1/1/welcome" in out
    assert result.startswith("console:<jr.")


def test_memory_transport_keeps_messages() -> None:
    transport = open_transport("memory")
    assert isinstance(transport, MemoryTransport)
    transport.send(message())
    assert [str(m["To"]) for m in transport.messages] == ["ada@example.com"]
