"""The SQL of the PostgreSQL store that is longer than a line (``runner.store.postgres``).

Each statement says the same as its SQLite twin in ``runner.store.sqlite``;
what differs is PostgreSQL's spelling: ``= ANY(%b)`` for ``IN (...)`` lists,
``least`` for SQLite's two-argument ``min``, ``IS DISTINCT FROM`` for ``IS NOT``,
``journey_merge_patch`` for ``json_patch``, typed parameters where a NULL test
needs one, ``NULLS FIRST``/``LAST`` where SQLite sorts NULL as the smallest value.

Lists (``ANY(%b)``, the ``unnest`` columns of a batch) go as binary parameters
(``%b``): psycopg's text array dumper quotes each element through a regular
expression, about three times the client CPU of the binary one (docs/architecture.md,
cache inventory); the values PostgreSQL receives are the same.
"""

from __future__ import annotations

from runner.store.rows import CLAIM_CONFLICT

DUE_FIRST_PAGE = ("SELECT wake_at, id FROM contacts WHERE wake_at <= %s "
                  "ORDER BY wake_at, id LIMIT %s")
DUE_NEXT_PAGE = ("SELECT wake_at, id FROM contacts WHERE wake_at <= %s AND (wake_at, id) > (%s::timestamptz, %s) "
                 "ORDER BY wake_at, id LIMIT %s")
# the due keyset page less what another holder has leased (unexpired), leased to the caller;
# SKIP LOCKED: two workers claiming at once take different rows instead of queueing.
# Expiry is the database server's clock, the one clock every host shares.
CLAIM_DUE = """
WITH picked AS (
    SELECT id FROM contacts WHERE wake_at <= %(now)s {keyset}
      AND (lease_holder IS NULL OR lease_holder = %(holder)s OR lease_until <= now())
    ORDER BY wake_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
UPDATE contacts SET lease_holder = %(holder)s, lease_until = now() + %(ttl)s
FROM picked WHERE contacts.id = picked.id
RETURNING contacts.wake_at, contacts.id
"""

# events only ever move wake_at earlier; the conflicting row is locked even when the
# WHERE skips the update, so a concurrent save of that contact waits or is waited for
# Contacts created, or woken at their earliest event of a batch: of the staging table, or of
# the events just copied in (the rows above the highest id before; see EVENTS_STORED).
_CREATE_OR_WAKE_CONTACTS = """
INSERT INTO contacts (id, created_at, updated_at, wake_at)
SELECT contact_id, %(now)s, %(now)s, min(at) FROM {source} WHERE contact_id IS NOT NULL
GROUP BY contact_id ORDER BY contact_id
ON CONFLICT (id) DO UPDATE SET wake_at = excluded.wake_at
WHERE contacts.wake_at IS NULL OR excluded.wake_at < contacts.wake_at
"""
CREATE_OR_WAKE_STAGED = _CREATE_OR_WAKE_CONTACTS.format(source="journey_events_in")
CREATE_OR_WAKE_COPIED = _CREATE_OR_WAKE_CONTACTS.format(
    source="(SELECT contact_id, at FROM events WHERE id > %(since)s) AS copied")
LOCK_LINKED_CONTACT = """
SELECT id FROM contacts WHERE id = (SELECT contact_id FROM identities WHERE anonymous_id = %s) FOR UPDATE
"""
WAKE_CONTACT = "UPDATE contacts SET wake_at = %s WHERE id = %s AND (wake_at IS NULL OR wake_at > %s)"

UPSERT_CONTACT = """
INSERT INTO contacts (id, email, timezone, attributes, created_at, updated_at, wake_at, rev, imported)
VALUES (%(id)s, %(email)s, %(timezone)s, %(attributes)s::jsonb, %(now)s, %(now)s, %(wake)s, 1,
        coalesce(%(imported)s::jsonb, '{}'))
ON CONFLICT (id) DO UPDATE SET
    attributes = journey_merge_patch(contacts.attributes, excluded.attributes),
    imported = coalesce(%(imported)s::jsonb, contacts.imported),
    email = CASE WHEN excluded.attributes ? 'email' THEN excluded.email ELSE contacts.email END,
    timezone = coalesce(excluded.timezone, contacts.timezone),
    updated_at = excluded.updated_at,
    wake_at = least(coalesce(contacts.wake_at, excluded.wake_at), excluded.wake_at),
    rev = contacts.rev + 1
WHERE journey_merge_patch(contacts.attributes, excluded.attributes) IS DISTINCT FROM contacts.attributes
   OR coalesce(excluded.timezone, contacts.timezone) IS DISTINCT FROM contacts.timezone
RETURNING id
"""

