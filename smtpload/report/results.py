"""What people and CI read after a run: summary.json, .hgrm files, failures.log, terminal text.

This module turns a finished :class:`~smtpload.report.stats.RunStats` into output. It never imports
trio and never records anything; the only files it touches are the ones :func:`write_results`
is asked to write.

summary.json (a public contract)
--------------------------------
CI scripts read ``summary.json``, so its keys are a contract: renaming or removing one is a
breaking change (and a CHANGELOG entry). :func:`build_summary` returns exactly::

    {
      "scenario": str,                  # the scenario's name
      "target": "host:port",
      "run_id": str,
      "seed": int or null,              # the run's seed (--seed repeats its draws); null:
                                        # not known (a summary built without one)
      "interrupted": bool,              # true when Ctrl-C / SIGTERM cut the run short
      "aborted": {"threshold": str, "metric": str, "at_s": float, "measured": number or null}
                 or null,               # --abort-on-threshold stopped the run (report/abort.py)
      "duration_s": float,              # wall time of the run, 3 decimals
      "sessions": {
        "started": int,
        "not_started": int,             # requested but never started (an interrupted run)
        "passed": int, "failed": int,
        "failures": {                   # every category, in this order, 0 when none
          "unexpected_reply": int, "timeout": int, "connect_error": int,
          "connection_closed": int, "protocol_error": int, "interrupted": int
        }
      },
      "throughput": {
        "sessions_per_s": float,        # finished sessions / duration_s (0.0 for duration 0)
        "passed_sessions_per_s": float, # passed sessions / duration_s
        "messages_per_s": float,        # accepted messages / duration_s
        "messages": int                 # data steps that got a 2xx
      },
      "load": {"model": "closed" or "open", "corrected": bool, ...},  # how it was driven:
                                        # closed: "concurrency", "sessions"; open: "arrivals",
                                        # "stages" [{"duration_s", "rate_per_s"}],
                                        # "duration_s", "max_sessions", "max_in_flight", "seed"
      "sources": {"addresses": int, "family": "IPv4" or "IPv6", "sessions_min": int,
                  "sessions_max": int, "by_address": {str: int} or null,
                  "other_family_left_out": int} or null,  # --source: sessions per address
      "session_latency_ms": LATENCY or null,  # open loop: from when each session was due
      "session_latency_uncorrected_ms": LATENCY or null,  # from each one's actual start
      "start_delay_ms": LATENCY or null,  # open loop: actual start - due; null closed loop
      "late_starts": int,               # open loop: sessions that started over 1 ms late
      "clock": "kernel" or "loop",      # "kernel": every reply-timed step used only the
                                        # kernel's receive times; "loop": not all did
      "steps": [                        # "connect" first, then the scenario's steps in order
        {"name": str, "count": int, "failed": int, "latency_ms": LATENCY or null,
         "dropped_samples": int,        # latencies above 1 h (counted as 1 h) or below 0
                                        # (the realtime clock stepped back; left out)
         "clock": "kernel" or "loop"}   # what ended this step's latencies
      ],
      "generator": {                    # smtpload's own load (report/generator.py)
        "cpu_percent": float or null,   # of one core, over the run
        "busy_seconds_percent": float,  # the share of the run's time above 90 % of a core
        "loop_lag_ms": LATENCY or null, # how late a 10 ms ticker woke
        "reply_lag_ms": LATENCY or null,# per read, from the data's arrival (kernel time)
                                        # to smtpload handling it; null on the loop clock
        "untimed_reads": int,           # kernel clock: reads that came without a time
        "saturated": bool               # smtpload was the limit (the rule: generator.py)
      },
      "tls": {                          # null when no session does TLS (report/tls_counts.py)
        "versions": {str: int},         # completed handshakes per version, "TLSv1.3": 20
        "ciphers": {str: int},          # per cipher suite
        "handshakes": int, "resumed": int,  # completed (0: none did, and nothing was
                                        # verified); of those, resumed (--tls-resume)
        "resume": bool,                 # whether sessions were offered for resumption
        "verified": bool                # false with --tls-insecure: certificates unchecked
      } or null,
      "pipelining": {                   # null when the scenario has no pipeline group
        "groups_pipelined": int,        # groups sent in one write (PIPELINING advertised)
        "groups_lock_step": int         # groups run step by step (it was not: RFC 2920 §3)
      } or null,
      "thresholds": [                   # one per --threshold, in order; [] without any
        {"expression": str,             # as given, e.g. "session.p99<500ms"
         "metric": str,                 # canonical METRIC[.STAT]: "step:rcpt.p99_9", "failed"
         "value": number or null,       # measured, in the threshold's unit (ms, %, count, /s);
                                        # null: no data
         "verdict": "pass" or "fail" or "no data"}   # no data counts as crossed
      ],
      "smtpload_version": str
    }

where ``LATENCY`` is ``{"p50", "p90", "p99", "p99_9", "max", "mean"}`` in milliseconds (floats,
3 decimals), and ``null`` means no latency was recorded; a step's and the sessions' LATENCY
also has ``"samples"`` (int): the latencies it holds, which latency.hlog's intervals of that
tag add up to (a step's ``count`` is its attempts, not all of them timed).
``passed + failed`` equals the sessions that finished, which is ``started`` unless a session
was cut off before it could be counted. ``started + not_started`` is the number of sessions
the run was asked for.
``thresholds`` is filled in after the run (``report/thresholds.py``: the grammar, the
evaluation); :func:`exit_status` reads it.
:data:`SUMMARY_KEYS` lists the top-level keys.

Server text in transcripts is shown with control characters escaped (``\\x1b``), so a hostile
or broken server cannot drive the terminal of the person reading the report.

failures.log is bounded: at most :data:`MAX_FAILURES_LOG_BYTES`. Transcripts are written whole
and in order while they fit; the file then says that it was cut and how many transcripts it
left out, so a run against a server with huge replies cannot fill the disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from smtpload._version import __version__
from smtpload.errors import counted
from smtpload.protocol.outcome import FAILURE_CATEGORIES, SessionFailure
from smtpload.report.abort import format_abort
from smtpload.report.files import replacing, write_text
from smtpload.report.generator import generator_summary, saturation_note
from smtpload.report.stats import LatencyHistogram, RunStats
from smtpload.report.thresholds import FAILED_METRIC, format_thresholds

__all__ = [
    "MAX_FAILURES_LOG_BYTES",
    "SUMMARY_KEYS",
    "build_summary",
    "exit_status",
    "format_outcomes",
    "format_report",
    "safe_file_name",
    "step_name_shown",
    "summary_json",
    "write_results",
]

#: The top-level keys of summary.json, in order (see the module docstring for the whole shape).
SUMMARY_KEYS: tuple[str, ...] = (
    "scenario",
    "target",
    "run_id",
    "seed",
    "interrupted",
    "aborted",
    "duration_s",
    "load",
    "sources",
    "sessions",
    "throughput",
    "session_latency_ms",
    "session_latency_uncorrected_ms",
    "start_delay_ms",
    "late_starts",
    "clock",
    "steps",
    "generator",
    "tls",
    "pipelining",
    "thresholds",
    "smtpload_version",
)

SUMMARY_FILE = "summary.json"
SESSION_HGRM_FILE = "session.hgrm"
FAILURES_FILE = "failures.log"

#: The largest failures.log written, in bytes (UTF-8). 10 MiB holds thousands of ordinary
#: transcripts; more would only fill a disk.
MAX_FAILURES_LOG_BYTES = 10 * 1024 * 1024
# Room kept at the end of a full failures.log for the line that says it was cut.
_CUT_NOTE_BYTES = 200

_UNSAFE_FILE_CHARS = re.compile(r"[^a-z0-9_-]")
#: The most characters of a step name in its .hgrm file's name (see safe_file_name).
MAX_FILE_NAME_PART = 64
_DIGEST_CHARS = 12
#: The most characters of a step name shown in the table and in failure transcripts.
MAX_SHOWN_NAME = 40
# C0 controls and DEL, shown as \xNN; everything else (including non-ASCII text) as it is.
_ESCAPE_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- summary.json ----------------------------------------------------------------------------


def build_summary(
    *,
    scenario: str,
    target: str,
    run_id: str,
    duration_s: float,
    stats: RunStats,
    interrupted: bool,
    sessions_requested: int | None = None,
    load: Mapping[str, Any] | None = None,
    aborted: Mapping[str, Any] | None = None,
    sources: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Build the summary.json contents (see the module docstring for the exact shape).

    Args:
        scenario: the scenario's name.
        target: the server as ``host:port``.
        run_id: the run's identifier (also the name of its results folder).
        duration_s: the run's wall time in seconds.
        stats: the run's counts, finished (nothing records into it any more).
        interrupted: whether Ctrl-C or SIGTERM cut the run short.
        sessions_requested: the sessions the run was asked for (``--sessions``); None when
            every one it was asked for was started.
        load: how the run was driven (summary.json's ``load``); None: closed loop, as far
            as is known.
        aborted: the threshold that stopped the run (``report/abort.py``, ``Crossing``'s
            summary), or None.
        sources: how sessions were spread over ``--source`` addresses (net/source.py,
            ``SourceBinder.summary``), or None without ``--source``.
        seed: the run's seed (``--seed``, or the one drawn for the run), or None.
    """
    finished = stats.finished
    requested = stats.started if sessions_requested is None else sessions_requested
    return {
        "scenario": scenario,
        "target": target,
        "run_id": run_id,
        "seed": seed,
        "interrupted": interrupted,
        "aborted": dict(aborted) if aborted is not None else None,
        "duration_s": round(duration_s, 3),
        "load": dict(load) if load is not None else {"model": "closed", "corrected": False},
        "sources": dict(sources) if sources is not None else None,
        "sessions": {
            "started": stats.started,
            # Outside "failures": a session never started has no outcome (Ctrl-C came first).
            "not_started": requested - stats.started,
            "passed": stats.passed,
            "failed": stats.failed,
            "failures": {o.value: stats.outcomes[o] for o in FAILURE_CATEGORIES},
        },
        "throughput": {
            # Finished sessions count failures too (1,000 refused connections are fast):
            # the passed rate is the one that says what the server did.
            "sessions_per_s": _rate_per_s(finished, duration_s),
            "passed_sessions_per_s": _rate_per_s(stats.passed, duration_s),
            "messages_per_s": _rate_per_s(stats.messages, duration_s),
            "messages": stats.messages,
        },
        "session_latency_ms": _latency_summary(stats.session_latency),
        "session_latency_uncorrected_ms": _latency_summary(stats.session_latency_uncorrected),
        "start_delay_ms": _latency_summary(stats.start_delay),
        "late_starts": stats.late_starts,
        "clock": stats.clock,
        "steps": [
            {
                "name": step.name,
                "count": step.attempts,
                "failed": step.failed,
                "latency_ms": _latency_summary(step.latency),
                "dropped_samples": step.dropped_samples,
                "clock": step.clock,
            }
            for step in stats.steps.values()
        ],
        "generator": generator_summary(stats),
        "tls": None if stats.tls is None else stats.tls.summary(),
        "pipelining": None if stats.pipelining is None else stats.pipelining.summary(),
        # Evaluated by the caller once the run is over (report/thresholds.py).
        "thresholds": [],
        "smtpload_version": __version__,
    }


