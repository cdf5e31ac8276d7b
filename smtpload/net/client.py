"""One SMTP session over a real socket: the engine's steps turned into trio I/O.

This is the only client code that touches sockets. It makes the socket calls itself, on a
non-blocking stdlib socket, and asks trio only to wait (``trio.lowlevel.wait_readable`` and
``wait_writable``) and to yield: on this hot path trio's ``SocketStream`` costs about a third more
CPU per session (measured; see the notes on trio in the project's shared notes), and even
``trio.socket``'s wrapper costs its construction, its close and a layer around every call.

Timing, all in nanoseconds of the realtime clock (``time.time_ns()``, the clock of the kernel's
receive times; trio's own clock still sets the timeouts):

* ``connect``: from just before the ``connect()`` syscall to the connection seen established
  by the loop (no kernel time marks it).
* each reply-timed step: from just before the send syscall that carried its last byte (the
  greeting: from the handshake's end, or with a PROXY protocol header, which is written first
  and is no step, from just before its send) to when its reply's last data arrived: the kernel's
  receive time with the kernel clock (``wire_clock.py``), else the moment the loop read it.
* ``auth``: from just before the send of the AUTH command to the exchange's final reply
  (235, 535...), the ``334`` rounds between included: one step, however many rounds.
* ``bdat``: each chunk is a step of its own to the loop (the engine hands out ``NAME/chunk``
  for each chunk but the last, then ``NAME``), timed from the send of its last byte to its
  reply; each reply is read before the next chunk is sent.
* ``close``: from the last command sent to the end of the connection seen by the loop (a read
  that returns EOF carries no time).
* the session: from before ``connect()`` to its last step handled.

Replies out of turn (RFC 5321 §4.2: a server speaks only when spoken to, §3.8's 421 aside):
before each command, the session looks for a reply that is already there, in the replies read
together, in the parser's unfinished reply, and in the kernel's receive queue. The last is one
``ioctl(FIONREAD)``, about 1 µs: the cheapest look at the queue (a non-blocking ``MSG_PEEK``
costs about 2.5 µs in Python, as it raises BlockingIOError when there is nothing), and
``benchmarks/bench_sessions.py --beside`` measures what it costs a session.

TLS (``tls.py`` has the TLS layer and says why it is memory buffers, not ``trio.SSLStream``):
the ``tls`` step is the handshake, timed from just before the send of the ClientHello to the
kernel time of the read that completed the handshake. Reads and sends stay this module's, so
replies over TLS keep the kernel clock: a reply is timed by the read that completed the TLS
record that completed it. Before the handshake that follows a ``220`` to STARTTLS, nothing may
be waiting: a byte the server sent after its 220 (read with it, or in the kernel's queue) is a
``protocol_error``, never a reply after the handshake (RFC 3207 §5: the response injection
attack). Over TLS, the look for a reply out of turn first takes every record the TLS layer
already holds (one read may have carried a reply's record and more after it), then passes what
the kernel holds through the TLS layer (a TLS 1.3 session ticket is bytes waiting, but no reply).

LMTP (RFC 2033 §4.2): when a message's final reply is due, the engine's ``replies_due`` names
the recipients whose replies to read; each is timed from the same send as the message and
recorded as ``NAME/RCPTSTEP``, and the message step ``NAME`` runs to the last of them.

PIPELINING (RFC 2920): a pipeline group's first step comes with ``group_end``; when the engine
says the server advertised PIPELINING it hands out every command of the group at once, and they
go in one write (a large message that starts the group in a send of its own first, so that a
reply before its last byte is still caught); each reply is then read in order, judged, and
timed from the send that carried its command's last byte. Replies to the group's first commands
may arrive before its last byte is sent: that is pipelining, not a reply out of turn.

Unix sockets (``unix:/path``): the same dialogue over an AF_UNIX stream socket. Linux gives no
``SO_TIMESTAMPNS`` receive times on those (a probe on Linux 6.x: the ancillary data stays
empty), so such a run is timed by the loop and its steps say ``loop``; TCP_NODELAY and the
handshake estimate are TCP's and are not asked of them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import math
import os
import socket as stdlib_socket
import termios
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import time_ns

import trio

from smtpload.errors import RemoteProtocolError
from smtpload.net.source import SourceBinder
from smtpload.net.tls import WRITE_CHUNK_BYTES, TlsChannel, TlsClient, TlsFailure
from smtpload.net.wire_clock import (
    RECEIVE_TIME_SPACE,
    enable_receive_times,
    handshake_end_ns,
    receive_time_ns,
)
from smtpload.protocol.bdat import ChunkPayload
from smtpload.protocol.compiler import SENDING_KINDS, CompiledScenario, CompiledStep
from smtpload.protocol.engine import Observation, SessionEngine
from smtpload.protocol.lmtp import part_name
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.wire import (
    DEFAULT_MAX_REPLY_BYTES,
    END_OF_DATA,
    PaddedMessage,
    Reply,
    ReplyParser,
)
from smtpload.report.stats import RunStats
from smtpload.scenario.model import StepKind, Target

# Enum members as module names: on CPython 3.11 an Enum class's attribute costs ~6x a plain one
# (protocol/engine.py says why), and the session's loop compares with them at every step.
_AUTH, _TLS, _PASSED = StepKind.AUTH, StepKind.TLS, Outcome.PASSED

__all__ = ["ResolvedTarget", "resolve_target", "run_session"]

_RECEIVE_BYTES = 65536

#: A payload longer than this (a message) sends its end of data in a syscall of its own.
_SPLIT_TAIL_BYTES = 65536

#: How much of the bytes injected after a 220 to STARTTLS a failure quotes.
_INJECTION_PREVIEW_BYTES = 80

_NOTHING_WAITING = b"\0\0\0\0"


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """The server's address, resolved once per run (not once per session)."""

    family: int
    address: tuple[object, ...]
    display: str
    host: str = ""  # as given: the TLS server name unless one is set


