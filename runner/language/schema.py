"""JSON Schema checks with messages a marketer can act on.

jsonschema finds every error; this module turns each into a ``Problem`` at
the right ``file:line:col`` (through ``yamlsource``) and rewrites the raw
message: unknown keys get a "did you mean …", ``oneOf`` failures name the
alternative that was nearest and what it lacks, patterns are explained with
the schema's own ``description`` instead of a regular expression.

Validators are compiled once per schema and reused. Most files are valid,
so a compiled Rust validator (jsonschema-rs) answers "valid?" first, and the
slower pure-Python jsonschema — whose errors carry the detail the messages
need — runs only on files that have problems.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import cache
from typing import Any, cast

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from runner.core.problems import Problem
from runner.core.stepkinds import STEP_KINDS, registered_schemas
from runner.language.resources import SCHEMA_NAMES, load_schema
from runner.language.yamlsource import YamlDocument

_JSON_TYPES = {
    str: "text", int: "a whole number", float: "a number", bool: "true/false",
    list: "a list", dict: "a mapping", type(None): "empty (null)",
}
_SCHEMA_TYPES = {
    "string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
    "array": "a list", "object": "a mapping (key: value)", "null": "empty",
}


def validator(name: str) -> Draft7Validator:
    """A compiled Draft-07 validator for ``schemas/<name>.schema.json`` and the registered step kinds (cached)."""
    return _validator(name, _added_kinds(name))


def _added_kinds(name: str) -> tuple[str, ...]:
    """The step kinds registered beyond the built-in ones that the schema ``name`` must accept (a cache key)."""
    return tuple(sorted(registered_schemas())) if name == "journey" else ()


def schema_with_kinds(name: str) -> dict[str, Any]:
    """The schema ``name``; the journey schema also accepts every registered step kind's body.

    A kind added after the built-in ones (``runner.core.stepkinds``) brings the
    JSON Schema of its body: it becomes a step property, one more choice of the
    step's ``oneOf``, and needs an ``id`` when the kind says so.
    """
    schema = load_schema(name)
    added = registered_schemas() if name == "journey" else {}
    if not added:
        return schema
    schema = copy.deepcopy(schema)
    step = schema["definitions"]["step"]
    for kind_name, body in added.items():
        step["properties"][kind_name] = dict(body)
        step["oneOf"].append({"required": [kind_name]})
        if STEP_KINDS[kind_name].needs_id:
            step["allOf"].append({"if": {"required": [kind_name]}, "then": {"required": ["id"]}})
    return schema


@cache
def _validator(name: str, added_kinds: tuple[str, ...]) -> Draft7Validator:
    registry: Registry = Registry()
    for other in SCHEMA_NAMES:
        schema = schema_with_kinds(other)
        registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    return Draft7Validator(schema_with_kinds(name), registry=registry)


def _fast_validator(name: str) -> Any:
    return _fast_validator_for(name, _added_kinds(name))


@cache
def _fast_validator_for(name: str, added_kinds: tuple[str, ...]) -> Any:
    try:
        import jsonschema_rs
    except ImportError:  # optional speed-up: the Python validator alone gives the same answers
        return None
    return jsonschema_rs.Draft7Validator(schema_with_kinds(name))


def is_valid(data: Any, schema_name: str) -> bool:
    """Whether ``data`` follows the schema (fast path; same answer as ``check() == []``)."""
    fast = _fast_validator(schema_name)
    if fast is not None:
        try:
            return bool(fast.is_valid(data))
        except (ValueError, TypeError, OverflowError):  # values JSON cannot hold (huge ints, NaN)
            pass
    return validator(schema_name).is_valid(data)


def check(document: YamlDocument, schema_name: str) -> list[Problem]:
    """Every schema problem in ``document``, each placed at its line and column."""
    if is_valid(document.data, schema_name):
        return []
    found: list[tuple[tuple, Problem]] = []
    for error in validator(schema_name).iter_errors(document.data):
        found.extend(_explain(error, document))
    return [_comma_cut_hint(problem, document) for problem in _tidy(found)]


def _comma_cut_hint(problem: Problem, document: YamlDocument) -> Problem:
    """Point out a comma that ended a text inside ``{…}`` early, where the problem sits on its remainder."""
    cut = document.comma_cuts.get((problem.line, problem.col))
    if cut is None:
        return problem
    key, text = cut
    return replace(problem, hint=f'a comma ends a value inside {{…}}; quote the text: {key}: "{text}"')


def dotted(path: Iterable[str | int]) -> str:
    """``["stages", 0, "steps"]`` -> ``stages[0].steps`` (how problems name a place)."""
    text = ""
    for item in path:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text or "the file"


_STEP_LISTS = frozenset({"steps", "on_event", "on_timeout", "then", "else"})


def place(path: Sequence[str | int], data: Any) -> str:
    """How a message names a place: by the innermost step's (or stage's) id where it has one.

    ``stages[0].steps[4].on_timeout[0].email`` reads ``step `nudge` (email)``: a marketer
    knows steps by the ids they wrote, not by their position.
    """
    named, rest_from = "", 0
    node = data
    for index, item in enumerate(path):
        parent_key = path[index - 1] if index else None
        node = _child(node, item)
        if node is None:
            break
        if not isinstance(item, int) or not isinstance(node, dict):
            continue
        own_id = node.get("id") if isinstance(node.get("id"), str) else None
        if parent_key in _STEP_LISTS and own_id is not None:
            named, rest_from = f"step `{own_id}`", index + 1
        elif parent_key in _STEP_LISTS and named:  # a step without id (a wait): by its place in a named one
            within = named if parent_key == "steps" else f"{parent_key} of {named}"
            named, rest_from = f"step {item + 1} in {within}", index + 1
        elif parent_key == "stages" and own_id is not None:
            named, rest_from = f"stage `{own_id}`", index + 1
    if not named:
        return dotted(path)
    rest = dotted(path[rest_from:]) if rest_from < len(path) else ""
    return f"{named} ({rest})" if rest else named


def _child(node: Any, item: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(item)
    if isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
        return node[item]
    return None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``word``, if any is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _suggest(word: str, choices: Iterable[str]) -> str:
    match = did_you_mean(str(word), choices)
    return f"; did you mean `{match}`?" if match else ""


def _show(value: Any) -> str:
    text = str(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    if value is None:
        text = "null"
    return text if len(text) <= 40 else text[:37] + "..."


# Each explanation is ((kind, path, key), Problem); the key lets _tidy drop
# problems that another one already explains.
Explained = tuple[tuple, Problem]


def _schema_of(error: ValidationError) -> dict[str, Any]:
    """The subschema that failed: a mapping in our Draft-07 schemas (the stubs also allow a bool)."""
    return cast(dict[str, Any], error.schema)


def _value_of(error: ValidationError) -> Any:
    """The failing keyword's value in the schema (the stubs add "unset", which a raised error never has)."""
    return error.validator_value


