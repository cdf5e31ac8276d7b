"""BDAT (RFC 3030, CHUNKING): a message as chunks, each announced by its size. No I/O.

RFC 3030 §2: ``BDAT n [LAST]`` CRLF is followed by exactly ``n`` octets of the message; the
server answers each chunk; the chunk with ``LAST`` ends the message and its reply is the
message's (``250`` queued). Unlike DATA (RFC 5321 §4.5.2) the octets are sent as they are:
no dot-stuffing, no final ``.`` line, so a line that starts with ``.`` arrives as written.

This module owns what goes on the wire for a ``bdat`` step:

* ``bdat_octets``: the message's octets (LF made CRLF; padded to ``size:`` with the generated
  lines of ``wire.FILLER_LINE``). A large padded message is a ``PaddedOctets``, never built in
  memory: its padding is slices of one block shared by every session (``wire.FILLER_BLOCK``).
* ``ChunkCutter``: the chunks of one message, one at a time (a 100 MiB message in 64 KiB
  chunks is 1,600 chunks, computed as they are sent, not all at once), each a ``ChunkPayload``:
  its ``BDAT`` line and its octets, as views of the message, never copies of the large parts.

How the sizes are chosen (``scenario.model.Chunking``): ``chunk_size: N`` cuts every N octets
(the last chunk the rest: a 100-octet message in 50s is ``BDAT 50``, ``BDAT 50 LAST``);
``chunks: [...]`` sends each listed size in turn, each at most what is left, and the last listed
chunk takes the rest (so a template whose length varies still ends cleanly; when the length is
known at load time the loader has checked that the sizes add up); ``last: empty`` sends every
chunk as a plain ``BDAT n`` and then ``BDAT 0 LAST``. Without any of them: one ``BDAT n LAST``.

Chunks are sent lock-step: each chunk's reply is read before the next chunk is sent (pipelined
chunks, which RFC 3030 §4.2 allows with PIPELINING, are not done).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from smtpload.protocol.wire import FILLER_BLOCK, FILLER_LINE, padding_lines
from smtpload.scenario.model import Chunking

__all__ = ["ChunkCutter", "ChunkPayload", "PaddedOctets", "bdat_octets"]

# Up to this many octets a chunk is one bytes object (its BDAT line and its octets in one send);
# a larger one is sent as views (the BDAT line, then slices of the message).
_JOINED_CHUNK_BYTES = 64 * 1024

# Padding up to this size is built into the message's bytes (as compiler.py does for DATA).
_INLINE_PADDING_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class PaddedOctets:
    """A BDAT message padded to its ``size:``: ``head``, ``filler_lines`` copies of
    ``FILLER_LINE`` (never built), then ``tail`` (a shorter last generated line, or nothing)."""

    head: bytes
    filler_lines: int
    tail: bytes

    def __len__(self) -> int:
        return len(self.head) + self.filler_lines * len(FILLER_LINE) + len(self.tail)

    def pieces(self, start: int, end: int) -> Iterator[bytes | memoryview]:
        """The octets ``start:end`` in order, as slices of the head, the shared block, the tail."""
        head, line = len(self.head), len(FILLER_LINE)
        filler_end = head + self.filler_lines * line
        if start < head:
            yield self.head[start : min(end, head)]
            start = min(end, head)
        block = len(FILLER_BLOCK)
        while start < min(end, filler_end):
            # Every line is the same, so offset ``o`` of the padding is offset ``o % line`` of
            # the block, which then runs on for as long as the block lasts.
            at = (start - head) % line
            size = min(end, filler_end) - start
            size = min(size, block - at)
            yield FILLER_BLOCK[at : at + size]
            start += size
        if start < end:
            yield self.tail[start - filler_end : end - filler_end]


def bdat_octets(text: bytes, size: int | None) -> bytes | PaddedOctets:
    """The octets a ``bdat`` step sends: ``text`` with LF line ends made CRLF (RFC 5321 §2.3.8),
    nothing stuffed or added, then padded to ``size`` octets when given (as a ``data`` step's
    message is: generated lines after a final CRLF; a text already that long is sent as it is).
    """
    crlf = text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if size is None:
        return crlf
    if crlf and not crlf.endswith(b"\r\n"):
        crlf += b"\r\n"
    full_lines, last_line = padding_lines(size - len(crlf))
    if full_lines * len(FILLER_LINE) <= _INLINE_PADDING_BYTES:
        return crlf + FILLER_LINE * full_lines + last_line
    return PaddedOctets(crlf, full_lines, last_line)


@dataclass(frozen=True, slots=True)
class ChunkPayload:
    """One chunk as sent: ``BDAT n[ LAST]`` CRLF, then its ``size`` octets.

    Attributes:
        command: the BDAT line without its CRLF, for transcripts.
        size: the chunk's octets (the ``n``).
        last: whether the line says ``LAST``.
        parts: what is sent, in order (one bytes object when small).
    """

    command: str
    size: int
    last: bool
    parts: tuple[bytes | memoryview, ...]

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def __bool__(self) -> bool:
        return True  # a BDAT 0 LAST still sends its line

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The bytes to send, in order (the same interface as ``wire.PaddedMessage``)."""
        yield from self.parts

    def shown(self) -> str:
        """What a transcript shows of it: the command and how many octets followed."""
        return f"{self.command} <{self.size} octets, not dot-stuffed>"


def _sizes(length: int, chunking: Chunking | None) -> Iterator[int]:
    """Each chunk's size but a ``last: empty`` chunk's; they add up to ``length``."""
    if chunking is None or (chunking.chunk_size is None and not chunking.chunks):
        yield length
        return
    if chunking.chunk_size is not None:
        step = chunking.chunk_size
        if length == 0:
            yield 0
            return
        for start in range(0, length, step):
            yield min(step, length - start)
        return
    left = length
    for size in chunking.chunks[:-1]:
        size = min(size, left)
        left -= size
        yield size
    yield left


class ChunkCutter:
    """The chunks of one message, in order; ``next()`` gives the next one (None after LAST)."""

    __slots__ = ("_octets", "_offset", "_pending", "_sizes", "_trailer")

    def __init__(self, octets: bytes | PaddedOctets, chunking: Chunking | None) -> None:
        self._octets = octets
        self._offset = 0
        self._sizes = _sizes(len(octets), chunking)
        self._pending = next(self._sizes, None)
        self._trailer = chunking is not None and chunking.last_empty

    def next(self) -> ChunkPayload | None:
        size = self._pending
        if size is None:
            if not self._trailer:
                return None
            self._trailer = False
            return ChunkPayload("BDAT 0 LAST", 0, True, (b"BDAT 0 LAST\r\n",))
        self._pending = next(self._sizes, None)
        last = self._pending is None and not self._trailer
        command = f"BDAT {size} LAST" if last else f"BDAT {size}"
        line = command.encode("ascii") + b"\r\n"
        start, end = self._offset, self._offset + size
        self._offset = end
        octets = self._octets
        pieces: tuple[bytes | memoryview, ...]
        if isinstance(octets, bytes):
            pieces = (memoryview(octets)[start:end],)
        else:
            pieces = tuple(octets.pieces(start, end))
        # A small chunk goes out in one send; a large one as views, never copied.
        parts = (line + b"".join(pieces),) if size <= _JOINED_CHUNK_BYTES else (line, *pieces)
        return ChunkPayload(command, size, last, parts)
