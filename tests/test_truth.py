"""benchmarks/truth.py's capture reading, on hand-made segments (no tshark, no capture).

The wire latency of a step is the time of the server segment that completes its reply minus
the time of the client segment carrying the command's last byte; these tests pin that rule for
every way the bytes can be cut into segments, the greeting's two definitions, duplicates,
out-of-order segments, and the percentile and target arithmetic beside it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from benchmarks.truth import (
    ACK,
    FIN,
    GREETING_FROM_SYN_ACK,
    QUICKSTART_STEPS,
    SYN,
    Segment,
    Side,
    dialogues,
    nearest_rank,
    parse_tshark_fields,
    wire_samples,
    within_target,
)

PSH_ACK = 0x18
EHLO_REPLY = b"250-sink.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"
MESSAGE = b"Subject: hi\r\n\r\n..a line that starts with a dot\r\nlast line\r\n.\r\n"

# The quickstart's dialogue after the banner: (command bytes, reply bytes), one per step.
QUICKSTART_TURNS: list[tuple[bytes, bytes]] = [
    (b"EHLO smtpload.example.test\r\n", EHLO_REPLY),
    (b"MAIL FROM:<marked@example.test>\r\n", b"250 2.1.0 Ok\r\n"),
    (b"RCPT TO:<to@example.test>\r\n", b"250 2.1.5 Ok\r\n"),
    (b"DATA\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
    (MESSAGE, b"250 2.0.0 Ok: queued as 1234\r\n"),
    (b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
]
BANNER = b"220 sink.example ESMTP\r\n"


@dataclass
class StreamBuilder:
    """Segments of one stream with consistent sequence numbers, like a capture's."""

    stream: int = 0
    segments: list[Segment] = field(default_factory=list)
    next_seq: dict[Side, int] = field(default_factory=dict)

    def handshake(self, syn_ns: int, syn_ack_ns: int, ack_ns: int) -> StreamBuilder:
        self.segments.append(Segment(syn_ns, self.stream, Side.CLIENT, SYN, b"", 0))
        self.segments.append(Segment(syn_ack_ns, self.stream, Side.SERVER, SYN | ACK, b"", 0))
        self.segments.append(Segment(ack_ns, self.stream, Side.CLIENT, ACK, b"", 1))
        self.next_seq = {Side.CLIENT: 1, Side.SERVER: 1}
        return self

    def send(self, time_ns: int, side: Side, payload: bytes) -> Segment:
        seq = self.next_seq[side]
        self.next_seq[side] = seq + len(payload)
        segment = Segment(time_ns, self.stream, side, PSH_ACK, payload, seq)
        self.segments.append(segment)
        return segment


def quickstart_stream(
    *,
    stream: int = 0,
    start_ns: int = 0,
    command_cuts: dict[int, Sequence[int]] | None = None,
    reply_cuts: dict[int, Sequence[int]] | None = None,
    turns: Sequence[tuple[bytes, bytes]] = QUICKSTART_TURNS,
) -> tuple[StreamBuilder, list[int]]:
    """A lock-step quickstart stream; step k's command and reply may be cut at offsets.

    Each piece is sent 1,000 ns after the one before. Returns the builder and the expected
    wire latency of each step (greeting first), computed from when each last piece went out.
    """
    builder = StreamBuilder(stream).handshake(start_ns, start_ns + 5_000, start_ns + 10_000)
    clock = start_ns + 100_000

    def pieces(data: bytes, cuts: Sequence[int]) -> list[bytes]:
        edges = [0, *cuts, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(edges)]

    def send_pieces(side: Side, data: bytes, cuts: Sequence[int]) -> int:
        nonlocal clock
        for piece in pieces(data, cuts):
            clock += 1_000
            builder.send(clock, side, piece)
        return clock  # the time of the piece with the last byte

    expected = [send_pieces(Side.SERVER, BANNER, ()) - (start_ns + 10_000)]
    for index, (command, reply) in enumerate(turns):
        command_ns = send_pieces(Side.CLIENT, command, (command_cuts or {}).get(index, ()))
        clock += 50_000  # the server's think time
        reply_ns = send_pieces(Side.SERVER, reply, (reply_cuts or {}).get(index, ()))
        expected.append(reply_ns - command_ns)
    return builder, expected


