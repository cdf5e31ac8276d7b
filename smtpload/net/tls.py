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
from typing import Any

from smtpload.errors import Problem, ScenarioError, UsageError, shown
from smtpload.scenario.model import Origin, TlsSettings

__all__ = [
    "COMMAND_LINE_NAMES",
    "WRITE_CHUNK_BYTES",
    "TlsChannel",
    "TlsClient",
    "TlsFailure",
    "TlsNames",
    "TlsOptions",
    "build_tls_client",
    "tls_context",
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

    __slots__ = ("_built_from", "_session", "context", "resume", "server_name", "verified")

    def __init__(
        self, context: ssl.SSLContext, server_name: str, *, verified: bool, resume: bool
    ) -> None:
        self.context = context
        self.server_name = server_name
        self.verified = verified
        self.resume = resume
        self._session: ssl.SSLSession | None = None
        self._built_from: tuple[TlsOptions, str] | None = None  # see __reduce__

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as what it was built from (a worker process builds its own: a context and
        a TLS session cannot be pickled); only a client made by :func:`build_tls_client`."""
        if self._built_from is None:
            raise TypeError("only a TlsClient made by build_tls_client can be pickled")
        return (build_tls_client, self._built_from)

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
    """One connection's TLS layer, as memory buffers (see the module docstring).

    Making one raises TlsFailure when the server name cannot be sent (ssl's IDNA encoding
    refuses it): that session's ``tls_error``, never the run's crash.
    """

    __slots__ = ("_client", "_incoming", "_outgoing", "_session_kept", "obj")

    def __init__(self, client: TlsClient) -> None:
        self._client = client
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._session_kept = False
        try:
            self.obj = client.context.wrap_bio(
                self._incoming,
                self._outgoing,
                server_hostname=client.server_name,
                session=client.session_to_offer,
            )
        except (ValueError, TypeError) as error:  # UnicodeError is a ValueError
            # The options and the loader refuse such a name first (server_name_problem); a
            # target host that is no valid name must still fail its session, not the run.
            reason = error.__cause__ or error
            raise TlsFailure(
                f"server name {shown(client.server_name)} cannot be sent: {reason}"
            ) from None

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


def build_tls_client(options: TlsOptions, host: str) -> TlsClient:
    """The run's TLS client, for a target whose host is ``host`` (the default server name).

    A file that does not load is named by its origin in ``options.settings`` (the option,
    the API's keyword or the scenario's key).

    Raises:
        UsageError: a CA file, certificate or key given on the command line that cannot be
            read or used (the message names the option).
        ScenarioError: the same for a file a scenario's target names (at its key).
    """
    settings = options.settings
    context = tls_context(settings)
    if settings.min_version is not None:
        context.minimum_version = _VERSIONS[settings.min_version]
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    client = TlsClient(
        context,
        settings.server_name or host,
        verified=not options.insecure,
        resume=options.resume,
    )
    client._built_from = (options, host)
    return client


class _EncryptedKey(Exception):
    """Raised from the key's password callback: OpenSSL asks for a passphrase only when the
    key is encrypted, and without a callback it would ask on the terminal, in the middle of
    a run."""


def _no_passphrase() -> str:
    raise _EncryptedKey


def tls_context(settings: TlsSettings) -> ssl.SSLContext:
    """The context with the CA file, client certificate and key of ``settings`` loaded, as a
    run loads them (``validate`` uses it to check a scenario's files).

    Each problem names where its file was given (``settings.origin``) and says in words what
    is wrong with it, without OpenSSL's codes.

    Raises:
        UsageError, ScenarioError: as ``build_tls_client``.
    """
    ca_file, cert_file, key_file = settings.ca_file, settings.cert_file, settings.key_file
    for name, path in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)):
        if path is not None:
            _check_readable(settings, name, path)
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        assert ca_file is not None  # the system's store loads without a complaint
        raise _file_error(
            settings, "ca_file", ca_file, _reason(error, "certificate"),
            "give a PEM file of the certificates to trust",
        ) from None  # fmt: skip
    if cert_file is None:
        return context
    try:
        # The certificate alone first: load_cert_chain says "PEM lib" for a bad certificate
        # and for a bad key alike, so its error alone cannot say which file is wrong.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cert_file)
    except (OSError, ssl.SSLError) as error:
        raise _file_error(
            settings, "cert_file", cert_file, _reason(error, "certificate"),
            "give the client certificate in PEM",
        ) from None  # fmt: skip
    # Without a key file, the key is looked for in the certificate's file.
    key_name, key_path = (
        ("key_file", key_file) if key_file is not None else ("cert_file", cert_file)
    )
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except _EncryptedKey:
        raise _file_error(
            settings, key_name, key_path,
            "the key is encrypted: smtpload cannot ask for its passphrase",
            "give an unencrypted key (e.g. openssl pkey -in KEY -out PLAIN.pem)",
        ) from None  # fmt: skip
    except (OSError, ssl.SSLError) as error:
        if isinstance(error, ssl.SSLError) and error.reason == "KEY_VALUES_MISMATCH":
            raise _file_error(
                settings, key_name, key_path,
                f"this key is not the client certificate's ({shown(cert_file)})",
                "give the key that belongs to the certificate",
            ) from None  # fmt: skip
        if key_file is None:
            raise _file_error(
                settings, "cert_file", cert_file, "no private key found in it",
                "give its key too, in a file of its own or in this one",
            ) from None  # fmt: skip
        raise _file_error(
            settings, "key_file", key_file, _reason(error, "private key"),
            "give the client certificate's private key in PEM",
        ) from None  # fmt: skip
    return context


#: The option that sets each file, named when its origin is not known (TlsSettings made in
#: code, e.g. by the API).
_DEFAULT_ORIGINS = {"ca_file": "--tls-ca", "cert_file": "--tls-cert", "key_file": "--tls-key"}


def _check_readable(settings: TlsSettings, name: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise _file_error(
            settings, name, path, error.strerror or type(error).__name__, "check the path"
        ) from None


def _file_error(
    settings: TlsSettings, name: str, path: str, what: str, hint: str
) -> UsageError | ScenarioError:
    """A TLS file's problem, said where its file was given: the option, or the scenario's key
    (``FILE:LINE:COL``)."""
    origin = settings.origin(name) or Origin(_DEFAULT_ORIGINS[name])
    # An option is followed by its value ("--tls-ca 'ca.pem'"), a keyword argument by "=" and
    # its value ("tls_ca='ca.pem'", the API's names end in "=").
    between = "" if origin.name.endswith("=") else " "
    message = f"{origin.name}{between}{shown(path)}: {what}; {hint}"
    if origin.file is None:
        return UsageError(message)
    return ScenarioError([Problem(origin.file, origin.line, origin.column, message)])


def _reason(error: OSError, wanted: str) -> str:
    """Why a file did not load, in words: ``wanted`` is what it should have held."""
    if isinstance(error, ssl.SSLError):
        if error.reason == "NO_CERTIFICATE_OR_CRL_FOUND":
            return f"no PEM {wanted} found in it"
        if error.reason is None or error.reason == "PEM_LIB":
            return f"not a PEM {wanted} (or a damaged one)"
        text = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], str) else ""
        return _OPENSSL_NOISE.sub("", text).strip() or error.reason.replace("_", " ").lower()
    return error.strerror or str(error) or type(error).__name__
