"""The ``auth`` step's syntax: every problem is FILE:LINE:COL, found before the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtpload.errors import ScenarioError
from smtpload.protocol.compiler import compile_scenario
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import AUTH_MECHANISMS, StepKind
from tests.cli import smtpload


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    return [str(problem) for problem in caught.value.problems]


def steps(*lines: str) -> str:
    return "steps:\n  - greeting: 220\n" + "".join(f"  {line}\n" for line in lines)


def test_auth_step_defaults_name_and_expectation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret{not-a-template}")
    scenario = parse_scenario(
        "variables:\n  user: alice\n"
        + steps('- auth: {mechanism: plain, username: "{user}", password: {env: SMTP_PASSWORD}}')
    )
    step = scenario.steps[1]
    assert step.kind is StepKind.AUTH
    assert step.name == "auth"
    assert step.expect is not None
    assert step.expect.codes == frozenset({235})
    assert step.auth is not None
    assert step.auth.mechanism == "PLAIN"
    assert "s3cret" not in repr(step)  # a secret is never in a repr
    compiled = compile_scenario(scenario).steps[1]
    assert compiled.auth is not None
    # The environment's value is taken literally: its braces are no template.
    assert compiled.auth.secret.render({}) == "s3cret{not-a-template}"
    assert "s3cret" not in repr(compiled)


def test_a_missing_environment_variable_is_located(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    found = problems(
        steps("- auth: {mechanism: LOGIN, username: u, password: {env: NO_SUCH_SECRET}}")
    )
    assert found == [
        "s.yaml:3:59: auth: password: the environment variable 'NO_SUCH_SECRET' is not set;"
        " set it before the run (export NO_SUCH_SECRET=...)"
    ]


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ("{mechanism: GSSAPI, username: u, password: p}", "is not one smtpload speaks"),
        ("{username: u, password: p}", "auth needs a `mechanism:`"),
        ("{mechanism: PLAIN, password: p}", "auth needs a `username:`"),
        ("{mechanism: PLAIN, username: u}", "auth with PLAIN needs a `password:`"),
        ("{mechanism: XOAUTH2, username: u, password: p}", "write `token:`"),
        ("{mechanism: CRAM-MD5, username: u, token: t}", "is for XOAUTH2 only"),
        ("{mechanism: PLAIN, username: u, password: p, pasword: q}", "unknown key 'pasword'"),
        ("{mechanism: PLAIN, username: u, password: {file: x}}", "must be {env: NAME}"),
        ("{mechanism: PLAIN, username: u, password: '{nope}'}", "unknown variable (the"),
        ("{mechanism: PLAIN, username: '{nope}', password: p}", "unknown variable {nope}"),
        ("PLAIN", "auth takes a mapping"),
    ],
)
def test_auth_problems_are_located(auth: str, message: str) -> None:
    found = problems(steps(f"- auth: {auth}"))
    assert len(found) >= 1
    assert found[0].startswith("s.yaml:3:")
    assert message in found[0]


@pytest.mark.parametrize(
    "send", ["AUTH PLAIN AHVAcA==", "auth login", "AUTH", "Auth XOAUTH2 dXNlcj0="]
)
def test_a_raw_auth_command_is_refused_pointing_to_the_step(send: str) -> None:
    (found,) = problems(steps(f"- send: {send}"))
    assert found.startswith("s.yaml:3:11: send: AUTH is not allowed: use the auth step")


def test_every_mechanism_is_spoken() -> None:
    from smtpload.protocol.auth import MECHANISMS

    assert MECHANISMS == AUTH_MECHANISMS


def test_the_cli_says_file_line_column_exit_2(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        steps("- auth: {mechanism: PLAIN, username: u, password: {env: SMTPLOAD_UNSET_X}}")
    )
    result = smtpload("validate", str(scenario), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{scenario}:3:" in result.stderr
    assert "SMTPLOAD_UNSET_X" in result.stderr
    assert "Traceback" not in result.stderr
