"""How a session ended, and what is kept of a failed one.

Every session started ends with exactly one Outcome, so the counts in a report always add up to
the sessions started.

A failed session is kept with its transcript, and a report may keep a hundred of them, so a
transcript holds at most `MAX_TRANSCRIPT_REPLY_BYTES` of each reply: a server that answers with
megabytes (a 10 MB ``550``, legal up to ``--max-reply-bytes``) must not multiply them by every
failure kept. The cut is marked in the transcript itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "FAILURE_CATEGORIES",
    "MAX_TRANSCRIPT_REPLY_BYTES",
    "Outcome",
    "SessionFailure",
    "TranscriptLine",
    "reply_transcript_lines",
]

#: How much of each reply a failed session's transcript keeps: far more than any honest reply
#: (an EHLO list is a few hundred bytes), little enough that 100 kept failures stay small.
MAX_TRANSCRIPT_REPLY_BYTES = 4 * 1024


class Outcome(enum.Enum):
    PASSED = "passed"
    UNEXPECTED_REPLY = "unexpected_reply"  # a reply did not meet the step's expectation
    TIMEOUT = "timeout"  # a step's timeout ran out
    CONNECT_ERROR = "connect_error"  # the TCP connection could not be made
    CONNECTION_CLOSED = "connection_closed"  # the server closed or reset the connection early
    PROTOCOL_ERROR = "protocol_error"  # the server sent bytes that are not SMTP replies
    TLS_ERROR = "tls_error"  # the TLS handshake or a TLS record failed (certificate, alert)
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


def reply_transcript_lines(
    raw: bytes, max_bytes: int = MAX_TRANSCRIPT_REPLY_BYTES
) -> list[TranscriptLine]:
    """One reply as transcript lines: at most its first ``max_bytes``, and where it was cut.

    A reply cut short ends with a ``*`` line that says after how many of its bytes, and in or
    after which of its lines, the rest was left out.
    """
    if len(raw) <= max_bytes:
        return [TranscriptLine("S", line) for line in raw.decode("utf-8", "replace").splitlines()]
    kept = raw[:max_bytes]
    lines = [TranscriptLine("S", line) for line in kept.decode("utf-8", "replace").splitlines()]
    total_lines = raw.count(b"\n") or 1
    whole_lines = kept.count(b"\n")
    if kept.endswith(b"\n"):
        where = f"after line {whole_lines} of {total_lines}"
    else:
        where = f"inside line {whole_lines + 1} of {total_lines}"
    lines.append(
        TranscriptLine(
            "*", f"reply cut after {max_bytes} of its {len(raw)} bytes ({where}); the rest not kept"
        )
    )
    return lines
