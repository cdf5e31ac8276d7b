"""The wire's step latencies of a STARTTLS session, from a capture that sees encrypted records.

``truth.py`` reads a plain-text dialogue: commands and replies are lines. After STARTTLS (RFC
3207) the capture holds TLS records (RFC 8446 §5.1), whose 5-byte headers are in the clear
(content type, version, length) and whose contents are not. This module times such a session
without decrypting it:

* Until the server's ``220`` to ``STARTTLS`` is complete, the dialogue is the plain one
  (``truth.StreamDialogue``): greeting, EHLO, STARTTLS. The first EHLO is plain text, so it
  carries the run's marker (the scenario's ``helo`` variable).
* From there each direction's bytes (in TCP sequence order, duplicates dropped) are cut into
  records; a record completes at the segment that carries its last byte, which is what
  smtpload's kernel clock reads too (the read that completed the record that completed the
  reply).
* **The handshake** (the ``tls`` step) runs from the client segment completing its ClientHello
  (the first client record) to the last server record completed before the client's Finished.
  In TLS 1.3 the client's Finished is its first ``application_data`` record (type 23: every
  encrypted record shows type 23, RFC 8446 §5.2), after the optional ChangeCipherSpec (type 20,
  middlebox compatibility, Appendix D.4). Only TLS 1.3 is read here: the row checks that every
  session used it.
* **The steps after it** are lock-step: smtpload sends a command only after the previous reply.
  So the client's application records after its Finished, grouped into runs with no server
  record between them (a message may take several records), are the commands in order; the
  reply to command *k* is completed by the last server application record before command
  *k+1*; the last command's (QUIT's) by the first server record after it, because the server's
  close_notify follows, and in TLS 1.3 an alert is encrypted and shows type 23 too.
* **NewSessionTickets** (RFC 8446 §4.6.1) are encrypted handshake messages, so they too show as
  type-23 server records, and they come after the client's Finished. They are told apart by
  order, not content: a TLS 1.3 server sends them once it has read the client's Finished,
  before it reads (so before it answers) the first command, so they sit in the server's byte
  stream before the first reply; the rule above (the *last* server record before the next
  command) never takes one for a reply. They are counted (``tickets``) so that the row shows
  what Postfix sent.

A stream whose records do not fit this (fewer commands than steps, a command without a reply
record after it, plain text after the 220 to STARTTLS) is left out and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from benchmarks.truth import (
    GREETING_FROM_SYN_ACK,
    Segment,
    StreamDialogue,
    WireSamples,
    dialogues,
)

__all__ = [
    "STARTTLS_STEPS",
    "Record",
    "TlsDialogue",
    "TlsWireSamples",
    "tls_wire_samples",
]

#: The STARTTLS scenario's reply-timed steps (benchmarks/starttls-message.yaml), in order.
STARTTLS_STEPS: tuple[str, ...] = (
    "greeting",
    "ehlo",
    "starttls",
    "tls",
    "ehlo#2",
    "mail",
    "rcpt",
    "data",
    "message",
    "quit",
)

# TLS record content types (RFC 8446 §5.1, B.1).
CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23

_RECORD_HEADER_BYTES = 5


class Record(NamedTuple):
    """One TLS record, as the capture shows it."""

    content_type: int
    time_ns: int  # capture time of the segment that carried its last byte
    segment: int  # that segment's position in the stream (0: the first segment)


class _RecordSplitter:
    """One direction's bytes, cut into TLS records."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes, time_ns: int, segment: int) -> list[Record]:
        buffer = self._buffer
        buffer += data
        records = []
        while len(buffer) >= _RECORD_HEADER_BYTES:
            length = int.from_bytes(buffer[3:5], "big")
            end = _RECORD_HEADER_BYTES + length
            if len(buffer) < end:
                break
            records.append(Record(buffer[0], time_ns, segment))
            del buffer[:end]
        return records


@dataclass(slots=True)
class TlsDialogue(StreamDialogue):
    """A stream's plain-text dialogue up to STARTTLS's ``220``, then its TLS records."""

    client_records: list[Record] = field(default_factory=list)
    server_records: list[Record] = field(default_factory=list)
    #: plain text came with or after the 220 to STARTTLS (RFC 3207 §5's response injection)
    injected: bool = False
    _client_tls: _RecordSplitter | None = None
    _server_tls: _RecordSplitter | None = None
    _segments: int = 0
    _segment: int = 0

    def feed(self, segment: Segment) -> None:
        self._segment = self._segments
        self._segments += 1
        StreamDialogue.feed(self, segment)

    def starttls_accepted(self) -> bool:
        """The last command is STARTTLS and its reply, complete, is 220 (what may follow it
        in the same read is the injection that ``injected`` notes)."""
        if not self.commands or self.commands[-1].upper() != b"STARTTLS":
            return False
        reply = len(self.commands)  # reply 0 is the greeting
        return len(self.reply_codes) > reply and self.reply_codes[reply] == 220

    def _on_server_bytes(self, data: bytes, time_ns: int) -> None:
        if self._server_tls is None:
            StreamDialogue._on_server_bytes(self, data, time_ns)
            if self.starttls_accepted():
                self._server_tls = _RecordSplitter()
                # A reply after the 220, or part of one, in what was read with it.
                self.injected |= (
                    bool(self._reply_buffer) or len(self.reply_codes) > len(self.commands) + 1
                )
            return
        self.server_records += self._server_tls.feed(data, time_ns, self._segment)

    def _on_client_bytes(self, data: bytes, time_ns: int) -> None:
        if self._client_tls is None and self.starttls_accepted():
            self._client_tls = _RecordSplitter()
            self.injected |= bool(self._command_buffer)
        if self._client_tls is None:
            StreamDialogue._on_client_bytes(self, data, time_ns)
            return
        self.client_records += self._client_tls.feed(data, time_ns, self._segment)


