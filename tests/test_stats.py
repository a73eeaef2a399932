"""`journey stats`: the statistics against published worked examples, the counters the
store keeps against the tables they count, the query plans, and the command itself."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from scipy.stats import chi2_contingency, fisher_exact
from test_tick_kit import journey_cli, tiny_project

from runner.core.engine import Decision
from runner.core.state import SendRecord
from runner.production.significance import FISHER, Z_TEST, compare, fisher_p, wald_interval, z_test
from runner.store import open_store
from runner.store.migrations import migrations
from runner.store.sqlite import (
    STATS_DECISIONS_SQL,
    STATS_ENGAGEMENT_SQL,
    STATS_SENDS_SQL,
    STATS_SPLITS_SQL,
    stats_query,
)

# ---------------------------------------------------------------- statistics: published worked examples


def test_wald_interval_of_the_aspirin_study():
    """Agresti, An Introduction to Categorical Data Analysis (2nd ed., 2007), §2.2.3: heart attacks
    189 of 11,034 on placebo, 104 of 11,037 on aspirin: difference 0.0077, 95% CI (0.005, 0.011)."""
    low, high = wald_interval(189, 11034, 104, 11037)
    assert round(189 / 11034 - 104 / 11037, 4) == 0.0077
    assert (round(low, 3), round(high, 3)) == (0.005, 0.011)


def test_fisher_exact_on_the_lady_tasting_tea():
    """Fisher, The Design of Experiments (1935), ch. II: 3 of 4 cups right each way; one-sided
    P = 17/70 = 0.243 (Agresti 2007, §2.6.2), two-sided P = 34/70 = 0.486."""
    assert fisher_p(3, 4, 1, 4) == pytest.approx(34 / 70)


def test_fisher_exact_on_the_dieting_example():
    """Wikipedia, "Fisher's exact test", example: men 1 of 10 dieting, women 9 of 12... the table
    [[1, 9], [11, 3]] has two-sided p = 0.002759."""
    assert fisher_p(1, 10, 11, 14) == pytest.approx(0.002759, abs=5e-7)


def test_fisher_exact_agrees_with_scipy_on_every_small_table_and_a_lopsided_big_one():
    tables = [(a, n, b, m) for n in range(1, 9) for m in range(1, 9) for a in range(n + 1) for b in range(m + 1)]
    tables += [(3, 100_000, 0, 100_000), (0, 250_000, 4, 750_000), (12, 40, 0, 3)]
    for a, n, b, m in tables:
        expected = fisher_exact([[a, n - a], [b, m - b]]).pvalue
        assert fisher_p(a, n, b, m) == pytest.approx(expected, rel=1e-6, abs=1e-12), (a, n, b, m)  # logs of huge factorials


def test_z_test_on_a_published_example_and_as_pearsons_chi_square():
    """usablestats.com (askstats 866): 118 of 3,303 against 80 of 3,303 gives z = 2.742 and a
    two-sided p of .00611; and z squared is Pearson's chi-square without continuity correction."""
    assert z_test(118, 3303, 80, 3303) == pytest.approx(0.00611, abs=5e-6)
    for a, n, b, m in ((118, 3303, 80, 3303), (189, 11034, 104, 11037), (40, 200, 55, 210)):
        chi2 = chi2_contingency([[a, n - a], [b, m - b]], correction=False)
        assert z_test(a, n, b, m) == pytest.approx(chi2.pvalue, rel=1e-9)


def test_comparison_chooses_the_test_and_says_it_in_a_sentence():
    big = compare("placebo", 189, 11034, "aspirin", 104, 11037)
    assert big.test == Z_TEST and big.enough
    assert big.sentence == "placebo converts 0.8 points better than aspirin, 95% CI 0.5–1.1"
    worse = compare("aspirin", 104, 11037, "placebo", 189, 11034)
    assert worse.sentence.startswith("aspirin converts 0.8 points worse than placebo")
    unclear = compare("A", 50, 1000, "B", 45, 1000)
    assert unclear.sentence.startswith("no clear difference yet: A converts +0.5 points against B, 95% CI -1.4–")
    small = compare("treated", 3, 4, "holdout", 1, 4)
    assert small.test == FISHER and not small.enough
    assert small.p_value == pytest.approx(34 / 70)
    assert small.sentence.startswith("not enough contacts yet to tell")
    assert compare("A", 0, 0, "B", 1, 5).sentence == "no contacts in A yet"
    assert compare("A", 0, 100, "B", 0, 100).p_value == 1.0  # nobody converted: no evidence either way


