"""Plan and record deployments: the database, not the working tree, decides what runs.

``journey deploy`` stores every journey version (id, version, content hash,
content as canonical JSON, time). Versions are immutable: changed content
under a deployed version is refused before anything is recorded. The tick
builds its engine from the stored content (``deployed_engine_journeys``):
the newest version of each journey runs new entries, and every older
deployed version is handed to the engine as *pinned*, so contacts in flight
finish on the version they entered unless the journey declares a migration.

``plan`` compares the working tree with the newest deployed versions step by
step (raw step mappings), counts the in-flight enrollments that sit at
each removed or changed step, and says where the contacts at each in-flight
position will continue (pinned, mapped, or restarted by the migration) with
the rule the engine applies (``runner.core.migration``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.core.build import build_journey
from runner.core.migration import continuation
from runner.core.model import Journey, Project
from runner.core.problems import JourneyError, Problem
from runner.core.stepkinds import STEP_KINDS
from runner.store.base import Store

_ACTIONS = tuple(STEP_KINDS)  # the step kinds, in the order the builder looks for their key
_PATH_KEYS = ("steps", "on_event", "on_timeout", "else")


# ---------------------------------------------------------------- the working tree


@dataclass
class WorkingTree:
    """The project and journeys as the files say (validated)."""

    root: Path
    project: Project
    journeys: list[Journey]


def load_working_tree(root: Path | None = None) -> WorkingTree:
    """Load and validate the project; JourneyError listing every problem when it is not valid."""
    from runner.language.loader import load_project

    loaded = load_project(root)
    if not loaded.ok:
        errors = loaded.errors
        raise JourneyError(
            f"the project has {len(errors)} error(s); fix them (journey validate) before deploying or running",
            errors,
        )
    return WorkingTree(loaded.root, loaded.project, list(loaded.journeys))


def load_project_file(root: Path) -> Project:
    """Only project.yaml, built: what a tick needs from the working tree (fast, no template checks)."""
    import yaml

    from runner.core.model import build_project

    path = Path(root) / "project.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
        return build_project(data if isinstance(data, dict) else None, Path(root))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, JourneyError, ValueError, KeyError, TypeError) as error:
        raise JourneyError(f"{path} cannot be read ({error}); run `journey validate`") from None


# ---------------------------------------------------------------- stored content


def journey_content(journey: Journey) -> str:
    """The JSON a deployment stores; ``build_journey(json.loads(it))`` rebuilds the journey.

    Keys keep the order the author wrote them in (the content hash, not this
    text, is canonical): a rebuilt journey must be the simulated one exactly,
    down to the order a ``where`` is described in a decision's reason, or the
    order an ``update`` step sets overlapping paths in.
    """
    return json.dumps(journey.raw, separators=(",", ":"), default=str, ensure_ascii=False)


def rebuild(row: Mapping[str, Any]) -> Journey:
    """A journey version from its deployment row."""
    data = json.loads(row["content"])
    return build_journey(data, source=f"deployed:{row['journey_id']}@v{row['version']}")


@dataclass
class DeployedSet:
    """What production runs: the newest version of each journey, and older pinned versions."""

    current: list[Journey]
    pinned: list[Journey]
    signature: tuple  # changes whenever a deployment is added (lets a worker reuse its engine)


def deployed_set(store: Store) -> DeployedSet:
    """Rebuild every deployed version from the store (JourneyError when none is deployed)."""
    rows = store.deployments()
    newest: dict[str, dict] = {}
    for row in rows:
        if row["journey_id"] not in newest or row["version"] > newest[row["journey_id"]]["version"]:
            newest[row["journey_id"]] = row
    current: list[Journey] = []
    pinned: list[Journey] = []
    for row in rows:
        journey = rebuild(row)
        (current if newest[row["journey_id"]] is row else pinned).append(journey)
    signature = tuple((r["journey_id"], r["version"], r["content_hash"]) for r in rows)
    return DeployedSet(current, pinned, signature)


# ---------------------------------------------------------------- plan


@dataclass
class JourneyPlan:
    """What deploying would change for one journey."""

    journey: str
    change: str  # added | removed | changed | unchanged | refused
    deployed_version: int | None
    new_version: int | None
    steps_added: list[str] = field(default_factory=list)
    steps_removed: list[str] = field(default_factory=list)
    steps_changed: list[str] = field(default_factory=list)
    in_flight: int = 0  # enrollments not exited on the deployed versions
    in_flight_at: dict[str, int] = field(default_factory=dict)  # removed/changed step -> enrollments there
    migration: str | None = None
    message: str = ""
    continuations: list[InFlightMove] = field(default_factory=list)  # per in-flight position
    warnings: list[str] = field(default_factory=list)  # a map that restarts contacts


@dataclass
class InFlightMove:
    """Where the contacts at one in-flight position continue once the plan is deployed.

    ``step`` is their next step (the ``wait_for`` itself while they wait for
    its event; None once their stage is done). ``outcome``: ``pinned`` (they
    stay on their version), ``mapped`` (the migration's map moves them to
    ``to_step``) or ``restart`` (back to the stage's first step: its emails are
    sent again).
    """

    version: int
    stage: str
    step: str | None
    contacts: int
    to_version: int
    to_stage: str
    to_step: str | None
    outcome: str


@dataclass
class Plan:
    journeys: list[JourneyPlan]

    @property
    def refused(self) -> list[JourneyPlan]:
        return [j for j in self.journeys if j.change == "refused"]

    @property
    def changes(self) -> list[JourneyPlan]:
        return [j for j in self.journeys if j.change in ("added", "changed")]

    def as_dict(self) -> dict:
        return {"journeys": [asdict(j) for j in self.journeys]}


def step_mappings(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Step id -> its raw mapping, nested paths included.

    Steps without an ``id`` get the id the model gives them
    (``stage.position``, e.g. ``education.1`` or ``education.3.on_event.0``),
    which is also what in-flight enrollments store as their cursor.
    """
    found: dict[str, Any] = {}

    def walk(stage_id: str, specs: Any, path: str) -> None:
        for index, spec in enumerate(specs or []):
            if not isinstance(spec, Mapping):
                continue
            position = f"{path}.{index}" if path else str(index)
            found[str(spec.get("id") or f"{stage_id}.{position}")] = spec
            body = next((spec[k] for k in _ACTIONS if k in spec), None)
            walk(stage_id, spec.get("on_event"), f"{position}.on_event")
            walk(stage_id, spec.get("on_timeout"), f"{position}.on_timeout")
            if isinstance(body, Mapping) and "branch" in spec:
                for i, case in enumerate(body.get("cases") or []):
                    if isinstance(case, Mapping):
                        walk(stage_id, case.get("steps"), f"{position}.case{i}")
                walk(stage_id, body.get("else"), f"{position}.else")
            if isinstance(body, Mapping) and "split" in spec:
                for variant in body.get("variants") or []:
                    if isinstance(variant, Mapping):
                        walk(stage_id, variant.get("steps"), f"{position}.{variant.get('name')}")

    for stage in raw.get("stages") or []:
        walk(str(stage.get("id")), stage.get("steps"), "")
    return found


