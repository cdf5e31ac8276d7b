"""Thresholds (``--threshold EXPR``): the grammar, the evaluation, the exit status, real runs.

The pure tests come first: ``report/thresholds.py`` reads expressions and evaluates them against
a summary in summary.json's shape, with no server. The real runs after them go through the
``smtpload`` command (tests/cli.py) against the built-in sink, aiosmtpd or a hostile server.
"""

from __future__ import annotations

import copy
import functools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

import smtpload
from smtpload.report.results import exit_status, format_outcomes
from smtpload.report.thresholds import (
    Threshold,
    ThresholdError,
    evaluate_thresholds,
    format_thresholds,
    parse_threshold,
)
from tests.cli import smtpload as run_smtpload
from tests.misbehaving import refuses_every_nth
from tests.peers import REJECT_DOMAIN, RecordingPeer

STEPS = ["connect", "greeting", "ehlo", "rcpt", "rcpt#2", "message"]


def latency(p50: float) -> dict[str, float]:
    return {"p50": p50, "p90": p50 * 2, "p99": p50 * 3, "p99_9": p50 * 4, "max": p50 * 5,
            "mean": p50 * 1.5}  # fmt: skip


def summary(**changes: Any) -> dict[str, Any]:
    """A summary in summary.json's shape: 200 sessions started, 190 passed, 10 failed."""
    base: dict[str, Any] = {
        "interrupted": False,
        "sessions": {"started": 200, "not_started": 0, "passed": 190, "failed": 10,
                     "failures": {"timeout": 10}},
        "throughput": {"sessions_per_s": 100.5, "passed_sessions_per_s": 95.25,
                       "messages_per_s": 95.25, "messages": 190},
        "session_latency_ms": latency(10.0),
        "steps": [{"name": name, "latency_ms": latency(1.0 + i)} for i, name in enumerate(STEPS)],
        "thresholds": [],
    }  # fmt: skip
    base.update(changes)
    return base


def parse(expression: str, *, open_loop: bool = False) -> Threshold:
    return parse_threshold(expression, step_names=STEPS, open_loop=open_loop)


def verdict(expression: str, run: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    (entry,) = evaluate_thresholds([parse(expression, **kwargs)], run or summary())
    return entry


# --- the grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "metric", "operator", "limit", "percent"),
    [
        ("session.p99<500ms", "session.p99", "<", "500", False),
        ("session.p99.9<=2s", "session.p99_9", "<=", "2000", False),
        ("session.p99_9<=2s", "session.p99_9", "<=", "2000", False),
        ("step:rcpt.p50>1", "step:rcpt.p50", ">", "1", False),
        ("step:rcpt#2.max>=0.25s", "step:rcpt#2.max", ">=", "250", False),
        ("step:connect.mean!=3", "step:connect.mean", "!=", "3", False),
        ("  session.p90 == 5ms  ", "session.p90", "==", "5", False),
        ("failed<0.1%", "failed", "<", "0.1", True),
        ("failed==0", "failed", "==", "0", False),
        ("passed>=99.5%", "passed", ">=", "99.5", True),
        ("messages>=1000", "messages", ">=", "1000", False),
        ("messages_per_s>900", "messages_per_s", ">", "900", False),
        ("sessions_per_s>0.5", "sessions_per_s", ">", "0.5", False),
        ("passed_sessions_per_s>=10", "passed_sessions_per_s", ">=", "10", False),
    ],
)
def test_expressions_are_read(
    expression: str, metric: str, operator: str, limit: str, percent: bool
) -> None:
    threshold = parse(expression)
    assert (threshold.metric, threshold.operator) == (metric, operator)
    assert (threshold.limit, threshold.percent) == (Decimal(limit), percent)
    assert threshold.expression == expression


