"""Run ``python -m smtpload`` stopped at one chosen moment, so a test can signal it right there.

    python -m tests.stall EVENT TEXT NTH -- smtpload arguments...

An audit hook (PEP 578) watches the process's own events: at the NTH ``EVENT`` (``import``,
``open``, ``socket.bind``, ...) whose arguments, as text, contain ``TEXT``, in the main thread, it
writes one byte to the file descriptor ``$STALL_NOTIFY_FD`` and waits for one byte on
``$STALL_RESUME_FD``. The test signals the process while it waits, then lets it go on. Nothing
of smtpload is replaced: the process is the real command, only held at a known point (while
importing trio, while opening a result file). Without a hook a test could only guess the
moment with sleeps.

Imports here are standard library only, and smtpload itself is imported after the hook is in
place, exactly as ``python -m smtpload`` imports it.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
from typing import Any

NOTIFY_ENV = "STALL_NOTIFY_FD"
RESUME_ENV = "STALL_RESUME_FD"


def _install(event: str, text: str, nth: int) -> None:
    notify_fd = int(os.environ[NOTIFY_ENV])
    resume_fd = int(os.environ[RESUME_ENV])
    seen = 0
    main_thread = threading.main_thread()

    def hook(name: str, args: tuple[Any, ...]) -> None:
        nonlocal seen
        if name != event or seen >= nth or threading.current_thread() is not main_thread:
            return
        if text not in " ".join(str(arg) for arg in args):
            return
        seen += 1
        if seen == nth:
            os.write(notify_fd, b"!")
            os.read(resume_fd, 1)  # a signal handler may raise here, as it would anywhere

    sys.addaudithook(hook)


def main() -> None:
    event, text, nth, separator, *arguments = sys.argv[1:]
    assert separator == "--", "usage: python -m tests.stall EVENT TEXT NTH -- ARGS..."
    _install(event, text, int(nth))
    sys.argv = ["smtpload", *arguments]
    runpy.run_module("smtpload", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
