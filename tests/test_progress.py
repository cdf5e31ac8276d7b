"""The progress line (report/progress.py): pure, so tested with given counts and times."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtpload.report.progress import DEFAULT_WINDOW_S, Rate, RecentRate, format_progress

#: A frequent update, as a terminal's progress line had (the rate does not depend on it).
TTY_INTERVAL_S = 0.25


def feed(rate: RecentRate, finished_at: list[tuple[float, int]]) -> Rate:
    """Add each (seconds since the start, sessions finished) and return the rate after."""
    for elapsed_s, finished in finished_at:
        rate.add(elapsed_s, finished)
    return rate.rate()


def ticks(
    until_s: float, finished: Callable[[float], int], every_s: float = TTY_INTERVAL_S
) -> list[tuple[float, int]]:
    """Samples every ``every_s`` up to ``until_s``, ``finished(t)`` sessions done at each."""
    count = round(until_s / every_s)
    return [(i * every_s, finished(i * every_s)) for i in range(1, count + 1)]


def test_the_window_is_five_seconds() -> None:
    assert DEFAULT_WINDOW_S == 5.0


def test_a_steady_rate_is_that_rate_over_the_last_5_s() -> None:
    rate = feed(RecentRate(), ticks(60.0, lambda t: round(t * 40)))
    assert rate.per_s == pytest.approx(40.0)
    assert (rate.over_s, rate.since_start) == (5.0, False)
    assert format_progress(2400, 3, 10_000, rate) == (
        "2400/10000 sessions, 3 failed, 40.0 sessions/s over the last 5 s"
    )


def test_a_stall_shows_at_once_where_the_average_would_hide_it() -> None:
    # 1,000 sessions/s for 60 s, then nothing for 6 s: the average is still ~909/s.
    rate = feed(RecentRate(), ticks(66.0, lambda t: round(min(t, 60.0) * 1000)))
    assert rate.per_s == 0.0
    assert "0.0 sessions/s over the last 5 s" in format_progress(60_000, 0, 0, rate)


def test_a_burst_is_the_last_seconds_rate() -> None:
    # Nothing for 58 s (every session waiting), then 100 sessions in the last 2 s.
    rate = feed(RecentRate(), ticks(60.0, lambda t: 0 if t <= 58.0 else round((t - 58.0) * 50)))
    assert rate.per_s == pytest.approx(20.0)  # 100 in the last 5 s; the average says 1.7


def test_the_window_slides_half_way_through_a_step() -> None:
    # 0/s for 10 s, then 100/s: 2 s into the new pace, 3 s of the window are at 0.
    rate = feed(RecentRate(), ticks(12.0, lambda t: 0 if t <= 10.0 else round((t - 10.0) * 100)))
    assert rate.per_s == pytest.approx(200 / 5.0)


def test_samples_further_apart_than_the_window_widen_it() -> None:
    # Plain lines (not a terminal) come every 10 s: the window is widened to 10 s, and says so.
    rate = feed(RecentRate(window_s=10.0), [(10.0, 100), (20.0, 300), (30.0, 400)])
    assert rate == Rate(per_s=10.0, over_s=10.0, since_start=False)
    assert format_progress(400, 0, 1000, rate).endswith("10.0 sessions/s over the last 10 s")


def test_a_run_younger_than_the_window_says_since_the_start() -> None:
    rate = feed(RecentRate(), [(1.0, 4), (2.0, 10)])
    assert rate == Rate(per_s=5.0, over_s=2.0, since_start=True)
    assert format_progress(10, 1, 100, rate) == (
        "10/100 sessions, 1 failed, 5.0 sessions/s since the start"
    )


def test_before_any_time_has_passed() -> None:
    rate = RecentRate().rate()
    assert rate == Rate(per_s=0.0, over_s=0.0, since_start=True)
    assert (
        format_progress(0, 0, 100, rate)
        == "0/100 sessions, 0 failed, 0.0 sessions/s since the start"
    )


@pytest.mark.parametrize(
    ("finished", "total", "done"),
    [(0, 1, "0/1 session"), (1, 2, "1/2 sessions"), (1, 0, "1 session"), (2, 0, "2 sessions")],
)
def test_the_count_of_sessions(finished: int, total: int, done: str) -> None:
    assert format_progress(finished, 0, total, RecentRate().rate()).startswith(f"{done}, 0 failed")


def test_old_samples_are_dropped() -> None:
    rate = RecentRate()
    for i in range(1, 100_001):  # a day and a bit at a terminal's pace
        rate.add(i * TTY_INTERVAL_S, i)
    kept = len(rate._samples)
    assert kept <= DEFAULT_WINDOW_S / TTY_INTERVAL_S + 2
    assert rate.rate().per_s == pytest.approx(1 / TTY_INTERVAL_S)
