"""TLS: the starttls step, implicit TLS, verification, options, resumption and tls_error.

Every peer is real and on loopback: aiosmtpd with a TLS context (STARTTLS, required, and
implicit TLS on its own port), trio servers that misbehave in TLS (tests/misbehaving.py), and
certificates made here by trustme, so that no CA of ours lives in the repository.
"""

from __future__ import annotations

import functools
import json
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from aiosmtpd.controller import Controller

from smtpload.errors import ScenarioError, shown
from smtpload.net.client import resolve_target
from smtpload.net.runner import RunSettings, run_sessions
from smtpload.net.tls import TlsClient, TlsOptions, build_tls_client
from smtpload.protocol.compiler import CompiledScenario, CompiledStep, compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.wire import Reply, ReplyParser
from smtpload.report.stats import KERNEL_CLOCK, RunStats
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import StepKind, TlsSettings
from tests.cli import smtpload
from tests.misbehaving import (
    TLS_BEHAVIOURS,
    Handler,
    starttls_extra_records,
    starttls_server,
    tls_alerting_server,
)
from tests.peers import AUTH_PASSWORD, AUTH_TOKEN, AUTH_USER, AuthHandler, RecordingHandler

LOOPBACK = "127.0.0.1"

STARTTLS_MAIL = """\
steps:
  - greeting: 220
  - send: EHLO client.test
    expect: 250
  - starttls: true
  - send: EHLO client.test
    expect: {code: 250, absent_capabilities: [STARTTLS]}
  - send: MAIL FROM:<a@client.test>
    expect: 250
  - send: RCPT TO:<b@server.test>
    expect: 250
  - send: DATA
    expect: 354
  - data: {message: "Subject: over TLS\\n\\nhello\\n", size: %d}
  - send: QUIT
    expect: 221
"""

IMPLICIT_MAIL = """\
steps:
  - greeting: 220
  - send: EHLO client.test
    expect: 250
  - send: MAIL FROM:<a@client.test>
    expect: 250
  - send: RCPT TO:<b@server.test>
    expect: 250
  - send: DATA
    expect: 354
  - data: "Subject: implicit\\n\\nhello\\n"
  - send: QUIT
    expect: 221
"""


def starttls_mail(size: int = 0) -> str:
    return STARTTLS_MAIL % size


# -- certificates and servers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def server_context(
    ca: trustme.CA, maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", LOOPBACK).configure_cert(context)
    context.maximum_version = maximum
    return context


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _controller(handler: RecordingHandler, **tls: Any) -> Iterator[int]:
    """aiosmtpd with ``tls`` (``tls_context=``/``require_starttls=`` or ``ssl_context=``);
    yields its port. It cannot take port 0 (aio-libs/aiosmtpd#388): retry a bind race."""
    for _ in range(5):
        controller = Controller(handler, hostname=LOOPBACK, port=_free_port(), **tls)
        try:
            controller.start()
        except (OSError, RuntimeError):
            controller.stop(no_assert=True)
            continue
        try:
            yield int(controller.port)
        finally:
            controller.stop()
        return
    raise RuntimeError("aiosmtpd did not start")


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def starttls_port(ca: trustme.CA, handler: RecordingHandler) -> Iterator[int]:
    """aiosmtpd that requires STARTTLS before mail (and offers AUTH only inside TLS)."""
    yield from _controller(handler, tls_context=server_context(ca), require_starttls=True)


@pytest.fixture
def implicit_port(ca: trustme.CA, handler: RecordingHandler) -> Iterator[int]:
    """aiosmtpd speaking TLS from the first byte, as on port 465."""
    yield from _controller(handler, ssl_context=server_context(ca))


@pytest.fixture
def tls12_port(ca: trustme.CA, handler: RecordingHandler) -> Iterator[int]:
    """aiosmtpd whose implicit TLS goes up to TLS 1.2 only."""
    yield from _controller(handler, ssl_context=server_context(ca, ssl.TLSVersion.TLSv1_2))


def trusting(ca_file: Path, **options: object) -> TlsClient:
    settings = TlsSettings(ca_file=str(ca_file), **options)  # type: ignore[arg-type]
    return build_tls_client(TlsOptions(settings=settings), LOOPBACK)


async def run(
    text: str,
    port: int,
    tls: TlsClient | None,
    *,
    implicit: bool = False,
    sessions: int = 1,
    concurrency: int = 1,
    timeout_s: float = 5.0,
) -> RunStats:
    scenario = compile_scenario(parse_scenario(text), timeout_s=timeout_s, implicit_tls=implicit)
    stats = RunStats(["connect", *scenario.step_names])
    target = await resolve_target(LOOPBACK, port)
    settings = RunSettings(
        sessions=sessions,
        concurrency=concurrency,
        run_id="tls",
        handle_signals=False,
        print_notices=False,
        clock=KERNEL_CLOCK,
        tls=tls,
    )
    await run_sessions(scenario, target, settings, stats)
    return stats


def only_outcome(stats: RunStats) -> Outcome:
    (outcome,) = [o for o, n in stats.outcomes.items() if n]
    return outcome


def got(stats: RunStats) -> str:
    return stats.failures[0].got


# -- STARTTLS and implicit TLS pass -------------------------------------------------------------


async def test_starttls_then_ehlo_again_then_mail_passes(
    starttls_port: int, ca_file: Path, handler: RecordingHandler
) -> None:
    stats = await run(starttls_mail(), starttls_port, trusting(ca_file))
    assert stats.outcomes[Outcome.PASSED] == 1, stats.failures
    (message,) = handler.messages  # aiosmtpd takes mail only after STARTTLS: it was over TLS
    assert b"Subject: over TLS" in message.content
    assert list(stats.steps)[3:5] == ["starttls", "tls"]
    assert stats.steps["tls"].latency.count == 1
    assert stats.tls is not None
    assert stats.tls.handshakes == 1
    assert stats.tls.verified


