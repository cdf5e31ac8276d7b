"""smtpload.regression.compare: which differences from a baseline are regressions (pure).

Each test builds a baseline and a current behaviour from scripted sessions (see
tests/test_baseline.py) and pins what ``compare`` reports: one difference per change, at the
step that changed, and nothing that merely follows from it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import pytest

from smtpload.protocol.compiler import compile_scenario
from smtpload.regression.baseline import Behaviour, StepLatency
from smtpload.regression.compare import (
    DEFAULT_MIN_LATENCY_DELTA_MS,
    SAMPLES_NEEDED,
    Comparison,
    compare,
    comparison_summary,
    format_comparison,
)
from smtpload.report.stats import LatencyHistogram
from smtpload.scenario.loader import parse_scenario
from tests.test_baseline import SCENARIO_YAML, answers, behaviour_of

EHLO_WITHOUT_DSN = b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"
REFUSED = b"550 5.1.1 <b@example.test>: Recipient address rejected: User unknown\r\n"


def kinds(comparison: Comparison) -> list[tuple[str, str, str]]:
    return [(d.step, d.kind, d.severity) for d in comparison.differences]


def compared(
    baseline: list[dict[str, bytes | str]],
    current: list[dict[str, bytes | str]],
    *,
    strict: bool = False,
    pct: float | None = None,
) -> Comparison:
    return compare(
        behaviour_of(baseline),
        behaviour_of(current),
        strict=strict,
        max_latency_regression_pct=pct,
    )


def test_the_same_behaviour_has_no_differences() -> None:
    comparison = compared([answers()] * 3, [answers()] * 3, strict=True, pct=0)
    assert comparison.differences == ()
    assert comparison.exit_status == 0


def test_session_counts_alone_are_not_judged() -> None:
    flaky = answers(rcpt=b"451 4.3.0 try again later\r\n")
    comparison = compared([answers(), answers(), flaky], [flaky, answers()])
    assert comparison.differences == ()


def test_a_changed_code_is_one_regression_not_also_enhanced_code_and_text() -> None:
    comparison = compared([answers()], [answers(rcpt=REFUSED)])
    assert kinds(comparison) == [("rcpt", "code", "regression")]
    (difference,) = comparison.differences
    assert difference.message == "reply code changed: 250 -> 550"
    assert difference.baseline == "1 session: 250 x1; e.g. 250 2.1.5 Ok"
    assert "550 5.1.1 <b@example.test>: Recipient address rejected" in difference.now
    assert comparison.exit_status == 1


def test_a_code_that_some_sessions_now_get_is_a_regression() -> None:
    comparison = compared([answers()] * 4, [answers()] * 3 + [answers(rcpt=REFUSED)])
    assert kinds(comparison) == [("rcpt", "code", "regression")]
    assert comparison.differences[0].message == "reply code changed: 250 -> 250, 550"


def test_a_changed_enhanced_code_is_a_regression() -> None:
    comparison = compared([answers()], [answers(rcpt=b"250 2.1.0 Ok\r\n")])
    assert kinds(comparison) == [("rcpt", "enhanced", "regression")]
    assert comparison.differences[0].message == "enhanced status code changed: 2.1.5 -> 2.1.0"


# RFC 2034 codes that a server starts to send where the baseline's replies had none: qmail's
# "250 ok" became Sendmail's "250 2.1.0 <a@example.test>... Sender ok" (a capability added).
QMAIL_MAIL = b"250 ok\r\n"
SENDMAIL_MAIL = b"250 2.1.0 <a@example.test>... Sender ok\r\n"
NO_USER = b"550 sorry, no mailbox here by that name. (#5.1.1)\r\n"  # qmail: no leading code
NO_USER_CODED = b"550 5.1.1 <b@example.test>... User unknown\r\n"


@pytest.mark.parametrize(
    ("baseline", "current", "message"),
    [
        pytest.param(
            [answers(mail=QMAIL_MAIL)] * 2,
            [answers(mail=SENDMAIL_MAIL)] * 2,
            "enhanced status code added: none -> 2.1.0",
            id="every-reply",
        ),
        pytest.param(
            [answers(mail=QMAIL_MAIL)] * 2,
            [answers(mail=QMAIL_MAIL), answers(mail=SENDMAIL_MAIL)],
            "enhanced status code added: none -> 2.1.0, none",
            id="some-replies",
        ),
        pytest.param(
            [answers(mail=QMAIL_MAIL), answers(mail=b"250 2.1.0 Ok\r\n")],
            [answers(mail=b"250 2.1.0 Ok\r\n")] * 2,
            "enhanced status code added: 2.1.0, none -> 2.1.0",
            id="the-replies-without-now-have-one",
        ),
        pytest.param(
            [answers(), answers(rcpt=NO_USER)],
            [answers(), answers(rcpt=NO_USER_CODED)],
            "enhanced status code added: 2.1.5, none -> 2.1.5, 5.1.1",
            id="one-reply-class",
        ),
    ],
)
@pytest.mark.parametrize("strict", [False, True], ids=["warning", "strict"])
def test_an_enhanced_code_where_the_baseline_had_none_is_added_like_a_capability(
    baseline: list[dict[str, bytes | str]],
    current: list[dict[str, bytes | str]],
    message: str,
    strict: bool,
) -> None:
    comparison = compared(baseline, current, strict=strict)
    step = comparison.differences[0].step if comparison.differences else "?"
    severity = "regression" if strict else "warning"
    # One difference: the text changed too, but only because the code came with it.
    assert kinds(comparison) == [(step, "enhanced_added", severity)]
    (difference,) = comparison.differences
    assert difference.message == message
    assert difference.baseline.startswith("2 sessions: ")
    assert difference.now.startswith("2 sessions: ")
    assert comparison.exit_status == (1 if strict else 0)


@pytest.mark.parametrize(
    ("baseline", "current", "message"),
    [
        pytest.param(
            [answers(mail=SENDMAIL_MAIL)],
            [answers(mail=QMAIL_MAIL)],
            "enhanced status code changed: 2.1.0 -> none",
            id="gone",
        ),
        pytest.param(
            [answers(mail=SENDMAIL_MAIL)] * 2,
            [answers(mail=SENDMAIL_MAIL), answers(mail=QMAIL_MAIL)],
            "enhanced status code changed: 2.1.0 -> 2.1.0, none",
            id="gone-from-some-replies",
        ),
        pytest.param(
            [answers()],
            [answers(rcpt=b"250 2.1.0 Ok\r\n")],
            "enhanced status code changed: 2.1.5 -> 2.1.0",
            id="changed",
        ),
        pytest.param(
            [answers()] * 2,
            [answers(), answers(rcpt=b"250 2.1.0 Ok\r\n")],
            "enhanced status code changed: 2.1.5 -> 2.1.0, 2.1.5",
            id="another-one-beside-it",
        ),
        pytest.param(
            # The 250s had none, but a 5.x.x code cannot be theirs (RFC 2034 §4): the 550's
            # code changed.
            [answers(rcpt=b"250 ok\r\n"), answers(rcpt=NO_USER_CODED)],
            [answers(rcpt=b"250 ok\r\n"), answers(rcpt=b"550 5.7.1 relaying denied\r\n")],
            "enhanced status code changed: 5.1.1, none -> 5.7.1, none",
            id="changed-in-a-class-that-had-codes",
        ),
    ],
)
@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_an_enhanced_code_that_changes_or_disappears_is_a_regression(
    baseline: list[dict[str, bytes | str]],
    current: list[dict[str, bytes | str]],
    message: str,
    strict: bool,
) -> None:
    comparison = compared(baseline, current, strict=strict)
    assert [(d.kind, d.severity) for d in comparison.differences] == [("enhanced", "regression")]
    assert comparison.differences[0].message == message
    assert comparison.exit_status == 1


@pytest.mark.parametrize(
    ("strict", "severity", "status"),
    [(False, "warning", 0), (True, "regression", 1)],
    ids=["warning", "strict"],
)
def test_a_changed_text_is_a_warning_or_with_strict_a_regression(
    strict: bool, severity: str, status: int
) -> None:
    upgraded = answers(greeting=b"220 mx.test ESMTP Postfix (upgraded)\r\n")
    comparison = compared([answers()], [upgraded], strict=strict)
    assert kinds(comparison) == [("greeting", "text", severity)]
    assert comparison.differences[0].message == (
        "reply text changed: 'mx.test ESMTP Postfix' -> 'mx.test ESMTP Postfix (upgraded)'"
    )
    assert comparison.exit_status == status


def test_volatile_parts_of_the_text_are_not_a_difference() -> None:
    comparison = compared(
        [answers(message=b"250 2.0.0 Ok: queued as 4F2B1160041\r\n")],
        [answers(message=b"250 2.0.0 Ok: queued as 9C0DE2A0017\r\n")],
    )
    assert comparison.differences == ()


def test_a_removed_capability_is_one_regression_and_not_a_text_change() -> None:
    comparison = compared([answers()], [answers(ehlo=EHLO_WITHOUT_DSN)])
    assert kinds(comparison) == [("ehlo", "capability_removed", "regression")]
    assert comparison.differences[0].message == "capability removed: DSN"


@pytest.mark.parametrize("strict", [False, True], ids=["warning", "strict"])
def test_added_and_changed_capabilities_are_warnings_unless_strict(strict: bool) -> None:
    ehlo = b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 20480000\r\n250-DSN\r\n250-CHUNKING\r\n"
    comparison = compared([answers()], [answers(ehlo=ehlo + b"250 8BITMIME\r\n")], strict=strict)
    severity = "regression" if strict else "warning"
    assert kinds(comparison) == [
        ("ehlo", "capability_added", severity),
        ("ehlo", "capability_changed", severity),
    ]
    added, changed = comparison.differences
    assert added.message == "capability added: CHUNKING"
    assert (changed.baseline, changed.now) == ("SIZE 10240000", "SIZE 20480000")


def test_a_refused_ehlo_is_a_code_change_not_a_list_of_removed_capabilities() -> None:
    comparison = compared(
        [answers()], [answers(ehlo=b"502 5.5.2 Error: command not recognized\r\n")]
    )
    assert kinds(comparison) == [("ehlo", "code", "regression")]


def test_a_timeout_is_an_event_regression_and_the_steps_after_it_are_not_reported() -> None:
    comparison = compared([answers()], [answers(mail="timeout")])
    assert kinds(comparison) == [("mail", "event", "regression")]
    assert comparison.differences[0].message == "events changed: none -> timeout"


def test_a_refused_data_reports_the_data_step_not_the_skipped_message() -> None:
    comparison = compared([answers()], [answers(data=b"554 5.5.1 Error: no valid recipients\r\n")])
    assert kinds(comparison) == [("data", "code", "regression")]
    # The skipped message is no difference of its own, but it is not "ok" either.
    assert comparison.not_run == ("message",)
    assert comparison.status_of("message") == "not run"
    (line,) = [x for x in format_comparison(comparison).splitlines() if x.startswith("message")]
    assert line.split(None, 1)[1] == "not run as in the baseline (an earlier step changed)"


def test_a_step_no_session_reaches_any_more_is_reported_when_nothing_explains_it() -> None:
    baseline = behaviour_of([answers()])
    current = behaviour_of([answers()])
    # A session that never reached "close" with no earlier step changing cannot come from the
    # engine; a baseline edited by hand, or written by another smtpload, can have one.
    steps = tuple(
        replace(step, sessions=0, codes={}, events={}, text=()) if step.name == "close" else step
        for step in current.steps
    )
    current = replace(current, steps=steps)
    comparison = compare(baseline, current, strict=False, max_latency_regression_pct=None)
    assert kinds(comparison) == [("close", "event", "regression")]
    assert comparison.differences[0].message == "no session reached this step"


def test_steps_added_to_and_removed_from_the_scenario_are_regressions() -> None:
    changed_yaml = SCENARIO_YAML.replace("send: MAIL FROM:<a@example.test>", "send: NOOP")
    scenario = compile_scenario(parse_scenario(changed_yaml, "upgrade.yaml"))
    script = answers()
    script["noop"] = b"250 2.0.0 Ok\r\n"
    comparison = compare(
        behaviour_of([answers()]),
        behaviour_of([script], scenario=scenario),
        strict=False,
        max_latency_regression_pct=None,
    )
    # A step only the baseline has stands after its predecessor in the baseline.
    assert comparison.steps[:4] == ("greeting", "ehlo", "mail", "noop")
    assert kinds(comparison) == [
        ("mail", "step_missing", "regression"),
        ("noop", "step_added", "regression"),
    ]
    assert comparison.differences[0].message == (
        "step 'mail' is not in the scenario now; record the baseline again"
    )


@pytest.mark.parametrize(
    ("was_us", "now_us", "pct", "floor_ms", "expected"),
    [
        pytest.param(1000, 1000, 20.0, 1.0, False, id="same"),
        pytest.param(1000, 1200, 20.0, 0.0, False, id="at-the-percentage"),
        pytest.param(1000, 1300, 20.0, 0.0, True, id="beyond-the-percentage-no-floor"),
        # Noise on a loopback: +900 %, but 0.9 ms.
        pytest.param(100, 1000, 20.0, 1.0, False, id="beyond-the-percentage-within-the-floor"),
        pytest.param(100, 1100, 20.0, 1.0, False, id="at-the-floor"),
        pytest.param(100, 1200, 20.0, 1.0, True, id="beyond-both"),
        pytest.param(10_000, 11_500, 20.0, 1.0, False, id="beyond-the-floor-within-the-percentage"),
        pytest.param(1000, 5000, None, 1.0, False, id="not-asked"),
    ],
)
def test_latency_regressions_beyond_both_the_percentage_and_the_floor(
    was_us: int, now_us: int, pct: float | None, floor_ms: float, expected: bool
) -> None:
    # Two sessions: enough samples for p50, too few for p99 and p99.9.
    baseline = behaviour_of([answers()] * 2, latency_us={"mail": was_us})
    current = behaviour_of([answers()] * 2, latency_us={"mail": now_us})
    comparison = compare(
        baseline,
        current,
        strict=False,
        max_latency_regression_pct=pct,
        min_latency_delta_ms=floor_ms,
    )
    assert kinds(comparison) == ([("mail", "latency_p50", "regression")] if expected else [])


def test_a_latency_regression_says_by_how_much_and_what_was_allowed() -> None:
    baseline = behaviour_of([answers()] * 2, latency_us={"mail": 100})
    current = behaviour_of([answers()] * 2, latency_us={"mail": 1200})
    comparison = compare(baseline, current, strict=False, max_latency_regression_pct=20.0)
    assert comparison.min_latency_delta_ms == DEFAULT_MIN_LATENCY_DELTA_MS == 1.0
    (difference,) = comparison.differences
    assert difference.message == (
        "p50 latency grew 1100% (0.100 ms -> 1.200 ms, +1.100 ms), "
        "more than the 20% and 1 ms allowed"
    )
    assert (difference.baseline, difference.now) == ("0.100 ms", "1.200 ms")


def with_latency(behaviour: Behaviour, step: str, samples_us: Sequence[int]) -> Behaviour:
    """``behaviour`` with the latencies of ``step`` replaced by ``samples_us``."""
    histogram = LatencyHistogram()
    for value in samples_us:
        histogram.record_us(value)
    steps = tuple(
        replace(s, latency=StepLatency.of(histogram)) if s.name == step else s
        for s in behaviour.steps
    )
    return replace(behaviour, steps=steps)


def with_mail_latency(behaviour: Behaviour, samples_us: Sequence[int]) -> Behaviour:
    return with_latency(behaviour, "mail", samples_us)


def slow_tail(samples: int, slow: int) -> list[int]:
    """``samples`` latencies of 1 ms, of which the ``slow`` highest are 50 ms."""
    return [1000] * (samples - slow) + [50_000] * slow


@pytest.mark.parametrize(
    ("percentile", "slow"),
    # Enough slow samples to move that percentile, and none below it.
    [("p50", 2), ("p99", 2), ("p99.9", 2)],
)
@pytest.mark.parametrize("short", [None, "baseline", "now"])
def test_a_percentile_is_judged_only_when_enough_samples_back_it_on_both_sides(
    percentile: str, slow: int, short: str | None
) -> None:
    needed = SAMPLES_NEEDED[percentile]
    one = behaviour_of([answers()])
    baseline_count = needed - 1 if short == "baseline" else needed
    current_count = needed - 1 if short == "now" else needed
    if percentile == "p50":
        baseline_samples, current_samples = [1000] * baseline_count, [50_000] * current_count
    else:
        baseline_samples = [1000] * baseline_count
        current_samples = slow_tail(current_count, slow)
    comparison = compare(
        with_mail_latency(one, baseline_samples),
        with_mail_latency(one, current_samples),
        strict=False,
        max_latency_regression_pct=10.0,
    )
    mail = [(n.percentile, n.samples_needed) for n in comparison.not_judged_at("mail")]
    if short is None:
        assert kinds(comparison) == [
            ("mail", f"latency_{percentile.replace('.', '_')}", "regression")
        ]
        assert percentile not in dict(mail)
    else:
        assert kinds(comparison) == []
        assert (percentile, needed) in mail
        (note,) = [n for n in comparison.not_judged_at("mail") if n.percentile == percentile]
        assert (note.baseline_samples, note.current_samples) == (baseline_count, current_count)
    # The percentiles that need more samples than there are, and only those, are not judged.
    samples = min(baseline_count, current_count)
    assert dict(mail) == {k: n for k, n in SAMPLES_NEEDED.items() if n > samples}


def test_the_report_says_which_percentiles_were_not_judged_and_from_how_many_samples() -> None:
    baseline = behaviour_of([answers()] * 19 + [answers(quit="timeout")])
    current = behaviour_of([answers()] * 20)
    comparison = compare(baseline, current, strict=False, max_latency_regression_pct=10.0)
    report = format_comparison(comparison).splitlines()
    assert report[-3:-1] == [
        "note: p99 latency not judged at 8 steps: it needs 100 samples in both runs "
        "(baseline: 19-20, now: 20)",
        "note: p99.9 latency not judged at 8 steps: it needs 1000 samples in both runs "
        "(baseline: 19-20, now: 20)",
    ]
    steps = {s["name"]: s for s in comparison_summary(comparison)["steps"]}
    assert steps["quit"]["latency_not_judged"] == [
        {"percentile": "p99", "samples_needed": 100, "baseline_samples": 19, "now_samples": 20},
        {"percentile": "p99.9", "samples_needed": 1000, "baseline_samples": 19, "now_samples": 20},
    ]
    assert comparison_summary(comparison)["min_latency_delta_ms"] == 1.0
    # Not asked to judge latencies: nothing to say about them.
    quiet = compare(baseline, current, strict=False, max_latency_regression_pct=None)
    assert not [line for line in format_comparison(quiet).splitlines() if "note" in line]
    assert all(s["latency_not_judged"] == [] for s in comparison_summary(quiet)["steps"])


def test_latency_is_not_compared_for_steps_without_samples() -> None:
    baseline = behaviour_of([answers(quit="timeout")], latency_us=1000)
    current = behaviour_of([answers(quit="timeout")], latency_us=1000)
    comparison = compare(baseline, current, strict=False, max_latency_regression_pct=0.0)
    assert comparison.differences == ()


# -- reports ------------------------------------------------------------------------------------


def upgrade_comparison(strict: bool = False) -> Comparison:
    upgraded = answers(
        greeting=b"220 mx.test ESMTP Postfix (upgraded)\r\n", ehlo=EHLO_WITHOUT_DSN, rcpt=REFUSED
    )
    return compared([answers()] * 2, [upgraded] * 2, strict=strict)


def test_text_report_lists_every_step_then_a_summary() -> None:
    report = format_comparison(upgrade_comparison())
    assert report.splitlines() == [
        "compare upgrade: baseline 192.0.2.1:25 (2 sessions) vs now 192.0.2.1:25 (2 sessions)",
        "greeting  warning     reply text changed: 'mx.test ESMTP Postfix' -> "
        "'mx.test ESMTP Postfix (upgraded)'",
        "ehlo      REGRESSION  capability removed: DSN",
        "mail      ok",
        "rcpt      REGRESSION  reply code changed: 250 -> 550",
        "                      baseline: 2 sessions: 250 x2; e.g. 250 2.1.5 Ok",
        "                      now:      2 sessions: 550 x2; e.g. 550 5.1.1 <b@example.test>: "
        "Recipient address rejected: User unknown",
        "data      ok",
        "message   ok",
        "quit      ok",
        "close     ok",
        "8 steps: 2 regressed, 1 with warnings, 0 not run, 5 ok",
    ]


def test_json_summary() -> None:
    summary = comparison_summary(upgrade_comparison(strict=True))
    json.dumps(summary)  # JSON-able
    assert (summary["regressions"], summary["warnings"], summary["exit_status"]) == (3, 0, 1)
    # Differences above; steps by status here, as the text report's last line and JUnit count.
    assert summary["steps_by_status"] == {"regression": 3, "warning": 0, "not run": 0, "ok": 5}
    assert summary["baseline"] == {"target": "192.0.2.1:25", "sessions": 2, "clock": "loop"}
    assert summary["current"] == {"target": "192.0.2.1:25", "sessions": 2, "clock": "loop"}
    assert (summary["clock_warning"], summary["latency_judged"]) == (None, False)
    assert summary["strict"] is True
    assert [(s["name"], s["status"]) for s in summary["steps"]] == [
        ("greeting", "regression"),
        ("ehlo", "regression"),
        ("mail", "ok"),
        ("rcpt", "regression"),
        ("data", "ok"),
        ("message", "ok"),
        ("quit", "ok"),
        ("close", "ok"),
    ]
    assert summary["steps"][1]["differences"] == [
        {
            "kind": "capability_removed",
            "severity": "regression",
            "message": "capability removed: DSN",
            "baseline": "DSN",
            "now": "not advertised",
        }
    ]


def many_changes() -> Comparison:
    """A run in which most steps changed, each its own way."""
    ehlo = b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 20480000\r\n250-CHUNKING\r\n250 8BITMIME\r\n"
    return compared(
        [answers()],
        [
            answers(
                greeting=b"220 mx.test ESMTP Postfix (upgraded)\r\n",  # text, one line
                ehlo=ehlo,  # DSN removed, CHUNKING added, SIZE changed
                mail=b"250 2.1.5 Sender ok\r\n",  # enhanced code changed
                rcpt=REFUSED,  # code
                quit=b"221-2.0.0 Bye\r\n221 2.0.0 See you\r\n",  # text, two lines
            )
        ],
    )


def every_kind_of_difference() -> list[Comparison]:
    """Comparisons that, between them, hold every kind of difference that compare reports."""
    scenario = compile_scenario(
        parse_scenario(SCENARIO_YAML.replace("send: MAIL FROM:<a@example.test>", "send: NOOP"), "x")
    )
    noop = {**answers(), "noop": b"250 2.0.0 Ok\r\n"}
    gone_after = behaviour_of([answers()])
    steps = tuple(
        replace(step, sessions=0, codes={}, events={}, text=()) if step.name == "close" else step
        for step in gone_after.steps
    )
    return [
        many_changes(),
        compared([answers(mail=QMAIL_MAIL)], [answers(mail=SENDMAIL_MAIL, quit="timeout")]),
        compare(
            behaviour_of([answers()]),
            behaviour_of([noop], scenario=scenario),
            strict=False,
            max_latency_regression_pct=None,
        ),
        compare(
            behaviour_of([answers()]),
            replace(gone_after, steps=steps),
            strict=False,
            max_latency_regression_pct=None,
        ),
        compare(
            behaviour_of([answers()] * 2, latency_us=1000),
            behaviour_of([answers()] * 2, latency_us={"mail": 5000}),
            strict=False,
            max_latency_regression_pct=10.0,
        ),
        compare(
            with_mail_latency(behaviour_of([answers()]), [1000] * 1000),
            with_mail_latency(behaviour_of([answers()]), slow_tail(1000, 11)),
            strict=False,
            max_latency_regression_pct=10.0,
        ),
    ]


def test_every_difference_says_what_the_baseline_and_this_run_saw() -> None:
    kinds_seen = set()
    for comparison in every_kind_of_difference():
        for step in comparison_summary(comparison)["steps"]:
            for difference in step["differences"]:
                kinds_seen.add(difference["kind"])
                assert difference["baseline"], difference
                assert difference["now"], difference
                assert difference["baseline"] != difference["now"], difference
    assert kinds_seen == {
        "text",
        "capability_removed",
        "capability_added",
        "capability_changed",
        "enhanced",
        "code",
        "enhanced_added",
        "event",
        "step_missing",
        "step_added",
        "latency_p50",
        "latency_p99",
        "latency_p99_9",
    }


def test_text_and_capability_differences_carry_the_lines_and_keywords() -> None:
    comparison = many_changes()
    found = {(d.step, d.kind): (d.baseline, d.now) for d in comparison.differences}
    assert found[("greeting", "text")] == (
        "mx.test ESMTP Postfix",
        "mx.test ESMTP Postfix (upgraded)",
    )
    assert found[("quit", "text")] == ("(no line of its own)", "2.0.0 See you")
    assert found[("ehlo", "capability_removed")] == ("DSN", "not advertised")
    assert found[("ehlo", "capability_added")] == ("not advertised", "CHUNKING")
    assert found[("ehlo", "capability_changed")] == ("SIZE 10240000", "SIZE 20480000")
    # The text report does not repeat what the one-line message already says.
    report = format_comparison(comparison).splitlines()
    greeting = report.index(next(line for line in report if line.startswith("greeting")))
    assert report[greeting + 1].startswith("ehlo")


# -- the clocks ---------------------------------------------------------------------------------

#: Each pair of differing clocks, either way round (baseline's, this run's).
OTHER_CLOCKS = [("loop", "kernel"), ("kernel", "loop")]
CLOCK_NAMES = {"kernel": "the kernel's", "loop": "the loop's"}


def slower_mail(baseline_clock: str, current_clock: str, *, strict: bool = False) -> Comparison:
    """mail's p50 from 1 ms to 50 ms (2 samples a side): a latency regression on one clock."""
    return compare(
        replace(behaviour_of([answers()] * 2, latency_us={"mail": 1000}), clock=baseline_clock),
        replace(behaviour_of([answers()] * 2, latency_us={"mail": 50_000}), clock=current_clock),
        strict=strict,
        max_latency_regression_pct=10.0,
    )


