"""latency.hlog and timeline.csv: the run per second, read back as a user's tools would."""

from __future__ import annotations

import csv
import functools
import gc
import itertools
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import trio
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from smtpload.net.runner import RunSettings, run_scenario_to_summary
from smtpload.protocol.compiler import compile_scenario
from smtpload.report.intervals import (
    HLOG_FILE,
    TIMELINE_COLUMNS,
    TIMELINE_FILE,
    IntervalLog,
    step_tag,
)
from smtpload.report.results import write_results
from smtpload.report.stats import LATENCY_HIGHEST_US, LATENCY_LOWEST_US, RunStats
from smtpload.scenario.bundled import scenario_path
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.model import Target
from tests.cli import smtpload
from tests.misbehaving import slow_greeting


def read_hlog(path: Path) -> tuple[list[HdrHistogram], float]:
    """Every interval in the log, with hdrh's reader, and the StartTime it read."""
    reader = HistogramLogReader(str(path), HdrHistogram(LATENCY_LOWEST_US, LATENCY_HIGHEST_US, 3))
    intervals = []
    try:
        for _ in range(100_000):  # bounded: a few seconds' run has tens of lines
            histogram = reader.get_next_interval_histogram()
            if histogram is None:
                break
            intervals.append(histogram)
    finally:
        reader.input_file.close()  # the reader never closes it
    return intervals, reader.get_start_time_sec()


def tags_of(summary: dict[str, Any]) -> dict[str, int]:
    """Every tag the log must have, with the samples summary.json says it holds."""
    tags = {
        step_tag(index, step["name"]): (step["latency_ms"] or {}).get("samples", 0)
        for index, step in enumerate(summary["steps"])
    }
    tags["session"] = (summary["session_latency_ms"] or {}).get("samples", 0)
    tags["start_delay"] = (summary["start_delay_ms"] or {}).get("samples", 0)  # open loop
    return tags


async def run_against_slow_server(tmp_path: Path, sessions: int) -> tuple[dict[str, Any], Path]:
    compiled = compile_scenario(load_scenario(scenario_path("quickstart")))
    stats = RunStats(["connect", *compiled.step_names])
    settings = RunSettings(sessions=sessions, concurrency=1, run_id="r", handle_signals=False)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, slow_greeting, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(60):
            summary = await run_scenario_to_summary(
                compiled, Target("127.0.0.1", port), settings, stats
            )
        nursery.cancel_scope.cancel()
    write_results(tmp_path, summary, stats)
    return summary, tmp_path


async def test_hlog_of_a_few_seconds_reads_back_with_hdrh_every_tag_adding_up(
    tmp_path: Path,
) -> None:
    # 12 sessions one after another, each greeted after 0.25 s: a run of about 3 s.
    summary, directory = await run_against_slow_server(tmp_path, 12)
    assert summary["sessions"]["passed"] == 12
    intervals, start_time_s = read_hlog(directory / HLOG_FILE)
    expected = tags_of(summary)
    totals = dict.fromkeys(expected, 0)
    starts: dict[str, list[float]] = {tag: [] for tag in expected}
    for histogram in intervals:
        tag = histogram.get_tag()
        totals[tag] += histogram.get_total_count()
        starts[tag].append(histogram.get_start_time_stamp() / 1000 - start_time_s)
    assert set(totals) == set(expected)  # no tag the summary does not know
    assert totals == expected
    assert summary["steps"][1]["latency_ms"]["samples"] == 12  # greeting: one per session
    seconds = int(summary["duration_s"])
    assert seconds >= 2
    for tag, tag_starts in starts.items():
        # One interval per second (and the run's last part), 1 s apart from the start: the
        # BaseTime is added once, not twice (hdrh's own writer's bug).
        assert len(tag_starts) in (seconds, seconds + 1), tag
        assert tag_starts[0] == 0.0
        assert all(abs(b - a - 1.0) < 0.01 for a, b in itertools.pairwise(tag_starts))
    lines = (directory / HLOG_FILE).read_text().splitlines()
    assert "#[Histogram log format version 1.3]" in lines
    assert '#[Tag step-04-rcpt: step "rcpt"]' in lines
    # Interval_Max is in ms (µs / 1,000, Java's "%.3f"): the 0.25 s greeting reads about 250.
    greeting = [
        line.split(",") for line in lines if line.startswith(f"Tag={step_tag(1, 'greeting')},")
    ]
    assert [h.get_tag() for h in intervals].count(step_tag(1, "greeting")) == len(greeting)
    greeted = [h for h in intervals if h.get_tag() == step_tag(1, "greeting")]
    for fields, histogram in zip(greeting, greeted, strict=True):
        assert fields[3] == f"{histogram.get_max_value() / 1000:.3f}"
    assert all(250 <= float(fields[3]) < 1000 for fields in greeting if fields[3] != "0.000")


