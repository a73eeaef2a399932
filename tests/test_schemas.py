"""The JSON Schemas: valid draft-07, editor-friendly, and in step with the language contract."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from runner.language import schema
from runner.language.resources import SCHEMA_NAMES, load_schema
from runner.language.yamlsource import load_file, parse_text

REPO = Path(__file__).resolve().parent.parent
OPEN_MAPS = {  # objects that deliberately take any keys (user data)
    "set", "payload", "attributes", "properties",
}


def _subschemas(node, path=()):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _subschemas(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _subschemas(value, path + (index,))


def _resolve(name: str, node: dict) -> dict:
    if "$ref" in node:
        return load_schema(name)["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    return node


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_no_key_is_written_twice(name: str):
    """json.loads keeps the last of two equal keys silently: an edit to the first copy would do nothing."""
    repeated = []

    def remember_repeats(pairs):
        keys = [key for key, _ in pairs]
        repeated.extend(sorted({key for key in keys if keys.count(key) > 1}))
        return dict(pairs)

    json.loads((REPO / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8"), object_pairs_hook=remember_repeats)
    assert repeated == []


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft7_with_an_id(name: str):
    document = load_schema(name)
    Draft7Validator.check_schema(document)
    assert document["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert document["$id"].endswith(f"/{name}.schema.json")


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_property_has_a_description(name: str):
    missing = []
    for path, node in _subschemas(load_schema(name)):
        if path and path[-1] == "properties" and isinstance(node, dict) and "type" not in node:
            for key, value in node.items():
                if isinstance(value, dict) and "description" not in _resolve(name, value):
                    missing.append("/".join(map(str, path + (key,))))
    assert missing == []


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_objects_with_properties_reject_unknown_keys(name: str):
    loose = []
    for path, node in _subschemas(load_schema(name)):
        if isinstance(node, dict) and isinstance(node.get("properties"), dict) and node.get("type") == "object":
            if node.get("additionalProperties") is not False and path[-1] not in OPEN_MAPS:
                loose.append("/".join(map(str, path)))
    assert loose == []


def test_shared_definitions_are_identical_in_every_schema():
    """Definitions are copied (editors cannot follow refs across files reliably); they must not drift."""
    journey = load_schema("journey")["definitions"]
    project = load_schema("project")["definitions"]
    shared = set(journey) & set(project)
    assert {"condition", "matcher", "where", "count", "duration", "name"} <= shared
    assert [name for name in sorted(shared) if journey[name] != project[name]] == []
    scenario, contacts = load_schema("scenario")["definitions"], load_schema("contacts")["definitions"]
    assert scenario["contact"] == contacts["contact"] and scenario["event"] == contacts["event"]


def test_schemas_ship_inside_the_package():
    folder = files("runner") / "schemas"
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".schema.json")) == sorted(
        f"{n}.schema.json" for n in SCHEMA_NAMES
    )


def _language_examples() -> list[tuple[str, str]]:
    text = (REPO / "docs" / "language.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        match = re.search(r"\$schema=\S*?(\w+)\.schema\.json", block)
        has_content = any(line.strip() and not line.lstrip().startswith("#") for line in block.splitlines())
        if match and has_content:
            found.append((match.group(1), block))
    return found


@pytest.mark.parametrize("kind,block", _language_examples(), ids=lambda v: v if len(v) < 20 else "")
def test_examples_in_the_language_contract_follow_the_schemas(kind: str, block: str):
    doc, problems = parse_text(block, "language.md")
    assert problems == []
    assert schema.check(doc, kind) == []


def test_the_contract_has_examples_for_every_schema():
    assert {kind for kind, _ in _language_examples()} == set(SCHEMA_NAMES)


def _sample_files() -> list[tuple[str, Path]]:
    samples = [("project", REPO / "project.yaml")] if (REPO / "project.yaml").exists() else []
    samples += [("journey", p) for p in sorted((REPO / "journeys").glob("*.yaml"))]
    samples += [("contacts", p) for p in sorted((REPO / "examples").glob("**/contacts*.yaml"))]
    samples += [("scenario", p) for p in sorted((REPO / "examples").glob("**/*.scenario.yaml"))]
    samples += [("project", REPO / "tests/hostile/project.yaml"), ("journey", REPO / "tests/hostile/journeys/onboarding.yaml")]
    return samples


@pytest.mark.parametrize("kind,path", _sample_files(), ids=lambda v: getattr(v, "name", v))
def test_sample_files_follow_the_schemas(kind: str, path: Path):
    doc, problems = load_file(path)
    assert problems == []
    assert schema.check(doc, kind) == []


def test_fast_and_full_validators_agree_on_broken_documents():
    cases = [
        {"id": "x", "version": True, "name": "x", "stages": [{"id": "a", "entry": {"event": "e"}}]},
        {"id": "x", "version": 1, "name": "x", "stages": [{"id": "a", "entry": {"event": "e", "segment": "s"}}]},
        {"id": "x", "version": 1, "name": "x", "stages": [{"id": "a", "entry": {"event": "e"}, "steps": [{"wait": "0x"}]}]},
        {"id": "x", "version": 1, "name": "x", "stages": [{"id": "a", "entry": {"event": "e"}}]},
    ]
    for case in cases:
        assert schema.is_valid(case, "journey") == schema.validator("journey").is_valid(case)


def test_did_you_mean():
    assert schema.did_you_mean("subjct", ["subject", "template"]) == "subject"
    assert schema.did_you_mean("zzz", ["subject", "template"]) is None
    assert schema.dotted(["stages", 0, "steps", 2, "email"]) == "stages[0].steps[2].email"


def test_schemas_load_from_the_built_wheel(tmp_path: Path, built_wheel: Path):
    """The wheel carries schemas/ (through the runner/schemas link) and load_schema finds them there."""
    import subprocess
    import sys
    import zipfile

    wheel = built_wheel
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"runner/schemas/{n}.schema.json" for n in SCHEMA_NAMES} <= set(names)
    probe = "from runner.language.resources import load_schema; import runner; print(runner.__file__); print(load_schema('journey')['$id'])"
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(wheel)},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert str(wheel) in run.stdout.splitlines()[0]  # imported from the wheel, not the checkout
    assert run.stdout.splitlines()[1].endswith("/journey.schema.json")


_REGEX_BITS = re.compile(r"\(\?[=!]|\[[A-Za-z0-9]-|\]\*|\]\+|\\[sd.]|\^\[|\$$")


def _strings_in(node):
    for _path, sub in _subschemas(node):
        for key in ("description", "patternErrorMessage"):
            if isinstance(sub.get(key), str):
                yield sub[key]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_pattern_tells_editors_what_to_write_with_examples(name: str):
    """An editor shows `patternErrorMessage` instead of "does not match ^(?=[0-9])…"; `examples` complete."""
    lacking = []
    for path, node in _subschemas(load_schema(name)):
        if not isinstance(node.get("pattern"), str):
            continue
        examples = node.get("examples") or []
        if not node.get("patternErrorMessage") or not examples:
            lacking.append("/".join(map(str, path)))
        lacking += [f"{'/'.join(map(str, path))}: example {e!r} breaks the pattern"
                    for e in examples if not re.search(node["pattern"], e)]
    assert lacking == []


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_no_message_for_people_shows_a_regular_expression(name: str):
    assert [text for text in _strings_in(load_schema(name)) if _REGEX_BITS.search(text)] == []


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_enum_hover_names_every_accepted_form(name: str):
    """An enum's description lists its values, and the other forms its property accepts (`reentry: {after: …}`)."""
    full = load_schema(name)
    silent = []
    for path, node in _subschemas(full):
        alternatives = node.get("anyOf") or node.get("oneOf") or []
        for option in [node] + alternatives:
            enum = _resolve(name, option).get("enum") if isinstance(option, dict) else None
            if not isinstance(enum, list) or "propertyNames" in path:
                continue
            text = _resolve(name, option).get("description", "")
            needed = [str(value) for value in enum]
            needed += [key for other in alternatives if other is not option
                       for key in _resolve(name, other).get("required", [])]
            missing = [word for word in needed if not re.search(rf"\b{re.escape(word)}\b", text)]
            if missing:
                silent.append(f"{'/'.join(map(str, path))}: {text!r} does not name {missing}")
    assert silent == []