def _instance_of(error: ValidationError) -> Any:
    """The value that failed (the stubs add "unset", which a raised error never has)."""
    return error.instance


def _explain(error: ValidationError, doc: YamlDocument) -> list[Explained]:
    path = list(error.absolute_path)
    kind = error.validator
    where = place(path, doc.data)
    schema_path = list(error.relative_schema_path)

    if "propertyNames" in schema_path:
        return [_property_name_problem(error, doc, path)]
    if kind == "additionalProperties":
        allowed = _keys_for_kind(_schema_of(error), _instance_of(error)) or sorted(_schema_of(error).get("properties", {}))
        extras = [key for key in _instance_of(error) if key not in _schema_of(error).get("properties", {})]
        return [
            (("unknown", tuple(path), key, did_you_mean(key, allowed)),
             doc.problem(path + [key], "schema.unknown-key",
                         f"unknown key `{key}` in {where}{_suggest(key, allowed)}",
                         hint=_allowed_hint(allowed), key=True))
            for key in extras
        ]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else str(_value_of(error))
        if "then" in schema_path and missing == "id":
            action = next((k for k in _instance_of(error) if k not in ("if", "id")), "this")
            article = "an" if action[0] in "aeiou" else "a"
            message = f"{article} `{action}` step needs an `id` (in {where})"
        else:
            message = f"missing required key `{missing}` in {where}"
        return [(("required", tuple(path), missing), doc.problem(path, "schema.required", message, key=True))]
    if kind == "type":
        return [(("type", tuple(path)), _type_problem(error, doc, path))]
    if kind == "enum":
        choices = [str(c) for c in _value_of(error)]
        return [(("enum", tuple(path)), doc.problem(
            path, "schema.enum",
            f"`{_show(_instance_of(error))}` is not allowed for {where}; use one of: {', '.join(choices)}"
            f"{_suggest(str(_instance_of(error)), choices)}"))]
    if kind == "pattern":
        explanation = _schema_of(error).get("description", f"it must match {_value_of(error)}")
        return [(("pattern", tuple(path)), doc.problem(
            path, "schema.pattern", f"`{_show(_instance_of(error))}` is not valid for {where}: {explanation}",
            hint=duration_hint(_instance_of(error)) or naive_instant_hint(_instance_of(error))))]
    if kind in ("oneOf", "anyOf"):
        return _alternatives_problem(error, doc, path)
    if kind == "dependencies":
        own, needs = next(
            ((k, v) for k, v in _value_of(error).items()
             if k in _instance_of(error) and any(n not in _instance_of(error) for n in v)),
            ("this key", []),
        )
        return [(("dependency", tuple(path), own), doc.problem(
            path + [own], "schema.dependency",
            f"`{own}` only works together with `{'`, `'.join(needs)}` (in {where})", key=True))]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {"minimum": "at least", "maximum": "at most",
                 "exclusiveMinimum": "more than", "exclusiveMaximum": "less than"}[kind]
        return [((kind, tuple(path)), doc.problem(
            path, "schema.range", f"{where} must be {bound} {_value_of(error)} (got {_show(_instance_of(error))})"))]
    if kind in ("minItems", "minLength", "minProperties"):
        return [((kind, tuple(path)), doc.problem(path, "schema.empty", f"{where} must not be empty", key=True))]
    if kind == "maxLength":  # an id goes into headers (List-Id) and keys: 5,000 characters failed every send
        return [((kind, tuple(path)), doc.problem(
            path, "schema.too-long", f"{where} is {len(_instance_of(error))} characters long; at most "
            f"{_value_of(error)}"))]
    if kind == "maxItems":
        return [((kind, tuple(path)), doc.problem(
            path, "schema.too-many", f"{where} takes at most {_value_of(error)} items"))]
    if kind == "uniqueItems":
        return [((kind, tuple(path)), doc.problem(path, "schema.duplicate", f"{where} lists the same value twice"))]
    return [((kind, tuple(path)), doc.problem(path, f"schema.{kind}", f"{where}: {error.message}"))]


