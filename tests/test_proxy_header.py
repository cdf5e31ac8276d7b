"""The PROXY header encoder (protocol/proxy.py) against HAProxy's proxy-protocol.txt: pure."""

from __future__ import annotations

import ipaddress

import pytest

from smtpload.errors import RemoteProtocolError
from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.proxy import (
    V1_MAX_BYTES,
    V2_SIGNATURE,
    ProxyAddresses,
    ProxyHeaderError,
    ProxyHeaderTemplate,
    encode_v1,
    encode_v2,
    parse_address,
    parse_port,
    proxy_addresses,
)
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.template import parse_template


def _addresses(source: str, sport: int, destination: str, dport: int) -> ProxyAddresses:
    return proxy_addresses(
        ipaddress.ip_address(source), sport, ipaddress.ip_address(destination), dport
    )


def test_v1_tcp4_is_the_specs_example() -> None:
    # proxy-protocol.txt §2.1's example line.
    header = encode_v1(_addresses("192.168.0.1", 56324, "192.168.0.11", 443))
    assert header == b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"


def test_v1_tcp6_and_its_worst_case_fits_107_bytes() -> None:
    assert (
        encode_v1(_addresses("2001:db8::7", 4000, "::1", 25))
        == b"PROXY TCP6 2001:db8::7 ::1 4000 25\r\n"
    )
    widest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    worst = encode_v1(_addresses(widest, 65535, widest, 65535))
    # §2.1: "PROXY TCP6 ffff:...:ffff ffff:...:ffff 65535 65535\r\n" is 104 characters.
    assert len(worst) == 104 <= V1_MAX_BYTES


def test_v1_unknown() -> None:
    assert encode_v1(None) == b"PROXY UNKNOWN\r\n"


def test_v2_tcp4_byte_layout() -> None:
    # The header HAProxy wrote for 172.19.0.1:42578 -> 172.19.0.3:80 (a capture of it).
    header = encode_v2(_addresses("172.19.0.1", 42578, "172.19.0.3", 80))
    assert header == bytes.fromhex("0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050")
    assert len(header) == 16 + 12


def test_v2_tcp6_byte_layout() -> None:
    header = encode_v2(_addresses("2001:db8::7", 4000, "::1", 25))
    assert header[:12] == V2_SIGNATURE
    assert header[12:16] == bytes((0x21, 0x21, 0, 36))  # version 2 PROXY, TCP over IPv6, 36
    assert header[16:32] == ipaddress.IPv6Address("2001:db8::7").packed
    assert header[32:48] == ipaddress.IPv6Address("::1").packed
    assert header[48:] == (4000).to_bytes(2, "big") + (25).to_bytes(2, "big")


def test_v2_local_has_no_addresses() -> None:
    # §2.2: LOCAL (0x20), AF_UNSPEC (0x00), length 0.
    assert encode_v2(None) == V2_SIGNATURE + b"\x20\x00\x00\x00"


@pytest.mark.parametrize(
    "text",
    ["example.test", "198.51.100.300", "198.51.100", "", " 10.0.0.1", "fe80::1%eth0", "::g"],
    ids=["host-name", "octet-too-big", "three-octets", "empty", "space", "zone", "bad-hex"],
)
def test_not_an_address(text: str) -> None:
    with pytest.raises(ProxyHeaderError, match="source"):
        parse_address(text, "source")


@pytest.mark.parametrize(
    "text",
    ["65536", "-1", "", "80a", "1e3", "٣", "999999"],
    ids=["too-big", "negative", "empty", "letters", "exponent", "non-ascii-digit", "six-digits"],
)
def test_not_a_port(text: str) -> None:
    with pytest.raises(ProxyHeaderError, match="source_port"):
        parse_port(text, "source_port")


@pytest.mark.parametrize("text", ["0", "25", "65535"])
def test_ports_at_the_bounds(text: str) -> None:
    assert parse_port(text, "source_port") == int(text)


