"""The live view: a block of a few lines that a terminal redraws in place once a second.

Nothing here writes to a terminal or reads a clock: :func:`format_live` turns a
:class:`LiveState` into lines, :func:`fit` cuts them to the terminal's size, and :func:`redraw`
makes the text that replaces the block drawn before. The caller (cli/live.py) writes it.

The per-second figures are the last closed interval of the run, the :class:`Second` that
timeline.csv gets its row from (report/intervals.py), so the view and the file agree; the
totals are the counts at that second's end. A frame (open loop, a run of 4 s)::

    elapsed    3.0 s of 4.0 s, this second: 2.0-3.0 s
    rate       target 50.0/s, started 50.0/s, finished 50.0/s
    in flight  1
    passed     50 this second, 150 in total
    failed     0 this second, 0 in total
    latency    p50 1.234 ms, p99 2.345 ms this second (corrected: from when due)

and, when the generator is saturated as judged so far (report/generator.py's rule), one more
line that says so. In closed loop the first line counts sessions done instead and there is
no target rate.

Terminal control (ECMA-48, which every terminal but ``TERM=dumb`` follows): ``CR``, then
``CSI n A`` (cursor up n lines) to the block's first line and ``CSI J`` (erase to the end of
the screen), then the new lines. No colour, so ``NO_COLOR`` has nothing to turn off, and the
cursor is never hidden, so nothing has to show it again after a Ctrl-C or a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

from smtpload.report.intervals import Second

__all__ = [
    "CLEAR_TO_END",
    "LiveState",
    "cursor_up",
    "fit",
    "format_live",
    "live_view_possible",
    "redraw",
]

#: ECMA-48 ED (erase in display) from the cursor to the end of the screen.
CLEAR_TO_END = "\x1b[J"

# The label column's width: the values line up under each other.
_LABEL_WIDTH = 11

# Terminals that cannot move the cursor: the plain progress lines instead. An unset TERM is
# treated as dumb too (curses does the same: no capabilities are known).
_DUMB_TERMS = frozenset({"", "dumb"})


def cursor_up(lines: int) -> str:
    """ECMA-48 CUU: the cursor ``lines`` lines up (the column is kept)."""
    return f"\x1b[{lines}A"


def live_view_possible(*, is_terminal: bool, term: str | None) -> bool:
    """Whether a stream can show the live view: a terminal whose ``TERM`` is not ``dumb``."""
    return is_terminal and (term or "") not in _DUMB_TERMS


@dataclass(frozen=True, slots=True)
class LiveState:
    """What one frame shows.

    Attributes:
        elapsed_s: the seconds since the run started.
        second: the last second closed (its figures and the totals at its end), or None
            before the first.
        open_loop: an open-loop run: the latencies are corrected, and there is a target.
        duration_s: open loop: the run's duration, or None when ``--sessions`` ends it.
        sessions_total: the sessions the run will make (closed loop ``--sessions``, open
            loop ``--sessions`` as a cap), or None when not known.
        target_rate_per_s: open loop: the rate the schedule asks for in that second.
        saturated: the generator is saturated so far, with what it measured (short facts:
            ``report.generator.saturation_facts``); None when it is not.
    """

    elapsed_s: float
    second: Second | None
    open_loop: bool
    duration_s: float | None = None
    sessions_total: int | None = None
    target_rate_per_s: float | None = None
    saturated: tuple[str, ...] | None = None


def _line(label: str, value: str) -> str:
    return f"{label:<{_LABEL_WIDTH}}{value}"


def _rate(per_s: float) -> str:
    return f"{per_s:.1f}/s"


def _progress_line(state: LiveState) -> str:
    second = state.second
    if second is None:
        this = "this second: -"
    else:
        end_s = second.start_s + second.length_s
        this = f"this second: {second.start_s:.1f}-{end_s:.1f} s"
    if state.open_loop:
        of = "" if state.duration_s is None else f" of {state.duration_s:.1f} s"
        due = ""
        if state.duration_s is None and state.sessions_total is not None and second is not None:
            due = f", {second.started_total}/{state.sessions_total} sessions started"
        return _line("elapsed", f"{state.elapsed_s:.1f} s{of}{due}, {this}")
    done = 0 if second is None else second.passed_total + second.failed_total
    total = "" if state.sessions_total is None else f"/{state.sessions_total}"
    return _line("sessions", f"{done}{total} done, {state.elapsed_s:.1f} s, {this}")


def format_live(state: LiveState) -> list[str]:
    """The frame's lines (ASCII, so a character is a column), not yet cut to a terminal."""
    second = state.second
    rates = []
    if state.open_loop and state.target_rate_per_s is not None:
        rates.append(f"target {_rate(state.target_rate_per_s)}")
    if second is None:
        rates.append("started -" if state.open_loop else "finished -")
        if state.open_loop:
            rates.append("finished -")
    else:
        if state.open_loop:
            rates.append(f"started {_rate(second.started_per_s)}")
        rates.append(f"finished {_rate(second.sessions_per_s)}")
    if second is None:
        in_flight, passed, failed, latency = "-", "-", "-", "-"
    else:
        in_flight = str(second.in_flight)
        passed = f"{second.passed} this second, {second.passed_total} in total"
        failed = f"{second.failed} this second, {second.failed_total} in total"
        if second.session_p50_ms is None or second.session_p99_ms is None:
            latency = "- (no session passed this second)"
        else:
            latency = (
                f"p50 {second.session_p50_ms:.3f} ms, p99 {second.session_p99_ms:.3f} ms "
                "this second"
            )
    if state.open_loop and latency != "-":
        latency += " (corrected: from when due)"
    lines = [
        _progress_line(state),
        _line("rate", ", ".join(rates)),
        _line("in flight", in_flight),
        _line("passed", passed),
        _line("failed", failed),
        _line("latency", latency),
    ]
    if state.saturated is not None:
        facts = f": {', '.join(state.saturated)}" if state.saturated else ""
        lines.append(f"generator saturated so far{facts}: smtpload is the limit, not the server")
    return lines


def fit(lines: list[str], columns: int, rows: int) -> list[str]:
    """``lines`` cut to a terminal of ``columns`` x ``rows``.

    Each line keeps at most ``columns - 1`` characters: a line that fills the last column
    wraps on some terminals, and a wrapped line would be one the next cursor-up does not
    count, leaving garbage on the screen. At most ``rows - 1`` lines are kept, for the same
    reason: the cursor cannot go up past the top of the screen. Never fewer than one line of
    one character.
    """
    width = max(columns - 1, 1)
    height = max(rows - 1, 1)
    return [line[:width] for line in lines[:height]]


def redraw(lines: list[str], drawn: int) -> str:
    """The text that replaces a block of ``drawn`` lines (0: none yet) with ``lines``.

    The block ends with a newline, so the cursor rests at the start of the line after it
    (where the report follows). Going back: ``CR``, up ``drawn`` lines, erase to the end of
    the screen (which also erases whatever the terminal echoed below, such as ``^C``).
    """
    back = "\r" + (cursor_up(drawn) if drawn else "") + CLEAR_TO_END
    return back + "".join(line + "\n" for line in lines)
