"""``repeat:`` and ``pipeline:`` items of `steps:` as the validator reads them
(scenario/block_syntax.py, docs/scenario-language.md): flattened steps, the blocks over them,
and each rule's accepting and refusing side at its FILE:LINE:COL. Pure tests, except the last
few, which run ``smtpload validate`` and ``run --require-pipelining`` as a user does.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from smtpload.errors import ScenarioError
from smtpload.scenario.block_syntax import (
    MAX_BLOCK_DEPTH,
    MAX_REPEAT_COUNT,
    check_blocks,
    read_steps,
)
from smtpload.scenario.bundled import find_scenario
from smtpload.scenario.loader import load_scenario, parse_scenario
from smtpload.scenario.model import Block, BlockKind, Scenario, StepKind
from smtpload.scenario.yaml_nodes import NodeReader
from smtpload.scenario.yaml_tree import MappingNode
from tests.cli import smtpload


def parse(text: str) -> Scenario:
    return parse_scenario(textwrap.dedent(text), "s.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse(text)
    return [str(problem) for problem in info.value.problems]


# The documented example (docs/scenario-language.md, scenarios/persistent-pipelined.yaml).
EXAMPLE = """\
steps:
  - greeting: 220
  - send: EHLO client.example.test
  - repeat: {min: 1, max: 20}
    steps:
      - pipeline:
          - send: MAIL FROM:<loadtest@example.test>
            name: mail
          - send: RCPT TO:<a@example.test>
          - send: DATA
            expect: 354
      - data: {size: 2000}
      - send: RSET
  - send: QUIT
    expect: 221
