"""The scenario language as the validator reads it (docs/scenario-language.md).

Valid files parse into exact ``model`` values; every invalid one is reported as
``FILE:LINE:COL: message`` lines, all at once. Pure tests: no network, no trio.
"""

from __future__ import annotations

import random
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from smtpload.errors import Problem, ScenarioError
from smtpload.scenario.loader import load_scenario, parse_scenario
from smtpload.scenario.model import (
    MAX_DATA_SIZE_BYTES,
    Expectation,
    Scenario,
    Step,
    StepKind,
    Target,
)
from smtpload.scenario.yaml_tree import USES_LIBYAML


def parse(text: str) -> Scenario:
    return parse_scenario(textwrap.dedent(text), "s.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse(text)
    return [str(problem) for problem in info.value.problems]


def steps_of(*steps: str, head: str = "") -> str:
    """A file whose steps, one per line, start at line (lines in head) + 2, column 5."""
    return head + "steps:\n" + "".join(f"  - {step}\n" for step in steps)


def codes(first: int, last: int) -> frozenset[int]:
    return frozenset(range(first, last + 1))


GREETING_220 = Expectation(codes=frozenset({220}), codes_text="220")
GO_AHEAD_354 = Expectation(codes=frozenset({354}), codes_text="354")
OK_250 = Expectation(codes=frozenset({250}), codes_text="250")
EXPECT_2XX = Expectation(codes=frozenset(range(200, 300)), codes_text="2xx")

# -- the documented example ---------------------------------------------------------------

DOC_EXAMPLE = """\
name: seed-telnet                    # optional; defaults to the file's stem
description: The blog post's telnet session, replayed
target: smtp.example.test:25         # optional default; --target overrides it
timeout: 10                          # optional default step timeout, seconds
variables:                           # optional; each value is a template (see below)
  from: hoge00@exsample.jp
  to: "user{session}@example.test"
steps:
  - greeting: 220                    # wait for the banner, send nothing
  - send: HELO exsample.jp           # one command line, sent byte for byte; CRLF is added
    expect: 250
  - send: "MAIL FROM:{from}"
    expect: 250
  - send: "RCPT TO:{to}"
    expect: 250
  - send: DATA
    expect: 354
  - data: |                          # the message; dot-stuffing and the final "." are added
      Subject: test {uid}
      From: {from}
      To: {to}

      meil send test
    expect: 250                      # the reply to the final "." (default 250)
  - send: QUIT
    expect: 221
  - close: true                      # the server must close the connection
"""


def test_documented_example_parses_into_the_exact_scenario() -> None:
    def send(name: str, text: str, code: int, line: int) -> Step:
        expect = Expectation(codes=frozenset({code}), codes_text=str(code))
        return Step(StepKind.SEND, name, text=text, expect=expect, line=line, column=5)

    message = "Subject: test {uid}\nFrom: {from}\nTo: {to}\n\nmeil send test\n"
    assert parse_scenario(DOC_EXAMPLE, "scenarios/seed.yaml") == Scenario(
        path="scenarios/seed.yaml",
        name="seed-telnet",
        description="The blog post's telnet session, replayed",
        target=Target("smtp.example.test", 25),
        timeout_s=10.0,
        variables=(("from", "hoge00@exsample.jp"), ("to", "user{session}@example.test")),
        steps=(
            Step(StepKind.GREETING, "greeting", expect=GREETING_220, line=9, column=5),
            send("helo", "HELO exsample.jp", 250, 10),
            send("mail", "MAIL FROM:{from}", 250, 12),
            send("rcpt", "RCPT TO:{to}", 250, 14),
            send("data", "DATA", 354, 16),
            Step(StepKind.DATA, "message", text=message, expect=OK_250, line=18, column=5),
            send("quit", "QUIT", 221, 25),
            Step(StepKind.CLOSE, "close", line=27, column=5),
        ),
    )


def test_scenarios_in_the_language_docs_are_valid() -> None:
    docs = Path(__file__).parent.parent / "docs" / "scenario-language.md"
    blocks = docs.read_text(encoding="utf-8").split("```yaml\n")[1:]
    scenarios = [block.split("```")[0] for block in blocks if "\nsteps:" in block]
    assert scenarios, "the docs should show at least one whole scenario"
    for text in scenarios:
        parse_scenario(text, str(docs))


# -- top-level keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "head", "name"),
    [
        ("dir/relay-test.yaml", "", "relay-test"),
        ("<string>", "", "scenario"),
        ("x.yaml", "name: nightly smoke\n", "nightly smoke"),
        ("x.yaml", "name: 2024\n", "2024"),
    ],
    ids=["file-stem", "string-default", "explicit", "number-as-text"],
)
def test_scenario_name(path: str, head: str, name: str) -> None:
    assert parse_scenario(steps_of("send: NOOP", head=head), path).name == name


@pytest.mark.parametrize(
    ("written", "target"),
    [
        ("mx.example.test:2525", Target("mx.example.test", 2525)),
        ("mx.example.test", Target("mx.example.test", 25)),
        ("127.0.0.1:25", Target("127.0.0.1", 25)),
        ('"[::1]:2525"', Target("::1", 2525)),
        ('"[2001:db8::1]"', Target("2001:db8::1", 25)),
        ("{host: mx.test, port: 587}", Target("mx.test", 587)),
        ("{host: mx.test}", Target("mx.test", 25)),
        ("{host: '[::1]', port: 65535}", Target("::1", 65535)),
    ],
    ids=[
        "host-port",
        "host-only",
        "ipv4",
        "ipv6-port",
        "ipv6-only",
        "map",
        "map-no-port",
        "map-v6",
    ],
)
def test_target_forms(written: str, target: Target) -> None:
    assert parse(steps_of("send: NOOP", head=f"target: {written}\n")).target == target


def test_optional_top_level_keys_default_to_nothing() -> None:
    scenario = parse(steps_of("send: NOOP"))
    assert (scenario.description, scenario.target, scenario.timeout_s, scenario.variables) == (
        "",
        None,
        None,
        (),
    )


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("10", 10.0), ("0.25", 0.25), ("1.", 1.0), (".5", 0.5), ("1_000", 1000.0)],
    ids=["int", "float", "trailing-dot", "leading-dot", "digit-separators"],
)
def test_timeout_is_seconds_as_float(written: str, seconds: float) -> None:
    timeout_s = parse(steps_of("send: NOOP", head=f"timeout: {written}\n")).timeout_s
    assert (timeout_s, type(timeout_s)) == (seconds, float)


