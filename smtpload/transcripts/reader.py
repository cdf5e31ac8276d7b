"""Reading a transcript of hand-driven SMTP sessions: text in, dialogues (``Session``) out.

This module owns the entry point and the rules for the file as a whole; ``formats.py``
finds the sessions and says whose each line is, ``dialogue.py`` reads each session as
a dialogue (its module docstring has the rules for replies, commands and messages), and
``importer.py`` writes scenarios. No I/O, no trio.

The rules for the file:

* Text: CRLF or LF line ends; a ``\\r`` left at the end of a line is dropped, and so is a leading
  byte-order mark. A character that is not text (a control character other than tab and form
  feed, a byte that is not UTF-8 as ``surrogateescape`` decoding leaves it, a Unicode line
  separator) anywhere in the file refuses the whole file: binary junk is never guessed around.
* Format: given, or decided from the lines (the format with the most lines of dialogue wins),
  with a note saying which.
* Prose: lines outside every session are skipped and reported as ranges of lines.
* Problems: every session is read; the problems of all of them (each session's first) are
  reported together, as ``FILE:LINE: message``, and any problem refuses the whole file
  (``TranscriptError``), so a scenario is never made from a half-understood transcript.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smtpload.errors import LocalError, counted
from smtpload.scenario.model import Target
from smtpload.transcripts.dialogue import (
    DialogueProblem,
    Exchange,
    ExchangeKind,
    Reply,
    read_dialogue,
)
from smtpload.transcripts.formats import FORMATS, detect_format, segment

__all__ = [
    "Exchange",
    "ExchangeKind",
    "Reply",
    "Session",
    "Transcript",
    "TranscriptError",
    "parse_transcript",
]

# Neither text nor layout: C0 controls but tab and form feed, DEL, C1 controls, lone surrogates
# (undecodable bytes under surrogateescape), non-characters, and the line separators YAML and
# str.splitlines() would break lines at.
_JUNK = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff\ufffe\uffff\u2028\u2029]")
_MAX_JUNK_LINES = 3


class TranscriptError(LocalError):
    """A transcript cannot be imported. ``problems`` are ``FILE:LINE: message``, in line order."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class Session:
    """One session of a transcript, read as a dialogue.

    Attributes:
        number: 1-based, in file order.
        first_line, last_line: where the session stands in the transcript.
        target: host and port from the telnet/nc command line (or swaks' ``Trying``), if shown.
        closed: the transcript shows the server closing the connection at the end.
    """

    number: int
    first_line: int
    last_line: int
    target: Target | None
    exchanges: tuple[Exchange, ...]
    closed: bool


@dataclass(frozen=True, slots=True)
class Transcript:
    """A whole transcript: its format, its sessions, and notes for the user (``line N: ...``)."""

    format: str
    sessions: tuple[Session, ...]
    notes: tuple[str, ...]


def parse_transcript(text: str, path: str, format: str = "auto") -> Transcript:
    """Read every session of a transcript.

    Args:
        text: the transcript (a whole page is fine; prose around sessions is skipped).
        path: the file it came from, for messages.
        format: ``"telnet"``, ``"swaks"``, ``"cs"``, or ``"auto"`` to decide from the lines.

    Raises:
        TranscriptError: with every problem found.
    """
    lines = [line.rstrip("\r") for line in text.removeprefix("\ufeff").split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    _check_text(lines, path)
    notes: list[str] = []
    if format == "auto":
        detected = detect_format(lines)
        if detected is None:
            raise TranscriptError(
                [
                    f"{path}:1: no SMTP dialogue found: expected server replies (lines starting"
                    " with a 3-digit code), swaks output or C:/S: lines"
                ]
            )
        format = detected
        notes.append(f"format: {format} (auto)")
    elif format not in FORMATS:
        raise TranscriptError([f"{path}:1: unknown format {format!r}; use one of {FORMATS}"])
    found = segment(lines, format)
    problems = list(found.problems)
    sessions: list[Session] = []
    # (line, note): sorted by line for the user, after the format.
    line_notes = [(line, f"line {line}: {note}") for line, note in found.notes]
    line_notes += _skipped_ranges(found.skipped, lines)
    for raw in found.sessions:
        try:
            exchanges, notes_made = read_dialogue(raw)
        except DialogueProblem as problem:
            problems.append((problem.line, problem.message))
            line_notes += [(line, f"line {line}: {note}") for line, note in problem.notes]
            continue
        line_notes += [(line, f"line {line}: {note}") for line, note in notes_made]
        sessions.append(
            Session(
                number=len(sessions) + 1,
                first_line=raw.first_line,
                last_line=raw.last_line,
                target=raw.target,
                exchanges=tuple(exchanges),
                closed=raw.closed,
            )
        )
    if not sessions and not problems:
        problems.append((1, f"no {format} session found; check --format, or the transcript"))
    if problems:
        raise TranscriptError([f"{path}:{line}: {message}" for line, message in sorted(problems)])
    notes += [note for _, note in sorted(line_notes, key=lambda item: item[0])]
    return Transcript(format, tuple(sessions), tuple(notes))


def _check_text(lines: list[str], path: str) -> None:
    problems = []
    for number, line in enumerate(lines, start=1):
        match = _JUNK.search(line)
        if match is None:
            continue
        char = match.group()
        if "\udc80" <= char <= "\udcff":
            what = f"byte 0x{ord(char) - 0xDC00:02x} is not UTF-8 text"
        else:
            what = f"character U+{ord(char):04X} is not text"
        problems.append(
            f"{path}:{number}: {what}: this is not a text transcript (binary data, or terminal"
            " escape sequences?); remove it or save the transcript as plain UTF-8 text"
        )
    if len(problems) > _MAX_JUNK_LINES:
        more = len(problems) - _MAX_JUNK_LINES
        problems[_MAX_JUNK_LINES:] = [f"{path}: ... and {counted(more, 'more line')} like these"]
    if problems:
        raise TranscriptError(problems)


def _skipped_ranges(skipped: list[int], lines: list[str]) -> list[tuple[int, str]]:
    """Skipped prose as ranges: lines apart only by blank lines make one range."""
    ranges: list[list[int]] = []
    for number in skipped:
        if ranges and all(not lines[n - 1].strip() for n in range(ranges[-1][1] + 1, number)):
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return [
        (
            start,
            f"lines {start}-{end}: skipped prose"
            if end > start
            else f"line {start}: skipped prose",
        )
        for start, end in ranges
    ]
