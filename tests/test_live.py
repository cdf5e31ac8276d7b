"""The live view's frames (report/live.py): pure, so tested with given seconds, no terminal.

How it looks on a real terminal is tests/test_live_terminal.py.
"""

from __future__ import annotations

import re

import pytest

from smtpload.load.arrivals import Stage, rate_at, stages_of
from smtpload.report.intervals import Second
from smtpload.report.live import LiveState, fit, format_live, live_view_possible, redraw


def second(start_s: float = 2.0, length_s: float = 1.0, **counts: int | float | None) -> Second:
    values: dict[str, int | float | None] = {
        "started": 50,
        "passed": 49,
        "failed": 1,
        "messages": 49,
        "in_flight": 3,
        "session_p50_ms": 1.234,
        "session_p99_ms": 5.678,
        "started_total": 150,
        "passed_total": 140,
        "failed_total": 7,
    }
    values.update(counts)
    return Second(start_s, length_s, **values)  # type: ignore[arg-type]


def test_an_open_loop_frame_has_every_figure_of_its_second() -> None:
    state = LiveState(
        elapsed_s=3.0, second=second(), open_loop=True, duration_s=4.0, target_rate_per_s=50.0
    )
    assert format_live(state) == [
        "elapsed    3.0 s of 4.0 s, this second: 2.0-3.0 s",
        "rate       target 50.0/s, started 50.0/s, finished 50.0/s",
        "in flight  3",
        "passed     49 this second, 140 in total",
        "failed     1 this second, 7 in total",
        "latency    p50 1.234 ms, p99 5.678 ms this second (corrected: from when due)",
    ]


def test_a_closed_loop_frame_counts_sessions_done_and_has_no_target() -> None:
    state = LiveState(elapsed_s=3.0, second=second(), open_loop=False, sessions_total=1000)
    lines = format_live(state)
    assert lines[0] == "sessions   147/1000 done, 3.0 s, this second: 2.0-3.0 s"
    assert lines[1] == "rate       finished 50.0/s"
    assert lines[5] == "latency    p50 1.234 ms, p99 5.678 ms this second"  # not corrected


def test_an_open_loop_ended_by_sessions_counts_them() -> None:
    state = LiveState(elapsed_s=3.0, second=second(), open_loop=True, sessions_total=400)
    assert format_live(state)[0] == (
        "elapsed    3.0 s, 150/400 sessions started, this second: 2.0-3.0 s"
    )


def test_the_last_part_of_a_run_is_per_second_over_its_length() -> None:
    last = second(start_s=3.0, length_s=0.5, started=10, passed=20, failed=0)
    lines = format_live(LiveState(elapsed_s=3.5, second=last, open_loop=True, duration_s=4.0))
    assert "this second: 3.0-3.5 s" in lines[0]
    assert lines[1] == "rate       started 20.0/s, finished 40.0/s"


def test_before_the_first_second_every_figure_is_a_dash() -> None:
    lines = format_live(
        LiveState(elapsed_s=0.1, second=None, open_loop=True, target_rate_per_s=5.0)
    )
    assert lines == [
        "elapsed    0.1 s, this second: -",
        "rate       target 5.0/s, started -, finished -",
        "in flight  -",
        "passed     -",
        "failed     -",
        "latency    -",
    ]


def test_a_second_where_none_passed_has_no_latency() -> None:
    quiet = second(passed=0, session_p50_ms=None, session_p99_ms=None)
    lines = format_live(LiveState(elapsed_s=3.0, second=quiet, open_loop=False))
    assert lines[5] == "latency    - (no session passed this second)"


def test_saturation_adds_a_line_that_says_so() -> None:
    facts = ("loop lag p99 8.7 ms", "CPU 97.9 % of a core (over 90 % in 100 % of the run)")
    state = LiveState(elapsed_s=3.0, second=second(), open_loop=False, saturated=facts)
    assert format_live(state)[-1] == (
        "generator saturated so far: loop lag p99 8.7 ms, CPU 97.9 % of a core (over 90 % in "
        "100 % of the run): smtpload is the limit, not the server"
    )
    assert len(format_live(LiveState(elapsed_s=3.0, second=second(), open_loop=False))) == 6


def test_every_frame_is_ascii() -> None:
    # fit() counts characters as columns: true of ASCII.
    state = LiveState(3.0, second(), True, 4.0, 10, 50.0, ("loop lag p99 8.7 ms",))
    assert all(line.isascii() for line in format_live(state))


@pytest.mark.parametrize("columns", [1, 2, 3, 10, 29, 30, 40, 79, 80, 81, 120, 200])
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 7, 8, 24])
def test_fit_never_reaches_the_last_column_or_row(columns: int, rows: int) -> None:
    facts = ("loop lag p99 8.7 ms",)
    lines = format_live(LiveState(3.0, second(), True, 4.0, None, 50.0, facts))
    fitted = fit(lines, columns, rows)
    assert 1 <= len(fitted) <= max(rows - 1, 1)
    assert all(len(line) <= max(columns - 1, 1) for line in fitted)
    # What is kept is the start of each line, in order.
    assert all(lines[i].startswith(line) for i, line in enumerate(fitted))
    if columns > max(map(len, lines)) and rows > len(lines):
        assert fitted == lines


def test_redraw_goes_back_over_the_block_before_and_erases_below() -> None:
    assert redraw(["a", "b"], 0) == "\r\x1b[Ja\nb\n"
    assert redraw(["a", "b", "c"], 2) == "\r\x1b[2A\x1b[Ja\nb\nc\n"
    assert redraw(["a"], 7) == "\r\x1b[7A\x1b[Ja\n"  # a shorter frame: the rest is erased


def test_redraw_has_no_cursor_hiding_or_colour() -> None:
    text = redraw(["x" * 10] * 6, 6)
    assert re.findall(r"\x1b\[[0-9;?]*[A-Za-z]", text) == ["\x1b[6A", "\x1b[J"]


@pytest.mark.parametrize(
    ("is_terminal", "term", "live"),
    [
        (True, "xterm-256color", True),
        (True, "screen", True),
        (True, "linux", True),
        (True, "dumb", False),
        (True, "", False),
        (True, None, False),
        (False, "xterm", False),
        (False, None, False),
    ],
)
def test_live_view_only_on_a_terminal_that_can_move_the_cursor(
    is_terminal: bool, term: str | None, live: bool
) -> None:
    assert live_view_possible(is_terminal=is_terminal, term=term) is live


@pytest.mark.parametrize(
    ("stages", "at_s", "rate"),
    [
        (stages_of(100.0, 60.0), 0.0, 100.0),
        (stages_of(100.0, 60.0), 59.9, 100.0),
        (stages_of(100.0, 60.0), 60.0, 0.0),  # over: nothing more is due
        (stages_of(100.0, 60.0), -1.0, 0.0),
        (stages_of(100.0, 60.0, ramp_s=10.0), 0.0, 0.0),
        (stages_of(100.0, 60.0, ramp_s=10.0), 2.5, 25.0),
        (stages_of(100.0, 60.0, ramp_s=10.0), 10.0, 100.0),
        (stages_of(100.0, 5.0, ramp_s=10.0), 4.0, 40.0),  # a ramp cut by the duration
        ((Stage(10.0, 100.0), Stage(10.0, 0.0)), 15.0, 50.0),  # down again
    ],
)
def test_rate_at_is_the_schedules_rate(stages: tuple[Stage, ...], at_s: float, rate: float) -> None:
    assert rate_at(stages, at_s) == pytest.approx(rate)
