"""Judging a run against its baseline: which differences are regressions, which are warnings.

This module owns the rules of ``smtpload compare`` and its text and JSON reports. It compares
two :class:`~smtpload.regression.baseline.Behaviour` values and does no I/O at all.

The rules, step by step
-----------------------
Over N sessions a step's replies are compared as *sets*: the reply codes seen, the enhanced
codes seen, the other events seen (timeout, closed, skipped, ...), the normalized text lines
seen. A value that appears or disappears is a change; how many sessions got each value is shown
but never judged, so running 10 sessions against a baseline of 100 is fine, while a 451 that
one session in a hundred now gets is caught.

The counts are of attempts (baseline format /2): a step that a ``repeat:`` block holds, an
``rcpt`` step's recipients, a bdat step's chunks get several replies per session, and how many
varies by design (a ranged repeat draws its count per session), so two runs of one server
differ in attempts as they differ in sessions. What is judged is the *share* of each value
among the step's attempts, and only whether it is zero: a difference means a value that no
attempt got before and some now get, or the other way round. The size of a share (451 in 1%
of the attempts, now in 5%) is shown, not judged, as the sessions' counts were before
attempts. Where each step runs once per session, attempts are sessions and every verdict is
the one the sessions gave; a /1 baseline reads so (baseline.py). For each step the first of
these that differs is
reported, and the ones after it are not, because they follow from it (a reply code that changed
brings a new enhanced code and a new text with it):

==================  ==========================================================  ============
kind                when                                                        severity
==================  ==========================================================  ============
step_missing        the baseline has the step, the scenario no longer does      regression
step_added          the scenario has a step the baseline does not               regression
event               the set of non-reply events changed, or no session reached  regression
                    a step that sessions used to reach
code                the set of reply codes changed                              regression
enhanced            an enhanced status code went, or changed, or replies lost   regression
                    theirs [**]
enhanced_added      enhanced status codes came where the baseline's replies     warning [*]
                    had none (qmail's ``250 ok`` -> ``250 2.1.0 Sender ok``)
text                the set of normalized text lines changed                    warning [*]
capability_removed  an EHLO keyword is no longer advertised                     regression
capability_added    an EHLO keyword is newly advertised                         warning [*]
capability_changed  an EHLO keyword lists other parameters (``SIZE``)           warning [*]
latency_p50,        with --max-latency-regression PCT: now > baseline x (1 +    regression
latency_p99,        PCT/100) and now - baseline > --min-latency-delta MS
latency_p99_9       (default 1 ms), when enough samples back it [***]
==================  ==========================================================  ============

[*] a regression with ``--strict``. [**] Enhanced codes are compared per reply class, with
"none" counting as one of the values a class saw (RFC 2034 §4: a code's class agrees with its
reply's first digit, so a 5.x.x code cannot have come to a 250): a code that came to a class
whose replies had none in the baseline is ``enhanced_added``, one that came where every reply
had a code is a change. After an ``enhanced`` or ``enhanced_added`` difference the text is not
compared: the code is part of it. Capabilities are compared only when both runs got a 2xx
EHLO reply at the step (otherwise the ``code`` difference says it all). Once a step has an
``event`` or ``code`` difference, later steps that sessions are now ``skipped`` at, or that no
session reaches, are consequences of it and are not reported again.

[***] A percentile q is judged only when both sides recorded at least 1 / (1 - q) latencies at
the step (:data:`SAMPLES_NEEDED`: p50 from 2, p99 from 100, p99.9 from 1,000); with fewer it
is the slowest sample, and one slow sample would decide. The ones not judged are listed
(``Comparison.not_judged``) and the report says so in a note. The floor keeps sub-millisecond
replies, which move by tens of percent between two runs of the same server, from reading as
regressions; a step that waits on a disk (a message's queue file) moves by more, and needs a
higher floor.

Latencies are judged only when the baseline and this run were timed on the same clock
(``Behaviour.clock``: ``kernel`` or ``loop``, see net/wire_clock.py). Across clocks the
difference is mostly the clock's: the loop's clock adds smtpload's own queueing to every
latency, and that grows with the load (about 45 times the server's p50 at 100 sessions in
parallel, issue 9), so a loop-timed baseline against a kernel-timed run shows improvements and
the other way round regressions, none of them the server's. The report then warns
(``Comparison.clock_warning``), judges no latency even with ``--max-latency-regression`` and
says so in a note; the warning is no difference of a step and no regression, ``--strict`` or
not: the server's replies are still compared, and recording the baseline again
(``--update-baseline``) puts both on one clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smtpload.errors import counted, shown
from smtpload.regression.baseline import Behaviour, StepBehaviour
from smtpload.report.results import step_name_shown
from smtpload.report.stats import KERNEL_CLOCK, LOOP_CLOCK

__all__ = [
    "DEFAULT_MIN_LATENCY_DELTA_MS",
    "NOT_RUN",
    "REGRESSION",
    "SAMPLES_NEEDED",
    "WARNING",
    "Comparison",
    "Difference",
    "NotJudged",
    "compare",
    "comparison_summary",
    "format_comparison",
]

REGRESSION = "regression"
WARNING = "warning"
NOT_RUN = "not run"

#: The absolute floor of --max-latency-regression: on a quiet loopback, scheduling alone moves
#: sub-millisecond replies by tens of percent between runs of the same server.
DEFAULT_MIN_LATENCY_DELTA_MS = 1.0

#: The samples each side needs before a percentile is judged: with fewer than 1 / (1 - q), the
#: q-quantile of the samples is their maximum ("p99" of 20 samples is the slowest one), and a
#: single slow sample on either side would decide.
SAMPLES_NEEDED: dict[str, int] = {"p50": 2, "p99": 100, "p99.9": 1000}

#: How the reports name each clock: "timed on the kernel's clock".
_CLOCK_NAMES = {KERNEL_CLOCK: "the kernel's", LOOP_CLOCK: "the loop's"}

#: How many removed or added text lines a difference shows before "(+N more)".
_MAX_LINES_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference between the baseline and now, at one step.

    Attributes:
        step: the step's name.
        kind: what differs (see the module docstring's table).
        severity: ``"regression"`` or ``"warning"``.
        message: what changed, in one line, e.g. ``reply code changed: 250 -> 550``.
        baseline: what the baseline saw of what changed, e.g. the replies with their counts,
            the text lines gone, the capability removed (``not advertised`` for one added).
        now: what this run saw of it.
        in_message: the message already quotes ``baseline`` and ``now`` (a one-line text
            change, a capability without parameters): the text report and JUnit do not
            repeat them; the JSON has them all the same.
    """

    step: str
    kind: str
    severity: str
    message: str
    baseline: str
    now: str
    in_message: bool = False


