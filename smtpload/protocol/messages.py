"""A data step's messages: generated with the ``email`` package, or real ones. No I/O.

``MessageSource`` is what the compiler makes of a ``scenario.model.MessageSpec``, once per run;
the engine asks it for each message a session sends (``message`` for DATA, ``octets`` for
BDAT), passing the session's random generator (protocol/session_random.py), its variables and
the message's number in the session.

Generation stays off the hot path. A generated message is built when the scenario is compiled:
the ``email`` package (``EmailMessage``, policy ``SMTP``, or ``SMTPUTF8`` with ``smtputf8:``)
writes the MIME structure, the body's transfer encoding and every attachment once, and the
result is cut in three: the header fields (constant ones folded now, templated ones kept as
templates), the MIME head and body, and the rest (the other parts). Per message only the
templated header fields, a ``Message-ID``, a ``Date`` and a templated body are rendered and
joined to the shared bytes; the padding to a drawn size (``wire.FILLER_LINE``s, appended to the
body, inside its text/plain part) is a ``PaddedMessage`` view of the one block every session
sends from, and a large rest (attachments) is sent from its one shared buffer, never copied.

* ``Message-ID``: ``email.utils.make_msgid`` with the domain fixed here (without one it calls
  ``socket.getfqdn()`` on every call, blocking the loop) and the session's ``uid`` and the
  message's number as its idstring, so it is unique across messages, sessions and runs.
* ``Date``: ``email.utils.formatdate``, formatted at most once a second.
* Sizes: fixed, weighted, or log-normal (mu = ln(median), sigma = (ln(p99) - mu) / 2.3263,
  2.3263 being the standard normal's 99th percentile), drawn from the session's generator and
  bounded by ``MAX_DATA_SIZE_BYTES``. A size counts the message's CRLF form before
  dot-stuffing (as ``data: {size: N}`` does); a message already larger is sent as it is.
* Real messages (.eml, mbox, Maildir; read by scenario/mail_files.py) are encoded once (CRLF,
  dot-stuffed, RFC 5321 §4.5.2) and sent from their buffers; session s's m-th message is
  message ((s-1) + (m-1)) mod N in order, or one drawn from the session's generator.
"""

from __future__ import annotations

import bisect
import email.utils
import hashlib
import math
import random
import time
from collections.abc import Mapping
from itertools import accumulate
from typing import TYPE_CHECKING

from smtpload.protocol.bdat import PaddedOctets
from smtpload.protocol.wire import (
    END_OF_DATA,
    FILLER_LINE,
    PaddedMessage,
    encode_message_text,
    padding_lines,
)
from smtpload.scenario.model import MAX_DATA_SIZE_BYTES, MessageSpec, SizeSpec
from smtpload.scenario.template import Template, parse_template

__all__ = [
    "DEFAULT_BODY",
    "DEFAULT_HEADERS",
    "MESSAGE_ID_DOMAIN",
    "MessageSource",
    "SizeDraw",
    "compile_messages",
]

#: The right-hand side of generated Message-IDs: a name under the .test domain reserved for
#: testing (RFC 2606 §2), computed once, as protocol/compiler.py's.
MESSAGE_ID_DOMAIN = "smtpload.example.test"

#: The header fields of a generated message whose file gives none.
DEFAULT_HEADERS = (
    ("From", "smtpload <smtpload@example.test>"),
    ("To", "<sink@example.test>"),
    ("Subject", "smtpload test message {uid}"),
)

#: The body of a generated message whose file gives none.
DEFAULT_BODY = "This is a test message from smtpload.\n"

# email.policy and email.message (~10 ms of imports) are imported where a generated message is
# built, not here: a run (or a worker) whose scenario builds none need not pay for them
# (tests/test_startup.py). A _Field unpickled in a worker brings its policy's module along.
if TYPE_CHECKING:  # typeshed's EmailPolicy is generic; the class is not, at run time
    from email import policy as email_policy
    from email.message import EmailMessage

    _Policy = email_policy.EmailPolicy[EmailMessage]

