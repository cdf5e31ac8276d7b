"""SMTP servers that misbehave on purpose, over real loopback sockets.

Each behaviour is an async connection handler for ``trio.serve_tcp``: the tests start one in
their nursery and point smtpload's runner at it. They are servers in every sense but manners.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable

import trio

__all__ = [
    "BEHAVIOURS",
    "TLS_BEHAVIOURS",
    "Handler",
    "hostile_peer",
    "refuses_second_chunk",
    "starttls_extra_records",
    "starttls_server",
    "tls_alerting_server",
]

Handler = Callable[[trio.SocketStream], Awaitable[None]]

HUGE_LINE_BYTES = 1024 * 1024

#: The lines of the replies that never end, and of the huge rejection: each under the 64 KiB
#: line cap, so that only a cap on the whole reply can stop them.
LONG_LINE_BYTES = 60_000

#: The size of ``huge_rejection``'s complete 550 reply, on the wire.
HUGE_REPLY_BYTES = 3 * 1024 * 1024


async def _read_line(stream: trio.SocketStream) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    return data


async def garbage_banner(stream: trio.SocketStream) -> None:
    """Answers like an HTTP server, not an SMTP one."""
    await stream.send_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    await stream.aclose()


async def reset_after_greeting(stream: trio.SocketStream) -> None:
    """Greets, then resets the connection (RST, not FIN) when the client speaks."""
    await stream.send_all(b"220 reset.test ESMTP\r\n")
    await _read_line(stream)
    # SO_LINGER with a zero timeout makes close() send RST.
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


async def stall_after_greeting(stream: trio.SocketStream) -> None:
    """Greets, then never answers again."""
    await stream.send_all(b"220 stall.test ESMTP\r\n")
    await trio.sleep_forever()


async def huge_line(stream: trio.SocketStream) -> None:
    """A 1 MiB banner line."""
    # The client gives up on it half way, as it should, and so breaks the pipe.
    with contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(b"220 " + b"x" * HUGE_LINE_BYTES + b"\r\n")


async def close_mid_reply(stream: trio.SocketStream) -> None:
    """Greets, then closes in the middle of the multiline EHLO reply."""
    await stream.send_all(b"220 close.test ESMTP\r\n")
    await _read_line(stream)
    await stream.send_all(b"250-close.test\r\n250-PIPELINING\r\n250-SIZ")
    await stream.aclose()


async def code_change(stream: trio.SocketStream) -> None:
    """A multiline reply whose code changes halfway."""
    await stream.send_all(b"220 code.test ESMTP\r\n")
    await _read_line(stream)
    await stream.send_all(b"250-code.test\r\n251 SIZE 1000\r\n")
    await trio.sleep_forever()


async def stops_reading_after_354(stream: trio.SocketStream) -> None:
    """Answers every command until DATA, says 354, then never reads again."""
    await stream.send_all(b"220 deaf.test ESMTP\r\n")
    buffer = b""
    while True:
        chunk = await stream.receive_some(4096)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip().upper() == b"DATA":
                await stream.send_all(b"354 go ahead\r\n")
                await trio.sleep_forever()
            await stream.send_all(b"250 ok\r\n")


async def endless_greeting(stream: trio.SocketStream) -> None:
    """A ``220-`` multiline banner that never ends: 60 KB lines, as fast as the client reads."""
    line = b"220-" + b"x" * (LONG_LINE_BYTES - 6) + b"\r\n"
    chunk = line * 16
    # Until the client gives up and closes, which breaks the pipe.
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while True:
            await stream.send_all(chunk)


def huge_reply(code: int, total_bytes: int) -> bytes:
    """A complete multiline reply of exactly ``total_bytes`` bytes, in 60 KB lines."""
    line = b"%d-" % code + b"r" * (LONG_LINE_BYTES - 6) + b"\r\n"
    last_text = b"end of a huge reply"
    body = line * ((total_bytes - len(last_text) - 6) // len(line))
    last = b"%d " % code + last_text
    padding = total_bytes - len(body) - len(last) - 2
    last += b"." * padding
    return body + last + b"\r\n"


async def huge_rejection(stream: trio.SocketStream) -> None:
    """Greets, then answers EHLO with a complete 550 of ``HUGE_REPLY_BYTES`` bytes."""
    await stream.send_all(b"220 huge.test ESMTP\r\n")
    await _read_line(stream)
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(huge_reply(550, HUGE_REPLY_BYTES))
        # A run says QUIT after an unexpected reply; record and compare (observe mode) go on
        # with MAIL, RCPT... Answer each as a server would, until QUIT or the client closes, so
        # that no step's outcome depends on whether a close or a reset arrives first.
        while line := await _read_line(stream):
            if line.upper().startswith(b"QUIT"):
                await stream.send_all(b"221 bye\r\n")
                return
            await stream.send_all(b"503 5.5.1 Error: send HELO/EHLO first\r\n")


async def closes_without_greeting(stream: trio.SocketStream) -> None:
    """Accepts the connection and closes it at once."""
    await stream.aclose()


#: The a's in a bait reply: 2^4096 ways to split them for (a+)+$ to try before the "!".
BAIT_RUN = 4096


async def backtracking_bait(
    stream: trio.SocketStream, on_quit: Callable[[], None] | None = None
) -> None:
    """A polite server whose every reply almost matches patterns that make regexes backtrack.

    The banner and most replies are ``a`` * BAIT_RUN then ``!``; the EHLO reply is 19 a's then
    BAIT_RUN ``!``s. Patterns such as ``(a+)+$``, ``(a|aa)+$`` and ``(.*a){20}`` fail on them
    only after trying every way to split the a's; ``!$`` matches. ``VRFY !`` (what a capture of
    ``!+$`` sends) is answered like the rest, any other VRFY with 550. QUIT gets ``221`` and a
    close (``on_quit`` is called first).
    """
    bait = b"a" * BAIT_RUN + b"!\r\n"
    with contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(b"220 " + bait)
        buffer = b""
        while chunk := await stream.receive_some(4096):
            buffer += chunk
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                verb = line.split(b" ", 1)[0].upper()
                if verb == b"QUIT":
                    if on_quit is not None:
                        on_quit()
                    await stream.send_all(b"221 bye\r\n")
                    await stream.aclose()
                    return
                if verb == b"EHLO":
                    await stream.send_all(b"250 " + b"a" * 19 + b"!" * BAIT_RUN + b"\r\n")
                elif verb == b"VRFY" and line != b"VRFY !":
                    await stream.send_all(b"550 5.1.1 no such user\r\n")
                else:
                    await stream.send_all(b"250 " + bait)


async def _polite_replies(
    stream: trio.abc.Stream,
    buffer: bytes = b"",
    before_reply: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Answers every command as a sink would, until QUIT (221 and a close) or the client's
    close: 354 to DATA, then 250 to the message's end. ``before_reply`` is awaited before
    each reply (the banner is the caller's)."""

    async def send(reply: bytes) -> None:
        if before_reply is not None:
            await before_reply()
        await stream.send_all(reply)

    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        in_message = False
        while True:
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                line = line.rstrip(b"\r")
                if in_message:
                    if line == b".":
                        in_message = False
                        await send(b"250 2.0.0 queued\r\n")
                    continue
                verb = line.split(b" ", 1)[0].upper()
                if verb == b"QUIT":
                    await send(b"221 2.0.0 bye\r\n")
                    await stream.aclose()
                    return
                if verb == b"DATA":
                    in_message = True
                    await send(b"354 go ahead\r\n")
                else:
                    await send(b"250 2.0.0 ok\r\n")
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            buffer += chunk


