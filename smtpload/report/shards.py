"""One run in several shards: what a shard reports, and how the shards add up to one run.

A run with ``--workers N`` is N shards of one run (net/shard.py runs one, net/workers.py runs
them in worker processes): each shard counts into a :class:`~smtpload.report.stats.RunStats` of
its own, from one common start. This module is the arithmetic between them, sans-IO, so that
the same code adds up shards that ran in processes of one machine or, later, on several:

- every second a shard closes an interval (report/intervals.py) and reports it as an
  :class:`IntervalReport`: the interval's histograms, encoded (HdrHistogram V2 blobs), and its
  counts so far as a :class:`ShardCounts`;
- at its end a shard reports :class:`ShardTotals`: its last counts, the histograms that are
  not kept per interval, its kept failures;
- :class:`ShardMerger` adds them into the run's own ``RunStats`` and closes the run's
  interval ``i`` once every shard has reported its interval ``i`` (or ended), so that the
  run's ``latency.hlog`` and ``timeline.csv`` are the sums of the shards' intervals, second by
  second, and its run-wide histograms hold every sample exactly once: they are the sum of its
  intervals, as in one process.

Counts add up. The generator's health does not: its CPU and its loop's lag are per process,
so each shard's :class:`~smtpload.report.stats.GeneratorLoad` is kept (``RunStats.shard_loads``)
and report/generator.py shows the worst; the run is saturated if any shard was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from smtpload.protocol.outcome import Outcome, SessionFailure
from smtpload.report.intervals import ClosedInterval, IntervalLog
from smtpload.report.stats import (
    LOOP_CLOCK,
    GeneratorLoad,
    LatencyHistogram,
    PipeliningCounts,
    RunStats,
)
from smtpload.report.tls_counts import TlsCounts

__all__ = [
    "GeneratorCounts",
    "IntervalReport",
    "ShardCounts",
    "ShardMerger",
    "ShardTotals",
    "StepCounts",
    "interval_index",
    "interval_report",
    "shard_counts",
    "shard_totals",
]


@dataclass(frozen=True, slots=True)
class StepCounts:
    """One step's counts in a shard so far (``StepStats`` without its histogram)."""

    attempts: int
    failed: int
    clock: str
    negative_samples: int
    dropped: int


@dataclass(frozen=True, slots=True)
class GeneratorCounts:
    """A shard's ``GeneratorLoad`` so far, with its loop lag encoded."""

    loop_lag: str
    loop_lag_dropped: int
    intervals: int
    busy_wall_s: float
    cpu_s: float
    wall_s: float
    untimed_reads: int
    loop_lag_span_s: float

    @classmethod
    def of(cls, load: GeneratorLoad) -> GeneratorCounts:
        """The counts of ``load``, to report (:meth:`load` makes it again)."""
        return cls(
            loop_lag=load.loop_lag.encode(),
            loop_lag_dropped=load.loop_lag.dropped,
            intervals=load.intervals,
            busy_wall_s=load.busy_wall_s,
            cpu_s=load.cpu_s,
            wall_s=load.wall_s,
            untimed_reads=load.untimed_reads,
            loop_lag_span_s=load.loop_lag_span_s,
        )

    def load(self) -> GeneratorLoad:
        """The ``GeneratorLoad`` these counts describe."""
        return GeneratorLoad(
            loop_lag=_decoded(self.loop_lag, self.loop_lag_dropped),
            intervals=self.intervals,
            busy_wall_s=self.busy_wall_s,
            cpu_s=self.cpu_s,
            wall_s=self.wall_s,
            untimed_reads=self.untimed_reads,
            loop_lag_span_s=self.loop_lag_span_s,
        )


@dataclass(frozen=True, slots=True)
class ShardCounts:
    """A shard's counters so far: what the run's counters are the sums of."""

    started: int
    messages: int
    outcomes: dict[str, int]
    steps: tuple[StepCounts, ...]
    reply_timed: tuple[str, ...]
    late_starts: int
    negative_session_samples: int
    failures_not_kept: int
    session_dropped: int
    start_delay_dropped: int
    generator: GeneratorCounts
    tls: dict[str, object] | None
    pipelining: dict[str, int] | None