def _latency_summary(histogram: LatencyHistogram) -> dict[str, float] | None:
    """A step's or the sessions' LATENCY, with ``samples``: how many latencies it holds (a
    step's ``count`` is its attempts, some of which got no reply to time)."""
    summary: dict[str, float] | None = histogram.summary_ms()
    if summary is not None:
        summary["samples"] = histogram.count
    return summary


def _rate_per_s(count: int, duration_s: float) -> float:
    if duration_s <= 0:
        return 0.0
    return round(count / duration_s, 3)


# -- the results folder ----------------------------------------------------------------------


def safe_file_name(name: str) -> str:
    """A step name as a file-name part: lower case, anything but ``[a-z0-9_-]`` as ``_``, and at
    most :data:`MAX_FILE_NAME_PART` characters: a longer one keeps its start and ends with a
    hash of the whole name, so two long names that start alike still differ. (A file name has
    at most 255 bytes, NAME_MAX on Linux; this leaves room for ``step-NN-``, ``.hgrm`` and a
    temporary file's prefix and suffix.)

    >>> safe_file_name("RCPT#2")
    'rcpt_2'
    >>> len(safe_file_name("x" * 1000)) == MAX_FILE_NAME_PART
    True
    """
    safe = _UNSAFE_FILE_CHARS.sub("_", name.lower())
    if len(safe) <= MAX_FILE_NAME_PART:
        return safe
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_CHARS]
    return f"{safe[: MAX_FILE_NAME_PART - _DIGEST_CHARS - 1]}-{digest}"