# The standard normal distribution's 99th percentile: p99 = exp(mu + 2.3263 sigma).
_Z99 = 2.3263
# Up to these sizes, padding and the rest are joined into one bytes object (one send, as the
# compiler does for `size:`); more is a PaddedMessage, sent as views.
_INLINE_BYTES = 16 * 1024
# RFC 5322 §2.1.1: a line SHOULD be at most 78 characters; a header field that fits is written
# as it is, a longer one folded by the email package.
_FOLD_AT = 78
# RFC 5322 §2.1.1: at most 998 characters a line, or 7bit/8bit cannot carry it.
_MAX_LINE = 998
# Stands for a templated body while the email package writes the structure around it.
_BODY_MARKER = "smtpload-body-marker-2f6b1c0e"


class SizeDraw:
    """Draws a message's size from a ``SizeSpec`` with a session's generator."""

    __slots__ = ("_cumulative", "_fixed", "_mu", "_sigma", "_sizes", "_total")

    def __init__(self, spec: SizeSpec) -> None:
        self._fixed = spec.fixed
        self._sizes = tuple(size for size, _ in spec.weighted)
        self._cumulative = tuple(accumulate(weight for _, weight in spec.weighted))
        self._total = self._cumulative[-1] if self._cumulative else 0.0
        self._mu = self._sigma = 0.0
        if spec.median is not None and spec.p99 is not None:
            self._mu = math.log(spec.median)
            self._sigma = (math.log(spec.p99) - self._mu) / _Z99

    def draw(self, rng: random.Random) -> int:
        """One size in bytes, 0 to ``MAX_DATA_SIZE_BYTES``."""
        if self._fixed is not None:
            return self._fixed
        if self._sizes:
            at = bisect.bisect_right(self._cumulative, rng.random() * self._total)
            return self._sizes[min(at, len(self._sizes) - 1)]
        size = rng.lognormvariate(self._mu, self._sigma)
        return min(round(size), MAX_DATA_SIZE_BYTES)