def _own(step: Mapping[str, Any]) -> dict:
    """A step without its nested paths: nested steps are compared on their own."""
    own: dict[str, Any] = {}
    for key, value in step.items():
        if key in _PATH_KEYS:
            continue
        if isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in ("steps", "else", "cases", "variants")} | {
                "#paths": [
                    {k: v for k, v in case.items() if k != "steps"}
                    for case in (value.get("cases") or value.get("variants") or [])
                    if isinstance(case, Mapping)
                ]
            }
        own[key] = value
    return own


def in_flight_by_step(store: Store, journey_id: str) -> dict[tuple[int, str | None], int]:
    """(version, next step) -> enrollments not exited."""
    return {(row["version"], row["step"]): row["contacts"] for row in store.in_flight_by_step(journey_id)}


def make_plan(store: Store, journeys: list[Journey]) -> Plan:
    """Compare the working tree's journeys with the store's newest deployed versions."""
    deployed_rows = store.deployments()
    newest: dict[str, dict] = {}
    by_version: dict[tuple[str, int], dict] = {}
    for row in deployed_rows:
        by_version[(row["journey_id"], row["version"])] = row
        if row["journey_id"] not in newest or row["version"] > newest[row["journey_id"]]["version"]:
            newest[row["journey_id"]] = row
    plans: list[JourneyPlan] = []
    tree_ids = {j.id for j in journeys}
    for journey in sorted(journeys, key=lambda j: j.id):
        plans.append(_plan_one(store, journey, newest.get(journey.id), by_version))
    for journey_id in sorted(set(newest) - tree_ids):
        row = newest[journey_id]
        counts = in_flight_by_step(store, journey_id)
        plans.append(JourneyPlan(
            journey=journey_id, change="removed", deployed_version=row["version"], new_version=None,
            steps_removed=sorted(step_mappings(json.loads(row["content"]))),
            in_flight=sum(counts.values()),
            in_flight_at={str(step): n for (_, step), n in sorted(counts.items(), key=str) if step},
            message="not in the working tree; deploy keeps the deployed versions running "
                    "(retiring a journey is not supported: add an exit condition in a new version)",
        ))
    return Plan(plans)