# ---------------------------------------------------------------- the counters equal what they count

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def grouped(db, sql):
    return sorted(tuple(row) for row in db.execute(sql))


def assert_counters_match(path):
    db = sqlite3.connect(path)
    assert grouped(db, "SELECT journey_id, version, day, step, action, detail, n FROM decision_counts WHERE n != 0") == grouped(db, """
        SELECT journey_id, version, substr(at, 1, 10), coalesce(step, ''), action,
               CASE WHEN action IN ('skip', 'exit', 'branch') THEN reason WHEN action = 'holdout' THEN 'holdout'
                    WHEN action = 'split' THEN json_extract(detail, '$.variant') ELSE '' END, count(*)
        FROM decisions GROUP BY 1, 2, 3, 4, 5, 6""")
    assert grouped(db, "SELECT journey_id, version, day, step_id, kind, state, detail, n FROM send_counts WHERE n != 0") == grouped(db, """
        SELECT journey_id, version, substr(scheduled_at, 1, 10), step_id, kind, state,
               CASE state WHEN 'skipped' THEN error ELSE '' END, count(*) FROM sends GROUP BY 1, 2, 3, 4, 5, 6, 7""")
    assert grouped(db, "SELECT journey_id, version, day, variant, converted, n FROM split_counts WHERE n != 0") == grouped(db, """
        SELECT journey_id, version, substr(entered_at, 1, 10), variant, goal_at IS NOT NULL, count(*)
        FROM enrollments WHERE variant != '{}' GROUP BY 1, 2, 3, 4, 5""")
    assert grouped(db, "SELECT journey_id, step, name, day, n FROM engagement_counts WHERE n != 0") == grouped(db, """
        SELECT json_extract(properties, '$.journey'), json_extract(properties, '$.step'), name, substr(at, 1, 10),
               count(*) FROM events WHERE name IN ('email_opened', 'email_clicked') GROUP BY 1, 2, 3, 4""")
    db.close()