class _Clock:
    """``Date:`` values, formatted at most once a second (formatdate costs a few µs)."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = b""

    def date_field(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._text = f"Date: {email.utils.formatdate(now, localtime=True)}\r\n".encode()
        return self._text


_CLOCK = _Clock()


class _Field:
    """A header field whose value is a template: rendered, and folded only when needed."""

    __slots__ = ("_name", "_policy", "_template", "_utf8")

    def __init__(self, name: str, template: Template, policy: _Policy) -> None:
        self._name = name
        self._template = template
        self._policy = policy
        self._utf8 = policy.utf8

    def render(self, variables: Mapping[str, str]) -> bytes:
        value = self._template.render(variables)
        if "\r" in value or "\n" in value or "\0" in value:
            # A variable's value may hold a line break (a feed's field): it must not end the
            # field and start another (header injection).
            value = " ".join(value.replace("\0", "").splitlines())
        if (
            len(self._name) + 2 + len(value) <= _FOLD_AT
            and (self._utf8 or value.isascii())
            and value.isprintable()
        ):
            return f"{self._name}: {value}\r\n".encode()
        return _folded(self._name, value, self._policy)


def _folded(name: str, value: str, policy: _Policy) -> bytes:
    """The field folded (and, without SMTPUTF8, RFC 2047-encoded) by the email package."""
    try:
        stored_name, header = policy.header_store_parse(name, value)
        return policy.fold_binary(stored_name, header)
    except Exception:  # the email package's parsers raise many kinds on odd values
        return f"{name}: {value}\r\n".encode("ascii", "replace")


def _crlf(text: str) -> bytes:
    data = text.encode("utf-8").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data.replace(b"\n", b"\r\n")


def _stuffed(data: bytes) -> bytes:
    """``data`` (CRLF lines, starting at a line's start) dot-stuffed (RFC 5321 §4.5.2)."""
    return encode_message_text(data) if data else b""


class _Generated:
    """One generated message's parts (module docstring)."""

    __slots__ = (
        "_body",
        "_fields",
        "_prefix",
        "_prefix_sent",
        "_suffix",
        "_suffix_sent",
        "_want_date",
        "_want_id",
    )

    def __init__(self, spec: MessageSpec, *, stuffed: bool) -> None:
        fields: list[bytes | _Field] = []
        self._fields: tuple[bytes | _Field, ...] = ()
        self._body: Template | None
        if spec.template is not None:
            # `message:` with a size distribution: the template is the whole message, as the
            # user wrote it (no fields added).
            self._body = parse_template(spec.template)
            self._prefix = self._suffix = b""
            self._want_id = self._want_date = False
        else:
            from email import policy as email_policy

            policy = email_policy.SMTPUTF8 if spec.smtputf8 else email_policy.SMTP
            given = spec.headers or DEFAULT_HEADERS
            names = {name.lower() for name, _ in given}
            for name, text in given:
                template = parse_template(text)
                if template.is_constant:
                    fields.append(_folded(name, template.parts[0], policy))
                else:
                    fields.append(_Field(name, template, policy))
            self._fields = tuple(fields)
            self._body, self._prefix, self._suffix = _mime(spec, policy)
            self._want_id = "message-id" not in names
            self._want_date = "date" not in names
        self._prefix_sent = _stuffed(self._prefix) if stuffed else self._prefix
        tail = _stuffed(self._suffix) if stuffed else self._suffix
        self._suffix_sent = tail + END_OF_DATA if stuffed else tail

    def head(self, variables: Mapping[str, str], number: int) -> bytes:
        """The per-message part, CRLF, unstuffed: header fields, the MIME head, the body."""
        out = [f.render(variables) if isinstance(f, _Field) else f for f in self._fields]
        if self._want_id:
            uid = variables.get("uid", "smtpload")
            out.append(
                b"Message-ID: "
                + email.utils.make_msgid(f"{uid}.{number}", MESSAGE_ID_DOMAIN).encode()
                + b"\r\n"
            )
        if self._want_date:
            out.append(_CLOCK.date_field())
        return b"".join(out)

    def body(self, variables: Mapping[str, str]) -> bytes:
        return b"" if self._body is None else _crlf(self._body.render(variables))

    def sizes(self) -> tuple[int, int]:
        """The unstuffed lengths of the constant prefix and suffix."""
        return len(self._prefix), len(self._suffix)

    @property
    def prefix_sent(self) -> bytes:
        return self._prefix_sent

    @property
    def suffix_sent(self) -> bytes:
        return self._suffix_sent


def _mime(spec: MessageSpec, policy: _Policy) -> tuple[Template | None, bytes, bytes]:
    """The MIME head and body as the email package writes them, cut where the body ends.

    Returns:
        The body's template when it has variables (else None: it is in the prefix), the
        prefix (MIME fields, blank line, the parts up to the body's end) and the suffix (the
        rest: the other parts, the closing boundary), both CRLF, unstuffed.
    """
    body_text = spec.body or DEFAULT_BODY
    body = parse_template(body_text)
    from email.message import EmailMessage

    message = EmailMessage(policy=policy)
    if body.is_constant:
        text = body_text if body_text.endswith("\n") else body_text + "\n"
        long_line = max(len(line) for line in text.splitlines() or [""]) > _MAX_LINE
        if text.isascii() and not long_line:
            cte = "7bit"
        elif spec.smtputf8 and not long_line:
            cte = "8bit"  # RFC 6532 §3.7 / RFC 6152: needs 8BITMIME, as SMTPUTF8 does
        else:
            cte = "quoted-printable"
        message.set_content(text, cte=cte)
    else:
        literal = "".join(body.parts[::2])
        message.set_content(_BODY_MARKER + "\n", cte="7bit" if literal.isascii() else "8bit")
    for number, part in enumerate(spec.attachments, start=1):
        maintype, _, subtype = part.content_type.partition("/")
        data = part.data if part.size is None else _generated_bytes(number, part.size)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=part.filename)
    if spec.attachments:
        # A boundary of our own: the package's default draws from the global generator.
        digest = hashlib.sha256(repr(spec).encode()).hexdigest()[:24]
        message.set_boundary(f"=_smtpload_{digest}")
    raw = message.as_bytes(policy=policy)
    end = raw.index(b"\r\n\r\n") + 2
    head, rest = raw[:end], raw[end:]
    if not body.is_constant:
        marker = _BODY_MARKER.encode() + b"\r\n"
        at = rest.index(marker)
        return body, head + rest[:at], rest[at + len(marker) :]
    if not spec.attachments:
        return None, raw, b""
    delimiter = b"--" + message.get_boundary("").encode()
    first = rest.index(delimiter)
    after_body = rest.index(b"\r\n" + delimiter, first + len(delimiter))
    return None, head + rest[:after_body], rest[after_body:]


