"""Postfix's ``smtp-sink`` on a loopback port: one way to start it, for the benchmarks and the
tests' fast out-of-process server (tests/conftest.py).

smtp-sink says nothing when it is ready, so ``smtp_sink`` polls until its banner comes; as
root it must be told a user to run as (it refuses root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import IO

__all__ = ["LOOPBACK", "find_smtp_sink", "free_port", "smtp_sink"]

LOOPBACK = "127.0.0.1"


def find_smtp_sink() -> str | None:
    """The smtp-sink program, or None. Debian puts it in /usr/sbin, which a non-root PATH may
    leave out."""
    return shutil.which("smtp-sink", path=f"{os.environ.get('PATH', '')}:/usr/sbin")


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_banner(process: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1) as sock:
                if sock.recv(512).startswith(b"220"):
                    sock.sendall(b"QUIT\r\n")
                    return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
        # Polling for a process to listen; no measurement or test result depends on the wait.
        time.sleep(0.05)


@contextlib.contextmanager
def smtp_sink(
    port: int,
    *,
    messages: int = 2000,
    backlog: int = 1024,
    timeout_s: float = 10.0,
    options: Sequence[str] = (),
    stdout: IO[bytes] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """smtp-sink on ``LOOPBACK:port`` (``-m messages``, listen ``backlog``) until the block
    ends; yields its process once its banner comes. ``options`` go before the address (``-c``
    for its counters, ``-w 30`` to hold DATA replies); ``stdout`` gets what it prints (else
    nothing does).

    Raises:
        FileNotFoundError: smtp-sink is not installed.
        OSError: it did not answer within ``timeout_s``.
    """
    program = find_smtp_sink()
    if program is None:
        raise FileNotFoundError("smtp-sink not found: install Postfix (sudo .ci/postfix-setup)")
    command = [program, *options, "-m", str(messages), f"{LOOPBACK}:{port}", str(backlog)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]  # smtp-sink refuses to run as root otherwise
    output = subprocess.DEVNULL if stdout is None else stdout
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.DEVNULL)
    try:
        _wait_for_banner(process, port, timeout_s)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
