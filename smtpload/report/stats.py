"""Counting a run: one latency histogram per step, outcome counts, kept failures.

This module owns the numbers of a run and nothing else: it does no I/O of its own (``write_hgrm``
writes to a stream it is given), never imports trio, and is the only module that imports
``hdrh`` (HdrHistogram_py 0.10.8, which has no type hints). Everything else sees the typed
wrapper :class:`LatencyHistogram`.

Theory of operation
-------------------
Latencies are recorded as integer MICROSECONDS into HdrHistogram, which keeps 3 significant
digits over 1 µs .. 1 hour in a fixed array (~190 KB) no matter how many samples arrive:
values below 2048 µs are exact, above that a recorded value is reported as the highest value of
its bucket (at most 0.1 % above the truth). Every histogram in the process uses the same
configuration, so merging one into another is an array addition and never takes the library's
slow per-bucket path or its ``IndexError`` path.

The library's traps (verified on 0.10.8) and what this wrapper does about each:

- values out of range are dropped silently: :meth:`LatencyHistogram.record_us` clamps them, and
  counts those above the range in :attr:`LatencyHistogram.dropped`;
- floats are accepted and corrupt min/max: ``record_us`` raises ``TypeError`` for anything that
  is not an ``int``;
- the ``.hgrm`` footer reports the standard deviation unscaled: :meth:`LatencyHistogram.write_hgrm`
  writes its own footer;
- a histogram and its encoder point at each other, so one dropped is freed only by a full
  cyclic collection, which a process of long-lived sessions rarely makes: every histogram made
  here points back through a weak proxy instead (:func:`_acyclic`), and is freed at once.

Recording is the hot path (every step of every session): :meth:`RunStats.record_step` and
:meth:`RunStats.record_session` do a dict lookup, a few integer additions and one append to
the histogram's buffer of values, which is folded into the HdrHistogram in bulk (hdrh's own
``record_value``, pure Python, costs about 1 µs a call).

Intervals (latency.hlog, timeline.csv: report/intervals.py). After
:meth:`RunStats.start_intervals`, each histogram records into an *interval* histogram instead
of its run-wide one, and :meth:`LatencyHistogram.take_interval` (once a second, the runner's
interval task) hands that interval out and adds it into the run-wide histogram: an array
addition (~0.06 ms) per histogram per second, instead of a second ~1 µs record per sample. The
price: while a run goes, the run-wide histograms hold the samples up to the last interval taken;
the runner takes the last one when the run ends, before anything reads them.
"""

from __future__ import annotations

import array
import bisect
import ctypes
import itertools
import math
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from hdrh.histogram import HdrHistogram

from smtpload.errors import counted
from smtpload.protocol.outcome import Outcome, SessionFailure
from smtpload.report.tls_counts import TlsCounts

if TYPE_CHECKING:
    from smtpload.report.intervals import IntervalLog

__all__ = [
    "BUSY_CPU_PERCENT",
    "CLOCKS",
    "KERNEL_CLOCK",
    "LATENCY_HIGHEST_US",
    "LATENCY_KEYS",
    "LATENCY_LOWEST_US",
    "LOOP_CLOCK",
    "SIGNIFICANT_FIGURES",
    "GeneratorLoad",
    "LatencyHistogram",
    "RunStats",
    "StepStats",
]

#: The one histogram configuration used everywhere (merging needs identical configurations).
LATENCY_LOWEST_US = 1
LATENCY_HIGHEST_US = 3_600_000_000  # 1 hour
SIGNIFICANT_FIGURES = 3

#: The clocks a step's latencies can end on (``StepStats.clock``).
KERNEL_CLOCK = "kernel"
LOOP_CLOCK = "loop"
CLOCKS: tuple[str, ...] = (KERNEL_CLOCK, LOOP_CLOCK)

#: The keys of :meth:`LatencyHistogram.summary_ms`, in the order reports show them.
LATENCY_KEYS: tuple[str, ...] = ("p50", "p90", "p99", "p99_9", "max", "mean")

_PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}
_US_PER_MS = 1000
_HGRM_TICKS_PER_HALF_DISTANCE = 5  # the rows per halving of the remaining tail, as Java


def _acyclic(histogram: HdrHistogram) -> HdrHistogram:
    """``histogram`` with its encoder's reference back to it made weak.

    hdrh 0.10.8's ``HdrHistogram`` holds its encoder and the encoder holds the histogram (it
    reads the count and the maximum when it encodes): a cycle, so a dropped histogram and its
    188 KB of counters wait for the cyclic collector's full collection. In a run of thousands
    of long-lived sessions that collection is rare (it waits until a quarter as many objects
    as have lived long are new), and the interval task drops a histogram per step every second:
    a worker holding 5,000 sessions grew by ~2 MB a second, all of it garbage.
    """
    histogram.encoder.histogram = weakref.proxy(histogram)
    return histogram