@dataclass(frozen=True, slots=True)
class NotJudged:
    """A latency percentile that was not compared at a step: too few samples back it.

    Attributes:
        step: the step's name.
        percentile: ``"p50"``, ``"p99"`` or ``"p99.9"``.
        samples_needed: on each side, see :data:`SAMPLES_NEEDED`.
        baseline_samples: the latencies the baseline recorded at the step.
        current_samples: the latencies this run recorded at the step.
    """

    step: str
    percentile: str
    samples_needed: int
    baseline_samples: int
    current_samples: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """The result of comparing a run with its baseline.

    Attributes:
        steps: every step name of either side: the scenario's order, with steps only the
            baseline has placed after their baseline predecessor.
        differences: in step order.
        not_run: steps the run did not reach as the baseline did because an earlier step
            changed; not differences of their own, but not "ok" either.
        min_latency_delta_ms: the absolute floor latencies were judged with.
        not_judged: the percentiles that too few samples back, per step, in step order
            (only with ``max_latency_regression_pct``, and when :attr:`latency_judged`).
        baseline_clock: what ended the baseline's latencies, ``"kernel"`` or ``"loop"``.
        current_clock: what ended this run's.
    """

    scenario: str
    baseline_target: str
    current_target: str
    baseline_sessions: int
    current_sessions: int
    steps: tuple[str, ...]
    differences: tuple[Difference, ...]
    strict: bool
    max_latency_regression_pct: float | None
    not_run: tuple[str, ...] = ()
    min_latency_delta_ms: float = DEFAULT_MIN_LATENCY_DELTA_MS
    not_judged: tuple[NotJudged, ...] = ()
    baseline_clock: str = LOOP_CLOCK
    current_clock: str = LOOP_CLOCK

    @property
    def clock_warning(self) -> str | None:
        """What the reports say when the two runs were timed on different clocks; else None."""
        if self.baseline_clock == self.current_clock:
            return None
        return (
            f"the baseline's latencies were timed on {_clock_name(self.baseline_clock)} clock,"
            f" this run's on {_clock_name(self.current_clock)}: latency differences may be only"
            " the clock; record the baseline again"
        )

    @property
    def latency_judged(self) -> bool:
        """Whether latencies were compared: asked for, and both runs on the same clock."""
        return (
            self.max_latency_regression_pct is not None
            and self.baseline_clock == self.current_clock
        )

    @property
    def latency_note(self) -> str | None:
        """Why latencies were asked for but not compared at all (the runs' clocks); else None."""
        if self.max_latency_regression_pct is None or self.latency_judged:
            return None
        return (
            f"latency not judged at any step: the baseline was timed on"
            f" {_clock_name(self.baseline_clock)} clock, this run on"
            f" {_clock_name(self.current_clock)}"
        )

    @property
    def regressions(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.severity == REGRESSION)

    @property
    def warnings(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.severity == WARNING)

    @property
    def exit_status(self) -> int:
        """0 when nothing regressed, 1 otherwise."""
        return 1 if self.regressions else 0

    def steps_by_status(self) -> dict[str, int]:
        """How many steps have each status (see :meth:`status_of`), every status listed."""
        counts = dict.fromkeys((REGRESSION, WARNING, NOT_RUN, "ok"), 0)
        for step in self.steps:
            counts[self.status_of(step)] += 1
        return counts

    def differences_at(self, step: str) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.step == step)

    def not_judged_at(self, step: str) -> tuple[NotJudged, ...]:
        return tuple(n for n in self.not_judged if n.step == step)

    def status_of(self, step: str) -> str:
        """``"ok"``, ``"warning"``, ``"regression"`` (the worst difference at ``step``), or
        ``"not run"`` when an earlier change kept the sessions from running it as before."""
        severities = {d.severity for d in self.differences_at(step)}
        if REGRESSION in severities:
            return REGRESSION
        if severities:
            return WARNING
        return NOT_RUN if step in self.not_run else "ok"


