"""``{message_size}`` (RFC 1870 ``SIZE=``): the size declared is the size of the message sent.

RFC 1870 §4 counts the message's octets with CRLF line ends, without the final ``.`` and without
the dots added by stuffing. The tests count that independently of smtpload's code (unstuffing
the bytes it sends), and against the servers: aiosmtpd records MAIL's parameters and the
unstuffed content; Postfix refuses a SIZE over its ``message_size_limit`` at MAIL.
"""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest

from smtpload.errors import ScenarioError
from smtpload.protocol.bdat import ChunkPayload
from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.message_size import message_octets
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.wire import PaddedMessage, Reply, encode_message
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import StepKind
from tests.cli import smtpload
from tests.peers import RecordingPeer, SmtpPeer


def compiled(text: str) -> CompiledScenario:
    return compile_scenario(parse_scenario(textwrap.dedent(text), "s.yaml"))


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(textwrap.dedent(text), "s.yaml")
    return [str(problem) for problem in info.value.problems]


def as_bytes(message: bytes | PaddedMessage) -> bytes:
    return message if isinstance(message, bytes) else b"".join(message.chunks())


def rfc1870_size(sent: bytes | PaddedMessage) -> int:
    """The size of a message as sent after 354, counted by unstuffing it (RFC 5321 §4.5.2)."""
    data = as_bytes(sent)
    assert data.endswith(b"\r\n.\r\n") or data == b".\r\n"
    lines = data[: -len(b".\r\n")].split(b"\r\n")
    return len(b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines))


def crlf_form(text: bytes) -> bytes:
    """A message's text with every line end (CRLF, LF, CR) made CRLF and a last one added."""
    lines = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if lines and not lines.endswith(b"\n"):
        lines += b"\n"
    return lines.replace(b"\n", b"\r\n")


def sends(engine: SessionEngine, scenario: CompiledScenario) -> list[bytes | PaddedMessage]:
    sent: list[bytes | PaddedMessage] = []
    for step in scenario.steps:
        if step.sends:
            data = engine.payload(step)
            assert not isinstance(data, ChunkPayload), "these scenarios have no bdat step"
            sent.append(data)
    return sent


def declared_size(mail: bytes | PaddedMessage) -> int:
    line = as_bytes(mail)
    assert line.endswith(b"\r\n")
    return int(line.split(b"SIZE=")[1].split()[0])


# -- the count ------------------------------------------------------------------------------

_TEXTS = [
    b"",
    b".",
    b"..",
    b"\n",
    b"a",
    b".\n.\n",
    b"Subject: x\n\nbody\n",
    b"Subject: x\r\n\r\n.dot\r\n..two\r\nend",
    b"bare\rcr\r\rlines",
    b"\n.\n",
    "Subject: grüße\n\nGrüße — ✓\n".encode(),
]


def _random_texts(count: int) -> list[bytes]:
    rng = random.Random(1870)
    pieces = [b".", b"\r", b"\n", b"\r\n", b"a", "ü".encode(), b" "]
    return [b"".join(rng.choice(pieces) for _ in range(rng.randrange(12))) for _ in range(count)]


@pytest.mark.parametrize("text", _TEXTS + _random_texts(300))
def test_message_octets_is_the_crlf_form_without_stuffing_or_the_final_dot(text: bytes) -> None:
    sent = encode_message(text)
    assert message_octets(sent) == len(crlf_form(text)) == rfc1870_size(sent)


