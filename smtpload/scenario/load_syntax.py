"""The grammar of a scenario's ``load:`` block: the open-loop load it runs with by default.

::

    load:
      arrivals: poisson        # constant (default) | poisson
      seed: 7                  # optional: the poisson schedule's seed
      max_in_flight: 200       # optional: sessions running at once, at most
      sessions: 5000           # optional: caps the sessions due
      rate: 100                # either rate + duration (+ ramp), as --rate/--duration/--ramp,
      duration: 1m
      ramp: 10s
      stages:                  # ... or stages, as k6's ramping-arrival-rate (not both)
        - {duration: 30s, rate: 50}
        - {duration: 1m, rate: 200}
      thresholds:              # as --threshold
        - session.p99<500ms

A stage moves the rate in a straight line from where the stage before left it (0 before the
first) to its own ``rate`` over its ``duration``: load/arrivals.py's ``Stage``. A stage of
``duration: 0`` sets the rate at once (``- {duration: 0, rate: 50}`` first starts at 50/s).

This module reads the block from its nodes and reports each problem at its place; it knows
nothing of how a run is driven (load/) or of the threshold language (report/thresholds.py):
thresholds are kept as text with their positions, read once the run's steps are known. How the
command line's options override the block is load/plan.py's.
"""

from __future__ import annotations

from smtpload.errors import clipped, closest, shown
from smtpload.scenario.durations import MAX_DURATION_S, DurationError, parse_duration
from smtpload.scenario.model import ARRIVALS, Load, LoadStage, ThresholdText
from smtpload.scenario.yaml_nodes import TEXT_TAGS, NodeReader, is_blank, kind_of
from smtpload.scenario.yaml_tree import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["LOAD_KEYS", "MAX_RATE_PER_S", "MAX_STAGES", "MAX_THRESHOLDS", "read_load"]

#: The keys of ``load:``.
LOAD_KEYS = (
    "arrivals",
    "seed",
    "max_in_flight",
    "sessions",
    "rate",
    "duration",
    "ramp",
    "stages",
    "thresholds",
)
_STAGE_KEYS = ("duration", "rate")
#: The keys that describe an open-loop load, and so need ``rate`` or ``stages`` with them.
_OPEN_LOOP_KEYS = ("arrivals", "seed", "max_in_flight", "sessions")

#: The highest rate a scenario may ask for, per second: a million sessions a second is far
#: beyond what one machine can start (a core starts a few thousand), so a larger rate is a slip
#: of the keyboard (``1000000000``), and a bound keeps the schedule's arithmetic exact.
MAX_RATE_PER_S = 1_000_000.0
#: The most stages a block may hold: a schedule longer than that is better generated than
#: written, and the bound keeps a runaway file from making a schedule of millions.
MAX_STAGES = 1000
#: The most thresholds a block may hold.
MAX_THRESHOLDS = 1000


