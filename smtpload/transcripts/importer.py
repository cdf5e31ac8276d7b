"""``smtpload import``: transcripts of hand-driven sessions in, scenario YAML text out.

This module owns how a dialogue read by ``reader.py`` is written as a scenario file: one
file per session, every value quoted so that YAML never coerces it, and the server's own words
kept as comments so that a reader sees what it said. It reads no files; the CLI does.

What each session becomes:

* ``name``: the file's stem (or ``name``), with ``-2``, ``-3``... for the second and later
  sessions of a file with several; ``description``: where it was imported from; ``target``:
  the host and port of the telnet/nc command line (or swaks' ``Trying``) when shown.
* The greeting is a ``greeting`` step; each command a ``send`` step, sent byte for byte as typed
  (``quit`` stays ``quit``) and always double-quoted; the message a ``data`` step (a ``|`` block
  when that reads back exactly, else a double-quoted string: lines with trailing whitespace or
  characters a block cannot hold). In sent text ``{`` and ``}`` are doubled, since it is a
  template. ``- close: true`` ends a session whose transcript shows the server closing.
* The message's ``Date:`` and ``Message-ID:`` header fields (any spelling of the names, a
  folded value included) get ``{date}`` and ``{message_id}`` instead of the values the
  transcript shows, with a comment above the step giving the old values: a load of sessions
  that all sent one literal Message-ID would be one message to a server or filter that
  deduplicates by it (RFC 5322 §3.6.4: the id is unique to one message), and a stale Date
  looks wrong. ``{message_id}`` is new for each message, also when a session sends several.
* A ``STARTTLS`` answered ``220`` is a ``starttls`` step (the handshake and the EHLO in TLS
  follow it, as in the transcript).
* An AUTH exchange is an ``auth`` step with the mechanism, the decoded user name and
  ``password: {env: NAME}`` (``credentials.password_variable``: ``SMTPLOAD_PASSWORD_`` and the
  user name in upper case, other characters ``_``; ``_2``, ``_3``... for another password of
  the same name in one transcript); the notes say which variable and how to set it, never the
  password. ``keep_secrets`` writes the password into the file instead (and a note warns). A
  password the transcript does not hold (CRAM-MD5's HMAC, swaks' ``--auth-hide-password``)
  must be set in that variable already, or the transcript is refused at the AUTH line: the
  scenario cannot be checked, nor replayed, without it. ``ImportedSession.secrets`` carries
  the passwords, in memory only, for ``replay``.
* Each expectation is the reply's code, with the reply's lines as a comment above the step. With
  ``strict``, also the enhanced status code (RFC 3463, at the start of the reply's text, when its
  class matches the code's) and ``text``: ``volatile.pattern_for`` of the reply's first line,
  anchored at the start of the text and at the end of that line, so volatile parts (queue ids,
  dates, counters) may differ; for a multiline EHLO reply the keywords of the other lines become
  ``capabilities`` that must be advertised. A replay against another server fails where its
  words differ (Postfix answers ``HELOO`` with ``5.5.2``, Sendmail with ``5.5.1``): intended.

Each generated file is validated with ``scenario.parse_scenario`` before it is returned, and its
steps compared with the dialogue; a mismatch is a bug, reported as an internal error.
"""

from __future__ import annotations

import os
import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath

from smtpload.errors import ScenarioError, shown
from smtpload.protocol.volatile import pattern_for
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import Scenario, StepKind, Target
from smtpload.transcripts.credentials import password_variable
from smtpload.transcripts.reader import (
    Exchange,
    ExchangeKind,
    Reply,
    Session,
    TranscriptError,
    parse_transcript,
)

__all__ = ["ImportResult", "ImportedSession", "TranscriptError", "import_transcript"]

# RFC 3463 §2: class "." subject "." detail, at the start of the reply text.
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?=\s|$)")
# What a YAML 1.1 stream may hold, less the line breaks YAML (and so a block) would split at.
_PRINTABLE = re.compile(
    "[\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*"
)
# RFC 5322 §2.2: a header field is a name of printable ASCII but ":", then ":" and its value;
# §2.2.3: a line starting with whitespace continues (folds) the field before it.
_FIELD = re.compile(r"(?P<name>[!-9;-~]+):(?P<space>[ \t]*)(?P<value>.*)")
# The fields whose values are new for each message sent, and the built-in that makes them so.
_PER_MESSAGE_FIELDS = {"date": "date", "message-id": "message_id"}
# The exchanges that carry a message (whose Date: and Message-ID: become built-ins).
_MESSAGE_KINDS = (ExchangeKind.MESSAGE, ExchangeKind.BDAT)
_STEP_INDENT = "  "  # "  - send: ..."
_KEY_INDENT = "    "  # "    expect: ..." (the step mapping's column)


