"""Postfix's XCLIENT command (XCLIENT_README), sans-IO: attributes in, a command line out.

An SMTP server that lists a client among its ``smtpd_authorized_xclient_hosts`` lets it say,
with ``XCLIENT NAME=... ADDR=...``, which client the rest of the session is for: the server
then behaves (access rules, logs, ``Received:``) as if that client had connected, resets the
session and greets again with ``220``; the client says EHLO again. A load test that sends it
looks like traffic from many clients, as a PROXY header does (``proxy.py``).

Per XCLIENT_README: ``xclient-command = XCLIENT 1*( SP attribute-name "=" attribute-value )``;
attribute names are case-insensitive (sent here in upper case); values are xtext (RFC 1891
§5, as RFC 3461 §4 keeps it): every octet from ``!`` to ``~`` as itself except ``+`` and
``=``, any other as ``+`` and two upper-case hex digits. ``ADDR`` and ``DESTADDR`` name an
IPv6 address with the prefix ``IPV6:``: a bare IPv6 address is given that prefix here. The
special values ``[UNAVAILABLE]`` and ``[TEMPUNAVAIL]`` are xtext as they are. "The client
must not send XCLIENT commands that exceed the 512 character limit for SMTP commands": a
longer line is refused (XCLIENT_README suggests several commands, NAME and ADDR first, then
HELO and PROTO: write two ``xclient`` steps).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from smtpload.scenario.template import Template

__all__ = [
    "MAX_COMMAND_OCTETS",
    "XclientError",
    "XclientTemplate",
    "xclient_command",
    "xtext",
]

#: RFC 5321 §4.5.3.1.4: a command line is at most 512 octets, its CRLF included.
MAX_COMMAND_OCTETS = 512

# The attributes whose value is an address, where XCLIENT_README writes IPv6 as "IPV6:...".
_ADDRESS_ATTRIBUTES = frozenset({"ADDR", "DESTADDR"})
_IPV6_PREFIX = "IPV6:"


class XclientError(ValueError):
    """An XCLIENT command cannot be sent as it is (too long); the message says why."""


def xtext(value: str) -> str:
    """``value`` (its UTF-8 octets) as xtext (RFC 1891 §5, RFC 3461 §4)."""
    out = []
    for octet in value.encode("utf-8"):
        # xchar: "!" (33) to "~" (126), except "+" (43) and "=" (61).
        if 33 <= octet <= 126 and octet not in (43, 61):
            out.append(chr(octet))
        else:
            out.append(f"+{octet:02X}")
    return "".join(out)


def _attribute_value(name: str, value: str) -> str:
    if name in _ADDRESS_ATTRIBUTES and ":" in value and not value.upper().startswith(_IPV6_PREFIX):
        try:
            address = ipaddress.IPv6Address(value)
        except ValueError:
            return value  # not an IPv6 address: sent as written, for the server to judge
        return _IPV6_PREFIX + str(address)
    return value


def xclient_command(attributes: tuple[tuple[str, str], ...]) -> bytes:
    """``XCLIENT NAME=value ...\\r\\n`` for these (name, value) pairs, in their order.

    Raises:
        XclientError: the line would be longer than ``MAX_COMMAND_OCTETS``.
    """
    parts = [
        f"{name.upper()}={xtext(_attribute_value(name.upper(), value))}"
        for name, value in attributes
    ]
    line = ("XCLIENT " + " ".join(parts) + "\r\n").encode("ascii")
    if len(line) > MAX_COMMAND_OCTETS:
        raise XclientError(
            f"the XCLIENT command would be {len(line)} octets, over SMTP's"
            f" {MAX_COMMAND_OCTETS} (RFC 5321 §4.5.3.1.4, XCLIENT_README): split its attributes"
            " over two xclient steps (NAME and ADDR first, then the others)"
        )
    return line


@dataclass(frozen=True, slots=True)
class XclientTemplate:
    """An ``xclient`` step's attributes, compiled: (NAME, template) pairs in file order."""

    attributes: tuple[tuple[str, Template], ...]

    @property
    def is_constant(self) -> bool:
        return all(template.is_constant for _, template in self.attributes)

    def command(self, variables: Mapping[str, str]) -> bytes:
        """The command line with this session's values.

        Raises:
            XclientError: the line is too long.
        """
        return xclient_command(
            tuple((name, template.render(variables)) for name, template in self.attributes)
        )
