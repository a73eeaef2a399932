"""``journey run``, ``journey status``, ``journey resolve``: production ticks and their ledger.

Thin shells over ``runner.production.tick`` and ``runner.production.worker``; exit codes: 0 ok
(also when another run holds the lease), 1 problems, 2 usage error.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import click

from runner.cli.common import (
    DB_OPTION,
    JourneyRef,
    in_calendar,
    journey_id,
    open_db,
    project_root,
    say,
    what_it_stops,
)
from runner.core.problems import JourneyError, UsageError, shown
from runner.core.state import ContactState
from runner.core.vocabulary import step_stop_reason
from runner.store.base import Store

# ---------------------------------------------------------------- shared by the production commands


def load_project_settings(root: Path) -> Any:
    """project.yaml as a Project (journeys come from the database, so only this file is read)."""
    from runner.production.deploy import load_project_file

    return load_project_file(root)


def parse_now(text: str | None, option: str = "--now") -> datetime:
    """``--now`` (or the ``option`` named): ISO 8601 with an offset, 1900-2199; the clock when not given."""
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO 8601 date-time (e.g. 2026-03-02T09:00:00Z)") from None
    if value.tzinfo is None:
        raise UsageError(f"{option} {text!r} needs a UTC offset (Z or +03:00)")
    return in_calendar(value.astimezone(UTC), option, text)


# ---------------------------------------------------------------- run


@click.command("run")
@click.option("--every", metavar="DURATION", help="Keep running: one tick every DURATION (60s, 5m); "
              "SIGTERM/SIGINT finish the current batch and exit 0.")
@click.option("--dry-run", is_flag=True, help="Decide and render, but send and record nothing "
              "(the database is left byte-identical); prints what would happen.")
@click.option("--now", "now_text", metavar="ISO", help="Tick at this instant instead of the clock "
              "(catch-up, tests).")
@click.option("--limit", type=click.IntRange(min=1), help="At most N due contacts per tick.")
@click.option("--transport", "transport_url", metavar="URL", help="smtp://…, smtps://…, outbox:DIR, console "
              "(default: JOURNEY_TRANSPORT, then project.yaml 'transport', then outbox:outbox).")
@click.option("--wait", "lease_wait", type=float, default=5.0, show_default=True,
              help="Seconds to wait for another run's lease before exiting 0.")
@click.option("--fsync/--no-fsync", "fsync", default=None,
              help="fsync every send claim before the transport call, so even a power loss cannot "
              "cause a resend (default: JOURNEY_FSYNC if set, else on for SMTP and off for outbox/console, "
              "where a repeated key rewrites the same file).")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Run N worker processes sharing the due work (contact leases, no global lease), "
              "so a busy tick uses N cores; with --every each keeps ticking (a worker that dies is replaced).")
@click.option("--quiet", "-q", is_flag=True, help="Only the summary line.")
@click.option("--log-format", "log_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: lines for a terminal; json: one JSON object per line (one per tick with its counts), "
              "for a log collector. Both mask email addresses, tokens and secrets.")
@DB_OPTION
def run(every: str | None, dry_run: bool, now_text: str | None, limit: int | None,
        transport_url: str | None, lease_wait: float, fsync: bool | None, workers: int | None, quiet: bool,
        log_format: str, db_path: str | None) -> None:
    """Run one production tick: advance due contacts and send what is due.

    Only DEPLOYED journey versions run (see `journey deploy`). Every send is
    claimed in the ledger before the transport is called, so overlapping
    runs, reruns and crashes never send twice.
    """
    try:
        _run(every, dry_run, now_text, limit, transport_url, lease_wait, fsync, workers, quiet, log_format, db_path)
    except KeyboardInterrupt:
        if every is None:
            raise
        # SIGINT before the loop took the signal over (loading the project, opening the database): no tick
        # had started, so the worker stops as documented (exit 0), not with click's "Aborted!" (exit 1)
        say("stopped after 0 tick(s)")


def _run(every: str | None, dry_run: bool, now_text: str | None, limit: int | None,
         transport_url: str | None, lease_wait: float, fsync: bool | None, workers: int | None, quiet: bool,
         log_format: str, db_path: str | None) -> None:
    from runner.core.durations import parse_duration
    from runner.delivery.dispatch import durable_by_default, resolve_transport_url
    from runner.production.jsonlog import environment_secrets
    from runner.production.tick import build_runtime, run_tick
    from runner.production.worker import StopFlag, run_loop, stop_on_signals

    if every and (dry_run or now_text):
        raise UsageError("--every cannot be combined with --dry-run or --now")
    if workers and dry_run:
        raise UsageError("--workers cannot be combined with --dry-run (a dry run claims nothing to share)")
    if workers and log_format == "json":
        raise UsageError("--workers writes text lines only for now: leave out --log-format json")
    interval = None
    if every:
        from runner.core.instants import too_long

        try:
            if too_long(every):  # before the timedelta, which overflows
                raise ValueError(f"'{every}' is longer than a century (36525d)")
            interval = parse_duration(every).approx
        except ValueError as error:
            raise UsageError(f"--every: {error}") from None
        if interval.total_seconds() <= 0:
            raise UsageError("--every must be a positive duration")
    now = parse_now(now_text)
    root = project_root()
    project = load_project_settings(root)
    url = resolve_transport_url(transport_url, project)
    log = RunLog(log_format, secrets=environment_secrets(os.environ, [project.unsubscribe_secret_env], [url]))
    emit = None if quiet else log.line
    if fsync is None:
        fsync = durable_by_default(url, os.environ.get("JOURNEY_FSYNC"))
    with open_db(db_path, root, must_exist=True, read_only=dry_run) as store:  # none: nothing is deployed
        runtime = build_runtime(store, project, url, dry_run=dry_run)
        if workers:
            if runtime.delivery is not None:  # each worker builds its own: this one checked there is something to run
                runtime.delivery.close()
            from runner.store.location import resolve_db  # each worker opens the same database itself

            _run_workers(workers, resolve_db(db_path, start=root), root, url, now=None if interval else now,
                         every=interval, limit=limit, fsync=fsync, quiet=quiet)
            return
        try:
            if interval is not None:
                from runner.cli.workerprogress import worker_progress

                flag = StopFlag()
                step = interval
                with stop_on_signals(flag), worker_progress(str(every), shown=not quiet and not log.json) as shown:
                    def ticked(report: Any) -> None:
                        log.tick(report)
                        shown.ticked(report, step)

                    ticks = run_loop(store, runtime, interval, stop=flag, limit=limit, emit=emit,
                                     durable_claims=fsync, on_tick=ticked, on_error=log.error, on_page=shown.page)
                log.stopped(ticks)
                return
            report = run_tick(store, runtime, now, limit=limit, dry_run=dry_run, emit=emit,
                              lease_wait=lease_wait, durable_claims=fsync)
        finally:
            if runtime.delivery is not None:
                runtime.delivery.close()
    log.tick(report)


def _run_workers(count: int, db: str, root: Path, url: str, *, now: datetime | None, every: Any,
                 limit: int | None, fsync: bool, quiet: bool) -> None:
    """``--workers N``: the pool in runner.production.pool. A worker that failed or died is an error
    of a single tick; a looping pool replaces it and says so."""
    from runner.production.pool import WorkerPlan, run_workers
    from runner.production.worker import StopFlag, stop_on_signals

    plan = WorkerPlan(db=db, root=str(root), transport_url=url, now=now, every=every, limit=limit,
                      durable_claims=fsync, quiet=quiet)
    flag = StopFlag()
    with stop_on_signals(flag):
        result = run_workers(plan, count, stop=flag,
                             on_report=lambda worker, line: click.echo(f"[worker {worker}] {line}"),
                             on_failure=lambda what: click.echo(f"error: {what}", err=True) if every else None)
    click.echo(f"{count} worker(s): {result.summary()}")
    if result.failures and every is None:
        raise JourneyError("; ".join(result.failures))


def _summary_line(report: Any) -> str:
    prefix = "dry run" if report.run_id is None and report.ran else f"run {report.run_id}"
    return f"{prefix} at {report.now.isoformat()}: {report.summary()}"


class RunLog:
    """What ``journey run`` writes, as text lines or JSON objects (``--log-format``), redacted either way."""

    def __init__(self, fmt: str, *, secrets: list[str]):
        import logging

        from runner.production.jsonlog import Redactor, configure

        self.json = fmt == "json"
        self.redactor = Redactor(secrets)
        self.logger = logging.getLogger("journey.run")
        if self.json:
            configure("json", secrets=secrets, stream=sys.stdout)

    def line(self, text: str) -> None:
        """A line the tick says (a failure, a retry, a dry run's would-send)."""
        if self.json:
            from runner.production.jsonlog import log_event

            log_event(self.logger, text)
        else:
            say(self.redactor.text(text))

    def tick(self, report: Any) -> None:
        """One line per tick with its counts."""
        if self.json:
            from runner.production.jsonlog import log_event, tick_fields

            log_event(self.logger, "tick", **tick_fields(report))
        else:
            say(self.redactor.text(_summary_line(report)))

    def error(self, message: str) -> None:
        if self.json:
            import logging

            from runner.production.jsonlog import log_event

            log_event(self.logger, f"error: {message}", logging.ERROR)
        else:
            say(self.redactor.text(f"error: {message}"), err=True)

    def stopped(self, ticks: int) -> None:
        if self.json:
            from runner.production.jsonlog import log_event

            log_event(self.logger, "stopped", ticks=ticks)
        else:
            say(f"stopped after {ticks} tick(s)")


# ---------------------------------------------------------------- status


@click.command("status")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--now", "now_text", metavar="ISO", help="Count what is due at this instant (default: now).")
@DB_OPTION
def status(fmt: str, now_text: str | None, db_path: str | None) -> None:
    """Show deployments, enrollments, what is due, runs, sends, failures, in-doubt sends, suppressions."""
    from runner.production.tick import status_report

    now = parse_now(now_text)
    with open_db(db_path, project_root(), read_only=True) as store:
        report = status_report(store, now)
    if fmt == "json":
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(format_status(report))


def format_status(report: dict) -> str:
    """The status report as plain text tables."""
    lines = [f"status at {report['now']}"]
    lines.append("")
    lines.append("deployments:")
    for row in report["deployments"]:
        lines.append(f"  {row['journey_id']:<24} v{row['version']:<4} {row['content_hash']:<18} {row['deployed_at']}")
    if not report["deployments"]:
        lines.append("  (none)")
    lines.append("")
    lines.append(f"contacts: {report['contacts']}   due now: {report['due_contacts']}   "
                 f"next wake-up: {report['next_wake_at'] or '-'}")
    lines.append("")
    lines.append("enrollments (journey / version / stage / step / status: contacts, due):")
    for row in report["enrollments"]:
        lines.append(f"  {row['journey_id']:<22} v{row['version']:<3} {row['stage']:<14} {str(row['step'] or '-'):<24} "
                     f"{row['status']:<7} {row['contacts']:>6} {row['due'] or 0:>6}")
    if not report["enrollments"]:
        lines.append("  (none in flight)")
    if report["exits"]:
        lines.append("exits:")
        for row in report["exits"]:
            lines.append(f"  {row['journey_id']:<22} {str(row['exit_reason']):<40} {row['contacts']:>6}")
    lines.append("")
    sends = report["sends"]
    lines.append("sends: " + (", ".join(f"{state} {count}" for state, count in sends.items()) or "none"))
    if report["failures"]:
        lines.append("recent failures:")
        for row in report["failures"]:
            retry = f"will retry from {row['retry_at'] or 'the next run'}" if row["retryable"] else (
                "permanent; `journey requeue` sends it again")
            lines.append(f"  {row['key']}  ({retry}, {row['attempts']} attempt(s)): {row['error']}")
    if report["in_doubt"]:
        lines.append(f"IN DOUBT ({len(report['in_doubt'])}): claimed but never confirmed (a run died mid-send);")
        lines.append("  check the mail server / outbox, then `journey resolve KEY --sent|--failed`:")
        for row in report["in_doubt"]:
            lines.append(f"  {row['key']}  contact {row['contact_id']}  claimed {row['claimed_at']}  run {row['run_id']}")
    lines.append("suppressions: " + (", ".join(f"{r} {n}" for r, n in report["suppressions"].items()) or "none"))
    lines.append("")
    lines.append("recent runs:")
    for row in report["runs"]:
        counts = row.get("counts") or {}
        brief = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if not k.startswith("decision:"))
        lines.append(f"  {row['id']}  {row['status']:<8} {row['started_at']}  {brief}")
    if not report["runs"]:
        lines.append("  (none)")
    return "\n".join(lines)


