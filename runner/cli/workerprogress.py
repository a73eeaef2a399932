"""What ``journey run --every`` draws on a terminal: the tick at hand, then a countdown to the next.

A worker prints one line per tick; between lines a terminal shows nothing, so a
long catch-up tick looks hung and a quiet one dead. Where ``progress_shown``
(a terminal, not CI) a transient status line under the printed ones says which
tick is running and how many contacts it has done so far (after each page of
due contacts), then the last tick's counts and the seconds until the next.
Piped, in CI, with ``--quiet`` or ``--log-format json`` nothing is drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.markup import escape
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.text import Text

from runner.cli.common import progress_shown


@dataclass
class TickProgress:
    """The status line's state; the worker loop calls ``page`` during a tick and ``ticked`` after it."""

    bar: Progress | None
    task: Any
    ticks: int = 0

    def page(self, report: Any) -> None:
        """A page of due contacts is done: the contacts and sends of the running tick so far."""
        if self.bar is not None:
            self.bar.update(self.task, running=True, tick=self.ticks + 1,
                            done=f"{report.contacts} contacts, {report.counts.get('sent', 0)} sent so far")

    def ticked(self, report: Any, every: timedelta) -> None:
        """A tick ended: its counts, and when the next one starts (``every`` after this one started)."""
        self.ticks += 1
        if self.bar is not None:
            self.bar.update(self.task, running=False, tick=self.ticks, next_at=report.now + every,
                            done=f"{report.contacts} contacts, {report.counts.get('sent', 0)} sent")


class StatusColumn(ProgressColumn):
    """``tick 3: 400 contacts, 12 sent so far`` while a tick runs; ``… · next tick in 41s`` after it.
    Rendered at each refresh, so the countdown moves while the worker sleeps."""

    max_refresh = None

    def render(self, task: Task) -> Text:
        fields = task.fields
        if not fields.get("tick"):
            return Text("first tick starting")
        line = f"tick {fields['tick']}: {fields['done']}"
        if not fields.get("running"):
            seconds = max(0, round((fields["next_at"] - datetime.now(UTC)).total_seconds()))
            line += f" · next tick in {seconds}s" if seconds else " · next tick starting"
        return Text(line)


@contextmanager
def worker_progress(every: str, *, shown: bool) -> Iterator[TickProgress]:
    """A ``TickProgress`` that draws (transient: gone when the worker stops) when ``shown`` and
    ``progress_shown()``; otherwise one that only counts. ``every``: the interval as the user wrote it."""
    if not (shown and progress_shown()):
        yield TickProgress(None, None)
        return
    with Progress(SpinnerColumn(), TextColumn(f"[bold]ticking every {escape(every)}"), StatusColumn(),
                  transient=True) as bar:
        yield TickProgress(bar, bar.add_task("", total=None))