async def unsolicited_in_banner(stream: trio.SocketStream) -> None:
    """Sends a reply nobody asked for in the banner's own write, then answers politely."""
    await stream.send_all(b"220 chatty.test ESMTP\r\n250 unsolicited\r\n")
    await _polite_replies(stream)


#: How long after its banner ``unsolicited_late`` sends its extra reply.
UNSOLICITED_DELAY_S = 0.02


async def unsolicited_late(stream: trio.SocketStream) -> None:
    """Sends the banner; 20 ms later, and once EHLO is in, one write holding a reply nobody
    asked for and then the EHLO reply; then answers politely."""
    await stream.send_all(b"220 chatty.test ESMTP\r\n")
    banner_sent = trio.current_time()
    ehlo = await _read_line(stream)
    await trio.sleep_until(banner_sent + UNSOLICITED_DELAY_S)
    await stream.send_all(b"250 unsolicited\r\n250-chatty.test\r\n250 PIPELINING\r\n")
    await _polite_replies(stream, ehlo.split(b"\n", 1)[1])


async def unfinished_in_banner(stream: trio.SocketStream) -> None:
    """Sends the start of a reply (no line end) in the banner's write, then answers politely."""
    await stream.send_all(b"220 chatty.test ESMTP\r\n250 unsol")
    await _polite_replies(stream)


