"""The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), sans-IO.

A load balancer that speaks the PROXY protocol writes one header at the start of each
connection it opens to the server, before any byte of the client's: it says which client
address and port the connection is for, and which address and port the client connected to.
A server configured for it (Postfix's ``smtpd_upstream_proxy_protocol = haproxy``) reads the
header first, then greets, and treats the connection as coming from the header's source. So a
load test that writes the header itself looks like traffic from many clients.

This module builds the header's bytes from addresses, and renders a scenario's ``proxy:``
templates into them per session (``ProxyHeaderTemplate``). It never imports trio or socket:
the I/O layer hands it the connection's own addresses (the defaults) and writes the bytes.

The two forms (proxy-protocol.txt §2.1 and §2.2):

* version 1, text: ``PROXY TCP4 <src> <dst> <sport> <dport>\\r\\n`` (``TCP6`` for IPv6), at
  most 107 bytes; ``PROXY UNKNOWN\\r\\n`` when the sender does not know the addresses (a
  health check: the receiver uses the connection's real ones).
* version 2, binary: the 12-byte signature, a byte of version and command (``0x21``: version
  2, PROXY; ``0x20``: LOCAL, the sender's own connection, addresses ignored), a byte of
  address family and transport (``0x11``: TCP over IPv4, ``0x21``: TCP over IPv6, ``0x00``:
  unspecified), the length of what follows (2 bytes, network order), then the addresses:
  source address, destination address, source port, destination port, each in network order
  (12 bytes for IPv4, 36 for IPv6). No TLVs are sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from smtpload.errors import shown
from smtpload.scenario.template import Template

__all__ = [
    "PROXY_VERSIONS",
    "V1_MAX_BYTES",
    "V2_SIGNATURE",
    "ProxyAddresses",
    "ProxyHeaderError",
    "ProxyHeaderTemplate",
    "encode_v1",
    "encode_v2",
    "parse_address",
    "parse_port",
    "proxy_addresses",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The versions a scenario's ``proxy: version`` may name.
PROXY_VERSIONS = (1, 2)

#: proxy-protocol.txt §2.1: "a receiver ... must not read more than 107 characters" of a v1
#: header (the longest TCP6 line with its CRLF).
V1_MAX_BYTES = 107

#: proxy-protocol.txt §2.2: the binary header's first 12 bytes ("\\r\\n\\r\\n\\0\\r\\nQUIT\\n").
V2_SIGNATURE = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"

# §2.2: the high 4 bits are the version (2), the low 4 the command: 0 LOCAL, 1 PROXY.
_V2_PROXY = 0x21
_V2_LOCAL = 0x20
# §2.2: the high 4 bits the address family (1 AF_INET, 2 AF_INET6), the low 4 the transport
# (1 STREAM); 0x00 is AF_UNSPEC, for LOCAL.
_V2_TCP4 = 0x11
_V2_TCP6 = 0x21
_V2_UNSPEC = 0x00


class ProxyHeaderError(ValueError):
    """An address or port cannot go into a PROXY header; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ProxyAddresses:
    """The four values of a PROXY header, of one address family (checked when made)."""

    source: IPAddress
    source_port: int
    destination: IPAddress
    destination_port: int

    def __str__(self) -> str:
        return (
            f"{_with_port(self.source, self.source_port)} ->"
            f" {_with_port(self.destination, self.destination_port)}"
        )


def _with_port(address: IPAddress, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def parse_address(text: str, what: str) -> IPAddress:
    """``text`` as an IPv4 or IPv6 literal (no host name: the header carries addresses).

    Raises:
        ProxyHeaderError: naming ``what`` (``source``, ``destination``).
    """
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(
            f"{what} {shown(text)} is not an IPv4 or IPv6 address (such as 198.51.100.7 or"
            " 2001:db8::7; a PROXY header carries addresses, not host names)"
        ) from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise ProxyHeaderError(
            f"{what} {shown(text)}: a PROXY header has no room for an IPv6 zone (%...)"
        )
    return address


def parse_port(text: str, what: str) -> int:
    """``text`` as a TCP port, 0 to 65535, in decimal digits.

    Raises:
        ProxyHeaderError: naming ``what`` (``source_port``, ``destination_port``).
    """
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535):
        raise ProxyHeaderError(f"{what} {shown(text)} is not a port number from 0 to 65535")
    return int(text)


def proxy_addresses(
    source: IPAddress, source_port: int, destination: IPAddress, destination_port: int
) -> ProxyAddresses:
    """The header's values, checked to be of one family (§2.1: TCP4 or TCP6 names both).

    Raises:
        ProxyHeaderError: the source is IPv4 and the destination IPv6, or the other way.
    """
    if source.version != destination.version:
        raise ProxyHeaderError(
            f"the source {source} is IPv{source.version} but the destination {destination} is"
            f" IPv{destination.version}: a PROXY header's two addresses are of one family;"
            " give a `destination:` of the source's family (such as ::1 for an IPv6 source)"
        )
    return ProxyAddresses(source, source_port, destination, destination_port)


