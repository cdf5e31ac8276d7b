"""Thresholds: pass/fail rules on a finished run's summary, for CI (``--threshold EXPR``).

This module owns the threshold language, its evaluation against a summary (the ``summary.json``
shape of ``report/results.py``) and the lines that show the verdicts. It is pure: no trio, no
files, no clock. The exit status that follows from the verdicts is ``results.exit_status``'s.

The grammar
-----------
One threshold is ``METRIC[.STAT] OP VALUE[UNIT]``, with white space allowed around OP
(and before and after the whole), nowhere else::

    threshold   = METRIC ["." STAT] OP VALUE [UNIT]
    METRIC      = "session" | "start_delay" | "step:" STEP            latencies
                | "failed" | "passed" | "messages"                    counts
                | "sessions_per_s" | "passed_sessions_per_s" | "messages_per_s"   rates
    STEP        = BARE | QUOTED                 a step name of the scenario, "connect" included
    BARE        = one or more characters, none of them white space or . < > = ! " \\
    QUOTED      = '"' { any character but " and \\, or \\" or \\\\ } '"'
    STAT        = "p50" | "p90" | "p99" | "p99_9" | "p99.9" | "max" | "mean"
    OP          = "<" | "<=" | ">" | ">=" | "==" | "!="
    VALUE       = DIGITS ["." DIGITS]
    UNIT        = "us" | "µs" | "ms" | "s" | "m" | "h"    latencies; none means ms (as k6)
                | "%"                                    failed and passed: of sessions started;
                                                         none means a count (a whole number)
                                                         rates take none: per second

Examples: ``session.p99<500ms``, ``step:rcpt.p99<50ms``, ``step:"rcpt #2".max<=1s``,
``failed<0.1%``, ``failed==0``, ``passed>=1000``, ``messages_per_s>900``,
``start_delay.p99<10ms``.

- A latency needs its STAT (``session<5ms`` is refused: which percentile?); a count or a rate
  takes none. ``p99.9`` and ``p99_9`` are the same statistic (the summary's key is ``p99_9``).
- A step is written ``step:NAME``, so a step's name never collides with a metric's. A name
  holding white space or any of ``. < > = ! " \\`` is written in double quotes, with ``"`` and
  ``\\`` escaped by a backslash: the step ``a.b "c"`` is ``step:"a.b \\"c\\""``.
- ``start_delay`` exists only in open-loop runs (``--rate``); a threshold on it in a closed-loop
  run is refused before the run.
- Every problem is found before the run (the scenario is loaded first, so an unknown step is
  one too) and is a :class:`ThresholdError` naming the expression and the column.

Evaluation
----------
Each threshold compares the summary's measured value with its own, exactly (decimal arithmetic:
``0.1s`` is 100 ms, not 100.00000000000001). A latency with no samples (``null`` in the
summary: no session passed, a step that never completed) is **no data**, and no data counts as
crossed: a CI gate fails closed. So is a percentage of zero sessions started.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from smtpload.errors import Problem, ScenarioError, clipped, closest, shown
from smtpload.scenario.model import ThresholdText

__all__ = [
    "COUNT_METRICS",
    "FAILED_METRIC",
    "LATENCY_METRICS",
    "RATE_METRICS",
    "STATS",
    "Threshold",
    "ThresholdError",
    "Verdict",
    "evaluate_thresholds",
    "format_thresholds",
    "parse_scenario_thresholds",
    "parse_threshold",
    "parse_thresholds",
]

#: The metric whose threshold replaces the default ``failed==0``.
FAILED_METRIC = "failed"
_STEP_PREFIX = "step:"
#: Latency metrics, by name, with the summary key that holds their percentiles.
LATENCY_METRICS: dict[str, str] = {
    "session": "session_latency_ms",
    "start_delay": "start_delay_ms",
}
#: Count metrics, with where the summary holds them (section, key).
COUNT_METRICS: dict[str, tuple[str, str]] = {
    FAILED_METRIC: ("sessions", "failed"),
    "passed": ("sessions", "passed"),
    "messages": ("throughput", "messages"),
}
#: The counts that may be given as a percentage of sessions started.
_PERCENT_METRICS = frozenset({FAILED_METRIC, "passed"})
#: Rate metrics (per second), with where the summary holds them.
RATE_METRICS: dict[str, tuple[str, str]] = {
    "sessions_per_s": ("throughput", "sessions_per_s"),
    "passed_sessions_per_s": ("throughput", "passed_sessions_per_s"),
    "messages_per_s": ("throughput", "messages_per_s"),
}
#: A latency's statistics as written, with the summary key each one reads.
STATS: dict[str, str] = {
    "p50": "p50",
    "p90": "p90",
    "p99": "p99",
    "p99_9": "p99_9",
    "p99.9": "p99_9",
    "max": "max",
    "mean": "mean",
}
#: Time units, in milliseconds; a latency without a unit is in milliseconds.
_UNITS_MS: dict[str, Decimal] = {
    "us": Decimal("0.001"),
    "µs": Decimal("0.001"),
    "ms": Decimal(1),
    "s": Decimal(1000),
    "m": Decimal(60_000),
    "h": Decimal(3_600_000),
}
_OPERATORS = ("<=", ">=", "==", "!=", "<", ">")  # two-character ones first: "<=" is not "<"
_METRICS_SHOWN = (
    "session, step:NAME, start_delay, failed, passed, messages, sessions_per_s, "
    "passed_sessions_per_s, messages_per_s"
)
_EXAMPLE = "e.g. session.p99<500ms"
_NAME_STOPS = frozenset('.<>=!"\\')
_METRIC_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAT_WORD = re.compile(r"p[0-9]+(?:[._][0-9]+)?|[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_UNIT_WORD = re.compile(r"[A-Za-zµ%/]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ThresholdError(ValueError):
    """A threshold that cannot be read or does not fit the scenario; ``str()`` names the
    expression and the (1-based) column, e.g. ``'session.p99<<5': column 13: ...``."""

    def __init__(self, expression: str, column: int, reason: str) -> None:
        super().__init__(f"{shown(expression)}: column {column}: {reason}")
        self.expression = expression
        self.column = column
        self.reason = reason


class Kind(enum.Enum):
    """What a metric measures, which decides its units."""

    LATENCY = "latency"
    COUNT = "count"
    RATE = "rate"


class Verdict(enum.Enum):
    """A threshold's verdict, as summary.json writes it."""

    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no data"