async def test_steps_over_tls_keep_the_kernel_clock(starttls_port: int, ca_file: Path) -> None:
    stats = await run(starttls_mail(), starttls_port, trusting(ca_file), sessions=3)
    assert stats.outcomes[Outcome.PASSED] == 3, stats.failures
    assert stats.generator.untimed_reads == 0
    assert stats.clock == "kernel"
    assert {step.clock for name, step in stats.steps.items() if name != "connect"} == {"kernel"}
    assert stats.reply_lag.count > 0  # the replies over TLS were read with their kernel time


async def test_a_large_message_over_tls_passes(
    starttls_port: int, ca_file: Path, handler: RecordingHandler
) -> None:
    size = 3 * 1024 * 1024  # sent through the TLS layer 64 KiB at a time
    stats = await run(starttls_mail(size), starttls_port, trusting(ca_file), timeout_s=20)
    assert stats.outcomes[Outcome.PASSED] == 1, stats.failures
    (message,) = handler.messages
    assert len(message.content) >= size - 100


async def test_implicit_tls_passes(implicit_port: int, ca_file: Path) -> None:
    stats = await run(IMPLICIT_MAIL, implicit_port, trusting(ca_file), implicit=True)
    assert stats.outcomes[Outcome.PASSED] == 1, stats.failures
    assert list(stats.steps)[:3] == ["connect", "tls", "greeting"]


# -- verification and versions: tls_error --------------------------------------------------------


async def test_an_unknown_ca_is_a_tls_error(starttls_port: int) -> None:
    tls = build_tls_client(TlsOptions(), LOOPBACK)  # the system's store: trustme's CA is not in it
    stats = await run(starttls_mail(), starttls_port, tls)
    assert only_outcome(stats) is Outcome.TLS_ERROR
    assert "certificate verification failed" in got(stats)
    assert stats.failures[0].step == "tls"


async def test_a_server_name_the_certificate_does_not_have_is_a_tls_error(
    implicit_port: int, ca_file: Path
) -> None:
    tls = trusting(ca_file, server_name="other.example.test")
    stats = await run(IMPLICIT_MAIL, implicit_port, tls, implicit=True)
    assert only_outcome(stats) is Outcome.TLS_ERROR
    assert "other.example.test" in got(stats) or "Hostname mismatch" in got(stats)


async def test_min_version_13_against_a_12_only_server_is_a_tls_error(
    ca: trustme.CA, tls12_port: int, ca_file: Path
) -> None:
    # An OpenSSL server that says why (a protocol_version alert, RFC 8446 §6.2); aiosmtpd's
    # asyncio closes without the alert, which is a close during the handshake.
    tls12 = server_context(ca, ssl.TLSVersion.TLSv1_2)
    tls = trusting(ca_file, min_version="1.3")
    stats = await run_against(tls_alerting_server(tls12), IMPLICIT_MAIL, tls, implicit=True)
    assert only_outcome(stats) is Outcome.TLS_ERROR
    assert "handshake failed" in got(stats)
    assert "protocol version" in got(stats)
    # A TLS 1.2 server passes without the minimum: it is the version that failed.
    stats = await run(IMPLICIT_MAIL, tls12_port, trusting(ca_file), implicit=True)
    assert stats.outcomes[Outcome.PASSED] == 1, stats.failures
    assert stats.tls is not None
    assert stats.tls.versions == {"TLSv1.2": 1}


# -- resumption -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resume", "port_fixture"), [(True, "implicit_port"), (True, "tls12_port")]
)
async def test_resumption_is_counted_in_a_run_of_20_sessions(
    resume: bool, port_fixture: str, ca_file: Path, request: pytest.FixtureRequest
) -> None:
    port = request.getfixturevalue(port_fixture)
    tls = trusting(ca_file)
    stats = await run(IMPLICIT_MAIL, port, tls, implicit=True, sessions=20, concurrency=4)
    assert stats.outcomes[Outcome.PASSED] == 20, stats.failures
    assert stats.tls is not None
    assert stats.tls.handshakes == 20
    assert stats.tls.resumed >= 1


async def test_no_resumption_with_resume_off(starttls_port: int, ca_file: Path) -> None:
    settings = TlsSettings(ca_file=str(ca_file))
    tls = build_tls_client(TlsOptions(settings=settings, resume=False), LOOPBACK)
    stats = await run(starttls_mail(), starttls_port, tls, sessions=20, concurrency=4)
    assert stats.outcomes[Outcome.PASSED] == 20, stats.failures
    assert stats.tls is not None
    assert stats.tls.resumed == 0
    assert not stats.tls.summary()["resume"]


async def test_starttls_sessions_resume_too(starttls_port: int, ca_file: Path) -> None:
    stats = await run(starttls_mail(), starttls_port, trusting(ca_file), sessions=20)
    assert stats.outcomes[Outcome.PASSED] == 20, stats.failures
    assert stats.tls is not None
    assert stats.tls.resumed >= 1


# -- hostile TLS peers ------------------------------------------------------------


async def _serve(nursery: trio.Nursery, handler: Handler) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host=LOOPBACK))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def run_against(handler: Handler, text: str, tls: TlsClient, **options: Any) -> RunStats:
    """``run`` the scenario ``text`` against a server of our own (``handler``), stopped after."""
    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, handler)
        stats = await run(text, port, tls, **options)
        nursery.cancel_scope.cancel()
    return stats