@pytest.mark.parametrize(
    "head",
    ["Subject: x\n\n.dot line\n", "a\rbare\rcr\r\n", "a\rb\r", "", "ünïcode\n\n.\n", "no end"],
)
@pytest.mark.parametrize("size", [0, 1, 2, 3, 79, 80, 81, 1000, 16 * 1024 + 5, 1_000_003])
def test_a_padded_message_is_its_size_as_rfc_1870_counts_it(head: str, size: int) -> None:
    scenario = compiled(
        f"""\
        steps:
          - send: DATA
            expect: 354
          - data: {{message: {head!r}, size: {size}}}
        """.replace("'", '"')
    )
    step = scenario.steps[1]
    assert step.payload is not None
    own = len(crlf_form(head.encode()))
    counted = rfc1870_size(step.payload)
    assert message_octets(step.payload) == counted
    if size - own in (1, 2) and own < len(b"x" * 76 + b"\r\n"):
        # No line is one or two octets with its CRLF but the empty line, which padding never
        # adds: the message stays its own size.
        assert counted == own
    else:
        assert counted == max(size, own)


# -- the command declares the size of the message that follows it -----------------------------

_HEAD = """\
variables:
  sender: "jörg@example.test"
steps:
  - greeting: 220
  - send: "MAIL FROM:<{sender}> SIZE={message_size} BODY=8BITMIME"
    expect: 250
  - send: DATA
    expect: 354
"""


@pytest.mark.parametrize(
    "data",
    [
        'data: "Subject: constant\\n\\n.dot\\n"',
        'data: "Subject: {uid}\\nMessage-ID: {message_id}\\n\\n.dot {sender}\\n"',
        "data: {size: 50000}",
        "data: {size: 3000}",
        'data: {message: "Subject: constant ü\\n\\n", size: 200000}',
        'data: {message: "Message-ID: {message_id}\\n\\n", size: 200000}',
    ],
)
def test_the_size_declared_is_that_of_the_message_sent(data: str) -> None:
    scenario = compiled(_HEAD + f"  - {data}\n")
    for session in (1, 12345):
        engine = SessionEngine(scenario, session, scenario.session_variables(session, "run-x"))
        mail, _, message = sends(engine, scenario)
        assert declared_size(mail) == rfc1870_size(message)


def test_a_constant_message_s_size_is_written_into_the_command_at_compile_time() -> None:
    scenario = compiled(
        """\
        steps:
          - send: "MAIL FROM:<a@example.test> SIZE={message_size}"
          - send: DATA
            expect: 354
          - data: {message: "Subject: x\\n\\n", size: 100000}
        """
    )
    mail = scenario.steps[0]
    assert mail.payload == b"MAIL FROM:<a@example.test> SIZE=100000\r\n"
    assert mail.template is None
    assert mail.sized_message is None


def test_each_message_of_a_session_is_measured_and_sent_with_its_own_message_id() -> None:
    scenario = compiled(
        """\
        steps:
          - send: "MAIL FROM:<a@example.test> SIZE={message_size}"
          - send: DATA
            expect: 354
          - data: "Message-ID: {message_id}\\n\\n{session}\\n"
          - send: "MAIL FROM:<a@example.test> SIZE={message_size}"
          - send: DATA
            expect: 354
          - data: "Message-ID: {message_id}\\n\\nsecond, longer\\n"
        """
    )
    engine = SessionEngine(scenario, 7, scenario.session_variables(7, "r"))
    mail1, _, message1, mail2, _, message2 = sends(engine, scenario)
    assert as_bytes(message1).startswith(b"Message-ID: <r.7.1@")
    assert as_bytes(message2).startswith(b"Message-ID: <r.7.2@")
    assert declared_size(mail1) == rfc1870_size(message1)
    assert declared_size(mail2) == rfc1870_size(message2)
    assert declared_size(mail2) == declared_size(mail1) + len("second, longer") - len("7")


# -- where {message_size} may not stand ---------------------------------------------------------