def _new_histogram() -> HdrHistogram:
    return _acyclic(HdrHistogram(LATENCY_LOWEST_US, LATENCY_HIGHEST_US, SIGNIFICANT_FIGURES))


#: How many values a histogram buffers before folding them in: 32 KiB of 8-byte integers, so
#: that the buffers of a run's few dozen histograms stay small however long it runs.
_PENDING_MAX = 4096


def _fold(histogram: HdrHistogram, values: array.array[int]) -> None:
    """Record ``values`` (each within 1 .. :data:`LATENCY_HIGHEST_US`) into ``histogram``,
    leaving it exactly as one ``record_value`` per value would: the same counters, total, and
    raw min and max.

    The counters' index is hdrh's ``_counts_index_for``, the same arithmetic with its
    ``len(bin(v))`` (a string per call) replaced by ``int.bit_length``; tests/test_stats.py
    checks the two agree at every bucket's edges. Values are counted first (``Counter`` does
    it in C), so a run of equal latencies costs one update.
    """
    mask = histogram.sub_bucket_mask
    unit = histogram.unit_magnitude
    half = histogram.sub_bucket_half_count_magnitude
    base = half + 1 + unit
    half_count = histogram.sub_bucket_half_count
    counts = histogram.counts
    for value, count in Counter(values).items():
        if value <= mask:
            # Bucket 0 (below 2,048 µs at 3 digits: most loopback latencies), where the
            # arithmetic below comes to this.
            counts[value >> unit] += count
            continue
        bucket = (value | mask).bit_length() - base
        counts[((bucket + 1) << half) + (value >> (bucket + unit)) - half_count] += count
    histogram.total_count += len(values)
    histogram.min_value = min(histogram.min_value, min(values))
    histogram.max_value = max(histogram.max_value, max(values))


