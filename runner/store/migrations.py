"""Versioned schema migrations (sqlite-utils' ``Migrations``).

Each migration is a function registered in order; applied names are recorded
in ``schema_migrations`` together with the change, in one transaction. Never
edit a released migration: add a new one (``m002_…``) so existing databases
move forward.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from runner.core.addresses import email_key


class JourneyMigrations(Migrations):
    """sqlite-utils migrations, recorded in the table the project documents."""

    migrations_table = "schema_migrations"


migrations = JourneyMigrations("journey-runner")

INITIAL_SCHEMA = [
    # contacts: wake_at is the next instant the tick must look at the contact;
    # rev counts outside changes (imports) so a save never hides them.
    """CREATE TABLE contacts (
        id TEXT PRIMARY KEY,
        email TEXT,
        timezone TEXT,
        attributes TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        wake_at TEXT,
        clock TEXT,
        memory TEXT NOT NULL DEFAULT '{}',
        enrollment_seq INTEGER NOT NULL DEFAULT 0,
        rev INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX contacts_wake_at ON contacts(wake_at) WHERE wake_at IS NOT NULL",
    "CREATE INDEX contacts_email ON contacts(email) WHERE email IS NOT NULL",
    """CREATE TABLE identities (
        anonymous_id TEXT PRIMARY KEY,
        contact_id TEXT NOT NULL REFERENCES contacts(id),
        linked_at TEXT NOT NULL
    )""",
    "CREATE INDEX identities_contact ON identities(contact_id)",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        contact_id TEXT,
        anonymous_id TEXT,
        name TEXT NOT NULL,
        at TEXT NOT NULL,
        properties TEXT NOT NULL DEFAULT '{}',
        message_id TEXT UNIQUE,
        CHECK (contact_id IS NOT NULL OR anonymous_id IS NOT NULL)
    )""",
    "CREATE INDEX events_contact ON events(contact_id, at) WHERE contact_id IS NOT NULL",
    "CREATE INDEX events_anonymous ON events(anonymous_id, at) WHERE anonymous_id IS NOT NULL",
    """CREATE TABLE deployments (
        journey_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        content TEXT NOT NULL,
        deployed_at TEXT NOT NULL,
        PRIMARY KEY (journey_id, version)
    )""",
    """CREATE TABLE enrollments (
        id TEXT PRIMARY KEY,
        contact_id TEXT NOT NULL REFERENCES contacts(id),
        journey_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        stage TEXT NOT NULL,
        stage_seq INTEGER NOT NULL DEFAULT 1,
        cursor TEXT,
        status TEXT NOT NULL CHECK (status IN ('active', 'idle', 'exited')),
        wait TEXT,
        due_at TEXT,
        entered_at TEXT NOT NULL,
        exited_at TEXT,
        exit_reason TEXT,
        goal_at TEXT,
        variant TEXT NOT NULL DEFAULT '{}',
        holdout INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX enrollments_contact ON enrollments(contact_id)",
    "CREATE INDEX enrollments_due_at ON enrollments(due_at) WHERE due_at IS NOT NULL",
    "CREATE INDEX enrollments_journey ON enrollments(journey_id, status, stage)",
    """CREATE TABLE sends (
        key TEXT PRIMARY KEY,
        contact_id TEXT NOT NULL,
        journey_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        step_id TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'email',
        scheduled_at TEXT NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('claimed', 'sent', 'failed', 'skipped', 'in_doubt')),
        claimed_at TEXT,
        sent_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        retryable INTEGER NOT NULL DEFAULT 0,
        transport_id TEXT,
        error TEXT,
        run_id TEXT
    )""",
    "CREATE INDEX sends_contact ON sends(contact_id, scheduled_at)",
    "CREATE INDEX sends_state ON sends(state)",
    """CREATE TABLE suppressions (
        target TEXT PRIMARY KEY,
        contact_id TEXT,
        email TEXT,
        reason TEXT NOT NULL,
        at TEXT NOT NULL,
        source TEXT NOT NULL,
        CHECK ((contact_id IS NULL) <> (email IS NULL))
    )""",
    "CREATE INDEX suppressions_contact ON suppressions(contact_id) WHERE contact_id IS NOT NULL",
    "CREATE INDEX suppressions_email ON suppressions(email) WHERE email IS NOT NULL",
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        counts TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'running'
    )""",
    "CREATE INDEX runs_started ON runs(started_at)",
    """CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )""",
]


@migrations()
def m001_initial(db: Database) -> None:
    """Every table the runner needs, with the indexes the hot queries use."""
    for statement in INITIAL_SCHEMA:
        db.execute(statement)


@migrations()
def m002_decisions(db: Database) -> None:
    """The decision journal: every engine decision of every tick, written with the
    contact's state in one transaction (``journey history`` reads it)."""
    db.execute("""CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        contact_id TEXT NOT NULL,
        at TEXT NOT NULL,
        journey_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        stage TEXT,
        step TEXT,
        action TEXT NOT NULL,
        reason TEXT NOT NULL,
        key TEXT,
        detail TEXT NOT NULL DEFAULT '{}',
        run_id TEXT
    )""")
    db.execute("CREATE INDEX decisions_contact ON decisions(contact_id, at, id)")