def compare(
    baseline: Behaviour,
    current: Behaviour,
    *,
    strict: bool,
    max_latency_regression_pct: float | None,
    min_latency_delta_ms: float = DEFAULT_MIN_LATENCY_DELTA_MS,
) -> Comparison:
    """Compare a run with its baseline by the rules in the module docstring.

    Args:
        baseline: what the baseline file recorded.
        current: what this run observed.
        strict: count text and added or changed capabilities as regressions, not warnings.
        max_latency_regression_pct: report a step whose p50, p99 or p99.9 grew by more than
            this percentage (and by more than ``min_latency_delta_ms``); None compares no
            latencies.
        min_latency_delta_ms: the absolute floor: a percentile that grew by this many ms or
            less is never a regression, whatever the percentage. 0 turns it off.
    """
    steps = _merged_step_names([s.name for s in baseline.steps], [s.name for s in current.steps])
    # Across clocks a latency difference is mostly the clock's (module docstring): not judged.
    same_clock = baseline.clock == current.clock
    differences: list[Difference] = []
    soft = REGRESSION if strict else WARNING
    dialogue_changed = False  # an earlier step's events or codes changed
    not_run: list[str] = []
    not_judged: list[NotJudged] = []
    for name in steps:
        old, new = baseline.step(name), current.step(name)
        if old is None or new is None:
            kind = "step_added" if old is None else "step_missing"
            where = "the baseline" if old is None else "the scenario now"
            message = f"step {shown(name)} is not in {where}; record the baseline again"
            was = "not in the baseline" if old is None else _outcomes(old)
            now = "not in the scenario" if new is None else _outcomes(new)
            differences.append(Difference(name, kind, REGRESSION, message, was, now))
            continue
        found = list(_step_differences(old, new, soft, dialogue_changed))
        reached_differently = bool(old.sessions) != bool(new.sessions) or (
            set(new.events) - set(old.events)
        )
        if dialogue_changed and not found and reached_differently:
            not_run.append(name)
        if any(d.kind in ("event", "code") for d in found):
            dialogue_changed = True
        differences.extend(found)
        if max_latency_regression_pct is not None and same_clock:
            latency = _latency_differences(
                old, new, max_latency_regression_pct, min_latency_delta_ms, not_judged
            )
            differences.extend(latency)
    return Comparison(
        scenario=current.scenario,
        baseline_target=baseline.target,
        current_target=current.target,
        baseline_sessions=baseline.sessions,
        current_sessions=current.sessions,
        steps=tuple(steps),
        differences=tuple(differences),
        strict=strict,
        max_latency_regression_pct=max_latency_regression_pct,
        not_run=tuple(not_run),
        min_latency_delta_ms=min_latency_delta_ms,
        not_judged=tuple(not_judged),
        baseline_clock=baseline.clock,
        current_clock=current.clock,
    )


