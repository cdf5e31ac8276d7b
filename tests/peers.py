"""Real SMTP peers for the tests: where a server is, and what the in-process one received.

This module owns the value types that the fixtures in ``conftest.py`` hand to tests, and the
aiosmtpd handler that records every message. It starts nothing itself: the fixtures do that.

The handler runs inside aiosmtpd's own asyncio loop, in the controller's thread, so
``RecordingHandler.messages`` is written from that thread. Read it only after the client that
talked to the server has finished (for example after ``trio.to_thread.run_sync`` returned).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "AUTH_PASSWORD",
    "AUTH_TOKEN",
    "AUTH_USER",
    "FULL_DOMAIN",
    "REJECT_DOMAIN",
    "AuthHandler",
    "DovecotLmtp",
    "LmtpHandler",
    "PeerRecordingHandler",
    "ProxiedConnection",
    "ProxyRecordingHandler",
    "ReceivedMessage",
    "RecordingHandler",
    "RecordingPeer",
    "RecordingPostfix",
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
class DovecotLmtp:
    """Dovecot's LMTP server (``.ci/postfix-setup``), which delivers to two maildirs.

    Attributes:
        host, port: its TCP listener (127.0.0.1:10024).
        socket_path: its unix-socket listener (``/run/dovecot-smtpload-lmtp/lmtp``).
        mailboxes: the two users it delivers to; any other recipient gets ``550 5.1.1`` at RCPT.
        maildir_root: each mailbox's maildir is ``maildir_root/<user>/``.
    """

    host: str
    port: int
    socket_path: Path
    mailboxes: tuple[str, str]
    maildir_root: Path

    def delivered(self, mailbox: str, marker: bytes) -> list[bytes]:
        """The messages in ``mailbox``'s ``new/`` folder that contain ``marker``."""
        folder = self.maildir_root / mailbox / "new"
        if not folder.is_dir():
            return []
        return [data for path in folder.iterdir() if marker in (data := path.read_bytes())]


@dataclass(frozen=True, slots=True)
class RecordingPostfix:
    """Postfix's recording transport and its client-address services (``.ci/postfix-setup``).

    Mail to any address in ``domain`` (on any of Postfix's ports: 10025 plain, 10027 STARTTLS,
    ...) is stored as delivered, one file per message and recipient, in
    ``directory/<recipient>/<queue id>.eml``: the bytes received, with LF line ends (pipe(8)
    delivers the queue file's lines), Postfix's ``Received:`` header on top, and the headers
    its cleanup adds to a message without them (``Message-Id``, ``Date``, ``From``). Delivery
    follows the 250 by a fraction of a second: use ``wait_for``.

    Attributes:
        host: where the ports listen.
        plain_port: 10025 (the stock server; record.test goes to the recording transport).
        proxy_port: takes a PROXY protocol header (v1 or v2) before the greeting; the
            ``Received:`` header names the client address the header gave.
        xclient_port: XCLIENT allowed from loopback; ``Received:`` names XCLIENT's address.
        proxy6_port: as ``proxy_port``, and takes IPv6 client addresses (TCP6) too.
        xclient6_port: as ``xclient_port``, and takes IPv6 addresses (``ADDR=IPV6:...``) too.
    """

    host: str
    plain_port: int
    proxy_port: int
    xclient_port: int
    directory: Path
    domain: str = "record.test"
    proxy6_port: int = 10030
    xclient6_port: int = 10031

    def folder(self, recipient: str) -> Path:
        """Where the messages to ``recipient`` land (the script's safe-name rule)."""
        safe = "".join(
            ch if ch.isascii() and (ch.isalnum() or ch in "@._+-") else "_"
            for ch in recipient.encode("utf-8").decode("latin-1")
        )
        return self.directory / safe

    def wait_for(self, recipient: str, count: int = 1, timeout_s: float = 20.0) -> list[bytes]:
        """The ``count`` messages delivered to ``recipient``, oldest first, waiting up to
        ``timeout_s`` for them (AssertionError naming how many came if they do not)."""
        folder = self.folder(recipient)
        deadline = time.monotonic() + timeout_s
        while True:
            files = sorted(folder.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns)
            if len(files) >= count or time.monotonic() >= deadline:
                break
            threading.Event().wait(0.05)  # another process delivers: poll, bounded
        assert len(files) >= count, (
            f"{len(files)} of {count} messages to {recipient} arrived in {folder} within"
            f" {timeout_s:g} s (see /var/log/postfix.log)"
        )
        return [path.read_bytes() for path in files]


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message as the in-process server accepted it.

    Attributes:
        mail_from: the MAIL FROM address, without angle brackets.
        rcpt_tos: the accepted RCPT TO addresses, in order; refused ones are not here.
        content: the DATA section as bytes, dot-unstuffed, without the final ".".
        mail_options: the MAIL FROM parameters (``SIZE=123``, ``SMTPUTF8``, ...), in order;
            not compared, so that tests comparing whole messages need not spell them.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    mail_options: tuple[str, ...] = field(default=(), compare=False)


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
            mail_options=tuple(envelope.mail_options),
        )
        with self._lock:
            self._messages.append(message)
        return "250 2.0.0 Ok: queued"


