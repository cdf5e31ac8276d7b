"""PROXY headers and XCLIENT against real servers: what the server was told, and load runs.

Peers: Postfix on 10028 (``smtpd_upstream_proxy_protocol = haproxy``) and 10029
(``smtpd_authorized_xclient_hosts = 127.0.0.0/8``), whose recording transport keeps each
message to ``@record.test`` with its ``Received:`` header (the client address Postfix took);
Postfix on 10025, which expects neither; aiosmtpd with ``proxy_protocol_timeout``, whose
``handle_PROXY`` hook records each header as it parsed it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli import smtpload
from tests.peers import ProxiedConnection, ProxyRecordingHandler, RecordingPeer, RecordingPostfix

MESSAGE_STEPS = """\
  - send: EHLO client.example
    expect: 250
  - send: "MAIL FROM:<sender@example.test>"
    expect: 250
  - send: "RCPT TO:<{to}>"
    expect: 250
  - send: DATA
    expect: 354
  - data: "Subject: proxy test {session}\\n\\nhello\\n"
  - send: QUIT
    expect: 221
"""


def run(tmp_path: Path, scenario: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run the scenario text; return the exit status, summary.json and failures.log."""
    (tmp_path / "s.yaml").write_text(scenario)
    result = smtpload(
        "run", "s.yaml", *args, "--results", "r", "--json", "summary.json", "--quiet",
        cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    (failures,) = (tmp_path / "r").glob("*/failures.log")
    return result.returncode, summary, failures.read_text()


def recipient(tag: str) -> str:
    return f"x-{tag}-{uuid.uuid4().hex[:12]}-{{session}}@record.test"


def received(message: bytes) -> str:
    """The first Received: header of a delivered message, unfolded."""
    head = message.split(b"\n\n", 1)[0].decode()
    fields = head.replace("\n\t", " ").replace("\n ", " ").split("\n")
    return next(field for field in fields if field.startswith("Received:"))


# -- PROXY: Postfix 10028 ----------------------------------------------------------------------


V4_SOURCE = 'source: "198.51.100.{session}", source_port: "40{session}"'
V6_SOURCE = 'source: "2001:db8::{session}", destination: "::1"'


@pytest.mark.parametrize(
    ("proxy", "expected"),
    [
        ("{version: 1, " + V4_SOURCE + "}", "[198.51.100.{n}]"),
        ("{version: 2, " + V4_SOURCE + "}", "[198.51.100.{n}]"),
        ("{version: 1, " + V6_SOURCE + "}", "[2001:db8::{n}]"),
        ("{version: 2, " + V6_SOURCE + ", destination_port: 25}", "[2001:db8::{n}]"),
    ],
    ids=["v1-ipv4", "v2-ipv4", "v1-ipv6", "v2-ipv6"],
)
def test_postfix_takes_each_sessions_proxied_address(
    tmp_path: Path, postfix_record: RecordingPostfix, proxy: str, expected: str
) -> None:
    to = recipient("proxy")
    scenario = f'variables:\n  to: "{to}"\nproxy: {proxy}\nsteps:\n  - greeting: 220\n'
    # 10028 refuses TCP6 headers (Postfix's inet_protocols is ipv4 here); 10030 takes them.
    port = postfix_record.proxy6_port if "::" in proxy else postfix_record.proxy_port
    status, summary, failures = run(
        tmp_path,
        scenario + MESSAGE_STEPS,
        "--target",
        f"{postfix_record.host}:{port}",
        "--sessions",
        "3",
    )
    assert status == 0, failures
    assert summary["sessions"]["passed"] == 3
    for n in (1, 2, 3):
        (message,) = postfix_record.wait_for(to.format(session=n))
        header = received(message)
        # Postfix writes an IPv6 client as [IPv6:2001:db8::1] (RFC 5321 §4.1.3's form).
        shown = expected.format(n=n).replace("[2001:", "[IPv6:2001:")
        assert shown in header, header


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_a_load_run_through_proxy_v2_passes_every_session(
    tmp_path: Path, postfix_record: RecordingPostfix
) -> None:
    to = recipient("proxyload")
    scenario = (
        f'variables:\n  to: "{to}"\n'
        'proxy: {version: 2, source: "10.{session}.0.1", source_port: "{session}"}\n'
        "steps:\n  - greeting: 220\n" + MESSAGE_STEPS
    )
    # {session} goes past 255 in the address: 10.N.0.1 only holds 1..255, so 250 sessions.
    status, summary, failures = run(
        tmp_path,
        scenario,
        "--target",
        f"{postfix_record.host}:{postfix_record.proxy_port}",
        "--sessions",
        "250",
        "--concurrency",
        "20",
    )
    assert status == 0, failures[:2000]
    assert summary["sessions"]["started"] == summary["sessions"]["passed"] == 250
    (last,) = postfix_record.wait_for(to.format(session=250))
    assert "[10.250.0.1]" in received(last)


def test_a_bad_rendered_address_fails_that_session_only(
    tmp_path: Path, postfix_record: RecordingPostfix
) -> None:
    to = recipient("proxybad")
    scenario = (
        f'variables:\n  to: "{to}"\n'
        'proxy: {source: "198.51.100.{session}{session}{session}"}\n'
        "steps:\n  - greeting: 220\n" + MESSAGE_STEPS
    )
    status, summary, failures = run(
        tmp_path,
        scenario,
        "--target",
        f"{postfix_record.host}:{postfix_record.proxy_port}",
        "--sessions",
        "3",
    )
    assert status == 1
    # Sessions 1 and 2 are 198.51.100.111 and .222; session 3's .333 is no address.
    assert summary["sessions"]["passed"] == 2
    assert summary["sessions"]["failures"]["protocol_error"] == 1
    assert "PROXY header not sent: source '198.51.100.333' is not an IPv4 or IPv6" in failures
    assert "step: greeting" in failures or "greeting" in failures


def test_a_server_that_expects_no_proxy_header_fails_the_session(
    tmp_path: Path, postfix_server: Any
) -> None:
    # Postfix on 10025 greets at once, then reads the header as a command line: 500 5.5.2.
    scenario = "proxy: {version: 1, source: 198.51.100.7}\nsteps:\n  - greeting: 220\n"
    status, summary, failures = run(
        tmp_path,
        scenario + "  - send: EHLO client.example\n    expect: 250\n  - send: QUIT\n",
        "--target",
        f"{postfix_server.host}:{postfix_server.port}",
    )
    assert status == 1
    failed = {k: v for k, v in summary["sessions"]["failures"].items() if v}
    # The 500 is there before EHLO (reply before command), or answers it.
    assert failed in ({"protocol_error": 1}, {"unexpected_reply": 1}), failed
    assert "500 5.5.2" in failures
    assert "PROXY protocol v1 header: 198.51.100.7:" in failures


# -- PROXY: aiosmtpd ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_aiosmtpd_parses_the_header_sent(
    tmp_path: Path, aiosmtpd_proxy_server: RecordingPeer, version: int
) -> None:
    scenario = (
        'variables:\n  to: "rcpt{session}@example.test"\n'
        f"proxy: {{version: {version}, source: '198.51.100.{{session}}', source_port:"
        " '4{session}00', destination: 203.0.113.25, destination_port: 2525}\n"
        "steps:\n  - greeting: 220\n" + MESSAGE_STEPS
    )
    status, _summary, failures = run(
        tmp_path,
        scenario,
        "--target",
        f"{aiosmtpd_proxy_server.host}:{aiosmtpd_proxy_server.port}",
        "--sessions",
        "2",
    )
    assert status == 0, failures
    handler = aiosmtpd_proxy_server.handler
    assert isinstance(handler, ProxyRecordingHandler)
    assert sorted(handler.proxied, key=lambda c: c.source) == [
        ProxiedConnection(version, f"198.51.100.{n}", int(f"4{n}00"), "203.0.113.25", 2525)
        for n in (1, 2)
    ]
    assert len(handler.messages) == 2


