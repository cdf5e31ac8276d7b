"""The session engine and the compiler: pure tests, no sockets, no trio.

Each test plays the I/O layer by hand: it asks the engine for steps, checks the bytes it would
send, and hands it replies.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from smtpload.errors import UsageError
from smtpload.protocol.bdat import ChunkPayload
from smtpload.protocol.compiler import (
    DEFAULT_TIMEOUT_S,
    CompiledScenario,
    CompiledStep,
    compile_scenario,
)
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.expectations import compile_expectation
from smtpload.protocol.outcome import (
    MAX_TRANSCRIPT_REPLY_BYTES,
    Outcome,
    TranscriptLine,
    reply_transcript_lines,
)
from smtpload.protocol.wire import FILLER_LINE, PaddedMessage, Reply, ReplyParser
from smtpload.scenario.model import Expectation, Scenario, Step, StepKind


def reply(data: bytes) -> Reply:
    (parsed,) = ReplyParser().feed(data)
    return parsed


def codes(*values: int) -> Expectation:
    return Expectation(codes=frozenset(values), codes_text=", ".join(map(str, values)))


def scenario(
    *steps: Step, variables: tuple[tuple[str, str], ...] = (), timeout_s: float | None = None
) -> Scenario:
    return Scenario(
        path="test.yaml",
        name="test",
        description="",
        target=None,
        timeout_s=timeout_s,
        variables=variables,
        steps=steps,
    )


GREETING = Step(StepKind.GREETING, "greeting", expect=codes(220))
HELO = Step(StepKind.SEND, "helo", text="HELO client.test", expect=codes(250))
DATA_CMD = Step(StepKind.SEND, "data", text="DATA", expect=codes(354))
QUIT = Step(StepKind.SEND, "quit", text="QUIT", expect=codes(221))
CLOSE = Step(StepKind.CLOSE, "close")


def test_a_passing_dialogue() -> None:
    message = Step(StepKind.DATA, "message", text="Subject: hi\n\n.dot\n", expect=codes(250))
    compiled = compile_scenario(scenario(GREETING, HELO, DATA_CMD, message, QUIT, CLOSE))
    engine = SessionEngine(compiled, 1)
    sent = []
    answers = [b"220 hi\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 queued\r\n", b"221 bye\r\n"]
    while (step := engine.next_step()) is not None:
        sent.append(engine.payload(step))
        if step.kind is StepKind.CLOSE:
            assert engine.on_closed(step)
        else:
            assert engine.on_reply(step, reply(answers.pop(0)))
    assert sent == [
        b"",
        b"HELO client.test\r\n",
        b"DATA\r\n",
        b"Subject: hi\r\n\r\n..dot\r\n.\r\n",
        b"QUIT\r\n",
        b"",
    ]
    assert engine.outcome is Outcome.PASSED
    assert engine.messages_accepted == 1
    assert engine.failure() is None


def test_unexpected_reply_fails_and_asks_for_a_polite_quit() -> None:
    compiled = compile_scenario(scenario(GREETING, HELO, QUIT))
    engine = SessionEngine(compiled, 7)
    step = engine.next_step()
    assert step is not None
    assert engine.on_reply(step, reply(b"220 hi\r\n"))
    step = engine.next_step()
    assert step is not None
    engine.payload(step)
    assert not engine.on_reply(step, reply(b"550 5.7.1 go away\r\n"))
    quit_step = engine.next_step()
    assert quit_step is not None
    assert quit_step.index == -1
    assert engine.payload(quit_step) == b"QUIT\r\n"
    assert engine.on_reply(quit_step, reply(b"221 bye\r\n"))
    assert engine.next_step() is None
    failure = engine.failure()
    assert failure is not None
    assert (failure.session, failure.outcome, failure.step) == (7, Outcome.UNEXPECTED_REPLY, "helo")
    assert failure.expected == "250"
    assert failure.got.startswith("550 5.7.1 go away (reply code 550 is not 250)")
    assert [str(line) for line in failure.transcript] == [
        "S: 220 hi",
        "C: HELO client.test",
        "S: 550 5.7.1 go away",
        "C: QUIT",
        "S: 221 bye",
    ]


@pytest.mark.parametrize("code", [354, 221, 421], ids=["data-mode", "closing", "service-closing"])
def test_no_quit_after_replies_that_forbid_it(code: int) -> None:
    compiled = compile_scenario(scenario(HELO, QUIT))
    engine = SessionEngine(compiled, 1)
    step = engine.next_step()
    assert step is not None
    assert not engine.on_reply(step, reply(f"{code} x\r\n".encode()))
    assert engine.next_step() is None
    assert engine.outcome is Outcome.UNEXPECTED_REPLY


def test_step_without_expectation_accepts_any_reply() -> None:
    anything = Step(StepKind.SEND, "noop", text="NOOP")
    engine = SessionEngine(compile_scenario(scenario(anything)), 1)
    step = engine.next_step()
    assert step is not None
    assert engine.on_reply(step, reply(b"502 not implemented\r\n"))
    assert engine.next_step() is None
    assert engine.outcome is Outcome.PASSED


def test_close_step_fails_when_the_server_replies_instead() -> None:
    engine = SessionEngine(compile_scenario(scenario(CLOSE)), 1)
    step = engine.next_step()
    assert step is not None
    assert not engine.on_reply(step, reply(b"250 still here\r\n"))
    failure = engine.failure()
    assert failure is not None
    assert failure.outcome is Outcome.UNEXPECTED_REPLY
    assert failure.expected == "the server to close the connection"


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        ("timeout", Outcome.TIMEOUT),
        ("closed", Outcome.CONNECTION_CLOSED),
        ("reset", Outcome.CONNECTION_CLOSED),
        ("garbage", Outcome.PROTOCOL_ERROR),
    ],
)
def test_io_events_end_the_session_with_their_category(event: str, outcome: Outcome) -> None:
    engine = SessionEngine(compile_scenario(scenario(GREETING, HELO)), 3)
    step = engine.next_step()
    assert step is not None
    if event == "timeout":
        engine.on_timeout(step)
    elif event == "closed":
        assert not engine.on_closed(step)
    elif event == "reset":
        engine.on_connection_error(step, "Connection reset by peer")
    else:
        engine.on_protocol_error(step, "not an SMTP reply line: hello")
    assert engine.next_step() is None
    assert engine.outcome is outcome
    failure = engine.failure()
    assert failure is not None
    assert failure.step == "greeting"


# --- what a failure keeps of huge replies ---------------------------------------------------


def multiline(code: int, line_bytes: int, total_bytes: int) -> bytes:
    """A complete reply of exactly ``total_bytes``, in lines of ``line_bytes`` (CRLF included)."""
    line = b"%d-" % code + b"t" * (line_bytes - 6) + b"\r\n"
    body = line * ((total_bytes - 8) // line_bytes)
    last = b"%d " % code
    return body + last + b"e" * (total_bytes - len(body) - len(last) - 2) + b"\r\n"


def kept_bytes(lines: list[TranscriptLine]) -> int:
    return sum(len(line.text.encode()) + 2 for line in lines if line.direction == "S")


@pytest.mark.parametrize("line_bytes", [10, 100, 4096, 60_000], ids=lambda n: f"lines-{n}")
@pytest.mark.parametrize(
    "total_bytes",
    [MAX_TRANSCRIPT_REPLY_BYTES + 1, 100_000, 10 * 1024 * 1024],
    ids=["one-byte-over", "100-kB", "10-MiB"],
)
def test_a_reply_over_4_kib_keeps_its_first_4_kib_and_says_where_it_was_cut(
    line_bytes: int, total_bytes: int
) -> None:
    raw = multiline(550, line_bytes, total_bytes)
    assert len(raw) == total_bytes
    lines = reply_transcript_lines(raw)
    # The kept lines are the reply's own first bytes, in order.
    assert "\r\n".join(line.text for line in lines[:-1]).encode() == raw[
        :MAX_TRANSCRIPT_REPLY_BYTES
    ].rstrip(b"\r\n")
    assert kept_bytes(lines) <= MAX_TRANSCRIPT_REPLY_BYTES + 2
    note = lines[-1]
    assert note.direction == "*"
    assert f"reply cut after 4096 of its {total_bytes} bytes" in note.text
    line_count = raw.count(b"\n")
    assert f"of {line_count})" in note.text


def test_where_the_cut_fell_names_the_line() -> None:
    inside = reply_transcript_lines(b"250-" + b"a" * 10 + b"\r\n250 " + b"b" * 20 + b"\r\n", 20)
    assert (
        inside[-1].text
        == "reply cut after 20 of its 42 bytes (inside line 2 of 2); the rest not kept"
    )
    after = reply_transcript_lines(b"250-aa\r\n250-bb\r\n250 cc\r\n", 16)
    assert [line.text for line in after] == [
        "250-aa",
        "250-bb",
        "reply cut after 16 of its 24 bytes (after line 2 of 3); the rest not kept",
    ]


@pytest.mark.parametrize(
    "size", [0, 8, MAX_TRANSCRIPT_REPLY_BYTES], ids=["empty", "small", "at-the-cap"]
)
def test_a_reply_up_to_4_kib_is_kept_whole(size: int) -> None:
    raw = multiline(250, 100, size) if size > 8 else b"250 ok\r\n"[:size]
    lines = reply_transcript_lines(raw)
    assert all(line.direction == "S" for line in lines)
    assert "\r\n".join(line.text for line in lines).encode() == raw.rstrip(b"\r\n")


def test_a_cut_inside_a_utf8_character_is_still_text() -> None:
    raw = b"550 " + "é".encode() * 3000 + b"\r\n"
    lines = reply_transcript_lines(raw)
    assert lines[0].text.startswith("550 éé")
    assert lines[-1].text.startswith("reply cut after 4096 of its 6006 bytes (inside line 1 of 1)")


def test_a_failed_session_with_a_huge_reply_keeps_a_bounded_failure() -> None:
    # A complete 10 MiB 550 to HELO (legal when --max-reply-bytes allows it) in 60 KB lines.
    huge = multiline(550, 60_000, 10 * 1024 * 1024)
    engine = SessionEngine(compile_scenario(scenario(GREETING, HELO, QUIT)), 1)
    step = engine.next_step()
    assert step is not None
    assert engine.on_reply(step, reply(b"220 hi\r\n"))
    step = engine.next_step()
    assert step is not None
    engine.payload(step)
    (huge_reply,) = ReplyParser(len(huge)).feed(huge)
    assert not engine.on_reply(step, huge_reply)
    failure = engine.failure()
    assert failure is not None
    size = sum(len(line.text) for line in failure.transcript) + len(failure.got)
    assert size < 3 * MAX_TRANSCRIPT_REPLY_BYTES
    assert failure.transcript[-1].text.startswith("reply cut after 4096 of its 10485760 bytes")
    assert failure.got.endswith("characters in all) (+174 lines) (reply code 550 is not 250)")


def test_interrupted_session_names_the_step_it_was_cut_off_in() -> None:
    engine = SessionEngine(compile_scenario(scenario(GREETING, HELO)), 4)
    assert engine.step_in_progress == "connect"
    engine.on_connected("127.0.0.1:25")
    step = engine.next_step()
    assert step is not None
    assert engine.on_reply(step, reply(b"220 hi\r\n"))
    step = engine.next_step()
    assert step is not None
    engine.payload(step)
    assert engine.step_in_progress == "helo"
    engine.on_interrupted()
    assert engine.outcome is Outcome.INTERRUPTED
    failure = engine.failure()
    assert failure is not None
    assert (failure.step, failure.expected) == ("helo", "250")
    assert str(failure.transcript[-1]) == "*: interrupted by Ctrl-C or SIGTERM"


def test_interrupting_an_already_failed_session_keeps_its_outcome() -> None:
    engine = SessionEngine(compile_scenario(scenario(HELO)), 1)
    engine.on_connected("127.0.0.1:25")
    step = engine.next_step()
    assert step is not None
    assert not engine.on_reply(step, reply(b"554 no\r\n"))
    quit_step = engine.next_step()  # the polite QUIT, then Ctrl-C
    assert quit_step is not None
    assert engine.step_in_progress is None  # smtpload's own QUIT is not a scenario step
    engine.on_interrupted()
    assert engine.outcome is Outcome.UNEXPECTED_REPLY


def test_interrupted_before_connecting_is_at_connect() -> None:
    engine = SessionEngine(compile_scenario(scenario(GREETING)), 1)
    engine.on_interrupted()
    failure = engine.failure()
    assert failure is not None
    assert (failure.outcome, failure.step) == (Outcome.INTERRUPTED, "connect")


def test_connect_error() -> None:
    engine = SessionEngine(compile_scenario(scenario(GREETING)), 1)
    engine.on_connect_error("Connection refused (ECONNREFUSED)")
    assert engine.next_step() is None
    failure = engine.failure()
    assert failure is not None
    assert (failure.outcome, failure.step, failure.got) == (
        Outcome.CONNECT_ERROR,
        "connect",
        "Connection refused (ECONNREFUSED)",
    )


def test_variables_and_captures_are_rendered_per_session() -> None:
    compiled = compile_scenario(
        scenario(
            Step(StepKind.SEND, "mail", text="MAIL FROM:<{from}>", capture=r"id=(?P<qid>\w+)"),
            Step(StepKind.SEND, "noop", text="NOOP {qid} {session} {uid}"),
            variables=(("from", "user{session}@example.test"),),
        )
    )
    assert compiled.uses_variables
    engine = SessionEngine(compiled, 42, compiled.session_variables(42, "run1"))
    step = engine.next_step()
    assert step is not None
    assert engine.payload(step) == b"MAIL FROM:<user42@example.test>\r\n"
    assert engine.on_reply(step, reply(b"250 ok id=ABC123\r\n"))
    step = engine.next_step()
    assert step is not None
    assert engine.payload(step) == b"NOOP ABC123 42 run1.42\r\n"


# RFC 5322 §3.6.4: msg-id = "<" id-left "@" id-right ">", both dot-atoms (no obs- forms).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
MSG_ID = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>")


def message_ids(payloads: list[bytes]) -> list[str]:
    found = [re.findall(rb"^Message-ID: (.*)\r$", p, re.MULTILINE) for p in payloads]
    return [value.decode() for values in found for value in values]


def run_messages(compiled: CompiledScenario, session: int, run_id: str) -> list[bytes]:
    """Play one session that accepts everything; the DATA payloads it sent."""
    engine = SessionEngine(compiled, session, compiled.session_variables(session, run_id))
    messages = []
    while (step := engine.next_step()) is not None:
        data = engine.payload(step)
        assert isinstance(data, bytes)  # these messages are small: built in one piece
        if step.kind is StepKind.DATA:
            messages.append(data)
        answer = b"354 go\r\n" if data == b"DATA\r\n" else b"250 ok\r\n"
        assert engine.on_reply(step, reply(answer))
    assert engine.outcome is Outcome.PASSED
    return messages


def test_each_message_of_each_session_gets_its_own_message_id() -> None:
    # Two messages per session, as a later `repeat:` would send; then two sessions, two runs.
    message = Step(StepKind.DATA, "message", text="Message-ID: {message_id}\n\nhi\n")
    message_2 = dataclasses.replace(message, name="message#2")
    data_2 = dataclasses.replace(DATA_CMD, name="data#2")
    compiled = compile_scenario(scenario(HELO, DATA_CMD, message, data_2, message_2))
    ids = [
        message_ids(run_messages(compiled, session, run_id))
        for run_id in ("20261128-020013-a1b2c3", "20261128-020013-d4e5f6")
        for session in (1, 2)
    ]
    assert all(len(session_ids) == 2 for session_ids in ids)
    every = [value for session_ids in ids for value in session_ids]
    assert len(set(every)) == len(every) == 8
    assert all(MSG_ID.fullmatch(value) for value in every), every
    assert ids[0] == [
        "<20261128-020013-a1b2c3.1.1@smtpload.example.test>",
        "<20261128-020013-a1b2c3.1.2@smtpload.example.test>",
    ]


def test_generated_messages_carry_the_per_message_id() -> None:
    sized = Step(StepKind.DATA, "message", data_size=1000)
    data_2 = dataclasses.replace(DATA_CMD, name="data#2")
    sized_2 = dataclasses.replace(sized, name="message#2")
    compiled = compile_scenario(scenario(HELO, DATA_CMD, sized, data_2, sized_2))
    first, second = message_ids(run_messages(compiled, 1, "run"))
    assert first != second
    assert MSG_ID.fullmatch(first)
    assert MSG_ID.fullmatch(second)


def test_a_capture_that_finds_nothing_fails_its_step() -> None:
    compiled = compile_scenario(
        scenario(
            Step(StepKind.SEND, "mail", text="MAIL FROM:<a@x>", capture=r"id=(?P<qid>\w+)"),
            Step(StepKind.SEND, "noop", text="NOOP {qid}"),
        )
    )
    engine = SessionEngine(compiled, 1, compiled.session_variables(1, "r"))
    step = engine.next_step()
    assert step is not None
    assert not engine.on_reply(step, reply(b"250 ok\r\n"))
    failure = engine.failure()
    assert failure is not None
    assert (failure.outcome, failure.step) == (Outcome.UNEXPECTED_REPLY, "mail")
    assert failure.got == r"250 ok (capture /id=(?P<qid>\w+)/ found nothing)"
    quit_step = engine.next_step()
    assert quit_step is not None
    assert engine.payload(quit_step) == b"QUIT\r\n"  # never the unrenderable NOOP


def test_an_optional_capture_group_that_did_not_take_part_is_empty() -> None:
    compiled = compile_scenario(
        scenario(
            Step(StepKind.SEND, "mail", text="MAIL FROM:<a@x>", capture=r"ok(?P<extra> \w+)?"),
            Step(StepKind.SEND, "noop", text="NOOP [{extra}]"),
        )
    )
    engine = SessionEngine(compiled, 1, compiled.session_variables(1, "r"))
    step = engine.next_step()
    assert step is not None
    assert engine.on_reply(step, reply(b"250 ok\r\n"))
    step = engine.next_step()
    assert step is not None
    assert engine.payload(step) == b"NOOP []\r\n"


def test_constant_steps_are_pre_encoded() -> None:
    compiled = compile_scenario(scenario(HELO, QUIT))
    assert not compiled.uses_variables
    assert [s.payload for s in compiled.steps] == [b"HELO client.test\r\n", b"QUIT\r\n"]


def test_var_override_must_name_a_declared_variable() -> None:
    with pytest.raises(UsageError, match="declares no variable 'to'"):
        compile_scenario(scenario(HELO, variables=(("from", "a"),)), overrides={"to": "x"})


def test_var_override_replaces_the_declared_value() -> None:
    compiled = compile_scenario(
        scenario(
            Step(StepKind.SEND, "mail", text="MAIL FROM:<{from}>"), variables=(("from", "a@x"),)
        ),
        overrides={"from": "b@y"},
    )
    engine = SessionEngine(compiled, 1, compiled.session_variables(1, "r"))
    step = engine.next_step()
    assert step is not None
    assert engine.payload(step) == b"MAIL FROM:<b@y>\r\n"


@pytest.mark.parametrize(
    ("step_timeout", "cli", "scenario_default", "expected"),
    [
        (1.0, 2.0, 3.0, 1.0),
        (None, 2.0, 3.0, 2.0),
        (None, None, 3.0, 3.0),
        (None, None, None, DEFAULT_TIMEOUT_S),
    ],
    ids=["step-wins", "cli-next", "scenario-next", "default"],
)
def test_timeout_precedence(
    step_timeout: float | None, cli: float | None, scenario_default: float | None, expected: float
) -> None:
    step = Step(StepKind.SEND, "noop", text="NOOP", timeout_s=step_timeout)
    compiled = compile_scenario(scenario(step, timeout_s=scenario_default), timeout_s=cli)
    assert compiled.steps[0].timeout_s == expected


def wire_bytes(payload: bytes | PaddedMessage) -> bytes:
    """What goes on the wire for a payload, a padded message's chunks joined."""
    if isinstance(payload, bytes):
        return payload
    return b"".join(payload.chunks())