INSERT_CONTACT = """
INSERT INTO contacts (id, email, timezone, attributes, created_at, updated_at, wake_at, clock, memory, enrollment_seq)
VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::json, %s)
"""
INSERT_IDENTITY = ("INSERT INTO identities (anonymous_id, contact_id, linked_at) VALUES (%s, %s, %s) "
                   "ON CONFLICT DO NOTHING")
UPDATE_CONTACT = """
UPDATE contacts SET
    attributes = journey_merge_patch(attributes, %(patch)s::jsonb),
    email = CASE WHEN %(patch)s::jsonb ? 'email' THEN %(email)s ELSE email END,
    timezone = %(timezone)s, clock = %(clock)s, memory = %(memory)s::json,
    enrollment_seq = %(seq)s, wake_at = %(wake)s, updated_at = %(now)s,
    lease_holder = CASE WHEN lease_holder = %(holder)s THEN NULL ELSE lease_holder END,
    lease_until = CASE WHEN lease_holder = %(holder)s THEN NULL ELSE lease_until END
WHERE id = %(id)s
"""

# UPDATE_CONTACT for a batch in one statement (one round trip, one plan); an empty patch
# (the engine changed no attribute, the usual case) skips the merge function. Ids distinct.
# The email column changes only with a patch that names the address; its key comes computed
# (runner.core.addresses: no SQL lower(), which follows the database's locale).
# A contact's lease is released with its save when it is still the one the saving store took
# (``holder``; NULL: none): one row version a send fewer than a release of its own.
UPDATE_CONTACTS = """
UPDATE contacts SET
    attributes = CASE WHEN u.patch = '{}' THEN attributes ELSE journey_merge_patch(attributes, u.patch::jsonb) END,
    email = CASE WHEN u.patch <> '{}' AND u.patch::jsonb ? 'email' THEN u.email ELSE contacts.email END,
    timezone = u.timezone, clock = u.clock, memory = u.memory::json,
    enrollment_seq = u.seq, wake_at = u.wake, updated_at = %(now)s,
    lease_holder = CASE WHEN contacts.lease_holder = u.holder THEN NULL ELSE contacts.lease_holder END,
    lease_until = CASE WHEN contacts.lease_holder = u.holder THEN NULL ELSE contacts.lease_until END
FROM unnest(%(ids)b::text[], %(patches)b::text[], %(emails)b::text[], %(timezones)b::text[],
            %(clocks)b::timestamptz[], %(memories)b::text[], %(seqs)b::integer[], %(wakes)b::timestamptz[],
            %(holders)b::text[])
     AS u(id, patch, email, timezone, clock, memory, seq, wake, holder)
WHERE contacts.id = u.id
"""

# A page's leases released by the contacts' primary key. IS NOT DISTINCT FROM is no index
# condition: the planner cannot take contacts_leased instead, whose entries for a holder
# include every row version it leased since the last vacuum (a busy tick's whole past).
RELEASE_CONTACTS = """
UPDATE contacts SET lease_holder = NULL, lease_until = NULL
WHERE id = ANY(%(ids)b) AND lease_holder IS NOT DISTINCT FROM %(holder)s
"""

# A batch load's rows, by the contacts' index on each table
LOAD_CONTACTS = ("SELECT id, attributes, timezone, clock, memory, enrollment_seq, rev, email "
                 "FROM contacts WHERE id = ANY(%b)")
LOAD_IDENTITIES = ("SELECT contact_id, anonymous_id FROM identities WHERE contact_id = ANY(%b) "
                   "ORDER BY linked_at, anonymous_id")
LOAD_EVENTS = """
SELECT name, at, properties, message_id, contact_id, anonymous_id, id FROM events
WHERE contact_id = ANY(%b) OR anonymous_id = ANY(%b) ORDER BY at, id
"""
LOAD_ENROLLMENTS = "SELECT * FROM enrollments WHERE contact_id = ANY(%b) ORDER BY entered_at, id"
LOAD_SENDS = """
SELECT key, contact_id, journey_id, version, step_id, scheduled_at, kind FROM sends
WHERE contact_id = ANY(%b) AND state = ANY(%b) ORDER BY scheduled_at, key
"""

