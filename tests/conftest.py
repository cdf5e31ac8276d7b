"""Shared fixtures: the real SMTP servers that tests talk to.

``aiosmtpd_server``
    A fresh in-process aiosmtpd server per test, on a free loopback port, whose handler records
    every message (``tests.peers.RecordingHandler``). Always available.
``aiosmtpd_lmtp_server``
    aiosmtpd's LMTP mode (``aiosmtpd.lmtp.LMTP``) with ``tests.peers.LmtpHandler``: a reply per
    recipient after the message (452 for ``@full.test``).
``aiosmtpd_unix_server``
    ``aiosmtpd_server``'s SMTP server on a unix socket in a temporary folder (``unix_path``).
``aiosmtpd_utf8_server``
    The same with SMTPUTF8 enabled (RFC 6531).
``aiosmtpd_auth_server``
    The same, offering AUTH (PLAIN, LOGIN, CRAM-MD5, XOAUTH2, SCRAM-SHA-256) in the clear, with
    one account (``tests.peers.AuthHandler``).
``aiosmtpd_at``
    A factory: ``aiosmtpd_at(host, handler, **options)`` starts aiosmtpd on ``host`` (``::1``,
    an address of ``ipv6_lo_addresses``...), stopped after the test.
``ipv6_lo_addresses``
    Three IPv6 addresses (``fd00:5a::2``...) added to ``lo`` for the test and removed after it.
    Needs root and ``ip``: skipped without them, but failed under CI.
``postfix_server``
    The Postfix test server that ``.ci/postfix-setup`` configures (default ``127.0.0.1:10025``,
    override with ``SMTPLOAD_POSTFIX=HOST:PORT``). Without it a test is skipped on a developer's
    machine, but fails under CI (``CI`` set), where its absence means the setup is broken.
    Tests that use it get the ``postfix`` marker automatically, so ``-m "not postfix"`` skips them.
``postfix_upgraded_server``
    The same Postfix's second smtpd, "after an upgrade" (default ``127.0.0.1:10026``, override
    with ``SMTPLOAD_POSTFIX_B``): another banner, ``changed@example.test`` refused, no DSN.
    Skipped or failed like ``postfix_server``; use it together with that one (for the marker).
``postfix_record``
    Postfix's recording transport (mail to ``@record.test`` is stored, one file per message,
    in ``/var/spool/smtpload-record``) and its PROXY (10028) and XCLIENT (10029) services
    (``tests.peers.RecordingPostfix``). Skipped or failed like ``postfix_server``, and marked.
``dovecot_lmtp``
    Dovecot's LMTP server (``tests.peers.DovecotLmtp``): 127.0.0.1:10024 and the unix socket
    ``/run/dovecot-smtpload-lmtp/lmtp``, two mailboxes delivered as maildirs. Skipped or
    failed like ``postfix_server``, and marked ``postfix`` (``.ci/postfix-setup`` starts it).
``postfix_tls``
    The same Postfix's TLS and SASL services (``tests.peers.TlsPostfixPeers``): STARTTLS on
    10027, submission on 10587, implicit TLS on 10465, the CA files from ``/etc/smtpload-tls``
    (override with ``SMTPLOAD_TLS_DIR``), the SASL user. Skipped or failed like
    ``postfix_server``, and marked ``postfix`` as well.

All are plain synchronous fixtures, usable from trio tests: aiosmtpd runs its own asyncio loop
in a thread, and Postfix is another process. Each is an external server as far as trio is
concerned, so never pair them with trio's ``autojump_clock``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP

from benchmarks.smtp_sink import find_smtp_sink, free_port, smtp_sink
from tests.peers import (
    AuthHandler,
    DovecotLmtp,
    LmtpHandler,
    ProxyRecordingHandler,
    RecordingHandler,
    RecordingPeer,
    RecordingPostfix,
    SmtpPeer,
    TlsPostfixPeers,
)

LOOPBACK = "127.0.0.1"
POSTFIX_ENV = "SMTPLOAD_POSTFIX"
POSTFIX_DEFAULT = "127.0.0.1:10025"
PROBE_TIMEOUT_S = 5.0
_CONTROLLER_START_ATTEMPTS = 3


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if {"postfix_server", "postfix_tls", "postfix_record", "dovecot_lmtp"} & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.postfix)


# --- aiosmtpd ---------------------------------------------------------------------------------


def _free_port(host: str) -> int:
    """A port that was free a moment ago.

    aiosmtpd 1.4.6 cannot take port=0 (its start() connects to the configured port to check
    the server is up: aio-libs/aiosmtpd#388), so ask the kernel for one and give it back. Another
    process may take it in between; the caller retries.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _discard(controller: Controller) -> None:
    """Release what a controller whose start() failed still holds."""
    controller.stop(no_assert=True)
    # A bind failure ends the server thread before the loop ever runs, so nobody closed it.
    if not controller.loop.is_closed():
        controller.loop.close()


def _start_controller(
    handler: RecordingHandler,
    host: str = LOOPBACK,
    controller_class: type[Controller] = Controller,
    **options: Any,
) -> Controller:
    errors: list[Exception] = []
    for _ in range(_CONTROLLER_START_ATTEMPTS):
        controller = controller_class(handler, hostname=host, port=_free_port(host), **options)
        try:
            controller.start()
        except (OSError, RuntimeError) as exc:  # bind race (OSError), or the server never answered
            errors.append(exc)
            _discard(controller)
        else:
            return controller
    raise RuntimeError(
        f"aiosmtpd did not start on {host} in {_CONTROLLER_START_ATTEMPTS} attempts: {errors!r}"
    )


@pytest.fixture
def aiosmtpd_server() -> Iterator[RecordingPeer]:
    """An in-process SMTP server that records each message and refuses ``@reject.test``."""
    handler = RecordingHandler()
    controller = _start_controller(handler)
    try:
        yield RecordingPeer(host=LOOPBACK, port=int(controller.port), handler=handler)
    finally:
        controller.stop()


class _LmtpController(Controller):
    """aiosmtpd 1.4.6's Controller has no server class option: its factory makes the server."""

    def factory(self) -> LMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def aiosmtpd_lmtp_server() -> Iterator[RecordingPeer]:
    """aiosmtpd's LMTP server: LHLO, and one reply per recipient after the message."""
    handler = LmtpHandler()
    controller = _LmtpController(handler, hostname=LOOPBACK, port=_free_port(LOOPBACK))
    controller.start()
    try:
        yield RecordingPeer(host=LOOPBACK, port=int(controller.port), handler=handler)
    finally:
        controller.stop()


@dataclasses.dataclass(frozen=True, slots=True)
class UnixPeer:
    """An in-process SMTP server on a unix socket, and its handler's record."""

    unix_path: Path
    handler: RecordingHandler


@pytest.fixture
def aiosmtpd_unix_server(tmp_path: Path) -> Iterator[UnixPeer]:
    """aiosmtpd's SMTP server on a unix socket (``UnixSocketController``)."""
    handler = RecordingHandler()
    path = tmp_path / "smtp.sock"
    controller = UnixSocketController(handler, unix_socket=path)
    controller.start()
    try:
        yield UnixPeer(unix_path=path, handler=handler)
    finally:
        controller.stop()


@pytest.fixture
def aiosmtpd_utf8_server() -> Iterator[RecordingPeer]:
    """``aiosmtpd_server`` with SMTPUTF8 (RFC 6531) enabled explicitly (1.4.6's Controller
    enables it by default; a later default must not turn the tests of it into no-ops): it
    advertises SMTPUTF8 and takes UTF-8 addresses after MAIL FROM's ``SMTPUTF8``."""
    handler = RecordingHandler()
    controller = _start_controller(handler, enable_SMTPUTF8=True)
    try:
        yield RecordingPeer(host=LOOPBACK, port=int(controller.port), handler=handler)
    finally:
        controller.stop()


@pytest.fixture
def aiosmtpd_auth_server() -> Iterator[RecordingPeer]:
    """aiosmtpd offering AUTH PLAIN, LOGIN, CRAM-MD5, XOAUTH2 and SCRAM-SHA-256 without TLS
    (``tests.peers.AuthHandler``: one account, ``AUTH_USER``/``AUTH_PASSWORD``)."""
    handler = AuthHandler()
    controller = _start_controller(
        handler, authenticator=handler.authenticate, auth_require_tls=False
    )
    try:
        yield RecordingPeer(host=LOOPBACK, port=int(controller.port), handler=handler)
    finally:
        controller.stop()


@pytest.fixture
def aiosmtpd_at() -> Iterator[Callable[..., RecordingPeer]]:
    """Start aiosmtpd servers where a test says: ``aiosmtpd_at(host, handler, **options)``
    (``options`` as aiosmtpd's ``Controller`` takes them: ``tls_context=``...) returns the
    server's ``RecordingPeer``; every server started is stopped after the test."""
    controllers: list[Controller] = []

    def start(host: str, handler: RecordingHandler, **options: Any) -> RecordingPeer:
        controller = _start_controller(handler, host, **options)
        controllers.append(controller)
        return RecordingPeer(host=host, port=int(controller.port), handler=handler)

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()


#: The IPv6 addresses ``ipv6_lo_addresses`` adds to ``lo`` (a ULA prefix of the tests' own,
#: RFC 4193, so that nothing else on the machine uses them).
IPV6_TEST_ADDRESSES = ("fd00:5a::2", "fd00:5a::3", "fd00:5a::4")


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


@pytest.fixture
def ipv6_lo_addresses() -> Iterator[tuple[str, ...]]:
    """Adds ``IPV6_TEST_ADDRESSES`` to ``lo`` (as /128, no duplicate-address detection) for the
    test, and removes them after it, whatever happened. Needs root and ``ip``: without them the
    test is skipped, except under CI, where it fails."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        _cannot_add("needs root and the ip command")
    added: list[str] = []
    try:
        for address in IPV6_TEST_ADDRESSES:
            # replace, not add: an address left over by a killed run is taken over, not refused.
            done = _ip("-6", "addr", "replace", f"{address}/128", "dev", "lo", "nodad")
            if done.returncode != 0:
                _cannot_add(f"ip addr: {done.stderr.strip()}")
            added.append(address)
        yield IPV6_TEST_ADDRESSES
    finally:
        for address in added:
            _ip("-6", "addr", "del", f"{address}/128", "dev", "lo")


def _cannot_add(problem: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"cannot add IPv6 test addresses to lo under CI: {problem}")
    pytest.skip(f"cannot add IPv6 test addresses to lo: {problem}")


class _ProxyController(Controller):
    """A Controller whose start-up check speaks the PROXY protocol: the stock one connects and
    waits for a greeting that a PROXY server only sends after a header, and leaves that
    connection to be torn down with the loop (ResourceWarnings in a later test)."""

    def _trigger_server(self) -> None:
        with socket.create_connection((self.hostname, self.port), 1.0) as sock:
            sock.sendall(b"PROXY UNKNOWN\r\n")
            sock.recv(1024)  # the greeting: the factory has run
            sock.sendall(b"QUIT\r\n")
            sock.recv(1024)


@pytest.fixture
def aiosmtpd_proxy_server() -> Iterator[RecordingPeer]:
    """aiosmtpd that reads a PROXY protocol header (v1 or v2) first and records what each one
    said (``tests.peers.ProxyRecordingHandler.proxied``), then records messages as usual."""
    handler = ProxyRecordingHandler()
    controller = _start_controller(
        handler, controller_class=_ProxyController, proxy_protocol_timeout=5
    )
    handler.forget_proxied()  # the start-up check's own connection
    try:
        yield RecordingPeer(host=LOOPBACK, port=int(controller.port), handler=handler)
    finally:
        controller.stop()


# --- Postfix ----------------------------------------------------------------------------------


def _parse_host_port(value: str) -> SmtpPeer:
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:10025
    if not sep or not host or not port.isdigit():
        pytest.fail(
            f"{POSTFIX_ENV} must look like HOST:PORT (e.g. {POSTFIX_DEFAULT}), not {value!r}"
        )
    return SmtpPeer(host=host, port=int(port))


def _read_reply(sock: socket.socket) -> str:
    """Read one whole SMTP reply, however many lines and reads it takes."""
    data = b""
    while len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        complete_lines = data.split(b"\r\n")[:-1]
        # RFC 5321 §4.2.1: "NNN-" continues a multiline reply; "NNN " or a bare "NNN" ends it.
        if complete_lines and complete_lines[-1][3:4] in (b" ", b""):
            break
    return data.decode("utf-8", "replace")


def _postfix_problem(peer: SmtpPeer) -> str | None:
    """Why ``peer`` is not a usable Postfix, or None when its banner says it is one."""
    try:
        with socket.create_connection((peer.host, peer.port), timeout=PROBE_TIMEOUT_S) as sock:
            banner = _read_reply(sock)
            # Say goodbye, so Postfix logs a clean QUIT instead of a lost connection.
            sock.sendall(b"QUIT\r\n")
            _read_reply(sock)
    except OSError as exc:
        return f"nothing usable at {peer.host}:{peer.port} ({exc})"
    if not (banner.startswith("220") and "Postfix" in banner):
        return f"{peer.host}:{peer.port} is not Postfix: its banner is {banner.strip()!r}"
    return None


def _postfix_peer(env: str, default: str, what: str) -> SmtpPeer:
    """The Postfix smtpd at ``$env`` (or ``default``); fails under CI, else skips, if absent."""
    peer = _parse_host_port(os.environ.get(env, default))
    problem = _postfix_problem(peer)
    if problem is None:
        return peer
    _missing(what, problem)


def _missing(what: str, problem: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(
            f"{what} not running under CI: {problem}. "
            ".ci/run should have started it with .ci/postfix-setup: see that step's output."
        )
    pytest.skip(f"{what} not running; start it with: sudo .ci/postfix-setup")


@pytest.fixture(scope="session")
def postfix_server() -> SmtpPeer:
    """The Postfix test server (accepts and discards everything but ``@reject.test``)."""
    return _postfix_peer(POSTFIX_ENV, POSTFIX_DEFAULT, "Postfix test server")


POSTFIX_UPGRADED_ENV = "SMTPLOAD_POSTFIX_B"
POSTFIX_UPGRADED_DEFAULT = "127.0.0.1:10026"


@pytest.fixture(scope="session")
def postfix_upgraded_server() -> SmtpPeer:
    """The Postfix test server's "upgraded" smtpd (see ``.ci/postfix-setup``)."""
    return _postfix_peer(
        POSTFIX_UPGRADED_ENV, POSTFIX_UPGRADED_DEFAULT, "Postfix's upgraded test smtpd"
    )


# Where .ci/postfix-setup puts them (its TLS_DIR, STARTTLS_PORT, ...): keep in step with it.
TLS_DIR_ENV = "SMTPLOAD_TLS_DIR"
TLS_DIR_DEFAULT = "/etc/smtpload-tls"
POSTFIX_TLS = TlsPostfixPeers(
    host=LOOPBACK,
    starttls_port=10027,
    submission_port=10587,
    submissions_port=10465,
    ca_file=Path(TLS_DIR_DEFAULT, "ca.pem"),
    unknown_ca_file=Path(TLS_DIR_DEFAULT, "unknown-ca.pem"),
    user="smtpload@example.test",
    password="smtpload-test-password",
)


def _implicit_tls_problem(peers: TlsPostfixPeers) -> str | None:
    """Why the implicit-TLS port does not greet as Postfix through a verified TLS session."""
    context = ssl.create_default_context(cafile=str(peers.ca_file))
    address = (peers.host, peers.submissions_port)
    try:
        with (
            socket.create_connection(address, timeout=PROBE_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            banner = _read_reply(sock)  # an SSLSocket reads like a socket
            sock.sendall(b"QUIT\r\n")
            _read_reply(sock)
    except (OSError, ssl.SSLError) as exc:
        return f"no verified TLS session at {peers.host}:{peers.submissions_port} ({exc})"
    if not (banner.startswith("220") and "Postfix" in banner):
        return f"{peers.host}:{peers.submissions_port} is not Postfix: {banner.strip()!r}"
    return None


@pytest.fixture(scope="session")
def postfix_tls() -> TlsPostfixPeers:
    """Postfix's STARTTLS, submission and implicit-TLS services, their CAs and SASL user."""
    tls_dir = Path(os.environ.get(TLS_DIR_ENV, TLS_DIR_DEFAULT))
    peers = dataclasses.replace(
        POSTFIX_TLS, ca_file=tls_dir / "ca.pem", unknown_ca_file=tls_dir / "unknown-ca.pem"
    )
    what = "Postfix's TLS test services"
    for ca_file in (peers.ca_file, peers.unknown_ca_file):
        if not ca_file.is_file():
            _missing(what, f"no CA file {ca_file}")
    for port in (peers.starttls_port, peers.submission_port):
        problem = _postfix_problem(SmtpPeer(peers.host, port))
        if problem is not None:
            _missing(what, problem)
    problem = _implicit_tls_problem(peers)
    if problem is not None:
        _missing(what, problem)
    return peers


RECORD_DIR_ENV = "SMTPLOAD_RECORD_DIR"
RECORD_DIR_DEFAULT = "/var/spool/smtpload-record"


@pytest.fixture(scope="session")
def postfix_record() -> RecordingPostfix:
    """Postfix's recording transport and its PROXY and XCLIENT services."""
    peers = RecordingPostfix(
        host=LOOPBACK,
        plain_port=10025,
        proxy_port=10028,
        xclient_port=10029,
        directory=Path(os.environ.get(RECORD_DIR_ENV, RECORD_DIR_DEFAULT)),
    )
    what = "Postfix's recording transport"
    if not peers.directory.is_dir():
        _missing(what, f"no folder {peers.directory}")
    for port in (peers.plain_port, peers.xclient_port):
        problem = _postfix_problem(SmtpPeer(peers.host, port))
        if problem is not None:
            _missing(what, problem)
    return peers


# Where .ci/postfix-setup puts Dovecot's LMTP server (its LMTP_* settings): keep in step.
DOVECOT_LMTP = DovecotLmtp(
    host=LOOPBACK,
    port=10024,
    socket_path=Path("/run/dovecot-smtpload-lmtp/lmtp"),
    mailboxes=("mailbox1@lmtp.test", "mailbox2@lmtp.test"),
    maildir_root=Path("/var/mail/smtpload-lmtp"),
)


def _lmtp_banner_problem(family: int, address: tuple[str, int] | str, where: str) -> str | None:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(PROBE_TIMEOUT_S)
            sock.connect(address)
            banner = _read_reply(sock)
            sock.sendall(b"QUIT\r\n")
            _read_reply(sock)
    except OSError as exc:
        return f"nothing usable at {where} ({exc})"
    if not (banner.startswith("220") and "Dovecot" in banner):
        return f"{where} is not Dovecot: its banner is {banner.strip()!r}"
    return None


@pytest.fixture(scope="session")
def dovecot_lmtp() -> DovecotLmtp:
    """Dovecot's LMTP server over TCP and its unix socket, with two maildir mailboxes."""
    peer = DOVECOT_LMTP
    what = "Dovecot's LMTP test server"
    for family, address, where in (
        (socket.AF_INET, (peer.host, peer.port), f"{peer.host}:{peer.port}"),
        (socket.AF_UNIX, str(peer.socket_path), f"unix:{peer.socket_path}"),
    ):
        problem = _lmtp_banner_problem(family, address, where)
        if problem is not None:
            _missing(what, problem)
    if not peer.maildir_root.is_dir():
        _missing(what, f"no folder {peer.maildir_root}")
    return peer


@pytest.fixture(scope="session")
def postfix_smtp_sink() -> Iterator[SmtpPeer]:
    """Postfix's ``smtp-sink`` (a fast C server, one event-driven process of its own) on a
    free loopback port; fails under CI, else skips, where Postfix is not installed."""
    if find_smtp_sink() is None:
        if os.environ.get("CI"):
            pytest.fail("smtp-sink not installed under CI: .ci/postfix-setup installs Postfix")
        pytest.skip("smtp-sink not installed; sudo .ci/postfix-setup installs Postfix")
    port = free_port()
    with smtp_sink(port, messages=1000, backlog=256) as process:
        cpus = os.sched_getaffinity(0)
        if len(cpus) >= 2:
            # A core of its own (tests that keep theirs busy leave it alone): Linux would
            # often wake it on the waker's core, behind a busy test, for milliseconds.
            os.sched_setaffinity(process.pid, {max(cpus)})
        yield SmtpPeer(LOOPBACK, port)