async def unfinished_421_in_banner(stream: trio.SocketStream) -> None:
    """Starts a 421 in the banner's write and finishes it 20 ms later, then closes (RFC 5321
    §3.8: a server that must shut down may say 421 at any time)."""
    await stream.send_all(b"220 closing.test ESMTP\r\n421 4.3.2 going")
    await trio.sleep(UNSOLICITED_DELAY_S)
    await stream.send_all(b" away\r\n")
    await stream.aclose()


async def first_digit_of_421_in_banner(stream: trio.SocketStream) -> None:
    """Sends only the "4" of a 421 in the banner's write, the rest 20 ms later, then closes:
    a 421 that has only begun to arrive is still a 421 (RFC 5321 §3.8)."""
    await stream.send_all(b"220 closing.test ESMTP\r\n4")
    await trio.sleep(UNSOLICITED_DELAY_S)
    await stream.send_all(b"21 4.3.2 going away\r\n")
    await stream.aclose()


def shuts_down_after_ehlo(received: list[bytes]) -> Handler:
    """A server that answers EHLO and, in the same write, says 421 (RFC 5321 §3.8). It keeps
    the connection open a little longer, noting in ``received`` what else the client sends
    (a client that heeds the 421 sends nothing), then closes."""

    async def handler(stream: trio.SocketStream) -> None:
        await stream.send_all(b"220 closing.test ESMTP\r\n")
        received.append(await _read_line(stream))
        await stream.send_all(b"250 closing.test\r\n421 4.3.2 shutting down\r\n")
        with trio.move_on_after(0.3), contextlib.suppress(trio.BrokenResourceError):
            while chunk := await stream.receive_some(4096):
                received.append(chunk)
        await stream.aclose()

    return handler


def carriage_return_in_greeting(received: list[bytes]) -> Handler:
    """Greets with a bare CR inside the greeting's line (``id=abc<CR>RSET``: RFC 5321 §2.3.8
    forbids it), which a capture can bring into a command; then answers each line it reads
    (``221`` to QUIT, ``250`` to the rest), noting in ``received`` every line it was sent."""

    async def handler(stream: trio.SocketStream) -> None:
        await stream.send_all(b"220 cr.test id=abc\rRSET ready\r\n")
        buffer = b""
        with trio.move_on_after(10), contextlib.suppress(trio.BrokenResourceError):
            while chunk := await stream.receive_some(4096):
                buffer += chunk
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    received.append(line + b"\n")
                    quit_ = line.upper().startswith(b"QUIT")
                    await stream.send_all(b"221 bye\r\n" if quit_ else b"250 ok\r\n")
        await stream.aclose()

    return handler


def refuses_every_nth(n: int) -> Handler:
    """A server that refuses every ``n``-th connection with ``554`` in place of its greeting
    (RFC 5321 §3.1: "no SMTP service here") and serves the others politely: with one session
    at a time, exactly one session in ``n`` fails, as ``unexpected_reply``."""
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        if connections % n == 0:
            await stream.send_all(b"554 5.3.2 no service for you\r\n")
            await stream.aclose()
            return
        await stream.send_all(b"220 picky.test ESMTP\r\n")
        await _polite_replies(stream)

    return handler


def slows_down_after(n: int, delay_s: float) -> Handler:
    """A polite server that serves its first ``n`` connections at once and, from the next
    one on, waits ``delay_s`` before every reply, its banner too: a server that degrades mid-run
    (a queue filling up, a tarpit switching on). Slow, not failing: every session still passes
    if it has the time."""
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        slow = connections > n

        async def wait() -> None:
            if slow:
                await trio.sleep(delay_s)

        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await wait()
            await stream.send_all(b"220 degrading.test ESMTP\r\n")
        await _polite_replies(stream, before_reply=wait)

    return handler


#: ``floods_short_lines``'s line: the shortest continuation line, so that the client spends
#: the most time per byte parsing it and the server's writes always outrun its reads.
FLOOD_LINE = b"220-x\r\n"


