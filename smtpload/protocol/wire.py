"""SMTP on the wire, client side, with no I/O: reply parsing and what we put on the wire.

This module owns the byte-level rules of RFC 5321 that smtpload relies on:

* Replies (§4.2): ``NNN SP text CRLF`` ends a reply, ``NNN-text CRLF`` continues it, and every
  line of one reply carries the same code. ``NNN CRLF`` (no text) is a complete reply too.
* The message in DATA (§4.5.2): a line that begins with ``.`` gets one more ``.``, lines end in
  CRLF, and ``CRLF . CRLF`` ends the message.

A message padded to a size (``data: {size: N}``) is a ``PaddedMessage``: its own text, encoded,
then generated body lines that are never built per message but sent as slices of one block
shared by every session, so a session's memory does not grow with the size it sends.

The parser is written for the load generator's hot path: the common case, one whole single-line
reply in one read, costs one ``find`` and one slice. It is deliberately tolerant where servers
are sloppy (bare LF line endings, bytes that are not UTF-8) and strict where a reply could not be
trusted (a line without a code, a code that changes inside a multiline reply, a line longer than
``MAX_LINE_BYTES``, a whole reply longer than its ``max_reply_bytes``): those raise
RemoteProtocolError, never hang and never crash.

Memory: replies are shared. A reply that came whole in one read (the common case) is looked
up by its bytes among the replies already made in this process, and the same ``Reply`` (it is
immutable) is handed out again: 10,000 sessions held open keep one greeting, one EHLO reply and
one ``250 2.1.0 Ok``, not 10,000 of each (about 1.5 KB a session). The table is bounded: up
to ``_SHARED_REPLIES`` replies of up to ``_SHARED_REPLY_BYTES`` each, the first ones seen; a
reply that is different each time (a queue id) is shared with no one once the table is full.

A parser holds at most one reply in progress, and both of its bounds are checked as the
bytes arrive, not when the reply ends, so a server that sends ``220-`` lines forever costs at most
``max_reply_bytes`` (plus the decoded text of those bytes) before the session fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from smtpload.errors import RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_REPLY_BYTES",
    "END_OF_DATA",
    "FILLER_BLOCK",
    "FILLER_LINE",
    "MAX_LINE_BYTES",
    "PaddedMessage",
    "Reply",
    "ReplyParser",
    "encode_message",
    "encode_message_text",
    "padding_lines",
    "preview_line",
]

#: RFC 5321 §4.5.3.1.5 allows reply lines of 512 octets; real servers send longer ones
#: (long EHLO lists, verbose rejections). 64 KiB is generous for any honest server and still
#: bounds the memory one bad server can make us hold per session.
MAX_LINE_BYTES = 64 * 1024

#: The line cap alone does not bound a reply: ``NNN-`` lines may go on forever. RFC 5321 sets
#: no limit on the number of lines; the longest honest replies (EHLO lists, multi-line
#: rejections) are a few KiB, so 1 MiB is far above them and still bounds what one session
#: holds. ``smtpload run --max-reply-bytes`` changes it.
DEFAULT_MAX_REPLY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete SMTP reply.

    Attributes:
        code: the three-digit reply code.
        lines: the text of each line after ``NNN-``/``NNN ``, decoded as UTF-8 with
            U+FFFD for invalid bytes (the raw bytes are in ``raw``).
        raw: the reply's bytes exactly as received, line endings included.
    """

    code: int
    lines: tuple[str, ...]
    raw: bytes

    @property
    def text(self) -> str:
        """All lines' text joined by ``\\n``: what expectations' patterns search."""
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return "\n".join(f"{self.code} {line}".rstrip() for line in self.lines)


# The replies shared by every parser of the process (module docstring): bounded in number and
# size, so that they cost at most about 1 MiB whatever the servers say.
_SHARED_REPLIES = 1024
_SHARED_REPLY_BYTES = 1024
_shared: dict[bytes, Reply] = {}


def _share(data: bytes, reply: Reply) -> None:
    """Keep ``reply``, made of all of ``data``, to hand out again for the same bytes."""
    if len(data) <= _SHARED_REPLY_BYTES and len(_shared) < _SHARED_REPLIES:
        _shared[data] = reply


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def _code_of(line: bytes) -> int:
    """The reply code at the start of ``line``, or -1 when it has none.

    RFC 5321 §4.2: a reply line is three digits, then SP, "-" or the line's end.
    """
    if len(line) < 3:
        return -1
    d0, d1, d2 = line[0], line[1], line[2]
    if not (48 <= d0 <= 57 and 48 <= d1 <= 57 and 48 <= d2 <= 57):
        return -1
    if len(line) > 3 and line[3] not in b" -":
        return -1
    return (d0 - 48) * 100 + (d1 - 48) * 10 + (d2 - 48)