async def resolve_target(
    host: str,
    port: int,
    families: frozenset[int] = frozenset(),
    unix_path: str | None = None,
) -> ResolvedTarget:
    """Resolve ``host`` once; raises OSError when it cannot be resolved.

    ``families``: the address families preferred (those of ``--source``): the first address
    of one of them, else the first of any. A ``unix_path`` (a unix socket) needs no lookup:
    a missing file is each session's connect error.
    """
    if unix_path is not None:
        await trio.lowlevel.checkpoint()
        return ResolvedTarget(
            int(stdlib_socket.AF_UNIX), (unix_path,), str(Target("", 0, unix_path=unix_path))
        )
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=stdlib_socket.SOCK_STREAM)
    except UnicodeError as error:
        # The IDNA codec refuses the name before any lookup: a label over 63 characters or an
        # empty one (RFC 1035 §2.3.4). Nothing can connect to it, as to a name that is unknown.
        reason = error.__cause__ or error
        raise OSError(f"not a valid host name ({reason})") from None
    preferred = [info for info in infos if info[0] in families]
    family, _type, _proto, _canonname, address = (preferred or infos)[0]
    return ResolvedTarget(int(family), tuple(address), str(Target(host, port)), host)


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
    observer: Callable[[int, Observation], None] | None = None,
) -> SessionEngine:
    """The engine of session number ``session``, with its variables."""
    # One generator per session, for its variables and all it draws later (session_random.py).
    rng = scenario.session_random(session) if scenario.draws else None
    variables = None
    if scenario.uses_variables:
        variables = scenario.session_variables(session, run_id, rng)
    return SessionEngine(
        scenario,
        session,
        variables,
        observe=observe,
        watcher=watcher,
        rng=rng,
        observer=observer,
    )


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
    kernel_clock: bool = False,
    due_ns: int | None = None,
    tls: TlsClient | None = None,
    source: SourceBinder | None = None,
) -> None:
    """Run one whole session and record it in ``stats``.

    ``tls``: the run's TLS client, needed when the scenario has a ``tls`` step.
    ``source``: the run's source addresses (``--source``): the socket is bound to this
    session's before it connects; a bind that fails is the session's ``connect_error``.

    A reply longer than ``max_reply_bytes`` ends the session as ``protocol_error``. With
    ``kernel_clock``, replies are timed by the kernel's receive times (``wire_clock.py``);
    a socket that cannot have them is timed by the loop and marked so in ``stats``.

    ``due_ns``: in an open-loop run, when the session was due to start (``time.time_ns()``):
    its lateness is recorded as its start delay, and its session latency runs from then
    (wrk2's correction for coordinated omission), the uncorrected one from its actual start.

    Never raises for anything the server or the network does. trio.Cancelled (Ctrl-C) passes
    through; the caller then records the session with ``record_interrupted``.
    """
    started_ns = time_ns()
    if due_ns is not None:
        stats.record_start_delay((started_ns - due_ns) // 1000)
    try:
        raw = stdlib_socket.socket(target.family, stdlib_socket.SOCK_STREAM)
    except OSError as error:
        # EMFILE/ENFILE (out of file descriptors), ENOBUFS: this session cannot connect; the
        # run goes on, and sessions after it get a socket again once others have closed.
        engine.on_connect_error(_describe_os_error(error))
        stats.record_step("connect", None, failed=True)
        stats.record_session(engine.outcome, None, engine.failure())
        # No I/O happened: yield, so that a worker meeting this again and again never
        # starves the other tasks (replies, Ctrl-C, the sink) of the loop. Shielded: the
        # session is recorded already, and a cancellation here would record it again as
        # interrupted (the worker sees the run stopping before its next session).
        await trio.lowlevel.cancel_shielded_checkpoint()
        return
    # The socket itself, not trio's wrapper of it: every call on it is ours (see _send_all and
    # _Wire._receive_raw), and the wrapper's construction and close cost a session ~4 µs.
    raw.setblocking(False)
    try:
        unix = target.family == stdlib_socket.AF_UNIX
        if not unix:
            # Commands are small writes, each answered before the next: never let Nagle hold one.
            raw.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
        if kernel_clock and (unix or not enable_receive_times(raw)):
            # Unix stream sockets carry no receive times (see the module's docstring).
            kernel_clock = False
            stats.timed_by_loop()
        try:
            if source is not None:
                source.bind(raw, engine.session)
            connect_deadline = trio.current_time() + scenario.timeout_s
            greeting_from_ns = await _connect(
                raw, target.address, unix=unix, kernel_clock=kernel_clock, deadline=connect_deadline
            )
        except _StepTimeout:
            engine.on_connect_error(f"no connection within {scenario.timeout_s:g} s")
        except OSError as error:
            where = f" ({target.display})" if unix else ""
            engine.on_connect_error(_describe_os_error(error) + where)
        if engine.outcome is not _PASSED:
            stats.record_step("connect", None, failed=True)
            stats.record_session(engine.outcome, None, engine.failure())
            return
        connected_ns = time_ns()
        stats.record_step("connect", (connected_ns - started_ns) // 1000, failed=False)
        engine.on_connected(target.display)
        if greeting_from_ns is None:
            greeting_from_ns = connected_ns
        wire = _Wire(raw, ReplyParser(max_reply_bytes), kernel_clock, stats, tls)
        await _converse(wire, engine, stats, greeting_from_ns)
        outcome = engine.outcome
        if outcome is _PASSED:
            ended_ns = time_ns()
            uncorrected_us = (ended_ns - started_ns) // 1000
            # From when it was due, or from its start if that came first: the runner wakes a
            # millisecond early, and a session that started before it was due must not be
            # timed from a later moment (a fast one would come out below zero).
            from_ns = started_ns if due_ns is None else min(due_ns, started_ns)
            latency_us = (ended_ns - from_ns) // 1000
            stats.record_session(
                outcome, latency_us, engine.failure(), uncorrected_us=uncorrected_us
            )
        else:
            stats.record_session(outcome, None, engine.failure())
    finally:
        # As trio's own sockets close: a task waiting on it is woken (with ClosedResourceError)
        # and the loop forgets it before the descriptor number can be reused. Only where trio
        # was asked to wait on it: a socket it never saw it holds nothing of, and most sessions
        # at load never wait (the reply is there when read), where the call would cost them a
        # failing epoll_ctl syscall and ~40 lines of trio's Python.
        fd = raw.fileno()
        if fd in _WAITED_ON:
            _WAITED_ON.discard(fd)
            trio.lowlevel.notify_closing(raw)
        raw.close()


async def _connect(
    raw: stdlib_socket.socket,
    address: tuple[object, ...],
    *,
    unix: bool,
    kernel_clock: bool,
    deadline: float,
) -> int | None:
    """Connect the non-blocking ``raw`` (an AF_UNIX socket when ``unix``); return when the
    handshake ended (the greeting's start) where ``kernel_clock`` can estimate it, else None.
    Raises OSError as connect does, and _StepTimeout when it is not connected by ``deadline``
    (trio's clock).

    The syscall is made here rather than by trio's ``connect`` so that the time just before it
    is ours to take (``wire_clock.handshake_end_ns``).
    """
    # ``unix`` from the caller: the socket's ``family`` property makes an AddressFamily each
    # time (an Enum call, costlier than the connect's own Python).
    before_ns = time_ns()
    error = raw.connect_ex(str(address[0]) if unix else address)
    in_progress = error in (errno.EINPROGRESS, errno.EINTR)
    if in_progress and (unix or not _established(raw)):
        await _wait_for(trio.lowlevel.wait_writable, raw, deadline)
        error = raw.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ERROR)
    else:
        # Connected (or refused) at once, or, on loopback, the handshake already over when the
        # syscall returned EINPROGRESS (the peer's SYN-ACK is handled within it): no wait for
        # writability, and no cancel scope for one. Still a checkpoint.
        if in_progress:
            error = 0
        await trio.lowlevel.checkpoint()
    if error:
        raise OSError(error, os.strerror(error))
    if not kernel_clock or unix:
        return None
    # Without an estimate (a SYN sent again), from before connect(): early, so never negative;
    # the loop's "connected" could come after the banner's kernel time.
    return handshake_end_ns(raw, before_ns) or before_ns


def _established(raw: stdlib_socket.socket) -> bool:
    """Whether the TCP connection of ``raw`` is established (TCP_INFO's first byte, the
    state: 1 is TCP_ESTABLISHED in Linux's include/net/tcp_states.h)."""
    try:
        return raw.getsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_INFO, 1) == b"\x01"
    except (OSError, AttributeError):  # no TCP_INFO here: wait for writability instead
        return False