def test_variables_keep_file_order_and_may_use_builtins_and_earlier_variables() -> None:
    scenario = parse(
        steps_of(
            "send: 'MAIL FROM:<{sender}>'",
            head="variables:\n  domain: example.test\n  sender: 'u{session}@{domain}'\n"
            "  braces: '{{literal}}'\n",
        )
    )
    assert scenario.variables == (
        ("domain", "example.test"),
        ("sender", "u{session}@{domain}"),
        ("braces", "{{literal}}"),
    )


# -- steps --------------------------------------------------------------------------------


def at(line: int, step: Step) -> Step:
    """The step as found on ``line`` of a steps_of() file (steps start at column 5)."""
    return replace(step, line=line, column=5)


@pytest.mark.parametrize(
    ("lines", "steps"),
    [
        pytest.param(
            ["greeting: true"],
            [at(2, Step(StepKind.GREETING, "greeting", expect=GREETING_220))],
            id="greeting-true-defaults-to-220",
        ),
        pytest.param(
            ["{greeting: true, expect: 2xx}"],
            [at(2, Step(StepKind.GREETING, "greeting", expect=EXPECT_2XX))],
            id="greeting-true-with-expect",
        ),
        pytest.param(
            ["greeting: [220, 554]"],
            [
                at(
                    2,
                    Step(
                        StepKind.GREETING,
                        "greeting",
                        expect=Expectation(frozenset({220, 554}), "220, 554"),
                    ),
                )
            ],
            id="greeting-as-expectation",
        ),
        pytest.param(
            ['send: ""'],
            [at(2, Step(StepKind.SEND, "send", text=""))],
            id="empty-send-sends-crlf",
        ),
        pytest.param(
            ["{send: DATA, expect: 354}", "data: {size: 10_000}"],
            [
                at(2, Step(StepKind.SEND, "data", text="DATA", expect=GO_AHEAD_354)),
                at(3, Step(StepKind.DATA, "message", data_size=10000, expect=OK_250)),
            ],
            id="size-with-digit-separators",
        ),
        pytest.param(
            ["{send: HELOO localhost, timeout: 2.5, name: bad verb}"],
            [at(2, Step(StepKind.SEND, "bad verb", text="HELOO localhost", timeout_s=2.5))],
            id="send-verbatim-with-name-and-timeout",
        ),
        pytest.param(
            ["{send: DATA, expect: 354}", "{data: {size: 1000}, expect: 2xx}"],
            [
                at(2, Step(StepKind.SEND, "data", text="DATA", expect=GO_AHEAD_354)),
                at(
                    3,
                    Step(
                        StepKind.DATA,
                        "message",
                        data_size=1000,
                        expect=EXPECT_2XX,
                    ),
                ),
            ],
            id="data-size-only",
        ),
        pytest.param(
            ["{send: DATA, expect: 354}", "data: {message: 'Subject: x', size: 0}"],
            [
                at(2, Step(StepKind.SEND, "data", text="DATA", expect=GO_AHEAD_354)),
                at(
                    3, Step(StepKind.DATA, "message", text="Subject: x", data_size=0, expect=OK_250)
                ),
            ],
            id="data-message-and-size-default-250",
        ),
        pytest.param(
            [r"{send: NOOP, capture: '(?P<id>\w+)', timeout: 3}", "send: 'VRFY {id}'"],
            [
                at(
                    2,
                    Step(StepKind.SEND, "noop", text="NOOP", capture=r"(?P<id>\w+)", timeout_s=3.0),
                ),
                at(3, Step(StepKind.SEND, "vrfy", text="VRFY {id}")),
            ],
            id="capture-feeds-later-step",
        ),
        pytest.param(["close: true"], [at(2, Step(StepKind.CLOSE, "close"))], id="close"),
    ],
)
def test_valid_steps(lines: list[str], steps: list[Step]) -> None:
    assert parse(steps_of(*lines)).steps == tuple(steps)


@pytest.mark.parametrize(
    ("written", "text"),
    [
        ("250", "250"),
        ("1.50", "1.50"),
        ("-7", "-7"),
        ("2024-01-01", "2024-01-01"),
        ("'no'", "no"),
        ('"017"', "017"),
        ("!!str 12:30", "12:30"),
        ("'MAIL FROM:<a@b>'", "MAIL FROM:<a@b>"),
    ],
    ids=["int", "float", "negative", "date", "quoted-no", "quoted-octal", "str-tag", "colon"],
)
def test_send_takes_scalars_whose_text_means_what_is_written(written: str, text: str) -> None:
    assert parse(steps_of(f"send: {written}")).steps[0].text == text


@pytest.mark.parametrize(
    "written",
    [
        str(MAX_DATA_SIZE_BYTES + 1),
        "1000000000000",
        "1_000_000_000_000",
        "100000000000000000000000000",  # 1e26 in digits, beyond any machine integer
        "9" * 100,
    ],
    ids=["one-over", "1e12", "1e12-separated", "1e26", "100-digits"],
)
def test_data_size_above_the_maximum_is_a_located_problem(written: str) -> None:
    text = steps_of("{send: DATA, expect: 354}", f"data: {{size: {written}}}")
    assert problems(text) == [
        f"s.yaml:3:18: data: size {int(written.replace('_', ''))} is more than the largest"
        f" message smtpload sends, {MAX_DATA_SIZE_BYTES} bytes (1 GiB); check the number of zeros"
    ]


@pytest.mark.parametrize("digits", [101, 5000], ids=["101", "5000-beyond-python-int-parsing"])
def test_a_number_with_too_many_digits_is_a_located_problem(digits: int) -> None:
    text = steps_of("{send: DATA, expect: 354}", f"data: {{size: {'9' * digits}}}")
    assert problems(text) == [
        f"s.yaml:3:18: data: size: a number of {digits} characters is far too large here"
    ]


def test_data_size_at_the_maximum_is_valid() -> None:
    text = steps_of("{send: DATA, expect: 354}", f"data: {{size: {MAX_DATA_SIZE_BYTES}}}")
    assert parse(text).steps[1].data_size == MAX_DATA_SIZE_BYTES == 1024**3


