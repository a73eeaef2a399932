"""`journey simulate` prints the same bytes as before its output was made fast.

The table used to be printed by rich cell by cell, the JSON by the standard
library's pure-Python indenting encoder; both references are rebuilt here and
compared with the sample project's output and with random input.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from test_tick_kit import REPO, journey_cli

from runner.simulation import jsontext, timeline
from runner.simulation.tabletext import plain_lines, table_text
from runner.simulation.timeline import Record, decision_row, decisions_columns


def rich_table(records, width: int = 200) -> str:
    """The decisions table as rich printed it, row by row."""
    table = decisions_columns()
    for record in records:
        table.add_row(*decision_row(record))
    return plain_lines([table], width)


def test_sample_simulation_prints_the_same_table_json_and_markdown(tmp_path):
    args = ["simulate", "--contacts", "examples/contacts.yaml", "--days", "60"]
    table = journey_cli(args, cwd=REPO)
    as_json = journey_cli([*args, "--format", "json"], cwd=REPO)
    markdown = journey_cli([*args, "--format", "markdown"], cwd=REPO)
    assert table.returncode == as_json.returncode == markdown.returncode == 0, table.stderr + as_json.stderr

    document = json.loads(as_json.stdout)
    assert as_json.stdout == json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    records = [Record(at=datetime.fromisoformat(e["at"]), local_time=e["local_time"], timezone=e["timezone"],
                      contact=e["contact"], journey=e["journey"], version=e["version"], stage=e["stage"],
                      step=e["step"], action=e["action"], reason=e["reason"], key=e["key"],
                      subject=e.get("subject"), until=e.get("until"), variant=e.get("variant"))
               for e in document["events"]]
    assert len(records) > 200
    lines = table.stdout.splitlines(keepends=True)
    assert lines[0].startswith("Simulation ")
    expected = rich_table(records)
    assert "".join(lines[1:1 + expected.count("\n")]) == expected
    assert "Summary" in table.stdout

    from runner.language.loader import load_project
    from runner.review.markdown import simulation_markdown
    from runner.simulation.scenarios import DEFAULT_START
    from runner.simulation.simulate import simulate, summarize
    from runner.simulation.testcontacts import load_test_contacts

    loaded = load_project(REPO)
    simulation = simulate(loaded.project, loaded.journeys, load_test_contacts(REPO / "examples" / "contacts.yaml"),
                          DEFAULT_START, DEFAULT_START + timedelta(days=60))
    # markdown made from the timeline it is given is the markdown that made its own
    assert markdown.stdout == simulation_markdown(simulation, summarize(simulation), simulation.journeys,
                                                  loaded.project)


AT = datetime(2026, 1, 5, tzinfo=UTC)
TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "ada", "Zoë Ødegård", "渡辺 ロボティクス", "emoji 👋🏽 mix", "[bold]x[/bold]", "[/oops]", "a:100:b",
                     ":smile: and :1234:", "x" * 90, "word " * 40, "ünïcödé " * 20, "tab\tbreak", "line\nbreak",
                     "a\u0301e\u0301 combining", "\u200bzero width"]),
)


@st.composite
def records(draw):
    count = draw(st.integers(min_value=0, max_value=6))
    made = []
    for n in range(count):
        made.append(Record(
            at=AT + timedelta(minutes=n), local_time=draw(st.sampled_from(["2026-01-05T03:00:00+03:00",
                                                                           "2026-01-05T00:00:00+00:00"])),
            timezone="UTC", contact=draw(TEXT), journey=draw(TEXT), version=draw(st.integers(0, 12)),
            stage=draw(st.none() | TEXT), step=draw(st.none() | TEXT), action=draw(st.sampled_from(["send", "wait"])),
            reason=draw(TEXT), key=None, subject=draw(st.none() | TEXT), until=None, variant=None,
        ))
    return made


@settings(max_examples=300, deadline=None)
@given(rows=records(), width=st.sampled_from([200, 120, 80]))
def test_the_table_is_what_rich_prints_for_any_rows(rows, width):
    try:
        expected = rich_table(rows, width)
    except Exception as error:  # noqa: BLE001 - rich refuses some markup: so must the fast table
        kind = type(error)
        try:
            table_text(decisions_columns, [decision_row(r) for r in rows], width)
        except kind:
            return
        raise AssertionError(f"rich raised {error!r}, the fast table did not") from None
    assert table_text(decisions_columns, [decision_row(r) for r in rows], width) == expected


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
                         st.floats(allow_nan=True, allow_infinity=True))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.tuples(children, children),
                               st.dictionaries(st.text(max_size=5), children, max_size=4),
                               st.dictionaries(st.integers(), children, max_size=2)),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(value=JSON_VALUES)
def test_json_is_the_standard_librarys_indented_json(value):
    assert jsontext.dumps(value) == json.dumps(value, indent=2, ensure_ascii=False)


def test_json_of_a_timeline_of_flat_events():
    events = [{"at": "2026-01-05T00:00:00Z", "subject": 'say "hi"\n},\n{', "n": 1, "f": math.pi, "none": None},
              {"at": "x", "ok": True}]
    document = {"format": 1, "events": events, "contacts": ["a", "b"], "summary": [{"sent": {}, "exits": {"x": 1}}]}
    assert jsontext.dumps(document) == json.dumps(document, indent=2, ensure_ascii=False)
    assert timeline.JSON_FORMAT_VERSION == 1
