"""The sink as a real server: loopback sockets, several clients, resets, and other clients' views.

Tests here start ``serve_sink`` in pytest-trio's ``nursery`` fixture and talk to it over TCP,
except the timeout and batching tests, which use in-memory streams so that trio's fake clock
and a counting wrapper can see everything. Independent clients check conformance: the stdlib's
smtplib, and Postfix answering the same commands (skipped when Postfix is not running).
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import smtplib
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from smtpload.net.sink import (
    SinkAddress,
    SinkStats,
    serve_sink,
    serve_sink_connection,
)
from tests.cli import COMMAND, environment, smtpload, start_smtpload
from tests.peers import SmtpPeer

TRANSACTION = b"MAIL FROM:<a@client.test>\r\nRCPT TO:<b@sink.test>\r\nDATA\r\n"
MESSAGE = b"Subject: hi\r\n\r\nhello\r\n.\r\n"


class SmtpTestClient:
    """Just enough of an SMTP client to read whole replies, however they are split."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = b""

    async def reply(self) -> bytes:
        """The next complete reply, all its lines (RFC 5321 §4.2.1: "NNN-" continues one)."""
        while True:
            start = 0
            while (newline := self._buffer.find(b"\r\n", start)) >= 0:
                if self._buffer[start + 3 : start + 4] != b"-":
                    reply, self._buffer = self._buffer[: newline + 2], self._buffer[newline + 2 :]
                    return reply
                start = newline + 2
            data = await self.stream.receive_some()
            if not data:
                raise AssertionError(f"connection closed; unfinished reply {self._buffer!r}")
            self._buffer += data

    async def replies(self, count: int) -> list[bytes]:
        return [await self.reply() for _ in range(count)]

    async def command(self, line: bytes) -> bytes:
        await self.stream.send_all(line + b"\r\n")
        return await self.reply()

    async def closed_by_server(self) -> bool:
        """True when the server closed the connection with nothing more to say."""
        return not self._buffer and await self.stream.receive_some() == b""


async def start_sink(
    nursery: trio.Nursery, host: str = "127.0.0.1"
) -> tuple[SinkAddress, SinkStats]:
    stats = SinkStats()
    address: SinkAddress = await nursery.start(functools.partial(serve_sink, host, stats=stats))
    return address, stats


@contextlib.asynccontextmanager
async def connect(address: SinkAddress) -> AsyncIterator[SmtpTestClient]:
    """A connection to the sink whose banner has been read; closed on the way out."""
    stream = await trio.open_tcp_stream(address.host, address.port)
    async with stream:
        client = SmtpTestClient(stream)
        assert (await client.reply()).startswith(b"220 smtpload.sink ESMTP")
        yield client


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


# --- serving -------------------------------------------------------------------------------------


async def test_started_reports_the_bound_address(nursery: trio.Nursery) -> None:
    address, _ = await start_sink(nursery)
    assert address.host == "127.0.0.1"
    assert address.port > 0
    assert str(address) == f"127.0.0.1:{address.port}"


async def test_full_dialogue(nursery: trio.Nursery) -> None:
    address, stats = await start_sink(nursery)
    async with connect(address) as client:
        assert (await client.command(b"EHLO client.test")).startswith(b"250-smtpload.sink\r\n")
        assert await client.command(b"MAIL FROM:<a@client.test>") == b"250 2.1.0 Ok\r\n"
        assert await client.command(b"RCPT TO:<b@sink.test>") == b"250 2.1.5 Ok\r\n"
        assert (await client.command(b"DATA")).startswith(b"354 ")
        await client.stream.send_all(MESSAGE)
        assert (await client.reply()).startswith(b"250 2.0.0 Ok: queued as ")
        assert await client.command(b"QUIT") == b"221 2.0.0 Bye\r\n"
        assert await client.closed_by_server()

    assert (stats.connections, stats.active_connections) == (1, 0)
    assert (stats.messages, stats.message_bytes) == (1, len(b"Subject: hi\r\n\r\nhello\r\n"))
    assert stats.commands == 5
    assert stats.connection_errors == 0


