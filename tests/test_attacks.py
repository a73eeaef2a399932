"""The attack corpus in tests/attacks/: one hostile input per file, each refused cleanly.

Every class has its folder and its contract (docs/security.md has the figures):

- ``imports/``: a contacts or events file (the name says which) whose second
  record is hostile and whose first and third are good. The import keeps the
  two good records and reports the bad one by line, with ``--strict`` it keeps
  nothing, and never a traceback. The tracking plan below types the
  attributes the contact cases use.
- ``messages/``: rendered parts (``subject``, ``text``, ``html``) and a
  recipient ``to`` carrying contact data; ``{long}`` stands for a
  1,200-character first name and ``{old_boundary}`` for the boundary the
  send key used to give. Parsed back strictly, the message has exactly its
  two parts with the same text, no line over 998 octets and no raw NUL, and
  the real aiosmtpd server accepts it; a ``refused: true`` case is a
  permanent error before anything is sent.
- ``webhooks/``: a webhook ``url`` (``{port}`` is a real receiver on
  127.0.0.1) and the project's ``allow`` networks. Without ``slow`` the URL
  is refused (a permanent error) and the receiver gets nothing; with
  ``slow`` the receiver answers too slowly (``headers``: a byte at a time;
  ``silent``: never) and the attempt ends as a transient error at its 1 s
  deadline instead of hanging the tick.
- ``templates/``: a template (rendered as a subject would be) that asks for
  work far beyond the budgets: big-integer arithmetic, widths multiplied by
  lines, tabs, items or characters, widths taken from arguments. Rendering
  refuses each with a clear limit error, and checking it (what validate
  does) finds nothing to fold; both run in a subprocess whose peak memory
  (``resource.getrusage``) stays within ``PEAK_MIB`` of its start.
- ``files/``: a change to a small valid project (``make``: a path ->
  ``symlink``, ``fifo``, ``text`` or ``size``; ``{outside}`` is a folder
  beside the project holding ``smtp.env`` with a password). ``journey
  validate`` exits 1 with the ``expect`` code, never hangs, never shows a
  traceback or the password; a template case also fails to render (no
  password in the error) and ``journey simulate`` stops the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from pathlib import Path

import pytest
import yaml
from smtp_server import SmtpServer
from test_tick_kit import tiny_project

from runner.delivery.message import build_message, clean_header_text
from runner.delivery.render import RenderedEmail, Renderer, RenderError
from runner.delivery.transports import PermanentError, TransientError, open_transport
from runner.delivery.webhooks import allowed_networks, post_webhook
from runner.production.ingest import attribute_types, import_contacts, import_events
from runner.store import open_store

ATTACKS = Path(__file__).parent / "attacks"
PLAN = {"attributes": {"company_size": "integer", "nps": "number", "vip": "boolean"}}


def _cases(kind: str) -> list[Path]:
    return sorted((ATTACKS / kind).iterdir())


def _import(path: Path, store, strict: bool = False):
    if path.name.startswith("contacts"):
        return import_contacts(store, path, strict=strict, attribute_types=attribute_types(PLAN))
    return import_events(store, path, strict=strict)


@pytest.mark.parametrize("case", _cases("imports"), ids=lambda p: p.name)
def test_import_attack_loses_only_its_line(case: Path, tmp_path):
    bad_line = 3 if case.suffix == ".csv" else 2  # a CSV header is line 1
    with open_store(tmp_path / "journey.db") as store:
        result = _import(case, store)
        assert [p.line for p in result.bad] == [bad_line], result.bad
        assert result.imported == 2
        table = "contacts" if case.name.startswith("contacts") else "events"
        assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 2
    with open_store(tmp_path / "strict.db") as store:
        strict = _import(case, store, strict=True)
        assert strict.aborted and strict.imported == 0
        assert store.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_import_attacks_exit_non_zero_without_a_traceback(tmp_path):
    """The CLI reports each hostile line by file:line and exits 1."""
    (tmp_path / "project.yaml").write_text(json.dumps({"name": "attacks", "tracking_plan": PLAN}), encoding="utf-8")
    for case in _cases("imports"):
        kind = "contacts" if case.name.startswith("contacts") else "events"
        run = subprocess.run([sys.executable, "-m", "runner", kind, "import", str(case), "--db", "j.db"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 1, (case.name, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr
        line = 3 if case.suffix == ".csv" else 2
        assert f"{case}:{line}:" in run.stderr, (case.name, run.stderr)



@pytest.mark.parametrize("case", sorted(ATTACKS.glob("imports/*huge-integer*")), ids=lambda p: p.name)
def test_a_number_past_4300_digits_is_a_bad_line_without_pythons_advice(case: Path, tmp_path):
    """Python's "use sys.set_int_max_str_digits()" is not the user's to follow: the line says what is wrong,
    as ``journey serve`` does."""
    (tmp_path / "project.yaml").write_text(json.dumps({"name": "attacks", "tracking_plan": PLAN}), encoding="utf-8")
    kind = "contacts" if case.name.startswith("contacts") else "events"
    run = subprocess.run([sys.executable, "-m", "runner", kind, "import", str(case), "--db", "j.db"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    line, where = (3, "column 'company_size'") if case.suffix == ".csv" else (2, "invalid JSON")
    assert f"{case}:{line}:1: error[import." in run.stderr
    assert f"] {where}: a number has more than 4,300 digits\n" in run.stderr
    assert "sys." not in run.stderr and "999999" not in run.stderr

KEY = "ada:onboarding:1/1/welcome"
LONG = "A" * 1200


def _message_case(case: Path) -> dict:
    old_boundary = f"=_jr_{hashlib.sha256(KEY.encode()).hexdigest()[:24]}"
    spec = yaml.safe_load(case.read_text(encoding="utf-8"))
    fill = {"long": LONG, "old_boundary": old_boundary}
    values = {k: v.replace("{long}", fill["long"]).replace("{old_boundary}", fill["old_boundary"])
              if isinstance(v, str) else v for k, v in spec.items()}
    return {"subject": "Welcome", "text": "Hello", "html": "<p>Hello</p>", "to": "ada@example.com",
            "refused": False, **values}


def _build(spec: dict):
    return build_message(
        RenderedEmail(subject=spec["subject"], html=spec["html"], text=spec["text"]),
        to=spec["to"], sender="Acme <hello@acme.test>", reply_to=None, idempotency_key=KEY,
        list_id="onboarding", unsubscribe_url="https://acme.test/u?token=t", unsubscribe_mailto=None,
        date=datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


def _as_sent(body: str) -> str:
    return body.replace("\r\n", "\n").replace("\r", "\n").removesuffix("\n") + "\n"


@pytest.mark.parametrize("case", _cases("messages"), ids=lambda p: p.stem)
def test_message_attack_keeps_the_structure(case: Path, smtp_server: SmtpServer):
    spec = _message_case(case)
    if spec["refused"]:
        with pytest.raises(PermanentError):
            _build(spec)
        return
    message = _build(spec)
    data = message.as_bytes()
    assert data.isascii() and not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", data)  # no raw NUL or controls
    assert max(len(line) for line in data.split(b"\n")) <= 998
    for received_bytes in (data, _sent_through(smtp_server, message)):
        received = message_from_bytes(received_bytes, policy=policy.strict)
        parts = list(received.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert parts[0].get_content() == _as_sent(spec["text"])
        assert parts[1].get_content() == _as_sent(spec["html"])
        assert str(received["Subject"]) == clean_header_text(spec["subject"])
        # RFC 2047 decoding (Python's address parser keeps the folding between encoded words)
        raw_to = message_from_bytes(received_bytes, policy=policy.compat32)["To"]
        assert str(make_header(decode_header(raw_to))) == _expected_to(spec["to"])
        assert not received.defects and not any(p.defects for p in parts)


def _expected_to(to: str) -> str:
    name, _, address = to.rpartition("<")
    name = clean_header_text(name)
    return f"{name} <{address}" if name else to


def _sent_through(server: SmtpServer, message) -> bytes:
    transport = open_transport(server.url())
    try:
        transport.send(message)
    finally:
        transport.close()
    return server.messages[-1].data.replace(b"\r\n", b"\n")


class SlowReceiver:
    """A raw HTTP receiver on 127.0.0.1: answers 200 at once, or trickles, or never answers."""

    def __init__(self, mode: str = "fast"):
        self.mode = mode
        self.requests = 0
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> SlowReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.listener.close()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    self.requests += 1
                    self._answer(conn)
                except OSError:
                    pass  # the client gave up: what a deadline does

    def _answer(self, conn: socket.socket) -> None:
        if self.mode == "fast":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        elif self.mode == "headers":  # 20 s of header, a byte every 0.1 s
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            for _ in range(200):
                if self.stop.wait(0.1):
                    return
                conn.sendall(b"a")
            conn.sendall(b"\r\nContent-Length: 2\r\n\r\nok")
        else:  # silent: keep the connection open and say nothing
            self.stop.wait(20)


def _webhook_case(case: Path, port: int) -> dict:
    spec = yaml.safe_load(case.read_text(encoding="utf-8"))
    return {"allow": [], "slow": None, **spec, "url": spec["url"].replace("{port}", str(port))}


@pytest.mark.parametrize("case", _cases("webhooks"), ids=lambda p: p.stem)
def test_webhook_attack_is_refused_or_cut_off(case: Path):
    slow = yaml.safe_load(case.read_text(encoding="utf-8")).get("slow")
    with SlowReceiver(slow or "fast") as receiver:
        spec = _webhook_case(case, receiver.port)
        post = {"allow_networks": allowed_networks(spec["allow"]), "timeout": 1.0, "retries": 0}
        if not slow:
            with pytest.raises(PermanentError):
                post_webhook(spec["url"], {"a": 1}, b"secret", "k", **post)
            assert receiver.requests == 0
            return
        with pytest.raises(TransientError, match="within 1s"):
            post_webhook(spec["url"], {"a": 1}, b"secret", "k", **post)
        assert receiver.requests == 1


def test_the_fast_receiver_is_reached_when_its_network_is_allowed():
    """The control for the corpus: the same receiver, allowed, answers 200."""
    with SlowReceiver() as receiver:
        url = f"http://127.0.0.1:{receiver.port}/hook"
        assert post_webhook(url, {"a": 1}, b"s", "k", allow_networks=allowed_networks(["127.0.0.0/8"])) == 200
        assert receiver.requests == 1


PEAK_MIB = 64  # a refused case allocates next to nothing; each of them once took 0.9-2.9 GB
_TEMPLATE_PROBE = r"""
import json, resource, sys
from pathlib import Path
from runner.delivery.render import Renderer
from runner.language.templatecheck import TemplateContext, check_source

