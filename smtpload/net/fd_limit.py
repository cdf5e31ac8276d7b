"""Open files: whether a run's connections fit the process's limit, checked before it starts.

Every session in flight holds one socket, and with the built-in sink (which shares smtpload's
process) a second one, the sink's end of the connection. Past the open-file limit
(``RLIMIT_NOFILE``, ``ulimit -n``) the next socket fails with EMFILE. So before a run:

    connections x (1, or 2 with the built-in sink) + FD_HEADROOM <= the soft limit

is the one rule, in ``open_files_needed``. ``ensure_open_files`` raises the soft limit toward
the hard limit when the rule needs it (any process may, up to the hard limit) and refuses a run
that still cannot fit, saying the limit and how to raise it. Any option that adds connections in
flight must count them through these two functions. A socket that fails with EMFILE anyway
(another program's files, a limit lowered meanwhile) is counted as that session's
``connect_error`` by ``client.py``, never raised.
"""

from __future__ import annotations

import resource

from smtpload.errors import UsageError

__all__ = ["FD_HEADROOM", "ensure_open_files", "most_connections", "open_files_needed"]

#: Files smtpload holds open besides its connections: the standard streams, trio's epoll and
#: wake-up sockets, the sink's listening socket, the result files being written, and Python's
#: own imports; with room to spare.
FD_HEADROOM = 64


def open_files_needed(connections: int, *, builtin_sink: bool) -> int:
    """The open-file limit a run needs with ``connections`` sessions in flight at most."""
    return connections * (2 if builtin_sink else 1) + FD_HEADROOM


def ensure_open_files(
    connections: int, *, builtin_sink: bool, option: str = "--concurrency"
) -> None:
    """Make room for ``connections`` sessions in flight, or refuse before anything runs.

    Args:
        connections: the most sessions in flight at once (``min(--concurrency, --sessions)``).
        builtin_sink: whether the built-in sink runs in this process (two files per session).
        option: the command-line option that sets ``connections``, for the message.

    Raises:
        UsageError: the soft limit is too low and the hard limit does not allow raising it.
    """
    needed = open_files_needed(connections, builtin_sink=builtin_sink)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    allowed = hard if hard != resource.RLIM_INFINITY else needed
    if allowed > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, allowed), hard))
        except (ValueError, OSError):
            pass  # e.g. a hard limit above the kernel's fs.nr_open: keep the soft limit
        else:
            soft = min(needed, allowed)
    if soft >= needed:
        return
    per_session = "2 per session with the built-in sink" if builtin_sink else "1 per session"
    most = (soft - FD_HEADROOM) // (2 if builtin_sink else 1)
    lower = f", or use {option} {most} or less" if most >= 1 else ""
    raise UsageError(
        f"{option} {connections} needs {needed} open files ({per_session}, plus"
        f" {FD_HEADROOM}), but the open-file limit is {soft} (hard limit {_shown(hard)});"
        f" raise it, e.g. `ulimit -n {needed}` (a hard limit is raised as root: limits.conf,"
        f" or LimitNOFILE= for a systemd service){lower}"
    )


def most_connections(cap: int, *, builtin_sink: bool) -> int:
    """The most sessions in flight the open-file limit allows, at most ``cap``: the soft limit
    is raised toward the hard one as far as ``cap`` needs (``--max-in-flight``'s default)."""
    per_session = 2 if builtin_sink else 1
    needed = open_files_needed(cap, builtin_sink=builtin_sink)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass  # keep the soft limit
        else:
            soft = wanted
    if soft == resource.RLIM_INFINITY:
        return cap
    return max(1, min(cap, (soft - FD_HEADROOM) // per_session))


def _shown(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
