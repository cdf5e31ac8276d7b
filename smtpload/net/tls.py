"""TLS for client sessions: one ``ssl.SSLContext`` per run, one ``TlsChannel`` per connection.

This module owns everything ``ssl``: building the run's context from the TLS settings (CA file,
server name, client certificate, minimum version, ``--tls-insecure``), the session to resume
from, and the TLS layer of a connection as memory buffers. It does no socket I/O: the client
(``client.py``) reads the socket and feeds the raw bytes in, and sends what comes out.

Why ``ssl.MemoryBIO`` and ``SSLContext.wrap_bio`` rather than ``trio.SSLStream``: the client reads
with ``recvmsg`` to get each read's kernel receive time (``wire_clock.py``), and sends with its
own non-blocking loop that takes the time before the syscall carrying a step's last byte
(``client._send_all``). ``SSLStream`` wraps a stream and reads through ``receive_some``, which
never sees ancillary data, so a session over it would lose the kernel clock. With memory BIOs the
client keeps its reads and sends: raw bytes read (with their kernel time) go into the incoming
BIO, plaintext comes out of ``SSLObject.read()``, so a reply's time is the receive time of the
read that completed the TLS record that completed the reply; writes go ``SSLObject.write()`` to
the outgoing BIO and out through the client's send loop, a chunk at a time (``WRITE_CHUNK_BYTES``:
a 10 MB message is never held whole a second time, encrypted).

Resumption (RFC 8446 §2.2, RFC 5077): the run keeps the newest good session, one per run, not
per worker, and each new connection offers it (``wrap_bio(session=...)``). TLS 1.3 tickets come
after the handshake, so a session is kept only from a connection that has read plaintext after
its handshake (by then its tickets were read: ``SSLSession.has_ticket``).

Certificates are verified by default, against the system's store (or ``SSL_CERT_FILE``) or the
CA file given; ``insecure`` turns that off, and the reports say so.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field

from smtpload.errors import UsageError, shown
from smtpload.scenario.model import TlsSettings

__all__ = [
    "COMMAND_LINE_NAMES",
    "WRITE_CHUNK_BYTES",
    "TlsChannel",
    "TlsClient",
    "TlsFailure",
    "TlsNames",
    "TlsOptions",
    "build_tls_client",
]

#: Plaintext handed to the TLS layer at a time: its ciphertext is sent before the next chunk.
WRITE_CHUNK_BYTES = 64 * 1024

_READ_BYTES = 65536

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

# "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)" -> "wrong version number"
_OPENSSL_NOISE = re.compile(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$")


@dataclass(frozen=True, slots=True)
class TlsNames:
    """What a caller calls its TLS choices, for the error messages: the command line's options
    (``--tls-ca FILE``) or the API's keyword arguments (``tls_ca='FILE'``)."""

    implicit: str
    target: str
    ca: str
    cert: str
    key: str
    #: between a name and its value: " " for an option, "=" for a keyword argument
    separator: str

    def given(self, name: str, value: str) -> str:
        """``--tls-ca 'ca.pem'``, or ``tls_ca='ca.pem'``."""
        return f"{name}{self.separator}{shown(value)}"


COMMAND_LINE_NAMES = TlsNames(
    implicit="--tls implicit",
    target="--target",
    ca="--tls-ca",
    cert="--tls-cert",
    key="--tls-key",
    separator=" ",
)


class TlsFailure(Exception):
    """TLS failed on a connection (handshake or record): the session's ``tls_error``."""


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """A run's TLS options: the settings (scenario's, overridden by the command line's), and
    ``insecure`` (``--tls-insecure``) and ``resume`` (``--tls-resume``)."""

    settings: TlsSettings = field(default_factory=TlsSettings)
    insecure: bool = False
    resume: bool = True


class TlsClient:
    """What every TLS connection of a run shares: the context, the server name to send and
    check, and the session to resume from.

    Attributes:
        verified: whether certificates are verified (False with ``--tls-insecure``).
        resume: whether connections offer the kept session.
    """

    __slots__ = ("_session", "context", "resume", "server_name", "verified")

    def __init__(
        self, context: ssl.SSLContext, server_name: str, *, verified: bool, resume: bool
    ) -> None:
        self.context = context
        self.server_name = server_name
        self.verified = verified
        self.resume = resume
        self._session: ssl.SSLSession | None = None

    def channel(self) -> TlsChannel:
        """A new connection's TLS layer, offering the kept session when resuming."""
        return TlsChannel(self)

    def keep(self, session: ssl.SSLSession) -> None:
        """Keep ``session`` as the one to resume from: the newest good one wins."""
        if self.resume:
            self._session = session

    @property
    def session_to_offer(self) -> ssl.SSLSession | None:
        return self._session if self.resume else None