@pytest.mark.parametrize(
    ("source", "destination"),
    [("198.51.100.7", "::1"), ("2001:db8::7", "127.0.0.1")],
    ids=["v4-to-v6", "v6-to-v4"],
)
def test_families_must_agree(source: str, destination: str) -> None:
    with pytest.raises(ProxyHeaderError, match="of one family"):
        _addresses(source, 1, destination, 25)


def test_template_renders_per_session_and_defaults_to_the_connection() -> None:
    template = ProxyHeaderTemplate(
        version=1,
        source=parse_template("198.51.100.{session}"),
        source_port=parse_template("{port}"),
    )
    addresses = template.addresses(
        {"session": "7", "port": "4007"}, ("127.0.0.1", 50000), ("127.0.0.1", 10028)
    )
    assert template.header(addresses) == b"PROXY TCP4 198.51.100.7 127.0.0.1 4007 10028\r\n"
    assert template.names == ("session", "port")


def test_template_with_nothing_given_is_the_connections_own_addresses() -> None:
    template = ProxyHeaderTemplate(version=2)
    addresses = template.addresses({}, ("127.0.0.1", 50000), ("127.0.0.1", 25))
    assert str(addresses) == "127.0.0.1:50000 -> 127.0.0.1:25"


def test_template_rendering_a_bad_value_raises() -> None:
    template = ProxyHeaderTemplate(version=2, source=parse_template("198.51.100.{session}"))
    with pytest.raises(ProxyHeaderError, match=r"'198\.51\.100\.300' is not an IPv4"):
        template.addresses({"session": "300"}, ("127.0.0.1", 1), ("127.0.0.1", 25))


def _engine(proxy: str, session: int = 1) -> SessionEngine:
    scenario = parse_scenario(f"proxy: {proxy}\nsteps:\n  - greeting: 220\n")
    compiled = compile_scenario(scenario)
    return SessionEngine(compiled, session, compiled.session_variables(session, "run"))


def test_the_engine_renders_the_header_and_notes_it_in_the_transcript() -> None:
    engine = _engine('{version: 2, source: "2001:db8::{session}", destination: "::1"}', 7)
    assert engine.has_proxy_header
    header = engine.proxy_header(("127.0.0.1", 50000), ("::1", 10030))
    assert header == encode_v2(_addresses("2001:db8::7", 50000, "::1", 10030))
    engine.on_interrupted()  # any failure shows the transcript
    failure = engine.failure()
    assert failure is not None
    assert "*: PROXY protocol v2 header: [2001:db8::7]:50000 -> [::1]:10030" in [
        str(line) for line in failure.transcript
    ]


@pytest.mark.parametrize(("version", "shown"), [(1, "UNKNOWN"), (2, "LOCAL")])
def test_a_header_without_addresses_is_named_by_its_form(version: int, shown: str) -> None:
    engine = _engine(f"{{version: {version}, command: local}}")
    assert engine.proxy_header(None, None) in (b"PROXY UNKNOWN\r\n", encode_v2(None))
    engine.on_interrupted()
    failure = engine.failure()
    assert failure is not None
    assert f"*: PROXY protocol v{version} header: {shown}" in [
        str(line) for line in failure.transcript
    ]


def test_a_bad_rendered_value_is_a_remote_protocol_error_for_the_session() -> None:
    # The I/O layer turns RemoteProtocolError into the session's protocol_error.
    engine = _engine('{source: "198.51.100.{session}"}', 300)
    with pytest.raises(
        RemoteProtocolError, match=r"PROXY header not sent: source '198\.51\.100\.300'"
    ):
        engine.proxy_header(("127.0.0.1", 1), ("127.0.0.1", 25))


def test_a_scenario_without_the_key_has_no_header() -> None:
    compiled = compile_scenario(parse_scenario("steps:\n  - greeting: 220\n"))
    assert not SessionEngine(compiled, 1).has_proxy_header
