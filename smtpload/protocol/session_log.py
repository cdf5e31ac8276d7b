"""A session's transcript as the engine keeps it: bounded, however long the session runs.

A persistent session (a ``repeat`` of a million transactions) sends and reads without end, and
its transcript is what a failure shows: kept whole, it would grow with the session (and a
failing session's report with it). So the log keeps the session's start (the greeting, the
hello, TLS: what says which server and how it was spoken to) and its most recent entries (what
led to the failure), and counts what it left out between them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

__all__ = ["HEAD_ENTRIES", "TAIL_ENTRIES", "SessionLog"]

#: The entries kept from a session's start.
HEAD_ENTRIES = 40

#: The most recent entries kept.
TAIL_ENTRIES = 160


class SessionLog:
    """The first ``HEAD_ENTRIES`` and the last ``TAIL_ENTRIES`` entries appended, in order.

    An entry is a (direction, item) pair: ``"C"`` (sent), ``"S"`` (a reply) or ``"*"`` (an
    event), and what the engine shows of it.
    """

    __slots__ = ("_head", "_tail", "left_out")

    def __init__(self) -> None:
        self._head: list[tuple[str, object]] = []
        self._tail: deque[tuple[str, object]] = deque(maxlen=TAIL_ENTRIES)
        self.left_out = 0  # entries dropped between the head and the tail

    def append(self, entry: tuple[str, object]) -> None:
        if len(self._head) < HEAD_ENTRIES:
            self._head.append(entry)
            return
        if len(self._tail) == TAIL_ENTRIES:
            self.left_out += 1
        self._tail.append(entry)

    def last(self) -> tuple[str, object] | None:
        """The entry appended last, if any."""
        if self._tail:
            return self._tail[-1]
        return self._head[-1] if self._head else None

    def head(self) -> Iterator[tuple[str, object]]:
        """The entries kept from the start."""
        return iter(self._head)

    def tail(self) -> Iterator[tuple[str, object]]:
        """The most recent entries kept (after ``left_out`` entries not kept)."""
        return iter(self._tail)