@dataclass(frozen=True, slots=True)
class Threshold:
    """One threshold as parsed.

    Attributes:
        expression: as the user wrote it.
        metric: the metric and statistic in canonical form: ``session.p99_9``,
            ``step:rcpt.p99``, ``step:"a b".max``, ``failed``.
        name: the metric's name (``session``, ``step``, ``failed``, ...).
        kind: latency, count or rate.
        step: the step's name for a ``step:NAME`` metric, else None.
        stat: the summary key of a latency's statistic (``p99_9``), else None.
        operator: one of ``< <= > >= == !=``.
        limit: the value compared with: milliseconds for a latency, percent when
            ``percent``, else a count or a rate per second.
        percent: the limit is a percentage of the sessions started.
    """

    expression: str
    metric: str
    name: str
    kind: Kind
    step: str | None
    stat: str | None
    operator: str
    limit: Decimal
    percent: bool

    def holds(self, measured: Decimal) -> bool:
        """Whether ``measured`` (in the limit's unit) meets the threshold."""
        return {
            "<": measured < self.limit,
            "<=": measured <= self.limit,
            ">": measured > self.limit,
            ">=": measured >= self.limit,
            "==": measured == self.limit,
            "!=": measured != self.limit,
        }[self.operator]

    @property
    def unit_shown(self) -> str:
        """The unit a measured value is shown in: ``ms``, ``%``, ``/s``, or nothing."""
        if self.kind is Kind.LATENCY:
            return " ms"
        if self.percent:
            return "%"
        return "/s" if self.kind is Kind.RATE else ""


# -- parsing ---------------------------------------------------------------------------------


class _Reader:
    """A cursor over one expression, which knows the column of what it reads."""

    def __init__(self, expression: str) -> None:
        self.text = expression
        self.at = 0

    def error(self, reason: str, at: int | None = None) -> ThresholdError:
        return ThresholdError(self.text, (self.at if at is None else at) + 1, reason)

    def skip_space(self) -> None:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1

    def match(self, pattern: re.Pattern[str]) -> str | None:
        found = pattern.match(self.text, self.at)
        if found is None:
            return None
        self.at = found.end()
        return found.group()

    def take(self, literal: str) -> bool:
        if self.text.startswith(literal, self.at):
            self.at += len(literal)
            return True
        return False

    def rest(self) -> str:
        return self.text[self.at :]


