"""How a session ended, and what is kept of a failed one.

Every session started ends with exactly one Outcome, so the counts in a report always add up to
the sessions started.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["FAILURE_CATEGORIES", "Outcome", "SessionFailure", "TranscriptLine"]


class Outcome(enum.Enum):
    PASSED = "passed"
    UNEXPECTED_REPLY = "unexpected_reply"  # a reply did not meet the step's expectation
    TIMEOUT = "timeout"  # a step's timeout ran out
    CONNECT_ERROR = "connect_error"  # the TCP connection could not be made
    CONNECTION_CLOSED = "connection_closed"  # the server closed or reset the connection early
    PROTOCOL_ERROR = "protocol_error"  # the server sent bytes that are not SMTP replies
    INTERRUPTED = "interrupted"  # cut off by Ctrl-C or SIGTERM


#: The failure categories, in the order reports list them.
FAILURE_CATEGORIES: tuple[Outcome, ...] = tuple(o for o in Outcome if o is not Outcome.PASSED)


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One line of a session transcript.

    Attributes:
        direction: ``"C"`` sent by smtpload, ``"S"`` received from the server,
            ``"*"`` a note by smtpload (connects, closes, timeouts, mismatches).
        text: the line without its CRLF; for a message only a summary is kept.
    """

    direction: str
    text: str

    def __str__(self) -> str:
        return f"{self.direction}: {self.text}"


@dataclass(frozen=True, slots=True)
class SessionFailure:
    """What a report shows for one failed session.

    Attributes:
        session: the session number, 1..N.
        outcome: the failure category.
        step: the name of the step that failed (``connect`` for connect errors).
        expected: what the step expected, in words (empty when not applicable).
        got: what happened instead, in words.
        transcript: the session's dialogue up to the failure.
    """

    session: int
    outcome: Outcome
    step: str
    expected: str
    got: str
    transcript: tuple[TranscriptLine, ...]