SIZES = [0, 50, 100, 157, 158, 159, 1000, 10_000, 16_500, 1_000_000, 1_000_001, 1_000_002]


@pytest.mark.parametrize("size", SIZES)
def test_generated_message_has_the_requested_size(size: int) -> None:
    step = Step(StepKind.DATA, "message", text="Subject: s\n\nbody\n", data_size=size)
    (compiled,) = compile_scenario(scenario(step)).steps
    assert compiled.payload is not None
    sent = wire_bytes(compiled.payload)
    assert len(compiled.payload) == len(sent)
    assert sent.startswith(b"Subject: s\r\n\r\nbody\r\n")
    assert sent.endswith(b"\r\n.\r\n")
    message = sent[: -len(b".\r\n")]
    assert len(message) == max(size, len(b"Subject: s\r\n\r\nbody\r\n"))
    assert all(len(line) <= 78 for line in message.split(b"\r\n"))
    assert all(line for line in message.split(b"\r\n")[3:-1])  # no empty padding line
    # Small messages go out in one send; large ones are never built in memory.
    assert isinstance(compiled.payload, bytes) == (size <= 16 * 1024)


def test_padding_of_every_session_is_sent_from_one_shared_block() -> None:
    # No message text: the generated header has the session's own Message-ID and Date.
    step = Step(StepKind.DATA, "message", data_size=10_000_000)
    compiled = compile_scenario(scenario(step))
    messages = []
    for session in (1, 2):
        engine = SessionEngine(compiled, session, compiled.session_variables(session, "r"))
        current = engine.next_step()
        assert current is not None
        payload = engine.payload(current)
        assert isinstance(payload, PaddedMessage)
        messages.append(payload)
    first, second = messages
    assert b"Message-ID: <r.1.1@" in first.head  # run r, session 1, its first message
    assert b"Message-ID: <r.2.1@" in second.head
    padding = [chunk for message in messages for chunk in list(message.chunks())[1:-1]]
    assert padding
    assert all(isinstance(chunk, memoryview) for chunk in padding)
    blocks = {id(chunk.obj) for chunk in padding if isinstance(chunk, memoryview)}
    assert len(blocks) == 1  # one block in memory, however many sessions and bytes
    assert max(len(chunk) for chunk in padding) < 1024 * 1024
    assert len(first) == len(wire_bytes(first))
    assert wire_bytes(first).count(FILLER_LINE) > 100_000