def encode_v1(addresses: ProxyAddresses | None) -> bytes:
    """The version 1 (text) header; None: ``PROXY UNKNOWN`` (the addresses are unknown)."""
    if addresses is None:
        return b"PROXY UNKNOWN\r\n"
    family = "TCP4" if addresses.source.version == 4 else "TCP6"
    line = (
        f"PROXY {family} {addresses.source} {addresses.destination}"
        f" {addresses.source_port} {addresses.destination_port}\r\n"
    )
    return line.encode("ascii")


def encode_v2(addresses: ProxyAddresses | None) -> bytes:
    """The version 2 (binary) header; None: the LOCAL command, with no addresses."""
    if addresses is None:
        return V2_SIGNATURE + bytes((_V2_LOCAL, _V2_UNSPEC)) + (0).to_bytes(2, "big")
    family = _V2_TCP4 if addresses.source.version == 4 else _V2_TCP6
    block = (
        addresses.source.packed
        + addresses.destination.packed
        + addresses.source_port.to_bytes(2, "big")
        + addresses.destination_port.to_bytes(2, "big")
    )
    return V2_SIGNATURE + bytes((_V2_PROXY, family)) + len(block).to_bytes(2, "big") + block


@dataclass(frozen=True, slots=True)
class ProxyHeaderTemplate:
    """A scenario's ``proxy:`` key, compiled: what each session's header is made of.

    Attributes:
        version: 1 (text) or 2 (binary).
        local: send ``PROXY UNKNOWN`` (v1) or the LOCAL command (v2), with no addresses.
        source, source_port, destination, destination_port: templates over the session's
            variables; None takes the connection's own value: its local address and port for
            the source, the address and port it connected to for the destination.
    """

    version: int
    local: bool = False
    source: Template | None = None
    source_port: Template | None = None
    destination: Template | None = None
    destination_port: Template | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The variables the templates use."""
        return tuple(name for template in self._templates() for name in template.names)

    @property
    def from_connection(self) -> tuple[str, ...]:
        """The keys left out, so taken from the connection's addresses (none with LOCAL)."""
        if self.local:
            return ()
        keys = {
            "source": self.source,
            "source_port": self.source_port,
            "destination": self.destination,
            "destination_port": self.destination_port,
        }
        return tuple(key for key, template in keys.items() if template is None)

    def _templates(self) -> tuple[Template, ...]:
        parts = (self.source, self.source_port, self.destination, self.destination_port)
        return tuple(part for part in parts if part is not None)

    def addresses(
        self,
        variables: Mapping[str, str],
        local: tuple[str, int] | None,
        peer: tuple[str, int] | None,
    ) -> ProxyAddresses | None:
        """This session's values (None for UNKNOWN/LOCAL).

        Args:
            local, peer: the connection's own address and port, and the server's, as the
                socket gives them; None when it has none (then the template must give it).

        Raises:
            ProxyHeaderError: a value that is no address or port, or of the wrong family.
        """
        if self.local:
            return None
        source = _value(self.source, variables, local, 0, "source")
        source_port = _value(self.source_port, variables, local, 1, "source_port")
        destination = _value(self.destination, variables, peer, 0, "destination")
        destination_port = _value(self.destination_port, variables, peer, 1, "destination_port")
        return proxy_addresses(
            parse_address(source, "source"),
            parse_port(source_port, "source_port"),
            parse_address(destination, "destination"),
            parse_port(destination_port, "destination_port"),
        )

    def check(self, constants: Mapping[str, str]) -> None:
        """Check, once per run, each value made of text and ``constants`` alone (``--var``
        values, and variables made of them): the same in every session.

        Raises:
            ProxyHeaderError: one such value is no address or port, or the two addresses (both
                constant) differ in family.
        """
        found: dict[str, IPAddress] = {}
        fields = (
            ("source", self.source),
            ("source_port", self.source_port),
            ("destination", self.destination),
            ("destination_port", self.destination_port),
        )
        for what, template in fields:
            if template is None or not all(name in constants for name in template.names):
                continue
            text = template.render(constants)
            if what.endswith("_port"):
                parse_port(text, what)
            else:
                found[what] = parse_address(text, what)
        if len(found) == 2:
            proxy_addresses(found["source"], 0, found["destination"], 0)

    def header(self, addresses: ProxyAddresses | None) -> bytes:
        """The header's bytes for ``addresses`` (from ``addresses()``)."""
        return encode_v1(addresses) if self.version == 1 else encode_v2(addresses)


def _value(
    template: Template | None,
    variables: Mapping[str, str],
    own: tuple[str, int] | None,
    part: int,
    what: str,
) -> str:
    if template is not None:
        return template.render(variables)
    if own is None:
        raise ProxyHeaderError(
            f"the connection has no {what} to take (not a TCP connection); give `{what}:`"
        )
    return str(own[part])