@pytest.mark.parametrize(
    ("sends", "names"),
    [
        (["EHLO a", "EHLO b", "EHLO c"], ["ehlo", "ehlo#2", "ehlo#3"]),
        (["MAIL FROM:<x>", "RCPT TO:<a>", "RCPT TO:<b>"], ["mail", "rcpt", "rcpt#2"]),
        (["HELOO localhost", "quit"], ["heloo", "quit"]),
        (["'{verb} x'", '""', "'MAIL:<a>'", "'  noop  '"], ["send", "send#2", "mail", "noop"]),
        (["'{{x}} y'", "'DATA{verb}'"], ["send", "send#2"]),
        (["{send: EHLO a, name: ehlo#2}", "EHLO b", "EHLO c"], ["ehlo#2", "ehlo", "ehlo#3"]),
        (["{send: NOOP, name: quit}", "QUIT", "QUIT"], ["quit", "quit#2", "quit#3"]),
        (["'CONNECT x'"], ["connect#2"]),
    ],
    ids=[
        "repeats-numbered",
        "verb-before-colon",
        "invalid-commands-too",
        "no-verb-falls-back-to-send",
        "braces-fall-back-to-send",
        "explicit-name-skipped",
        "explicit-takes-plain-name",
        "reserved-connect-skipped",
    ],
)
def test_derived_step_names(sends: list[str], names: list[str]) -> None:
    lines = [s if s.startswith("{") else f"send: {s}" for s in sends]
    head = "variables:\n  verb: HELO\n"
    assert [step.name for step in parse(steps_of(*lines, head=head)).steps] == names


@pytest.mark.parametrize(
    "expect",
    [
        "\n    expect: 354",
        "\n    expect: 3xx",
        "\n    expect: [250, 354]",
        "\n    expect: {code: 354, text: go}",
    ],
    ids=["354", "3xx", "list-with-354", "long-form"],
)
def test_data_may_follow_a_send_whose_expectation_accepts_354(expect: str) -> None:
    scenario = parse(steps_of("send: DATA" + expect, "data: hi"))
    assert [step.kind for step in scenario.steps] == [StepKind.SEND, StepKind.DATA]


def test_names_of_other_step_kinds() -> None:
    scenario = parse(
        steps_of(
            "greeting: true",
            "{send: DATA, expect: 354}",
            "data: x",
            "{send: DATA, expect: 354}",
            "data: y",
            "close: true",
        )
    )
    assert [step.name for step in scenario.steps] == [
        "greeting",
        "data",
        "message",
        "data#2",
        "message#2",
        "close",
    ]


# -- expectations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expectation"),
    [
        ("250", Expectation(codes=frozenset({250}), codes_text="250")),
        ('"251"', Expectation(codes=frozenset({251}), codes_text="251")),
        ("[250, 251]", Expectation(codes=frozenset({250, 251}), codes_text="250, 251")),
        ("2xx", Expectation(codes=codes(200, 299), codes_text="2xx")),
        ("25X", Expectation(codes=codes(250, 259), codes_text="25X")),
        ("1xx", Expectation(codes=codes(100, 199), codes_text="1xx")),
        ("[4xx, 550]", Expectation(codes=codes(400, 499) | {550}, codes_text="4xx, 550")),
        ("5.1.1", Expectation(enhanced="5.1.1")),
        ('"2.X.x"', Expectation(enhanced="2.x.x")),
        ("{code: 599}", Expectation(codes=frozenset({599}), codes_text="599")),
        ("{text: 'queued as \\w+'}", Expectation(pattern="queued as \\w+")),
        (
            "{code: [250, 251], enhanced: 2.1.5, text: ok, capabilities: [PIPELINING, auth  plain],"
            " absent_capabilities: starttls}",
            Expectation(
                codes=frozenset({250, 251}),
                codes_text="250, 251",
                enhanced="2.1.5",
                pattern="ok",
                capabilities=("PIPELINING", "AUTH PLAIN"),
                absent_capabilities=("STARTTLS",),
            ),
        ),
        ("{capabilities: 8BITMIME}", Expectation(capabilities=("8BITMIME",))),
    ],
    ids=[
        "code",
        "quoted-code",
        "list",
        "class",
        "class-upper-x",
        "class-1xx",
        "class-and-code",
        "enhanced",
        "enhanced-x",
        "long-code",
        "long-text",
        "long-everything",
        "single-capability",
    ],
)
def test_expectation_forms(written: str, expectation: Expectation) -> None:
    assert parse(steps_of(f"{{send: NOOP, expect: {written}}}")).steps[0].expect == expectation


# -- problems -----------------------------------------------------------------------------
# Each case: a file, then every problem in it as LINE:COL: message (the file is s.yaml).


def case(case_id: str, text: str, *expected: str) -> object:
    """A pytest.param: the file, then every problem in it."""
    return pytest.param(text, list(expected), id=case_id)


def read_as(raw: str, reading: str) -> str:
    """The message for a plain scalar that YAML 1.1 reads as something other than its text."""
    return f'value {raw!r} is read by YAML as {reading}; quote it: "{raw}"'


def check(text: str, expected: list[str]) -> None:
    assert problems(text) == [f"s.yaml:{message}" for message in expected]


