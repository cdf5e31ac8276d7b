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

import os
import resource
import subprocess
import sys
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

    def limit_file_size() -> None:
        if max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=environment(pythonpath),
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