_UNIT_WORDS = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d", "w": "w", "wk": "w", "week": "w", "weeks": "w",
}
_SPELLED_DURATION = re.compile(r"\s*(\d+)\s*([a-z]+)\s*", re.IGNORECASE)


def duration_hint(value: Any) -> str | None:
    """``"3 days"`` -> ``write 3d``: the short form of a duration spelled out in words, if it is one."""
    if not isinstance(value, str):
        return None
    parts = []
    for chunk in re.split(r",|\band\b", value):
        match = _SPELLED_DURATION.fullmatch(chunk)
        unit = _UNIT_WORDS.get(match.group(2).lower()) if match else None
        if match is None or unit is None:
            return None
        parts.append(f"{match.group(1).lstrip('0') or '0'}{unit}")  # no int(): 5,000 digits would raise
    short = "".join(parts)
    return f"write {short}" if short and short != value else None


_NAIVE_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?")


def naive_instant_hint(value: Any) -> str | None:
    """``2026-03-04T10:00`` -> add its time zone: an instant without one means a different moment on every clock."""
    if not isinstance(value, str) or not _NAIVE_INSTANT.fullmatch(value.strip()):
        return None
    text = value.strip().replace(" ", "T")
    return (f"an instant needs its time zone, or it names a different moment for every contact: "
            f"write {text}Z (UTC) or {text}+03:00 (its UTC offset); or a time relative to the start: +2d 10:00")


