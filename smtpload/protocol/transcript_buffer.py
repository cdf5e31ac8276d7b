"""A session's transcript as the engine keeps it: its first and its last entries, not all.

A failure's report shows the session's dialogue, and the engine keeps it as the session runs,
since it cannot know whether the session will fail. A session of a bounded list of steps kept
a bounded transcript; one with ``repeat`` blocks (up to 1,000,000 runs each, nested) can send
billions of commands over one connection, so keeping them all would grow its memory without
end, and print millions of lines for one failure. What matters in a failure is how the session
started (greeting, EHLO, TLS, AUTH) and what led to its end, so the transcript keeps its first
``HEAD_ENTRIES`` entries and its last ``TAIL_ENTRIES``, and counts the ones between, which a
line in their place reports. An entry is one command, one reply (however many lines) or one
event line; each is bounded on its own (replies by ``--max-reply-bytes``; a data step's entry
is its message's size, not the message). Nothing here is about SMTP.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

__all__ = ["HEAD_ENTRIES", "TAIL_ENTRIES", "TranscriptBuffer"]

#: The entries kept from a session's start (its greeting, EHLO, TLS and AUTH fit many times).
HEAD_ENTRIES = 100

#: The entries kept before a session's end: its last transactions, the failure among them.
TAIL_ENTRIES = 400

Entry = tuple[str, object]


class TranscriptBuffer:
    """The first ``head`` and the last ``tail`` entries appended, and how many were between."""

    __slots__ = ("_appended", "_head", "_head_size", "_tail", "_tail_size")

    def __init__(self, head: int = HEAD_ENTRIES, tail: int = TAIL_ENTRIES) -> None:
        self._head: list[Entry] = []
        self._head_size = head
        # Made when the head is full: most sessions never get there, and an empty deque is
        # ~760 bytes, a tenth of what a session held open costs.
        self._tail: deque[Entry] | None = None
        self._tail_size = tail
        self._appended = 0  # every entry ever appended: what was dropped follows from it

    def append(self, entry: Entry) -> None:
        # Every command and reply of every session comes here: one count and one append, the
        # tail's deque dropping its oldest entry itself (``dropped`` is worked out when read).
        appended = self._appended
        self._appended = appended + 1
        if appended < self._head_size:
            self._head.append(entry)
        elif self._tail is not None:
            self._tail.append(entry)
        else:
            self._tail = deque((entry,), maxlen=self._tail_size)

    @property
    def dropped(self) -> int:
        """How many entries were appended and not kept (between the head and the tail)."""
        return self._appended - len(self)

    def __len__(self) -> int:
        """The entries kept."""
        return len(self._head) + (0 if self._tail is None else len(self._tail))

    def __bool__(self) -> bool:
        return bool(self._head)

    def last(self) -> Entry | None:
        """The entry appended last, if any."""
        if self._tail:
            return self._tail[-1]
        return self._head[-1] if self._head else None

    def __iter__(self) -> Iterator[Entry]:
        """The entries kept, in order, with a ``*`` entry where some were not kept."""
        yield from self._head
        if self.dropped:
            yield (
                "*",
                f"... {self.dropped:,} transcript entries (commands, replies, events) not kept:"
                f" a failure shows a session's first {len(self._head):,} and last"
                f" {len(self) - len(self._head):,}",
            )
        if self._tail is not None:
            yield from self._tail
