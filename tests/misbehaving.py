"""SMTP servers that misbehave on purpose, over real loopback sockets.

Each behaviour is an async connection handler for ``trio.serve_tcp``: the tests start one in
their nursery and point smtpload's runner at it. They are servers in every sense but manners.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable

import trio

__all__ = ["BEHAVIOURS", "Handler"]

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
}
