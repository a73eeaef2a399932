"""``journey bounces import FILE|DIR``: bounce and complaint mail (runner.production.dsn) into the store.

Reports are recorded in batches, each its own transaction
(runner.production.bounces), so input that turns out unreadable half-way
keeps what was recorded before it, and importing the same files again
counts nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from runner.core.bounces import Bounce, SoftBounceRule
from runner.production.bounces import BounceOutcome, record_bounces
from runner.production.dsn import ReadMessage, Unreadable, read_reports
from runner.store.base import Store

BATCH_REPORTS = 500  # reports per transaction


@dataclass
class ImportResult:
    messages: int = 0  # messages read
    reports: int = 0  # bounce and complaint records found in them
    outcome: BounceOutcome = field(default_factory=BounceOutcome)
    unrecognised: list[str] = field(default_factory=list)  # messages that are no DSN or abuse report
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing unreadable, and not only unrecognised mail (a wrong file is an error, an
        auto-reply among bounces is not)."""
        return not self.unreadable and not (self.messages and len(self.unrecognised) == self.messages)


def import_reports(store: Store, path: Path, rule: SoftBounceRule, now: datetime, *,
                   dry_run: bool = False) -> ImportResult:
    """Read every message under ``path`` and record the bounces and complaints they report."""
    result = ImportResult()
    batch: list[Bounce] = []
    for item in read_reports(path, now):
        if isinstance(item, Unreadable):
            result.unreadable.append(item)
            continue
        result.messages += 1
        if _take(item, result, batch) and len(batch) >= BATCH_REPORTS:
            _merge(result.outcome, record_bounces(store, batch, rule, now, dry_run=dry_run))
            batch = []
    if batch:
        _merge(result.outcome, record_bounces(store, batch, rule, now, dry_run=dry_run))
    return result


def _take(item: ReadMessage, result: ImportResult, batch: list[Bounce]) -> bool:
    if item.bounces is None:
        result.unrecognised.append(item.name)
        return False
    result.reports += len(item.bounces)
    batch.extend(item.bounces)
    return True


def _merge(total: BounceOutcome, part: BounceOutcome) -> None:
    total.counted += part.counted
    total.duplicates += part.duplicates
    total.unmatched += part.unmatched
    total.suppressed += part.suppressed
    merged: dict[str, int] = defaultdict(int, total.by_kind)
    for kind, count in part.by_kind.items():
        merged[kind] += count
    total.by_kind = merged