@dataclass(frozen=True, slots=True)
class IntervalReport:
    """One closed interval of a shard.

    Attributes:
        index: which second of the run it is (its start, in whole seconds from the common
            start); a shard's last, shorter interval has the index of the second it is in.
        start_s, length_s: as the shard's interval log closed it.
        histograms: the interval's histograms by tag (report/intervals.py), encoded.
        counts: the shard's counters at the interval's end.
        last: the shard's last interval.
    """

    index: int
    start_s: float
    length_s: float
    histograms: tuple[tuple[str, str], ...]
    counts: ShardCounts
    last: bool = False


@dataclass(frozen=True, slots=True)
class ShardTotals:
    """What a shard reports once it has ended, beside its intervals.

    Attributes:
        counts: its counters at the end.
        failures: its kept failures (up to the run's ``max_kept_failures``).
        reply_lag, session_latency_uncorrected: its histograms that are not kept per
            interval, encoded.
        reply_lag_dropped, uncorrected_dropped: their ``dropped`` counts.
        planned: open loop: the sessions of its share that came due (started or not).
        interrupted: whether a stop cut it short.
        source_counts: its sessions per ``--source`` address, in the list's order, or None.
        duration_s: its own duration.
    """

    counts: ShardCounts
    failures: tuple[SessionFailure, ...]
    reply_lag: str
    reply_lag_dropped: int
    session_latency_uncorrected: str
    uncorrected_dropped: int
    planned: int
    interrupted: bool
    duration_s: float
    source_counts: tuple[int, ...] | None = None
    intervals: tuple[IntervalReport, ...] = field(default=())


def _decoded(blob: str, dropped: int) -> LatencyHistogram:
    """A reported histogram again, with its ``dropped`` count (a blob does not carry it)."""
    histogram = LatencyHistogram.decode(blob)
    histogram.count_dropped(dropped)
    return histogram


def interval_index(start_s: float) -> int:
    """The second of the run an interval starting at ``start_s`` belongs to."""
    return int(start_s + 1e-6)


def shard_counts(stats: RunStats) -> ShardCounts:
    """``stats``'s counters now, to report."""
    return ShardCounts(
        started=stats.started,
        messages=stats.messages,
        outcomes={outcome.value: count for outcome, count in stats.outcomes.items()},
        steps=tuple(
            StepCounts(
                step.attempts, step.failed, step.clock, step.negative_samples, step.latency.dropped
            )
            for step in stats.steps.values()
        ),
        reply_timed=tuple(sorted(stats.reply_timed)),
        late_starts=stats.late_starts,
        negative_session_samples=stats.negative_session_samples,
        failures_not_kept=stats.failures_not_kept,
        session_dropped=stats.session_latency.dropped,
        start_delay_dropped=stats.start_delay.dropped,
        generator=GeneratorCounts.of(stats.generator),
        tls=None if stats.tls is None else stats.tls.summary(),
        pipelining=None if stats.pipelining is None else stats.pipelining.summary(),
    )


def interval_report(closed: ClosedInterval, stats: RunStats) -> IntervalReport:
    """A shard's report of an interval its log (of ``stats``) just closed; empty histograms
    are left out (an idle step costs nothing to send)."""
    return IntervalReport(
        index=interval_index(closed.start_s),
        start_s=closed.start_s,
        length_s=closed.length_s,
        histograms=tuple((tag, h.encode()) for tag, h in closed.histograms if h.count),
        counts=shard_counts(stats),
        last=closed.last,
    )


