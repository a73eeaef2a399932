"""Building a journey: frozen model objects from a schema-valid YAML mapping.

Step lists nest (``wait_for`` paths, ``branch`` cases, ``split`` variants). The
builder flattens every stage into a small program: each step knows the id of
the step that runs after it, so an enrollment's position is one step id (its
cursor) and a path that ends simply continues after the step that opened it.
Steps without an ``id`` (plain waits) get a positional one, ``stage.2`` or
``stage.3.on_event.0``. Each step is built by its kind (``runner.core.stepkinds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.core.conditions import compile_condition, compile_where
from runner.core.durations import parse_duration
from runner.core.model import (
    Goal,
    Journey,
    Migration,
    Stage,
    Step,
    build_entry,
    build_settings,
    condition_or_none,
    content_hash,
)
from runner.core.problems import JourneyError
from runner.core.stepkinds import STEP_KINDS


class _StageBuilder:
    """Flattens one stage's nested step lists into steps with ``next`` pointers."""

    def __init__(self, stage_id: str, steps: dict[str, Step]):
        self.stage_id = stage_id
        self.steps = steps

    def build(self, specs: list[Any], path: str, after: str | None) -> str | None:
        """Build a step list; return the id of its first step (or ``after`` if empty)."""
        ids = [self._step_id(spec, f"{path}.{i}" if path else str(i)) for i, spec in enumerate(specs)]
        following = after
        for index in range(len(specs) - 1, -1, -1):
            self._build_step(specs[index], ids[index], following, f"{path}.{index}" if path else str(index))
            following = ids[index]
        return following

    def _step_id(self, spec: Mapping[str, Any], position: str) -> str:
        return spec.get("id") or f"{self.stage_id}.{position}"

    def _build_step(self, spec: Mapping[str, Any], step_id: str, after: str | None, position: str) -> None:
        if step_id in self.steps:
            raise JourneyError(f"step id '{step_id}' is used twice")
        kind = next((STEP_KINDS[key] for key in STEP_KINDS if key in spec), None)
        if kind is None:
            raise JourneyError(f"step '{step_id}' has no action (one of {', '.join(STEP_KINDS)})")
        common = dict(
            id=step_id, kind=kind.name, stage=self.stage_id, next=after, if_=condition_or_none(spec.get("if")),
        )

        def nested(specs: list[Any], segment: str) -> str | None:
            return self.build(specs, f"{position}.{segment}", after)

        step = kind.build(spec[kind.name], spec, common, nested)
        self.steps[step_id] = step




def build_journey(data: Mapping[str, Any], source: str = "") -> Journey:
    """Build a Journey from a schema-valid mapping; JourneyError for what only this can see."""
    steps: dict[str, Step] = {}
    stages = []
    for index, spec in enumerate(data["stages"]):
        first = _StageBuilder(spec["id"], steps).build(list(spec.get("steps") or []), "", None)
        stages.append(Stage(
            id=spec["id"], name=spec.get("name", spec["id"]), priority=int(spec.get("priority", 0)),
            entry=build_entry(spec["entry"]), first=first, index=index,
        ))
    goal_spec = data.get("goal")
    goal = None
    if goal_spec:
        goal = Goal(
            event=goal_spec["event"], where=compile_where(goal_spec.get("where")),
            within=parse_duration(goal_spec["within"]) if goal_spec.get("within") else None,
            exit_on_goal=bool(goal_spec.get("exit_on_goal", True)),
        )
    migration_spec = data.get("migration")
    migration = None
    if migration_spec:
        migration = Migration(
            from_version=int(migration_spec["from"]),
            strategy="map" if migration_spec.get("map") else migration_spec.get("strategy", "restart"),
            step_map=dict(migration_spec.get("map") or {}),
        )
    return Journey(
        id=data["id"], version=int(data["version"]), name=data.get("name", data["id"]),
        settings=build_settings(data.get("settings")),
        stages=tuple(stages), steps=steps,
        segments={name: compile_condition(spec) for name, spec in (data.get("segments") or {}).items()},
        exit=tuple(compile_condition(spec) for spec in data.get("exit") or []),
        goal=goal, migration=migration,
        description=data.get("description", ""), owner=data.get("owner", ""),
        lifecycle=tuple(data.get("lifecycle") or ()), source=source,
        content_hash=content_hash(data), raw=data,
    )


