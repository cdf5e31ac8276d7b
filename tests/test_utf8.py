"""UTF-8 in scenarios (RFC 6531 SMTPUTF8, RFC 6152 8BITMIME): what is sent as written, and what
stays invalid in a command line (a line break, a NUL) and is refused at its place.

The wire tests check what real servers received: aiosmtpd's recording handler (with and
without ``enable_SMTPUTF8``) and Postfix's recording transport (``postfix_record``).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from smtpload.errors import ScenarioError
from smtpload.scenario.loader import parse_scenario
from tests.cli import smtpload


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(textwrap.dedent(text), "s.yaml")
    return [str(problem) for problem in info.value.problems]


# -- what a command line may not hold -------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [r'"\0EHLO x"', r'"EHLO a\0b"', r'"EHLO x\0"', r'"EHLO \x00"', r'"MAIL FROM:<ü\0@x.test>"'],
)
def test_a_send_line_with_a_nul_is_refused_at_its_step(written: str) -> None:
    found = problems(f"steps:\n  - greeting: 220\n  - send: {written}\n")
    assert len(found) == 1
    assert found[0].startswith("s.yaml:3:11: send holds a NUL character (U+0000)")


@pytest.mark.parametrize("value", [r"a\nb", r"a\rb", r"a\r\nRSET", r"a\0b", r"\n"])
def test_a_variable_with_a_line_break_or_nul_is_refused_where_a_send_step_uses_it(
    value: str,
) -> None:
    found = problems(
        f"""\
        variables:
          bad: "{value}"
          derived: "x-{{bad}}"
        steps:
          - greeting: 220
          - send: "MAIL FROM:<{{bad}}>"
            expect: 250
          - send: "RCPT TO:<{{derived}}>"
        """
    )
    what = "a NUL character" if value == r"a\0b" else "a line break"
    assert found == [
        f"s.yaml:6:23: {{bad}} holds {what}, declared on line 2, and a send step is one"
        " command line; use the variable in a data step's message only",
        f"s.yaml:8:21: {{derived}} holds {what} (from {{bad}}), declared on line 2, and a send"
        " step is one command line; use the variable in a data step's message only",
    ]


def test_a_variable_with_line_breaks_is_fine_in_a_message() -> None:
    scenario = parse_scenario(
        textwrap.dedent(
            """\
            variables:
              body: "Grüße\\nzweite Zeile"
            steps:
              - greeting: 220
              - send: DATA
                expect: 354
              - data: "Subject: ü\\n\\n{body}\\n"
            """
        ),
        "s.yaml",
    )
    assert scenario.variables == (("body", "Grüße\nzweite Zeile"),)


@pytest.mark.parametrize("value", ["a\nRSET", "a\r\nRSET", "a\rb", "line\n"])
def test_a_var_with_a_line_break_is_refused_before_any_session(tmp_path: Path, value: str) -> None:
    (tmp_path / "s.yaml").write_text(
        textwrap.dedent(
            """\
            variables:
              to: a@example.test
              path: "<{to}>"
            steps:
              - greeting: 220
              - send: EHLO client.example
                expect: 250
              - send: "RCPT TO:{path}"
                expect: 250
            """
        )
    )
    result = smtpload("run", "s.yaml", "--var", f"to={value}", cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stderr == (
        "smtpload: --var to: the value holds a line break or a NUL, which no command line may"
        " carry, and step 'rcpt' (line 8) sends it through {path} in one; give a value of one"
        " line\n"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()
