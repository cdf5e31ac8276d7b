"""The validated scenario: what a YAML file means, as frozen dataclasses.

``loader.py`` builds these from YAML (and owns every error message about the file);
``compiler.py`` turns them into what the engine runs. Nothing here parses or does I/O.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field

from smtpload.errors import shown

__all__ = [
    "ARRIVALS",
    "AUTH_MECHANISMS",
    "BUILTIN_VARIABLES",
    "IMPLICIT_TLS_PORT",
    "MAX_DATA_SIZE_BYTES",
    "MAX_RCPT_LINE_OCTETS",
    "MESSAGE_SIZE_VARIABLE",
    "MESSAGE_STEP_KINDS",
    "PER_MESSAGE_VARIABLES",
    "PROTOCOLS",
    "TLS_MIN_VERSIONS",
    "UNIX_PREFIX",
    "XCLIENT_ATTRIBUTES",
    "AuthSpec",
    "Block",
    "BlockKind",
    "Chunking",
    "Credential",
    "Expectation",
    "FeedColumn",
    "FeedOrder",
    "Load",
    "LoadStage",
    "MessageAttachment",
    "MessageSpec",
    "Origin",
    "ProxySpec",
    "RandomChoice",
    "RandomNumber",
    "RecipientSpec",
    "Scenario",
    "SizeSpec",
    "Step",
    "StepKind",
    "Target",
    "ThresholdText",
    "TlsSettings",
    "VariableValue",
    "is_unix_target",
    "parse_target",
    "server_name_problem",
]

#: Variables every template may use without declaring them.
#: session: the session number, 1..N; uid: unique per session and run; run_id: the run's id;
#: date: an RFC 5322 date-time for Date: headers; message_id: a Message-ID value, new for each
#: message (so a session that sends several messages gives each its own); message_size: the
#: size of the next message step's message, for ``SIZE=`` (RFC 1870).
#: message_number: the message's number within its session, 1, 2, ...
BUILTIN_VARIABLES = (
    "session",
    "uid",
    "run_id",
    "date",
    "message_id",
    "message_size",
    "message_number",
)

#: The built-in only a send step may use: the octet count of the message that the next
#: message step (of ``MESSAGE_STEP_KINDS``) sends, as RFC 1870 §4 counts it for ``SIZE=``.
MESSAGE_SIZE_VARIABLE = "message_size"

#: The built-ins whose value is new for each message: only a ``data`` step's message may use
#: them (a variable is filled in once per session, a command belongs to no one message).
PER_MESSAGE_VARIABLES = ("message_id", "message_number")

#: The longest RCPT command line sent, CRLF included: RFC 5321 §4.5.3.1.4's 512 octets, and
#: the 500 more that RFC 3461 §4 allows for its NOTIFY and ORCPT parameters. An address (its
#: literal part) or a feed's value that is longer on its own is refused by the scenario's
#: reader (scenario/rcpt_syntax.py); one made longer by variables fails its session as
#: protocol_error, not sent (protocol/recipients.py). Here, not in rcpt_syntax.py, so that the
#: protocol layer (a worker process) needs no YAML reader to know it.
MAX_RCPT_LINE_OCTETS = 512 + 500

#: The largest ``data: {size: N}``: 1 GiB. Real servers refuse far smaller messages (Postfix's
#: default ``message_size_limit`` is 10 MB, the built-in sink's 100 MiB), so a larger size is
#: nearly always a slip of the keyboard (``1000000000000``). The padding is sent from one block
#: shared by every session (``protocol/wire.py``), so the bound is not about memory.
MAX_DATA_SIZE_BYTES = 1 << 30


#: The arrival processes of an open-loop run (``load: arrivals``, ``--arrivals``): evenly
#: spaced, or at independent exponential gaps (load/arrivals.py).
ARRIVALS: tuple[str, ...] = ("constant", "poisson")


#: The dialogues a scenario may speak (``protocol:``): SMTP (RFC 5321), or LMTP (RFC 2033),
#: whose hello is LHLO and whose message gets one reply per accepted recipient.
PROTOCOLS: tuple[str, ...] = ("smtp", "lmtp")


class StepKind(enum.Enum):
    GREETING = "greeting"  # wait for the banner, send nothing
    SEND = "send"  # one command line; CRLF is added
    DATA = "data"  # the message after a 354; dot-stuffed and terminated by "."
    CLOSE = "close"  # expect the server to close the connection
    STARTTLS = "starttls"  # send STARTTLS, expect 220, then upgrade (RFC 3207)
    TLS = "tls"  # the TLS handshake: after a starttls step, or first with implicit TLS
    AUTH = "auth"  # an SMTP AUTH exchange (RFC 4954), one step however many rounds it takes
    XCLIENT = "xclient"  # Postfix's XCLIENT with attributes, expect 220 (protocol/xclient.py)
    BDAT = "bdat"  # the message in BDAT chunks (RFC 3030): no DATA, no dot-stuffing, no "."
    RCPT = "rcpt"  # RCPT TO for each of a message's recipients (RecipientSpec), each judged


class BlockKind(enum.Enum):
    REPEAT = "repeat"  # its steps run a number of times per session (Block.count_min..max)
    PIPELINE = "pipeline"  # its steps' commands go in one write (RFC 2920), replies in order


@dataclass(frozen=True, slots=True)
class Block:
    """A ``repeat:`` or ``pipeline:`` item of ``steps:``: a range of the scenario's (flat)
    steps.

    ``Scenario.steps`` stays one flat tuple in file order (each step once, so each keeps one
    name and one histogram however often it runs); blocks say which ranges repeat or go
    pipelined. Blocks nest properly (two blocks are disjoint or one holds the other); a
    pipeline block holds no block.

    Attributes:
        kind: what the block does.
        start: the index in ``Scenario.steps`` of its first step.
        end: the index after its last step (``start < end``).
        count_min, count_max: REPEAT: how many times the steps run, drawn per session (and
            per entry into the block, when it sits in another repeat) uniformly from
            ``count_min..count_max`` (equal for a fixed count; 0 runs them never).
        line, column: where the item starts in the file (1-based).
    """

    kind: BlockKind
    start: int
    end: int
    count_min: int = 1
    count_max: int = 1
    line: int = 0
    column: int = 0


#: The attributes of an ``xclient`` step: those XCLIENT_README lists (Postfix 3.x).
XCLIENT_ATTRIBUTES = (
    "NAME",
    "REVERSE_NAME",
    "ADDR",
    "PORT",
    "PROTO",
    "HELO",
    "LOGIN",
    "DESTADDR",
    "DESTPORT",
)

#: The steps that send a message: the one a ``{message_size}`` before them measures.
MESSAGE_STEP_KINDS = (StepKind.DATA, StepKind.BDAT)


#: The lowest TLS versions a run may insist on (``--tls-min-version``, ``min_version:``).
TLS_MIN_VERSIONS = ("1.2", "1.3")

#: The port of SMTP over implicit TLS, "submissions" (RFC 8314 §7.3).
IMPLICIT_TLS_PORT = 465


#: The SASL mechanisms an ``auth`` step may name (protocol/auth.py speaks them).
AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "SCRAM-SHA-256")


@dataclass(frozen=True, slots=True)
class Credential:
    """A user name, password or token of an ``auth`` step.

    Attributes:
        text: a template over the variables, or (``literal``) a value taken as it is, read
            from the environment (``{env: NAME}``). Never in a repr: it may be a secret.
        literal: whether ``text`` is a value rather than a template.
    """

    text: str = field(repr=False)
    literal: bool = False


@dataclass(frozen=True, slots=True)
class AuthSpec:
    """What an ``auth`` step authenticates with.

    Attributes:
        mechanism: one of ``AUTH_MECHANISMS``.
        username: the authentication identity.
        secret: the password; for XOAUTH2, the OAuth 2.0 access token.
    """

    mechanism: str
    username: Credential
    secret: Credential


@dataclass(frozen=True, slots=True)
class Chunking:
    """How a ``bdat`` step cuts its message into chunks (RFC 3030 §2).

    Attributes:
        chunk_size: every chunk this many octets, the last one the rest (None: not given).
        chunks: the chunks' sizes as listed; the last listed one takes the rest of a message
            whose length varies (a template without ``size:``).
        last_empty: send every chunk as a plain ``BDAT n``, then ``BDAT 0 LAST``.
        expect_chunk: what the reply to each chunk but the last must look like (default 250).
        With neither ``chunk_size`` nor ``chunks``, the message is one ``BDAT n LAST``.
    """

    chunk_size: int | None = None
    chunks: tuple[int, ...] = ()
    last_empty: bool = False
    expect_chunk: Expectation | None = None

    @property
    def several(self) -> bool:
        """Whether the step may send more than one chunk (then it has a ``NAME/chunk`` row)."""
        return self.chunk_size is not None or len(self.chunks) > 1 or self.last_empty


class FeedOrder(enum.Enum):
    """How sessions take a feed's rows (scenario/feeds.py)."""

    IN_ORDER = "in_order"  # session k: row (k - 1) mod rows, whatever the workers
    RANDOM = "random"  # a row drawn from the session's own generator (session_random.py)