def parse_threshold(
    expression: str,
    *,
    step_names: Collection[str] | None = None,
    open_loop: bool | None = None,
) -> Threshold:
    """Read one threshold (the grammar: the module docstring).

    Args:
        expression: the threshold as written, e.g. ``session.p99<500ms``.
        step_names: the run's step names, ``connect`` included; a ``step:NAME`` naming none of
            them is an error. None: any name is taken (reading back a summary's expressions).
        open_loop: whether the run is open-loop; False makes ``start_delay`` an error. None:
            not checked.

    Raises:
        ThresholdError: naming the expression, the column and what to write instead.
    """
    reader = _Reader(expression)
    reader.skip_space()
    if reader.at == len(expression):
        raise reader.error(f"the threshold is empty; write METRIC[.STAT] OP VALUE, {_EXAMPLE}")
    name, kind, step, metric_at = _read_metric(reader, step_names)
    if name == "start_delay" and open_loop is False:
        raise reader.error(
            "start_delay is measured only in open-loop runs (--rate); this run is closed-loop, "
            "so it has no start delays",
            metric_at,
        )
    stat = _read_stat(reader, name, kind)
    reader.skip_space()
    operator = _read_operator(reader)
    reader.skip_space()
    limit, percent = _read_value(reader, name, kind)
    reader.skip_space()
    if reader.at != len(expression):
        raise reader.error(f"unexpected {shown(reader.rest())} after the value")
    metric = name if step is None else _STEP_PREFIX + _step_written(step)
    if stat is not None:
        metric += "." + stat
    return Threshold(
        expression=expression,
        metric=metric,
        name=name,
        kind=kind,
        step=step,
        stat=stat,
        operator=operator,
        limit=limit,
        percent=percent,
    )


def parse_thresholds(
    expressions: Sequence[str],
    *,
    step_names: Collection[str],
    open_loop: bool,
) -> list[Threshold]:
    """Read every threshold of a run, in order; the first bad one raises (see
    :func:`parse_threshold`)."""
    return [
        parse_threshold(text, step_names=step_names, open_loop=open_loop) for text in expressions
    ]


def parse_scenario_thresholds(
    path: str,
    thresholds: Sequence[ThresholdText],
    *,
    step_names: Collection[str],
    open_loop: bool,
) -> list[Threshold]:
    """Read the thresholds of a scenario's ``load:`` block, in order.

    Raises:
        ScenarioError: every threshold that cannot be read, each at its place in the file
            (``FILE:LINE:COL``: the column of the problem inside the expression where the
            expression is written on one line as it is read, else the expression's start).
    """
    rules = []
    problems = []
    for written in thresholds:
        try:
            rules.append(parse_threshold(written.text, step_names=step_names, open_loop=open_loop))
        except ThresholdError as error:
            line, column = written.position(error.column - 1)
            message = f"load: threshold {shown(written.text)}: {error.reason}"
            problems.append(Problem(path, line, column, message))
    if problems:
        raise ScenarioError(problems)
    return rules


def _read_metric(
    reader: _Reader, step_names: Collection[str] | None
) -> tuple[str, Kind, str | None, int]:
    start = reader.at
    if reader.take(_STEP_PREFIX):
        step = _read_step_name(reader)
        if step_names is not None and step not in step_names:
            raise reader.error(_unknown_step(step, step_names), start + len(_STEP_PREFIX))
        return "step", Kind.LATENCY, step, start
    word = reader.match(_METRIC_WORD)
    if word in LATENCY_METRICS:
        return word, Kind.LATENCY, None, start
    if word in COUNT_METRICS:
        return word, Kind.COUNT, None, start
    if word in RATE_METRICS:
        return word, Kind.RATE, None, start
    if word is None:
        raise reader.error(f"expected a metric ({_METRICS_SHOWN}), {_EXAMPLE}")
    close = closest(word, [*LATENCY_METRICS, *COUNT_METRICS, *RATE_METRICS, "step"])
    hint = f"; did you mean {close}?" if close is not None else ""
    if word == "step":
        hint = "; a step is written step:NAME, e.g. step:rcpt.p99<50ms"
    raise reader.error(f"unknown metric {shown(word)} (metrics: {_METRICS_SHOWN}){hint}", start)