"""


def test_the_example_flattens_its_steps_in_file_order_with_the_blocks_over_them() -> None:
    scenario = parse(EXAMPLE)
    assert [step.name for step in scenario.steps] == [
        "greeting",
        "ehlo",
        "mail",
        "rcpt",
        "data",
        "message",
        "rset",
        "quit",
    ]
    assert [(step.line, step.column) for step in scenario.steps][2:6] == [
        (7, 13),
        (9, 13),
        (10, 13),
        (12, 9),
    ]
    assert scenario.blocks == (
        Block(BlockKind.REPEAT, start=2, end=7, count_min=1, count_max=20, line=4, column=5),
        Block(BlockKind.PIPELINE, start=2, end=5, line=6, column=9),
    )


def test_a_file_without_blocks_has_none() -> None:
    assert parse("steps:\n  - greeting: 220\n  - send: QUIT\n").blocks == ()


@pytest.mark.parametrize(
    ("count", "low", "high"),
    [
        ("5", 5, 5),
        ("0", 0, 0),
        (f"{MAX_REPEAT_COUNT}", MAX_REPEAT_COUNT, MAX_REPEAT_COUNT),
        ("1_000", 1000, 1000),
        ("{min: 0, max: 3}", 0, 3),
        ("{min: 7, max: 7}", 7, 7),
        (f"{{min: 1, max: {MAX_REPEAT_COUNT}}}", 1, MAX_REPEAT_COUNT),
    ],
    ids=["fixed", "zero", "the-bound", "underscores", "range-from-0", "equal", "range-to-bound"],
)
def test_a_repeat_count_is_a_whole_number_or_a_range(count: str, low: int, high: int) -> None:
    scenario = parse(f"steps:\n  - repeat: {count}\n    steps:\n      - send: NOOP\n")
    assert scenario.blocks == (
        Block(BlockKind.REPEAT, 0, 1, count_min=low, count_max=high, line=2, column=5),
    )


@pytest.mark.parametrize(
    ("count", "column", "message"),
    [
        ("-1", 13, "repeat must be 0 or more"),
        (f"{MAX_REPEAT_COUNT + 1}", 13, "repeat 1,000,001 is more than 1,000,000"),
        ("2.5", 13, "repeat must be a whole number"),
        ("many", 13, "repeat must be a whole number"),
        ('"5"', 13, "the quotes make it text"),
        ("[1, 2]", 13, "not a list"),
        ("", 12, "repeat has no value"),
        ("{min: 5, max: 2}", 19, "repeat: min 5 is more than max 2; give min <= max"),
        ("{min: -1, max: 2}", 19, "repeat: min must be 0 or more"),
        ("{min: 1, max: 2000000}", 27, "repeat: max 2,000,000 is more than 1,000,000"),
        ("{min: 1}", 13, "needs both `min:` and `max:` (`max:` is missing)"),
        ("{max: 3}", 13, "(`min:` is missing)"),
        ("{}", 13, "needs both `min:` and `max:`"),
        ("{min: 1, max: 2, mean: 1}", 30, "unknown key 'mean' in repeat"),
        ("{min: 1, maxi: 2}", 22, "unknown key 'maxi' in repeat (did you mean 'max'?)"),
    ],
    ids=[
        "negative",
        "above-bound",
        "fraction",
        "text",
        "quoted",
        "list",
        "blank",
        "min-above-max",
        "negative-min",
        "max-above-bound",
        "no-max",
        "no-min",
        "empty-range",
        "unknown-key",
        "misspelt-key",
    ],
)
def test_a_bad_repeat_count_is_refused_with_its_reason(
    count: str, column: int, message: str
) -> None:
    found = problems(f"steps:\n  - repeat: {count}\n    steps:\n      - send: NOOP\n")
    assert len(found) == 1, found
    assert found[0].startswith(f"s.yaml:2:{column}: "), found
    assert message in found[0]


@pytest.mark.parametrize(
    ("item", "where", "message"),
    [
        ("- repeat: 2\n    steps: []\n", "3:12", "this repeat's steps list is empty"),
        ("- repeat: 2\n    steps:\n", "3:11", "this repeat's steps list is empty"),
        ("- repeat: 2\n    steps: NOOP\n", "3:12", "steps must be a list of steps"),
        ("- pipeline: []\n", "2:15", "this pipeline is empty"),
        ("- pipeline:\n", "2:14", "this pipeline is empty"),
        ("- pipeline: {send: NOOP}\n", "2:15", "pipeline must be a list of steps"),
        ("- repeat: 2\n", "2:5", "a repeat needs `steps:`"),
        ("- steps:\n    - send: NOOP\n", "2:5", "need a `repeat:` saying how many times"),
        (
            "- repaet: 2\n    steps:\n      - send: NOOP\n",
            "2:5",
            "unknown key 'repaet' in a repeat item (did you mean 'repeat'?)",
        ),
        (
            "- repeat: 2\n    name: x\n    steps:\n      - send: NOOP\n",
            "3:5",
            "unknown key 'name' in a repeat item",
        ),
        (
            "- pipeline:\n      - send: NOOP\n    name: x\n",
            "4:5",
            "unknown key 'name' in a pipeline item",
        ),
        (
            "- pipeline:\n      - send: NOOP\n    steps:\n      - send: NOOP\n",
            "4:5",
            "unknown key 'steps' in a pipeline item",
        ),
    ],
    ids=[
        "empty-steps",
        "blank-steps",
        "steps-not-a-list",
        "empty-pipeline",
        "blank-pipeline",
        "pipeline-not-a-list",
        "repeat-without-steps",
        "steps-without-repeat",
        "misspelt-repeat",
        "repeat-with-name",
        "pipeline-with-name",
        "pipeline-with-steps",
    ],
)
def test_a_malformed_block_item_is_refused(item: str, where: str, message: str) -> None:
    found = problems("steps:\n  " + item)
    assert len(found) == 1, found
    assert found[0].startswith(f"s.yaml:{where}: "), found
    assert message in found[0]


def test_blocks_nest_and_are_ordered_by_start_outer_first() -> None:
    scenario = parse(
        """\
        steps:
          - send: EHLO a
          - repeat: 2
            steps:
              - repeat: {min: 0, max: 3}
                steps:
                  - pipeline:
                      - send: MAIL FROM:<a>
                      - send: RCPT TO:<b>
              - send: RSET
          - pipeline:
              - send: NOOP
        """
    )
    assert [(b.kind, b.start, b.end, b.count_min, b.count_max) for b in scenario.blocks] == [
        (BlockKind.REPEAT, 1, 4, 2, 2),
        (BlockKind.REPEAT, 1, 3, 0, 3),
        (BlockKind.PIPELINE, 1, 3, 1, 1),
        (BlockKind.PIPELINE, 4, 5, 1, 1),
    ]


def nested_repeats(depth: int) -> str:
    lines = ["steps:"]
    for level in range(depth):
        pad = "  " * (2 * level + 1)
        lines += [f"{pad}- repeat: 2", f"{pad}  steps:"]
    lines.append("  " * (2 * depth + 1) + "- send: NOOP")
    return "\n".join(lines) + "\n"


def test_blocks_nest_as_deep_as_the_bound() -> None:
    assert len(parse(nested_repeats(MAX_BLOCK_DEPTH)).blocks) == MAX_BLOCK_DEPTH


def test_blocks_nested_deeper_than_the_bound_are_refused_at_the_first_too_deep() -> None:
    found = problems(nested_repeats(MAX_BLOCK_DEPTH + 1))
    column = 4 * MAX_BLOCK_DEPTH + 5
    assert found == [
        f"s.yaml:{2 * MAX_BLOCK_DEPTH + 2}:{column}: repeat and pipeline items nest at most"
        f" {MAX_BLOCK_DEPTH} deep; this one is level {MAX_BLOCK_DEPTH + 1}"
    ]


@pytest.mark.parametrize("inner", ["repeat: 2\n        steps:", "pipeline:"])
def test_a_pipeline_group_holds_no_block(inner: str) -> None:
    text = f"steps:\n  - pipeline:\n      - send: NOOP\n      - {inner}\n          - send: NOOP\n"
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith("s.yaml:4:9: a pipeline group holds steps only, not a "), found


def test_step_numbers_count_the_steps_inside_blocks() -> None:
    found = problems(
        """\
        steps:
          - send: EHLO a
          - repeat: 2
            steps:
              - send: NOOP
              - send: RSET
          - 42
        """
    )
    assert found == ["s.yaml:7:5: " + found[0].split(": ", 1)[1]]
    assert "step 4 must be a mapping" in found[0]


# -- pipeline groups: RFC 2920 §3.1 -----------------------------------------------------------


def group(*steps: str, after: str = "", before: str = "  - send: EHLO a\n") -> str:
    """A file whose pipeline group's steps start on line 4, column 9, one per line."""
    body = "".join(f"      - {step}\n" for step in steps)
    return "steps:\n" + before + "  - pipeline:\n" + body + after