class ReplyParser:
    """Turns bytes from the server into complete replies.

    Feed it whatever ``recv`` returned; it returns the replies completed by those bytes (none,
    one, or several when the server answered pipelined commands in one segment) and keeps the
    rest for the next call. Once it has raised RemoteProtocolError it should not be fed again.

    Args:
        max_reply_bytes: the longest reply accepted, counted in bytes on the wire (every line
            with its line ending). One byte more, complete or not, is a RemoteProtocolError.

    Raises:
        ValueError: ``max_reply_bytes`` is below 1.
    """

    __slots__ = ("_buffer", "_code", "_fast_path_bytes", "_lines", "_max_reply_bytes", "_raw")

    def __init__(self, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
        if max_reply_bytes < 1:
            raise ValueError(f"max_reply_bytes must be at least 1, got {max_reply_bytes}")
        self._max_reply_bytes = max_reply_bytes
        self._fast_path_bytes = min(MAX_LINE_BYTES, max_reply_bytes)
        self._buffer = b""  # received bytes not parsed yet (at most a partial line)
        # The multiline reply in progress: its code (-1 when none), its lines so far, and the
        # raw bytes of those lines (a bytearray: a long reply arrives in many reads, and
        # appending to bytes would copy all of it each time).
        self._code = -1
        self._lines: list[str] = []
        self._raw = bytearray()

    @property
    def has_partial_reply(self) -> bool:
        """True when bytes of an unfinished reply are buffered."""
        return bool(self._buffer) or self._code != -1

    @property
    def partial_reply(self) -> bytes:
        """The buffered bytes of the unfinished reply (empty when none), left in place."""
        return bytes(self._raw) + self._buffer

    def take_unread(self) -> bytes:
        """Remove and return buffered bytes that are not part of a complete reply yet.

        RFC 3207 §5 (STARTTLS): bytes received after the 220 must be discarded, not read as
        part of the encrypted session; callers check this is empty before switching.
        """
        unread = bytes(self._raw) + self._buffer
        self._buffer = b""
        self._raw = bytearray()
        self._code = -1
        self._lines = []
        return unread

    def feed(self, data: bytes) -> list[Reply]:
        """Add received bytes; return every reply they complete, in order.

        Raises:
            RemoteProtocolError: a line has no reply code, a multiline reply changes its code,
                a line is longer than MAX_LINE_BYTES, or the reply in progress is longer than
                ``max_reply_bytes``.
        """
        whole = not self._buffer and self._code == -1 and type(data) is bytes
        if whole:
            # Bytes that made a reply before make the same one (module docstring), within
            # this parser's own bound.
            shared = _shared.get(data)
            if shared is not None and len(data) <= self._max_reply_bytes:
                return [shared]
        buffer = self._buffer + data if self._buffer else data
        # Fast path: one whole single-line reply and nothing pending.
        if (
            self._code == -1
            and buffer.endswith(b"\n")
            and buffer.find(b"\n") == len(buffer) - 1
            and len(buffer) <= self._fast_path_bytes
        ):
            line = buffer[:-2] if buffer.endswith(b"\r\n") else buffer[:-1]
            code = _code_of(line)
            if code >= 0 and (len(line) == 3 or line[3] == 32):  # 32: SP, a reply's last line
                self._buffer = b""
                reply = Reply(code, (_decode(line[4:]),), buffer)
                if whole:
                    _share(data, reply)
                return [reply]
        replies = self._feed_slow(buffer)
        # One multiline reply (an EHLO's), all of it in this read.
        if whole and len(replies) == 1 and self._code == -1 and replies[0].raw == data:
            _share(data, replies[0])
        return replies

    def _feed_slow(self, buffer: bytes) -> list[Reply]:
        replies: list[Reply] = []
        position = 0
        reply_start = 0  # where the reply in progress starts in `buffer`
        earlier = len(self._raw)  # bytes of the reply in progress from earlier feeds
        limit = self._max_reply_bytes
        code = self._code
        lines = self._lines
        while True:
            newline = buffer.find(b"\n", position)
            if newline < 0:
                tail = len(buffer) - position
                if tail > MAX_LINE_BYTES:
                    raise RemoteProtocolError(
                        f"reply line longer than {MAX_LINE_BYTES} bytes without a line end"
                    )
                so_far = earlier + position - reply_start if code != -1 else 0
                if so_far + tail > limit:
                    raise _reply_too_long(limit)
                break
            # Bare LF is tolerated as a line end: sloppy servers and test scripts send it.
            end = newline - 1 if newline > position and buffer[newline - 1] == 13 else newline
            if end - position > MAX_LINE_BYTES:
                raise RemoteProtocolError(f"reply line longer than {MAX_LINE_BYTES} bytes")
            line = buffer[position:end]
            line_code = _code_of(line)
            if line_code < 0:
                prefix = "not an SMTP reply line: "
                raise RemoteProtocolError(
                    f"{prefix}{preview_line(line)}", line=bytes(line), prefix=prefix
                )
            if code == -1:
                code = line_code
                reply_start = position
            elif line_code != code:
                # RFC 5321 §4.2.1: every line of a multiline reply carries the same code.
                raise RemoteProtocolError(
                    f"reply code changed from {code} to {line_code} inside a multiline reply"
                )
            position = newline + 1
            # RFC 5321 bounds a line's length but not a reply's number of lines.
            if earlier + position - reply_start > limit:
                raise _reply_too_long(limit)
            lines.append(_decode(line[4:]))
            if len(line) == 3 or line[3] == 32:
                raw = buffer[reply_start:position]
                if earlier:
                    self._raw += raw
                    raw = bytes(self._raw)
                    self._raw = bytearray()
                    earlier = 0
                replies.append(Reply(code, tuple(lines), raw))
                code = -1
                lines = []
        if code != -1:
            self._raw += buffer[reply_start:position]
        self._buffer = buffer[position:]
        self._code = code
        self._lines = lines
        return replies


def _reply_too_long(limit: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"reply longer than {limit} bytes (a limit that --max-reply-bytes can raise)"
    )


def preview_line(line: bytes, limit: int = 60) -> str:
    """The first ``limit`` bytes of a line that is not a reply, escaped as Python does."""
    text = repr(line[:limit])[2:-1]
    return text + ("..." if len(line) > limit else "")


#: RFC 5321 §4.5.2: the line that ends the mail data (the CRLF before it ends the last line).
END_OF_DATA = b".\r\n"

#: A generated body line: 76 characters and CRLF, well inside RFC 5322 §2.1.1's 78. It never
#: starts with ".", so it never needs dot-stuffing.
FILLER_LINE = b"x" * 76 + b"\r\n"

# The one block that every padded message of every session is sent from (~312 KiB): large
# enough that a send fills the socket buffer, small enough to cost nothing when unused.
_FILLER_BLOCK_LINES = 4096
_FILLER_BLOCK = memoryview(FILLER_LINE * _FILLER_BLOCK_LINES)
#: The same block, for BDAT's padded messages (protocol/bdat.py), which slice it anywhere.
FILLER_BLOCK = _FILLER_BLOCK


def padding_lines(missing: int) -> tuple[int, bytes]:
    """How a message ``missing`` bytes short of its size is padded: that many ``FILLER_LINE``s,
    then the returned shorter last line (or nothing); none of either when ``missing`` <= 0."""
    full_lines, rest = divmod(missing, len(FILLER_LINE)) if missing > 0 else (0, 0)
    last_line = b""
    if rest >= 3:
        last_line = b"x" * (rest - 2) + b"\r\n"
    elif rest and full_lines:
        # 1 or 2 bytes left: lengthen the last full line instead of sending an empty line.
        full_lines -= 1
        last_line = b"x" * (len(FILLER_LINE) + rest - 2) + b"\r\n"
    return full_lines, last_line


@dataclass(frozen=True, slots=True)
class PaddedMessage:
    """A message ready to follow a 354, whose generated body lines are not held in memory.

    Attributes:
        head: the message's own text, encoded (``encode_message_text``), without the final ".".
        filler_lines: how many ``FILLER_LINE``s follow it.
        tail: the bytes after them: a shorter last generated line (or nothing) and
            ``END_OF_DATA``.
    """

    head: bytes
    filler_lines: int
    tail: bytes

    def __len__(self) -> int:
        return len(self.head) + self.filler_lines * len(FILLER_LINE) + len(self.tail)

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The message's bytes in order: the head, slices of the shared block, the tail."""
        if self.head:
            yield self.head
        remaining = self.filler_lines
        while remaining > 0:
            lines = min(remaining, _FILLER_BLOCK_LINES)
            yield _FILLER_BLOCK[: lines * len(FILLER_LINE)]
            remaining -= lines
        yield self.tail


def encode_message(message: bytes) -> bytes:
    """Make a message ready to follow a 354: CRLF line ends, dot-stuffing, and ``.`` CRLF."""
    return encode_message_text(message) + END_OF_DATA


def encode_message_text(message: bytes) -> bytes:
    """A message's text as sent after a 354, without the final ``.`` line.

    RFC 5321 §4.5.2: "Before sending a line of mail text, the SMTP client checks the first
    character of the line. If it is a period, one additional period is inserted at the
    beginning of the line." Bare CR or LF become CRLF (§2.3.8 forbids them alone). The result
    is empty or ends in CRLF, so that more lines, or ``END_OF_DATA``, can follow it.
    """
    normalized = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if normalized and not normalized.endswith(b"\n"):
        normalized += b"\n"
    if normalized.startswith(b"."):
        normalized = b"." + normalized
    normalized = normalized.replace(b"\n.", b"\n..")
    # The final "\n.." that replace() may have produced from a trailing "\n." is correct
    # stuffing of a last line ".", so nothing to undo here.
    return normalized.replace(b"\n", b"\r\n")