@migrations()
def m003_event_suppressions(db: Database) -> None:
    """Bounce and complaint events stored before they suppressed anyone in production
    (only ``unsubscribed`` events did) become suppressions at their event's time, the
    earliest per target, as the store now records them on arrival. Names are written
    out: a migration never follows later vocabulary changes."""
    db.execute("""INSERT INTO suppressions (target, contact_id, email, reason, at, source)
        SELECT 'contact:' || coalesce(contact_id, anonymous_id), coalesce(contact_id, anonymous_id), NULL,
               CASE name WHEN 'email_bounced' THEN 'bounced' ELSE 'complained' END, at, 'event:' || message_id
        FROM events WHERE name IN ('email_bounced', 'email_complained') ORDER BY at, id
        ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, at = excluded.at, source = excluded.source
        WHERE excluded.at < suppressions.at""")


# What a decision is counted under besides journey, version, UTC day, step and action: its
# reason where that names a bounded set (skips, exits, branch cases), a split's variant.
# Entry, wait and send reasons carry values (changed attributes, until instants) and are
# not kept apart.
_DECISION_KEY = """{row}.journey_id, {row}.version, substr({row}.at, 1, 10), coalesce({row}.step, ''), {row}.action,
    CASE {row}.action WHEN 'skip' THEN {row}.reason WHEN 'exit' THEN {row}.reason WHEN 'branch' THEN {row}.reason
        WHEN 'split' THEN coalesce(json_extract({row}.detail, '$.variant'), '') WHEN 'holdout' THEN 'holdout'
        ELSE '' END"""
# A ledger row is counted under its state (and a skipped send under its reason: late),
# on the UTC day the engine decided it.
_SEND_KEY = """{row}.journey_id, {row}.version, substr({row}.scheduled_at, 1, 10), {row}.step_id, {row}.kind,
    {row}.state, CASE {row}.state WHEN 'skipped' THEN coalesce({row}.error, '') ELSE '' END"""
ENGAGEMENT_EVENTS = ("email_opened", "email_clicked")
# An open or click is counted under the journey and step its properties name.
_ENGAGEMENT_KEY = """coalesce(json_extract({row}.properties, '$.journey'), ''),
    coalesce(json_extract({row}.properties, '$.step'), ''), {row}.name, substr({row}.at, 1, 10)"""
_DECISION_COLUMNS = "journey_id, version, day, step, action, detail"
_SEND_COLUMNS = "journey_id, version, day, step_id, kind, state, detail"


def _bump(table: str, columns: str, key: str, row: str, delta: int) -> str:
    """One upsert adding ``delta`` to the counter row of ``row`` (NEW or OLD)."""
    return (f"INSERT INTO {table} ({columns}, n) VALUES ({key.format(row=row)}, {delta}) "
            f"ON CONFLICT DO UPDATE SET n = n + ({delta});")