def step_latencies(segments: Sequence[Segment]) -> list[int]:
    """The one stream's latency per step, in QUICKSTART_STEPS order."""
    samples = wire_samples(segments)
    assert samples.streams_used == 1, samples.streams_skipped
    return [samples.samples_ns[name][0] for name in QUICKSTART_STEPS]


# --- one stream, cut every way ---------------------------------------------------------------


def test_lock_step_dialogue_times_every_step_from_its_last_byte_to_its_reply() -> None:
    builder, expected = quickstart_stream()
    assert step_latencies(builder.segments) == expected
    assert expected[1:] == [51_000] * 6  # each reply 50 µs + one piece after its command


@pytest.mark.parametrize("step", range(len(QUICKSTART_TURNS)), ids=QUICKSTART_STEPS[1:])
def test_a_reply_split_in_two_completes_at_its_second_segment_wherever_it_is_cut(
    step: int,
) -> None:
    reply = QUICKSTART_TURNS[step][1]
    for cut in range(1, len(reply)):
        builder, expected = quickstart_stream(reply_cuts={step: [cut]})
        latencies = step_latencies(builder.segments)
        assert latencies == expected, f"cut at {cut}"
        assert latencies[step + 1] == 52_000, f"cut at {cut}"  # the second piece's time


def test_a_multiline_reply_in_many_segments_completes_at_the_last() -> None:
    builder, expected = quickstart_stream(reply_cuts={0: range(1, len(EHLO_REPLY))})
    latencies = step_latencies(builder.segments)
    assert latencies == expected
    assert latencies[1] == 50_000 + len(EHLO_REPLY) * 1_000


@pytest.mark.parametrize("step", range(len(QUICKSTART_TURNS)), ids=QUICKSTART_STEPS[1:])
def test_a_command_split_in_two_ends_at_its_second_segment_wherever_it_is_cut(
    step: int,
) -> None:
    command = QUICKSTART_TURNS[step][0]
    for cut in range(1, len(command)):
        builder, expected = quickstart_stream(command_cuts={step: [cut]})
        latencies = step_latencies(builder.segments)
        assert latencies == expected, f"cut at {cut}"
        assert latencies[step + 1] == 51_000, f"cut at {cut}"  # from the second piece


def test_the_message_ends_only_at_crlf_dot_crlf_even_when_cut_inside_it() -> None:
    # Every cut through the final CRLF.CRLF, and through the dot-stuffed "..a line" before it.
    message_step = QUICKSTART_STEPS.index("message") - 1
    terminator_at = len(MESSAGE) - 5
    stuffed_at = MESSAGE.index(b"\r\n..")
    for cut in [*range(terminator_at, len(MESSAGE)), *range(stuffed_at, stuffed_at + 5)]:
        builder, expected = quickstart_stream(command_cuts={message_step: [cut]})
        assert step_latencies(builder.segments) == expected, f"cut at {cut}"


def test_an_empty_message_ends_at_its_dot_line() -> None:
    turns = list(QUICKSTART_TURNS)
    turns[4] = (b".\r\n", turns[4][1])  # the message's CRLF.CRLF begins with DATA's CRLF
    builder, expected = quickstart_stream(turns=turns)
    assert step_latencies(builder.segments) == expected


def test_the_message_waits_for_354_so_a_refused_data_is_not_read_as_one() -> None:
    # DATA refused: what the client sends next is a command, not a message.
    turns = list(QUICKSTART_TURNS[:3])
    turns += [(b"DATA\r\n", b"554 5.5.1 no valid recipients\r\n"), (b"QUIT\r\n", b"221 Bye\r\n")]
    builder, _ = quickstart_stream(turns=turns)
    (dialogue,) = dialogues(builder.segments).values()
    assert dialogue.commands[-2:] == [b"DATA", b"QUIT"]
    assert dialogue.reply_codes == [220, 250, 250, 250, 554, 221]


