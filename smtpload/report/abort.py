"""``--abort-on-threshold``: the thresholds judged while the run goes, and the summary's
``aborted``.

The runner (net/runner.py) closes an interval once a second (report/intervals.py); right after
it, the run-wide histograms hold every sample up to that second, and :meth:`AbortCheck.check`
judges the thresholds on the run so far. The first one crossed stops the run as a first Ctrl-C
does (no new session, a grace for the running ones, the rest ``interrupted``), and the run
exits 1 with summary.json's ``aborted`` naming it. This module is pure: no trio, no files, no
clock; it is handed the counts and the seconds elapsed.

Which thresholds can abort a run
--------------------------------
k6 aborts as soon as a threshold with ``abortOnFail`` is crossed at an evaluation (after its
``delayAbortEval``), although some could recover by the end; so does smtpload, for the
thresholds that mean something before the end:

- a latency's upper bound (``session.p99<500ms``, ``step:rcpt.max<=1s``): as k6. ``max`` can
  only grow, so its crossing is final; a percentile or the mean may still come back under,
  but a server that answered slowly for a second past the warm-up is what the abort is for.
- a count's upper bound (``failed<10``, ``failed<=3``, ``failed==0``, ``messages<5000``): a
  count only grows, so once over, it stays over; the run's verdict is already known.
- a percentage, either way (``failed<0.1%``, ``passed>=99%``): as k6's rate thresholds. Mid-run
  the share is of the sessions **finished** so far, not of those started: the sessions still
  running have no outcome yet, and counting them would make ``passed>=99%`` fail at any
  concurrency. (At the end every started session has finished, so the two agree.)

Never, and judged at the end only:

- a count's lower bound (``passed>=1000``, ``messages>0``): it is reached by the end, not
  before; and ``!=`` or ``==`` of a percentage or a latency, which say nothing mid-run;
- a latency's lower bound (``step:greeting.p50>=5s``, a greet pause that must hold): a check
  that the server delays, judged over the whole run; its ``max`` can only rise;
- a rate (``messages_per_s>900``): a rate so far is the count so far over the time so far,
  and the warm-up and a ``--ramp`` keep it low long after they end: a 10 s ramp to 1000/s
  leaves it at 500/s at 10 s and under 900/s until 50 s, in a run whose final rate passes.

**No data does not abort**: a step that has not completed yet, or no session finished, is no
evidence (at the end, no data still counts as crossed).

**The default ``failed==0``** (it applies unless a threshold is on ``failed``) can abort too, as
it decides the exit status: ``--abort-on-threshold`` without any ``--threshold`` stops the run
at the first failed session found after the warm-up, a fail-fast CI gate. Give a threshold on
``failed`` (``failed<1%``, or ``failed<=100%`` for none) to let failures pass.

**The warm-up** (``--abort-warmup``, :data:`DEFAULT_WARMUP_S`): no judgement before it; the
first is at the first whole second at or after it, on everything since the run's start (the
warm-up's own sessions included, as k6's ``delayAbortEval`` delays only the evaluation). 5 s,
a fixed time rather than a share of ``--duration``: a closed-loop run has no duration, and a
p99 of the first second of a short run is the p99 of too few sessions.

Cost: one judgement computes only the statistics its thresholds name, from the run-wide
histograms the interval task has just brought up to date: no histogram is built or copied, and
no file is touched. Measured here (2 shared cores) after 100 s of history at 100 sessions/s, a
scenario of 100 steps: ``session.p99<1h`` with ``failed<1%`` took 1.3 ms a judgement, a p99 on
each of the 100 steps 146 ms (about 1.5 ms a percentile: LatencyHistogram.stat_ms), a ``max``
on each 3.4 ms, a ``mean`` 48 ms (a pass over every bucket in Python: prefer a percentile). The
counts cost nothing. The judgement runs on the event loop once a second, so a hundred latency
thresholds would show in ``generator.loop_lag_ms``; a few do not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smtpload.report.stats import LatencyHistogram, RunStats
from smtpload.report.thresholds import (
    FAILED_METRIC,
    Kind,
    Threshold,
    ThresholdError,
    Verdict,
    evaluate_thresholds,
    parse_threshold,
)

__all__ = [
    "DEFAULT_WARMUP_S",
    "AbortCheck",
    "Crossing",
    "aborts_mid_run",
    "format_abort",
]

#: No threshold is judged in the run's first seconds (``--abort-warmup``).
DEFAULT_WARMUP_S = 5.0

#: The default threshold (results.exit_status), as the report names it.
_DEFAULT_SUFFIX = " (default)"
_DEFAULT_FAILED = dataclasses.replace(
    parse_threshold(f"{FAILED_METRIC}==0"), expression=f"{FAILED_METRIC}==0{_DEFAULT_SUFFIX}"
)
_UPPER_BOUNDS = frozenset({"<", "<="})
_BOUNDS = frozenset({"<", "<=", ">", ">="})


def aborts_mid_run(threshold: Threshold) -> bool:
    """Whether ``threshold``, crossed mid-run, aborts the run (the rules: the module
    docstring)."""
    if threshold.kind is Kind.RATE:
        return False
    if threshold.kind is Kind.LATENCY:
        return threshold.operator in _UPPER_BOUNDS
    if threshold.percent:
        return threshold.operator in _BOUNDS
    return threshold.operator in _UPPER_BOUNDS or threshold.operator == "=="


@dataclass(frozen=True, slots=True)
class Crossing:
    """The threshold that aborted a run.

    Attributes:
        expression: as given (the default's is ``failed==0 (default)``).
        metric: its canonical metric (``session.p99``, ``failed``).
        at_s: the judgement that found it, in whole seconds since the run's start.
        measured: its value then, in the threshold's unit (as summary.json's ``thresholds``).
    """

    expression: str
    metric: str
    at_s: float
    measured: int | float | None

    def summary(self) -> dict[str, Any]:
        """summary.json's ``aborted``."""
        return {
            "threshold": self.expression,
            "metric": self.metric,
            "at_s": self.at_s,
            "measured": self.measured,
        }