class LatencyHistogram:
    """A histogram of latencies in integer microseconds (1 µs .. 1 h, 3 significant digits).

    Out-of-range values are never lost from the count, so a step's sample count always equals
    the number of ``record_us`` calls:

    - values below 1 µs (0, or negative from a clock step) are recorded as 1 µs: a
      sub-microsecond loopback step is real and belongs in the count;
    - values above :data:`LATENCY_HIGHEST_US` are recorded as :data:`LATENCY_HIGHEST_US` *and*
      counted in :attr:`dropped`, because their true value is lost. A non-zero ``dropped`` means
      ``max`` (and possibly high percentiles) read "1 hour or more".

    Recording is the hot path, and hdrh's ``record_value`` is pure Python (~0.9 µs a call):
    ``record_us`` appends to a plain integer buffer (``_pending``) instead, and the buffer is
    folded into the HdrHistogram (:func:`_fold`: the values counted in C, one bucket update per
    distinct value) when it holds :data:`_PENDING_MAX` values, and before anything reads the
    histogram (every public method and property folds first), so no reader ever misses a sample.
    """

    __slots__ = ("_dropped", "_histogram", "_interval", "_pending")

    def __init__(self) -> None:
        self._histogram = _new_histogram()
        self._dropped = 0
        self._interval: HdrHistogram | None = None  # see start_intervals
        # Recorded, not yet in the histogram that records (the interval one once started).
        self._pending = array.array("q")

    def record_us(self, value_us: int) -> None:
        """Record one latency.

        Args:
            value_us: the latency in whole microseconds, e.g. ``(t1_ns - t0_ns) // 1000``.

        Raises:
            TypeError: ``value_us`` is not an ``int`` (a float would silently corrupt the
                histogram's min and max; ``bool`` is refused too).
        """
        if type(value_us) is not int:
            raise TypeError(f"latency must be an int of microseconds, got {value_us!r}")
        if value_us < LATENCY_LOWEST_US:
            value_us = LATENCY_LOWEST_US
        elif value_us > LATENCY_HIGHEST_US:
            self._dropped += 1
            value_us = LATENCY_HIGHEST_US
        pending = self._pending
        pending.append(value_us)
        if len(pending) >= _PENDING_MAX:
            self._flush()

    def _flush(self) -> None:
        """Fold the buffered values into the histogram that records them."""
        if self._pending:
            _fold(self._histogram if self._interval is None else self._interval, self._pending)
            self._pending = array.array("q")

    @property
    def count(self) -> int:
        """The number of values recorded (including clamped ones)."""
        self._flush()
        count: int = self._histogram.get_total_count()
        return count

    @property
    def dropped(self) -> int:
        """How many values were above :data:`LATENCY_HIGHEST_US` (recorded as that value)."""
        return self._dropped

    @property
    def max_us(self) -> int:
        """The largest value recorded (the highest value of its bucket), 0 when none."""
        self._flush()
        if self._histogram.get_total_count() == 0:
            return 0
        value: int = self._histogram.get_max_value()
        return value

    def start_intervals(self) -> None:
        """From now on, record into an interval histogram that :meth:`take_interval` hands
        out; until it does, the samples are not in this histogram's count or percentiles."""
        if self._interval is None:
            self._flush()  # what came before belongs to the run-wide histogram
            self._interval = _new_histogram()

    def take_interval(self) -> LatencyHistogram:
        """The samples recorded since the last call (or since :meth:`start_intervals`), as a
        histogram of their own, now also added into this one; a new interval begins.

        Without :meth:`start_intervals`, the whole histogram is the one interval: this
        histogram itself is returned, unchanged.
        """
        self._flush()
        interval = self._interval
        if interval is None:
            return self
        # A new histogram costs ~0.2 ms; hdrh's reset() is a Python loop over 23,552 counters.
        self._interval = _new_histogram()
        if interval.get_total_count():
            self._histogram.add(interval)
        taken = LatencyHistogram.__new__(LatencyHistogram)
        taken._histogram = interval
        taken._dropped = 0  # dropped counts stay run-wide
        taken._interval = None
        taken._pending = array.array("q")
        return taken

    def summary_ms(self) -> dict[str, float] | None:
        """The latency summary in milliseconds, or ``None`` when nothing was recorded.

        Returns:
            ``{"p50", "p90", "p99", "p99_9", "max", "mean"}`` (see :data:`LATENCY_KEYS`) as
            floats rounded to 3 decimals (1 µs). Percentiles and ``max`` are the highest value
            of the bucket they fall in, as HdrHistogram reports them everywhere; ``mean``
            averages the bucket midpoints.
        """
        self._flush()
        histogram = self._histogram
        if histogram.get_total_count() == 0:
            return None
        # One pass over the counts for all percentiles, in C (hdrh's own pass is a Python loop).
        values_us = _values_at_percentiles_us(histogram, list(_PERCENTILES.values()))
        summary = {key: _us_to_ms(v) for key, v in zip(_PERCENTILES, values_us, strict=True)}
        summary["max"] = _us_to_ms(histogram.get_max_value())
        summary["mean"] = _us_to_ms(self._mean_and_stddev_us()[0])
        return summary

    def stat_ms(self, key: str) -> float | None:
        """One statistic of :meth:`summary_ms` (a key of :data:`LATENCY_KEYS`), the same value
        to the microsecond, or ``None`` when nothing was recorded. Cheaper than the whole
        summary when only one is wanted (``--abort-on-threshold`` judges them every second):
        a percentile is one pass over the counts in C (under 1 ms, where hdrh's own Python
        loop takes up to 7), ``max`` none; ``mean`` costs what it does there.

        Raises:
            KeyError: ``key`` is not one of :data:`LATENCY_KEYS`.
        """
        self._flush()
        histogram = self._histogram
        if key not in LATENCY_KEYS:
            raise KeyError(key)
        if histogram.get_total_count() == 0:
            return None
        if key == "max":
            return _us_to_ms(histogram.get_max_value())
        if key == "mean":
            return _us_to_ms(self._mean_and_stddev_us()[0])
        return _us_to_ms(_value_at_percentile_us(histogram, _PERCENTILES[key]))

    def encode(self) -> str:
        """The histogram as an ASCII HdrHistogram V2 blob (zlib + base64, ``HISTF...``).

        The blob carries the counts only, not :attr:`dropped`: send that alongside it.
        """
        self._flush()
        blob: bytes = self._histogram.encode()
        return blob.decode("ascii")

    @classmethod
    def decode(cls, blob: str) -> LatencyHistogram:
        """Rebuild a histogram from :meth:`encode` output (its ``dropped`` is 0).

        Raises:
            ValueError: the blob is not a V2 HdrHistogram blob, or it was made with another
                configuration than this module's (merging it would be slow or fail).
        """
        try:
            decoded = _acyclic(HdrHistogram.decode(blob))
        except Exception as exc:  # hdrh raises a zoo: binascii, zlib, its own, RuntimeError
            raise ValueError(f"not an HdrHistogram V2 blob: {exc}") from exc
        config = (
            decoded.lowest_trackable_value,
            decoded.highest_trackable_value,
            decoded.significant_figures,
        )
        if config != (LATENCY_LOWEST_US, LATENCY_HIGHEST_US, SIGNIFICANT_FIGURES):
            raise ValueError(
                f"histogram blob has configuration (lowest, highest, digits) = {config}, "
                f"expected ({LATENCY_LOWEST_US}, {LATENCY_HIGHEST_US}, {SIGNIFICANT_FIGURES})"
            )
        histogram = cls()
        histogram._histogram.add(decoded)
        return histogram

    def record_histogram(self, other: LatencyHistogram) -> None:
        """Record every sample of ``other`` as :meth:`record_us` would record them: into the
        current interval once :meth:`start_intervals` was called (a shard's interval, added
        into the run's: report/shards.py). ``other``'s ``dropped`` is not added."""
        other._flush()
        (self._histogram if self._interval is None else self._interval).add(other._histogram)

    def count_dropped(self, dropped: int) -> None:
        """Add ``dropped`` to :attr:`dropped` (a decoded blob does not carry it)."""
        self._dropped += dropped

    def set_dropped(self, dropped: int) -> None:
        """Set :attr:`dropped`: the sum of the shards' (report/shards.py)."""
        self._dropped = dropped

    def merge(self, other: LatencyHistogram) -> None:
        """Add every sample of ``other`` (and its ``dropped`` count) into this histogram."""
        self._flush()
        other._flush()
        self._histogram.add(other._histogram)
        self._dropped += other._dropped

    def write_hgrm(self, stream: BinaryIO) -> None:
        """Write the percentile distribution (``.hgrm``), values in milliseconds.

        The table is HdrHistogram's (the format its plotter reads, row for row what hdrh's
        ``output_percentile_distribution`` prints); the footer is Java's. hdrh 0.10.8's own
        footer prints the standard deviation unscaled (in µs) and the total count as a float,
        and computes the mean three times over the whole counts array. The rows come from
        :func:`_percentile_rows`: hdrh's percentile iterator steps through every bucket up to
        the largest value in Python (~20 ms a histogram, most of a short run's CPU).

        Args:
            stream: a binary stream, e.g. ``open(path, "wb")``.
        """
        self._flush()
        histogram = self._histogram
        digits = SIGNIFICANT_FIGURES
        lines = [
            f"{'Value':>12} {'Percentile':>14} {'TotalCount':>10} {'1/(1-Percentile)':>14}\n\n"
        ]
        for value_us, level, count_to_value in _percentile_rows(histogram):
            value_ms = value_us / _US_PER_MS
            line = f"{value_ms:12.{digits}f} {level / 100:2.12f} {count_to_value:10d}"
            if level != 100:
                line += f" {1 / (1 - level / 100):14.2f}"
            lines.append(line + "\n")
        mean_us, stddev_us = self._mean_and_stddev_us()
        max_ms = histogram.get_max_value() / _US_PER_MS
        lines.append(
            f"#[Mean    = {mean_us / _US_PER_MS:12.{digits}f}, "
            f"StdDeviation   = {stddev_us / _US_PER_MS:12.{digits}f}]\n"
            f"#[Max     = {max_ms:12.{digits}f}, Total count    = {self.count:12d}]\n"
            f"#[Buckets = {histogram.bucket_count:12d}, "
            f"SubBuckets     = {histogram.sub_bucket_count:12d}]\n"
        )
        stream.write("".join(lines).encode("ascii"))

    def _mean_and_stddev_us(self) -> tuple[float, float]:
        """Mean and population standard deviation, as hdrh computes them, in one pass.

        Each sample counts as the midpoint of its bucket. hdrh's ``get_mean_value`` walks the
        histogram with its iterator (~0.1 s when a value near 1 h was recorded) and
        ``get_stddev`` walks it twice more.
        """
        self._flush()
        histogram = self._histogram
        total = histogram.get_total_count()
        if total == 0:
            return 0.0, 0.0
        midpoints: list[tuple[int, int]] = []  # (midpoint_us, count)
        counts = _used_counts(histogram)
        half_magnitude = histogram.sub_bucket_half_count_magnitude
        half_count = histogram.sub_bucket_half_count
        unit = histogram.unit_magnitude
        # Only the buckets that hold counts: compress() finds them in C (a Python loop over
        # every counter took ~8 ms a histogram). Each one's lowest value and width are what
        # hdrh's get_value_from_index and get_highest_equivalent_value give, the arithmetic in
        # line: with those calls the whole took ~4 ms a histogram of 10,000 varied samples (24
        # a run), now ~1.5 ms.
        for index in itertools.compress(range(len(counts)), counts):
            bucket = (index >> half_magnitude) - 1
            sub_bucket = (index & (half_count - 1)) + half_count
            if bucket < 0:
                sub_bucket -= half_count
                bucket = 0
            shift = bucket + unit
            midpoints.append(((sub_bucket << shift) + ((1 << shift) >> 1), counts[index]))
        mean = sum(value * count for value, count in midpoints) / total
        variance = sum((value - mean) ** 2 * count for value, count in midpoints) / total
        return mean, math.sqrt(variance)