def test_message_size_misuse_is_refused_at_its_place() -> None:
    found = problems(
        """\
        variables:
          size: "SIZE={message_size}"
        steps:
          - greeting: 220
          - send: "MAIL FROM:<a@x.test>"
            capture: "(?P<code>[0-9.]+)"
          - send: "MAIL FROM:<a@x.test> SIZE={message_size}"
            capture: "(?P<queue>[0-9.]+)"
          - send: DATA
            expect: 354
          - data: "Subject: {code} {queue} {message_size}\\n"
          - send: "MAIL FROM:<a@x.test> SIZE={message_size}"
          - auth: {mechanism: PLAIN, username: "u{message_size}", password: p}
        """
    )
    example = "such as `MAIL FROM:<a> SIZE={message_size}`"
    assert found == [
        f"s.yaml:2:15: {{message_size}} is the size of the next message, so only a send step can"
        f" use it ({example}), not a variable, which is set once per session",
        "s.yaml:7:38: {message_size} counts the message of step 5 when this command is sent,"
        " and that message uses {queue}, captured from the reply to this step, which comes"
        " later; capture it before this step",
        f"s.yaml:11:11: {{message_size}} is the size of the next message, so only a send step"
        f" can use it ({example}), not a data step",
        "s.yaml:12:38: {message_size} is the size of the next message step's message, and no"
        " message step (data or bdat) follows this one",
        f"s.yaml:13:42: {{message_size}} is the size of the next message, so only a send step"
        f" can use it ({example}), not an auth step",
    ]


def test_a_capture_in_between_is_refused_but_one_before_is_fine() -> None:
    between = problems(
        """\
        steps:
          - send: "MAIL FROM:<a@x.test> SIZE={message_size}"
          - send: "RCPT TO:<b@x.test>"
            capture: "(?P<id>[0-9]+)"
          - send: DATA
            expect: 354
          - data: "X-Id: {id}\\n"
        """
    )
    assert between == [
        "s.yaml:2:38: {message_size} counts the message of step 4 when this command is sent,"
        " and that message uses {id}, captured from the reply to step 2, which comes later;"
        " capture it before this step"
    ]
    compiled(
        """\
        steps:
          - greeting: 220
            capture: "(?P<id>[0-9]+)"
          - send: "MAIL FROM:<a@x.test> SIZE={message_size}"
          - send: DATA
            expect: 354
          - data: "X-Id: {id}\\n"
        """
    )


def test_message_size_is_a_built_in_name() -> None:
    found = problems(
        """\
        variables:
          message_size: "1"
        steps:
          - send: NOOP
            capture: "(?P<message_size>.*)"
        """
    )
    assert found[0] == "s.yaml:2:3: {message_size} is a built-in variable; choose another name"
    assert found[1].startswith("s.yaml:5:14: capture group 'message_size' would hide the built-in")


# -- against the servers ------------------------------------------------------------------------