@pytest.mark.parametrize(
    ("expectation", "data", "why"),
    [
        (Expectation(codes=frozenset(range(200, 300)), codes_text="2xx"), b"250 ok\r\n", None),
        (
            Expectation(codes=frozenset(range(200, 300)), codes_text="2xx"),
            b"450 later\r\n",
            "reply code 450 is not 2xx",
        ),
        (Expectation(enhanced="5.1.1"), b"550 5.1.1 unknown\r\n", None),
        (
            Expectation(enhanced="5.1.1"),
            b"550 5.1.10 unknown\r\n",
            "enhanced status code 5.1.10 is not 5.1.1",
        ),
        (Expectation(enhanced="5.x.x"), b"554 5.7.1 no\r\n", None),
        (Expectation(enhanced="5.1.1"), b"550 unknown\r\n", "no enhanced status code"),
        (Expectation(pattern=r"queued as \w+"), b"250 2.0.0 Ok: queued as ABC\r\n", None),
        (Expectation(pattern=r"queued as \w+"), b"250 ok\r\n", "does not match"),
        (
            Expectation(capabilities=("PIPELINING", "AUTH PLAIN")),
            b"250-mx\r\n250-pipelining\r\n250 AUTH LOGIN PLAIN\r\n",
            None,
        ),
        (
            Expectation(capabilities=("AUTH CRAM-MD5",)),
            b"250-mx\r\n250 AUTH LOGIN PLAIN\r\n",
            "AUTH does not list CRAM-MD5",
        ),
        (
            Expectation(capabilities=("SIZE",)),
            b"250-mx\r\n250 8BITMIME\r\n",
            "capability SIZE is not advertised",
        ),
        (
            Expectation(absent_capabilities=("STARTTLS",)),
            b"250-mx\r\n250 STARTTLS\r\n",
            "STARTTLS is advertised",
        ),
        (
            Expectation(capabilities=("MX",)),
            b"250-mx\r\n250 SIZE\r\n",
            "capability MX is not advertised",
        ),
    ],
    ids=[
        "class-ok",
        "class-mismatch",
        "enhanced-ok",
        "enhanced-mismatch",
        "enhanced-wildcard",
        "enhanced-missing",
        "pattern-ok",
        "pattern-mismatch",
        "capabilities-case-insensitive",
        "capability-param-missing",
        "capability-missing",
        "capability-must-be-absent",
        "greeting-line-is-not-a-capability",
    ],
)
def test_expectations(expectation: Expectation, data: bytes, why: str | None) -> None:
    result = compile_expectation(expectation).mismatch(reply(data))
    if why is None:
        assert result is None
    else:
        assert result is not None
        assert why in result