def test_by_default_the_header_carries_the_connections_own_addresses(
    tmp_path: Path, aiosmtpd_proxy_server: RecordingPeer
) -> None:
    scenario = "proxy: {version: 2}\nsteps:\n  - greeting: 220\n  - send: QUIT\n    expect: 221\n"
    status, _summary, failures = run(
        tmp_path,
        scenario,
        "--target",
        f"{aiosmtpd_proxy_server.host}:{aiosmtpd_proxy_server.port}",
    )
    assert status == 0, failures
    handler = aiosmtpd_proxy_server.handler
    assert isinstance(handler, ProxyRecordingHandler)
    (connection,) = handler.proxied
    assert connection.source == "127.0.0.1"
    assert connection.source_port not in (None, 0)
    assert (connection.destination, connection.destination_port) == (
        "127.0.0.1",
        aiosmtpd_proxy_server.port,
    )


@pytest.mark.parametrize(
    ("key", "option", "version", "source"),
    [
        ("", "v1", 1, "127.0.0.1"),
        ("proxy: {version: 1, source: 198.51.100.9}\n", "v2", 2, "198.51.100.9"),
    ],
    ids=["no-key", "over-the-key"],
)
def test_the_proxy_option_sets_the_version(
    tmp_path: Path,
    aiosmtpd_proxy_server: RecordingPeer,
    key: str,
    option: str,
    version: int,
    source: str,
) -> None:
    scenario = key + "steps:\n  - greeting: 220\n  - send: QUIT\n    expect: 221\n"
    status, _summary, failures = run(
        tmp_path,
        scenario,
        "--target",
        f"{aiosmtpd_proxy_server.host}:{aiosmtpd_proxy_server.port}",
        "--proxy",
        option,
    )
    assert status == 0, failures
    handler = aiosmtpd_proxy_server.handler
    assert isinstance(handler, ProxyRecordingHandler)
    (connection,) = handler.proxied
    assert (connection.version, connection.source) == (version, source)