def write_results(directory: Path, summary: dict[str, Any], stats: RunStats) -> list[Path]:
    """Write a run's result files into ``directory`` (created with its parents if needed).

    Files written:

    - ``summary.json``: ``summary`` as indented JSON;
    - ``step-NN-<name>.hgrm`` for every step with latency samples, ``NN`` being the step's
      position (``00`` is ``connect``) and ``<name>`` its :func:`safe_file_name`;
    - ``session.hgrm`` when session latencies were recorded;
    - ``failures.log``, always: the kept failures with their transcripts, at most
      :data:`MAX_FAILURES_LOG_BYTES`;
    - ``latency.hlog`` and ``timeline.csv``, always: the run per second (report/intervals.py).

    Files of an earlier run in the same folder are not removed. Every file is written through
    a temporary file and renamed into place (``report/files.py``), so none is ever half-written.

    Returns:
        The paths written, in the order above.

    Raises:
        OutputError: a file could not be written (the message names it).
    """
    written = [_write_summary(directory / SUMMARY_FILE, summary)]
    for index, step in enumerate(stats.steps.values()):
        if step.latency.count:
            path = directory / f"step-{index:02d}-{safe_file_name(step.name)}.hgrm"
            written.append(_write_hgrm(path, step.latency))
    if stats.session_latency.count:
        written.append(_write_hgrm(directory / SESSION_HGRM_FILE, stats.session_latency))
    with replacing(directory / FAILURES_FILE) as raw:
        # Written as it is formatted, one transcript at a time, through the replacing file.
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        _write_failures_log(text, stats)
        text.flush()
        text.detach()
    written.append(directory / FAILURES_FILE)
    # latency.hlog and timeline.csv. Imported here: intervals.py uses safe_file_name.
    from smtpload.report.intervals import write_interval_files

    written.extend(write_interval_files(directory, stats, summary["duration_s"]))
    return written


