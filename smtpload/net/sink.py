"""The built-in sink server: listening sockets and connections around `SinkConnection`.

This module owns the sink's I/O: binding (port 0 picks a free port), one task per connection,
idle timeouts, counting, and the blocking entry point behind ``smtpload sink``. Every SMTP rule
lives in ``protocol/sink.py``; nothing here looks inside the bytes.

A connection costs one ``receive_some`` and at most one ``send_all`` per read, however many
pipelined commands the read held. A client that resets or vanishes ends its own connection
only: the server goes on serving the others.

The idle timeout bounds every wait on the client, both ways: for its next bytes (then it gets a
421, RFC 5321 §4.5.3.2.7) and for it to take our replies. A client that pipelines commands and
never reads would otherwise hold its task and socket forever once the socket buffers are full;
it is closed without a 421, which it would not read either.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
from dataclasses import dataclass

import trio

from smtpload.errors import counted
from smtpload.protocol.sink import DEFAULT_HOSTNAME, SinkConnection
from smtpload.scenario.model import Target

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "SinkAddress",
    "SinkStats",
    "run_sink_forever",
    "serve_sink",
    "serve_sink_connection",
]

#: How long a connection may stay silent before the sink says 421 and closes it. RFC 5321
#: §4.5.3.2.7 asks a server to wait at least 5 minutes for the next command.
DEFAULT_IDLE_TIMEOUT_S = 300.0

#: How long a closing connection may take to accept its 421 before it is dropped anyway.
_FAREWELL_TIMEOUT_S = 1.0

_CONNECTION_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


#: Where a running sink listens: the address actually bound, so never port 0.
SinkAddress = Target


@dataclass(slots=True)
class SinkStats:
    """Counts for one sink, updated as connections go; read them at any time.

    Attributes:
        connections: connections accepted so far.
        active_connections: connections open right now.
        messages: messages accepted (``250 ... queued as``).
        message_bytes: bytes of accepted messages, as sent (dot-stuffed).
        commands: command lines answered, valid or not.
        connection_errors: connections that ended with a reset or another socket error.
        idle_timeouts: connections closed with 421 because the client stayed silent.
        write_timeouts: connections closed because the client took none of our replies for
            the idle timeout (it sends commands but does not read).
    """

    connections: int = 0
    active_connections: int = 0
    messages: int = 0
    message_bytes: int = 0
    commands: int = 0
    connection_errors: int = 0
    idle_timeouts: int = 0
    write_timeouts: int = 0


async def serve_sink(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[SinkAddress] = trio.TASK_STATUS_IGNORED,
    hostname: str = DEFAULT_HOSTNAME,
    stats: SinkStats | None = None,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    pipelining: bool = True,
) -> None:
    """Run the sink until cancelled; start it with ``await nursery.start(serve_sink)``.

    Args:
        host: the address to listen on: an IP literal (``"::1"`` and ``"[::1]"`` both work),
            a name, or ``""`` for every interface.
        port: the TCP port; 0 picks a free one (then, if ``host`` has several addresses, only
            the first is served, so that the reported address is the only one).
        task_status: receives the `SinkAddress` actually bound, once connections are accepted.
        hostname: the name in the banner and in EHLO/HELO replies.
        stats: counts to update; pass your own to read them while the sink runs.
        idle_timeout_s: close a connection silent for this long, with a 421, or one whose
            client has taken none of our replies for this long (``math.inf``: never).
        pipelining: advertise PIPELINING (RFC 2920) in the EHLO reply.

    Raises:
        OSError: the address cannot be bound (in use, not local, not resolvable).
        ValueError: ``hostname`` is not a plain domain.
    """
    SinkConnection(hostname)  # refuse a bad hostname now, not at the first connection
    listeners, address = await _open_listeners(host, port)
    await _serve_listeners(
        listeners,
        address,
        SinkStats() if stats is None else stats,
        hostname,
        idle_timeout_s,
        pipelining,
        task_status=task_status,
    )


async def serve_sink_connection(
    stream: trio.abc.Stream,
    stats: SinkStats,
    *,
    hostname: str = DEFAULT_HOSTNAME,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    pipelining: bool = True,
) -> None:
    """Talk SMTP on one connection until QUIT, EOF, a socket error or the idle timeout
    (waiting for the client's bytes, or for the client to take our replies).

    Socket errors end this connection quietly (counted in ``stats.connection_errors``); they
    never propagate. If the task is cancelled (the sink stops) the client gets a 421 first.
    """
    stats.connections += 1
    stats.active_connections += 1
    connection = SinkConnection(hostname, connection_id=stats.connections, pipelining=pipelining)
    try:
        await _converse(stream, connection, stats, idle_timeout_s)
    except _CONNECTION_ERRORS:
        stats.connection_errors += 1
    finally:
        stats.active_connections -= 1
        await trio.aclose_forcefully(stream)


def run_sink_forever(
    host: str,
    port: int,
    *,
    hostname: str = DEFAULT_HOSTNAME,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    pipelining: bool = True,
) -> None:
    """Run the sink in the foreground until Ctrl-C or SIGTERM (the ``smtpload sink`` command).

    Prints ``smtpload sink listening on HOST:PORT`` once listening, and a line with the counts
    when stopped. Call it from the main thread (it installs signal handlers).

    Raises:
        OSError: the address cannot be bound.
        ValueError: ``hostname`` is not a plain domain.
    """
    stats = SinkStats()
    try:
        trio.run(_serve_until_signal, host, port, hostname, stats, idle_timeout_s, pipelining)
    except* KeyboardInterrupt:
        pass  # a Ctrl-C before the signal handler was in place: stopping is what was asked
    print(
        f"smtpload sink stopped: {counted(stats.connections, 'connection')},"
        f" {counted(stats.messages, 'message')}",
        flush=True,
    )


async def _serve_until_signal(
    host: str,
    port: int,
    hostname: str,
    stats: SinkStats,
    idle_timeout_s: float,
    pipelining: bool,
) -> None:
    SinkConnection(hostname)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        listeners, address = await _open_listeners(host, port)
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(
                    _serve_listeners,
                    listeners,
                    address,
                    stats,
                    hostname,
                    idle_timeout_s,
                    pipelining,
                )
            )
            print(f"smtpload sink listening on {address}", flush=True)
            async for _signal in signals:
                nursery.cancel_scope.cancel(reason="signal received")
                break


async def _open_listeners(host: str, port: int) -> tuple[list[trio.SocketListener], SinkAddress]:
    host = host.removeprefix("[").removesuffix("]")
    listeners = await trio.open_tcp_listeners(port, host=host or None)
    if port == 0 and len(listeners) > 1:
        # A name with several addresses (localhost: 127.0.0.1 and ::1) gets one listener per
        # address, each on a different free port; a caller can be told only one of them.
        for extra in listeners[1:]:
            await extra.aclose()
        del listeners[1:]
    bound_host: str
    bound_port: int
    bound_host, bound_port = listeners[0].socket.getsockname()[:2]
    return listeners, SinkAddress(bound_host, bound_port)


class _AcceptErrorsOnce(logging.Filter):
    """trio's ``serve_listeners`` logs every accept that fails for lack of resources (EMFILE,
    ENFILE, ENOBUFS, ENOMEM) with a traceback, again every 0.1 s while it lasts, and retries.
    Let the first such line through without its traceback, and none after it."""

    def __init__(self) -> None:
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None:
            return True
        if self.said:
            return False
        self.said = True
        record.exc_info = None
        record.exc_text = None
        return True


async def _serve_listeners(
    listeners: list[trio.SocketListener],
    address: SinkAddress,
    stats: SinkStats,
    hostname: str,
    idle_timeout_s: float,
    pipelining: bool,
    *,
    task_status: trio.TaskStatus[SinkAddress] = trio.TASK_STATUS_IGNORED,
) -> None:
    handler = functools.partial(
        serve_sink_connection,
        stats=stats,
        hostname=hostname,
        idle_timeout_s=idle_timeout_s,
        pipelining=pipelining,
    )
    accept_log = logging.getLogger("trio.serve_listeners")
    quiet = _AcceptErrorsOnce()
    accept_log.addFilter(quiet)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handler, listeners)
            task_status.started(address)
    finally:
        accept_log.removeFilter(quiet)


async def _converse(
    stream: trio.abc.Stream, connection: SinkConnection, stats: SinkStats, idle_timeout_s: float
) -> None:
    idle = trio.CancelScope()
    sending = True
    with idle:
        # Every send is bounded like a wait for the client: a client that does not read can
        # fill the socket buffers, and then a send would never return.
        idle.deadline = trio.current_time() + idle_timeout_s
        await stream.send_all(connection.greeting())
        while not connection.closed:
            idle.deadline = trio.current_time() + idle_timeout_s
            sending = False
            try:
                data = await stream.receive_some()
            except trio.Cancelled:
                # RFC 5321 §3.8: a server that closes on its own initiative says 421 first.
                timed_out = idle.cancel_called
                reply = connection.timeout_reply() if timed_out else connection.shutdown_reply()
                await _say_farewell(stream, reply)
                raise
            if not data:
                return  # the client closed without QUIT
            messages, message_bytes, commands = (
                connection.messages,
                connection.message_bytes,
                connection.commands,
            )
            replies = connection.receive_data(data)
            stats.messages += connection.messages - messages
            stats.message_bytes += connection.message_bytes - message_bytes
            stats.commands += connection.commands - commands
            if replies:
                idle.deadline = trio.current_time() + idle_timeout_s
                sending = True
                # A send cut off by the deadline leaves part of a reply on the wire: no 421
                # can follow it, and the client is not reading anyway. The connection is
                # closed by the caller.
                await stream.send_all(replies)
    if idle.cancelled_caught:
        if sending:
            stats.write_timeouts += 1
        else:
            stats.idle_timeouts += 1


async def _say_farewell(stream: trio.abc.Stream, reply: bytes) -> None:
    """Send a last reply even though this task is being cancelled, within a short grace."""
    with trio.move_on_after(_FAREWELL_TIMEOUT_S, shield=True):
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await stream.send_all(reply)
