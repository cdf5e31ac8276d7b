"""The sink's SMTP rules, byte for byte, with no sockets: `SinkConnection` alone.

Each dialogue in `DIALOGUES` is checked three ways: one command per read, everything in one
read (pipelined), and one byte per read. The replies must be the same bytes every time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import pytest

from smtpload.protocol.sink import MAX_COMMAND_LINE_BYTES, MAX_MESSAGE_BYTES, SinkConnection

EHLO_REPLY = (
    b"250-smtpload.sink\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 104857600\r\n"
    b"250-8BITMIME\r\n"
    b"250-DSN\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-CHUNKING\r\n"
    b"250 SMTPUTF8\r\n"
)
MAIL_OK = b"250 2.1.0 Ok\r\n"
RCPT_OK = b"250 2.1.5 Ok\r\n"
START_DATA = b"354 End data with <CR><LF>.<CR><LF>\r\n"
OK = b"250 2.0.0 Ok\r\n"
BYE = b"221 2.0.0 Bye\r\n"
NOT_RECOGNIZED = b"500 5.5.2 Error: command not recognized\r\n"
LINE_TOO_LONG = b"500 5.5.0 Error: line too long\r\n"
NOT_IMPLEMENTED = b"502 5.5.1 Error: command not implemented\r\n"
NEED_HELO = b"503 5.5.1 Error: send HELO/EHLO first\r\n"
NEED_MAIL = b"503 5.5.1 Error: need MAIL command\r\n"
NEED_RCPT = b"503 5.5.1 Error: need RCPT command\r\n"
NESTED_MAIL = b"503 5.5.1 Error: nested MAIL command\r\n"


def queued(connection_id: int, message_number: int) -> bytes:
    return b"250 2.0.0 Ok: queued as %06X%06X\r\n" % (connection_id, message_number)


QUEUED_1 = queued(0, 1)
QUEUED_2 = queued(0, 2)

Dialogue = Sequence[tuple[bytes, bytes]]  # (what the client sends, what the sink replies)

CHUNK_OK = b"250 2.0.0 Ok: %d bytes\r\n"
BDAT_SYNTAX = b"501 5.5.4 Syntax: BDAT count [LAST]\r\n"

DIALOGUES: list[object] = [
    pytest.param(
        [
            (b"EHLO client.test\r\n", EHLO_REPLY),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),
            (b"RCPT TO:<b@sink.test>\r\n", RCPT_OK),
            # RFC 3030 §2: the octets are the chunk's, "." lines and command words included.
            (b"BDAT 15\r\n.\r\nQUIT\r\nDATA\r\n", CHUNK_OK % 15),
            (b"BDAT 5 LAST\r\nend\r\n", QUEUED_1),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),
            (b"RCPT TO:<b@sink.test>\r\n", RCPT_OK),
            (b"BDAT 3\r\nabc", CHUNK_OK % 3),
            (b"BDAT 0 last\r\n", QUEUED_2),
            (b"QUIT\r\n", BYE),
        ],
        id="bdat_chunks_and_bdat_0_last",
    ),
    pytest.param(
        [
            # Out of order, the chunk is still read (RFC 3030 §2): its octets are no command.
            (b"BDAT 6 LAST\r\nQUIT\r\n", NEED_MAIL),
            (b"EHLO client.test\r\n", EHLO_REPLY),
            (b"BDAT 6\r\nQUIT\r\n", NEED_MAIL),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),
            (b"BDAT 6 LAST\r\nQUIT\r\n", NEED_RCPT),
            (b"BDAT ten\r\n", BDAT_SYNTAX),
            (b"BDAT 1 FIRST\r\n", BDAT_SYNTAX),
            (b"BDAT\r\n", BDAT_SYNTAX),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),
            (b"RCPT TO:<b@sink.test>\r\n", RCPT_OK),
            (b"BDAT 2\r\nab", CHUNK_OK % 2),
            # RFC 3030 §2: BDAT and DATA never mix in one transaction.
            (b"DATA\r\n", b"503 5.5.1 Error: DATA after BDAT in the same transaction\r\n"),
            (b"BDAT 0 LAST\r\n", QUEUED_1),
            (b"QUIT\r\n", BYE),
        ],
        id="bdat_out_of_order_is_refused_and_its_chunk_consumed",
    ),
    pytest.param(
        [
            (b"EHLO client.test\r\n", EHLO_REPLY),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),
            (b"RCPT TO:<b@sink.test>\r\n", RCPT_OK),
            (b"RCPT TO:<c@sink.test>\r\n", RCPT_OK),
            (b"DATA\r\n", START_DATA),
            (b"Subject: hi\r\n\r\nbody\r\n.\r\n", QUEUED_1),
            (b"QUIT\r\n", BYE),
        ],
        id="whole_transaction",
    ),
    pytest.param(
        [
            (b"HELO client.test\r\n", b"250 smtpload.sink\r\n"),
            (b"MAIL FROM:<>\r\n", MAIL_OK),  # the null reverse-path of a bounce
            (b"RCPT TO:<postmaster>\r\n", RCPT_OK),
            (b"DATA\r\n", START_DATA),
            (b"x\r\n.\r\n", QUEUED_1),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),
            (b"RCPT TO:<b@sink.test>\r\n", RCPT_OK),
            (b"DATA\r\n", START_DATA),
            (b"y\r\n.\r\n", QUEUED_2),
            (b"QUIT\r\n", BYE),
        ],
        id="helo_two_messages_one_connection",
    ),
    pytest.param(
        [
            (b"ehlo client.test\r\n", EHLO_REPLY),
            (b"mail from:<a@client.test>\r\n", MAIL_OK),
            (b"RcPt To:<b@sink.test>\r\n", RCPT_OK),
            (b"data\r\n", START_DATA),
            (b".\r\n", QUEUED_1),
            (b"quit\r\n", BYE),
        ],
        id="verbs_and_keywords_case_insensitive",
    ),
    pytest.param(
        [
            (b"EHLO client.test\r\n", EHLO_REPLY),
            (b"MAIL FROM:a@client.test\r\n", MAIL_OK),  # no angle brackets, as Postfix allows
            (b"RCPT TO: b@sink.test\r\n", RCPT_OK),
            (b"RSET\r\n", OK),
            (b"MAIL FROM:<a@client.test> BODY=8BITMIME SMTPUTF8 SIZE=1000\r\n", MAIL_OK),
            (b"RCPT TO:<b@sink.test> NOTIFY=NEVER\r\n", RCPT_OK),
        ],
        id="path_forms_and_parameters",
    ),
    pytest.param(
        [
            (b"EHLO client.test\n", EHLO_REPLY),
            (b"MAIL FROM:<a@client.test>\n", MAIL_OK),
            (b"RCPT TO:<b@sink.test>\n", RCPT_OK),
            (b"DATA\n", START_DATA),
            (b"line one\nline two\n.\n", QUEUED_1),
            (b"QUIT\n", BYE),
        ],
        id="bare_lf_line_endings",
    ),
    pytest.param(
        [
            (b"EHLO client.test\r\n", EHLO_REPLY),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),
            (b"RCPT TO:<b@sink.test>\r\n", RCPT_OK),
            (b"DATA\r\n", START_DATA),
            # Dot-stuffed lines (RFC 5321 §4.5.2) and lines merely containing dots go on.
            (b"..\r\n...\r\n..leading dot\r\n.a\r\n a.\r\n\r\n.\r\n", QUEUED_1),
        ],
        id="dot_stuffed_lines_are_content",
    ),
    pytest.param(
        [
            (b"NOOP\r\n", OK),
            (b"NOOP ignored argument\r\n", OK),
            (
                b"HELP\r\n",
                b"214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT\r\n",
            ),
            (b"VRFY someone\r\n", b"252 2.0.0 Cannot VRFY user\r\n"),
            (b"VRFY\r\n", b"501 5.5.4 Syntax: VRFY address\r\n"),
            (b"RSET\r\n", OK),
            (b"RSET now\r\n", b"501 5.5.4 Syntax: RSET\r\n"),
        ],
        id="noop_help_vrfy_rset_need_no_helo",
    ),
    pytest.param(
        [
            (b"HELOO localhost\r\n", NOT_RECOGNIZED),
            (b"XYZZY\r\n", NOT_RECOGNIZED),
            (b"\r\n", b"500 5.5.2 Error: bad syntax\r\n"),
            (b"   \r\n", b"500 5.5.2 Error: bad syntax\r\n"),
            (b"EHLO\r\n", b"501 5.5.4 Syntax: EHLO hostname\r\n"),
            (b"EHLO \r\n", b"501 5.5.4 Syntax: EHLO hostname\r\n"),
            (b"HELO\r\n", b"501 5.5.4 Syntax: HELO hostname\r\n"),
            (b"STARTTLS\r\n", NOT_IMPLEMENTED),
            (b"AUTH PLAIN AGFAYg==\r\n", NOT_IMPLEMENTED),
            (b"EXPN list\r\n", NOT_IMPLEMENTED),
            (b"QUIT\r\n", BYE),
        ],
        id="unknown_empty_and_unsupported_commands",
    ),
    pytest.param(
        [
            (b"MAIL FROM:<a@client.test>\r\n", NEED_HELO),
            (b"RCPT TO:<b@sink.test>\r\n", NEED_MAIL),
            (b"DATA\r\n", NEED_RCPT),  # Postfix says "need RCPT" with no MAIL too
            (b"EHLO client.test\r\n", EHLO_REPLY),
            (b"DATA\r\n", NEED_RCPT),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),
            (b"MAIL FROM:<a@client.test>\r\n", NESTED_MAIL),
            (b"DATA\r\n", NEED_RCPT),
            (b"RCPT TO:<b@sink.test>\r\n", RCPT_OK),
            (b"DATA now\r\n", b"501 5.5.4 Syntax: DATA\r\n"),
            (b"DATA\r\n", START_DATA),
            (b".\r\n", QUEUED_1),
            (b"RCPT TO:<b@sink.test>\r\n", NEED_MAIL),  # the transaction ended with the message
        ],
        id="order_enforced",
    ),
    pytest.param(
        [
            (b"EHLO client.test\r\n", EHLO_REPLY),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),
            (b"RCPT TO:<b@sink.test>\r\n", RCPT_OK),
            (b"EHLO client.test\r\n", EHLO_REPLY),  # RFC 5321 §4.1.4: acts as RSET
            (b"RCPT TO:<b@sink.test>\r\n", NEED_MAIL),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),
            (b"RSET\r\n", OK),
            (b"RCPT TO:<b@sink.test>\r\n", NEED_MAIL),
            (b"MAIL FROM:<a@client.test>\r\n", MAIL_OK),  # RSET kept the EHLO
        ],
        id="ehlo_and_rset_reset_the_transaction",
    ),
    pytest.param(
        [
            (b"EHLO client.test\r\n", EHLO_REPLY),
            (b"MAIL\r\n", b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
            (b"MAIL TO:<a@client.test>\r\n", b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
            (b"MAIL FROM:<a@client.test\r\n", b"501 5.1.7 Bad sender address syntax\r\n"),
            (b"MAIL FROM:\r\n", b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
            (b"MAIL FROM:<a@x> SIZE=big\r\n", b"501 5.5.4 Bad message size syntax\r\n"),
            (
                b"MAIL FROM:<a@x> SIZE=%d\r\n" % (MAX_MESSAGE_BYTES + 1),
                b"552 5.3.4 Message size exceeds fixed limit\r\n",
            ),
            (b"MAIL FROM:<a@x> SIZE=%d\r\n" % MAX_MESSAGE_BYTES, MAIL_OK),
            (b"RCPT FROM:<b@sink.test>\r\n", b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"),
            (b"RCPT TO:<>\r\n", b"501 5.1.3 Bad recipient address syntax\r\n"),
            (b"RCPT TO:<b@sink.test\r\n", b"501 5.1.3 Bad recipient address syntax\r\n"),
            (b"RCPT TO:\r\n", b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"),
            (b"RCPT TO:<b@sink.test>\r\n", RCPT_OK),  # errors left the transaction as it was
        ],
        id="mail_and_rcpt_syntax_errors",
    ),
    pytest.param(
        [
            (b"NOOP " + b"x" * (MAX_COMMAND_LINE_BYTES - 5) + b"\r\n", OK),
            (b"NOOP " + b"x" * (MAX_COMMAND_LINE_BYTES - 4) + b"\r\n", LINE_TOO_LONG),
            (b"NOOP " + b"x" * 10_000 + b"\r\n", LINE_TOO_LONG),
            (b"NOOP\r\n", OK),
        ],
        id="line_length_limit",
    ),
    pytest.param(
        [
            (b"QUIT\r\n", BYE),
            (b"NOOP\r\n", b""),  # nothing is answered after QUIT
        ],
        id="nothing_after_quit",
    ),
]


def feed(connection: SinkConnection, chunks: Iterable[bytes]) -> bytes:
    return b"".join(connection.receive_data(chunk) for chunk in chunks)


def client_bytes(dialogue: Dialogue) -> bytes:
    return b"".join(sent for sent, _ in dialogue)


def sink_bytes(dialogue: Dialogue) -> bytes:
    return b"".join(reply for _, reply in dialogue)


# --- the banner ----------------------------------------------------------------------------------


def test_greeting_is_a_220_banner_naming_the_host() -> None:
    assert SinkConnection().greeting() == b"220 smtpload.sink ESMTP smtpload sink\r\n"
    assert SinkConnection("mx.test").greeting() == b"220 mx.test ESMTP smtpload sink\r\n"


def test_hostname_appears_in_helo_and_ehlo_replies() -> None:
    connection = SinkConnection("mx.test")
    assert connection.receive_data(b"HELO c\r\n") == b"250 mx.test\r\n"
    assert connection.receive_data(b"EHLO c\r\n").startswith(b"250-mx.test\r\n")


@pytest.mark.parametrize("hostname", ["", "two words", "caf\u00e9.test", "mx\r\n.test"])
def test_invalid_hostname_is_refused(hostname: str) -> None:
    with pytest.raises(ValueError, match="invalid sink hostname"):
        SinkConnection(hostname)


# --- whole dialogues, however the bytes arrive ---------------------------------------------------


@pytest.mark.parametrize("dialogue", DIALOGUES)
def test_dialogue_one_command_per_read(dialogue: Dialogue) -> None:
    connection = SinkConnection()
    for sent, expected in dialogue:
        assert connection.receive_data(sent) == expected, sent


@pytest.mark.parametrize("dialogue", DIALOGUES)
def test_dialogue_pipelined_in_one_read(dialogue: Dialogue) -> None:
    connection = SinkConnection()
    assert connection.receive_data(client_bytes(dialogue)) == sink_bytes(dialogue)


@pytest.mark.parametrize("dialogue", DIALOGUES)
def test_dialogue_one_byte_per_read(dialogue: Dialogue) -> None:
    data = client_bytes(dialogue)
    connection = SinkConnection()
    assert feed(connection, (data[i : i + 1] for i in range(len(data)))) == sink_bytes(dialogue)


@pytest.mark.parametrize(
    "data",
    [
        b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@s>\r\nDATA\r\n"
        b"Subject: x\r\n\r\n.a\r\n..\r\n.\r\n",
        b"EHLO c\nMAIL FROM:<a@c>\nRCPT TO:<b@s>\nDATA\nSubject: x\n\n.a\n..\n.\n",
        b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@s>\r\nDATA\r\n.\r\nNOOP\r\n",
    ],
    ids=["crlf", "bare_lf", "empty_message_then_command"],
)
def test_every_split_into_two_reads_gives_the_same_replies(data: bytes) -> None:
    whole = SinkConnection().receive_data(data)
    assert whole.endswith((QUEUED_1, QUEUED_1 + OK))
    for cut in range(1, len(data)):
        connection = SinkConnection()
        assert feed(connection, [data[:cut], data[cut:]]) == whole, cut


# --- the end of a message ------------------------------------------------------------------------


def in_data() -> SinkConnection:
    connection = SinkConnection()
    connection.receive_data(b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@s>\r\n")
    assert connection.receive_data(b"DATA\r\n") == START_DATA
    return connection


@pytest.mark.parametrize(
    ("chunks", "content_bytes"),
    [
        ([b"body\r\n.", b"\r\n"], 6),
        ([b"body\r\n", b".\r\n"], 6),
        ([b"body\r", b"\n.\r\n"], 6),
        ([b"body\r\n.\r", b"\n"], 6),
        ([b"body\r\n", b".", b"\r", b"\n"], 6),
        ([b".\r\n"], 0),
        ([b".", b"\r\n"], 0),
        ([b"\r\n.\r\n"], 2),
        ([b"a\n.\n"], 2),
        ([b"a\r\n.\n"], 3),
    ],
    ids=[
        "dot_then_crlf",
        "crlf_then_dot_line",
        "cr_then_lf_dot",
        "dot_cr_then_lf",
        "one_piece_at_a_time",
        "empty_message",
        "empty_message_split",
        "one_empty_line",
        "bare_lf",
        "crlf_then_bare_lf_dot",
    ],
)
def test_end_of_data_found_across_reads(chunks: list[bytes], content_bytes: int) -> None:
    connection = in_data()
    assert feed(connection, chunks[:-1]) == b""
    assert connection.receive_data(chunks[-1]) == QUEUED_1
    assert (connection.messages, connection.message_bytes) == (1, content_bytes)


@pytest.mark.parametrize(
    "chunks",
    [
        [b"a\r\n.", b"x\r\n"],
        [b"a\r\n.\r", b"x\r\n"],
        [b"a\r\n..", b"\r\n"],
        [b"a\r.\r\n"],
        [b"a.\r\n"],
    ],
    ids=["dot_then_text", "dot_cr_then_text", "stuffed_dot", "cr_alone_is_no_line_end", "no_line"],
)
def test_dot_not_alone_on_its_line_does_not_end_the_message(chunks: list[bytes]) -> None:
    connection = in_data()
    assert feed(connection, chunks) == b""
    assert connection.receive_data(b"\r\n.\r\n") == QUEUED_1


def test_commands_pipelined_after_the_message_are_answered() -> None:
    connection = in_data()
    replies = connection.receive_data(
        b"body\r\n.\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@s>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n"
    )
    assert replies == QUEUED_1 + MAIL_OK + RCPT_OK + START_DATA + QUEUED_2 + BYE
    assert connection.closed


def test_large_message_is_counted_not_kept() -> None:
    connection = in_data()
    chunk = b"x" * 76 + b"\r\n" + b".stuffed line\r\n" * 1000
    for _ in range(200):
        assert connection.receive_data(chunk) == b""
        assert connection.buffered_bytes <= 2
    assert connection.receive_data(b".\r\n") == QUEUED_1
    assert connection.message_bytes == 200 * len(chunk)


def test_message_over_the_size_limit_is_refused_with_552() -> None:
    connection = in_data()
    chunk = b"x" * (1 << 20)  # one megabyte without a line end
    for _ in range(MAX_MESSAGE_BYTES // len(chunk) + 1):
        assert connection.receive_data(chunk) == b""
    assert connection.receive_data(b"\r\n.\r\n") == b"552 5.3.4 Error: message file too big\r\n"
    assert (connection.messages, connection.message_bytes) == (0, 0)
    assert connection.receive_data(b"RCPT TO:<b@s>\r\n") == NEED_MAIL


# --- command lines -------------------------------------------------------------------------------


def test_long_line_without_newline_is_answered_once_and_never_buffered() -> None:
    connection = SinkConnection()
    replies = b""
    for _ in range(256):
        replies += connection.receive_data(b"x" * 4096)
        assert connection.buffered_bytes <= MAX_COMMAND_LINE_BYTES + 1
    assert replies == LINE_TOO_LONG
    # The rest of the long line, up to its newline, is skipped; the next line is a command.
    assert connection.receive_data(b"xxx\r\nNOOP\r\n") == OK
    assert connection.commands == 2


def test_partial_command_waits_for_its_line_end() -> None:
    connection = SinkConnection()
    assert connection.receive_data(b"NO") == b""
    assert connection.receive_data(b"OP\r") == b""
    assert connection.receive_data(b"\n") == OK


def test_bytearray_input_is_accepted() -> None:
    connection = SinkConnection()
    assert connection.receive_data(bytearray(b"NOOP\r\nHELOO x\r\n")) == OK + NOT_RECOGNIZED


def test_queue_ids_differ_between_messages_and_connections() -> None:
    pattern = re.compile(rb"250 2\.0\.0 Ok: queued as ([0-9A-F]+)\r\n")
    ids = []
    for connection_id in (1, 2):
        connection = SinkConnection(connection_id=connection_id)
        replies = connection.receive_data(
            b"EHLO c\r\n" + b"MAIL FROM:<a@c>\r\nRCPT TO:<b@s>\r\nDATA\r\nx\r\n.\r\n" * 2
        )
        ids += pattern.findall(replies)
    assert len(ids) == 4
    assert len(set(ids)) == 4


def test_counters() -> None:
    connection = SinkConnection()
    connection.receive_data(
        b"EHLO c\r\nHELOO\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@s>\r\nDATA\r\n12345\r\n.\r\nQUIT\r\n"
    )
    assert connection.messages == 1
    assert connection.message_bytes == len(b"12345\r\n")
    assert connection.commands == 6  # the message is not a command


# --- the end of a connection ---------------------------------------------------------------------


def test_quit_closes_and_drops_what_follows() -> None:
    connection = SinkConnection()
    assert not connection.closed
    assert connection.receive_data(b"NOOP\r\nQUIT\r\nNOOP\r\n") == OK + BYE
    assert connection.closed
    assert connection.receive_data(b"NOOP\r\n") == b""


def test_bdat_chunks_over_the_size_limit_are_refused_counted_and_not_kept() -> None:
    sink = SinkConnection()
    feed(sink, [b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@s>\r\n"])
    half = MAX_MESSAGE_BYTES // 2 + 1
    assert sink.receive_data(b"BDAT %d\r\n" % half) == b""
    block = b"x" * 65536
    replies = b""
    for start in range(0, half, len(block)):
        replies += sink.receive_data(block[: min(len(block), half - start)])
        assert sink.buffered_bytes == 0
    assert replies == CHUNK_OK % half
    # The second half crosses the limit: 552 once its octets are read, and the rest 503.
    assert sink.receive_data(b"BDAT %d\r\n" % half) == b""
    for start in range(0, half, len(block)):
        replies = sink.receive_data(block[: min(len(block), half - start)])
    assert replies == b"552 5.3.4 Error: message file too big\r\n"
    assert sink.receive_data(b"BDAT 1 LAST\r\nx") == NEED_MAIL
    assert sink.messages == 0


def test_timeout_and_shutdown_replies_are_421_and_close() -> None:
    timed_out = SinkConnection("mx.test")
    assert timed_out.timeout_reply() == b"421 4.4.2 mx.test Error: timeout exceeded\r\n"
    assert timed_out.closed
    stopping = SinkConnection("mx.test")
    assert stopping.shutdown_reply() == b"421 4.3.2 mx.test Service shutting down\r\n"
    assert stopping.closed


def test_without_pipelining_the_ehlo_reply_leaves_it_out_and_pipelined_commands_still_work() -> (
    None
):
    # `smtpload sink --no-pipelining`: a server that does not offer RFC 2920, for testing a
    # client's lock-step fallback; commands that come together anyway are answered in order.
    connection = SinkConnection(pipelining=False)
    assert connection.receive_data(b"EHLO c\r\n") == EHLO_REPLY.replace(b"250-PIPELINING\r\n", b"")
    replies = connection.receive_data(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
    assert replies == MAIL_OK + RCPT_OK + START_DATA
