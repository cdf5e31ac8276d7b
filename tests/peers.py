"""Real SMTP peers for the tests: where a server is, and what the in-process one received.

This module owns the value types that the fixtures in ``conftest.py`` hand to tests, and the
aiosmtpd handler that records every message. It starts nothing itself: the fixtures do that.

The handler runs inside aiosmtpd's own asyncio loop, in the controller's thread, so
``RecordingHandler.messages`` is written from that thread. Read it only after the client that
talked to the server has finished (for example after ``trio.to_thread.run_sync`` returned).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = [
    "REJECT_DOMAIN",
    "ReceivedMessage",
    "RecordingHandler",
    "RecordingPeer",
    "SmtpPeer",
    "TlsPostfixPeers",
]

#: Recipients in this domain are refused by both test servers (aiosmtpd and Postfix alike).
REJECT_DOMAIN = "reject.test"


@dataclass(frozen=True, slots=True)
class SmtpPeer:
    """An SMTP server the tests can connect to."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TlsPostfixPeers:
    """Postfix's TLS and SASL services (``.ci/postfix-setup``), which discard what they accept.

    Attributes:
        host: where all three listen.
        starttls_port: STARTTLS offered, not required; no AUTH (RFC 3207).
        submission_port: submission (RFC 6409): STARTTLS required (MAIL before it gets 530),
            AUTH offered only after it; RCPT without AUTH gets 554 5.7.1.
        submissions_port: the same submission service over implicit TLS (RFC 8314): TLS from
            the first byte, so a plain-text client never sees the banner.
        ca_file: the CA that signed the servers' certificate (for ``localhost``, 127.0.0.1
            and ::1).
        unknown_ca_file: an unrelated CA, which signed nothing the servers present.
        user, password: the one SASL account (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256).
    """

    host: str
    starttls_port: int
    submission_port: int
    submissions_port: int
    ca_file: Path
    unknown_ca_file: Path
    user: str
    password: str


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message as the in-process server accepted it.

    Attributes:
        mail_from: the MAIL FROM address, without angle brackets.
        rcpt_tos: the accepted RCPT TO addresses, in order; refused ones are not here.
        content: the DATA section as bytes, dot-unstuffed, without the final ".".
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


class RecordingHandler:
    """aiosmtpd handler: accepts and records every message, refuses ``@reject.test`` recipients.

    The refusal text is the one Postfix sends for its access-map rejection, so a test can
    expect the same reply from both servers.

    Attributes:
        rcpt_delay_s: how long to wait before answering RCPT (0: at once), for a server that
            became slower. Set it while no client is talking to the server.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []
        self.rcpt_delay_s = 0.0

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of the messages accepted so far, oldest first."""
        with self._lock:
            return list(self._messages)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_delay_s:
            await asyncio.sleep(self.rcpt_delay_s)
        if address.lower().endswith("@" + REJECT_DOMAIN):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        # A handle_RCPT hook replaces aiosmtpd's own bookkeeping, so do what it would have done.
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Bytes unless the controller was built with decode_data=True; ours never is.
        content = envelope.content
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=content if isinstance(content, bytes) else (content or "").encode(),
        )
        with self._lock:
            self._messages.append(message)
        return "250 2.0.0 Ok: queued"


@dataclass(frozen=True, slots=True)
class RecordingPeer(SmtpPeer):
    """The in-process aiosmtpd server: where it listens, and its handler's record."""

    handler: RecordingHandler = field(compare=False)
