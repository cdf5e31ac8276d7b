"""LMTP (RFC 2033) and unix-socket targets, against real servers: Dovecot's LMTP (over TCP and
its unix socket, delivering to maildirs), aiosmtpd's LMTP mode, and aiosmtpd's SMTP server on a
unix socket. Plus the scenario rules (LHLO only, expect_each) and the sans-IO bookkeeping."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from smtpload.api import run as api_run
from smtpload.protocol.lmtp import Recipients, transaction_recipients
from tests.cli import smtpload
from tests.conftest import UnixPeer
from tests.peers import FULL_DOMAIN, DovecotLmtp, RecordingPeer

# Two mailboxes and, between them, one recipient Dovecot does not know (refused at RCPT).
DOVECOT_SCENARIO = """\
protocol: lmtp
variables:
  marker: unset
steps:
  - greeting: 220
  - send: LHLO client.example
    expect: 250
  - send: MAIL FROM:<sender@example.test>
    expect: 250
  - send: RCPT TO:<mailbox1@lmtp.test>
    expect: 250
  - send: RCPT TO:<nobody@lmtp.test>
    expect: {{code: 550, enhanced: 5.1.1}}
  - send: RCPT TO:<mailbox2@lmtp.test>
    expect: 250
  - send: DATA
    expect: 354
  - data: |
      Subject: lmtp test {{marker}}

      body of {{marker}}, session {{session}}
    expect_each:
      rcpt: {{code: 250, text: "<mailbox1@lmtp.test>"}}
      "rcpt#3": {mailbox2}
  - send: QUIT
    expect: 221
