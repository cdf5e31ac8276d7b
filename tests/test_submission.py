"""Submission against a real server: STARTTLS, AUTH and a message to Postfix, alone and under load.

Issue 11's "done when": a scenario logs in over STARTTLS to a submission server and sends.
The servers are Postfix's (``.ci/postfix-setup``, fixture ``postfix_tls``): 10587 requires
STARTTLS and offers AUTH through Dovecot only inside TLS (RFC 6409, RFC 3207, RFC 4954);
10465 is the same over implicit TLS (RFC 8314); both refuse to relay for an unauthenticated
client. The password reaches the scenario as ``{env: ...}``, set in the command's environment.

Dovecot answers a wrong password only after its failure delay (~0.5 s), so the bad-password
tests are few. No timing is asserted here: the counts are the specification.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli import smtpload
from tests.peers import TlsPostfixPeers

PASSWORD_ENV = "SMTPLOAD_SUBMISSION_PASSWORD"

#: Every mechanism Dovecot offers here (XOAUTH2 is smtpload's too, but not Dovecot's).
DOVECOT_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256")

SUBMISSION = """\
name: submission
timeout: 10
variables:
  user: {user}
steps:
  - greeting: 220
{before_auth}  - auth: {{mechanism: {mechanism}, username: "{{user}}", password: {{env: {env}}}}}
    expect: 235
  - send: "MAIL FROM:<{{user}}>"
    expect: 250
  - send: "RCPT TO:<someone@example.test>"
    expect: 250
  - send: DATA
    expect: 354
  - data: |
      From: <{{user}}>
      To: <someone@example.test>
      Subject: smtpload submission {{uid}}
      Message-ID: {{message_id}}
      Date: {{date}}

      Sent by tests/test_submission.py, session {{session}}.
    expect: 250
  - send: QUIT
    expect: 221