# --- observe mode (record and compare) ---------------------------------------------------------


def observe(
    steps: tuple[Step, ...], replies: list[bytes | None]
) -> tuple[SessionEngine, list[bytes | PaddedMessage | ChunkPayload]]:
    """Run an observing engine; None in ``replies`` means the server closed the connection."""
    engine = SessionEngine(compile_scenario(scenario(*steps)), 1, observe=True)
    engine.on_connected("127.0.0.1:25")
    sent: list[bytes | PaddedMessage | ChunkPayload] = []
    while (step := engine.next_step()) is not None:
        sent.append(engine.payload(step))
        answer = replies.pop(0)
        if answer is None:
            engine.on_closed(step)
        else:
            engine.on_reply(step, reply(answer))
    return engine, sent


def test_observe_mode_goes_on_after_a_difference() -> None:
    mail = Step(StepKind.SEND, "mail", text="MAIL FROM:<a@x>", expect=codes(250))
    engine, sent = observe(
        (GREETING, HELO, mail, QUIT), [b"220 hi\r\n", b"550 no\r\n", b"250 ok\r\n", b"221 bye\r\n"]
    )
    assert sent == [b"", b"HELO client.test\r\n", b"MAIL FROM:<a@x>\r\n", b"QUIT\r\n"]
    assert [
        (o.step.name, o.event, o.reply.code if o.reply else None, o.mismatch)
        for o in engine.observations
    ] == [
        ("greeting", "reply", 220, None),
        ("helo", "reply", 550, "reply code 550 is not 250"),
        ("mail", "reply", 250, None),
        ("quit", "reply", 221, None),
    ]
    assert engine.outcome is Outcome.UNEXPECTED_REPLY
    failure = engine.failure()
    assert failure is not None
    assert failure.step == "helo"