def _allowed_hint(allowed: Sequence[str]) -> str:
    return "allowed here: " + ", ".join(allowed) if allowed else "no keys are allowed here"


def _property_name_problem(error: ValidationError, doc: YamlDocument, path: list) -> Explained:
    key = _instance_of(error)
    where = place(path, doc.data)
    if error.validator == "enum":
        allowed = [str(k) for k in _value_of(error)]
        kind = allowed[0]
        return (("not-here", tuple(path), key), doc.problem(
            path + [key], "schema.unknown-key",
            f"`{key}` cannot be used together with `{kind}` (in {where}){_suggest(key, allowed)}",
            hint=_allowed_hint(allowed), key=True))
    explanation = _schema_of(error).get("description", "")
    return (("name", tuple(path), key), doc.problem(
        path + [key], "schema.pattern", f"`{key}` is not a valid name in {where}: {explanation}", key=True))


def _type_problem(error: ValidationError, doc: YamlDocument, path: list) -> Problem:
    expected = _value_of(error) if isinstance(_value_of(error), list) else [_value_of(error)]
    wanted = " or ".join(_SCHEMA_TYPES.get(t, t) for t in expected)
    got = _JSON_TYPES.get(type(_instance_of(error)), type(_instance_of(error)).__name__)
    hint = None
    description = _schema_of(error).get("description", "")
    if "string" in expected and isinstance(_instance_of(error), (int, float)) and "duration" in description.lower():
        hint = f"add a unit, e.g. {_instance_of(error)}d"
    elif "string" in expected and "HH:MM" in description:
        hint = 'quote times of day: "09:00"'
    elif isinstance(_instance_of(error), str) and ("integer" in expected or "number" in expected) \
            and _is_number(_instance_of(error)):
        hint = "remove the quotes around the number"
    elif "object" in expected and isinstance(_instance_of(error), str):
        hint = "write it as `key: value` lines indented below, or {key: value}"
    where = place(path, doc.data)
    shown = f'"{_show(_instance_of(error))}"' if isinstance(_instance_of(error), str) else _show(_instance_of(error))
    return doc.problem(path, "schema.type", f"{where} must be {wanted}, not {got} ({shown})",
                       hint=hint)


def _is_number(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


def _discriminators(alternatives: list[dict]) -> list[str] | None:
    """Keys of a 'exactly one of these keys' oneOf, or None for other oneOfs."""
    keys = []
    for alternative in alternatives:
        if set(alternative) != {"required"} or len(alternative["required"]) != 1:
            return None
        keys.append(alternative["required"][0])
    return keys


def _alternatives_problem(error: ValidationError, doc: YamlDocument, path: list) -> list[Explained]:
    where = place(path, doc.data)
    alternatives = _value_of(error)
    keys = _discriminators(alternatives)
    if keys is not None and isinstance(_instance_of(error), dict):
        present = [key for key in keys if key in _instance_of(error)]
        options = ", ".join(f"`{k}`" for k in keys)
        if not present:
            nearest = _nearest_kind(_schema_of(error), keys, _instance_of(error))
            lacks = f"; it has none (`{nearest}` seems to be missing)" if nearest else "; it has none"
            return [(("one-of-none", tuple(path)), doc.problem(
                path, "schema.one-of", f"{where} needs exactly one of {options}{lacks}"))]
        return [(("one-of-many", tuple(path)), doc.problem(
            path + [present[1]], "schema.one-of",
            f"{where} takes exactly one of {options}; it has {' and '.join(f'`{k}`' for k in present)}",
            hint="keep one of them, or split it into separate items", key=True))]
    # Typed alternatives: explain the one whose type fits the value, if exactly one does.
    fitting = [i for i, alternative in enumerate(alternatives) if _type_fits(alternative, _instance_of(error))]
    if len(fitting) == 1:
        inner = [e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] == fitting[0]]
        if inner:
            results: list[Explained] = []
            description = _schema_of(error).get("description")
            for sub in inner:
                for key, problem in _explain(sub, doc):
                    if description and problem.hint is None:  # say what else would be accepted
                        problem = replace(problem, hint=description)
                    results.append((key, problem))
            return results
    description = _schema_of(error).get("description")
    nearest = best_match(error.context) if error.context else None
    detail = f" ({nearest.message})" if nearest is not None and len(nearest.message) < 120 else ""
    message = (f"`{_show(_instance_of(error))}` is not valid for {where}: {description}" if description
               else f"`{_show(_instance_of(error))}` is not valid for {where}{detail}")
    return [(("alternatives", tuple(path)), doc.problem(path, "schema.one-of", message,
                                                       hint=duration_hint(_instance_of(error)) or naive_instant_hint(_instance_of(error))))]