"""

EHLO = "  - send: EHLO smtpload.example.test\n    expect: 250\n"
#: RFC 3207 §4.2: the client discards what it knew and says EHLO again inside TLS.
OVER_STARTTLS = EHLO + "  - starttls: true\n" + EHLO


def submission(
    peers: TlsPostfixPeers, *, mechanism: str = "PLAIN", before_auth: str = OVER_STARTTLS
) -> str:
    """The scenario: greeting, ``before_auth`` (EHLO, STARTTLS, EHLO), AUTH, one message, QUIT."""
    return SUBMISSION.format(
        user=peers.user, mechanism=mechanism, env=PASSWORD_ENV, before_auth=before_auth
    )


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch, postfix_tls: TlsPostfixPeers) -> str:
    """The right password in the environment that the smtpload subprocess inherits."""
    monkeypatch.setenv(PASSWORD_ENV, postfix_tls.password)
    return postfix_tls.password


def run(
    tmp_path: Path, scenario: str, target: str, *args: str, timeout_s: float = 60
) -> tuple[int, dict[str, Any]]:
    """Run scenario text against ``target``: the exit status and summary.json."""
    path = tmp_path / "submission.yaml"
    path.write_text(scenario, encoding="utf-8")
    summary_path = tmp_path / "summary.json"
    result = smtpload(
        "run", str(path), "--target", target, "--json", str(summary_path), "--quiet", *args,
        cwd=tmp_path, timeout_s=timeout_s,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    summary: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
    return result.returncode, summary


def failures_log(tmp_path: Path) -> str:
    (run_dir,) = (tmp_path / "results").iterdir()
    return (run_dir / "failures.log").read_text(encoding="utf-8")


def submission_target(peers: TlsPostfixPeers) -> str:
    return f"{peers.host}:{peers.submission_port}"


def trusted(peers: TlsPostfixPeers) -> tuple[str, str]:
    return ("--tls-ca", str(peers.ca_file))


def assert_all_passed(summary: dict[str, Any], sessions: int) -> None:
    counts = summary["sessions"]
    assert counts["started"] == sessions, counts
    assert counts["passed"] == sessions, counts
    assert sum(counts["failures"].values()) == 0, counts


def step(summary: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [s for s in summary["steps"] if s["name"] == name]
    assert isinstance(found, dict)
    return found


# --- one session: each mechanism, a wrong password, the order of things -----------------------


@pytest.mark.parametrize("mechanism", DOVECOT_MECHANISMS)
def test_submission_over_starttls_sends_with_each_mechanism(
    tmp_path: Path, postfix_tls: TlsPostfixPeers, password: str, mechanism: str
) -> None:
    scenario = submission(postfix_tls, mechanism=mechanism)
    status, summary = run(tmp_path, scenario, submission_target(postfix_tls), *trusted(postfix_tls))
    assert status == 0, failures_log(tmp_path)
    assert_all_passed(summary, 1)
    assert step(summary, "auth")["count"] == 1
    assert summary["tls"]["handshakes"] == 1
    assert summary["tls"]["verified"] is True


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_wrong_password_fails_at_auth_as_unexpected_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postfix_tls: TlsPostfixPeers, mechanism: str
) -> None:
    # Two mechanisms only: each failure costs Dovecot's 0.5 s failure delay.
    wrong = postfix_tls.password + "-wrong"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    scenario = submission(postfix_tls, mechanism=mechanism)
    status, summary = run(tmp_path, scenario, submission_target(postfix_tls), *trusted(postfix_tls))
    assert status == 1
    assert summary["sessions"]["failures"]["unexpected_reply"] == 1
    assert summary["sessions"]["passed"] == 0
    log = failures_log(tmp_path)
    assert "unexpected_reply at step 'auth'" in log
    assert "got: 535" in log
    assert wrong not in log


def test_auth_before_starttls_is_refused(
    tmp_path: Path, postfix_tls: TlsPostfixPeers, password: str
) -> None:
    # smtpd_tls_auth_only: no AUTH in plain text, whatever the client tries (RFC 4954 §4).
    scenario = submission(postfix_tls, before_auth=EHLO)
    status, summary = run(tmp_path, scenario, submission_target(postfix_tls), *trusted(postfix_tls))
    assert status == 1
    assert summary["sessions"]["failures"]["unexpected_reply"] == 1
    log = failures_log(tmp_path)
    assert "unexpected_reply at step 'auth'" in log
    assert "got: 530 5.7.0" in log  # Postfix: "Must issue a STARTTLS command first"
    assert password not in log


@pytest.mark.parametrize("how", ["--tls implicit", "smtps://"])
def test_submission_over_implicit_tls(
    tmp_path: Path, postfix_tls: TlsPostfixPeers, password: str, how: str
) -> None:
    address = f"{postfix_tls.host}:{postfix_tls.submissions_port}"
    target, args = (address, ["--tls", "implicit"]) if how.startswith("--") else (how + address, [])
    scenario = submission(postfix_tls, before_auth=EHLO)
    status, summary = run(tmp_path, scenario, target, *args, *trusted(postfix_tls))
    assert status == 0, failures_log(tmp_path)
    assert_all_passed(summary, 1)
    assert summary["tls"]["handshakes"] == 1


# --- certificate verification -----------------------------------------------------------------


@pytest.mark.parametrize("ca", ["system", "unknown"])
def test_certificate_from_an_unknown_ca_is_a_tls_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postfix_tls: TlsPostfixPeers,
    password: str,
    ca: str,
) -> None:
    # The test CA is in neither the system's store nor the unrelated CA's file.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    args = [] if ca == "system" else ["--tls-ca", str(postfix_tls.unknown_ca_file)]
    scenario = submission(postfix_tls)
    status, summary = run(tmp_path, scenario, submission_target(postfix_tls), *args)
    assert status == 1
    assert summary["sessions"]["failures"]["tls_error"] == 1
    assert summary["sessions"]["passed"] == 0
    log = failures_log(tmp_path)
    assert "tls_error at step 'tls'" in log
    assert "certificate" in log


def test_tls_insecure_passes_an_unknown_ca_and_says_so(
    tmp_path: Path, postfix_tls: TlsPostfixPeers, password: str
) -> None:
    scenario = submission(postfix_tls)
    args = ["--tls-ca", str(postfix_tls.unknown_ca_file), "--tls-insecure"]
    status, summary = run(tmp_path, scenario, submission_target(postfix_tls), *args)
    assert status == 0, failures_log(tmp_path)
    assert_all_passed(summary, 1)
    assert summary["tls"]["verified"] is False


# --- resumption -------------------------------------------------------------------------------


@pytest.mark.parametrize(("resume", "resumed_at_least"), [("on", 1), ("off", 0)])
def test_resumption_is_counted_against_postfix(
    tmp_path: Path, postfix_tls: TlsPostfixPeers, password: str, resume: str, resumed_at_least: int
) -> None:
    # Postfix 3.7 sends TLS 1.3 tickets (tls_session_ticket_cipher, keys from tlsmgr), so a
    # run that keeps the newest session resumes most of its later handshakes.
    scenario = submission(postfix_tls)
    args = [*trusted(postfix_tls), "--sessions", "20", "--concurrency", "4", "--tls-resume", resume]
    status, summary = run(tmp_path, scenario, submission_target(postfix_tls), *args)
    assert status == 0, failures_log(tmp_path)
    assert_all_passed(summary, 20)
    tls = summary["tls"]
    assert tls["handshakes"] == 20
    assert tls["resume"] is (resume == "on")
    if resumed_at_least:
        assert tls["resumed"] >= resumed_at_least
    else:
        assert tls["resumed"] == 0


# --- under load -------------------------------------------------------------------------------


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_a_thousand_sessions_over_starttls_and_auth_all_pass_and_add_up(
    tmp_path: Path, postfix_tls: TlsPostfixPeers, password: str
) -> None:
    # Issue 11's load run, closed loop. With PLAIN it took 7-14 s here (Postfix with Dovecot's
    # SASL sustained 70-150 sessions/s, with the machine's other load): a soak, which CI runs
    # after the main suite; SCRAM-SHA-256 doubles that (PBKDF2 on both sides), and is tested
    # alone above.
    sessions = 1000
    scenario = submission(postfix_tls, mechanism="PLAIN")
    args = [*trusted(postfix_tls), "--sessions", str(sessions), "--concurrency", "20"]
    status, summary = run(tmp_path, scenario, submission_target(postfix_tls), *args, timeout_s=300)
    assert status == 0, failures_log(tmp_path)
    counts = summary["sessions"]
    assert counts["started"] == sessions
    assert counts["started"] == counts["passed"] + sum(counts["failures"].values())
    assert counts["passed"] == sessions
    assert counts["not_started"] == 0
    tls = summary["tls"]
    assert tls["handshakes"] == sessions
    assert sum(tls["versions"].values()) == sessions
    assert sum(tls["ciphers"].values()) == sessions
    assert 0 < tls["resumed"] <= sessions
    for name in ("tls", "auth", "message", "quit"):
        assert step(summary, name)["count"] == sessions, name