def _generated_bytes(number: int, size: int) -> bytes:
    """An attachment's generated bytes: the same in every run, incompressible."""
    return random.Random(f"smtpload/attachment/{number}/{size}").randbytes(size)


class MessageSource:
    """The messages of one data (or bdat) step (module docstring).

    Args:
        spec: what the scenario says.
        stuffed: DATA (messages dot-stuffed, ending in ``.``) rather than BDAT (octets).
    """

    __slots__ = ("_generated", "_in_order", "_messages", "_sizes", "_stuffed")

    def __init__(self, spec: MessageSpec, *, stuffed: bool = True) -> None:
        self._stuffed = stuffed
        self._in_order = spec.in_order
        self._sizes = SizeDraw(spec.size) if spec.size is not None else None
        self._generated = None
        if spec.source == "generated":
            self._generated = _Generated(spec, stuffed=stuffed)
            self._messages: tuple[bytes, ...] = ()
        elif stuffed:
            self._messages = tuple(encode_message_text(m) + END_OF_DATA for m in spec.messages)
        else:
            self._messages = spec.messages

    @property
    def count(self) -> int:
        """How many real messages it holds (0 for a generated one)."""
        return len(self._messages)

    def message(
        self, rng: random.Random, variables: Mapping[str, str], number: int, taken: int = 0
    ) -> bytes | PaddedMessage:
        """The ``number``-th (1-based) message of a session, ready to follow a 354;
        ``taken``: the messages this step sent before in the session (where a mailbox's
        messages in order go on)."""
        assert self._stuffed, "a bdat step's source gives octets()"
        sent = self._next(rng, variables, number, taken)
        assert not isinstance(sent, PaddedOctets)
        return sent

    def octets(
        self, rng: random.Random, variables: Mapping[str, str], number: int, taken: int = 0
    ) -> bytes | PaddedOctets:
        """The ``number``-th message of a session as a bdat step sends it (unstuffed)."""
        assert not self._stuffed, "a data step's source gives message()"
        sent = self._next(rng, variables, number, taken)
        assert not isinstance(sent, PaddedMessage)
        return sent

    def _next(
        self, rng: random.Random, variables: Mapping[str, str], number: int, taken: int
    ) -> bytes | PaddedMessage | PaddedOctets:
        generated = self._generated
        if generated is None:
            messages = self._messages
            if self._in_order:
                # Session s's m-th message of this step: ((s-1) + (m-1)) mod N, so that one
                # step goes through the mailbox whatever other steps send.
                session = int(variables.get("session", "1"))
                return messages[(session - 1 + taken) % len(messages)]
            return messages[rng.randrange(len(messages))]
        size = self._sizes.draw(rng) if self._sizes is not None else None
        head = generated.head(variables, number)
        body = generated.body(variables)
        full_lines, last_line = 0, b""
        if size is not None:
            prefix, suffix = generated.sizes()
            full_lines, last_line = padding_lines(size - len(head) - prefix - len(body) - suffix)
        if self._stuffed:
            head = _stuffed(head) + generated.prefix_sent + _stuffed(body) + last_line
        else:
            head = head + generated.prefix_sent + body + last_line
        tail = generated.suffix_sent
        if full_lines * len(FILLER_LINE) <= _INLINE_BYTES and len(tail) <= _INLINE_BYTES:
            return head + FILLER_LINE * full_lines + tail
        if self._stuffed:
            return PaddedMessage(head, full_lines, tail)
        return PaddedOctets(head, full_lines, tail)


def compile_messages(spec: MessageSpec, *, stuffed: bool = True) -> MessageSource:
    """The ``MessageSource`` of a data step's ``MessageSpec`` (bdat: ``stuffed=False``)."""
    return MessageSource(spec, stuffed=stuffed)