# Only rows above the id seen at load: a range of the events' id, empty unless something arrived.
FIRST_EVENT_SINCE = """
WITH ids(value) AS (SELECT %(id)s::text UNION ALL SELECT anonymous_id FROM identities WHERE contact_id = %(id)s)
SELECT min(at) FROM events
WHERE id > %(after)s AND (contact_id IN (SELECT value FROM ids) OR anonymous_id IN (SELECT value FROM ids))
"""

ENROLLMENT_COLUMNS = ("id", "contact_id", "journey_id", "version", "stage", "stage_seq", "cursor", "status",
                      "wait", "due_at", "entered_at", "exited_at", "exit_reason", "goal_at", "variant", "holdout")
_ENROLLMENT_TYPES = ("text", "text", "text", "integer", "text", "integer", "text", "text", "text", "timestamptz",
                     "timestamptz", "timestamptz", "text", "timestamptz", "text", "integer")
# one statement for a whole batch (ids are unique in it): split_counts' triggers run once
UPSERT_ENROLLMENTS = f"""
INSERT INTO enrollments ({", ".join(ENROLLMENT_COLUMNS)})
SELECT * FROM unnest({", ".join(f"%b::{kind}[]" for kind in _ENROLLMENT_TYPES)})
ON CONFLICT (id) DO UPDATE SET
    version = excluded.version, stage = excluded.stage, stage_seq = excluded.stage_seq,
    cursor = excluded.cursor, status = excluded.status, wait = excluded.wait,
    due_at = excluded.due_at, exited_at = excluded.exited_at,
    exit_reason = excluded.exit_reason, goal_at = excluded.goal_at,
    variant = excluded.variant, holdout = excluded.holdout
"""

DECISION_COLUMNS = ("contact_id", "at", "journey_id", "version", "stage", "step", "action", "reason", "key",
                    "detail", "run_id")
# one statement for a whole batch: the journal's counters are kept per statement
INSERT_DECISIONS = f"""
INSERT INTO decisions ({", ".join(DECISION_COLUMNS)})
SELECT contact_id, at, journey_id, version, stage, step, action, reason, key, detail::json, run_id
FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::integer[], %b::text[], %b::text[], %b::text[],
            %b::text[], %b::text[], %b::text[], %b::text[])
     WITH ORDINALITY AS d({", ".join(DECISION_COLUMNS)}, ord)
ORDER BY ord
"""

# a suppress step's stop of every marketing topic (runner.store.rows.step_stop_rows)
INSERT_STEP_STOP = """INSERT INTO suppressions (target, contact_id, reason, at, source, topic)
VALUES (%s, %s, %s, %s::timestamptz, %s, %s) ON CONFLICT (target) DO NOTHING"""

CONTACT_HISTORY = """
SELECT d.at, d.contact_id, d.journey_id, d.version, d.stage, d.step, d.action, d.reason, d.key,
       d.detail, d.run_id, s.state AS send_state, s.error AS send_error, s.retryable AS send_retryable
FROM decisions AS d
LEFT JOIN sends AS s ON s.key = d.key AND d.action IN ('send', 'webhook')
WHERE d.contact_id = %(contact)s AND (%(journey)s::text IS NULL OR d.journey_id = %(journey)s)
ORDER BY d.at, d.id
"""

# a batch of claims in one statement: one round trip, and the ledger's counters (a
# statement-level trigger) kept once per batch instead of once per claim; the keys must
# be distinct (an upsert may not touch a row twice in one statement)
CLAIM_SENDS = """
INSERT INTO sends (key, contact_id, journey_id, version, step_id, kind, scheduled_at, state, claimed_at,
                   attempts, run_id, retryable)
SELECT key, contact_id, journey_id, version, step_id, kind, scheduled_at, 'claimed', %(claimed_at)s, 1,
       %(run_id)s, %(retryable)s
FROM unnest(%(keys)b::text[], %(contacts)b::text[], %(journeys)b::text[], %(versions)b::integer[],
            %(steps)b::text[], %(kinds)b::text[], %(scheduled)b::timestamptz[])
     WITH ORDINALITY AS c(key, contact_id, journey_id, version, step_id, kind, scheduled_at, ord)
ORDER BY ord
""" + CLAIM_CONFLICT

