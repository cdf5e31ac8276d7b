"""Whether a run says smtpload itself was the limit: the rule on given numbers, and real runs
starved of CPU or not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtpload.report.generator import generator_summary, saturation_note
from smtpload.report.stats import RunStats
from tests.cli import smtpload
from tests.peers import SmtpPeer

TICK_S = 0.010  # the runner's tick


def stats_with(*, lags_us: list[int], cpu: list[tuple[float, float]]) -> RunStats:
    stats = RunStats(["connect"])
    for lag in lags_us:
        stats.generator.record_tick(TICK_S, lag / 1e6)
    for cpu_s, wall_s in cpu:
        stats.generator.record_cpu(cpu_s, wall_s)
    return stats


def summary_of(stats: RunStats, clock: str = "kernel") -> dict[str, object]:
    return {"clock": clock, "generator": generator_summary(stats)}


def test_a_quiet_run_is_not_saturated() -> None:
    stats = stats_with(lags_us=[400] * 500, cpu=[(0.3, 1.0)] * 5)
    generator = generator_summary(stats)
    assert generator["saturated"] is False
    assert generator["cpu_percent"] == 30.0
    assert generator["busy_seconds_percent"] == 0.0
    assert saturation_note(summary_of(stats)) is None


def test_a_late_loop_saturates_once_its_ticks_cover_a_second() -> None:
    # 2 % of ticks 10 ms late: the p99 is 10 ms, over the 5 ms rule; 100 ticks cover 1.06 s.
    late = [400] * 98 + [10_000] * 2
    assert generator_summary(stats_with(lags_us=late, cpu=[]))["saturated"] is True
    # The same lateness in a run too short to judge (94 ticks, under 1 s): not judged.
    assert generator_summary(stats_with(lags_us=late[6:], cpu=[]))["saturated"] is False
    # At the limit is not over it.
    at_limit = [400] * 98 + [4990] * 2  # (HdrHistogram reports 5000 as 5.003)
    assert generator_summary(stats_with(lags_us=at_limit, cpu=[]))["saturated"] is False


def test_a_very_late_loop_is_judged_on_its_time_not_its_tick_count() -> None:
    # 40 ms late at every tick: a tick each 50 ms, so 1 s of run is only 20 ticks. It must
    # be judged (and is saturated) however few ticks that makes; 0.9 s of it is not judged.
    assert generator_summary(stats_with(lags_us=[40_000] * 20, cpu=[]))["saturated"] is True
    assert generator_summary(stats_with(lags_us=[40_000] * 18, cpu=[]))["saturated"] is False


def test_a_busy_cpu_saturates_in_more_than_a_tenth_of_the_run() -> None:
    # 95 % of a core in 2 of 10 seconds: over 10 % of the run.
    busy = [(0.95, 1.0)] * 2 + [(0.2, 1.0)] * 8
    stats = stats_with(lags_us=[300] * 1000, cpu=busy)
    generator = generator_summary(stats)
    assert generator["saturated"] is True
    assert generator["busy_seconds_percent"] == 20.0
    # 1 in 10 is not more than a tenth; 90 % exactly is not busy.
    stats = stats_with(lags_us=[300] * 1000, cpu=[(0.95, 1.0)] + [(0.2, 1.0)] * 9)
    assert generator_summary(stats)["saturated"] is False
    stats = stats_with(lags_us=[300] * 1000, cpu=[(0.9, 1.0)] * 10)
    assert generator_summary(stats)["saturated"] is False


def test_cpu_is_weighted_by_time_and_judged_only_after_3_s() -> None:
    # A run of a few milliseconds is all CPU: too short to say anything.
    short = stats_with(lags_us=[300] * 1000, cpu=[(0.5, 0.5)])
    assert generator_summary(short)["saturated"] is False
    # 5 quiet seconds and a busy 20 ms end: the end counts for its 20 ms, not as a sample.
    tail = stats_with(lags_us=[300] * 1000, cpu=[(0.3, 1.0)] * 5 + [(0.02, 0.02)])
    generator = generator_summary(tail)
    assert generator["saturated"] is False
    assert generator["busy_seconds_percent"] == 0.4


def test_the_sentence_says_what_the_numbers_mean_on_each_clock() -> None:
    stats = stats_with(lags_us=[12_000] * 200, cpu=[(0.98, 1.0)] * 3)
    kernel = saturation_note(summary_of(stats, "kernel"))
    assert kernel is not None
    assert kernel.startswith("generator saturated: loop lag p99 12.0 ms, CPU 98 % of a core")
    assert "throughput, is smtpload's limit" in kernel
    assert kernel.endswith("lower --concurrency or add a machine")
    loop = saturation_note(summary_of(stats, "loop"))
    assert loop is not None
    assert "include smtpload's own delay" in loop


def test_a_late_loop_in_an_idle_process_blames_the_machine_not_the_load() -> None:
    # Late ticks while smtpload used a fifth of a core: it waited for other processes.
    stats = stats_with(lags_us=[12_000] * 200, cpu=[(0.2, 1.0)] * 3)
    note = saturation_note({**summary_of(stats, "kernel"), "load": {"model": "open"}})
    assert note is not None
    assert note.endswith(
        "other processes are taking this machine's CPU: run smtpload on a quieter one"
    )
    assert "lower --rate" not in note


def test_the_sentence_names_the_open_loops_knob_in_an_open_loop_run() -> None:
    stats = stats_with(lags_us=[12_000] * 200, cpu=[(0.98, 1.0)] * 3)
    summary = {**summary_of(stats, "kernel"), "load": {"model": "open"}}
    note = saturation_note(summary)
    assert note is not None
    assert note.endswith("lower --rate or add a machine")
    closed = saturation_note({**summary_of(stats, "kernel"), "load": {"model": "closed"}})
    assert closed is not None
    assert closed.endswith("lower --concurrency or add a machine")


# -- real runs -----------------------------------------------------------------------------


@pytest.fixture
def cpu_hogs() -> Iterator[None]:
    """Four busy processes per core, each ending by itself within 60 s."""
    count = 4 * (os.cpu_count() or 1)
    spin = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=10)


def run_summary(tmp_path: Path, peer: SmtpPeer, sessions: int) -> dict[str, object]:
    result = smtpload(
        "run", "quickstart", "--target", f"{peer.host}:{peer.port}",
        "--sessions", str(sessions), "--results", str(tmp_path / "results"),
        "--json", str(tmp_path / "summary.json"),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary: dict[str, object] = json.loads((tmp_path / "summary.json").read_text())
    return summary | {"stdout": result.stdout}


def test_a_run_starved_of_cpu_says_so(
    tmp_path: Path, postfix_smtp_sink: SmtpPeer, cpu_hogs: None
) -> None:
    # Enough sessions for the run to outlast MIN_LOOP_LAG_SPAN_S (the rule judges no shorter
    # loop): 200 sessions did on the first CI machine, and end in under a second on a faster
    # one, hogs or not.
    summary = run_summary(tmp_path, postfix_smtp_sink, 2000)
    generator = summary["generator"]
    assert isinstance(generator, dict)
    assert generator["saturated"] is True, generator
    assert "generator saturated:" in str(summary["stdout"])


def test_a_quiet_run_against_postfix_does_not_say_so(
    tmp_path: Path, postfix_server: SmtpPeer
) -> None:
    # A light run (200 sessions, about a third of a core) never blames its own load. Whether
    # its loop was late depends on the machine: Postfix's smtpd, cleanup and qmgr take the same
    # 2 cores, and a late loop in a process using little CPU is rightly called saturated with
    # the machine blamed (a fresh-clone trial saw cpu 33.5 %, lag max 11.5 ms once). So up to 3
    # runs, and at least one must not be called saturated at all.
    verdicts = []
    for attempt in range(3):
        scratch = tmp_path / str(attempt)
        scratch.mkdir()
        summary = run_summary(scratch, postfix_server, 200)
        generator = summary["generator"]
        assert isinstance(generator, dict)
        stdout = str(summary["stdout"])
        assert "lower --concurrency" not in stdout, generator
        if generator["saturated"] is False:
            assert "generator saturated" not in stdout
            return
        assert "other processes are taking this machine's CPU" in stdout, generator
        verdicts.append(generator)
    pytest.fail(f"called saturated in all 3 runs: {verdicts}")


def test_the_quickstart_does_not_call_itself_saturated(tmp_path: Path) -> None:
    # One session in a few milliseconds: 100 % CPU while it lasts, and nothing to judge.
    result = smtpload("run", "quickstart", "--results", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "generator saturated" not in result.stdout
    (summary_path,) = tmp_path.glob("*/summary.json")
    assert json.loads(summary_path.read_text())["generator"]["saturated"] is False