LAST_ONLY = ["EHLO a", "HELO a", "LHLO a", "DATA", "VRFY a", "EXPN a", "TURN", "QUIT", "NOOP"]


@pytest.mark.parametrize("command", LAST_ONLY)
def test_a_state_changing_command_may_end_a_group(command: str) -> None:
    last = "send: DATA\n        expect: 354" if command == "DATA" else f"send: {command}"
    scenario = parse(group("send: RSET", "send: MAIL FROM:<a>", last))
    assert scenario.blocks[0].end - scenario.blocks[0].start == 3


@pytest.mark.parametrize("command", [*LAST_ONLY, "noop", "Data", "STARTTLS\n        expect: 454"])
def test_a_state_changing_command_before_a_groups_end_is_refused(command: str) -> None:
    found = problems(group("send: MAIL FROM:<a>", f"send: {command}", "send: RSET"))
    verb = command.split()[0].upper()
    assert len(found) == 1, found
    assert found[0].startswith(f"s.yaml:5:9: {verb} may only be the last command"), found
    assert "RFC 2920 §3.1" in found[0] or "RFC 3207 §4" in found[0]


@pytest.mark.parametrize(
    "command",
    ["RSET", "MAIL FROM:<a> SIZE=10", "RCPT TO:<b>", "rcpt to:<c> NOTIFY=NEVER", "XFOO bar"],
)
def test_any_other_command_may_stand_anywhere_in_a_group(command: str) -> None:
    parse(group(f"send: {command}", f"send: {command}", "send: NOOP"))


def test_a_starttls_step_may_end_a_group_and_not_stand_before_its_end() -> None:
    parse(group("send: RSET", "starttls: true", after="  - send: EHLO a\n"))
    found = problems(group("starttls: true", "send: NOOP", after="  - send: EHLO a\n"))
    assert any(p.startswith("s.yaml:4:9: STARTTLS may only be the last command") for p in found)


def test_a_data_step_may_start_a_group_after_the_data_that_ended_the_one_before() -> None:
    scenario = parse(
        """\
        steps:
          - send: EHLO a
          - pipeline:
              - send: MAIL FROM:<a> SIZE={message_size}
              - send: RCPT TO:<b>
              - send: DATA
                expect: 354
          - pipeline:
              - data: {size: 100}
              - send: MAIL FROM:<a>
              - send: RCPT TO:<b>
              - send: DATA
                expect: 354
          - data: {size: 100}
          - send: QUIT
        """
    )
    assert [step.kind for step in scenario.steps[4:6]] == [StepKind.DATA, StepKind.SEND]