@dataclass(slots=True)
class TlsWireSamples(WireSamples):
    """``WireSamples``, and the NewSessionTickets seen per stream (records that are no reply)."""

    tickets: Counter[int] = field(default_factory=Counter)  # tickets per stream -> streams


def _commands(records: Sequence[Record], server: Sequence[Record]) -> list[Record]:
    """The client's application records grouped into commands: each run of records with no
    server record between them is one command, timed by its last record."""
    server_segments = [record.segment for record in server]
    commands: list[Record] = []
    for record in records:
        if commands and not any(
            commands[-1].segment < at < record.segment for at in server_segments
        ):
            commands[-1] = record
        else:
            commands.append(record)
    return commands


def _stream_latencies(
    dialogue: TlsDialogue, plain_steps: int, tls_steps: int
) -> tuple[list[int], int] | str:
    """The stream's latencies (ns) in step order and its ticket count, or why it is left out."""
    if dialogue.injected:
        return "plain text after the 220 to STARTTLS"
    if len(dialogue.reply_ns) < plain_steps or len(dialogue.command_ns) < plain_steps - 1:
        return "incomplete"
    assert dialogue.ack_ns is not None
    latencies = [dialogue.reply_ns[0] - dialogue.ack_ns]
    latencies += [dialogue.reply_ns[k + 1] - dialogue.command_ns[k] for k in range(plain_steps - 1)]
    client, server = dialogue.client_records, dialogue.server_records
    if not client or client[0].content_type != HANDSHAKE:
        return "no ClientHello"
    client_app = [r for r in client if r.content_type == APPLICATION_DATA]
    if not client_app:
        return "no client Finished"
    finished, after = client_app[0], client_app[1:]
    server_handshake = [r for r in server if r.segment < finished.segment]
    if not server_handshake:
        return "no server handshake"
    latencies.append(server_handshake[-1].time_ns - client[0].time_ns)
    server_app = [
        r for r in server if r.segment > finished.segment and r.content_type == APPLICATION_DATA
    ]
    commands = _commands(after, server_app)
    if len(commands) < tls_steps:
        return "incomplete"
    replies = []
    for k, command in enumerate(commands[:tls_steps]):
        following = commands[k + 1].segment if k + 1 < tls_steps else None
        answers = [
            r
            for r in server_app
            if r.segment > command.segment and (following is None or r.segment < following)
        ]
        if not answers:
            return "a command without a reply record"
        # The last step's reply is the first record after it: what follows it is the server's
        # encrypted close_notify (type 23 outside, like every TLS 1.3 record).
        reply = answers[-1] if following is not None else answers[0]
        replies.append(reply)
        latencies.append(reply.time_ns - command.time_ns)
    # The server's application records before the first reply's: its tickets (a first reply
    # cut over several records would add its earlier ones; Postfix writes a reply at once).
    tickets = server_app.index(replies[0])
    return latencies, tickets


def tls_wire_samples(
    segments: Iterable[Segment],
    step_names: Sequence[str] = STARTTLS_STEPS,
    *,
    marker: bytes | None = None,
) -> TlsWireSamples:
    """The wire latency of each reply-timed step of each complete STARTTLS stream.

    Args:
        segments: the capture, in capture order.
        step_names: the steps in order: the greeting, the plain-text steps up to
            ``starttls``, then ``tls``, then the steps inside TLS.
        marker: count only streams with a plain-text command containing it (the first EHLO);
            None counts every stream.
    """
    if "tls" not in step_names or step_names[0] != "greeting":
        raise ValueError("the steps must start with the greeting and hold the tls step")
    plain_steps = step_names.index("tls")
    tls_steps = len(step_names) - plain_steps - 1
    result = TlsWireSamples({name: [] for name in (*step_names, GREETING_FROM_SYN_ACK)})
    for dialogue in dialogues(segments, TlsDialogue).values():
        if marker is not None and not any(marker in command for command in dialogue.commands):
            result.streams_skipped["not this run's"] += 1
            continue
        if dialogue.syn_ack_ns is None or dialogue.ack_ns is None:
            result.streams_skipped["no handshake"] += 1
            continue
        outcome = _stream_latencies(dialogue, plain_steps, tls_steps)
        if isinstance(outcome, str):
            result.streams_skipped[outcome] += 1
            continue
        latencies, tickets = outcome
        if result.add_stream(step_names, latencies, dialogue.reply_ns[0] - dialogue.syn_ack_ns):
            result.tickets[tickets] += 1
    return result