def _value_at_percentile_us(histogram: HdrHistogram, percentile: float) -> int:
    """hdrh's ``get_percentile_to_value_dict`` for one percentile, to the same value: the first
    bucket whose running total reaches the percentile's count, its highest equivalent value;
    the running totals and the search are done in C (``accumulate``, ``bisect``), not in
    hdrh's Python loop over every bucket. The histogram holds at least one value."""
    return _values_at_percentiles_us(histogram, (percentile,))[0]


def _values_at_percentiles_us(histogram: HdrHistogram, percentiles: Sequence[float]) -> list[int]:
    """:func:`_value_at_percentile_us` of each of ``percentiles``, from one pass of running
    totals (what hdrh's ``get_percentile_to_value_dict`` gives, without its Python loop)."""
    running = list(itertools.accumulate(_used_counts(histogram)))
    return [
        _value_at_running_total_us(
            histogram,
            bisect.bisect_left(running, histogram.get_target_count_at_percentile(percentile)),
            percentile,
        )
        for percentile in percentiles
    ]


def _value_at_running_total_us(histogram: HdrHistogram, index: int, percentile: float) -> int:
    """The value hdrh reports for ``percentile`` when its running total reaches the target in
    bucket ``index``: the bucket's highest equivalent value (its lowest for percentile 0)."""
    value = histogram.get_value_from_index(index)
    found: int = (
        histogram.get_highest_equivalent_value(value)
        if percentile
        else histogram.get_lowest_equivalent_value(value)
    )
    return found


