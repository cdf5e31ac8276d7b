"""A scenario's ``load:`` block (docs/scenario-language.md, "The load block"): what it means,
every problem at its place in the file, the command line over it (pure, then real runs against
the built-in sink), and a run of stages whose per-second starts in timeline.csv follow them."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import smtpload as smtpload_api
from smtpload.errors import ScenarioError
from smtpload.load.arrivals import OpenLoop, Stage, sessions_due_by
from smtpload.load.plan import LoadOptions, LoadPlanError, plan_load
from smtpload.scenario.load_syntax import MAX_RATE_PER_S, MAX_STAGES, MAX_THRESHOLDS
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import Load, LoadStage, Scenario, ThresholdText
from tests.cli import smtpload

STEPS = """\
steps:
  - greeting: 220
  - send: EHLO load.test
    expect: 250
  - send: QUIT
    expect: 221
"""


def scenario_text(load: str) -> str:
    """A scenario whose ``load:`` block is ``load`` (its first line is line 1 of the file)."""
    return "load:\n" + textwrap.indent(textwrap.dedent(load), "  ") + STEPS


def parse(load: str) -> Scenario:
    return parse_scenario(scenario_text(load), "s.yaml")


def problems(load: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse(load)
    return [str(problem) for problem in info.value.problems]


# -- what the block means ------------------------------------------------------------------


def test_the_documented_block_reads_as_written() -> None:
    scenario = parse("""\
        arrivals: poisson
        seed: 7
        max_in_flight: 200
        sessions: 5000
        stages:
          - {duration: 30s, rate: 50}
          - {duration: 1m, rate: 200}
        thresholds:
          - session.p99<500ms
          - "failed<0.1%"
    """)  # fmt: skip
    assert scenario.load == Load(
        stages=(LoadStage(30.0, 50.0), LoadStage(60.0, 200.0)),
        arrivals="poisson",
        seed=7,
        max_in_flight=200,
        sessions=5000,
        thresholds=(
            ThresholdText("session.p99<500ms", 10, 7, exact=True),
            ThresholdText("failed<0.1%", 11, 8, exact=True),
        ),
        line=2,
        column=3,
    )
    assert scenario.load.open_loop


def test_a_rate_with_duration_and_ramp_reads_as_on_the_command_line() -> None:
    load = parse("rate: 100\nduration: 1m\nramp: 10s\n").load
    assert load is not None
    assert (load.rate_per_s, load.duration_s, load.ramp_s) == (100.0, 60.0, 10.0)
    assert load.stages == ()
    assert load.open_loop


@pytest.mark.parametrize(("written", "seconds"), [("90", 90.0), ("1.5", 1.5), ("500ms", 0.5),
                         ("2m", 120.0), ("1h", 3600.0), ('"30s"', 30.0)])  # fmt: skip
def test_durations_take_every_spelling_of_the_command_line(written: str, seconds: float) -> None:
    load = parse(f"rate: 1\nduration: {written}\n").load
    assert load is not None
    assert load.duration_s == seconds


def test_a_block_of_thresholds_alone_leaves_the_run_closed_loop() -> None:
    load = parse("thresholds: [failed==0]\n").load
    assert load is not None
    assert not load.open_loop
    assert plan_load(load, LoadOptions()) is None


def test_a_stage_of_no_duration_sets_where_the_rate_starts() -> None:
    load = parse("stages:\n  - {duration: 0, rate: 20}\n  - {duration: 2s, rate: 20}\n").load
    assert load is not None
    assert load.stages == (LoadStage(0.0, 20.0), LoadStage(2.0, 20.0))


# -- every problem at its place --------------------------------------------------------------

EXAMPLE = "e.g. `- {duration: 30s, rate: 50}`"


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        ("5\n", ["s.yaml:2:3: load must be a mapping, not a single value; give its keys"]),
        ("{}\n", ["s.yaml:2:3: load is empty; give its keys"]),
        ("rmap: 10s\nrate: 1\nsessions: 1\n",
         ["s.yaml:2:3: unknown key 'rmap' in load (did you mean 'ramp'?)"]),
        ("durations: 1m\nrate: 1\n",
         ["s.yaml:2:3: unknown key 'durations' in load (did you mean 'duration'?)",
          "s.yaml:3:3: load: rate needs duration (or sessions) to know when to stop"]),
        ("rate: 1\nduration: 1 minute\n",
         ["s.yaml:3:13: load: duration '1 minute' is not a duration: give seconds, or a number"
          " with ms, s, m or h"]),
        ("rate: 1\nduration: 0s\n", ["s.yaml:3:13: load: duration '0s' must be above 0"]),
        ("rate: 1\nduration: -5\n", ["s.yaml:3:13: load: duration -5 must be above 0"]),
        ("rate: 1\nduration: 2y\n", ["s.yaml:3:13: load: duration '2y' is not a duration"]),
        ("rate: 1\nduration: 400000000\n",
         ["s.yaml:3:13: load: duration 400000000 is longer than a year"]),
        ("rate: 1\nduration: 10:00\n",
         ["s.yaml:3:13: load: duration: '10:00' is read by YAML as the number 600 (base 60)"]),
        ("rate: 0\nduration: 1m\n",
         ["s.yaml:2:9: load: rate 0 must be a number of sessions per second above 0, and at"
          " most 1,000,000"]),
        ("rate: -3\nduration: 1m\n", ["s.yaml:2:9: load: rate -3 must be a number of sessions"]),
        (f"rate: {MAX_RATE_PER_S * 10:.0f}\nduration: 1m\n",
         ["s.yaml:2:9: load: rate 1e+07 must be a number of sessions per second above 0, and at"
          " most 1,000,000"]),
        ("rate: fast\nduration: 1m\n",
         ["s.yaml:2:9: load: rate must be a number, such as 100 or 0.5, not the text 'fast'"]),
        # YAML 1.1 reads an exponent without a dot (1e-300, 1E+3) as text, quotes too.
        ("rate: 1e-300\nduration: 1m\n",
         ["s.yaml:2:9: load: rate: YAML reads a number with an exponent but no dot as text;"
          " write a number in plain decimal, such as 100 or 0.5"]),
        ("rate: 1E+3\nduration: 1m\n", ["s.yaml:2:9: load: rate: YAML reads a number with an"]),
        ("rate: -2e3\nduration: 1m\n", ["s.yaml:2:9: load: rate: YAML reads a number with an"]),
        ("rate: 5\nsessions: 1e3\n",
         ["s.yaml:3:13: load: sessions: YAML reads a number with an exponent but no dot as text;"
          " write a whole number in plain decimal, such as 100"]),
        ("rate: '100'\nduration: 1m\n",
         ["s.yaml:2:9: load: rate must be a number: the quotes make it text; remove them"]),
        ('rate: "0.5e-1"\nduration: 1m\n', ["s.yaml:2:9: load: rate must be a number: the quotes"]),
        ("rate: 5\nstages: [{duration: 1s, rate: 5}]\nsessions: 1\n",
         ["s.yaml:3:3: load: give either rate (with duration and ramp) or stages, not both"]),
        ("stages: [{duration: 1s, rate: 5}]\nduration: 1m\nramp: 5s\n",
         ["s.yaml:3:3: load: duration is for a load given by rate; with stages, each stage's"
          " duration says how long it lasts",
          "s.yaml:4:3: load: ramp is for a load given by rate"]),
        ("arrivals: poisson\nthresholds: [failed==0]\n",
         ["s.yaml:2:3: load: arrivals is for an open-loop load: give rate (with duration) or"
          " stages too"]),
        ("max_in_flight: 5\n", ["s.yaml:2:3: load: max_in_flight is for an open-loop load"]),
        ("rate: 5\n",
         ["s.yaml:2:3: load: rate needs duration (or sessions) to know when to stop"]),
        ("rate: 5\nduration: 2s\nramp: 5s\n",
         ["s.yaml:4:3: load: ramp 5 s is longer than duration 2 s: the run would end before it"
          " reaches the rate"]),
        ("rate: 5\nduration: 1m\narrivals: poison\n",
         ["s.yaml:4:13: load: arrivals 'poison' must be one of constant, poisson (did you mean"
          " 'poisson'?)"]),
        ("rate: 5\nduration: 1m\nseed: 1.5\n", ["s.yaml:4:9: load: seed must be a whole number"]),
        ("rate: 5\nduration: 1m\nmax_in_flight: 0\n",
         ["s.yaml:4:18: load: max_in_flight 0 must be at least 1"]),
        ("rate: 5\nsessions: 0\n", ["s.yaml:3:13: load: sessions 0 must be at least 1"]),
        ("rate: 5\nsessions: 017\n", ["s.yaml:3:13: load: sessions: '017' is read by YAML as"]),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)  # fmt: skip
def test_each_wrong_key_or_value_is_reported_at_its_place(load: str, expected: list[str]) -> None:
    found = problems(load)
    assert len(found) == len(expected), found
    for message, start in zip(found, expected, strict=True):
        assert message.startswith(start), (message, start)


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ("stages: 5\n", [f"s.yaml:2:11: load: stages must be a list, not a single value; give a"
                         f" list of stages, each a duration and the rate to reach by its end,"
                         f" {EXAMPLE}"]),
        ("stages: []\n", ["s.yaml:2:11: load: stages is empty; give a list of stages"]),
        ("stages:\n", ["s.yaml:2:10: load: stages is empty"]),
        ("stages: [5]\n", [f"s.yaml:2:12: load: stage 1 must be a mapping of duration and rate,"
                           f" not a single value; {EXAMPLE}"]),
        ("stages:\n  - {duration: 1s}\n", [f"s.yaml:3:7: load: stage 1 needs rate; {EXAMPLE}"]),
        ("stages:\n  - {rate: 5}\n", ["s.yaml:3:7: load: stage 1 needs duration"]),
        ("stages:\n  - {duration: 1s, target: 5}\n",
         ["s.yaml:3:22: load: stage 1: k6's `target` is `rate` here (sessions per second)"]),
        ("stages:\n  - {duration: 1s, rate: 5, rat: 3}\n",
         ["s.yaml:3:31: unknown key 'rat' in load: stage 1 (did you mean 'rate'?)"]),
        ("stages:\n  - {duration: 1s, rate: 5}\n  - {duration: soon, rate: 5}\n",
         ["s.yaml:4:18: load: stage 2: duration 'soon' is not a duration"]),
        ("stages:\n  - {duration: 1s, rate: -5}\n",
         ["s.yaml:3:28: load: stage 1: rate -5 must be a number of sessions per second 0 or"
          " more"]),
        ("stages:\n  - {duration: 1s, rate: 0}\n  - {duration: 0s, rate: 50}\n",
         ["s.yaml:3:5: load: no stage offers any load"]),
        ("stages: [" + ", ".join(["{duration: 1, rate: 1}"] * (MAX_STAGES + 1)) + "]\n",
         [f"s.yaml:2:11: load: stages has 1,001 stages; at most {MAX_STAGES} are allowed"]),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)  # fmt: skip
def test_each_wrong_stage_is_reported_at_its_place(stages: str, expected: list[str]) -> None:
    found = problems(stages)
    assert len(found) == len(expected), found
    for message, start in zip(found, expected, strict=True):
        assert message.startswith(start), (message, start)


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        ("thresholds: failed==0\n",
         ["s.yaml:2:15: load: thresholds must be a list, one expression a line"]),
        ("thresholds: {failed: 0}\n", ["s.yaml:2:15: load: thresholds must be a list, not a"
                                       " mapping"]),
        ("thresholds: [[failed==0]]\n",
         ["s.yaml:2:16: load: threshold 1 must be text, not a list"]),
    ],
)  # fmt: skip
def test_thresholds_must_be_a_list_of_text(thresholds: str, expected: list[str]) -> None:
    found = problems(thresholds)
    assert len(found) == len(expected), found
    for message, start in zip(found, expected, strict=True):
        assert message.startswith(start), (message, start)


def test_a_threshold_keeps_the_position_of_each_character_where_it_can() -> None:
    load = parse("""\
        thresholds:
          - session.p99<5ms
          - 'step:ehlo.p99 < 5ms'
          - "failed\\x3c1%"
          - >-
            passed>0
    """).load  # fmt: skip
    assert load is not None
    plain, quoted, escaped, folded = load.thresholds
    assert plain.position(12) == (3, 7 + 12)
    assert quoted.position(5) == (4, 8 + 5)  # after the quote
    assert escaped.text == "failed<1%"
    assert escaped.position(6) == (5, 7)  # escapes: only the scalar's start is known
    assert folded.position(6) == (6, 7)


# -- the command line over the block (pure) -----------------------------------------------

RATE_BLOCK = Load(rate_per_s=10.0, duration_s=4.0, ramp_s=2.0, arrivals="poisson", seed=3,
                  max_in_flight=7, sessions=100, line=1, column=1)  # fmt: skip
STAGES_BLOCK = Load(stages=(LoadStage(2.0, 20.0), LoadStage(1.0, 0.0)), line=1, column=1)


def test_the_block_alone_is_the_load() -> None:
    plan = plan_load(RATE_BLOCK, LoadOptions())
    assert plan is not None
    assert plan.stages == (Stage(2.0, 10.0), Stage(2.0, 10.0))
    assert (plan.arrivals, plan.seed, plan.max_in_flight, plan.max_sessions) == (
        "poisson",
        3,
        7,
        100,
    )
    assert plan.max_in_flight_from == "load: max_in_flight"
    staged = plan_load(STAGES_BLOCK, LoadOptions())
    assert staged is not None
    assert staged.stages == (Stage(2.0, 20.0), Stage(1.0, 0.0))
    assert staged.arrivals == "constant"


@pytest.mark.parametrize(
    ("block", "given", "stages"),
    [
        (RATE_BLOCK, LoadOptions(rate_per_s=50.0), (Stage(2.0, 50.0), Stage(2.0, 50.0))),
        (RATE_BLOCK, LoadOptions(duration_s=10.0), (Stage(2.0, 10.0), Stage(8.0, 10.0))),
        (RATE_BLOCK, LoadOptions(ramp_s=1.0), (Stage(1.0, 10.0), Stage(3.0, 10.0))),
        (STAGES_BLOCK, LoadOptions(rate_per_s=5.0, duration_s=1.0),
         (Stage(0.0, 5.0), Stage(1.0, 5.0))),
    ],
    ids=["rate-replaces-rate", "duration", "ramp", "rate-replaces-stages"],
)  # fmt: skip
def test_each_option_replaces_its_key(
    block: Load, given: LoadOptions, stages: tuple[Stage, ...]
) -> None:
    plan = plan_load(block, given)
    assert plan is not None
    assert plan.stages == stages


def test_the_other_options_replace_their_keys() -> None:
    given = LoadOptions(arrivals="constant", seed=9, max_in_flight=2, sessions=5)
    plan = plan_load(RATE_BLOCK, given)
    assert plan is not None
    assert (plan.arrivals, plan.seed, plan.max_in_flight, plan.max_sessions) == (
        "constant",
        9,
        2,
        5,
    )
    assert plan.max_in_flight_from == "--max-in-flight"


@pytest.mark.parametrize("block", [RATE_BLOCK, STAGES_BLOCK], ids=["rate", "stages"])
def test_concurrency_runs_closed_loop_over_an_open_loop_block(block: Load) -> None:
    assert plan_load(block, LoadOptions(concurrency=4, sessions=20)) is None
    assert plan_load(block, LoadOptions(concurrency=4)) is None


@pytest.mark.parametrize(
    ("block", "given", "message"),
    [
        (RATE_BLOCK, LoadOptions(concurrency=4, max_in_flight=3),
         "--max-in-flight is for open-loop runs, and --concurrency runs this one closed loop"),
        (RATE_BLOCK, LoadOptions(concurrency=4, rate_per_s=3.0), "--concurrency is for closed"),
        (STAGES_BLOCK, LoadOptions(duration_s=3.0),
         "--duration is for a load given by a rate, and the scenario's load: block (line 1)"
         " gives stages"),
        (STAGES_BLOCK, LoadOptions(ramp_s=3.0), "--ramp is for a load given by a rate"),
        (STAGES_BLOCK, LoadOptions(rate_per_s=3.0),
         "--rate needs --duration (or --sessions) to know when to stop (it replaces the"
         " scenario's load: stages)"),
        (RATE_BLOCK, LoadOptions(ramp_s=5.0),
         "--ramp 5 s is longer than load: duration 4 s: the run would end before it reaches"
         " load: rate"),
        (RATE_BLOCK, LoadOptions(duration_s=1.0),
         "load: ramp 2 s is longer than --duration 1 s"),
        (None, LoadOptions(max_in_flight=3),
         "--max-in-flight is for open-loop runs: give --rate too"),
        (Load(thresholds=(ThresholdText("failed==0", 2, 3),)), LoadOptions(arrivals="poisson"),
         "--arrivals is for open-loop runs: give --rate too"),
    ],
    ids=["concurrency-with-open-options", "rate-and-concurrency", "duration-over-stages",
         "ramp-over-stages", "rate-over-stages-needs-duration", "ramp-over-block-duration",
         "block-ramp-over-duration", "no-block", "thresholds-only-block"],
)  # fmt: skip
def test_options_that_make_no_load_are_refused(
    block: Load | None, given: LoadOptions, message: str
) -> None:
    with pytest.raises(LoadPlanError) as info:
        plan_load(block, given)
    assert str(info.value).startswith(message)


# -- real runs, against the built-in sink -------------------------------------------------


def write(tmp_path: Path, load: str) -> Path:
    path = tmp_path / "loaded.yaml"
    path.write_text(scenario_text(load))
    return path


def run(tmp_path: Path, scenario: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    summary = tmp_path / "summary.json"
    summary.unlink(missing_ok=True)
    result = smtpload(
        "run", str(scenario), "--results", str(tmp_path / "r"), "--json", str(summary),
        "--quiet", *args, cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    loaded = json.loads(summary.read_text()) if summary.exists() else {}
    return result.returncode, result.stderr, loaded


def test_a_block_alone_runs_open_loop(tmp_path: Path) -> None:
    block = (
        "rate: 200\nduration: 10s\nsessions: 20\narrivals: poisson\nseed: 5\nmax_in_flight: 8\n"
        "thresholds: ['start_delay.p99<10s']\n"
    )
    scenario = write(tmp_path, block)
    status, stderr, summary = run(tmp_path, scenario)
    assert status == 0, stderr
    assert summary["load"] == {
        "model": "open",
        "corrected": True,
        "arrivals": "poisson",
        "stages": [{"duration_s": 0.0, "rate_per_s": 200.0}, {"duration_s": 10.0,
                                                              "rate_per_s": 200.0}],
        "duration_s": 10.0,
        "max_sessions": 20,
        "max_in_flight": 8,
        "seed": 5,
        "workers": 1,
    }  # fmt: skip
    assert summary["sessions"]["started"] == summary["sessions"]["passed"] == 20
    assert [entry["expression"] for entry in summary["thresholds"]] == ["start_delay.p99<10s"]


def test_the_summary_lists_the_stages_as_run(tmp_path: Path) -> None:
    block = (
        "sessions: 10\nstages:\n  - {duration: 0, rate: 300}\n  - {duration: 2s, rate: 300}\n"
        "  - {duration: 1s, rate: 0}\n"
    )
    scenario = write(tmp_path, block)
    status, stderr, summary = run(tmp_path, scenario)
    assert status == 0, stderr
    load = summary["load"]
    assert isinstance(load, dict)
    assert load["stages"] == [
        {"duration_s": 0.0, "rate_per_s": 300.0},
        {"duration_s": 2.0, "rate_per_s": 300.0},
        {"duration_s": 1.0, "rate_per_s": 0.0},
    ]
    assert load["duration_s"] == 3.0
    assert load["max_sessions"] == 10


def test_rate_on_the_command_line_replaces_the_blocks_stages(tmp_path: Path) -> None:
    scenario = write(tmp_path, "stages:\n  - {duration: 1m, rate: 5}\n")
    status, stderr, summary = run(tmp_path, scenario, "--rate", "400", "--sessions", "12",
                                  "--seed", "4", "--arrivals", "poisson")  # fmt: skip
    assert status == 0, stderr
    load = summary["load"]
    assert isinstance(load, dict)
    assert load["stages"] == [
        {"duration_s": 0.0, "rate_per_s": 400.0},
        {"duration_s": 366 * 24 * 3600.0, "rate_per_s": 400.0},
    ]
    assert (load["max_sessions"], load["seed"], load["arrivals"]) == (12, 4, "poisson")


def test_concurrency_on_the_command_line_runs_closed_loop(tmp_path: Path) -> None:
    scenario = write(tmp_path, "rate: 1\nduration: 1h\nthresholds: [failed==0]\n")
    status, stderr, summary = run(tmp_path, scenario, "--concurrency", "2", "--sessions", "3")
    assert status == 0, stderr
    assert summary["load"] == {"model": "closed", "corrected": False, "concurrency": 2,
                               "sessions": 3, "workers": 1}  # fmt: skip
    # The block's thresholds still apply: only its load is set aside.
    assert [entry["expression"] for entry in summary["thresholds"]] == ["failed==0"]


def test_threshold_on_the_command_line_replaces_the_blocks(tmp_path: Path) -> None:
    # The block's threshold cannot hold (a run of 3 sessions has no million passed).
    scenario = write(tmp_path, "rate: 300\nsessions: 3\nthresholds: ['passed>=1000000']\n")
    status, stderr, summary = run(tmp_path, scenario)
    assert status == 1, stderr
    assert [entry["verdict"] for entry in summary["thresholds"]] == ["fail"]
    status, stderr, summary = run(tmp_path, scenario, "--threshold", "passed==3")
    assert status == 0, stderr
    assert [entry["expression"] for entry in summary["thresholds"]] == ["passed==3"]


@pytest.mark.parametrize(
    ("load", "args", "message"),
    [
        ("rate: 1\nduration: 1h\n", ["--concurrency", "2", "--max-in-flight", "3"],
         "smtpload: --max-in-flight is for open-loop runs, and --concurrency runs this one"
         " closed loop"),
        ("stages: [{duration: 1s, rate: 5}]\n", ["--duration", "3s"],
         "smtpload: --duration is for a load given by a rate"),
        ("rate: 1\nduration: 2s\n", ["--ramp", "5s"],
         "smtpload: --ramp 5 s is longer than load: duration 2 s"),
    ],
    ids=["concurrency-and-max-in-flight", "duration-over-stages", "ramp-over-block"],
)  # fmt: skip
def test_the_command_line_refuses_what_makes_no_load(
    tmp_path: Path, load: str, args: list[str], message: str
) -> None:
    status, stderr, summary = run(tmp_path, write(tmp_path, load), *args)
    assert status == 2
    assert stderr.startswith(message), stderr
    assert summary == {}
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("thresholds", "where", "message"),
    [
        # The column of the problem inside the expression, plain and quoted.
        ("  - session.p99<<5ms\n", "4:17", "load: threshold 'session.p99<<5ms': expected a"
                                           " number, e.g. 500ms"),
        ("  - \"step:rcpt.p99<5ms\"\n", "4:11", "load: threshold 'step:rcpt.p99<5ms': the"
                                                " scenario has no step 'rcpt'"),
        # Where the text is not the source (an escape), the expression's start.
        ("  - \"session.p99\\x3c5 parsecs\"\n", "4:5", "load: threshold 'session.p99<5 parsecs'"),
        ("  - start_delay.p99<5ms\n", "4:5", "load: threshold 'start_delay.p99<5ms':"
                                             " start_delay is measured only in open-loop runs"),
    ],
    ids=["plain", "quoted", "escaped", "start-delay-in-closed-loop"],
)  # fmt: skip
@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_bad_threshold_is_reported_at_its_place(
    tmp_path: Path, command: str, thresholds: str, where: str, message: str
) -> None:
    # start_delay needs an open loop: the block is closed loop (thresholds alone) here.
    scenario = tmp_path / "t.yaml"
    scenario.write_text("load:\n  thresholds:\n  # the thresholds\n" + thresholds + STEPS)
    result = smtpload(command, str(scenario), "--results", str(tmp_path / "r"), cwd=tmp_path) \
        if command == "run" else smtpload(command, str(scenario), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(f"{scenario}:{where}: {message}"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_a_bad_block_is_a_scenario_error_for_run(tmp_path: Path) -> None:
    scenario = write(tmp_path, "rate: 5\nduration: 2s\nramp: 5s\n")
    status, stderr, summary = run(tmp_path, scenario)
    assert status == 2
    assert stderr == f"{scenario}:4:3: load: ramp 5 s is longer than duration 2 s: the run would" \
        " end before it reaches the rate\n"  # fmt: skip
    assert summary == {}


# -- issue 10 item 4: the rate follows the stages ------------------------------------------

# 20/s for 2 s (a stage of no length starts it there), up to 60/s over 2 s, then 60/s for 2 s.
STAGES_RUN = """\
stages:
  - {duration: 0s, rate: 20}
  - {duration: 2s, rate: 20}
  - {duration: 2s, rate: 60}
  - {duration: 2s, rate: 60}
