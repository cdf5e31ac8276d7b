"""A run over time: the per-second interval log (``latency.hlog``) and ``timeline.csv``.

The runner's interval task (net/runner.py, ``record_intervals``) calls
:meth:`IntervalLog.close_interval` once a second and once at the run's end; each call takes every
tagged histogram's interval (:meth:`~smtpload.report.stats.LatencyHistogram.take_interval`) and
the counters' change since the last call, and appends one line per tag to the interval log and
one row to the timeline. :func:`write_interval_files` then writes both into the results folder
with the other results (through report/files.py: replaced whole, never half-written).

latency.hlog
------------
The HdrHistogram interval log, format 1.3, as HdrHistogram's Java ``HistogramLogWriter`` writes
it and ``HistogramLogReader`` (Java's, and hdrh's) reads it::

    #[smtpload 0.x interval log: values in microseconds, Interval_Max in milliseconds]
    #[Tag step-00-connect: step "connect"]
    ...
    #[Tag session: the sessions that passed, to their last step from before connect (...)]
    #[Histogram log format version 1.3]
    #[StartTime: 1795823950.731 (seconds since epoch), 2026-11-27T23:59:10.731Z]
    #[BaseTime: 1795823950.731 (seconds since epoch)]
    "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
    Tag=step-00-connect,0.000,1.000,0.123,HISTFAAAA...

Timestamps are seconds since ``BaseTime``, which is the run's start (``StartTime``), so a
reader adds it once. ``Interval_Max`` is the interval's largest value divided by a "max value
unit ratio", printed ``%.3f`` as Java's writer does; readers do not use it. Java's default ratio
is 1,000,000, documented there as "the msec : nsec ratio": its logs hold nanoseconds and show
the max in milliseconds. Ours hold microseconds, so the ratio is 1,000 and the max is in
milliseconds too (1,000,000 would make it seconds, and ``%.3f`` of seconds drops everything
under a millisecond).

A tag cannot hold ``,``, spaces or ``=``: a step's tag is the stem of its ``.hgrm`` file,
``step-NN-<safe name>`` (results.py, ``safe_file_name``), unique even when two names are made
safe alike; the other tags are :meth:`RunStats.run_histograms`'s (``session``). The header says
which step each tag is, with the step's name as a JSON string (ASCII: control characters and
the rest escaped), cut like the terminal cuts it (``MAX_SHOWN_NAME``, results.py) since a name
can be any length: summary.json's ``steps[NN]`` has it whole.

hdrh 0.10.8's own ``HistogramLogWriter`` is not used: it cannot write tags, writes format 1.2,
crashes in ``output_start_time``, does not set the base time it writes (a reader then adds it
twice), skips a start time of 0 and scales the maximum for nanoseconds (docs: notes §1.3).

Memory and disk
---------------
A run's results are written at its end, so its intervals are kept until then: in unnamed
temporary files (``tempfile.SpooledTemporaryFile``: in memory up to 1 MiB, then on disk in the
system's temporary folder, ``TMPDIR``), never in memory as a list. The interval log stops
growing at :data:`MAX_HLOG_BYTES`; later intervals are left out of it (the timeline and every
other result still have them) and its last line says from when.

Each closed interval is also kept as a :class:`Second` (:attr:`IntervalLog.latest`): the
timeline's row is made from it, and so is the terminal's live view (report/live.py), so the
two cannot disagree.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from smtpload._version import __version__
from smtpload.report.files import replacing
from smtpload.report.results import MAX_SHOWN_NAME, safe_file_name
from smtpload.report.stats import LatencyHistogram, RunStats

__all__ = [
    "HLOG_FILE",
    "MAX_HLOG_BYTES",
    "SPOOL_BYTES",
    "TIMELINE_COLUMNS",
    "TIMELINE_FILE",
    "ClosedInterval",
    "IntervalLog",
    "Second",
    "step_tag",
    "write_interval_files",
]

HLOG_FILE = "latency.hlog"
TIMELINE_FILE = "timeline.csv"

#: The largest latency.hlog written, in bytes. A busy step's interval is about 1 KiB, so 1 GiB
#: holds a 24-hour run of a dozen steps and then some.
MAX_HLOG_BYTES = 1024 * 1024 * 1024

#: How much of each file is kept in memory; the rest goes to an unnamed temporary file.
SPOOL_BYTES = 1024 * 1024

#: timeline.csv's header row: one row per second of the run (README, "Results").
TIMELINE_COLUMNS: tuple[str, ...] = (
    "second",
    "started",
    "passed",
    "failed",
    "messages",
    "sessions_per_s",
    "in_flight",
    "session_p50_ms",
    "session_p99_ms",
    "target_rate_per_s",
)

# Interval_Max's "max value unit ratio" (module docstring): µs values, the max in ms.
_MAX_VALUE_UNIT_RATIO = 1000
# A run's last part shorter than this, with nothing in it, adds no interval of its own.
_MIN_LAST_INTERVAL_S = 0.001
_TAG_DESCRIPTIONS = {
    "session": "the sessions that passed, to their last step from before connect (in an"
    " open-loop run: from when each was due, as summary.json's session_latency_ms)",
    "start_delay": "open-loop runs: how late each session started after it was due (empty in"
    " a closed-loop run)",
}


def step_tag(index: int, name: str) -> str:
    """The interval log's tag of the step at ``index`` (0 is ``connect``): its .hgrm stem.

    >>> step_tag(4, "RCPT TO, 2nd")
    'step-04-rcpt_to__2nd'
    """
    return f"step-{index:02d}-{safe_file_name(name)}"


def _header_name(name: str) -> str:
    """A step name in the log's header: cut, then a JSON string, so ASCII and one line."""
    if len(name) > MAX_SHOWN_NAME:
        name = name[: MAX_SHOWN_NAME - 3] + "..."
    return json.dumps(name)  # ensure_ascii: controls, DEL, quotes, non-ASCII all escaped


