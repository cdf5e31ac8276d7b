"""Reply patterns (``expect: text`` and ``capture``) run in linear time, whatever the pattern.

A backtracking engine (CPython's ``re``) takes exponential or polynomial time on patterns such as
``(a+)+$`` against a reply that almost matches, holding the event loop (and ignoring signals)
while it does. The first tests hand such patterns and long replies to the real expectation
checker and session engine. They run in a child process, which a backtracking engine would never
let finish: the child is killed after a minute and every such test fails, saying so, instead of
hanging the suite. The rest are pure tests of RE2's syntax and semantics as smtpload uses them.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.expectations import compile_expectation
from smtpload.protocol.wire import MAX_LINE_BYTES, Reply
from smtpload.scenario.model import Expectation, Scenario, Step, StepKind
from smtpload.scenario.patterns import PatternError, compile_capture, compile_text

# A reply line as long as the wire parser lets through (code, space and CRLF included).
LONG = MAX_LINE_BYTES - 6

# Each pattern with a reply on which a backtracking engine never finishes: (a+)+$ and (a|aa)+$
# try every way to split the run of a's before failing at the "!" (2^65529 ways); (.*a){20}
# tries every choice of where each .* ends, at every start (more than LONG^2 steps).
HOSTILE = {
    "nested-plus": ("(a+)+$", "a" * LONG + "!"),
    "overlapping-alternatives": ("(a|aa)+$", "a" * LONG + "!"),
    "repeated-dot-star": ("(.*a){20}", "a" * 19 + "!" * (LONG - 19)),
}
# (kind, pattern, reply line, lines in the reply) by test id. "|!$" and "|(?P<got>!+)$" match
# only after a backtracking engine has tried the hostile branch at every position of the line.
CASES = {
    **{f"text-fails-{k}-1": ("text", p, t, 1) for k, (p, t) in HOSTILE.items()},
    **{f"text-fails-{k}-8": ("text", p, t, 8) for k, (p, t) in HOSTILE.items()},
    **{f"text-matches-late-{k}": ("text", f"{p}|!$", t, 4) for k, (p, t) in HOSTILE.items()},
    **{f"capture-fails-{k}": ("capture", f"(?P<got>{p})", t, 4) for k, (p, t) in HOSTILE.items()},
    **{
        f"capture-late-{k}": ("capture", f"(?:{p})|(?P<got>!+)$", t, 4)
        for k, (p, t) in HOSTILE.items()
    },
}
# Order of magnitude only: RE2 takes well under 0.1 s on each; a backtracking engine, years.
LINEAR_S = 1.0
CHILD_TIMEOUT_S = 60.0


def measure(kind: str, pattern: str, line: str, lines: int) -> tuple[list[object], float]:
    """Check one reply as a run does: the outcome, and the seconds the check took.

    ``text``: ``[mismatch or None]``. ``capture``: a step capturing ``got`` then one sending
    ``VRFY {got}``: ``[False, outcome, the end of what the failure says]`` or
    ``[True, the next step's bytes]``.
    """
    reply = Reply(250, (line,) * lines, b"")
    if kind == "text":
        expectation = compile_expectation(Expectation(pattern=pattern))
        started = time.perf_counter()
        why = expectation.mismatch(reply)
        return [why], time.perf_counter() - started
    scenario = Scenario(
        path="test.yaml",
        name="test",
        description="",
        target=None,
        timeout_s=None,
        variables=(),
        steps=(
            Step(StepKind.SEND, "noop", text="NOOP", capture=pattern),
            Step(StepKind.SEND, "vrfy", text="VRFY {got}"),
        ),
    )
    compiled = compile_scenario(scenario)
    engine = SessionEngine(compiled, 1, compiled.session_variables(1, "r"))
    step = engine.next_step()
    assert step is not None
    started = time.perf_counter()
    passed = engine.on_reply(step, reply)
    elapsed = time.perf_counter() - started
    if not passed:
        failure = engine.failure()
        assert failure is not None
        return [False, failure.outcome.value, failure.got[-200:]], elapsed
    step = engine.next_step()
    assert step is not None
    payload = engine.payload(step)
    assert isinstance(payload, bytes)  # a small command, never a PaddedMessage
    return [True, payload.decode()], elapsed


_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.test_patterns import CASES, measure
print(json.dumps({case: measure(*args) for case, args in CASES.items()}))
"""


@pytest.fixture(scope="module")
def measured() -> dict[str, tuple[list[object], float]]:
    root = Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(root)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"checking the hostile replies took over {CHILD_TIMEOUT_S:.0f} s: not linear")
    assert done.returncode == 0, done.stderr
    results: dict[str, tuple[list[object], float]] = json.loads(done.stdout)
    return results


