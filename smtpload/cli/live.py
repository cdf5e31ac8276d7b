"""``smtpload run`` on a terminal: the live view, redrawn in place once a second.

The runner calls :class:`LiveView` every :attr:`LiveView.interval_s` (its progress callback);
the view redraws when the run's interval log (report/intervals.py) has closed a new second,
so each frame shows one second, the one timeline.csv gets too. The frame itself is made by
report/live.py; here it is only written, in one write, to the progress stream (stderr).
:meth:`LiveView.end` draws the final state after the run, left on screen above the report.
"""

from __future__ import annotations

import os
import shutil
from typing import TextIO

from smtpload.load.arrivals import OpenLoop, rate_at
from smtpload.report.generator import generator_summary, saturation_facts
from smtpload.report.live import LiveState, fit, format_live, redraw
from smtpload.report.stats import RunStats
from smtpload.scenario.durations import MAX_DURATION_S

__all__ = ["LiveView", "terminal_size"]


def terminal_size(stream: TextIO) -> os.terminal_size:
    """The size of the terminal ``stream`` is, as ``shutil.get_terminal_size`` would say but
    for this stream: ``COLUMNS`` and ``LINES`` win when set, else the terminal's own size
    (stderr's: shutil asks stdout, which may be a file), else 80 x 24."""
    fallback = shutil.get_terminal_size((80, 24))  # COLUMNS/LINES, or stdout's size
    try:
        own = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        return fallback
    columns = int(os.environ["COLUMNS"]) if _positive(os.environ.get("COLUMNS")) else own.columns
    lines = int(os.environ["LINES"]) if _positive(os.environ.get("LINES")) else own.lines
    return os.terminal_size((columns or fallback.columns, lines or fallback.lines))


def _positive(value: str | None) -> bool:
    return value is not None and value.isdigit() and int(value) > 0


class LiveView:
    """The live view of one run on ``stream``, a terminal.

    Args:
        stats: the run's stats (the runner fills them and sets their interval log).
        stream: where the view is drawn (stderr).
        load: the open-loop load, or None for a closed-loop run.
        sessions_total: the sessions the run will make, or None when not known.
    """

    #: How often the runner calls the view. A frame is drawn only when a second has closed:
    #: this is how soon after it that is.
    interval_s = 0.1

    def __init__(
        self, stats: RunStats, stream: TextIO, load: OpenLoop | None, sessions_total: int | None
    ) -> None:
        self.stats = stats
        self.stream = stream
        self.load = load
        self.sessions_total = sessions_total
        self.drawn_lines = 0  # the block's height on screen
        self.drawn_seconds = -1  # the intervals closed when it was drawn

    def __call__(self, elapsed_s: float) -> None:
        log = self.stats.intervals
        closed = 0 if log is None else log.intervals
        if closed != self.drawn_seconds:  # the first call draws the block at once
            self.drawn_seconds = closed
            self._draw(elapsed_s, last=False)

    def end(self, duration_s: float) -> None:
        """The run is over: its final state, left on screen (the report follows below)."""
        if self.drawn_lines:
            self._draw(duration_s, last=True)

    def _draw(self, elapsed_s: float, *, last: bool) -> None:
        stats = self.stats
        second = None if stats.intervals is None else stats.intervals.latest
        if second is not None and not last:
            elapsed_s = second.start_s + second.length_s  # the time the figures are of
        generator = generator_summary(stats)
        load = self.load
        target = None
        if load is not None:
            # The second's middle: over a ramp, the rate at the middle is the second's mean.
            at_s = elapsed_s if second is None else second.start_s + second.length_s / 2
            target = rate_at(load.stages, at_s)
        state = LiveState(
            elapsed_s=elapsed_s,
            second=second,
            open_loop=load is not None,
            duration_s=None
            if load is None or load.duration_s >= MAX_DURATION_S
            else load.duration_s,
            sessions_total=self.sessions_total,
            target_rate_per_s=target,
            saturated=tuple(saturation_facts(generator)) if generator["saturated"] else None,
        )
        size = terminal_size(self.stream)
        lines = fit(format_live(state), size.columns, size.lines)
        # One write: a frame is on screen whole or not at all.
        self.stream.write(redraw(lines, self.drawn_lines))
        self.stream.flush()
        self.drawn_lines = len(lines)
