"""``journey bounces import``: real-looking DSNs (Postfix, Exim, Google, Microsoft) and the RFC 5965
abuse reports (tests/bounces/README.md), read by the real CLI into a real SQLite file.

What a user relies on: each report suppresses the right contact at the report's instant
(``journey suppress list`` and ``journey history`` say why), the next tick honours it,
importing the same mail again counts nothing twice, a dry run stores nothing, and
unreadable input exits non-zero keeping what was recorded.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tick_kit import deployed_tiny_project, journey_cli

from runner.store import open_store
from runner.store.base import ContactRow, EventRow

FIXTURES = Path(__file__).parent / "bounces"
SIGNUP = datetime(2026, 3, 2, 9, tzinfo=UTC)  # hello goes at 09:00, tips a day later
PEOPLE = {"ada": "ada@example.com", "barbara": "Barbara@example.com", "grace": "grace@example.net",
          "linus": "linus@example.org", "alan": "alan@contoso.com"}


@pytest.fixture
def project(tmp_path):
    """The tiny project deployed, PEOPLE signed up at SIGNUP, hello sent to each; the mail in one folder."""
    root, db, _ids = deployed_tiny_project(tmp_path, 0, SIGNUP)
    store = open_store(db)
    store.write_contacts([ContactRow(cid, {"email": email, "first_name": cid.title()}) for cid, email in PEOPLE.items()],
                         SIGNUP)
    store.write_events([EventRow(cid, None, "signed_up", SIGNUP, {}, f"{cid}-signup") for cid in PEOPLE], SIGNUP)
    store.close()
    mail = tmp_path / "mail"
    mail.mkdir()
    for path in [*FIXTURES.glob("mail/*.eml"), *FIXTURES.glob("arf/*.eml"), FIXTURES / "soft_bounces.mbox"]:
        shutil.copy2(path, mail / path.name)
    assert run(root, db, "run", "--now", "2026-03-02T09:00:00Z").returncode == 0
    return root, db, mail


def run(root: Path, db: Path, *args: str):
    return journey_cli([*args, "--db", str(db)], cwd=root, env={"JOURNEY_DB": ""})


def suppressions(root: Path, db: Path) -> dict[str, dict]:
    listed = run(root, db, "suppress", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return {row["email"] or row["contact_id"]: row for row in json.loads(listed.stdout)}


def test_each_servers_reports_suppress_the_right_contact_at_the_reports_instant(project):
    root, db, mail = project
    result = run(root, db, "bounces", "import", str(mail), "--now", "2026-03-20T00:00:00Z")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{mail}: 11 messages, 9 reports: recorded 9 (4 hard, 4 soft, 1 complaints), 0 already recorded, "
        "6 suppressed, 0 unmatched soft bounces, 2 unrecognised")
    assert sorted(line.split(":")[0] for line in result.stderr.splitlines()) == [
        str(mail / "auto_reply.eml"), str(mail / "rfc5965_b1_simple.eml")]  # named, not counted
    rows = suppressions(root, db)
    got = {target: (row["reason"], row["at"][:19], row["detail"].split(";")[0]) for target, row in rows.items()}
    assert got == {
        "ada": ("bounced", "2026-03-02T15:00:02", "hard_bounce: smtp"),  # Postfix, 5.1.1
        "grace": ("bounced", "2026-03-02T10:12:40", "hard_bounce: smtp"),  # Exim, 5.0.0
        "linus": ("bounced", "2026-03-03T16:31:22", "hard_bounce: smtp"),  # Google, PST
        "alan": ("bounced", "2026-03-04T11:05:09", "hard_bounce: smtp"),  # Microsoft, 5.1.10
        # Postfix's delay on the 2nd, Google's on the 3rd and 5th: the third within 7 days
        "barbara": ("bounced", "2026-03-05T08:00:00", "soft_bounces: 3 within 7d"),
        "user@example.com": ("complained", "2005-03-08T21:40:36", "complaint: abuse report from SomeGenerator/1.0 (arf)"),
    }
    assert "RESOLVER.ADR.RecipientNotFound" in rows["alan"]["detail"] and rows["alan"]["detail"].endswith("(dsn)")
    assert rows["barbara"]["detail"].endswith("over quota. Please direct the recipient to "
                                              "https://support.google.com/mail/?p=OverQuotaTemp (dsn)")

    # the next tick honours them: tips (due 3 March 09:00) is skipped for those suppressed before it
    assert run(root, db, "run", "--now", "2026-03-04T12:00:00Z").returncode == 0
    history = run(root, db, "history", "ada")
    assert "suppressed: bounced" in history.stdout
    assert history.stdout.rstrip().splitlines()[-1] == (
        "suppressed since 2026-03-02T15:00:02Z: bounced (hard_bounce: smtp; 550 5.1.1 <ada@example.com>: "
        "Recipient address rejected: User unknown in virtual mailbox table (dsn))")
    store = open_store(db)
    tips = dict(store.conn.execute("SELECT contact_id, state FROM sends WHERE step_id = 'tips'").fetchall())
    store.close()
    assert tips == {"barbara": "sent", "linus": "sent", "alan": "sent"}  # ada and grace: skipped, not sent
    document = json.loads(run(root, db, "history", "grace", "--format", "json").stdout)
    assert document["suppression"]["reason"] == "bounced" and document["suppression"]["at"] == "2026-03-02T10:12:40Z"
    assert [e["reason"] for e in document["events"] if e["step"] == "tips"] == ["suppressed: bounced"]


def test_importing_the_same_mail_again_counts_nothing_twice(project):
    root, db, mail = project
    assert run(root, db, "bounces", "import", str(mail)).returncode == 0
    before = suppressions(root, db)
    again = run(root, db, "bounces", "import", str(mail))
    assert again.returncode == 0, again.stderr
    assert "recorded 0 (0 hard, 0 soft, 0 complaints), 9 already recorded, 0 suppressed" in again.stdout
    assert suppressions(root, db) == before


def test_a_dry_run_says_what_it_would_record_and_stores_nothing(project):
    root, db, mail = project
    result = run(root, db, "bounces", "import", str(mail), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would record 9 (4 hard, 4 soft, 1 complaints)" in result.stdout and "6 suppressed" in result.stdout
    assert suppressions(root, db) == {}


def test_unreadable_input_exits_non_zero_and_keeps_what_was_recorded(project):
    root, db, mail = project
    (mail / "zz-archive.tar.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)))
    result = run(root, db, "bounces", "import", str(mail))
    assert result.returncode == 1
    assert f"{mail / 'zz-archive.tar.gz'}: unreadable: not an email message" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(suppressions(root, db)) == 6


def test_a_file_that_is_no_report_is_an_error_and_a_maildir_is_read(project, tmp_path):
    root, db, mail = project
    lonely = run(root, db, "bounces", "import", str(mail / "auto_reply.eml"))
    assert lonely.returncode == 1 and "unrecognised" in lonely.stderr
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    shutil.copy2(mail / "exim_failed.eml", maildir / "new" / "1772446360.M1P2.relay:2,")
    result = run(root, db, "bounces", "import", str(maildir))
    assert result.returncode == 0, result.stderr
    assert "1 messages, 1 reports: recorded 1 (1 hard" in result.stdout
    assert suppressions(root, db)["grace"]["reason"] == "bounced"


def test_bounces_soft_in_project_yaml_sets_the_limit(project):
    root, db, mail = project
    project_yaml = root / "project.yaml"
    project_yaml.write_text(project_yaml.read_text() + "bounces: {soft: {limit: 2, within: 1d}}\n")
    assert journey_cli(["validate"], cwd=root).returncode == 0
    assert run(root, db, "bounces", "import", str(mail)).returncode == 0
    # soft bounces on the 2nd 13:00, 3rd 08:00, 5th and 12th: two within a day by the 3rd (the default: the 5th)
    barbara = suppressions(root, db)["barbara"]
    assert (barbara["at"][:19], barbara["detail"][:25]) == ("2026-03-03T08:00:00", "soft_bounces: 2 within 1d")
    project_yaml.write_text(project_yaml.read_text().replace("within: 1d", "within: soon"))
    bad = journey_cli(["validate"], cwd=root)
    assert bad.returncode == 1 and "within" in bad.stdout + bad.stderr
    refused = run(root, db, "bounces", "import", str(mail))
    assert refused.returncode == 1 and "bounces.soft" in refused.stderr and "Traceback" not in refused.stderr


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(data=st.binary(max_size=400) | st.sampled_from(sorted(FIXTURES.glob("mail/*.eml"))).map(
    lambda path: path.read_bytes()).flatmap(lambda raw: st.integers(0, len(raw)).map(lambda cut: raw[:cut])))
def test_any_bytes_are_a_report_or_not_never_an_exception(data):
    """Truncated DSNs and random bytes: the reader answers reports or None (unrecognised), never raises."""
    from runner.production.dsn import bounces_of

    found = bounces_of(data, datetime(2026, 3, 2, tzinfo=UTC))
    assert found is None or all("@" in bounce.recipient and bounce.at.tzinfo is not None for bounce in found)
