"""The reply parser and message encoding: pure tests, plain bytes in, replies out."""

from __future__ import annotations

import pytest

from smtpload.errors import RemoteProtocolError
from smtpload.protocol.wire import (
    DEFAULT_MAX_REPLY_BYTES,
    MAX_LINE_BYTES,
    Reply,
    ReplyParser,
    encode_message,
)


def feed_all(chunks: list[bytes]) -> list[Reply]:
    parser = ReplyParser()
    replies: list[Reply] = []
    for chunk in chunks:
        replies.extend(parser.feed(chunk))
    assert not parser.has_partial_reply
    return replies


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"220 mx.test ESMTP\r\n"], [(220, ("mx.test ESMTP",))]),
        ([b"250\r\n"], [(250, ("",))]),
        ([b"250 \r\n"], [(250, ("",))]),
        (
            [b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"],
            [(250, ("mx.test", "PIPELINING", "SIZE 1000"))],
        ),
        (
            [b"250-mx.test\r\n250-PIPE", b"LINING\r\n250 STARTTLS\r\n"],
            [(250, ("mx.test", "PIPELINING", "STARTTLS"))],
        ),
        ([b"25", b"0 o", b"k\r", b"\n"], [(250, ("ok",))]),
        (
            [b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"],
            [(250, ("2.1.0 Ok",)), (250, ("2.1.5 Ok",)), (354, ("go",))],
        ),
        ([b"220 bare lf\n250-a\n250 b\n"], [(220, ("bare lf",)), (250, ("a", "b"))]),
        ([b"550 caf\xe9 \xff\r\n"], [(550, ("caf\ufffd \ufffd",))]),
        ([b"421-4.4.2 a\r\n", b"421 4.4.2 b\r\n"], [(421, ("4.4.2 a", "4.4.2 b"))]),
    ],
    ids=[
        "single-line",
        "code-only",
        "code-and-space",
        "multiline-one-read",
        "multiline-split-inside-a-line",
        "split-byte-groups",
        "pipelined-replies-in-one-read",
        "bare-lf-endings",
        "non-utf8-replaced",
        "multiline-split-at-line-boundary",
    ],
)
def test_replies_are_parsed(
    chunks: list[bytes], expected: list[tuple[int, tuple[str, ...]]]
) -> None:
    assert [(r.code, r.lines) for r in feed_all(chunks)] == expected


def test_reply_split_byte_by_byte_keeps_raw_bytes() -> None:
    data = b"250-mx.test\r\n250-8BITMIME\r\n250 SIZE 10\r\n220 next\r\n"
    replies = feed_all([data[i : i + 1] for i in range(len(data))])
    assert [r.raw for r in replies] == [
        b"250-mx.test\r\n250-8BITMIME\r\n250 SIZE 10\r\n",
        b"220 next\r\n",
    ]


def test_raw_keeps_non_utf8_bytes_and_text_replaces_them() -> None:
    (reply,) = ReplyParser().feed(b"250 \xff\xfe\r\n")
    assert reply.raw == b"250 \xff\xfe\r\n"
    assert reply.text == "\ufffd\ufffd"


def test_text_joins_lines() -> None:
    (reply,) = ReplyParser().feed(b"250-a\r\n250 b\r\n")
    assert reply.text == "a\nb"


def test_incomplete_reply_is_kept_until_completed() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250-first\r\n") == []
    assert parser.has_partial_reply
    assert parser.feed(b"250 last\r\n") == [
        Reply(250, ("first", "last"), b"250-first\r\n250 last\r\n")
    ]
    assert not parser.has_partial_reply


