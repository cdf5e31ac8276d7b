"""Issue 11: a secret never appears in a message. A password or token written wrongly (a tag,
an alias, a mapping, a {variable}, the secret itself where an environment variable's name goes,
a value YAML reads as a number) is refused as FILE:LINE:COL, exit 2, saying the kind of problem
and where, but quoting none of the value's text; and so is a --var that is not NAME=VALUE."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtpload.errors import ScenarioError
from smtpload.scenario.loader import parse_scenario
from tests.cli import smtpload

SECRET = "Qx7Secret9"  # every wrongly written secret below holds this text


def _scenario(secret_line: str, mechanism: str = "PLAIN", key: str = "password") -> str:
    return (
        "steps:\n"
        "  - greeting: 220\n"
        "  - send: EHLO client.test\n"
        "    expect: 250\n"
        "  - auth:\n"
        f"      mechanism: {mechanism}\n"
        "      username: user\n"
        f"      {key}: {secret_line}\n"
    )


# Each way of writing a secret wrongly, and what the message must say instead of quoting it.
WRONG_SECRETS = [
    pytest.param(f"!{SECRET}", "a YAML tag is not allowed here", id="local-tag"),
    pytest.param(f"!{SECRET} x", "a YAML tag is not allowed here", id="local-tag-on-text"),
    pytest.param(f"!!binary {SECRET}", "a YAML tag is not allowed here", id="standard-tag"),
    pytest.param(f"!<{SECRET}> x", "a YAML tag is not allowed here", id="verbatim-tag"),
    pytest.param(f"!{SECRET}!x y", "undefined tag handle", id="tag-handle"),
    pytest.param(f"*{SECRET}", "undefined alias", id="alias"),
    pytest.param(f"*{SECRET}-9", "undefined alias", id="alias-with-dash"),
    pytest.param(f"{{{SECRET}}}", "must be {env: NAME}", id="flow-mapping"),
    pytest.param(f"{{{SECRET}: 1, env: A}}", "must be {env: NAME}", id="mapping-beside-env"),
    pytest.param(f"{{? [{SECRET}] : 1}}", "must be {env: NAME}", id="complex-key"),
    pytest.param(f'"Pw{{{SECRET}}}1"', "unknown variable (the", id="variable-inside"),
    pytest.param(f"'{{{SECRET}}}'", "unknown variable (the", id="variable-whole"),
    pytest.param(f"{{env: {SECRET}-9}}", "not an environment variable name", id="env-dash"),
    pytest.param(f"{{env: '{SECRET} x'}}", "not an environment variable name", id="env-space"),
    pytest.param(f"{{env: 9{SECRET}}}", "not an environment variable name", id="env-digit"),
    pytest.param(f"{{env: !{SECRET} x}}", "a YAML tag is not allowed here", id="env-tag"),
    pytest.param("0x7FAB", "read by YAML as a number", id="hex-number"),
    pytest.param("0177", "read by YAML as a number", id="octal"),
    pytest.param("1_000", "read by YAML as a number", id="underscores"),
    pytest.param(".inf", "read by YAML as a number", id="infinity"),
    pytest.param("1:20:33", "read by YAML as a number", id="base-60"),
    pytest.param("Yes", "read by YAML as a boolean", id="boolean"),
]


def _secrets_in(text: str, secret_line: str) -> list[str]:
    """The pieces of the written secret that ``text`` holds (none may be there)."""
    pieces = {SECRET, SECRET[:5], SECRET[-5:]}
    if SECRET not in secret_line:  # a number or a word YAML reads as something else
        pieces = {secret_line, secret_line.replace(":", "")}
    return sorted(piece for piece in pieces if piece in text)


@pytest.mark.parametrize(("mechanism", "key"), [("PLAIN", "password"), ("XOAUTH2", "token")])
@pytest.mark.parametrize(("secret_line", "said"), WRONG_SECRETS)
def test_a_wrongly_written_secret_is_located_never_quoted(
    secret_line: str, said: str, mechanism: str, key: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(_scenario(secret_line, mechanism, key), "e.yaml")
    messages = [str(problem) for problem in caught.value.problems]
    assert messages
    assert messages[0].startswith("e.yaml:8:"), messages
    assert said in messages[0], messages
    for message in messages:
        assert _secrets_in(message, secret_line) == [], message


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(
    "secret_line",
    [f"!{SECRET}", f"*{SECRET}", f"{{{SECRET}}}", f'"Pw{{{SECRET}}}1"', f"{{env: {SECRET}-9}}"],
    ids=["tag", "alias", "mapping", "variable", "env-name"],
)
def test_the_command_line_never_prints_a_wrongly_written_secret(
    tmp_path: Path, command: str, secret_line: str
) -> None:
    scenario = tmp_path / "e.yaml"
    scenario.write_text(_scenario(secret_line))
    result = smtpload(command, str(scenario), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{scenario}:8:"), result.stderr
    assert "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert _secrets_in(output, secret_line) == [], output


def test_an_unset_environment_variable_is_still_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTPLOAD_UNSET_PW", raising=False)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(_scenario("{env: SMTPLOAD_UNSET_PW}"), "e.yaml")
    (message,) = (str(problem) for problem in caught.value.problems)
    assert "'SMTPLOAD_UNSET_PW' is not set" in message


def test_a_user_name_is_no_secret_and_is_quoted() -> None:
    text = _scenario("pw").replace("username: user", "username: '{nobody}'")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "e.yaml")
    assert "unknown variable {nobody}" in str(caught.value.problems[0])


def test_doubled_braces_write_a_literal_brace_in_a_password() -> None:
    from smtpload.protocol.compiler import compile_scenario

    compiled = compile_scenario(parse_scenario(_scenario('"Pw{{x}}1"'), "e.yaml"))
    auth = compiled.steps[2].auth
    assert auth is not None
    assert auth.secret.render({}) == "Pw{x}1"


# An alias, anchor or tag name may be a secret typed after *, & or !, wherever it stands.
@pytest.mark.parametrize(
    ("text", "said"),
    [
        (f"steps:\n  - send: *{SECRET}\n", "1:"),
        (f"steps:\n  - send: &{SECRET} a\n  - send: &{SECRET} b\n", "defined twice"),
        # A lone surrogate escape makes PyYAML's own parser read the text, whose message
        # about an undefined tag handle quotes it (libyaml's does not).
        (f'steps:\n  - send: "\\ud83d"\n  - send: !{SECRET}!x y\n', "undefined tag handle"),
    ],
    ids=["alias", "anchor-twice", "tag-handle-pyyaml"],
)
def test_syntax_errors_do_not_quote_alias_anchor_or_tag_names(text: str, said: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    (message,) = (str(problem) for problem in caught.value.problems)
    assert message.startswith("s.yaml:"), message
    assert said in message
    assert SECRET not in message


VAR_SECRET = "CliVarSecret55k"


@pytest.mark.parametrize(
    ("argument", "shown"),
    [
        (f"secret:{VAR_SECRET}", "--var secret: write NAME=VALUE"),
        (f"secret {VAR_SECRET}", "--var secret: write NAME=VALUE"),
        (f"secret:{VAR_SECRET}=x", "--var secret: what comes before '='"),
        (f"my var={VAR_SECRET}", "--var my: what comes before '='"),
        (f"={VAR_SECRET}", "--var: nothing before '='"),
        (f"-{VAR_SECRET}", "--var: write NAME=VALUE"),
        (f"{VAR_SECRET}-x", "--var: write NAME=VALUE"),
        (f"9{VAR_SECRET}", "--var: write NAME=VALUE"),
        (f"é={VAR_SECRET}", "--var: what comes before '='"),
    ],
    ids=["colon", "space", "colon-then-equals", "space-in-name", "no-name", "dash", "not-a-name",
         "digit-first", "non-ascii-name"],
)  # fmt: skip
def test_a_var_argument_s_value_is_never_quoted(tmp_path: Path, argument: str, shown: str) -> None:
    # --var=ARG, so that argparse takes an argument starting with - as the value too.
    result = smtpload("run", "quickstart", f"--var={argument}", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"smtpload: {shown}"), result.stderr
    output = result.stdout + result.stderr
    assert VAR_SECRET not in output
    assert VAR_SECRET[:6] not in output
    assert not (tmp_path / "results").exists()


def test_an_undeclared_var_is_named_but_its_value_is_not(tmp_path: Path) -> None:
    result = smtpload("run", "quickstart", "--var", f"nope={VAR_SECRET}", cwd=tmp_path)
    assert result.returncode == 2
    assert "declares no variable 'nope'" in result.stderr
    assert VAR_SECRET not in result.stdout + result.stderr


def test_a_bare_name_is_quoted_as_the_name_it_looks_like(tmp_path: Path) -> None:
    result = smtpload("run", "quickstart", "--var", "novalue", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("smtpload: --var novalue: write NAME=VALUE, e.g."), (
        result.stderr
    )