"""


def run(
    tmp_path: Path, scenario: str, target: str, *args: str, timeout_s: float = 60
) -> tuple[int, dict[str, Any]]:
    """Run scenario text against ``target``: the exit status and summary.json."""
    path = tmp_path / "lmtp.yaml"
    path.write_text(scenario, encoding="utf-8")
    summary_path = tmp_path / "summary.json"
    result = smtpload(
        "run", str(path), "--target", target, "--json", str(summary_path), "--quiet", *args,
        cwd=tmp_path, timeout_s=timeout_s,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    summary: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
    return result.returncode, summary


def step(summary: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [s for s in summary["steps"] if s["name"] == name]
    assert isinstance(found, dict)
    return found


def names(summary: dict[str, Any]) -> list[str]:
    return [s["name"] for s in summary["steps"]]


def failures_log(tmp_path: Path) -> str:
    (run_dir,) = (tmp_path / "results").iterdir()
    return (run_dir / "failures.log").read_text(encoding="utf-8")


def dovecot_targets(peer: DovecotLmtp) -> dict[str, str]:
    return {"tcp": f"{peer.host}:{peer.port}", "unix": f"unix:{peer.socket_path}"}


# --- Dovecot's LMTP --------------------------------------------------------------------------


@pytest.mark.parametrize("over", ["tcp", "unix"])
def test_dovecot_delivers_to_both_mailboxes_and_each_reply_is_judged(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp, over: str
) -> None:
    marker = f"lmtp-{over}-{secrets.token_hex(6)}"
    scenario = DOVECOT_SCENARIO.format(mailbox2='{code: 250, text: "<mailbox2@lmtp.test>"}')
    code, summary = run(
        tmp_path, scenario, dovecot_targets(dovecot_lmtp)[over], "--var", f"marker={marker}"
    )
    assert code == 0, summary["sessions"]
    assert summary["sessions"]["passed"] == 1
    # The refused recipient has no reply after the message: two replies, not three.
    assert names(summary)[names(summary).index("message") :][:4] == [
        "message",
        "message/rcpt",
        "message/rcpt#2",
        "message/rcpt#3",
    ]
    assert step(summary, "message/rcpt")["count"] == 1
    assert step(summary, "message/rcpt#2")["count"] == 0
    assert step(summary, "message/rcpt#3")["count"] == 1
    assert step(summary, "message")["count"] == 1
    # The message step runs to the last recipient's reply: never shorter than a part.
    message_ms = step(summary, "message")["latency_ms"]["max"]
    assert message_ms >= step(summary, "message/rcpt")["latency_ms"]["max"]
    assert summary["throughput"]["messages"] == 1
    for mailbox in dovecot_lmtp.mailboxes:
        (delivered,) = dovecot_lmtp.delivered(mailbox, marker.encode())
        assert f"Subject: lmtp test {marker}".encode() in delivered
        assert f"body of {marker}, session 1".encode() in delivered
    # Unix stream sockets carry no kernel receive times (client.py's probe note): loop.
    expected_clock = "loop" if over == "unix" else "kernel"
    assert {s["clock"] for s in summary["steps"] if s["name"] != "connect"} == {expected_clock}


def test_a_recipient_reply_other_than_expect_each_fails_exactly_that_part(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp
) -> None:
    marker = f"lmtp-fail-{secrets.token_hex(6)}"
    scenario = DOVECOT_SCENARIO.format(mailbox2="{code: 452, enhanced: 4.2.2}")
    code, summary = run(
        tmp_path, scenario, f"unix:{dovecot_lmtp.socket_path}", "--var", f"marker={marker}"
    )
    assert code == 1
    assert summary["sessions"]["failures"]["unexpected_reply"] == 1
    failed = {s["name"] for s in summary["steps"] if s["failed"]}
    assert failed == {"message/rcpt#3"}
    assert step(summary, "message/rcpt")["count"] == 1
    log = failures_log(tmp_path)
    assert "message/rcpt#3" in log
    assert "452" in log  # what was expected
    # Both replies were read, and then the polite QUIT got its 221: the dialogue stayed in step.
    assert log.count("S: 250 2.0.0 <mailbox") == 2
    assert "221" in log
    # Dovecot delivered anyway: accepted for at least one recipient counts.
    assert summary["throughput"]["messages"] == 1


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_load_over_dovecot_unix_socket_all_pass_and_counts_add_up(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp
) -> None:
    sessions = 300
    marker = f"lmtp-load-{secrets.token_hex(6)}"
    scenario = DOVECOT_SCENARIO.format(mailbox2="250")
    code, summary = run(
        tmp_path, scenario, f"unix:{dovecot_lmtp.socket_path}", "--var", f"marker={marker}",
        "--sessions", str(sessions), "--concurrency", "15", timeout_s=120,
    )  # fmt: skip
    assert code == 0, summary["sessions"]
    assert summary["sessions"]["passed"] == sessions
    assert step(summary, "message/rcpt")["count"] == sessions
    assert step(summary, "message/rcpt#3")["count"] == sessions
    assert step(summary, "message/rcpt#2")["count"] == 0
    assert step(summary, "message")["count"] == sessions
    assert summary["throughput"]["messages"] == sessions
    for mailbox in dovecot_lmtp.mailboxes:
        assert len(dovecot_lmtp.delivered(mailbox, marker.encode())) == sessions


# --- aiosmtpd's LMTP mode --------------------------------------------------------------------

AIOSMTPD_SCENARIO = f"""\
protocol: lmtp
steps:
  - greeting: 220
  - send: LHLO client.example
    expect: 250
  - send: MAIL FROM:<sender@example.test>
    expect: 250
  - send: RCPT TO:<one@example.test>
    name: one
    expect: 250
  - send: RCPT TO:<two@{FULL_DOMAIN}>
    name: two
    expect: 250
  - send: RCPT TO:<three@example.test>
    name: three
    expect: 250
  - send: DATA
    expect: 354
  - data: "Subject: aiosmtpd lmtp\\n\\nhello\\n"
    name: deliver
    expect: {{code: 250, enhanced: 2.0.0}}
    expect_each: {{two: {{code: 452, enhanced: 4.2.2}}}}
  - send: QUIT
    expect: 221
