"""SASLprep for SCRAM credentials: what the client sends, and what it refuses.

SASLprep (RFC 4013, replaced by RFC 7613's OpaqueString for passwords) is approximated: non-ASCII
space characters become U+0020 and the text is NFC-normalised (both as OpaqueString does);
an empty text and control characters are refused. The rest of OpaqueString's table (its
disallowed code points) is not applied.

It lives here, below the protocol, so that the scenario's reader refuses a password written
in the file (or read from the environment) at its position, before any run, with the very rule
that ``protocol/auth.py`` applies to the values it renders per session.
"""

from __future__ import annotations

import unicodedata

__all__ = ["SaslprepError", "saslprep"]


class SaslprepError(ValueError):
    """SASLprep refuses a text.

    Attributes:
        offset: the refused character's index in the text given (0 when it is empty).
        reason: the problem without the character's code point, for a secret's messages.
    """

    def __init__(self, message: str, *, offset: int, reason: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.reason = reason


def saslprep(text: str) -> str:
    """The prepared text.

    Raises:
        SaslprepError: the text is empty or holds a control character.
    """
    if not text:
        raise SaslprepError("it is empty", offset=0, reason="it is empty")
    for offset, ch in enumerate(text):
        # Control characters are left alone by the mapping and by NFC: find them as written.
        if unicodedata.category(ch) == "Cc":
            raise SaslprepError(
                f"it holds the control character U+{ord(ch):04X}",
                offset=offset,
                reason="it holds a control character",
            )
    mapped = "".join(
        " " if unicodedata.category(ch) == "Zs" else ch for ch in text
    )  # RFC 7613 §4.2.1: non-ASCII spaces map to U+0020
    return unicodedata.normalize("NFC", mapped)
