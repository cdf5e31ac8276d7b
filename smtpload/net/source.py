"""Binding each session's socket to its source address (``--source``), and the checks before.

The list and its round-robin are load/sources.py's; this module owns the sockets:

* ``check_sources``: before the run, a probe socket is bound to the first and the last address
  of each item (a range is taken to be on this machine whole when its ends are: checking 65,536
  addresses would cost as many sockets), so that an address that is not this machine's is one
  usage error, not a ``connect_error`` for every session.
* ``SourceBinder``: during the run, binds session k's socket to its address, port 0, and
  counts the sessions each address got (summary.json's ``sources``).

Port 0 lets the kernel pick the port. With ``IP_BIND_ADDRESS_NO_PORT`` (Linux 4.2, value 24;
it applies to IPv6 sockets too) the kernel picks it at ``connect()`` instead of at ``bind()``,
and so needs the whole 4-tuple, not the (address, port) pair, to be unique: without it, each
source address would be limited to its ~28,000 ephemeral ports across every server at once,
and a bind could fail with EADDRINUSE while connect would have found a port.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
from array import array
from collections.abc import Sequence
from typing import Any

from smtpload.errors import UsageError
from smtpload.load.sources import SourceList

__all__ = ["BY_ADDRESS_MAX", "FAMILIES", "SourceBinder", "check_sources", "family_name"]

#: Python's name where it has it (Linux builds do), else Linux's value on Linux.
_IP_BIND_ADDRESS_NO_PORT: int | None = getattr(
    socket, "IP_BIND_ADDRESS_NO_PORT", 24 if sys.platform == "linux" else None
)

#: IP version to address family.
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}

#: summary.json's ``sources.by_address`` lists every address up to this many, else is null.
BY_ADDRESS_MAX = 256


def family_name(family: int) -> str:
    return "IPv6" if family == socket.AF_INET6 else "IPv4"


def _bind(sock: socket.socket, address: str) -> None:
    if _IP_BIND_ADDRESS_NO_PORT is not None:
        # An older kernel refuses it: the port is then picked at bind, which still works.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
    sock.bind((address, 0))


def _describe(error: OSError) -> str:
    name = errno.errorcode.get(error.errno or 0, "")
    text = error.strerror or str(error)
    return f"{text} ({name})" if name else text


def check_sources(sources: SourceList) -> None:
    """Bind a probe socket to the first and last address of each item of ``sources``.

    Raises:
        UsageError: an address cannot be bound (not on this machine: EADDRNOTAVAIL), naming it.
    """
    for item in sources.ranges:
        ends = {str(item.first), str(item.last)}
        for address in sorted(ends):
            with socket.socket(FAMILIES[item.version], socket.SOCK_STREAM) as probe:
                try:
                    _bind(probe, address)
                except OSError as error:
                    hint = (
                        "; give addresses of this machine's interfaces (ip addr), or add it"
                        if error.errno == errno.EADDRNOTAVAIL
                        else ""
                    )
                    where = "" if item.text == address else f" (of {item.text})"
                    raise UsageError(
                        f"--source {address}{where} cannot be bound: {_describe(error)}{hint}"
                    ) from None


class SourceBinder:
    """Binds sessions' sockets to ``sources`` round-robin (all of one family), and counts."""

    __slots__ = ("_index", "family", "other_family", "sessions")

    def __init__(self, sources: SourceList, *, other_family: int = 0) -> None:
        self._index = sources.indexer()
        (version,) = sources.versions
        self.family = FAMILIES[version]
        self.other_family = other_family  # addresses listed but left out: the other family
        self.sessions = array("L", bytes(array("L").itemsize * self._index.size))

    def bind(self, sock: socket.socket, session: int) -> None:
        """Bind ``sock`` to session ``session``'s address.

        Raises:
            OSError: the bind failed; its message names the address.
        """
        index, address = self._index.for_session(session)
        try:
            _bind(sock, address)
        except OSError as error:
            reason = error.strerror or str(error)
            raise OSError(error.errno, f"cannot bind to source {address}: {reason}") from None
        self.sessions[index] += 1

    def add_counts(self, sessions: Sequence[int]) -> None:
        """Add another shard's sessions per address (its ``sessions``) to these counts."""
        for index, count in enumerate(sessions):
            self.sessions[index] += count

    def summary(self) -> dict[str, Any]:
        """summary.json's ``sources``."""
        counts = self.sessions
        size = self._index.size
        by_address = None
        if size <= BY_ADDRESS_MAX:
            by_address = {self._index.address(i): counts[i] for i in range(size)}
        return {
            "addresses": size,
            "family": family_name(self.family),
            "sessions_min": min(counts),
            "sessions_max": max(counts),
            "by_address": by_address,
            "other_family_left_out": self.other_family,
        }