"""


def test_aiosmtpd_lmtp_per_recipient_replies(
    tmp_path: Path, aiosmtpd_lmtp_server: RecordingPeer
) -> None:
    peer = aiosmtpd_lmtp_server
    code, summary = run(tmp_path, AIOSMTPD_SCENARIO, f"{peer.host}:{peer.port}")
    assert code == 0, summary
    # A user's step names give the parts' names; expect judged one and three, expect_each two.
    for part in ("deliver/one", "deliver/two", "deliver/three"):
        assert step(summary, part)["count"] == 1
        assert step(summary, part)["failed"] == 0
    (message,) = peer.handler.messages
    assert message.rcpt_tos == ("one@example.test", f"two@{FULL_DOMAIN}", "three@example.test")


def test_aiosmtpd_lmtp_expect_judges_every_recipient_without_expect_each(
    tmp_path: Path, aiosmtpd_lmtp_server: RecordingPeer
) -> None:
    peer = aiosmtpd_lmtp_server
    scenario = AIOSMTPD_SCENARIO.replace(
        "    expect_each: {two: {code: 452, enhanced: 4.2.2}}\n", ""
    )
    code, summary = run(tmp_path, scenario, f"{peer.host}:{peer.port}")
    assert code == 1
    assert {s["name"] for s in summary["steps"] if s["failed"]} == {"deliver/two"}
    assert step(summary, "deliver/three")["count"] == 1  # read after the failing one


# --- SMTP over a unix socket -----------------------------------------------------------------

SMTP_SCENARIO = """\
steps:
  - greeting: 220
  - send: EHLO client.example
    expect: 250
  - send: MAIL FROM:<sender@example.test>
    expect: 250
  - send: RCPT TO:<rcpt@example.test>
    expect: 250
  - send: DATA
    expect: 354
  - data: "Subject: over a unix socket\\n\\nhello\\n"
  - send: QUIT
    expect: 221