def test_observe_mode_skips_the_message_when_data_is_refused() -> None:
    message = Step(StepKind.DATA, "message", text="hi\n", expect=codes(250))
    engine, sent = observe(
        (DATA_CMD, message, QUIT), [b"554 no valid recipients\r\n", b"221 bye\r\n"]
    )
    assert sent == [b"DATA\r\n", b"QUIT\r\n"]
    assert [(o.step.name, o.event) for o in engine.observations] == [
        ("data", "reply"),
        ("message", "skipped"),
        ("quit", "reply"),
    ]


def test_observe_mode_stops_at_an_unexpected_354() -> None:
    refuse = Step(StepKind.SEND, "data", text="DATA", expect=codes(554))
    engine, sent = observe((refuse, QUIT), [b"354 go ahead\r\n"])
    assert sent == [b"DATA\r\n"]
    assert engine.outcome is Outcome.UNEXPECTED_REPLY


def test_observe_mode_sends_the_message_when_only_the_354_text_differs() -> None:
    data = Step(
        StepKind.SEND,
        "data",
        text="DATA",
        expect=Expectation(codes=frozenset({354}), pattern="^Enter mail"),
    )
    message = Step(StepKind.DATA, "message", text="hi\n", expect=codes(250))
    engine, sent = observe(
        (data, message), [b"354 End data with <CR><LF>.<CR><LF>\r\n", b"250 ok\r\n"]
    )
    assert sent == [b"DATA\r\n", b"hi\r\n.\r\n"]
    assert [o.mismatch is None for o in engine.observations] == [False, True]


