"""A message's size as ``SIZE=`` declares it (RFC 1870), from the bytes a message step sends.

RFC 1870 §4: the size is the message's octet count "including CR-LF pairs, but not the SMTP
DATA command's terminating dot or doubled quoting dots". It is counted here on the very bytes
that go out after the 354 (the engine renders a templated message once, when the MAIL line that
declares its size is rendered, and sends those bytes), so the number declared and the message
sent cannot disagree. No I/O; nothing here depends on a session.

A bdat step's message (RFC 3030) is sent as its octets, never stuffed and with no final dot:
its size is its length (``stuffed=False``).
"""

from __future__ import annotations

from smtpload.protocol.bdat import PaddedOctets
from smtpload.protocol.wire import END_OF_DATA, PaddedMessage

__all__ = ["message_octets"]


def message_octets(message: bytes | PaddedMessage | PaddedOctets, *, stuffed: bool = True) -> int:
    """The RFC 1870 size of ``message``: a message ready to follow a 354 (CRLF line ends,
    dot-stuffed, ending in ``END_OF_DATA``), as ``wire.encode_message`` and the compiler make
    it, whole or padded; or, not ``stuffed``, a bdat step's octets (bdat.py), whose size is
    their length.

    Every line that starts with ``.`` after stuffing got one ``.`` more (RFC 5321 §4.5.2), so
    the size is the length less the final ``.`` line, less one octet per such line. Generated
    padding lines never start with ``.``, so a ``PaddedMessage`` is counted on its head and tail
    alone: no cost that grows with the padding.
    """
    if not stuffed:
        return len(message)
    assert not isinstance(message, PaddedOctets), "padded octets are a bdat step's, unstuffed"
    if isinstance(message, PaddedMessage):
        dotted = _stuffed_lines(message.head) + _stuffed_lines(message.tail)
    else:
        dotted = _stuffed_lines(message)
    # The terminating ".\r\n" starts a line too, and _stuffed_lines counted it: it is no
    # quoting dot, so it is given back.
    return len(message) - len(END_OF_DATA) - (dotted - 1)


def _stuffed_lines(encoded: bytes) -> int:
    """How many lines of ``encoded`` (whole CRLF lines) start with ``.``."""
    return encoded.startswith(b".") + encoded.count(b"\n.")