# --- several replies in one segment: pipelining -----------------------------------------------


def pipelined_stream(reply_cut: int | None) -> tuple[StreamBuilder, list[int]]:
    """MAIL, RCPT and DATA in one client segment (RFC 2920), their replies in one or two."""
    builder = StreamBuilder().handshake(0, 5_000, 10_000)
    builder.send(20_000, Side.SERVER, BANNER)
    builder.send(30_000, Side.CLIENT, QUICKSTART_TURNS[0][0])
    builder.send(40_000, Side.SERVER, EHLO_REPLY)
    group = b"".join(command for command, _ in QUICKSTART_TURNS[1:4])
    replies = [reply for _, reply in QUICKSTART_TURNS[1:4]]
    builder.send(100_000, Side.CLIENT, group)
    stream = b"".join(replies)
    cuts = [] if reply_cut is None else [reply_cut]
    edges = [0, *cuts, len(stream)]
    times = [200_000, 300_000]
    for time_ns, (a, b) in zip(times, itertools.pairwise(edges), strict=False):
        builder.send(time_ns, Side.SERVER, stream[a:b])
    # Each reply completes in the segment holding its last byte.
    ends = [sum(len(r) for r in replies[: k + 1]) for k in range(3)]
    completed = [200_000 if reply_cut is None or end <= reply_cut else 300_000 for end in ends]
    builder.send(400_000, Side.CLIENT, MESSAGE)
    builder.send(450_000, Side.SERVER, QUICKSTART_TURNS[4][1])
    builder.send(500_000, Side.CLIENT, b"QUIT\r\n")
    builder.send(510_000, Side.SERVER, b"221 Bye\r\n")
    expected = [10_000, 10_000, *(time_ns - 100_000 for time_ns in completed), 50_000, 10_000]
    return builder, expected


def test_several_replies_in_one_segment_each_complete_at_that_segment() -> None:
    builder, expected = pipelined_stream(None)
    assert step_latencies(builder.segments) == expected
    assert expected[2:5] == [100_000] * 3


def test_replies_cut_anywhere_across_two_segments_complete_where_their_last_byte_is() -> None:
    length = sum(len(reply) for _, reply in QUICKSTART_TURNS[1:4])
    for cut in range(1, length):
        builder, expected = pipelined_stream(cut)
        assert step_latencies(builder.segments) == expected, f"cut at {cut}"


# --- duplicates and order ---------------------------------------------------------------------


def test_a_retransmitted_segment_changes_nothing() -> None:
    builder, expected = quickstart_stream()
    segments = builder.segments
    ehlo = next(s for s in segments if s.payload.startswith(b"EHLO"))
    ok = next(s for s in segments if s.payload.startswith(b"250 2.1.0"))
    # Copies later in the capture: the client's EHLO, the server's 250 and a partial overlap.
    segments = [
        *segments,
        ehlo._replace(time_ns=ehlo.time_ns + 3_000),
        ok._replace(time_ns=ok.time_ns + 500),
        ok._replace(time_ns=ok.time_ns + 700, payload=ok.payload[:4]),
    ]
    segments.sort(key=lambda segment: segment.time_ns)
    assert step_latencies(segments) == expected
    (dialogue,) = dialogues(segments).values()
    assert len(dialogue.reply_codes) == 7
    assert len(dialogue.commands) == 6


def test_a_segment_after_a_gap_completes_nothing_until_the_gap_is_filled() -> None:
    builder, expected = quickstart_stream(reply_cuts={0: [10]})
    segments = builder.segments
    first = next(s for s in segments if s.payload == EHLO_REPLY[:10])
    second = next(s for s in segments if s.payload == EHLO_REPLY[10:])
    # The second piece is captured first (out of order); the first comes 7 µs after it.
    segments.remove(first)
    segments.insert(segments.index(second) + 1, first._replace(time_ns=second.time_ns + 7_000))
    latencies = step_latencies(segments)
    assert latencies[1] == expected[1] + 7_000
    assert latencies[2:] == expected[2:]