"""
# Sessions due in each second, worked out by hand: the ramp's seconds average 30/s and 50/s.
EXPECTED_PER_SECOND = [20, 20, 30, 50, 60, 60]
# Starts near a second's edge may fall on either side of it (the timeline's seconds begin a
# little before the schedule's); a constant rate of the same total (40/s) is off by 10 to 20.
TOLERANCE = 4


def test_a_run_of_stages_starts_sessions_at_the_stages_rate(tmp_path: Path) -> None:
    scenario = write(tmp_path, STAGES_RUN)
    status, stderr, summary = run(tmp_path, scenario)
    assert status == 0, stderr
    sessions = summary["sessions"]
    assert isinstance(sessions, dict)
    assert sessions["started"] == sum(EXPECTED_PER_SECOND)
    (folder,) = (tmp_path / "r").iterdir()
    with (folder / "timeline.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    started = [int(row["started"]) for row in rows]
    assert sum(started) == sum(EXPECTED_PER_SECOND)
    assert len(started) >= len(EXPECTED_PER_SECOND)
    assert not any(started[len(EXPECTED_PER_SECOND) :])  # nothing due after the stages
    for second, (seen, due) in enumerate(zip(started, EXPECTED_PER_SECOND, strict=False)):
        assert abs(seen - due) <= TOLERANCE, (second, started, EXPECTED_PER_SECOND)
    # The timeline shows the stages as run: the schedule's own rate in each second.
    targets = [float(row["target_rate_per_s"]) for row in rows[: len(EXPECTED_PER_SECOND)]]
    assert targets == pytest.approx(EXPECTED_PER_SECOND)


def test_the_schedule_says_how_many_sessions_are_due_by_when() -> None:
    stages = (Stage(0.0, 20.0), Stage(2.0, 20.0), Stage(2.0, 60.0), Stage(2.0, 60.0))
    due = [sessions_due_by(stages, float(second)) for second in range(8)]
    assert due == pytest.approx([0, 20, 40, 70, 120, 180, 240, 240])
    load = OpenLoop(stages=stages, max_in_flight=1)
    assert load.rate_between(2.0, 3.0) == pytest.approx(30.0)
    assert load.rate_between(2.5, 2.5) == 0.0
    assert sessions_due_by(stages, -1.0) == 0.0


def test_a_closed_loop_timeline_has_no_target_rate(tmp_path: Path) -> None:
    scenario = write(tmp_path, "thresholds: [failed==0]\n")
    status, stderr, _ = run(tmp_path, scenario, "--sessions", "2")
    assert status == 0, stderr
    (folder,) = (tmp_path / "r").iterdir()
    with (folder / "timeline.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows
    assert {row["target_rate_per_s"] for row in rows} == {""}


# -- the Python API: the same rules --------------------------------------------------------


def test_the_api_runs_the_block_and_its_arguments_replace_its_keys(tmp_path: Path) -> None:
    scenario = write(tmp_path, "rate: 300\nsessions: 4\nthresholds: ['passed>=1000000']\n")
    alone = smtpload_api.run(scenario)
    assert alone.summary["load"]["model"] == "open"
    assert alone.summary["load"]["max_sessions"] == 4
    assert alone.summary["sessions"]["started"] == 4
    assert alone.exit_status == 1  # the block's threshold cannot hold
    capped = smtpload_api.run(scenario, sessions=2, thresholds=[])
    assert capped.summary["load"]["max_sessions"] == 2
    assert capped.summary["thresholds"] == []
    assert capped.exit_status == 0
    closed = smtpload_api.run(scenario, concurrency=2, sessions=3)
    assert closed.summary["load"] == {
        "model": "closed",
        "corrected": False,
        "concurrency": 2,
        "sessions": 3,
        "workers": 1,
    }
    assert [entry["expression"] for entry in closed.summary["thresholds"]] == ["passed>=1000000"]


def test_the_api_reports_a_bad_block_threshold_at_its_place(tmp_path: Path) -> None:
    scenario = write(tmp_path, "thresholds:\n  - start_delay.p99<5ms\n")
    with pytest.raises(ScenarioError) as info:
        smtpload_api.run(scenario, concurrency=1)
    assert str(info.value).startswith(
        f"{scenario}:3:7: load: threshold 'start_delay.p99<5ms': start_delay is measured only"
    )


# -- the bounds (README, "Limits") -------------------------------------------------------------


def test_the_bounds_themselves_are_accepted() -> None:
    load = parse(f"rate: {MAX_RATE_PER_S:.0f}\nsessions: 1\n").load
    assert load is not None
    assert load.rate_per_s == MAX_RATE_PER_S
    many = ", ".join(["{duration: 1, rate: 1}"] * MAX_STAGES)
    staged = parse(f"stages: [{many}]\n").load
    assert staged is not None
    assert len(staged.stages) == MAX_STAGES
    rules = parse("thresholds: [" + ", ".join(["failed==0"] * MAX_THRESHOLDS) + "]\n").load
    assert rules is not None
    assert len(rules.thresholds) == MAX_THRESHOLDS


def test_more_thresholds_than_the_bound_are_refused() -> None:
    found = problems("thresholds: [" + ", ".join(["failed==0"] * (MAX_THRESHOLDS + 1)) + "]\n")
    assert found == [
        f"s.yaml:2:15: load: thresholds has 1,001 entries; at most {MAX_THRESHOLDS} are allowed"
    ]


def test_stages_longer_than_a_year_in_all_are_refused() -> None:
    found = problems("stages:\n  - {duration: 200d, rate: 1}\n")
    assert found[0].startswith("s.yaml:3:18: load: stage 1: duration '200d' is not a duration")
    found = problems("stages:\n  - {duration: 8000h, rate: 1}\n  - {duration: 8000h, rate: 1}\n")
    assert found == ["s.yaml:3:5: load: the stages last 57,600,000 s in all, longer than a year"]


def test_the_bundled_example_runs_its_block_against_the_sink(tmp_path: Path) -> None:
    status, stderr, summary = run(tmp_path, Path("ramping-arrivals"))
    assert status == 0, stderr
    assert summary["load"]["model"] == "open"
    assert summary["load"]["stages"] == [
        {"duration_s": 2.0, "rate_per_s": 20.0},
        {"duration_s": 2.0, "rate_per_s": 20.0},
    ]
    assert summary["sessions"]["started"] == summary["sessions"]["passed"] == 60
    assert [entry["verdict"] for entry in summary["thresholds"]] == ["pass", "pass"]


@pytest.mark.parametrize("rate", ["1e-300", "2E+2"])
def test_an_exponent_without_a_dot_is_explained_by_the_command(tmp_path: Path, rate: str) -> None:
    scenario = tmp_path / "r.yaml"
    scenario.write_text(f"steps:\n  - greeting: 220\nload: {{rate: {rate}, duration: 1s}}\n")
    for command in ("validate", "run"):
        result = smtpload(command, str(scenario), cwd=tmp_path)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr == (
            f"{scenario}:3:14: load: rate: YAML reads a number with an exponent but no dot as"
            " text; write a number in plain decimal, such as 100 or 0.5\n"
        )
