"""Durations as people write them: ``30`` (seconds), ``500ms``, ``30s``, ``5m``, ``1h``.

One parser for every duration smtpload reads (``--timeout``, ``--duration``, ``--ramp``, a
scenario's ``load:`` block), so that each accepts the same spellings and refuses the same
nonsense with the same words.
"""

from __future__ import annotations

import math
import re

__all__ = ["DURATION_HELP", "MAX_DURATION_S", "DurationError", "parse_duration"]

#: What the help and errors say a duration looks like.
DURATION_HELP = "seconds, or a number with ms, s, m or h (500ms, 30s, 5m, 1h)"

_UNIT_S = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(
    r"\s*(?P<number>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>ms|s|m|h)?\s*"
)

#: The longest duration accepted: a year is far beyond any run, and a bound keeps the
#: arithmetic on it exact enough (trio deadlines, nanosecond timestamps).
MAX_DURATION_S = 366 * 24 * 3600.0


class DurationError(ValueError):
    """Not a duration; the message says why, without the text (the caller quotes it)."""


def parse_duration(text: str, *, allow_zero: bool = False) -> float:
    """``text`` as seconds.

    Raises:
        DurationError: not a number with an optional unit, not finite, below zero, zero
            unless ``allow_zero``, or longer than a year.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise DurationError(f"is not a duration: give {DURATION_HELP}")
    seconds = float(match["number"]) * _UNIT_S[match["unit"] or ""]
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        raise DurationError("is longer than a year")
    if seconds == 0 and not allow_zero:
        raise DurationError("must be above 0")
    return seconds