# ---------------------------------------------------------------- resolve


@click.command("history")
@click.argument("contact")
@click.option("--journey", "journey_ref", type=JourneyRef(), metavar="JOURNEY",
              help="Only this journey's decisions (its id or its file).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@DB_OPTION
def history(contact: str, journey_ref: Path | str | None, fmt: str, db_path: str | None) -> None:
    """Show every decision production ticks made for CONTACT, oldest first, with its reason.

    The same records as `journey simulate` prints for a test contact (without
    rendered subjects): entries, stage moves, waits, sends, skips and
    deferrals with their reason, exits and goals.
    """
    from runner.production.bounces import suppression_of
    from runner.simulation.timeline import history_records, history_text, iso

    root = project_root()
    settings = load_project_settings(root)
    journey = journey_id(journey_ref) if journey_ref is not None else None
    with open_db(db_path, root, read_only=True) as store:
        state = _known_contact(store, contact)
        deployed = sorted({row["journey_id"] for row in store.deployments()})
        if journey is not None and journey not in deployed:
            raise UsageError(f"--journey: no journey '{journey}' was ever deployed to this database "
                             f"(deployed: {', '.join(deployed) or 'none'})")
        rows = store.contact_history(contact, journey)
        opt_outs = [row for row in store.suppressions(contact) if row["topic"] is not None]
    zone_name = state.contact.timezone or settings.default_timezone or "UTC"
    try:
        records = history_records(rows, zone_name)
    except ValueError:  # an unknown zone in contact data: show UTC rather than fail
        zone_name = "UTC"
        records = history_records(rows, zone_name)
    suppression = suppression_of(state)
    if fmt == "json":
        document = {"format": 1, "contact": contact, "timezone": zone_name,
                    "events": [{**record.as_dict(), "run_id": row["run_id"]} for record, row in zip(records, rows, strict=True)],
                    "opt_outs": opt_outs}
        if suppression is not None:
            document["suppression"] = {"reason": suppression.reason, "at": iso(suppression.at),
                                       "detail": suppression.detail}
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    click.echo(history_text(contact, zone_name, records), nl=False)
    if suppression is not None:
        since = f" since {iso(suppression.at)}" if suppression.at else ""
        detail = f" ({suppression.detail})" if suppression.detail else ""
        click.echo(f"suppressed{since}: {suppression.reason}{detail}")
    for row in opt_outs:  # unsubscribes and suppress steps' stops: what they stop, and where they came from
        stopped = "unsubscribed" if step_stop_reason(row["topic"]) is None else f"suppressed ({row['reason']})"
        click.echo(f"{stopped} since {row['at']}: {what_it_stops(row['topic'])} (source {row['source']})")


def _known_contact(store: Store, contact: str) -> ContactState:
    try:
        return store.load_contact_state(contact)
    except KeyError:
        raise JourneyError(f"no contact {shown(contact)} in {store.location} (see `journey contacts import`)") from None


@click.command("resolve")
@click.argument("keys", nargs=-1)
@click.option("--sent", "outcome", flag_value="sent", help="It was delivered: never send it again.")
@click.option("--failed", "outcome", flag_value="failed", help="It was not delivered: the next run sends it.")
@click.option("--all-sent", is_flag=True, help="Resolve every in-doubt send as sent.")
@click.option("--all-failed", is_flag=True, help="Resolve every in-doubt send as failed (re-sent next run).")
@DB_OPTION
def resolve(keys: tuple[str, ...], outcome: Literal["sent", "failed"] | None, all_sent: bool, all_failed: bool,
            db_path: str | None) -> None:
    """Settle in-doubt sends (claimed, never confirmed: a run died mid-send).

    Check your mail server's log or the outbox for each KEY (it is the
    X-Journey-Key header; the Message-ID is derived from it), then say
    whether it went out: `journey resolve KEY --sent` or `--failed`.
    """
    from runner.production.tick import resolve_sends

    chosen: list[Literal["sent", "failed"]] = [
        flag for flag in (outcome, "sent" if all_sent else None, "failed" if all_failed else None) if flag]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --sent, --failed, --all-sent, --all-failed")
    every = all_sent or all_failed
    if every and keys:
        raise UsageError("--all-sent/--all-failed take no KEY")
    if not every and not keys:
        raise UsageError("give the KEY(s) to resolve (see `journey status`), or --all-sent/--all-failed")
    with open_db(db_path, project_root(), must_exist=True) as store:
        done = resolve_sends(store, list(keys), chosen[0], every=every)
    verb = "sent (will not be sent again)" if chosen[0] == "sent" else "failed (the next run sends it again)"
    click.echo(f"resolved {len(done)} send(s) as {verb}")


@click.command("requeue")
@click.argument("keys", nargs=-1)
@click.option("--since", "since_text", metavar="ISO", help="Failed sends scheduled at or after this instant.")
@click.option("--until", "until_text", metavar="ISO", help="Failed sends scheduled before this instant.")
@click.option("--all-failed", is_flag=True, help="Every failed send.")
@DB_OPTION
def requeue(keys: tuple[str, ...], since_text: str | None, until_text: str | None, all_failed: bool,
            db_path: str | None) -> None:
    """Send failed sends again: by KEY, by scheduled range (--since/--until), or --all-failed.

    A send fails for good when it cannot be built (a template error), when the
    relay refuses it (5xx), or when transient failures (relay down, 4xx) last
    longer than project.yaml `retry.max_age`. Once the cause is fixed, requeue
    them: the next `journey run` claims and sends each (still at most once),
    and a transient failure starts a new `retry.max_age`.
    """
    if not (keys or since_text or until_text or all_failed):
        raise UsageError("give the KEY(s) to requeue (see `journey status`), --since/--until, or --all-failed")
    since = parse_now(since_text, "--since") if since_text else None
    until = parse_now(until_text, "--until") if until_text else None
    with open_db(db_path, project_root(), must_exist=True) as store:
        done = store.requeue_sends(list(keys), since=since, until=until, every=all_failed)
    click.echo(f"requeued {len(done)} send(s); the next run sends them")