"""


def test_smtp_over_a_unix_socket(tmp_path: Path, aiosmtpd_unix_server: UnixPeer) -> None:
    peer = aiosmtpd_unix_server
    code, summary = run(tmp_path, SMTP_SCENARIO, f"unix:{peer.unix_path}", "--sessions", "3")
    assert code == 0, summary
    assert summary["target"] == f"unix:{peer.unix_path}"
    assert summary["sessions"]["passed"] == 3
    assert len(peer.handler.messages) == 3
    assert b"Subject: over a unix socket" in peer.handler.messages[0].content
    # No kernel receive times on unix sockets: every step says it was timed by the loop.
    assert {s["clock"] for s in summary["steps"]} == {"loop"}


def test_a_scenario_unix_target_is_relative_to_its_folder(
    tmp_path: Path, aiosmtpd_unix_server: UnixPeer
) -> None:
    peer = aiosmtpd_unix_server
    folder = peer.unix_path.parent
    (folder / "relative.yaml").write_text(
        f"target: unix:{peer.unix_path.name}\n" + SMTP_SCENARIO, encoding="utf-8"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = smtpload("run", str(folder / "relative.yaml"), "--quiet", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert len(peer.handler.messages) == 1


def test_a_missing_socket_file_is_a_connect_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.sock"
    code, summary = run(tmp_path, SMTP_SCENARIO, f"unix:{missing}", "--sessions", "2")
    assert code == 1
    assert summary["sessions"]["failures"]["connect_error"] == 2
    log = failures_log(tmp_path)
    assert "No such file or directory (ENOENT)" in log
    assert f"unix:{missing}" in log


def padded_path(folder: Path, length: int) -> str:
    """A path in ``folder`` of exactly ``length`` bytes."""
    start = f"{folder}/"
    return start + "s" * (length - len(start))


@pytest.mark.parametrize("length", [108, 109, 4096])
def test_a_unix_path_longer_than_sun_path_is_a_usage_error(tmp_path: Path, length: int) -> None:
    # sun_path holds 107 bytes and the NUL: a longer path cannot be connected to at all, so
    # it is one error before the run (exit 2), not a connect_error in every session.
    path = tmp_path / "smtp.yaml"
    path.write_text(SMTP_SCENARIO, encoding="utf-8")
    target = f"unix:{padded_path(tmp_path, length)}"
    done = smtpload("run", str(path), "--target", target, "--sessions", "2", cwd=tmp_path)
    assert done.returncode == 2, done.stderr + done.stdout
    assert "at most 107" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


def test_a_scenario_unix_target_too_long_is_located(tmp_path: Path) -> None:
    # Relative to the scenario's folder: the joined path is what must fit.
    relative = "r" * (108 - len(f"{tmp_path}/"))
    path = tmp_path / "smtp.yaml"
    path.write_text(f"target: unix:{relative}\n" + SMTP_SCENARIO, encoding="utf-8")
    for command in ("validate", "run"):
        done = smtpload(command, str(path), cwd=tmp_path)
        assert done.returncode == 2, done.stderr + done.stdout
        assert f"{path}:1:9: bad target" in done.stderr
        assert "at most 107" in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("target", "where", "expected"),
    [
        ('"smtps://unix:/run/x.sock"', "1:9", "a unix socket is written unix:/path/to/socket"),
        ("{host: unix:/run/x.sock, port: 25}", "1:16", "a unix socket is no host"),
    ],
    ids=["scheme", "host-key"],
)
def test_a_unix_socket_written_as_a_host_is_located(
    tmp_path: Path, target: str, where: str, expected: str
) -> None:
    # Either would be looked up as a host name ("" or "unix:/...") and fail every session.
    path = tmp_path / "smtp.yaml"
    path.write_text(f"target: {target}\n" + SMTP_SCENARIO, encoding="utf-8")
    done = smtpload("validate", str(path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr + done.stdout
    assert f"{path}:{where}: " in done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_a_unix_path_of_107_bytes_is_connected_to(tmp_path: Path) -> None:
    # The longest path that fits: tried (here: no such socket), not refused.
    missing = padded_path(tmp_path, 107)
    code, summary = run(tmp_path, SMTP_SCENARIO, f"unix:{missing}", "--sessions", "2")
    assert code == 1
    assert summary["sessions"]["failures"]["connect_error"] == 2
    assert "No such file or directory (ENOENT)" in failures_log(tmp_path)


def test_source_addresses_are_refused_for_a_unix_target(tmp_path: Path) -> None:
    # A unix socket has no source address: --source cannot apply, and binding an IPv4
    # address to it would fail every session instead of saying why once.
    path = tmp_path / "smtp.yaml"
    path.write_text(SMTP_SCENARIO, encoding="utf-8")
    target = f"unix:{tmp_path / 'any.sock'}"
    done = smtpload("run", str(path), "--target", target, "--source", "127.0.0.2", cwd=tmp_path)
    assert done.returncode == 2, done.stderr + done.stdout
    assert "is a unix socket" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("proxy_key", "option", "missing"),
    [
        ("", ["--proxy", "v1"], "source, source_port, destination, destination_port"),
        ("", ["--proxy", "v2"], "source, source_port, destination, destination_port"),
        ("proxy: {version: 2}\n", [], "source, source_port, destination, destination_port"),
        ("proxy: {source: 192.0.2.7, source_port: 4000}\n", [], "destination, destination_port"),
        ("proxy: {destination: 192.0.2.1}\n", ["--proxy", "v2"], "source, source_port,"),
    ],
    ids=["--proxy-v1", "--proxy-v2", "key-without-addresses", "no-destination", "no-source"],
)
def test_a_proxy_header_needing_the_connections_addresses_is_refused_for_a_unix_target(
    tmp_path: Path, proxy_key: str, option: list[str], missing: str
) -> None:
    # A unix socket has no addresses to put in the header: one usage error before the run,
    # naming what is missing, not a protocol_error in every session.
    path = tmp_path / "smtp.yaml"
    path.write_text(proxy_key + SMTP_SCENARIO, encoding="utf-8")
    target = f"unix:{tmp_path / 'any.sock'}"
    done = smtpload("run", str(path), "--target", target, "--sessions", "3", *option, cwd=tmp_path)
    assert done.returncode == 2, done.stderr + done.stdout
    assert "is a unix socket" in done.stderr
    assert missing in done.stderr
    assert "Traceback" not in done.stderr


def test_a_proxy_header_with_every_address_given_goes_over_a_unix_socket(
    tmp_path: Path, aiosmtpd_unix_server: UnixPeer
) -> None:
    # Nothing is taken from the connection, so the header is sent; aiosmtpd (not a PROXY
    # receiver) answers it 500 as a bad command: every session fails, and is counted.
    key = (
        "proxy: {source: 192.0.2.7, source_port: 4000, destination: 192.0.2.1,"
        " destination_port: 25}\n"
    )
    target = f"unix:{aiosmtpd_unix_server.unix_path}"
    code, summary = run(tmp_path, key + SMTP_SCENARIO, target, "--sessions", "3")
    assert code == 1
    assert summary["sessions"]["started"] == 3
    assert summary["sessions"]["failed"] == 3
    assert "PROXY header not sent" not in failures_log(tmp_path)


# --- the scenario's rules --------------------------------------------------------------------

LMTP_HEAD = """\
protocol: lmtp
steps:
  - greeting: 220
