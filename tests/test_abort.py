"""``--abort-on-threshold``: which thresholds abort mid-run and how they are judged (pure), then
real runs against servers that degrade: an abort, no abort while the thresholds hold or during
the warm-up, and Ctrl-C's 130 still winning."""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

import smtpload
from smtpload.net.runner import RunSettings, run_scenario_to_summary
from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.outcome import Outcome
from smtpload.report.abort import AbortCheck, aborts_mid_run, format_abort
from smtpload.report.results import build_summary, exit_status
from smtpload.report.stats import LATENCY_KEYS, LatencyHistogram, RunStats
from smtpload.report.thresholds import STATS, evaluate_thresholds, parse_threshold
from smtpload.scenario.bundled import scenario_path
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.model import Target
from tests.cli import smtpload as run_smtpload
from tests.cli import start_smtpload
from tests.misbehaving import slows_down_after

# -- which thresholds abort ------------------------------------------------------------------

# Every kind of metric with every operator: latencies, counts, percentages, rates.
ABORTS = {
    # a latency's upper bound aborts (k6); its lower bound, equality and inequality do not
    "session.p99<500ms": True, "step:rcpt.max<=1s": True, "start_delay.mean<10ms": True,
    "session.p50>1ms": False, "step:greeting.p50>=5s": False, "session.max==5": False,
    "session.p99!=5": False,
    # a count only grows: its upper bounds abort, its lower bounds are for the end
    "failed<10": True, "failed<=3": True, "failed==0": True, "messages<5000": True,
    "passed<=7": True, "passed>=1000": False, "passed>0": False, "messages>1": False,
    "messages>=1": False, "failed!=0": False,
    # a percentage (of the sessions finished so far), either way, as k6's rates
    "failed<0.1%": True, "failed<=1%": True, "passed>=99%": True, "passed>50%": True,
    "failed==0%": False, "passed!=100%": False,
    # a rate so far is dragged down by the warm-up and a ramp: judged at the end only
    "messages_per_s>900": False, "sessions_per_s>=1": False, "passed_sessions_per_s<10": False,
    "messages_per_s<=5": False, "sessions_per_s==1": False, "messages_per_s!=0": False,
}  # fmt: skip


@pytest.mark.parametrize(("expression", "aborts"), ABORTS.items())
def test_which_thresholds_can_abort_a_run(expression: str, aborts: bool) -> None:
    assert aborts_mid_run(parse_threshold(expression)) is aborts


def test_the_default_failed_threshold_is_watched_unless_one_is_on_failed() -> None:
    given = [parse_threshold("session.p99<1s"), parse_threshold("passed>=10")]
    watched = [t.expression for t in AbortCheck(given).watched]
    assert watched == ["session.p99<1s", "failed==0 (default)"]
    with_failed = [*given, parse_threshold("failed<50%")]
    assert [t.expression for t in AbortCheck(with_failed).watched] == [
        "session.p99<1s",
        "failed<50%",
    ]
    # A threshold on failed that cannot abort still replaces the default, as in exit_status.
    assert AbortCheck([parse_threshold("failed>=1")]).watched == []


# -- judging the run so far ------------------------------------------------------------------


def _stats_with_samples(seed: int) -> RunStats:
    stats = RunStats(["connect", "greeting", "rcpt"])
    rng = random.Random(seed)
    stats.start_intervals()
    for _ in range(2000):
        stats.session_started()
        stats.record_step("rcpt", int(rng.lognormvariate(7, 2)), failed=False)
        stats.record_start_delay(int(rng.expovariate(1 / 3000)))
        stats.record_session(Outcome.PASSED, int(rng.lognormvariate(9, 1.5)))
    for step in stats.steps.values():
        step.latency.take_interval()  # the interval task's work: run-wide histograms filled
    for _, histogram in stats.run_histograms():
        histogram.take_interval()
    return stats


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_judgement_measures_what_the_summary_says(seed: int) -> None:
    # Every statistic of every latency metric: a limit just under the summary's value is
    # crossed, measured exactly as the summary has it; one at that value holds.
    stats = _stats_with_samples(seed)
    summary = build_summary(
        scenario="s", target="t:25", run_id="r", duration_s=10.0, stats=stats, interrupted=False
    )
    for metric in ("session", "start_delay", "step:rcpt"):
        for stat in STATS:
            final = evaluate_thresholds([parse_threshold(f"{metric}.{stat}<1h")], summary)
            value = final[0]["value"]
            below = AbortCheck([parse_threshold(f"{metric}.{stat}<{value - 0.001}ms")])
            crossing = below.check(stats, 10.0)
            assert crossing is not None, (metric, stat, value)
            assert crossing.measured == value
            assert (
                AbortCheck([parse_threshold(f"{metric}.{stat}<={value}ms")]).check(stats, 10.0)
                is None
            ), (metric, stat)


