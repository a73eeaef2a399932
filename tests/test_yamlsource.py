"""Safe YAML loading with positions: what is accepted, what is refused, and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.language.yamlsource import MAX_ALIAS_NODES, MAX_BYTES, MAX_DEPTH, load_file, parse_text


def parse(text: str):
    return parse_text(text, "f.yaml")


def codes(text: str) -> list[str]:
    return [f"{p.line}:{p.col} {p.code}" for p in parse(text)[1]]


def test_scalars_resolve_like_yaml_1_2_core():
    doc, problems = parse(
        "a: 1\nb: -2\nc: 1.5\nd: true\ne: False\nf: ~\ng: null\nh:\n"
        "i: yes\nj: no\nk: on\nl: 18:00\nm: 2026-03-02\nn: '7'\no: 0x1f\np: 1e3\nq: .inf\n"
    )
    assert problems == []
    assert doc.data == {
        "a": 1, "b": -2, "c": 1.5, "d": True, "e": False, "f": None, "g": None, "h": None,
        "i": "yes", "j": "no", "k": "on", "l": "18:00", "m": "2026-03-02", "n": "7", "o": 31,
        "p": 1000.0, "q": float("inf"),
    }


def test_keys_are_always_text():
    doc, _ = parse("1: a\ntrue: b\nnull: c\n")
    assert doc.data == {"1": "a", "true": "b", "null": "c"}


def test_positions_of_values_and_keys():
    doc, _ = parse("stages:\n  - id: a\n    steps:\n      - wait: 2d\n      - email: {template: x}\n")
    assert doc.position(["stages", 0, "steps", 1, "email", "template"]) == (5, 27)
    assert doc.position(["stages", 0, "steps", 1, "email"], key=True) == (5, 9)
    assert doc.position(["stages", 0, "steps", 0, "wait"]) == (4, 15)
    # a missing key points at the deepest existing parent
    assert doc.position(["stages", 0, "steps", 1, "email", "subject"]) == (5, 16)
    assert doc.position(["nope"]) == (1, 1)


def test_positions_through_merge_keys():
    doc, problems = parse("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")
    assert problems == []
    assert doc.data["c"] == {"x": 1, "y": 3}
    assert doc.position(["c", "y"]) == (4, 6)
    assert doc.position(["c", "x"]) == (1, 14)  # where the merged value is written


def test_duplicate_keys_are_reported_at_the_second_one():
    assert codes("a: 1\nb:\n  c: 1\n  c: 2\n") == ["4:3 yaml.duplicate-key"]


def test_tab_indentation():
    assert codes("a:\n  b: 1\n\tc: 2\n") == ["3:1 yaml.tab"]


def test_tabs_inside_values_are_fine():
    doc, problems = parse('a: "x\ty"\nb: x\ty\n')
    assert problems == [] and doc.data["a"] == "x\ty"


def test_syntax_error_position():
    assert codes("a: [1, 2\nb: 3\n") == ["2:2 yaml.syntax"]


def test_empty_and_comment_only_files():
    assert codes("") == ["1:1 file.empty"]
    assert codes("# only a comment\n\n") == ["1:1 file.empty"]


def test_top_level_must_be_a_mapping():
    assert codes("- a\n- b\n") == ["1:1 yaml.not-mapping"]
    assert codes("hello\n") == ["1:1 yaml.not-mapping"]


def test_billion_laughs_is_refused_by_the_expansion_limit():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    doc, problems = parse("\n".join(lines) + "\n")
    assert doc is None
    assert [p.code for p in problems] == ["yaml.alias-bomb"]
    assert str(MAX_ALIAS_NODES) in problems[0].message.replace(",", "")


def test_small_alias_reuse_is_fine():
    doc, problems = parse("defaults: &d {max: 2, per: 1d}\na: {cap: *d}\nb: {cap: *d}\n")
    assert problems == [] and doc.data["b"]["cap"] == {"max": 2, "per": "1d"}


def test_recursive_alias_is_refused():
    assert [c.split()[1] for c in codes("a: &a [*a]\n")] == ["yaml.too-deep"]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 10_000, 200_000])
def test_deep_nesting_is_refused_without_crashing(depth: int):
    # libyaml (PyYAML >= 6.0.3) stops flow nesting itself at 1,000 levels; it is still too-deep, not a syntax error
    text = "a: " + "[" * depth + "]" * depth + "\n"
    doc, problems = parse(text)
    assert doc is None and [p.code for p in problems] == ["yaml.too-deep"]
    assert problems[0].line == 1 and text[problems[0].col - 1] == "["


def test_nesting_within_the_limit_is_fine():
    depth = MAX_DEPTH - 2
    doc, problems = parse("a: " + "[" * depth + "]" * depth + "\n")
    assert problems == []


def test_load_file_refuses_big_binary_and_non_utf8(tmp_path: Path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: b\n" + b"#" * MAX_BYTES)
    assert [p.code for p in load_file(big)[1]] == ["file.too-large"]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"a: \x00\x01\x02")
    assert [p.code for p in load_file(binary)[1]] == ["file.binary"]
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"a: ok\nb: caf\xe9\n")
    problems = load_file(latin)[1]
    assert [(p.line, p.col, p.code) for p in problems] == [(2, 7, "file.encoding")]


def test_load_file_names_the_file_as_asked(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\na: 2\n")
    doc, problems = load_file(path, "journeys/x.yaml")
    assert problems[0].file == "journeys/x.yaml" and doc.file == "journeys/x.yaml"


def test_missing_file_is_a_problem_not_an_exception(tmp_path: Path):
    assert [p.code for p in load_file(tmp_path / "nope.yaml")[1]] == ["file.unreadable"]


def test_bom_is_ignored():
    doc, problems = parse_text("\ufeffa: 1\n", "f.yaml")
    assert problems == [] and doc.data == {"a": 1}


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900, 5000])
def test_deep_block_nesting_is_refused_without_crashing(levels: int):
    indented = "".join(" " * i + f"k{i}:\n" for i in range(levels)) + " " * levels + "v\n"
    compact = "- " * levels + "x\n"
    for text in (indented, compact):
        doc, problems = parse(text)
        assert doc is None and [p.code for p in problems] == ["yaml.too-deep"]


def test_the_fast_and_the_guarded_composer_agree():
    from runner.language.yamlsource import _CNodeLoader, _NodeLoader

    text = (Path(__file__).parent / "hostile" / "journeys" / "onboarding.yaml").read_text()

    def shape(node):
        value = node.value
        if isinstance(value, list):
            value = [tuple(shape(n) for n in item) if isinstance(item, tuple) else shape(item) for item in value]
        return (type(node).__name__, node.tag, node.start_mark.line, node.start_mark.column, str(value))

    trees = []
    for loader_class in (_CNodeLoader, _NodeLoader):
        loader = loader_class(text)
        trees.append(shape(loader.get_single_node()))
        loader.dispose()
    assert trees[0] == trees[1]