def fill(store):
    """Journal, ledger and events rows through the store's own writes, with every state change."""
    from runner.store.base import EventRow

    records = [SendRecord(f"c{i}:j:1/1/welcome", f"c{i}", "j", 1, "welcome", AT) for i in range(6)]
    store.claim_sends(records, "run-1", resendable=False)
    store.confirm_sends([(records[0].key, "id-0"), (records[1].key, "id-1")])
    store.fail_send(records[2].key, "550 no such user", True)
    store.fail_send(records[3].key, "451 try later", False)
    store.claim_send(records[3], "run-2")  # the retry: failed -> claimed
    store.confirm_send(records[3].key, "id-3")
    store.in_doubt_sends(datetime(2030, 1, 1, tzinfo=UTC))  # claimed by a dead run -> in doubt
    store.resolve_in_doubt(records[4].key, "sent")
    store.skip_send(SendRecord("c9:j:1/1/welcome", "c9", "j", 1, "welcome", AT), "late", "run-2")
    # one batch of claims mixing new keys, a key twice, a retry and keys that never win
    store.fail_send(records[5].key, "451 busy", False)
    later = [SendRecord(f"c{i}:j:1/2/tips", f"c{i}", "j", 1, "tips", AT + timedelta(days=1)) for i in range(3)]
    assert store.claim_sends([later[0], records[5], later[1], later[0], records[0], later[2]], "run-3",
                             resendable=True) == [True, True, True, False, False, True]
    # confirmations of a claim, a retry and two sends already sent
    store.confirm_sends([(later[0].key, "id-7"), (records[5].key, "id-5"), (records[4].key, "id-4"),
                         (records[0].key, "id-0 again")])
    # journal rows through the tick's own save
    store.save_contact_states([], [
        Decision(AT, "c5", "j", 1, "s", "welcome", "send", "due", key="c5:j:1/1/welcome"),
        Decision(AT, "c5", "j", 1, "s", "split", "split", "variant B (bucket 80)", detail={"variant": "B"}),
        Decision(AT + timedelta(days=1), "c5", "j", 1, "s", None, "exit", "completed"),
        Decision(AT + timedelta(days=1), "c6", "j", 1, "s", "welcome", "skip", "suppressed: bounced")], "run-3")
    store.write_events([EventRow("c1", None, name, AT, {"journey": "j", "step": "welcome"}, f"m-{name}-{i}")
                        for i in range(3) for name in ("email_opened", "email_clicked")]
                       + [EventRow("c1", None, "app_opened", AT, {}, "m-app")], AT)
    store.conn.executemany(
        """INSERT INTO decisions (contact_id, at, journey_id, version, stage, step, action, reason, detail)
           VALUES (?, ?, 'j', 1, 's', ?, ?, ?, ?)""",
        [("c1", "2026-03-02T09:30:00.000000+00:00", None, "enter", "event signed_up", "{}"),
         ("c1", "2026-03-02T09:30:00.000000+00:00", "split", "split", "variant A (bucket 17)", '{"variant":"A"}'),
         ("c2", "2026-03-02T09:30:00.000000+00:00", "split", "split", "variant A (bucket 41)", '{"variant":"A"}'),
         ("c3", "2026-03-03T00:00:00.000000+00:00", "split", "holdout", "bucket 3 < holdout 10", '{"variant":"holdout"}'),
         ("c1", "2026-03-03T10:00:00.000000+00:00", "welcome", "skip", "suppressed: bounced", "{}"),
         ("c1", "2026-03-04T10:00:00.000000+00:00", None, "exit", "goal", "{}")])
    store.conn.execute("INSERT OR IGNORE INTO contacts (id, created_at, updated_at) VALUES ('c2', 'x', 'x'), ('c3', 'x', 'x')")
    store.conn.executemany(
        """INSERT INTO enrollments (id, contact_id, journey_id, version, stage, status, entered_at, variant, holdout)
           VALUES (?, ?, 'j', 1, 's', 'active', ?, ?, ?)""",
        [("c1:j:1", "c1", "2026-03-02T09:30:00.000000+00:00", "{}", 0),
         ("c2:j:1", "c2", "2026-03-02T09:30:00.000000+00:00", '{"split":"A"}', 0),
         ("c3:j:1", "c3", "2026-03-03T00:00:00.000000+00:00", '{"split":"holdout"}', 1)])
    store.conn.execute("""UPDATE enrollments SET variant = '{"split":"A"}' WHERE id = 'c1:j:1'""")  # reaches the split
    store.conn.execute("UPDATE enrollments SET goal_at = '2026-03-04T10:00:00.000000+00:00', status = 'exited' "
                       "WHERE id = 'c1:j:1'")  # converts
    store.conn.execute("UPDATE enrollments SET stage = 't' WHERE id = 'c2:j:1'")  # no counted change


def test_counters_equal_the_journal_ledger_and_events_after_every_kind_of_write(tmp_path):
    path = tmp_path / "journey.db"
    with open_store(path) as store:
        fill(store)
        assert_counters_match(path)
        store.conn.execute("DELETE FROM sends WHERE key = 'c0:j:1/1/welcome'")  # pruning keeps them equal too
        store.conn.execute("DELETE FROM decisions WHERE action = 'exit'")
        store.conn.execute("DELETE FROM events WHERE message_id = 'm-email_opened-0'")
        store.conn.execute("DELETE FROM enrollments WHERE id = 'c3:j:1'")
        assert_counters_match(path)
        rows = {(r["step_id"], r["state"], r["detail"]): r["n"] for r in store.send_counts("j", None, None)}
        assert rows == {("welcome", "sent", ""): 4, ("welcome", "failed", ""): 1, ("welcome", "skipped", "late"): 1,
                        ("tips", "sent", ""): 1, ("tips", "claimed", ""): 2}
        assert {r["action"]: r["n"] for r in store.decision_counts("j", "2026-03-03", None)} == {"holdout": 1, "skip": 2}


