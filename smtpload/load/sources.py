"""Source addresses (``--source LIST``): which local address each session's socket is bound to.

A list is comma-separated items, each an address, an inclusive range ``FIRST-LAST`` or a CIDR
block, IPv4 or IPv6 (``127.0.0.2,127.0.0.3``, ``127.0.0.2-127.0.0.20``, ``127.0.0.0/28``,
``fd00:5a::2-fd00:5a::9``, ``fd00::/120``; an IPv6 address may be written in brackets). A CIDR
block means its hosts, as ``ipaddress``'s ``hosts()`` counts them: IPv4 blocks of /30 and wider
leave out the network and broadcast addresses, /31 and /32 keep both (RFC 3021); IPv6 blocks
leave out the first address, the Subnet-Router anycast (RFC 4291 §2.6.1), except /127 and /128
(RFC 6164). Session k (from 1) uses address ``(k - 1) mod n`` of the list in the order given,
so the spread does not depend on timing or concurrency.

Kept compact: a range is its first address and its count, never a list of addresses, so the
largest list (:data:`MAX_SOURCE_ADDRESSES`) costs a few objects, and the address of a session
is found by bisecting the ranges' offsets.

Pure: no sockets. Binding, and checking that an address is this machine's, is net/source.py's.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
from dataclasses import dataclass

from smtpload.errors import shown

__all__ = ["MAX_SOURCE_ADDRESSES", "AddressRange", "SourceError", "SourceList", "parse_sources"]

#: The most addresses a list may hold, ranges and blocks counted whole: 65,536, a /16 of IPv4
#: or a /112 of IPv6, far more than a load test needs to get past one address's ephemeral ports.
MAX_SOURCE_ADDRESSES = 65_536

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class SourceError(ValueError):
    """A ``--source`` list cannot be read; the message says which item and why."""


@dataclass(frozen=True, slots=True)
class AddressRange:
    """``count`` consecutive addresses from ``first``; ``text``: the item as given."""

    first: _Address
    count: int
    text: str

    @property
    def version(self) -> int:
        return self.first.version

    @property
    def last(self) -> _Address:
        return self.first + (self.count - 1)

    def address(self, offset: int) -> str:
        return str(self.first + offset)


@dataclass(frozen=True, slots=True)
class SourceList:
    """The addresses of a ``--source`` list, in order, as ranges (see the module docstring)."""

    ranges: tuple[AddressRange, ...]

    def __post_init__(self) -> None:
        assert self.ranges, "a source list holds at least one address"

    def __len__(self) -> int:
        return self.offsets[-1]

    @property
    def offsets(self) -> tuple[int, ...]:
        """Where each range starts in the list, then the list's length."""
        starts = [0]
        for item in self.ranges:
            starts.append(starts[-1] + item.count)
        return tuple(starts)

    @property
    def versions(self) -> frozenset[int]:
        """The IP versions in the list: {4}, {6} or both."""
        return frozenset(item.version for item in self.ranges)

    def of_version(self, version: int) -> SourceList | None:
        """The addresses of one IP version, in their order; None when there are none."""
        kept = tuple(item for item in self.ranges if item.version == version)
        return SourceList(kept) if kept else None

    def indexer(self) -> SourceIndex:
        return SourceIndex(self)


class SourceIndex:
    """Address number ``i`` of a list, found in O(log ranges), with the offsets built once."""

    __slots__ = ("_offsets", "_ranges", "size")

    def __init__(self, sources: SourceList) -> None:
        self._ranges = sources.ranges
        offsets = sources.offsets
        self._offsets = offsets[:-1]
        self.size = offsets[-1]

    def address(self, index: int) -> str:
        """Address number ``index`` (0-based, below ``size``) as text."""
        at = bisect.bisect_right(self._offsets, index) - 1
        return self._ranges[at].address(index - self._offsets[at])

    def for_session(self, session: int) -> tuple[int, str]:
        """The index and address of session number ``session`` (from 1): round-robin."""
        index = (session - 1) % self.size
        return index, self.address(index)


def parse_sources(text: str) -> SourceList:
    """Read a ``--source`` list.

    Raises:
        SourceError: an item that is no address, range or block; a range that runs backwards
            or mixes IPv4 and IPv6; a block with host bits set; an address that is not unicast
            (unspecified, multicast, broadcast, IPv4-mapped); an address listed twice; more
            than :data:`MAX_SOURCE_ADDRESSES` addresses in all.
    """
    ranges: list[AddressRange] = []
    total = 0
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise SourceError(
                f"{shown(text)} has an empty item; write addresses, ranges (FIRST-LAST) or"
                " blocks (ADDRESS/PREFIX) separated by commas, e.g. 127.0.0.2,127.0.0.3"
            )
        found = _parse_item(item)
        _refuse_non_unicast(found)
        total += found.count
        if total > MAX_SOURCE_ADDRESSES:
            raise SourceError(
                f"{shown(text)} holds more than {MAX_SOURCE_ADDRESSES:,} addresses (at"
                f" {shown(item)}); give a smaller range or block"
            )
        ranges.append(found)
    _refuse_overlaps(ranges)
    return SourceList(tuple(ranges))


