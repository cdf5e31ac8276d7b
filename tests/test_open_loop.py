"""Open-loop load: the arrival schedule (pure), the command line's rules, and a real run whose
server freezes, where only the corrected latencies see the stall."""

from __future__ import annotations

import functools
import itertools
import json
import statistics
import time
from pathlib import Path

import pytest
import trio

from smtpload.load.arrivals import OpenLoop, Stage, arrival_offsets, stages_of
from smtpload.net.client import new_session, resolve_target, run_session
from smtpload.net.runner import RunControl, RunSettings, run_scenario_to_summary
from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.outcome import Outcome
from smtpload.report.stats import RunStats
from smtpload.scenario.bundled import scenario_path
from smtpload.scenario.durations import DurationError, parse_duration
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.model import Target
from tests.cli import smtpload
from tests.misbehaving import Freeze, frozen_sink
from tests.peers import RecordingPeer

# -- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("0.5", 0.5), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0),
     (" 2 s ", 2.0), ("1e1s", 10.0), (".25s", 0.25)],
)  # fmt: skip
def test_durations_are_read(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "-1", "5 minutes", "1d", "1e400", "nan", "0", "0ms"])
def test_what_is_no_duration_is_refused(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


# -- the schedule --------------------------------------------------------------------------


def test_constant_arrivals_are_evenly_spaced_within_the_duration() -> None:
    offsets = list(arrival_offsets(stages_of(10, 2)))
    assert len(offsets) == 20
    assert offsets == pytest.approx([k / 10 for k in range(20)])


def test_a_cap_stops_the_schedule() -> None:
    assert len(list(arrival_offsets(stages_of(100, 10), max_sessions=7))) == 7


def test_a_ramp_rises_from_zero_to_the_rate() -> None:
    # 0 -> 100/s over 2 s (100 sessions), then 100/s for 2 s (200 more).
    offsets = list(arrival_offsets(stages_of(100, 4, ramp_s=2)))
    assert len(offsets) == 300
    first_second = sum(1 for t in offsets if t < 1)
    second_second = sum(1 for t in offsets if 1 <= t < 2)
    assert first_second == 25  # N(1) = 100 * 1**2 / (2 * 2)
    assert second_second == 75
    assert sum(1 for t in offsets if 2 <= t < 3) == 100


def test_stages_move_the_rate_in_lines() -> None:
    # k6's ramping-arrival-rate: from 0 up to 50/s over 2 s, hold 1 s, down to 0 over 2 s.
    stages = (Stage(2, 50), Stage(1, 50), Stage(2, 0))
    offsets = list(arrival_offsets(stages))
    assert len(offsets) == 50 + 50 + 50
    per_second = [sum(1 for t in offsets if s <= t < s + 1) for s in range(5)]
    assert per_second == [13, 37, 50, 38, 12]  # 12.5, 37.5, 50, 37.5, 12.5 rounded by place


def test_poisson_gaps_have_the_exponentials_mean_and_variance() -> None:
    rate = 1000.0
    poisson = list(arrival_offsets(stages_of(rate, 20), arrivals="poisson", seed=7))
    gaps = [b - a for a, b in itertools.pairwise(poisson)]
    # An exponential with mean 1/rate has variance 1/rate**2; 20,000 gaps pin both to a few %.
    assert statistics.fmean(gaps) == pytest.approx(1 / rate, rel=0.03)
    assert statistics.pvariance(gaps) == pytest.approx(1 / rate**2, rel=0.06)
    # Constant arrivals have the mean, but no variance to speak of: they cannot pass.
    constant = list(arrival_offsets(stages_of(rate, 20)))
    steady = [b - a for a, b in itertools.pairwise(constant)]
    assert statistics.fmean(steady) == pytest.approx(1 / rate, rel=0.03)
    assert statistics.pvariance(steady) < 0.01 / rate**2
    # The same seed, the same schedule.
    again = list(arrival_offsets(stages_of(rate, 20), arrivals="poisson", seed=7))
    assert again == poisson


# -- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "10", "--concurrency", "5", "--duration", "1"], "--concurrency is for closed"),
        (["--rate", "10"], "--rate needs --duration (or --sessions)"),
        (["--duration", "5s"], "--duration is for open-loop runs: give --rate too"),
        (["--max-in-flight", "5"], "--max-in-flight is for open-loop runs"),
        (["--arrivals", "poisson"], "--arrivals is for open-loop runs"),
        (["--rate", "10", "--duration", "5 minutes"], "is not a duration"),
        (["--rate", "0", "--duration", "1"], "must be a number of sessions per second above 0"),
        (["--timeout", "0ms"], "--timeout: '0ms' must be above 0"),
        (["--rate", "10", "--ramp", "5s", "--duration", "2s"], "--ramp 5 s is longer than"),
    ],
)
def test_open_loop_options_are_checked_before_anything_runs(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = smtpload("run", "quickstart", "--results", str(tmp_path / "r"), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_an_open_loop_run_from_the_command_line(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    result = smtpload(
        "run", "quickstart", "--rate", "200", "--sessions", "50", "--timeout", "10s",
        "--results", str(tmp_path / "r"), "--json", str(summary_path),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["load"]["model"] == "open"
    assert summary["load"]["corrected"] is True
    assert summary["load"]["max_sessions"] == 50
    assert summary["load"]["duration_s"] is None
    assert summary["sessions"]["started"] == summary["sessions"]["passed"] == 50
    assert summary["sessions"]["not_started"] == 0
    assert summary["start_delay_ms"] is not None
    assert summary["session_latency_uncorrected_ms"] is not None


def test_a_closed_loop_run_says_so_and_its_two_latencies_agree(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    result = smtpload(
        "run", "quickstart", "--sessions", "5", "--results", str(tmp_path / "r"),
        "--json", str(summary_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["load"] == {
        "model": "closed",
        "corrected": False,
        "concurrency": 1,
        "sessions": 5,
        "workers": 1,
    }
    assert summary["session_latency_ms"] == summary["session_latency_uncorrected_ms"]
    assert summary["start_delay_ms"] is None
    assert summary["late_starts"] == 0


@pytest.mark.parametrize("name", ["session", "start_delay", "Session"])
def test_report_names_are_reserved_step_names(tmp_path: Path, name: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"steps:\n  - greeting: 220\n  - send: QUIT\n    name: {name}\n")
    result = smtpload("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"s.yaml:4:11: step name {name!r} is reserved for" in result.stderr


# -- a server that freezes -----------------------------------------------------------------


async def test_a_frozen_server_shows_in_corrected_latencies_only(nursery: trio.Nursery) -> None:
    # 100 sessions/s for 10 s, at most 8 in flight; the server answers nothing from 4 s to
    # 6 s. Closed-loop numbers (and uncorrected ones) see 8 slow sessions (0.8 %: under the
    # p99; 8 slots, not 5, keep up with 100/s on a loaded machine); the sessions due
    # during the freeze waited for a slot and started late, and their corrected latency says
    # how long a user of the server would have waited.
    freeze = Freeze()
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, frozen_sink(freeze), 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    scenario = compile_scenario(load_scenario(scenario_path("quickstart")), timeout_s=10)
    stats = RunStats(["connect", *scenario.step_names])
    load = OpenLoop(stages=stages_of(100, 10), max_in_flight=8)
    settings = RunSettings(
        sessions=1, concurrency=1, run_id="freeze", handle_signals=False, open_loop=load
    )
    start = trio.current_time()
    freeze.start, freeze.end = start + 4, start + 6
    with trio.fail_after(60):
        summary = await run_scenario_to_summary(
            scenario, Target("127.0.0.1", port), settings, stats
        )
    sessions = summary["sessions"]
    assert sessions["started"] == sessions["passed"] == 1000, sessions  # nothing dropped
    assert sessions["not_started"] == 0
    assert summary["session_latency_ms"]["p99"] >= 1500
    assert summary["session_latency_uncorrected_ms"]["p99"] < 500
    assert summary["start_delay_ms"]["max"] >= 1500
    assert summary["late_starts"] >= 100  # two seconds' worth queued behind the freeze
    assert summary["load"]["max_in_flight"] == 8


def test_a_scenario_timeout_may_carry_its_unit(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("timeout: 500ms\nsteps:\n  - greeting: 220\n    timeout: 2m\n")
    scenario = load_scenario(path)
    assert scenario.timeout_s == 0.5
    assert scenario.steps[0].timeout_s == 120.0
    path.write_text("steps:\n  - greeting: 220\n    timeout: soon\n")
    result = smtpload("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "s.yaml:3:14: timeout 'soon' is not a duration" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "quickstart", "--timeout", "500ms"],
        ["sink", "--idle-timeout", "10s"],
        ["record", "quickstart", "-o", "b.json", "--timeout", "2s"],
        ["run", "quickstart", "--timeout", "1m"],
    ],
)
def test_every_duration_option_reads_units(argv: list[str]) -> None:
    from smtpload.cli.main import build_parser

    args = build_parser().parse_args(argv)
    seconds = args.timeout if hasattr(args, "timeout") else args.idle_timeout
    assert seconds == {"500ms": 0.5, "10s": 10.0, "2s": 2.0, "1m": 60.0}[argv[-1]]


# -- a session that starts before it is due ---------------------------------------------------


async def test_a_session_that_starts_early_is_timed_from_its_start(
    aiosmtpd_server: RecordingPeer,
) -> None:
    # The runner wakes a millisecond early, so a session may start before it is due; one
    # that then ends before its due time must not come out below zero (dropped), and its
    # corrected latency is never shorter than its uncorrected one. Here the due time is a
    # whole second after the start: far more than the session takes.
    scenario = compile_scenario(load_scenario(scenario_path("quickstart")), timeout_s=10)
    stats = RunStats(["connect", *scenario.step_names])
    target = await resolve_target(aiosmtpd_server.host, aiosmtpd_server.port)
    engine = new_session(scenario, 1, "early")
    with trio.fail_after(10):
        await run_session(scenario, target, engine, stats, due_ns=time.time_ns() + 10**9)
    assert stats.outcomes[Outcome.PASSED] == 1, stats.failures
    assert stats.negative_session_samples == 0
    corrected = stats.session_latency.summary_ms()
    uncorrected = stats.session_latency_uncorrected.summary_ms()
    assert corrected is not None
    assert uncorrected is not None
    assert corrected["max"] == uncorrected["max"]


async def test_no_session_starts_once_an_open_loop_run_is_cut_off() -> None:
    # A high rate against the built-in sink: the scheduler has spawned session tasks that have
    # not run yet when the run is cut off (RunControl.cancel, as a second Ctrl-C). None of
    # them may start after it: they are not started, and every started one is accounted for.
    scenario = compile_scenario(load_scenario(scenario_path("quickstart")), timeout_s=10)
    stats = RunStats(["connect", *scenario.step_names])
    started_when_cut: list[int] = []
    under_way = trio.Event()

    def progress(elapsed_s: float) -> None:  # the run's own progress ticks, every 5 ms here
        if stats.started >= 200:
            under_way.set()

    async def cut_off(control: RunControl) -> None:
        await under_way.wait()
        started_when_cut.append(stats.started)
        control.cancel()

    load = OpenLoop(stages=stages_of(20_000, 2), max_in_flight=1000)
    settings = RunSettings(
        sessions=1,
        concurrency=1,
        run_id="cut",
        handle_signals=False,
        open_loop=load,
        control=cut_off,
        progress_interval_s=0.005,
    )
    with trio.fail_after(60):
        summary = await run_scenario_to_summary(scenario, None, settings, stats, progress)
    sessions = summary["sessions"]
    assert started_when_cut, "the run ended before the cut"
    assert sessions["started"] == started_when_cut[0], (started_when_cut, sessions)
    assert stats.finished == stats.started