#: The descriptors of the sessions' sockets that trio was asked to wait on (``_wait_for``), until
#: they close (``run_session``): descriptor numbers are unique in a process while open, so one
#: set serves every run, in every thread.
_WAITED_ON: set[int] = set()


class _StepTimeout(Exception):
    """A wait for the socket outlasted the step's deadline: the step timed out."""


async def _wait_for(
    ready: Callable[[stdlib_socket.socket], Awaitable[None]],
    raw: stdlib_socket.socket,
    deadline: float,
) -> None:
    """Wait until ``raw`` is ``ready`` (``trio.lowlevel.wait_readable``: something to read;
    ``wait_writable``: room to send, or connected); raise _StepTimeout at ``deadline``.

    A cancel scope for each wait, not one per session whose deadline moves at every step:
    most reads and sends do not wait (the reply is there by the time a session reads it), and
    moving a scope's deadline costs more than the rest of a step's handling (trio re-files the
    scope in its deadline heap through a context manager, each time).
    """
    _WAITED_ON.add(raw.fileno())  # for run_session's notify_closing
    with trio.move_on_at(deadline) as scope:
        await ready(raw)
    if scope.cancelled_caught:
        raise _StepTimeout


async def _send_all(raw: stdlib_socket.socket, data: bytes | memoryview, deadline: float) -> int:
    """Send all of ``data``; return ``time_ns()`` taken just before the syscall that sent its
    last byte (the step's start: a reply can arrive before ``send()`` returns). Raises
    _StepTimeout when it must wait for room past ``deadline``.

    The non-blocking loop is ours, not trio's ``send``: trio waits for room and calls the
    syscall again inside one ``send()``, so a time taken before it would include that wait.
    The checkpoints are the ones trio's ``send`` has.
    """
    view = memoryview(data)
    await trio.lowlevel.checkpoint_if_cancelled()
    while True:
        before_ns = time_ns()
        try:
            sent = raw.send(view)
        except BlockingIOError:
            await _wait_for(trio.lowlevel.wait_writable, raw, deadline)
            continue
        view = view[sent:]
        if not view:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return before_ns


