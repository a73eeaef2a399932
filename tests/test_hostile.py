"""Every broken file in tests/hostile/cases gets exactly the diagnostics it declares.

Each case file starts with a comment ``expect: LINE:COL CODE[, ...]`` (``{# … #}``
in templates); a folder case is checked as a whole and collects the
expectations of its files. Cases are checked inside the project
tests/hostile/ (its project.yaml, tracking plan and templates), so references
to segments, scores, templates and plan entries mean something.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.language.loader import validate
from runner.language.yamlsource import MAX_ALIAS_NODES, MAX_BYTES

HOSTILE = Path(__file__).parent / "hostile"
CASES = HOSTILE / "cases"
EXPECT = re.compile(r"expect:\s*(.*?)\s*(?:#\})?$")


def _cases() -> list[Path]:
    return sorted(CASES.iterdir())


def _expected(case: Path) -> set[str]:
    files = sorted(p for p in case.rglob("*") if p.is_file()) if case.is_dir() else [case]
    found: set[str] = set()
    for file in files:
        first = file.read_bytes().split(b"\n", 1)[0].decode("utf-8")
        match = EXPECT.search(first)
        if not match:
            continue
        for item in filter(None, (part.strip() for part in match.group(1).split(","))):
            position, code = item.split()
            found.add(f"{file.relative_to(CASES)}:{position} {code}")
    return found


def _actual(paths: list[Path]) -> set[str]:
    result = validate(paths, root=HOSTILE)
    found = set()
    for problem in result.problems:
        file = Path(problem.file).resolve()
        if file.is_relative_to(CASES.resolve()):
            found.add(f"{file.relative_to(CASES.resolve())}:{problem.line}:{problem.col} {problem.code}")
    return found


def test_the_corpus_is_big_enough():
    assert len(_cases()) >= 60
    assert all(_expected(case) for case in _cases()), "every case declares what it expects"


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_hostile_case(case: Path):
    assert _actual([case]) == _expected(case)


def test_the_fixture_project_itself_is_clean():
    result = validate([], root=HOSTILE, strict=True)
    assert result.problems == [] and result.exit_code == 0


# -- files generated here rather than committed (binary, huge, odd encodings)


def _check_one(tmp_path: Path, name: str, content: bytes) -> set[str]:
    path = tmp_path / name
    path.write_bytes(content)
    result = validate([path], root=HOSTILE)
    return {f"{p.line}:{p.col} {p.code}" for p in result.problems if Path(p.file).resolve() == path.resolve()}


def test_binary_file(tmp_path: Path):
    assert _check_one(tmp_path, "image.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))) == {
        "1:1 file.binary"
    }


def test_non_utf8_file_points_at_the_bad_byte(tmp_path: Path):
    content = b"id: latin\nversion: 1\nname: Caf" + b"\xe9 cr\xe8me\n"
    assert _check_one(tmp_path, "latin1.yaml", content) == {"3:10 file.encoding"}


def test_file_over_the_size_limit(tmp_path: Path):
    line = b"# padding padding padding padding padding padding padding padding\n"
    content = b"id: big\n" + line * (MAX_BYTES // len(line) + 1)
    assert len(content) > MAX_BYTES
    assert _check_one(tmp_path, "big.yaml", content) == {"1:1 file.too-large"}


def test_utf8_bom_and_crlf_are_fine(tmp_path: Path):
    text = (CASES.parent / "journeys" / "onboarding.yaml").read_text().replace("id: onboarding", "id: bom_crlf")
    content = b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()
    assert _check_one(tmp_path, "bom.yaml", content) == set()


def test_wide_alias_bomb_is_rejected_by_the_expansion_limit(tmp_path: Path):
    # 30 levels of 2 aliases each: 2**30 values if expanded; must stop at the limit.
    lines = ["l0: &l0 [x, x]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 31)]
    found = _check_one(tmp_path, "wide_bomb.yaml", ("\n".join(lines) + "\n").encode())
    assert {item.split()[1] for item in found} == {"yaml.alias-bomb"}
    assert MAX_ALIAS_NODES < 2**30
