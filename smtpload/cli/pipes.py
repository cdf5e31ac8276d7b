"""Standard output and error that outlive their reader: ``smtpload run ... | head -1``.

When the reader of a pipe goes away, every later write to it fails with EPIPE (Python ignores
SIGPIPE, so the process is not killed but gets ``BrokenPipeError``). For smtpload that write is
a report line or a replay step: losing it must not cost the run, its result files or its exit
status. :func:`survive_closed_pipes` puts streams in place whose writes to a reader that has
gone are discarded, silently: the reader asked for no more.

Only EPIPE is forgiven. Any other write error (a full disk behind ``> file``) still raises.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TextIO

__all__ = ["survive_closed_pipes"]


class _ReaderGoneTolerant(io.RawIOBase):
    """A file descriptor's writes; once its reader has gone, writes succeed and go nowhere."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._reader_gone = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: object) -> int:
        view = memoryview(data)  # type: ignore[arg-type]  # io hands over a buffer
        if not self._reader_gone:
            try:
                return os.write(self._fd, view)
            except BrokenPipeError:
                self._reader_gone = True
        return view.nbytes


def _tolerant_copy(stream: TextIO) -> TextIO:
    stream.flush()
    raw = _ReaderGoneTolerant(stream.fileno())
    return io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=bool(stream.line_buffering),
        write_through=getattr(stream, "write_through", False),
    )


def survive_closed_pipes() -> None:
    """Replace ``sys.stdout`` and ``sys.stderr`` with streams that survive a reader that has
    gone (see the module docstring). For the command-line process only: call it once, first.

    A stream that is not a real file descriptor (already replaced, or closed) is left alone.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            replacement = _tolerant_copy(stream)
        except (AttributeError, OSError, ValueError):  # no fileno(), or closed
            continue
        setattr(sys, name, replacement)