def _used_counts(histogram: HdrHistogram) -> array.array[int]:
    """The histogram's counters up to its largest value's bucket (the only ones that can hold
    counts; hdrh keeps no public index of them), copied into a native array so that C-level
    tools (``accumulate``, ``compress``) can walk them."""
    counts = histogram.counts  # a ctypes array; its item type's code is also array's
    used = histogram._counts_index_for(histogram.get_max_value()) + 1
    size = ctypes.sizeof(counts._type_)
    native = array.array(counts._type_._type_)
    native.frombytes(memoryview(counts).cast("B")[: used * size])  # one copy of the used part
    return native


def _next_percentile_level(level: float) -> float:
    """The percentile level of the ``.hgrm`` row after ``level``: hdrh's (and Java's)
    ``PercentileIterator.increment_iteration_level``, the same float arithmetic, so the rows
    are the same to the last digit."""
    percentile_gap = 100.0 - level
    if not percentile_gap:
        return level
    half_distance = math.pow(2, (math.log(100 / percentile_gap) / math.log(2)) + 1)
    return level + 100.0 / (_HGRM_TICKS_PER_HALF_DISTANCE * half_distance)


def _percentile_rows(histogram: HdrHistogram) -> list[tuple[int, float, int]]:
    """The rows of the ``.hgrm`` table, ``(value_us, percentile_level, count_up_to_value)``:
    exactly what hdrh's ``get_percentile_iterator(5)`` yields, visiting only the buckets that
    hold counts (hdrh visits every bucket up to the largest value, in Python).

    A bucket yields a row for each level its running total reaches (the level then moves on by
    :func:`_next_percentile_level`); the last bucket yields one at the current level and one
    at 100 %.
    """
    total = histogram.get_total_count()
    if not total:
        return []
    counts = _used_counts(histogram)
    rows: list[tuple[int, float, int]] = []
    level = 0.0
    running = 0
    for index in itertools.compress(range(len(counts)), counts):
        running += counts[index]
        value_us: int = histogram.get_highest_equivalent_value(
            histogram.get_value_from_index(index)
        )
        if running >= total:
            rows.append((value_us, level, running))
            rows.append((value_us, 100.0, running))
            break
        while 100.0 * running / total >= level:
            rows.append((value_us, level, running))
            level = _next_percentile_level(level)
    return rows


