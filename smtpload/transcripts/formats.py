"""Finding the sessions in a transcript: the three formats' lines, and where each session is.

A transcript is what a person saw while driving an SMTP session by hand, often pasted into a page
with prose around it. This module owns what each format's lines look like and which lines belong
to a session; ``reader.py`` then reads each session's lines as a dialogue. Nothing here
builds replies or checks the order of the dialogue, and nothing does I/O.

Formats:

``telnet``
    ``telnet host 25`` or ``nc [-C] host 25`` at a prompt, then the terminal's lines: the
    connection decorations (``Trying ...``, ``Connected to ...``, ``Escape character is
    '^]'.``, ``Connection closed by foreign host.``), the server's replies (a 3-digit code
    followed by a space, a ``-`` or nothing) and, on every other line, what the person typed.
    Nothing marks a typed line, so one that is not answered by a reply and does not look like an
    SMTP command ends the session (it is prose); between ``354`` and the lone ``.`` every line
    is the message. Blank lines are kept: ``reader.py`` decides whether they are layout.
``swaks``
    swaks' output: `` -> `` / ``**> `` the client (``**>`` a line swaks saw fail), ``<- `` /
    ``<** `` the server (``<**`` an error reply), ``=== `` and ``*** `` swaks' own remarks,
    `` ~> `` / ``<~ `` (and ``*~>`` / ``<~*``) lines sent or received under TLS.
``cs``
    RFC-style listings (RFC 5321 appendix D): ``C: `` the client, ``S: `` the server, indented
    or not.

Every format: the author's notes, text after whitespace and an arrow (``←``, ``⇐``, ``<--``),
are cut off and reported; a session starts at its first line of dialogue (for telnet: the
command line, a decoration, or a ``220`` greeting) and ends at the first line that is not part
of it, or after the reply that closes the connection (``221``, ``421``).

Indentation: a session pasted into Markdown (a code block indented by 4 spaces), a forum post
or a mail is indented as a whole. A telnet session's lines are read without the indentation of
its first line (spaces and tabs), so an indented session reads exactly as the unindented one:
its replies are found, and a message line keeps only the indentation it had in the session
(a header's continuation). A line without that indentation is outside the session and ends it;
blank lines are blank, whatever whitespace they hold. swaks and ``C:``/``S:`` lines are
recognised with any leading whitespace, so for them indentation changes nothing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from smtpload.errors import shown
from smtpload.scenario.model import Target

__all__ = [
    "FORMATS",
    "DialogueLine",
    "RawSession",
    "Role",
    "Segmented",
    "detect_format",
    "looks_like_command",
    "segment",
    "strip_note",
]

FORMATS = ("telnet", "swaks", "cs")

# The author's note: whitespace, then an arrow, then anything to the end of the line.
_NOTE = re.compile(r"\s+(?:←|⇐|<--)")
# RFC 5321 §4.2: "NNN SP text", "NNN-text" (more lines follow) or a bare "NNN".
REPLY_LINE = re.compile(r"(?P<code>[1-5][0-9]{2})(?:(?P<sep>[ -])(?P<text>.*))?")
_COMMAND = re.compile(
    r"(?:HELO|EHLO|LHLO)\s+\S+|MAIL\s+FROM:.*|RCPT\s+TO:.*|DATA|QUIT|RSET|NOOP(?:\s.*)?"
    r"|VRFY\s.*|EXPN\s.*|HELP(?:\s.*)?|STARTTLS|AUTH\s.*|BDAT\s.*|ETRN\s.*",
    re.IGNORECASE,
)
# A shell prompt is optional: "$ ", "# ", "user@host:~$ ", "C:\> ", "[root@box ~]# ".
_CONNECT_COMMAND = re.compile(r"(?:.*[$#%>]\s*)?(?P<tool>telnet|nc|ncat|netcat)(?P<args>(\s+\S+)+)")
_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+")
_SERVICES = {"smtp": 25, "submission": 587, "smtps": 465, "lmtp": 24}
_PREAMBLE = re.compile(
    r"Trying \S+\s*\.\.\.|Connected to \S.*\.|Escape character is '.*'\."
    r"|Connection to \S+ .*(?:succeeded!|open)|Ncat: .*"
)
_CLOSED = re.compile(r"Connection closed by foreign host\.|Connection closed\.")
# swaks' hints (swaks' ptrans(): a 3-character hint and a space before each line).
_SWAKS = re.compile(
    r"\s*(?P<hint> ?->|\*\*>| ?~>|\*~>|<-|<\*\*|<~\*|<~|===|\*\*\*)(?: (?P<rest>.*))?"
)
_SWAKS_CLIENT = {"->", " ->", "**>"}
_SWAKS_SERVER = {"<-", "<**"}
_SWAKS_TLS = {"~>", " ~>", "*~>", "<~", "<~*"}
_SWAKS_TRYING = re.compile(r"Trying (?P<host>.+):(?P<port>[0-9]+)\.\.\.")
_SWAKS_CLOSED = re.compile(r"Connection closed with (?:remote host|child process)\.")
_CS = re.compile(r"\s*(?P<who>[CS]):(?:[ \t]?(?P<rest>.*))")
# The indentation a pasted telnet session may carry on every line (see the module docstring).
# Mail quoting ("> ") would be a prefix of the same kind, but is not read yet.
_INDENT = re.compile(r"[ \t]*")


class Role(enum.Enum):
    CLIENT = "client"  # a line the client sent (as typed)
    SERVER = "server"  # one line of a reply, with its code
    BLANK = "blank"  # an empty telnet line: layout, or an empty line of the message


@dataclass(frozen=True, slots=True)
class DialogueLine:
    """One line of a session's dialogue.

    Attributes:
        number: the line's number in the transcript (1-based).
        text: CLIENT: the line as typed, without the author's note; SERVER: the whole reply
            line (``250-PIPELINING``); BLANK: empty.
        note: the author's note cut off this line (``←あいさつ``), or None.
        tls: the line was sent or received under TLS (swaks' ``~>``, ``<~``).
    """

    number: int
    role: Role
    text: str
    note: str | None = None
    tls: bool = False  # swaks sent or received it under TLS


@dataclass(slots=True)
class RawSession:
    """A session's lines, as found; ``reader.py`` reads them as a dialogue.

    Attributes:
        first_line, last_line: where the session starts and ends in the transcript (1-based).
        blank_lines_kept: the format keeps blank lines (telnet), which may be layout.
        closed: the transcript shows the server closing the connection after the last line.
        format: the transcript's format (one of ``FORMATS``): whether a session can go on in
            TLS depends on it.
    """

    first_line: int
    last_line: int = 0
    lines: list[DialogueLine] = field(default_factory=list)
    target: Target | None = None
    blank_lines_kept: bool = False
    closed: bool = False
    format: str = "telnet"

    def has_dialogue(self) -> bool:
        return any(line.role is not Role.BLANK for line in self.lines)


@dataclass(slots=True)
class Segmented:
    """What segmenting a transcript found: sessions, prose, notes and problems (line, text)."""

    sessions: list[RawSession] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)


def strip_note(line: str) -> tuple[str, str | None]:
    """``line`` without the author's note after an arrow, and the note (None if there is none)."""
    match = _NOTE.search(line)
    if match is None:
        return line, None
    return line[: match.start()], line[match.end() - len(match.group().lstrip()) :].rstrip()


def looks_like_command(text: str) -> bool:
    """Whether a line reads as an SMTP command (so a missing reply is an error, not prose)."""
    return _COMMAND.fullmatch(text.strip()) is not None


def detect_format(lines: Sequence[str]) -> str | None:
    """The format whose lines are most common, or None when no line of dialogue is found."""
    scores = dict.fromkeys(FORMATS, 0)
    for line in lines:
        text = strip_note(line)[0].rstrip()
        if _SWAKS.fullmatch(text) and not text.lstrip().startswith(("===", "***")):
            scores["swaks"] += 1
        elif _CS.fullmatch(text):
            scores["cs"] += 1
        elif REPLY_LINE.fullmatch(_dedented(text)) or _connect_command(text) is not None:
            scores["telnet"] += 1
    best = max(FORMATS, key=lambda name: scores[name])  # ties go to the first in FORMATS
    return best if scores[best] else None


def segment(lines: Sequence[str], format: str) -> Segmented:
    """Find the sessions of a transcript in ``format`` (one of ``FORMATS``)."""
    if format == "telnet":
        return _TelnetSegmenter(lines).run()
    labeller = _swaks_line if format == "swaks" else _cs_line
    return _LabelledSegmenter(lines, labeller, format).run()


# -- telnet and nc -----------------------------------------------------------------------------


def _indentation(line: str) -> str:
    match = _INDENT.match(line)
    assert match is not None  # "[ \t]*" matches every string
    return match.group()


def _dedented(line: str) -> str:
    return line[len(_indentation(line)) :]


class _Kind(enum.Enum):
    BLANK = enum.auto()
    CONNECT = enum.auto()  # the telnet/nc command line
    PREAMBLE = enum.auto()  # Trying..., Connected to..., Escape character is...
    CLOSED = enum.auto()  # Connection closed by foreign host.
    REPLY = enum.auto()
    TEXT = enum.auto()  # typed by the client, or prose
    OUTSIDE = enum.auto()  # not indented as the session is: prose after an indented block


def _connect_command(text: str) -> tuple[Target | None, str] | None:
    """(target, tool) for a ``telnet``/``nc`` command line, else None."""
    match = _CONNECT_COMMAND.fullmatch(text.strip())
    if match is None:
        return None
    words = match.group("args").split()
    positional = [word for word in words if not word.startswith("-")]
    if len(words) > 6 or not positional:
        return None
    port = positional[-1]
    if len(positional) >= 2 and (port.isdigit() or port in _SERVICES):
        host = positional[-2]
        number = int(port) if port.isdigit() else _SERVICES[port]
        if _HOST.fullmatch(host) and 1 <= number <= 65535:
            return Target(host.strip("[]"), number), match.group("tool")
        return None
    # "telnet host" alone connects to port 23: a session, but no SMTP target to keep.
    if len(positional) == 1 and _HOST.fullmatch(port) and ("." in port or port == "localhost"):
        return None if match.group("tool") != "telnet" else (None, "telnet")
    return None


class _TelnetSegmenter:
    def __init__(self, lines: Sequence[str]) -> None:
        self.raw = lines
        self.texts: list[str] = []
        self.notes: list[str | None] = []
        for line in lines:
            text, note = strip_note(line)
            self.texts.append(text)
            self.notes.append(note)
        self.out = Segmented()

    def text(self, index: int, indent: str) -> str | None:
        """Line ``index`` without the session's ``indent`` and the author's note: empty when
        the line is blank, None when it is not indented as the session is."""
        text = self.texts[index]
        if not text.strip():
            return ""
        return text[len(indent) :] if text.startswith(indent) else None

    def kind(self, index: int, indent: str) -> _Kind:
        text = self.text(index, indent)
        if text is None:
            return _Kind.OUTSIDE
        text = text.rstrip()
        if not text:
            return _Kind.BLANK
        if REPLY_LINE.fullmatch(text):
            return _Kind.REPLY
        if _connect_command(text) is not None:
            return _Kind.CONNECT
        if _PREAMBLE.fullmatch(text.strip()):
            return _Kind.PREAMBLE
        if _CLOSED.fullmatch(text.strip()):
            return _Kind.CLOSED
        return _Kind.TEXT

    def next_kind(self, index: int, indent: str) -> _Kind | None:
        """The kind of the first non-blank line after ``index``."""
        for later in range(index + 1, len(self.texts)):
            kind = self.kind(later, indent)
            if kind is not _Kind.BLANK:
                return kind
        return None

    def next_text(self, index: int) -> str:
        """The first non-blank line after ``index``, stripped."""
        for later in range(index + 1, len(self.texts)):
            if self.texts[later].strip():
                return self.texts[later].strip()
        return ""

    def run(self) -> Segmented:
        index, orphan_reported = 0, False
        while index < len(self.texts):
            # Each line is read as if a session started at it, with its own indentation.
            indent = _indentation(self.texts[index])
            kind = self.kind(index, indent)
            text = self.texts[index].strip()
            starts = kind in (_Kind.CONNECT, _Kind.PREAMBLE) or (
                kind is _Kind.REPLY and text.startswith("220")
            )
            if starts:
                index = self.session(index, indent)
                orphan_reported = False
                continue
            if kind is not _Kind.BLANK:
                if (
                    kind is _Kind.TEXT
                    and looks_like_command(text)
                    and self.next_kind(index, indent) is _Kind.REPLY
                    and not orphan_reported
                ):
                    self.out.problems.append(
                        (
                            index + 1,
                            f"{shown(text)} and its reply are outside any session: a session starts"
                            " with the telnet/nc command line, 'Trying ...' or the server's 220"
                            " greeting; add the greeting line that the transcript left out",
                        )
                    )
                    orphan_reported = True
                self.out.skipped.append(index + 1)
            index += 1
        return self.out

    def session(self, start: int, indent: str) -> int:
        """Read the session starting at ``start``, whose lines are indented by ``indent``;
        return the index of the first line after it."""
        session = RawSession(first_line=start + 1, blank_lines_kept=True)
        started = finished = in_data = False
        index, last = start, start
        while index < len(self.texts):
            kind = self.kind(index, indent)
            typed = self.text(index, indent) or ""  # as typed, without the session's indent
            text = typed.rstrip()
            if kind is _Kind.OUTSIDE:
                break  # in a message too: reader.py reports the missing "."
            if in_data:
                if kind is _Kind.CONNECT or kind is _Kind.CLOSED:
                    break  # a message cut off: reader.py reports the missing "."
                role = Role.BLANK if kind is _Kind.BLANK else Role.CLIENT
                self.add(session, index, role, "" if role is Role.BLANK else typed)
                in_data = text != "."
                last = index
            elif kind is _Kind.BLANK:
                self.add(session, index, Role.BLANK, "")
            elif kind is _Kind.CONNECT:
                if index != start:
                    break
                connect = _connect_command(text)
                session.target = connect[0] if connect else None
                self.note(index)
                if session.target is None:
                    self.out.notes.append(
                        (index + 1, "no port on the command line: the scenario gets no target")
                    )
            elif kind is _Kind.PREAMBLE:
                if started:
                    break
                self.note(index)
                last = index
            elif kind is _Kind.CLOSED:
                session.closed = True
                self.note(index)
                last = index
                index += 1
                break
            elif kind is _Kind.REPLY:
                if finished:
                    break
                self.add(session, index, Role.SERVER, text)
                started, last = True, index
                match = REPLY_LINE.fullmatch(text)
                if match is not None and match.group("sep") != "-":
                    # After 221 or 421 the server closes the connection (RFC 5321 §3.8, §4.2).
                    finished = match.group("code") in ("221", "421")
                    in_data = match.group("code") == "354"
            else:
                following = self.next_kind(index, indent)
                answered = following in (_Kind.REPLY, _Kind.CLOSED)
                if following is _Kind.REPLY and self.next_text(index).startswith("220"):
                    # A 220 after a line of text is most often the next session's greeting.
                    answered = False
                if finished or not (answered or looks_like_command(text)):
                    break
                self.add(session, index, Role.CLIENT, typed)
                started, last = True, index
            index += 1
        session.last_line = last + 1
        while session.lines and session.lines[-1].number > session.last_line:
            session.lines.pop()
        if session.has_dialogue():
            self.out.sessions.append(session)
        else:
            self.out.notes.append(
                (start + 1, "a connection with no SMTP dialogue after it; skipped")
            )
        return index

    def add(self, session: RawSession, index: int, role: Role, text: str) -> None:
        session.lines.append(DialogueLine(index + 1, role, text, self.notes[index]))
        self.note(index)

    def note(self, index: int) -> None:
        note = self.notes[index]
        if note is not None:
            self.out.notes.append((index + 1, f"stripped note {shown(note)}"))


# -- swaks and C:/S: listings ------------------------------------------------------------------

# What one line of a labelled format is: (role or remark kind, content), or None for other text.
_Labeller = Callable[[str], tuple[str, str] | None]


def _swaks_line(line: str) -> tuple[str, str] | None:
    match = _SWAKS.fullmatch(line)
    if match is None:
        return None
    hint, rest = match.group("hint"), match.group("rest") or ""
    if hint in _SWAKS_CLIENT:
        return "client", rest
    if hint in _SWAKS_SERVER:
        return "server", rest.strip()
    if hint in _SWAKS_TLS:
        return ("tls-server", rest.strip()) if hint.startswith("<") else ("tls-client", rest)
    if hint == "===":
        trying = _SWAKS_TRYING.fullmatch(rest.strip())
        if trying is not None:
            return "trying", rest.strip()
        return ("closed" if _SWAKS_CLOSED.fullmatch(rest.strip()) else "info"), rest.strip()
    return "info", rest.strip()


def _cs_line(line: str) -> tuple[str, str] | None:
    match = _CS.fullmatch(line)
    if match is None:
        return None
    rest = match.group("rest") or ""
    if match.group("who") == "C":
        return "client", rest
    return "server", rest.strip()


class _LabelledSegmenter:
    """swaks and C:/S: listings: every line of dialogue says whose it is."""

    def __init__(self, lines: Sequence[str], labeller: _Labeller, format: str) -> None:
        self.lines = lines
        self.labeller = labeller
        self.format = format
        self.out = Segmented()

    def run(self) -> Segmented:
        session: RawSession | None = None
        finished = False
        for index, line in enumerate(self.lines):
            number = index + 1
            text, note = strip_note(line)
            label = self.labeller(text)
            if label is None:
                if text.strip():
                    session = None
                    self.out.skipped.append(number)
                continue
            kind, content = label
            new_connection = kind == "trying" and session is not None and session.has_dialogue()
            if session is None or new_connection or (finished and kind in ("client", "server")):
                session = RawSession(first_line=number, format=self.format)
                self.out.sessions.append(session)
                finished = False
            session.last_line = number
            if note is not None:
                self.out.notes.append((number, f"stripped note {shown(note)}"))
            if kind in ("client", "server", "tls-client", "tls-server"):
                role = Role.CLIENT if kind.endswith("client") else Role.SERVER
                content = content.rstrip() if role is Role.SERVER else content.rstrip("\r")
                tls = kind.startswith("tls")
                session.lines.append(DialogueLine(number, role, content, note, tls))
                match = REPLY_LINE.fullmatch(content) if role is Role.SERVER else None
                if match is not None and match.group("sep") != "-":
                    finished = match.group("code") in ("221", "421")
            elif kind == "trying":
                trying = _SWAKS_TRYING.fullmatch(content)
                if trying is not None and _HOST.fullmatch(trying.group("host")):
                    port = int(trying.group("port"))
                    if 1 <= port <= 65535:
                        session.target = Target(trying.group("host").strip("[]"), port)
            elif kind == "closed":
                session.closed = True
            elif kind == "info" and content and not content.startswith("Connected to"):
                self.out.notes.append((number, f"skipped swaks' remark {shown(content)}"))
        self.out.sessions = [s for s in self.out.sessions if s.has_dialogue()]
        return self.out
