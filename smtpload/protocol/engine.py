"""One SMTP session as a state machine, with no I/O: steps out, events in.

The I/O layer (``net/client.py``) asks ``next_step()`` what to do, sends ``payload(step)``,
waits for the reply (or, for a ``close`` step, the end of the connection) within
``step.timeout_s``, and reports what happened with one of the ``on_*`` methods. The engine judges
each reply against the step's expectation, keeps the transcript, applies captures, and decides
the session's one outcome. It never reads a clock and never raises for anything a server does.

Per-message built-ins (``{message_id}``) are set each time a ``data`` step's message is
rendered, numbered by the messages this session has sent so far, so each message gets its own.
A send step with ``{message_size}`` (``MAIL FROM:<a> SIZE={message_size}``) renders the next
message then, counts it (message_size.py, RFC 1870 §4), and the message step sends those same
bytes.

After an unexpected reply the engine asks for one more exchange, a polite ``QUIT`` (RFC 5321
§4.1.1.10), unless the reply left the dialogue where QUIT cannot be sent: a ``354`` means the
server now reads message text, and ``221``/``421`` mean it is closing the connection.

Replies out of turn: RFC 5321 §4.2 lets a server reply only to a command (and greet once), so a
reply that is already there when a command is about to be sent answers nothing we said. The I/O
layer looks before each send (its parser, the replies read together, the kernel's receive queue)
and hands such a reply to ``on_early_reply``: a ``protocol_error`` ("reply before command"),
except a ``421``, which §3.8 lets a server send at any time when it must close; that one is
taken as the step's reply, the command is not sent, and no QUIT follows. A reply that arrives
after the look but before the command's own reply cannot be told from it; the reply that
follows it is then found before the next command.

TLS (RFC 3207, RFC 8314): a ``starttls`` step sends STARTTLS and expects 220; the compiled
``tls`` step after it (or first of all, with implicit TLS) is the handshake, which the I/O layer
does and reports with ``on_tls_established`` or ``on_tls_error`` (``tls_error``: a certificate
that does not verify, an alert, no common version); a close during it is ``on_closed``, as
anywhere. What the server said before TLS is not kept for after it: expectations are checked
per reply, and the scenario says EHLO again (RFC 3207 §4.2). In observe mode a starttls step
that got no 220 ends the session (with a polite QUIT): going on would send the steps meant for
inside TLS in the clear.

BDAT (RFC 3030, protocol/bdat.py): a ``bdat`` step is handed out once per chunk, lock-step
(each chunk's reply is read before the next chunk is sent): each chunk but the last as the
step's ``chunk_step`` (``NAME/chunk``, judged by ``expect_chunk``), the LAST chunk as the step
itself, so the I/O layer times and records each chunk like any step. A refused chunk ends the
session there as ``unexpected_reply``, and the polite QUIT follows: the server has read the
chunk's octets whatever it answered (§2), so the dialogue is in command state.

In *observe* mode (``smtpload record``, ``compare`` and ``replay``) an unexpected reply does not
end the session: every step's reply is kept in ``observations`` and the dialogue goes on as far
as the server lets it, so one changed reply shows as one difference, not a cascade. Two replies
still stop it, because going on would send the wrong thing: a ``354`` the step did not expect
(the server now reads message text), and a refused DATA (the message would be read as commands,
so the ``data`` step after it is skipped instead). And a ``close`` step is not waited for when
the step before it expected the server to close (``221`` or ``421``: RFC 5321 §3.8, §4.2.2) and
it answered otherwise: a server that did not say it closes keeps the connection open, so the
close step would only sit out its timeout. The session ends there, failed at the step before,
with a polite ``QUIT`` where one can be sent.

LMTP (RFC 2033, ``protocol/lmtp.py``): the message step gets one reply per recipient accepted
at RCPT in its transaction, in RCPT order (§4.2; a bdat step's LAST chunk the same, §4.3, while
each chunk before it gets one reply, as in SMTP). When a message's final reply is due, the I/O
layer asks ``replies_due(step)`` which recipients' replies to read, hands each to
``on_recipient_reply`` (judged by the step's ``expect_each`` entry for that RCPT step, else by
its ``expect``) and then calls ``on_recipients_done``. A failing recipient reply fails the
session at the part ``NAME/RCPTSTEP``; the other replies are still read (the server sends them
anyway), then the polite QUIT. With no recipient accepted nothing is due and the step is an
ordinary one: an LMTP server refuses DATA then (503), as handled above.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from smtpload.errors import RemoteProtocolError, counted
from smtpload.protocol.auth import CANCEL, AuthError, AuthExchange, redacted
from smtpload.protocol.bdat import ChunkCutter, ChunkPayload, PaddedOctets
from smtpload.protocol.compiler import (
    EXTENDED_HELLO_VERBS,
    HELLO_VERBS,
    CompiledScenario,
    CompiledStep,
)
from smtpload.protocol.expectations import ehlo_capabilities
from smtpload.protocol.lmtp import PROTOCOL_LMTP, TRANSACTION_RESETS, Recipients, part_name
from smtpload.protocol.message_size import message_octets
from smtpload.protocol.outcome import (
    MAX_TRANSCRIPT_REPLY_BYTES,
    Outcome,
    SessionFailure,
    TranscriptLine,
    reply_transcript_lines,
)
from smtpload.protocol.proxy import ProxyHeaderError
from smtpload.protocol.recipients import MAX_RCPT_LINE_OCTETS
from smtpload.protocol.scrub import Scrubber
from smtpload.protocol.transcript_buffer import TranscriptBuffer
from smtpload.protocol.wire import PaddedMessage, Reply, preview_line
from smtpload.protocol.xclient import XclientError
from smtpload.scenario.model import (
    MESSAGE_SIZE_VARIABLE,
    MESSAGE_STEP_KINDS,
    Block,
    StepKind,
)

# The members this module compares with, bound once as module names: on CPython 3.11 every
# attribute of an Enum class costs ~6x a plain one (EnumType defines __getattr__, so each lookup
# goes through a slot wrapper; 3.12 dropped it), and a lock-step step compared a dozen of them,
# 14 % of its instructions (callgrind, 1,000 sessions against smtp-sink).
_AUTH, _BDAT, _CLOSE, _DATA = StepKind.AUTH, StepKind.BDAT, StepKind.CLOSE, StepKind.DATA
_RCPT, _SEND, _STARTTLS = StepKind.RCPT, StepKind.SEND, StepKind.STARTTLS
_TLS, _XCLIENT = StepKind.TLS, StepKind.XCLIENT
_PASSED, _UNEXPECTED_REPLY, _TIMEOUT = Outcome.PASSED, Outcome.UNEXPECTED_REPLY, Outcome.TIMEOUT
_CONNECT_ERROR, _CONNECTION_CLOSED = Outcome.CONNECT_ERROR, Outcome.CONNECTION_CLOSED
_PROTOCOL_ERROR, _TLS_ERROR = Outcome.PROTOCOL_ERROR, Outcome.TLS_ERROR
_INTERRUPTED = Outcome.INTERRUPTED

__all__ = ["CONNECT_EXPECTATION", "POLITE_QUIT_TIMEOUT_S", "Observation", "SessionEngine"]

#: What the ``connect`` step expects, in reports.
CONNECT_EXPECTATION = "a connection"

#: How long smtpload waits for the reply to its own QUIT after a failure.
POLITE_QUIT_TIMEOUT_S = 5.0

# Reply codes after which a QUIT would be wrong: 354 starts message text (RFC 5321 §4.1.1.4);
# 221 and 421 announce that the server closes the channel (§3.8, §4.2.2).
_NO_QUIT_AFTER = frozenset({354, 221, 421})

# Reply codes with which the server says it closes the connection (RFC 5321 §3.8, §4.2.2).
_CLOSING = frozenset({221, 421})
# How much of an unfinished early reply a failure quotes: enough to recognise it.
_EARLY_PREVIEW_BYTES = 80

#: The name of smtpload's own end of data after a failed pipelined transaction (RFC 2920 §3.1).
LONE_DOT_STEP_NAME = "end of data (after failure)"

# An empty message's end of data: the "single dot" of RFC 2920 §3.1.
_LONE_DOT = b".\r\n"

# What a failure's transcript says when the session ends in the middle of DATA.
_CLOSING_IN_DATA = (
    "the server reads message text (354) and the transaction failed: closing the connection"
    " without the message, which aborts the transaction (RFC 5321 §3.3)"
)


def _check_command_line(line: bytes) -> None:
    """Refuse to send a rendered command that is not one line of text: a CR or LF before its
    own CRLF would end the command there and send the rest as one more (RFC 5321 §2.3.8), and
    NUL is no text (§2.4). The scenario's reader and the compiler refuse what the file and
    --var could bring, so only a value captured from a reply can (a bare CR inside a reply
    line): that is the server's doing, a protocol error.

    Raises:
        RemoteProtocolError: naming what the line holds.
    """
    body = line[:-2]
    if b"\r" in body or b"\n" in body or b"\0" in body:
        prefix = "a value captured from a reply would break this command line (CR, LF or NUL): "
        raise RemoteProtocolError(prefix + preview_line(body), line=body, prefix=prefix)


@dataclass(frozen=True, slots=True)
class Observation:
    """What one step of an observed session saw.

    Attributes:
        step: the scenario step.
        event: ``reply``, ``closed`` (the server closed the connection), ``timeout``,
            ``connection_error``, ``protocol_error``, ``skipped`` (not sent, see above),
            ``tls`` (a ``tls`` step's handshake completed) or ``tls_error``.
        reply: the reply, for ``reply`` events.
        mismatch: why the step's expectation did not hold, or None when it did.
        sent: the bytes the step sent (empty for greeting and close steps).
    """

    step: CompiledStep
    event: str
    reply: Reply | None = None
    mismatch: str | None = None
    sent: bytes | PaddedMessage | ChunkPayload = b""


class _Loop:
    """A repeat block under way: its runs left, this one included."""

    __slots__ = ("block", "runs_left")

    def __init__(self, block: Block, runs_left: int) -> None:
        self.block = block
        self.runs_left = runs_left


def _lone_dot(timeout_s: float) -> CompiledStep:
    """The "." that ends an empty message: RFC 2920 §3.1, "if the DATA command was accepted
    the client SMTP should send a single dot" when none of the RCPTs before it was accepted.
    Its reply ends the transaction (no message is delivered: there is no recipient), and the
    polite QUIT follows."""
    return CompiledStep(
        index=-1,
        kind=_SEND,
        name=LONE_DOT_STEP_NAME,
        payload=_LONE_DOT,
        template=None,
        data_size=None,
        expectation=None,
        capture=None,
        timeout_s=timeout_s,
    )


def _polite_quit(timeout_s: float) -> CompiledStep:
    return CompiledStep(
        index=-1,
        kind=_SEND,
        name="quit (after failure)",
        payload=b"QUIT\r\n",
        template=None,
        data_size=None,
        expectation=None,
        capture=None,
        timeout_s=timeout_s,
    )


class SessionEngine:
    """The state of one session.

    Attributes:
        outcome: PASSED until something fails; final once ``next_step()`` returns None.
        messages_accepted: DATA steps that got a 2xx reply (LMTP: for at least one recipient).
    """

    __slots__ = (
        "_auth",
        "_auth_abort",
        "_chunk",
        "_chunks",
        "_connected",
        "_current",
        "_drawn",
        "_failed_step",
        "_failure_got",
        "_group",
        "_group_last_code",
        "_has_groups",
        "_index",
        "_last_sent",
        "_loops",
        "_messages_sent",
        "_observe",
        "_observer",
        "_observing",
        "_pipelining",
        "_prepared",
        "_quit_step",
        "_random",
        "_rcpt_accepted",
        "_rcpt_at",
        "_rcpt_lines",
        "_rcpt_refused",
        "_rcpt_taken",
        "_recipient_failed",
        "_recipient_passed",
        "_recipients",
        "_repeat_starts",
        "_scenario",
        "_scrubber",
        "_skip_data",
        "_step_messages",
        "_transcript",
        "_variables",
        "_watcher",
        "groups_lock_step",
        "groups_pipelined",
        "messages_accepted",
        "observations",
        "outcome",
        "session",
    )

    def __init__(
        self,
        scenario: CompiledScenario,
        session: int,
        variables: dict[str, str] | None = None,
        *,
        observe: bool = False,
        watcher: Callable[[Observation], None] | None = None,
        rng: random.Random | None = None,
        observer: Callable[[int, Observation], None] | None = None,
    ) -> None:
        self._scenario = scenario
        self._repeat_starts = scenario.repeat_starts  # asked after every step (_advance)
        self._observe = observe
        # Observe mode: each observation goes to the observer as it is made (with the
        # session's number), or without one is kept in ``observations`` until the end.
        self._observer = observer
        self._watcher = watcher
        # Whether anything looks at the observations: every reply asks (_observe_event).
        self._observing = observe or watcher is not None
        self._last_sent: bytes | PaddedMessage | ChunkPayload = b""
        self._chunks: ChunkCutter | None = None  # the bdat step under way: its chunks to come
        self._chunk: ChunkPayload | None = None  # and the one being sent
        self._messages_sent = 0
        # A message rendered early, when the command declaring its size was (its step's
        # index, its bytes), sent when its step comes: message_size.py.
        self._prepared: tuple[int, bytes | PaddedMessage | PaddedOctets] | None = None
        self._skip_data = False
        self.observations: list[Observation] = []
        self.session = session
        self._variables = variables if variables is not None else {}
        self._index = 0
        self._quit_step: CompiledStep | None = None
        self._connected = False
        self._current: CompiledStep | None = None
        # Its first and last entries only: a repeat can make a session endless.
        self._transcript = TranscriptBuffer()
        self._failed_step: CompiledStep | None = None
        self._failure_got = ""
        self._auth: AuthExchange | None = None
        self._auth_abort: str | None = None
        # What an auth step sent or knows, kept out of what is shown of replies (scrub.py);
        # None until one runs, so sessions without secrets compute nothing.
        self._scrubber: Scrubber | None = None
        self.outcome = _PASSED
        self.messages_accepted = 0
        # LMTP only: the recipients whose replies follow the message (protocol/lmtp.py).
        self._recipients = Recipients() if scenario.protocol == PROTOCOL_LMTP else None
        self._recipient_failed = False
        self._recipient_passed = False
        # The session's own generator (session_random.py), made when first drawn from; the
        # caller passes the one its variables were drawn from, so that there is one, not two
        # alike (their draws would repeat each other's).
        self._random = rng
        # Per rcpt step (by index): the recipients it had so far, where a feed in order goes on.
        self._rcpt_taken: dict[int, int] = {}
        # The repeat blocks under way, innermost last; the counts drawn ahead of entering.
        self._loops: list[_Loop] = []
        self._drawn: dict[Block, int] = {}
        # Per message step with a mailbox (by index): the messages it sent so far.
        self._step_messages: dict[int, int] = {}
        # An rcpt step under way: the RCPT lines of this message and the one being sent.
        self._rcpt_lines: list[bytes] | None = None
        self._rcpt_at = 0
        # The current transaction's RCPT replies, for the lone "." (RFC 2920 §3.1).
        self._rcpt_accepted = self._rcpt_refused = 0
        # PIPELINING: whether the last hello's reply advertised it (RFC 2920 §3), and the
        # commands of a pipelined group sent and not answered yet: (step, what it sent, its
        # rcpt lines and the line's place, for an rcpt step).
        self._has_groups = scenario.has_pipeline_groups
        self._pipelining = False
        # A list, not a deque: a group is a few commands, and an empty deque costs ~760 bytes
        # in every session held open (a list, 56).
        self._group: list[tuple[CompiledStep, bytes | PaddedMessage, list[bytes] | None, int]] = []
        self._group_last_code: int | None = None
        self.groups_pipelined = 0
        self.groups_lock_step = 0
        self._settle()

    # -- the cursor over the steps ------------------------------------------------------------

    def _rng(self) -> random.Random:
        """This session's random generator: from the run's seed and the session's number."""
        if self._random is None:
            self._random = self._scenario.session_random(self.session)
        return self._random

    def _advance(self) -> None:
        """Move past the current step (its last run, for an rcpt or bdat step)."""
        self._index += 1
        if self._repeat_starts:  # else no repeat (a pipeline block runs its steps once)
            self._settle()

    def _settle(self) -> None:
        """After the cursor moved: at a repeat's end run its steps again while runs are left,
        and enter each repeat that starts here, drawing its count (0: skip it)."""
        starts = self._repeat_starts
        if not starts:
            return
        loops = self._loops
        while True:
            if loops and self._index == loops[-1].block.end:
                top = loops[-1]
                top.runs_left -= 1
                if top.runs_left == 0:
                    loops.pop()
                    continue  # the block around it may end here too
                self._index = top.block.start
            starting = starts.get(self._index)
            if starting is None:
                return
            block = _first_not_in(starting, [loop.block for loop in loops])
            if block is None:
                return
            count = self._repeat_count(block)
            if count == 0:
                self._index = block.end  # the block around it may end here
            else:
                loops.append(_Loop(block, count))  # a repeat inside it may start here too

    def _step_done(self, step: CompiledStep) -> None:
        """``step`` got its reply: an rcpt step goes on with its next recipient, if any."""
        if step.kind is _RCPT and self._rcpt_lines is not None:
            self._rcpt_at += 1
            if self._rcpt_at < len(self._rcpt_lines):
                return
            self._rcpt_lines, self._rcpt_at = None, 0
        self._advance()

    def _recipient_lines(self, step: CompiledStep) -> list[bytes]:
        """The RCPT lines of an rcpt step for the message under way (recipients.py)."""
        source = step.recipients
        assert source is not None, "an rcpt step has its recipients"
        taken = self._rcpt_taken.get(step.index, 0)
        rng = self._rng() if source.needs_random else None
        lines = source.lines(rng, self._variables, self.session, taken)
        assert lines, "an rcpt step has at least one recipient"
        self._rcpt_taken[step.index] = taken + len(lines)
        return lines

    # -- what to do next -------------------------------------------------------------------

    def next_step(self) -> CompiledStep | None:
        """The step to run now, or None when the session is over."""
        steps = self._scenario.steps
        if self._quit_step is not None:
            step, self._quit_step = self._quit_step, None
        elif self.outcome is not _PASSED or self._index >= len(steps):
            step = None
        else:
            step = steps[self._index]
            if self._skip_data and step.kind is _DATA:
                self._last_sent = b""
                self._observe_event(step, "skipped", None, "not sent: no 354")
                self._advance()
                step = steps[self._index] if self._index < len(steps) else None
            self._skip_data = False
            if step is not None and step.kind is _BDAT:
                step = self._next_chunk(step)
            elif step is not None and step.kind is _RCPT and self._rcpt_lines is None:
                self._rcpt_lines, self._rcpt_at = self._recipient_lines(step), 0
        if step is None and self._failed_step is not None and self.outcome is _PASSED:
            # Observe mode: the session went on past its differences; it still failed.
            self.outcome = _UNEXPECTED_REPLY
        self._current = step
        return step

    def _next_chunk(self, step: CompiledStep) -> CompiledStep:
        """A bdat step's next chunk: as its ``NAME/chunk`` step, or as itself for LAST."""
        if self._chunks is None:
            message = self._prepare_message(step.index)
            self._prepared = None
            assert not isinstance(message, PaddedMessage), "a bdat step's message is octets"
            self._chunks = ChunkCutter(message, step.chunking)
        chunk = self._chunk = self._chunks.next()
        assert chunk is not None, "the cutter ends with a LAST chunk, which ends the step"
        if chunk.last or step.chunk_step is None:
            return step
        return step.chunk_step

    @property
    def current_step(self) -> CompiledStep | None:
        """The step handed out last (in a pipelined group: the one whose reply is due)."""
        return self._current

    @property
    def step_in_progress(self) -> str | None:
        """The scenario step under way (``connect`` before the connection), if any.

        The I/O layer records a step when its reply (or close) arrives; a session cut off by
        Ctrl-C has this one step started but not recorded.
        """
        if not self._connected:
            return "connect" if self.outcome is _PASSED else None
        step = self._current
        return step.name if step is not None and step.index >= 0 else None

    def payload(self, step: CompiledStep) -> bytes | PaddedMessage | ChunkPayload:
        """The bytes to send for ``step`` (empty for greeting and close steps); a large padded
        message comes as a ``PaddedMessage``, to be sent chunk by chunk, a BDAT chunk as a
        ``ChunkPayload`` (its line and its octets)."""
        if step.kind is _AUTH and step.auth is not None:
            return self._auth_command(step)
        if step.kind is _BDAT and self._chunk is not None:
            self._last_sent = self._chunk
            self._transcript.append(("C", self._chunk.shown()))
            return self._chunk
        if step.kind is _RCPT and self._rcpt_lines is not None:
            return self._rcpt_payload(step, self._rcpt_lines[self._rcpt_at])
        if step.sized_message is not None:
            size = self._message_size(self._upcoming_message(step))
            self._variables[MESSAGE_SIZE_VARIABLE] = str(size)
        data: bytes | PaddedMessage
        try:
            if step.kind is _DATA and self._all_recipients_refused():
                # DATA got its 354 after the server refused every RCPT of the transaction:
                # RFC 2920 §3.1, "the client SMTP should send a single dot", not the message
                # (which would go to no one). Judged as the step's reply, as the message's.
                self._prepared = None
                self._transcript.append(
                    ("*", "no recipient was accepted: the lone '.' instead of the message")
                )
                data = _LONE_DOT
            elif step.kind is _DATA:
                message = self._prepare_message(step.index)
                self._prepared = None
                assert not isinstance(message, PaddedOctets), "a data step's message is stuffed"
                data = message
            elif step.payload is not None:
                data = step.payload
            else:
                data = step.render(self._variables)
                if step.kind is _SEND and isinstance(data, bytes):
                    _check_command_line(data)
        except XclientError as error:
            # Made from this session's variables: nothing was sent; the session ends as a
            # SCRAM credential that SASLprep refuses does (protocol_error), the run goes on.
            raise RemoteProtocolError(f"not sent: {error}") from None
        self._last_sent = data
        if data:
            # A message is shown as its size: the transcript need not hold on to its bytes.
            is_message = step.kind is _DATA and data != _LONE_DOT
            shown = len(data) if is_message else data
            self._transcript.append(("C", (step, shown)))
        return data

    def _rcpt_payload(self, step: CompiledStep, line: bytes) -> bytes:
        """One RCPT line of an rcpt step, checked and kept in the transcript.

        Raises:
            RemoteProtocolError: it is longer than SMTP allows (recipients.py): not sent.
        """
        if len(line) > MAX_RCPT_LINE_OCTETS:
            raise RemoteProtocolError(
                f"not sent: an RCPT command line of {len(line):,} octets, over the"
                f" {MAX_RCPT_LINE_OCTETS:,} SMTP allows (RFC 5321 §4.5.3.1.4, RFC 3461 §4): "
                + preview_line(line[:-2])
            )
        _check_command_line(line)
        self._last_sent = line
        self._transcript.append(("C", (step, line)))
        return line

    # -- PIPELINING (RFC 2920) ----------------------------------------------------------------

    def pipeline_group(
        self, step: CompiledStep
    ) -> list[tuple[CompiledStep, bytes | PaddedMessage]] | None:
        """``step`` (from ``next_step``) starts a pipeline group (``step.group_end``): when the
        server advertised PIPELINING, every command of the group rendered now, in order, as
        (step, bytes) pairs (an rcpt step once per recipient), for the I/O layer to send in
        one write and then read one reply each (``begin_group_reply``, ``on_group_reply``,
        ``on_group_done``); None when the group runs in lock-step (the server did not
        advertise PIPELINING), step by step as any steps. Either way the group is counted.

        Raises:
            RemoteProtocolError: a command that cannot be sent (``payload``): nothing was.
        """
        if step.kind is _RCPT and self._rcpt_at != 0:
            return None  # a lock-step group's rcpt step, handed out again: counted already
        if not self._pipelining:
            self.groups_lock_step += 1
            return None
        self.groups_pipelined += 1
        steps = self._scenario.steps
        members: list[tuple[CompiledStep, bytes | PaddedMessage]] = []
        for index in range(step.index, step.group_end):
            member = steps[index]
            if member.kind is _RCPT:
                lines = self._rcpt_lines if index == step.index else None
                if lines is None:
                    lines = self._recipient_lines(member)
                for at, line in enumerate(lines):
                    members.append((member, self._rcpt_payload(member, line)))
                    self._group.append((member, line, lines, at))
                continue
            data = self.payload(member)
            assert not isinstance(data, ChunkPayload), "no bdat step in a pipeline group"
            members.append((member, data))
            self._group.append((member, data, None, 0))
        return members

    def begin_group_reply(self) -> CompiledStep:
        """The next reply of a pipelined group is due: the step it answers (in order)."""
        member, sent, lines, at = self._group.pop(0)
        self._last_sent = sent
        if lines is not None:
            self._rcpt_lines, self._rcpt_at = lines, at
        self._current = member
        return member

    def on_group_reply(self, step: CompiledStep, reply: Reply) -> bool:
        """The reply to ``step`` (from ``begin_group_reply``) arrived. Returns whether it
        passed. Before a failure it is judged as any step's reply; after one (the session has
        failed, the commands after it were sent anyway) it is still read and judged for the
        reports, as RFC 2920 §3.1 asks: "check ALL statuses"."""
        self._group_last_code = reply.code
        if self.outcome is _PASSED:
            return self.on_reply(step, reply)
        self._transcript.append(("S", reply))
        self._count_transaction(step.verb, reply.code)
        why = step.expectation.mismatch(reply) if step.expectation is not None else None
        self._observe_event(step, "reply", reply, why)
        return why is None

    def on_group_done(self) -> None:
        """Every reply of a pipelined group was read (or the session ended while they came).

        After a wrong reply in the group, what follows depends on the group's LAST reply, as
        the dialogue stands after it: a 354 to DATA means the server reads message text, so
        the session sends the lone "." when no RCPT of the transaction was accepted (RFC 2920
        §3.1) and otherwise closes (a connection closed before the end of data aborts the
        transaction, RFC 5321 §3.3, so no unwanted message is delivered); a 221 or 421 means
        the server closes; any other reply leaves the dialogue in command state, and the
        polite QUIT follows.
        """
        self._group.clear()
        if self.outcome is not _UNEXPECTED_REPLY or self._group_last_code is None:
            self._group_last_code = None
            return
        last, self._group_last_code = self._group_last_code, None
        timeout_s = POLITE_QUIT_TIMEOUT_S
        if last == 354:
            self._quit_step = _lone_dot(timeout_s) if self._all_recipients_refused() else None
            if self._quit_step is None:
                self._transcript.append(("*", _CLOSING_IN_DATA))
        elif last in _CLOSING:
            self._quit_step = None
        else:
            self._quit_step = _polite_quit(timeout_s)

    def _count_transaction(self, verb: str, code: int) -> None:
        if verb in TRANSACTION_RESETS:
            self._rcpt_accepted = self._rcpt_refused = 0
        elif verb == "RCPT":
            if 200 <= code < 300:
                self._rcpt_accepted += 1
            else:
                self._rcpt_refused += 1

    def _all_recipients_refused(self) -> bool:
        """Whether the transaction had RCPTs and the server accepted none of them."""
        return self._rcpt_refused > 0 and self._rcpt_accepted == 0

    def _note_hello(self, step: CompiledStep, reply: Reply) -> None:
        """Keep whether the server advertises PIPELINING: each hello's reply says it anew
        (RFC 2920 §3), and TLS or XCLIENT start the dialogue over (``on_tls_established``)."""
        self._pipelining = (
            step.verb in EXTENDED_HELLO_VERBS
            and 200 <= reply.code < 300
            and "PIPELINING" in ehlo_capabilities(reply)
        )

    def _prepare_message(self, index: int) -> bytes | PaddedMessage | PaddedOctets:
        """The message of the message step at ``index`` in this session: rendered now (with
        the next message's per-message built-ins), or the one rendered earlier for a
        ``{message_size}``, so that the size declared is the size of what is sent. A data
        step's message is ready to follow a 354; a bdat step's is its octets (bdat.py)."""
        if self._prepared is not None and self._prepared[0] == index:
            return self._prepared[1]
        step = self._scenario.steps[index]
        self._messages_sent += 1
        data: bytes | PaddedMessage | PaddedOctets
        if step.messages is not None:
            # Generated or real messages (protocol/messages.py), drawn from this session's
            # generator (sizes, a mailbox's message at random).
            self._scenario.message_variables(self._variables, self._messages_sent)
            rng = self._rng()
            taken = self._step_messages.get(index, 0)
            self._step_messages[index] = taken + 1
            number = self._messages_sent
            if step.kind is _BDAT:
                data = step.messages.octets(rng, self._variables, number, taken)
            else:
                data = step.messages.message(rng, self._variables, number, taken)
        elif step.kind is _BDAT:
            if step.octets is None:
                self._scenario.message_variables(self._variables, self._messages_sent)
            data = step.bdat_message(self._variables)
        elif step.payload is not None:
            data = step.payload
        else:
            self._scenario.message_variables(self._variables, self._messages_sent)
            data = step.render(self._variables)
        self._prepared = (index, data)
        return data

    def _upcoming_message(self, step: CompiledStep) -> int:
        """The index of the message step that runs next after ``step`` (a send step with
        ``{message_size}``), following the repeats: at a repeat's end the next run starts
        again at its first step, after its last run the steps after it follow, and a repeat
        ahead runs as many times as it will: its count is drawn now, and kept for when the
        session enters it (``_repeat_count``), so that the size declared is the size sent."""
        assert step.sized_message is not None
        blocks = self._scenario.blocks
        if not blocks:
            return step.sized_message
        steps = self._scenario.steps
        loops = [(loop.block, loop.runs_left) for loop in self._loops]
        index = step.index + 1
        # Each step is passed at most once per repeat, then once more.
        for _ in range(len(steps) * (len(blocks) + 2)):
            if loops and index == loops[-1][0].end:
                block, runs_left = loops.pop()
                if runs_left > 1:
                    loops.append((block, runs_left - 1))
                    index = block.start
                continue
            starting = self._scenario.repeat_starts.get(index, ())
            ahead = _first_not_in(starting, [loop[0] for loop in loops])
            if ahead is not None:
                if ahead not in self._drawn:
                    self._drawn[ahead] = self._draw_count(ahead)
                count = self._drawn[ahead]
                if count == 0:
                    index = ahead.end
                else:
                    loops.append((ahead, count))
                continue
            if index >= len(steps):
                break
            if steps[index].kind in MESSAGE_STEP_KINDS:
                return index
            index += 1
        return step.sized_message

    def _draw_count(self, block: Block) -> int:
        """A repeat's count for this entry into it (uniform over its range)."""
        if block.count_min == block.count_max:
            return block.count_min
        return self._rng().randint(block.count_min, block.count_max)

    def _repeat_count(self, block: Block) -> int:
        """The count of the repeat the session enters now: the one drawn ahead for a
        ``{message_size}`` (``_upcoming_message``), else a new draw."""
        drawn = self._drawn.pop(block, None)
        return drawn if drawn is not None else self._draw_count(block)

    def _message_size(self, index: int) -> int:
        """The RFC 1870 size of this session's message of the message step at ``index``
        (message_size.py; a bdat step's octets are sent unstuffed, RFC 3030)."""
        bdat = self._scenario.steps[index].kind is _BDAT
        return message_octets(self._prepare_message(index), stuffed=not bdat)

    def _auth_command(self, step: CompiledStep) -> bytes:
        """The AUTH line of an auth step; the transcript and observations get it redacted."""
        assert step.auth is not None
        try:
            self._auth = step.auth.exchange(self._variables)
        except ValueError as error:  # SASLprep refused credentials rendered from variables
            raise AuthError(str(error)) from None
        self._auth_abort = None
        if self._scrubber is None:
            self._scrubber = Scrubber()
        self._scrubber.add_secret(step.auth.secret.render(self._variables))
        line = self._auth.command()
        self._scrubber.add_sent(line)
        shown = redacted(line)
        self._last_sent = shown.encode("utf-8") + b"\r\n"
        self._transcript.append(("C", shown))
        return line

    def auth_response(self, step: CompiledStep, reply: Reply) -> bytes | None:
        """An auth step's ``reply`` arrived: the line to send when it is a ``334`` challenge,
        None when it is the final reply (then given to ``on_reply`` as any step's).

        A challenge the mechanism cannot answer (not base64, a wrong SCRAM server signature,
        one round too many) is answered with ``*``, which cancels the exchange (RFC 4954 §4);
        the reply to it ends the step as a ``protocol_error`` naming the cause, as does a
        timeout or close while waiting for it.

        Raises:
            AuthError: the exchange failed (as the reply parser raises RemoteProtocolError);
                the I/O layer reports it with ``on_protocol_error``.
        """
        exchange = self._auth
        if exchange is None or step.kind is not _AUTH:
            return None
        if self._auth_abort is not None:
            self._transcript.append(("S", reply))
            raise AuthError(self._auth_abort)
        if reply.code != 334:
            self._auth = None
            try:
                exchange.finish(reply.code)
            except AuthError:
                self._transcript.append(("S", reply))
                raise
            return None
        self._transcript.append(("S", reply))
        try:
            line = exchange.respond("".join(reply.lines))
        except AuthError as error:
            self._auth_abort = str(error)
            line = CANCEL
        if self._scrubber is not None:
            self._scrubber.add_sent(line)
        self._transcript.append(("C", redacted(line)))
        return line

    @property
    def has_proxy_header(self) -> bool:
        """Whether the session starts with a PROXY protocol header (``proxy_header``)."""
        return self._scenario.proxy is not None

    def proxy_header(self, local: tuple[str, int] | None, peer: tuple[str, int] | None) -> bytes:
        """The PROXY protocol header to write before anything else (the scenario's ``proxy:``),
        with this session's values; ``local`` and ``peer`` are the connection's own address
        and the server's (the defaults of the source and the destination).

        Raises:
            RemoteProtocolError: a value made from this session's variables is no address or
                port, or the two addresses differ in family; nothing was sent, and the session
                ends as ``protocol_error`` at its first step, as a SCRAM credential that
                SASLprep refuses does.
        """
        proxy = self._scenario.proxy
        assert proxy is not None, "proxy_header() needs a scenario with a proxy: key"
        try:
            addresses = proxy.addresses(self._variables, local, peer)
        except ProxyHeaderError as error:
            raise RemoteProtocolError(f"PROXY header not sent: {error}") from None
        unknown = "UNKNOWN" if proxy.version == 1 else "LOCAL"  # no addresses, in each form
        what = unknown if addresses is None else str(addresses)
        self._transcript.append(("*", f"PROXY protocol v{proxy.version} header: {what}"))
        return proxy.header(addresses)

    # -- what happened ---------------------------------------------------------------------

    def on_connected(self, peer: str) -> None:
        self._connected = True
        self._transcript.append(("*", f"connected to {peer}"))

    def on_reply(self, step: CompiledStep, reply: Reply) -> bool:
        """A complete reply arrived for ``step``. Returns whether the step passed."""
        self._transcript.append(("S", reply))
        if step.index < 0:  # our own QUIT after a failure: any reply ends the session
            if step.name == LONE_DOT_STEP_NAME:  # the transaction is over: now the QUIT
                self._quit_step = _polite_quit(step.timeout_s)
            return True
        verb = step.verb
        if verb:
            if self._recipients is not None:
                # What the server did counts, expected or not: in observe mode an RCPT
                # accepted against its expectation still has a reply after the message.
                self._recipients.on_reply(verb, step.name, reply.code)
            self._count_transaction(verb, reply.code)
            if self._has_groups and verb in HELLO_VERBS:
                self._note_hello(step, reply)
        elif step.kind is _XCLIENT:
            self._pipelining = False  # a new greeting: the extensions are said anew after EHLO
        if step.kind is _CLOSE:
            self._observe_event(step, "reply", reply, "the server did not close the connection")
            self._fail(step, _UNEXPECTED_REPLY, f"reply {_first_line(self._shown(reply))}")
            return False
        chunk = self._chunk if step.kind is _BDAT else None
        if chunk is not None and chunk.last:
            self._chunks = self._chunk = None  # the message is over, whatever the reply
        expectation = step.expectation
        why = expectation.mismatch(reply) if expectation is not None else None
        if why is None and step.require_pipelining and not self._pipelining:
            if step.verb == "HELO":  # RFC 5321 §4.1.1.1: only EHLO's reply lists extensions
                why = "PIPELINING not asked for: HELO gets no extensions, send EHLO"
            else:
                why = "PIPELINING not advertised"
            why += " (--require-pipelining, RFC 2920)"
        if why is not None:
            if chunk is not None and not chunk.last:
                return self._chunk_refused(step, reply, why)
            if self._observe:
                return self._observe_mismatch(step, reply, why)
            self._unexpected(step, reply, why)
            return False
        if chunk is not None and not chunk.last:
            self._observe_event(step, "reply", reply, None)
            return True  # the bdat step goes on with its next chunk
        if step.capture is not None:
            # Later steps send what the capture finds, so a reply it cannot find it in fails
            # here, where the reason is visible, not later as a mysterious command.
            captured = step.capture.captures(reply.text)
            if captured is None:
                why = f"capture /{step.capture.pattern}/ found nothing"
                if self._observe:
                    for name in step.capture.groups:
                        self._variables[name] = ""
                    return self._observe_mismatch(step, reply, why)
                self._unexpected(step, reply, why)
                return False
            self._variables.update(captured)
        if step.kind in (_DATA, _BDAT) and 200 <= reply.code < 300:
            self.messages_accepted += 1
        if self._observing:
            self._observe_event(step, "reply", reply, None)
        self._step_done(step)
        return True

    def replies_due(self, step: CompiledStep) -> tuple[str, ...]:
        """``step``'s final reply is due (a message's end of data; BDAT's LAST chunk): in LMTP
        the RCPT steps whose replies to read now, in order; empty when one ordinary reply is
        due (SMTP, or no recipient accepted)."""
        if self._recipients is None:
            return ()
        if step.kind is _BDAT:
            # RFC 2033 §4.3: only BDAT ... LAST gets one reply per recipient; a chunk before it
            # (handed out as the step's NAME/chunk) gets one reply, as in SMTP.
            if self._chunk is None or not self._chunk.last:
                return ()
        elif step.kind is not _DATA:
            return ()
        return self._recipients.replies_due()

    def on_recipient_reply(self, step: CompiledStep, recipient: str, reply: Reply) -> bool:
        """LMTP: the reply for ``recipient`` (an RCPT step's name, from ``replies_due``) to the
        message of ``step`` arrived. Returns whether it passed (its ``expect_each`` entry, else
        the step's ``expect``). The first failing one fails the session at ``NAME/RCPT``."""
        self._transcript.append(("S", reply))
        expectation = dict(step.expect_each).get(recipient, step.expectation)
        part = replace(step, name=part_name(step.name, recipient), expectation=expectation)
        why = expectation.mismatch(reply) if expectation is not None else None
        if 200 <= reply.code < 300:
            self._recipient_passed = True
        if why is None:
            self._observe_event(part, "reply", reply, None)
            return True
        self._observe_event(part, "reply", reply, why)
        if not self._recipient_failed and self._failed_step is None:
            # The first difference is the session's; the replies after it are still read.
            got = f"{_first_line(self._shown(reply))} ({why})"
            if self._observe:
                self._failed_step, self._failure_got = part, got
            else:
                self._fail(part, _UNEXPECTED_REPLY, got)
        self._recipient_failed = True
        return False

    def on_recipients_done(self, step: CompiledStep) -> bool:
        """LMTP: every recipient's reply to ``step``'s message was read. Returns whether all
        of them passed; the step then counts as done (delivery complete)."""
        assert self._recipients is not None
        self._recipients.message_done()
        self._chunks = self._chunk = None  # a bdat step's LAST chunk: its message is over
        failed, passed = self._recipient_failed, self._recipient_passed
        self._recipient_failed = self._recipient_passed = False
        if passed:
            self.messages_accepted += 1
        if failed and not self._observe and self.outcome is not _PASSED:
            entry = self._transcript.last()
            last = entry[1] if entry is not None else None
            code = last.code if isinstance(last, Reply) else 0
            if code not in _NO_QUIT_AFTER:
                self._quit_step = _polite_quit(min(step.timeout_s, POLITE_QUIT_TIMEOUT_S))
            return False
        self._advance()
        return not failed

    def on_early_reply(self, step: CompiledStep, reply: Reply) -> bool:
        """``reply`` was already there when ``step``'s command was about to be sent, so the
        command was not sent. Returns whether the step passed: only a 421 its expectation
        accepts can (RFC 5321 §3.8); any other reply is a protocol error."""
        if reply.code == 421:
            return self.on_reply(step, reply)
        self._transcript.append(("S", reply))
        self.on_protocol_error(step, f"reply before command: {_first_line(self._shown(reply))}")
        return False

    def on_early_bytes(self, step: CompiledStep, received: bytes) -> None:
        """The start of a reply (not ending in a line end yet, and not a 421) was already there
        when ``step``'s command was about to be sent: a protocol error, as in ``on_early_reply``;
        the command is not sent."""
        if self._scrubber is not None:  # before the preview cuts a secret in two
            received = self._scrubber.scrub_bytes(received)
        preview = received[:_EARLY_PREVIEW_BYTES].decode("utf-8", "replace")
        more = ""
        if len(received) > _EARLY_PREVIEW_BYTES:
            more = f"... ({len(received)} bytes in all)"
        self.on_protocol_error(step, f"reply before command: {preview!r}{more} (incomplete)")

    def on_tls_established(self, step: CompiledStep, detail: str) -> None:
        """The ``tls`` step's handshake completed; ``detail`` says how (version, cipher)."""
        self._transcript.append(("*", f"TLS established: {detail}"))
        self._observe_event(step, "tls", None, None)
        self._pipelining = False  # RFC 3207 §4.2: what was said before TLS no longer holds
        self._advance()

    def on_tls_error(self, step: CompiledStep, detail: str) -> None:
        """TLS failed: the handshake (a certificate, an alert, no common version), or a record
        after it. The connection cannot be used any more, so no QUIT follows."""
        self._transcript.append(("*", f"TLS error: {detail}"))
        self._observe_event(step, "tls_error", None, detail)
        if step.index >= 0:
            self._fail(step, _TLS_ERROR, detail)

    def on_closed(self, step: CompiledStep) -> bool:
        """The server closed the connection while ``step`` waited. Returns whether it passed."""
        self._transcript.append(("*", "connection closed by the server"))
        if step.index < 0:
            return True
        if step.kind is _CLOSE:
            self._observe_event(step, "closed", None, None)
            self._advance()
            return True
        self._observe_event(step, "closed", None, "the server closed the connection")
        self._fail(step, _CONNECTION_CLOSED, "the server closed the connection")
        return False

    def on_timeout(self, step: CompiledStep) -> None:
        self._transcript.append(("*", f"no reply within {step.timeout_s:g} s"))
        self._observe_event(step, "timeout", None, f"no reply within {step.timeout_s:g} s")
        if step.index >= 0:
            self._fail(step, _TIMEOUT, f"nothing within {step.timeout_s:g} s")

    def on_connection_error(self, step: CompiledStep, detail: str) -> None:
        """Sending or receiving failed (a reset, a broken pipe)."""
        self._transcript.append(("*", detail))
        self._observe_event(step, "connection_error", None, detail)
        if step.index >= 0:
            self._fail(step, _CONNECTION_CLOSED, detail)

    def protocol_error_detail(self, error: RemoteProtocolError) -> str:
        """What a protocol error says, with this session's secrets scrubbed from the bytes it
        previews before the preview cuts and escapes them (a cut blob or an escaped non-ASCII
        password would no longer match)."""
        if self._scrubber is None:
            return str(error)
        if error.line is None:
            return self._scrubber.scrub(str(error))
        return error.prefix + preview_line(self._scrubber.scrub_bytes(error.line))

    def on_protocol_error(self, step: CompiledStep, detail: str) -> None:
        if self._scrubber is not None:
            detail = self._scrubber.scrub(detail)
        self._transcript.append(("*", f"protocol error: {detail}"))
        self._observe_event(step, "protocol_error", None, detail)
        if step.index >= 0:
            self._fail(step, _PROTOCOL_ERROR, detail)

    def on_interrupted(self) -> None:
        """Ctrl-C or SIGTERM cut the session off. A session that had already failed keeps
        its outcome: it was ending anyway (its polite QUIT was cut short)."""
        self._transcript.append(("*", "interrupted by Ctrl-C or SIGTERM"))
        if self.outcome is _PASSED:
            self.outcome = _INTERRUPTED
            self._failed_step = self._current if self._connected else None
            self._failure_got = "the run was interrupted"

    def on_connect_error(self, detail: str) -> None:
        # Said once, as the failure's "got": the transcript has nothing before it to place it
        # in, so a line there only repeated it (as a target that cannot be resolved has none).
        self.outcome = _CONNECT_ERROR
        self._failure_got = detail

    # -- reporting ---------------------------------------------------------------------------

    def failure(self) -> SessionFailure | None:
        """What a report shows of this session, or None when it passed."""
        if self.outcome is _PASSED:
            return None
        step = self._failed_step
        expected = CONNECT_EXPECTATION
        if step is not None:
            if step.kind is _CLOSE:
                expected = "the server to close the connection"
            elif step.kind is _TLS:
                expected = "a TLS handshake"
            elif step.expectation is not None:
                expected = step.expectation.description
            else:
                expected = "any reply"
            if step.require_pipelining:
                expected += " advertising PIPELINING (--require-pipelining)"
        return SessionFailure(
            session=self.session,
            outcome=self.outcome,
            step=step.name if step is not None else "connect",
            expected=expected,
            got=self._shown_text(self._failure_got),
            transcript=tuple(self._transcript_lines()),
        )

    def _observe_event(
        self, step: CompiledStep, event: str, reply: Reply | None, mismatch: str | None
    ) -> None:
        if step.index < 0 or not self._observing:
            return
        sent = self._last_sent
        if self._scrubber is not None:
            # Baselines and replay's view show these: the scrubbed reply, not the judged one.
            reply = self._shown(reply) if reply is not None else None
            mismatch = self._shown_text(mismatch) if mismatch is not None else None
            if isinstance(sent, bytes):
                sent = self._scrubber.scrub_bytes(sent)
        observation = Observation(step, event, reply, mismatch, sent)
        if self._observe:
            if self._observer is not None:
                self._observer(self.session, observation)
            else:
                self.observations.append(observation)
        if self._watcher is not None:
            self._watcher(observation)

    def _observe_mismatch(self, step: CompiledStep, reply: Reply, why: str) -> bool:
        """Observe mode: note the difference and go on where the dialogue allows it."""
        self._observe_event(step, "reply", reply, why)
        if self._failed_step is None:
            self._failed_step = step
            self._failure_got = f"{_first_line(self._shown(reply))} ({why})"
        codes = step.expectation.codes if step.expectation is not None else None
        expects_354 = codes is None or 354 in codes
        if step.kind is _STARTTLS:
            # No TLS to go on in: the steps after it were meant for inside TLS.
            self.outcome = _UNEXPECTED_REPLY
            if reply.code not in _NO_QUIT_AFTER:
                self._quit_step = _polite_quit(min(step.timeout_s, POLITE_QUIT_TIMEOUT_S))
        elif reply.code == 354 and not expects_354:
            # The server now reads message text: any command would become part of a message.
            self.outcome = _UNEXPECTED_REPLY
            if self._all_recipients_refused():  # the lone "." ends it (RFC 2920 §3.1)
                self._quit_step = _lone_dot(min(step.timeout_s, POLITE_QUIT_TIMEOUT_S))
        elif reply.code != 354 and codes is not None and 354 in codes:
            # DATA was refused: the message would be read as commands, so it is not sent.
            self._skip_data = True
        elif codes is not None and codes <= _CLOSING and reply.code not in _CLOSING:
            self._skip_close(step, reply)
        self._step_done(step)
        return False

    def _chunk_refused(self, step: CompiledStep, reply: Reply, why: str) -> bool:
        """A chunk before the last got a reply its ``expect_chunk`` does not accept.

        RFC 3030 §2: the server has read the chunk's octets whatever it answered, so the
        connection is in command state (a polite QUIT can follow, unlike after DATA's 354);
        and after a 4xx or 5xx the client "MUST NOT send any additional BDAT segments". In
        observe mode the message ends there (its later chunks are not sent) and the dialogue
        goes on with the step after the bdat step.
        """
        self._chunks = self._chunk = None
        if not self._observe:
            self._unexpected(step, reply, why)
            return False
        self._observe_mismatch(step, reply, f"{why}; the message's later chunks were not sent")
        self._last_sent = b""
        message = self._scenario.steps[step.index]
        self._observe_event(message, "skipped", None, "not sent: a chunk before it was refused")
        return False

    def _skip_close(self, step: CompiledStep, reply: Reply) -> None:
        """Observe mode: ``step`` expected the server to close the connection and it did not.

        A ``close`` step next would wait its whole timeout for a close that is not coming: it
        is noted as not waited for, and the session ends (it failed at ``step`` already).
        """
        steps = self._scenario.steps
        after = self._index + 1
        if self._loops or after >= len(steps) or steps[after].kind is not _CLOSE:
            return  # (a close step is never inside a repeat: the scenario's reader refuses it)
        self._last_sent = b""
        why = f"not waited for: the reply before was {reply.code}, not 221 or 421 (no close)"
        self._observe_event(steps[after], "skipped", None, why)
        self._index += 1  # past the close step; the caller moves past ``step``
        if reply.code not in _NO_QUIT_AFTER:
            self._quit_step = _polite_quit(min(step.timeout_s, POLITE_QUIT_TIMEOUT_S))

    def _unexpected(self, step: CompiledStep, reply: Reply, why: str) -> None:
        self._observe_event(step, "reply", reply, why)
        self._fail(step, _UNEXPECTED_REPLY, f"{_first_line(self._shown(reply))} ({why})")
        timeout_s = min(step.timeout_s, POLITE_QUIT_TIMEOUT_S)
        if reply.code not in _NO_QUIT_AFTER:
            self._quit_step = _polite_quit(timeout_s)
        elif reply.code == 354 and self._all_recipients_refused():
            # DATA accepted after every RCPT was refused: end the empty message with the lone
            # "." (RFC 2920 §3.1), then QUIT. With a recipient accepted the session closes
            # instead, so that no unwanted (empty) message is delivered (RFC 5321 §3.3).
            self._quit_step = _lone_dot(timeout_s)
        elif reply.code == 354:
            self._transcript.append(("*", _CLOSING_IN_DATA))

    def _fail(self, step: CompiledStep, outcome: Outcome, got: str) -> None:
        if self._auth_abort is not None and outcome is not _PROTOCOL_ERROR:
            # The exchange was cancelled for the server's fault; what followed is secondary.
            outcome, got = _PROTOCOL_ERROR, f"{self._auth_abort} (then: {got})"
        self.outcome = outcome
        self._failed_step = step
        self._failure_got = got

    def _shown(self, reply: Reply) -> Reply:
        """``reply`` as reports may show it: without this session's secrets (scrub.py)."""
        return reply if self._scrubber is None else self._scrubber.reply(reply)

    def _shown_text(self, text: str) -> str:
        return text if self._scrubber is None else self._scrubber.scrub(text)

    def _transcript_lines(self) -> list[TranscriptLine]:
        lines = self._raw_transcript_lines()
        scrubber = self._scrubber
        if scrubber is None:
            return lines
        # Replies are scrubbed before they are cut (below), so no cut leaves half a secret;
        # the other lines here too, since a capture can carry a quoted secret into a command.
        return [TranscriptLine(line.direction, scrubber.scrub(line.text)) for line in lines]

    def _raw_transcript_lines(self) -> list[TranscriptLine]:
        lines: list[TranscriptLine] = []
        for direction, item in self._transcript:  # bounded (transcript_buffer.py)
            if isinstance(item, Reply):
                lines.extend(reply_transcript_lines(self._shown(item).raw))
            elif isinstance(item, tuple):
                _, data = item
                if isinstance(data, int):  # a message, kept as its size
                    size = counted(data, "byte")
                    text = f"<message: {size}, dot-stuffed, ending in CRLF.CRLF>"
                else:
                    text = data.decode("utf-8", "replace").removesuffix("\r\n")
                lines.append(TranscriptLine(direction, text))
            else:
                lines.append(TranscriptLine(direction, str(item)))
        return lines


def _first_not_in(blocks: tuple[Block, ...], entered: list[Block]) -> Block | None:
    """The first of ``blocks`` (the repeats that start at a cursor, outermost first) that is
    not one of ``entered`` (the repeats the cursor is in)."""
    for block in blocks:
        if block not in entered:  # by identity first: no two blocks of a scenario are equal
            return block
    return None


def _first_line(reply: Reply) -> str:
    first = reply.lines[0] if reply.lines else ""
    if len(first) > MAX_TRANSCRIPT_REPLY_BYTES:
        # A failure's "got" is kept like its transcript, so it is bounded the same way.
        first = first[:MAX_TRANSCRIPT_REPLY_BYTES] + f"... ({len(first)} characters in all)"
    more = f" (+{counted(len(reply.lines) - 1, 'line')})" if len(reply.lines) > 1 else ""
    return f"{reply.code} {first}".rstrip() + more