class TlsChannel:
    """One connection's TLS layer, as memory buffers (see the module docstring)."""

    __slots__ = ("_client", "_incoming", "_outgoing", "_session_kept", "obj")

    def __init__(self, client: TlsClient) -> None:
        self._client = client
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._session_kept = False
        self.obj = client.context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_hostname=client.server_name,
            session=client.session_to_offer,
        )

    def handshake(self) -> bool:
        """Take the handshake as far as the bytes fed allow: True once it is complete.

        Raises:
            TlsFailure: the certificate did not verify, the server sent an alert or bytes
                that are not TLS, or no version is common to both.
        """
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError as error:
            raise TlsFailure(describe_ssl_error(error, handshake=True)) from None
        return True

    def feed(self, raw: bytes) -> None:
        """Raw bytes read from the socket; ``b""`` is the end of the TCP stream."""
        if raw:
            self._incoming.write(raw)
        else:
            self._incoming.write_eof()

    def outgoing(self) -> bytes:
        """The ciphertext to send now (``b""`` when there is none)."""
        return self._outgoing.read()

    def encrypt(self, plaintext: bytes | memoryview) -> bytes:
        """``plaintext`` (at most ``WRITE_CHUNK_BYTES`` of it) as ciphertext to send."""
        try:
            self.obj.write(plaintext)
        except ssl.SSLError as error:
            raise TlsFailure(describe_ssl_error(error, handshake=False)) from None
        return self._outgoing.read()

    def read(self) -> bytes | None:
        """Plaintext decrypted from the bytes fed so far; ``b""`` at the end of the stream
        (close_notify or a TCP EOF: RFC 8446 §6.1 lets SMTP, which ends on QUIT/221, take an
        EOF without close_notify); None when more bytes are needed.

        Raises:
            TlsFailure: a record that does not decrypt, or an alert.
        """
        try:
            data = self.obj.read(_READ_BYTES)
        except ssl.SSLWantReadError:
            return None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as error:
            raise TlsFailure(describe_ssl_error(error, handshake=False)) from None
        if data and not self._session_kept:
            self._keep_session()
        return data

    def _keep_session(self) -> None:
        session = self.obj.session
        # A TLS 1.3 session resumes only with a ticket, which came after the handshake.
        if session is not None and (session.has_ticket or self.obj.version() != "TLSv1.3"):
            self._client.keep(session)
            self._session_kept = True

    def description(self) -> tuple[str, str, bool]:
        """The version, cipher suite and whether the session was resumed, once established."""
        cipher = self.obj.cipher()
        return self.obj.version() or "?", cipher[0] if cipher else "?", self.obj.session_reused


def describe_ssl_error(error: ssl.SSLError, *, handshake: bool) -> str:
    """An ``ssl`` error in words, without OpenSSL's source locations."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {error.verify_message}"
    text = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], str) else str(error)
    text = _OPENSSL_NOISE.sub("", text).strip() or type(error).__name__
    where = "handshake failed" if handshake else "TLS record failed"
    return f"{where}: {text}"


def build_tls_client(
    options: TlsOptions, host: str, *, names: TlsNames = COMMAND_LINE_NAMES
) -> TlsClient:
    """The run's TLS client, for a target whose host is ``host`` (the default server name).

    ``names`` says what the caller calls the settings, for the messages (see
    ``COMMAND_LINE_NAMES``).

    Raises:
        UsageError: a CA file, certificate or key that cannot be read or used.
    """
    settings = options.settings
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as error:
        raise UsageError(
            f"{names.given(names.ca, settings.ca_file or '')}: {_reason(error)}; give a PEM"
            " file of the certificates to trust"
        ) from None
    if settings.min_version is not None:
        context.minimum_version = _VERSIONS[settings.min_version]
    if settings.cert_file is not None:
        try:
            context.load_cert_chain(settings.cert_file, settings.key_file)
        except (OSError, ssl.SSLError) as error:
            raise UsageError(
                f"{names.given(names.cert, settings.cert_file)}: {_reason(error)}; give a"
                f" PEM certificate (and its key, with {names.key})"
            ) from None
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return TlsClient(
        context,
        settings.server_name or host,
        verified=not options.insecure,
        resume=options.resume,
    )


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return _OPENSSL_NOISE.sub("", str(error)).strip() or type(error).__name__