def test_take_unread_returns_bytes_of_unfinished_reply() -> None:
    parser = ReplyParser()
    assert parser.feed(b"220 go ahead\r\n250-x\r\n250") == [
        Reply(220, ("go ahead",), b"220 go ahead\r\n")
    ]
    assert parser.take_unread() == b"250-x\r\n250"
    assert not parser.has_partial_reply


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello world\r\n", "not an SMTP reply line: hello world"),
        (b"25x ok\r\n", "not an SMTP reply line"),
        (b"2500 ok\r\n", "not an SMTP reply line"),
        (b"\r\n", "not an SMTP reply line"),
        (b"250-a\r\n251 b\r\n", "reply code changed from 250 to 251"),
        (b"250_ok\r\n", "not an SMTP reply line"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", "not an SMTP reply line"),
    ],
    ids=[
        "text",
        "letter-in-code",
        "four-digits",
        "empty-line",
        "code-change",
        "bad-separator",
        "tls-bytes",
    ],
)
def test_garbage_is_a_remote_protocol_error(data: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        ReplyParser().feed(data)


def test_line_without_end_over_the_limit_is_an_error_before_it_completes() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250 " + b"x" * (MAX_LINE_BYTES - 10)) == []
    with pytest.raises(RemoteProtocolError, match="longer than"):
        parser.feed(b"x" * 20)


def test_complete_line_over_the_limit_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match="longer than"):
        ReplyParser().feed(b"250 " + b"x" * MAX_LINE_BYTES + b"\r\n")


def test_one_mebibyte_line_in_small_reads_fails_without_buffering_it_all() -> None:
    parser = ReplyParser()
    fed = 0
    error = None
    while fed < 1024 * 1024 and error is None:
        try:
            parser.feed(b"x" * 1024)
        except RemoteProtocolError as raised:
            error = raised
        fed += 1024
    assert error is not None
    assert fed <= MAX_LINE_BYTES + 1024


def test_line_at_the_limit_is_accepted() -> None:
    text = b"x" * (MAX_LINE_BYTES - 4)
    (reply,) = ReplyParser().feed(b"250 " + text + b"\r\n")
    assert reply.lines == (text.decode(),)


# --- the cap on a whole reply (--max-reply-bytes) ------------------------------------------

# A line of a reply that never ends, as a hostile server sends it: "220-" and text, forever.
ENDLESS_LINE = b"220-" + b"x" * 60_000 + b"\r\n"


