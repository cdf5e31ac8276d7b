"""What a run observed, step by step: the behaviour that ``record`` stores and ``compare`` reads.

This module owns the *baseline*: building a :class:`Behaviour` from observe-mode sessions
(:class:`BehaviourRecorder`), and its JSON file. It does no network I/O and never imports trio;
the only I/O is reading and writing the baseline file (:func:`load_baseline`,
:func:`save_baseline`, which writes through ``report/files.py``). Judging two behaviours is
``compare.py``'s job.

The baseline file (``smtpload-baseline/2``)
-------------------------------------------
A baseline is meant to be committed next to the scenario, so its format is a public contract.
It is UTF-8 JSON, written with sorted keys and two-space indentation so that a changed behaviour
shows as a readable diff::

    {
      "format": "smtpload-baseline/2",      # required; /1 is read too (below), others refused
      "scenario": "upgrade",                # the scenario's name
      "target": "127.0.0.1:10025",          # the server it was recorded against
      "sessions": 10,                       # sessions run
      "clock": "kernel",                    # optional: what ended its latencies (below)
      "smtpload_version": "0.1.0",
      "steps": [                            # every scenario step, in scenario order
        {
          "name": "rcpt",                   # the step's name, as in reports
          "sessions": 10,                   # sessions that reached the step (at least once)
          "replies": 30,                    # attempts: every reply or event the step got,
                                            #   over all its runs in all sessions
          "codes": {"250": 30},             # attempts per reply code
          "enhanced": {"2.1.5": 30},        # attempts per enhanced status code (RFC 3463)
          "events": {},                     # attempts per other event: closed, timeout,
                                            #   connection_error, protocol_error, skipped,
                                            #   connect_error (first step only), tls (a
                                            #   tls step's handshake completed), tls_error
          "unexpected": 0,                  # attempts whose reply missed the step's expect
          "text": ["2.1.5 Ok"],             # the distinct reply lines, volatile parts
                                            #   normalized (volatile.normalize), sorted
          "examples": ["250 2.1.5 Ok"],     # a few first lines exactly as received
          "capabilities": null,             # EHLO steps: {"SIZE": ["10240000"], ...}
          "latency": {"count": 30, "p50_ms": 0.05, "p99_ms": 0.08,
                      "histogram": "HISTF..."}   # HdrHistogram V2 blob, µs, every timed
                                                 #   reply; null if count 0
        }
      ]
    }

A step runs more than once in a session when a ``repeat:`` block holds it, when it is an
``rcpt`` step (once per recipient), or when it is a bdat step's part row ``NAME/chunk`` (once
per chunk before the last). So the counts are of attempts, and
``sessions`` says how many sessions they came from: 10 sessions that each ran a repeated
``rcpt`` three times give ``"sessions": 10, "replies": 30``. Where each step runs once per
session, as in every scenario before ``repeat:``, ``replies`` equals ``sessions``.

Reading a file checks more than its shape, and refuses what no recording can produce: keys of
``codes`` that are not three digits, of ``enhanced`` that are not ``class.subject.detail``
(RFC 3463), of ``events`` that are not one of those above; a missing or mistyped field; a
step's ``sessions`` above the file's or above its ``replies`` (a session that reached a step
got at least one reply or event there); ``codes`` and ``events`` that do not add up to
``replies`` (each attempt is one of them); ``enhanced`` above the replies with a code;
``unexpected`` above ``replies``; a latency ``count`` above ``replies``, or for a step with
part rows (an LMTP message, whose recipients' replies are its ``NAME/RCPTSTEP`` rows and which
is timed to the last of them) above its and theirs; two steps of one name; a latency
``count`` that is not its histogram's; NaN or Infinity (not JSON); a key given twice in one
object; and nesting deeper than any baseline has.

Format ``smtpload-baseline/1`` (written before repeated steps) is still read, with its own
checks, so that a run compares against an old baseline without recording it again. A /1 step
row has no ``replies``: its ``sessions`` counted one per observation, which, with each step run
once per session, is both its sessions and its attempts; it reads as ``replies`` = ``sessions``.
A /1 part row (a name with ``/``: a bdat step's ``NAME/chunk``) counted each chunk's reply
there, so its ``sessions`` reads as its ``replies``, and its sessions as that many, at most the
file's. Any other ``format`` is refused, naming the formats this version reads.

``clock`` is the run's clock (``RunStats.clock``, summary.json's top-level ``clock``):
``"kernel"`` when its reply-timed steps ended on the kernel's receive times, ``"loop"`` when
they ended when smtpload's event loop saw the reply (``--clock loop``, or a platform without
receive times). It is optional, so that the files written before it still load: a file without
it was loop-timed, as every baseline before the kernel clock was, and reads as ``"loop"``; any
other value is refused. It is kept once for the run, not per step: within a run every step's
clock follows from the run's and the step's kind (reply-timed steps take the run's, ``close``
is always the loop's), so a field per step would only repeat it. ``compare`` warns when it
differs from the run's, and then judges no latency (compare.py).

For an EHLO (or LHLO) step that got a 2xx reply, ``text`` holds only the reply's first line
(the server's greeting); the keyword lines are in ``capabilities`` (RFC 5321 §4.1.1.1), so a
removed extension is one capability difference, not also a text difference. ``p50_ms`` and
``p99_ms`` are there for people reading the file: the histogram is what counts, and reading a
file recomputes them from it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smtpload._version import __version__
from smtpload.errors import LocalError, counted, shown
from smtpload.protocol.compiler import CompiledScenario, CompiledStep
from smtpload.protocol.engine import Observation, SessionEngine
from smtpload.protocol.expectations import ehlo_capabilities, enhanced_code
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.volatile import normalize
from smtpload.protocol.wire import Reply
from smtpload.report.files import write_text
from smtpload.report.stats import CLOCKS, LOOP_CLOCK, LatencyHistogram, RunStats
from smtpload.scenario.model import StepKind

__all__ = [
    "BASELINE_FORMAT",
    "READ_FORMATS",
    "BaselineError",
    "Behaviour",
    "BehaviourRecorder",
    "StepBehaviour",
    "StepLatency",
    "load_baseline",
    "save_baseline",
]

BASELINE_FORMAT = "smtpload-baseline/2"

#: The format written before repeated steps: still read (see the module docstring).
_FORMAT_1 = "smtpload-baseline/1"

#: Every format :func:`load_baseline` reads, oldest first.
READ_FORMATS = (_FORMAT_1, BASELINE_FORMAT)

#: Raw first lines kept per step: enough to show what a reply looked like, not a transcript.
MAX_EXAMPLES = 5

_RECORD_HINT = "record a new one with: smtpload record SCENARIO --target HOST:PORT -o FILE"

# What the keys of a step's counts can be. A reply code is any three digits (wire.py reads
# those); an enhanced code is RFC 3463's class.subject.detail (expectations.enhanced_code); the
# events are the engine's non-reply Observation events, and connect_error (first step only).
_REPLY_CODE = re.compile(r"[0-9]{3}")
_ENHANCED_CODE = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")
_EVENTS = frozenset(
    {
        "closed",
        "timeout",
        "connection_error",
        "protocol_error",
        "skipped",
        "connect_error",
        # TLS (a tls step): an addition to format /1 that older /1 files simply never hold.
        "tls",
        "tls_error",
    }
)


#: The clock of a baseline that does not say: every one written before the field was loop-timed.
_UNSAID_CLOCK = LOOP_CLOCK

#: The longest latency a baseline can hold: the histograms' range, 1 hour (report/stats.py).
_MAX_LATENCY_MS = 3_600_000


class _Refused(ValueError):
    """Valid JSON, but nothing a baseline file holds (see :func:`_strict_json`)."""


def _no_constants(name: str) -> object:
    raise _Refused(f"{name} is not a number JSON allows (no NaN or Infinity)")


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        repeated = next(key for i, (key, _) in enumerate(pairs) if key in dict(pairs[:i]))
        raise _Refused(f"the key {shown(repeated)} is given twice in one object")
    return data


class BaselineError(LocalError):
    """A baseline file is missing, unreadable, or not a baseline of a format this version
    reads (:data:`READ_FORMATS`)."""


@dataclass(frozen=True, slots=True)
class StepLatency:
    """A step's latencies: the histogram (encoded) and the percentiles compare judges.

    ``p99_9_ms`` is not written to the file (the histogram holds it); reading recomputes it.
    """

    count: int
    p50_ms: float | None
    p99_ms: float | None
    histogram: str | None  # LatencyHistogram.encode(); None when count is 0
    p99_9_ms: float | None = None

    @classmethod
    def of(cls, histogram: LatencyHistogram) -> StepLatency:
        summary = histogram.summary_ms()
        if summary is None:
            return cls(0, None, None, None)
        return cls(
            histogram.count,
            summary["p50"],
            summary["p99"],
            histogram.encode(),
            summary["p99_9"],
        )


@dataclass(frozen=True, slots=True)
class StepBehaviour:
    """What the sessions of a run saw at one step (see the module docstring for each field).

    ``sessions`` counts the sessions that reached the step; ``replies`` and every count after
    it count attempts, one per reply or event, however often a session ran the step.
    """

    name: str
    sessions: int
    replies: int
    codes: Mapping[str, int]
    enhanced: Mapping[str, int]
    events: Mapping[str, int]
    unexpected: int
    text: tuple[str, ...]
    examples: tuple[str, ...]
    capabilities: Mapping[str, tuple[str, ...]] | None
    latency: StepLatency


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What one run observed, per scenario step in scenario order.

    ``clock`` is what ended the run's reply latencies, ``"kernel"`` or ``"loop"``
    (``RunStats.clock``; see the module docstring).
    """

    scenario: str
    target: str
    sessions: int
    steps: tuple[StepBehaviour, ...]
    clock: str

    def step(self, name: str) -> StepBehaviour | None:
        return next((step for step in self.steps if step.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The behaviour as the JSON object of a baseline file."""
        return {
            "format": BASELINE_FORMAT,
            "scenario": self.scenario,
            "target": self.target,
            "sessions": self.sessions,
            "clock": self.clock,
            "smtpload_version": __version__,
            "steps": [_step_to_json(step) for step in self.steps],
        }

    @classmethod
    def from_json(cls, data: object, path: str) -> Behaviour:
        """Read a baseline file's JSON object.

        Args:
            data: the parsed JSON.
            path: the file it came from, for error messages.

        Raises:
            BaselineError: ``data`` is not a valid baseline object of a format in
                :data:`READ_FORMATS`; the message names the file and the field.
        """
        reader = _Reader(path)
        top = reader.mapping(data, "the file")
        file_format = top.get("format")
        if file_format not in READ_FORMATS:
            formats = " and ".join(repr(known) for known in READ_FORMATS)
            if isinstance(file_format, str) and file_format.startswith("smtpload-baseline/"):
                raise BaselineError(
                    f"{path}: baseline format {shown(file_format)} is not one this smtpload "
                    f"reads ({formats}; written by another smtpload version); {_RECORD_HINT}"
                )
            raise BaselineError(
                f'{path}: not an smtpload baseline (no "format": {BASELINE_FORMAT!r}); '
                f"{_RECORD_HINT}"
            )
        items = reader.array(top.get("steps"), "steps")
        sessions = reader.count(top.get("sessions"), "sessions")
        read_step = reader.step_v1 if file_format == _FORMAT_1 else reader.step
        steps: list[StepBehaviour] = []
        for i, item in enumerate(items):
            step = read_step(item, f"steps[{i}]", sessions)
            first = next((j for j, other in enumerate(steps) if other.name == step.name), None)
            if first is not None:
                raise reader.fail(
                    f"steps[{i}].name", f"{shown(step.name)} is also the name of steps[{first}]"
                )
            steps.append(step)
        if file_format != _FORMAT_1:
            reader.timed_attempts_checked(steps)
        return cls(
            scenario=reader.string(top.get("scenario"), "scenario"),
            target=reader.string(top.get("target"), "target"),
            sessions=sessions,
            steps=tuple(steps),
            # Optional in /1 (older files were loop-timed); /2 files always say it.
            clock=reader.clock(
                top.get("clock", _UNSAID_CLOCK)
                if file_format == _FORMAT_1
                else reader.required(top, "clock", ""),
                "clock",
            ),
        )


def load_baseline(path: str | os.PathLike[str]) -> Behaviour:
    """Read a baseline file. Raises BaselineError (with the path) for any problem."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as stream:
            data = json.load(
                stream, parse_constant=_no_constants, object_pairs_hook=_no_repeated_keys
            )
    except FileNotFoundError:
        raise BaselineError(f"{name}: no such baseline file; {_RECORD_HINT}") from None
    except OSError as exc:
        raise BaselineError(f"{name}: cannot read the baseline: {exc.strerror or exc}") from None
    except RecursionError:
        # json recurses once per level; a baseline is 5 levels deep.
        raise BaselineError(f"{name}: not a baseline (nested too deeply); {_RECORD_HINT}") from None
    except _Refused as exc:
        raise BaselineError(f"{name}: not a baseline ({exc}); {_RECORD_HINT}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BaselineError(f"{name}: not valid JSON ({exc}); {_RECORD_HINT}") from None
    return Behaviour.from_json(data, name)


def save_baseline(behaviour: Behaviour, path: str | os.PathLike[str]) -> None:
    """Write ``behaviour`` as a baseline file (replaced whole: a reader never sees half a file,
    and a failed or interrupted write leaves the old baseline as it was).

    Raises:
        OutputError: the file could not be written (the message names it).
    """
    text = json.dumps(behaviour.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_text(Path(path), text)


# -- recording ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _StepTally:
    sessions: int = 0
    replies: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    enhanced: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    unexpected: int = 0
    text: set[str] = field(default_factory=set)
    examples: dict[tuple[int, str], str] = field(default_factory=dict)
    capabilities: dict[str, tuple[str, ...]] | None = None


def _sends_hello(step: CompiledStep) -> bool:
    """Whether the step sends EHLO or LHLO (RFC 2033), whose reply lists capabilities."""
    if step.kind is not StepKind.SEND:
        return False
    if isinstance(step.payload, bytes):
        head = step.payload[:5].decode("ascii", "replace")
    elif step.template is not None:
        head = step.template.parts[0][:5]
    else:
        return False
    return head.upper().rstrip() in ("EHLO", "LHLO")


class BehaviourRecorder:
    """Collects the observations of finished observe-mode sessions into a :class:`Behaviour`.

    Args:
        scenario: the compiled scenario the sessions ran; fixes the steps and their order.
    """

    __slots__ = ("_hello_steps", "_reached", "_scenario", "_tallies")

    def __init__(self, scenario: CompiledScenario) -> None:
        self._scenario = scenario
        # Every step's name, LMTP's per-recipient parts (``message/rcpt``) and a bdat
        # step's ``message/chunk`` included: each is a step row of the baseline.
        self._tallies = {name: _StepTally() for name in scenario.step_names}
        self._hello_steps = frozenset(s.name for s in scenario.steps if _sends_hello(s))
        # Per session under way: the steps it reached (each counts a session once).
        self._reached: dict[int, set[str]] = {}

    def add_session(self, engine: SessionEngine) -> None:
        """Add one finished session (its engine must have run with ``observe=True``): the
        observations it kept, and the end of those ``observe`` was given as they came."""
        for observation in engine.observations:
            self.observe(engine.session, observation)
        reached = self._reached.pop(engine.session, None)
        if engine.outcome is Outcome.CONNECT_ERROR and not reached and self._scenario.steps:
            # Counted at the first step, so that later steps that no session reached read as
            # consequences of this one difference.
            first = self._tallies[self._scenario.steps[0].name]
            first.sessions += 1
            first.replies += 1
            _bump(first.events, "connect_error")

    def observe(self, session: int, observation: Observation) -> None:
        """One observation of session number ``session``, as it was made (the session's
        end follows with ``add_session``)."""
        reached = self._reached.setdefault(session, set())
        name = observation.step.name
        tally = self._tallies.get(name)
        if tally is None:
            return
        # A step a session runs several times (a repeat block, an rcpt step's recipients, a
        # bdat step's chunks) is one session and one attempt per run.
        if name not in reached:
            reached.add(name)
            tally.sessions += 1
        tally.replies += 1
        if observation.mismatch is not None:
            tally.unexpected += 1
        reply = observation.reply
        if observation.event != "reply" or reply is None:
            _bump(tally.events, observation.event)
            return
        self._add_reply(tally, name in self._hello_steps, reply)

    def _add_reply(self, tally: _StepTally, hello: bool, reply: Reply) -> None:
        _bump(tally.codes, str(reply.code))
        enhanced = enhanced_code(reply)
        if enhanced is not None:
            _bump(tally.enhanced, enhanced)
        lines = reply.lines
        if hello and 200 <= reply.code < 300:
            lines = lines[:1]
            capabilities = tally.capabilities if tally.capabilities is not None else {}
            for keyword, params in ehlo_capabilities(reply).items():
                known = capabilities.get(keyword, ())
                capabilities[keyword] = known + tuple(p for p in params if p not in known)
            tally.capabilities = capabilities
        normalized = [normalize(line) for line in lines]
        tally.text.update(normalized)
        key = (reply.code, normalized[0] if normalized else "")
        if key not in tally.examples and len(tally.examples) < MAX_EXAMPLES:
            tally.examples[key] = f"{reply.code} {lines[0] if lines else ''}".rstrip()

    def behaviour(self, stats: RunStats, *, scenario: str, target: str, sessions: int) -> Behaviour:
        """The behaviour of the sessions added so far, with latencies from ``stats``.

        Args:
            stats: the run's stats, with every scenario step (``stats.steps[name].latency`` is
                each step's histogram).
            scenario: the scenario's name.
            target: the server, as ``host:port``.
            sessions: sessions the run started.
        """
        steps = []
        for name, tally in self._tallies.items():
            steps.append(
                StepBehaviour(
                    name=name,
                    sessions=tally.sessions,
                    replies=tally.replies,
                    codes=_sorted(tally.codes),
                    enhanced=_sorted(tally.enhanced),
                    events=_sorted(tally.events),
                    unexpected=tally.unexpected,
                    text=tuple(sorted(tally.text)),
                    examples=tuple(tally.examples.values()),
                    capabilities=_sorted_or_none(tally.capabilities),
                    latency=StepLatency.of(stats.steps[name].latency),
                )
            )
        return Behaviour(
            scenario=scenario,
            target=target,
            sessions=sessions,
            steps=tuple(steps),
            clock=stats.clock,
        )


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _sorted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: mapping[key] for key in sorted(mapping)}


def _sorted_or_none(mapping: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if mapping is None else _sorted(mapping)


# -- JSON ---------------------------------------------------------------------------------------


def _step_to_json(step: StepBehaviour) -> dict[str, Any]:
    latency = step.latency
    return {
        "name": step.name,
        "sessions": step.sessions,
        "replies": step.replies,
        "codes": dict(step.codes),
        "enhanced": dict(step.enhanced),
        "events": dict(step.events),
        "unexpected": step.unexpected,
        "text": list(step.text),
        "examples": list(step.examples),
        "capabilities": (
            None
            if step.capabilities is None
            else {keyword: list(params) for keyword, params in step.capabilities.items()}
        ),
        "latency": {
            "count": latency.count,
            "p50_ms": latency.p50_ms,
            "p99_ms": latency.p99_ms,
            "histogram": latency.histogram,
        },
    }


class _Reader:
    """Type-checks parsed JSON, naming the file and the field in every error."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, what: str) -> BaselineError:
        return BaselineError(f"{self.path}: {where}: {what}; the file is damaged, {_RECORD_HINT}")

    def mapping(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected a JSON object")
        return value

    def array(self, value: object, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, "expected a JSON array")
        return value

    def string(self, value: object, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, "expected a string")
        return value

    def clock(self, value: object, where: str) -> str:
        """One of :data:`CLOCKS` (a missing field is the caller's business)."""
        known = " or ".join(f'"{clock}"' for clock in CLOCKS)
        if not isinstance(value, str):
            raise self.fail(where, f"expected {known}")
        if value not in CLOCKS:
            raise self.fail(where, f"{shown(value)} is not a clock; expected {known}")
        return value

    def count(self, value: object, where: str, most: int | None = None, of: str = "") -> int:
        """A whole number >= 0; with ``most``, at most that (the sessions ``of`` names)."""
        if type(value) is not int or value < 0:
            raise self.fail(where, "expected a whole number >= 0")
        if most is not None and value > most:
            raise self.fail(where, f"{value} is more than the {most} {of}")
        return value

    def counts(
        self, value: object, where: str, key: re.Pattern[str] | frozenset[str], most: int, of: str
    ) -> dict[str, int]:
        """Counts per key, each key matching ``key``; none, nor their sum, above ``most``."""
        mapping = self.mapping(value, where)
        counts = {}
        for name, n in sorted(mapping.items()):
            valid = name in key if isinstance(key, frozenset) else key.fullmatch(name)
            if not valid:
                raise self.fail(f"{where}.{shown(name)}", _KEY_RULES[where.rpartition(".")[2]])
            counts[name] = self.count(n, f"{where}.{name}", most, of)
        if sum(counts.values()) > most:
            raise self.fail(where, f"the counts add up to more than the {most} {of}")
        return counts

    def strings(self, value: object, where: str) -> tuple[str, ...]:
        items = self.array(value, where)
        return tuple(self.string(item, f"{where}[{i}]") for i, item in enumerate(items))

    def required(self, mapping: Mapping[str, Any], key: str, where: str) -> object:
        """``mapping[key]``; a format /2 file writes every field, so a missing one is damage."""
        if key not in mapping:
            raise self.fail(f"{where}.{key}" if where else key, "missing")
        return mapping[key]

    def capabilities(self, value: object, where: str) -> dict[str, tuple[str, ...]] | None:
        if value is None:
            return None
        mapping = self.mapping(value, where)
        return {
            keyword: self.strings(params, f"{where}.{shown(keyword)}")
            for keyword, params in sorted(mapping.items())
        }

    def step(self, value: object, where: str, run_sessions: int) -> StepBehaviour:
        """One step of a format /2 file, whose counts are of attempts (module docstring);
        ``run_sessions`` is the file's ``sessions``, which bounds the step's."""
        step = self.mapping(value, where)

        def field(key: str) -> object:
            return self.required(step, key, where)

        name = self.string(field("name"), f"{where}.name")
        sessions = self.count(field("sessions"), f"{where}.sessions", run_sessions, "sessions")
        replies = self.count(field("replies"), f"{where}.replies")
        if replies < sessions:
            # A session that reached a step got a reply or an event there, at least one.
            raise self.fail(
                f"{where}.replies",
                f"{replies} is fewer than the step's {counted(sessions, 'session')}",
            )
        of = "replies the step got"
        codes = self.counts(field("codes"), f"{where}.codes", _REPLY_CODE, replies, of)
        events = self.counts(field("events"), f"{where}.events", _EVENTS, replies, of)
        answered = sum(codes.values()) + sum(events.values())
        if answered != replies:
            # Each attempt is a reply with a code or one event: nothing else, nothing twice.
            relation = "more" if answered > replies else "fewer"
            raise self.fail(
                where,
                f"its codes and events count {relation} than its "
                f"{counted(replies, 'reply', 'replies')} ({answered})",
            )
        coded = sum(codes.values())
        return StepBehaviour(
            name=name,
            sessions=sessions,
            replies=replies,
            codes=codes,
            enhanced=self.counts(
                field("enhanced"), f"{where}.enhanced", _ENHANCED_CODE, coded, "replies with a code"
            ),
            events=events,
            unexpected=self.count(field("unexpected"), f"{where}.unexpected", replies, of),
            text=self.strings(field("text"), f"{where}.text"),
            examples=self.strings(field("examples"), f"{where}.examples"),
            capabilities=self.capabilities(field("capabilities"), f"{where}.capabilities"),
            # Bounded by the file (timed_attempts_checked): an LMTP message's replies are its
            # recipients' rows, and the message is timed to the last of them.
            latency=self.latency(field("latency"), f"{where}.latency", None, strict=True),
        )

    def timed_attempts_checked(self, steps: Sequence[StepBehaviour]) -> None:
        """A format /2 step's latencies are at most its attempts: one per reply or event it got,
        or, for a step whose replies are its part rows' (an LMTP message: one per recipient,
        ``NAME/RCPTSTEP``, and the message timed to the last), one per reply of those."""
        for i, step in enumerate(steps):
            parts = [p for p in steps if p.name.startswith(f"{step.name}/")]
            most = step.replies + sum(p.replies for p in parts)
            if step.latency.count > most:
                raise self.fail(
                    f"steps[{i}].latency.count",
                    f"{step.latency.count} is more than the "
                    f"{counted(most, 'reply', 'replies')} the step got"
                    + (" with its part rows" if parts else ""),
                )

    def step_v1(self, value: object, where: str, run_sessions: int) -> StepBehaviour:
        """One step of a format /1 file, read as format /2 (the module docstring says how)."""
        step = self.mapping(value, where)
        capabilities = self.capabilities(step.get("capabilities"), f"{where}.capabilities")
        name = self.string(step.get("name"), f"{where}.name")
        # A part row (a bdat step's NAME/chunk) is reached once per chunk: its counts are of
        # replies, which a session can give it several of, so the run's sessions bound them not.
        bound = None if "/" in name else run_sessions
        sessions = self.count(step.get("sessions"), f"{where}.sessions", bound, "sessions")
        of = "sessions that reached the step"
        codes = self.counts(step.get("codes"), f"{where}.codes", _REPLY_CODE, sessions, of)
        events = self.counts(step.get("events"), f"{where}.events", _EVENTS, sessions, of)
        if sum(codes.values()) + sum(events.values()) > sessions:
            raise self.fail(
                where, f"its codes and events count more than its {counted(sessions, 'session')}"
            )
        replies = sum(codes.values())
        return StepBehaviour(
            name=name,
            # /1 counted one per observation: a step row's sessions were its attempts too; a
            # part row's were its attempts only, from at most the file's sessions.
            sessions=min(sessions, run_sessions),
            replies=sessions,
            codes=codes,
            enhanced=self.counts(
                step.get("enhanced"), f"{where}.enhanced", _ENHANCED_CODE, replies, "replies"
            ),
            events=events,
            unexpected=self.count(step.get("unexpected", 0), f"{where}.unexpected", sessions, of),
            text=self.strings(step.get("text"), f"{where}.text"),
            examples=self.strings(step.get("examples", []), f"{where}.examples"),
            capabilities=capabilities,
            latency=self.latency(step.get("latency"), f"{where}.latency", bound),
        )

    def milliseconds(self, value: object, where: str) -> None:
        if value is None:
            return
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else -1
        # A JSON integer has no bound (math.isfinite overflows on a 400-digit one); nothing
        # recorded is longer than the histograms' hour.
        if (isinstance(number, float) and not math.isfinite(number)) or not (
            0 <= number <= _MAX_LATENCY_MS
        ):
            raise self.fail(
                where, f"expected a number of milliseconds from 0 to {_MAX_LATENCY_MS}, or null"
            )

    def latency(
        self, value: object, where: str, most: int | None, *, strict: bool = False
    ) -> StepLatency:
        """A step's latency; ``most`` bounds its count (format /1: the file's sessions; /2,
        ``strict``, every field required, is bounded by :meth:`timed_attempts_checked`)."""
        latency = self.mapping(value, where)
        if strict:
            for key in ("count", "p50_ms", "p99_ms", "histogram"):
                self.required(latency, key, where)
        count = self.count(latency.get("count", 0), f"{where}.count", most, "sessions")
        self.milliseconds(latency.get("p50_ms"), f"{where}.p50_ms")
        self.milliseconds(latency.get("p99_ms"), f"{where}.p99_ms")
        blob = latency.get("histogram")
        if blob is None:
            if count:
                raise self.fail(where, f"count is {count} but there is no histogram")
            return StepLatency(0, None, None, None)
        try:
            histogram = LatencyHistogram.decode(self.string(blob, f"{where}.histogram"))
        except ValueError as exc:
            raise self.fail(f"{where}.histogram", str(exc)) from None
        if histogram.count != count:
            raise self.fail(where, f"count is {count} but the histogram holds {histogram.count}")
        return StepLatency.of(histogram)


_KEY_RULES = {
    "codes": "not a reply code (three digits)",
    "enhanced": "not an enhanced status code (class.subject.detail, RFC 3463)",
    "events": "not an event (" + ", ".join(sorted(_EVENTS)) + ")",
}