def ids(prefix: str) -> list[str]:
    return [case for case in CASES if case.startswith(prefix)]


@pytest.mark.parametrize("case", ids("text-fails-"))
def test_a_backtracking_text_pattern_fails_a_long_reply_at_once(
    measured: dict[str, tuple[list[object], float]], case: str
) -> None:
    (why,), elapsed = measured[case]
    assert why == f"reply text does not match /{CASES[case][1]}/"
    assert elapsed < LINEAR_S


@pytest.mark.parametrize("case", ids("text-matches-late-"))
def test_a_backtracking_text_pattern_that_matches_late_passes_at_once(
    measured: dict[str, tuple[list[object], float]], case: str
) -> None:
    (why,), elapsed = measured[case]
    assert why is None
    assert elapsed < LINEAR_S


@pytest.mark.parametrize("case", ids("capture-fails-"))
def test_a_backtracking_capture_that_finds_nothing_fails_its_step_at_once(
    measured: dict[str, tuple[list[object], float]], case: str
) -> None:
    (passed, outcome, got), elapsed = measured[case]
    assert (passed, outcome) == (False, "unexpected_reply")
    assert isinstance(got, str)
    assert got.endswith(f"(+3 lines) (capture /{CASES[case][1]}/ found nothing)")
    assert elapsed < LINEAR_S


@pytest.mark.parametrize("case", ids("capture-late-"))
def test_a_backtracking_capture_that_finds_its_group_late_passes_at_once(
    measured: dict[str, tuple[list[object], float]], case: str
) -> None:
    (passed, payload), elapsed = measured[case]
    assert passed is True
    assert payload == "VRFY " + "!" * len(CASES[case][2].lstrip("a")) + "\r\n"
    assert elapsed < LINEAR_S


# -- the engine's semantics where it differs from Python's re (docs/scenario-language.md) ------


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        pytest.param(r"\d", "\u0663", False, id="digit-is-ascii"),  # ARABIC-INDIC DIGIT THREE
        pytest.param(r"\w", "é", False, id="word-is-ascii"),
        pytest.param(r"\s", "\u00a0", False, id="space-is-ascii"),
        pytest.param(r"\s", "\v", False, id="space-is-not-vertical-tab"),
        pytest.param(r"\bé", " é", False, id="word-boundary-is-ascii"),
        pytest.param(r"\pL", "é", True, id="unicode-letter-class"),
        pytest.param(r"\p{Nd}", "\u0663", True, id="unicode-digit-class"),
        pytest.param(r"[[:alpha:]]", "x", True, id="posix-class"),
        pytest.param(r"ok$", "ok\n", False, id="dollar-is-the-end-of-the-text"),
        pytest.param(r"ok\z", "ok", True, id="backslash-z-is-the-end"),
        pytest.param(r"(?m)ok$", "ok\nnext", True, id="dollar-in-multiline-mode"),
        pytest.param(r"ok\n?$", "ok\n", True, id="dollar-after-an-optional-newline"),
        pytest.param(r"ok\n?$", "ok", True, id="dollar-without-the-newline"),
        pytest.param(r"\x{e9}", "é", True, id="hex-escape-in-braces"),
        pytest.param(r"(?i)é", "É", True, id="unicode-case-folding"),
        pytest.param(r".", "\n", False, id="dot-is-not-newline"),
        pytest.param(r"(?s).", "\n", True, id="dot-all"),
        pytest.param(r"(?U)a+", "aa", True, id="ungreedy-flag"),
        pytest.param(r"\Q(a+)+$\E", "x(a+)+$", True, id="quoted-literal"),
    ],
)
def test_documented_semantics(pattern: str, text: str, found: bool) -> None:
    assert compile_text(pattern).search(text) is found


def test_leftmost_first_like_python() -> None:
    # RE2 matches as Perl and Python do (leftmost-first, not POSIX leftmost-longest).
    assert compile_capture("(?P<x>a|ab)").captures("ab") == {"x": "a"}


def test_both_named_group_spellings_are_accepted() -> None:
    pattern = compile_capture(r"(?P<first>\w+) (?<second>\w+)")
    assert pattern.groups == ("first", "second")
    assert pattern.captures("250 queued") == {"first": "250", "second": "queued"}


