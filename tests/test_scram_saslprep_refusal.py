"""SCRAM-SHA-256 credentials SASLprep refuses (a control character, an empty text) are found
before the run: written in the file or read from the environment, as FILE:LINE:COL, exit 2,
from validate and run alike; made from --var and constant variables, as a usage error naming
the step. No message quotes the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtpload.errors import UsageError
from smtpload.protocol.compiler import compile_scenario
from smtpload.scenario.loader import parse_scenario
from tests.cli import smtpload

SECRET = "Scram7Secret"


def _scenario(tmp_path: Path, password: str, username: str = "user") -> Path:
    path = tmp_path / "e.yaml"
    path.write_text(
        "variables:\n"
        "  pw: plain\n"
        '  pw2: "x{pw}"\n'
        "steps:\n"
        "  - greeting: 220\n"
        "  - send: EHLO client.test\n"
        "    expect: 250\n"
        "  - auth:\n"
        "      mechanism: SCRAM-SHA-256\n"
        f"      username: {username}\n"
        f"      password: {password}\n"
    )
    return path


# Control characters of each kind YAML can hold: C0 by escape, TAB written as it is, DEL, C1.
REFUSED = [
    pytest.param(f'"{SECRET}\\a"', id="bell-escape"),
    pytest.param(f'"{SECRET}\\x01x"', id="soh-escape"),
    pytest.param(f'"{SECRET}\tx"', id="tab"),
    pytest.param(f'"{SECRET}\\x7f"', id="del"),
    pytest.param(f'"{SECRET}\\x85"', id="c1-next-line"),
    pytest.param(f'"{{pw}}\\a{SECRET}"', id="around-a-variable"),
    pytest.param('""', id="empty"),
    pytest.param("{env: SMTPLOAD_SCRAM_BAD}", id="env-value"),
]


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("password", REFUSED)
def test_a_refused_scram_password_is_located_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, password: str
) -> None:
    monkeypatch.setenv("SMTPLOAD_SCRAM_BAD", f"{SECRET}\x07")
    scenario = _scenario(tmp_path, password)
    result = smtpload(command, str(scenario), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{scenario}:11:"), result.stderr
    assert "SCRAM-SHA-256 refuses it (SASLprep" in result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_a_refused_scram_user_name_is_located_and_may_be_shown(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, "fine", username='"us\\x01er"')
    result = smtpload("validate", str(scenario), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{scenario}:10:"), result.stderr
    assert "username: SCRAM-SHA-256 refuses it" in result.stderr
    assert "U+0001" in result.stderr  # a user name is no secret


@pytest.mark.parametrize("password", ['"{pw}"', '"{pw2}"'], ids=["var", "through-a-variable"])
def test_a_refused_scram_password_from_var_is_a_usage_error(tmp_path: Path, password: str) -> None:
    scenario = _scenario(tmp_path, password)
    result = smtpload("run", str(scenario), "--var", f"pw={SECRET}\x07", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("smtpload: step 'auth' (line 8): SCRAM-SHA-256 refuses the")
    assert "--var pw" in result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()  # no session ran, so none blamed the server


def test_only_values_the_same_in_every_session_are_checked_before_the_run(tmp_path: Path) -> None:
    scenario = parse_scenario(_scenario(tmp_path, '"{pw}{session}"').read_text(), "e.yaml")
    # Depends on the session: left to the session that renders it.
    compile_scenario(scenario, overrides={"pw": "a\x07"})
    compile_scenario(scenario, overrides={"pw": "fine"})
    constant = parse_scenario(_scenario(tmp_path, '"{pw}"').read_text(), "e.yaml")
    compile_scenario(constant, overrides={"pw": "fine"})
    with pytest.raises(UsageError, match="SCRAM-SHA-256 refuses the password made from"):
        compile_scenario(constant, overrides={"pw": "a\x07"})