def _read_step_name(reader: _Reader) -> str:
    start = reader.at
    if reader.take('"'):
        name: list[str] = []
        while reader.at < len(reader.text):
            char = reader.text[reader.at]
            reader.at += 1
            if char == '"':
                if not name:
                    raise reader.error("the step name is empty", start)
                return "".join(name)
            if char == "\\":
                if reader.at == len(reader.text) or reader.text[reader.at] not in '"\\':
                    raise reader.error(
                        'in a quoted step name a backslash escapes only " and \\'
                        ' (write \\" or \\\\)',
                        reader.at - 1,
                    )
                char = reader.text[reader.at]
                reader.at += 1
            name.append(char)
        raise reader.error('the quoted step name has no closing "', start)
    while reader.at < len(reader.text):
        char = reader.text[reader.at]
        if char.isspace() or char in _NAME_STOPS:
            break
        reader.at += 1
    if reader.at == start:
        raise reader.error(
            "expected a step name after step:, e.g. step:rcpt.p99<50ms (quote a name holding"
            ' white space or . < > = ! " \\: step:"my step".p99<50ms)'
        )
    return reader.text[start : reader.at]


def _step_written(step: str) -> str:
    """A step name as the grammar writes it: bare where it can be, else quoted."""
    if step and not any(char.isspace() or char in _NAME_STOPS for char in step):
        return step
    return '"' + step.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unknown_step(step: str, step_names: Collection[str]) -> str:
    close = closest(step, step_names)
    hint = f"; did you mean step:{clipped(_step_written(close))}?" if close is not None else ""
    listed = clipped(", ".join(step_names), 200)
    return f"the scenario has no step {shown(step)} (its steps: {listed}){hint}"


def _read_stat(reader: _Reader, name: str, kind: Kind) -> str | None:
    dot = reader.at
    if not reader.take("."):
        if kind is Kind.LATENCY:
            raise reader.error(
                f"a latency needs a statistic ({', '.join(STATS)}), e.g. {name}.p99<500ms"
                if name != "step"
                else f"a latency needs a statistic ({', '.join(STATS)}), e.g. step:rcpt.p99<50ms"
            )
        return None
    if kind is not Kind.LATENCY:
        raise reader.error(f"{name} is a {kind.value}, which has no statistic: write {name}", dot)
    start = reader.at
    word = reader.match(_STAT_WORD)
    if word is None or word not in STATS:
        what = "nothing" if not word else shown(word)
        raise reader.error(f"expected a statistic ({', '.join(STATS)}), not {what}", start)
    return STATS[word]


def _read_operator(reader: _Reader) -> str:
    for operator in _OPERATORS:
        if reader.take(operator):
            return operator
    if reader.text.startswith("=", reader.at):
        raise reader.error("write == to compare for equality (a single = is not an operator)")
    if reader.at == len(reader.text):
        raise reader.error(f"expected an operator (< <= > >= == !=) and a value, {_EXAMPLE}")
    raise reader.error(f"expected an operator (< <= > >= == !=), not {shown(reader.rest())}")


def _read_value(reader: _Reader, name: str, kind: Kind) -> tuple[Decimal, bool]:
    start = reader.at
    number = reader.match(_NUMBER)
    if number is None:
        if reader.text.startswith("-", reader.at):
            raise reader.error("a value cannot be negative")
        raise reader.error(f"expected a number, e.g. {_example_value(kind)}")
    value = Decimal(number)
    unit_at = reader.at
    unit = reader.match(_UNIT_WORD) or ""
    if kind is Kind.LATENCY:
        if unit and unit not in _UNITS_MS:
            raise reader.error(
                f"unknown time unit {shown(unit)}; use us, ms, s, m or h (a bare number is ms)",
                unit_at,
            )
        return value * _UNITS_MS.get(unit, Decimal(1)), False
    if kind is Kind.RATE:
        if unit:
            raise reader.error(
                f"{name} is a rate per second and takes a bare number, e.g. {name}>900", unit_at
            )
        return value, False
    if unit == "%":
        if name not in _PERCENT_METRICS:
            raise reader.error(f"{name} is a count, not a share of sessions; drop the %", unit_at)
        if value > 100:
            raise reader.error("a percentage of the sessions started is at most 100%", start)
        return value, True
    if unit:
        raise reader.error(
            f"unknown unit {shown(unit)}: {name} is a count"
            + (", or a percentage of sessions started with %" if name in _PERCENT_METRICS else ""),
            unit_at,
        )
    if value != value.to_integral_value():
        hint = f", or a percentage: {name}<{number}%" if name in _PERCENT_METRICS else ""
        raise reader.error(f"{name} is a count, a whole number{hint}", start)
    return value, False