def _keys_for_kind(schema: dict, instance: Any) -> list[str] | None:
    """The keys allowed for the kind this mapping already is (an `attribute` condition takes operators)."""
    if not isinstance(instance, dict):
        return None
    for rule in schema.get("allOf", []):
        required = rule.get("if", {}).get("required", [])
        allowed = rule.get("then", {}).get("propertyNames", {}).get("enum")
        if len(required) == 1 and required[0] in instance and allowed:
            return list(allowed)
    return None


def _nearest_kind(schema: dict, kinds: list[str], instance: dict) -> str | None:
    """The kind whose own keys the mapping uses most (``where``/``count`` -> ``event``), if any.

    Kinds declare their keys in the schema as ``if: {required: [kind]}`` /
    ``then: {propertyNames: {enum: [...]}}``.
    """
    best, best_score = None, 0
    for rule in schema.get("allOf", []):
        required = rule.get("if", {}).get("required", [])
        allowed = rule.get("then", {}).get("propertyNames", {}).get("enum", [])
        if len(required) != 1 or required[0] not in kinds:
            continue
        own = set(allowed) - {required[0], "if"}
        score = len(own & set(instance))
        if score > best_score:
            best, best_score = required[0], score
    return best


def _type_fits(alternative: dict, instance: Any) -> bool:
    schema = alternative
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = _definition(name)
    types = schema.get("type")
    if types is None:
        if "enum" in schema:
            return instance in schema["enum"]
        if "anyOf" in schema:
            return any(_type_fits(option, instance) for option in schema["anyOf"])
        return True
    types = types if isinstance(types, list) else [types]
    checker = Draft7Validator.TYPE_CHECKER
    return any(checker.is_type(instance, t) for t in types)


def _definition(name: str) -> dict:
    for schema_name in SCHEMA_NAMES:
        definitions = schema_with_kinds(schema_name).get("definitions", {})
        if name in definitions:
            return definitions[name]
    return {}


def _tidy(found: list[Explained]) -> list[Problem]:
    """Drop problems another one explains better; keep the rest in file order."""
    unknown = {(key[1], key[2]) for key, _ in found if key[0] == "unknown"}
    suggested = {(key[1], key[3]) for key, _ in found if key[0] == "unknown" and key[3]}
    unknown_parents = {key[1] for key, _ in found if key[0] in ("unknown", "not-here")}
    too_many = {key[1] for key, _ in found if key[0] == "one-of-many"}
    kept: list[Problem] = []
    seen: set[Problem] = set()
    for key, problem in found:
        if key[0] == "not-here" and (key[1], key[2]) in unknown:
            continue  # "unknown key" already says it
        if key[0] == "not-here" and key[1] in too_many:
            continue  # "takes exactly one of" already says it
        if key[0] == "one-of-none" and key[1] in unknown_parents:
            continue  # the misspelt key is why no alternative matched
        if key[0] == "required" and (key[1], key[2]) in suggested:
            continue  # "unknown key `subjct`; did you mean `subject`?" already says it
        if problem not in seen:
            seen.add(problem)
            kept.append(problem)
    return sorted(kept, key=lambda p: (p.line, p.col, p.code))