EMPTY_FILE = "the file is empty; a scenario needs at least a list of `steps:`"
NOT_A_MAPPING = "a scenario must be a mapping of keys ({}), not a {}".format(
    "name, description, protocol, target, timeout, variables, load, proxy, steps", "{}"
)
KEEPS_LAST = "YAML would silently keep only the last one, so remove one"
BAD_NAME = "must be a word of letters, digits and _ (not starting with a digit) so that"
LATER_ONLY = "a captured variable is available only to the steps after the one that captures it"
NO_NAMED_GROUP = (
    "capture needs a named group, such as (?P<queue_id>\\w+); each group's name becomes"
    " a variable for later steps"
)
ONE_LINE = (
    "send is one command line, without line breaks; use a separate step per command,"
    " and `data:` for the message"
)
ONE_ACTION = (
    "must be a mapping with one action (greeting, send, data, close, starttls, auth or xclient),"
    " such as `- send: QUIT`"
)
CLOSE_TRUE = (
    "close takes only `true` (the server must close the connection); remove the step if it"
    " should not"
)
AFTER_DATA = "a data step must follow `send: DATA` with `expect: 354`"
IN_THE_CLEAR = (
    "would then be sent in the clear while the server waits for a TLS handshake: a raw send"
    " cannot upgrade the connection. Write `- starttls: true` instead (it sends STARTTLS,"
    " expects 220 and upgrades), or expect a refusal (such as `expect: 454`) to test one, or"
    " end the session here with `close: true`"
)
NOT_A_CODE = (
    "is not a reply code; write three digits from 100 to 599 (250), a class with x for any"
    " digit (2xx, 25x), or a list of them"
)
OCTAL_OR_BASE_60 = "(YAML 1.1 reads a leading 0 as octal and 4:10 as base 60)"
NOT_ENHANCED = (
    "is not an enhanced status code; write class.subject.detail (RFC 3463), class 2, 4 or 5,"
    " subject and detail 0..999 or x, e.g. 5.1.1 or 2.x.x"
)
UNTERMINATED = "invalid regular expression: missing )"
RE2 = "smtpload matches replies with RE2, which never backtracks (docs/scenario-language.md)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        case("empty-file", "", f"1:1: {EMPTY_FILE}"),
        case("comment-only", "# nothing\n", f"1:1: {EMPTY_FILE}"),
        case("document-marker-only", "---\n", f"1:1: {EMPTY_FILE}"),
        case("scalar-document", "hello", f"1:1: {NOT_A_MAPPING.format('single value')}"),
        case("list-document", "- send: QUIT\n", f"1:1: {NOT_A_MAPPING.format('list')}"),
        case(
            "two-documents",
            "steps: [send: NOOP]\n---\nsteps: []\n",
            "2:1: a second YAML document starts here; a scenario file holds one"
            " (remove the `---`, or split the file)",
        ),
        case(
            "no-steps",
            "name: x\n",
            "1:1: the scenario has no `steps:`; add a list such as `- greeting: 220`",
        ),
        case(
            "empty-steps", "steps: []\n", "1:8: steps is empty; a scenario needs at least one step"
        ),
        case("null-steps", "steps:\n", "1:7: steps is empty; a scenario needs at least one step"),
        case(
            "steps-not-a-list",
            "steps:\n  send: QUIT\n",
            "2:3: steps must be a list (lines starting with `- `), not a mapping",
        ),
        case(
            "unknown-key-did-you-mean",
            steps_of("send: NOOP", head="stepz: 1\n"),
            "1:1: unknown key 'stepz' at the top level (did you mean 'steps'?)",
        ),
        case(
            "unknown-key-lists-valid-keys",
            steps_of("send: NOOP", head="colour: red\n"),
            "1:1: unknown key 'colour' at the top level (valid keys here: name, description,"
            " protocol, target, timeout, variables, load, proxy, steps)",
        ),
        case(
            "duplicate-key",
            "name: a\nname: b\n" + steps_of("send: NOOP"),
            f"2:1: duplicate key 'name' at the top level (first given on line 1); {KEEPS_LAST}",
        ),
        case(
            "empty-name", steps_of("send: NOOP", head="name: ''\n"), "1:7: name must not be empty"
        ),
        case(
            "bool-description",
            steps_of("send: NOOP", head="description: yes\n"),
            f"1:14: {read_as('yes', 'a boolean (true)')}",
        ),
        case(
            "zero-timeout",
            steps_of("send: NOOP", head="timeout: 0\n"),
            "1:10: timeout must be a number of seconds greater than 0",
        ),
        case(
            "text-timeout",
            steps_of("send: NOOP", head="timeout: soon\n"),  # 10s is a duration now
            "1:10: timeout 'soon' is not a duration: give seconds, or a number with ms, s, m or h"
            " (500ms, 30s, 5m, 1h)",
        ),
        case(
            "bool-timeout",
            steps_of("send: NOOP", head="timeout: true\n"),
            "1:10: timeout must be a number; YAML reads 'true' as a boolean",
        ),
        case(
            "base-60-timeout",
            steps_of("send: NOOP", head="timeout: 1:30\n"),
            "1:10: timeout: '1:30' is read by YAML as the number 90 (base 60); write a number"
            " in plain decimal",
        ),
        case(
            "infinite-timeout",
            steps_of("send: NOOP", head="timeout: .inf\n"),
            "1:10: timeout: '.inf' is read by YAML as the number inf; write a number in plain"
            " decimal",
        ),
    ],
)
def test_top_level_problems(text: str, expected: list[str]) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        case(
            "port-zero",
            steps_of("send: NOOP", head="target: mx.test:0\n"),
            "1:9: bad target 'mx.test:0': the port must be a number from 1 to 65535",
        ),
        case(
            "port-too-big",
            steps_of("send: NOOP", head="target: mx.test:65536\n"),
            "1:9: bad target 'mx.test:65536': the port must be a number from 1 to 65535",
        ),
        case(
            "port-not-a-number",
            steps_of("send: NOOP", head="target: mx.test:smtp\n"),
            "1:9: bad target 'mx.test:smtp': the port must be a number from 1 to 65535",
        ),
        case(
            "bare-ipv6",
            steps_of("send: NOOP", head="target: '::1:2626'\n"),
            "1:9: bad target '::1:2626': write an IPv6 address in brackets, as [::1]:2525 or [::1]",
        ),
        case(
            "unclosed-bracket",
            steps_of("send: NOOP", head="target: '[::1:25'\n"),
            "1:9: bad target '[::1:25': write an IPv6 address as [::1]:2525",
        ),
        case(
            "empty-port",
            steps_of("send: NOOP", head="target: 'mx.test:'\n"),
            "1:9: bad target 'mx.test:': the port after ':' is empty; write HOST:PORT, e.g."
            " mx.test:25, or leave out the ':' for port 25",
        ),
        case(
            "empty-port-ipv6",
            steps_of("send: NOOP", head="target: '[::1]:'\n"),
            "1:9: bad target '[::1]:': the port after ':' is empty; write HOST:PORT, e.g."
            " [::1]:25, or leave out the ':' for port 25",
        ),
        case(
            "no-host",
            steps_of("send: NOOP", head="target: ':25'\n"),
            "1:9: bad target ':25': it needs a host name or address (without spaces);"
            " write HOST:PORT, e.g. 127.0.0.1:2525",
        ),
        case(
            "map-without-host",
            steps_of("send: NOOP", head="target: {port: 25}\n"),
            "1:9: target needs a `host:` (and optionally `port:`, default 25)",
        ),
        case(
            "map-port-misspelt-and-quoted",
            steps_of("send: NOOP", head="target: {host: mx, prot: 25, port: '25'}\n"),
            "1:20: unknown key 'prot' in target (did you mean 'port'?)",
            "1:36: target: port must be a whole number: the quotes make it text; remove them",
        ),
        case(
            "map-port-octal",
            steps_of("send: NOOP", head="target: {host: mx, port: 0525}\n"),
            "1:26: target: port: '0525' is read by YAML as the number 341 (octal); write a whole"
            " number in plain decimal",
        ),
    ],
)
def test_target_problems(text: str, expected: list[str]) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        case(
            "bad-names",
            steps_of("send: NOOP", head="variables:\n  1st: a\n  from-addr: b\n  session: c\n"),
            f"2:3: variable name '1st' {BAD_NAME} {{1st}} can use it",
            f"3:3: variable name 'from-addr' {BAD_NAME} {{from-addr}} can use it",
            "4:3: {session} is a built-in variable; choose another name",
        ),
        case(
            "value-traps",
            steps_of(
                "send: NOOP",
                head="variables:\n  answer: no\n  port: 017\n  time: 12:30\n  list: [a]\n",
            ),
            f"2:11: {read_as('no', 'a boolean (false)')}",
            f"3:9: {read_as('017', 'the number 15 (octal)')}",
            f"4:9: {read_as('12:30', 'the number 750 (base 60)')}",
            "5:9: variable 'list' must be text, not a list",
        ),
        case(
            "use-before-declaration",
            steps_of(
                "send: NOOP", head="variables:\n  a: '<{b}>'\n  b: x\n  c: '{c}'\n  d: '{sesion}'\n"
            ),
            "2:8: variable {b} is declared below this one; a variable may use only built-ins and"
            " variables declared above it",
            "4:7: variable {c} cannot use itself",
            "5:7: unknown variable {sesion} (declare it under variables:, or did you mean"
            " {session}?)",
        ),
        case(
            "duplicate",
            steps_of("send: NOOP", head="variables:\n  a: x\n  a: y\n"),
            f"3:3: duplicate key 'a' in variables (first given on line 2); {KEEPS_LAST}",
        ),
        case(
            "template-syntax-at-the-brace",
            steps_of("send: 'MAIL FROM:{from'", head="variables:\n  from: a@b\n"),
            "4:22: '{' must start a variable such as {from}; write '{{' for a literal '{'",
        ),
        case(
            "unknown-did-you-mean",
            steps_of("send: 'MAIL FROM:<{frm}>'", head="variables:\n  from: a@b\n"),
            "4:23: unknown variable {frm} (declare it under variables:, or did you mean {from}?)",
        ),
        case(
            "unknown-in-data-block-at-its-line",
            "steps:\n  - send: DATA\n    expect: 354\n"
            "  - data: |\n      Subject: hi\n      To: {to}\n",
            "6:11: unknown variable {to} (declare it under variables:)",
        ),
        case(
            "captured-by-a-later-step",
            steps_of(
                "send: 'NOOP {id}'",
                r"{send: NOOP, capture: '(?P<id>\w+)'}",
                r"{send: 'VRFY {id}', capture: '(?P<id>\w+)'}",
            ),
            f"2:17: {{id}} is captured by step 2; {LATER_ONLY}",
        ),
        case(
            "captured-by-the-same-step",
            steps_of(r"{send: 'VRFY {id}', capture: '(?P<id>\w+)'}"),
            f"2:18: {{id}} is captured by this step; {LATER_ONLY}",
        ),
        case(
            "capture-without-named-group",
            steps_of(r"{send: NOOP, capture: 'queued as (\w+)'}"),
            f"2:27: {NO_NAMED_GROUP}",
        ),
        case(
            "capture-invalid-regex",
            steps_of(r"{send: NOOP, capture: '(?P<id>\w+'}"),
            f"2:28: capture: {UNTERMINATED}",
        ),
        case(
            "capture-needs-what-re2-lacks",
            steps_of(
                r"{send: NOOP, capture: '(?P<id>\w+)(?! x)'}",
                r"{send: NOOP, capture: '(?<=id=)(?P<id>\w+)'}",
                r"{send: NOOP, capture: '(?P<id>\w)(?P=id)'}",
                r"{send: NOOP, capture: '(?P<x>a)|(?P<x>b)'}",
                r"{send: NOOP, capture: '(?P<id>\w+)\Z'}",
            ),
            f"2:39: capture: negative lookahead (?!...) is not supported: {RE2}",
            f"3:28: capture: lookbehind (?<=...) is not supported: {RE2}",
            f"4:38: capture: a backreference (?P=name) is not supported: {RE2}",
            "5:37: capture: the group name 'x' is used twice",
            "6:39: capture: \\Z is not supported: write \\z (or $) for the end of the text",
        ),
        case(
            "capture-group-name-re2-takes-but-templates-cannot-use",
            steps_of("{send: NOOP, capture: '(?P<1st>\\w+)'}", "{send: NOOP, capture: '(?<é>.)'}"),
            "2:27: capture group '1st' must be a word of letters, digits and _ (not starting with"
            " a digit) so that {1st} can use it",
            "3:27: capture group 'é' must be a word of letters, digits and _ (not starting with"
            " a digit) so that {é} can use it",
        ),
        case(
            "capture-hides-builtin",
            steps_of("{send: NOOP, capture: '(?P<date>.*)'}"),
            "2:27: capture group 'date' would hide the built-in {date}",
        ),
        case(
            "per-message-builtin-in-a-send-step",
            steps_of("send: 'MAIL FROM:<{message_id}>'"),
            "2:23: {message_id} is new for each message, so only a data step's message can use"
            " it, not a send step",
        ),
        case(
            "per-message-builtin-in-a-variable",
            steps_of("send: NOOP", head="variables:\n  mid: 'x{message_id}'\n"),
            "2:10: {message_id} is new for each message, so only a data step's message can use"
            " it, not a variable, which is set once per session",
        ),
        case(
            "per-message-builtin-declared",
            steps_of("send: NOOP", head="variables:\n  message_id: x\n"),
            "2:3: {message_id} is a built-in variable; choose another name",
        ),
        case(
            "capture-hides-per-message-builtin",
            steps_of("{send: NOOP, capture: '(?P<message_id>.*)'}"),
            "2:27: capture group 'message_id' would hide the built-in {message_id}",
        ),
        case(
            "capture-hides-variable",
            steps_of("{send: NOOP, capture: '(?P<to>.*)'}", head="variables:\n  to: x\n"),
            "4:27: capture group 'to' would hide the variable {to} declared on line 2; rename"
            " the group",
        ),
    ],
)
def test_variable_and_template_problems(text: str, expected: list[str]) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        case("not-a-mapping", steps_of("QUIT"), f"2:5: step 1 {ONE_ACTION}"),
        case(
            "no-action",
            steps_of("{name: x, expect: 250}"),
            "2:5: step 1 has no action; give one of greeting, send, data, bdat, close, starttls,"
            " auth, xclient, rcpt",
        ),
        case(
            "misspelt-action-reported-once",
            steps_of("sendd: NOOP"),
            "2:5: unknown key 'sendd' in step 1 (did you mean 'send'?)",
        ),
        case(
            "capitalised-key",
            steps_of("Send: NOOP"),
            "2:5: unknown key 'Send' in step 1 (did you mean 'send'?)",
        ),
        case(
            "two-actions",
            steps_of("{send: QUIT, close: true}"),
            "2:18: step 1 has two actions, 'send' and 'close'; give each its own step",
        ),
        case(
            "duplicate-key",
            "steps:\n  - send: A\n    send: B\n",
            f"3:5: duplicate key 'send' in step 1 (first given on line 2); {KEEPS_LAST}",
        ),
        case(
            "send-traps",
            steps_of(
                "send: no",
                "send: ON",
                "send: 017",
                "send: 12:30",
                "send: 0x1F",
                "send: ~",
                "send: 1_000",
            ),
            f"2:11: {read_as('no', 'a boolean (false)')}",
            f"3:11: {read_as('ON', 'a boolean (true)')}",
            f"4:11: {read_as('017', 'the number 15 (octal)')}",
            f"5:11: {read_as('12:30', 'the number 750 (base 60)')}",
            f"6:11: {read_as('0x1F', 'the number 31 (hexadecimal)')}",
            f"7:11: {read_as('~', 'null (no value)')}",
            f"8:11: {read_as('1_000', 'the number 1000')}",
        ),
        case(
            "send-without-value",
            steps_of("send:"),
            """2:10: send has no value; to send an empty line, write send: \"\"""",
        ),
        case("send-with-crlf", steps_of(r'send: "HELO a\r\nMAIL FROM:<b>"'), f"2:11: {ONE_LINE}"),
        case(
            "send-as-block",
            "steps:\n  - send: |\n      QUIT\n",
            f"2:11: {ONE_LINE} (a `|` block adds a final line break; use `|-`)",
        ),
        case("send-as-list", steps_of("send: [QUIT]"), "2:11: send must be text, not a list"),
        case(
            "unsupported-tags",
            steps_of("send: !cmd QUIT", "send: !!binary UVVJVA=="),
            "2:11: send: the YAML tag '!cmd' is not supported; remove it",
            "3:11: send: the YAML tag 'tag:yaml.org,2002:binary' is not supported; remove it",
        ),
        case(
            "greeting-false",
            steps_of("greeting: false"),
            "2:15: greeting takes `true` or an expectation such as 220",
        ),
        case(
            "greeting-expectation-given-twice",
            steps_of("{greeting: 220, expect: 2xx}"),
            "2:21: give the expectation once: `greeting: 220`, or `greeting: true` with `expect:`",
        ),
        case(
            "greeting-without-value",
            steps_of("greeting:"),
            "2:14: greeting has no value; give a code such as 250, or remove it to accept any"
            " reply",
        ),
        case("close-false", steps_of("close: false"), f"2:12: {CLOSE_TRUE}"),
        case("close-quoted-true", steps_of("close: 'true'"), f"2:12: {CLOSE_TRUE}"),
        case(
            "close-with-expect-and-capture",
            steps_of("{close: true, expect: 221, capture: '(?P<x>.)'}"),
            "2:19: a close step takes no `expect`: it waits for the connection to end",
            "2:32: a close step takes no `capture`: there is no reply to search",
        ),
        case("data-first", steps_of("data: hi"), f"2:5: {AFTER_DATA} (it is the first step)"),
        case(
            "data-after-greeting",
            steps_of("greeting: true", "data: hi"),
            f"3:5: {AFTER_DATA} (step 1 is a greeting step)",
        ),
        case(
            "data-after-send-without-expect",
            steps_of("send: DATA", "data: hi"),
            f"3:5: {AFTER_DATA} (step 1 does not expect a reply code)",
        ),
        case(
            "data-after-send-expecting-text-only",
            steps_of("{send: DATA, expect: {text: go}}", "data: hi"),
            f"3:5: {AFTER_DATA} (step 1 does not expect a reply code)",
        ),
        case(
            "starttls-accepted-then-more",
            steps_of("greeting: 220", "{send: STARTTLS, expect: 220}", "send: EHLO x"),
            f"3:5: this `send: STARTTLS` accepts a 2xx reply, and step 3 {IN_THE_CLEAR}",
        ),
        case(
            "starttls-of-any-case-and-class-then-more",
            steps_of("{send: ' starttls', expect: [2xx, 454]}", "send: EHLO x"),
            f"2:5: this `send: STARTTLS` accepts a 2xx reply, and step 2 {IN_THE_CLEAR}",
        ),
        case(
            "starttls-without-expect-then-more",
            steps_of("send: STARTTLS", "send: QUIT"),
            f"2:5: this `send: STARTTLS` accepts any reply, and step 2 {IN_THE_CLEAR}",
        ),
        case(
            "step-after-close",
            steps_of("send: QUIT", "close: true", "send: NOOP", "send: NOOP"),
            "4:5: nothing can follow the close step (step 2): the connection is gone by then;"
            " remove this step or move the close step last",
        ),
        case(
            "data-after-send-expecting-250",
            steps_of("send: DATA", "{send: DATA, expect: [250, 251]}", "data: hi"),
            f"4:5: {AFTER_DATA} (step 2 expects 250, 251)",
        ),
        case(
            "data-mapping-problems",
            steps_of(
                "{send: DATA, expect: 354}",
                "data: {}",
                "{send: DATA, expect: 354}",
                "data: {mesage: x, size: -1}",
                "{send: DATA, expect: 354}",
                "data: {size: 1.5}",
                "{send: DATA, expect: 354}",
                "data: [x]",
            ),
            "3:11: data needs `message:`, `size:`, or both",
            "5:12: unknown key 'mesage' in data (did you mean 'message'?)",
            "5:29: data: size must be 0 or more bytes",
            "7:18: data: size must be a whole number, not 1.5",
            "9:11: data must be the message text, or {message: TEXT, size: BYTES}",
        ),
        case(
            "step-names",
            steps_of(
                "{send: A, name: connect}",
                "{send: B, name: Connect}",
                "{send: C, name: x}",
                "{send: D, name: x}",
                "{send: E, name: ''}",
            ),
            "2:21: step name 'connect' is reserved for the TCP connect; choose another",
            "3:21: step name 'Connect' is reserved for the TCP connect; choose another",
            "5:21: step name 'x' is already used by step 3; step names must be unique",
            "6:21: name must not be empty",
        ),
        case(
            "step-timeouts",
            steps_of("{send: A, timeout: 0}", "{send: B, timeout: -1.5}", "{send: C, timeout: no}"),
            "2:24: timeout must be a number of seconds greater than 0",
            "3:24: timeout must be a number of seconds greater than 0",
            "4:24: timeout must be a number; YAML reads 'no' as a boolean",
        ),
    ],
)
def test_step_problems(text: str, expected: list[str]) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        case(
            "codes",
            steps_of(
                "{send: A, expect: 600}",
                "{send: B, expect: 99}",
                "{send: C, expect: 017}",
                "{send: D, expect: 6xx}",
                "{send: E, expect: [250, 2x]}",
                "{send: F, expect: []}",
                "{send: G, expect: [[250]]}",
                "{send: H, expect: true}",
                "{send: I, expect: 4:10}",
            ),
            f"2:23: expect: '600' {NOT_A_CODE}",
            f"3:23: expect: '99' {NOT_A_CODE}",
            f"4:23: expect: '017' {NOT_A_CODE.replace(';', ' ' + OCTAL_OR_BASE_60 + ';', 1)}",
            f"5:23: expect: '6xx' {NOT_A_CODE}",
            f"6:29: expect: '2x' {NOT_A_CODE}",
            "7:23: expect is an empty list; give at least one code such as 250",
            "8:24: expect: give codes such as 250 or classes such as 2xx, not a list",
            "9:23: expect: 'true' is read by YAML as a boolean, not a reply code",
            f"10:23: expect: '4:10' {NOT_A_CODE.replace(';', ' ' + OCTAL_OR_BASE_60 + ';', 1)}",
        ),
        case(
            "enhanced-codes",
            steps_of(
                "{send: A, expect: 2.0}",
                "{send: B, expect: 3.1.1}",
                "{send: C, expect: {enhanced: 5.1000.1}}",
                "{send: D, expect: {enhanced: 5}}",
            ),
            f"2:23: expect: '2.0' {NOT_ENHANCED}",
            f"3:23: expect: '3.1.1' {NOT_ENHANCED}",
            f"4:34: expect: enhanced: '5.1000.1' {NOT_ENHANCED}",
            f"5:34: expect: enhanced: '5' {NOT_ENHANCED}",
        ),
        case(
            "text-needs-what-re2-lacks",
            steps_of(
                "{send: A, expect: {text: 'queued(?= as)'}}",
                "{send: B, expect: {text: '(\\w+) \\1'}}",
                "{send: C, expect: {text: '(?<!no )ok'}}",
                "{send: D, expect: {text: 'x(?>a+)'}}",
                "{send: E, expect: {text: 'a++'}}",
                "{send: F, expect: {text: '(?x) a b'}}",
                "{send: G, expect: {text: 'ok{,3}'}}",
                "{send: H, expect: {text: 'a{1001}'}}",
                '{send: I, expect: {text: "ok\\ud800"}}',
            ),
            f"2:37: expect: text: lookahead (?=...) is not supported: {RE2}",
            f"3:37: expect: text: a backreference (\\1) is not supported: {RE2}",
            f"4:31: expect: text: negative lookbehind (?<!...) is not supported: {RE2}",
            f"5:32: expect: text: an atomic group (?>...) is not supported: {RE2}",
            "6:32: expect: text: a possessive quantifier (++) is not supported; RE2 never"
            " backtracks, so + alone does the same",
            f"7:31: expect: text: the flag x is not supported (RE2 has i, m, s and U): {RE2}",
            "8:33: expect: text: {,3} means {0,3} in Python's re but a literal text in RE2:"
            " write {0,3}",
            "9:32: expect: text: a repetition is limited to 1000 (nested repetitions multiply):"
            " {1001}",
            "10:30: expect: text holds \\ud800, half of a UTF-16 surrogate pair; write the"
            " character itself, or escape it whole, as in \\U0001F642",
        ),
        case(
            "long-form",
            steps_of(
                "{send: A, expect: {}}",
                "{send: B, expect: {cod: 250}}",
                "{send: C, expect: {text: 'queued (as'}}",
                "{send: D, expect: {capabilities: ['', on]}}",
                "{send: E, expect: {absent_capabilities: {a: b}}}",
                "send: F\n    expect:",
            ),
            "2:23: expect is an empty mapping; give at least one of code, enhanced, text,"
            " capabilities, absent_capabilities (or remove expect to accept any reply)",
            "3:24: unknown key 'cod' in expect (did you mean 'code'?)",
            f"4:38: expect: text: {UNTERMINATED}; fix or escape it",
            "5:39: expect: capabilities: a capability must not be empty; write e.g. PIPELINING",
            f"5:43: {read_as('on', 'a boolean (true)')}",
            "6:45: expect: absent_capabilities must be text, not a mapping",
            "8:12: expect has no value; give a code such as 250, or remove it to accept any reply",
        ),
    ],
)
def test_expectation_problems(text: str, expected: list[str]) -> None:
    check(text, expected)