def _size_scenario(tmp_path: Path, data: str) -> Path:
    path = tmp_path / "size.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            steps:
              - greeting: 220
              - send: EHLO client.example
                expect: {code: 250, capabilities: [SIZE]}
              - send: "MAIL FROM:<sender@example.test> SIZE={message_size}"
                expect: 250
              - send: "RCPT TO:<rcpt@example.test>"
                expect: 250
              - send: DATA
                expect: 354
            """
        )
        + f"  - {data}\n    expect: 250\n  - send: QUIT\n    expect: 221\n"
    )
    return path


@pytest.mark.parametrize(
    "data",
    [
        'data: "Subject: constant\\n\\n.dot\\n..two\\nGrüße\\n"',
        'data: "Message-ID: {message_id}\\nSubject: {uid}\\n\\n.{session}\\n"',
        "data: {size: 70000}",
        'data: {message: "Subject: x\\n\\n.dot\\n", size: 250000}',
    ],
)
def test_aiosmtpd_receives_the_size_it_was_told(
    tmp_path: Path, aiosmtpd_server: RecordingPeer, data: str
) -> None:
    path = _size_scenario(tmp_path, data)
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    result = smtpload("run", str(path), "--target", target, "--sessions", "3", cwd=tmp_path)
    assert result.returncode == 0, result
    messages = aiosmtpd_server.handler.messages
    assert len(messages) == 3
    for message in messages:
        (size,) = [option for option in message.mail_options if option.startswith("SIZE=")]
        assert int(size.removeprefix("SIZE=")) == len(message.content)
        assert message.content.endswith(b"\r\n")
        assert b"\n" not in message.content.replace(b"\r\n", b"")


def test_postfix_refuses_a_size_over_its_limit_at_mail(
    tmp_path: Path, postfix_server: SmtpPeer
) -> None:
    # Postfix's message_size_limit is 10240000 (its EHLO says SIZE 10240000): one octet more
    # is refused at MAIL (RFC 1870 §6.1: 552 5.3.4), before any of the message is sent; a
    # message of the limit itself passes MAIL.
    target = f"{postfix_server.host}:{postfix_server.port}"
    for size in (10240001, 10240000):
        path = _size_scenario(tmp_path, f"data: {{size: {size}}}")
        path.write_text(
            path.read_text().replace(
                "    expect: 250\n  - send: QUIT", "    expect: [250, 552]\n  - send: QUIT"
            )
        )
        result = smtpload(
            "run", str(path), "--target", target, "--json", "s.json", "--force", cwd=tmp_path
        )
        summary = json.loads((tmp_path / "s.json").read_text())
        mail = next(step for step in summary["steps"] if step["name"] == "mail")
        if size > 10240000:
            assert result.returncode == 1, result
            assert mail["failed"] == 1
            assert summary["sessions"]["failures"]["unexpected_reply"] == 1
            failures = next((tmp_path / "results").glob("*/failures.log")).read_text()
            assert f"SIZE={size}" in failures
            assert "got: 552 5.3.4 Message size exceeds fixed limit" in failures
            assert "message" not in [s["name"] for s in summary["steps"] if s["count"]]
        else:
            assert result.returncode == 0, result
            assert mail["failed"] == 0


# -- a bdat step's size: its octets as sent, unstuffed (RFC 3030) -------------------------------


def _bdat_session(scenario: CompiledScenario, session: int) -> tuple[bytes, list[ChunkPayload]]:
    """Run a session of ``scenario`` against replies of 220/250 (the engine alone) and
    return the MAIL line it sent and the BDAT chunks."""
    engine = SessionEngine(scenario, session, scenario.session_variables(session, "run-b"))
    mail = b""
    chunks: list[ChunkPayload] = []
    while (step := engine.next_step()) is not None:
        data = engine.payload(step) if step.sends else b""
        if isinstance(data, ChunkPayload):
            chunks.append(data)
        elif isinstance(data, bytes) and data.startswith(b"MAIL"):
            mail = data
        code = 220 if step.kind is StepKind.GREETING else 250
        engine.on_reply(step, Reply(code, ("ok",), b"%d ok\r\n" % code))
    assert engine.outcome is Outcome.PASSED
    return mail, chunks


@pytest.mark.parametrize(
    "bdat",
    [
        'bdat: {message: "Subject: constant\\n\\n.dot\\n", chunk_size: 7}',
        'bdat: {message: "Message-ID: {message_id}\\n\\n.dot {session}\\n", chunk_size: 9}',
        "bdat: {size: 300000, chunk_size: 65536}",
        'bdat: {message: "Message-ID: {message_id}\\n\\n", size: 200000, chunk_size: 65536}',
    ],
)
def test_a_bdat_messages_size_is_its_octets_as_sent(bdat: str) -> None:
    # BDAT sends the message unstuffed and without the final dot, so SIZE= is the octets the
    # chunks carry: the same number RFC 1870 counts.
    scenario = compiled(
        "steps:\n  - greeting: 220\n"
        '  - send: "MAIL FROM:<a@example.test> SIZE={message_size}"\n'
        f"  - {bdat}\n"
    )
    for session in (1, 12345):
        mail, chunks = _bdat_session(scenario, session)
        assert len(chunks) > 1
        assert declared_size(mail) == sum(chunk.size for chunk in chunks)
