"""Child processes forked before ``trio.run``: the parent's handle on one, as a trio.Process.

``--workers N`` (net/workers.py) forks its workers from the command's process before that
process enters ``trio.run``: a child so made has every module imported already, and shares
its parent's pages copy-on-write, where a fresh interpreter pays ~0.3 s of CPU and ~39 MB for
its start and imports. It must be forked *before* the loop runs: trio keeps its run's state in
thread-local variables, which a fork copies, and a child of a running loop cannot start its
own (``trio.run`` says "Attempted to call run() from inside a run()").

This module owns the parent's side of such a child, whatever the child runs:

- :func:`fork_child` forks, with SIGINT and SIGTERM blocked across the fork (so a Ctrl-C in
  that instant reaches neither the parent's handler in the child nor is lost to the parent: the
  child unblocks them once it has set its own dispositions), and opens a pidfd (Linux 5.3) on
  the child while it cannot have been reaped, so that the pid is never another process's.
- :class:`ForkedChild` is what the workers' parent uses of a ``trio.Process``: ``pid``,
  ``returncode`` (as trio reports it: the exit status, or minus the signal that killed it),
  ``kill()`` (SIGKILL) and ``await wait()`` (the pidfd readable, then ``waitpid``), and
  :meth:`ForkedChild.reap` for the parent's end outside any loop: every child is reaped, on
  every path, so that none is left a zombie.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

import trio

__all__ = ["ForkedChild", "can_fork", "fork_child"]

# Blocked across the fork: the signals the command's process handles (cli/interrupts.py).
_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def can_fork() -> bool:
    """Whether children can be forked and waited for here: fork, and a pidfd for each (Linux
    5.3 and later; a seccomp filter may refuse it still), else the workers are started as
    fresh interpreters."""
    if not hasattr(os, "fork") or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class ForkedChild:
    """A child of :func:`fork_child`, seen from its parent (module docstring)."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self.returncode: int | None = None

    def _collect(self, options: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, options)
        except ChildProcessError:
            # SIGCHLD ignored (inherited from whoever started us): the kernel reaped it and
            # its status is gone; 0, as the subprocess module says then.
            self.returncode = 0
            return
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def kill(self) -> None:
        """SIGKILL, unless it was reaped already (its pid may be another's then)."""
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)

    async def wait(self) -> int:
        """Its end: its exit status, or minus the signal that ended it. One task at a time."""
        while self.returncode is None:
            await trio.lowlevel.wait_readable(self._pidfd)  # readable once it has exited
            self._collect(os.WNOHANG)
        return self.returncode

    def reap(self) -> None:
        """Outside any trio run: kill it if it is still there, wait for it, close its pidfd."""
        if self.returncode is None:
            with contextlib.suppress(OSError):
                self.kill()
            self._collect(0)
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1

    def fileno(self) -> int:
        """Its pidfd: a later child must not hold it (:func:`fork_child`'s ``inherited``)."""
        return self._pidfd


def fork_child(run: Callable[[], int], inherited: list[int]) -> ForkedChild:
    """Fork a child that closes ``inherited`` (descriptors it must not hold), then runs
    ``run`` and exits with what it returns, by ``os._exit``: it never returns into the
    parent's code, never runs its atexit handlers nor flushes its buffers a second time.

    In the child, ``run`` starts in a process session of its own (``setsid``: a terminal's
    Ctrl-C reaches the parent only), with SIGINT ignored and SIGTERM's default, as a worker
    started by ``start_new_session`` has them. An exception in the child is one line on
    stderr and exit status 1.

    Call with nothing to flush: the parent's buffered output would be written twice.

    Raises:
        OSError: the fork failed (out of processes or memory).
    """
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            _become_child(run, inherited, blocked)
        try:
            pidfd = os.pidfd_open(pid)  # can_fork() said it works; a zombie has one too
        except OSError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return ForkedChild(pid, pidfd)


def _become_child(run: Callable[[], int], inherited: list[int], mask: set[int]) -> NoReturn:
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent has the terminal's Ctrl-C
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's (cli/interrupts.py)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for fd in inherited:
            os.close(fd)
        code = run()
    except BaseException as error:  # whatever it is, the child ends here, and says it once
        with contextlib.suppress(BaseException):
            print(
                f"smtpload: worker process {os.getpid()} failed: {type(error).__name__}: {error}",
                file=sys.stderr,
            )
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()  # its own output only: the parent flushed before the fork
        os._exit(code)