def test_several_problems_in_one_file_are_all_reported_in_file_order() -> None:
    text = """\
        name: many
        steps:
          - greeting: 220
          - sendd: HELO x
          - send: no
            expect: 017
          - send: "MAIL FROM:{frm}"
          - {send: RCPT TO:<a>, send: RCPT TO:<b>}
          - close: false
    """
    assert problems(text) == [
        "s.yaml:4:5: unknown key 'sendd' in step 2 (did you mean 'send'?)",
        "s.yaml:5:11: value 'no' is read by YAML as a boolean (false); quote it: \"no\"",
        "s.yaml:6:13: expect: '017' is not a reply code (YAML 1.1 reads a leading 0 as octal"
        " and 4:10 as base 60); write three digits from 100 to 599 (250), a class with x for"
        " any digit (2xx, 25x), or a list of them",
        "s.yaml:7:22: unknown variable {frm} (declare it under variables:)",
        "s.yaml:8:25: duplicate key 'send' in step 5 (first given on line 8); YAML would"
        " silently keep only the last one, so remove one",
        "s.yaml:9:12: close takes only `true` (the server must close the connection); remove"
        " the step if it should not",
    ]


def test_problem_carries_file_line_and_column() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario("steps:\n  - sned: QUIT\n", "dir/x.yaml")
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.column) == ("dir/x.yaml", 2, 5)
    assert str(info.value) == "dir/x.yaml:2:5: unknown key 'sned' in step 1 (did you mean 'send'?)"


