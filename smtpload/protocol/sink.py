"""The sink's side of SMTP: bytes from a client in, reply bytes out, no I/O.

This module owns every rule of the built-in sink server: which commands it accepts, in which
order, what it replies, and how it finds the end of a message. It must not import trio or
socket; ``net/sink.py`` owns the connections and feeds this class whatever arrives.

Theory of operation
-------------------
One `SinkConnection` per TCP connection. The I/O layer sends `SinkConnection.greeting`, then
passes every chunk it reads to `SinkConnection.receive_data` and sends back whatever bytes that
returns, in one write. A chunk may hold many pipelined commands (RFC 2920), part of a command,
or part of a message; replies come out in command order, and ``b""`` means "nothing to say
yet". After QUIT `SinkConnection.closed` is true: send the last replies, then close.

The connection is in one of two states. In COMMAND state a line ends at LF (CRLF or a bare LF);
only the unfinished tail of a chunk is kept, at most `MAX_COMMAND_LINE_BYTES` plus one byte,
and a longer line is answered once and skipped up to its newline. In DATA state the message is
never stored: the buffer is searched for the end-of-data line (a line that is exactly ".") and
only counters are kept. At most the two bytes of a possibly split end-of-data line (``.`` or
``.\\r``) are carried from one chunk to the next.

BDAT (RFC 3030 CHUNKING) is a third state, CHUNK: after ``BDAT n [LAST]`` the next ``n``
octets are the chunk's, counted and never stored, and the chunk is answered once they have all
arrived. Every chunk is read whatever the answer (RFC 3030 §2: a BDAT without MAIL gets its 503
after its octets, so the connection stays in command state); a message whose chunks add up to
more than `MAX_MESSAGE_BYTES` gets 552 at the chunk that crosses it, and the chunks after it
503.

The sink accepts every sender and recipient; it refuses only what a real server must refuse
(commands out of order, bad syntax, too-long lines, too-large messages), with Postfix's texts,
so that scenarios written against it also pass against Postfix.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

__all__ = [
    "DEFAULT_HOSTNAME",
    "MAX_COMMAND_LINE_BYTES",
    "MAX_MESSAGE_BYTES",
    "SinkConnection",
]

DEFAULT_HOSTNAME = "smtpload.sink"

#: The longest command line accepted, without its line ending. RFC 5321 §4.5.3.1.4 sets a
#: minimum of 512 octets that a server must accept; extensions (SMTPUTF8, MAIL parameters) make
#: real lines longer, so the sink allows four times Postfix's usual need and no more.
MAX_COMMAND_LINE_BYTES = 2048

#: The message size the sink advertises and enforces (RFC 1870 SIZE).
MAX_MESSAGE_BYTES = 104_857_600

_LF = 0x0A
_CR = 0x0D
_DOT = 0x2E

# Replies are built once; a reply is always a complete CRLF-terminated line (RFC 5321 §4.2).
_OK = b"250 2.0.0 Ok\r\n"
_MAIL_OK = b"250 2.1.0 Ok\r\n"
_RCPT_OK = b"250 2.1.5 Ok\r\n"
_START_DATA = b"354 End data with <CR><LF>.<CR><LF>\r\n"
_BYE = b"221 2.0.0 Bye\r\n"
_CANNOT_VRFY = b"252 2.0.0 Cannot VRFY user\r\n"
_HELP = b"214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT\r\n"
_NOT_RECOGNIZED = b"500 5.5.2 Error: command not recognized\r\n"
_BAD_SYNTAX = b"500 5.5.2 Error: bad syntax\r\n"
_LINE_TOO_LONG = b"500 5.5.0 Error: line too long\r\n"
_NOT_IMPLEMENTED = b"502 5.5.1 Error: command not implemented\r\n"
_NEED_HELO = b"503 5.5.1 Error: send HELO/EHLO first\r\n"
_NEED_MAIL = b"503 5.5.1 Error: need MAIL command\r\n"
_NEED_RCPT = b"503 5.5.1 Error: need RCPT command\r\n"
_NESTED_MAIL = b"503 5.5.1 Error: nested MAIL command\r\n"
_EHLO_SYNTAX = b"501 5.5.4 Syntax: EHLO hostname\r\n"
_HELO_SYNTAX = b"501 5.5.4 Syntax: HELO hostname\r\n"
_MAIL_SYNTAX = b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
_RCPT_SYNTAX = b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"
_BAD_RECIPIENT = b"501 5.1.3 Bad recipient address syntax\r\n"
_BAD_SENDER = b"501 5.1.7 Bad sender address syntax\r\n"
_DATA_SYNTAX = b"501 5.5.4 Syntax: DATA\r\n"
_RSET_SYNTAX = b"501 5.5.4 Syntax: RSET\r\n"
_VRFY_SYNTAX = b"501 5.5.4 Syntax: VRFY address\r\n"
_BAD_SIZE = b"501 5.5.4 Bad message size syntax\r\n"
_SIZE_EXCEEDS_LIMIT = b"552 5.3.4 Message size exceeds fixed limit\r\n"
_MESSAGE_TOO_BIG = b"552 5.3.4 Error: message file too big\r\n"
_BDAT_SYNTAX = b"501 5.5.4 Syntax: BDAT count [LAST]\r\n"
_DATA_AFTER_BDAT = b"503 5.5.1 Error: DATA after BDAT in the same transaction\r\n"


class _State(enum.Enum):
    COMMAND = "command"  # reading command lines
    DATA = "data"  # after 354: reading a message up to the end-of-data line
    CHUNK = "chunk"  # after BDAT n: reading the chunk's n octets


class SinkConnection:
    """The server side of one SMTP connection that accepts every message and keeps none.

    Args:
        hostname: the name the sink gives itself in the banner and in replies to EHLO/HELO;
            a plain domain without spaces.
        connection_id: a number the I/O layer gives each connection, so that queue ids in
            ``250 ... queued as ID`` replies differ between connections.

    Raises:
        ValueError: the hostname is empty, not ASCII, or contains whitespace.

    Attributes:
        messages: messages accepted (answered with ``250 ... queued as``).
        message_bytes: bytes of accepted messages as sent (dot-stuffed), without the
            end-of-data line.
        commands: command lines answered, valid or not.
    """

    __slots__ = (
        "_chunk_left",
        "_chunk_reply",
        "_chunked_bytes",
        "_closed",
        "_data_at_line_start",
        "_data_bytes",
        "_discarding",
        "_ehlo_reply",
        "_greeted",
        "_hostname",
        "_in_mail",
        "_pending",
        "_queue_prefix",
        "_recipients",
        "_state",
        "commands",
        "message_bytes",
        "messages",
    )

    def __init__(
        self, hostname: str = DEFAULT_HOSTNAME, *, connection_id: int = 0, pipelining: bool = True
    ) -> None:
        if not hostname or not hostname.isascii() or any(c.isspace() for c in hostname):
            raise ValueError(
                f"invalid sink hostname {hostname!r}: use a plain domain such as 'sink.test'"
            )
        self._hostname = hostname.encode("ascii")
        # RFC 5321 §4.1.1.1: the first line names the server, each further line one extension.
        self._ehlo_reply = b"".join(
            [
                b"250-" + self._hostname + b"\r\n",
                # RFC 2920; left out (``smtpload sink --no-pipelining``) to test a client
                # against a server that does not offer it. Pipelined commands are still
                # answered in order, as Postfix answers them with the keyword discarded.
                b"250-PIPELINING\r\n" if pipelining else b"",
                b"250-SIZE %d\r\n" % MAX_MESSAGE_BYTES,  # RFC 1870
                b"250-8BITMIME\r\n",  # RFC 6152
                # RFC 3461: NOTIFY, ORCPT, RET and ENVID are accepted (the sink delivers
                # nothing, so it owes no notification: its 250 is the message's last stop).
                b"250-DSN\r\n",
                b"250-ENHANCEDSTATUSCODES\r\n",  # RFC 2034
                b"250-CHUNKING\r\n",  # RFC 3030
                b"250 SMTPUTF8\r\n",  # RFC 6531
            ]
        )
        self._queue_prefix = b"%06X" % connection_id
        self._state = _State.COMMAND
        self._pending = b""  # an unfinished command line, or a possibly split "." line
        self._discarding = False  # skipping the rest of a too-long command line
        self._closed = False
        self._greeted = False
        self._in_mail = False
        self._recipients = 0
        self._data_bytes = 0
        self._data_at_line_start = True
        self._chunk_left = 0  # octets of the BDAT chunk still to read
        self._chunk_reply = b""  # its reply, sent once they are read
        self._chunked_bytes = -1  # octets of this transaction's BDAT chunks; -1: none yet
        self.messages = 0
        self.message_bytes = 0
        self.commands = 0

    @property
    def closed(self) -> bool:
        """True once QUIT (or a 421) was answered: send the last replies, then close."""
        return self._closed

    @property
    def buffered_bytes(self) -> int:
        """Bytes held back until more data arrives; bounded whatever the client sends."""
        return len(self._pending)

    def greeting(self) -> bytes:
        """The 220 banner to send as soon as the connection is open (RFC 5321 §4.3.1)."""
        return b"220 " + self._hostname + b" ESMTP smtpload sink\r\n"

    def timeout_reply(self) -> bytes:
        """The 421 to send before closing an idle connection (RFC 5321 §4.5.3.2, §3.8)."""
        self._closed = True
        return b"421 4.4.2 " + self._hostname + b" Error: timeout exceeded\r\n"

    def shutdown_reply(self) -> bytes:
        """The 421 to send to connected clients when the sink stops (RFC 5321 §3.8)."""
        self._closed = True
        return b"421 4.3.2 " + self._hostname + b" Service shutting down\r\n"

    def receive_data(self, data: bytes | bytearray) -> bytes:
        """Consume bytes from the client; return the replies to send for them, in order.

        Returns ``b""`` when nothing is complete yet. After QUIT the rest is ignored.
        """
        if self._closed:
            return b""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        elif type(data) is not bytes:
            data = bytes(data)  # slices of it become dictionary keys
        replies: list[bytes] = []
        pos = 0
        end = len(data)
        while pos < end and not self._closed:
            if self._state is _State.DATA:
                pos = self._consume_message(data, pos, replies)
            elif self._state is _State.CHUNK:
                pos = self._consume_chunk(data, pos, replies)
            else:
                pos = self._consume_command(data, pos, replies)
            if pos < 0:  # the rest is an incomplete line, kept in self._pending
                break
        return b"".join(replies)

    # -- COMMAND state -------------------------------------------------------------------------

    def _consume_command(self, data: bytes, pos: int, replies: list[bytes]) -> int:
        """Answer the command line at ``pos``; return where the next one starts, or -1."""
        newline = data.find(b"\n", pos)
        if newline < 0:
            if self._discarding:
                return -1
            # One byte more than the limit may be the CR of a CRLF not yet arrived.
            if len(data) - pos > MAX_COMMAND_LINE_BYTES + 1:
                self._discarding = True
                self.commands += 1
                replies.append(_LINE_TOO_LONG)
            else:
                self._pending = data[pos:]
            return -1
        if self._discarding:
            self._discarding = False
            return newline + 1
        line_end = newline - 1 if newline > pos and data[newline - 1] == _CR else newline
        self.commands += 1
        if line_end - pos > MAX_COMMAND_LINE_BYTES:
            replies.append(_LINE_TOO_LONG)
            return newline + 1
        # RFC 5321 §4.1.1: a verb, then SP and its arguments; §2.4: verbs are case-insensitive.
        space = data.find(b" ", pos, line_end)
        if space < 0:
            verb = data[pos:line_end].upper()
            argument = b""
        else:
            verb = data[pos:space].upper()
            argument = data[space + 1 : line_end].strip()
        handler = _COMMANDS.get(verb)
        if handler is not None:
            replies.append(handler(self, argument))
        elif verb in _NOT_IMPLEMENTED_VERBS:
            replies.append(_NOT_IMPLEMENTED)
        elif not data[pos:line_end].strip():
            replies.append(_BAD_SYNTAX)
        else:
            replies.append(_NOT_RECOGNIZED)
        return newline + 1

    def _reset_transaction(self) -> None:
        self._in_mail = False
        self._recipients = 0
        self._chunked_bytes = -1

    def smtp_EHLO(self, argument: bytes) -> bytes:
        if not argument:
            return _EHLO_SYNTAX
        # RFC 5321 §4.1.4: a later EHLO resets the state exactly as RSET does.
        self._reset_transaction()
        self._greeted = True
        return self._ehlo_reply

    def smtp_HELO(self, argument: bytes) -> bytes:
        if not argument:
            return _HELO_SYNTAX
        self._reset_transaction()
        self._greeted = True
        return b"250 " + self._hostname + b"\r\n"

    def smtp_MAIL(self, argument: bytes) -> bytes:
        # RFC 5321 §4.1.4: a transaction needs EHLO/HELO first, MAIL cannot nest, and a
        # command out of order gets 503 and leaves the state unchanged.
        if not self._greeted:
            return _NEED_HELO
        if self._in_mail:
            return _NESTED_MAIL
        path = _split_path(argument, b"FROM:")
        if path is None:
            return _MAIL_SYNTAX
        # An empty address ("<>", the null reverse-path of a bounce) is valid: §4.5.5.
        address, parameters = path
        if address is None:
            return _BAD_SENDER
        for parameter in parameters.split():
            if parameter[:5].upper() == b"SIZE=":
                # RFC 1870 §6: refuse at MAIL a message declared larger than the limit.
                size = parameter[5:]
                if not size.isdigit():
                    return _BAD_SIZE
                if int(size) > MAX_MESSAGE_BYTES:
                    return _SIZE_EXCEEDS_LIMIT
        self._in_mail = True
        return _MAIL_OK

    def smtp_RCPT(self, argument: bytes) -> bytes:
        if not self._in_mail:
            return _NEED_MAIL
        path = _split_path(argument, b"TO:")
        if path is None:
            return _RCPT_SYNTAX
        address, _parameters = path
        if not address:  # RFC 5321 §4.1.1.3: a forward-path is never empty
            return _BAD_RECIPIENT
        self._recipients += 1
        return _RCPT_OK

    def smtp_DATA(self, argument: bytes) -> bytes:
        # RFC 5321 §4.1.1.4: with no MAIL or no RCPT the server may answer 503. Postfix says
        # "need RCPT" in both cases, and so does the sink.
        if not self._recipients:
            return _NEED_RCPT
        if self._chunked_bytes >= 0:  # RFC 3030 §2: BDAT and DATA never mix in one message
            return _DATA_AFTER_BDAT
        if argument:
            return _DATA_SYNTAX
        self._state = _State.DATA
        self._data_bytes = 0
        self._data_at_line_start = True
        return _START_DATA

    def smtp_BDAT(self, argument: bytes) -> bytes:
        """``BDAT n [LAST]`` (RFC 3030 §2): read ``n`` octets, then answer (the reply is
        decided now, sent by ``_consume_chunk`` once the octets are in)."""
        words = argument.split()
        if (
            not 1 <= len(words) <= 2
            or not words[0].isdigit()
            or (len(words) == 2 and words[1].upper() != b"LAST")
        ):
            return _BDAT_SYNTAX  # no size to go by: the line is all that is consumed
        size = int(words[0])
        last = len(words) == 2
        if not self._recipients:
            # Postfix's texts, as for DATA; the chunk is still consumed (RFC 3030 §2).
            reply = _NEED_MAIL if not self._in_mail else _NEED_RCPT
            self._reset_transaction()
        elif max(self._chunked_bytes, 0) + size > MAX_MESSAGE_BYTES:  # RFC 1870 §6
            reply = _MESSAGE_TOO_BIG
            self._reset_transaction()
        else:
            self._chunked_bytes = max(self._chunked_bytes, 0) + size
            if last:
                self.messages += 1
                self.message_bytes += self._chunked_bytes
                reply = b"250 2.0.0 Ok: queued as %s%06X\r\n" % (self._queue_prefix, self.messages)
                self._reset_transaction()
            else:
                reply = b"250 2.0.0 Ok: %d bytes\r\n" % size
        if not size:
            return reply  # BDAT 0 (LAST): no octets to wait for
        self._chunk_left, self._chunk_reply = size, reply
        self._state = _State.CHUNK
        return b""

    def _consume_chunk(self, data: bytes, pos: int, replies: list[bytes]) -> int:
        """Skip the chunk's octets from ``pos``; answer it once they are all read. Returns
        where commands resume, or -1 when the chunk goes on in the next data."""
        take = min(self._chunk_left, len(data) - pos)
        self._chunk_left -= take
        if self._chunk_left:
            return -1
        self._state = _State.COMMAND
        replies.append(self._chunk_reply)
        self._chunk_reply = b""
        return pos + take

    def smtp_RSET(self, argument: bytes) -> bytes:
        if argument:  # RFC 5321 §4.1.1.5: RSET takes no parameters
            return _RSET_SYNTAX
        self._reset_transaction()
        return _OK

    def smtp_NOOP(self, argument: bytes) -> bytes:
        return _OK  # RFC 5321 §4.1.1.9: a parameter string is ignored

    def smtp_VRFY(self, argument: bytes) -> bytes:
        if not argument:
            return _VRFY_SYNTAX
        return _CANNOT_VRFY  # RFC 5321 §3.5.3: 252 when the server will not verify

    def smtp_HELP(self, argument: bytes) -> bytes:
        return _HELP

    def smtp_QUIT(self, argument: bytes) -> bytes:
        # RFC 5321 §4.1.1.10: reply 221, then close; anything pipelined after QUIT is dropped.
        self._closed = True
        return _BYE

    # -- DATA state ----------------------------------------------------------------------------

    def _consume_message(self, data: bytes, pos: int, replies: list[bytes]) -> int:
        """Skip message bytes from ``pos``; return the position after the end-of-data line,
        or -1 when the message goes on in the next chunk.

        RFC 5321 §4.1.1.4: the message ends with a line holding only "."; §4.5.2: any other
        line starting with "." was dot-stuffed by the client and is message content. A bare
        LF is accepted as a line ending, as Postfix does.
        """
        start = pos
        if self._data_at_line_start:
            found = _end_of_data_line(data, pos)
            if found == _INCOMPLETE:
                self._pending = data[pos:]
                return -1
            if found >= 0:
                return self._finish_message(found, replies)
        search = pos
        while True:
            newline_dot = data.find(b"\n.", search)
            if newline_dot < 0:
                break
            line_start = newline_dot + 1
            found = _end_of_data_line(data, line_start)
            if found >= 0:
                self._data_bytes += line_start - start
                return self._finish_message(found, replies)
            if found == _INCOMPLETE:
                self._data_bytes += line_start - start
                self._data_at_line_start = True
                self._pending = data[line_start:]  # "." or ".\r": at most two bytes
                return -1
            search = line_start
        self._data_bytes += len(data) - start
        self._data_at_line_start = data[-1] == _LF
        return -1

    def _finish_message(self, after_dot_line: int, replies: list[bytes]) -> int:
        """Answer the end of a message whose bytes are counted; return where commands resume."""
        self._state = _State.COMMAND
        self._reset_transaction()
        if self._data_bytes > MAX_MESSAGE_BYTES:  # RFC 1870 §6
            replies.append(_MESSAGE_TOO_BIG)
            return after_dot_line
        self.messages += 1
        self.message_bytes += self._data_bytes
        replies.append(b"250 2.0.0 Ok: queued as %s%06X\r\n" % (self._queue_prefix, self.messages))
        return after_dot_line


_INCOMPLETE = -2
_NOT_END = -1


def _end_of_data_line(data: bytes, line_start: int) -> int:
    """Is the line at ``line_start`` exactly "." (CRLF or LF)?

    Returns the position after it, `_NOT_END`, or `_INCOMPLETE` when the chunk ends first.
    """
    end = len(data)
    if line_start >= end:
        return _INCOMPLETE
    if data[line_start] != _DOT:
        return _NOT_END
    after = line_start + 1
    if after >= end:
        return _INCOMPLETE
    if data[after] == _LF:
        return after + 1
    if data[after] != _CR:
        return _NOT_END
    if after + 1 >= end:
        return _INCOMPLETE
    return after + 2 if data[after + 1] == _LF else _NOT_END


def _split_path(argument: bytes, keyword: bytes) -> tuple[bytes | None, bytes] | None:
    """Split ``FROM:<path> PARAMS`` into (address, parameters).

    Returns None when the keyword or the address is missing, and a None address when the
    address is malformed (an unclosed ``<``): Postfix answers those two cases differently.

    Angle brackets are optional and a space after the colon is allowed, as Postfix allows;
    RFC 5321 §2.4: the keyword is case-insensitive.
    """
    if argument[: len(keyword)].upper() != keyword:
        return None
    rest = argument[len(keyword) :].lstrip()
    if rest.startswith(b"<"):
        close = rest.find(b">")
        if close < 0:
            return None, b""
        return rest[1:close], rest[close + 1 :].strip()
    address, _, parameters = rest.partition(b" ")
    if not address:
        return None
    return address, parameters.strip()


_Handler = Callable[[SinkConnection, bytes], bytes]

# RFC 5321 §4.5.1: the minimum implementation, plus HELP.
_COMMANDS: dict[bytes, _Handler] = {
    b"EHLO": SinkConnection.smtp_EHLO,
    b"HELO": SinkConnection.smtp_HELO,
    b"MAIL": SinkConnection.smtp_MAIL,
    b"RCPT": SinkConnection.smtp_RCPT,
    b"DATA": SinkConnection.smtp_DATA,
    b"BDAT": SinkConnection.smtp_BDAT,
    b"RSET": SinkConnection.smtp_RSET,
    b"NOOP": SinkConnection.smtp_NOOP,
    b"VRFY": SinkConnection.smtp_VRFY,
    b"HELP": SinkConnection.smtp_HELP,
    b"QUIT": SinkConnection.smtp_QUIT,
}

# Known SMTP verbs the sink does not offer: 502, not 500 (RFC 5321 §4.2.4).
_NOT_IMPLEMENTED_VERBS = frozenset({b"STARTTLS", b"AUTH", b"EXPN", b"ETRN", b"TURN", b"ATRN"})