def test_observe_mode_passes_when_every_reply_matches() -> None:
    engine, _ = observe(
        (GREETING, HELO, QUIT, CLOSE), [b"220 hi\r\n", b"250 ok\r\n", b"221 bye\r\n", None]
    )
    assert engine.outcome is Outcome.PASSED
    assert [o.event for o in engine.observations] == ["reply", "reply", "reply", "closed"]
    assert all(o.mismatch is None for o in engine.observations)


CLOSING_MAIL = Step(StepKind.SEND, "mail", text="MAIL FROM:<a@x>", expect=codes(421))


@pytest.mark.parametrize(
    ("closing", "answer"),
    [
        (CLOSING_MAIL, b"250 2.1.0 Ok\r\n"),
        (CLOSING_MAIL, b"554 5.7.1 no\r\n"),
        (QUIT, b"250 still here\r\n"),  # a QUIT that expects 221, answered otherwise
    ],
    ids=["421-got-250", "421-got-554", "221-got-250"],
)
def test_observe_mode_does_not_wait_for_a_close_the_server_did_not_announce(
    closing: Step, answer: bytes
) -> None:
    # The transcript had 421 (or 221) and the server closing; this server answered otherwise
    # and keeps the connection open: the close step would only sit out its timeout.
    engine, sent = observe(
        (GREETING, HELO, closing, CLOSE), [b"220 hi\r\n", b"250 ok\r\n", answer, b"221 bye\r\n"]
    )
    assert closing.text is not None
    assert closing.expect is not None
    command = closing.text.encode() + b"\r\n"
    assert sent == [b"", b"HELO client.test\r\n", command, b"QUIT\r\n"]  # a polite QUIT, no wait
    code = int(answer[:3])
    assert [(o.step.name, o.event, o.mismatch) for o in engine.observations] == [
        ("greeting", "reply", None),
        ("helo", "reply", None),
        (closing.name, "reply", f"reply code {code} is not {closing.expect.codes_text}"),
        (
            "close",
            "skipped",
            f"not waited for: the reply before was {code}, not 221 or 421 (no close)",
        ),
    ]
    assert engine.outcome is Outcome.UNEXPECTED_REPLY
    failure = engine.failure()
    assert failure is not None
    assert failure.step == closing.name  # named at the step that did not announce the close


