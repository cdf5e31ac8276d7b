"""The XCLIENT command line (protocol/xclient.py): xtext, IPV6:, the 512-octet limit. Pure."""

from __future__ import annotations

import pytest

from smtpload.protocol.xclient import MAX_COMMAND_OCTETS, XclientError, xclient_command, xtext


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("client1.example", "client1.example"),
        ("a+b=c", "a+2Bb+3Dc"),  # "+" and "=" are never themselves
        ("two words", "two+20words"),  # SP is outside "!".."~"
        ("tab\there", "tab+09here"),
        ("é", "+C3+A9"),  # each UTF-8 octet
        ("[UNAVAILABLE]", "[UNAVAILABLE]"),
        ("[TEMPUNAVAIL]", "[TEMPUNAVAIL]"),
        ("~!", "~!"),  # the ends of the xchar range
        ("\x7f", "+7F"),
        ("", ""),
    ],
    ids=[
        "plain",
        "plus-equals",
        "space",
        "tab",
        "utf8",
        "unavailable",
        "tempunavail",
        "range-ends",
        "del",
        "empty",
    ],
)
def test_xtext(value: str, encoded: str) -> None:
    assert xtext(value) == encoded


def test_every_octet_outside_xchar_is_hex_encoded() -> None:
    for octet in range(128):
        encoded = xtext(chr(octet))
        if 33 <= octet <= 126 and chr(octet) not in "+=":
            assert encoded == chr(octet)
        else:
            assert encoded == f"+{octet:02X}"


def test_command_line() -> None:
    line = xclient_command((("name", "client7.example"), ("ADDR", "192.0.2.7"), ("port", "4000")))
    assert line == b"XCLIENT NAME=client7.example ADDR=192.0.2.7 PORT=4000\r\n"


@pytest.mark.parametrize(
    ("attribute", "value", "sent"),
    [
        ("ADDR", "2001:db8::7", "IPV6:2001:db8::7"),
        ("DESTADDR", "2001:0db8:0:0:0:0:0:7", "IPV6:2001:db8::7"),
        ("ADDR", "IPV6:2001:db8::7", "IPV6:2001:db8::7"),  # already prefixed
        ("ADDR", "ipv6:2001:db8::7", "ipv6:2001:db8::7"),
        ("ADDR", "192.0.2.7", "192.0.2.7"),
        ("ADDR", "[UNAVAILABLE]", "[UNAVAILABLE]"),
        ("NAME", "a:b", "a:b"),  # only addresses get the prefix
    ],
    ids=["addr", "destaddr-full-form", "prefixed", "prefixed-lower", "v4", "unavailable", "name"],
)
def test_ipv6_addresses_get_the_prefix(attribute: str, value: str, sent: str) -> None:
    assert xclient_command(((attribute, value),)) == f"XCLIENT {attribute}={sent}\r\n".encode()


def test_a_line_of_512_octets_is_sent_and_one_more_is_refused() -> None:
    fixed = len("XCLIENT NAME=\r\n")
    assert len(xclient_command((("NAME", "x" * (MAX_COMMAND_OCTETS - fixed)),))) == 512
    with pytest.raises(XclientError, match="513 octets"):
        xclient_command((("NAME", "x" * (MAX_COMMAND_OCTETS - fixed + 1)),))


def test_the_limit_counts_the_encoded_octets() -> None:
    # 100 spaces are 300 octets of xtext.
    with pytest.raises(XclientError, match="over SMTP's 512"):
        xclient_command((("NAME", " " * 100), ("HELO", " " * 100)))