@migrations()
def m004_stats_counts(db: Database) -> None:
    """Counters behind ``journey stats``: decisions and ledger rows per journey, version,
    UTC day, step and outcome, kept by triggers in the same transaction as every write
    to the journal and the ledger, so they always equal ``count(*)`` over them (a test
    checks it) while a stats query reads a few thousand rows instead of millions.
    Existing journals and ledgers are counted once here."""
    db.execute("""CREATE TABLE decision_counts (
        journey_id TEXT NOT NULL, version INTEGER NOT NULL, day TEXT NOT NULL,
        step TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (journey_id, version, day, step, action, detail)
    ) WITHOUT ROWID""")
    db.execute("""CREATE TABLE send_counts (
        journey_id TEXT NOT NULL, version INTEGER NOT NULL, day TEXT NOT NULL,
        step_id TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL, detail TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (journey_id, version, day, step_id, kind, state, detail)
    ) WITHOUT ROWID""")
    decision = ("decision_counts", _DECISION_COLUMNS, _DECISION_KEY)
    send = ("send_counts", _SEND_COLUMNS, _SEND_KEY)
    for source, (table, columns, key) in (("decisions", decision), ("sends", send)):
        db.execute(f"CREATE TRIGGER {table}_insert AFTER INSERT ON {source} "
                   f"BEGIN {_bump(table, columns, key, 'NEW', 1)} END")
        db.execute(f"CREATE TRIGGER {table}_delete AFTER DELETE ON {source} "
                   f"BEGIN {_bump(table, columns, key, 'OLD', -1)} END")
        db.execute(f"CREATE TRIGGER {table}_update AFTER UPDATE ON {source} "
                   f"WHEN ({key.format(row='OLD')}) IS NOT ({key.format(row='NEW')}) "
                   f"BEGIN {_bump(table, columns, key, 'OLD', -1)} {_bump(table, columns, key, 'NEW', 1)} END")
        db.execute(f"INSERT INTO {table} ({columns}, n) SELECT {key.format(row=source)}, count(*) "
                   f"FROM {source} WHERE true GROUP BY {', '.join(f'{i + 1}' for i in range(columns.count(',') + 1))}")
    # the split outcomes of ``journey stats``: enrollments that reached a split, per
    # journey, version and variant, conversions read from the index alone
    db.execute("""CREATE INDEX enrollments_outcomes ON enrollments(journey_id, version, variant, holdout, goal_at, entered_at)
                  WHERE variant != '{}'""")
    # opens and clicks per journey and step (``email_opened``/``email_clicked`` carry both)
    db.execute("""CREATE TABLE engagement_counts (
        journey_id TEXT NOT NULL, step TEXT NOT NULL, name TEXT NOT NULL, day TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (journey_id, step, name, day)
    ) WITHOUT ROWID""")
    columns, key = "journey_id, step, name, day", _ENGAGEMENT_KEY
    for trigger, row, delta in (("insert", "NEW", 1), ("delete", "OLD", -1)):
        db.execute(f"CREATE TRIGGER engagement_counts_{trigger} AFTER {trigger.upper()} ON events "
                   f"WHEN {row}.name IN {ENGAGEMENT_EVENTS} "
                   f"BEGIN {_bump('engagement_counts', columns, key, row, delta)} END")
    db.execute(f"INSERT INTO engagement_counts ({columns}, n) SELECT {key.format(row='events')}, count(*) "
               f"FROM events WHERE name IN {ENGAGEMENT_EVENTS} GROUP BY 1, 2, 3, 4")


@migrations()
def m005_imported_values(db: Database) -> None:
    """What contacts imports last delivered per contact, so a re-import changes only
    what its source changed (``runner.store.sourcevalues``)."""
    db.execute("ALTER TABLE contacts ADD COLUMN imported TEXT NOT NULL DEFAULT '{}'")