def exit_status(summary: Mapping[str, Any]) -> int:
    """What a finished run exits with (README, "Outcomes and exit status"): 130 interrupted
    (it wins); 1 aborted by a threshold (``--abort-on-threshold``); without thresholds 1 a
    session failed, 0 every session passed; with thresholds 1 any is crossed or has no data,
    or (unless one is on ``failed``, which then says how many failures pass) a session
    failed; else 0. (2, a usage error, is the command's.)"""
    if summary["interrupted"]:
        return 130
    if summary.get("aborted"):  # .get: a summary written before aborts existed has none
        return 1
    failed = bool(summary["sessions"]["failed"])
    # .get: a summary written before thresholds existed has none.
    thresholds = summary.get("thresholds") or []
    if not thresholds:
        return 1 if failed else 0
    crossed = any(entry["verdict"] != "pass" for entry in thresholds)
    if not any(entry["metric"] == FAILED_METRIC for entry in thresholds):
        crossed = crossed or failed  # the default failed==0
    return 1 if crossed else 0


def summary_json(summary: dict[str, Any]) -> str:
    """The text of ``summary.json``; ``--json PATH`` writes the same text."""
    # allow_nan=False: NaN/Infinity are not JSON, and CI parsers would choke on them.
    return json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _write_summary(path: Path, summary: dict[str, Any]) -> Path:
    return write_text(path, summary_json(summary))


def _write_hgrm(path: Path, histogram: LatencyHistogram) -> Path:
    with replacing(path) as stream:
        histogram.write_hgrm(stream)
    return path


