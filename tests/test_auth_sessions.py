"""The ``auth`` step against real servers: aiosmtpd with an authenticator for every mechanism,
and hostile servers (tests/misbehaving.py) for the exchange's error paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

import smtpload
from tests.peers import AUTH_PASSWORD, AUTH_TOKEN, AUTH_USER, RecordingPeer
from tests.test_failures import start_server

MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "SCRAM-SHA-256")


def auth_scenario(tmp_path: Path, mechanism: str, *, expect: str = "") -> Path:
    key = "token" if mechanism == "XOAUTH2" else "password"
    path = tmp_path / "auth.yaml"
    path.write_text(
        "variables:\n"
        f"  user: {AUTH_USER}\n"
        "  secret: unset\n"
        "steps:\n"
        "  - greeting: 220\n"
        "  - send: EHLO client.test\n"
        "    expect: 250\n"
        f'  - auth: {{mechanism: {mechanism}, username: "{{user}}", {key}: "{{secret}}"}}\n'
        + (f"    expect: {expect}\n" if expect else "")
        + "  - send: MAIL FROM:<a@client.test>\n"
        "    expect: 250\n"
        "  - send: QUIT\n"
        "    expect: 221\n"
    )
    return path


async def run_auth(
    tmp_path: Path, peer: RecordingPeer, mechanism: str, secret: str, **options: Any
) -> dict[str, Any]:
    result = await smtpload.arun(
        auth_scenario(tmp_path, mechanism, **options),
        target=f"{peer.host}:{peer.port}",
        variables={"secret": secret},
        timeout_s=10,
    )
    return dict(result.summary)


def _right(mechanism: str) -> str:
    return AUTH_TOKEN if mechanism == "XOAUTH2" else AUTH_PASSWORD


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_each_mechanism_passes_with_good_credentials(
    tmp_path: Path, aiosmtpd_auth_server: RecordingPeer, mechanism: str
) -> None:
    summary = await run_auth(tmp_path, aiosmtpd_auth_server, mechanism, _right(mechanism))
    assert summary["sessions"]["passed"] == 1, summary["sessions"]
    steps = {step["name"]: step for step in summary["steps"]}
    # One timed step, however many rounds the exchange had.
    assert steps["auth"]["count"] == 1
    assert steps["auth"]["failed"] == 0


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_each_mechanism_fails_as_unexpected_reply_with_bad_credentials(
    tmp_path: Path, aiosmtpd_auth_server: RecordingPeer, mechanism: str
) -> None:
    summary = await run_auth(tmp_path, aiosmtpd_auth_server, mechanism, "wrong-" + mechanism)
    sessions = summary["sessions"]
    assert sessions["failures"]["unexpected_reply"] == 1, sessions
    steps = {step["name"]: step for step in summary["steps"]}
    assert steps["auth"]["failed"] == 1


async def test_expect_535_passes_with_bad_credentials(
    tmp_path: Path, aiosmtpd_auth_server: RecordingPeer
) -> None:
    # A test that a server refuses a wrong password: the step's expect decides, as any step's.
    summary = await run_auth(tmp_path, aiosmtpd_auth_server, "PLAIN", "nope", expect="535")
    # The session goes on unauthenticated: MAIL is still taken by aiosmtpd without auth_required.
    assert summary["sessions"]["passed"] == 1, summary["sessions"]


def hostile_scenario(tmp_path: Path, mechanism: str, timeout: str = "10s") -> Path:
    path = tmp_path / "hostile.yaml"
    path.write_text(
        "steps:\n"
        "  - greeting: 220\n"
        "  - send: EHLO client.test\n"
        "    expect: 250\n"
        f"  - auth: {{mechanism: {mechanism}, username: user, password: pencil}}\n"
        f"    timeout: {timeout}\n"
        "  - send: QUIT\n"
        "    expect: 221\n"
    )
    return path


async def run_hostile(
    tmp_path: Path, nursery: trio.Nursery, behaviour: str, mechanism: str, step_timeout: str = "10s"
) -> tuple[dict[str, Any], str]:
    port = await start_server(nursery, behaviour)
    result = await smtpload.arun(
        hostile_scenario(tmp_path, mechanism, step_timeout),
        target=f"127.0.0.1:{port}",
        results_dir=tmp_path / "results",
    )
    assert result.results_dir is not None
    log = (result.results_dir / "failures.log").read_text()
    return dict(result.summary), log


@pytest.mark.parametrize(
    ("behaviour", "mechanism", "said"),
    [
        ("auth-not-base64", "PLAIN", "is not base64 (RFC 4954 §4)"),
        ("auth-not-base64", "SCRAM-SHA-256", "is not base64 (RFC 4954 §4)"),
        ("auth-endless", "PLAIN", "a challenge after the initial response"),
        ("auth-endless", "LOGIN", "a third challenge"),
        ("auth-endless", "SCRAM-SHA-256", "not a SCRAM message"),
        ("auth-wrong-scram-signature", "SCRAM-SHA-256", "wrong server signature"),
        ("auth-no-scram-signature", "SCRAM-SHA-256", "never proved it knows the password"),
        # Refused before any PBKDF2 work: 500,000 was allowed, ~0.5 s on the loop's thread.
        ("auth-costly-scram", "SCRAM-SHA-256", "iteration count 500000 is not from 1 to 100000"),
    ],
)
async def test_a_broken_exchange_is_a_protocol_error_naming_it(
    tmp_path: Path, nursery: trio.Nursery, behaviour: str, mechanism: str, said: str
) -> None:
    summary, log = await run_hostile(tmp_path, nursery, behaviour, mechanism)
    assert summary["sessions"]["failures"]["protocol_error"] == 1, summary["sessions"]
    assert said in log
    steps = {step["name"]: step for step in summary["steps"]}
    assert steps["auth"]["failed"] == 1


async def test_a_cancelled_exchange_sends_a_star(tmp_path: Path, nursery: trio.Nursery) -> None:
    # RFC 4954 §4: the client cancels with "*"; the server's 501 then ends the step.
    _summary, log = await run_hostile(tmp_path, nursery, "auth-not-base64", "PLAIN")
    assert "  C: *\n  S: 501 5.7.0 AUTH cancelled" in log


async def test_endless_challenges_stop_at_the_bound(tmp_path: Path, nursery: trio.Nursery) -> None:
    # Each mechanism knows how many challenges it takes (LOGIN: two), and MAX_AUTH_ROUNDS
    # bounds them all (tests/test_auth.py); the third challenge gets "*", and the session ends.
    _summary, log = await run_hostile(tmp_path, nursery, "auth-endless", "LOGIN")
    assert log.count("  S: 334") == 3
    assert log.count("  C: <redacted") == 2
    assert log.count("  C: *") == 1


async def test_a_server_that_never_ends_the_exchange_times_out(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    summary, log = await run_hostile(tmp_path, nursery, "auth-stall", "PLAIN", step_timeout="300ms")
    assert summary["sessions"]["failures"]["timeout"] == 1, summary["sessions"]
    assert "timeout at step 'auth'" in log
