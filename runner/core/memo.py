"""The records a run remembers answers in, with the inputs each answer was worked out from.

A per-contact run (``runner.core.engine._Run``) answers the same questions at
instant after instant; most answers do not change. Each remembered answer
keeps what it read, so the run can tell, cheaply, whether it still holds:

- ``Memo``: an answer that read events and attributes and holds until an
  instant (a condition's truth and next change, a journey's quiet entries, a
  score's steady parts);
- ``Stamp``: a value as of an attribute version (a journey's next wake-up,
  a score's ``when`` truths).

Named, slotted records: a field's name says what it holds, and slots make
them as small and as fast to read as the positional lists they replace.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from runner.core.reads import Reads

T = TypeVar("T")  # what the record remembers


class Memo(Generic[T]):
    """An answer, valid while no event it reads is revealed, no attribute it reads changes
    and ``until`` (if any) has not come."""

    __slots__ = ("version", "position", "reads", "answer", "until")

    def __init__(self, version: int, position: int, reads: Reads, answer: T, until: datetime | None) -> None:
        self.version = version  # the run's attribute version when last found valid
        self.position = position  # the reveal-log position when last found valid
        self.reads = reads  # the events and attributes the answer read
        self.answer = answer
        self.until = until  # the answer may change by time alone at this instant


class Stamp(Generic[T]):
    """A value as of an attribute version; whoever reads it checks what changed since."""

    __slots__ = ("version", "value")

    def __init__(self, version: int, value: T) -> None:
        self.version = version
        self.value = value