@dataclass(slots=True)
class _Counts:
    started: int = 0
    passed: int = 0
    failed: int = 0
    messages: int = 0


@dataclass(frozen=True, slots=True)
class Second:
    """One closed interval (a second of the run, or its last part): timeline.csv's row, and
    the counts up to its end.

    Attributes:
        start_s: when it began, in seconds from the run's start.
        length_s: how long it was, in seconds (1, or less for the run's last part).
        started, passed, failed, messages: sessions started, passed and failed, and messages
            accepted, in it.
        in_flight: sessions running at its end.
        session_p50_ms, session_p99_ms: of the sessions that passed in it; None when none.
        started_total, passed_total, failed_total: the run's counts at its end.
        target_rate_per_s: the open-loop schedule's mean rate in it; None in closed loop.
    """

    start_s: float
    length_s: float
    started: int
    passed: int
    failed: int
    messages: int
    in_flight: int
    session_p50_ms: float | None
    session_p99_ms: float | None
    started_total: int
    passed_total: int
    failed_total: int
    target_rate_per_s: float | None = None

    @property
    def sessions_per_s(self) -> float:
        """Sessions finished in it (passed or failed), per second."""
        finished = self.passed + self.failed
        return finished / self.length_s if self.length_s > 0 else 0.0

    @property
    def started_per_s(self) -> float:
        """Sessions started in it, per second."""
        return self.started / self.length_s if self.length_s > 0 else 0.0

    def timeline_row(self) -> list[str]:
        """Its row of timeline.csv (:data:`TIMELINE_COLUMNS`)."""
        return [
            str(int(self.start_s)),
            str(self.started),
            str(self.passed),
            str(self.failed),
            str(self.messages),
            f"{self.sessions_per_s:.3f}",
            str(self.in_flight),
            "" if self.session_p50_ms is None else f"{self.session_p50_ms:.3f}",
            "" if self.session_p99_ms is None else f"{self.session_p99_ms:.3f}",
            "" if self.target_rate_per_s is None else f"{self.target_rate_per_s:.3f}",
        ]