def test_a_data_step_after_a_groups_first_step_is_refused() -> None:
    # The DATA before it cannot end the group either: both are said.
    found = problems(group("send: MAIL FROM:<a>", "send: DATA\n        expect: 354", "data: hi"))
    assert len(found) == 2, found
    assert found[0].startswith("s.yaml:5:9: DATA may only be the last command")
    assert found[1].startswith("s.yaml:7:9: a data step (the message) may only be the first")
    assert "RFC 2920 §3.1" in found[1]


@pytest.mark.parametrize(
    ("step", "why"),
    [
        ("greeting: 220", "a greeting is the server's"),
        ("close: true", "a close step waits for the server"),
        ("auth: {mechanism: PLAIN, username: u, password: p}", "RFC 4954"),
        ("xclient: {addr: 192.0.2.1}", "XCLIENT_README"),
        ("bdat: {size: 10}", "lock-step for now"),
    ],
    ids=["greeting", "close", "auth", "xclient", "bdat"],
)
def test_a_step_that_cannot_be_pipelined_is_refused_wherever_it_stands(step: str, why: str) -> None:
    kind = step.split(":")[0]
    for steps, line in (((step, "send: NOOP"), 4), (("send: RSET", step), 5)):
        found = problems(group(*steps))
        mine = [p for p in found if f"a {kind} step cannot be in a pipeline group" in p]
        assert len(mine) == 1, found
        assert mine[0].startswith(f"s.yaml:{line}:9: ")
        assert why in mine[0]


def test_a_capture_only_on_a_groups_last_step() -> None:
    parse(group("send: RSET", "send: NOOP\n        capture: (?P<word>\\w+)"))
    found = problems(
        group("send: MAIL FROM:<a>\n        capture: (?P<id>\\w+)", "send: RCPT TO:<{id}>")
    )
    assert len(found) == 1, found
    assert found[0].startswith("s.yaml:5:18: in a pipeline group only the last step may capture")


def test_every_problem_of_a_group_is_reported_together() -> None:
    found = problems(group("send: EHLO a", "greeting: 220", "send: NOOP", "data: x", "send: RSET"))
    assert [p.split(": ")[0] for p in found if "pipeline group" in p] == [
        "s.yaml:4:9",
        "s.yaml:5:9",
        "s.yaml:6:9",
        "s.yaml:7:9",
    ], found


# -- repeats ----------------------------------------------------------------------------------


def repeat(*steps: str, head: str = "  - send: EHLO a\n", tail: str = "") -> str:
    """A file whose repeat's steps start on line 5, column 9, one per line."""
    body = "".join(f"      - {step}\n" for step in steps)
    return "steps:\n" + head + "  - repeat: 3\n    steps:\n" + body + tail


@pytest.mark.parametrize(
    "step",
    [
        "send: EHLO a",
        "send: RSET",
        "xclient: {addr: 192.0.2.1}\n      - send: EHLO a",
        "bdat: {size: 10}",
        "send: NOOP",
    ],
    ids=["ehlo", "rset", "xclient", "bdat", "noop"],
)
def test_a_step_that_may_run_again_is_fine_in_a_repeat(step: str) -> None:
    parse(repeat(step))


@pytest.mark.parametrize(
    ("step", "what", "why"),
    [
        ("greeting: 220", "greeting step", "the server greets once"),
        ("close: true", "close step", "nothing can follow a close"),
        ("starttls: true", "starttls step", "RFC 3207 §4.2"),
        ("auth: {mechanism: PLAIN, username: u, password: p}", "auth step", "RFC 4954 §4"),
        ("send: QUIT", "send: QUIT", "RFC 5321 §4.1.1.10"),
    ],
    ids=["greeting", "close", "starttls", "auth", "quit"],
)
def test_a_step_that_cannot_run_twice_is_refused_in_a_repeat(
    step: str, what: str, why: str
) -> None:
    found = problems(repeat("send: RSET", step, tail="  - send: EHLO a\n"))
    mine = [p for p in found if f" {what} cannot be in a repeat" in p]
    assert len(mine) == 1, found
    assert mine[0].startswith("s.yaml:6:9: ")
    assert why in mine[0]


def test_a_step_that_cannot_run_twice_is_refused_in_a_repeat_however_deep() -> None:
    found = problems(
        "steps:\n  - repeat: 2\n    steps:\n      - repeat: 1\n        steps:\n"
        "          - pipeline:\n              - send: NOOP\n"
        "          - auth: {mechanism: PLAIN, username: u, password: p}\n"
    )
    assert len(found) == 1, found  # once, though two repeats hold it
    assert found[0].startswith("s.yaml:8:13: an auth step cannot be in a repeat")