def test_a_segment_that_overlaps_what_came_before_adds_only_its_new_bytes() -> None:
    builder = StreamBuilder().handshake(0, 5_000, 10_000)
    builder.send(20_000, Side.SERVER, BANNER)
    builder.send(30_000, Side.CLIENT, b"EHLO x\r\n")
    first = builder.send(40_000, Side.SERVER, b"250-a\r\n")
    # A repacketised retransmission: the first line again, with the reply's last line.
    builder.segments.append(first._replace(time_ns=60_000, payload=b"250-a\r\n250 b\r\n"))
    (dialogue,) = dialogues(builder.segments).values()
    assert dialogue.reply_codes == [220, 250]
    assert dialogue.reply_ns == [20_000, 60_000]


# --- the greeting's two definitions, and which streams count ----------------------------------


def test_the_greeting_runs_from_the_handshake_ack_and_also_from_the_syn_ack() -> None:
    builder = StreamBuilder().handshake(1_000_000, 1_015_000, 1_040_000)
    builder.send(1_300_000, Side.SERVER, BANNER)
    for index, (command, reply) in enumerate(QUICKSTART_TURNS):
        builder.send(2_000_000 + index * 100_000, Side.CLIENT, command)
        builder.send(2_050_000 + index * 100_000, Side.SERVER, reply)
    samples = wire_samples(builder.segments)
    assert samples.samples_ns["greeting"] == [1_300_000 - 1_040_000]
    assert samples.samples_ns[GREETING_FROM_SYN_ACK] == [1_300_000 - 1_015_000]


def test_the_first_ack_after_the_syn_ack_ends_the_handshake_even_with_data() -> None:
    # A client that sends at once: its first segment both ACKs the SYN-ACK and carries data.
    builder = StreamBuilder(stream=4)
    builder.segments += [
        Segment(0, 4, Side.CLIENT, SYN, b"", 0),
        Segment(5_000, 4, Side.SERVER, SYN | ACK, b"", 0),
        Segment(9_000, 4, Side.CLIENT, PSH_ACK, b"EHLO early\r\n", 1),
    ]
    (dialogue,) = dialogues(builder.segments).values()
    assert dialogue.ack_ns == 9_000
    assert dialogue.commands == [b"EHLO early"]


def test_only_complete_streams_carrying_the_marker_are_counted() -> None:
    marked, expected = quickstart_stream(stream=1)
    other, _ = quickstart_stream(
        stream=2, turns=[(b"MAIL FROM:<someone@else.test>\r\n", r) for _, r in QUICKSTART_TURNS]
    )
    cut_short, _ = quickstart_stream(stream=3)
    no_handshake, _ = quickstart_stream(stream=4)
    segments = [
        *marked.segments,
        *other.segments,
        *cut_short.segments[:-4],
        *no_handshake.segments[3:],
    ]
    segments.sort(key=lambda segment: segment.time_ns)  # the streams interleaved
    samples = wire_samples(segments, marker=b"marked@")
    assert samples.streams_used == 1
    assert samples.streams_skipped == {"not this run's": 1, "incomplete": 1, "no handshake": 1}
    assert [samples.samples_ns[name] for name in QUICKSTART_STEPS] == [[n] for n in expected]


def test_interleaved_streams_are_timed_each_on_its_own() -> None:
    streams = [quickstart_stream(stream=n, start_ns=n * 37_000) for n in range(5)]
    segments = sorted(
        (segment for builder, _ in streams for segment in builder.segments),
        key=lambda segment: segment.time_ns,
    )
    samples = wire_samples(segments)
    assert samples.streams_used == 5
    for position, name in enumerate(QUICKSTART_STEPS):
        assert sorted(samples.samples_ns[name]) == sorted(e[position] for _, e in streams)


