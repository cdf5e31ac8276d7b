"""The ``smtpload`` console script: the process's set-up, before anything heavy is imported.

Importing the commands (trio, PyYAML, hdrhistogram) takes a few tenths of a second; a Ctrl-C
or SIGTERM in that time must end as one at any other moment of start-up does (exit 130, no
traceback), and a reader of stdout that has gone must not turn into a traceback either. So the
signal handling (``interrupts.py``) and the streams (``pipes.py``) are put in place first, and
only then is ``main`` imported.
"""

from __future__ import annotations

import sys

from smtpload.cli import interrupts, pipes

__all__ = ["entry_point"]


def entry_point() -> None:
    """Run the command line of this process (``sys.argv``) and exit with its status."""
    try:
        interrupts.install()
        pipes.survive_closed_pipes()
        from smtpload.cli.main import main

        status = main()
        interrupts.defer()  # a signal now changes only the exit status
    except KeyboardInterrupt:
        status = interrupts.EXIT_INTERRUPTED
    sys.exit(interrupts.EXIT_INTERRUPTED if interrupts.pending() else status)