def test_one_statistic_is_the_summarys_to_the_microsecond() -> None:
    # Histograms of 1 to 5,000 values from all over the range, the ends included (0 is
    # recorded as 1 µs, over an hour as an hour): stat_ms walks the counts its own way.
    rng = random.Random(4)
    for _ in range(100):
        histogram = LatencyHistogram()
        for _ in range(rng.choice([1, 2, 3, 10, 100, 1000, 5000])):
            value = rng.choice([rng.lognormvariate(7, 3), rng.randint(1, 2048), 0, 4e9])
            histogram.record_us(int(value))
        whole = histogram.summary_ms()
        assert whole is not None
        assert {key: histogram.stat_ms(key) for key in LATENCY_KEYS} == whole
    assert LatencyHistogram().stat_ms("p99") is None


def _failing_stats(failed: int, passed: int, started: int | None = None) -> RunStats:
    stats = RunStats(["connect"])
    for _ in range(passed):
        stats.record_session(Outcome.PASSED, 1000)
    for _ in range(failed):
        stats.record_session(Outcome.TIMEOUT, None)
    stats.started = passed + failed if started is None else started
    return stats


def test_nothing_is_judged_during_the_warm_up_and_the_first_crossing_is_kept() -> None:
    stats = _failing_stats(failed=3, passed=10)
    check = AbortCheck([parse_threshold("failed<2")], warmup_s=5.0)
    assert check.check(stats, 4.0) is None
    crossing = check.check(stats, 5.0)
    assert crossing is not None
    assert crossing.summary() == {
        "threshold": "failed<2",
        "metric": "failed",
        "at_s": 5.0,
        "measured": 3,
    }
    assert check.crossing is crossing
    assert check.check(stats, 6.0) is None  # once


def test_a_share_is_of_the_sessions_finished_so_far() -> None:
    # 10 finished, all passed, 90 still running: 100 % passed so far, not 10 %.
    running = _failing_stats(failed=0, passed=10, started=100)
    assert AbortCheck([parse_threshold("passed>=99%")], warmup_s=1).check(running, 1) is None
    failing = _failing_stats(failed=1, passed=9, started=100)
    crossing = AbortCheck([parse_threshold("failed<5%")], warmup_s=1).check(failing, 1)
    assert crossing is not None
    assert crossing.measured == 10.0


def test_no_data_does_not_abort() -> None:
    # No session finished, no step completed: nothing says the run is bad yet.
    stats = RunStats(["connect", "rcpt"])
    stats.started = 5
    rules = ["session.p99<1ms", "step:rcpt.max<1ms", "failed<1%", "passed>=99%", "failed==0"]
    check = AbortCheck([parse_threshold(rule) for rule in rules], warmup_s=1)
    assert check.check(stats, 3.0) is None


def test_the_report_says_why_in_one_line() -> None:
    summary: dict[str, Any] = {
        "aborted": {"threshold": "session.p99<500ms", "metric": "session.p99", "at_s": 6.0,
                    "measured": 612.3456},
    }  # fmt: skip
    assert format_abort(summary) == [
        "aborted at 6 s (--abort-on-threshold): session.p99<500ms crossed, measured 612.346 ms"
    ]
    summary["aborted"] = {"threshold": "failed==0 (default)", "metric": "failed", "at_s": 5.0,
                          "measured": 12}  # fmt: skip
    assert format_abort(summary) == [
        "aborted at 5 s (--abort-on-threshold): failed==0 (default) crossed, measured 12"
    ]
    assert format_abort({"aborted": None}) == []


def test_an_aborted_run_exits_1_and_a_signal_still_130() -> None:
    aborted = {"threshold": "failed<1", "metric": "failed", "at_s": 5.0, "measured": 2}
    base = {"interrupted": False, "sessions": {"failed": 0}, "thresholds": [], "aborted": None}
    assert exit_status(base) == 0
    assert exit_status({**base, "aborted": aborted}) == 1
    assert exit_status({**base, "aborted": aborted, "interrupted": True}) == 130


# -- real runs -------------------------------------------------------------------------------

SLOW_REPLY_S = 1.0
FAST_SESSIONS = 10