def _write_failures_log(stream: TextIO, stats: RunStats) -> None:
    """Write failures.log, one transcript at a time, within MAX_FAILURES_LOG_BYTES.

    Blocks (a transcript, or a note) are separated by a blank line.
    """
    if not stats.failures and not stats.failures_not_kept:
        if stats.failed:
            # The runner counted failures without handing over their details.
            stream.write(f"{counted(stats.failed, 'failed session')}, no details kept\n")
        else:
            stream.write("no failed sessions\n")
        return
    budget = MAX_FAILURES_LOG_BYTES - _CUT_NOTE_BYTES
    used = 0
    left_out = 0
    for index, failure in enumerate(stats.failures):
        block = ("\n" if used else "") + "\n".join(_format_failure(failure)) + "\n"
        size = len(block.encode("utf-8"))
        if used + size > budget:
            # This one and every later one: the log stays in order.
            left_out = len(stats.failures) - index
            break
        stream.write(block)
        used += size
    notes = []
    if left_out:
        limit_mib = MAX_FAILURES_LOG_BYTES // (1024 * 1024)
        notes.append(
            f"(failures.log cut here at its {limit_mib} MiB limit: "
            f"{counted(left_out, 'more kept transcript')} left out)"
        )
    if stats.failures_not_kept:
        notes.append(f"({counted(stats.failures_not_kept, 'more failed session')} not kept)")
    for number, note in enumerate(notes):
        stream.write(("\n" if used or number else "") + note + "\n")


def _format_failure(failure: SessionFailure) -> list[str]:
    lines = [
        f"session {failure.session}: {failure.outcome.value}"
        f" at step '{step_name_shown(failure.step)}'",
        f"expected: {_printable(failure.expected) or '-'}",
        f"got: {_printable(failure.got) or '-'}",
    ]
    lines.extend(f"  {line.direction}: {_printable(line.text)}" for line in failure.transcript)
    return lines


def _printable(text: str) -> str:
    # translate() with a dict is slow on long non-ASCII text; most text has nothing to escape.
    return text.translate(_ESCAPE_CONTROLS) if _CONTROL.search(text) else text


def step_name_shown(step_name: str) -> str:
    """A step name for people: printable, and cut (its full name is in summary.json)."""
    if len(step_name) > MAX_SHOWN_NAME:
        step_name = step_name[: MAX_SHOWN_NAME - 3] + "..."
    return _printable(step_name)


# -- terminal text ---------------------------------------------------------------------------

_LATENCY_COLUMNS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99_9", "p99.9"))
_REPORT_WIDTH = 100
_LATENCY_WIDTH = 10
_COUNT_WIDTH = 9
_FAILED_WIDTH = 8


def format_report(summary: dict[str, Any], stats: RunStats, *, max_transcripts: int = 3) -> str:
    """The end-of-run text for the terminal (plain text, no colour, ~95 columns).

    The table's numbers come from ``summary`` (so the terminal and summary.json never
    disagree); the transcripts of up to ``max_transcripts`` failed sessions, and the notes
    on left-out latencies, come from ``stats``.

    Example::

        quickstart against 127.0.0.1:2525, 10.002 s; latencies in ms
        step       count  failed       p50       p90       p99     p99.9       max
        connect     1000       1     0.101     0.180     0.412     0.977     1.203
        ...
        session     1000       3     2.410     3.101     5.007     9.113    12.001
        sessions: 1000 started, 997 passed, 3 failed
        failures: timeout 2, connect_error 1
        throughput: 99.9 sessions/s finished, 99.6 sessions/s passed, 99.6 messages/s
    """
    header = f"{summary['scenario']} against {summary['target']}, {summary['duration_s']:.3f} s"
    if summary["interrupted"]:
        header += " (interrupted)"
    header += "; latencies in ms"
    sessions = summary["sessions"]
    rows: list[tuple[str, int, int, dict[str, float] | None]] = [
        (step["name"], step["count"], step["failed"], step["latency_ms"])
        for step in summary["steps"]
    ]
    finished = sessions["passed"] + sessions["failed"]
    rows.append(("session", finished, sessions["failed"], summary["session_latency_ms"]))
    name_width = max(len("step"), *(len(step_name_shown(name)) for name, *_ in rows))

    lines = [header, _table_row(name_width, "step", "count", "failed", *_latency_titles())]
    for name, count, failed, latency in rows:
        lines.append(
            _table_row(
                name_width, step_name_shown(name), str(count), str(failed), *_latency(latency)
            )
        )

    lines.append(_sessions_line(sessions))
    failure_counts = _failure_counts(sessions)
    if failure_counts:
        lines.extend(_wrap_items("failures: ", failure_counts))
    throughput = summary["throughput"]
    lines.append(
        f"throughput: {throughput['sessions_per_s']:.1f} sessions/s finished, "
        f"{throughput['passed_sessions_per_s']:.1f} sessions/s passed, "
        f"{throughput['messages_per_s']:.1f} messages/s"
    )
    if stats.tls is not None:
        lines.append(stats.tls.describe())
    if stats.pipelining is not None:
        lines.append(stats.pipelining.describe())
    if summary.get("seed") is not None:
        lines.append(f"seed: {summary['seed']} (--seed {summary['seed']} repeats the draws)")
    dropped = sum(step.latency.dropped for step in stats.steps.values())
    dropped += stats.session_latency.dropped
    if dropped:
        were = "was" if dropped == 1 else "were"
        lines.append(
            f"note: {counted(dropped, 'latency', 'latencies')} above 1 hour {were}"
            " counted as 1 hour"
        )
    negative = sum(step.negative_samples for step in stats.steps.values())
    negative += stats.negative_session_samples
    if negative:
        were = "was" if negative == 1 else "were"
        lines.append(
            f"note: {counted(negative, 'latency', 'latencies')} below zero {were} left out "
            "(the system clock was set back during the run)"
        )
    saturated = saturation_note(summary)
    if saturated is not None:
        lines.append(saturated)
    lines.extend(format_abort(summary))
    lines.extend(format_thresholds(summary))

    shown = stats.failures[: max(max_transcripts, 0)]
    if shown:
        not_shown = len(stats.failures) - len(shown) + stats.failures_not_kept
        title = "failed sessions"
        if not_shown:
            title += f" (first {len(shown)}; {not_shown} more not shown)"
        lines.extend(["", f"{title}:"])
        for failure in shown:
            lines.extend(["", *_format_failure(failure)])
    return "\n".join(lines) + "\n"