async def test_timeline_has_a_row_per_second_whose_totals_are_the_summarys(
    tmp_path: Path,
) -> None:
    summary, directory = await run_against_slow_server(tmp_path, 12)
    with (directory / TIMELINE_FILE).open(newline="") as file:
        rows = list(csv.reader(file))
    assert tuple(rows[0]) == TIMELINE_COLUMNS
    records = [dict(zip(TIMELINE_COLUMNS, row, strict=True)) for row in rows[1:]]
    seconds = int(summary["duration_s"])
    assert len(records) in (seconds, seconds + 1)
    assert [int(r["second"]) for r in records] == list(range(len(records)))
    sessions = summary["sessions"]
    assert sum(int(r["started"]) for r in records) == sessions["started"] == 12
    assert sum(int(r["passed"]) for r in records) == sessions["passed"]
    assert sum(int(r["failed"]) for r in records) == sessions["failed"]
    assert sum(int(r["messages"]) for r in records) == summary["throughput"]["messages"]
    assert records[-1]["in_flight"] == "0"
    # Each full second finishes about 4 sessions (0.25 s each): the rate and p50 say so.
    first = records[0]
    assert 2 <= float(first["sessions_per_s"]) <= 5
    assert 250 <= float(first["session_p50_ms"]) <= float(first["session_p99_ms"]) < 1000