def _read_summary(cwd: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((cwd / "summary.json").read_text())
    return result


async def _serve(nursery: trio.Nursery, handler: Any) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


def _accounted_for(summary: dict[str, Any], asked: int) -> None:
    sessions = summary["sessions"]
    assert sessions["passed"] + sessions["failed"] == sessions["started"], sessions
    assert sessions["started"] + sessions["not_started"] == asked, sessions
    assert sum(sessions["failures"].values()) == sessions["failed"], sessions


async def test_a_server_that_slows_down_aborts_a_closed_loop_run(tmp_path: Path) -> None:
    # 10 sessions are served at once, then every reply takes 1 s: the greetings that come
    # after the first second cross the threshold at the judgement of 2 s; the 2 sessions
    # running then (each needs 7 s) get 2 s and are cut off; the rest of the 100,000 never
    # start. Without the abort the run would take hours.
    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, slows_down_after(FAST_SESSIONS, SLOW_REPLY_S))
        result = await trio.to_thread.run_sync(
            functools.partial(
                run_smtpload,
                "run", "quickstart", "--target", f"127.0.0.1:{port}",
                "--sessions", "100000", "--concurrency", "2", "--timeout", "30s",
                "--threshold", "step:greeting.max<300ms", "--threshold", "session.p99<1m",
                "--abort-on-threshold", "--abort-warmup", "1s",
                "--json", str(tmp_path / "summary.json"), "--results", str(tmp_path / "r"),
                cwd=tmp_path, timeout_s=60,
            )
        )  # fmt: skip
        nursery.cancel_scope.cancel()
    assert result.returncode == 1, result.stdout + result.stderr
    summary = _read_summary(tmp_path)
    aborted = summary["aborted"]
    assert aborted["threshold"] == "step:greeting.max<300ms"
    assert aborted["metric"] == "step:greeting.max"
    assert aborted["at_s"] >= 1.0
    assert aborted["measured"] >= 1000 * SLOW_REPLY_S * 0.9
    assert summary["interrupted"] is False
    assert summary["duration_s"] < 20  # stopped, not run through
    _accounted_for(summary, 100000)
    sessions = summary["sessions"]
    assert sessions["passed"] == FAST_SESSIONS
    assert sessions["failures"]["interrupted"] == 2  # cut off after the grace
    assert sessions["started"] == FAST_SESSIONS + 2
    # The final thresholds are judged on the final summary, as without the abort.
    assert [entry["expression"] for entry in summary["thresholds"]] == [
        "step:greeting.max<300ms",
        "session.p99<1m",
    ]
    assert summary["thresholds"][0]["verdict"] == "fail"
    assert "aborted at " in result.stdout
    assert "step:greeting.max<300ms crossed, measured" in result.stdout
    (run_dir,) = (tmp_path / "r").iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["aborted"] == aborted


async def test_a_server_that_slows_down_aborts_an_open_loop_run(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, slows_down_after(FAST_SESSIONS, SLOW_REPLY_S))
        result = await trio.to_thread.run_sync(
            functools.partial(
                run_smtpload,
                "run", "quickstart", "--target", f"127.0.0.1:{port}",
                "--rate", "20", "--duration", "30s", "--timeout", "30s", "--quiet",
                "--threshold", "step:greeting.p99<300ms",
                "--abort-on-threshold", "--abort-warmup", "1s",
                "--json", str(tmp_path / "summary.json"), "--results", str(tmp_path / "r"),
                cwd=tmp_path, timeout_s=60,
            )
        )  # fmt: skip
        nursery.cancel_scope.cancel()
    assert result.returncode == 1, result.stdout + result.stderr
    summary = _read_summary(tmp_path)
    assert summary["aborted"]["threshold"] == "step:greeting.p99<300ms"
    assert summary["duration_s"] < 20
    _accounted_for(summary, 20 * 30)  # every session due in the 30 s: started or not
    sessions = summary["sessions"]
    assert sessions["not_started"] > 20 * 20
    assert sessions["failures"]["interrupted"] == sessions["failed"] > 0
    # --quiet: the outcomes, the abort and the thresholds, in a few lines.
    assert "aborted at " in result.stdout
    assert result.stdout.splitlines()[0].startswith("sessions: ")


