"""The kernel's clock: when the data that completed a reply reached this machine.

A latency timed by the event loop ends when our code gets round to the reply, so under load it
measures our own queue, not the server (at 100 sessions in parallel about 45 times the server's
real p50). Linux can say when a segment arrived: with ``SO_TIMESTAMPNS`` set on a socket, each
``recvmsg`` returns, as ancillary data, the receive time of the last segment it read, a
``struct timespec`` on CLOCK_REALTIME (socket(7)). Step latencies then run from just before
the send syscall that carries the command's last byte, read from the same clock with
``time.time_ns()``, to that receive time.

Two consequences, both documented in the README:

* One ``recvmsg``, one time: replies that arrive together and are read together (a server
  answering pipelined commands) all get the time of that read's last segment.
* The start is taken before the send syscall, not after it: on loopback the reply often
  arrives while ``send()`` is still in the kernel (the project's notes, §9).

The greeting has no send to start from; it runs from the end of the TCP handshake, which no
timestamp marks. ``handshake_end_ns`` estimates it from the time just before the ``connect()``
syscall and the kernel's own measure of the handshake (``TCP_INFO``'s ``tcpi_rtt``: just after
the handshake, its only sample, the SYN to SYN-ACK time).
"""

from __future__ import annotations

import socket
import struct
import sys
from types import TracebackType

__all__ = [
    "RECEIVE_TIME_SPACE",
    "SWITCH_ON_WAIT_S",
    "ReceiveTimesKept",
    "enable_receive_times",
    "handshake_end_ns",
    "receive_time_ns",
]

#: ``SO_TIMESTAMPNS`` on Linux (asm-generic/socket.h); Python 3.11's socket module does not
#: name it. Its ancillary message carries the same number as its type. Elsewhere the number
#: means something else (or nothing), so there is no fallback: the loop clock is used.
_SO_TIMESTAMPNS: int | None = getattr(
    socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None
)

#: The ``struct timespec`` of the ancillary message: seconds and nanoseconds, two 64-bit ints.
_TIMESPEC = struct.Struct("qq")
_TIMESPEC_BYTES = _TIMESPEC.size
_unpack_timespec = _TIMESPEC.unpack_from
_SOL_SOCKET = socket.SOL_SOCKET

#: The ``ancbufsize`` for ``recvmsg`` that holds one receive time.
RECEIVE_TIME_SPACE: int = socket.CMSG_SPACE(_TIMESPEC.size)

# struct tcp_info (linux/tcp.h): after 8 one-byte fields, 32-bit ones; tcpi_rtt is the 16th
# (offset 68, microseconds) and tcpi_total_retrans the 24th (offset 100). 104 bytes hold both,
# and every Linux since 2.6 returns at least that much.
_TCP_INFO_BYTES = 104
_U32 = struct.Struct("=I")
_TCPI_RTT_OFFSET = 68
_TCPI_TOTAL_RETRANS_OFFSET = 100


def enable_receive_times(sock: socket.socket) -> bool:
    """Ask the kernel for receive times on ``sock``; False where the platform has none."""
    if _SO_TIMESTAMPNS is None or not hasattr(sock, "recvmsg"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


#: How long the runner gives the kernel to switch receive times on (see ReceiveTimesKept).
SWITCH_ON_WAIT_S = 0.005


class ReceiveTimesKept:
    """Keeps the kernel's receive times switched on for as long as it is open.

    Linux stamps received packets only while some socket asks for it, and switching the
    stamps on is deferred to a work queue (net_enable_timestamp in net/core/dev.c). At
    concurrency 1 each session's socket closes before the next one opens, so the stamps went
    off and on between sessions, and the next banner often arrived unstamped (seen in about
    one session in five). One socket that asks for them for the whole run keeps them on. The
    first switch-on is deferred too: the runner waits ``SWITCH_ON_WAIT_S`` after opening this,
    far longer than the kernel's work queue takes; a read that still comes without a time is
    timed by the loop and counted (summary.json's ``generator.untimed_reads``).

    ``available`` says whether the platform has receive times at all.
    """

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            return
        if enable_receive_times(sock):
            self._sock = sock
        else:
            sock.close()

    @property
    def available(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> ReceiveTimesKept:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def receive_time_ns(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's receive time in ``recvmsg``'s ancillary data, in ns since the epoch, or
    None when it carries none (a read that returned EOF, a platform without timestamps)."""
    # Every read of a session passes here: the constants are module names, not lookups.
    for level, kind, data in ancillary:
        if kind == _SO_TIMESTAMPNS and level == _SOL_SOCKET and len(data) >= _TIMESPEC_BYTES:
            seconds, nanoseconds = _unpack_timespec(data)
            received_ns: int = seconds * 1_000_000_000 + nanoseconds  # struct gives ints
            return received_ns
    return None


def handshake_end_ns(sock: socket.socket, before_ns: int) -> int | None:
    """When the TCP handshake of the connected ``sock`` ended, estimated; None when no
    estimate holds (a SYN was sent again, so the kernel's handshake time leaves out the wait).

    Args:
        before_ns: ``time.time_ns()`` just before the ``connect()`` syscall.

    The SYN leaves during the syscall and the client's ACK one round trip later, so the end is
    ``before_ns`` plus the kernel's handshake time, early by the part of the syscall before
    the SYN left (microseconds; ``benchmarks/truth.py`` measures the greeting against a
    capture). The syscall's return is no bound: on loopback, and more so on a busy machine,
    the server's whole banner can arrive before ``connect()`` returns.
    """
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    except (OSError, AttributeError):
        return None
    if len(info) < _TCP_INFO_BYTES:
        return None
    (retransmitted,) = _U32.unpack_from(info, _TCPI_TOTAL_RETRANS_OFFSET)
    if retransmitted:
        return None
    (rtt_us,) = _U32.unpack_from(info, _TCPI_RTT_OFFSET)
    return before_ns + int(rtt_us) * 1000