def test_a_run_shorter_than_a_second_has_one_interval_per_tag_and_one_row(
    tmp_path: Path,
) -> None:
    result = smtpload(
        "run", "quickstart", "--sessions", "3", "--results", str(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    (directory,) = tmp_path.iterdir()
    summary = json.loads((directory / "summary.json").read_text())
    intervals, _ = read_hlog(directory / HLOG_FILE)
    expected = tags_of(summary)
    assert sorted(h.get_tag() for h in intervals) == sorted(expected)
    assert {h.get_tag(): h.get_total_count() for h in intervals} == expected
    rows = (directory / TIMELINE_FILE).read_text().splitlines()
    assert len(rows) == 2
    assert rows[1].startswith("0,3,3,0,3,")


def test_a_run_that_never_connected_still_gets_its_interval_files(tmp_path: Path) -> None:
    # Nothing listens on port 1: every session fails to connect; no latency anywhere.
    result = smtpload(
        "run", "quickstart", "--target", "127.0.0.1:1", "--sessions", "2",
        "--results", str(tmp_path), "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    (directory,) = tmp_path.iterdir()
    intervals, _ = read_hlog(directory / HLOG_FILE)
    assert intervals
    assert all(h.get_total_count() == 0 for h in intervals)
    rows = (directory / TIMELINE_FILE).read_text().splitlines()
    assert rows[1].split(",")[:4] == ["0", "2", "0", "2"]
    assert rows[1].split(",")[-2:] == ["", ""]  # no session latency in that second


# Names of every kind: long, multibyte, controls, DEL, quotes, brackets, commas, '=', a line
# separator, and a header line's own text.
ODD_NAMES = [
    "x" * 200_000,
    "é" * 300,
    "🙂" * 100,
    "tab\there\nnewline\rcr\x00nul\x1b[31mred\x7fdel",
    'quote " back \\ slash',
    "] #[BaseTime: 0 (seconds since epoch)]",
    "a,b c=d",
    "line\u2028sep\u0085nel",
    "",
]


def test_header_names_every_step_on_one_short_ascii_line(tmp_path: Path) -> None:
    names = ["connect", *ODD_NAMES]
    stats = RunStats(names)
    stats.start_intervals()
    log = IntervalLog(stats, 1_800_000_000.0)
    for name in names:
        stats.record_step(name, 1234, failed=False)
    log.close_interval(0.0, 1.0, last=True)
    path = tmp_path / HLOG_FILE
    with path.open("wb") as stream:
        log.write_hlog(stream)
    data = path.read_bytes()
    assert data.isascii()
    lines = data.decode("ascii").split("\n")
    tag_lines = [line for line in lines if line.startswith("#[Tag step-")]
    assert len(tag_lines) == len(names)  # a name's newline did not split its line
    for index, (name, line) in enumerate(zip(names, tag_lines, strict=True)):
        assert line.startswith(f'#[Tag {step_tag(index, name)}: step "')
        assert line.isprintable(), line[:100]
        assert len(line) < 600, line[:100]
        shown = json.loads(line.split(": step ", 1)[1].removesuffix("]"))
        assert shown == (name if len(name) <= 40 else name[:37] + "...")
    intervals, start_s = read_hlog(path)
    assert start_s == 1_800_000_000.0  # the odd header lines did not change the times
    assert sorted(h.get_tag() for h in intervals) == sorted(
        [*(step_tag(i, n) for i, n in enumerate(names)), "session", "start_delay"]
    )
    steps = [h for h in intervals if h.get_tag() not in ("session", "start_delay")]
    assert all(h.get_total_count() == 1 for h in steps)


def test_interval_log_stops_at_its_bound_and_says_so(tmp_path: Path) -> None:
    stats = RunStats(["connect"])
    stats.start_intervals()
    log = IntervalLog(stats, 1_800_000_000.0, max_hlog_bytes=4096)
    for second in range(200):
        stats.record_step("connect", 100 + second, failed=False)
        log.close_interval(second, second + 1)
    path = tmp_path / HLOG_FILE
    with path.open("wb") as stream:
        log.write_hlog(stream)
    assert path.stat().st_size <= 4096 + 200
    assert log.hlog_cut_at_s is not None
    assert (
        path.read_text()
        .splitlines()[-1]
        .startswith(f"#[smtpload: intervals from {log.hlog_cut_at_s:.3f} s on left out")
    )
    intervals, _ = read_hlog(path)
    assert 0 < len(intervals) < 2 * 200
    assert stats.steps["connect"].latency.count == 200  # the run-wide histogram has them all


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_a_long_run_keeps_its_intervals_out_of_memory() -> None:
    # A day is 86,400 intervals; 1,000 of one step stand for it: memory must not follow them.
    stats = RunStats(["connect"])
    stats.start_intervals()
    log = IntervalLog(stats, 1_800_000_000.0, spool_bytes=16 * 1024)
    tracemalloc.start()
    try:
        for second in range(1000):
            for value_us in range(50, 5000, 97):  # a spread, so the blobs are not tiny
                stats.record_step("connect", value_us + second, failed=False)
            log.close_interval(second, second + 1)
            if second == 100:
                gc.collect()  # hdrh's histograms are cycles: count only what stays
                early, _ = tracemalloc.get_traced_memory()
        gc.collect()
        late, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert log.intervals == 1000
    hlog_bytes = log._hlog_bytes
    assert hlog_bytes > 128 * 1024  # what a list of lines would have held
    assert late - early < 64 * 1024