async def _send_all_timed(
    raw: stdlib_socket.socket, data: bytes, ends: Sequence[int], deadline: float
) -> list[int]:
    """``_send_all`` for pipelined commands ending at the offsets ``ends`` of ``data``: for
    each, ``time_ns()`` just before the syscall that sent its last byte."""
    view = memoryview(data)
    times: list[int] = []
    done = 0
    await trio.lowlevel.checkpoint_if_cancelled()
    while True:
        before_ns = time_ns()
        try:
            sent = raw.send(view[done:])
        except BlockingIOError:
            await _wait_for(trio.lowlevel.wait_writable, raw, deadline)
            continue
        done += sent
        while len(times) < len(ends) and ends[len(times)] <= done:
            times.append(before_ns)
        if done == len(view):
            await trio.lowlevel.cancel_shielded_checkpoint()
            return times


async def _send_payload(
    raw: stdlib_socket.socket,
    data: bytes | PaddedMessage | ChunkPayload,
    probe: bytearray,
    deadline: float,
) -> tuple[int, bool]:
    """Send a step's bytes in the clear; return the time just before the syscall that sent the
    last of them, and whether the server had sent something before that syscall.

    A payload sent in one syscall (every command, a small message) cannot be answered before
    its last byte; one sent in several (a large message, a BDAT chunk's line and octets) can,
    by a server that does not wait for the whole of it. Such a reply answers no complete
    command (RFC 5321 §4.2; RFC 3030 §2: a chunk's reply follows its octets), and with the
    kernel clock it would come out before the step's start, so the kernel's receive queue is
    looked at (one ``ioctl``) before each syscall after the first.
    """
    if isinstance(data, bytes) and len(data) <= _SPLIT_TAIL_BYTES:
        # One syscall: the hot path, nothing to look at.
        return await _send_all(raw, data, deadline), False
    fd = raw.fileno()
    if isinstance(data, bytes):
        # A large message: its end in a syscall of its own, so that the step starts when the
        # rest is in the kernel, not before the copy of the last buffer's worth.
        await _send_all(raw, memoryview(data)[: -len(END_OF_DATA)], deadline)
        early = _bytes_waiting(fd, probe)
        return await _send_all(raw, END_OF_DATA, deadline), early
    # A large padded message: its padding is slices of one block shared by all sessions; its
    # last chunk is the short tail with the end of data. A BDAT chunk (protocol/bdat.py): its
    # line and octets, one bytes object when small, else the line and views of the message.
    before_ns = 0
    early = False
    for chunk in data.chunks():
        early = early or (before_ns != 0 and _bytes_waiting(fd, probe))
        before_ns = await _send_all(raw, chunk, deadline)
    return before_ns, early