STARTTLS_EHLO = """\
steps:
  - greeting: 220
  - send: EHLO client.test
    expect: 250
  - starttls: true
  - send: EHLO client.test
    expect: 250
  - send: QUIT
    expect: 221
"""


async def test_the_polite_starttls_server_passes(ca: trustme.CA, ca_file: Path) -> None:
    # The injection tests' server without the injection: so they fail for the injection only.
    stats = await run_against(starttls_server(server_context(ca)), STARTTLS_EHLO, trusting(ca_file))
    assert stats.outcomes[Outcome.PASSED] == 1, stats.failures


@pytest.mark.parametrize(
    "injected",
    [b"250 injected\r\n", b"250-injected\r\n250 STARTTLS\r\n", b"250 inj", b"\r\n", b"4"],
    ids=["reply", "multiline", "partial", "blank-line", "one-byte"],
)
async def test_bytes_after_220_to_starttls_in_the_same_write_are_a_protocol_error(
    injected: bytes, ca: trustme.CA, ca_file: Path
) -> None:
    stats = await run_against(
        starttls_server(server_context(ca), inject=injected), STARTTLS_EHLO, trusting(ca_file)
    )
    assert only_outcome(stats) is Outcome.PROTOCOL_ERROR
    if injected == b"\r\n":
        # Read with the 220, a blank line is no SMTP reply at all: refused at starttls.
        assert stats.failures[0].step == "starttls"
    else:
        assert stats.failures[0].step == "tls"
        assert "sent after 220 to STARTTLS, before the TLS handshake" in got(stats)
        assert "RFC 3207 §5" in got(stats)
    assert stats.steps["ehlo#2"].attempts == 0  # nothing went on to use it


async def test_bytes_after_220_to_starttls_in_a_later_write_are_never_a_reply(
    ca: trustme.CA, ca_file: Path
) -> None:
    server = starttls_server(server_context(ca), inject=b"250 injected\r\n", later=True)
    stats = await run_against(server, STARTTLS_EHLO, trusting(ca_file), sessions=5)
    # Waiting in the kernel before the ClientHello: a protocol_error; arriving after it, the
    # bytes reach the TLS layer, which refuses them as no TLS record. Never a reply.
    assert stats.outcomes[Outcome.PASSED] == 0
    assert stats.outcomes[Outcome.PROTOCOL_ERROR] + stats.outcomes[Outcome.TLS_ERROR] == 5
    assert stats.steps["ehlo#2"].attempts == 0


STARTTLS_EHLO_MAIL = """\
steps:
  - greeting: 220
  - send: EHLO client.test
    expect: 250
  - starttls: true
  - send: EHLO client.test
    expect: 250
  - send: MAIL FROM:<a@client.test>
    expect: 250
  - send: QUIT
    expect: 221
"""


@pytest.mark.parametrize(
    ("extra", "got_before_mail"),
    [
        ((b"250 extra-unsolicited\r\n",), "250 extra-unsolicited"),
        ((b"250-extra\r\n250 more\r\n",), "250 extra (+1 line)"),
        ((b"250-extra\r\n", b"250 more\r\n"), "250 extra (+1 line)"),  # across records
        ((b"250 extra-unsolicited\r\n", b"250 another\r\n"), "250 extra-unsolicited"),
        ((b"250 unfinis",), "'250 unfinis' (incomplete)"),
    ],
    ids=["one-record", "multiline", "multiline-two-records", "two-replies", "unfinished"],
)
async def test_a_reply_out_of_turn_in_a_later_tls_record_of_the_same_read_is_an_error(
    extra: tuple[bytes, ...], got_before_mail: str, ca: trustme.CA, ca_file: Path
) -> None:
    # One read carries EHLO's record and the extra ones; SSLObject.read() hands out one record
    # at a time, so the extra replies wait in the TLS layer, not in the kernel. Taken as MAIL's
    # reply, "250 extra" would pass a session the server refuses (550 to MAIL).
    received: list[bytes] = []
    stats = await run_against(
        starttls_extra_records(server_context(ca), extra, received),
        STARTTLS_EHLO_MAIL,
        trusting(ca_file),
    )
    assert only_outcome(stats) is Outcome.PROTOCOL_ERROR, stats.failures
    assert stats.failures[0].step == "mail"
    assert got(stats) == f"reply before command: {got_before_mail}"
    assert not any(line.startswith(b"MAIL") for line in received)  # MAIL was not sent
    assert stats.steps["mail"].latency.count == 0
    assert stats.steps["mail"].negative_samples == 0


@pytest.mark.parametrize(
    "extra",
    [(b"421 4.3.2 going away\r\n",), (b"421-4.3.2 going\r\n", b"421 4.3.2 away\r\n")],
    ids=["one-record", "two-records"],
)
async def test_a_421_in_a_later_tls_record_of_the_same_read_is_the_next_commands_reply(
    extra: tuple[bytes, ...], ca: trustme.CA, ca_file: Path
) -> None:
    # RFC 5321 §3.8, as in plain text: MAIL's reply, judged by its expectation; not sent.
    received: list[bytes] = []
    stats = await run_against(
        starttls_extra_records(server_context(ca), extra, received),
        STARTTLS_EHLO_MAIL,
        trusting(ca_file),
    )
    assert only_outcome(stats) is Outcome.UNEXPECTED_REPLY, stats.failures
    assert stats.failures[0].step == "mail"
    assert got(stats).startswith("421 4.3.2 going")
    assert received == []  # neither MAIL nor a QUIT after the 421
    assert stats.steps["mail"].latency.count == 0
    assert stats.steps["mail"].negative_samples == 0