def test_a_reply_that_comes_before_its_command_leaves_the_stream_out() -> None:
    builder = StreamBuilder().handshake(0, 5_000, 10_000)
    builder.send(20_000, Side.SERVER, BANNER)
    builder.send(30_000, Side.SERVER, EHLO_REPLY)  # out of turn
    for index, (command, reply) in enumerate(QUICKSTART_TURNS):
        builder.send(40_000 + index * 20_000, Side.CLIENT, command)
        if index:
            builder.send(50_000 + index * 20_000, Side.SERVER, reply)
    builder.send(300_000, Side.SERVER, b"221 Bye\r\n")
    samples = wire_samples(builder.segments)
    assert samples.streams_used == 0
    assert samples.streams_skipped == {"reply before its command": 1}


# --- percentiles, target, tshark's text -------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "percentile", "expected"),
    [
        (list(range(1, 101)), 50, 50),
        (list(range(1, 101)), 99, 99),
        (list(range(1, 101)), 100, 100),
        (list(range(1, 2001)), 99, 1980),  # 0.99 * 2000 in floats is just above 1980
        (list(range(1, 2001)), 50, 1000),
        (list(range(1, 2001)), 99.9, 1998),
        ([7], 50, 7),
        ([7], 99, 7),
        ([3, 1, 2], 50, 2),  # unsorted input
        (list(range(1, 11)), 0.1, 1),
    ],
    ids=["p50-100", "p99-100", "p100", "p99-2000", "p50-2000", "p99.9-2000", "one-p50",
         "one-p99", "unsorted", "tiny-p"],
)  # fmt: skip
def test_nearest_rank_percentiles(samples: list[int], percentile: float, expected: int) -> None:
    assert nearest_rank(samples, percentile) == expected


@pytest.mark.parametrize(
    ("smtpload_ms", "wire_ms", "within"),
    [
        (10.5, 10.0, True),  # 5 % of 10 ms is 0.5 ms
        (9.5, 10.0, True),
        (10.501, 10.0, False),
        (9.499, 10.0, False),
        (0.150, 0.100, True),  # below 1 ms the 50 µs floor is larger than 5 %
        (0.050, 0.100, True),
        (0.151, 0.100, False),
        (0.049, 0.100, False),
        (1.050, 1.000, True),  # at 1 ms both are 50 µs
        (1.051, 1.000, False),
    ],
)
def test_the_target_is_5_percent_or_50_us_whichever_is_larger(
    smtpload_ms: float, wire_ms: float, within: bool
) -> None:
    assert within_target(smtpload_ms, wire_ms) is within


def test_tshark_field_lines_become_segments_with_their_side() -> None:
    lines = [
        "1796130715.268868837\t0\t54802\t10025\t0x0002\t0\t\n",
        "1796130715.268885088\t0\t10025\t54802\t0x0012\t0\t\n",
        "1796130715.269288303\t0\t10025\t54802\t0x0018\t1\t3232300d0a\n",
        "1796130715.2693\t0\t54802\t10025\t0x0018\t1\t45:48:4c:4f:0d:0a\n",  # older tshark
        "1796130715.3\t\t\t\t\t\t\n",  # not a TCP segment
    ]
    segments = list(parse_tshark_fields(lines, server_port=10025))
    assert segments == [
        Segment(1796130715_268868837, 0, Side.CLIENT, SYN, b"", 0),
        Segment(1796130715_268885088, 0, Side.SERVER, SYN | ACK, b"", 0),
        Segment(1796130715_269288303, 0, Side.SERVER, PSH_ACK, b"220\r\n", 1),
        Segment(1796130715_269300000, 0, Side.CLIENT, PSH_ACK, b"EHLO\r\n", 1),
    ]


def test_fin_segments_add_no_reply() -> None:
    builder, expected = quickstart_stream()
    builder.segments.append(Segment(10**9, 0, Side.SERVER, FIN | ACK, b"", None))
    assert step_latencies(builder.segments) == expected
