"""Where a migrated enrollment continues in the new version.

One rule, used by the engine when it migrates an enrollment and by
``journey plan`` when it tells, before a deploy, where each in-flight contact
will go: the plan predicts what the engine will do because both ask this.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.core.model import Journey


@dataclass(frozen=True, slots=True)
class Continuation:
    """The stage and next step an enrollment continues at in the new version.

    ``restart``: back to the first step of the stage under a new stage visit,
    so the stage's emails are sent again (new send keys).
    """

    stage: str
    cursor: str | None
    restart: bool


def continuation(journey: Journey, stage_id: str, cursor: str | None) -> Continuation:
    """Where an enrollment at ``stage_id``/``cursor`` of an older version continues in ``journey``.

    ``cursor`` is the enrollment's next step (the ``wait_for`` step itself while
    it waits for an event; None once its stage is done). A ``map`` strategy
    continues at the step mapped from ``cursor``; positions the map does not name
    restart their stage, as the ``restart`` strategy does for everyone.
    """
    migration = journey.migration
    mapped = migration.step_map.get(cursor or "") if migration is not None and migration.strategy == "map" else None
    if mapped and mapped in journey.steps:
        return Continuation(journey.steps[mapped].stage, mapped, restart=False)
    stage = next((s for s in journey.stages if s.id == stage_id), journey.stages[0])
    return Continuation(stage.id, stage.first, restart=True)