def test_a_transaction_repeats_with_its_data_after_the_354() -> None:
    scenario = parse(
        repeat(
            "send: MAIL FROM:<a>",
            "send: RCPT TO:<b>",
            "send: DATA\n        expect: 354",
            "data: hi",
            "send: RSET",
        )
    )
    assert scenario.blocks[0].start == 1


def test_a_data_step_that_starts_a_repeat_follows_its_last_step_on_the_second_run() -> None:
    # The last step of the repeat is DATA: every run's message follows a 354.
    parse(
        "steps:\n  - send: EHLO a\n  - send: MAIL FROM:<a>\n  - send: DATA\n    expect: 354\n"
        "  - repeat: 5\n    steps:\n      - pipeline:\n          - data: hi\n"
        "          - send: MAIL FROM:<a>\n          - send: DATA\n            expect: 354\n"
        "  - data: bye\n"
    )
    found = problems(
        "steps:\n  - send: EHLO a\n  - send: DATA\n    expect: 354\n"
        "  - repeat: 5\n    steps:\n      - data: hi\n      - send: RSET\n"
    )
    assert found == [
        "s.yaml:7:9: a data step must follow `send: DATA` with `expect: 354`, and on a repeat's"
        " second run this step follows step 4, which is not one: move the data step, or end"
        " the repeat after a `send: DATA`"
    ]


def test_a_data_step_after_a_repeat_that_may_run_0_times_follows_the_step_before_it() -> None:
    text = (
        "steps:\n  - send: MAIL FROM:<a>\n  - repeat: {min: MIN, max: 1}\n    steps:\n"
        "      - send: DATA\n        expect: 354\n  - data: hi\n"
    )
    parse(text.replace("MIN", "1"))
    found = problems(text.replace("MIN", "0"))
    assert len(found) == 1, found
    assert found[0].startswith("s.yaml:7:5: a data step must follow `send: DATA`")
    assert "when the repeat before it runs 0 times this step follows step 1" in found[0]


# -- the checks across steps see the flat list ------------------------------------------------


def test_step_names_are_unique_across_blocks() -> None:
    found = problems(repeat("send: NOOP\n        name: x", tail="  - send: RSET\n    name: x\n"))
    assert found == [
        "s.yaml:8:11: step name 'x' is already used by step 2; step names must be unique"
    ]


def test_a_capture_in_a_repeat_serves_the_steps_after_it_not_before() -> None:
    parse(repeat("send: MAIL FROM:<a>\n        capture: (?P<id>\\w+)", "send: RCPT TO:<{id}>"))
    found = problems(
        repeat("send: RCPT TO:<{id}>", "send: MAIL FROM:<a>\n        capture: (?P<id>\\w+)")
    )
    assert len(found) == 1
    assert found[0].startswith("s.yaml:5:24: {id} is captured by step 3")


def test_nothing_may_follow_a_close_after_a_repeat() -> None:
    found = problems(repeat("send: NOOP", head="  - close: true\n"))
    assert found[0].startswith("s.yaml:5:9: nothing can follow the close step (step 1)")


def test_message_size_in_a_group_counts_the_data_step_after_the_group() -> None:
    parse(
        group(
            "send: MAIL FROM:<a> SIZE={message_size}",
            "send: DATA\n        expect: 354",
            after="  - data: {size: 10}\n",
        )
    )
    found = problems(group("send: MAIL FROM:<a> SIZE={message_size}", "send: NOOP"))
    assert "no message step (data or bdat) follows this one" in found[0]


def test_a_data_step_after_a_group_needs_the_groups_data_to_expect_354() -> None:
    found = problems(group("send: MAIL FROM:<a>", "send: DATA", after="  - data: hi\n"))
    assert found == [
        "s.yaml:6:5: a data step must follow `send: DATA` with `expect: 354`"
        " (step 3 does not expect a reply code)"
    ]


# -- the command line -------------------------------------------------------------------------