def read_load(node: Node, reader: NodeReader) -> Load | None:
    """The ``load:`` block's value as a :class:`Load`, or None after reporting every problem."""
    if not isinstance(node, MappingNode) or not node.value:
        found = "is empty" if is_blank(node) or isinstance(node, MappingNode) else None
        reader.problem(
            node,
            f"load {found or 'must be a mapping, not a ' + kind_of(node)}; give its keys"
            " (rate and duration, or stages; thresholds), e.g. `load: {rate: 100, duration: 1m}`",
        )
        return None
    before = len(reader.problems)
    keys = reader.mapping(node, "in load", LOAD_KEYS)

    def value(key: str) -> Node | None:
        return keys[key][1] if key in keys else None

    def key_node(key: str) -> Node:
        return keys[key][0]

    rate = _rate(value("rate"), reader, "load: rate", allow_zero=False)
    duration = _duration(value("duration"), reader, "load: duration")
    ramp = _duration(value("ramp"), reader, "load: ramp")
    stages = _stages(value("stages"), reader)
    arrivals = _arrivals(value("arrivals"), reader)
    seed = _whole(value("seed"), reader, "load: seed", lowest=None)
    max_in_flight = _whole(value("max_in_flight"), reader, "load: max_in_flight", lowest=1)
    sessions = _whole(value("sessions"), reader, "load: sessions", lowest=1)
    thresholds = _thresholds(value("thresholds"), reader)

    if "rate" in keys and "stages" in keys:
        reader.problem(
            key_node("stages"),
            "load: give either rate (with duration and ramp) or stages, not both: stages set"
            " the rate over time themselves",
        )
    elif "stages" in keys:
        for key in ("duration", "ramp"):
            if key in keys:
                reader.problem(
                    key_node(key),
                    f"load: {key} is for a load given by rate; with stages, each stage's"
                    " duration says how long it lasts (remove this key)",
                )
    elif "rate" not in keys:
        for key in ("duration", "ramp", *_OPEN_LOOP_KEYS):
            if key in keys:
                reader.problem(
                    key_node(key),
                    f"load: {key} is for an open-loop load: give rate (with duration) or"
                    " stages too",
                )
    elif "duration" not in keys and "sessions" not in keys:
        reader.problem(
            key_node("rate"),
            "load: rate needs duration (or sessions) to know when to stop, e.g. `duration: 1m`",
        )
    if ramp is not None and duration is not None and ramp > duration:
        reader.problem(
            key_node("ramp"),
            f"load: ramp {ramp:g} s is longer than duration {duration:g} s: the run would end"
            " before it reaches the rate",
        )
    if len(reader.problems) > before:
        return None
    return Load(
        rate_per_s=rate,
        duration_s=duration,
        ramp_s=ramp,
        stages=stages or (),
        arrivals=arrivals,
        seed=seed,
        max_in_flight=max_in_flight,
        sessions=sessions,
        thresholds=thresholds or (),
        line=node.start_mark.line + 1,
        column=node.start_mark.column + 1,
    )


def _rate(node: Node | None, reader: NodeReader, what: str, *, allow_zero: bool) -> float | None:
    if node is None:
        return None
    rate = reader.number(node, what)
    if rate is None:
        return None
    low = "0 or more" if allow_zero else "above 0"
    if not (rate >= 0 if allow_zero else rate > 0) or rate > MAX_RATE_PER_S:
        reader.problem(
            node,
            f"{what} {rate:g} must be a number of sessions per second {low}, and at most"
            f" {MAX_RATE_PER_S:,.0f}",
        )
        return None
    return float(rate)


def _duration(
    node: Node | None, reader: NodeReader, what: str, *, allow_zero: bool = False
) -> float | None:
    """A duration as on the command line (scenario/durations.py): ``90``, ``500ms``, ``1m``."""
    if node is None:
        return None
    if isinstance(node, ScalarNode) and node.tag in TEXT_TAGS and not is_blank(node):
        try:
            return parse_duration(node.value, allow_zero=allow_zero)
        except DurationError as error:
            reader.problem(node, f"{what} {shown(node.value)} {error}")
            return None
    seconds = reader.number(node, what)
    if seconds is None:
        return None
    if seconds < 0:
        reason = "must be 0 or more" if allow_zero else "must be above 0"
        reader.problem(node, f"{what} {clipped(str(node.value))} {reason}")
        return None
    try:
        # The same checks as a duration written as text: above 0, at most a year.
        return parse_duration(repr(float(seconds)), allow_zero=allow_zero)
    except DurationError as error:
        reader.problem(node, f"{what} {clipped(str(node.value))} {error}")
        return None


def _whole(node: Node | None, reader: NodeReader, what: str, *, lowest: int | None) -> int | None:
    if node is None:
        return None
    number = reader.number(node, what, whole=True)
    if number is None:
        return None
    if lowest is not None and number < lowest:
        reader.problem(node, f"{what} {number:g} must be at least {lowest}")
        return None
    return int(number)


def _arrivals(node: Node | None, reader: NodeReader) -> str | None:
    if node is None:
        return None
    written = reader.text(node, "load: arrivals")
    if written is None:
        return None
    if written in ARRIVALS:
        return written
    close = closest(written.lower(), ARRIVALS)
    hint = f" (did you mean {close!r}?)" if close is not None else ""
    reader.problem(
        node, f"load: arrivals {shown(written)} must be one of {', '.join(ARRIVALS)}{hint}"
    )
    return None


