"""When each session of an open-loop run is due to start: the arrival schedule, with no I/O.

In an open-loop run sessions start on a clock, not when an earlier one ends, so a server that
stalls cannot slow the load down and hide its stall from the percentiles (coordinated
omission). The rate follows *stages*, as k6's ramping-arrival-rate does: each stage moves the
rate in a straight line from where the last one left it (0 at the start) to its own rate over
its duration. ``--rate R --duration D`` is one stage that starts at R; ``--ramp T`` adds one
before it from 0 to R.

Arrivals are placed by the expected number of sessions so far, ``N(t)``, the integral of the
rate:

* ``constant``: session ``k`` (from 0) is due when ``N(t) = k``, evenly spaced at a steady
  rate;
* ``poisson``: session ``k`` is due when ``N(t) = E1 + ... + Ek``, the ``E`` independent
  exponential with mean 1 (a seeded generator). Mapping a unit-rate Poisson process through
  ``N`` gives one whose rate is the stages' rate at every moment.

Sessions are due only within the stages' total duration; ``max_sessions`` caps their number.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from smtpload.scenario.model import ARRIVALS  # the names, shared with the scenario's load:

__all__ = [
    "ARRIVALS",
    "OpenLoop",
    "Stage",
    "arrival_offsets",
    "rate_at",
    "sessions_due_by",
    "stages_of",
]


@dataclass(frozen=True, slots=True)
class Stage:
    """Over ``duration_s`` seconds, the rate moves in a line to ``rate_per_s``."""

    duration_s: float
    rate_per_s: float


def stages_of(rate_per_s: float, duration_s: float, ramp_s: float = 0.0) -> tuple[Stage, ...]:
    """The stages of ``--rate R --duration D [--ramp T]``: the ramp (from 0 to R over T) is
    part of the duration, and the rest runs at R (a ramp longer than D ends the run at its
    share of R)."""
    if ramp_s <= 0:
        # A first stage of no length sets where the rate starts (at R, not 0).
        return (Stage(0.0, rate_per_s), Stage(duration_s, rate_per_s))
    if ramp_s >= duration_s:
        return (Stage(duration_s, rate_per_s * duration_s / ramp_s),)
    return (Stage(ramp_s, rate_per_s), Stage(duration_s - ramp_s, rate_per_s))


@dataclass(frozen=True, slots=True)
class _Segment:
    start_s: float
    duration_s: float
    from_rate: float
    to_rate: float
    sessions_before: float  # N at the segment's start

    @property
    def sessions(self) -> float:
        return (self.from_rate + self.to_rate) / 2 * self.duration_s

    def sessions_by(self, time_s: float) -> float:
        """N at ``time_s`` (clamped to the segment)."""
        t = min(max(time_s - self.start_s, 0.0), self.duration_s)
        slope = (self.to_rate - self.from_rate) / self.duration_s
        return self.sessions_before + self.from_rate * t + slope / 2 * t * t

    def time_of(self, sessions: float) -> float:
        """The time within this segment at which N reaches ``sessions`` (in its range)."""
        n = sessions - self.sessions_before
        if n <= 0:
            return self.start_s
        slope = (self.to_rate - self.from_rate) / self.duration_s
        if abs(slope) < 1e-12:
            return self.start_s + n / self.from_rate
        # from_rate * t + slope / 2 * t**2 = n, the root in [0, duration].
        root = math.sqrt(max(self.from_rate**2 + 2 * slope * n, 0.0))
        return self.start_s + 2 * n / (self.from_rate + root)


def _segments(stages: Sequence[Stage]) -> list[_Segment]:
    segments: list[_Segment] = []
    start = 0.0
    rate = 0.0
    sessions = 0.0
    for stage in stages:
        if stage.duration_s > 0:
            segment = _Segment(start, stage.duration_s, rate, stage.rate_per_s, sessions)
            if segment.sessions > 0:
                segments.append(segment)
            sessions += segment.sessions
            start += stage.duration_s
        rate = stage.rate_per_s
    return segments


def rate_at(stages: Sequence[Stage], elapsed_s: float) -> float:
    """The rate, in sessions per second, that ``stages`` ask for ``elapsed_s`` seconds into
    the run: 0 before it and after its last stage (the live view's target rate).

    >>> rate_at(stages_of(100.0, 60.0, ramp_s=10.0), 5.0)
    50.0
    """
    for segment in _segments(stages):
        offset_s = elapsed_s - segment.start_s
        if 0 <= offset_s < segment.duration_s:
            share = offset_s / segment.duration_s
            return segment.from_rate + (segment.to_rate - segment.from_rate) * share
    return 0.0


def sessions_due_by(stages: Sequence[Stage], time_s: float) -> float:
    """``N(t)``: the sessions the stages expect by ``time_s`` seconds from the start (the
    integral of their rate; not a whole number)."""
    segments = _segments(stages)
    if not segments or time_s <= 0:
        return 0.0
    for segment in segments:
        if time_s < segment.start_s + segment.duration_s:
            return segment.sessions_by(time_s)
    return segments[-1].sessions_before + segments[-1].sessions


def arrival_offsets(
    stages: Sequence[Stage],
    *,
    arrivals: str = "constant",
    max_sessions: int | None = None,
    seed: int | None = None,
) -> Iterator[float]:
    """The seconds from the run's start at which each session is due, in order.

    Raises:
        ValueError: ``arrivals`` is not one of ARRIVALS.
    """
    if arrivals not in ARRIVALS:
        raise ValueError(f"arrivals must be one of {ARRIVALS}, got {arrivals!r}")
    segments = _segments(stages)
    if not segments:
        return
    total = segments[-1].sessions_before + segments[-1].sessions
    rng = random.Random(seed)
    index = 0
    count = 0
    target = 0.0
    while max_sessions is None or count < max_sessions:
        if arrivals == "poisson":
            target += rng.expovariate(1.0)
        elif count:
            target += 1.0
        if target >= total:
            return
        while segments[index].sessions_before + segments[index].sessions <= target:
            index += 1
        yield segments[index].time_of(target)
        count += 1


@dataclass(frozen=True, slots=True)
class OpenLoop:
    """An open-loop run: sessions due by ``stages`` (see the module docstring).

    Attributes:
        stages: the rate over time; their durations add up to the run's.
        arrivals: ``constant`` or ``poisson``.
        max_in_flight: the most sessions running at once; a session due while that many run
            waits for one to end and starts late (it is never dropped).
        max_sessions: caps the sessions due (``--sessions`` with ``--rate``), or None.
        seed: the poisson generator's seed (None: a fresh one each run).
    """

    stages: tuple[Stage, ...]
    max_in_flight: int
    arrivals: str = "constant"
    max_sessions: int | None = None
    seed: int | None = None

    @property
    def duration_s(self) -> float:
        return sum(stage.duration_s for stage in self.stages)

    def rate_between(self, start_s: float, end_s: float) -> float:
        """The stages' mean rate from ``start_s`` to ``end_s`` (seconds from the run's start),
        per second: what timeline.csv shows as ``target_rate_per_s``."""
        if end_s <= start_s:
            return 0.0
        due = sessions_due_by(self.stages, end_s) - sessions_due_by(self.stages, start_s)
        return due / (end_s - start_s)

    def offsets(self) -> Iterator[float]:
        """When each session is due, in seconds from the run's start."""
        return arrival_offsets(
            self.stages, arrivals=self.arrivals, max_sessions=self.max_sessions, seed=self.seed
        )