mode, folder = sys.argv[1], Path(sys.argv[2])
renderer = Renderer(folder, time_limit=600.0)  # a size guard must refuse each case, not the clock
renderer.render_string("{{ 'warm' ~ 1 }}", {})
check_source("{{ 'warm' ~ 1 }}", "warm", TemplateContext())
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for case in sorted(folder.iterdir()):
    source = case.read_text(encoding="utf-8")
    if mode == "render":
        try:
            outcome = "rendered " + renderer.render_string(source, {})[:40]
        except Exception as error:
            outcome = f"{type(error).__name__}: {error}"
    else:
        outcome = "; ".join(p.message for p in check_source(source, case.name, TemplateContext()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"case": case.name, "outcome": outcome, "grown_mib": (peak - start) // 1024}), flush=True)
"""
_LIMIT_WORDS = re.compile(r"size limit|too large|limited to|not allowed|above|more than")


def _probe_templates(mode: str) -> list[dict]:
    run = subprocess.run([sys.executable, "-c", _TEMPLATE_PROBE, mode, str(ATTACKS / "templates")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_template_attacks_are_refused_before_they_allocate():
    results = _probe_templates("render")
    assert len(results) == len(_cases("templates")) >= 25
    for result in results:
        assert result["outcome"].startswith("RenderError: <string>:1:"), result
        assert _LIMIT_WORDS.search(result["outcome"]), result
        assert result["grown_mib"] <= PEAK_MIB, result  # monotonic: the first case over it is the culprit


def test_template_attacks_cost_validate_nothing():
    """Checking a template never evaluates it (Jinja's constant folding used to)."""
    results = _probe_templates("validate")
    assert len(results) == len(_cases("templates"))
    for result in results:
        assert result["grown_mib"] <= PEAK_MIB, result


PASSWORD = "hunter2-smtp-password"


def _files_case(case: Path, tmp_path: Path) -> tuple[Path, dict]:
    spec = yaml.safe_load(case.read_text(encoding="utf-8"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "smtp.env").write_text(f"SMTP_PASSWORD={PASSWORD}\n", encoding="utf-8")
    (outside / "x.html").write_text(PASSWORD, encoding="utf-8")
    root = tiny_project(tmp_path / "project")
    (outside / "project.yaml").write_text((root / "project.yaml").read_text(), encoding="utf-8")
    (outside / "journey.yaml").write_text((root / "journeys" / "welcome.yaml").read_text().replace(
        "id: welcome", "id: other"), encoding="utf-8")
    for name, how in spec["make"].items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        if "symlink" in how:
            path.symlink_to(how["symlink"].replace("{outside}", str(outside)).replace("{project}", str(root)))
        elif "fifo" in how:
            os.mkfifo(path)
        elif "size" in how:
            with path.open("wb") as handle:
                handle.truncate(how["size"])
        else:
            path.write_text(how["text"], encoding="utf-8")
    return root, spec


def _journey(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)  # a FIFO read used to hang here for ever


@pytest.mark.parametrize("case", _cases("files"), ids=lambda p: p.stem)
def test_file_attack_is_refused_with_a_diagnostic(case: Path, tmp_path: Path):
    root, spec = _files_case(case, tmp_path)
    result = _journey("validate", cwd=root)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"[{spec['expect']}]" in output, output
    assert PASSWORD not in output and "Traceback" not in output
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text("contacts:\n  - id: ada\n    attributes: {email: ada@example.com, first_name: Ada}\n"
                        "    events: [{at: '+0d 10:00', event: signed_up}]\n", encoding="utf-8")
    simulated = _journey("simulate", "--contacts", str(contacts), "--days", "2", cwd=root)
    assert simulated.returncode != 0 and PASSWORD not in simulated.stdout + simulated.stderr
    assert "Traceback" not in simulated.stderr
    if any(name.startswith("templates/") for name in spec["make"]):
        renderer = Renderer(root / "templates")
        for template in ("hello", "tips"):
            try:
                rendered = renderer.render_email(template, "s", {"contact": {"first_name": "Ada"}, "unsubscribe_url": "u"})
            except RenderError as error:
                assert PASSWORD not in str(error)
            else:
                assert PASSWORD not in rendered.html + rendered.text
