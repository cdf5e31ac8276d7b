"""BDAT in LMTP (RFC 2033 §4.3 with RFC 3030): the LAST chunk gets one reply per recipient
accepted at RCPT, each chunk before it one reply, as in SMTP. Against Dovecot's LMTP (which
advertises CHUNKING in its LHLO reply), plus the sans-IO engine's side of it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.wire import Reply, ReplyParser
from smtpload.scenario.loader import parse_scenario
from tests.cli import smtpload
from tests.peers import DovecotLmtp
from tests.test_lmtp import failures_log, names, run, step

# The same transaction as test_lmtp's DOVECOT_SCENARIO (two mailboxes, an unknown user between
# them), the message as BDAT chunks: a line starting with "." goes unstuffed (RFC 3030 §2).
BDAT_SCENARIO = """\
protocol: lmtp
variables:
  marker: unset
steps:
  - greeting: 220
  - send: LHLO client.example
    expect: {{code: 250, capabilities: [CHUNKING]}}
  - send: MAIL FROM:<sender@example.test>
    expect: 250
  - send: RCPT TO:<mailbox1@lmtp.test>
    expect: 250
  - send: RCPT TO:<nobody@lmtp.test>
    expect: {{code: 550, enhanced: 5.1.1}}
  - send: RCPT TO:<mailbox2@lmtp.test>
    expect: 250
  - bdat:
      message: |
        Subject: lmtp bdat {{marker}}

        body of {{marker}}, session {{session}}
        .a line that starts with a dot
        the last line
      {chunking}
    expect_chunk: 250
    expect_each:
      rcpt: {{code: 250, text: "<mailbox1@lmtp.test>"}}
      "rcpt#3": {mailbox2}
  - send: QUIT
    expect: 221
