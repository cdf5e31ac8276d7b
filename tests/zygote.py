"""A fork server for ``tests/cli.py``: ``smtpload`` processes without paying its imports each time.

Importing the commands (trio, PyYAML, hdrhistogram, the scenario and report packages) costs
about a second of CPU on the CI machine, and the suite runs the command hundreds of times: most
of their wall time was that import, not what the tests check. The zygote is one process that has
imported the commands and nothing else (no event loop, no thread, no socket but its listener);
for each command it forks, and the child is set up as ``subprocess.run`` would set up a fresh
process (its own working folder, environment, stdin/stdout/stderr, file size limit, default
signal dispositions, ``sys.argv`` and ``sys.path[0]``) and then runs ``smtpload/__main__.py``
exactly as ``python -m smtpload`` does (``runpy``), exiting through the interpreter's own exit
(atexit, flushing, exit status, a traceback for an uncaught exception).

Each command is a connection (``SOCK_SEQPACKET``) to the zygote's listener. The zygote forks a
*manager* per connection, which receives the request and the three descriptors, forks the
command, sends its pid back (so the caller can kill it at its timeout), waits for it and sends
its wait status. The zygote ends when the test process does (its stdin, a pipe, reads EOF).

What a fork cannot copy, ``tests/cli.py`` does not send here (it starts a real process): a
different ``PYTHONPATH`` (an installed wheel), or an environment whose interpreter start-up
variables (``PYTHON*``, ``LANG``, ``LC_*``) differ from the zygote's, since those act before any
code runs.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import runpy
import select
import signal
import socket
import sys

__all__ = ["MAX_REQUEST_BYTES", "serve"]

#: A request is the command line, working folder and environment: a few kilobytes.
MAX_REQUEST_BYTES = 1 << 20


def _run_command(request: dict[str, object], fds: list[int]) -> None:
    """In the forked child: become the process the request describes, then run ``smtpload``."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for number, fd in enumerate(fds):
        os.dup2(fd, number)
        os.close(fd)
    cwd = str(request["cwd"])
    os.chdir(cwd)
    environment = request["env"]
    assert isinstance(environment, dict)
    os.environ.clear()
    os.environ.update(environment)
    max_file_bytes = request.get("max_file_bytes")
    if isinstance(max_file_bytes, int):
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
    args = request["args"]
    assert isinstance(args, list)
    # `python -m` puts the working folder first on the path and the module's file in argv[0]
    # (run_module sets that one).
    sys.path[0] = cwd
    sys.argv = ["-m", *map(str, args)]
    runpy.run_module("smtpload", run_name="__main__", alter_sys=True)
    sys.exit(0)


def _manage(connection: socket.socket) -> tuple[dict[str, object], list[int]] | None:
    """In the manager: fork the command, report its pid and then its wait status.

    Returns the request and its descriptors in the forked command, None in the manager.
    """
    message, fds, _flags, _address = socket.recv_fds(connection, MAX_REQUEST_BYTES, 3)
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:
        connection.close()
        return request, fds
    for fd in fds:
        os.close(fd)
    connection.send(str(pid).encode())
    _pid, status = os.waitpid(pid, 0)
    connection.send(str(status).encode())
    return None


#: The imports the children share: the commands, and what they import only when they run
#: (smtpload run does not pay for them, tests/test_startup.py; the zygote's children need not).
_SHARED_IMPORTS = (
    "smtpload.cli.entry",
    "smtpload.cli.main",
    "smtpload.regression.compare",
    "smtpload.regression.junit",
    "smtpload.regression.observe",
    "smtpload.transcripts.importer",
    "email.message",
    "email.policy",
    "mailbox",
    "re2",
    "xml.etree.ElementTree",
)


def serve(listener_fd: int) -> None:
    """The zygote's loop: a manager per connection on ``listener_fd`` until stdin reads EOF."""
    for name in _SHARED_IMPORTS:
        importlib.import_module(name)

    listener = socket.socket(fileno=listener_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # managers are reaped by the kernel
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in ready:
            return  # the test process has gone
        connection, _address = listener.accept()
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            command = _manage(connection)
            if command is None:
                os._exit(0)  # the manager's work is done; nothing of the zygote's to clean up
            _run_command(*command)  # exits through SystemExit, as `python -m smtpload` does
        connection.close()