# -- YAML that is not even a scenario -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first"),
    [
        pytest.param(
            "[",
            "1:2: YAML syntax error: did not find expected node content"
            if USES_LIBYAML
            else "1:2: YAML syntax error: expected the node content",
            id="open-bracket",
        ),
        pytest.param(
            "steps: [send: A",
            "1:16: YAML syntax error: did not find expected ',' or ']'"
            if USES_LIBYAML
            else "1:16: YAML syntax error: expected ',' or ']'",
            id="unclosed-list",
        ),
        pytest.param(
            "steps:\n\t- send: QUIT\n",
            "2:1: YAML syntax error: found character "
            + ("" if USES_LIBYAML else "'\\t' ")
            + "that cannot start any token (while scanning for the next token); indent with"
            " spaces, not tabs",
            id="tab-indent",
        ),
        pytest.param("- - -", "1:1: a scenario must be a mapping", id="nested-dashes"),
        pytest.param("just words", "1:1: a scenario must be a mapping", id="scalar"),
        pytest.param(
            "steps:\x00\x01", "1:7: character U+0000 is not allowed in YAML", id="nul-bytes"
        ),
        pytest.param(
            "\x89PNG\r\n\x1a\n", "1:1: character U+0089 is not allowed in YAML", id="binary-ish"
        ),
        pytest.param(
            "steps: *nowhere",
            "1:8: YAML syntax error: found an undefined alias (a *name with no &name before"
            " it; the name is not shown)",
            id="undefined-alias",
        ),
        pytest.param("steps: &a [*a]", "1:8: step 1 must be a mapping", id="recursive-alias"),
        pytest.param(
            "[" * 500,  # under libyaml 0.2.6's own limit of 1000, so smtpload's count says it
            "1:101: the YAML is nested too deeply to be a scenario (more than 100 levels",
            id="deep-nesting",
        ),
        pytest.param(
            "? [a]\n: b\nsteps: [send: A]\n",
            "1:3: a key at the top level must be a plain word, not a list",
            id="key-is-a-list",
        ),
        pytest.param(
            "steps: a: b",
            "1:9: YAML syntax error: mapping values are not allowed "
            + ("in this context" if USES_LIBYAML else "here"),
            id="colon-in-value",
        ),
    ],
)
def test_malformed_yaml_becomes_a_located_problem(text: str, first: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    assert str(info.value.problems[0]).startswith(f"s.yaml:{first}")


@pytest.mark.parametrize(
    ("escape", "expected"),
    [
        ("\\ud83d", "2:11: send holds \\ud83d, half of a UTF-16 surrogate pair"),
        ("\\U0000DC00", "2:11: send holds \\udc00, half of a UTF-16 surrogate pair"),
        pytest.param(
            "\\U00110000",
            "2:14: YAML syntax error: found invalid Unicode character escape code",
            marks=pytest.mark.skipif(not USES_LIBYAML, reason="PyYAML's parser fails on it"),
        ),
    ],
    ids=["half-a-pair", "half-a-pair-long-form", "beyond-unicode"],
)
def test_escapes_libyaml_refuses_are_located_problems(escape: str, expected: str) -> None:
    # libyaml refuses escapes of surrogates, which PyYAML reads: the grammar explains them.
    with pytest.raises(ScenarioError) as info:
        parse_scenario(f'steps:\n  - send: "{escape}"\n', "s.yaml")
    assert str(info.value.problems[0]).startswith(f"s.yaml:{expected}")


def test_mangled_example_never_raises_anything_but_scenario_error() -> None:
    rng = random.Random(5321)
    found: list[Problem] = []
    for _ in range(400):
        chars = list(DOC_EXAMPLE)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(chars))
            chars[at : at + rng.randint(0, 3)] = rng.choice(
                ["", ":", "-", "[", "{", "}", "\t", "'", '"', "&a", "*a", "!!int", "\n  ", "no"]
            )
        try:
            parse_scenario("".join(chars), "s.yaml")
        except ScenarioError as exc:
            found.extend(exc.problems)
    assert len(found) > 100
    assert all(p.line >= 1 and p.column >= 1 for p in found)
    assert [p for p in found if "internal error" in p.message] == []


