"""The ``auth`` step against real servers: aiosmtpd with an authenticator for every mechanism,
and hostile servers (tests/misbehaving.py) for the exchange's error paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import smtpload
from tests.peers import AUTH_PASSWORD, AUTH_TOKEN, AUTH_USER, RecordingPeer

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
