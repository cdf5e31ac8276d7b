"""The exceptions smtpload raises, and whose fault each one is.

    SmtploadError
     ├── LocalError                the user asked for something wrong: shown, exit 2
     │    ├── ScenarioError        a scenario file is invalid (holds every problem found)
     │    ├── UsageError           a command-line argument (or API argument) is invalid
     │    ├── OutputError          an output file cannot be written where it was asked for
     │    └── ResultsError         a results file (summary.json) cannot be read or is not ours
     └── RemoteProtocolError       the server sent bytes that are not SMTP; the session that
                                   got them ends as ``protocol_error``, the run goes on

Local errors are for the person at the keyboard and never carry a traceback to the terminal.
A remote error never escapes a session: the I/O layer turns it into a counted outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ECHO_LIMIT",
    "LocalError",
    "OutputError",
    "Problem",
    "RemoteProtocolError",
    "ResultsError",
    "ScenarioError",
    "SmtploadError",
    "UsageError",
    "clipped",
    "closest",
    "counted",
    "shown",
]

#: The most characters of the user's input that a message repeats.
ECHO_LIMIT = 80


def shown(value: str, limit: int = ECHO_LIMIT) -> str:
    """``value`` quoted for a message (as ``repr``), cut after ``limit`` characters: a message
    points at the input, it never repeats a 50 MB line of it.

    >>> shown("HELO x")
    "'HELO x'"
    >>> shown("x" * 1000, limit=3)
    "'xxx'... (1,000 characters)"
    """
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"


def clipped(value: str, limit: int = ECHO_LIMIT) -> str:
    """``value`` as it is (unquoted), cut after ``limit`` characters like :func:`shown`.

    >>> clipped("x" * 1000, limit=3)
    'xxx... (1,000 characters)'
    """
    if len(value) <= limit:
        return value
    return f"{value[:limit]}... ({len(value):,} characters)"


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` most like ``word``, for a message's "did you mean", or None when
    none is close (difflib's own measure and cut-off).

    >>> closest("quikstart", ["dsn", "quickstart"]), closest("zzzz", ["dsn", "quickstart"])
    ('quickstart', None)
    """
    # difflib is for an error message only: imported here, not at start-up
    # (tests/test_startup.py).
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and its noun, singular for exactly one: the one way every message says how
    many of something there are (``plural`` for a noun that does not just take an ``s``).

    >>> counted(1, "session"), counted(2, "session"), counted(0, "step")
    ('1 session', '2 sessions', '0 steps')
    >>> counted(1, "latency", "latencies"), counted(3, "latency", "latencies")
    ('1 latency', '3 latencies')
    """
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural if plural is not None else noun + 's'}"


class SmtploadError(Exception):
    """Base class of every error smtpload raises on purpose."""


class LocalError(SmtploadError):
    """The user's input (scenario or command line) is wrong; exit status 2."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in a scenario file, at a 1-based line and column."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ScenarioError(LocalError):
    """A scenario is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(LocalError):
    """A command-line argument is invalid."""


class OutputError(LocalError):
    """An output file cannot be written (its folder is read-only, missing or not a folder, the
    disk is full...). The message names the file the user asked for, not a temporary one."""


class ResultsError(LocalError):
    """A results file given back to smtpload (``read_summary``) cannot be read or is not one
    that smtpload wrote."""


class RemoteProtocolError(SmtploadError):
    """The server sent something that is not an SMTP reply (RFC 5321 §4.2).

    Attributes:
        line: the offending bytes when the message shows a preview of them, else None, so
            that a session with secrets can scrub them before the preview is made (a cut
            could otherwise leave part of a secret, and the preview escapes bytes).
        prefix: the message's words before that preview.
    """

    def __init__(self, message: str, *, line: bytes | None = None, prefix: str = "") -> None:
        super().__init__(message)
        self.line = line
        self.prefix = prefix