class _Wire:
    """One connection: the socket, the parser, the replies read together with an earlier one
    (``backlog``, kept for the steps that come next, in order), when the data that completed
    the last reply handed out arrived (``reply_ns``), and once TLS is up its layer (``tls``)."""

    __slots__ = (
        "backlog",
        "backlog_ns",
        "deadline",
        "kernel_clock",
        "parser",
        "probe",
        "raw",
        "replied_early",
        "reply_ns",
        "stats",
        "tls",
        "tls_client",
        "tls_ended",
        "untimed",
    )

    def __init__(
        self,
        raw: stdlib_socket.socket,
        parser: ReplyParser,
        kernel_clock: bool,
        stats: RunStats,
        tls_client: TlsClient | None = None,
    ) -> None:
        self.raw = raw  # non-blocking; every syscall on it is ours (see _send_all)
        self.parser = parser
        self.kernel_clock = kernel_clock
        self.stats = stats
        # A list, not a deque: it holds a reply or two, and an empty deque costs ~760 bytes in
        # every session held open (a list, 56).
        self.backlog: list[Reply] = []
        self.backlog_ns = 0  # every reply in the backlog came from one read, at this time
        self.reply_ns = 0
        # When the step under way times out (trio's clock): every wait for the socket ends
        # there (_wait_for). Set as each step starts.
        self.deadline = math.inf
        self.untimed = False  # a read since the last step recorded had no kernel time
        self.tls_client = tls_client
        self.tls: TlsChannel | None = None
        self.tls_ended = False  # the TCP stream under TLS ended
        # The server sent something before the last syscall of the last send (_send_payload).
        self.replied_early = False
        self.probe = bytearray(4)  # scratch for FIONREAD (_bytes_waiting)

    async def receive(self) -> bytes:
        """The next data: one read, or over TLS the plaintext of the reads that complete a
        record; ``b""`` at the end of the stream. Sets ``reply_ns`` to the kernel time of the
        (last) read (or, on the loop clock, when it was handled).

        Raises:
            TlsFailure: a TLS record did not decrypt, or came with an alert.
        """
        tls = self.tls
        if tls is None:
            return await self._receive_raw()
        while True:
            data = tls.read()
            await self._send_tls_output()  # a post-handshake message may want an answer
            if data is not None:
                return data
            if self.tls_ended:
                return b""
            raw = await self._receive_raw()
            self.tls_ended = not raw
            tls.feed(raw)

    async def _send_tls_output(self) -> None:
        assert self.tls is not None
        out = self.tls.outgoing()
        if out:
            await _send_all(self.raw, out, self.deadline)

    async def send(self, data: bytes | PaddedMessage | ChunkPayload) -> int:
        """Send a step's bytes (through TLS once it is up); return the time just before the
        syscall that sent the last of them (see ``_send_all``)."""
        tls = self.tls
        if tls is None:
            if type(data) is bytes and len(data) <= _SPLIT_TAIL_BYTES:
                # The hot path (every command, a small message): _send_all's first syscall in
                # line, as the step's yield then passes through two coroutines fewer.
                self.replied_early = False
                await trio.lowlevel.checkpoint_if_cancelled()
                before_ns = time_ns()
                try:
                    sent = self.raw.send(data)
                except BlockingIOError:
                    sent = 0  # no room: _send_all waits for it
                if sent == len(data):
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return before_ns
                return await _send_all(self.raw, memoryview(data)[sent:], self.deadline)
            before_ns, self.replied_early = await _send_payload(
                self.raw, data, self.probe, self.deadline
            )
            return before_ns
        self.replied_early = False  # not looked for in TLS: a record may be no reply
        before_ns = 0
        for chunk in (data,) if isinstance(data, bytes) else data.chunks():
            view = memoryview(chunk)
            # A chunk at a time: the outgoing buffer never holds a whole large message.
            for start in range(0, len(view), WRITE_CHUNK_BYTES):
                ciphertext = tls.encrypt(view[start : start + WRITE_CHUNK_BYTES])
                before_ns = await _send_all(self.raw, ciphertext, self.deadline)
        return before_ns

    async def send_commands(self, data: bytes, ends: Sequence[int]) -> list[int]:
        """Send a pipelined group's commands in one write (through TLS once it is up), the
        commands ending at the offsets ``ends`` (ascending, the last ``len(data)``); return
        for each the time just before the syscall that sent its last byte.

        A large group takes many syscalls, and the server answers its first commands before
        the last ones leave (RFC 2920: no replies out of turn); timed from the group's last
        syscall, those replies came out below zero.
        """
        self.replied_early = False
        if self.tls is None:
            return await _send_all_timed(self.raw, data, ends, self.deadline)
        times: list[int] = []
        view = memoryview(data)
        for start in range(0, len(view), WRITE_CHUNK_BYTES):
            stop = min(start + WRITE_CHUNK_BYTES, len(view))
            ciphertext = self.tls.encrypt(view[start:stop])
            before_ns = await _send_all(self.raw, ciphertext, self.deadline)
            while len(times) < len(ends) and ends[len(times)] <= stop:
                times.append(before_ns)
        return times

    async def handshake(self) -> int | None:
        """The TLS handshake; returns the time just before the ClientHello was sent (the
        ``tls`` step's start), or None when the server closed the connection during it.

        Raises:
            TlsFailure: the handshake failed (the alert that says why is sent, if it can be).
            OSError: the connection failed (a reset).
        """
        assert self.tls_client is not None, "a tls step needs the run's TlsClient"
        tls = self.tls = self.tls_client.channel()
        started_ns = 0
        try:
            while not tls.handshake():
                out = tls.outgoing()
                if out:
                    before_ns = await _send_all(self.raw, out, self.deadline)
                    started_ns = started_ns or before_ns
                raw = await self._receive_raw()
                if not raw:
                    return None
                tls.feed(raw)
        except TlsFailure:
            with contextlib.suppress(OSError):
                await self._send_tls_output()  # the alert, so that the server knows why
            raise
        await self._send_tls_output()  # the client's Finished
        return started_ns or time_ns()

    async def drain_tls(self, probe: bytearray) -> bool:
        """Over TLS: take all the plaintext the TLS layer holds or can decrypt, then what the
        kernel holds through it, without waiting, and say whether a reply (or part of one) is
        there before a command.

        The TLS layer first: one read can carry several records and ``SSLObject.read()``
        hands out one record at a time, so a reply out of turn in a later record of the read
        that completed the last reply is in neither the parser nor the kernel's queue.
        """
        tls = self.tls
        assert tls is not None
        while True:
            while data := tls.read():
                self.backlog.extend(self.parser.feed(data))
                self.backlog_ns = self.reply_ns
            await self._send_tls_output()  # a post-handshake message may want an answer
            if self.tls_ended or not _bytes_waiting(self.raw.fileno(), probe):
                return bool(self.backlog) or self.parser.has_partial_reply
            raw = await self._receive_raw()  # never waits: the kernel holds bytes
            self.tls_ended = not raw
            tls.feed(raw)

    def _read_now(self) -> bytes | None:
        """One read that does not wait: the data (``b""`` at the end of the stream), or None
        when the kernel holds none yet. Sets ``reply_ns`` to the read's kernel time (or, on the
        loop clock, now).

        The non-blocking syscall is ours, not trio's ``recv``/``recvmsg``: the reply is nearly
        always there by the time a session reads it (the send before it yielded to the loop;
        about 97 % of reads at 100 sessions), and then trio's wrapper, its ``_try_sync``
        context manager, its checkpoints and the coroutines around them are all cost and no
        use. A read that finds its data neither waits nor yields (every step yields in its
        send); one that must wait yields in ``wait_readable``, where Ctrl-C and the step's
        timeout are seen, and ``reply`` looks at the timeout after a read that completed no
        reply.
        """
        raw = self.raw
        try:
            if not self.kernel_clock:
                data = raw.recv(_RECEIVE_BYTES)
                self.reply_ns = time_ns()
                return data
            data, ancillary, _flags, _address = raw.recvmsg(_RECEIVE_BYTES, RECEIVE_TIME_SPACE)
        except BlockingIOError:
            return None
        handled_ns = time_ns()
        received_ns = receive_time_ns(ancillary)
        if received_ns is None:
            # EOF carries no time. Data without one is timed by the loop, and the step that
            # reads it is labelled so (the runner keeps the stamps on, so this is rare).
            self.reply_ns = handled_ns
            if data:
                self.untimed = True
                self.stats.generator.untimed_reads += 1
        else:
            self.reply_ns = received_ns
            # How late our code got to the data: the generator's own lag.
            self.stats.record_reply_lag((handled_ns - received_ns) // 1000)
        return data

    async def _receive_raw(self) -> bytes:
        """One read (``_read_now``), waiting for data within the step's deadline."""
        while (data := self._read_now()) is None:
            await _wait_for(trio.lowlevel.wait_readable, self.raw, self.deadline)
        return data

    async def reply(self) -> Reply | None:
        """The next complete reply, or None when the server closed the connection first."""
        if self.backlog:
            self.reply_ns = self.backlog_ns
            return self.backlog.pop(0)
        while True:
            if self.tls is None:
                # The hot path: the read in line, not through receive() and _receive_raw(),
                # coroutines whose creation costs more than the syscall.
                chunk = self._read_now()
                if chunk is None:
                    await _wait_for(trio.lowlevel.wait_readable, self.raw, self.deadline)
                    continue
            else:
                chunk = await self.receive()
            if not chunk:
                # A close in the middle of a reply is still a close: the partial reply is lost.
                return None
            replies = self.parser.feed(chunk)
            if replies:
                if len(replies) > 1:  # read together: kept for the steps that come next
                    self.backlog.extend(replies[1:])
                    self.backlog_ns = self.reply_ns
                return replies[0]
            # A read that completed no reply (rare: a reply is one read nearly always). The
            # step's timeout is a cancel scope only in a wait, and a server that writes a
            # reply faster than it is parsed never lets a read wait: look at the deadline
            # here, and yield, so that other sessions and Ctrl-C are not held off meanwhile.
            if trio.current_time() >= self.deadline:
                raise _StepTimeout
            await trio.lowlevel.checkpoint()


async def _pipelined_group(
    wire: _Wire,
    engine: SessionEngine,
    stats: RunStats,
    members: list[tuple[CompiledStep, bytes | PaddedMessage]],
    messages: int,
) -> int:
    """Send a pipeline group's commands (``engine.pipeline_group``) and read their replies in
    order (RFC 2920 §3.1: the client checks every one), each recorded under its step; return
    the messages accepted so far in the session (``messages`` and those of the group).

    Each reply is waited for within its own step's timeout, and timed from the send that
    carried its command's last byte: the one write of the commands, or the message's own last
    send when a large message starts the group.
    """
    payloads = [data for _, data in members]
    from_ns: list[int] = []
    first_early = False
    first = payloads[0]
    if not isinstance(first, bytes) or len(first) > _SPLIT_TAIL_BYTES:
        from_ns.append(await wire.send(first))
        first_early = wire.replied_early
        payloads = payloads[1:]
    if payloads:
        commands = b"".join(data for data in payloads if isinstance(data, bytes))
        assert len(commands) == sum(len(data) for data in payloads), "commands are bytes"
        ends = list(itertools.accumulate(len(data) for data in payloads))
        from_ns.extend(await wire.send_commands(commands, ends))
    for at, started_ns in enumerate(from_ns):
        member = engine.begin_group_reply()
        wire.deadline = trio.current_time() + member.timeout_s
        recipients = engine.replies_due(member)
        if recipients:  # LMTP: the group starts with a message, one reply per recipient
            await _recipient_replies(wire, engine, stats, member, recipients, started_ns)
        else:
            reply = await wire.reply()
            if reply is None:
                if engine.outcome is _PASSED:
                    engine.on_closed(member)
                stats.record_step(member.name, None, failed=True)
                break
            if at == 0 and first_early and reply.code != 421:
                raise RemoteProtocolError(
                    f"reply before the step's last byte was sent: {_reply_preview(reply)}"
                )
            passed = engine.on_group_reply(member, reply)
            stats.record_step(member.name, (wire.reply_ns - started_ns) // 1000, failed=not passed)
            if wire.untimed:
                stats.timed_by_loop((member.name,))
            wire.untimed = False
        if engine.messages_accepted > messages:
            messages += 1
            stats.message_accepted()
    engine.on_group_done()
    return messages


async def _recipient_replies(
    wire: _Wire,
    engine: SessionEngine,
    stats: RunStats,
    step: CompiledStep,
    recipients: tuple[str, ...],
    from_ns: int,
) -> None:
    """LMTP: read the replies of ``recipients`` to ``step``'s message, in order, each timed
    from ``from_ns`` (the send of the end of data) and recorded as ``NAME/RCPTSTEP``; then the
    step itself, timed to the last reply (the delivery complete; it fails only when not every
    reply came, a recipient's wrong reply fails that part alone). All are read even after one
    fails: the server sends them anyway, and the dialogue stays in step for the QUIT."""
    for recipient in recipients:
        name = part_name(step.name, recipient)
        reply = await wire.reply()
        if reply is None:
            engine.on_closed(step)
            stats.record_step(name, None, failed=True)
            stats.record_step(step.name, None, failed=True)
            wire.untimed = False
            return
        passed = engine.on_recipient_reply(step, recipient, reply)
        stats.record_step(name, (wire.reply_ns - from_ns) // 1000, failed=not passed)
        if wire.untimed:
            stats.timed_by_loop((name, step.name))
    engine.on_recipients_done(step)
    # Every reply came: the delivery is complete, and a failure is its recipient's part's.
    stats.record_step(step.name, (wire.reply_ns - from_ns) // 1000, failed=False)
    wire.untimed = False


def _tcp_address(raw: stdlib_socket.socket, *, peer: bool) -> tuple[str, int] | None:
    """The socket's own (or its peer's) IP address and port; None for a socket without one."""
    address = raw.getpeername() if peer else raw.getsockname()
    return (str(address[0]), int(address[1])) if isinstance(address, tuple) else None


def _reply_preview(reply: Reply) -> str:
    """The first line of ``reply`` as a failure quotes it: bounded, like the early replies'."""
    first = reply.raw.split(b"\n", 1)[0][:_INJECTION_PREVIEW_BYTES]
    return repr(first.decode("utf-8", "replace"))


def _bytes_waiting(fd: int, probe: bytearray) -> bool:
    """Whether the kernel holds received bytes not read yet (``probe``: 4 bytes of scratch)."""
    fcntl.ioctl(fd, termios.FIONREAD, probe)
    return probe != _NOTHING_WAITING


async def _early_reply(wire: _Wire, probe: bytearray) -> Reply | bytes | None:
    """What was already there before a command: a complete reply, the bytes of an unfinished
    one, or None when the server closed the connection while a 421 was still arriving.

    Only called when something is there, so the one read here never waits.
    """
    if not wire.backlog and wire.tls is None and _bytes_waiting(wire.raw.fileno(), probe):
        wire.backlog.extend(wire.parser.feed(await wire.receive()))
        wire.backlog_ns = wire.reply_ns
    if wire.backlog:
        return wire.backlog.pop(0)
    unfinished = wire.parser.partial_reply
    if unfinished[:3] == b"421"[: len(unfinished[:3])]:  # "4", "42", "421 ..." (still coming)
        # RFC 5321 §3.8: a 421 may come at any time; it is the step's reply once complete.
        return await wire.reply()
    return unfinished


async def _injected(wire: _Wire, probe: bytearray) -> str:
    """What the server sent after its 220 to STARTTLS and before the handshake, in words (the
    bytes already read, and one read of what the kernel holds: it never waits)."""
    injected = b"".join(reply.raw for reply in wire.backlog) + wire.parser.partial_reply
    if _bytes_waiting(wire.raw.fileno(), probe):
        injected += await wire.receive()
    preview = injected[:_INJECTION_PREVIEW_BYTES].decode("utf-8", "replace")
    return (
        f"{len(injected)} bytes sent after 220 to STARTTLS, before the TLS handshake (RFC 3207"
        f" §5, response injection): {preview!r}; nothing read before TLS is taken as a reply"
    )


async def _converse(
    wire: _Wire, engine: SessionEngine, stats: RunStats, greeting_from_ns: int
) -> None:
    """Run the engine's steps over a connected socket, recording each step.

    A step is timed from ``step_from_ns``: just before the send syscall that carried its last
    byte, or for the greeting the handshake's end; to ``wire.reply_ns``, when its reply's last
    data arrived. A sample below zero (the realtime clock was stepped back) is dropped and
    counted, never clamped.

    Each step's timeout bounds every wait for the socket within it, sending and receiving (a
    server that stops reading cannot block a large DATA forever): ``wire.deadline`` is set as
    the step starts, and only a wait that happens opens a cancel scope (``_wait_for``).
    """
    now = trio.current_time
    backlog = wire.backlog
    parser = wire.parser
    step = None
    messages = 0
    step_from_ns = greeting_from_ns
    fd = wire.raw.fileno()
    probe = wire.probe  # one per session: ioctl writes into it
    proxy_pending = engine.has_proxy_header
    while (step := engine.next_step()) is not None:
        wire.deadline = now() + step.timeout_s
        try:
            if proxy_pending:
                # The PROXY header comes before any byte of the session's (TLS's too) and
                # is no step of its own: the first step's timeout bounds its send, and the
                # greeting is timed from just before it (the server greets once it read it).
                proxy_pending = False
                header = engine.proxy_header(
                    _tcp_address(wire.raw, peer=False), _tcp_address(wire.raw, peer=True)
                )
                step_from_ns = await wire.send(header)
            if step.kind is _TLS:
                if step.index > 0 and (
                    backlog or parser.has_partial_reply or _bytes_waiting(fd, probe)
                ):
                    engine.on_protocol_error(step, await _injected(wire, probe))
                    stats.record_step(step.name, None, failed=True)
                    continue
                handshake_from_ns = await wire.handshake()
                if handshake_from_ns is None:
                    engine.on_closed(step)
                    stats.record_step(step.name, None, failed=True)
                    continue
                assert wire.tls is not None
                version, cipher, resumed = wire.tls.description()
                engine.on_tls_established(
                    step, f"{version} {cipher}" + (", resumed" if resumed else "")
                )
                if stats.tls is not None:
                    stats.tls.record(version, cipher, resumed=resumed)
                stats.record_step(
                    step.name, (wire.reply_ns - handshake_from_ns) // 1000, failed=False
                )
                if wire.untimed:
                    stats.timed_by_loop((step.name,))
                wire.untimed = False
                # A greeting next (implicit TLS) runs from the handshake's end.
                step_from_ns = wire.reply_ns
                continue
            if (
                step.kind in SENDING_KINDS
                and step.index >= 0  # not our QUIT after a failure: any reply ends that
                and (
                    backlog
                    or parser.has_partial_reply
                    or (
                        await wire.drain_tls(probe)
                        if wire.tls is not None
                        else _bytes_waiting(fd, probe)
                    )
                )
            ):
                early = await _early_reply(wire, probe)
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
            if step.group_end:
                lock_step = engine.groups_lock_step
                members = engine.pipeline_group(step)
                if stats.pipelining is not None:
                    if members is not None:
                        stats.pipelining.groups_pipelined += 1
                    elif engine.groups_lock_step > lock_step:
                        stats.pipelining.groups_lock_step += 1
                if members is not None:
                    messages = await _pipelined_group(wire, engine, stats, members, messages)
                    continue
            data = engine.payload(step)
            if data:
                step_from_ns = await wire.send(data)
            recipients = engine.replies_due(step)
            if recipients:
                await _recipient_replies(wire, engine, stats, step, recipients, step_from_ns)
                if engine.messages_accepted > messages:
                    messages += 1
                    stats.message_accepted()
                continue
            reply = await wire.reply()
            if wire.replied_early and reply is not None and reply.code != 421:
                # RFC 5321 §3.8 lets a 421 come at any time; any other reply there is
                # out of turn, and no latency of the step (it would be below zero).
                raise RemoteProtocolError(
                    f"reply before the step's last byte was sent: {_reply_preview(reply)}"
                )
            if step.kind is _AUTH:
                # The rounds of an AUTH exchange are one step, timed from the AUTH command
                # to the final reply, each round answered before the next is read.
                while reply is not None and (line := engine.auth_response(step, reply)):
                    await wire.send(line)  # through TLS once it is up
                    reply = await wire.reply()
        except _StepTimeout:
            # No reply (or no room to send) within the step's timeout: the session ends here,
            # with no polite QUIT (the server is not answering).
            step = engine.current_step or step  # a pipelined group's: the reply waited for
            engine.on_timeout(step)
            if step.index >= 0:
                stats.record_step(step.name, None, failed=True)
            break
        except RemoteProtocolError as error:
            step = engine.current_step or step  # a pipelined group's: the one under way
            engine.on_protocol_error(step, engine.protocol_error_detail(error))
        except TlsFailure as error:
            step = engine.current_step or step
            engine.on_tls_error(step, str(error))
        except OSError as error:
            step = engine.current_step or step
            engine.on_connection_error(step, _describe_os_error(error))
        else:
            latency_us: int | None = (wire.reply_ns - step_from_ns) // 1000
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
                if wire.untimed:
                    stats.timed_by_loop((step.name,))
            wire.untimed = False
            continue
        # Each exception above ends the session (the engine now has a failed outcome, so
        # next_step() returns None): the step failed without a complete reply.
        if step.index >= 0:
            stats.record_step(step.name, None, failed=True)
