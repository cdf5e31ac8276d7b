"""Reading one session's lines as a dialogue: the greeting, commands, messages and replies.

This module owns the rules that turn the lines of one session (found by
``formats.py``) into exchanges, and every message about a session that cannot be read
that way. ``reader.py`` runs it on each session of a transcript. No I/O, no trio.

The rules:

* Double spacing (telnet): when every other line of a session, counted from its first line, is
  empty, those empty lines are layout and dropped. A blog post that double-spaces usually loses
  the empty line between the message's header and body, so when the message has no empty line,
  one is restored before the first line that is not a ``Name: value`` header (or its
  continuation), and that is reported.
* Replies (RFC 5321 §4.2.1): ``NNN-text`` lines continue a reply, ``NNN text`` or ``NNN`` end it;
  the code may not change inside one. A multiline reply is one expectation.
* Dialogue: the session starts with the server's greeting; every client line outside a message
  is a command (trailing whitespace dropped and reported: terminals and editors add and drop it
  at will) and is answered by the next reply. A reply nobody asked for, a command with no reply
  before the next command (pipelining is not supported), or a command with no reply at the end
  of the session is an error, except a final ``QUIT``: the transcript may stop before its
  ``221``, and the step then accepts any reply (reported).
* Messages: a reply ``354`` makes every following client line message text, up to the lone
  ``.`` (trailing whitespace after it is ignored); the next reply answers the message. One level
  of dot-stuffing is removed (RFC 5321 §4.5.2: ``..x`` is the line ``.x``; a line ``.x`` that was
  not stuffed is read as ``x``, as a server would, and reported). A message with no final ``.``,
  or a reply inside it, is an error at its ``354``.
* STARTTLS (RFC 3207): a ``STARTTLS`` answered ``220`` is a STARTTLS exchange, and the
  session goes on in TLS; answered otherwise (``454``) it is a plain command with its reply.
  In TLS the next command must be ``EHLO`` (or LMTP's ``LHLO``): §4.2, the client forgets what
  the server offered before. swaks marks the lines in TLS (`` ~>``, ``<~``): such a line before
  STARTTLS, or a plain one after it, is an error; ``C:``/``S:`` listings mark nothing. A
  telnet session cannot go on in TLS (a person at a terminal cannot type a TLS handshake), so
  after the ``220`` it can only end: any line after it is an error.
* AUTH (RFC 4954): ``AUTH mechanism [initial-response]``, each ``334`` challenge and the
  client's answer to it, up to the final reply (``235``, ``535``...), is one AUTH exchange;
  ``credentials.py`` decodes the user name and password (PLAIN, LOGIN, CRAM-MD5). The blobs
  are secrets: no message here quotes a line of the exchange.
* BDAT (RFC 3030): after ``BDAT n [LAST]`` the client lines up to the next reply are the
  chunk's octets, each line with its CRLF; they must add up to ``n`` exactly, else the error
  ``BDAT announced N octets, the lines below add up to M`` at the BDAT line. One case is read
  the other way: when they add up to ``n + 2``, the chunk ends inside its last line (a listing
  shows the part sent as a line of its own, without its CRLF), and the next chunk's first line
  goes on with that line. The chunks up to the one with ``LAST`` are one BDAT exchange: the
  message joined, each chunk's size, and the replies; a chunk refused (not 2xx) before LAST,
  or a session that ends before LAST, is an error (RFC 3030 §2: the client sends no more
  chunks after a refusal, so the message has no end to import).
* Not supported yet, refused at their line: AUTH with another mechanism.
* A session of server lines only is an error (it is a server log, not a dialogue).

A session is read no further than its first problem (``DialogueProblem``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from smtpload.errors import clipped, shown
from smtpload.transcripts.credentials import (
    IMPORTED_MECHANISMS,
    CredentialProblem,
    Credentials,
    decode_credentials,
)
from smtpload.transcripts.formats import REPLY_LINE, DialogueLine, RawSession, Role

__all__ = ["Credentials", "DialogueProblem", "Exchange", "ExchangeKind", "Reply", "read_dialogue"]

# RFC 5322 §2.2: a header field is a name of printable ASCII but ":", then ":"; §2.2.3: a line
# starting with whitespace continues the field before it.
_HEADER = re.compile(r"[!-9;-~]+:.*|[ \t].*")
_UNSUPPORTED: dict[str, str] = {}
# RFC 3030 §2: bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF
_BDAT = re.compile(r"BDAT (?P<size>[0-9]{1,10})(?P<last> LAST)?", re.IGNORECASE)
# RFC 3207 §4.2: after the handshake the client sends EHLO again (LHLO in LMTP, RFC 2033).
_HELLO_IN_TLS = ("EHLO", "LHLO")
# As the auth step's own bound (protocol/auth.py): more challenges than any mechanism needs.
_MAX_AUTH_ROUNDS = 10


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete reply.

    Attributes:
        line: where its first line stands in the transcript.
        code: the reply code.
        lines: each line's text after the code and the separator.
    """

    line: int
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """As the engine matches it: the lines' texts joined by ``\\n``."""
        return "\n".join(self.lines)

    def wire_lines(self) -> list[str]:
        """The reply as the server sent it: ``250-first``, ..., ``250 last``."""
        last = len(self.lines) - 1
        return [
            f"{self.code}{'-' if i < last else ' ' if text else ''}{text}"
            for i, text in enumerate(self.lines)
        ]