def _parse_item(item: str) -> AddressRange:
    if "/" in item:
        return _parse_block(item)
    first_text, dash, last_text = item.partition("-")
    first = _parse_address(first_text, item)
    if not dash:
        return AddressRange(first, 1, item)
    last = _parse_address(last_text, item)
    if first.version != last.version:
        raise SourceError(f"range {shown(item)} mixes IPv4 and IPv6; give each its own range")
    if int(last) < int(first):
        raise SourceError(
            f"range {shown(item)} runs backwards: its first address comes after its last;"
            f" write {last}-{first}"
        )
    count = int(last) - int(first) + 1
    if count > MAX_SOURCE_ADDRESSES:
        raise SourceError(
            f"range {shown(item)} holds {count:,} addresses, more than {MAX_SOURCE_ADDRESSES:,}"
        )
    return AddressRange(first, count, item)


def _parse_address(text: str, item: str) -> _Address:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        where = "" if text == item else f" in {shown(item)}"
        raise SourceError(
            f"{shown(text)}{where} is not an IP address; --source takes addresses (not host"
            " names), ranges FIRST-LAST and blocks ADDRESS/PREFIX, e.g. 127.0.0.2-127.0.0.9"
        ) from None


def _parse_block(item: str) -> AddressRange:
    try:
        block = ipaddress.ip_network(item.strip("[]"))
    except ValueError as error:
        reason = str(error)
        if "host bits set" in reason:
            network = ipaddress.ip_network(item, strict=False)
            raise SourceError(
                f"block {shown(item)} has host bits set; did you mean {network}?"
            ) from None
        raise SourceError(f"{shown(item)} is not an address block ({reason})") from None
    if block.num_addresses > 2 * MAX_SOURCE_ADDRESSES:  # before counting its hosts
        raise SourceError(
            f"block {shown(item)} holds {block.num_addresses:,} addresses, more than"
            f" {MAX_SOURCE_ADDRESSES:,}"
        )
    first, last = int(block.network_address), int(block.broadcast_address)
    # The hosts, as ipaddress's hosts() has them (see the module docstring), without listing
    # them: IPv4 drops network and broadcast, IPv6 the Subnet-Router anycast, on wide blocks.
    if block.version == 4 and block.prefixlen <= 30:
        first, last = first + 1, last - 1
    elif block.version == 6 and block.prefixlen <= 126:
        first += 1
    return AddressRange(type(block.network_address)(first), last - first + 1, item)


_Block = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Addresses no session can be bound to, by version, with why. Binding some of them works on
#: Linux (a multicast or broadcast source even connects over loopback), so the probe bind
#: before the run does not catch them.
_NOT_A_SOURCE: dict[int, tuple[tuple[_Block, str], ...]] = {
    4: (
        # RFC 1122 §3.2.1.3: bound, 0.0.0.0 means any address, as leaving --source out does.
        (ipaddress.ip_network("0.0.0.0/32"), "is the unspecified address (any address)"),
        # RFC 1122 §3.2.1.3, RFC 1112 §4: never the source of a datagram.
        (ipaddress.ip_network("224.0.0.0/4"), "is a multicast address"),
        (ipaddress.ip_network("255.255.255.255/32"), "is the broadcast address"),
    ),
    6: (
        (ipaddress.ip_network("::/128"), "is the unspecified address (any address)"),
        (ipaddress.ip_network("ff00::/8"), "is a multicast address (RFC 4291 §2.7)"),
        # Only the sources of the target's family are used: this one is IPv6, and on an IPv6
        # socket it connects to IPv4 only, so every session fails (EAFNOSUPPORT).
        (ipaddress.ip_network("::ffff:0:0/96"), "is an IPv4-mapped IPv6 address"),
    ),
}


def _refuse_non_unicast(item: AddressRange) -> None:
    """A session's source must be a unicast address: refuse an item holding another kind."""
    for block, why in _NOT_A_SOURCE[item.version]:
        low = max(int(item.first), int(block.network_address))
        high = min(int(item.last), int(block.broadcast_address))
        if low > high:
            continue
        address = type(item.first)(low)
        where = "" if str(address) == item.text.strip("[]") else f" (in {shown(item.text)})"
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            fix = f"write it as the IPv4 address {mapped}"
        elif why.startswith("is the unspecified"):
            fix = "no connection comes from it; leave --source out for the address the system picks"
        else:
            fix = "a TCP connection cannot come from it; leave it out"
        raise SourceError(f"{address}{where} {why}: {fix}")


def _refuse_overlaps(ranges: list[AddressRange]) -> None:
    """An address listed twice would get twice the sessions, which no one means by a list."""
    ordered = sorted(ranges, key=lambda item: (item.version, int(item.first)))
    for before, after in itertools.pairwise(ordered):
        if before.version == after.version and int(after.first) <= int(before.last):
            raise SourceError(
                f"{after.first} is listed twice (in {shown(before.text)} and"
                f" {shown(after.text)}); list each address once"
            )