@dataclass(frozen=True, slots=True)
class ImportedSession:
    """One session of a transcript as a scenario.

    Attributes:
        number: 1-based, in file order.
        first_line: the line in the transcript where the session starts.
        yaml_text: a complete scenario file (it validates with ``parse_scenario``).
        target: from the telnet/nc command line when the transcript shows one.
        secrets: the environment the scenario's ``{env: NAME}`` passwords are read from, as
            the transcript shows them: for ``replay``, in memory only. Never in a repr.
    """

    number: int
    first_line: int
    yaml_text: str
    target: Target | None
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What importing a transcript made.

    Attributes:
        format: ``"telnet"``, ``"swaks"`` or ``"cs"``.
        sessions: one per session found, in file order.
        notes: lines for stderr (``format: telnet (auto)``, ``line 33: stripped note '...'``,
            ``lines 1-21: skipped prose``).
    """

    format: str
    sessions: tuple[ImportedSession, ...]
    notes: tuple[str, ...]


def import_transcript(
    text: str,
    path: str,
    *,
    format: str = "auto",
    strict: bool = False,
    name: str | None = None,
    keep_secrets: bool = False,
    environ: Mapping[str, str] | None = None,
) -> ImportResult:
    """Turn every session of a transcript into scenario YAML.

    Args:
        text: the transcript; a whole page with prose around the sessions is fine.
        path: where it came from: named in messages and descriptions; its stem names the
            scenarios unless ``name`` is given.
        format: ``"telnet"``, ``"swaks"``, ``"cs"``, or ``"auto"`` to decide (a note says what).
        strict: also expect each reply's enhanced status code and text, not just its code.
        name: the scenarios' name instead of the file's stem.
        keep_secrets: write AUTH passwords into the scenarios, instead of ``{env: NAME}``.
        environ: where a password the transcript does not hold is looked for (default: the
            process's environment).

    Raises:
        TranscriptError: the transcript cannot be read as SMTP sessions; every problem, with
            its line number.
    """
    transcript = parse_transcript(text, path, format)
    environ = os.environ if environ is None else environ
    base = name if name is not None else PurePath(path).stem or "imported"
    several = len(transcript.sessions) > 1
    imported = []
    notes = list(transcript.notes)
    passwords = _Passwords(path, keep_secrets, environ)
    for session in transcript.sessions:
        for exchange in session.exchanges:
            passwords.add(exchange)
    if passwords.problems:
        raise TranscriptError(sorted(passwords.problems, key=_line_in_problem))
    for session in transcript.sessions:
        scenario_name = f"{base}-{session.number}" if several and session.number > 1 else base
        yaml_text = _scenario_yaml(
            session, transcript.format, path, scenario_name, strict, passwords.values
        )
        secrets = passwords.secrets(session)
        _check(yaml_text, session, path, ChainMap(dict(secrets), dict(environ)))
        imported.append(
            ImportedSession(session.number, session.first_line, yaml_text, session.target, secrets)
        )
        notes += _message_notes(session)
    notes += passwords.notes
    return ImportResult(transcript.format, tuple(imported), tuple(_by_line(notes)))


def _line_in_problem(problem: str) -> int:
    match = re.search(r":([0-9]+): ", problem)
    return int(match.group(1)) if match else 0


class _Passwords:
    """Where each AUTH exchange's password comes from: the YAML value of its ``password:``
    (by the exchange's line), the notes that say so, and the passwords for ``replay``."""

    def __init__(self, path: str, keep_secrets: bool, environ: Mapping[str, str]) -> None:
        self.path = path
        self.keep_secrets = keep_secrets
        self.environ = environ
        self.values: dict[int, str] = {}  # exchange line -> the YAML of its password
        self.variables: dict[str, str] = {}  # variable -> the password it stands for
        self.used: dict[int, tuple[str, str]] = {}  # exchange line -> (variable, password)
        self.notes: list[str] = []
        self.problems: list[str] = []

    def add(self, exchange: Exchange) -> None:
        credentials = exchange.credentials
        if exchange.kind is not ExchangeKind.AUTH or credentials is None:
            return
        line = exchange.line
        who = f"AUTH {credentials.mechanism} as {shown(credentials.username)}"
        password = credentials.password
        if password is None:
            # The transcript does not hold it: only the environment can. Required now, as the
            # issue asks: the scenario could be neither checked nor replayed without it.
            variable = password_variable(credentials.username)
            value = self.environ.get(variable)
            if value is None:
                self.problems.append(
                    f"{self.path}:{line}: {who}: the transcript does not hold the password"
                    f" ({credentials.missing_why}); set it in the environment variable"
                    f" {variable} (export {variable}=...) and import again: the scenario reads"
                    " it from there"
                )
                return
            self.used[line] = (variable, value)
            self.values[line] = f"{{env: {_double_quoted(variable)}}}"
            self.notes.append(
                f"line {line}: {who}: the transcript does not hold the password"
                f" ({credentials.missing_why}); the scenario reads it from {variable}, which is"
                " set"
            )
            return
        variable = self.variable_for(credentials.username, password)
        self.used[line] = (variable, password)
        if self.keep_secrets and not ("\r" in password or "\n" in password):
            self.values[line] = _double_quoted(_template_escaped(password))
            self.notes.append(
                f"line {line}: warning: {who}: --keep-secrets wrote the password into the"
                " scenario as it is: keep the file private (without --keep-secrets the scenario"
                f" reads it from {variable} instead)"
            )
            return
        self.values[line] = f"{{env: {_double_quoted(variable)}}}"
        # The line to export it is printed with a placeholder, not the password: stderr goes
        # to terminals' scrollback, CI logs and bug reports, and "no secret in any output" is
        # the promise of the auth step (README, AUTH). The transcript still holds the
        # password for whoever needs it, and --keep-secrets writes it where it is wanted.
        self.notes.append(
            f"line {line}: {who}: the password is not written into the scenario, which reads"
            f" it from the environment: before running it, export {variable}=... (the password"
            " the transcript shows; replay uses it without being told; --keep-secrets writes"
            " it into the file instead)"
        )

    def variable_for(self, username: str, password: str) -> str:
        """``username``'s variable; ``_2``, ``_3``... when one transcript shows the same name
        with another password (a wrong one that got 535, say)."""
        base = password_variable(username)
        variable, number = base, 1
        while self.variables.get(variable, password) != password:
            number += 1
            variable = f"{base}_{number}"
        self.variables[variable] = password
        return variable

    def secrets(self, session: Session) -> dict[str, str]:
        lines = {e.line for e in session.exchanges if e.kind is ExchangeKind.AUTH}
        return dict(value for line, value in self.used.items() if line in lines)


def _scenario_yaml(
    session: Session, format: str, path: str, name: str, strict: bool, passwords: dict[int, str]
) -> str:
    where = f"{path} line {session.first_line}"
    out = [
        f"# Imported by `smtpload import` from {_comment(where)}"
        f" ({format} transcript, lines {session.first_line}-{session.last_line}).",
        "# The comment above each step is the server's reply; "
        + (
            "expect checks its code, enhanced code and text."
            if strict
            else "expect checks its code (--strict: its text too)."
        ),
        f"name: {_double_quoted(name)}",
        f"description: {_double_quoted(f'Imported from {where} ({format} transcript)')}",
    ]
    if session.target is not None:
        out.append(f"target: {_double_quoted(str(session.target))}")
    if any(
        exchange.kind is ExchangeKind.COMMAND
        and (exchange.text or "").split(" ")[0].upper() == "LHLO"
        for exchange in session.exchanges
    ):
        out.append("protocol: lmtp")  # RFC 2033: the hello was LHLO
    out.append("steps:")
    for exchange in session.exchanges:
        if exchange.kind is ExchangeKind.AUTH:
            out.extend(_auth_step(exchange, strict, passwords[exchange.line]))
        else:
            out.extend(_step(exchange, strict))
    if session.closed:
        out.append(f"{_STEP_INDENT}# the server closed the connection")
        out.append(f"{_STEP_INDENT}- close: true")
    return "\n".join(out) + "\n"


def _step(exchange: Exchange, strict: bool) -> list[str]:
    lines = [f"{_STEP_INDENT}# note in the transcript: {_comment(note)}" for note in exchange.notes]
    message = None
    if exchange.kind in _MESSAGE_KINDS and exchange.text is not None:
        message = _MessageTemplate(exchange.text)
        lines += [f"{_STEP_INDENT}# {_comment(line)}" for line in message.comment()]
    reply = exchange.reply
    if reply is not None:
        lines += [f"{_STEP_INDENT}# {_comment(line)}" for line in reply.wire_lines()]
    else:
        lines.append(f"{_STEP_INDENT}# (the transcript shows no reply)")
    if exchange.kind in (ExchangeKind.GREETING, ExchangeKind.STARTTLS):
        assert reply is not None
        expect = _expectation(reply, strict, ehlo=False)
        action = "greeting" if exchange.kind is ExchangeKind.GREETING else "starttls"
        if len(expect) == 1:
            # The greeting's code is its value; starttls's 220 is the step's own default.
            value = expect[0] if action == "greeting" else " true"
            return [*lines, f"{_STEP_INDENT}- {action}:{value}"]
        return [*lines, f"{_STEP_INDENT}- {action}:", *(f"{_KEY_INDENT}{e}" for e in expect[1:])]
    assert exchange.text is not None
    if exchange.kind is ExchangeKind.COMMAND:
        lines.append(f"{_STEP_INDENT}- send: {_double_quoted(_template_escaped(exchange.text))}")
    elif exchange.kind is ExchangeKind.BDAT:
        assert message is not None
        lines += _bdat(message.text, exchange)
    else:
        assert message is not None
        lines += _data(message.text)
    if reply is not None:
        verb = exchange.text.split(" ")[0].upper() if exchange.kind is ExchangeKind.COMMAND else ""
        expect = _expectation(reply, strict, ehlo=verb in ("EHLO", "LHLO"))
        lines.append(f"{_KEY_INDENT}expect:{expect[0]}")
        lines += [f"{_KEY_INDENT}{e}" for e in expect[1:]]
    return lines


def _auth_step(exchange: Exchange, strict: bool, password: str) -> list[str]:
    """The ``auth`` step of an AUTH exchange; ``password`` is the YAML of its value. The
    comments show the server's words only: every client line of the exchange is a secret."""
    credentials, reply = exchange.credentials, exchange.reply
    assert credentials is not None
    assert reply is not None
    lines = [f"{_STEP_INDENT}# note in the transcript: {_comment(note)}" for note in exchange.notes]
    lines.append(
        f"{_STEP_INDENT}# AUTH {credentials.mechanism} as {_comment(credentials.username)}"
        " (the transcript's blobs are not copied)"
    )
    for challenge in exchange.challenges:
        lines += [f"{_STEP_INDENT}# {_comment(line)}" for line in challenge.wire_lines()]
    lines += [f"{_STEP_INDENT}# {_comment(line)}" for line in reply.wire_lines()]
    lines += [
        f"{_STEP_INDENT}- auth:",
        f"{_KEY_INDENT}  mechanism: {_double_quoted(credentials.mechanism)}",
        f"{_KEY_INDENT}  username: {_double_quoted(_template_escaped(credentials.username))}",
        f"{_KEY_INDENT}  password: {password}",
    ]
    expect = _expectation(reply, strict, ehlo=False)
    lines.append(f"{_KEY_INDENT}expect:{expect[0]}")
    lines += [f"{_KEY_INDENT}{e}" for e in expect[1:]]
    return lines


def _expectation(reply: Reply, strict: bool, *, ehlo: bool) -> list[str]:
    """``[" 250"]``, or ``["", "  code: 250", "  enhanced: ...", ...]`` for the long form."""
    if not strict:
        return [f" {reply.code}"]
    first = reply.lines[0]
    out = ["", f"  code: {reply.code}"]
    enhanced = _ENHANCED.match(first)
    if enhanced is not None and enhanced.group(1) == str(reply.code)[0]:
        out.append(f"  enhanced: {_double_quoted(enhanced.group())}")
    # The first line exactly (volatile parts generalised), then the end of the text or of that
    # line: later lines of a multiline reply are not pinned.
    pattern = _unescaped_spaces(pattern_for(first)).removesuffix("$")
    if len(reply.lines) > 1:
        pattern += "(?:\\n|$)"
    else:
        pattern += "$"
    out.append(f"  text: {_single_quoted(pattern)}")
    keywords = [line.split(" ")[0] for line in reply.lines[1:] if line.strip()]
    if ehlo and keywords:
        out.append("  capabilities: [" + ", ".join(_double_quoted(k) for k in keywords) + "]")
    return out


def _unescaped_spaces(pattern: str) -> str:
    # re.escape() writes a space as backslash-space; a space needs no escape. An even run of
    # backslashes before the space is escaped backslashes, and stays.
    return re.sub(r"(?<!\\)((?:\\\\)*)\\ ", r"\1 ", pattern)


def _bdat(message: str, exchange: Exchange) -> list[str]:
    """The ``bdat`` step of chunks seen in a transcript: ``data``'s message written under
    ``message:``, the sizes seen as ``chunks:`` (a last chunk of 0 octets after others as
    ``last: empty``), and the chunks' replies' code as ``expect_chunk`` unless it is 250."""
    chunks = list(exchange.chunks)
    last_empty = len(chunks) > 1 and chunks[-1] == 0
    if last_empty:
        chunks.pop()
    keys = []
    if len(chunks) > 1 or last_empty:
        keys.append(f"{_KEY_INDENT}  chunks: [{', '.join(str(size) for size in chunks)}]")
    if last_empty:
        keys.append(f"{_KEY_INDENT}  last: empty")
    out = []
    for line in _data(message):
        if line.startswith(f"{_STEP_INDENT}- data:"):
            out += [f"{_STEP_INDENT}- bdat:", *keys]
            out.append(f"{_KEY_INDENT}  message:{line.removeprefix(f'{_STEP_INDENT}- data:')}")
        elif line.startswith(f"{_STEP_INDENT}#"):
            out.append(line)
        else:
            out.append(f"  {line}" if line else "")
    codes = sorted({reply.code for reply in exchange.challenges})
    if codes and codes != [250]:
        shown_codes = str(codes[0]) if len(codes) == 1 else "2xx"
        out.append(f"{_KEY_INDENT}expect_chunk: {shown_codes}")
    return out


def _data(message: str) -> list[str]:
    """The ``data`` key with the message: a block scalar when it reads back exactly."""
    body = message.split("\n")[:-1] if message.endswith("\n") else None
    blockable = (
        body is not None
        and message.strip("\n") != ""
        and all(_PRINTABLE.fullmatch(line) and line == line.rstrip(" \t") for line in body)
    )
    if not blockable or body is None:
        why = "# quoted: a block would lose its trailing whitespace or odd characters"
        return [f"{_STEP_INDENT}{why}", f"{_STEP_INDENT}- data: {_double_quoted(message)}"]
    first = next(line for line in body if line)
    # A first line indented, or one starting with a blank line, needs an explicit indentation
    # (relative to the step's column); trailing empty lines need "keep" chomping.
    indicator = "2" if first[:1] in (" ", "\t") or body[0] == "" else ""
    chomping = "+" if message.endswith("\n\n") else ""
    block = [f"{_KEY_INDENT}  {line}" if line else "" for line in body]
    return [f"{_STEP_INDENT}- data: |{indicator}{chomping}", *block]


class _MessageTemplate:
    """A message as a ``data`` template: its text escaped, and the values of its ``Date:`` and
    ``Message-ID:`` fields replaced by the built-ins.

    Attributes:
        text: the template.
        replaced: (field name as typed, built-in, the field's lines as typed) for each field.
    """

    def __init__(self, message: str) -> None:
        self.replaced: list[tuple[str, str, list[str]]] = []
        lines = message.split("\n")
        out: list[str] = []
        in_header, index = True, 0
        while index < len(lines):
            line = lines[index]
            index += 1
            field = _FIELD.fullmatch(line) if in_header else None
            if field is None:
                # The header ends at the empty line before the body (RFC 5322 §2.1), or at a
                # line that is no header field: what follows is body, kept as it is.
                in_header = False
                out.append(_template_escaped(line))
                continue
            folded = [line]
            while index < len(lines) and lines[index][:1] in (" ", "\t"):
                folded.append(lines[index])
                index += 1
            name = field.group("name")
            builtin = _PER_MESSAGE_FIELDS.get(name.lower())
            value = "".join(part.strip() for part in [field.group("value"), *folded[1:]])
            if builtin is None or not value:
                out.extend(_template_escaped(part) for part in folded)
                continue
            self.replaced.append((name, builtin, folded))
            out.append(f"{name}:{field.group('space') or ' '}{{{builtin}}}")
        self.text = "\n".join(out)

    def summary(self) -> str | None:
        """What was replaced, in a few words; None when nothing was."""
        if not self.replaced:
            return None
        names = " and ".join(dict.fromkeys(f"{name}:" for name, _, _ in self.replaced))
        builtins = list(dict.fromkeys(f"{{{builtin}}}" for _, builtin, _ in self.replaced))
        verb = "are" if len(builtins) > 1 else "is"
        return f"{names} {verb} {' and '.join(builtins)} here"

    def comment(self) -> list[str]:
        """The comment lines above the step that say what was replaced, if anything was."""
        summary = self.summary()
        if summary is None:
            return []
        return [
            f"{summary}: new for each message sent,",
            "so that sessions do not all send the transcript's values:",
            *(f"  {line}" for _, _, folded in self.replaced for line in folded),
        ]


def _message_notes(session: Session) -> list[str]:
    notes = []
    for exchange in session.exchanges:
        if exchange.kind in _MESSAGE_KINDS and exchange.text is not None:
            summary = _MessageTemplate(exchange.text).summary()
            if summary is not None:
                notes.append(f"line {exchange.line}: message: {summary}, new for each message")
    return notes


def _by_line(notes: list[str]) -> list[str]:
    """Notes in line order ("line N: ..." and "lines N-M: ..."); others (the format) first."""

    def line_of(note: str) -> int:
        match = re.match(r"lines? ([0-9]+)", note)
        return int(match.group(1)) if match else 0

    return sorted(notes, key=line_of)


def _template_escaped(text: str) -> str:
    # Sent text is a template: "{{" and "}}" are literal braces.
    return text.replace("{", "{{").replace("}", "}}")


def _double_quoted(text: str) -> str:
    """A YAML double-quoted scalar holding exactly ``text``."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif _PRINTABLE.fullmatch(char):
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def _single_quoted(text: str) -> str:
    """A single-quoted scalar (no backslash escapes: regexes stay readable) when it can be."""
    if "\t" in text or not _PRINTABLE.fullmatch(text):
        return _double_quoted(text)
    return "'" + text.replace("'", "''") + "'"


def _comment(text: str) -> str:
    """``text`` fit for one comment line: characters YAML cannot hold are escaped."""
    if _PRINTABLE.fullmatch(text):
        return text
    return _double_quoted(text)[1:-1]


def _check(yaml_text: str, session: Session, path: str, environ: Mapping[str, str]) -> None:
    """The file must validate and hold the dialogue's texts (and credentials) exactly."""
    try:
        scenario = parse_scenario(yaml_text, path, environ=environ)
    except ScenarioError as error:
        raise TranscriptError(
            [
                f"{path}:{session.first_line}: internal error: the scenario made of this session"
                f" is invalid ({error}); please report it"
            ]
        ) from None
    if _texts(scenario) != [_expected_step(e, environ) for e in session.exchanges]:
        raise TranscriptError(
            [
                f"{path}:{session.first_line}: internal error: the scenario made of this session"
                " does not read back as the transcript; please report it"
            ]
        )


# (kind, text, (mechanism, username, password)): what a step must hold.
_StepTexts = tuple[StepKind, str | None, tuple[str, str, str] | None]


def _expected_step(exchange: Exchange, environ: Mapping[str, str]) -> _StepTexts:
    if exchange.kind is ExchangeKind.AUTH:
        credentials = exchange.credentials
        assert credentials is not None
        password = credentials.password
        if password is None:
            password = environ.get(password_variable(credentials.username), "")
        return (
            StepKind.AUTH,
            None,
            (credentials.mechanism, _template_escaped(credentials.username), password),
        )
    if exchange.kind is ExchangeKind.STARTTLS:
        return (StepKind.STARTTLS, "STARTTLS", None)
    if exchange.kind is ExchangeKind.GREETING:
        return (StepKind.GREETING, None, None)
    assert exchange.text is not None
    if exchange.kind is ExchangeKind.MESSAGE:
        return (StepKind.DATA, _MessageTemplate(exchange.text).text, None)
    if exchange.kind is ExchangeKind.BDAT:
        return (StepKind.BDAT, _MessageTemplate(exchange.text).text, None)
    return (StepKind.SEND, _template_escaped(exchange.text), None)


def _texts(scenario: Scenario) -> list[_StepTexts]:
    out: list[_StepTexts] = []
    for step in scenario.steps:
        if step.kind is StepKind.CLOSE:
            continue
        auth = None
        if step.auth is not None:
            secret = step.auth.secret
            # A value from the environment is the password itself; a template (written by
            # --keep-secrets) is the password with its braces doubled.
            password = (
                secret.text if secret.literal else secret.text.replace("{{", "{").replace("}}", "}")
            )
            auth = (step.auth.mechanism, step.auth.username.text, password)
        out.append((step.kind, step.text, auth))
    return out