@pytest.mark.parametrize(
    "answer", [b"421 4.7.0 other words\r\n", b"221 bye\r\n"], ids=["421-text", "221"]
)
def test_observe_mode_waits_for_a_close_the_server_announced(answer: bytes) -> None:
    strict = Step(
        StepKind.SEND,
        "mail",
        text="MAIL FROM:<a@x>",
        expect=Expectation(codes=frozenset({421}), codes_text="421", pattern="^4.7.0 too many$"),
    )
    engine, sent = observe((GREETING, strict, CLOSE), [b"220 hi\r\n", answer, None])
    assert sent == [b"", b"MAIL FROM:<a@x>\r\n", b""]  # the server is closing: no QUIT
    assert [(o.step.name, o.event) for o in engine.observations][-1] == ("close", "closed")


def _engine_at_helo(*steps: Step) -> tuple[SessionEngine, CompiledStep]:
    engine = SessionEngine(compile_scenario(scenario(GREETING, *steps)), 1)
    greeting = engine.next_step()
    assert greeting is not None
    assert engine.on_reply(greeting, reply(b"220 hi\r\n"))
    step = engine.next_step()
    assert step is not None
    return engine, step


def test_a_reply_before_a_command_is_a_protocol_error_and_nothing_follows() -> None:
    engine, step = _engine_at_helo(HELO, QUIT)
    assert not engine.on_early_reply(step, reply(b"250 unsolicited\r\n"))
    assert engine.next_step() is None  # no polite QUIT: the dialogue is out of step
    failure = engine.failure()
    assert failure is not None
    assert (failure.outcome, failure.step) == (Outcome.PROTOCOL_ERROR, "helo")
    assert failure.got == "reply before command: 250 unsolicited"
    # The command was not sent, and the transcript shows the reply that came instead.
    assert [str(line) for line in failure.transcript] == [
        "S: 220 hi",
        "S: 250 unsolicited",
        "*: protocol error: reply before command: 250 unsolicited",
    ]