def test_the_migration_counts_a_journal_written_before_it(tmp_path):
    path = tmp_path / "journey.db"
    with open_store(path) as store:
        fill(store)
        for table in ("decision_counts", "send_counts", "engagement_counts", "split_counts"):  # as before m004
            store.conn.execute(f"DROP TABLE {table}")
            for change in ("insert", "update", "delete"):
                store.conn.execute(f"DROP TRIGGER IF EXISTS {table}_{change}")
        store.conn.execute("DELETE FROM schema_migrations WHERE name IN ('m004_stats_counts', 'm008_split_counts')")
    with open_store(path) as store:  # migrates again: counts what is there
        assert {"m004_stats_counts", "m008_split_counts"} <= {m.name for m in migrations.applied(store.db)}
        # the migrated store goes on counting its own writes and everyone else's once
        more = [SendRecord(f"c{i}:j:1/3/last", f"c{i}", "j", 1, "last", AT) for i in range(2)]
        store.claim_sends(more, "run-4", resendable=True)
        store.confirm_sends([(more[0].key, "id-8")])
        store.save_contact_states([], [Decision(AT, "c7", "j", 1, "s", "last", "send", "due", key=more[0].key)])
        store.conn.execute("UPDATE sends SET state = 'failed' WHERE key = ?", (more[1].key,))
        assert store.decision_counts("j", None, None)
        assert {(tuple(r["variant"].items()), r["n"], r["converted"]) for r in store.split_outcomes("j", None, None)} == {
            ((("split", "A"),), 2, 1), ((("split", "holdout"),), 1, 0)}
    assert_counters_match(path)


def test_window_and_journey_filters(tmp_path):
    with open_store(tmp_path / "journey.db") as store:
        fill(store)
        def count(since, until, action):
            return sum(r["n"] for r in store.decision_counts("j", since, until) if r["action"] == action)
        assert count(None, None, "split") == 3 and count(None, None, "holdout") == 1
        assert count("2026-03-03", None, "holdout") == 1 and count(None, "2026-03-03", "holdout") == 0
        assert count("2026-03-02", "2026-03-03", "split") == 3
        assert store.decision_counts("other", None, None) == []
        opens = {r["name"]: r["n"] for r in store.engagement_counts("j", None, None)}
        assert opens == {"email_opened": 3, "email_clicked": 3}


# ---------------------------------------------------------------- query plans

BIG_TABLES = ("decisions", "sends", "enrollments", "events", "contacts")  # grow with contacts and time


@pytest.mark.parametrize("template", [STATS_DECISIONS_SQL, STATS_SENDS_SQL, STATS_SPLITS_SQL, STATS_ENGAGEMENT_SQL],
                         ids=["decisions", "sends", "splits", "engagement"])
