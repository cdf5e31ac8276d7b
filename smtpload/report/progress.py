"""The plain progress line: sessions done, failures, and the rate of the last few seconds.

``smtpload run`` prints it every 10 s where the live view (report/live.py) cannot be drawn:
a pipe, a file, CI, ``TERM=dumb``.

Nothing here reads a clock: the caller hands in the counts and the seconds since the run
started, so the line is a pure function of them (and is tested so).

The rate is over a sliding window of session completions (:data:`DEFAULT_WINDOW_S`), not the
average since the start: after ten minutes at 1,000 sessions/s, a server that stalls would still
show about 1,000/s for minutes under an average; over the last 5 s it shows 0.0 at once. The
window is measured from the samples the caller adds (one per progress update): the count at the
window's start is interpolated between the two samples around it, so with updates every 0.25 s
the window is the last 5 s, and with updates further apart than the window the window is
widened to their spacing and labelled so (``RecentRate(window_s=...)``). Until the run is as
old as the window, the rate is over the whole run and says ``since the start``.

Memory: the samples older than the window are dropped as new ones come, so a run of any length
keeps about ``window_s / update interval + 2`` of them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from smtpload.errors import counted

__all__ = ["DEFAULT_WINDOW_S", "Rate", "RecentRate", "format_progress"]

#: The span the progress line's rate covers, in seconds.
DEFAULT_WINDOW_S = 5.0


@dataclass(frozen=True, slots=True)
class Rate:
    """Completions per second, and the span they were counted over.

    Attributes:
        per_s: completions per second over the span.
        over_s: the span in seconds: the window, or the whole run while it is shorter.
        since_start: the span is the whole run so far (it is younger than the window).
    """

    per_s: float
    over_s: float
    since_start: bool


class RecentRate:
    """Session completions per second over the last ``window_s`` seconds of a run.

    Args:
        window_s: the span of the rate, in seconds (above 0).
    """

    __slots__ = ("_samples", "window_s")

    def __init__(self, window_s: float = DEFAULT_WINDOW_S) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be above 0, not {window_s!r}")
        self.window_s = window_s
        # (seconds since the start, sessions finished by then); the run starts with none.
        self._samples: deque[tuple[float, int]] = deque([(0.0, 0)])

    def add(self, elapsed_s: float, finished: int) -> None:
        """Note that ``finished`` sessions had finished ``elapsed_s`` seconds into the run
        (times never go back)."""
        self._samples.append((elapsed_s, finished))
        start = elapsed_s - self.window_s
        # Keep one sample at or before the window's start: the count there is interpolated.
        while len(self._samples) > 2 and self._samples[1][0] <= start:
            self._samples.popleft()

    def rate(self) -> Rate:
        """The rate over the window that ends at the latest sample."""
        now_s, now_finished = self._samples[-1]
        if now_s <= 0:
            return Rate(per_s=0.0, over_s=0.0, since_start=True)
        start = max(now_s - self.window_s, 0.0)
        (before_s, before), (after_s, after) = self._samples[0], self._samples[1]
        # before_s <= start < after_s: the count at the start, as if evenly spread between.
        at_start = before + (after - before) * (start - before_s) / (after_s - before_s)
        per_s = (now_finished - at_start) / (now_s - start)
        if start == 0.0:
            return Rate(per_s=per_s, over_s=now_s, since_start=True)
        return Rate(per_s=per_s, over_s=self.window_s, since_start=False)


def format_progress(finished: int, failed: int, total: int, rate: Rate) -> str:
    """One short status line for a live display.

    Args:
        finished: sessions finished so far.
        failed: of those, the ones that failed.
        total: the sessions the run will make, or 0 when it is not known.
        rate: the recent rate (:class:`RecentRate`).

    Example: ``"250/1000 sessions, 3 failed, 124.9 sessions/s over the last 5 s"``.
    """
    done = f"{finished}/{counted(total, 'session')}" if total > 0 else counted(finished, "session")
    span = "since the start" if rate.since_start else f"over the last {rate.over_s:g} s"
    return f"{done}, {failed} failed, {rate.per_s:.1f} sessions/s {span}"