def _sessions_line(sessions: dict[str, Any], *, outcomes: bool = False) -> str:
    """``sessions: 5 started, 0 passed, 5 failed``; with ``outcomes``, the failures' categories
    after ``failed``; then, when an interrupted run left some out, ``, 95 not started``."""
    line = (
        f"sessions: {sessions['started']} started, {sessions['passed']} passed, "
        f"{sessions['failed']} failed"
    )
    failures = _failure_counts(sessions)
    if outcomes and failures:
        line += f" ({', '.join(failures)})"
    # An interrupted run: how much of what was asked for never ran.
    return line + (f", {sessions['not_started']} not started" if sessions["not_started"] else "")


def _failure_counts(sessions: dict[str, Any]) -> list[str]:
    return [f"{name} {n}" for name, n in sessions["failures"].items() if n]


def format_outcomes(summary: dict[str, Any]) -> str:
    """One line of the run's outcomes, for ``--quiet`` when a session failed:
    ``sessions: 3 started, 1 passed, 2 failed (timeout 2)``; then the abort and the thresholds,
    if any."""
    return "\n".join(
        [
            _sessions_line(summary["sessions"], outcomes=True),
            *format_abort(summary),
            *format_thresholds(summary),
        ]
    )


def _wrap_items(prefix: str, items: list[str]) -> list[str]:
    """``prefix`` and ``items`` joined by commas, wrapped between items within 100 columns."""
    lines, line = [], prefix + items[0]
    for item in items[1:]:
        if len(line) + len(", ") + len(item) > _REPORT_WIDTH:
            lines.append(line + ",")
            line = " " * len(prefix) + item
        else:
            line += ", " + item
    return [*lines, line]


def _latency_titles() -> list[str]:
    return [title for _, title in _LATENCY_COLUMNS] + ["max"]


def _latency(latency: dict[str, float] | None) -> list[str]:
    keys = [key for key, _ in _LATENCY_COLUMNS] + ["max"]
    if latency is None:
        return ["-"] * len(keys)
    return [f"{latency[key]:.3f}" for key in keys]


def _table_row(name_width: int, name: str, count: str, failed: str, *latencies: str) -> str:
    cells = [name.ljust(name_width), count.rjust(_COUNT_WIDTH), failed.rjust(_FAILED_WIDTH)]
    cells.extend(value.rjust(_LATENCY_WIDTH) for value in latencies)
    return "".join(cells).rstrip()
