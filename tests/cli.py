"""Running the ``smtpload`` command as a user does: a real process, running this checkout's code.

Every test that runs the command goes through here, so that each one runs the code under test
and none can hang the suite:

* ``PYTHONPATH`` is this checkout (or, for a test of an installed wheel, the folder it was
  installed into), never whatever ``smtpload`` happens to be installed: an editable install or
  a site-packages copy from another checkout would otherwise be what the process imports.
* ``smtpload(...)`` runs a command to its end within ``timeout_s``; ``start_smtpload(...)``
  starts one that runs until the test stops it (``smtpload sink``, a run to interrupt).
"""

from __future__ import annotations

import atexit
import json
import locale
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["COMMAND", "ROOT", "environment", "smtpload", "start_smtpload"]

#: The checkout the tests belong to.
ROOT = Path(__file__).resolve().parent.parent

#: The command line of ``smtpload``, with the interpreter running the tests.
COMMAND = (sys.executable, "-m", "smtpload")

#: Long enough for the slowest command the tests run (a replay against Postfix); a command that
#: takes longer is stuck, and fails its test instead of hanging the suite.
DEFAULT_TIMEOUT_S = 120.0


def environment(pythonpath: Path = ROOT) -> dict[str, str]:
    """This process's environment, with ``smtpload`` imported from ``pythonpath``."""
    return {**os.environ, "PYTHONPATH": str(pythonpath)}


def smtpload(
    *args: str,
    cwd: Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pythonpath: Path = ROOT,
    max_file_bytes: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``smtpload ARGS...`` in ``cwd`` to its end; its output is captured as text.

    Args:
        cwd: where it runs (its ``results/`` folder goes there).
        timeout_s: raises ``subprocess.TimeoutExpired`` (failing the test) after this long.
        pythonpath: where ``smtpload`` is imported from: this checkout unless a test installed
            a copy of its own.
        max_file_bytes: a file size limit (RLIMIT_FSIZE) for the process: a write past it
            fails with EFBIG, for root too, which is how a test makes an output fail to write.
    """

    env = environment(pythonpath)
    if pythonpath == ROOT and not os.environ.get(NO_ZYGOTE_ENV):
        zygote = _zygote_for(env)
        if zygote is not None:
            return zygote.run(list(args), cwd=cwd, env=env, timeout_s=timeout_s,
                              max_file_bytes=max_file_bytes)  # fmt: skip

    def limit_file_size() -> None:
        if max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        preexec_fn=limit_file_size if max_file_bytes is not None else None,
    )


def start_smtpload(
    *args: str, env: dict[str, str | None] | None = None, **popen: Any
) -> subprocess.Popen[str]:
    """Start ``smtpload ARGS...`` from this checkout; the caller stops it and waits for it.

    ``popen`` goes to ``subprocess.Popen`` (``stdout=subprocess.PIPE``, ``cwd``, ...); the
    process's pipes are text. ``env`` changes the environment: a name set to None is removed
    (a test on a terminal sets ``TERM`` and drops ``COLUMNS``).
    """
    variables = environment()
    for name, value in (env or {}).items():
        if value is None:
            variables.pop(name, None)
        else:
            variables[name] = value
    return subprocess.Popen([*COMMAND, *args], env=variables, text=True, **popen)


# --- the fork server (tests/zygote.py) ---------------------------------------------------------

#: Set (non-empty) to start every command as a fresh interpreter, as before the zygote.
NO_ZYGOTE_ENV = "SMTPLOAD_TESTS_NO_ZYGOTE"


def _startup_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The variables the interpreter reads before any code runs, which a fork cannot change."""
    return {
        name: value
        for name, value in env.items()
        if name.startswith(("PYTHON", "LC_")) or name in {"LANG", "LANGUAGE"}
    }


class _Zygote:
    """The client of one ``tests/zygote.py`` process, started on first use."""

    def __init__(self, env: dict[str, str]) -> None:
        self.startup = _startup_variables(env)
        self._folder = tempfile.TemporaryDirectory(prefix="smtpload-zygote-")
        self._address = os.path.join(self._folder.name, "socket")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(self._address)
        listener.listen(64)
        self._process = subprocess.Popen(
            [sys.executable, "-c", f"from tests.zygote import serve; serve({listener.fileno()})"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,  # its EOF (this process gone) ends the zygote
            stdout=subprocess.DEVNULL,
            pass_fds=(listener.fileno(),),
        )
        listener.close()
        atexit.register(self.close)

    def alive(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._folder.cleanup()

    def run(
        self,
        args: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        timeout_s: float,
        max_file_bytes: int | None,
    ) -> subprocess.CompletedProcess[str]:
        """What ``subprocess.run([*COMMAND, *args], capture_output=True, text=True)`` returns."""
        command = [*COMMAND, *args]
        request = {
            "args": args,
            "cwd": str(Path(cwd).resolve()),
            "env": env,
            "max_file_bytes": max_file_bytes,
        }
        deadline = time.monotonic() + timeout_s
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as connection:
            connection.settimeout(timeout_s)
            connection.connect(self._address)
            try:
                socket.send_fds(
                    connection, [json.dumps(request).encode()], [0, out_write, err_write]
                )
            finally:
                os.close(out_write)
                os.close(err_write)
            pid = int(connection.recv(64))
            outputs = _read_to_end({out_read: bytearray(), err_read: bytearray()}, deadline)
            timed_out = outputs is None
            if timed_out:
                os.kill(pid, signal.SIGKILL)
            connection.settimeout(None)
            status = int(connection.recv(64))
        if outputs is None:
            raise subprocess.TimeoutExpired(command, timeout_s)
        stdout, stderr = (_text(outputs[fd]) for fd in (out_read, err_read))
        return subprocess.CompletedProcess(
            command, os.waitstatus_to_exitcode(status), stdout, stderr
        )


def _read_to_end(buffers: dict[int, bytearray], deadline: float) -> dict[int, bytearray] | None:
    """Read every descriptor to EOF (then close it), or None at the deadline (all closed)."""
    open_fds = set(buffers)
    try:
        while open_fds:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                return None
            ready, _, _ = select.select(list(open_fds), [], [], left_s)
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    buffers[fd] += chunk
                else:
                    open_fds.discard(fd)
        return buffers
    finally:
        for fd in buffers:
            os.close(fd)


def _text(data: bytes | bytearray) -> str:
    """Bytes as ``subprocess``'s ``text=True`` reads them: the locale's encoding, newlines."""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


_zygotes: list[_Zygote] = []


def _zygote_for(env: dict[str, str]) -> _Zygote | None:
    """The zygote for this environment (started now if need be), or None: start a process."""
    startup = _startup_variables(env)
    _zygotes[:] = [zygote for zygote in _zygotes if zygote.alive()]  # one that died is replaced
    for zygote in _zygotes:
        if zygote.startup == startup:
            return zygote
    if _zygotes:  # a test changed PYTHON*/LANG/LC_*: rare, so a fresh interpreter it is
        return None
    zygote = _Zygote(env)
    _zygotes.append(zygote)
    return zygote