class AbortCheck:
    """The thresholds of one run that may abort it, judged on its counts so far.

    Args:
        thresholds: the run's thresholds (all of them: those that cannot abort are left out
            here, and the default ``failed==0`` is added unless one is on ``failed``).
        warmup_s: no judgement before this many seconds of run.

    Attributes:
        watched: the thresholds judged, in the order given (the default last).
        crossing: the first one found crossed, once :meth:`check` found one; else None.
    """

    def __init__(
        self, thresholds: Sequence[Threshold], *, warmup_s: float = DEFAULT_WARMUP_S
    ) -> None:
        self.warmup_s = warmup_s
        self.watched = [threshold for threshold in thresholds if aborts_mid_run(threshold)]
        if not any(threshold.name == FAILED_METRIC for threshold in thresholds):
            self.watched.append(_DEFAULT_FAILED)
        self.crossing: Crossing | None = None

    def check(self, stats: RunStats, elapsed_s: float) -> Crossing | None:
        """Judge the watched thresholds on ``stats`` as they are now, ``elapsed_s`` into the
        run; the first crossed (``fail``, not ``no data``) is kept in :attr:`crossing` and
        returned. Nothing is judged during the warm-up, or once a crossing was found.

        The run-wide histograms must be up to date: the runner calls this right after it
        closed an interval (report/stats.py, "Intervals").
        """
        if self.crossing is not None or elapsed_s < self.warmup_s:
            return None
        verdicts = evaluate_thresholds(self.watched, _so_far(stats, self.watched))
        for entry in verdicts:
            if entry["verdict"] == Verdict.FAIL.value:
                self.crossing = Crossing(
                    expression=entry["expression"],
                    metric=entry["metric"],
                    at_s=float(elapsed_s),
                    measured=entry["value"],
                )
                return self.crossing
        return None


def _so_far(stats: RunStats, thresholds: Sequence[Threshold]) -> dict[str, Any]:
    """The part of a summary (results.build_summary's shape) that ``thresholds`` read, with
    only the statistics they name: what evaluate_thresholds needs, and nothing more."""
    wanted: dict[str, set[str]] = {}  # the summary's latency key or step name -> statistics
    for threshold in thresholds:
        if threshold.kind is Kind.LATENCY and threshold.stat is not None:
            key = threshold.step if threshold.step is not None else threshold.name
            wanted.setdefault(key, set()).add(threshold.stat)

    def latency(histogram: LatencyHistogram, key: str) -> dict[str, float | None] | None:
        if key not in wanted or histogram.count == 0:
            return None
        return {stat: histogram.stat_ms(stat) for stat in wanted[key]}

    return {
        # The shares are of the sessions finished: the running ones have no outcome yet.
        "sessions": {"started": stats.finished, "passed": stats.passed, "failed": stats.failed},
        "throughput": {"messages": stats.messages},
        "session_latency_ms": latency(stats.session_latency, "session"),
        "start_delay_ms": latency(stats.start_delay, "start_delay"),
        "steps": [
            {"name": name, "latency_ms": latency(stats.steps[name].latency, name)}
            for name in wanted
            if name in stats.steps
        ],
    }


def format_abort(summary: Mapping[str, Any]) -> list[str]:
    """The report's line on an abort (none when the run was not aborted), e.g.::

    aborted at 6 s (--abort-on-threshold): session.p99<500ms crossed, measured 612.345 ms
    """
    aborted = summary.get("aborted")  # .get: a summary written before aborts existed
    if not aborted:
        return []
    expression = str(aborted["threshold"])
    measured = aborted["measured"]
    try:
        unit = parse_threshold(expression.removesuffix(_DEFAULT_SUFFIX)).unit_shown
    except ThresholdError:  # not an expression of ours (a summary edited by hand)
        unit = ""
    if measured is None:
        value = "no data"
    elif isinstance(measured, int):
        value = f"{measured}{unit}"
    elif unit == " ms":
        value = f"{measured:.3f}{unit}"
    else:
        value = f"{measured:.3f}".rstrip("0").rstrip(".") + unit
    return [
        f"aborted at {aborted['at_s']:g} s (--abort-on-threshold): {_printable(expression)}"
        f" crossed, measured {value}"
    ]


def _printable(text: str) -> str:
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)
