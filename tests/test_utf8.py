"""UTF-8 in scenarios (RFC 6531 SMTPUTF8, RFC 6152 8BITMIME): what is sent as written, and what
stays invalid in a command line (a line break, a NUL) and is refused at its place.

The wire tests check what real servers received: aiosmtpd's recording handler (with and
without ``enable_SMTPUTF8``) and Postfix's recording transport (``postfix_record``).
"""

from __future__ import annotations

import functools
import json
import textwrap
import uuid
from pathlib import Path

import pytest
import trio

from smtpload.errors import ScenarioError
from smtpload.net.client import resolve_target
from smtpload.net.runner import RunSettings, run_sessions
from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.outcome import Outcome
from smtpload.report.stats import RunStats
from smtpload.scenario.loader import load_scenario, parse_scenario
from smtpload.scenario.model import StepKind
from tests.cli import smtpload
from tests.misbehaving import carriage_return_in_greeting
from tests.peers import RecordingPeer, RecordingPostfix, SmtpPeer

LOOPBACK = "127.0.0.1"


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(textwrap.dedent(text), "s.yaml")
    return [str(problem) for problem in info.value.problems]


# -- what a command line may not hold -------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [r'"\0EHLO x"', r'"EHLO a\0b"', r'"EHLO x\0"', r'"EHLO \x00"', r'"MAIL FROM:<ü\0@x.test>"'],
)
def test_a_send_line_with_a_nul_is_refused_at_its_step(written: str) -> None:
    found = problems(f"steps:\n  - greeting: 220\n  - send: {written}\n")
    assert len(found) == 1
    assert found[0].startswith("s.yaml:3:11: send holds a NUL character (U+0000)")


@pytest.mark.parametrize("value", [r"a\nb", r"a\rb", r"a\r\nRSET", r"a\0b", r"\n"])
def test_a_variable_with_a_line_break_or_nul_is_refused_where_a_send_step_uses_it(
    value: str,
) -> None:
    found = problems(
        f"""\
        variables:
          bad: "{value}"
          derived: "x-{{bad}}"
        steps:
          - greeting: 220
          - send: "MAIL FROM:<{{bad}}>"
            expect: 250
          - send: "RCPT TO:<{{derived}}>"
        """
    )
    what = "a NUL character" if value == r"a\0b" else "a line break"
    assert found == [
        f"s.yaml:6:23: {{bad}} holds {what}, declared on line 2, and a send step is one"
        " command line; use the variable in a data step's message only",
        f"s.yaml:8:21: {{derived}} holds {what} (from {{bad}}), declared on line 2, and a send"
        " step is one command line; use the variable in a data step's message only",
    ]


def test_a_variable_with_line_breaks_is_fine_in_a_message() -> None:
    scenario = parse_scenario(
        textwrap.dedent(
            """\
            variables:
              body: "Grüße\\nzweite Zeile"
            steps:
              - greeting: 220
              - send: DATA
                expect: 354
              - data: "Subject: ü\\n\\n{body}\\n"
            """
        ),
        "s.yaml",
    )
    assert scenario.variables == (("body", "Grüße\nzweite Zeile"),)