# -- files --------------------------------------------------------------------------------


def test_load_scenario_reads_utf8_and_skips_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "greet.yaml"
    path.write_bytes(b"\xef\xbb\xbfsteps:\n  - send: 'HELO \xc3\xa9'\n")
    scenario = load_scenario(path)
    assert (scenario.path, scenario.name, scenario.steps[0].text) == (str(path), "greet", "HELO é")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            None,
            "cannot read the scenario file (No such file or directory); check the path and"
            " permissions",
        ),
        (
            b"steps:\n  - send: \xff\n",
            "the file is not UTF-8 (byte 0xff on line 2); save it as UTF-8",
        ),
    ],
    ids=["missing", "not-utf8"],
)
def test_load_scenario_unreadable_file_is_a_problem_at_line_1(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "s.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [str(p) for p in info.value.problems] == [f"{path}:1:1: {message}"]


@pytest.mark.parametrize(
    "steps",
    [
        ("{send: STARTTLS, expect: 454}", "send: EHLO x"),  # a refusal is a fine test
        ("{send: STARTTLS, expect: [454, 502]}", "send: QUIT"),
        ("{send: STARTTLS, expect: 220}", "close: true"),
        ("send: EHLO x", "{send: STARTTLS, expect: 220}"),  # the last step
        ("send: 'STARTTLS now'", "send: QUIT"),  # not the STARTTLS command (no parameters)
    ],
    ids=["refused", "refused-list", "then-close", "last", "other-command"],
)
def test_starttls_that_leaves_nothing_in_the_clear_is_valid(steps: tuple[str, ...]) -> None:
    scenario = parse(steps_of("greeting: 220", *steps))  # raises ScenarioError if refused
    assert len(scenario.steps) == 1 + len(steps)