def test_captures_are_characters_not_bytes() -> None:
    assert compile_capture("(?P<x>é+)(?P<y>.)").captures("aééb") == {"x": "éé", "y": "b"}


def test_a_text_pattern_keeps_no_groups() -> None:
    assert compile_text("(?P<x>a)").groups == ()
    assert compile_text("(?P<x>a)").search("a")


def test_a_lone_surrogate_in_a_reply_is_matched_without_an_exception() -> None:
    # The wire decodes with U+FFFD, so none should arrive; if one did, the run must go on.
    assert compile_capture("ok (?P<x>.*)").captures("ok \ud800") == {"x": "\ud800"}
    assert not compile_text("^x$").search("\udc80")


@pytest.mark.parametrize(
    ("pattern", "offset", "message"),
    [
        (r"(\w+) \1", 6, r"a backreference (\1) is not supported"),
        (r"(?P<x>a)(?P=x)", 8, "a backreference (?P=name) is not supported"),
        (r"queued(?= as)", 6, "lookahead (?=...) is not supported"),
        (r"queued(?! as)", 6, "negative lookahead (?!...) is not supported"),
        (r"(?<=as )\w+", 0, "lookbehind (?<=...) is not supported"),
        (r"(?<!as )\w+", 0, "negative lookbehind (?<!...) is not supported"),
        (r"x(?>a+)", 1, "an atomic group (?>...) is not supported"),
        (r"a*+b", 1, "a possessive quantifier (*+) is not supported"),
        (r"a{2}+b", 1, "a possessive quantifier ({2}+) is not supported"),
        (r"(a)?(?(1)b|c)", 4, "a conditional (?(...)...) is not supported"),
        (r"a(?#note)", 1, "a comment (?#...) is not supported"),
        (r"(?x) a b", 0, "the flag x is not supported (RE2 has i, m, s and U)"),
        (r"(?a)\w", 0, "the flag a is not supported (RE2 has i, m, s and U)"),
        (r"ok\Z", 2, r"\Z is not supported: write \z (or $) for the end of the text"),
        (r"x\u00e9", 1, r"\u is not supported: write the character itself, or \x{HHHH}"),
        (r"a{1001}", 1, "a repetition is limited to 1000"),
        (r"(?:(?:a{30}){30}){30}", 7, "a repetition is limited to 1000"),
        (r"a{,3}", 1, "{,3} means {0,3} in Python's re but a literal text in RE2: write {0,3}"),
        (r"a\C", 1, r"\C (one byte) is not supported: write . for any character"),
        ("(?P<x>a)|(?P<x>b)", 9, "the group name 'x' is used twice"),
        ("queued (as", 7, "invalid regular expression: missing )"),
        ("a(b(c)", 1, "invalid regular expression: missing )"),
        ("queued) as", 6, "invalid regular expression: unexpected )"),
        ("[(]x[a-", 4, "invalid regular expression: missing ]"),
        ("ab\\", 2, "invalid regular expression: trailing \\"),
        (r"\e", 0, r"invalid regular expression: invalid escape sequence: \e"),
        ("é[z-a]", 2, "invalid regular expression: invalid character class range: z-a"),
        ("ok\ud800", 2, "U+D800 is a lone surrogate, not a character"),
        (r"\pL{1000}", 0, "the pattern is too large for RE2's memory bound"),
    ],
)
def test_what_re2_cannot_do_is_a_pattern_error_at_its_place(
    pattern: str, offset: int, message: str
) -> None:
    for compile_pattern in (compile_text, compile_capture):
        with pytest.raises(PatternError) as info:
            compile_pattern(pattern)
        assert info.value.message.startswith(message), info.value.message
        assert info.value.offset == offset


def test_any_pattern_compiles_or_is_a_pattern_error_inside_it() -> None:
    rng = random.Random(2034)
    pieces = [
        *"()[]{}?*+|\\^$.:=!<>,#-PQEZzCdwsbu1é",
        "(?",
        "(?P<",
        "\\Q",
        "[:",
        ":]",
        "{2}",
        "{,3}",
    ]
    errors: list[tuple[str, PatternError]] = []
    for _ in range(3000):
        pattern = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        for compile_pattern in (compile_text, compile_capture):
            try:
                compile_pattern(pattern)
            except PatternError as exc:
                errors.append((pattern, exc))
    assert len(errors) > 1000  # the mix is mostly invalid: the error paths ran
    assert [p for p, e in errors if not (0 <= e.offset <= len(p) and e.message)] == []