def _example_value(kind: Kind) -> str:
    return {Kind.LATENCY: "500ms", Kind.COUNT: "0 or 1%", Kind.RATE: "900"}[kind]


# -- evaluation ------------------------------------------------------------------------------


def evaluate_thresholds(
    thresholds: Sequence[Threshold], summary: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Each threshold's measured value and verdict, as summary.json's ``thresholds`` list.

    Returns:
        one ``{"expression", "metric", "value", "verdict"}`` per threshold, in order:
        ``value`` is the measured value in the threshold's unit (milliseconds for a latency,
        percent for a percentage, else a count or a rate per second) or None when there is no
        data; ``verdict`` is ``"pass"``, ``"fail"`` or ``"no data"``.
    """
    results = []
    for threshold in thresholds:
        measured = _measured(threshold, summary)
        if measured is None:
            verdict, value = Verdict.NO_DATA, None
        else:
            verdict = Verdict.PASS if threshold.holds(measured) else Verdict.FAIL
            value = _json_number(measured, threshold)
        results.append(
            {
                "expression": threshold.expression,
                "metric": threshold.metric,
                "value": value,
                "verdict": verdict.value,
            }
        )
    return results


def _measured(threshold: Threshold, summary: Mapping[str, Any]) -> Decimal | None:
    """The summary's value for ``threshold``, exactly, or None for no data."""
    if threshold.kind is Kind.LATENCY:
        if threshold.step is not None:
            steps = [s for s in summary["steps"] if s["name"] == threshold.step]
            latency = steps[0]["latency_ms"] if steps else None
        else:
            latency = summary.get(LATENCY_METRICS[threshold.name])
        if latency is None or threshold.stat is None or latency.get(threshold.stat) is None:
            return None
        # The summary's floats are rounded to µs; their shortest repr is that decimal exactly.
        return Decimal(repr(float(latency[threshold.stat])))
    section, key = (COUNT_METRICS | RATE_METRICS)[threshold.name]
    value = Decimal(repr(summary[section][key]))
    if not threshold.percent:
        return value
    started = summary["sessions"]["started"]
    return None if not started else value * 100 / Decimal(started)


def _json_number(measured: Decimal, threshold: Threshold) -> int | float:
    if threshold.kind is Kind.COUNT and not threshold.percent:
        return int(measured)
    return float(round(measured, 3))


# -- terminal --------------------------------------------------------------------------------

_VERDICT_WIDTH = 9


def format_thresholds(summary: Mapping[str, Any]) -> list[str]:
    """The report's lines on the thresholds (none without thresholds), e.g.::

    thresholds: 1 of 2 crossed
      pass     session.p99<500ms           measured 2.410 ms
      fail     failed<1%                   measured 30%
      fail     failed==0 (default)         measured 3
    """
    entries = list(summary.get("thresholds") or [])
    if not entries:
        return []
    failed = summary["sessions"]["failed"]
    rows = [(entry["verdict"], entry["expression"], _shown_value(entry)) for entry in entries]
    if not any(entry["metric"] == FAILED_METRIC for entry in entries):
        verdict = Verdict.FAIL if failed else Verdict.PASS
        rows.append((verdict.value, "failed==0 (default)", f"measured {failed}"))
    crossed = sum(verdict != Verdict.PASS.value for verdict, _, _ in rows)
    title = "all hold" if not crossed else f"{crossed} of {len(rows)} crossed"
    shown_expressions = [_printable(clipped(expression)) for _, expression, _ in rows]
    width = max(len(text) for text in shown_expressions)
    lines = [f"thresholds: {title}"]
    for (verdict, _, value), expression in zip(rows, shown_expressions, strict=True):
        lines.append(f"  {verdict.ljust(_VERDICT_WIDTH)}{expression.ljust(width)}  {value}")
    return lines


def _shown_value(entry: Mapping[str, Any]) -> str:
    if entry["value"] is None:
        return "no data (nothing was measured)"
    try:
        unit = parse_threshold(entry["expression"]).unit_shown
    except ThresholdError:  # not an expression of ours (a summary edited by hand)
        unit = ""
    value = entry["value"]
    if isinstance(value, int):
        text = str(value)
    elif unit == " ms":
        text = f"{value:.3f}"  # as the table above shows latencies
    else:
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"measured {text}{unit}"


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)
