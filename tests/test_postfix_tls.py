"""Postfix's TLS and SASL services (``postfix_tls``) as smtpload sees them today, without TLS.

smtpload has no STARTTLS, implicit TLS or AUTH yet (issue 11); these tests pin what the servers
show a plain-text client, so the tests of those features can rely on them: STARTTLS offered on
10027 and 10587, AUTH hidden before TLS (``smtpd_tls_auth_only``), MAIL refused before STARTTLS
on 10587, and no banner at all on the implicit-TLS port 10465. A last group checks the fixture's
own promises (the CA files, the SASL user) with the standard library's smtplib and ssl, not
with smtpload. The plain services 10025/10026 must still offer neither STARTTLS nor AUTH:
their TLS is only in the new services' master.cf overrides.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from pathlib import Path
from typing import Any

import pytest

from tests.cli import smtpload
from tests.peers import SmtpPeer, TlsPostfixPeers

EHLO_ONLY = """\
name: ehlo-capabilities
steps:
  - greeting: 220
  - send: EHLO smtpload.example.test
    expect:
      code: 250
      capabilities: {present}
      absent_capabilities: {absent}
  - send: QUIT
    expect: 221
"""

MAIL_BEFORE_STARTTLS = """\
name: mail-before-starttls
steps:
  - greeting: 220
  - send: EHLO smtpload.example.test
    expect: 250
  - send: MAIL FROM:<smtpload@example.test>
    expect:
      code: 530
      enhanced: 5.7.0
  - send: QUIT
    expect: 221