def shard_totals(
    stats: RunStats,
    *,
    planned: int,
    interrupted: bool,
    duration_s: float,
    source_counts: Sequence[int] | None = None,
    intervals: Sequence[IntervalReport] = (),
) -> ShardTotals:
    """What a shard whose counts are ``stats`` reports at its end."""
    return ShardTotals(
        counts=shard_counts(stats),
        failures=tuple(stats.failures),
        reply_lag=stats.reply_lag.encode(),
        reply_lag_dropped=stats.reply_lag.dropped,
        session_latency_uncorrected=stats.session_latency_uncorrected.encode(),
        uncorrected_dropped=stats.session_latency_uncorrected.dropped,
        planned=planned,
        interrupted=interrupted,
        duration_s=duration_s,
        source_counts=None if source_counts is None else tuple(source_counts),
        intervals=tuple(intervals),
    )


class ShardMerger:
    """Adds the reports of ``shards`` shards into ``stats``, the run's own.

    Args:
        stats: the run's stats, empty, with the shards' step names, and an interval log
            (``stats.intervals``) that has not closed an interval yet, in interval mode
            (``stats.start_intervals()``).
        shards: how many shards there are.
        on_interval: called after each of the run's intervals is closed, with its end in
            seconds from the start (``--abort-on-threshold`` judges the run then).

    The run's interval ``i`` is closed once every shard has reported its interval ``i`` or
    ended; so a shard that runs late holds the run's log back, never out of order.
    """

    def __init__(
        self,
        stats: RunStats,
        shards: int,
        on_interval: Callable[[float], None] | None = None,
    ) -> None:
        if stats.intervals is None:
            raise ValueError("the run's stats need an interval log")
        self._stats = stats
        self._log: IntervalLog = stats.intervals
        self._on_interval = on_interval
        self._pending: list[list[IntervalReport]] = [[] for _ in range(shards)]
        self._counts: list[ShardCounts | None] = [None] * shards
        self._ended = [False] * shards
        self._totals: list[ShardTotals | None] = [None] * shards
        self._series = dict(self._log.series)
        self._lost: set[int] = set()
        self._next_index = 0  # the run's next interval to close
        self._end_s = 0.0  # the latest end of any shard's interval
        self._closed_last = False

    @property
    def shards(self) -> int:
        """How many shards the run has."""
        return len(self._pending)

    @property
    def totals(self) -> list[ShardTotals]:
        """The totals of the shards that have ended with them, in shard order."""
        return [t for t in self._totals if t is not None]

    def add_interval(self, shard: int, report: IntervalReport) -> None:
        """Shard ``shard`` closed an interval; close the run's intervals that are now whole."""
        self._pending[shard].append(report)
        self._end_s = max(self._end_s, report.start_s + report.length_s)
        if report.last:
            self._ended[shard] = True
        self._close_whole()

    def add_totals(self, shard: int, totals: ShardTotals) -> None:
        """Shard ``shard`` ended: what it reported at its end (and, for a shard run without
        a live channel, every interval it closed)."""
        for report in totals.intervals:
            self._pending[shard].append(report)
            self._end_s = max(self._end_s, report.start_s + report.length_s)
        self._totals[shard] = totals
        self._counts[shard] = totals.counts
        self._ended[shard] = True
        self._close_whole()

    def shard_lost(self, shard: int) -> None:
        """Shard ``shard`` ended without its totals (its process died): the intervals it
        reported count; :meth:`finish` counts its sessions that were running as
        ``interrupted``."""
        self._ended[shard] = True
        self._lost.add(shard)
        self._close_whole()

    def _close_whole(self) -> None:
        """Close the run's intervals up to the first one a running shard has not reported."""
        while True:
            index = self._next_index
            pending = self._pending
            if not all(
                ended or (reports and reports[-1].index >= index)
                for reports, ended in zip(pending, self._ended, strict=True)
            ):
                return  # a shard still running has not reported this second yet
            if all(self._ended) and not any(pending):
                return  # every interval of every shard is in
            taken: list[tuple[int, IntervalReport]] = []
            for shard, reports in enumerate(pending):
                # A shard's intervals come in order, one per second.
                while reports and reports[0].index <= index:
                    taken.append((shard, reports.pop(0)))
            self._merge(index, taken)
            self._next_index += 1

    def _merge(self, index: int, taken: list[tuple[int, IntervalReport]]) -> None:
        for shard, report in taken:
            for tag, blob in report.histograms:
                histogram = self._series.get(tag)
                if histogram is not None:
                    histogram.record_histogram(LatencyHistogram.decode(blob))
            self._counts[shard] = report.counts
        apply_counts(self._stats, [c for c in self._counts if c is not None])
        last = all(self._ended) and not any(self._pending)
        end_s = max(self._end_s, float(index)) if last else index + 1.0
        self._log.close_interval(float(index), end_s, last=last)
        self._closed_last = last
        if self._on_interval is not None:
            self._on_interval(end_s)

    def finish(self) -> None:
        """Every shard has ended: the counts of the ends, the histograms not kept per
        interval, the kept failures (by session number, up to the run's bound)."""
        stats = self._stats
        totals = [t for t in self._totals if t is not None]
        counts = [c for c in self._counts if c is not None]
        apply_counts(stats, counts)
        # A lost shard's sessions that were running when it was last heard of never ended.
        lost = [self._counts[shard] for shard in self._lost]
        running = sum(c.started - sum(c.outcomes.values()) for c in lost if c is not None)
        stats.outcomes[Outcome.INTERRUPTED] += running
        if not self._closed_last:
            # The run's last part, after the last second a shard reported whole.
            end_s = max(self._end_s, float(self._next_index))
            self._log.close_interval(float(self._next_index), end_s, last=True)
            self._closed_last = True
        for each in totals:
            stats.reply_lag.merge(_decoded(each.reply_lag, each.reply_lag_dropped))
            stats.session_latency_uncorrected.merge(
                _decoded(each.session_latency_uncorrected, each.uncorrected_dropped)
            )
        failures = sorted((f for each in totals for f in each.failures), key=lambda f: f.session)
        kept = failures[: stats.max_kept_failures]
        stats.failures = kept
        stats.failures_not_kept += len(failures) - len(kept)