def _clock_name(clock: str) -> str:
    return _CLOCK_NAMES.get(clock, repr(clock))


def _merged_step_names(baseline: Sequence[str], current: Sequence[str]) -> list[str]:
    merged = list(current)
    for index, name in enumerate(baseline):
        if name not in merged:
            before = next((n for n in reversed(baseline[:index]) if n in merged), None)
            merged.insert(0 if before is None else merged.index(before) + 1, name)
    return merged


def _step_differences(
    old: StepBehaviour, new: StepBehaviour, soft: str, dialogue_changed: bool
) -> Iterator[Difference]:
    name = old.name
    if old.sessions and not new.sessions:
        if not dialogue_changed:
            message = "no session reached this step"
            yield Difference(name, "event", REGRESSION, message, _outcomes(old), _outcomes(new))
        return
    if new.sessions and not old.sessions:
        if not dialogue_changed:
            message = "sessions now reach this step"
            yield Difference(name, "event", REGRESSION, message, _outcomes(old), _outcomes(new))
        return
    if set(old.events) != set(new.events):
        consequence = set(new.events) - set(old.events) <= {"skipped"} and dialogue_changed
        if not consequence:
            message = f"events changed: {_keys(old.events)} -> {_keys(new.events)}"
            yield Difference(name, "event", REGRESSION, message, _outcomes(old), _outcomes(new))
        return
    if set(old.codes) != set(new.codes):
        message = f"reply code changed: {_keys(old.codes)} -> {_keys(new.codes)}"
        yield Difference(name, "code", REGRESSION, message, _replies(old), _replies(new))
        return
    enhanced = _enhanced_difference(old, new, soft)
    if enhanced is not None:
        yield enhanced
    elif set(old.text) != set(new.text):
        gone = sorted(set(old.text) - set(new.text))
        came = sorted(set(new.text) - set(old.text))
        if len(gone) == 1 and len(came) == 1:
            message = f"reply text changed: {gone[0]!r} -> {came[0]!r}"
            yield Difference(name, "text", soft, message, gone[0], came[0], in_message=True)
        else:
            message = f"reply text changed: {counted(len(gone), 'line')} gone, {len(came)} new"
            yield Difference(name, "text", soft, message, _lines(gone), _lines(came))
    if old.capabilities is not None and new.capabilities is not None:
        yield from _capability_differences(name, old.capabilities, new.capabilities, soft)


#: Stands for "a reply without an enhanced status code" among the enhanced codes a step saw.
_NO_CODE = "none"


