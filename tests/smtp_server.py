"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, a free port, in a thread.

Usage::

    with SmtpServer() as server:              # or the ``smtp_server`` fixture
        transport = open_transport(server.url())
        ...
        server.messages[0].message["Subject"]

Options cover what delivery code must cope with: STARTTLS or implicit TLS
(``tls=TlsFiles.create(tmp_path)``), AUTH (``users={"u": "p"}``), scripted
replies to DATA (``server.replies.extend(["451 4.3.0 try later"])``, ``server.rcpt_replies`` for RCPT), and
dropping the connection after each accepted message (``drop_after_data``),
a slow relay (``data_delay=0.05``), a relay that stalls mid-message
(``hold_after=10``: the 11th DATA waits until ``server.resume.set()``; a
client waiting there shows as ``server.data_in_progress``), a sender that
dies at a fixed message (``server.kill_sender_at(25, delivered=True).sender(process)``:
a deterministic crash point), a relay in trouble (``server.outage = "451 4.3.0 busy"``
answers every DATA so until cleared; ``stop()`` then ``start()`` refuses connections
meanwhile and comes back on the same port).
``server.connections`` counts the TCP connections clients opened.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Received:
    """One accepted message, as the server saw it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage
    tls: bool
    authenticated_as: str | None


@dataclass
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""

    ca_file: Path
    server_context: ssl.SSLContext

    @classmethod
    def create(cls, folder: Path) -> TlsFiles:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_context)
        ca_file = Path(folder) / "test-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        return cls(ca_file=ca_file, server_context=server_context)


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_RCPT(self, smtp: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list) -> str:
        with self.server.lock:
            scripted = self.server.rcpt_replies.popleft() if self.server.rcpt_replies else None
        if scripted is not None and not scripted.startswith("2"):
            return scripted
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Any, envelope: Any) -> str:
        with self.server.lock:
            self.server.data_in_progress += 1
            self.server.most_data_at_once = max(self.server.most_data_at_once, self.server.data_in_progress)
        try:
            return await self._data(smtp, session, envelope)
        finally:
            with self.server.lock:
                self.server.data_in_progress -= 1

    async def _data(self, smtp: SMTP, session: Any, envelope: Any) -> str:
        if self.server.data_delay:
            await asyncio.sleep(self.server.data_delay)  # a slow relay; other sessions go on meanwhile
        if self.server.outage:
            with self.server.lock:
                self.server.refused += 1
            return self.server.outage
        while self.server.hold_after is not None and len(self.server.messages) >= self.server.hold_after \
                and not self.server.resume.is_set():
            await asyncio.sleep(0.005)  # stalled until the test says resume
        with self.server.lock:
            scripted = self.server.replies.popleft() if self.server.replies else None
            crash = self.server.crash
            if crash is not None and crash.number == len(self.server.messages) + 1:
                self.server.crash = None  # once
            else:
                crash = None
        if scripted is not None and not scripted.startswith("2"):
            return scripted
        if crash is not None and not crash.delivered:
            crash.kill()  # the message never arrives; its sender dies waiting for the answer
            return "451 4.3.0 the sender is gone"
        data = envelope.original_content or envelope.content
        received = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            message=message_from_bytes(data, policy=policy.default),  # type: ignore[arg-type]
            tls=session.ssl is not None or smtp.transport.get_extra_info("cipher") is not None,
            authenticated_as=_login_name(session),
        )
        with self.server.lock:
            self.server.messages.append(received)
            number = len(self.server.messages)
        if crash is not None:
            crash.kill()  # the message arrived; its sender dies before hearing so
        if self.server.drop_after_data:
            asyncio.get_running_loop().call_soon(smtp.transport.close)
        return scripted or f"250 2.0.0 Ok: queued as Q{number}"


@dataclass
class Crash:
    """A sender to kill when the server takes its ``number``-th message (see ``SmtpServer.kill_sender_at``)."""

    number: int
    delivered: bool
    process: subprocess.Popen | None = None
    _known: threading.Event = field(default_factory=threading.Event)

    def sender(self, process: subprocess.Popen) -> subprocess.Popen:
        """The process to kill (started after the crash was armed, so it cannot outrun it)."""
        self.process = process
        self._known.set()
        return process

    def kill(self) -> None:
        self._known.wait()
        assert self.process is not None
        self.process.kill()
        self.process.wait()  # dead before the server answers: the answer can never be read


def _login_name(session: Any) -> str | None:
    data = session.auth_data if session.authenticated else None
    return data if isinstance(data, str) else None


class _CountingController(Controller):
    def __init__(self, owner: SmtpServer, **kwargs: Any):
        self.owner = owner
        super().__init__(**kwargs)

    def factory(self) -> SMTP:
        session = super().factory()
        with self.owner.lock:
            self.owner.connections += 1
            self.owner.sessions.append(session)
        return session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SmtpServer:
    """Start with ``start()`` or ``with``; ``url()`` is ready for ``open_transport``."""

    tls: TlsFiles | None = None
    implicit_tls: bool = False  # smtps:// instead of STARTTLS
    users: dict[str, str] | None = None  # enables AUTH (TLS required, as in production)
    drop_after_data: bool = False
    data_delay: float = 0.0  # seconds before answering DATA
    hold_after: int | None = None  # once this many messages are in, DATA waits for ``resume``
    resume: threading.Event = field(default_factory=threading.Event)
    outage: str | None = None  # while set, the reply to every DATA (a 4xx: the relay is in trouble)
    refused: int = 0  # messages answered with ``outage``
    replies: deque[str] = field(default_factory=deque)  # scripted replies to DATA, in order
    rcpt_replies: deque[str] = field(default_factory=deque)  # scripted replies to RCPT TO
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    data_in_progress: int = 0
    most_data_at_once: int = 0  # how many DATA commands overlapped at most: parallel sending, not timing
    sessions: list = field(default_factory=list)  # aiosmtpd SMTP protocol objects, one per connection
    crash: Crash | None = None  # see kill_sender_at
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    _controller: Controller | None = None

    def start(self) -> SmtpServer:
        kwargs: dict[str, Any] = {}
        if self.tls and self.implicit_tls:
            kwargs["ssl_context"] = self.tls.server_context
        elif self.tls:
            kwargs["tls_context"] = self.tls.server_context
        if self.users is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
        for attempt in range(5):  # the free port may be taken between probe and bind
            if attempt or not self.port:  # a restart comes back on its port
                self.port = free_port()
            controller = _CountingController(
                self, handler=_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs
            )
            try:
                controller.start()
            except (OSError, RuntimeError):
                continue
            self._controller = controller
            break
        else:
            raise RuntimeError("could not start the test SMTP server")
        with self.lock:
            self.connections = 0  # forget the controller's own readiness probe
            self.sessions.clear()
        return self

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.users is not None:
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(user) == password:
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    def kill_sender_at(self, number: int, *, delivered: bool) -> Crash:
        """SIGKILL the sender (``.sender(process)``) when the ``number``-th message (counted over the
        server's life) comes in, before answering it: after keeping it (``delivered``: it arrived, the
        sender never heard) or instead of keeping it (it never arrived). A crash point that does not
        depend on timing."""
        crash = Crash(number, delivered)
        with self.lock:
            self.crash = crash
        return crash

    def close_connections(self) -> None:
        """Close every open client connection, as a relay does with idle sessions."""
        if self._controller is None:
            return
        with self.lock:
            sessions, self.sessions = self.sessions, []
        done = threading.Event()

        def close_all() -> None:
            for session in sessions:
                if session.transport is not None:
                    session.transport.close()
            done.set()

        self._controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, *, user: str | None = None, password: str | None = None, **options: Any) -> str:
        """An ``smtp(s)://`` URL for this server; options become query parameters."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        credentials = f"{user}:{password}@" if user is not None else ""
        if self.tls is not None:
            options.setdefault("cafile", str(self.tls.ca_file))
        options.setdefault("backoff", 0.01)
        query = "&".join(f"{key}={value}" for key, value in options.items())
        return f"{scheme}://{credentials}127.0.0.1:{self.port}" + (f"?{query}" if query else "")