# confirmations of a batch in one statement (one trigger run for the counters); keys distinct
CONFIRM_SENDS = """
UPDATE sends SET state = 'sent', sent_at = %(now)s, transport_id = d.transport_id, error = NULL
FROM unnest(%(keys)b::text[], %(ids)b::text[]) AS d(key, transport_id)
WHERE sends.key = d.key
"""

SKIP_SEND = """
INSERT INTO sends (key, contact_id, journey_id, version, step_id, kind, scheduled_at, state, error, run_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, 'skipped', %s, %s)
ON CONFLICT DO NOTHING
"""

# a run is alive while unfinished and its holder holds an unexpired lease (not known gone)
RUN_ALIVE = """EXISTS (
    SELECT 1 FROM runs JOIN leases ON leases.holder = runs.holder
    WHERE runs.id = sends.run_id AND runs.finished_at IS NULL
      AND leases.expires_at > %(now)s AND leases.holder <> ALL(%(gone)s::text[]))"""
IN_DOUBT_LIST = f"""
SELECT * FROM sends WHERE state = 'in_doubt' OR (state = 'claimed' AND retryable = 0 AND NOT {RUN_ALIVE})
ORDER BY claimed_at, key
"""
IN_DOUBT_MARK = f"""
UPDATE sends SET
    state = CASE retryable WHEN 1 THEN 'failed' ELSE 'in_doubt' END,
    error = CASE retryable WHEN 1 THEN %(resendable)s ELSE error END
WHERE state = 'claimed' AND NOT {RUN_ALIVE}
"""

REQUEUE_RANGE = """
SELECT key FROM sends WHERE state = 'failed'
AND (%(since)s::timestamptz IS NULL OR scheduled_at >= %(since)s)
AND (%(until)s::timestamptz IS NULL OR scheduled_at < %(until)s)
"""
REQUEUE = """
UPDATE sends SET retryable = 1, retry_at = NULL, first_failed_at = NULL,
    error = 'requeued: ' || coalesce(error, '') WHERE key = %s
"""

ACQUIRE_LEASE = """
INSERT INTO leases (name, holder, expires_at) VALUES (%s, %s, %s)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.expires_at <= %s OR leases.holder = excluded.holder
"""

UPSERT_SUPPRESSION = """
INSERT INTO suppressions (target, contact_id, email, reason, at, source, topic) VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, at = excluded.at, source = excluded.source
"""
# the earliest suppression of a target is kept, as the engine keeps it
EVENT_SUPPRESSION = """
INSERT INTO suppressions (target, contact_id, email, reason, at, source, topic) VALUES (%s, %s, NULL, %s, %s, %s, %s)
ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, at = excluded.at, source = excluded.source
WHERE excluded.at < suppressions.at
"""

STATUS_ENROLLMENTS = """
SELECT journey_id, version, stage, cursor AS step, status, count(*) AS contacts,
       sum((due_at <= %(now)s)::integer) AS due
FROM enrollments WHERE status <> 'exited'
GROUP BY journey_id, version, stage, cursor, status
ORDER BY journey_id, version, stage, cursor NULLS FIRST, status
"""
STATUS_EXITS = """
SELECT journey_id, exit_reason, count(*) AS contacts FROM enrollments
WHERE status = 'exited' GROUP BY journey_id, exit_reason ORDER BY journey_id, exit_reason NULLS FIRST
"""
STATUS_FAILURES = """
SELECT key, contact_id, journey_id, step_id, error, attempts, retryable, retry_at, first_failed_at
FROM sends WHERE state = 'failed' ORDER BY claimed_at DESC NULLS LAST LIMIT 20
"""