def _enhanced_difference(old: StepBehaviour, new: StepBehaviour, soft: str) -> Difference | None:
    """The enhanced codes' difference, judged per reply class (RFC 2034 §4: the code's class
    is the reply's first digit, so a 2.x.x code can only have come to a 2yz reply).

    A code that came where the class had replies without one is ``enhanced_added`` (a server
    that started to send RFC 2034 codes); a code that went, replies that lost theirs, or a code
    that came where every reply already had one is ``enhanced``, a regression.
    """
    was, now = _enhanced_by_class(old), _enhanced_by_class(new)
    if was == now:
        return None
    added = all(_only_added(was.get(c, set()), now.get(c, set())) for c in was.keys() | now.keys())
    change = f"{_enhanced_list(was)} -> {_enhanced_list(now)}"
    if added:
        message = f"enhanced status code added: {change}"
        return Difference(old.name, "enhanced_added", soft, message, _replies(old), _replies(new))
    message = f"enhanced status code changed: {change}"
    return Difference(old.name, "enhanced", REGRESSION, message, _replies(old), _replies(new))


def _enhanced_by_class(step: StepBehaviour) -> dict[str, set[str]]:
    """Per reply class ("2", "4", "5"), the enhanced codes seen, and :data:`_NO_CODE` when some
    replies of the class had none (a reply has at most one: counts tell which are missing)."""
    replies: dict[str, int] = {}
    for code, attempts in step.codes.items():
        replies[code[:1]] = replies.get(code[:1], 0) + attempts
    seen: dict[str, set[str]] = {}
    coded: dict[str, int] = {}
    for enhanced, attempts in step.enhanced.items():
        seen.setdefault(enhanced[:1], set()).add(enhanced)
        coded[enhanced[:1]] = coded.get(enhanced[:1], 0) + attempts
    for reply_class, attempts in replies.items():
        if attempts > coded.get(reply_class, 0) and reply_class in ("2", "4", "5"):
            seen.setdefault(reply_class, set()).add(_NO_CODE)
    return seen


def _only_added(was: set[str], now: set[str]) -> bool:
    """Whether one class's codes changed only by codes that came to replies that had none."""
    if (was - {_NO_CODE}) - now:  # a code went: changed, or replaced by none
        return False
    came = now - was
    # Sets, not counts, as everywhere: a code that came while replies without one were seen
    # is taken as given to those replies, the simplest reading.
    return not came or _NO_CODE in was


def _enhanced_list(by_class: Mapping[str, set[str]]) -> str:
    codes = sorted(set().union(*by_class.values()) - {_NO_CODE}) if by_class else []
    if any(_NO_CODE in seen for seen in by_class.values()) or not codes:
        codes.append(_NO_CODE)
    return ", ".join(codes)


def _capability_differences(
    name: str,
    old: Mapping[str, tuple[str, ...]],
    new: Mapping[str, tuple[str, ...]],
    soft: str,
) -> Iterator[Difference]:
    removed = [k for k in old if k not in new]
    added = [k for k in new if k not in old]
    changed = [k for k in old if k in new and old[k] != new[k]]
    if removed:
        message = f"capability removed: {', '.join(removed)}"
        was, bare = _caps(old, removed), not any(old[k] for k in removed)
        yield Difference(
            name, "capability_removed", REGRESSION, message, was, _ABSENT, in_message=bare
        )
    if added:
        message = f"capability added: {', '.join(added)}"
        now, bare = _caps(new, added), not any(new[k] for k in added)
        yield Difference(name, "capability_added", soft, message, _ABSENT, now, in_message=bare)
    if changed:
        message = f"capability parameters changed: {', '.join(changed)}"
        yield Difference(
            name, "capability_changed", soft, message, _caps(old, changed), _caps(new, changed)
        )