@dataclass(frozen=True, slots=True)
class ClosedInterval:
    """What an interval log's listener is told of each interval closed: its time, and its
    histograms by tag (a shard reports them to the run: report/shards.py)."""

    start_s: float
    length_s: float
    histograms: list[tuple[str, LatencyHistogram]]
    last: bool


class IntervalLog:
    """The run's intervals as they are closed, kept for :func:`write_interval_files`.

    Args:
        stats: the run's stats; call ``stats.start_intervals()`` as well for per-second
            intervals (without it, an interval holds everything recorded so far: the one
            interval of :func:`write_interval_files` for a run that had no interval task).
        start_epoch_s: the run's start, seconds since the epoch (``#[StartTime: ...]``).
        max_hlog_bytes: the interval log's bound (:data:`MAX_HLOG_BYTES`).
        spool_bytes: how much of each file is kept in memory before it goes to a temporary
            file (:data:`SPOOL_BYTES`).
        target_rate: an open-loop run's schedule: its mean rate per second between two times
            (seconds from the start), the timeline's ``target_rate_per_s``; None (closed
            loop): that column is empty.
        listener: called with each interval closed (a shard's report to its run).
    """

    def __init__(
        self,
        stats: RunStats,
        start_epoch_s: float,
        *,
        max_hlog_bytes: int = MAX_HLOG_BYTES,
        spool_bytes: int = SPOOL_BYTES,
        target_rate: Callable[[float, float], float] | None = None,
        listener: Callable[[ClosedInterval], None] | None = None,
    ) -> None:
        self._stats = stats
        self._listener = listener
        self._target_rate = target_rate
        self._series: list[tuple[str, LatencyHistogram]] = [
            (step_tag(index, step.name), step.latency)
            for index, step in enumerate(stats.steps.values())
        ]
        self._series.extend(stats.run_histograms())
        self._session = stats.session_latency  # the timeline's p50 and p99
        self._counts = _Counts()
        self._max_hlog_bytes = max_hlog_bytes
        # Open for the whole run and after it (the results are written from them), closed
        # when the log is dropped: RunStats has no end of life to close them at.
        self._hlog: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=spool_bytes)  # noqa: SIM115
        self._timeline: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=spool_bytes)  # noqa: SIM115
        weakref.finalize(self, self._hlog.close)
        weakref.finalize(self, self._timeline.close)
        self._hlog_bytes = 0
        self._hlog_cut_at_s: float | None = None
        #: The intervals closed so far.
        self.intervals = 0
        #: The last interval closed, None before the first.
        self.latest: Second | None = None
        header = [
            f"#[smtpload {__version__} interval log: values in microseconds, "
            "Interval_Max in milliseconds]"
        ]
        for index, (tag, _) in enumerate(self._series):
            if index < len(stats.steps):
                what = "step " + _header_name(list(stats.steps)[index])
            else:
                what = _TAG_DESCRIPTIONS.get(tag, tag)
            header.append(f"#[Tag {tag}: {what}]")
        start_ms = round(start_epoch_s * 1000)
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start_ms // 1000))
        start_s = f"{start_ms // 1000}.{start_ms % 1000:03d}"
        header += [
            "#[Histogram log format version 1.3]",
            f"#[StartTime: {start_s} (seconds since epoch), {started}.{start_ms % 1000:03d}Z]",
            # Interval timestamps are relative to this; it is the start, so readers add it once.
            f"#[BaseTime: {start_s} (seconds since epoch)]",
            '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"',
        ]
        self._write_hlog("\n".join(header) + "\n")
        self._timeline.write((",".join(TIMELINE_COLUMNS) + "\n").encode("ascii"))

    @property
    def series(self) -> list[tuple[str, LatencyHistogram]]:
        """The histograms kept per interval, by tag, in the log's order."""
        return list(self._series)

    def close_interval(self, start_s: float, end_s: float, *, last: bool = False) -> None:
        """Close the interval from ``start_s`` to ``end_s`` (seconds from the run's start).

        Args:
            last: the run's end. Its last part adds no interval when it is shorter than 1 ms
                and nothing happened in it (its samples still go into the run-wide
                histograms).
        """
        taken = [(tag, histogram.take_interval()) for tag, histogram in self._series]
        stats, before = self._stats, self._counts
        now = _Counts(stats.started, stats.passed, stats.failed, stats.messages)
        length_s = max(end_s - start_s, 0.0)
        if (
            last
            and self.intervals
            and length_s < _MIN_LAST_INTERVAL_S
            and now == before
            and not any(interval.count for _, interval in taken)
        ):
            return
        self._counts = now
        self.intervals += 1
        self._log_histograms(start_s, length_s, taken)
        latency = dict(taken).get("session", self._session).summary_ms()
        second = Second(
            start_s=start_s,
            length_s=length_s,
            started=now.started - before.started,
            passed=now.passed - before.passed,
            failed=now.failed - before.failed,
            messages=now.messages - before.messages,
            in_flight=now.started - now.passed - now.failed,
            session_p50_ms=None if latency is None else latency["p50"],
            session_p99_ms=None if latency is None else latency["p99"],
            started_total=now.started,
            passed_total=now.passed,
            failed_total=now.failed,
            target_rate_per_s=(
                None if self._target_rate is None else self._target_rate(start_s, end_s)
            ),
        )
        self.latest = second
        row = second.timeline_row()
        self._timeline.write((",".join(row) + "\n").encode("ascii"))
        if self._listener is not None:
            self._listener(ClosedInterval(start_s, length_s, taken, last=last))

    def _log_histograms(
        self, start_s: float, length_s: float, taken: list[tuple[str, LatencyHistogram]]
    ) -> None:
        if self._hlog_cut_at_s is not None:
            return
        lines = "".join(
            f"Tag={tag},{start_s:.3f},{length_s:.3f},{interval.max_us / _MAX_VALUE_UNIT_RATIO:.3f},"
            f"{interval.encode()}\n"
            for tag, interval in taken
        )
        if self._hlog_bytes + len(lines) > self._max_hlog_bytes:
            self._hlog_cut_at_s = start_s
            return
        self._write_hlog(lines)

    def _write_hlog(self, text: str) -> None:
        data = text.encode("ascii")
        self._hlog.write(data)
        self._hlog_bytes += len(data)

    @property
    def hlog_cut_at_s(self) -> float | None:
        """From when the interval log left intervals out (its bound), or None."""
        return self._hlog_cut_at_s

    def write_hlog(self, stream: IO[bytes]) -> None:
        """Write latency.hlog (see the module docstring) to a binary stream."""
        self._hlog.seek(0)
        shutil.copyfileobj(self._hlog, stream)
        self._hlog.seek(0, 2)
        if self._hlog_cut_at_s is not None:
            limit_mib = self._max_hlog_bytes // (1024 * 1024)
            stream.write(
                f"#[smtpload: intervals from {self._hlog_cut_at_s:.3f} s on left out: the log "
                f"reached its {limit_mib} MiB limit]\n".encode("ascii")
            )

    def write_timeline(self, stream: IO[bytes]) -> None:
        """Write timeline.csv (a header row, then one row per interval) to a binary stream."""
        self._timeline.seek(0)
        shutil.copyfileobj(self._timeline, stream)
        self._timeline.seek(0, 2)


def write_interval_files(directory: Path, stats: RunStats, duration_s: float) -> list[Path]:
    """Write ``latency.hlog`` and ``timeline.csv`` into ``directory``.

    A run that had no interval task (nothing could connect; stats filled by hand) gets one
    interval over the whole run.

    Returns:
        the paths written.

    Raises:
        OutputError: a file could not be written (the message names it).
    """
    log = stats.intervals
    if log is None:
        log = IntervalLog(stats, time.time() - duration_s)
        log.close_interval(0.0, duration_s, last=True)
    with replacing(directory / HLOG_FILE) as stream:
        log.write_hlog(stream)
    with replacing(directory / TIMELINE_FILE) as stream:
        log.write_timeline(stream)
    return [directory / HLOG_FILE, directory / TIMELINE_FILE]