# Events: the highest id so far and which of a batch's message ids are stored (one round trip).
# A batch of new events is copied straight into the table; the rows above that id are then its
# rows (ingestion is serialised). Otherwise the batch goes through a temporary table filled by
# COPY, and one INSERT … ON CONFLICT DO NOTHING keeps the new ones in input order (ids follow
# it, as SQLite's rowids do).
EVENTS_STORED = """
SELECT (SELECT coalesce(max(id), 0) FROM events),
       array(SELECT message_id FROM events WHERE message_id = ANY(%b::text[]))
"""  # %b: the ids go as a binary array, half the client CPU of text (0.55 -> 0.26 us an id)
# COPY in binary: instants and JSON go as psycopg dumps them (JSON by to_json, pgconnect), no text
# to format and parse again (client CPU a row 4.6 -> 3.1 us).
EVENTS_COPY = "COPY events (contact_id, anonymous_id, name, at, properties, message_id) FROM STDIN (FORMAT BINARY)"
EVENTS_COPY_TYPES = ["text", "text", "text", "timestamptz", "jsonb", "text"]
STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS journey_events_in (
    ord BIGINT, contact_id TEXT, anonymous_id TEXT, name TEXT, at TIMESTAMPTZ, properties JSONB, message_id TEXT
) ON COMMIT DELETE ROWS
"""
STAGE_COPY = ("COPY journey_events_in (ord, contact_id, anonymous_id, name, at, properties, message_id) "
              "FROM STDIN (FORMAT BINARY)")
STAGE_COPY_TYPES = ["int8", *EVENTS_COPY_TYPES]
STAGE_INSERT = """
INSERT INTO events (contact_id, anonymous_id, name, at, properties, message_id)
SELECT contact_id, anonymous_id, name, at, properties, message_id FROM journey_events_in ORDER BY ord
ON CONFLICT DO NOTHING
"""

# ``/metrics``: counter tables read whole, the due backlog as a range of the (wake_at, id) index,
# in-doubt sends through sends(state).
METRICS_RUNS = "SELECT status, n FROM run_counts WHERE n <> 0"
METRICS_DECISIONS = "SELECT action, sum(n)::bigint FROM decision_counts GROUP BY action HAVING sum(n) <> 0"
METRICS_SENDS = "SELECT state, sum(n)::bigint FROM send_counts GROUP BY state HAVING sum(n) <> 0"
METRICS_DUE = "SELECT count(*), min(wake_at) FROM contacts WHERE wake_at <= %s"
METRICS_IN_DOUBT = "SELECT count(*) FROM sends WHERE state = 'in_doubt'"

# ``journey stats``: sums over the counters the triggers keep (runner.store.pgmigrations), in
# the order of their groups, as SQLite's GROUP BY hands them out (a hash aggregate would not:
# the output lists them in the order read).
STATS_DECISIONS = """
SELECT journey_id, version, step, action, detail, sum(n)::bigint AS n FROM decision_counts
WHERE true {journey} AND day >= %(since)s AND day < %(until)s
GROUP BY journey_id, version, step, action, detail HAVING sum(n) <> 0
ORDER BY journey_id, version, step, action, detail
"""
STATS_SENDS = """
SELECT journey_id, version, step_id, kind, state, detail, sum(n)::bigint AS n FROM send_counts
WHERE true {journey} AND day >= %(since)s AND day < %(until)s
GROUP BY journey_id, version, step_id, kind, state, detail HAVING sum(n) <> 0
ORDER BY journey_id, version, step_id, kind, state, detail
"""
STATS_SPLITS = """
SELECT journey_id, version, variant, sum(n)::bigint AS n,
       sum(CASE WHEN converted = 1 THEN n ELSE 0 END)::bigint AS converted
FROM split_counts WHERE true {journey} AND day >= %(since)s AND day < %(until)s
GROUP BY journey_id, version, variant HAVING sum(n) <> 0
ORDER BY journey_id, version, variant
"""
STATS_ENGAGEMENT = """
SELECT journey_id, step, name, sum(n)::bigint AS n FROM engagement_counts
WHERE journey_id <> '' {journey} AND day >= %(since)s AND day < %(until)s
GROUP BY journey_id, step, name HAVING sum(n) <> 0
ORDER BY journey_id, step, name
"""


def stats_query(template: str, journey_id: str | None, since: str | None, until: str | None) -> tuple[str, dict]:
    """A stats query and its parameters (as ``runner.store.sqlite.stats_query``)."""
    sql = template.replace("{journey}", "AND journey_id = %(journey)s" if journey_id is not None else "")
    return sql, {"journey": journey_id, "since": since or "0000-00-00", "until": until or "9999-99-99"}