def _plan_one(store: Store, journey: Journey, newest: dict | None, by_version: dict) -> JourneyPlan:
    migration = None
    if journey.migration is not None:
        migration = f"from v{journey.migration.from_version}: {journey.migration.strategy}"
    if newest is None:
        return JourneyPlan(journey.id, "added", None, journey.version,
                           steps_added=sorted(step_mappings(journey.raw)), migration=migration)
    same_version = by_version.get((journey.id, journey.version))
    if same_version is not None and same_version["content_hash"] != journey.content_hash:
        return JourneyPlan(
            journey.id, "refused", newest["version"], journey.version, migration=migration,
            message=f"content changed but version {journey.version} is already deployed: bump `version`",
        )
    if journey.version < newest["version"] and same_version is None:
        return JourneyPlan(
            journey.id, "refused", newest["version"], journey.version, migration=migration,
            message=f"version {journey.version} is older than the deployed version {newest['version']}",
        )
    if same_version is not None and journey.version == newest["version"]:
        return JourneyPlan(journey.id, "unchanged", newest["version"], journey.version, migration=migration)
    old_steps = step_mappings(json.loads(newest["content"]))
    new_steps = step_mappings(journey.raw)
    added = sorted(set(new_steps) - set(old_steps))
    removed = sorted(set(old_steps) - set(new_steps))
    changed = sorted(s for s in set(old_steps) & set(new_steps) if _own(old_steps[s]) != _own(new_steps[s]))
    counts = in_flight_by_step(store, journey.id)
    at_steps: dict[str, int] = {}
    for (_version, step), n in counts.items():
        if step is not None and (step in removed or step in changed):
            at_steps[step] = at_steps.get(step, 0) + n
    change = "changed" if same_version is None else "unchanged"
    moves = _continuations(store, journey) if change == "changed" else []
    return JourneyPlan(
        journey.id, change, newest["version"], journey.version,
        steps_added=added, steps_removed=removed, steps_changed=changed,
        in_flight=sum(counts.values()), in_flight_at=dict(sorted(at_steps.items())), migration=migration,
        continuations=moves, warnings=_restart_warnings(journey, moves, by_version),
    )


def _continuations(store: Store, journey: Journey) -> list[InFlightMove]:
    """Per in-flight position of the deployed versions, where its contacts go once ``journey`` is deployed."""
    rows = sorted(store.in_flight_by_step(journey.id),
                  key=lambda row: (row["version"], row["stage"], row["step"] or ""))
    migration = journey.migration
    moves = []
    for row in rows:
        version, stage, step, contacts = row["version"], row["stage"], row["step"], row["contacts"]
        if migration is None or migration.from_version != version:
            moves.append(InFlightMove(version, stage, step, contacts, version, stage, step, "pinned"))
            continue
        target = continuation(journey, stage, step)
        moves.append(InFlightMove(version, stage, step, contacts, journey.version, target.stage, target.cursor,
                                  "restart" if target.restart else "mapped"))
    return moves


def _restart_warnings(journey: Journey, moves: list[InFlightMove], by_version: dict) -> list[str]:
    """A warning per position a ``map`` migration restarts (a ``restart`` strategy restarts on purpose)."""
    migration = journey.migration
    if migration is None or migration.strategy != "map":
        return []
    warnings = []
    for move in moves:
        if move.outcome != "restart":
            continue
        where = f"v{move.version} {move.stage}/{move.step or '(stage done)'}"
        text = (f"the map restarts {move.contacts} contact(s) at {where}: back to `{move.to_step}`, "
                f"and the stage's emails are sent again")
        row = by_version.get((journey.id, move.version))
        passed = _mapped_steps_passed(rebuild(row), migration.step_map, move) if row else []
        if passed:
            names = ", ".join(f"`{step}`" for step in passed)
            if move.step:
                text += (f"; the map names {names}, which they have passed (their next step is `{move.step}`): "
                         f"map `{move.step}` instead")
            else:
                text += f"; the map names {names}, which they have passed (their stage is done)"
        else:
            text += f"; `{move.step or '(stage done)'}` is not in the map"
        warnings.append(text)
    return warnings


def _mapped_steps_passed(old: Journey, step_map: Mapping[str, str], move: InFlightMove) -> list[str]:
    """Map keys naming the step right before the position: the wait the contacts sit in, not their next step."""
    return sorted(key for key in step_map
                  if key in old.steps and old.steps[key].stage == move.stage and old.steps[key].next == move.step)


# ---------------------------------------------------------------- deploy


@dataclass
class DeployResult:
    recorded: list[tuple[str, int]]  # (journey id, version) newly recorded
    unchanged: list[tuple[str, int]]
    plan: Plan


def deploy(store: Store, journeys: list[Journey], now: datetime,
           templates: dict[str, str] | None = None) -> DeployResult:
    """Record every journey version that is not deployed yet; all or nothing.

    ``templates`` (name -> source, see ``templatecheck.read_templates``) become
    the deployed templates production renders, whatever the files hold later.

    Refused (JourneyError, nothing recorded) when a journey's content changed
    but its version did not, or its version went backwards.
    """
    plan = make_plan(store, journeys)
    if plan.refused:
        raise JourneyError(
            "deploy refused; nothing was recorded",
            [Problem(_source(journeys, p.journey), 1, 1, "deploy.version", f"journey `{p.journey}`: {p.message}")
             for p in plan.refused],
        )
    recorded: list[tuple[str, int]] = []
    unchanged: list[tuple[str, int]] = []
    with store.transaction():
        for journey in sorted(journeys, key=lambda j: j.id):
            new = store.record_deployment(journey.id, journey.version, journey.content_hash,
                                          journey_content(journey), now)
            (recorded if new else unchanged).append((journey.id, journey.version))
        if templates is not None:
            store.record_templates(templates, now)
    return DeployResult(recorded, unchanged, plan)


def _source(journeys: list[Journey], journey_id: str) -> str:
    return next((j.source for j in journeys if j.id == journey_id), journey_id) or journey_id
