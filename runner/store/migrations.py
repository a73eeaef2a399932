"""Versioned schema migrations (sqlite-utils' ``Migrations``).

Each migration is a function registered in order; applied names are recorded
in ``schema_migrations`` together with the change, in one transaction. Never
edit a released migration: add a new one (``m002_…``) so existing databases
move forward.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations


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


def schema_version(db: Database) -> list[str]:
    """Names of the applied migrations, oldest first."""
    return [migration.name for migration in migrations.applied(db)]
