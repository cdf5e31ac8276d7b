"""benchmarks/truth_tls.py: a STARTTLS session's wire latencies from encrypted records, on
hand-made segments (no tshark, no capture).

The records carry no readable content, only their 5-byte headers (RFC 8446 §5.1), so these
tests pin the rules that stand in for it: the handshake ends at the last server record before
the client's Finished, commands are the client's record runs after it, a reply is the last
server record before the next command, tickets are never a reply wherever they arrive,
QUIT's reply is not the close_notify behind it, and records complete where their last byte is.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from benchmarks.truth import GREETING_FROM_SYN_ACK, Side
from benchmarks.truth_tls import STARTTLS_STEPS, tls_wire_samples
from tests.test_truth import StreamBuilder

BANNER = b"220 postfix.test ESMTP Postfix\r\n"
EHLO = b"EHLO truth-marker.example.test\r\n"
EHLO_REPLY = b"250-postfix.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"

HANDSHAKE, CCS, APP = 22, 20, 23
#: The steps inside TLS, after the ``tls`` step.
TLS_STEPS = STARTTLS_STEPS[STARTTLS_STEPS.index("tls") + 1 :]


def record(content_type: int, length: int) -> bytes:
    """A TLS record of ``length`` opaque bytes (TLS 1.2's legacy version, as TLS 1.3 writes)."""
    return bytes([content_type, 3, 3]) + length.to_bytes(2, "big") + b"\xaa" * length


@dataclass
class Options:
    tickets: int = 2
    tickets_after_first_command: bool = False
    message_records: int = 1  # the message as this many records, sent back to back
    cut_first_reply_at: int | None = None  # the EHLO reply's record cut at this offset
    close_notify: bool = True
    leftover_after_220: bytes = b""


def starttls_stream(options: Options) -> tuple[StreamBuilder, dict[str, int]]:
    """A lock-step STARTTLS session; each segment goes 1,000 ns after the one before and the
    server thinks 50,000 ns per reply. Returns the builder and the expected latencies."""
    builder = StreamBuilder(0).handshake(0, 5_000, 10_000)
    clock = 100_000

    def send(side: Side, data: bytes, *, think: bool = False) -> int:
        nonlocal clock
        clock += 1_000 + (50_000 if think else 0)
        builder.send(clock, side, data)
        return clock

    expected = {"greeting": send(Side.SERVER, BANNER) - 10_000}
    sent = send(Side.CLIENT, EHLO)
    expected["ehlo"] = send(Side.SERVER, EHLO_REPLY, think=True) - sent
    sent = send(Side.CLIENT, b"STARTTLS\r\n")
    expected["starttls"] = (
        send(Side.SERVER, b"220 2.0.0 Ready to start TLS\r\n" + options.leftover_after_220) - sent
    )
    hello = send(Side.CLIENT, record(HANDSHAKE, 508))
    send(Side.SERVER, record(HANDSHAKE, 122) + record(CCS, 1), think=True)
    server_done = send(Side.SERVER, record(APP, 23) + record(APP, 900) + record(APP, 281))
    expected["tls"] = server_done - hello
    send(Side.CLIENT, record(CCS, 1) + record(APP, 69))  # the client's Finished

    def tickets() -> None:
        for _ in range(options.tickets):
            send(Side.SERVER, record(APP, 250))

    if not options.tickets_after_first_command:
        tickets()
    for index, name in enumerate(TLS_STEPS):
        if name == "message":
            for _ in range(options.message_records):
                sent = send(Side.CLIENT, record(APP, 400))
        else:
            sent = send(Side.CLIENT, record(APP, 40))
        if index == 0 and options.tickets_after_first_command:
            tickets()
        reply = record(APP, 120)
        if index == 0 and options.cut_first_reply_at is not None:
            send(Side.SERVER, reply[: options.cut_first_reply_at], think=True)
            expected[name] = send(Side.SERVER, reply[options.cut_first_reply_at :]) - sent
        else:
            expected[name] = send(Side.SERVER, reply, think=True) - sent
    if options.close_notify:
        send(Side.SERVER, record(APP, 19))  # encrypted close_notify: type 23 outside
        send(Side.CLIENT, record(APP, 19))
    return builder, expected


def latencies(options: Options) -> tuple[dict[str, int], dict[str, int], int]:
    builder, expected = starttls_stream(options)
    samples = tls_wire_samples(builder.segments, marker=b"truth-marker")
    assert samples.streams_used == 1, samples.streams_skipped
    measured = {name: samples.samples_ns[name][0] for name in STARTTLS_STEPS}
    ((tickets, streams),) = samples.tickets.items()
    assert streams == 1
    return measured, expected, tickets


CASES = [
    ("plain", Options()),
    ("no-tickets", Options(tickets=0)),
    ("tickets-after-the-first-command", Options(tickets_after_first_command=True)),
    ("message-in-three-records", Options(message_records=3)),
    ("first-reply-record-cut-in-its-header", Options(cut_first_reply_at=3)),
    ("first-reply-record-cut-in-its-body", Options(cut_first_reply_at=60)),
    ("no-close-notify", Options(close_notify=False)),
]


INJECTIONS = [b"250 injected\r\n", b"250 inj", b"250-a\r\n250 b\r\n"]


@pytest.mark.parametrize("options", [case[1] for case in CASES], ids=[case[0] for case in CASES])
def test_every_step_is_timed_from_its_last_record_to_its_reply(options: Options) -> None:
    measured, expected, tickets = latencies(options)
    assert measured == expected
    assert tickets == options.tickets


def test_the_greeting_also_runs_from_the_syn_ack() -> None:
    builder, expected = starttls_stream(Options())
    samples = tls_wire_samples(builder.segments)
    assert samples.samples_ns[GREETING_FROM_SYN_ACK] == [expected["greeting"] + 5_000]


def test_only_streams_whose_plain_ehlo_carries_the_marker_are_counted() -> None:
    builder, _ = starttls_stream(Options())
    samples = tls_wire_samples(builder.segments, marker=b"someone-else")
    assert samples.streams_used == 0
    assert samples.streams_skipped == {"not this run's": 1}


@pytest.mark.parametrize("injected", INJECTIONS, ids=["reply", "part-of-one", "multiline"])
def test_plain_text_after_the_220_in_its_segment_leaves_the_stream_out(injected: bytes) -> None:
    # RFC 3207 §5: plain text after 220 is a response injection, not the start of TLS.
    builder, _ = starttls_stream(Options(leftover_after_220=injected))
    samples = tls_wire_samples(builder.segments)
    assert samples.streams_used == 0
    assert samples.streams_skipped == {"plain text after the 220 to STARTTLS": 1}


def test_a_stream_cut_short_inside_tls_is_incomplete() -> None:
    builder, _ = starttls_stream(Options(close_notify=False))
    # Drop the last reply: QUIT gets no answer.
    segments = builder.segments[:-1]
    samples = tls_wire_samples(segments)
    assert samples.streams_used == 0
    assert samples.streams_skipped == {"a command without a reply record": 1}


def test_a_duplicated_record_segment_changes_nothing() -> None:
    builder, expected = starttls_stream(Options())
    segments = list(builder.segments)
    # A retransmission of the server's handshake flight, later: its bytes are already placed.
    flight = next(s for s in segments if s.side is Side.SERVER and s.payload[:1] == b"\x16")
    segments.append(flight._replace(time_ns=segments[-1].time_ns + 1))
    samples = tls_wire_samples(segments)
    assert {name: samples.samples_ns[name][0] for name in STARTTLS_STEPS} == expected