async def test_garbage_for_a_server_hello_is_a_tls_error_at_once(ca_file: Path) -> None:
    start = trio.current_time()
    stats = await run_against(
        TLS_BEHAVIOURS["tls-garbage-hello"], IMPLICIT_MAIL, trusting(ca_file), implicit=True,
        timeout_s=30,
    )  # fmt: skip
    elapsed_s = trio.current_time() - start
    assert only_outcome(stats) is Outcome.TLS_ERROR
    assert "handshake failed" in got(stats)
    assert elapsed_s < 10  # refused on the first bad record, not after the 30 s timeout


async def test_a_stall_in_the_handshake_is_a_timeout(ca_file: Path) -> None:
    stats = await run_against(
        TLS_BEHAVIOURS["tls-stall"], IMPLICIT_MAIL, trusting(ca_file), implicit=True, timeout_s=0.3
    )
    assert only_outcome(stats) is Outcome.TIMEOUT
    assert stats.failures[0].step == "tls"


async def test_a_close_during_the_handshake_is_connection_closed(ca_file: Path) -> None:
    stats = await run_against(
        TLS_BEHAVIOURS["tls-close"], IMPLICIT_MAIL, trusting(ca_file), implicit=True
    )
    assert only_outcome(stats) is Outcome.CONNECTION_CLOSED
    assert stats.failures[0].step == "tls"


# -- the command line ------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def summary_of(tmp_path: Path) -> dict[str, object]:
    (path,) = (tmp_path / "results").glob("*/summary.json")
    result: dict[str, object] = json.loads(path.read_text())
    return result