@dataclass(frozen=True, slots=True)
class FeedColumn:
    """A variable (or an ``rcpt`` step's addresses) taken from a column of a CSV feed.

    Variables of the same ``path`` and ``order`` take the same row in a session.

    Attributes:
        path: the CSV file, made whole (relative names are the scenario's folder's).
        column: the column's name (from the header row).
        order: how sessions take the rows.
        values: the column's values, one per row (taken literally: no template).
    """

    path: str
    column: str
    order: FeedOrder = FeedOrder.IN_ORDER
    values: tuple[str, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RandomNumber:
    """``{random: {min: A, max: B}}``: a whole number from ``minimum`` to ``maximum`` (both
    included), drawn per session from the session's generator."""

    minimum: int
    maximum: int


@dataclass(frozen=True, slots=True)
class RandomChoice:
    """``{choice: [a, b, ...]}``: one of the texts (taken literally), drawn per session."""

    choices: tuple[str, ...]


#: A declared variable's value: a template (text), or a value source drawn per session.
VariableValue = str | FeedColumn | RandomNumber | RandomChoice


@dataclass(frozen=True, slots=True)
class RecipientSpec:
    """An ``rcpt`` step's recipients: one ``RCPT TO:<address>`` per recipient of the message,
    each reply judged by the step's ``expect`` and timed in the step's one histogram.

    Exactly one source of addresses is set:

    Attributes:
        address: a template of one address (without ``<>``); ``{recipient}`` in it is the
            recipient's number within the message, 1, 2, ...
        addresses: a list of address templates, taken in order.
        count_min, count_max: recipients per message, drawn per message uniformly from
            ``count_min..count_max`` (at least 1). For ``addresses`` the list's length when
            the file gives no count; a count longer than the list wraps around it.
        parameters: a template of RCPT parameters written after the ``>`` (``NOTIFY=NEVER``,
            RFC 3461), or "".
        line, column: where the step's value starts (1-based).
        feed: the addresses from a CSV feed's column (one row per recipient), or None; then
            ``address`` and ``addresses`` are not set.
    """

    address: str | None = None
    addresses: tuple[str, ...] = ()
    count_min: int = 1
    count_max: int = 1
    parameters: str = ""
    line: int = 0
    column: int = 0
    feed: FeedColumn | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """A server. ``implicit_tls``: TLS from the first byte (RFC 8314), as ``smtps://`` says.
    ``unix_path``: a unix stream socket (``unix:/path``) instead of ``host`` and ``port``."""

    host: str
    port: int
    implicit_tls: bool = False
    unix_path: str | None = None

    def __str__(self) -> str:
        if self.unix_path is not None:
            return f"{UNIX_PREFIX}{self.unix_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


#: The longest host name (RFC 1035 §2.3.4: 255 octets on the wire, 253 characters as text).
MAX_HOST_CHARS = 253


#: A target that is a unix socket's path: ``unix:/run/dovecot/lmtp``.
UNIX_PREFIX = "unix:"


def is_unix_target(text: str) -> bool:
    """Whether ``text`` names a unix socket (``unix:PATH``, the prefix in any case)."""
    return text[: len(UNIX_PREFIX)].lower() == UNIX_PREFIX


#: The longest unix socket path connect() takes: sun_path is 108 bytes on Linux, its NUL
#: terminator included (unix(7)); Python refuses a longer one at connect, in every session.
MAX_UNIX_PATH_BYTES = 107


def parse_target(
    text: str,
    default_port: int = 25,
    *,
    allow_port_zero: bool = False,
    unix_base: str | None = None,
) -> Target:
    """Parse ``host``, ``host:port``, ``[v6-address]:port`` or ``[v6-address]``.

    A bare IPv6 address is refused: ``::1:2626`` could be the address ``::1:2626`` or
    ``::1`` port 2626, and guessing wrong would send traffic to another host.

    ``smtps://HOST[:PORT]`` is the same with implicit TLS (RFC 8314), port 465 by default;
    ``smtp://`` is accepted too, for symmetry.

    ``unix:PATH`` is a unix stream socket; a relative PATH is taken from ``unix_base`` (the
    scenario's folder), else from the current directory.

    Raises:
        ValueError: with a message fit to show the user.
    """
    text = text.strip()
    if is_unix_target(text):
        path = text[len(UNIX_PREFIX) :]
        if not path or "\0" in path:
            raise ValueError(
                f"bad target {shown(text)}: write unix:/path/to/socket (a unix socket's path)"
            )
        full = os.path.join(unix_base or os.getcwd(), path)
        if len(os.fsencode(full)) > MAX_UNIX_PATH_BYTES:
            # Known now, so one error before the run rather than a connect_error per session.
            whole = "" if os.path.isabs(path) else f" (as {shown(full)})"
            raise ValueError(
                f"bad target {shown(text)}: the socket's path{whole} is"
                f" {len(os.fsencode(full)):,} bytes, and a unix socket's path has at most"
                f" {MAX_UNIX_PATH_BYTES} (sun_path, unix(7)); use a shorter path, such as a"
                " symbolic link to the socket in a shorter folder"
            )
        return Target("", 0, unix_path=full)
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() not in ("smtp", "smtps") or not rest:
            raise ValueError(
                f"bad target {shown(text)}: write HOST:PORT, smtp://HOST:PORT or"
                " smtps://HOST:PORT (implicit TLS)"
            )
        implicit = scheme.lower() == "smtps"
        if is_unix_target(rest):
            # The scheme's host would be lost (and looked up as "" in every session).
            raise ValueError(
                f"bad target {shown(text)}: a unix socket is written unix:/path/to/socket,"
                " without a scheme"
            )
        plain = parse_target(
            rest, IMPLICIT_TLS_PORT if implicit else default_port, allow_port_zero=allow_port_zero
        )
        return Target(plain.host, plain.port, implicit_tls=implicit)
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise ValueError(f"bad target {shown(text)}: write an IPv6 address as [::1]:2525")
        host, port_text = text[1:end], text[end + 2 :]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(
            f"bad target {shown(text)}: write an IPv6 address in brackets, as [::1]:2525 or [::1]"
        )
    if not host or any(ch.isspace() for ch in host):
        raise ValueError(
            f"bad target {shown(text)}: it needs a host name or address (without spaces);"
            " write HOST:PORT, e.g. 127.0.0.1:2525"
        )
    if len(host) > MAX_HOST_CHARS:
        raise ValueError(
            f"bad target {shown(text)}: a host name has at most {MAX_HOST_CHARS} characters"
            " (RFC 1035 §2.3.4)"
        )
    if not port_text:
        # "host:" is a port left out by mistake, not a request for the default: refuse it
        # rather than quietly connecting to port 25.
        if text.endswith(":"):
            raise ValueError(
                f"bad target {text!r}: the port after ':' is empty; write HOST:PORT, e.g."
                f" {text}25, or leave out the ':' for port {default_port}"
            )
        return Target(host, default_port)
    lowest = 0 if allow_port_zero else 1  # 0: a listener's "any free port"
    port_ok = port_text.isascii() and port_text.isdigit() and len(port_text) <= len("65535")
    if not port_ok or not lowest <= int(port_text) <= 65535:
        raise ValueError(
            f"bad target {shown(text)}: the port must be a number from {lowest} to 65535"
        )
    return Target(host, int(port_text))


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a reply must look like. Every given part must hold.

    Attributes:
        codes: acceptable reply codes, with classes such as ``2xx`` expanded; None accepts any.
        codes_text: the codes as the user wrote them, for messages (``"250"``, ``"2xx, 251"``).
        enhanced: an RFC 3463 enhanced status code (``"5.1.1"``; an ``x`` part matches any).
        pattern: a regular expression searched in the reply text (all lines joined by ``\\n``).
        capabilities: EHLO keywords (optionally with parameters, ``"AUTH PLAIN"``) that
            must be advertised.
        absent_capabilities: EHLO keywords that must not be advertised.
    """

    codes: frozenset[int] | None = None
    codes_text: str = ""
    enhanced: str | None = None
    pattern: str | None = None
    capabilities: tuple[str, ...] = ()
    absent_capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a session.

    Attributes:
        kind: what the step does.
        name: unique within the scenario; labels the step's histogram.
        text: SEND: the command line template (no CRLF). DATA: the message template, or None
            when the message is generated from ``data_size`` alone.
        data_size: DATA and BDAT only: pad the message with generated body lines to this many
            bytes.
        expect: what the reply must look like; None accepts any reply (but still waits for it).
            GREETING defaults to 220 and DATA to 250 when the file gives none.
        capture: a regex whose named groups become variables for later steps.
        timeout_s: this step's own timeout, or None for the run's default.
        auth: AUTH only: the mechanism and credentials (AUTH's expect defaults to 235).
        expect_each: LMTP's DATA and BDAT only: (RCPT step name, expectation) pairs that judge
            that recipient's reply after the message (BDAT: its LAST chunk) instead of
            ``expect`` (RFC 2033 §4.2, §4.3).
        xclient: XCLIENT only: (attribute name in upper case, value template) pairs, in file
            order (XCLIENT's expect defaults to 220).
        chunking: BDAT only: how the message is cut into chunks (``expect`` is the LAST
            chunk's, default 250).
        recipients: RCPT only: the message's recipients (``expect`` judges each reply).
        message: DATA and BDAT: a generated (``email`` package) or real message source, with
            ``text`` and ``data_size`` None.
        line, column: where the step starts in the file (1-based).
    """

    kind: StepKind
    name: str
    text: str | None = None
    data_size: int | None = None
    expect: Expectation | None = None
    capture: str | None = None
    timeout_s: float | None = None
    line: int = 0
    column: int = 0
    auth: AuthSpec | None = None
    expect_each: tuple[tuple[str, Expectation], ...] = ()
    xclient: tuple[tuple[str, str], ...] | None = None
    chunking: Chunking | None = None
    recipients: RecipientSpec | None = None
    message: MessageSpec | None = None


@dataclass(frozen=True, slots=True)
class SizeSpec:
    """How big a message is, drawn per message from the session's generator.

    Exactly one form is set:

    Attributes:
        fixed: always this many bytes.
        weighted: (size in bytes, weight) pairs: a size is drawn with probability weight/sum.
        median, p99: a log-normal distribution with this median and 99th percentile (bytes).
    All sizes count the message's CRLF form before dot-stuffing, and are at most
    ``MAX_DATA_SIZE_BYTES``.
    """

    fixed: int | None = None
    weighted: tuple[tuple[int, float], ...] = ()
    median: int | None = None
    p99: int | None = None


@dataclass(frozen=True, slots=True)
class MessageAttachment:
    """One MIME part of a generated message (multipart/mixed).

    Attributes:
        content_type: ``maintype/subtype``.
        filename: the name in its Content-Disposition.
        data: a file's bytes (read at load time); empty for generated ones.
        size: generated: this many bytes, made when the scenario is compiled.
    """

    content_type: str
    filename: str
    data: bytes = field(default=b"", repr=False)
    size: int | None = None


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """A data step's message beyond the ``message:``/``size:`` template: generated with the
    ``email`` package, or real messages read from files (scenario/message_syntax.py).

    Attributes:
        source: ``"generated"``, ``"file"`` (an .eml), ``"mbox"`` or ``"maildir"``.
        headers: generated: (field name, value template) pairs in file order; empty means
            smtpload's default From, To and Subject.
        body: generated: the body's template (text).
        attachments: generated: the parts after the body.
        size: generated: the size to pad the message to (its body), or None.
        smtputf8: generated: UTF-8 in headers as it is (RFC 6532), not RFC 2047 encoded-words.
        template: generated from a ``message:`` template (padded to a ``size`` distribution):
            that template, instead of headers and body.
        messages: file, mbox, maildir: each message's bytes with CRLF line ends, checked (no
            bare CR, no NUL) and with trace headers stripped when asked.
        in_order: whether a session's messages are taken in order (session s's m-th message
            is message ((s-1) + (m-1)) mod N), else at random from the session's generator.
        origin: the file or folder, as written, for messages.
        line, column: where the step's ``data:`` value starts (1-based).
    """

    source: str = "generated"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    attachments: tuple[MessageAttachment, ...] = ()
    size: SizeSpec | None = None
    smtputf8: bool = False
    template: str | None = None
    messages: tuple[bytes, ...] = field(default=(), repr=False)
    in_order: bool = True
    origin: str = ""
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class ProxySpec:
    """A scenario's ``proxy:`` key: the PROXY protocol header (HAProxy's proxy-protocol.txt)
    each session writes right after the TCP connect, before the greeting.

    Attributes:
        version: 1 (text) or 2 (binary).
        local: ``command: local``: v2's LOCAL command, v1's ``PROXY UNKNOWN`` (no addresses).
        source, source_port, destination, destination_port: templates over the variables;
            None takes the connection's own: its local address and port for the source, the
            target's address and port for the destination.
        line, column: where the key's value starts (1-based).
    """

    version: int = 1
    local: bool = False
    source: str | None = None
    source_port: str | None = None
    destination: str | None = None
    destination_port: str | None = None
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a setting was given, so that a problem found later (a TLS file that does not
    load) names it: a command-line option (``name`` alone, e.g. ``--tls-ca``), or a
    scenario's key (``name`` such as ``target: ca``, at ``file:line:column``, 1-based)."""

    name: str
    file: str | None = None
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How TLS is set up, from a scenario's ``target`` or the command line; None: not given.

    Attributes:
        ca_file: certificates to trust instead of the system's store (PEM).
        server_name: the name sent as SNI and checked against the certificate (default: the
            target's host).
        cert_file, key_file: a client certificate and its key (PEM).
        min_version: ``"1.2"`` or ``"1.3"``.
        origins: where each file setting was given (field name, origin); not compared.
    """

    ca_file: str | None = None
    server_name: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    min_version: str | None = None
    origins: tuple[tuple[str, Origin], ...] = field(default=(), compare=False)

    def origin(self, name: str) -> Origin | None:
        """Where the setting ``name`` (a field, such as ``"ca_file"``) was given, if known."""
        return dict(self.origins).get(name)

    def overridden_by(self, other: TlsSettings) -> TlsSettings:
        """These settings with each one that ``other`` gives taken from it (and its origin)."""
        origins = dict(self.origins)
        origins.update((name, o) for name, o in other.origins if getattr(other, name) is not None)
        ca_file, server_name, cert_file, key_file, min_version = (
            theirs if theirs is not None else ours
            for ours, theirs in zip(_tls_fields(self), _tls_fields(other), strict=True)
        )
        return TlsSettings(
            ca_file, server_name, cert_file, key_file, min_version, tuple(origins.items())
        )


def server_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a TLS server name, in words (None: it can be).

    The name is encoded as ``ssl`` encodes it before the handshake (the IDNA codec): an empty
    label (``a..b``, ``.``, a leading dot) or one over 63 characters (RFC 1035 §2.3.4) is
    refused there, so it is refused here, before any run, rather than in every session.
    """
    if not name or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return (
            f"{shown(name)} is not a host name (it is empty, or has spaces or control characters)"
        )
    try:
        name.encode("idna")
    except UnicodeError as error:
        reason = error.__cause__ or error
        return (
            f"{shown(name)} is not a valid host name ({reason}: each dot-separated label must"
            " have 1 to 63 characters, RFC 1035 §2.3.4)"
        )
    return None


def _tls_fields(settings: TlsSettings) -> tuple[str | None, ...]:
    return (
        settings.ca_file,
        settings.server_name,
        settings.cert_file,
        settings.key_file,
        settings.min_version,
    )


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole validated scenario file.

    Attributes:
        path: the file it came from (or ``<string>``).
        name: the ``name`` key, or the file's stem.
        variables: declared variables in file order, each a template that may use built-ins
            and variables declared before it, or a value source (``VariableValue``: a feed's
            column, a random number or choice).
        timeout_s: the scenario's default step timeout, or None.
        load: the ``load:`` block, or None without one.
        tls: the TLS settings its ``target`` gives (file names relative to the scenario's
            folder already made whole).
        protocol: ``smtp`` or ``lmtp`` (``PROTOCOLS``).
        proxy: the ``proxy:`` key (a PROXY protocol header per session), or None.
        blocks: the ``repeat:`` and ``pipeline:`` items, as ranges of ``steps``, ordered by
            ``start`` (an outer block before the blocks it holds).
    """

    path: str
    name: str
    description: str
    target: Target | None
    timeout_s: float | None
    variables: tuple[tuple[str, VariableValue], ...]
    steps: tuple[Step, ...]
    load: Load | None = None
    tls: TlsSettings = TlsSettings()
    protocol: str = "smtp"
    proxy: ProxySpec | None = None
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadStage:
    """One of ``load: stages``: over ``duration_s`` the rate moves in a straight line from
    where the stage before left it (0 before the first) to ``rate_per_s``."""

    duration_s: float
    rate_per_s: float


@dataclass(frozen=True, slots=True)
class ThresholdText:
    """A threshold of ``load: thresholds`` as written, with where it stands in the file.

    The scenario layer keeps the text only: the threshold language is report/thresholds.py's,
    read once the run's step names and loop are known.

    Attributes:
        text: the expression.
        line, column: where its first character stands (1-based).
        exact: whether character ``i`` of ``text`` stands at ``column + i`` on that line (a
            one-line scalar without escapes); otherwise only ``line`` and ``column`` are known.
    """

    text: str
    line: int
    column: int
    exact: bool = False

    def position(self, offset: int) -> tuple[int, int]:
        """The line and column (1-based) of character ``offset`` (0-based) of the text."""
        if self.exact and 0 <= offset <= len(self.text):
            return self.line, self.column + offset
        return self.line, self.column


@dataclass(frozen=True, slots=True)
class Load:
    """A scenario's ``load:`` block: the open-loop load it runs with by default.

    Either ``rate_per_s`` (with ``duration_s`` and ``ramp_s``, as ``--rate``, ``--duration``,
    ``--ramp``) or ``stages`` is set when the block is open loop; a block of ``thresholds``
    alone leaves the run closed loop. Every field the file leaves out is None (or empty).

    Attributes:
        line, column: where the block's value starts (1-based), for messages.
    """

    rate_per_s: float | None = None
    duration_s: float | None = None
    ramp_s: float | None = None
    stages: tuple[LoadStage, ...] = ()
    arrivals: str | None = None
    seed: int | None = None
    max_in_flight: int | None = None
    sessions: int | None = None
    thresholds: tuple[ThresholdText, ...] = ()
    line: int = 0
    column: int = 0

    @property
    def open_loop(self) -> bool:
        """Whether the block sets a rate (or stages), so that the run is open loop."""
        return self.rate_per_s is not None or bool(self.stages)