@pytest.mark.parametrize(
    ("written", "milliseconds"),
    [
        ("250us", "0.25"),
        ("250µs", "0.25"),
        ("250ms", "250"),
        ("250", "250"),  # a bare number is milliseconds, as in k6
        ("0.5s", "500"),
        ("0.1s", "100"),  # exactly: not 100.00000000000001
        ("2m", "120000"),
        ("1h", "3600000"),
    ],
)
def test_latency_units_are_milliseconds_exactly(written: str, milliseconds: str) -> None:
    assert parse(f"session.max<{written}").limit == Decimal(milliseconds)


def quoted(name: str) -> str:
    """A step name as the README says to write one that needs quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.mark.parametrize(
    "name",
    ["a.b", "a<b", "a>b", "a=b", "a!b", 'a"b', "a\\b", "a b", "a\tb", " lead", "ünï cödé", '"'],
)
def test_a_step_name_with_special_characters_is_quoted(name: str) -> None:
    threshold = parse_threshold(f"step:{quoted(name)}.p99<1s", step_names=[name], open_loop=False)
    assert threshold.step == name
    # The canonical metric is written the same way, so it reads back to the same step.
    again = parse_threshold(threshold.metric + "<1s", step_names=[name], open_loop=False)
    assert again.step == name


@pytest.mark.parametrize("name", ["rcpt#2", "my-step", "a:b", "é", "x/y"])
def test_a_plain_step_name_needs_no_quotes(name: str) -> None:
    threshold = parse_threshold(f"step:{name}.p99<1s", step_names=[name], open_loop=False)
    assert (threshold.step, threshold.metric) == (name, f"step:{name}.p99")


@pytest.mark.parametrize(
    ("expression", "column", "phrase"),
    [
        ("", 1, "empty"),
        ("   ", 4, "empty"),
        ("sesion.p99<5", 1, "did you mean session"),
        ("bogus<5", 1, "unknown metric 'bogus'"),
        ("<5", 1, "expected a metric"),
        ("step.p99<5", 1, "step:NAME"),
        ("step:.p99<5", 6, "expected a step name"),
        ('step:"".p99<5', 6, "empty"),
        ('step:"rcpt.p99<5', 6, "no closing"),
        ('step:"rc\\pt".p99<5', 9, "backslash"),
        ("session<5ms", 8, "needs a statistic"),
        ("step:rcpt<5ms", 10, "needs a statistic"),
        ("session.p98<5", 9, "expected a statistic"),
        ("session.<5", 9, "not nothing"),
        ("failed.p99<1", 7, "has no statistic"),
        ("messages_per_s.max>1", 15, "has no statistic"),
        ("session.p99 5ms", 13, "expected an operator"),
        ("session.p99", 12, "expected an operator"),
        ("session.p99=5", 12, "write =="),
        ("session.p99=<5", 12, "write =="),
        ("session.p99<<5", 13, "expected a number"),
        ("session.p99<", 13, "expected a number"),
        ("session.p99<-5", 13, "negative"),
        ("session.p99<5ks", 14, "unknown time unit 'ks'"),
        ("session.p99<5%", 14, "unknown time unit '%'"),
        ("session.p99<5ms junk", 17, "unexpected 'junk'"),
        ("failed<2.5", 8, "failed<2.5%"),
        ("failed<5ms", 9, "unknown unit 'ms'"),
        ("failed<101%", 8, "at most 100%"),
        ("messages<5%", 11, "drop the %"),
        ("messages_per_s>9/s", 17, "bare number"),
        ("step:rcpt.p99<1s>", 17, "unexpected '>'"),
        ("session .p99<5", 8, "needs a statistic"),
        ("session.p99<500 ms", 17, "unexpected 'ms'"),
    ],
)
def test_errors_name_the_expression_and_the_column(
    expression: str, column: int, phrase: str
) -> None:
    with pytest.raises(ThresholdError) as caught:
        parse(expression)
    assert (caught.value.column, caught.value.expression) == (column, expression)
    assert phrase in caught.value.reason
    assert str(caught.value).startswith(f"{expression!r}: column {column}: ")


def test_an_unknown_step_is_an_error_pointing_at_its_name() -> None:
    with pytest.raises(ThresholdError) as caught:
        parse("step:rpct.p99<50ms")
    assert caught.value.column == len("step:") + 1
    assert "no step 'rpct'" in caught.value.reason
    assert "did you mean step:rcpt?" in caught.value.reason
    # Names match exactly: a step is not found by a different case.
    with pytest.raises(ThresholdError, match="no step 'RCPT'"):
        parse("step:RCPT.p99<50ms")


def test_start_delay_is_refused_in_a_closed_loop_run() -> None:
    with pytest.raises(ThresholdError) as caught:
        parse("start_delay.p99<10ms", open_loop=False)
    assert caught.value.column == 1
    assert "open-loop" in caught.value.reason
    assert "closed-loop" in caught.value.reason
    assert parse("start_delay.p99<10ms", open_loop=True).metric == "start_delay.p99"


# --- evaluation -------------------------------------------------------------------------------

OPERATOR_CASES = [
    # (operator, limit that holds, limit that is crossed) against a measured value of 30 ms
    ("<", "31", "30"),
    ("<=", "30", "29.999"),
    (">", "29", "30"),
    (">=", "30", "30.001"),
    ("==", "30", "30.001"),
    ("!=", "29", "30"),
]


@pytest.mark.parametrize(
    ("operator", "holds", "crossed"), OPERATOR_CASES, ids=[c[0] for c in OPERATOR_CASES]
)
def test_each_operator_holds_and_crosses(operator: str, holds: str, crossed: str) -> None:
    # session p99 is 3 * 10 ms in the summary
    assert verdict(f"session.p99{operator}{holds}ms")["verdict"] == "pass"
    assert verdict(f"session.p99{operator}{crossed}ms")["verdict"] == "fail"


KIND_CASES = [
    # (holding, crossed, measured value)
    ("session.p50<=10ms", "session.p50<10ms", 10.0),
    ("session.p99.9<41", "session.p99.9<40", 40.0),
    ("session.mean==15ms", "session.mean!=15ms", 15.0),
    ("step:connect.p50<2ms", "step:connect.p50>2ms", 1.0),
    ("step:rcpt#2.max<=25ms", "step:rcpt#2.max<0.025s", 25.0),
    ("step:message.p90<13ms", "step:message.p90>=13ms", 12.0),
    ("failed<=10", "failed<10", 10),
    ("failed<5.5%", "failed<5%", 5.0),
    ("failed!=0", "failed==0", 10),
    ("passed>=95%", "passed>95%", 95.0),
    ("passed>=190", "passed>190", 190),
    ("messages>100", "messages<100", 190),
    ("sessions_per_s>=100.5", "sessions_per_s>100.5", 100.5),
    ("passed_sessions_per_s>95", "passed_sessions_per_s<95", 95.25),
    ("messages_per_s>=95.25", "messages_per_s>=95.26", 95.25),
]


@pytest.mark.parametrize(
    ("holding", "crossed", "measured"), KIND_CASES, ids=[c[0] for c in KIND_CASES]
)
def test_each_kind_of_metric_holds_and_crosses(holding: str, crossed: str, measured: float) -> None:
    passing, failing = verdict(holding), verdict(crossed)
    assert (passing["verdict"], failing["verdict"]) == ("pass", "fail")
    assert passing["value"] == failing["value"] == measured
    assert passing["expression"] == holding
    assert type(passing["value"]) is type(measured)  # counts stay whole numbers in the JSON


def test_start_delay_is_evaluated_in_an_open_loop_summary() -> None:
    run = summary(start_delay_ms=latency(0.5))
    assert verdict("start_delay.p99<2ms", run, open_loop=True)["verdict"] == "pass"
    assert verdict("start_delay.p99<1ms", run, open_loop=True)["verdict"] == "fail"
    # A summary without start delays has no data for it.
    assert verdict("start_delay.p99<1ms", summary(), open_loop=True)["verdict"] == "no data"


@pytest.mark.parametrize(
    ("expression", "run"),
    [
        ("session.p99<1h", summary(session_latency_ms=None)),
        ("step:rcpt.p50<1h", summary(steps=[{"name": "rcpt", "latency_ms": None}])),
        ("failed<50%", summary(sessions={"started": 0, "passed": 0, "failed": 0})),
        ("passed>=0%", summary(sessions={"started": 0, "passed": 0, "failed": 0})),
    ],
    ids=["no-session-passed", "step-never-completed", "failed-of-none", "passed-of-none"],
)
def test_no_data_is_a_verdict_of_its_own_and_the_value_is_null(
    expression: str, run: dict[str, Any]
) -> None:
    entry = verdict(expression, run)
    assert entry == {
        "expression": expression,
        "metric": parse(expression).metric,
        "value": None,
        "verdict": "no data",
    }


def test_the_entries_are_json_in_the_order_given() -> None:
    expressions = ["failed<10%", "session.p99<1ms", "step:ehlo.p99.9<1s"]
    entries = evaluate_thresholds([parse(e) for e in expressions], summary())
    assert [e["expression"] for e in entries] == expressions
    assert [e["metric"] for e in entries] == ["failed", "session.p99", "step:ehlo.p99_9"]
    assert json.loads(json.dumps(entries, allow_nan=False)) == entries


# --- the exit status --------------------------------------------------------------------------


def with_thresholds(run: dict[str, Any], *expressions: str) -> dict[str, Any]:
    run = copy.deepcopy(run)
    run["thresholds"] = evaluate_thresholds([parse(e) for e in expressions], run)
    return run


PASSING = summary(sessions={"started": 200, "passed": 200, "failed": 0})
FAILING = summary()  # 10 of 200 failed


@pytest.mark.parametrize(
    ("run", "expressions", "status"),
    [
        (PASSING, (), 0),
        (FAILING, (), 1),
        (PASSING, ("session.p99<1s", "messages>=1"), 0),
        (PASSING, ("session.p99<1s", "messages>1000"), 1),
        (PASSING, ("session.p99<1s", "step:rcpt.p99<1s"), 0),
        (summary(session_latency_ms=None, sessions=PASSING["sessions"]), ("session.p99<1h",), 1),
        (FAILING, ("session.p99<1s",), 1),  # the default failed==0 still applies
        (FAILING, ("passed>=90%",), 1),  # a threshold on passed does not replace it
        (FAILING, ("failed<10%",), 0),  # a threshold on failed does
        (FAILING, ("failed<=10",), 0),
        (FAILING, ("failed<5%",), 1),
        (FAILING, ("failed<10%", "session.p99<1ms"), 1),
        ({**FAILING, "interrupted": True}, ("failed<50%",), 130),  # 130 wins
        ({**PASSING, "interrupted": True}, ("session.p99<1s",), 130),
    ],
    ids=[
        "none-passed", "none-failed", "all-hold", "one-crossed", "steps-hold", "no-data",
        "default-failed", "passed-is-not-failed", "failed-percent-holds", "failed-count-holds",
        "failed-percent-crossed", "failed-holds-latency-crossed", "interrupted-failed",
        "interrupted-passed",
    ],
)  # fmt: skip
def test_exit_status_follows_the_thresholds(
    run: dict[str, Any], expressions: tuple[str, ...], status: int
) -> None:
    assert exit_status(with_thresholds(run, *expressions)) == status


def test_a_summary_from_before_thresholds_still_has_an_exit_status() -> None:
    old = summary()
    del old["thresholds"]
    assert exit_status(old) == 1


def test_the_report_lists_each_threshold_with_its_value_and_verdict() -> None:
    run = with_thresholds(
        summary(session_latency_ms=None),
        "session.p99<1s",
        'step:"rcpt#2".p99<=15ms',
        "passed>=90%",
        "messages_per_s>1000",
    )
    lines = format_thresholds(run)
    assert lines[0] == "thresholds: 3 of 5 crossed"
    assert lines[1].split()[:3] == ["no", "data", "session.p99<1s"]
    assert lines[2].split() == ["pass", 'step:"rcpt#2".p99<=15ms', "measured", "15.000", "ms"]
    assert lines[3].split() == ["pass", "passed>=90%", "measured", "95%"]
    assert lines[4].split() == ["fail", "messages_per_s>1000", "measured", "95.25/s"]
    assert lines[5].split() == ["fail", "failed==0", "(default)", "measured", "10"]
    # --quiet's one line of outcomes brings them along; without thresholds there are none.
    assert format_outcomes(run).splitlines()[1:] == lines
    assert format_thresholds(summary()) == []


def test_the_report_escapes_control_characters_in_an_expression() -> None:
    name = "evil\x1b[2J"
    threshold = parse_threshold(f"step:{name}.p99<1s", step_names=[name], open_loop=False)
    run = summary(steps=[{"name": name, "latency_ms": latency(1.0)}])
    run["thresholds"] = evaluate_thresholds([threshold], run)
    assert "\x1b" not in "".join(format_thresholds(run))
    assert "\\x1b" in "".join(format_thresholds(run))


# --- real runs: the command -------------------------------------------------------------------


def read_summary(cwd: Path) -> dict[str, Any]:
    (path,) = (cwd / "results").glob("*/summary.json")
    return dict(json.loads(path.read_text()))


def test_run_exits_0_when_every_threshold_holds(tmp_path: Path) -> None:
    result = run_smtpload(
        "run", "quickstart", "--sessions", "5",
        "--threshold", "session.p99<1m", "--threshold", "step:rcpt.max <= 60s",
        "--threshold", "messages>=5", "--threshold", "failed==0",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    entries = read_summary(tmp_path)["thresholds"]
    assert [e["verdict"] for e in entries] == ["pass"] * 4
    assert entries[2] == {
        "expression": "messages>=5", "metric": "messages", "value": 5, "verdict": "pass"
    }  # fmt: skip
    assert "thresholds: all hold" in result.stdout
    assert "step:rcpt.max <= 60s" in result.stdout


def test_run_exits_1_when_one_threshold_is_crossed(tmp_path: Path) -> None:
    result = run_smtpload(
        "run", "quickstart", "--sessions", "3",
        "--threshold", "session.p99<1m", "--threshold", "messages_per_s>1000000000",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    run = read_summary(tmp_path)
    assert run["sessions"]["failed"] == 0
    assert [e["verdict"] for e in run["thresholds"]] == ["pass", "fail"]
    assert run["thresholds"][1]["value"] == run["throughput"]["messages_per_s"]
    assert "thresholds: 1 of 3 crossed" in result.stdout  # the default failed==0 is listed


def test_no_data_fails_the_run(tmp_path: Path) -> None:
    # rejected-recipient expects a 550 the built-in sink never gives: no session passes, so the
    # session latency has no samples.
    result = run_smtpload(
        "run", "rejected-recipient", "--sessions", "2",
        "--threshold", "failed<=100%", "--threshold", "session.p99<1h",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    entries = read_summary(tmp_path)["thresholds"]
    assert [(e["verdict"], e["value"]) for e in entries] == [("pass", 100.0), ("no data", None)]


async def test_failed_below_a_percentage_lets_a_run_with_failures_pass(tmp_path: Path) -> None:
    # One session in 4 is refused, so 2 of 8 (25 %) fail.
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, refuses_every_nth(4), 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]

        runs = 0

        def run_in_thread(*thresholds: str) -> tuple[int, dict[str, Any], str]:
            nonlocal runs
            runs += 1
            cwd = tmp_path / f"run-{runs}"
            cwd.mkdir()
            options = [word for t in thresholds for word in ("--threshold", t)]
            result = run_smtpload(
                "run", "quickstart", "--target", f"127.0.0.1:{port}",
                "--sessions", "8", "--timeout", "10", *options, cwd=cwd,
            )  # fmt: skip
            return result.returncode, read_summary(cwd), result.stdout + result.stderr

        async def run(*thresholds: str) -> tuple[int, dict[str, Any], str]:
            return await trio.to_thread.run_sync(functools.partial(run_in_thread, *thresholds))

        status, run_summary, output = await run()
        assert run_summary["sessions"]["failed"] == 2, output
        assert status == 1, output
        status, run_summary, output = await run("failed<50%")
        assert status == 0, output
        assert run_summary["thresholds"][0]["value"] == 25.0
        assert run_summary["sessions"]["failed"] == 2
        status, _, output = await run("failed<20%")
        assert status == 1, output
        status, _, output = await run("failed<=2", "session.p99<1m")
        assert status == 0, output
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("expression", "column"),
    [("session.p99<<5", 13), ("step:rpct.p99<50ms", 6), ("start_delay.p99<10ms", 1)],
    ids=["syntax", "unknown-step", "start-delay-closed-loop"],
)
def test_a_bad_threshold_is_a_usage_error_before_any_session(
    tmp_path: Path, aiosmtpd_server: RecordingPeer, expression: str, column: int
) -> None:
    result = run_smtpload(
        "run", "quickstart", "--target", f"{aiosmtpd_server.host}:{aiosmtpd_server.port}",
        "--threshold", "session.p99<1s", "--threshold", expression,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(f"smtpload: --threshold {expression!r}: column {column}: ")
    assert result.stderr.count("\n") == 1  # one line
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert aiosmtpd_server.handler.messages == []
    assert not (tmp_path / "results").exists()


def test_quiet_says_which_threshold_was_crossed(tmp_path: Path) -> None:
    result = run_smtpload(
        "run", "quickstart", "--quiet", "--threshold", "messages>1", cwd=tmp_path
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("sessions: 1 started, 1 passed, 0 failed")
    assert lines[1] == "thresholds: 1 of 2 crossed"
    assert lines[2].split() == ["fail", "messages>1", "measured", "1"]
    quiet_pass = run_smtpload(
        "run", "quickstart", "--quiet", "--threshold", "messages>=1", cwd=tmp_path
    )  # fmt: skip
    assert (quiet_pass.returncode, quiet_pass.stdout) == (0, "")


# --- real runs: the Python API ----------------------------------------------------------------


def test_the_api_takes_thresholds_and_exit_status_follows_them() -> None:
    held = smtpload.run("quickstart", sessions=2, thresholds=["messages>=2", "session.p99<1m"])
    assert held.exit_status == 0
    assert [e["verdict"] for e in held.summary["thresholds"]] == ["pass", "pass"]
    crossed = smtpload.run("quickstart", sessions=2, thresholds=["messages>2"])
    assert crossed.exit_status == 1
    assert crossed.summary["thresholds"][0]["value"] == 2
    assert smtpload.run("quickstart").summary["thresholds"] == []


def test_the_api_lets_failures_pass_with_a_failed_threshold(
    aiosmtpd_server: RecordingPeer,
) -> None:
    result = smtpload.run(
        "quickstart",
        target=f"{aiosmtpd_server.host}:{aiosmtpd_server.port}",
        sessions=2,
        variables={"to": f"nobody@{REJECT_DOMAIN}"},
        thresholds=["failed<=100%"],
    )
    assert result.summary["sessions"]["failed"] == 2
    assert result.exit_status == 0


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        (["session.p99<<5"], "thresholds[0] 'session.p99<<5': column 13: expected a number"),
        (["failed<1%", "step:nope.p99<1s"], "thresholds[1] 'step:nope.p99<1s': column 6:"),
        ("failed<1%", "give a list of strings"),
        ([5], "thresholds[0]: give a str, not int"),
    ],
    ids=["syntax", "unknown-step", "a-lone-string", "not-a-string"],
)
def test_the_api_refuses_a_bad_threshold_before_any_session(
    aiosmtpd_server: RecordingPeer, thresholds: Any, message: str
) -> None:
    with pytest.raises(smtpload.UsageError) as caught:
        smtpload.run(
            "quickstart",
            target=f"{aiosmtpd_server.host}:{aiosmtpd_server.port}",
            thresholds=thresholds,
        )
    assert message in str(caught.value)
    assert aiosmtpd_server.handler.messages == []