@pytest.mark.parametrize(("was", "now"), OTHER_CLOCKS)
@pytest.mark.parametrize("strict", [False, True], ids=["warning", "strict"])
def test_across_clocks_compare_warns_and_judges_no_latency(
    was: str, now: str, strict: bool
) -> None:
    comparison = slower_mail(was, now, strict=strict)
    warning = (
        f"the baseline's latencies were timed on {CLOCK_NAMES[was]} clock, this run's on "
        f"{CLOCK_NAMES[now]}: latency differences may be only the clock; record the baseline again"
    )
    assert comparison.clock_warning == warning
    # Not judged: no latency difference, no per-percentile notes; and the warning is no
    # difference of a step, nor a regression with --strict.
    assert comparison.differences == ()
    assert comparison.not_judged == ()
    assert comparison.latency_judged is False
    assert comparison.exit_status == 0
    report = format_comparison(comparison).splitlines()
    assert report[1] == f"warning: {warning}"
    assert report[-2] == (
        f"note: latency not judged at any step: the baseline was timed on {CLOCK_NAMES[was]}"
        f" clock, this run on {CLOCK_NAMES[now]}"
    )
    assert report[-1] == "no differences in 8 steps"
    assert [line for line in report if line.startswith(("warning", "note"))] == [
        report[1],
        report[-2],
    ]
    summary = comparison_summary(comparison)
    json.dumps(summary)
    assert (summary["baseline"]["clock"], summary["current"]["clock"]) == (was, now)
    assert (summary["clock_warning"], summary["latency_judged"]) == (warning, False)
    assert (summary["warnings"], summary["regressions"]) == (0, 0)
    # The replies are still compared across clocks: a changed code is found as ever.
    changed = compare(
        replace(behaviour_of([answers()]), clock=was),
        replace(behaviour_of([answers(rcpt=REFUSED)]), clock=now),
        strict=strict,
        max_latency_regression_pct=None,
    )
    assert kinds(changed) == [("rcpt", "code", "regression")]
    assert changed.clock_warning == warning
    # Not asked to judge latencies: the warning, and no note about not judging them.
    quiet = format_comparison(changed).splitlines()
    assert quiet[1] == f"warning: {warning}"
    assert not [line for line in quiet if line.startswith("note")]


@pytest.mark.parametrize("clock", ["kernel", "loop"])
def test_on_the_same_clock_latency_is_judged_without_a_warning(clock: str) -> None:
    comparison = slower_mail(clock, clock)
    assert kinds(comparison) == [("mail", "latency_p50", "regression")]
    assert (comparison.clock_warning, comparison.latency_note) == (None, None)
    assert comparison.latency_judged is True
    report = format_comparison(comparison)
    assert "clock" not in report
    summary = comparison_summary(comparison)
    assert (summary["baseline"]["clock"], summary["current"]["clock"]) == (clock, clock)
    assert (summary["clock_warning"], summary["latency_judged"]) == (None, True)