def apply_counts(stats: RunStats, shards: Sequence[ShardCounts]) -> None:
    """Set ``stats``'s counters to the sums of the shards' (and its generator loads to
    theirs): idempotent, so the latest counts of each shard can be applied at any time."""
    stats.started = sum(c.started for c in shards)
    stats.messages = sum(c.messages for c in shards)
    for outcome in Outcome:
        stats.outcomes[outcome] = sum(c.outcomes.get(outcome.value, 0) for c in shards)
    reply_timed = {name for c in shards for name in c.reply_timed}
    for index, step in enumerate(stats.steps.values()):
        counts = [c.steps[index] for c in shards]
        step.attempts = sum(s.attempts for s in counts)
        step.failed = sum(s.failed for s in counts)
        step.negative_samples = sum(s.negative_samples for s in counts)
        step.latency.set_dropped(sum(s.dropped for s in counts))
        # One shard whose step fell back to the loop's clock makes the run's step say so.
        clocks = {s.clock for s in counts}
        step.clock = clocks.pop() if len(clocks) == 1 else LOOP_CLOCK
    stats.set_reply_timed(reply_timed)
    stats.late_starts = sum(c.late_starts for c in shards)
    # The failures the shards did not keep; finish() adds those the run keeps fewer of.
    stats.failures_not_kept = sum(c.failures_not_kept for c in shards)
    stats.negative_session_samples = sum(c.negative_session_samples for c in shards)
    stats.session_latency.set_dropped(sum(c.session_dropped for c in shards))
    stats.start_delay.set_dropped(sum(c.start_delay_dropped for c in shards))
    stats.shard_loads = [c.generator.load() for c in shards]
    tls = [c.tls for c in shards if c.tls is not None]
    if tls:
        merged = TlsCounts.from_states(tls)
        stats.tls = merged
    pipelining = [c.pipelining for c in shards if c.pipelining is not None]
    if pipelining:
        stats.pipelining = PipeliningCounts(
            groups_pipelined=sum(p["groups_pipelined"] for p in pipelining),
            groups_lock_step=sum(p["groups_lock_step"] for p in pipelining),
        )