@pytest.mark.parametrize("value", ["a\nRSET", "a\r\nRSET", "a\rb", "line\n"])
def test_a_var_with_a_line_break_is_refused_before_any_session(tmp_path: Path, value: str) -> None:
    (tmp_path / "s.yaml").write_text(
        textwrap.dedent(
            """\
            variables:
              to: a@example.test
              path: "<{to}>"
            steps:
              - greeting: 220
              - send: EHLO client.example
                expect: 250
              - send: "RCPT TO:{path}"
                expect: 250
            """
        )
    )
    result = smtpload("run", "s.yaml", "--var", f"to={value}", cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stderr == (
        "smtpload: --var to: the value holds a line break or a NUL, which no command line may"
        " carry, and step 'rcpt' (line 8) sends it through {path} in one; give a value of one"
        " line\n"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_smtputf8_and_8bit_need_no_capability_check_to_validate() -> None:
    # No warning system: a scenario that uses SMTPUTF8 without checking EHLO for it, or sends
    # an 8-bit message after a MAIL without BODY=8BITMIME, is valid (the server judges it).
    scenario = parse_scenario(
        textwrap.dedent(
            """\
            steps:
              - greeting: 220
              - send: EHLO clïent.example
                expect: 250
              - send: "MAIL FROM:<ü@exämple.test> SMTPUTF8"
                expect: 250
              - send: "MAIL FROM:<a@example.test>"
                expect: 250
              - send: DATA
                expect: 354
              - data: "Subject: ü\\n\\nGrüße\\n"
            """
        ),
        "s.yaml",
    )
    assert scenario.steps[2].text == "MAIL FROM:<ü@exämple.test> SMTPUTF8"
    assert scenario.steps[5].text == "Subject: ü\nGrüße\n".replace("\n", "\n\n", 1)


# -- on the wire: what the servers received -------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
SMTPUTF8_SCENARIO = ROOT / "scenarios" / "smtputf8.yaml"


def lf_form(text: str) -> bytes:
    """A message's text as Postfix's recording transport stores it: UTF-8, LF line ends."""
    return text.encode("utf-8").replace(b"\r\n", b"\n")


def without_received(delivered: bytes) -> bytes:
    """``delivered`` without the ``Received:`` header Postfix put on top (folded lines too)."""
    assert delivered.startswith(b"Received: ")
    lines = delivered.split(b"\n")
    end = 1
    while lines[end][:1] in (b" ", b"\t"):
        end += 1
    return b"\n".join(lines[end:])


# A message whose every header Postfix's cleanup would otherwise add is there, so that what is
# stored is the message as sent (a line starting with "." is stuffed on the wire, and stored
# unstuffed).
_CONSTANT_UTF8_MESSAGE = (
    "From: Jörg <jörg@bücher.example.test>\n"
    "To: <{to}>\n"
    "Subject: Grüße — ✓ ここ\n"
    "Message-ID: <constant.utf8@smtpload.example.test>\n"
    "Date: Tue, 01 Dec 2026 12:00:00 +0000\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "Grüße aus Köln. Ελληνικά, 中文, emoji 📨.\n"
    ".a dot line with ü\n"
    "last line\n"
)


def _message_scenario(tmp_path: Path, mail_parameters: str, message: str) -> Path:
    indented = textwrap.indent(message, "      ")
    path = tmp_path / "message.yaml"
    path.write_text(
        "variables:\n"
        "  from: sender@example.test\n"
        "  to: recipient@example.test\n"
        "steps:\n"
        "  - greeting: 220\n"
        "  - send: EHLO clïent.example.test\n"
        "    expect: {code: 250, capabilities: [SMTPUTF8, 8BITMIME]}\n"
        f'  - send: "MAIL FROM:<{{from}}> {mail_parameters}"\n'
        "    expect: 250\n"
        '  - send: "RCPT TO:<{to}>"\n'
        "    expect: 250\n"
        "  - send: DATA\n"
        "    expect: 354\n"
        f"  - data: |\n{indented}"
        "    expect: 250\n"
        "  - send: QUIT\n"
        "    expect: 221\n",
        encoding="utf-8",
    )
    return path


def test_a_smtputf8_message_reaches_postfix_byte_exact(
    tmp_path: Path, postfix_record: RecordingPostfix
) -> None:
    sender = "jörg@bücher.example.test"
    recipient = f"ü-{uuid.uuid4().hex}@{postfix_record.domain}"
    path = _message_scenario(tmp_path, "SMTPUTF8 BODY=8BITMIME", _CONSTANT_UTF8_MESSAGE)
    target = f"{postfix_record.host}:{postfix_record.plain_port}"
    run = ["run", str(path), "--target", target, "--var", f"from={sender}"]
    result = smtpload(*run, "--var", f"to={recipient}", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result
    (delivered,) = postfix_record.wait_for(recipient)
    assert without_received(delivered) == lf_form(_CONSTANT_UTF8_MESSAGE.replace("{to}", recipient))
    assert f"for <{recipient}>".encode() in delivered.split(b"\n\n")[0].replace(b"\n\t", b" ")


def test_an_8bit_body_reaches_postfix_intact(
    tmp_path: Path, postfix_record: RecordingPostfix
) -> None:
    # BODY=8BITMIME alone: an ASCII envelope, 8-bit headers and body (RFC 6152).
    recipient = f"8bit-{uuid.uuid4().hex}@{postfix_record.domain}"
    message = _CONSTANT_UTF8_MESSAGE.replace("jörg@bücher.example.test", "joerg@example.test")
    path = _message_scenario(tmp_path, "BODY=8BITMIME", message)
    target = f"{postfix_record.host}:{postfix_record.plain_port}"
    result = smtpload(
        "run", str(path), "--target", target, "--var", f"to={recipient}", cwd=tmp_path
    )
    assert result.returncode == 0, result
    (delivered,) = postfix_record.wait_for(recipient)
    assert without_received(delivered) == lf_form(message.replace("{to}", recipient))


def test_the_bundled_smtputf8_scenario_reaches_postfix_as_written(
    tmp_path: Path, postfix_record: RecordingPostfix
) -> None:
    recipient = f"ünï-{uuid.uuid4().hex}@{postfix_record.domain}"
    target = f"{postfix_record.host}:{postfix_record.plain_port}"
    summary_path = tmp_path / "s.json"
    result = smtpload(
        "run",
        "smtputf8",
        "--target",
        target,
        "--var",
        f"to={recipient}",
        "--json",
        str(summary_path),
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result
    (delivered,) = postfix_record.wait_for(recipient)
    run_id = json.loads(summary_path.read_text())["run_id"]
    (message_step,) = [s for s in load_scenario(SMTPUTF8_SCENARIO).steps if s.kind is StepKind.DATA]
    assert message_step.text is not None
    _head, _, body = message_step.text.partition("\n\n")
    stored_head, _, stored_body = without_received(delivered).partition(b"\n\n")
    assert stored_body == lf_form(body)
    assert f"Subject: Grüße aus Köln — {run_id}.1\n".encode() in stored_head + b"\n"
    assert "From: Jörg Müller <jörg@bücher.example.test>\n".encode() in stored_head + b"\n"
    assert f"To: <{recipient}>\n".encode() in stored_head + b"\n"


def test_the_smtputf8_scenario_reaches_aiosmtpd_with_its_envelope_and_size(
    tmp_path: Path, aiosmtpd_utf8_server: RecordingPeer
) -> None:
    target = f"{aiosmtpd_utf8_server.host}:{aiosmtpd_utf8_server.port}"
    result = smtpload("run", "smtputf8", "--target", target, "--sessions", "3", cwd=tmp_path)
    assert result.returncode == 0, result
    messages = aiosmtpd_utf8_server.handler.messages
    assert len(messages) == 3
    (message_step,) = [s for s in load_scenario(SMTPUTF8_SCENARIO).steps if s.kind is StepKind.DATA]
    assert message_step.text is not None
    body = message_step.text.partition("\n\n")[2].encode("utf-8").replace(b"\n", b"\r\n")
    for message in messages:
        assert message.mail_from == "jörg@bücher.example.test"
        assert message.rcpt_tos == ("ünïcode-empfänger@example.test",)
        assert message.mail_options[:2] == ("SMTPUTF8", "BODY=8BITMIME")
        assert message.mail_options[2] == f"SIZE={len(message.content)}"
        assert message.content.endswith(b"\r\n\r\n" + body)
        assert "Subject: Grüße aus Köln — ".encode() in message.content


def test_utf8_reply_text_is_matched_and_captured_into_a_message(
    tmp_path: Path, aiosmtpd_utf8_server: RecordingPeer
) -> None:
    # The handler's refusal echoes the address (as Postfix's does): UTF-8 reply text, which an
    # expectation matches (`.` is one character, ü two octets) and a capture brings back.
    path = tmp_path / "reply.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            steps:
              - greeting: 220
              - send: EHLO client.example
                expect: 250
              - send: "MAIL FROM:<jörg@x.test> SMTPUTF8"
                expect: 250
              - send: "RCPT TO:<ü-x@reject.test>"
                expect: {code: 550, text: "<.-x@reject\\\\.test>: Recipient"}
                capture: "<(?P<refused>[^<>]+)>"
              - send: "RCPT TO:<ok@x.test>"
                expect: 250
              - send: DATA
                expect: 354
              - data: "X-Refused: {refused}\\n\\nü\\n"
              - send: QUIT
                expect: 221
            """
        ),
        encoding="utf-8",
    )
    target = f"{aiosmtpd_utf8_server.host}:{aiosmtpd_utf8_server.port}"
    result = smtpload("run", str(path), "--target", target, cwd=tmp_path)
    assert result.returncode == 0, result
    (message,) = aiosmtpd_utf8_server.handler.messages
    assert message.content == "X-Refused: ü-x@reject.test\r\n\r\nü\r\n".encode()


def test_a_utf8_transcript_imports_and_replays_with_its_envelope(
    tmp_path: Path, aiosmtpd_utf8_server: RecordingPeer
) -> None:
    transcript = tmp_path / "utf8.txt"
    transcript.write_text(
        "S: 220 mx.example.test ESMTP\n"
        "C: EHLO clïent.example\n"
        "S: 250-mx.example.test\n"
        "S: 250 SMTPUTF8\n"
        "C: MAIL FROM:<jörg@exämple.test> SMTPUTF8\n"
        "S: 250 2.1.0 Ok\n"
        "C: RCPT TO:<ü@example.test>\n"
        "S: 250 2.1.5 <ü@example.test> Ok\n"
        "C: DATA\n"
        "S: 354 End data with <CR><LF>.<CR><LF>\n"
        "C: Subject: grüße\n"
        "C: \n"
        "C: Grüße — ✓\n"
        "C: .\n"
        "S: 250 2.0.0 Ok: queued\n"
        "C: QUIT\n"
        "S: 221 2.0.0 Bye\n",
        encoding="utf-8",
    )
    imported = smtpload("import", str(transcript), "-o", "utf8.yaml", cwd=tmp_path)
    assert imported.returncode == 0, imported
    assert 'send: "MAIL FROM:<jörg@exämple.test> SMTPUTF8"' in (tmp_path / "utf8.yaml").read_text(
        encoding="utf-8"
    )
    target = f"{aiosmtpd_utf8_server.host}:{aiosmtpd_utf8_server.port}"
    replayed = smtpload("replay", str(transcript), "--target", target, cwd=tmp_path)
    assert replayed.returncode == 0, replayed
    assert "=> passed" in replayed.stdout
    (message,) = aiosmtpd_utf8_server.handler.messages
    assert (message.mail_from, message.rcpt_tos) == ("jörg@exämple.test", ("ü@example.test",))
    assert message.content == "Subject: grüße\r\n\r\nGrüße — ✓\r\n".encode()


# -- the examples -----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["dsn", "smtputf8"])
def test_the_examples_validate_and_pass_against_the_built_in_sink(
    tmp_path: Path, scenario: str
) -> None:
    assert smtpload("validate", scenario, cwd=tmp_path).returncode == 0
    result = smtpload("run", scenario, "--sessions", "5", "--concurrency", "5", cwd=tmp_path)
    assert result.returncode == 0, result


def test_the_dsn_example_passes_against_postfix(tmp_path: Path, postfix_server: SmtpPeer) -> None:
    target = f"{postfix_server.host}:{postfix_server.port}"
    result = smtpload("run", "dsn", "--target", target, "--sessions", "3", cwd=tmp_path)
    assert result.returncode == 0, result


def test_a_load_run_of_the_smtputf8_example_passes_against_postfix(
    tmp_path: Path, postfix_server: SmtpPeer
) -> None:
    # The default recipient is discarded by the test Postfix (only record.test is stored).
    target = f"{postfix_server.host}:{postfix_server.port}"
    summary_path = tmp_path / "s.json"
    result = smtpload(
        "run",
        "smtputf8",
        "--target",
        target,
        "--sessions",
        "300",
        "--concurrency",
        "20",
        "--json",
        str(summary_path),
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result
    sessions = json.loads(summary_path.read_text())["sessions"]
    assert (sessions["started"], sessions["passed"], sessions["failed"]) == (300, 300, 0)


# -- a captured value cannot break a command line either ----------------------------------------


async def test_a_captured_carriage_return_is_a_protocol_error_not_a_second_command(
    nursery: trio.Nursery,
) -> None:
    received: list[bytes] = []
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, carriage_return_in_greeting(received), 0, host=LOOPBACK)
    )
    port = listeners[0].socket.getsockname()[1]
    scenario = compile_scenario(
        parse_scenario(
            textwrap.dedent(
                """\
                steps:
                  - greeting: 220
                    capture: "id=(?P<id>[^ ]+)"
                  - send: "NOOP {id}"
                    expect: 250
                  - send: QUIT
                    expect: 221
                """
            ),
            "cr.yaml",
        ),
        timeout_s=5,
    )
    stats = RunStats(["connect", *scenario.step_names])
    settings = RunSettings(sessions=1, concurrency=1, run_id="cr", handle_signals=False)
    with trio.fail_after(30):
        await run_sessions(scenario, await resolve_target(LOOPBACK, port), settings, stats)
    (failure,) = stats.failures
    assert (failure.outcome, failure.step) == (Outcome.PROTOCOL_ERROR, "noop")
    assert failure.got == (
        "a value captured from a reply would break this command line (CR, LF or NUL):"
        " NOOP abc\\rRSET"
    )
    # Nothing was sent after the greeting (a protocol error ends the session without QUIT).
    assert received == []