# -- XCLIENT: Postfix 10029 and 10025 ------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "shown"),
    [("192.0.2.{session}", "[192.0.2.{n}]"), ("2001:db8::{session}", "[IPv6:2001:db8::{n}]")],
    ids=["ipv4", "ipv6"],
)
def test_postfix_takes_the_xclient_name_and_address(
    tmp_path: Path, postfix_record: RecordingPostfix, addr: str, shown: str
) -> None:
    to = recipient("xclient")
    scenario = (
        f'variables:\n  to: "{to}"\nsteps:\n  - greeting: 220\n'
        "  - send: EHLO proxy.example\n    expect: 250\n"
        f'  - xclient: {{name: "client{{session}}.example", addr: "{addr}", port: 4000,'
        " proto: ESMTP, helo: xclient-helo.example, login: '[UNAVAILABLE]'}\n" + MESSAGE_STEPS
    )
    # 10029 refuses IPv6 addresses (Postfix's inet_protocols is ipv4 here); 10031 takes them.
    port = postfix_record.xclient6_port if "::" in addr else postfix_record.xclient_port
    status, summary, failures = run(
        tmp_path,
        scenario,
        "--target",
        f"{postfix_record.host}:{port}",
        "--sessions",
        "2",
    )
    assert status == 0, failures
    assert [step["name"] for step in summary["steps"]][:4] == [
        "connect",
        "greeting",
        "ehlo",
        "xclient",
    ]
    for n in (1, 2):
        (message,) = postfix_record.wait_for(to.format(session=n))
        header = received(message)
        assert f"(client{n}.example {shown.format(n=n)})" in header, header


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_a_load_run_with_xclient_passes_every_session(
    tmp_path: Path, postfix_record: RecordingPostfix
) -> None:
    # Each session says it is another client (192.0.2.N): all pass, the counts add up, and
    # the last session's message carries its own address.
    to = recipient("xclientload")
    scenario = (
        f'variables:\n  to: "{to}"\nsteps:\n  - greeting: 220\n'
        "  - send: EHLO proxy.example\n    expect: 250\n"
        '  - xclient: {name: "client{session}.example", addr: "192.0.2.{session}"}\n'
        + MESSAGE_STEPS
    )
    status, summary, failures = run(
        tmp_path, scenario, "--target", f"{postfix_record.host}:{postfix_record.xclient_port}",
        "--sessions", "250", "--concurrency", "20",
    )  # fmt: skip
    assert status == 0, failures[:2000]
    assert summary["sessions"]["started"] == summary["sessions"]["passed"] == 250
    xclient = next(step for step in summary["steps"] if step["name"] == "xclient")
    assert (xclient["count"], xclient["failed"]) == (250, 0)
    (last,) = postfix_record.wait_for(to.format(session=250))
    assert "(client250.example [192.0.2.250])" in received(last)


def test_xclient_where_it_is_not_allowed_is_an_unexpected_reply(
    tmp_path: Path, postfix_server: Any
) -> None:
    scenario = (
        "steps:\n  - greeting: 220\n  - send: EHLO client.example\n    expect: 250\n"
        "  - xclient: {addr: 192.0.2.1}\n  - send: EHLO client.example\n  - send: QUIT\n"
    )
    status, summary, failures = run(
        tmp_path, scenario, "--target", f"{postfix_server.host}:{postfix_server.port}"
    )
    assert status == 1
    assert summary["sessions"]["failures"]["unexpected_reply"] == 1
    # Postfix: "550 5.7.0 Error: insufficient authorization".
    assert "C: XCLIENT ADDR=192.0.2.1" in failures
    assert "S: 550 5.7.0" in failures


def test_a_rendered_xclient_line_over_512_octets_fails_that_session_only(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    # aiosmtpd knows no XCLIENT (500); 13 + 496 + 2 octets leave room for a 1-digit session.
    scenario = (
        f"variables:\n  pad: {'n' * 496}\nsteps:\n  - greeting: 220\n"
        '  - xclient: {name: "{pad}{session}"}\n    expect: 500\n  - send: QUIT\n'
    )
    status, summary, failures = run(
        tmp_path,
        scenario,
        "--target",
        f"{aiosmtpd_server.host}:{aiosmtpd_server.port}",
        "--sessions",
        "10",
        "--concurrency",
        "5",
    )
    assert status == 1
    assert summary["sessions"]["passed"] == 9
    assert summary["sessions"]["failures"]["protocol_error"] == 1
    assert "not sent: the XCLIENT command would be 513 octets" in failures
