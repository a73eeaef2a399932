"""What a scenario's expectations name must exist in the journeys it runs.

``never_receives: last_nuge`` would otherwise pass for ever: no decision ever
names a step that does not exist. Each expectation's step, stage or journey
is looked up in the journeys the scenario simulates (its ``journeys:``, or
all), and anything unknown is an error at its file:line:col with the nearest
name ("did you mean"). A target that is a template's name rather than a
step's is told which steps send that template.

Used by ``journey validate`` (the loader) and ``journey test`` (the scenario
runner), so both report the same problems.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath

from runner.core.model import EmailStep, ExitStep, Journey, SplitStep, Step, WebhookStep
from runner.core.problems import Problem
from runner.language.schema import did_you_mean
from runner.language.yamlsource import YamlDocument

_STEP_KINDS = ("receives", "never_receives")
_JOURNEY_KINDS = ("reaches_goal", "exits")
_STEP_MAPPINGS = ("skipped", "deferred", "calls")  # {step, reason | times}
JOURNEY_FILE_SUFFIXES = (".yaml", ".yml")


def is_journey_file(text: object) -> bool:
    """Whether an item of a scenario's ``journeys:`` (or a deploy's) names a file rather than a journey id."""
    return isinstance(text, str) and text.endswith(JOURNEY_FILE_SUFFIXES)


def journey_file_items(data: object) -> list[tuple[list, str]]:
    """(path in the scenario, text) of every journey file its ``journeys:`` and ``deploy:`` name."""
    found: list[tuple[list, str]] = []
    if not isinstance(data, dict):
        return found
    for index, item in enumerate(_list(data.get("journeys"))):
        if is_journey_file(item):
            found.append((["journeys", index], item))
    for where, deploy in deploy_items(data.get("deploy")):
        for index, item in enumerate(_list(deploy.get("journeys"))):
            if is_journey_file(item):
                found.append(([*where, "journeys", index], item))
    return found


def deploy_items(spec: object) -> list[tuple[list, dict]]:
    """``deploy:`` is one mapping or a list of them: (path in the scenario, mapping) each."""
    if isinstance(spec, dict):
        return [(["deploy"], spec)]
    return [(["deploy", index], item) for index, item in enumerate(_list(spec)) if isinstance(item, dict)]


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def check_references(doc: YamlDocument, journeys: Sequence[Journey],
                     versions: Mapping[str, Journey] | None = None, project_exits: int = 0) -> list[Problem]:
    """Problems with the steps, stages and journeys a scenario's expectations name.

    ``journeys``: every journey of the project (valid ones); ``versions``: the
    journey files the scenario names, by their text; ``project_exits``: how many
    exit rules project.yaml has (every journey may exit with ``project_exit:N``). Expectations are checked
    against every version the scenario runs (those it starts with and those
    it deploys); unknown ids in ``journeys:`` itself are reported by the
    scenario's semantic checks.
    """
    data = doc.data if isinstance(doc.data, dict) else {}
    versions = versions or {}
    selected_ids = data.get("journeys")
    every = {journey.id: journey for journey in journeys}
    named = list(selected_ids) if isinstance(selected_ids, list) else list(every)
    for _where, deploy in deploy_items(data.get("deploy")):
        named += _list(deploy.get("journeys"))
    selected: list[Journey] = []
    for item in named:
        journey = versions.get(item) if is_journey_file(item) else every.get(item) if isinstance(item, str) else None
        if journey is not None and journey not in selected:
            selected.append(journey)
    checker = _References(doc, selected, every, project_exits)
    expectations = data.get("expect")
    for index, spec in enumerate(expectations if isinstance(expectations, list) else []):
        if isinstance(spec, dict):
            checker.expectation(["expect", index], spec)
            if isinstance(spec.get("among"), dict):
                checker.expectation(["expect", index, "among"], spec["among"])
    return checker.problems


class _References:
    def __init__(self, doc: YamlDocument, selected: list[Journey], every: dict[str, Journey], project_exits: int = 0):
        self.doc = doc
        self.project_exits = project_exits
        self.selected = selected
        self.every = every
        self.problems: list[Problem] = []

    def report(self, path: list, message: str, hint: str | None = None) -> None:
        self.problems.append(self.doc.problem(path, "ref.scenario", message, hint=hint))

    def _scope(self) -> str:
        return "the journeys this scenario runs" if len(self.selected) < len(self.every) else "the project"

    def expectation(self, path: list, spec: dict) -> None:
        for kind in _STEP_KINDS:
            if isinstance(spec.get(kind), str):
                self.step([*path, kind], spec[kind])
        for kind in _STEP_MAPPINGS:
            body = spec.get(kind)
            if isinstance(body, dict) and isinstance(body.get("step"), str):
                self.step([*path, kind, "step"], body["step"], kind)
        if isinstance(spec.get("holdout"), str):
            self.step([*path, "holdout"], spec["holdout"], "holdout")
        if isinstance(spec.get("in_stage"), str):
            self.stage([*path, "in_stage"], spec["in_stage"])
        for kind in _JOURNEY_KINDS:
            if isinstance(spec.get(kind), str):
                self.journey([*path, kind], spec[kind])
        if isinstance(spec.get("exits"), str) and isinstance(spec.get("reason"), str):
            self.exit_reason([*path, "reason"], spec["exits"], spec["reason"])

    def _versions(self, journey_id: str) -> list[Journey]:
        return [j for j in self.selected if j.id == journey_id]

    def step(self, path: list, target: str, kind: str = "receives") -> None:
        """A step id (which may contain dots: ``main.0``), or ``journey.step``, as the checker matches them."""
        hits = [(j, target) for j in self.selected if target in j.steps]
        journey_id, _, step_id = target.partition(".")
        if not hits and step_id and journey_id in self.every:
            versions = self._versions(journey_id)
            if not versions:
                return self.journey(path, journey_id, what=f"in `{target}`")
            hits = [(j, step_id) for j in versions if step_id in j.steps]
            if not hits:
                return self._unknown_step(path, target, step_id, versions[:1])
        if not hits:
            return self._unknown_step(path, target, target, self.selected)
        if not any(_fits(kind, j.steps[s]) for j, s in hits):
            journey, step_id = hits[0]
            self.report(path, f"step `{target}` is a `{journey.steps[step_id].kind}` step: {_MISFIT[kind][0]}",
                        hint=_MISFIT[kind][1])
        return None

    def exit_reason(self, path: list, journey_id: str, reason: str) -> None:
        """An ``exits`` reason the journey can give: goal, completed, exit:N, project_exit:N, or one of its
        exit steps' reasons."""
        versions = self._versions(journey_id)
        if not versions:
            return  # the journey itself is reported
        reasons = {"completed", *(f"project_exit:{i}" for i in range(self.project_exits))}
        for journey in versions:
            reasons |= {f"exit:{i}" for i in range(len(journey.exit))}
            reasons |= {s.reason for s in journey.steps.values() if isinstance(s, ExitStep)}
            if journey.goal is not None and journey.goal.exit_on_goal:
                reasons.add("goal")
        if reason in reasons:
            return
        suggestion = did_you_mean(reason, sorted(reasons))
        extra = f"; did you mean `{suggestion}`?" if suggestion else ""
        self.report(path, f"journey `{journey_id}` never exits with reason `{reason}`{extra}",
                    hint=f"its exit reasons: {', '.join(sorted(reasons))}")

    def _unknown_step(self, path: list, target: str, step_id: str, journeys: list[Journey]) -> None:
        elsewhere = [j.id for j in self.every.values() if step_id in j.steps and j not in self.selected]
        if elsewhere:
            return self.report(path, f"step `{step_id}` is in journey `{elsewhere[0]}`, which this scenario does "
                                     "not run", hint=f"add `{elsewhere[0]}` to `journeys:`")
        senders = [f"{j.id}.{s.id}" for j in journeys for s in j.email_steps() if step_id in _template_names(s)]
        if senders:
            return self.report(path, f"`{step_id}` is a template, not a step; the step(s) that send it: "
                                     f"{', '.join(senders)}", hint="expectations name step ids")
        suggestion = did_you_mean(step_id, sorted({s for j in journeys for s in j.steps}))
        if suggestion and step_id != target:
            suggestion = f"{target.partition('.')[0]}.{suggestion}"
        elif suggestion is None and "." in target:  # a misspelt journey in journey.step
            journey_id, _, rest = target.partition(".")
            guess = did_you_mean(journey_id, sorted(j.id for j in journeys))
            suggestion = f"{guess}.{rest}" if guess and rest in self.every[guess].steps else None
        extra = f"; did you mean `{suggestion}`?" if suggestion else ""
        where = f"journey `{journeys[0].id}`" if step_id != target else self._scope()
        return self.report(path, f"there is no step `{step_id}` in {where}{extra}",
                           hint=None if suggestion else _sending_steps(journeys))

    def stage(self, path: list, target: str) -> None:
        journey_id, _, stage_id = target.rpartition(".")
        if journey_id and journey_id not in self.every:
            return self.journey(path, journey_id, what=f"in `{target}`")
        candidates = [j for j in self.selected if not journey_id or j.id == journey_id]
        names = sorted({s.id for j in candidates for s in j.stages})
        if stage_id not in names:
            suggestion = did_you_mean(stage_id, names)
            extra = f"; did you mean `{suggestion}`?" if suggestion else ""
            self.report(path, f"there is no stage `{stage_id}` in {self._scope() if not journey_id else journey_id}"
                              f"{extra}")
        return None

    def journey(self, path: list, journey_id: str, what: str = "") -> None:
        if any(j.id == journey_id for j in self.selected):
            return
        where = f" {what}" if what else ""
        if journey_id in self.every:
            self.report(path, f"journey `{journey_id}`{where} is not one this scenario runs",
                        hint=f"add `{journey_id}` to `journeys:`")
            return
        suggestion = did_you_mean(journey_id, sorted(self.every))
        extra = f"; did you mean `{suggestion}`?" if suggestion else ""
        self.report(path, f"there is no journey `{journey_id}`{where}{extra}")


