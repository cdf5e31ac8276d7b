"""Keeping a session's secrets out of what is shown of the server's replies.

The AUTH lines the client sends are redacted where they are recorded (``auth.redacted``), but a
hostile or careless server can quote them back: ``535 5.7.8 bad credentials AHVzZXIAcGFzcw==``,
LOGIN's second ``334`` being the user name's blob, a later ``250 ok`` with the AUTH line in it.
A ``Scrubber`` knows what one session sent and knows as secret, and replaces each occurrence of
it with ``<redacted>`` in what reports show (transcripts, a failure's "got", observations for
baselines and replay). Expectations and captures still judge the reply as received: what the
server said is the truth; only what is shown is scrubbed.

What it looks for:

* every base64 blob the client sent in an AUTH exchange (the initial response and each
  response line, except the empty line, ``=`` and ``*``, which hold nothing);
* the password or token itself, as text;
* its base64 at the three byte alignments it can have inside a longer blob (what PLAIN and
  XOAUTH2 send), only the characters that encode nothing but the secret's bits, so that the
  secret is found in a blob whatever came before it.

A secret shorter than ``MIN_SUBSTRING_SECRET_BYTES`` is looked for only as a whole word (text
or plain base64): its aligned base64 would be one to three characters, and scrubbing those
wherever they occur would leave no reply readable.

Only sessions with an ``auth`` step have a scrubber; the engine builds none for the others.
"""

from __future__ import annotations

import base64
import math
import re

from smtpload.protocol.wire import Reply

__all__ = ["MIN_SUBSTRING_SECRET_BYTES", "REDACTED", "Scrubber", "aligned_base64"]

#: What replaces a secret in shown replies.
REDACTED = "<redacted>"

#: The shortest secret (in UTF-8 bytes) that is scrubbed wherever it occurs; shorter ones only
#: as whole words. At 4 bytes every aligned base64 form is at least 5 characters long.
MIN_SUBSTRING_SECRET_BYTES = 4

# Sent lines that hold no secret (RFC 4954 §4: "=" is an empty response, "*" cancels).
_EMPTY_RESPONSES = frozenset({b"", b"=", b"*"})


def aligned_base64(secret: bytes) -> list[bytes]:
    """The base64 of ``secret`` after 0, 1 and 2 bytes of anything: only the characters that
    encode nothing but the secret's bits (character i holds bits 6i..6i+5 of the input)."""
    forms = []
    for before in range(3):
        encoded = base64.b64encode(b"\0" * before + secret)
        start = math.ceil(8 * before / 6)
        end = (8 * (before + len(secret))) // 6
        forms.append(encoded[start:end])
    return forms


class Scrubber:
    """What one session must not show, and the function that removes it."""

    __slots__ = ("_bytes_pattern", "_needles", "_text_pattern", "_words")

    def __init__(self) -> None:
        self._needles: set[bytes] = set()  # scrubbed wherever they occur
        self._words: set[bytes] = set()  # scrubbed only as whole words
        self._bytes_pattern: re.Pattern[bytes] | None = None
        self._text_pattern: re.Pattern[str] | None = None

    def add_sent(self, line: bytes) -> None:
        """A line the client sent in an AUTH exchange: its base64 blob, if it has one."""
        text = line.removesuffix(b"\r\n")
        if text[:5].upper() == b"AUTH ":
            parts = text.split(b" ", 2)
            text = parts[2] if len(parts) == 3 else b""
        if text not in _EMPTY_RESPONSES:
            self._add(self._needles, text)

    def add_secret(self, secret: str) -> None:
        """The password or token: as text, and its base64 at every alignment."""
        raw = secret.encode("utf-8")
        if not raw:
            return
        if len(raw) < MIN_SUBSTRING_SECRET_BYTES:
            self._add(self._words, raw)
            self._add(self._words, base64.b64encode(raw))
            return
        self._add(self._needles, raw)
        for form in aligned_base64(raw):
            self._add(self._needles, form)

    def _add(self, where: set[bytes], needle: bytes) -> None:
        if needle not in where:
            where.add(needle)
            self._bytes_pattern = self._text_pattern = None

    def _alternatives(self) -> list[str]:
        # Longest first, in one pass: a blob goes whole, not as the secret inside it, and
        # nothing is looked for again inside a "<redacted>" already put in. Every needle is
        # UTF-8 (base64, or a secret that was text), so one search serves bytes and text.
        needles = sorted(self._needles, key=len, reverse=True)
        words = sorted(self._words, key=len, reverse=True)
        return [re.escape(n.decode("utf-8")) for n in needles] + [
            r"(?<!\S)" + re.escape(w.decode("utf-8")) + r"(?!\S)" for w in words
        ]

    def scrub_bytes(self, data: bytes) -> bytes:
        """``data`` with every secret replaced by ``<redacted>``."""
        if self._bytes_pattern is None:
            source = "|".join(self._alternatives()) or "(?!)"
            self._bytes_pattern = re.compile(source.encode("utf-8"))
        return self._bytes_pattern.sub(REDACTED.encode("ascii"), data)

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``<redacted>``."""
        if self._text_pattern is None:
            self._text_pattern = re.compile("|".join(self._alternatives()) or "(?!)")
        return self._text_pattern.sub(REDACTED, text)

    def reply(self, reply: Reply) -> Reply:
        """``reply`` as it may be shown (the same object when it holds no secret)."""
        raw = self.scrub_bytes(reply.raw)
        if raw == reply.raw:
            return reply
        return Reply(reply.code, tuple(self.scrub(line) for line in reply.lines), raw)