def _us_to_ms(value_us: float) -> float:
    return round(value_us / _US_PER_MS, 3)


@dataclass(slots=True)
class StepStats:
    """The counts of one step over the whole run.

    Attributes:
        name: the step's name (``connect`` for the TCP connect).
        attempts: how many times the step was started.
        failed: how many of those failed.
        latency: the latencies of the attempts that got a complete reply or event; a step cut
            off by a timeout or a closed connection has no latency.
        clock: what ended its latencies: ``kernel`` (the kernel's receive time of the reply)
            or ``loop`` (the moment the event loop saw it); see net/wire_clock.py.
        negative_samples: latencies that came out below zero, left out of ``latency``.
    """

    name: str
    attempts: int = 0
    failed: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    clock: str = LOOP_CLOCK
    negative_samples: int = 0

    @property
    def dropped_samples(self) -> int:
        """Samples not in ``latency`` as measured: above its range (counted at its top) or
        below zero (the realtime clock was stepped back; left out)."""
        return self.latency.dropped + self.negative_samples


@dataclass(slots=True)
class GeneratorLoad:
    """How busy smtpload itself was: the event loop's lateness and the process's CPU use.

    Attributes:
        loop_lag: how late a ticker that asks to wake every ``tick_s`` woke, each time: the
            delay any task of the loop (a reply being handled, a send) waited for its turn.
        intervals: CPU samples taken (about one a second, and the run's last part).
        busy_wall_s: the wall time of those where the process used more than
            ``BUSY_CPU_PERCENT`` of a core (weighted by time, so a short last sample counts
            for what it covers).
        cpu_s: the process's CPU time (user and system, every thread) over the samples.
        wall_s: the wall time the samples cover.
        untimed_reads: kernel clock: reads whose data came without a receive time (timed by
            the loop instead; their steps say ``loop``).
        loop_lag_span_s: the run time the ticks of ``loop_lag`` cover (each tick's wait plus
            its lateness): a late loop ticks less often, so time, not a count, says when
            there is enough of it to judge.
    """

    loop_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    intervals: int = 0
    busy_wall_s: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    untimed_reads: int = 0
    loop_lag_span_s: float = 0.0

    def record_tick(self, tick_s: float, lag_s: float) -> None:
        """One tick of the loop's watch: it asked to sleep ``tick_s`` and woke ``lag_s`` late."""
        self.loop_lag.record_us(int(lag_s * 1e6))
        self.loop_lag_span_s += tick_s + max(lag_s, 0.0)

    def record_cpu(self, cpu_s: float, wall_s: float) -> None:
        """One CPU sample: ``cpu_s`` of CPU time used in ``wall_s`` seconds."""
        if wall_s <= 0:
            return
        self.intervals += 1
        if cpu_s / wall_s * 100 > BUSY_CPU_PERCENT:
            self.busy_wall_s += wall_s
        self.cpu_s += cpu_s
        self.wall_s += wall_s

    @property
    def cpu_percent(self) -> float | None:
        """CPU use over the run, in percent of one core (above 100 with several threads busy);
        None before any sample."""
        return round(self.cpu_s / self.wall_s * 100, 1) if self.wall_s > 0 else None


#: An open-loop session that started more than this after it was due is a late start.
LATE_START_US = 1000

#: A CPU sample above this (percent of one core) counts as busy (GeneratorLoad.busy_intervals).
BUSY_CPU_PERCENT = 90.0


@dataclass(slots=True)
class PipeliningCounts:
    """How a run's pipeline groups went: sent in one write (the server advertised PIPELINING)
    or step by step (it did not: RFC 2920 §3 lets a client pipeline only then)."""

    groups_pipelined: int = 0
    groups_lock_step: int = 0

    def summary(self) -> dict[str, int]:
        """summary.json's ``pipelining`` object."""
        return {
            "groups_pipelined": self.groups_pipelined,
            "groups_lock_step": self.groups_lock_step,
        }

    def describe(self) -> str:
        """The terminal summary's line."""
        line = (
            f"pipelining: {counted(self.groups_pipelined, 'group')} pipelined,"
            f" {self.groups_lock_step:,} in lock-step"
        )
        if self.groups_lock_step:
            line += " (no PIPELINING in the reply to an EHLO before them)"
        return line


