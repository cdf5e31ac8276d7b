"""The ``proxy:`` key and the ``xclient`` step's syntax: every problem at FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtpload.errors import ScenarioError, UsageError
from smtpload.protocol.compiler import compile_scenario
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import ProxySpec, StepKind
from tests.cli import smtpload

STEPS = "steps:\n  - greeting: 220\n  - send: QUIT\n    expect: 221\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    return [str(problem) for problem in caught.value.problems]


def with_proxy(value: str, head: str = "") -> str:
    return head + f"proxy: {value}\n" + STEPS


# -- proxy: ----------------------------------------------------------------------------------


def test_proxy_defaults() -> None:
    scenario = parse_scenario(with_proxy("{}"))
    assert scenario.proxy == ProxySpec(version=1, line=1, column=8)
    compiled = compile_scenario(scenario)
    assert compiled.proxy is not None
    assert not compiled.uses_variables  # nothing templated: the fast path stays


def test_proxy_templates_make_the_scenario_use_variables() -> None:
    scenario = parse_scenario(
        with_proxy(
            '{version: 2, source: "198.51.100.{session}", source_port: "{port}",'
            " destination: 127.0.0.1, destination_port: 25}",
            head="variables:\n  port: '4000'\n",
        )
    )
    assert scenario.proxy is not None
    assert (scenario.proxy.version, scenario.proxy.source) == (2, "198.51.100.{session}")
    assert scenario.proxy.destination_port == "25"
    compiled = compile_scenario(scenario)
    assert compiled.uses_variables
    assert compiled.proxy is not None
    addresses = compiled.proxy.addresses(compiled.session_variables(9, "r"), None, None)
    assert str(addresses) == "198.51.100.9:4000 -> 127.0.0.1:25"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2", "1:8: proxy takes a mapping, such as `proxy: {version: 2, source:"),
        ("{version: 3}", "1:18: proxy: version must be 1 (text) or 2 (binary)"),
        ("{version: two}", "1:18: proxy: version must be a whole number"),
        ("{command: health}", "1:18: proxy: command must be `proxy`"),
        ("{colour: red}", "1:9: unknown key 'colour' in proxy"),
        ("{source: mx.example.test}", "1:17: proxy: source 'mx.example.test' must be an IPv4"),
        ("{source: 198.51.100.300}", "1:17: proxy: source '198.51.100.300' must be an IPv4"),
        ('{destination: "fe80::1%lo"}', "1:22: proxy: destination 'fe80::1%lo' must be an IPv4"),
        ("{source_port: 65536}", "1:22: proxy: source_port '65536' must be a port number"),
        ("{destination_port: -1}", "1:27: proxy: destination_port '-1' must be a port number"),
        ("{source_port: 25a}", "1:22: proxy: source_port '25a' must be a port number"),
        ("{source: }", "1:17: proxy: source has no value; leave the key out for the connection"),
        (
            '{source: "2001:db8::7", destination: 127.0.0.1}',
            "1:45: proxy: destination 127.0.0.1 is IPv4 but the source 2001:db8::7 is IPv6",
        ),
        (
            '{source: 198.51.100.7, destination: "::1"}',
            "1:44: proxy: destination ::1 is IPv6 but the source 198.51.100.7 is IPv4",
        ),
        (
            "{command: local, source: 198.51.100.7}",
            "1:25: proxy: `source` with `command: local`: a LOCAL header carries no addresses",
        ),
        ('{source: "198.51.100.{sesion}"}', "1:29: proxy: unknown variable {sesion}"),
        ('{source: "198.51.100.{message_id}"}', "1:29: proxy: {message_id} is new for each"),
        ('{source: "198.51.100.{"}', "1:29: '{' must start a variable"),
    ],
    ids=[
        "not-a-mapping",
        "version-3",
        "version-text",
        "command",
        "unknown-key",
        "host-name",
        "octet",
        "zone",
        "port-too-big",
        "port-negative",
        "port-letters",
        "blank",
        "v6-to-v4",
        "v4-to-v6",
        "local-with-addresses",
        "unknown-variable",
        "per-message-variable",
        "template-syntax",
    ],
)
def test_proxy_problems(value: str, message: str) -> None:
    found = problems(with_proxy(value))
    assert len(found) == 1, found
    assert found[0].startswith("s.yaml:" + message), found


def test_a_capture_cannot_feed_the_header() -> None:
    text = (
        'proxy: {source: "{ip}"}\n'
        "steps:\n  - greeting: 220\n    capture: (?P<ip>[0-9.]+)\n  - send: QUIT\n"
    )
    (found,) = problems(text)
    assert found.startswith("s.yaml:1:18: proxy: unknown variable {ip}")
    assert "no capture can fill it" in found


def test_validate_reports_a_proxy_problem_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(with_proxy("{source: example.test}"))
    result = smtpload("validate", "p.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "p.yaml:1:17: proxy: source 'example.test' must be an IPv4" in result.stderr
    assert "Traceback" not in result.stderr


# -- xclient: --------------------------------------------------------------------------------


def xclient_steps(value: str, after: str = "  - send: EHLO x.example\n    expect: 250\n") -> str:
    return f"steps:\n  - greeting: 220\n  - xclient: {value}\n" + after


def test_xclient_step_defaults() -> None:
    scenario = parse_scenario(
        xclient_steps('{addr: "192.0.2.{session}", Name: c.example, PORT: 4000}')
    )
    step = scenario.steps[1]
    assert step.kind is StepKind.XCLIENT
    assert step.name == "xclient"
    assert step.expect is not None
    assert step.expect.codes == frozenset({220})
    assert step.xclient == (("ADDR", "192.0.2.{session}"), ("NAME", "c.example"), ("PORT", "4000"))
    compiled = compile_scenario(scenario)
    assert compiled.uses_variables
    command = compiled.steps[1].render(compiled.session_variables(3, "r"))
    assert command == b"XCLIENT ADDR=192.0.2.3 NAME=c.example PORT=4000\r\n"


def test_constant_xclient_is_encoded_once() -> None:
    compiled = compile_scenario(parse_scenario(xclient_steps('{name: "a b", addr: "2001:db8::7"}')))
    assert compiled.steps[1].payload == b"XCLIENT NAME=a+20b ADDR=IPV6:2001:db8::7\r\n"
    assert not compiled.uses_variables


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("true", "3:14: xclient takes a mapping of attributes"),
        ("{}", "3:14: xclient takes a mapping of attributes"),
        ("{colour: red}", "3:15: xclient: 'colour' is not an XCLIENT attribute"),
        ("{name: a, NAME: b}", "3:24: xclient: NAME is given twice (as 'name')"),
        ("{destaddr: }", "3:25: xclient: destaddr has no value; give one, or [UNAVAILABLE]"),
        ('{name: "{nosuch}"}', "3:22: unknown variable {nosuch}"),
        ('{name: "a\\nb"}', "3:21: xclient: name must not hold a line break"),
        ("{name: [a, b]}", "3:21: xclient: name must be text, not a list"),
    ],
    ids=[
        "boolean",
        "empty",
        "unknown",
        "twice",
        "blank",
        "unknown-variable",
        "line-break",
        "list",
    ],
)
def test_xclient_problems(value: str, message: str) -> None:
    found = problems(xclient_steps(value))
    assert len(found) == 1, found
    assert found[0].startswith("s.yaml:" + message), found


@pytest.mark.parametrize(
    "after",
    [
        "  - send: MAIL FROM:<a@example.test>\n    expect: 250\n",
        "  - send: NOOP\n",
        "  - starttls: true\n",
        '  - auth: {mechanism: PLAIN, username: u, password: "p"}\n',
    ],
    ids=["mail", "noop", "starttls", "auth"],
)
def test_ehlo_must_follow_xclient(after: str) -> None:
    (found,) = problems(xclient_steps("{name: c.example}", after))
    assert found.startswith("s.yaml:4:5: after xclient the server starts the session over")


@pytest.mark.parametrize(
    "after",
    [
        "  - send: EHLO x.example\n",
        "  - send: helo x.example\n",
        "  - send: QUIT\n",
        "  - close: true\n",
        "  - xclient: {addr: 192.0.2.1}\n  - send: EHLO x\n",
        "",
    ],
    ids=["ehlo", "helo", "quit", "close", "another-xclient", "last"],
)
def test_what_may_follow_xclient(after: str) -> None:
    parse_scenario(xclient_steps("{name: c.example}", after))


def test_a_hand_written_xclient_line_stays_allowed() -> None:
    scenario = parse_scenario(
        "steps:\n  - greeting: 220\n  - send: XCLIENT NAME=c.example\n    expect: 220\n"
    )
    assert scenario.steps[1].kind is StepKind.SEND


def test_a_constant_xclient_line_over_512_octets_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    text = xclient_steps(f"{{name: {'n' * 250}, helo: {'h' * 250}}}")
    with pytest.raises(UsageError, match=r"s\.yaml:3:5: xclient: the XCLIENT command would be"):
        compile_scenario(parse_scenario(text, "s.yaml"))
    (tmp_path / "x.yaml").write_text(text)
    for command in ("run", "validate"):
        result = smtpload(command, "x.yaml", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "x.yaml:3:5: xclient: the XCLIENT command would be 521 octets" in result.stderr
        assert "Traceback" not in result.stderr


def test_values_made_of_var_options_are_checked_once_before_the_run() -> None:
    text = (
        'variables:\n  src: "198.51.100.7"\n  pad: x\n'
        'proxy: {source: "{src}", destination: 127.0.0.1}\n'
        "steps:\n  - greeting: 220\n"
        '  - xclient: {name: "{pad}"}\n  - send: EHLO x\n'
    )
    scenario = parse_scenario(text, "s.yaml")
    compile_scenario(scenario)  # the file's own values are fine
    with pytest.raises(UsageError, match=r"^s\.yaml:4:8: proxy: source 'example' is not an"):
        compile_scenario(scenario, overrides={"src": "example"})
    with pytest.raises(UsageError, match=r"^s\.yaml:4:8: proxy: the source 2001:db8::7 is IPv6"):
        compile_scenario(scenario, overrides={"src": "2001:db8::7"})
    with pytest.raises(UsageError, match=r"^s\.yaml:7:5: xclient: the XCLIENT command would be"):
        compile_scenario(scenario, overrides={"pad": "p" * 500})