class ExchangeKind(enum.Enum):
    GREETING = "greeting"  # the banner; the client sends nothing
    COMMAND = "command"  # one command line and its reply
    MESSAGE = "message"  # the message after a 354, and the reply to its final "."
    STARTTLS = "starttls"  # STARTTLS answered 220: the session goes on in TLS
    AUTH = "auth"  # AUTH, its 334 rounds and the client's answers, and the final reply
    BDAT = "bdat"  # BDAT chunks up to LAST (RFC 3030): the message, its chunks, their replies


@dataclass(frozen=True, slots=True)
class Exchange:
    """One step of the dialogue.

    Attributes:
        line: where the command, the message's first line, or the greeting stands.
        text: COMMAND: the line as typed; MESSAGE: the message, its lines ended by ``\\n``, one
            level of dot-stuffing removed; STARTTLS: the line as typed; AUTH: ``AUTH`` and the
            mechanism only (the rest of the line is a secret); GREETING: None.
        reply: the server's answer (AUTH: the final one); None only for a final QUIT the
            transcript shows no reply to.
        notes: the author's notes on its lines.
        credentials: AUTH only: what the exchange authenticated with.
        challenges: AUTH only: the server's ``334`` replies, in order. BDAT: the replies
            to the chunks before the last.
        chunks: BDAT only: each chunk's size in octets, in order.
    """

    kind: ExchangeKind
    line: int
    text: str | None
    reply: Reply | None
    notes: tuple[str, ...] = ()
    credentials: Credentials | None = None
    challenges: tuple[Reply, ...] = ()
    chunks: tuple[int, ...] = ()


def read_dialogue(raw: RawSession) -> tuple[list[Exchange], list[tuple[int, str]]]:
    """The exchanges of one session, and notes for the user as (line, text).

    Raises:
        DialogueProblem: at the first line that cannot be read as the dialogue goes on.
    """
    reader = _SessionReader(raw)
    try:
        return reader.read(), reader.notes
    except DialogueProblem as problem:
        problem.notes = reader.notes
        raise


