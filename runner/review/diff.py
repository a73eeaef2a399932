"""A semantic diff of two versions of a journey, in words a marketer reads.

A line diff of YAML says "line 42 changed"; a reviewer wants "wait after
welcome: 2d → 3d", "step nudge removed", "split ab: a 50% → 70%", "version
not bumped". Steps are matched by id; an unnamed step (a plain ``wait``) is
named by the step before it ("wait after welcome"), which stays stable when
other steps are inserted elsewhere.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from runner.core.model import content_hash
from runner.review import describe

ADDED, REMOVED, CHANGED, MOVED = "added", "removed", "changed", "moved"
STEP_FIELDS = {
    "email": ("subject", "template", "text_template", "from", "reply_to"),
    "webhook": ("url", "payload", "secret_env"),
    "wait_for": ("event", "where", "timeout"),
    "wait_until": ("time", "days"),
}


@dataclass
class Change:
    area: str  # journey settings segments stages steps exit goal migration version
    kind: str  # added removed changed moved
    subject: str  # what changed: "step welcome", "stage conversion", "settings.send_window"
    text: str  # the sentence shown to people
    old: Any = None
    new: Any = None


@dataclass
class JourneyDiff:
    journey: str
    status: str  # added removed changed unchanged
    old_version: int | None = None
    new_version: int | None = None
    changes: list[Change] = field(default_factory=list)
    old_source: str | None = None
    new_source: str | None = None

    @property
    def meaning_changed(self) -> bool:
        """Anything besides the version number changed."""
        return any(change.area != "version" for change in self.changes)

    @property
    def version_missing(self) -> bool:
        """The journey changed but kept (or lowered) its version: in-flight contacts would be confused."""
        return (
            self.status == "changed" and self.meaning_changed
            and isinstance(self.old_version, int) and isinstance(self.new_version, int)
            and self.new_version <= self.old_version
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["version_missing"] = self.version_missing
        return data


def _list(value: Any) -> list:
    """A list from unvalidated YAML (anything else counts as empty)."""
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return describe.value_text(value) if value is not None else "(none)"


def _arrow(old: Any, new: Any) -> str:
    return f"{_text(old)} → {_text(new)}"


def meaning_hash(data: Mapping[str, Any]) -> str:
    """What a journey does, ignoring its version number (and comments, key order)."""
    return content_hash({k: v for k, v in data.items() if k != "version"})


# ---------------------------------------------------------------- steps


@dataclass
class _StepInfo:
    key: str  # identity across versions: explicit id, or "wait after welcome"
    label: str  # how people call it: "step welcome", "wait after welcome"
    stage: str
    parent: str  # the list it sits in: "education", "wait_click.on_event"
    kind: str
    spec: Mapping[str, Any]


def _steps(raw: Mapping[str, Any]) -> dict[str, _StepInfo]:
    found: dict[str, _StepInfo] = {}

    def walk(stage: str, parent: str, specs: Any) -> None:
        previous = None
        counts: dict[str, int] = {}
        for spec in specs if isinstance(specs, list) else []:
            if not isinstance(spec, Mapping):
                continue
            kind = describe.step_kind(spec)
            if spec.get("id"):
                key = label = str(spec["id"])
                label = f"step {key}"
            else:
                anchor = f"after {previous}" if previous else f"at the start of {parent}"
                base = f"{kind} {anchor}"
                counts[base] = counts.get(base, 0) + 1
                key = base if counts[base] == 1 else f"{base} #{counts[base]}"
                label = key
            found[key] = _StepInfo(key, label, stage, parent, kind, spec)
            previous = spec.get("id") or key
            for suffix, nested in _nested(spec):
                walk(stage, f"{previous}.{suffix}", nested)

    for stage in _list(raw.get("stages")):
        if isinstance(stage, Mapping):
            walk(str(stage.get("id")), str(stage.get("id")), stage.get("steps"))
    return found


def _nested(spec: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    if "wait_for" in spec:
        yield "on_event", spec.get("on_event")
        yield "on_timeout", spec.get("on_timeout")
    branch = spec.get("branch")
    if isinstance(branch, Mapping):
        for index, case in enumerate(_list(branch.get("cases"))):
            if isinstance(case, Mapping):
                yield f"case {index + 1}", case.get("steps")
        yield "else", branch.get("else")
    split = spec.get("split")
    if isinstance(split, Mapping):
        for variant in _list(split.get("variants")):
            if isinstance(variant, Mapping):
                yield f"variant {variant.get('name')}", variant.get("steps")


def _step_summary(info: _StepInfo) -> str:
    body = info.spec.get(info.kind)
    if info.kind == "email" and isinstance(body, Mapping):
        return f"email “{body.get('subject', '')}” ({body.get('template')})"
    if info.kind == "wait":
        return f"wait {body}"
    if info.kind == "wait_until":
        return describe.wait_until_text(body)
    if info.kind == "wait_for" and isinstance(body, Mapping):
        return f"wait for {body.get('event')} (timeout {body.get('timeout')})"
    if info.kind == "update":
        return describe.update_text(body)
    if info.kind == "webhook" and isinstance(body, Mapping):
        return f"webhook POST {body.get('url')}"
    if info.kind == "exit":
        return f"exit ({body})"
    return info.kind


def _step_changes(old: _StepInfo, new: _StepInfo) -> list[Change]:
    label = new.label
    changes: list[Change] = []

    def add(text: str, old_value: Any = None, new_value: Any = None) -> None:
        changes.append(Change("steps", CHANGED, label, f"{label}: {text}", old_value, new_value))

    if old.kind != new.kind:
        add(f"{old.kind} → {new.kind} ({_step_summary(new)})", old.kind, new.kind)
        return changes
    if old.stage != new.stage:
        changes.append(Change("steps", MOVED, label, f"{label} moved from stage {old.stage} to {new.stage}",
                              old.stage, new.stage))
    elif old.parent != new.parent:
        changes.append(Change("steps", MOVED, label, f"{label} moved from {old.parent} to {new.parent}",
                              old.parent, new.parent))
    if old.spec.get("if") != new.spec.get("if"):
        before, after = old.spec.get("if"), new.spec.get("if")
        if before is None:
            add(f"now only if {describe.condition_text(after)}", None, after)
        elif after is None:
            add(f"condition removed (was: only if {describe.condition_text(before)})", before, None)
        else:
            add(f"condition {describe.condition_text(before)} → {describe.condition_text(after)}", before, after)
    old_body, new_body = old.spec.get(old.kind), new.spec.get(new.kind)
    if old_body == new_body:
        return changes
    kind = new.kind
    if kind == "wait":
        add(f"wait {old_body} → {new_body}", old_body, new_body)
    elif kind in STEP_FIELDS and isinstance(old_body, Mapping) and isinstance(new_body, Mapping):
        for name in STEP_FIELDS[kind]:
            if old_body.get(name) != new_body.get(name):
                if kind == "wait_for" and name == "timeout":
                    add(f"timeout {_arrow(old_body.get(name), new_body.get(name))}", old_body.get(name), new_body.get(name))
                elif name == "subject" and (isinstance(old_body.get(name), Mapping) or isinstance(new_body.get(name), Mapping)):
                    for text, before, after in _subject_changes(old_body.get(name), new_body.get(name)):
                        add(text, before, after)
                else:
                    add(f"{name} {_quoted_arrow(old_body.get(name), new_body.get(name))}",
                        old_body.get(name), new_body.get(name))
    elif kind == "split" and isinstance(old_body, Mapping) and isinstance(new_body, Mapping):
        changes += _split_changes(label, old_body, new_body)
    elif kind == "branch" and isinstance(old_body, Mapping) and isinstance(new_body, Mapping):
        changes += _branch_changes(label, old_body, new_body)
    elif kind == "update":
        add(f"{describe.update_text(old_body)} → {describe.update_text(new_body)}", old_body, new_body)
    else:
        add(_arrow(old_body, new_body), old_body, new_body)
    return changes


def _subject_changes(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """A subject per locale changed locale by locale: ``subject (ja) “…” → “…”``, ``subject (tr) added “…”``
    (a plain subject counts as the first locale's, as the engine reads it)."""
    def per_locale(subject: Any, other: Any) -> dict[Any, Any]:
        if isinstance(subject, Mapping):
            return dict(subject)
        first = next(iter(other), None) if isinstance(other, Mapping) else None
        return {first: subject} if subject is not None else {}

    before, after = per_locale(old, new), per_locale(new, old)
    changes = []
    for tag in [*before, *(t for t in after if t not in before)]:
        if tag not in after:
            changes.append((f"subject ({tag}) removed “{before[tag]}”", before[tag], None))
        elif tag not in before:
            changes.append((f"subject ({tag}) added “{after[tag]}”", None, after[tag]))
        elif before[tag] != after[tag]:
            changes.append((f"subject ({tag}) {_quoted_arrow(before[tag], after[tag])}", before[tag], after[tag]))
    return changes


def _quoted_arrow(old: Any, new: Any) -> str:
    if isinstance(old, str) and isinstance(new, str):
        return f"“{old}” → “{new}”"
    return _arrow(old, new)


def _split_changes(label: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    def weights(body: Mapping[str, Any]) -> dict[Any, Any]:
        return {v.get("name"): v.get("weight") for v in _list(body.get("variants")) if isinstance(v, Mapping)}

    before, after = weights(old), weights(new)
    changes = []
    if before != after:
        text = ", ".join(
            f"{name} {before.get(name, '–')}% → {after.get(name, '–')}%" if name in before and name in after
            else (f"variant {name} added ({after[name]}%)" if name in after else f"variant {name} removed")
            for name in list(before) + [n for n in after if n not in before]
            if before.get(name) != after.get(name) or (name in before) != (name in after)
        )
        changes.append(Change("steps", CHANGED, label, f"{label}: split {text}", before, after))
    if (old.get("holdout") or 0) != (new.get("holdout") or 0):
        changes.append(Change("steps", CHANGED, label,
                              f"{label}: holdout {old.get('holdout') or 0}% → {new.get('holdout') or 0}%",
                              old.get("holdout"), new.get("holdout")))
    return changes


def _branch_changes(label: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    old_cases = [c.get("if") for c in _list(old.get("cases")) if isinstance(c, Mapping)]
    new_cases = [c.get("if") for c in _list(new.get("cases")) if isinstance(c, Mapping)]
    changes = []
    for index in range(max(len(old_cases), len(new_cases))):
        before = old_cases[index] if index < len(old_cases) else None
        after = new_cases[index] if index < len(new_cases) else None
        if before == after:
            continue
        if before is None:
            text = f"case {index + 1} added: if {describe.condition_text(after)}"
        elif after is None:
            text = f"case {index + 1} removed (was: if {describe.condition_text(before)})"
        else:
            text = f"case {index + 1} if {describe.condition_text(before)} → if {describe.condition_text(after)}"
        changes.append(Change("steps", CHANGED, label, f"{label}: {text}", before, after))
    return changes


def _pair_unnamed(old: dict[str, _StepInfo], new: dict[str, _StepInfo]) -> dict[str, _StepInfo]:
    """Re-key unnamed old steps whose anchor changed (a step moved around them) to their new name.

    Unmatched unnamed steps of the same kind in the same list are paired in
    order, so moving `tag` after `welcome` does not also report "wait after
    welcome removed, wait after tag added".
    """
    def unmatched(steps: dict[str, _StepInfo], other: dict[str, _StepInfo]) -> dict[tuple[str, str], list[str]]:
        groups: dict[tuple[str, str], list[str]] = {}
        for key, info in steps.items():
            if key not in other and not info.spec.get("id"):
                groups.setdefault((info.parent, info.kind), []).append(key)
        return groups

    renames: dict[str, str] = {}
    new_groups = unmatched(new, old)
    for group, old_keys in unmatched(old, new).items():
        for old_key, new_key in zip(old_keys, new_groups.get(group, []), strict=False):
            renames[old_key] = new_key
    if not renames:
        return old
    rekeyed = {}
    for key, info in old.items():
        target = renames.get(key, key)
        rekeyed[target] = _StepInfo(target, new[target].label if target in new else info.label, info.stage,
                                    info.parent, info.kind, info.spec)
    return rekeyed


def _order_changes(old: dict[str, _StepInfo], new: dict[str, _StepInfo]) -> list[Change]:
    """Steps that kept their list but changed place relative to the others."""
    changes = []
    parents = {info.parent for info in new.values()}
    for parent in sorted(parents):
        before = [k for k, info in old.items() if info.parent == parent and k in new and new[k].parent == parent]
        after = [k for k, info in new.items() if info.parent == parent and k in old and old[k].parent == parent]
        if before == after:
            continue
        matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
        kept = {before[block.a + i] for block in matcher.get_matching_blocks() for i in range(block.size)}
        siblings = [k for k, info in new.items() if info.parent == parent]
        for key in after:
            if key not in kept:
                position = after.index(key)
                index = siblings.index(key)
                anchor = f"after {siblings[index - 1]}" if index else f"at the start of {parent}"
                changes.append(Change("steps", MOVED, new[key].label, f"{new[key].label} reordered: now {anchor}",
                                      before.index(key), position))
    return changes


# ---------------------------------------------------------------- journey parts


def _mapping_changes(area: str, old: Any, new: Any, describe_value=_text) -> list[Change]:
    old = old if isinstance(old, Mapping) else {}
    new = new if isinstance(new, Mapping) else {}
    changes = []
    for name in list(old) + [n for n in new if n not in old]:
        if name not in new:
            changes.append(Change(area, REMOVED, f"{area}.{name}", f"{area}.{name} removed (was {describe_value(old[name])})", old[name], None))
        elif name not in old:
            changes.append(Change(area, ADDED, f"{area}.{name}", f"{area}.{name} added: {describe_value(new[name])}", None, new[name]))
        elif old[name] != new[name]:
            changes.append(Change(area, CHANGED, f"{area}.{name}",
                                  f"{area}.{name}: {describe_value(old[name])} → {describe_value(new[name])}",
                                  old[name], new[name]))
    return changes


def _stage_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    def stages(raw: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        return {str(s.get("id")): s for s in _list(raw.get("stages")) if isinstance(s, Mapping)}

    before, after = stages(old), stages(new)
    changes = []
    for stage_id, spec in after.items():
        if stage_id not in before:
            listed = spec.get("steps")
            steps = len(listed) if isinstance(listed, list) else 0
            changes.append(Change("stages", ADDED, f"stage {stage_id}",
                                  f"stage {stage_id} added: enters {describe.entry_text(spec.get('entry'))} ({steps} steps)",
                                  None, spec.get("entry")))
            continue
        was = before[stage_id]
        if was.get("entry") != spec.get("entry"):
            changes.append(Change("stages", CHANGED, f"stage {stage_id}",
                                  f"stage {stage_id} entry: {describe.entry_text(was.get('entry'))} → {describe.entry_text(spec.get('entry'))}",
                                  was.get("entry"), spec.get("entry")))
        for name in ("name", "priority"):
            if was.get(name) != spec.get(name):
                changes.append(Change("stages", CHANGED, f"stage {stage_id}",
                                      f"stage {stage_id} {name}: {_arrow(was.get(name), spec.get(name))}",
                                      was.get(name), spec.get(name)))
    for stage_id in before:
        if stage_id not in after:
            changes.append(Change("stages", REMOVED, f"stage {stage_id}", f"stage {stage_id} removed", before[stage_id].get("entry"), None))
    common_before = [s for s in before if s in after]
    common_after = [s for s in after if s in before]
    if common_before != common_after:
        changes.append(Change("stages", MOVED, "stages", f"stages reordered: {', '.join(common_before)} → {', '.join(common_after)}",
                              common_before, common_after))
    return changes


def _exit_changes(old: Any, new: Any) -> list[Change]:
    before = list(old or []) if isinstance(old, list) else []
    after = list(new or []) if isinstance(new, list) else []
    changes = []
    for index in range(max(len(before), len(after))):
        was = before[index] if index < len(before) else None
        now = after[index] if index < len(after) else None
        if was == now:
            continue
        if was is None:
            text = f"exit:{index} added: leaves when {describe.condition_text(now)}"
            kind = ADDED
        elif now is None:
            text = f"exit:{index} removed (was: leaves when {describe.condition_text(was)})"
            kind = REMOVED
        else:
            text = f"exit:{index}: {describe.condition_text(was)} → {describe.condition_text(now)}"
            kind = CHANGED
        changes.append(Change("exit", kind, f"exit:{index}", text, was, now))
    return changes


def _single(area: str, old: Any, new: Any, render) -> list[Change]:
    if old == new:
        return []
    if old is None:
        return [Change(area, ADDED, area, f"{area} added: {render(new)}", None, new)]
    if new is None:
        return [Change(area, REMOVED, area, f"{area} removed (was {render(old)})", old, None)]
    return [Change(area, CHANGED, area, f"{area}: {render(old)} → {render(new)}", old, new)]


def _whole_journey(raw: Mapping[str, Any], journey_id: str, status: str) -> list[Change]:
    """An added or removed journey told by what it does: its stages (entries) and every step, in order."""
    word = "added" if status == ADDED else "removed"
    changes = [Change("journey", status, f"journey {journey_id}", f"journey {journey_id} {word}")]
    stages = _stage_changes({}, raw)  # each stage as "stage X added: entry …"
    if status == REMOVED:
        stages = [Change(c.area, REMOVED, c.subject, c.text.replace(" added", " removed", 1), c.new, None)
                  for c in stages]
    changes += stages
    changes += [Change("steps", status, info.label, f"{info.label} in {info.parent}: {_step_summary(info)}",
                       None if status == ADDED else info.spec, info.spec if status == ADDED else None)
                for info in _steps(raw).values()]
    return changes


def diff_journeys(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
                  old_source: str | None = None, new_source: str | None = None) -> JourneyDiff:
    """What changed from ``old`` to ``new`` (raw journey mappings; either may be None)."""
    journey_id = str((new or old or {}).get("id", "?"))
    if old is None or new is None:
        present = new if new is not None else old
        assert present is not None  # compared only when one side has the journey
        return JourneyDiff(
            journey_id, ADDED if old is None else REMOVED,
            old_version=old.get("version") if old else None, new_version=new.get("version") if new else None,
            changes=_whole_journey(present, journey_id, ADDED if old is None else REMOVED),
            old_source=old_source, new_source=new_source,
        )
    changes: list[Change] = []
    if old.get("id") != new.get("id"):
        changes.append(Change("journey", CHANGED, "id", f"id {_arrow(old.get('id'), new.get('id'))}", old.get("id"), new.get("id")))
    for name in ("name", "description", "owner", "lifecycle"):
        changes += _single(name, old.get(name), new.get(name), _text)
    changes += _mapping_changes("settings", old.get("settings"), new.get("settings"))
    changes += _mapping_changes("segments", old.get("segments"), new.get("segments"), describe.condition_text)
    changes += _stage_changes(old, new)
    old_steps, new_steps = _steps(old), _steps(new)
    old_steps = _pair_unnamed(old_steps, new_steps)
    for key, info in new_steps.items():
        if key in old_steps:
            changes += _step_changes(old_steps[key], info)
        else:
            changes.append(Change("steps", ADDED, info.label,
                                  f"{info.label} added in {info.parent}: {_step_summary(info)}", None, info.spec))
    for key, info in old_steps.items():
        if key not in new_steps:
            changes.append(Change("steps", REMOVED, info.label,
                                  f"{info.label} removed from {info.parent} (was: {_step_summary(info)})", info.spec, None))
    changes += _order_changes(old_steps, new_steps)
    changes += _exit_changes(old.get("exit"), new.get("exit"))
    changes += _single("goal", old.get("goal"), new.get("goal"), describe.goal_text)
    changes += _single("migration", old.get("migration"), new.get("migration"), _text)
    meaning_changed = meaning_hash(old) != meaning_hash(new)
    result = JourneyDiff(journey_id, CHANGED if meaning_changed or old.get("version") != new.get("version") else "unchanged",
                         old.get("version"), new.get("version"), changes, old_source, new_source)
    if meaning_changed and not changes:  # something we do not describe field by field
        result.changes.append(Change("journey", CHANGED, "journey", "other changes (see the file diff)"))
    result.changes += _version_changes(result)
    return result


def _version_changes(result: JourneyDiff) -> list[Change]:
    old, new = result.old_version, result.new_version
    if result.version_missing:
        return [Change("version", CHANGED, "version",
                       f"version NOT bumped: still {new} (was {old}); bump it so contacts in flight keep v{old}",
                       old, new)]
    if old != new:
        return [Change("version", CHANGED, "version", f"version {old} → {new}", old, new)]
    return []


# ---------------------------------------------------------------- output


def format_text(diffs: list[JourneyDiff]) -> str:
    if not diffs:
        return "no journey changed\n"
    out = []
    for item in diffs:
        version = _version_label(item)
        out.append(f"{item.journey} ({item.status}{version})")
        for change in item.changes:
            mark = {"added": "+", "removed": "-", "moved": "~", "changed": "*"}.get(change.kind, "*")
            if change.area == "version" and item.version_missing:
                mark = "!"
            out.append(f"  {mark} {change.text}")
        out.append("")
    return "\n".join(out)


def _version_label(item: JourneyDiff) -> str:
    if item.old_version is not None and item.new_version is not None and item.old_version != item.new_version:
        return f", v{item.old_version} → v{item.new_version}"
    version = item.new_version if item.new_version is not None else item.old_version
    return f", v{version}" if version is not None else ""


def format_json(diffs: list[JourneyDiff]) -> str:
    return json.dumps({"journeys": [d.as_dict() for d in diffs]}, indent=2, default=str, ensure_ascii=False) + "\n"


def _md(text: str) -> str:
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace("*", "\\*").replace("_", "\\_").replace("`", "\\`").replace("\n", " "))


def format_markdown(diffs: list[JourneyDiff]) -> str:
    if not diffs:
        return "No journey changed.\n"
    icons = {"added": "➕", "removed": "➖", "moved": "↕️", "changed": "✏️"}
    out = []
    for item in diffs:
        out.append(f"### `{item.journey}` — {item.status}{_md(_version_label(item))}")
        out.append("")
        if item.version_missing:
            out.append(f"> [!WARNING]\n> The journey changed but its version is still {item.new_version}: bump `version`.")
            out.append("")
        for change in item.changes:
            out.append(f"- {icons.get(change.kind, '✏️')} {_md(change.text)}")
        out.append("")
    return "\n".join(out)


FORMATTERS = {"text": format_text, "json": format_json, "markdown": format_markdown}