class PeerRecordingHandler(RecordingHandler):
    """``RecordingHandler`` that also records the client address of each accepted message
    (``session.peer``'s address, as the server's socket saw it): where ``--source`` bound it."""

    def __init__(self) -> None:
        super().__init__()
        self._peers: list[str] = []

    @property
    def peers(self) -> list[str]:
        """The client address of each message accepted so far, oldest first."""
        with self._lock:
            return list(self._peers)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        peer = session.peer
        address = str(peer[0] if isinstance(peer, tuple) else peer)
        with self._lock:
            self._peers.append(address)
        return await super().handle_DATA(server, session, envelope)


#: The LMTP handler answers a recipient in this domain "452 4.2.2" after the message.
FULL_DOMAIN = "full.test"


class LmtpHandler(RecordingHandler):
    """The recording handler as an LMTP server's (``aiosmtpd.lmtp.LMTP``): one reply per
    accepted recipient after the message, in RCPT order (RFC 2033 §4.2).

    aiosmtpd 1.4.6's LMTP class only swaps HELO/EHLO for LHLO and sends whatever the DATA hook
    returns, so the hook returns the replies joined by CRLF: ``250 2.0.0 <rcpt> Saved`` for
    each, but ``452 4.2.2 <rcpt> Mailbox full`` for ``@full.test``.
    """

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await super().handle_DATA(server, session, envelope)
        return "\r\n".join(
            f"452 4.2.2 <{rcpt}> Mailbox full"
            if rcpt.lower().endswith("@" + FULL_DOMAIN)
            else f"250 2.0.0 <{rcpt}> Saved"
            for rcpt in envelope.rcpt_tos
        )


@dataclass(frozen=True, slots=True)
class RecordingPeer(SmtpPeer):
    """The in-process aiosmtpd server: where it listens, and its handler's record."""

    handler: RecordingHandler = field(compare=False)


# -- AUTH (RFC 4954): the server side of each mechanism smtpload speaks ------------------------

#: The one account the AUTH test server knows. The password is long and odd enough that a leak
#: test's search for it (and its base64) cannot match by chance.
AUTH_USER = "alice@example.test"
AUTH_PASSWORD = "pw-Zq7!correct horse battery staple#9"
AUTH_TOKEN = "ya29.token-Xk3vQp9LmN2rT8sW4yZ6bC1dF5gH7jK0"

_SCRAM_SALT = b"smtpload-test-salt"
_SCRAM_ITERATIONS = 4096


def _hmac256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