def test_validate_accepts_a_scenario_with_blocks_and_counts_its_steps(tmp_path: Path) -> None:
    (tmp_path / "blocks.yaml").write_text(EXAMPLE)
    done = smtpload("validate", "blocks.yaml", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "blocks.yaml: ok (8 steps)\n"


def test_validate_reports_a_block_problem_at_its_place_with_exit_2(tmp_path: Path) -> None:
    text = EXAMPLE.replace("      - data: {size: 2000}\n", "").replace(
        "          - send: RCPT TO:<a@example.test>\n",
        "          - send: NOOP\n          - send: RCPT TO:<a@example.test>\n",
    )
    (tmp_path / "bad.yaml").write_text(text)
    done = smtpload("validate", "bad.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("bad.yaml:9:13: NOOP may only be the last command"), done.stderr
    assert "Traceback" not in done.stderr


def test_the_bundled_persistent_pipelined_scenario_is_the_documented_example() -> None:
    path = find_scenario("persistent-pipelined")
    assert path is not None
    scenario = load_scenario(path)
    example = parse(EXAMPLE)
    assert [s.name for s in scenario.steps] == [s.name for s in example.steps]
    assert [(b.kind, b.start, b.end) for b in scenario.blocks] == [
        (b.kind, b.start, b.end) for b in example.blocks
    ]
    assert [s.text for s in scenario.steps] == [s.text for s in example.steps]


def test_require_pipelining_says_it_has_no_effect_without_a_pipeline_group(
    tmp_path: Path,
) -> None:
    done = smtpload("run", "quickstart", "--require-pipelining", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--require-pipelining has no effect: the scenario has no `pipeline:` group" in (
        done.stderr
    )
    (tmp_path / "blocks.yaml").write_text(EXAMPLE)
    done = smtpload(
        "replay", "blocks.yaml", "--require-pipelining", "--target", "127.0.0.1:1", cwd=tmp_path
    )
    assert "--require-pipelining" not in done.stderr
    assert "Traceback" not in done.stderr


def test_the_language_docs_examples_of_blocks_are_valid() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "scenario-language.md").read_text()
    section = docs[docs.index("## Several transactions: repeat") : docs.index("## Expectations")]
    examples = [part.split("```", 1)[0] for part in section.split("```yaml\n")[1:]]
    assert len(examples) == 2
    assert parse(examples[0]).steps == parse(EXAMPLE).steps
    # The second is a part of steps: (indented in a list item), after an EHLO and before a QUIT.
    part = textwrap.dedent(examples[1])
    scenario = parse(
        "steps:\n  - send: EHLO a\n" + textwrap.indent(part, "  ") + "  - send: QUIT\n"
    )
    assert [b.kind for b in scenario.blocks] == [
        BlockKind.PIPELINE,
        BlockKind.REPEAT,
        BlockKind.PIPELINE,
    ]
    assert scenario.steps[4].kind is StepKind.DATA  # the repeat's first step: after a 354


@pytest.mark.parametrize("at", [0, 1, 2])
def test_an_rcpt_step_is_an_ordinary_command_anywhere_in_a_group(at: int) -> None:
    # The rcpt step's own syntax is another module's: here a send step is made one, as the
    # loader would hand it over, and only the group rules look at it.
    commands = ["send: MAIL FROM:<a>", "send: RSET", "send: RCPT TO:<c>", "send: NOOP"]
    commands[at] = "send: RCPT TO:<b>"
    text = textwrap.dedent(group(*commands))
    reader = NodeReader(text, "s.yaml")
    root = reader.compose("scenario")
    assert isinstance(root, MappingNode)
    drafts, blocks = read_steps(root.value[0][1], reader)  # type: ignore[arg-type]
    drafts[1 + at].kind, drafts[1 + at].text = StepKind.RCPT, None
    check_blocks(drafts, blocks, reader)
    assert reader.problems == []


def test_a_command_after_a_data_that_expects_354_is_refused() -> None:
    # After 354 the server reads message text: a command there would become the message and
    # the session would wait for a reply that never comes (RFC 5321 §4.1.1.4).
    plain = "steps:\n  - send: DATA\n    expect: 354\n  - send: QUIT\n"
    (found,) = problems(plain)
    assert found.startswith("s.yaml:4:5: step 2 follows `send: DATA` (step 1), which expects 354")
    # At a repeat's end the repeat's first step runs next.
    looped = (
        "steps:\n  - repeat: 3\n    steps:\n      - send: MAIL FROM:<a>\n"
        "      - send: DATA\n        expect: 354\n  - data: hi\n"
    )
    (found,) = problems(looped)
    assert found.startswith("s.yaml:4:9: step 1 follows `send: DATA` (step 2)")
    # A DATA that expects its refusal, or says nothing, may be followed by anything.
    parse("steps:\n  - send: DATA\n    expect: 554\n  - send: QUIT\n")
    parse("steps:\n  - send: DATA\n  - send: QUIT\n")