def endless(chunk_bytes: int) -> bytes:
    """``chunk_bytes`` of the endless reply, split wherever they fall."""
    repeated = ENDLESS_LINE * (chunk_bytes // len(ENDLESS_LINE) + 1)
    return repeated[:chunk_bytes]


def feed_reads(parser: ReplyParser, reads: list[bytes]) -> tuple[int, list[Reply], str | None]:
    """Feed ``reads`` in order until the parser raises.

    Returns the bytes fed before the read that raised (all of them when none did), the replies
    completed, and the error's message (None when there was none).
    """
    fed = 0
    replies: list[Reply] = []
    for data in reads:
        try:
            replies.extend(parser.feed(data))
        except RemoteProtocolError as error:
            return fed, replies, str(error)
        fed += len(data)
    return fed, replies, None


@pytest.mark.parametrize("chunk_bytes", [1, 7, 4096, 65536, 200_000], ids=lambda n: f"reads-{n}")
@pytest.mark.parametrize("line_bytes", [6, 100, 60_000], ids=lambda n: f"lines-{n}")
def test_reply_that_never_ends_fails_as_soon_as_it_passes_the_cap(
    chunk_bytes: int, line_bytes: int
) -> None:
    # Every shape of endless reply: short or long lines, tiny or large reads, line ends
    # anywhere in a read. The error comes within one read of the cap, never at the end.
    max_reply_bytes = 20_000 if chunk_bytes < 4096 else 300_000
    line = b"250-" + b"y" * (line_bytes - 6) + b"\r\n"
    stream = line * (3 * max_reply_bytes // len(line) + 2)
    reads = [stream[i : i + chunk_bytes] for i in range(0, len(stream), chunk_bytes)]
    fed, replies, error = feed_reads(ReplyParser(max_reply_bytes), reads)
    assert replies == []
    assert (
        error
        == f"reply longer than {max_reply_bytes} bytes (a limit that --max-reply-bytes can raise)"
    )
    # `fed` is what was fed before the read that raised: the cap was not yet passed then.
    assert fed <= max_reply_bytes < fed + chunk_bytes


def test_default_cap_is_one_mebibyte_for_an_endless_reply() -> None:
    assert DEFAULT_MAX_REPLY_BYTES == 1024 * 1024
    reads = [endless(65536)] * 1024  # 64 MiB, if it came to that
    fed, _, error = feed_reads(ReplyParser(), reads)
    assert error is not None
    assert "reply longer than 1048576 bytes" in error
    assert fed <= DEFAULT_MAX_REPLY_BYTES < fed + 65536


def reply_of(total_bytes: int, line_end: bytes) -> bytes:
    """A multiline 250 reply of exactly ``total_bytes`` bytes on the wire."""
    first = b"250-first" + line_end
    last_text = total_bytes - len(first) - len(b"250 ") - len(line_end)
    return first + b"250 " + b"z" * last_text + line_end


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n"], ids=["crlf", "bare-lf"])
@pytest.mark.parametrize("split", [None, 1, 13], ids=["one-read", "byte-by-byte", "reads-13"])
def test_reply_of_exactly_the_cap_is_accepted_and_one_byte_more_is_not(
    line_end: bytes, split: int | None
) -> None:
    cap = 500
    for size, accepted in [(cap, True), (cap + 1, False)]:
        data = reply_of(size, line_end)
        assert len(data) == size
        chunks = [data] if split is None else [data[i : i + split] for i in range(0, size, split)]
        fed, replies, error = feed_reads(ReplyParser(cap), chunks)
        if accepted:
            assert (error, fed, [r.raw for r in replies]) == (None, size, [data])
        else:
            assert error is not None
            assert "reply longer than 500 bytes" in error


@pytest.mark.parametrize(
    "data",
    [b"220 " + b"x" * 600 + b"\r\n", b"220 " + b"x" * 600],
    ids=["complete-single-line", "unfinished-single-line"],
)
def test_single_line_reply_over_a_cap_below_the_line_limit_is_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="reply longer than 512 bytes"):
        ReplyParser(512).feed(data)


@pytest.mark.parametrize("together", [True, False], ids=["one-read", "separate-reads"])
def test_the_cap_is_per_reply_not_per_read_or_per_session(together: bool) -> None:
    # Pipelined replies, each under the cap, add up to far more than it.
    one = reply_of(400, b"\r\n")
    parser = ReplyParser(500)
    if together:
        replies = parser.feed(one * 10)
    else:
        replies = [r for _ in range(10) for r in parser.feed(one)]
    assert [r.raw for r in replies] == [one] * 10


def test_reply_continued_from_an_earlier_read_counts_its_earlier_bytes() -> None:
    parser = ReplyParser(500)
    assert parser.feed(b"250-" + b"a" * 300 + b"\r\n") == []
    with pytest.raises(RemoteProtocolError, match="reply longer than 500 bytes"):
        parser.feed(b"250-" + b"b" * 300 + b"\r\n")


def test_cap_below_one_byte_is_a_local_error() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ReplyParser(0)


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (b"Subject: x\n\nbody\n", b"Subject: x\r\n\r\nbody\r\n.\r\n"),
        (b"no final newline", b"no final newline\r\n.\r\n"),
        (b".starts with dot\n", b"..starts with dot\r\n.\r\n"),
        (b"a\n.\nb\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n..x\n", b"a\r\n...x\r\n.\r\n"),
        (b"a\r\nb\rc\n", b"a\r\nb\r\nc\r\n.\r\n"),
        (b"", b".\r\n"),
        (b"x.\n. .\n", b"x.\r\n.. .\r\n.\r\n"),
    ],
    ids=[
        "crlf",
        "final-newline-added",
        "leading-dot",
        "lone-dot-line",
        "double-dot",
        "mixed-endings",
        "empty",
        "dots-inside",
    ],
)
def test_encode_message_normalises_and_dot_stuffs(message: bytes, wire: bytes) -> None:
    # RFC 5321 §4.5.2: every line that starts with "." gets one more "."; "." CRLF ends it.
    assert encode_message(message) == wire