class AuthHandler(RecordingHandler):
    """``RecordingHandler`` that also speaks CRAM-MD5, XOAUTH2 and SCRAM-SHA-256 (aiosmtpd
    speaks PLAIN and LOGIN itself, through ``authenticate``), knowing one account:
    ``AUTH_USER`` with ``AUTH_PASSWORD`` (XOAUTH2: ``AUTH_TOKEN``).

    The server sides follow the RFCs independently of smtpload's client code: RFC 2195's
    keyed MD5 over a fresh challenge; the XOAUTH2 error round (334 base64 JSON, an empty line,
    535); RFC 5802's server for SCRAM-SHA-256, which checks the client proof and sends the
    real server signature.
    """

    @staticmethod
    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == AUTH_USER.encode()
            and auth_data.password == AUTH_PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        challenge = f"<{secrets.randbelow(10**9)}.{time.time_ns()}@auth.test>".encode()
        response = await server.challenge_auth(challenge)
        if response is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(response, bytes)
        user, _, digest = response.partition(b" ")
        expected = hmac.new(AUTH_PASSWORD.encode(), challenge, hashlib.md5).hexdigest()
        ok = user == AUTH_USER.encode() and hmac.compare_digest(digest, expected.encode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) < 2:
            blob = await server.challenge_auth(b"")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            blob = base64.b64decode(args[1], validate=True)
        assert isinstance(blob, bytes)
        expected = f"user={AUTH_USER}\x01auth=Bearer {AUTH_TOKEN}\x01\x01".encode()
        if blob == expected:
            return AuthResult(success=True)
        # Google's failure: a 334 with base64 JSON; the client answers with an empty line.
        error = b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'
        await server.challenge_auth(error)
        return AuthResult(success=False, handled=False)

    async def auth_SCRAM__SHA__256(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) < 2:
            return AuthResult(
                success=False, handled=False, message="501 5.5.2 initial response expected"
            )
        client_first = base64.b64decode(args[1], validate=True).decode()
        gs2, _, client_first_bare = client_first.partition(",,")
        if gs2 != "n":
            return AuthResult(success=False, handled=False, message="501 5.5.2 bad gs2 header")
        fields = dict(part.split("=", 1) for part in client_first_bare.split(","))
        nonce = fields["r"] + secrets.token_urlsafe(12)
        salt = base64.b64encode(_SCRAM_SALT).decode()
        server_first = f"r={nonce},s={salt},i={_SCRAM_ITERATIONS}"
        client_final = await server.challenge_auth(server_first.encode())
        if client_final is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(client_final, bytes)
        without_proof, _, proof_text = client_final.decode().rpartition(",p=")
        auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
        salted = hashlib.pbkdf2_hmac(
            "sha256", AUTH_PASSWORD.encode(), _SCRAM_SALT, _SCRAM_ITERATIONS
        )
        client_key = _hmac256(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        signature = _hmac256(stored_key, auth_message)
        proof = base64.b64decode(proof_text)
        claimed_key = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        user_ok = fields.get("n") == AUTH_USER and without_proof.startswith(f"c=biws,r={nonce}")
        if not (user_ok and hashlib.sha256(claimed_key).digest() == stored_key):
            return AuthResult(success=False, handled=False)
        server_signature = _hmac256(_hmac256(salted, b"Server Key"), auth_message)
        final = f"v={base64.b64encode(server_signature).decode()}".encode()
        if await server.challenge_auth(final) is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=True)


# -- PROXY protocol (HAProxy's spec): what the in-process server was told --------------------


@dataclass(frozen=True, slots=True)
class ProxiedConnection:
    """What one connection's PROXY header said, as aiosmtpd parsed it (``ProxyData``)."""

    version: int | None
    source: str
    source_port: int | None
    destination: str
    destination_port: int | None


class ProxyRecordingHandler(RecordingHandler):
    """``RecordingHandler`` that also records each connection's PROXY header (aiosmtpd's
    ``handle_PROXY`` hook, called when the server runs with ``proxy_protocol_timeout``)."""

    def __init__(self) -> None:
        super().__init__()
        self._proxied: list[ProxiedConnection] = []

    @property
    def proxied(self) -> list[ProxiedConnection]:
        """A snapshot of the headers received so far, oldest first."""
        with self._lock:
            return list(self._proxied)

    def forget_proxied(self) -> None:
        """Forget the headers received so far (the controller's start-up check's)."""
        with self._lock:
            self._proxied.clear()

    async def handle_PROXY(
        self, server: SMTP, session: Session, envelope: Envelope, proxy_data: object
    ) -> bool:
        data = proxy_data
        connection = ProxiedConnection(
            version=getattr(data, "version", None),
            source=str(getattr(data, "src_addr", "")),
            source_port=getattr(data, "src_port", None),
            destination=str(getattr(data, "dst_addr", "")),
            destination_port=getattr(data, "dst_port", None),
        )
        with self._lock:
            self._proxied.append(connection)
        return True  # accept the connection
