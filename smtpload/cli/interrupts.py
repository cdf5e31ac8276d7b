"""Ctrl-C and SIGTERM outside a run: during start-up, and while output is being written.

While sessions run, the runner (``net/runner.py``) handles SIGINT and SIGTERM itself: the first
stops new sessions, a second cuts the running ones off. Outside the runner:

- **Start-up** (imports, arguments, reading the scenario): nothing that must be kept exists yet,
  so a signal stops the command at once with exit status 130 and no traceback.
  :func:`install` sets this up, for SIGTERM too (whose default would kill the process: 143),
  and is called before anything heavy is imported (``entry.py``).
- **Work whose output must be whole** (a run and its result files, a baseline, imported
  scenarios): once a command calls :func:`defer`, a signal is noted and the work goes on. A
  run that has not yet put its own handling in place sees the note (:func:`pending`, handed to
  the runner) and stops at once; files being written are finished; the command then ends with
  130. A second signal while deferred stops the process at once (exit 130), so a write that
  blocks (a stalled pipe, a hung network file system) can still be left. What must not outlive
  the process is ended first (:func:`ending_with`: a run's forked workers, which a stopped one
  would otherwise survive, as it cannot read the end of its parent's pipe).

A signal that arrives before Python has run any of smtpload's code (the interpreter's own
start-up, ``site``) gets Python's defaults: smtpload cannot see it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = [
    "EXIT_INTERRUPTED",
    "defer",
    "ending_with",
    "handling",
    "install",
    "pending",
    "restore_defaults",
]

#: The exit status of an interrupted command (128 + SIGINT, as shells report Ctrl-C).
EXIT_INTERRUPTED = 130

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_noted: list[int] = []  # the signals received while deferring, in order
_before_leaving: list[Callable[[], None]] = []  # ending_with's, newest last


def _stop(signum: int, frame: FrameType | None) -> None:
    # Once: the cleanup that KeyboardInterrupt runs must not be interrupted in turn.
    defer()
    raise KeyboardInterrupt


def _note(signum: int, frame: FrameType | None) -> None:
    if _noted:
        # A second signal: the user insists. Leave now, whatever is being written.
        for end in reversed(_before_leaving):
            with contextlib.suppress(Exception):
                end()
        os._exit(EXIT_INTERRUPTED)
    _noted.append(signum)


def install() -> None:
    """Start-up: SIGINT and SIGTERM stop the command (as ``KeyboardInterrupt``, exit 130)."""
    _noted.clear()
    for signum in SIGNALS:
        signal.signal(signum, _stop)


def defer() -> None:
    """From now on until the command ends, note signals instead of acting on them (see the
    module docstring); :func:`pending` says whether one came."""
    for signum in SIGNALS:
        signal.signal(signum, _note)


@contextlib.contextmanager
def ending_with(end: Callable[[], None]) -> Iterator[None]:
    """Inside: a second deferred signal, which leaves the process at once, calls ``end``
    first (quick, and safe to call in a signal handler: ``os.kill``, say)."""
    _before_leaving.append(end)
    try:
        yield
    finally:
        _before_leaving.remove(end)


def pending() -> bool:
    """Whether a signal arrived since :func:`defer` (the command must end with 130)."""
    return bool(_noted)


def restore_defaults() -> None:
    """Python's own handling, for a command that handles signals itself in a trio run from the
    start (``smtpload sink``): trio turns a default Ctrl-C into ``KeyboardInterrupt`` safely."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # SIGTERM's own default would kill the process (exit 143) in the instant before the trio
    # run's receiver is up; as KeyboardInterrupt it stops the sink as a Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """One command's signal handling: start-up mode on entry; on exit the handlers that were
    there before come back (``main()`` may run in a process that has its own, such as pytest).
    """
    previous = [(signum, signal.getsignal(signum)) for signum in SIGNALS]
    install()
    try:
        yield
    finally:
        for signum, handler in previous:
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(signum, handler)
        _noted.clear()