def test_no_abort_while_the_thresholds_hold(tmp_path: Path) -> None:
    # A ramp keeps the rate so far under 25/s for the first seconds (10/s at 1 s, 20/s at 2 s)
    # and passed>=120 is only reached at the end: neither may abort. The run ends at 4 s with
    # every threshold held.
    result = run_smtpload(
        "run", "quickstart", "--rate", "40", "--ramp", "2s", "--duration", "4s", "--quiet",
        "--threshold", "messages_per_s>25", "--threshold", "passed>=120",
        "--threshold", "session.p99<5s", "--threshold", "failed<=1%",
        "--abort-on-threshold", "--abort-warmup", "1s",
        "--json", str(tmp_path / "summary.json"), "--results", str(tmp_path / "r"),
        cwd=tmp_path,
    )  # fmt: skip
    summary = _read_summary(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr + json.dumps(summary)
    assert summary["aborted"] is None
    assert summary["duration_s"] >= 3.9
    assert summary["sessions"]["passed"] == 120
    assert [entry["verdict"] for entry in summary["thresholds"]] == ["pass"] * 4


def test_no_abort_during_the_warm_up(tmp_path: Path) -> None:
    # Every session fails from the first (the built-in sink accepts the recipient that
    # rejected-recipient expects refused), and no --threshold is given: the default failed==0
    # aborts, but not before the 2 s warm-up is over.
    result = run_smtpload(
        "run", "rejected-recipient", "--sessions", "10000000", "--quiet",
        "--abort-on-threshold", "--abort-warmup", "2s",
        "--json", str(tmp_path / "summary.json"), "--results", str(tmp_path / "r"),
        cwd=tmp_path, timeout_s=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    summary = _read_summary(tmp_path)
    assert summary["aborted"]["threshold"] == "failed==0 (default)"
    assert summary["aborted"]["at_s"] == 2.0
    assert summary["aborted"]["measured"] > 0
    assert 1.9 <= summary["duration_s"] < 30
    _accounted_for(summary, 10000000)
    assert "failed==0 (default) crossed" in result.stdout


def test_abort_warmup_needs_abort_on_threshold(tmp_path: Path) -> None:
    result = run_smtpload("run", "quickstart", "--abort-warmup", "1s", cwd=tmp_path)
    assert result.returncode == 2
    assert "--abort-warmup is for --abort-on-threshold" in result.stderr
    assert not (tmp_path / "results").exists()


def test_ctrl_c_still_exits_130(tmp_path: Path) -> None:
    # A server that greets and then says nothing: the sessions are mid-dialogue, no threshold
    # is crossed, and the signal stops the run as ever.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(30)
        port = listener.getsockname()[1]
        process = start_smtpload(
            "run", "quickstart", "--target", f"127.0.0.1:{port}",
            "--sessions", "100", "--concurrency", "2", "--timeout", "60",
            "--threshold", "session.p99<1h", "--abort-on-threshold", "--abort-warmup", "1s",
            "--results", str(tmp_path / "r"), "--json", str(tmp_path / "summary.json"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        connections = []
        try:
            for _ in range(2):
                connection, _ = listener.accept()
                connection.settimeout(30)
                connection.sendall(b"220 stall.test ESMTP\r\n")
                connections.append(connection)
            for connection in connections:
                assert connection.recv(1024).startswith(b"EHLO ")
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
            for connection in connections:
                connection.close()
    assert process.returncode == 130, stderr
    summary = _read_summary(tmp_path)
    assert summary["interrupted"] is True
    assert summary["aborted"] is None
    _accounted_for(summary, 100)


async def test_a_signal_during_an_aborts_grace_makes_it_130() -> None:
    # In-process, with the runner's own signal handling: once the abort has happened, a Ctrl-C
    # during the grace marks the run interrupted; the grace still runs its course.
    scenario = compile_scenario(load_scenario(scenario_path("quickstart")), timeout_s=30)
    stats = RunStats(["connect", *scenario.step_names])
    check = AbortCheck([parse_threshold("step:greeting.max<300ms")], warmup_s=1.0)
    settings = RunSettings(
        sessions=100000, concurrency=2, run_id="grace", handle_signals=True, abort=check
    )
    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, slows_down_after(FAST_SESSIONS, SLOW_REPLY_S))

        async def signal_once_aborted() -> None:
            for _ in range(200):  # 10 s at most
                if check.crossing is not None:
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                await trio.sleep(0.05)

        nursery.start_soon(signal_once_aborted)
        with trio.fail_after(30):
            summary = await run_scenario_to_summary(
                scenario, Target("127.0.0.1", port), settings, stats
            )
        nursery.cancel_scope.cancel()
    assert summary["aborted"] is not None
    assert summary["interrupted"] is True
    assert exit_status(summary) == 130
    assert summary["sessions"]["failures"]["interrupted"] == 2


def test_the_api_aborts_too() -> None:
    result = smtpload.run(
        "rejected-recipient",
        sessions=10_000_000,
        concurrency=2,
        thresholds=["failed<10%"],
        abort_on_threshold=True,
        abort_warmup_s=1.0,
    )
    assert result.exit_status == 1
    assert result.summary["aborted"]["threshold"] == "failed<10%"
    assert result.summary["aborted"]["measured"] == 100.0
    assert result.summary["sessions"]["not_started"] > 0
    with pytest.raises(smtpload.UsageError, match="abort_warmup_s=0"):
        smtpload.run("quickstart", abort_on_threshold=True, abort_warmup_s=0)
    assert smtpload.run("quickstart").summary["aborted"] is None