class DialogueProblem(Exception):
    """A session cannot be read as a dialogue at ``line``; ``notes`` are those made before it."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.notes: list[tuple[int, str]] = []


class _SessionReader:
    """Reads one session's lines as a dialogue; raises ``DialogueProblem`` at the first misfit."""

    def __init__(self, raw: RawSession) -> None:
        self.raw = raw
        self.double_spaced = raw.blank_lines_kept and _is_double_spaced(raw)
        self.lines = [
            line
            for line in raw.lines
            if not (self.double_spaced and (line.number - raw.first_line) % 2)
        ]
        self.pos = 0
        self.notes: list[tuple[int, str]] = []
        self.tls_line: int | None = None  # where the 220 to STARTTLS stands, once in TLS
        self.hello_due = False  # in TLS, and the EHLO that must come first has not come yet

    def peek(self) -> DialogueLine | None:
        """The next line that is not blank, without taking it."""
        while self.pos < len(self.lines) and self.lines[self.pos].role is Role.BLANK:
            self.pos += 1
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def take(self) -> DialogueLine:
        line = self.peek()
        assert line is not None
        self.pos += 1
        return self.tls_checked(line)

    def tls_checked(self, line: DialogueLine) -> DialogueLine:
        """``line``, after checking that it is marked as in TLS exactly when the session is."""
        if line.tls and self.tls_line is None:
            raise DialogueProblem(
                line.number,
                "this line is marked as sent in TLS (swaks' '~>' and '<~'), but no STARTTLS"
                " answered 220 comes before it (a session made with --tls-on-connect is not"
                " read yet): import a session that uses STARTTLS (swaks --tls)",
            )
        if self.tls_line is not None and not line.tls and self.raw.format == "swaks":
            raise DialogueProblem(
                line.number,
                f"this line is not marked as in TLS, but TLS started at line {self.tls_line}"
                " (swaks marks every line after it with '~>' or '<~'): a session cannot leave TLS",
            )
        return line

    def read(self) -> list[Exchange]:
        if not any(line.role is Role.CLIENT for line in self.lines):
            raise DialogueProblem(
                self.raw.first_line,
                "the session has server replies only, no client lines: import needs what the"
                " client typed too (is this a server log?)",
            )
        first = self.peek()
        assert first is not None
        if first.role is Role.CLIENT:
            raise DialogueProblem(
                first.number,
                f"the session starts with the client's {shown(first.text)}: the server's greeting"
                " (220) is missing; add it before this line",
            )
        greeting = self.reply()
        exchanges = [Exchange(ExchangeKind.GREETING, greeting.line, None, greeting)]
        while (line := self.peek()) is not None:
            if line.role is Role.SERVER:
                raise DialogueProblem(
                    line.number,
                    f"{shown(line.text)} answers no command: every reply after the greeting must"
                    " follow a client line",
                )
            command = self.take()
            text = command.text.rstrip(" \t\f")
            if text != command.text:
                # A terminal or an editor adds and drops trailing blanks at will.
                self.notes.append((command.number, "dropped trailing whitespace after the command"))
            verb = text.split(" ")[0].upper()
            if verb in _UNSUPPORTED:
                raise DialogueProblem(command.number, f"{shown(text)}: {_UNSUPPORTED[verb]}")
            if self.hello_due and verb not in _HELLO_IN_TLS:
                raise DialogueProblem(
                    command.number,
                    f"the first command in TLS must be EHLO (RFC 3207 §4.2: the client discards"
                    f" what it learnt before TLS), not {verb if verb == 'AUTH' else shown(text)};"
                    f" add the EHLO and its reply after the 220 at line {self.tls_line}",
                )
            self.hello_due = False
            notes = (command.note,) if command.note else ()
            if verb == "AUTH":
                exchanges.append(self.auth(command, text, notes))
                continue
            if verb == "BDAT":
                exchanges.append(self.bdat(command, text, notes))
                continue
            if verb == "STARTTLS" and self.tls_line is not None:
                raise DialogueProblem(
                    command.number,
                    f"STARTTLS inside TLS: TLS started at line {self.tls_line} already (RFC 3207"
                    " §4.2: STARTTLS is not offered again)",
                )
            reply = self.reply_to(command, verb)
            if verb == "STARTTLS" and reply is not None and reply.code == 220:
                exchanges.append(
                    Exchange(ExchangeKind.STARTTLS, command.number, text, reply, notes)
                )
                self.start_tls(reply)
                continue
            exchanges.append(Exchange(ExchangeKind.COMMAND, command.number, text, reply, notes))
            if reply is not None and reply.code == 354:
                exchanges.append(self.message(reply))
        return exchanges

    def start_tls(self, go_ahead: Reply) -> None:
        """The server said 220 to STARTTLS: what follows is inside TLS."""
        following = self.peek()
        if following is not None and self.raw.format == "telnet":
            raise DialogueProblem(
                following.number,
                f"the session goes on after the 220 to STARTTLS (line {go_ahead.line}), but a"
                " telnet or nc session cannot: a TLS handshake cannot be typed, so what a"
                " terminal shows after the 220 is not the session in TLS; end the transcript at"
                " the 220, or capture the session with swaks --tls",
            )
        self.tls_line = go_ahead.line
        self.hello_due = True

    def auth(self, command: DialogueLine, text: str, notes: tuple[str, ...]) -> Exchange:
        """The AUTH exchange starting at ``command``: its rounds and final reply, and its
        credentials. No message quotes its lines: they hold the secret."""
        words = text.split()
        mechanism = words[1].upper() if len(words) > 1 else ""
        if len(words) not in (2, 3):
            raise DialogueProblem(
                command.number,
                "AUTH takes a mechanism and at most an initial response (RFC 4954 §4: AUTH"
                f" mechanism [initial-response]); this line has {len(words) - 1} words after it",
            )
        if mechanism not in IMPORTED_MECHANISMS:
            raise DialogueProblem(
                command.number,
                f"AUTH {shown(clipped(mechanism, 40))}: import reads the PLAIN, LOGIN and"
                " CRAM-MD5 exchanges; remove this one from the transcript and write its auth"
                " step by hand (docs/scenario-language.md, auth)",
            )
        challenges: list[Reply] = []
        answers: list[tuple[int, str]] = []
        last = command.number
        while True:
            following = self.peek()
            if following is None or following.role is not Role.SERVER:
                raise DialogueProblem(
                    last,
                    f"the AUTH {mechanism} exchange has no reply here"
                    + (" (the session ends)" if following is None else "")
                    + "; add the server's reply (334 or the final 235 or 535)",
                )
            reply = self.reply()
            if reply.code != 334:
                break
            challenges.append(reply)
            if len(challenges) > _MAX_AUTH_ROUNDS:
                raise DialogueProblem(
                    reply.line,
                    f"the AUTH {mechanism} exchange has more than {_MAX_AUTH_ROUNDS} challenges"
                    " (334): import cannot read it",
                )
            following = self.peek()
            if following is None or following.role is not Role.CLIENT:
                raise DialogueProblem(
                    reply.line,
                    f"this 334 challenge has no answer from the client after it: the AUTH"
                    f" {mechanism} exchange is cut off",
                )
            answer = self.take()
            answers.append((answer.number, answer.text.strip()))
            last = answer.number
        initial = words[2] if len(words) == 3 else None
        try:
            credentials = decode_credentials(mechanism, command.number, initial, answers)
        except CredentialProblem as problem:
            raise DialogueProblem(problem.line, problem.message) from None
        return Exchange(
            ExchangeKind.AUTH,
            command.number,
            f"AUTH {mechanism}",
            reply,
            notes,
            credentials,
            tuple(challenges),
        )

    def reply_to(self, command: DialogueLine, verb: str) -> Reply | None:
        following = self.peek()
        if following is None:
            if verb == "QUIT":
                self.notes.append(
                    (
                        command.number,
                        "the transcript ends before the reply to QUIT; the step accepts any reply",
                    )
                )
                return None
            raise DialogueProblem(
                command.number,
                f"{shown(command.text)} has no reply after it (the session ends here); add the"
                " server's reply, or remove the line",
            )
        if following.role is Role.CLIENT:
            raise DialogueProblem(
                command.number,
                f"{shown(command.text)} has no reply before the next client line (line"
                f" {following.number}); import needs each command's reply (pipelining is not"
                " supported)",
            )
        return self.reply()

    def reply(self) -> Reply:
        first = self.take()
        code, more, text = self.reply_line(first)
        texts = [text]
        last = first
        while more:
            following = self.peek()
            if following is None or following.role is not Role.SERVER:
                raise DialogueProblem(
                    last.number,
                    f"the reply is not finished: {shown(last.text)} says another line follows"
                    f" ('{code}-'), but none does; its last line is '{code} text'",
                )
            last = self.take()
            line_code, more, text = self.reply_line(last)
            if line_code != code:
                # RFC 5321 §4.2.1: every line of a multiline reply carries the same code.
                raise DialogueProblem(
                    last.number,
                    f"the reply code changes from {code} to {line_code} inside a multiline reply",
                )
            texts.append(text)
        return Reply(first.number, code, tuple(texts))

    def reply_line(self, line: DialogueLine) -> tuple[int, bool, str]:
        match = REPLY_LINE.fullmatch(line.text)
        if match is None:
            raise DialogueProblem(
                line.number,
                f"{shown(line.text)} is not a reply line: it must start with a 3-digit code and a"
                " space or '-'",
            )
        return int(match.group("code")), match.group("sep") == "-", match.group("text") or ""

    def message(self, go_ahead: Reply) -> Exchange:
        lines: list[tuple[int, str]] = []  # (line number, message line)
        notes: list[str] = []
        while True:
            if self.pos >= len(self.lines):
                raise DialogueProblem(
                    go_ahead.line,
                    f"the message after this {go_ahead.code} has no lone '.' line ending it:"
                    " the transcript is cut off; add the '.' line and the server's reply",
                )
            line = self.tls_checked(self.lines[self.pos])
            self.pos += 1
            if line.note:
                notes.append(line.note)
            if line.role is Role.SERVER:
                raise DialogueProblem(
                    go_ahead.line,
                    f"the message after this {go_ahead.code} has a reply inside it (line"
                    f" {line.number}) before the lone '.' that ends it: the '.' line is missing",
                )
            if line.role is Role.CLIENT and line.text.rstrip() == ".":
                break
            lines.append((line.number, self.unstuffed(line)))
        following = self.peek()
        if following is None or following.role is not Role.SERVER:
            raise DialogueProblem(
                line.number,
                "the end of the message ('.') has no reply after it; add the server's reply",
            )
        reply = self.reply()
        text = "".join(f"{text}\n" for text in self.header_break_restored(lines))
        first = lines[0][0] if lines else line.number
        return Exchange(ExchangeKind.MESSAGE, first, text, reply, tuple(notes))

    def bdat(self, command: DialogueLine, text: str, notes: tuple[str, ...]) -> Exchange:
        """The BDAT chunks from ``command`` up to the one with LAST, as one exchange."""
        sizes: list[int] = []
        replies: list[Reply] = []
        message = ""
        while True:
            match = _BDAT.fullmatch(text)
            if match is None:
                raise DialogueProblem(
                    command.number,
                    f"{shown(text)} is not BDAT SIZE or BDAT SIZE LAST (RFC 3030 §2)",
                )
            size = int(match.group("size"))
            content, notes = self.chunk_content(command, size, notes)
            message += content
            sizes.append(size)
            following = self.peek()
            if following is None or following.role is not Role.SERVER:
                raise DialogueProblem(
                    command.number, f"{shown(text)} has no reply after its chunk; add it"
                )
            reply = self.reply()
            if match.group("last"):
                return Exchange(
                    ExchangeKind.BDAT, command.number, message, reply, notes, None,
                    tuple(replies), tuple(sizes),
                )  # fmt: skip
            if not 200 <= reply.code < 300:
                raise DialogueProblem(
                    reply.line,
                    f"the chunk of the BDAT at line {command.number} was refused ({reply.code}):"
                    " the client sends no more chunks (RFC 3030 §2), so the message has no"
                    " LAST to import; import a session whose chunks are accepted",
                )
            replies.append(reply)
            following = self.peek()
            next_text = "" if following is None else following.text.rstrip(" \t\f")
            if (
                following is None
                or following.role is not Role.CLIENT
                or not _BDAT.fullmatch(next_text)
            ):
                raise DialogueProblem(
                    command.number,
                    f"the BDAT chunks from this line end without a BDAT ... LAST (line"
                    f" {reply.line} answers the last one shown): add the chunk with LAST",
                )
            command = self.take()
            text = next_text
            if command.note:
                notes = (*notes, command.note)

    def chunk_content(
        self, command: DialogueLine, size: int, notes: tuple[str, ...]
    ) -> tuple[str, tuple[str, ...]]:
        """The octets of the chunk announced at ``command``: the client lines up to the next
        reply, each with its CRLF (``\\n`` here), or the last without it when that is what
        makes the count match (the chunk ends inside a line)."""
        texts: list[str] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.role is Role.SERVER:
                break
            self.tls_checked(line)
            self.pos += 1
            if line.note:
                notes = (*notes, line.note)
            texts.append(line.text)
        octets = sum(len(text.encode("utf-8")) + 2 for text in texts)
        if octets == size:
            return "".join(f"{text}\n" for text in texts), notes
        if texts and octets - 2 == size:
            return "".join(f"{text}\n" for text in texts[:-1]) + texts[-1], notes
        raise DialogueProblem(
            command.number,
            f"BDAT announced {size} octets, the lines below add up to {octets} (each line with"
            " its CRLF; a chunk that ends inside a line may leave out its last CRLF)",
        )

    def unstuffed(self, line: DialogueLine) -> str:
        if line.role is Role.BLANK or not line.text.startswith("."):
            return line.text
        # RFC 5321 §4.5.2: the receiver deletes the first of a line's leading periods.
        if not line.text.startswith(".."):
            self.notes.append(
                (
                    line.number,
                    f"{shown(line.text)} is not dot-stuffed, so a server reads it as"
                    f" {shown(line.text[1:])} (RFC 5321 §4.5.2); the message line is"
                    f" {shown(line.text[1:])}",
                )
            )
        return line.text[1:]

    def header_break_restored(self, lines: list[tuple[int, str]]) -> list[str]:
        texts = [text for _, text in lines]
        if not self.double_spaced or "" in texts or not texts or texts[0][:1] in (" ", "\t"):
            return texts
        for index, (number, text) in enumerate(lines):
            if not _HEADER.fullmatch(text):
                if index == 0:
                    break  # no header at all: nothing to separate
                self.notes.append(
                    (
                        number,
                        "restored the empty line between the message's header and body before"
                        " this line (the transcript is double-spaced)",
                    )
                )
                return [*texts[:index], "", *texts[index:]]
        return texts


def _is_double_spaced(raw: RawSession) -> bool:
    """Whether every other line of the session, from its first, is an empty line."""
    blank = {line.number for line in raw.lines if line.role is Role.BLANK}
    odd = range(raw.first_line + 1, raw.last_line, 2)
    return len(odd) > 0 and all(number in blank for number in odd)