def _stages(node: Node | None, reader: NodeReader) -> tuple[LoadStage, ...] | None:
    if node is None:
        return None
    example = "e.g. `- {duration: 30s, rate: 50}`"
    if not isinstance(node, SequenceNode) or not node.value:
        found = "is empty" if is_blank(node) or isinstance(node, SequenceNode) else None
        reader.problem(
            node,
            f"load: stages {found or 'must be a list, not a ' + kind_of(node)}; give a list"
            f" of stages, each a duration and the rate to reach by its end, {example}",
        )
        return None
    if len(node.value) > MAX_STAGES:
        reader.problem(
            node, f"load: stages has {len(node.value):,} stages; at most {MAX_STAGES} are allowed"
        )
        return None
    stages: list[LoadStage] = []
    ok = True
    for number, stage_node in enumerate(node.value, start=1):
        what = f"load: stage {number}"
        if not isinstance(stage_node, MappingNode):
            reader.problem(
                stage_node,
                f"{what} must be a mapping of duration and rate, not a {kind_of(stage_node)};"
                f" {example}",
            )
            ok = False
            continue
        # k6's stages call the rate `target`: taken as a key here, to say which one it is.
        keys = reader.mapping(stage_node, f"in {what}", (*_STAGE_KEYS, "target"))
        if "target" in keys:
            reader.problem(
                keys["target"][0], f"{what}: k6's `target` is `rate` here (sessions per second)"
            )
            ok = False
            continue
        missing = [key for key in _STAGE_KEYS if key not in keys]
        if missing:
            reader.problem(stage_node, f"{what} needs {' and '.join(missing)}; {example}")
            ok = False
            continue
        duration = _duration(keys["duration"][1], reader, f"{what}: duration", allow_zero=True)
        rate = _rate(keys["rate"][1], reader, f"{what}: rate", allow_zero=True)
        if duration is None or rate is None:
            ok = False
            continue
        stages.append(LoadStage(duration, rate))
    if not ok:
        return None
    total_s = sum(stage.duration_s for stage in stages)
    if total_s > MAX_DURATION_S:
        reader.problem(node, f"load: the stages last {total_s:,.0f} s in all, longer than a year")
        return None
    # Sessions come due only while a stage has a rate above 0 for some time.
    rising_from = 0.0
    offered = False
    for stage in stages:
        if stage.duration_s > 0 and (rising_from > 0 or stage.rate_per_s > 0):
            offered = True
        rising_from = stage.rate_per_s
    if not offered:
        reader.problem(
            node,
            "load: no stage offers any load (every rate is 0, or lasts no time); give a stage"
            " a rate above 0 and a duration",
        )
        return None
    return tuple(stages)


def _thresholds(node: Node | None, reader: NodeReader) -> tuple[ThresholdText, ...] | None:
    if node is None or is_blank(node):
        return None
    if isinstance(node, ScalarNode):
        reader.problem(
            node,
            "load: thresholds must be a list, one expression a line (`- session.p99<500ms`),"
            " not a single value",
        )
        return None
    if not isinstance(node, SequenceNode):
        reader.problem(node, f"load: thresholds must be a list, not a {kind_of(node)}")
        return None
    if len(node.value) > MAX_THRESHOLDS:
        reader.problem(
            node,
            f"load: thresholds has {len(node.value):,} entries; at most {MAX_THRESHOLDS} are"
            " allowed",
        )
        return None
    thresholds: list[ThresholdText] = []
    for number, item in enumerate(node.value, start=1):
        text = reader.text(item, f"load: threshold {number}")
        if text is None:
            continue
        thresholds.append(_located(item, text, reader))
    return tuple(thresholds)


def _located(node: Node, text: str, reader: NodeReader) -> ThresholdText:
    """``text`` with its position: exact to the character where the scalar is its source text
    on one line (plain, or quoted without escapes), else at the scalar's start."""
    start = node.start_mark
    style = node.style if isinstance(node, ScalarNode) else None
    quoted = 1 if style in ("'", '"') else 0
    exact = False
    if style in (None, "'", '"') and "\n" not in text:
        begin = start.index + quoted
        exact = reader.source[begin : begin + len(text)] == text
    if not exact:
        quoted = 0
    return ThresholdText(text, start.line + 1, start.column + 1 + quoted, exact)
