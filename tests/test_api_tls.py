"""The Python API's TLS keyword arguments (``tls``, ``tls_ca``, ``tls_insecure``, ``tls_resume``,
``tls_server_name``, ``tls_min_version``, ``tls_cert``, ``tls_key``): the command line's TLS
options with the same meaning and the same checks, against Postfix's submission services.

Refusals come first (no server needed beyond the fixture's files), then real runs.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import smtpload
from tests.peers import TlsPostfixPeers
from tests.test_submission import EHLO, PASSWORD_ENV, submission

TLS_KEYWORDS = (
    "tls",
    "tls_ca",
    "tls_server_name",
    "tls_cert",
    "tls_key",
    "tls_min_version",
    "tls_insecure",
    "tls_resume",
)


@pytest.fixture
def scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postfix_tls: TlsPostfixPeers
) -> smtpload.Scenario:
    """The STARTTLS submission scenario, its password read from the environment when loaded."""
    monkeypatch.setenv(PASSWORD_ENV, postfix_tls.password)
    path = tmp_path / "submission.yaml"
    path.write_text(submission(postfix_tls), encoding="utf-8")
    return smtpload.load_scenario(path)


@pytest.fixture
def implicit_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postfix_tls: TlsPostfixPeers
) -> smtpload.Scenario:
    """The same without STARTTLS, for implicit TLS (port 10465)."""
    monkeypatch.setenv(PASSWORD_ENV, postfix_tls.password)
    path = tmp_path / "submissions.yaml"
    path.write_text(submission(postfix_tls, before_auth=EHLO), encoding="utf-8")
    return smtpload.load_scenario(path)


def submission_target(peers: TlsPostfixPeers) -> str:
    return f"{peers.host}:{peers.submission_port}"


def test_run_and_arun_take_the_same_tls_keywords() -> None:
    for function in (smtpload.run, smtpload.arun):
        parameters = inspect.signature(function).parameters
        assert set(TLS_KEYWORDS) <= set(parameters), function
        for name in TLS_KEYWORDS:
            assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY


# --- refused before the first session, as the command line refuses them ------------------------


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("tls-not-implicit", {"tls": "starttls"}, "tls='starttls': give 'implicit'"),
    ("tls-true", {"tls": True}, "tls=True: give 'implicit'"),
    ("min-version-1.1", {"tls_min_version": "1.1"}, "tls_min_version='1.1': give one of"),
    ("min-version-number", {"tls_min_version": 1.3}, "tls_min_version=1.3: give one of"),
    ("server-name-empty", {"tls_server_name": ""}, "tls_server_name='': give a host name"),
    ("server-name-space", {"tls_server_name": "a b"}, "tls_server_name='a b': give a host"),
    ("insecure-string", {"tls_insecure": "yes"}, "tls_insecure='yes': give True or False"),
    ("resume-string", {"tls_resume": "off"}, "tls_resume='off': give True or False"),
    ("ca-number", {"tls_ca": 3}, "tls_ca=3: give a file name"),
    ("ca-empty", {"tls_ca": ""}, "tls_ca='': an empty name"),
    ("ca-missing", {"tls_ca": "no-such-ca.pem"}, "tls_ca='no-such-ca.pem': no such file"),
    ("cert-missing", {"tls_cert": Path("no.pem")}, "tls_cert='no.pem': no such file"),
    ("key-alone", {"tls_key": "no.key"}, "tls_key needs tls_cert"),  # as --tls-key's
    ("key-missing", {"tls_cert": __file__, "tls_key": "no.key"}, "tls_key='no.key': no such"),
]


@pytest.mark.parametrize(
    ("given", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_bad_tls_keyword_is_a_usage_error_before_any_session(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: smtpload.Scenario,
    postfix_tls: TlsPostfixPeers,
    given: dict[str, Any],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(smtpload.UsageError) as caught:
        smtpload.run(scenario, target=submission_target(postfix_tls), **given)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_ca_file_that_is_not_pem_is_a_usage_error(
    tmp_path: Path, scenario: smtpload.Scenario, postfix_tls: TlsPostfixPeers
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(smtpload.UsageError, match=r"^tls_ca='.*garbage.pem': .*give a PEM file"):
        smtpload.run(scenario, target=submission_target(postfix_tls), tls_ca=garbage)


def test_implicit_tls_needs_a_target_and_no_starttls_step(
    scenario: smtpload.Scenario,
    implicit_scenario: smtpload.Scenario,
    postfix_tls: TlsPostfixPeers,
) -> None:
    with pytest.raises(smtpload.UsageError, match=r"^tls='implicit' needs target="):
        smtpload.run(implicit_scenario, tls="implicit")
    with pytest.raises((smtpload.UsageError, smtpload.ScenarioError), match="starttls"):
        smtpload.run(scenario, target=submission_target(postfix_tls), tls="implicit")


# --- real runs against Postfix ------------------------------------------------------------------


def test_tls_ca_verifies_the_submission_server(
    scenario: smtpload.Scenario, postfix_tls: TlsPostfixPeers
) -> None:
    result = smtpload.run(
        scenario, target=submission_target(postfix_tls), tls_ca=postfix_tls.ca_file
    )
    assert result.passed, result.summary["sessions"]
    assert result.summary["tls"]["verified"] is True
    assert result.summary["tls"]["handshakes"] == 1


@pytest.mark.parametrize("insecure", [False, True])
def test_tls_insecure_accepts_an_unknown_ca_and_the_summary_says_so(
    scenario: smtpload.Scenario, postfix_tls: TlsPostfixPeers, insecure: bool
) -> None:
    result = smtpload.run(
        scenario,
        target=submission_target(postfix_tls),
        tls_ca=str(postfix_tls.unknown_ca_file),
        tls_insecure=insecure,
    )
    sessions = result.summary["sessions"]
    if insecure:
        assert result.passed, sessions
        assert result.summary["tls"]["verified"] is False
    else:
        assert sessions["failures"]["tls_error"] == 1
        assert result.summary["tls"]["verified"] is True


@pytest.mark.parametrize(("name", "passes"), [("localhost", True), ("wrong.example.test", False)])
def test_tls_server_name_is_the_name_checked(
    scenario: smtpload.Scenario, postfix_tls: TlsPostfixPeers, name: str, passes: bool
) -> None:
    result = smtpload.run(
        scenario,
        target=submission_target(postfix_tls),
        tls_ca=postfix_tls.ca_file,
        tls_server_name=name,
    )
    if passes:
        assert result.passed, result.summary["sessions"]
    else:
        assert result.summary["sessions"]["failures"]["tls_error"] == 1


@pytest.mark.parametrize(("resume", "resumed"), [(True, "some"), (False, "none")])
def test_tls_resume_is_counted(
    scenario: smtpload.Scenario, postfix_tls: TlsPostfixPeers, resume: bool, resumed: str
) -> None:
    result = smtpload.run(
        scenario,
        target=submission_target(postfix_tls),
        sessions=10,
        concurrency=2,
        tls_ca=postfix_tls.ca_file,
        tls_resume=resume,
    )
    assert result.passed, result.summary["sessions"]
    tls = result.summary["tls"]
    assert tls["handshakes"] == 10
    assert tls["resume"] is resume
    assert (tls["resumed"] > 0) is (resumed == "some")


async def test_arun_over_implicit_tls_with_min_version(
    implicit_scenario: smtpload.Scenario, postfix_tls: TlsPostfixPeers
) -> None:
    address = f"{postfix_tls.host}:{postfix_tls.submissions_port}"
    result = await smtpload.arun(
        implicit_scenario,
        target=address,
        tls="implicit",
        tls_ca=postfix_tls.ca_file,
        tls_min_version="1.3",
    )
    assert result.passed, result.summary["sessions"]
    assert result.summary["tls"]["versions"] == {"TLSv1.3": 1}


def test_smtps_target_is_implicit_tls_without_the_keyword(
    implicit_scenario: smtpload.Scenario, postfix_tls: TlsPostfixPeers
) -> None:
    address = f"smtps://{postfix_tls.host}:{postfix_tls.submissions_port}"
    result = smtpload.run(implicit_scenario, target=address, tls_ca=postfix_tls.ca_file)
    assert result.passed, result.summary["sessions"]