"""


def run(tmp_path: Path, scenario: str, target: str, *args: str) -> tuple[int, dict[str, Any]]:
    """Run a scenario (YAML text, or a bundled one's name) against ``target``; the exit
    status and summary.json."""
    if "\n" in scenario:
        path = tmp_path / "scenario.yaml"
        path.write_text(scenario, encoding="utf-8")
        scenario = str(path)
    summary_path = tmp_path / "summary.json"
    result = smtpload(
        "run", scenario, "--target", target, "--json", str(summary_path), "--quiet", *args,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    summary: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
    return result.returncode, summary


def failures_log(tmp_path: Path) -> str:
    (run_dir,) = (tmp_path / "results").iterdir()
    return (run_dir / "failures.log").read_text(encoding="utf-8")


def starttls_ports(peers: TlsPostfixPeers) -> dict[str, int]:
    return {"starttls": peers.starttls_port, "submission": peers.submission_port}


# --- what a plain-text client sees ------------------------------------------------------------


@pytest.mark.parametrize("service", ["starttls", "submission"])
def test_ehlo_offers_starttls_and_no_auth_before_tls(
    tmp_path: Path, postfix_tls: TlsPostfixPeers, service: str
) -> None:
    port = starttls_ports(postfix_tls)[service]
    scenario = EHLO_ONLY.format(present="[STARTTLS]", absent="[AUTH]")
    status, summary = run(tmp_path, scenario, f"{postfix_tls.host}:{port}")
    assert status == 0, failures_log(tmp_path)
    assert summary["sessions"]["passed"] == 1


@pytest.mark.parametrize("service", ["starttls", "submission"])
def test_a_scenario_that_wants_auth_before_tls_fails(
    tmp_path: Path, postfix_tls: TlsPostfixPeers, service: str
) -> None:
    # The other side of the test above: the check it relies on can fail.
    port = starttls_ports(postfix_tls)[service]
    scenario = EHLO_ONLY.format(present="[STARTTLS, AUTH]", absent="[]")
    status, summary = run(tmp_path, scenario, f"{postfix_tls.host}:{port}")
    assert status == 1
    assert summary["sessions"]["failures"]["unexpected_reply"] == 1
    assert "AUTH" in failures_log(tmp_path)


def test_submission_refuses_mail_before_starttls(
    tmp_path: Path, postfix_tls: TlsPostfixPeers
) -> None:
    target = f"{postfix_tls.host}:{postfix_tls.submission_port}"
    status, _ = run(tmp_path, MAIL_BEFORE_STARTTLS, target)
    assert status == 0, failures_log(tmp_path)


def test_starttls_service_does_not_require_tls(
    tmp_path: Path, postfix_tls: TlsPostfixPeers
) -> None:
    # STARTTLS is only offered on 10027 (smtpd_tls_security_level=may): mail goes through.
    target = f"{postfix_tls.host}:{postfix_tls.starttls_port}"
    status, summary = run(tmp_path, "quickstart", target, "--sessions", "2")
    assert status == 0, failures_log(tmp_path)
    assert summary["sessions"]["passed"] == 2


def test_implicit_tls_port_gives_a_plain_client_no_banner(
    tmp_path: Path, postfix_tls: TlsPostfixPeers
) -> None:
    # The server waits for a TLS ClientHello and the client for a banner: each session ends as
    # a timeout at the greeting, and the run accounts for every one.
    target = f"{postfix_tls.host}:{postfix_tls.submissions_port}"
    status, summary = run(
        tmp_path, "quickstart", target, "--sessions", "2", "--concurrency", "2", "--timeout", "1s"
    )
    assert status == 1
    sessions = summary["sessions"]
    assert sessions["started"] == 2
    assert sessions["failures"]["timeout"] == 2
    assert sessions["passed"] == 0
    assert "timeout at step 'greeting'" in failures_log(tmp_path)


@pytest.mark.parametrize("which", ["postfix_server", "postfix_upgraded_server"])
def test_plain_services_offer_neither_starttls_nor_auth(
    tmp_path: Path, request: pytest.FixtureRequest, postfix_server: SmtpPeer, which: str
) -> None:
    peer = request.getfixturevalue(which)
    assert isinstance(peer, SmtpPeer)
    scenario = EHLO_ONLY.format(present="[PIPELINING]", absent="[STARTTLS, AUTH]")
    status, _ = run(tmp_path, scenario, f"{peer.host}:{peer.port}")
    assert status == 0, failures_log(tmp_path)


# --- the fixture's promises, checked with the standard library ----------------------------------


def context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def test_ca_file_verifies_every_tls_service_for_each_name(postfix_tls: TlsPostfixPeers) -> None:
    # smtplib checks the certificate against the host it connected to. Postfix listens on
    # 127.0.0.1 only, so ::1 (in the certificate too) is left to the setup's openssl verify.
    for name in ("localhost", "127.0.0.1"):
        for port in starttls_ports(postfix_tls).values():
            with smtplib.SMTP(name, port, timeout=10) as client:
                client.starttls(context=context(postfix_tls.ca_file))
                assert client.ehlo()[0] == 250
        ca = context(postfix_tls.ca_file)
        with smtplib.SMTP_SSL(name, postfix_tls.submissions_port, timeout=10, context=ca) as client:
            assert client.ehlo()[0] == 250


def test_unknown_ca_file_verifies_no_tls_service(postfix_tls: TlsPostfixPeers) -> None:
    for port in starttls_ports(postfix_tls).values():
        with smtplib.SMTP(postfix_tls.host, port, timeout=10) as client:
            client.ehlo()
            with pytest.raises(ssl.SSLCertVerificationError):
                client.starttls(context=context(postfix_tls.unknown_ca_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(
            postfix_tls.host,
            postfix_tls.submissions_port,
            timeout=10,
            context=context(postfix_tls.unknown_ca_file),
        )


@pytest.mark.parametrize("service", ["submission", "submissions"])
def test_sasl_user_can_authenticate_and_send_and_no_one_else_can(
    postfix_tls: TlsPostfixPeers, service: str
) -> None:
    def connect() -> smtplib.SMTP:
        ca = context(postfix_tls.ca_file)
        if service == "submissions":
            return smtplib.SMTP_SSL(
                postfix_tls.host, postfix_tls.submissions_port, timeout=10, context=ca
            )
        client = smtplib.SMTP(postfix_tls.host, postfix_tls.submission_port, timeout=10)
        client.starttls(context=ca)
        return client

    with connect() as client:
        client.ehlo()
        auth = set(client.esmtp_features["auth"].split())
        assert auth >= {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"}
        client.mail(postfix_tls.user)
        code, reply = client.rcpt("someone@example.test")
        assert (code, reply[:5]) == (554, b"5.7.1")  # not authenticated: no relaying
        client.rset()
        assert login_plain(client, postfix_tls.user, postfix_tls.password) == 235
        refused = client.sendmail(postfix_tls.user, ["someone@example.test"], b"Subject: t\r\n\r\n")
        assert refused == {}
    with connect() as client:
        client.ehlo()
        assert login_plain(client, postfix_tls.user, postfix_tls.password + "x") == 535


def login_plain(client: smtplib.SMTP, user: str, password: str) -> int:
    """AUTH PLAIN only: smtplib's login() would try three mechanisms, each failure taking
    Dovecot's 0.5 s."""
    client.user, client.password = user, password
    try:
        code, _ = client.auth("PLAIN", client.auth_plain)
    except smtplib.SMTPAuthenticationError as exc:
        return exc.smtp_code
    return code