def test_an_unfinished_reply_before_a_command_is_a_protocol_error() -> None:
    engine, step = _engine_at_helo(HELO)
    engine.on_early_bytes(step, b"250 unsol")
    assert engine.next_step() is None
    failure = engine.failure()
    assert failure is not None
    assert failure.outcome is Outcome.PROTOCOL_ERROR
    assert failure.got == "reply before command: '250 unsol' (incomplete)"
    engine, step = _engine_at_helo(HELO)
    engine.on_early_bytes(step, b"250 " + b"x" * 1000)
    failure = engine.failure()
    assert failure is not None
    assert failure.got.endswith("... (1004 bytes in all) (incomplete)")
    assert len(failure.got) < 200


def test_a_421_before_a_command_is_its_reply_and_no_quit_follows() -> None:
    # RFC 5321 §3.8: 421 may come at any time; the server then closes, so no QUIT.
    engine, step = _engine_at_helo(HELO, QUIT)
    assert not engine.on_early_reply(step, reply(b"421 4.3.2 shutting down\r\n"))
    assert engine.next_step() is None
    failure = engine.failure()
    assert failure is not None
    assert (failure.outcome, failure.step) == (Outcome.UNEXPECTED_REPLY, "helo")
    assert failure.got.startswith("421 4.3.2 shutting down")

    # A step that accepts 421 passes with it, and the session goes on to its next step.
    accepting = dataclasses.replace(HELO, expect=codes(250, 421))
    engine, step = _engine_at_helo(accepting, CLOSE)
    assert engine.on_early_reply(step, reply(b"421 4.3.2 shutting down\r\n"))
    close = engine.next_step()
    assert close is not None
    assert close.kind is StepKind.CLOSE
    assert engine.on_closed(close)
    assert engine.next_step() is None
    assert engine.outcome is Outcome.PASSED