"""
TRANSACTION = """\
  - send: MAIL FROM:<a@example.test>
    expect: 250
  - send: RCPT TO:<b@example.test>
    expect: 250
  - send: DATA
    expect: 354
"""


@pytest.mark.parametrize("hello", ["HELO", "EHLO", "ehlo"])
def test_helo_and_ehlo_are_refused_in_lmtp_at_their_step(tmp_path: Path, hello: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(LMTP_HEAD + f"  - send: {hello} client.example\n", encoding="utf-8")
    result = smtpload("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:4:5: an LMTP scenario says LHLO, not {hello.upper()}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("head", "entry", "where", "message"),
    [
        (LMTP_HEAD, "mail: 250", "11:19", "'mail' is not the name of an RCPT step"),
        (LMTP_HEAD, "nobody: 250", "11:19", "'nobody' is not the name of an RCPT step"),
        ("steps:\n  - greeting: 220\n", "rcpt: 250", "10:5", "expect_each is for LMTP"),
        (LMTP_HEAD, "rcpt: 999", "11:25", "expect_each: rcpt"),
    ],
)
def test_expect_each_errors_are_located(
    tmp_path: Path, head: str, entry: str, where: str, message: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        head + TRANSACTION + f"  - data: hi\n    expect_each: {{{entry}}}\n", encoding="utf-8"
    )
    result = smtpload("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert f"{path}:{where}: " in result.stderr, result.stderr
    assert message in result.stderr


def test_expect_each_on_a_send_step_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(LMTP_HEAD + "  - send: NOOP\n    expect_each: {x: 250}\n", encoding="utf-8")
    result = smtpload("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:5:5: expect_each belongs on the data or bdat step" in result.stderr


@pytest.mark.parametrize("name", ["a/b", "/", "message/rcpt"])
def test_a_step_name_may_not_contain_a_slash(tmp_path: Path, name: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f'steps:\n  - greeting: 220\n    name: "{name}"\n', encoding="utf-8")
    result = smtpload("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:3:11: step name '{name}' must not contain '/'" in result.stderr


# --- the sans-IO bookkeeping -----------------------------------------------------------------


def test_recipients_keep_accepted_rcpts_of_the_current_transaction_in_order() -> None:
    recipients = Recipients()
    for verb, name, code in [
        ("MAIL", "mail", 250),
        ("RCPT", "stale", 250),
        ("RSET", "rset", 250),  # drops the transaction
        ("MAIL", "mail#2", 250),
        ("RCPT", "a", 250),
        ("RCPT", "refused", 550),
        ("RCPT", "b", 251),  # 2xx: accepted (RFC 5321 §3.4)
        ("RCPT", "busy", 452),
        ("NOOP", "noop", 250),
    ]:
        recipients.on_reply(verb, name, code)
    assert recipients.replies_due() == ("a", "b")
    recipients.message_done()
    assert recipients.replies_due() == ()


def test_transaction_recipients_are_the_rcpts_since_the_last_mail_or_rset() -> None:
    steps = [
        ("mail", "MAIL", False),
        ("r1", "RCPT", False),
        ("message", "", True),
        ("mail#2", "MAIL", False),
        ("r2", "RCPT", False),
        ("rset", "RSET", False),
        ("mail#3", "MAIL", False),
        ("r3", "RCPT", False),
        ("r4", "RCPT", False),
        ("message#2", "", True),
    ]
    assert transaction_recipients(steps) == {"message": ("r1",), "message#2": ("r3", "r4")}


# --- import and observe mode -----------------------------------------------------------------

LMTP_TRANSCRIPT = """\
S: 220 vm Dovecot (Debian) ready.
C: LHLO client.example
S: 250-vm
S: 250 PIPELINING
C: MAIL FROM:<sender@example.test>
S: 250 2.1.0 OK
C: RCPT TO:<mailbox1@lmtp.test>
S: 250 2.1.5 OK
C: DATA
S: 354 OK
C: Subject: imported
C:
C: hello
C: .
S: 250 2.0.0 <mailbox1@lmtp.test> Saved
C: QUIT
S: 221 2.0.0 Bye
"""


def test_an_imported_lhlo_dialogue_is_an_lmtp_scenario_that_runs(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp
) -> None:
    (tmp_path / "lmtp.txt").write_text(LMTP_TRANSCRIPT, encoding="utf-8")
    result = smtpload("import", "lmtp.txt", "-o", "imported.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    imported = (tmp_path / "imported.yaml").read_text(encoding="utf-8")
    assert "\nprotocol: lmtp\n" in imported
    code, summary = run(tmp_path, imported, f"unix:{dovecot_lmtp.socket_path}")
    assert code == 0, summary["sessions"]
    assert step(summary, "message/rcpt")["count"] == 1


def test_a_baseline_keeps_each_recipients_reply(tmp_path: Path, dovecot_lmtp: DovecotLmtp) -> None:
    path = tmp_path / "lmtp.yaml"
    path.write_text(DOVECOT_SCENARIO.format(mailbox2="250"), encoding="utf-8")
    target = f"{dovecot_lmtp.host}:{dovecot_lmtp.port}"
    result = smtpload(
        "record", str(path), "-o", "base.json", "--target", target, "--sessions", "2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    baseline = json.loads((tmp_path / "base.json").read_text(encoding="utf-8"))
    by_name = {s["name"]: s for s in baseline["steps"]}
    assert by_name["message/rcpt"]["codes"] == {"250": 2}
    assert by_name["message/rcpt#3"]["codes"] == {"250": 2}
    assert by_name["message/rcpt#2"]["sessions"] == 0  # refused at RCPT: no reply to keep
    compared = smtpload(
        "compare", str(path), "--baseline", "base.json", "--target",
        f"unix:{dovecot_lmtp.socket_path}", "--sessions", "2", cwd=tmp_path,
    )  # fmt: skip
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "0 regressed" in compared.stdout or "no differences" in compared.stdout


def test_dovecots_session_ids_are_no_text_change_in_compare(
    tmp_path: Path, dovecot_lmtp: DovecotLmtp
) -> None:
    # Each reply after the message carries Dovecot's session id, base64 with "+" and "/"
    # ("250 2.0.0 <mailbox1@lmtp.test> yJczDcYeD2thZwAAg+zDdQ Saved"): volatile, as Postfix's
    # queue ids are. 20 sessions a side: ids with "+" or "/" where the others have none.
    path = tmp_path / "lmtp.yaml"
    path.write_text(DOVECOT_SCENARIO.format(mailbox2="250"), encoding="utf-8")
    target = f"unix:{dovecot_lmtp.socket_path}"
    for command in ("record", "compare"):
        output = ("-o", "base.json") if command == "record" else ("--baseline", "base.json")
        result = smtpload(
            command, str(path), *output, "--target", target, "--sessions", "20", cwd=tmp_path
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert "no differences" in result.stdout, result.stdout


def test_the_api_takes_a_unix_target(tmp_path: Path, dovecot_lmtp: DovecotLmtp) -> None:
    path = tmp_path / "lmtp.yaml"
    path.write_text(DOVECOT_SCENARIO.format(mailbox2="250"), encoding="utf-8")
    result = api_run(path, target=f"unix:{dovecot_lmtp.socket_path}", sessions=2)
    assert result.summary["target"] == f"unix:{dovecot_lmtp.socket_path}"
    assert result.summary["sessions"]["passed"] == 2
    assert step(dict(result.summary), "message/rcpt#3")["count"] == 2


def test_the_sink_refuses_a_unix_listen_address(tmp_path: Path) -> None:
    # parse_target takes unix: now; the sink must not read it as host "" (every address).
    result = smtpload("sink", "--listen", f"unix:{tmp_path / 's.sock'}", cwd=tmp_path, timeout_s=30)
    assert result.returncode == 2
    assert "the sink listens on HOST:PORT" in result.stderr