@migrations()
def m006_send_retries(db: Database) -> None:
    """Transient failures are retried with backoff until an age, not a number of attempts:
    when the first failure was (``first_failed_at``) and when to try again (``retry_at``),
    both on the tick's clock."""
    db.execute("ALTER TABLE sends ADD COLUMN first_failed_at TEXT")
    db.execute("ALTER TABLE sends ADD COLUMN retry_at TEXT")
    db.execute("CREATE INDEX sends_retry ON sends(retry_at) WHERE state = 'failed' AND retryable = 1")


@migrations()
def m007_due_keyset(db: Database) -> None:
    """The due index on (wake_at, id): a tick pages through what is due by keyset,
    so it reads each due contact once however many are due."""
    db.execute("CREATE INDEX contacts_due ON contacts(wake_at, id) WHERE wake_at IS NOT NULL")
    db.execute("DROP INDEX IF EXISTS contacts_wake_at")



# An enrollment that reached a split is counted under its journey, version, UTC day of
# entry, variants and whether it reached the goal; one that reached none is not counted.
_SPLIT_KEY = """{row}.journey_id, {row}.version, substr({row}.entered_at, 1, 10), {row}.variant,
    {row}.goal_at IS NOT NULL"""
_SPLIT_COLUMNS = "journey_id, version, day, variant, converted"


def _bump_split(row: str, delta: int) -> str:
    return (f"INSERT INTO split_counts ({_SPLIT_COLUMNS}, n) SELECT {_SPLIT_KEY.format(row=row)}, {delta} "
            f"WHERE {row}.variant != '{{}}' ON CONFLICT DO UPDATE SET n = n + ({delta});")


@migrations()
def m008_split_counts(db: Database) -> None:
    """Split outcomes of ``journey stats`` as counters too (per journey, version, day of
    entry, variants, converted), kept by triggers on ``enrollments`` like those of m004:
    reading them costs the same with a thousand enrollments or a million. Replaces the
    covering index ``enrollments_outcomes``, which every stats call read end to end."""
    db.execute("""CREATE TABLE split_counts (
        journey_id TEXT NOT NULL, version INTEGER NOT NULL, day TEXT NOT NULL, variant TEXT NOT NULL,
        converted INTEGER NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (journey_id, version, day, variant, converted)
    ) WITHOUT ROWID""")
    db.execute(f"CREATE TRIGGER split_counts_insert AFTER INSERT ON enrollments BEGIN {_bump_split('NEW', 1)} END")
    db.execute(f"CREATE TRIGGER split_counts_delete AFTER DELETE ON enrollments BEGIN {_bump_split('OLD', -1)} END")
    db.execute(f"CREATE TRIGGER split_counts_update AFTER UPDATE ON enrollments "
               f"WHEN ({_SPLIT_KEY.format(row='OLD')}) IS NOT ({_SPLIT_KEY.format(row='NEW')}) "
               f"BEGIN {_bump_split('OLD', -1)} {_bump_split('NEW', 1)} END")
    db.execute(f"INSERT INTO split_counts ({_SPLIT_COLUMNS}, n) SELECT {_SPLIT_KEY.format(row='enrollments')}, "
               "count(*) FROM enrollments WHERE variant != '{}' GROUP BY 1, 2, 3, 4, 5")
    db.execute("DROP INDEX IF EXISTS enrollments_outcomes")


@migrations()
def m009_deployed_templates(db: Database) -> None:
    """The templates as ``journey deploy`` read them: production renders what was
    validated and deployed, not whatever the files hold (or link to) at send time."""
    db.execute("""CREATE TABLE deployed_templates (
        name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, content TEXT NOT NULL, deployed_at TEXT NOT NULL)""")


