"""One SMTP session over a real socket: the engine's steps turned into trio I/O.

This is the only client code that touches sockets. It uses ``trio.socket`` directly rather than
``SocketStream``: on this hot path the stream wrapper costs about a third more CPU per session
(measured; see the notes on trio in the project's shared notes), and a session needs nothing from
it but ``send`` and ``recv``.

Timing, all from ``trio.current_time()`` (one clock for everything, and the one trio's
timeouts use): ``connect`` from before ``connect()`` to the connection established; each step
from the last byte sent (the greeting: from the connection established) to its complete reply;
the session from before ``connect()`` to its last step.

Replies out of turn (RFC 5321 §4.2: a server speaks only when spoken to, §3.8's 421 aside):
before each command, the session looks for a reply that is already there, in the replies read
together, in the parser's unfinished reply, and in the kernel's receive queue. The last is one
``ioctl(FIONREAD)``, about 1 µs: the cheapest look at the queue (a non-blocking ``MSG_PEEK``
costs about 2.5 µs in Python, as it raises BlockingIOError when there is nothing), and
``benchmarks/bench_sessions.py --beside`` measures what it costs a session.
"""

from __future__ import annotations

import errno
import fcntl
import socket as stdlib_socket
import termios
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio

from smtpload.errors import RemoteProtocolError
from smtpload.protocol.compiler import CompiledScenario
from smtpload.protocol.engine import Observation, SessionEngine
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.wire import DEFAULT_MAX_REPLY_BYTES, PaddedMessage, Reply, ReplyParser
from smtpload.report.stats import RunStats
from smtpload.scenario.model import StepKind, Target

__all__ = ["ResolvedTarget", "resolve_target", "run_session"]

_RECEIVE_BYTES = 65536

#: Steps that send a command (or a message) and so must find nothing waiting before they do.
_SENDING_STEPS = frozenset({StepKind.SEND, StepKind.DATA})

_NOTHING_WAITING = b"\0\0\0\0"


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """The server's address, resolved once per run (not once per session)."""

    family: int
    address: tuple[object, ...]
    display: str


async def resolve_target(host: str, port: int) -> ResolvedTarget:
    """Resolve ``host`` once; raises OSError when it cannot be resolved."""
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=stdlib_socket.SOCK_STREAM)
    except UnicodeError as error:
        # The IDNA codec refuses the name before any lookup: a label over 63 characters or an
        # empty one (RFC 1035 §2.3.4). Nothing can connect to it, as to a name that is unknown.
        reason = error.__cause__ or error
        raise OSError(f"not a valid host name ({reason})") from None
    family, _type, _proto, _canonname, address = infos[0]
    return ResolvedTarget(int(family), tuple(address), str(Target(host, port)))


def _describe_os_error(error: OSError) -> str:
    name = errno.errorcode.get(error.errno or 0, "")
    text = error.strerror or str(error) or type(error).__name__
    return f"{text} ({name})" if name else text


def new_session(
    scenario: CompiledScenario,
    session: int,
    run_id: str,
    *,
    observe: bool = False,
    watcher: Callable[[Observation], None] | None = None,
) -> SessionEngine:
    """The engine of session number ``session``, with its variables."""
    variables = scenario.session_variables(session, run_id) if scenario.uses_variables else None
    return SessionEngine(scenario, session, variables, observe=observe, watcher=watcher)


def record_interrupted(engine: SessionEngine, stats: RunStats) -> None:
    """Record a session that Ctrl-C or SIGTERM cut off: its step in progress, and its end."""
    step = engine.step_in_progress
    if step is not None:
        stats.record_step(step, None, failed=True)
    engine.on_interrupted()
    stats.record_session(engine.outcome, None, engine.failure())


async def run_session(
    scenario: CompiledScenario,
    target: ResolvedTarget,
    engine: SessionEngine,
    stats: RunStats,
    *,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
) -> None:
    """Run one whole session and record it in ``stats``.

    A reply longer than ``max_reply_bytes`` ends the session as ``protocol_error``.

    Never raises for anything the server or the network does. trio.Cancelled (Ctrl-C) passes
    through; the caller then records the session with ``record_interrupted``.
    """
    now = trio.current_time
    started = now()
    try:
        sock = trio.socket.socket(target.family, stdlib_socket.SOCK_STREAM)
    except OSError as error:
        # EMFILE/ENFILE (out of file descriptors), ENOBUFS: this session cannot connect; the
        # run goes on, and sessions after it get a socket again once others have closed.
        engine.on_connect_error(_describe_os_error(error))
        stats.record_step("connect", None, failed=True)
        stats.record_session(engine.outcome, None, engine.failure())
        # No I/O happened: yield, so that a worker meeting this again and again never
        # starves the other tasks (replies, Ctrl-C, the sink) of the loop.
        await trio.lowlevel.checkpoint()
        return
    try:
        # Commands are small writes, each answered before the next: never let Nagle hold one.
        sock.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
        try:
            with trio.fail_after(scenario.timeout_s):
                await sock.connect(target.address)
        except trio.TooSlowError:
            engine.on_connect_error(f"no connection within {scenario.timeout_s:g} s")
        except OSError as error:
            engine.on_connect_error(_describe_os_error(error))
        if engine.outcome is not Outcome.PASSED:
            stats.record_step("connect", None, failed=True)
            stats.record_session(engine.outcome, None, engine.failure())
            return
        mark = now()
        stats.record_step("connect", int((mark - started) * 1e6), failed=False)
        engine.on_connected(target.display)
        await _converse(sock, engine, stats, mark, ReplyParser(max_reply_bytes))
        outcome = engine.outcome
        latency_us = int((now() - started) * 1e6) if outcome is Outcome.PASSED else None
        stats.record_session(outcome, latency_us, engine.failure())
    finally:
        sock.close()