def _latency_differences(
    old: StepBehaviour,
    new: StepBehaviour,
    limit_pct: float,
    floor_ms: float,
    not_judged: list[NotJudged],
) -> Iterator[Difference]:
    """The percentiles that grew beyond both limits; the ones too few samples back go to
    ``not_judged`` instead (a step without samples on a side has no latency to judge)."""
    if not old.latency.count or not new.latency.count:
        return
    for key, needed in SAMPLES_NEEDED.items():
        if min(old.latency.count, new.latency.count) < needed:
            not_judged.append(
                NotJudged(old.name, key, needed, old.latency.count, new.latency.count)
            )
            continue
        was, now = _percentile_ms(old, key), _percentile_ms(new, key)
        if was is None or now is None or was <= 0:
            continue
        if now > was * (1 + limit_pct / 100) and now - was > floor_ms:
            growth = (now / was - 1) * 100
            message = (
                f"{key} latency grew {growth:.0f}% ({was:.3f} ms -> {now:.3f} ms, "
                f"+{now - was:.3f} ms), more than the {limit_pct:g}% and {floor_ms:g} ms allowed"
            )
            yield Difference(
                old.name,
                f"latency_{key.replace('.', '_')}",
                REGRESSION,
                message,
                f"{was:.3f} ms",
                f"{now:.3f} ms",
                in_message=True,
            )


def _percentile_ms(step: StepBehaviour, key: str) -> float | None:
    latency = step.latency
    return {"p50": latency.p50_ms, "p99": latency.p99_ms, "p99.9": latency.p99_9_ms}[key]


# -- describing what a step saw -----------------------------------------------------------------


def _keys(counts: Mapping[str, int]) -> str:
    return ", ".join(counts) if counts else "none"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key} x{n}" for key, n in counts.items())


def _shares(counts: Mapping[str, int], step: StepBehaviour) -> str:
    """The counts, each with its share of the step's attempts when sessions ran the step more
    than once (``250 x27 (90%), 451 x3 (10%)``): then the share is what compare judges."""
    if step.replies == step.sessions or not step.replies:
        return _counts(counts)
    return ", ".join(f"{key} x{n} ({n / step.replies:.0%})" for key, n in counts.items())


def _reached(step: StepBehaviour) -> str:
    """``10 sessions``, and the attempts when they are more: ``10 sessions, 30 replies``."""
    sessions = counted(step.sessions, "session")
    if step.replies == step.sessions:
        return sessions
    return f"{sessions}, {counted(step.replies, 'reply', 'replies')}"


def _outcomes(step: StepBehaviour) -> str:
    parts = [part for part in (_shares(step.codes, step), _shares(step.events, step)) if part]
    return (f"{_reached(step)}: " + "; ".join(parts)) if parts else "no session"


def _replies(step: StepBehaviour) -> str:
    """``10 sessions: 250 x10; e.g. 250 2.1.5 Ok``: counts, then replies as received (with
    ``, 30 replies`` and each code's share when sessions ran the step more than once)."""
    examples = " | ".join(step.examples)
    counts = f"{_reached(step)}: {_shares(step.codes, step)}"
    return f"{counts}; e.g. {examples}" if examples else counts


def _lines(lines: Sequence[str]) -> str:
    if not lines:
        return "(no line of its own)"
    shown = " | ".join(lines[:_MAX_LINES_SHOWN])
    more = len(lines) - _MAX_LINES_SHOWN
    return shown + (f" (+{more} more)" if more > 0 else "")


#: What a capability difference shows for the side that does not advertise the keyword.
_ABSENT = "not advertised"


def _caps(capabilities: Mapping[str, tuple[str, ...]], keywords: Sequence[str]) -> str:
    """The keywords with their parameters: ``SIZE 10240000, DSN``."""
    return ", ".join(" ".join((k, *capabilities[k])) for k in keywords)


# -- reports ------------------------------------------------------------------------------------