class RunStats:
    """Everything counted during one run; the runner records, the report reads.

    Args:
        step_names: ``"connect"`` first, then every scenario step name in order; names must be
            unique, and the reports list steps in this order.
        max_kept_failures: how many :class:`SessionFailure` objects (with their transcripts)
            to keep; the rest are only counted in :attr:`failures_not_kept`.

    Attributes:
        steps: one :class:`StepStats` per step name, in ``step_names`` order.
        session_latency: whole-session latencies, as the runner records them.
        generator: how busy smtpload itself was (the runner records it).
        sessions_due: in an open-loop run, the sessions that came due (started or not);
            None in closed loop, where ``--sessions`` says it.
        session_latency_uncorrected: from each session's actual start; in an open-loop run
            ``session_latency`` runs from when the session was due (wrk2's correction).
        start_delay: open loop: how late each session started after it was due.
        late_starts: open-loop sessions that started more than ``LATE_START_US`` late.
        intervals: the run's per-second log (report/intervals.py ``IntervalLog``), set by the
            runner when it starts one; None otherwise.
        negative_session_samples: session latencies below zero (a clock step), left out.
        reply_lag: with the kernel clock, per read: from the data's arrival to smtpload
            handling it. The generator's own delay, left out of the step latencies.
        outcomes: the count of sessions per :class:`Outcome`, every outcome present.
        started: sessions started (:meth:`session_started`).
        messages: messages accepted by the server (:meth:`message_accepted`).
        failures: the first ``max_kept_failures`` failures passed to :meth:`record_session`.
        failures_not_kept: the failures passed after that.
        tls: the run's TLS handshakes (report/tls_counts.py), set by the runner when the
            scenario does TLS; None otherwise.

    Raises:
        ValueError: a step name appears twice, or ``max_kept_failures`` is negative.
    """

    __slots__ = (
        "_reply_timed",
        "failures",
        "failures_not_kept",
        "generator",
        "intervals",
        "late_starts",
        "max_kept_failures",
        "messages",
        "negative_session_samples",
        "outcomes",
        "pipelining",
        "reply_lag",
        "session_latency",
        "session_latency_uncorrected",
        "sessions_due",
        "shard_loads",
        "start_delay",
        "started",
        "steps",
        "tls",
    )

    def __init__(self, step_names: Sequence[str], *, max_kept_failures: int = 100) -> None:
        if max_kept_failures < 0:
            raise ValueError(f"max_kept_failures must be >= 0, got {max_kept_failures}")
        self.steps: dict[str, StepStats] = {}
        for name in step_names:
            if name in self.steps:
                raise ValueError(f"step name {name!r} appears twice; step names must be unique")
            self.steps[name] = StepStats(name)
        self.session_latency = LatencyHistogram()
        self.reply_lag = LatencyHistogram()
        self.sessions_due: int | None = None
        self.session_latency_uncorrected = LatencyHistogram()
        self.start_delay = LatencyHistogram()
        self.late_starts = 0
        self.generator = GeneratorLoad()
        self.intervals: IntervalLog | None = None
        self.negative_session_samples = 0
        self._reply_timed: set[str] = set()
        self.outcomes: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self.started = 0
        self.messages = 0
        self.max_kept_failures = max_kept_failures
        self.failures: list[SessionFailure] = []
        self.failures_not_kept = 0
        self.tls: TlsCounts | None = None
        # Set by the runner when the scenario has pipeline groups (RFC 2920).
        self.pipelining: PipeliningCounts | None = None
        # A run of several shards (report/shards.py): each one's generator load, since CPU and
        # loop lag are per process and do not add up; None for a run in one process.
        self.shard_loads: list[GeneratorLoad] | None = None

    def run_histograms(self) -> list[tuple[str, LatencyHistogram]]:
        """The run's histograms beside the steps' that are kept per second (latency.hlog), by
        tag. One more histogram in the interval log is one more line here."""
        return [
            ("session", self.session_latency),
            ("start_delay", self.start_delay),  # open loop only; empty intervals otherwise
        ]

    def start_intervals(self) -> None:
        """Record every step's and :meth:`run_histograms`'s histogram per interval from now on
        (see :meth:`LatencyHistogram.start_intervals`)."""
        for step in self.steps.values():
            step.latency.start_intervals()
        for _, histogram in self.run_histograms():
            histogram.start_intervals()

    def session_started(self) -> None:
        """Count one session started."""
        self.started += 1

    def message_accepted(self) -> None:
        """Count one message the server accepted (a data step that got a 2xx)."""
        self.messages += 1

    def record_step(self, name: str, latency_us: int | None, *, failed: bool) -> None:
        """Count one attempt of a step.

        Args:
            name: one of the ``step_names`` given to the constructor (``KeyError`` otherwise).
            latency_us: the step's latency, or ``None`` when it got no complete reply.
            failed: whether the step failed.
        """
        step = self.steps[name]
        step.attempts += 1
        if failed:
            step.failed += 1
        if latency_us is not None:
            if latency_us < 0:
                step.negative_samples += 1
            else:
                step.latency.record_us(latency_us)

    def use_kernel_clock(self, step_names: Iterable[str]) -> None:
        """These steps' latencies end on the kernel's receive times (the reply-timed ones)."""
        for name in step_names:
            self.steps[name].clock = KERNEL_CLOCK
            self._reply_timed.add(name)

    def timed_by_loop(self, step_names: Iterable[str] | None = None) -> None:
        """These steps (None: all) had a latency that ended on the loop's clock (a session
        whose socket could not have receive times, a read without one): they no longer say
        ``kernel``, and so neither does the run."""
        names = self.steps if step_names is None else step_names
        for name in names:
            self.steps[name].clock = LOOP_CLOCK

    @property
    def reply_timed(self) -> frozenset[str]:
        """The steps whose latencies end on a reply (timed by the kernel's clock when it can)."""
        return frozenset(self._reply_timed)

    def set_reply_timed(self, step_names: Iterable[str]) -> None:
        """Set :attr:`reply_timed`: the union of the shards' (report/shards.py)."""
        self._reply_timed = set(step_names)

    @property
    def clock(self) -> str:
        """``kernel`` when every reply-timed step used only the kernel's clock."""
        kernel = bool(self._reply_timed) and all(
            self.steps[name].clock == KERNEL_CLOCK for name in self._reply_timed
        )
        return KERNEL_CLOCK if kernel else LOOP_CLOCK

    def record_reply_lag(self, lag_us: int) -> None:
        """How long after a read's data arrived smtpload handled it (the generator's lag)."""
        if lag_us >= 0:
            self.reply_lag.record_us(lag_us)

    def record_start_delay(self, delay_us: int) -> None:
        """An open-loop session started ``delay_us`` after it was due."""
        if delay_us < 0:
            delay_us = 0  # started a hair early: the due time is rounded to the loop's clock
        self.start_delay.record_us(delay_us)
        if delay_us > LATE_START_US:
            self.late_starts += 1

    def record_session(
        self,
        outcome: Outcome,
        latency_us: int | None,
        failure: SessionFailure | None = None,
        *,
        uncorrected_us: int | None = None,
    ) -> None:
        """Count one finished session.

        Args:
            outcome: how the session ended.
            latency_us: the whole session's latency (in open loop from when it was due), or
                ``None`` to leave it out of :attr:`session_latency`.
            uncorrected_us: open loop: the latency from the session's actual start.
            failure: what to show for a failed session; kept while fewer than
                ``max_kept_failures`` are kept, otherwise counted in :attr:`failures_not_kept`.
        """
        self.outcomes[outcome] += 1
        if latency_us is not None and latency_us < 0:
            self.negative_session_samples += 1  # the realtime clock stepped back: left out
        elif latency_us is not None:
            self.session_latency.record_us(latency_us)
            # Closed loop: the same; open loop: from the actual start.
            self.session_latency_uncorrected.record_us(
                latency_us if uncorrected_us is None else uncorrected_us
            )
        if failure is not None:
            if len(self.failures) < self.max_kept_failures:
                self.failures.append(failure)
            else:
                self.failures_not_kept += 1

    def record_connect_failures(
        self, first_session: int, count: int, failure_of: Callable[[int], SessionFailure]
    ) -> None:
        """Count ``count`` sessions, numbered from ``first_session``, that started and failed
        to connect, at once: as ``count`` calls of :meth:`session_started`, :meth:`record_step`
        (``connect``, failed) and :meth:`record_session` would, in time that does not grow with
        ``count``.

        Args:
            failure_of: the failure of one session, by number; called only for those kept.
        """
        self.started += count
        connect = self.steps["connect"]
        connect.attempts += count
        connect.failed += count
        self.outcomes[Outcome.CONNECT_ERROR] += count
        keep = max(0, min(count, self.max_kept_failures - len(self.failures)))
        self.failures.extend(failure_of(first_session + offset) for offset in range(keep))
        self.failures_not_kept += count - keep

    @property
    def finished(self) -> int:
        """Sessions that ended, whatever their outcome."""
        return sum(self.outcomes.values())

    @property
    def passed(self) -> int:
        """Sessions that ended with :attr:`Outcome.PASSED`."""
        return self.outcomes[Outcome.PASSED]

    @property
    def failed(self) -> int:
        """Sessions that ended with any other outcome."""
        return self.finished - self.passed
