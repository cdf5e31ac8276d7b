"""Source addresses (``--source``) and IPv6, over real loopback sockets.

Every 127.x.y.z address is on ``lo`` on Linux, so IPv4 sources need no set-up; the IPv6 ones
are added to ``lo`` by the ``ipv6_lo_addresses`` fixture (root) and removed after the test.
The server that says where each session came from is aiosmtpd, recording each message's
client address as its socket saw it (``tests.peers.PeerRecordingHandler``).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import subprocess
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trustme

import smtpload as api
from smtpload.errors import UsageError
from smtpload.load.sources import MAX_SOURCE_ADDRESSES, SourceError, parse_sources
from smtpload.net.source import SourceBinder, check_sources
from tests.cli import smtpload, start_smtpload
from tests.peers import PeerRecordingHandler, RecordingPeer

# -- the list: pure --------------------------------------------------------------------------


def addresses(text: str) -> list[str]:
    sources = parse_sources(text)
    index = sources.indexer()
    return [index.address(i) for i in range(len(sources))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.2", ["127.0.0.2"]),
        ("127.0.0.2, 127.0.0.3,127.0.0.9", ["127.0.0.2", "127.0.0.3", "127.0.0.9"]),
        ("127.0.0.2-127.0.0.4", ["127.0.0.2", "127.0.0.3", "127.0.0.4"]),
        ("127.0.0.255-127.0.1.1", ["127.0.0.255", "127.0.1.0", "127.0.1.1"]),  # across octets
        ("127.0.0.7-127.0.0.7", ["127.0.0.7"]),
        # CIDR: the hosts, network and broadcast left out of a /30 and wider...
        ("127.0.1.0/30", ["127.0.1.1", "127.0.1.2"]),
        ("127.0.1.0/29", [f"127.0.1.{n}" for n in range(1, 7)]),
        # ...kept in a /31 (RFC 3021) and a /32
        ("127.0.1.0/31", ["127.0.1.0", "127.0.1.1"]),
        ("127.0.1.5/32", ["127.0.1.5"]),
        ("::1", ["::1"]),
        ("[::1]", ["::1"]),
        ("fd00::1-fd00::3", ["fd00::1", "fd00::2", "fd00::3"]),
        ("[fd00::1]-[fd00::2]", ["fd00::1", "fd00::2"]),
        # IPv6 blocks leave out the Subnet-Router anycast (RFC 4291), except /127 and /128
        ("fd00::/126", ["fd00::1", "fd00::2", "fd00::3"]),
        ("fd00::/127", ["fd00::", "fd00::1"]),
        ("fd00::5/128", ["fd00::5"]),
        # in the order given, families mixed
        ("127.0.0.9,::1,127.0.0.2", ["127.0.0.9", "::1", "127.0.0.2"]),
    ],
)
def test_a_list_holds_its_addresses_in_order(text: str, expected: list[str]) -> None:
    assert addresses(text) == expected


@pytest.mark.parametrize(
    ("text", "block"),
    [(f"10.{n}.0.0/{prefix}", prefix) for n, prefix in ((1, 24), (2, 20), (3, 17))]
    + [(f"fd00:{n}::/{prefix}", prefix) for n, prefix in ((1, 120), (2, 116), (3, 113))],
)
def test_a_block_counts_the_hosts_that_ipaddress_counts(text: str, block: int) -> None:
    network = ipaddress.ip_network(text)
    hosts = list(network.hosts())
    sources = parse_sources(text)
    index = sources.indexer()
    assert len(sources) == len(hosts)
    assert (index.address(0), index.address(len(sources) - 1)) == (str(hosts[0]), str(hosts[-1]))


def test_sessions_take_the_addresses_round_robin_by_session_number() -> None:
    index = parse_sources("127.0.0.2-127.0.0.3,::1,127.0.1.0/30").indexer()
    order = ["127.0.0.2", "127.0.0.3", "::1", "127.0.1.1", "127.0.1.2"]
    got = [index.for_session(session)[1] for session in range(1, 16)]
    assert got == order * 3


def test_the_largest_list_is_kept_as_ranges_not_addresses() -> None:
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        sources = parse_sources("10.0.0.0-10.0.255.255")
        index = sources.indexer()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(sources) == MAX_SOURCE_ADDRESSES
    assert len(sources.ranges) == 1
    assert after - before < 20_000  # 65,536 address objects would take megabytes
    assert index.for_session(MAX_SOURCE_ADDRESSES) == (65_535, "10.0.255.255")
    assert index.for_session(MAX_SOURCE_ADDRESSES + 1) == (0, "10.0.0.0")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "has an empty item"),
        ("127.0.0.2,", "has an empty item"),
        ("mx.example.test", "is not an IP address"),
        ("127.0.0.256", "is not an IP address"),
        ("127.0.0.2-", "is not an IP address"),
        ("127.0.0.2-x", "'x' in '127.0.0.2-x' is not an IP address"),
        ("127.0.0.5-127.0.0.2", "runs backwards"),
        ("fd00::9-fd00::1", "runs backwards"),
        ("127.0.0.1-::1", "mixes IPv4 and IPv6"),
        ("127.0.0.1/28", "has host bits set; did you mean 127.0.0.0/28?"),
        ("127.0.0.0/33", "is not an address block"),
        ("127.0.0.2,127.0.0.2", "127.0.0.2 is listed twice"),
        ("127.0.0.0/30,127.0.0.2", "127.0.0.2 is listed twice"),
        ("fd00::1-fd00::5,fd00::5", "fd00::5 is listed twice"),
        # too many: a range, a block, and items that add up
        ("10.0.0.0-10.1.0.0", "holds 65,537 addresses, more than 65,536"),
        ("10.0.0.0/8", "more than 65,536"),
        ("fd00::/64", "more than 65,536"),
        ("10.0.0.0-10.0.255.255,10.1.0.0", "holds more than 65,536 addresses"),
        ("10.0.0.0/15", "holds more than 65,536 addresses"),
        # not unicast: no session can come from these, alone or inside a range or block
        ("0.0.0.0", "0.0.0.0 is the unspecified address"),
        ("::", ":: is the unspecified address"),
        ("[::]", ":: is the unspecified address"),
        ("224.0.0.1", "224.0.0.1 is a multicast address"),
        ("239.255.255.255", "is a multicast address"),
        ("223.255.255.254-224.0.0.3", "224.0.0.0 (in '223.255.255.254-224.0.0.3') is a multicast"),
        ("239.0.0.0/30", "239.0.0.1 (in '239.0.0.0/30') is a multicast"),
        ("ff02::1", "ff02::1 is a multicast address"),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-ff00::1", "ff00:: (in"),
        ("255.255.255.255", "is the broadcast address"),
        ("255.255.255.250-255.255.255.255", "255.255.255.255 (in"),
        ("::ffff:127.0.0.2", "IPv4-mapped IPv6 address: write it as the IPv4 address 127.0.0.2"),
        ("[::ffff:127.0.0.2]", "write it as the IPv4 address 127.0.0.2"),
        ("::ffff:127.0.0.0/124", "IPv4-mapped"),
        ("127.0.0.2,::ffff:127.0.0.3", "write it as the IPv4 address 127.0.0.3"),
    ],
)
def test_a_list_that_cannot_be_read_is_refused_saying_why(text: str, words: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_sources(text)
    assert words in str(caught.value)


def test_the_bound_is_exactly_65536() -> None:
    assert len(parse_sources("10.0.0.0-10.0.255.254,10.1.0.0")) == MAX_SOURCE_ADDRESSES
    assert len(parse_sources("10.0.0.0/16,10.1.0.0,10.1.0.1")) == MAX_SOURCE_ADDRESSES


# -- binding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "address"), [(socket.AF_INET, "127.0.0.2"), (socket.AF_INET6, "::1")]
)
def test_a_bind_leaves_the_port_to_connect(family: int, address: str) -> None:
    """IP_BIND_ADDRESS_NO_PORT: bound, but no port taken until connect() picks one for the
    4-tuple (so one address is not limited to its ephemeral ports across all servers)."""
    binder = SourceBinder(parse_sources(address))
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        binder.bind(sock, 1)
        assert sock.getsockname()[:2] == (address, 0)
    assert binder.summary()["by_address"] == {address: 1}


def test_an_address_not_on_this_machine_is_refused_before_the_run() -> None:
    for text in ("192.0.2.1", "127.0.0.2,192.0.2.7-192.0.2.9", "2001:db8::1"):
        with pytest.raises(UsageError) as caught:
            check_sources(parse_sources(text))
        assert "cannot be bound" in str(caught.value)
        assert "EADDRNOTAVAIL" in str(caught.value)


# -- runs: where the server saw each session come from ---------------------------------------


def run_json(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "summary.json"
    result = smtpload("run", *args, "--quiet", "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(out.read_text())
    return result, summary


@pytest.fixture
def peer_server(aiosmtpd_at: Any) -> RecordingPeer:
    peer: RecordingPeer = aiosmtpd_at("127.0.0.1", PeerRecordingHandler())
    return peer


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("127.0.0.2,127.0.0.3,127.0.0.4", ["127.0.0.2", "127.0.0.3", "127.0.0.4"]),
        ("127.0.0.2-127.0.0.4", ["127.0.0.2", "127.0.0.3", "127.0.0.4"]),
        ("127.0.2.0/30,127.0.0.9", ["127.0.2.1", "127.0.2.2", "127.0.0.9"]),
        ("127.0.0.5,::1", ["127.0.0.5"]),  # mixed: only the target's family is used
    ],
)
def test_the_server_sees_each_source_equally_often(
    tmp_path: Path, peer_server: RecordingPeer, source: str, expected: list[str]
) -> None:
    sessions = 10 * len(expected)
    _, summary = run_json(
        tmp_path,
        "quickstart",
        "--target",
        f"{peer_server.host}:{peer_server.port}",
        "--source",
        source,
        "--sessions",
        str(sessions),
        "--concurrency",
        "7",
    )
    assert summary["sessions"]["passed"] == sessions
    handler = peer_server.handler
    assert isinstance(handler, PeerRecordingHandler)
    assert Counter(handler.peers) == {address: 10 for address in expected}
    assert summary["sources"] == {
        "addresses": len(expected),
        "family": "IPv4",
        "sessions_min": 10,
        "sessions_max": 10,
        "by_address": {address: 10 for address in expected},
        "other_family_left_out": 1 if "::1" in source else 0,
    }


def test_a_large_list_is_summed_up_not_listed(tmp_path: Path, peer_server: RecordingPeer) -> None:
    _, summary = run_json(
        tmp_path,
        "quickstart",
        "--target",
        f"{peer_server.host}:{peer_server.port}",
        "--source",
        "127.1.0.0/23",  # 510 hosts
        "--sessions",
        "600",
        "--concurrency",
        "20",
    )
    assert summary["sessions"]["passed"] == 600
    handler = peer_server.handler
    assert isinstance(handler, PeerRecordingHandler)
    seen = Counter(handler.peers)
    assert len(seen) == 510
    assert set(seen.values()) == {1, 2}
    assert seen["127.1.0.1"] == 2  # sessions 1 to 90 took the first 90 addresses twice
    assert seen["127.1.1.254"] == 1
    assert summary["sources"] == {
        "addresses": 510,
        "family": "IPv4",
        "sessions_min": 1,
        "sessions_max": 2,
        "by_address": None,
        "other_family_left_out": 0,
    }


def test_the_api_takes_source(peer_server: RecordingPeer) -> None:
    result = api.run(
        "quickstart",
        target=f"{peer_server.host}:{peer_server.port}",
        sessions=4,
        source=["127.0.0.2", "127.0.0.3"],
    )
    assert result.passed
    assert result.summary["sources"]["by_address"] == {"127.0.0.2": 2, "127.0.0.3": 2}
    with pytest.raises(UsageError, match="runs backwards"):
        api.run("quickstart", source="127.0.0.3-127.0.0.2")


def test_without_source_the_summary_says_null(tmp_path: Path) -> None:
    _, summary = run_json(tmp_path, "quickstart")
    assert summary["sources"] is None


# -- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--source", "mx.example.test"], "is not an IP address"),
        (["--source", "127.0.0.9-127.0.0.2"], "runs backwards"),
        (["--source", "10.0.0.0/8"], "more than 65,536"),
        (["--source", "192.0.2.1"], "--source 192.0.2.1 cannot be bound"),
        (["--source", "127.0.0.2,192.0.2.1-192.0.2.4"], "192.0.2.1 (of 192.0.2.1-192.0.2.4)"),
        (["--source", "2001:db8::1"], "--source 2001:db8::1 cannot be bound"),
        # bound without error, then every session failed (connect_error), or ran from "any"
        (["--source", "::ffff:127.0.0.1"], "IPv4-mapped IPv6 address"),
        (["--source", "224.0.0.1"], "is a multicast address"),
        (["--source", "0.0.0.0"], "is the unspecified address"),
        # a family mismatch, both ways (the built-in sink follows IPv6-only sources to ::1)
        (["--source", "::1", "--target", "127.0.0.1:9"], "are all IPv6, and the target"),
        (["--source", "127.0.0.2", "--target", "[::1]:9"], "are all IPv4, and the target"),
        (["--source", "::1", "--target", "localhost:9"], "the target localhost:9 is IPv4"),
    ],
)
def test_a_bad_source_is_a_usage_error_before_any_session(
    tmp_path: Path, args: list[str], words: str
) -> None:
    result = smtpload("run", "quickstart", *args, cwd=tmp_path)
    assert result.returncode == 2, result
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


# -- IPv6 --------------------------------------------------------------------------------------


def test_ipv6_sources_round_robin_over_addresses_added_to_lo(
    tmp_path: Path, aiosmtpd_at: Any, ipv6_lo_addresses: tuple[str, ...]
) -> None:
    server: RecordingPeer = aiosmtpd_at("::1", PeerRecordingHandler())
    first, second, third = ipv6_lo_addresses
    _, summary = run_json(
        tmp_path,
        "quickstart",
        "--target",
        f"[::1]:{server.port}",
        "--source",
        f"{first}-{third},127.0.0.2",
        "--sessions",
        "12",
        "--concurrency",
        "4",
    )
    assert summary["target"] == f"[::1]:{server.port}"
    assert summary["sessions"]["passed"] == 12
    handler = server.handler
    assert isinstance(handler, PeerRecordingHandler)
    assert Counter(handler.peers) == {first: 4, second: 4, third: 4}
    assert summary["sources"]["family"] == "IPv6"
    assert summary["sources"]["by_address"] == {first: 4, second: 4, third: 4}
    assert summary["sources"]["other_family_left_out"] == 1


def test_a_bind_that_fails_during_the_run_is_that_sessions_connect_error(
    tmp_path: Path, aiosmtpd_at: Any, ipv6_lo_addresses: tuple[str, ...]
) -> None:
    """The check before the run binds the ends of a range; an address missing in its middle
    fails only the sessions that use it, as connect_error, naming it."""
    server: RecordingPeer = aiosmtpd_at("::1", PeerRecordingHandler())
    first, _second, third = ipv6_lo_addresses
    middle = str(ipaddress.ip_address(first) + 1)
    assert middle == _second
    subprocess.run(["ip", "-6", "addr", "del", f"{middle}/128", "dev", "lo"], check=True)
    out = tmp_path / "summary.json"
    result = smtpload(
        "run",
        "quickstart",
        "--target",
        f"[::1]:{server.port}",
        "--source",
        f"{first}-{third}",
        "--sessions",
        "6",
        "--quiet",
        "--json",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    summary = json.loads(out.read_text())
    assert summary["sessions"]["passed"] == 4
    assert summary["sessions"]["failures"]["connect_error"] == 2
    assert summary["sources"]["by_address"] == {first: 2, middle: 0, third: 2}
    failures = next((tmp_path / "results").iterdir()) / "failures.log"
    assert f"cannot bind to source {middle}" in failures.read_text()


def test_a_load_run_over_ipv6_passes_on_the_kernel_clock(tmp_path: Path) -> None:
    """IPv6-only sources and no target: the built-in sink listens on ::1."""
    _, summary = run_json(
        tmp_path, "quickstart", "--source", "::1", "--sessions", "300", "--concurrency", "20"
    )
    assert summary["target"].startswith("[::1]:")
    assert summary["sessions"]["passed"] == 300
    assert summary["clock"] == "kernel"
    assert [step["name"] for step in summary["steps"]][-1] == "close"  # timed by the loop
    assert {step["clock"] for step in summary["steps"][1:-1]} == {"kernel"}
    assert summary["generator"]["untimed_reads"] == 0


def test_the_sink_listens_on_ipv6_and_reports_show_brackets(tmp_path: Path) -> None:
    process = start_smtpload("sink", "--listen", "[::1]:0", stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on [::1]:" in line, line
        port = int(line.rsplit(":", 1)[1])
        result = smtpload(
            "run", "quickstart", "--target", f"[::1]:{port}", "--sessions", "3", cwd=tmp_path
        )
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"quickstart against [::1]:{port}" in result.stdout


STARTTLS_SCENARIO = """\
steps:
  - greeting: 220
  - send: EHLO client.example.test
    expect: 250
  - starttls: true
  - send: EHLO client.example.test
    expect: 250
  - send: QUIT
    expect: 221
"""


def test_starttls_over_ipv6_verifies_the_address_in_the_certificate(
    tmp_path: Path, aiosmtpd_at: Any
) -> None:
    """An IPv6 literal target: the certificate is checked against the address (its IP
    subjectAltName), as for 127.0.0.1; a certificate without it fails the session."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    scenario = tmp_path / "tls.yaml"
    scenario.write_text(STARTTLS_SCENARIO)
    outcomes = {}
    for names in (("::1",), ("localhost",)):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(context)
        server = aiosmtpd_at(
            "::1", PeerRecordingHandler(), tls_context=context, require_starttls=True
        )
        out = tmp_path / f"{names[0]}.json"
        smtpload(
            "run",
            str(scenario),
            "--target",
            f"[::1]:{server.port}",
            "--tls-ca",
            str(ca_file),
            "--quiet",
            "--json",
            str(out),
            cwd=tmp_path,
        )
        summary = json.loads(out.read_text())
        outcomes[names[0]] = summary["sessions"]
    assert outcomes["::1"]["passed"] == 1
    assert outcomes["localhost"]["failures"]["tls_error"] == 1