def format_comparison(comparison: Comparison) -> str:
    """The text report: every step, ``ok`` or its differences, then one summary line."""
    lines = [
        f"compare {comparison.scenario}: baseline {comparison.baseline_target} "
        f"({counted(comparison.baseline_sessions, 'session')}) vs now"
        f" {comparison.current_target} ({counted(comparison.current_sessions, 'session')})"
    ]
    if comparison.clock_warning is not None:
        lines.append(f"warning: {comparison.clock_warning}")
    # A step name is shown cut: the report stays a table whatever the scenario calls its steps.
    width = max((len(step_name_shown(name)) for name in comparison.steps), default=4)
    for name in comparison.steps:
        differences = comparison.differences_at(name)
        shown_name = step_name_shown(name)
        if not differences:
            status = comparison.status_of(name)
            if status == NOT_RUN:
                status = "not run as in the baseline (an earlier step changed)"
            lines.append(f"{shown_name:<{width}}  {status}")
        for difference in differences:
            severity = "REGRESSION" if difference.severity == REGRESSION else "warning"
            lines.append(f"{shown_name:<{width}}  {severity:<10}  {difference.message}")
            if not difference.in_message:
                indent = " " * (width + 14)
                lines.append(f"{indent}baseline: {difference.baseline}")
                lines.append(f"{indent}now:      {difference.now}")
    lines.extend(_not_judged_notes(comparison.not_judged))
    if comparison.latency_note is not None:
        lines.append(f"note: {comparison.latency_note}")
    lines.append(_summary_line(comparison))
    return "\n".join(lines) + "\n"


def _not_judged_notes(not_judged: Sequence[NotJudged]) -> list[str]:
    """One line per percentile that some steps could not judge, with the samples they had."""
    notes = []
    for key, needed in SAMPLES_NEEDED.items():
        found = [n for n in not_judged if n.percentile == key]
        if not found:
            continue
        where = found[0].step if len(found) == 1 else counted(len(found), "step")
        baseline = _span([n.baseline_samples for n in found])
        now = _span([n.current_samples for n in found])
        notes.append(
            f"note: {key} latency not judged at {where}: it needs {needed} samples in both runs "
            f"(baseline: {baseline}, now: {now})"
        )
    return notes


def _span(counts: Sequence[int]) -> str:
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low}-{high}"


def _summary_line(comparison: Comparison) -> str:
    """Steps counted by status, as JUnit counts its test cases (failures, skipped)."""
    counts = comparison.steps_by_status()
    if counts["ok"] == len(comparison.steps):
        return f"no differences in {counted(len(comparison.steps), 'step')}"
    return (
        f"{counted(len(comparison.steps), 'step')}: {counts[REGRESSION]} regressed, "
        f"{counts[WARNING]} with warnings, {counts[NOT_RUN]} not run, {counts['ok']} ok"
    )


def comparison_summary(comparison: Comparison) -> dict[str, Any]:
    """The comparison as a JSON-able object (``compare``'s JSON summary).

    ``baseline.clock`` and ``current.clock`` say what ended each side's latencies;
    ``clock_warning`` is the text report's warning when they differ (else null), and
    ``latency_judged`` whether latencies were compared at all (asked for with
    ``--max-latency-regression``, and both sides on one clock). ``warnings`` counts the steps'
    differences only, as ``steps_by_status`` does: the clock's warning is not one of them.
    """
    return {
        "scenario": comparison.scenario,
        "baseline": {
            "target": comparison.baseline_target,
            "sessions": comparison.baseline_sessions,
            "clock": comparison.baseline_clock,
        },
        "current": {
            "target": comparison.current_target,
            "sessions": comparison.current_sessions,
            "clock": comparison.current_clock,
        },
        "clock_warning": comparison.clock_warning,
        "strict": comparison.strict,
        "max_latency_regression_pct": comparison.max_latency_regression_pct,
        "min_latency_delta_ms": comparison.min_latency_delta_ms,
        "latency_judged": comparison.latency_judged,
        "regressions": len(comparison.regressions),
        "warnings": len(comparison.warnings),
        "steps_by_status": comparison.steps_by_status(),
        "exit_status": comparison.exit_status,
        "steps": [
            {
                "name": name,
                "status": comparison.status_of(name),
                "differences": [
                    {
                        "kind": d.kind,
                        "severity": d.severity,
                        "message": d.message,
                        "baseline": d.baseline,
                        "now": d.now,
                    }
                    for d in comparison.differences_at(name)
                ],
                "latency_not_judged": [
                    {
                        "percentile": n.percentile,
                        "samples_needed": n.samples_needed,
                        "baseline_samples": n.baseline_samples,
                        "now_samples": n.current_samples,
                    }
                    for n in comparison.not_judged_at(name)
                ],
            }
            for name in comparison.steps
        ],
    }