def _fits(kind: str, step: Step) -> bool:
    """Whether an expectation of ``kind`` can ever be met (or fail) at ``step``."""
    if kind == "calls":
        return isinstance(step, WebhookStep)
    if kind == "holdout":
        return isinstance(step, SplitStep) and step.holdout > 0
    if kind == "deferred":
        return isinstance(step, EmailStep)  # sends wait for a window, quiet hours or a cap
    if kind == "skipped":
        return isinstance(step, (EmailStep, WebhookStep)) or step.if_ is not None
    return isinstance(step, (EmailStep, WebhookStep))


_MISFIT = {  # kind -> (why it can never be met, what to name instead)
    "receives": ("it sends nothing, so this expectation can never be met (or never fail)",
                 "name an email or webhook step"),
    "calls": ("only a `webhook` step makes calls", "name a webhook step (emails: `receives`)"),
    "holdout": ("only a `split` with a `holdout` holds contacts out", "name a split step that has `holdout:`"),
    "deferred": ("only an email waits for a send window, quiet hours or a cap", "name an email step"),
    "skipped": ("it has no `if` and sends nothing, so it is never skipped", "name an email or webhook step, "
                "or a step with `if:`"),
}


def _template_names(step: EmailStep) -> set[str]:
    """A template's names as an author may write them: ``onboarding/nudge``, ``nudge``, ``nudge.html``."""
    names = set()
    for template in (step.template, step.text_template):
        if template:
            path = PurePath(template)
            names |= {template, f"{template}.html", f"{template}.txt", path.name, path.stem,
                      f"{path.name}.html", f"{path.name}.txt"}
    return names


def _sending_steps(journeys: list[Journey], limit: int = 12) -> str | None:
    """The steps an expectation can name, when there is no close match to suggest."""
    names = sorted({s.id for j in journeys for s in j.steps.values() if isinstance(s, (EmailStep, WebhookStep))})
    if not names:
        return None
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return f"steps that send: {', '.join(names[:limit])}{more}"