@migrations()
def m010_run_counts(db: Database) -> None:
    """Ticks per status (running, ok, stopped, failed), kept by triggers on ``runs`` like the
    counters of m004: ``/metrics`` reads a handful of rows however many ticks ran."""
    db.execute("CREATE TABLE run_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID")
    bump = "INSERT INTO run_counts (status, n) VALUES ({row}.status, {delta}) ON CONFLICT DO UPDATE SET n = n + ({delta});"
    db.execute(f"CREATE TRIGGER run_counts_insert AFTER INSERT ON runs BEGIN {bump.format(row='NEW', delta=1)} END")
    db.execute(f"CREATE TRIGGER run_counts_delete AFTER DELETE ON runs BEGIN {bump.format(row='OLD', delta=-1)} END")
    db.execute("CREATE TRIGGER run_counts_update AFTER UPDATE OF status ON runs WHEN OLD.status IS NOT NEW.status "
               f"BEGIN {bump.format(row='OLD', delta=-1)} {bump.format(row='NEW', delta=1)} END")
    db.execute("INSERT INTO run_counts (status, n) SELECT status, count(*) FROM runs GROUP BY status")


@migrations()
def m011_contact_leases(db: Database) -> None:
    """Per-contact leases: a worker claims a page of due contacts (holder and expiry), so
    several workers share the due work and a contact is advanced by one at a time; a
    killed worker's contacts are free again when their lease expires. The partial index
    holds only contacts in flight, so renewing or releasing a worker's leases costs what
    it has in hand, whatever is enrolled."""
    db.execute("ALTER TABLE contacts ADD COLUMN lease_holder TEXT")
    db.execute("ALTER TABLE contacts ADD COLUMN lease_until TEXT")
    db.execute("CREATE INDEX contacts_leased ON contacts(lease_holder) WHERE lease_holder IS NOT NULL")


@migrations()
def m012_topic_opt_outs(db: Database) -> None:
    """Unsubscribes become topic opt-outs. ``topic`` names what an unsubscribe stops
    ('*': every marketing topic); NULL is a suppression (bounce, complaint, manual),
    which stops every email. An unsubscribe recorded before topics existed becomes the
    opt-out of every marketing topic under a target of its own (``topic:*:contact:…``),
    so a later bounce of the same contact is kept beside it, not merged into it."""
    db.execute("ALTER TABLE suppressions ADD COLUMN topic TEXT")
    db.execute("UPDATE suppressions SET topic = '*', target = 'topic:*:' || target WHERE reason = 'unsubscribed'")


@migrations()
def m013_email_keys(db: Database) -> None:
    """Every stored address keyed by ``runner.core.addresses.email_key`` (Python's str.lower of
    the whole address). Imports over a row and the tick's saves used SQLite's lower(), which
    lowers ASCII only: ``ÖZGE@Örnek.com.tr`` stayed ``Özge@Örnek.com.tr`` and lookups by the
    address missed it. Only rows with a non-ASCII address (or a non-text one) can differ."""
    rows = db.conn.execute(
        """SELECT id, json_extract(attributes, '$.email'), json_type(attributes, '$.email'), email FROM contacts
           WHERE email IS NOT NULL AND (length(CAST(email AS BLOB)) <> length(email)
                                        OR json_type(attributes, '$.email') IS NOT 'text')""").fetchall()
    db.conn.executemany("UPDATE contacts SET email = ? WHERE id = ?", [
        (key, contact_id) for contact_id, address, kind, stored in rows
        if (key := email_key(address if kind == "text" else None)) != stored])


def apply_migrations(db: Database) -> None:
    """Bring ``db`` to the latest schema; safe when several processes open it at once.

    The pending check is repeated inside ``BEGIN IMMEDIATE`` so only one
    process applies a migration and the others see it done.
    """
    if not migrations.pending(db):
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        migrations.apply(db)
    except BaseException:
        db.rollback()
        raise
    db.conn.execute("COMMIT")


def pending_migrations(db: Database) -> list[str]:
    """Names of the migrations ``db`` still needs (reads only)."""
    return [migration.name for migration in migrations.pending(db)]


def schema_version(db: Database) -> list[str]:
    """Names of the applied migrations, oldest first."""
    return [migration.name for migration in migrations.applied(db)]