"""

CHUNKINGS = {"chunk_size": "chunk_size: 16", "last_empty": "last: empty", "one": "{}"}


def scenario_text(mailbox2: str, chunking: str = "chunk_size: 16") -> str:
    return BDAT_SCENARIO.format(mailbox2=mailbox2, chunking=chunking).replace("      {}\n", "")


def rcpt_rows(summary: dict[str, Any]) -> list[str]:
    return [name for name in names(summary) if name.startswith("message")]


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_dovecot_gets_a_bdat_message_and_each_recipient_reply_is_judged(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp, chunking: str
) -> None:
    marker = f"lmtp-bdat-{chunking}-{secrets.token_hex(6)}"
    text = scenario_text('{code: 250, text: "<mailbox2@lmtp.test>"}', CHUNKINGS[chunking])
    code, summary = run(
        tmp_path, text, f"unix:{dovecot_lmtp.socket_path}", "--var", f"marker={marker}"
    )
    assert code == 0, summary["sessions"]
    assert summary["sessions"]["passed"] == 1
    several = chunking != "one"
    # NAME/chunk, NAME, then the per-recipient rows; the refused recipient has no reply.
    chunk_row = ["message/chunk"] if several else []
    assert rcpt_rows(summary) == [
        *chunk_row, "message", "message/rcpt", "message/rcpt#2", "message/rcpt#3",
    ]  # fmt: skip
    if several:
        assert step(summary, "message/chunk")["count"] >= 1
    assert step(summary, "message")["count"] == 1
    assert step(summary, "message/rcpt")["count"] == 1
    assert step(summary, "message/rcpt#2")["count"] == 0
    assert step(summary, "message/rcpt#3")["count"] == 1
    assert not [s["name"] for s in summary["steps"] if s["failed"]]
    assert summary["throughput"]["messages"] == 1
    body = (
        f"Subject: lmtp bdat {marker}\n\nbody of {marker}, session 1\n"
        ".a line that starts with a dot\nthe last line\n"
    ).encode()
    for mailbox in dovecot_lmtp.mailboxes:
        (delivered,) = dovecot_lmtp.delivered(mailbox, marker.encode())
        # Dovecot adds its headers on top; the message itself arrives whole, unstuffed.
        assert delivered.replace(b"\r\n", b"\n").endswith(body), delivered


def test_a_wrong_expect_each_after_bdat_fails_exactly_that_part(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp
) -> None:
    marker = f"lmtp-bdat-fail-{secrets.token_hex(6)}"
    text = scenario_text("{code: 452, enhanced: 4.2.2}")
    code, summary = run(
        tmp_path, text, f"unix:{dovecot_lmtp.socket_path}", "--var", f"marker={marker}"
    )
    assert code == 1
    assert summary["sessions"]["failures"]["unexpected_reply"] == 1
    assert {s["name"] for s in summary["steps"] if s["failed"]} == {"message/rcpt#3"}
    assert step(summary, "message/rcpt")["count"] == 1
    assert step(summary, "message")["count"] == 1
    log = failures_log(tmp_path)
    assert "message/rcpt#3" in log
    # Both replies were read, then the polite QUIT got its 221: the dialogue stayed in step.
    assert log.count("S: 250 2.0.0 <mailbox") == 2
    assert "S: 221" in log
    assert summary["throughput"]["messages"] == 1


def test_a_refused_chunk_in_lmtp_fails_at_name_chunk_with_a_polite_quit(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp
) -> None:
    # Dovecot accepts the chunk (250); expecting 451 makes it a refusal by our rules.
    text = scenario_text("250").replace("expect_chunk: 250", "expect_chunk: 451")
    code, summary = run(tmp_path, text, f"unix:{dovecot_lmtp.socket_path}")
    assert code == 1
    assert summary["sessions"]["failures"]["unexpected_reply"] == 1
    assert {s["name"] for s in summary["steps"] if s["failed"]} == {"message/chunk"}
    assert step(summary, "message")["count"] == 0
    assert step(summary, "message/rcpt")["count"] == 0
    log = failures_log(tmp_path)
    assert "C: QUIT" in log
    assert "S: 221" in log


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_load_with_bdat_over_dovecot_unix_socket_all_pass_and_counts_add_up(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp
) -> None:
    sessions = 200
    marker = f"lmtp-bdat-load-{secrets.token_hex(6)}"
    code, summary = run(
        tmp_path, scenario_text("250"), f"unix:{dovecot_lmtp.socket_path}",
        "--var", f"marker={marker}", "--sessions", str(sessions), "--concurrency", "10",
        timeout_s=120,
    )  # fmt: skip
    assert code == 0, summary["sessions"]
    assert summary["sessions"]["passed"] == sessions
    # The message is over 16 octets, so each session sent at least two chunks before LAST.
    assert step(summary, "message/chunk")["count"] >= 2 * sessions
    assert step(summary, "message")["count"] == sessions
    assert step(summary, "message/rcpt")["count"] == sessions
    assert step(summary, "message/rcpt#3")["count"] == sessions
    assert step(summary, "message/rcpt#2")["count"] == 0
    assert summary["throughput"]["messages"] == sessions
    for mailbox in dovecot_lmtp.mailboxes:
        assert len(dovecot_lmtp.delivered(mailbox, marker.encode())) == sessions


def test_a_baseline_of_bdat_in_lmtp_keeps_the_rows_and_compares_clean(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp
) -> None:
    path = tmp_path / "lmtp.yaml"
    path.write_text(scenario_text("250"), encoding="utf-8")
    target = f"unix:{dovecot_lmtp.socket_path}"
    result = smtpload(
        "record", str(path), "-o", "base.json", "--target", target, "--sessions", "3",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    baseline = json.loads((tmp_path / "base.json").read_text(encoding="utf-8"))
    by_name = {s["name"]: s for s in baseline["steps"]}
    listed = [s["name"] for s in baseline["steps"] if s["name"].startswith("message")]
    rows = ["message/chunk", "message", "message/rcpt", "message/rcpt#2", "message/rcpt#3"]
    assert listed == rows
    assert by_name["message/rcpt"]["codes"] == {"250": 3}
    assert by_name["message/rcpt#3"]["codes"] == {"250": 3}
    compared = smtpload(
        "compare", str(path), "--baseline", "base.json", "--target", target, "--sessions", "3",
        cwd=tmp_path,
    )  # fmt: skip
    assert compared.returncode == 0, compared.stdout + compared.stderr
    # Dovecot's session ids in the replies are volatile (protocol/volatile.py): no warning.
    assert "no differences" in compared.stdout, compared.stdout


# --- the sans-IO side --------------------------------------------------------------------------


def _reply(data: bytes) -> Reply:
    (parsed,) = ReplyParser().feed(data)
    return parsed


def test_only_the_last_chunk_has_per_recipient_replies_due() -> None:
    compiled = compile_scenario(parse_scenario(scenario_text("250"), "s.yaml"))
    engine = SessionEngine(compiled, 1, compiled.session_variables(1, "run"))
    ok = _reply(b"250 2.0.0 <mailbox1@lmtp.test> saved\r\n")
    seen: list[tuple[str, tuple[str, ...]]] = []
    while (current := engine.next_step()) is not None:
        engine.payload(current)
        due = engine.replies_due(current)
        seen.append((current.name, due))
        if due:
            for recipient in due:
                assert engine.on_recipient_reply(current, recipient, ok)
            assert engine.on_recipients_done(current)
        elif current.name == "rcpt#2":
            engine.on_reply(current, _reply(b"550 5.1.1 unknown\r\n"))
        elif current.kind.value == "greeting":
            engine.on_reply(current, _reply(b"220 hi\r\n"))
        elif current.name == "quit":
            engine.on_reply(current, _reply(b"221 bye\r\n"))
        else:  # LHLO (which must list CHUNKING), MAIL, the accepted RCPTs, the chunks
            engine.on_reply(current, _reply(b"250-x\r\n250 CHUNKING\r\n"))
    chunks = [due for name, due in seen if name == "message/chunk"]
    assert len(chunks) >= 2
    assert all(due == () for due in chunks)
    assert [due for name, due in seen if name == "message"] == [("rcpt", "rcpt#3")]
    assert engine.outcome.value == "passed"
    assert engine.messages_accepted == 1