def test_cli_starttls_summary_counts_versions_and_ciphers(
    tmp_path: Path, starttls_port: int, ca_file: Path
) -> None:
    scenario = write(tmp_path, starttls_mail())
    target = f"{LOOPBACK}:{starttls_port}"
    done = smtpload(
        "run", str(scenario), "--target", target, "--tls-ca", str(ca_file), "--sessions", "3",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    tls = summary_of(tmp_path)["tls"]
    assert isinstance(tls, dict)
    assert sum(tls["versions"].values()) == 3
    assert sum(tls["ciphers"].values()) == 3
    assert tls["handshakes"] == 3
    assert tls["verified"] is True
    assert "certificates verified" in done.stdout


def test_cli_a_run_where_no_handshake_completed_says_so(tmp_path: Path) -> None:
    # The built-in sink refuses STARTTLS (502): no TLS was made, so nothing was verified.
    scenario = write(tmp_path, STARTTLS_EHLO)
    done = smtpload("run", str(scenario), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "tls: no TLS handshake completed" in done.stdout
    assert "certificates verified" not in done.stdout
    assert "tls: none" not in done.stdout
    tls = summary_of(tmp_path)["tls"]
    assert isinstance(tls, dict)
    assert (tls["handshakes"], tls["versions"], tls["ciphers"]) == (0, {}, {})


@pytest.mark.parametrize("form", ["--tls implicit", "smtps://"])
def test_cli_implicit_tls_passes(
    form: str, tmp_path: Path, implicit_port: int, ca_file: Path
) -> None:
    scenario = write(tmp_path, IMPLICIT_MAIL)
    if form == "smtps://":
        where = ["--target", f"smtps://{LOOPBACK}:{implicit_port}"]
    else:
        where = ["--target", f"{LOOPBACK}:{implicit_port}", "--tls", "implicit"]
    done = smtpload("run", str(scenario), *where, "--tls-ca", str(ca_file), cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    steps = [step["name"] for step in summary_of(tmp_path)["steps"]]  # type: ignore[attr-defined]
    assert steps[:3] == ["connect", "tls", "greeting"]


def test_cli_scenario_target_with_implicit_tls_and_its_ca(
    tmp_path: Path, implicit_port: int, ca_file: Path
) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(ca_file.read_bytes())
    head = f"target: {{host: {LOOPBACK}, port: {implicit_port}, tls: implicit, ca: certs/ca.pem}}\n"
    scenario = write(tmp_path, head + IMPLICIT_MAIL)
    done = smtpload("run", str(scenario), cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout


def test_cli_a_plain_target_keeps_the_scenarios_implicit_tls(
    tmp_path: Path, implicit_port: int, ca_file: Path
) -> None:
    # --target replaces the host and port; the scenario's `tls: implicit` stays (without it
    # the client would wait for a banner the server never sends before a ClientHello).
    head = f"target: {{host: mx.invalid, port: 465, tls: implicit, ca: {ca_file}}}\n"
    scenario = write(tmp_path, head + IMPLICIT_MAIL)
    target = f"{LOOPBACK}:{implicit_port}"
    done = smtpload("run", str(scenario), "--target", target, "--timeout", "5s", cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    tls = summary_of(tmp_path)["tls"]
    assert isinstance(tls, dict)
    assert tls["handshakes"] == 1


def test_cli_unknown_ca_fails_and_tls_insecure_passes_and_says_so(
    tmp_path: Path, implicit_port: int
) -> None:
    scenario = write(tmp_path, IMPLICIT_MAIL)
    target = f"smtps://{LOOPBACK}:{implicit_port}"
    done = smtpload("run", str(scenario), "--target", target, cwd=tmp_path)
    assert done.returncode == 1
    assert "tls_error 1" in done.stdout
    assert "certificate verification failed" in done.stdout
    for path in (tmp_path / "results").glob("*"):
        for file in path.iterdir():
            file.unlink()
        path.rmdir()
    done = smtpload("run", str(scenario), "--target", target, "--tls-insecure", cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "certificates NOT verified (--tls-insecure)" in done.stdout
    tls = summary_of(tmp_path)["tls"]
    assert isinstance(tls, dict)
    assert tls["verified"] is False


def test_cli_resume_off_counts_no_resumption(
    tmp_path: Path, implicit_port: int, ca_file: Path
) -> None:
    scenario = write(tmp_path, IMPLICIT_MAIL)
    target = f"smtps://{LOOPBACK}:{implicit_port}"
    done = smtpload(
        "run", str(scenario), "--target", target, "--tls-ca", str(ca_file), "--sessions", "5",
        "--tls-resume", "off", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    tls = summary_of(tmp_path)["tls"]
    assert isinstance(tls, dict)
    assert tls["resumed"] == 0
    assert tls["handshakes"] == 5


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> Path:
    """In ``tmp_path``: a client certificate and its key, each alone and both in one file,
    the key encrypted, another certificate's key, a text file and an empty one."""
    from cryptography.hazmat.primitives import serialization

    client = ca.issue_cert("client.test")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    ca.issue_cert("other.test").private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    (tmp_path / "encrypted-key.pem").write_bytes(encrypted)
    (tmp_path / "not-pem.txt").write_text("not a certificate\n")
    (tmp_path / "empty.pem").write_text("")
    return tmp_path


#: A TLS file problem on the command line: the options, and what must be said (its option).
CLI_TLS_FILE_PROBLEMS = [
    (["--tls-ca", "missing.pem"], "--tls-ca 'missing.pem': no such file"),
    (["--tls-cert", "missing.pem"], "--tls-cert 'missing.pem': no such file"),
    (["--tls-ca", "not-pem.txt"], "--tls-ca 'not-pem.txt': no PEM certificate found in it"),
    (["--tls-ca", "empty.pem"], "--tls-ca 'empty.pem': no PEM certificate found in it"),
    (["--tls-ca", "key.pem"], "--tls-ca 'key.pem': no PEM certificate found in it"),
    (
        ["--tls-cert", "not-pem.txt", "--tls-key", "key.pem"],
        "--tls-cert 'not-pem.txt': no PEM certificate found in it",
    ),
    (
        ["--tls-cert", "cert.pem", "--tls-key", "not-pem.txt"],
        "--tls-key 'not-pem.txt': not a PEM private key",
    ),
    (
        ["--tls-cert", "cert.pem", "--tls-key", "cert.pem"],
        "--tls-key 'cert.pem': not a PEM private key",
    ),
    (["--tls-cert", "cert.pem"], "--tls-cert 'cert.pem': no private key found in it"),
    (
        ["--tls-cert", "cert.pem", "--tls-key", "encrypted-key.pem"],
        "--tls-key 'encrypted-key.pem': the key is encrypted: smtpload cannot ask for its"
        " passphrase; give an unencrypted key",
    ),
    (
        ["--tls-cert", "cert.pem", "--tls-key", "other-key.pem"],
        "--tls-key 'other-key.pem': this key is not the client certificate's ('cert.pem')",
    ),
    (["--tls-key", "key.pem"], "--tls-key needs --tls-cert"),
]
CLI_TLS_FILE_IDS = [
    "missing-ca", "missing-cert", "ca-not-pem", "ca-empty", "ca-a-key", "cert-not-pem",
    "key-not-pem", "key-a-cert", "no-key", "encrypted-key", "other-key", "key-alone",
]  # fmt: skip


@pytest.mark.parametrize(("args", "said"), CLI_TLS_FILE_PROBLEMS, ids=CLI_TLS_FILE_IDS)
def test_cli_a_tls_file_that_cannot_be_used_is_a_usage_error_before_the_run(
    args: list[str], said: str, tls_files: Path
) -> None:
    scenario = write(tls_files, IMPLICIT_MAIL)
    done = smtpload(
        "run", str(scenario), "--target", "smtps://127.0.0.1:1", *args, cwd=tls_files,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout
    assert f"smtpload: {said}" in done.stderr
    for noise in ("_ssl.c", "[X509", "[SSL", "PEM lib", "Traceback", "pass phrase"):
        assert noise not in done.stderr
    assert not (tls_files / "results").exists()


def test_cli_a_client_certificate_and_key_in_one_file_or_two_load(tls_files: Path) -> None:
    # The same files as above, used rightly: so that the failures above are the files' fault.
    scenario = write(tls_files, IMPLICIT_MAIL)
    for args in (["--tls-cert", "both.pem"], ["--tls-cert", "cert.pem", "--tls-key", "key.pem"]):
        done = smtpload(
            "run", str(scenario), "--target", "smtps://127.0.0.1:1", *args, "--quiet",
            cwd=tls_files,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr  # the connection is refused: a run failed
        assert "connect_error" in done.stdout + done.stderr


#: A TLS file problem in the scenario's target: its keys, the key located, what is said.
SCENARIO_TLS_FILE_PROBLEMS = [
    ("ca: not-pem.txt", "ca", "target: ca '{d}/not-pem.txt': no PEM certificate found in it"),
    ("ca: key.pem", "ca", "target: ca '{d}/key.pem': no PEM certificate found in it"),
    (
        "cert: not-pem.txt, key: key.pem",
        "cert",
        "target: cert '{d}/not-pem.txt': no PEM certificate found in it",
    ),
    (
        "cert: cert.pem, key: not-pem.txt",
        "key",
        "target: key '{d}/not-pem.txt': not a PEM private key",
    ),
    ("cert: cert.pem", "cert", "target: cert '{d}/cert.pem': no private key found in it"),
    (
        "cert: cert.pem, key: encrypted-key.pem",
        "key",
        "target: key '{d}/encrypted-key.pem': the key is encrypted",
    ),
    (
        "cert: cert.pem, key: other-key.pem",
        "key",
        "target: key '{d}/other-key.pem': this key is not the client certificate's",
    ),
]


@pytest.mark.parametrize(
    ("keys", "key", "said"),
    SCENARIO_TLS_FILE_PROBLEMS,
    ids=["ca-not-pem", "ca-a-key", "cert-not-pem", "key-not-pem", "no-key", "encrypted", "other"],
)
def test_a_scenario_tls_file_that_cannot_be_used_is_located_at_its_key(
    keys: str, key: str, said: str, tls_files: Path
) -> None:
    target = f"target: {{host: mx.test, tls: implicit, {keys}}}"
    path = tls_files / "s.yaml"
    scenario = parse_scenario(target + "\n" + IMPLICIT_MAIL, str(path))
    with pytest.raises(ScenarioError) as raised:
        build_tls_client(TlsOptions(settings=scenario.tls), "mx.test")
    (problem,) = raised.value.problems
    column = target.index(f" {key}: ") + len(f" {key}: ") + 1  # at the key's value
    # The file as messages show any input: quoted, and cut past 80 characters (errors.shown),
    # so that the check holds in any temporary folder, however long its path.
    expected = re.sub(r"'\{d\}/([^']+)'", lambda m: shown(f"{tls_files}/{m[1]}"), said)
    assert str(problem).startswith(f"{path}:1:{column}: {expected}")
    for noise in ("_ssl.c", "[X509", "[SSL", "PEM lib", "--tls"):
        assert noise not in str(problem)


def test_cli_run_and_validate_locate_a_scenario_tls_file_that_cannot_be_used(
    tls_files: Path,
) -> None:
    target = "target: {host: 127.0.0.1, port: 1, tls: implicit, ca: not-pem.txt}"
    scenario = write(tls_files, target + "\n" + IMPLICIT_MAIL)
    said = f"s.yaml:1:{target.index('not-pem') + 1}: target: ca "
    for command in ("run", "validate"):
        done = smtpload(command, str(scenario), cwd=tls_files)
        assert done.returncode == 2, done.stderr + done.stdout
        assert said in done.stderr
        assert "no PEM certificate found in it" in done.stderr
        assert "--tls-ca" not in done.stderr  # the user never gave it
        assert "_ssl.c" not in done.stderr
    assert not (tls_files / "results").exists()


#: Names ssl's IDNA encoding refuses (an empty label, one over 63 characters), and names with
#: no host name in them at all.
BAD_SERVER_NAMES = ["a..b", ".", ".mx.test", "x" * 64 + ".test", "mx." + "y" * 100, "", "a b"]
BAD_SERVER_NAME_IDS = [
    "empty-label",
    "dot",
    "leading-dot",
    "label-64",
    "label-100",
    "empty",
    "space",
]


@pytest.mark.parametrize(
    "name", ["a..b", ".", "x" * 64 + ".test", ""], ids=["a..b", "dot", "64", "empty"]
)
def test_cli_a_server_name_ssl_cannot_send_is_a_usage_error(
    name: str, implicit_port: int, ca_file: Path, tmp_path: Path
) -> None:
    # A server that completes the handshake: before the check, the run reached wrap_bio and
    # crashed there with a UnicodeError traceback and no results.
    scenario = write(tmp_path, IMPLICIT_MAIL)
    done = smtpload(
        "run", str(scenario), "--target", f"smtps://{LOOPBACK}:{implicit_port}",
        "--tls-ca", str(ca_file), "--tls-server-name", name, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr + done.stdout
    assert "--tls-server-name" in done.stderr
    assert " host name" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", BAD_SERVER_NAMES[:5], ids=BAD_SERVER_NAME_IDS[:5])
def test_a_scenario_server_name_ssl_cannot_send_is_located(name: str, tmp_path: Path) -> None:
    target = f'target: {{host: mx.test, tls: implicit, server_name: "{name}"}}'
    found = problems_of(target + "\n" + IMPLICIT_MAIL, str(tmp_path / "s.yaml"))
    column = target.index('"') + 1
    said = f"{tmp_path / 's.yaml'}:1:{column}: target: server_name {shown(name)} is not a valid"
    assert any(problem.startswith(said) for problem in found), found


def test_cli_a_scenario_server_name_ssl_cannot_send_is_exit_2_located(
    implicit_port: int, ca_file: Path, tmp_path: Path
) -> None:
    target = (
        f'target: {{host: {LOOPBACK}, port: {implicit_port}, tls: implicit, server_name: "a..b"}}'
    )
    scenario = write(tmp_path, target + "\n" + IMPLICIT_MAIL)
    column = target.index('"') + 1
    for command in ("run", "validate"):
        args = ["--tls-ca", str(ca_file)] if command == "run" else []
        done = smtpload(command, str(scenario), *args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr + done.stdout
        assert f"s.yaml:1:{column}: target: server_name 'a..b' is not a valid" in done.stderr
        assert "Traceback" not in done.stderr


async def test_a_server_name_that_reaches_the_tls_layer_anyway_is_a_tls_error(
    implicit_port: int, ca_file: Path
) -> None:
    # The safety net under the checks: TlsSettings made in code are not checked, and a
    # target's own host is the server name when none is given.
    for name in BAD_SERVER_NAMES[:5]:
        stats = await run(
            IMPLICIT_MAIL, implicit_port, trusting(ca_file, server_name=name), implicit=True,
            sessions=2,
        )  # fmt: skip
        assert stats.outcomes[Outcome.TLS_ERROR] == 2, (name, stats.failures)
        assert "cannot be sent" in got(stats)


def test_cli_implicit_tls_with_a_starttls_step_is_a_usage_error(tmp_path: Path) -> None:
    scenario = write(tmp_path, STARTTLS_EHLO)
    done = smtpload(
        "run", str(scenario), "--target", "127.0.0.1:1", "--tls", "implicit", cwd=tmp_path
    )
    assert done.returncode == 2
    assert "starttls step" in done.stderr


def test_cli_replay_takes_the_tls_options(
    tmp_path: Path, implicit_port: int, ca_file: Path
) -> None:
    scenario = write(tmp_path, IMPLICIT_MAIL)
    target = f"smtps://{LOOPBACK}:{implicit_port}"
    done = smtpload(
        "replay", str(scenario), "--target", target, "--tls-ca", str(ca_file), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr + done.stdout


def test_baselines_and_junit_know_tls_and_tls_error(
    tmp_path: Path, implicit_port: int, ca_file: Path
) -> None:
    scenario = write(tmp_path, IMPLICIT_MAIL)
    target = ["--target", f"smtps://{LOOPBACK}:{implicit_port}"]
    trust = ["--tls-ca", str(ca_file)]
    baseline = tmp_path / "baseline.json"
    done = smtpload(
        "record", str(scenario), *target, *trust, "-o", str(baseline), "--sessions", "2",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    steps = {step["name"]: step for step in json.loads(baseline.read_text())["steps"]}
    assert steps["tls"]["events"] == {"tls": 2}
    # The baseline reads back (its tls events are known), and the same server passes.
    done = smtpload(
        "compare", str(scenario), "--baseline", str(baseline), *target, *trust, "--sessions", "2",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    # Without the CA, the handshake fails: a regression at the tls step, in JUnit too.
    junit = tmp_path / "report.xml"
    done = smtpload(
        "compare", str(scenario), "--baseline", str(baseline), *target, "--sessions", "2",
        "--junit", str(junit), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr + done.stdout
    assert "tls_error" in done.stdout
    report = junit.read_text()
    assert 'name="tls"' in report
    assert "tls_error" in report


# -- the scenario: starttls, the target's TLS keys ---------------------------------------------


def problems_of(text: str, path: str = "s.yaml") -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, path)
    return [str(problem) for problem in caught.value.problems]


def test_a_starttls_step_sends_starttls_expects_220_and_is_followed_by_the_tls_step() -> None:
    scenario = parse_scenario(STARTTLS_EHLO)
    assert [step.kind for step in scenario.steps][2] is StepKind.STARTTLS
    compiled = compile_scenario(scenario)
    assert compiled.step_names == ("greeting", "ehlo", "starttls", "tls", "ehlo#2", "quit")
    starttls = compiled.steps[2]
    assert starttls.payload == b"STARTTLS\r\n"
    assert starttls.expectation is not None
    assert starttls.expectation.codes == frozenset({220})
    assert compiled.uses_tls
    implicit = compile_scenario(parse_scenario(IMPLICIT_MAIL), implicit_tls=True)
    assert implicit.step_names[0] == "tls"
    assert not compile_scenario(parse_scenario(IMPLICIT_MAIL)).uses_tls


@pytest.mark.parametrize(
    ("steps", "said"),
    [
        (
            ["{send: STARTTLS, expect: 220}", "send: EHLO x"],
            "3:5: this `send: STARTTLS` accepts a 2xx reply, and step 3 would then be sent in"
            " the clear while the server waits for a TLS handshake: a raw send cannot upgrade"
            " the connection. Write `- starttls: true` instead",
        ),
        (["starttls: 250"], "3:15: a starttls step upgrades on 220 only (RFC 3207 §4)"),
        (["{starttls: true, expect: 2xx}"], "3:30: a starttls step upgrades on 220 only"),
        (["starttls: true", "starttls: true"], "4:5: a session upgrades to TLS once"),
        (
            ["starttls: true", "send: MAIL FROM:<a@b>"],
            "4:5: after starttls the session starts over",
        ),
        (["starttls: no"], "3:15: starttls takes `true` or an expectation of its 220"),
    ],
    ids=["raw-send", "not-220", "expect-2xx", "twice", "no-ehlo-after", "false"],
)
def test_starttls_problems(steps: list[str], said: str) -> None:
    text = "steps:\n  - greeting: 220\n" + "".join(f"  - {step}\n" for step in steps)
    found = problems_of(text)
    assert any(problem.startswith(f"s.yaml:{said}") for problem in found), found


def test_a_starttls_step_with_an_implicit_tls_target_is_refused() -> None:
    text = "target: {host: mx.test, tls: implicit}\n" + STARTTLS_EHLO
    (problem,) = problems_of(text)
    assert "the target uses implicit TLS" in problem


def test_the_target_takes_tls_keys(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    path = tmp_path / "s.yaml"
    text = (
        "target: {host: mx.test, tls: implicit, ca: ca.pem, server_name: mx.example.test,"
        ' min_version: "1.3"}\n' + IMPLICIT_MAIL
    )
    scenario = parse_scenario(text, str(path))
    assert scenario.target is not None
    assert (scenario.target.port, scenario.target.implicit_tls) == (465, True)
    assert scenario.tls == TlsSettings(
        ca_file=str(tmp_path / "ca.pem"), server_name="mx.example.test", min_version="1.3"
    )
    assert parse_scenario('target: "smtps://mx.test"\n' + IMPLICIT_MAIL).target == (
        parse_scenario("target: {host: mx.test, tls: implicit}\n" + IMPLICIT_MAIL).target
    )


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("{host: mx.test, ca: missing.pem}", "1:29: target: ca 'missing.pem': no such file"),
        ("{host: mx.test, tls: starttls}", "1:30: target: tls 'starttls' is not a TLS mode"),
        ("{host: mx.test, min_version: 1.1}", "1:38: target: min_version must be"),
        ("'smtpx://mx.test'", "1:9: bad target 'smtpx://mx.test'"),
    ],
    ids=["missing-ca", "mode", "min-version", "scheme"],
)
def test_target_tls_problems_are_located(target: str, said: str, tmp_path: Path) -> None:
    found = problems_of(f"target: {target}\n" + IMPLICIT_MAIL, str(tmp_path / "s.yaml"))
    assert any(problem.startswith(f"{tmp_path / 's.yaml'}:{said}") for problem in found), found


# -- the engine, without sockets -----------------------------------------------------------------


def _engine(observe: bool = False) -> tuple[SessionEngine, CompiledScenario]:
    compiled = compile_scenario(parse_scenario(STARTTLS_EHLO))
    return SessionEngine(compiled, 1, observe=observe), compiled


def _reply(raw: bytes) -> Reply:
    (reply,) = ReplyParser().feed(raw)
    return reply


def _through_starttls(engine: SessionEngine) -> CompiledStep:
    for raw in (b"220 x\r\n", b"250 x\r\n", b"220 go\r\n"):
        step = engine.next_step()
        assert step is not None
        engine.payload(step)
        assert engine.on_reply(step, _reply(raw))
    tls = engine.next_step()
    assert tls is not None
    assert tls.kind is StepKind.TLS
    return tls


def test_engine_a_tls_error_fails_the_session_without_a_quit() -> None:
    engine, _ = _engine()
    tls = _through_starttls(engine)
    engine.on_tls_error(tls, "handshake failed: wrong version number")
    assert engine.next_step() is None  # no QUIT over a broken TLS connection
    assert engine.outcome is Outcome.TLS_ERROR
    failure = engine.failure()
    assert failure is not None
    assert (failure.step, failure.expected) == ("tls", "a TLS handshake")


def test_engine_after_the_handshake_the_session_goes_on() -> None:
    engine, _ = _engine()
    tls = _through_starttls(engine)
    engine.on_tls_established(tls, "TLSv1.3 TLS_AES_256_GCM_SHA384")
    step = engine.next_step()
    assert step is not None
    assert step.name == "ehlo#2"


def test_engine_observe_mode_stops_at_a_refused_starttls_with_a_quit() -> None:
    engine, _ = _engine(observe=True)
    for raw in (b"220 x\r\n", b"250 x\r\n"):
        step = engine.next_step()
        assert step is not None
        engine.on_reply(step, _reply(raw))
    starttls = engine.next_step()
    assert starttls is not None
    assert not engine.on_reply(starttls, _reply(b"454 4.7.0 TLS not available\r\n"))
    quit_step = engine.next_step()
    assert quit_step is not None
    assert quit_step.index == -1  # our polite QUIT, not the steps meant for inside TLS
    assert engine.on_reply(quit_step, _reply(b"221 bye\r\n"))
    assert engine.next_step() is None
    assert engine.outcome is Outcome.UNEXPECTED_REPLY


# -- AUTH inside TLS ----------------------------------------------------------------------------

STARTTLS_AUTH = """\
variables:
  user: %s
  secret: "%s"
steps:
  - greeting: 220
  - send: EHLO client.test
    expect: 250
  - starttls: true
  - send: EHLO client.test
    expect: 250
  - auth: {mechanism: %s, username: "{user}", %s: "{secret}"}
  - send: MAIL FROM:<a@client.test>
    expect: 250
  - send: QUIT
    expect: 221
"""


@pytest.fixture
def starttls_auth_port(ca: trustme.CA) -> Iterator[int]:
    """aiosmtpd that requires STARTTLS and offers AUTH (every mechanism) only inside it."""
    handler = AuthHandler()
    yield from _controller(
        handler,
        tls_context=server_context(ca),
        require_starttls=True,
        authenticator=handler.authenticate,
        auth_require_tls=True,
    )


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "SCRAM-SHA-256"])
async def test_every_round_of_auth_goes_through_tls(
    starttls_auth_port: int, ca_file: Path, mechanism: str
) -> None:
    # LOGIN, CRAM-MD5 and SCRAM answer challenges after the AUTH line: each answer must be
    # encrypted too (one sent in the clear inside TLS breaks the session at the server).
    key, secret = ("token", AUTH_TOKEN) if mechanism == "XOAUTH2" else ("password", AUTH_PASSWORD)
    text = STARTTLS_AUTH % (AUTH_USER, secret, mechanism, key)
    stats = await run(text, starttls_auth_port, trusting(ca_file))
    assert stats.outcomes[Outcome.PASSED] == 1, stats.failures


def test_cli_tls_options_without_tls_are_said_to_have_no_effect(
    tmp_path: Path, implicit_port: int, ca_file: Path
) -> None:
    # A plain run given --tls-insecure must not leave the user believing it was TLS; a run that
    # does TLS with the same options says nothing of the kind.
    plain = smtpload(
        "run", "quickstart", "--sessions", "1", "--tls-insecure", "--tls-ca", str(ca_file),
        cwd=tmp_path,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr + plain.stdout
    assert "note: --tls-ca, --tls-insecure have no effect: no session does TLS" in plain.stderr
    scenario = write(tmp_path, IMPLICIT_MAIL)
    target = f"smtps://{LOOPBACK}:{implicit_port}"
    done = smtpload(
        "run", str(scenario), "--target", target, "--tls-insecure", "--force", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "no effect" not in done.stderr
