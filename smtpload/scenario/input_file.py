"""Reading a file the user gives (a scenario, a transcript): never more than a bound.

The size a file claims is not trusted: ``/dev/zero`` and a FIFO both claim 0 bytes, and one
never ends while the other gives whatever its writer writes. So at most ``MAX_INPUT_BYTES`` + 1
bytes are read, and a file that gives that many is refused with ``InputTooLargeError``: a
scenario or a transcript is text typed or pasted by a person, and 10 MiB is far more than any
(a large message is ``data: {size: N}``, not text in the file). Like ``cat``, opening a FIFO waits
for its writer.
"""

from __future__ import annotations

import os

__all__ = ["MAX_INPUT_BYTES", "InputTooLargeError", "read_input"]

#: The most smtpload reads of a scenario or a transcript: 10 MiB.
MAX_INPUT_BYTES = 10 * 1024 * 1024


class InputTooLargeError(Exception):
    """A file holds more than the bound. ``str()`` says so, for a message after the file name."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        shown = f"{limit_bytes / (1024 * 1024):g} MiB" if limit_bytes >= 1024 * 1024 else ""
        super().__init__(
            f"the file is larger than {shown + ' (' if shown else ''}{limit_bytes} bytes"
            f"{')' if shown else ''}, the most smtpload reads"
        )


def read_input(path: str | os.PathLike[str], limit_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of ``path``, if it holds at most ``limit_bytes``.

    Raises:
        InputTooLargeError: it holds more (it may never end: only ``limit_bytes`` + 1 are read).
        OSError: it cannot be opened or read.
    """
    with open(path, "rb") as stream:
        # A buffered read(n) reads until n bytes or the end, however the file delivers them.
        data = stream.read(limit_bytes + 1)
    if len(data) > limit_bytes:
        raise InputTooLargeError(limit_bytes)
    return data