async def _send_all(sock: trio.socket.SocketType, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        sent = await sock.send(view)
        view = view[sent:]


async def _send_payload(sock: trio.socket.SocketType, data: bytes | PaddedMessage) -> None:
    if isinstance(data, bytes):
        await _send_all(sock, data)
    else:
        # A large padded message: its padding is slices of one block shared by all sessions.
        for chunk in data.chunks():
            await _send_all(sock, chunk)


async def _receive_reply(
    sock: trio.socket.SocketType, parser: ReplyParser, backlog: deque[Reply]
) -> Reply | None:
    """The next complete reply, or None when the server closed the connection first.

    Replies that arrive together (a server answering pipelined commands, or one that talks
    out of turn) are kept in ``backlog`` for the steps that come next, in order.
    """
    if backlog:
        return backlog.popleft()
    while True:
        chunk = await sock.recv(_RECEIVE_BYTES)
        if not chunk:
            # A close in the middle of a reply is still a close: the partial reply is lost.
            return None
        replies = parser.feed(chunk)
        if replies:
            backlog.extend(replies[1:])
            return replies[0]


def _bytes_waiting(fd: int, probe: bytearray) -> bool:
    """Whether the kernel holds received bytes not read yet (``probe``: 4 bytes of scratch)."""
    fcntl.ioctl(fd, termios.FIONREAD, probe)
    return probe != _NOTHING_WAITING


async def _early_reply(
    sock: trio.socket.SocketType, parser: ReplyParser, backlog: deque[Reply], probe: bytearray
) -> Reply | bytes | None:
    """What was already there before a command: a complete reply, the bytes of an unfinished
    one, or None when the server closed the connection while a 421 was still arriving.

    Only called when something is there, so the one ``recv`` here never waits.
    """
    if not backlog and _bytes_waiting(sock.fileno(), probe):
        backlog.extend(parser.feed(await sock.recv(_RECEIVE_BYTES)))
    if backlog:
        return backlog.popleft()
    unfinished = parser.partial_reply
    if unfinished.startswith(b"421"):
        # RFC 5321 §3.8: a 421 may come at any time; it is the step's reply once complete.
        return await _receive_reply(sock, parser, backlog)
    return unfinished


async def _converse(
    sock: trio.socket.SocketType,
    engine: SessionEngine,
    stats: RunStats,
    mark: float,
    parser: ReplyParser,
) -> None:
    """Run the engine's steps over a connected socket, recording each step.

    One cancel scope serves the whole dialogue: its deadline is moved to each step's timeout
    as the step starts, so sending and receiving are both bounded (a server that stops reading
    cannot block a large DATA forever), and no scope is built per step on this hot path.
    """
    backlog: deque[Reply] = deque()
    now = trio.current_time
    step = None
    messages = 0
    fd = sock.fileno()
    probe = bytearray(4)  # one per session: ioctl writes into it
    with trio.CancelScope() as deadline:
        while (step := engine.next_step()) is not None:
            deadline.deadline = now() + step.timeout_s
            try:
                if (
                    step.kind in _SENDING_STEPS
                    and step.index >= 0  # not our QUIT after a failure: any reply ends that
                    and (backlog or parser.has_partial_reply or _bytes_waiting(fd, probe))
                ):
                    early = await _early_reply(sock, parser, backlog, probe)
                    if isinstance(early, Reply):
                        passed = engine.on_early_reply(step, early)
                    elif early is None:
                        passed = engine.on_closed(step)
                    else:
                        engine.on_early_bytes(step, early)
                        passed = False
                    # No command was sent, so there is no latency to record.
                    stats.record_step(step.name, None, failed=not passed)
                    continue
                data = engine.payload(step)
                if data:
                    await _send_payload(sock, data)
                    mark = now()
                reply = await _receive_reply(sock, parser, backlog)
            except RemoteProtocolError as error:
                engine.on_protocol_error(step, str(error))
            except OSError as error:
                engine.on_connection_error(step, _describe_os_error(error))
            else:
                latency_us: int | None = int((now() - mark) * 1e6)
                if reply is not None:
                    passed = engine.on_reply(step, reply)
                    if engine.messages_accepted > messages:
                        # Counted as it happens, so that an interrupted session's count too.
                        messages += 1
                        stats.message_accepted()
                else:
                    passed = engine.on_closed(step)
                    if not passed:
                        latency_us = None  # an early close is no reply to time
                if step.index >= 0:
                    stats.record_step(step.name, latency_us, failed=not passed)
                continue
            # Each exception above ends the session (the engine now has a failed outcome, so
            # next_step() returns None): the step failed without a complete reply.
            if step.index >= 0:
                stats.record_step(step.name, None, failed=True)
    if deadline.cancelled_caught and step is not None:
        engine.on_timeout(step)
        if step.index >= 0:
            stats.record_step(step.name, None, failed=True)