@pytest.mark.parametrize("journey", [None, "onboarding"], ids=["all-journeys", "one-journey"])
def test_no_stats_query_scans_a_big_table(tmp_path, template, journey):
    with open_store(tmp_path / "journey.db") as store:
        sql, params = stats_query(template, journey, "2026-03-01", "2026-04-01")
        plan = [row[3] for row in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    for line in plan:
        for table in BIG_TABLES:
            if line.startswith(f"SCAN {table}"):
                assert "USING COVERING INDEX" in line, plan  # an index alone, never the table's rows
    if journey is not None:
        assert any(line.startswith("SEARCH") for line in plan), plan  # one journey: a range of an index


# ---------------------------------------------------------------- the command

TRIAL = """\
id: trial
version: 1
name: Trial
stages:
  - id: main
    entry: {event: signed_up}
    steps:
      - id: pick
        split:
          variants:
            - name: short
              weight: 45
              steps:
                - id: short_mail
                  email: {template: hello, subject: "Hi"}
            - name: long
              weight: 45
              steps:
                - id: long_mail
                  email: {template: tips, subject: "Tips"}
          holdout: 10
      - wait: 20d
goal: {event: purchased, within: 14d}
"""


def build_trial(root, contacts: int = 400):
    """The trial project deployed, ``contacts`` sign-ups split short/long/holdout by the engine,
    every third buying 2 days later, and two real production ticks."""
    from test_tick_kit import add_signups

    from runner.store.base import EventRow

    root = tiny_project(root, {"trial": TRIAL})
    assert journey_cli(["deploy"], cwd=root).returncode == 0
    with open_store(root / "journey.db") as store:
        ids = add_signups(store, contacts, AT)
        store.write_events([EventRow(cid, None, "purchased", datetime(2026, 3, 4, tzinfo=UTC), {}, f"{cid}-buy")
                            for cid in ids[::3]], AT)
    for now in ("2026-03-02T10:00:00Z", "2026-03-05T00:00:00Z"):
        done = journey_cli(["run", "--now", now, "--transport", "outbox:outbox", "-q"], cwd=root)
        assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    return build_trial(tmp_path_factory.mktemp("trial"))


def test_stats_compares_the_variants_and_the_holdout(trial):
    done = journey_cli(["stats", "trial", "--format", "json"], cwd=trial)
    assert done.returncode == 0, done.stderr
    [version] = json.loads(done.stdout)["journeys"]
    assert version["entered"] == 400 and version["goals"] == len(range(0, 400, 3))
    variants = {v["name"]: v for v in version["variants"]}
    assert sum(v["contacts"] for v in variants.values()) == 400 and variants["holdout"]["contacts"] > 10
    assert sum(v["conversions"] for v in variants.values()) == version["goals"]
    [pair] = version["comparisons"]
    expected = compare("short", variants["short"]["conversions"], variants["short"]["contacts"],
                       "long", variants["long"]["conversions"], variants["long"]["contacts"])
    assert pair == expected.as_dict() and pair["test"] == Z_TEST
    lift = version["holdout"]
    assert (lift["a"], lift["b"]) == ("treated", "holdout")
    assert lift["contacts_a"] == variants["short"]["contacts"] + variants["long"]["contacts"]
    steps = {step["id"]: step for step in version["steps"]}
    assert steps["short_mail"]["sent"] == variants["short"]["contacts"]
    assert steps["pick"]["outcomes"] == {name: v["contacts"] for name, v in variants.items()}

    table = journey_cli(["stats", "--format", "table"], cwd=trial)
    assert table.returncode == 0, table.stderr
    assert "trial v1 — Trial" in table.stdout and "holdout lift: treated " in table.stdout
    assert f"entered 400   goal (purchased within 14d): {version['goals']} (33.5%)" in table.stdout
    markdown = journey_cli(["stats", "--format", "markdown"], cwd=trial).stdout
    assert "## trial v1 — Trial" in markdown and "| pick | split | 400 | 100.0% |" in markdown
    rows = journey_cli(["stats", "--format", "csv"], cwd=trial).stdout.splitlines()
    assert rows[0] == "journey,version,section,item,measure,detail,value"
    assert "trial,1,journey,,entered,,400" in rows


def test_stats_window_and_mistakes(trial):
    later = journey_cli(["stats", "--since", "2026-03-03", "--format", "json"], cwd=trial)
    [version] = json.loads(later.stdout)["journeys"]
    assert version["entered"] == 0 and version["goals"] == len(range(0, 400, 3))  # bought on the 4th
    assert version["variants"] and all(v["contacts"] == 0 for v in version["variants"])  # entered on the 2nd
    for args, code, message in (
        (["stats", "nope"], 1, "no deployed journey 'nope' (deployed: trial)"),
        (["stats", "trial", "--version", "2"], 1, "no deployed version 2 of trial (deployed: v1)"),
        (["stats", "--since", "March"], 2, "'March' does not match the format '%Y-%m-%d'"),
        (["stats", "--since", "2026-03-05", "--until", "2026-03-05"], 1, "--until must be a later day"),
        (["stats", "--db", "missing.db"], 1, "no database at missing.db"),
    ):
        done = journey_cli(args, cwd=trial)
        assert done.returncode == code and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_stats_names_the_journey_by_id_or_by_its_file(trial):
    by_id = journey_cli(["stats", "trial", "--format", "json"], cwd=trial)
    by_file = journey_cli(["stats", "journeys/trial.yaml", "--format", "json"], cwd=trial)
    assert by_id.returncode == by_file.returncode == 0, by_file.stderr
    assert by_id.stdout == by_file.stdout


def test_production_ticks_keep_the_counters_equal_to_the_journal_and_ledger(trial):
    """Real ticks (the trial's two, 400 contacts through a split): the busy tick's batched
    journal rows, claims and confirmations leave every counter equal to ``count(*)``."""
    path = trial / "journey.db"
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM sends WHERE state = 'sent'").fetchone()[0] > 300
    db.close()
    assert_counters_match(path)