def floods_short_lines(*, greet_first: bool) -> Handler:
    """A multiline reply that never ends, of the shortest lines, written as fast as the kernel
    takes them: the greeting itself, or with ``greet_first`` the reply to the first command.
    Its bytes are always there when the client reads, so the client never waits for them."""
    chunk = FLOOD_LINE * 10_000

    async def handler(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            if greet_first:
                await stream.send_all(b"220 flood.test ESMTP\r\n")
                await _read_line(stream)
                chunk_of = chunk.replace(b"220-", b"250-")
            else:
                chunk_of = chunk
            while True:
                await stream.send_all(chunk_of)

    return handler


BEHAVIOURS: dict[str, Handler] = {
    "garbage": garbage_banner,
    "reset": reset_after_greeting,
    "stall": stall_after_greeting,
    "huge-line": huge_line,
    "close-mid-reply": close_mid_reply,
    "code-change": code_change,
    "no-greeting": closes_without_greeting,
    "stops-reading": stops_reading_after_354,
    "backtracking-bait": backtracking_bait,
    "endless-greeting": endless_greeting,
    "huge-rejection": huge_rejection,
    "unsolicited-in-banner": unsolicited_in_banner,
    "unsolicited-late": unsolicited_late,
    "unfinished-in-banner": unfinished_in_banner,
    "unfinished-421-in-banner": unfinished_421_in_banner,
    "first-digit-of-421-in-banner": first_digit_of_421_in_banner,
}


class Freeze:
    """When a ``frozen_sink`` stops answering: from ``start`` to ``end`` on trio's clock (set
    by the test once it knows when its run starts)."""

    def __init__(self) -> None:
        self.start = float("inf")
        self.end = float("inf")


def frozen_sink(freeze: Freeze) -> Handler:
    """A polite server that answers nothing while ``freeze`` lasts: every reply due then waits
    for its end. The connections stay open; it is a stall, not a failure."""

    async def handler(stream: trio.SocketStream) -> None:
        async def hold() -> None:
            now = trio.current_time()
            if freeze.start <= now < freeze.end:
                await trio.sleep_until(freeze.end)

        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await hold()
            await stream.send_all(b"220 frozen.test ESMTP\r\n")
        await _polite_replies(stream, before_reply=hold)

    return handler


#: How long ``slow_greeting`` waits before its banner.
SLOW_GREETING_S = 0.25


async def slow_greeting(stream: trio.SocketStream) -> None:
    """Greets after ``SLOW_GREETING_S``, then answers politely: a run of a few seconds from a
    handful of sessions, without burning CPU."""
    await trio.sleep(SLOW_GREETING_S)
    await stream.send_all(b"220 slow.test ESMTP\r\n")
    await _polite_replies(stream)


# -- TLS -------------------------------------------------------------------------------------


def starttls_server(
    context: ssl.SSLContext, *, inject: bytes = b"", later: bool = False
) -> Handler:
    """A server that offers STARTTLS and, after its ``220``, upgrades with ``context`` and then
    answers politely over TLS. With ``inject``, it sends those bytes after its 220 and before
    the handshake (RFC 3207 §5's response injection): in the 220's own write, or with
    ``later`` in a write of its own; a client that took them as a reply after the handshake
    would see ``250 injected`` as the answer to its EHLO."""

    async def handler(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(b"220 tls.test ESMTP\r\n")
            line = await _read_line(stream)  # EHLO
            await stream.send_all(b"250-tls.test\r\n250 STARTTLS\r\n")
            line = await _read_line(stream)
            if line.strip().upper() != b"STARTTLS":
                return
            if later:
                await stream.send_all(b"220 go ahead\r\n")
                await stream.send_all(inject)
            else:
                await stream.send_all(b"220 go ahead\r\n" + inject)
            tls = trio.SSLStream(stream, context, server_side=True)
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError:
                return  # the client refused to go on: what it should do after an injection
            await _polite_replies(tls)

    return handler


class _BioTls:
    """The server side of TLS through memory buffers, so that a test decides what goes in one
    TCP write: several ``write()`` calls make as many TLS records, sent by one ``flush()``."""

    def __init__(self, stream: trio.SocketStream, context: ssl.SSLContext) -> None:
        self.stream = stream
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._lines = b""

    async def _pump(self) -> bool:
        await self.flush()
        data = await self.stream.receive_some(65536)
        if not data:
            return False
        self._incoming.write(data)
        return True

    async def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                if not await self._pump():
                    raise trio.BrokenResourceError("closed in the handshake") from None
            else:
                await self.flush()
                return

    def write(self, record: bytes) -> None:
        self.obj.write(record)  # one TLS record (each is far under 16 KiB)

    async def flush(self) -> None:
        if self._outgoing.pending:
            await self.stream.send_all(self._outgoing.read())

    async def read_line(self) -> bytes:
        """The next plaintext line, or b"" at the end of the stream."""
        while b"\n" not in self._lines:
            try:
                self._lines += self.obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            if not await self._pump():
                return b""
        line, self._lines = self._lines.split(b"\n", 1)
        return line + b"\n"


def starttls_extra_records(
    context: ssl.SSLContext, extra: tuple[bytes, ...], received: list[bytes]
) -> Handler:
    """A STARTTLS server that, inside TLS, answers EHLO with ``250 tls.test`` and then the
    ``extra`` replies nobody asked for, each in a TLS record of its own, all in one TCP write;
    then MAIL with 550 (a client that took an extra reply as MAIL's would see 250 and pass),
    anything else with 250, QUIT with 221. Once an extra reply is a 421 it only listens.
    ``received`` gets every line the client sent after the second EHLO."""

    async def handler(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(b"220 tls.test ESMTP\r\n")
            await _read_line(stream)  # EHLO
            await stream.send_all(b"250-tls.test\r\n250 STARTTLS\r\n")
            if (await _read_line(stream)).strip().upper() != b"STARTTLS":
                return
            await stream.send_all(b"220 go ahead\r\n")
            tls = _BioTls(stream, context)
            await tls.handshake()
            await tls.read_line()  # EHLO again
            tls.write(b"250 tls.test\r\n")
            for reply in extra:
                tls.write(reply)
            await tls.flush()
            closing = any(reply.startswith(b"421") for reply in extra)
            while line := await tls.read_line():
                received.append(line)
                if closing:
                    continue
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb == b"QUIT":
                    tls.write(b"221 2.0.0 bye\r\n")
                    await tls.flush()
                    return
                tls.write(b"550 5.7.1 no\r\n" if verb == b"MAIL" else b"250 2.0.0 ok\r\n")
                await tls.flush()

    return handler


async def _read_client_hello(stream: trio.SocketStream) -> bytes:
    return await stream.receive_some(65536)


async def tls_garbage_hello(stream: trio.SocketStream) -> None:
    """Implicit TLS: answers the ClientHello with plain text instead of a ServerHello."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await _read_client_hello(stream)
        await stream.send_all(b"220 not.tls ESMTP, no TLS here\r\n" * 100)
        await trio.sleep_forever()  # the client must give up by itself, and quickly


async def tls_stall_in_handshake(stream: trio.SocketStream) -> None:
    """Implicit TLS: reads the ClientHello and never answers it."""
    await _read_client_hello(stream)
    await trio.sleep_forever()


async def tls_close_in_handshake(stream: trio.SocketStream) -> None:
    """Implicit TLS: reads the ClientHello, then closes (a TCP FIN, no TLS alert)."""
    await _read_client_hello(stream)
    await stream.aclose()


def tls_alerting_server(context: ssl.SSLContext) -> Handler:
    """Implicit TLS, its handshake done with ``context`` through memory buffers, so that a
    handshake that fails sends its alert before the close, as OpenSSL servers (Postfix) do:
    trio's ``SSLStream`` and asyncio's SSL layer close without it. A handshake that succeeds
    is then closed: the tests need only the failure."""

    async def handler(stream: trio.SocketStream) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while True:
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    await stream.send_all(outgoing.read())  # the alert
                    break
                else:
                    break
                if outgoing.pending:
                    await stream.send_all(outgoing.read())
                data = await stream.receive_some(65536)
                if not data:
                    break
                incoming.write(data)
            await stream.aclose()

    return handler


# -- AUTH (RFC 4954) gone wrong ------------------------------------------------------------------

#: How many empty challenges ``endless_auth_challenges`` sends at most (the client stops first).
ENDLESS_CHALLENGES = 100


def misbehaving_auth(challenges: Callable[[bytes], list[bytes]]) -> Handler:
    """A server that answers everything politely except AUTH: each line the client sends after
    ``AUTH`` is given to ``challenges`` (the AUTH line first), which returns the replies to
    send to it (none: stay silent, for a stall); it ends once it returns a reply that is not
    334, or a line is ``*`` (answered 501)."""

    async def handler(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(b"220 auth.test ESMTP\r\n")
            while True:
                line = await _read_line(stream)
                if not line:
                    return
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb == b"EHLO":
                    await stream.send_all(b"250-auth.test\r\n250 AUTH PLAIN SCRAM-SHA-256\r\n")
                    continue
                if verb != b"AUTH":
                    await _polite_replies(stream, line)
                    return
                for _ in range(ENDLESS_CHALLENGES):
                    replies = challenges(line.rstrip(b"\r\n"))
                    if not replies:
                        await trio.sleep_forever()
                    await stream.send_all(b"".join(replies))
                    if not replies[-1].startswith(b"334"):
                        break
                    line = await _read_line(stream)
                    if line.strip() == b"*":
                        await stream.send_all(b"501 5.7.0 AUTH cancelled\r\n")
                        break

    return handler


TLS_BEHAVIOURS: dict[str, Handler] = {
    "tls-garbage-hello": tls_garbage_hello,
    "tls-stall": tls_stall_in_handshake,
    "tls-close": tls_close_in_handshake,
}


def not_base64_challenge(line: bytes) -> list[bytes]:
    """The first challenge is not base64."""
    return [b"334 this is not base64!\r\n"] if line.startswith(b"AUTH") else [b"235 2.7.0 ok\r\n"]


def endless_auth_challenges(line: bytes) -> list[bytes]:
    """Challenge after challenge, never an end."""
    return [b"334 \r\n"]


def stalls_after_auth(line: bytes) -> list[bytes]:
    """Never answers the AUTH command."""
    return []


def wrong_scram_signature(line: bytes) -> list[bytes]:
    """A SCRAM-SHA-256 server that does not know the password: a server-first message that
    extends the client's nonce, then a server signature of zeros (RFC 5802 §5 says the client
    must check it)."""
    if line.startswith(b"AUTH"):
        client_first = base64.b64decode(line.split(b" ")[2]).decode()
        nonce = client_first.split("r=", 1)[1]
        first = f"r={nonce}server,s={base64.b64encode(b'salt').decode()},i=4096"
        return [b"334 " + base64.b64encode(first.encode()) + b"\r\n"]
    if line.strip() == b"":
        return [b"235 2.7.0 ok\r\n"]
    final = b"v=" + base64.b64encode(bytes(32))
    return [b"334 " + base64.b64encode(final) + b"\r\n"]


#: What ``costly_scram_iterations`` asks for: ~0.5 s of PBKDF2 for each session, under the old
#: bound (1,000,000) and over the new one (``MAX_SCRAM_ITERATIONS``).
COSTLY_SCRAM_ITERATIONS = 500_000


def costly_scram_iterations(line: bytes) -> list[bytes]:
    """A SCRAM-SHA-256 server that asks for ``COSTLY_SCRAM_ITERATIONS`` with a fresh salt each
    time, so that no cache of the derivation helps: each session's PBKDF2 would run on the
    event loop's thread, which no step timeout can interrupt."""
    if line.startswith(b"AUTH"):
        client_first = base64.b64decode(line.split(b" ")[2]).decode()
        nonce = client_first.split("r=", 1)[1]
        salt = base64.b64encode(os.urandom(16)).decode()
        first = f"r={nonce}server,s={salt},i={COSTLY_SCRAM_ITERATIONS}"
        return [b"334 " + base64.b64encode(first.encode()) + b"\r\n"]
    return [b"535 5.7.8 no\r\n"]


def accepts_without_scram_signature(line: bytes) -> list[bytes]:
    """Takes any SCRAM client-final message with 235, never proving itself."""
    if line.startswith(b"AUTH"):
        return wrong_scram_signature(line)
    return [b"235 2.7.0 ok\r\n"]


def _echoed(line: bytes) -> bytes:
    """``line`` as a careless server quotes it: as sent, and its base64 decoded (NUL and all)."""
    parts = line.split(b" ")
    try:
        decoded = base64.b64decode(parts[-1], validate=True)
    except binascii.Error:
        decoded = b""
    return line + b" (" + decoded + b")"


def echoes_auth(accept: bool) -> Handler:
    """A server that speaks AUTH PLAIN, LOGIN and XOAUTH2 and quotes each line the client sent
    in its replies: LOGIN's second 334 is the user name's blob sent back (base64, so the client
    answers it), the final reply a 535 quoting the last line, or (``accept``) a 235 quoting it
    and then a 250 (where QUIT expects 221) quoting the AUTH line again."""

    async def handler(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(b"220 auth.test ESMTP\r\n")
            auth_line = b""
            for _ in range(10):
                line = (await _read_line(stream)).rstrip(b"\r\n")
                verb = line.split(b" ", 1)[0].upper()
                if not line or verb == b"QUIT":
                    if line:
                        await stream.send_all(b"250 ok " + _echoed(auth_line) + b"\r\n")
                    return
                if verb == b"EHLO":
                    await stream.send_all(b"250-auth.test\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n")
                    continue
                if verb != b"AUTH":
                    await stream.send_all(b"500 what: " + line + b"\r\n")
                    continue
                auth_line = line
                if line.upper() == b"AUTH LOGIN":
                    await stream.send_all(b"334 VXNlcm5hbWU6\r\n")
                    username = (await _read_line(stream)).rstrip(b"\r\n")
                    await stream.send_all(b"334 " + username + b"\r\n")
                    line = (await _read_line(stream)).rstrip(b"\r\n")
                if accept:
                    await stream.send_all(b"235 2.7.0 welcome " + _echoed(line) + b"\r\n")
                else:
                    await stream.send_all(b"535 5.7.8 bad credentials " + _echoed(line) + b"\r\n")

    return handler


async def auth_answered_with_garbage(stream: trio.SocketStream) -> None:
    """A server that answers the AUTH line with a line that is no SMTP reply, quoting it (and
    its blob decoded) after 20 bytes of filler, so that a 60-byte preview cuts the blob."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(b"220 auth.test ESMTP\r\n")
        for _ in range(10):
            line = (await _read_line(stream)).rstrip(b"\r\n")
            verb = line.split(b" ", 1)[0].upper()
            if not line or verb == b"QUIT":
                return
            if verb == b"EHLO":
                await stream.send_all(b"250-auth.test\r\n250 AUTH PLAIN\r\n")
            elif verb == b"AUTH":
                await stream.send_all(b"oops " + b"x" * 20 + b" " + _echoed(line) + b"\r\n")
            else:
                await stream.send_all(b"500 what\r\n")


BEHAVIOURS.update(
    {
        "auth-garbage": auth_answered_with_garbage,
        "auth-not-base64": misbehaving_auth(not_base64_challenge),
        "auth-endless": misbehaving_auth(endless_auth_challenges),
        "auth-stall": misbehaving_auth(stalls_after_auth),
        "auth-wrong-scram-signature": misbehaving_auth(wrong_scram_signature),
        "auth-costly-scram": misbehaving_auth(costly_scram_iterations),
        "auth-no-scram-signature": misbehaving_auth(accepts_without_scram_signature),
        "auth-echo-535": echoes_auth(accept=False),
        "auth-echo-235": echoes_auth(accept=True),
    }
)


def refuses_second_chunk(every: int, quits: list[int]) -> Handler:
    """A CHUNKING server (RFC 3030) that answers ``554`` to the 2nd BDAT chunk of every
    ``every``-th connection, and 250 to every other chunk and command. It reads each chunk's
    octets whatever it answers (RFC 3030 §2), so the connection stays in command state; each
    connection that then sends QUIT has its number appended to ``quits``."""
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        number = connections
        await stream.send_all(b"220 chunky.test ESMTP\r\n")
        buffer = b""
        chunks = 0
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while True:
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    words = line.rstrip(b"\r").split()
                    verb = words[0].upper() if words else b""
                    if verb == b"EHLO":
                        await stream.send_all(b"250-chunky.test\r\n250 CHUNKING\r\n")
                    elif verb == b"BDAT":
                        size = int(words[1])
                        while len(buffer) < size:
                            more = await stream.receive_some(65536)
                            if not more:
                                return
                            buffer += more
                        buffer = buffer[size:]
                        chunks += 1
                        refuse = number % every == 0 and chunks == 2
                        await stream.send_all(
                            b"554 5.6.0 chunk refused\r\n" if refuse else b"250 2.0.0 ok\r\n"
                        )
                    elif verb == b"QUIT":
                        quits.append(number)
                        await stream.send_all(b"221 2.0.0 bye\r\n")
                        await stream.aclose()
                        return
                    else:
                        await stream.send_all(b"250 2.0.0 ok\r\n")
                more = await stream.receive_some(4096)
                if not more:
                    return
                buffer += more

    return handler


def hostile_peer(
    *,
    bdat: str = "polite",
    lmtp_extra: int = 0,
    lmtp_stall_after_first: bool = False,
    xclient: bytes | None = b"220 hostile.test ESMTP\r\n",
) -> Handler:
    """A server that speaks SMTP, LMTP (LHLO), CHUNKING and XCLIENT, and breaks one rule:

    ``bdat``: ``polite`` (reads each chunk, then 250); ``early`` (answers 250 as soon as the
    BDAT line arrives, before the chunk's octets, which it then reads); ``twice`` (two 250s per
    chunk); ``multiline`` (a multi-line 250 per chunk); ``close`` (reads half the first chunk,
    then closes). ``lmtp_extra``: after an LMTP message, that many replies more (or fewer,
    when negative) than the recipients accepted. ``lmtp_stall_after_first``: one reply, then
    silence. ``xclient``: the reply to XCLIENT, or None for none at all (silence).
    """

    async def handler(stream: trio.SocketStream) -> None:
        await stream.send_all(b"220 hostile.test ESMTP\r\n")
        buffer = b""
        recipients = 0
        lmtp = False
        in_data = False

        async def more() -> bool:
            nonlocal buffer
            data = await stream.receive_some(65536)
            buffer += data
            return bool(data)

        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while True:
                while b"\n" not in buffer:
                    if not await more():
                        return
                line, buffer = buffer.split(b"\n", 1)
                line = line.rstrip(b"\r")
                if in_data:
                    if line != b".":
                        continue
                    in_data = False
                    if not lmtp:
                        await stream.send_all(b"250 2.0.0 queued\r\n")
                        continue
                    if lmtp_stall_after_first:
                        await stream.send_all(b"250 2.0.0 first delivered\r\n")
                        await trio.sleep_forever()
                    replies = max(0, recipients + lmtp_extra)
                    await stream.send_all(b"250 2.0.0 delivered\r\n" * replies)
                    recipients = 0
                    continue
                words = line.split()
                verb = words[0].upper() if words else b""
                if verb in (b"EHLO", b"LHLO"):
                    lmtp = verb == b"LHLO"
                    await stream.send_all(
                        b"250-hostile.test\r\n250-CHUNKING\r\n250 XCLIENT ADDR\r\n"
                    )
                elif verb == b"RCPT":
                    recipients += 1
                    await stream.send_all(b"250 2.1.5 ok\r\n")
                elif verb == b"MAIL":
                    recipients = 0
                    await stream.send_all(b"250 2.1.0 ok\r\n")
                elif verb == b"DATA":
                    in_data = True
                    await stream.send_all(b"354 go ahead\r\n")
                elif verb == b"BDAT":
                    size = int(words[1])
                    if bdat == "early":
                        await stream.send_all(b"250 2.0.0 early\r\n")
                    if bdat == "close":
                        while len(buffer) < size // 2:
                            if not await more():
                                return
                        await stream.aclose()
                        return
                    # The chunk's octets are counted off, not kept: a large one costs no
                    # copying (bytes += bytes would be quadratic in its size).
                    remaining = size - len(buffer)
                    buffer = buffer[size:]
                    while remaining > 0:
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        buffer = data[remaining:]
                        remaining -= len(data)
                    if bdat == "twice":
                        await stream.send_all(b"250 2.0.0 one\r\n250 2.0.0 two\r\n")
                    elif bdat == "multiline":
                        await stream.send_all(b"250-2.0.0 chunk\r\n250-more\r\n250 2.0.0 ok\r\n")
                    elif bdat != "early":
                        await stream.send_all(b"250 2.0.0 ok\r\n")
                elif verb == b"XCLIENT":
                    if xclient is None:
                        await trio.sleep_forever()
                    await stream.send_all(xclient)
                elif verb == b"QUIT":
                    await stream.send_all(b"221 2.0.0 bye\r\n")
                    await stream.aclose()
                    return
                else:
                    await stream.send_all(b"250 2.0.0 ok\r\n")

    return handler


def pipelining_peer(
    reads: list[bytes], *, refuse_rcpt: bool = False, advertise: bool = True
) -> Handler:
    """A server that advertises PIPELINING (RFC 2920) and keeps every read it made after the
    greeting in ``reads`` (to show what arrived in one write). ``refuse_rcpt``: every RCPT gets
    ``550``, and DATA still gets ``354`` (RFC 2920 §3.1: a client must not assume that DATA
    fails because no RCPT worked), the message's end ``554`` (no valid recipients)."""

    async def handler(stream: trio.SocketStream) -> None:
        await stream.send_all(b"220 pipelining.test ESMTP\r\n")
        buffer = b""
        in_data = False
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while True:
                while b"\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    reads.append(data)
                    buffer += data
                line, buffer = buffer.split(b"\n", 1)
                line = line.rstrip(b"\r")
                if in_data:
                    if line == b".":
                        in_data = False
                        end = b"554 5.5.1 no valid recipients" if refuse_rcpt else b"250 queued"
                        await stream.send_all(end + b"\r\n")
                    continue
                verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
                if verb == b"EHLO":
                    extensions = b"250-PIPELINING\r\n" if advertise else b""
                    await stream.send_all(
                        b"250-pipelining.test\r\n" + extensions + b"250 8BITMIME\r\n"
                    )
                elif verb == b"RCPT" and refuse_rcpt:
                    await stream.send_all(b"550 5.1.1 no such user\r\n")
                elif verb == b"DATA":
                    in_data = True
                    await stream.send_all(b"354 go ahead\r\n")
                elif verb == b"QUIT":
                    await stream.send_all(b"221 2.0.0 bye\r\n")
                    return
                else:
                    await stream.send_all(b"250 2.0.0 ok\r\n")

    return handler