async def test_pipelined_dialogue(nursery: trio.Nursery) -> None:
    address, stats = await start_sink(nursery)
    async with connect(address) as client:
        # RFC 2920: a whole transaction in one write, answered in order.
        await client.stream.send_all(b"EHLO client.test\r\n" + TRANSACTION)
        ehlo, mail, rcpt, data = await client.replies(4)
        assert b"250-PIPELINING\r\n" in ehlo
        assert (mail, rcpt) == (b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n")
        assert data.startswith(b"354 ")
        await client.stream.send_all(MESSAGE + TRANSACTION + MESSAGE + b"QUIT\r\n")
        replies = await client.replies(6)
        assert [reply[:3] for reply in replies] == [b"250", b"250", b"250", b"354", b"250", b"221"]
        assert await client.closed_by_server()
    assert stats.messages == 2


async def test_two_connections_are_served_at_once(nursery: trio.Nursery) -> None:
    address, stats = await start_sink(nursery)
    async with connect(address) as first:
        assert (await first.command(b"HELO first.test")) == b"250 smtpload.sink\r\n"
        assert await first.command(b"MAIL FROM:<a@first.test>") == b"250 2.1.0 Ok\r\n"

        # While the first connection sits in a transaction, a second one does a whole one.
        async with connect(address) as second:
            assert stats.active_connections == 2
            await second.stream.send_all(
                b"HELO second.test\r\n" + TRANSACTION + MESSAGE + b"QUIT\r\n"
            )
            replies = await second.replies(6)
            assert [reply[:3] for reply in replies] == [
                b"250",
                b"250",
                b"250",
                b"354",
                b"250",
                b"221",
            ]

        assert await first.command(b"RCPT TO:<b@sink.test>") == b"250 2.1.5 Ok\r\n"
        assert (await first.command(b"DATA")).startswith(b"354 ")
        await first.stream.send_all(MESSAGE)
        assert (await first.reply()).startswith(b"250 2.0.0 Ok: queued as ")
    assert (stats.connections, stats.messages) == (2, 2)


async def test_client_reset_mid_data_does_not_stop_the_server(nursery: trio.Nursery) -> None:
    address, stats = await start_sink(nursery)
    async with connect(address) as client:
        await client.stream.send_all(b"EHLO client.test\r\n" + TRANSACTION)
        await client.replies(4)
        await client.stream.send_all(b"Subject: cut short\r\n\r\nhalf a mess")
        # SO_LINGER with a zero timeout turns close() into a TCP reset.
        stream = client.stream
        assert isinstance(stream, trio.SocketStream)
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # The reset is delivered on loopback before close() returns; let the sink notice it.
    await trio.testing.wait_all_tasks_blocked()
    assert stats.connection_errors == 1
    assert stats.active_connections == 0

    async with connect(address) as after:
        await after.stream.send_all(b"EHLO client.test\r\n" + TRANSACTION + MESSAGE + b"QUIT\r\n")
        assert [reply[:3] for reply in await after.replies(6)][-2:] == [b"250", b"221"]
    assert stats.messages == 1


async def test_client_gone_before_the_greeting_ends_quietly() -> None:
    server_stream, client_stream = trio.testing.memory_stream_pair()
    await client_stream.aclose()
    stats = SinkStats()
    await serve_sink_connection(server_stream, stats)  # must return, not raise
    assert (stats.connections, stats.connection_errors, stats.active_connections) == (1, 1, 0)


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
async def test_ipv6_literal_host(nursery: trio.Nursery, host: str) -> None:
    address, stats = await start_sink(nursery, host)
    assert address.host == "::1"
    assert str(address) == f"[::1]:{address.port}"
    async with connect(address) as client:
        assert await client.command(b"QUIT") == b"221 2.0.0 Bye\r\n"
    assert stats.connections == 1


async def test_port_in_use_raises_oserror(nursery: trio.Nursery) -> None:
    address, _ = await start_sink(nursery)
    with pytest.raises(OSError):  # noqa: PT011 (the errno differs between systems)
        await serve_sink(address.host, address.port)


async def test_invalid_hostname_raises_before_listening() -> None:
    with pytest.raises(ValueError, match="invalid sink hostname"):
        await serve_sink(hostname="not a hostname")


# --- replies per read, timeouts, shutdown ---------------------------------------------------------


class CountingStream(trio.abc.Stream):
    """A stream that counts the writes made through it."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sends = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sends += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_pipelined_commands_get_their_replies_in_one_write(nursery: trio.Nursery) -> None:
    server_stream, client_stream = trio.testing.memory_stream_pair()
    counting = CountingStream(server_stream)
    nursery.start_soon(serve_sink_connection, counting, SinkStats())
    client = SmtpTestClient(client_stream)
    await client.reply()
    await client_stream.send_all(b"EHLO client.test\r\nNOOP\r\n" + TRANSACTION)
    await client.replies(5)
    assert counting.sends == 2  # the banner, then all five replies together


async def test_idle_connection_gets_421_then_is_closed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server_stream, client_stream = trio.testing.memory_stream_pair()
    stats = SinkStats()
    nursery.start_soon(
        functools.partial(serve_sink_connection, server_stream, stats, idle_timeout_s=10.0)
    )
    client = SmtpTestClient(client_stream)
    await client.reply()
    # Each command restarts the timer: 12 s of activity in 6 s steps is not idle.
    for _ in range(2):
        await trio.sleep(6)
        assert await client.command(b"NOOP") == b"250 2.0.0 Ok\r\n"
    assert await client.reply() == b"421 4.4.2 smtpload.sink Error: timeout exceeded\r\n"
    assert await client.closed_by_server()
    assert (stats.idle_timeouts, stats.active_connections) == (1, 0)


# A client that pipelines and never reads: the replies it never takes fill its receive
# buffer (made small) and the sink's send buffer, and then the sink's send blocks.
FLOODS = {
    "ehlo": b"EHLO flood.test\r\n",  # 17 bytes in, 130 bytes of replies out
    "noop": b"NOOP\r\n",
    "unknown-command": b"XYZZY\r\n",
    "transactions": b"MAIL FROM:<a@client.test>\r\nRCPT TO:<b@sink.test>\r\nRSET\r\n",
}


@pytest.mark.parametrize("command", list(FLOODS), ids=list(FLOODS))
async def test_a_client_that_pipelines_and_never_reads_is_closed_after_the_idle_timeout(
    nursery: trio.Nursery, command: str
) -> None:
    stats = SinkStats()
    address: SinkAddress = await nursery.start(
        functools.partial(serve_sink, stats=stats, idle_timeout_s=0.5)
    )
    sock = trio.socket.socket()
    with sock:
        # Before connecting, so that the window the client offers stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await sock.connect((address.host, address.port))
        flood = FLOODS[command] * (65536 // len(FLOODS[command]))
        error = None
        # 20 times the idle timeout: without a bound on its sends the sink never closes, and
        # this client's sends block for good once the sink stops reading.
        with trio.fail_after(10):
            for _ in range(100_000):  # far more than all socket buffers together
                try:
                    await sock.send(flood)
                except OSError as raised:  # ECONNRESET or EPIPE: the sink closed
                    error = raised
                    break
    assert error is not None
    assert (stats.write_timeouts, stats.idle_timeouts, stats.active_connections) == (1, 0, 0)
    assert stats.commands > 0


async def test_a_client_that_takes_its_replies_late_but_within_the_timeout_is_served(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # The bound is on each wait, not on the connection: a slow reader that keeps up stays.
    server_stream, client_stream = trio.testing.lockstep_stream_pair()
    stats = SinkStats()
    nursery.start_soon(
        functools.partial(serve_sink_connection, server_stream, stats, idle_timeout_s=10.0)
    )
    client = SmtpTestClient(client_stream)
    assert (await client.reply()).startswith(b"220 ")
    for _ in range(3):
        await client_stream.send_all(b"EHLO client.test\r\n")
        await trio.sleep(9)  # the sink's send waits for us all that time
        assert (await client.reply()).startswith(b"250-smtpload.sink")
    assert await client.command(b"QUIT") == b"221 2.0.0 Bye\r\n"
    assert (stats.write_timeouts, stats.idle_timeouts) == (0, 0)


async def test_stopping_the_sink_sends_421_to_connected_clients() -> None:
    stats = SinkStats()
    async with contextlib.AsyncExitStack() as clients:
        async with trio.open_nursery() as server_nursery:
            address: SinkAddress = await server_nursery.start(
                functools.partial(serve_sink, stats=stats)
            )
            client = await clients.enter_async_context(connect(address))
            assert (await client.command(b"EHLO client.test")).startswith(b"250")
            server_nursery.cancel_scope.cancel()
        # The sink has stopped; the client, outside its nursery, reads what it was told.
        assert await client.reply() == b"421 4.3.2 smtpload.sink Service shutting down\r\n"
        assert await client.closed_by_server()
    assert stats.active_connections == 0


# --- other clients' views ------------------------------------------------------------------------

# A line that starts with "." is dot-stuffed by smtplib (one byte more on the wire).
SMTPLIB_MESSAGE = b"Subject: via smtplib\r\n\r\nhello\r\n.leading dot\r\n"


def send_with_smtplib(address: SinkAddress) -> dict[str, object]:
    with smtplib.SMTP(address.host, address.port, local_hostname="client.test", timeout=30) as smtp:
        ehlo_code, _ = smtp.ehlo()
        features = dict(smtp.esmtp_features)
        refused = smtp.sendmail("a@client.test", ["b@sink.test", "c@sink.test"], SMTPLIB_MESSAGE)
        # smtplib refuses SMTPUTF8 unless the server offers it (RFC 6531).
        refused_utf8 = smtp.sendmail(
            "j\u00f6rg@client.test",
            ["\u00e9lodie@sink.test"],
            "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode(),
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
        return {
            "ehlo": ehlo_code,
            "features": features,
            "refused": (refused, refused_utf8),
            "vrfy": smtp.verify("someone"),
            "noop": smtp.noop(),
            "rset": smtp.rset(),
        }


async def test_smtplib_sends_messages(nursery: trio.Nursery) -> None:
    address, stats = await start_sink(nursery)
    result = await trio.to_thread.run_sync(send_with_smtplib, address)
    assert result == {
        "ehlo": 250,
        "features": {
            "pipelining": "",
            "size": "104857600",
            "8bitmime": "",
            "dsn": "",
            "enhancedstatuscodes": "",
            "chunking": "",
            "smtputf8": "",
        },
        "refused": ({}, {}),
        "vrfy": (252, b"2.0.0 Cannot VRFY user"),
        "noop": (250, b"2.0.0 Ok"),
        "rset": (250, b"2.0.0 Ok"),
    }
    assert stats.messages == 2
    utf8_message = "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode()
    assert stats.message_bytes == len(SMTPLIB_MESSAGE) + 1 + len(utf8_message)
    assert (stats.connection_errors, stats.active_connections) == (0, 0)


# Commands on which Postfix and the sink must agree, reply code and enhanced code alike.
# They differ by design on: MAIL before HELO, which Postfix allows by default; DATA after MAIL
# without RCPT (Postfix: 554, the sink: 503, both allowed by RFC 5321 §4.1.1.4); HELP; AUTH;
# MAIL parameters other than SIZE, which the sink accepts; lines over 2048 bytes.
POSTFIX_DIALOGUE = [
    b"EHLO client.test",
    b"DATA",
    b"RCPT TO:<b@sink.test>",
    b"MAIL FROM:",
    b"MAIL FROM:<a@client.test",
    b"MAIL FROM:<a@client.test> SIZE=big",
    b"MAIL FROM:a@client.test",
    b"MAIL FROM:<a@client.test>",
    b"RCPT TO:",
    b"RCPT TO:<>",
    b"RCPT TO:<b@sink.test",
    b"RCPT TO:<b@sink.test>",
    b"DATA x",
    b"RSET x",
    b"RSET",
    b"MAIL FROM:<>",
    b"rcpt to: <b@sink.test>",
    b"DATA",
    b"Subject: compared\r\n\r\n..stuffed\r\n.",
    b"VRFY",
    b"NOOP anything",
    b"",
    b"HELOO client.test",
    b"STARTTLS",
    b"QUIT",
]


ENHANCED_CODE = re.compile(rb"\d{3} (\d\.\d{1,3}\.\d{1,3}) ")


def codes(reply: bytes) -> bytes:
    """A reply's code, and its enhanced status code (RFC 3463) when it has one."""
    enhanced = ENHANCED_CODE.match(reply)
    return reply[:3] + (b" " + enhanced.group(1) if enhanced else b"")


async def converse(address: SmtpPeer | SinkAddress, lines: list[bytes]) -> list[bytes]:
    client = SmtpTestClient(await trio.open_tcp_stream(address.host, address.port))
    try:
        await client.reply()
        return [codes(await client.command(line)) for line in lines]
    finally:
        await client.stream.aclose()


async def test_sink_answers_like_postfix(nursery: trio.Nursery, postfix_server: SmtpPeer) -> None:
    address, _ = await start_sink(nursery)
    with trio.fail_after(60):  # a Postfix that stops answering must not hang the suite
        postfix = await converse(postfix_server, POSTFIX_DIALOGUE)
    sink = await converse(address, POSTFIX_DIALOGUE)
    assert list(zip(POSTFIX_DIALOGUE, sink, strict=True)) == list(
        zip(POSTFIX_DIALOGUE, postfix, strict=True)
    )


# --- the blocking entry point behind `smtpload sink` ---------------------------------------------


async def read_line(stream: trio.abc.ReceiveStream, buffer: bytearray) -> bytes:
    while (newline := buffer.find(b"\n")) < 0:
        data = await stream.receive_some()
        if not data:
            raise AssertionError(f"output ended without a newline: {bytes(buffer)!r}")
        buffer += data
    line = bytes(buffer[: newline + 1])
    del buffer[: newline + 1]
    return line


async def test_sink_command_takes_the_idle_timeout() -> None:
    command = [*COMMAND, "sink", "--listen", "127.0.0.1:0", "--idle-timeout", "0.5"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, env=environment())
    try:
        # The default is 300 s: a silent client closed within this bound took the option.
        with trio.fail_after(30):
            assert process.stdout is not None
            first_line = await read_line(process.stdout, bytearray())
            prefix = b"smtpload sink listening on 127.0.0.1:"
            assert first_line.startswith(prefix)
            async with connect(SinkAddress("127.0.0.1", int(first_line[len(prefix) :]))) as idle:
                assert await idle.reply() == b"421 4.4.2 smtpload.sink Error: timeout exceeded\r\n"
                assert await idle.closed_by_server()
    finally:
        process.kill()
        await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


@pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")
@pytest.mark.parametrize(
    "signal_number", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"]
)
async def test_run_sink_forever_until_a_signal(signal_number: signal.Signals) -> None:
    code = "from smtpload.net.sink import run_sink_forever; run_sink_forever('127.0.0.1', 0)"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env=environment()
    )
    try:
        with trio.fail_after(60):  # a child that never starts must not hang the suite
            assert process.stdout is not None
            output = bytearray()
            first_line = await read_line(process.stdout, output)
            prefix = b"smtpload sink listening on 127.0.0.1:"
            assert first_line.startswith(prefix)
            address = SinkAddress("127.0.0.1", int(first_line[len(prefix) :]))

            async with connect(address) as done:
                await done.stream.send_all(b"EHLO c\r\n" + TRANSACTION + MESSAGE + b"QUIT\r\n")
                assert (await done.replies(6))[-1] == b"221 2.0.0 Bye\r\n"
            async with connect(address) as waiting:
                assert (await waiting.command(b"EHLO c")).startswith(b"250")
                process.send_signal(signal_number)
                shutdown = await waiting.reply()
                assert shutdown == b"421 4.3.2 smtpload.sink Service shutting down\r\n"
            assert await process.wait() == 0
            last_line = await read_line(process.stdout, output)
        assert last_line == b"smtpload sink stopped: 2 connections, 1 message\n"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


def test_the_sink_command_can_leave_pipelining_out(tmp_path: Path) -> None:
    # `smtpload sink --no-pipelining`, checked by smtpload itself: a scenario that requires
    # PIPELINING to be absent passes against it, and one that requires it fails.
    absent = "expect: {code: 250, absent_capabilities: [PIPELINING], capabilities: [CHUNKING]}"
    present = "expect: {code: 250, capabilities: [PIPELINING]}"
    process = start_smtpload(
        "sink", "--listen", "127.0.0.1:0", "--no-pipelining",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("smtpload sink listening on "), first
        address = first.rsplit(" ", 1)[-1].strip()
        for expect, status in ((absent, 0), (present, 1)):
            scenario = tmp_path / "ehlo.yaml"
            scenario.write_text(
                f"steps:\n  - greeting: 220\n  - send: EHLO c.test\n    {expect}\n",
                encoding="utf-8",
            )
            done = smtpload(
                "run", str(scenario), "--target", address, "--quiet", "--force", cwd=tmp_path
            )
            assert done.returncode == status, done.stdout + done.stderr
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
