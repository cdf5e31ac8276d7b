"""``smtpload run`` end to end, over real loopback sockets, against three real servers:
the built-in sink, aiosmtpd in-process, and Postfix (started by .ci/postfix-setup).

These tests call the command line's ``main()`` in-process (each starts its own trio run), so
they are plain synchronous tests; the ones about exit statuses and tracebacks run the real
``python -m smtpload`` process.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from smtpload.cli.main import main
from tests.cli import smtpload
from tests.peers import RecordingPeer, SmtpPeer

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
DATA = Path(__file__).resolve().parent / "data"


def shown_path(path: Path) -> str:
    return repr(str(path))


def run(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``smtpload run ARGS``; return the exit status and the summary it wrote."""
    summary_path = tmp_path / "summary.json"
    status = main(
        [
            "run",
            *args,
            "--results",
            str(tmp_path / "results"),
            "--json",
            str(summary_path),
            "--quiet",
        ]
    )
    summary = json.loads(summary_path.read_text())
    return status, summary


def step_names(summary: dict[str, Any]) -> list[str]:
    return [step["name"] for step in summary["steps"]]


#: The bundled scenarios' steps inside a repeat: (names, fewest and most runs per session).
REPEATED_STEPS = {
    "persistent-pipelined": ({"mail", "rcpt", "data", "message", "rset"}, 1, 20),
}


def assert_all_passed(summary: dict[str, Any], sessions: int, scenario: str = "") -> None:
    assert summary["sessions"]["started"] == sessions
    assert summary["sessions"]["not_started"] == 0
    assert summary["sessions"]["passed"] == sessions
    assert summary["sessions"]["failed"] == 0
    assert all(count == 0 for count in summary["sessions"]["failures"].values())
    repeated, fewest, most = REPEATED_STEPS.get(scenario, (set(), 1, 1))
    for step in summary["steps"]:
        assert step["failed"] == 0, step
        if step["name"] in repeated:
            assert fewest * sessions <= step["count"] <= most * sessions, step
        else:
            assert step["count"] == sessions, step
        assert step["latency_ms"] is not None, step
    # A repeated step's runs: as many of each step of the transaction.
    assert len({s["count"] for s in summary["steps"] if s["name"] in repeated}) <= 1


# --- the built-in sink ------------------------------------------------------------------------


def test_quickstart_runs_against_the_built_in_sink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["run", "quickstart", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["scenario"] == "quickstart"
    assert summary["target"].startswith("127.0.0.1:")
    assert_all_passed(summary, 1)
    assert step_names(summary) == [
        "connect",
        "greeting",
        "ehlo",
        "mail",
        "rcpt",
        "data",
        "message",
        "quit",
        "close",
    ]
    assert summary["throughput"]["messages"] == 1
    # The terminal report: a row per step with its percentiles, and the outcome.
    for name in step_names(summary):
        assert name in out
    assert "p99.9" in out
    hgrm = sorted(p.name for p in run_dir.glob("*.hgrm"))
    assert "session.hgrm" in hgrm
    assert len(hgrm) == len(summary["steps"]) + 1
    assert (run_dir / "failures.log").read_text().strip() == "no failed sessions"


def test_many_concurrent_sessions_all_pass_against_the_sink(tmp_path: Path) -> None:
    status, summary = run(
        tmp_path, str(SCENARIOS / "quickstart.yaml"), "--sessions", "300", "--concurrency", "30"
    )
    assert status == 0
    assert_all_passed(summary, 300)
    assert summary["throughput"]["messages"] == 300
    assert summary["throughput"]["sessions_per_s"] > 0


@pytest.mark.parametrize(
    "scenario",
    [
        "seed-telnet",
        "seed-sendmail",
        "esmtp-capabilities",
        "multi-recipient",
        "ramping-arrivals",
        "mime-messages",
        "persistent-pipelined",
    ],
)
def test_bundled_scenarios_pass_against_the_sink(tmp_path: Path, scenario: str) -> None:
    status, summary = run(tmp_path, scenario, "--sessions", "5", "--concurrency", "5")
    assert status == 0, summary
    assert_all_passed(summary, 5, scenario)


def test_rejected_recipient_fails_against_the_accept_all_sink(tmp_path: Path) -> None:
    status, summary = run(tmp_path, "rejected-recipient")
    assert status == 1
    assert summary["sessions"]["failures"]["unexpected_reply"] == 1
    failed = {s["name"]: s["failed"] for s in summary["steps"]}
    assert failed["rcpt-unknown"] == 1
    (run_dir,) = (tmp_path / "results").iterdir()
    log = (run_dir / "failures.log").read_text()
    assert "session 1: unexpected_reply at step 'rcpt-unknown'" in log
    assert "550" in log
    assert "250" in log


# --- aiosmtpd in-process ----------------------------------------------------------------------


def test_seed_telnet_against_aiosmtpd_delivers_the_message(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    status, summary = run(tmp_path, "seed-telnet", "--target", target)
    assert status == 0, summary
    assert_all_passed(summary, 1)
    (message,) = aiosmtpd_server.handler.messages
    assert message.mail_from == "hoge00@exsample.jp"
    assert message.rcpt_tos == ("hoge01@exsample.jp",)
    assert message.content == (
        b"subject: test\r\nfrom: hoge00@exsample.jp\r\nto: hoge01@exsample.jp\r\n"
        b"\r\nmeil send test\r\n"
    )


def test_seed_sendmail_typo_is_answered_500_by_aiosmtpd(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    status, summary = run(tmp_path, "seed-sendmail", "--target", target)
    assert status == 0, summary
    assert step_names(summary)[:3] == ["connect", "greeting", "heloo"]
    (message,) = aiosmtpd_server.handler.messages
    assert message.rcpt_tos == ("hoge01@gmail.com",)


@pytest.mark.parametrize(
    "scenario", ["quickstart", "esmtp-capabilities", "multi-recipient", "rejected-recipient"]
)
def test_bundled_scenarios_pass_against_aiosmtpd(
    tmp_path: Path, aiosmtpd_server: RecordingPeer, scenario: str
) -> None:
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    status, summary = run(
        tmp_path, scenario, "--target", target, "--sessions", "4", "--concurrency", "2"
    )
    assert status == 0, summary
    assert_all_passed(summary, 4)


def test_variables_are_rendered_per_session_and_var_overrides(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    status, _ = run(
        tmp_path,
        "quickstart",
        "--target",
        target,
        "--sessions",
        "3",
        "--var",
        "to=someone@example.org",
    )
    assert status == 0
    messages = aiosmtpd_server.handler.messages
    assert [m.rcpt_tos for m in messages] == [("someone@example.org",)] * 3
    subjects = sorted(
        line
        for m in messages
        for line in m.content.decode().splitlines()
        if line.startswith("Subject:")
    )
    assert len(set(subjects)) == 3  # {uid} differs per session


def test_captured_value_is_sent_by_a_later_step(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    status, _ = run(tmp_path, str(DATA / "capture.yaml"), "--target", target, "--sessions", "2")
    assert status == 0
    messages = aiosmtpd_server.handler.messages
    assert len(messages) == 2
    # The first line of aiosmtpd's EHLO reply is its host name; the capture sent it back.
    server = messages[0].mail_from.removeprefix("capture-test@")
    assert server
    assert "{" not in server
    assert f"Subject: the server calls itself {server}" in messages[0].content.decode()


def test_capture_that_finds_nothing_fails_the_session_not_the_run(tmp_path: Path) -> None:
    scenario = tmp_path / "nothing.yaml"
    scenario.write_text(
        "steps:\n"
        "  - greeting: 220\n"
        "  - send: EHLO x\n"
        "    capture: 'queued as (?P<qid>\\w+)'\n"
        "  - send: 'NOOP {qid}'\n"
    )
    status, summary = run(tmp_path, str(scenario), "--sessions", "5", "--concurrency", "5")
    assert status == 1
    assert summary["sessions"]["failures"]["unexpected_reply"] == 5
    assert {s["name"]: s["failed"] for s in summary["steps"]}["ehlo"] == 5


def test_multi_recipient_message_reaches_all_three(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    status, summary = run(tmp_path, "multi-recipient", "--target", target)
    assert status == 0
    assert step_names(summary)[4:7] == ["rcpt", "rcpt#2", "rcpt#3"]
    (message,) = aiosmtpd_server.handler.messages
    assert message.rcpt_tos == ("alice@example.test", "bob@example.test", "carol@example.test")


def test_wrong_expectation_fails_with_unexpected_reply_and_exit_1(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    status, summary = run(
        tmp_path, str(DATA / "wrong-expectation.yaml"), "--target", target, "--sessions", "3"
    )
    assert status == 1
    assert summary["sessions"]["started"] == 3
    assert summary["sessions"]["failed"] == 3
    assert summary["sessions"]["failures"]["unexpected_reply"] == 3
    by_name = {s["name"]: s for s in summary["steps"]}
    assert by_name["ehlo"]["failed"] == 3
    assert by_name["quit"]["count"] == 0  # the scenario's QUIT never ran; smtpload's polite one did
    (run_dir,) = (tmp_path / "results").iterdir()
    log = (run_dir / "failures.log").read_text()
    assert "expected: 5xx" in log
    assert "C: QUIT" in log  # the polite QUIT after the failure


# --- Postfix ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scenario",
    [
        "seed-telnet",
        "seed-sendmail",
        "quickstart",
        "esmtp-capabilities",
        "multi-recipient",
        "rejected-recipient",
    ],
)
def test_bundled_scenarios_pass_against_postfix(
    tmp_path: Path, postfix_server: SmtpPeer, scenario: str
) -> None:
    target = f"{postfix_server.host}:{postfix_server.port}"
    status, summary = run(
        tmp_path, scenario, "--target", target, "--sessions", "3", "--concurrency", "3"
    )
    assert status == 0, summary
    assert_all_passed(summary, 3)


def test_wrong_expectation_fails_against_postfix(tmp_path: Path, postfix_server: SmtpPeer) -> None:
    target = f"{postfix_server.host}:{postfix_server.port}"
    status, summary = run(tmp_path, str(DATA / "wrong-expectation.yaml"), "--target", target)
    assert status == 1
    assert summary["sessions"]["failures"]["unexpected_reply"] == 1


def test_unresolvable_target_counts_every_session_as_connect_error(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 2606 §2).
    status, summary = run(tmp_path, "quickstart", "--target", "host.invalid:25", "--sessions", "3")
    assert status == 1
    assert summary["sessions"]["started"] == 3
    assert summary["sessions"]["failures"]["connect_error"] == 3
    (run_dir,) = (tmp_path / "results").iterdir()
    log = (run_dir / "failures.log").read_text()
    assert "session 3: connect_error at step 'connect'" in log
    assert "cannot resolve host.invalid" in log


# --- the real process: exit statuses and error output -----------------------------------------


def test_invalid_scenario_exits_2_with_every_position_and_no_traceback(tmp_path: Path) -> None:
    result = smtpload("run", str(DATA / "three-errors.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    path = str(DATA / "three-errors.yaml")
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{path}:4:5",
        f"{path}:6:22",
        f"{path}:9:13",
    ]
    assert "did you mean 'send'" in lines[0]
    assert not (tmp_path / "results").exists()


def test_validate_accepts_every_bundled_scenario(tmp_path: Path) -> None:
    result = smtpload("validate", *sorted(str(p) for p in SCENARIOS.glob("*.yaml")), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == len(list(SCENARIOS.glob("*.yaml")))


def test_validate_reports_problems_of_every_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - send: HELO x\n    expect: 2xy\n")
    result = smtpload("validate", str(DATA / "three-errors.yaml"), str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{bad}:3:13:" in result.stderr
    assert result.stderr.count("three-errors.yaml:") == 3


def test_refused_connections_count_in_the_finished_rate_not_the_passed_one(
    tmp_path: Path,
) -> None:
    with socket.socket() as refusing:  # bound, never listening: every connect is refused
        refusing.bind(("127.0.0.1", 0))
        port = refusing.getsockname()[1]
        status, summary = run(tmp_path, "quickstart", "--target", f"127.0.0.1:{port}",
                              "--sessions", "200", "--concurrency", "20")  # fmt: skip
    assert status == 1
    assert summary["sessions"]["failures"]["connect_error"] == 200
    assert summary["throughput"]["sessions_per_s"] > 0
    assert summary["throughput"]["passed_sessions_per_s"] == 0


def test_quiet_says_nothing_when_all_pass_and_one_line_when_not(tmp_path: Path) -> None:
    passed = smtpload("run", "quickstart", "--quiet", "--results", "r", cwd=tmp_path)
    assert (passed.returncode, passed.stdout, passed.stderr) == (0, "", "")
    with socket.socket() as refusing:  # bound, never listening: every connect is refused
        refusing.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{refusing.getsockname()[1]}"
        failed = smtpload(
            "run", "quickstart", "--quiet", "--results", "r", "--target", target,
            "--sessions", "3", cwd=tmp_path,
        )  # fmt: skip
    lines = failed.stdout.splitlines()
    assert failed.returncode == 1
    assert lines[0] == "sessions: 3 started, 0 passed, 3 failed (connect_error 3)"
    assert lines[1].startswith("results: r/")
    assert len(lines) == 2


def test_json_holds_exactly_what_summary_json_holds(tmp_path: Path) -> None:
    scenario = tmp_path / "unicode.yaml"
    scenario.write_text(
        "name: ünïcode\nsteps:\n  - greeting: 220\n  - send: QUIT\n    expect: 221\n",
        encoding="utf-8",
    )
    result = smtpload(
        "run", str(scenario), "--json", "out.json", "--results", "r", "--quiet", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    (summary,) = (tmp_path / "r").glob("*/summary.json")
    assert (tmp_path / "out.json").read_bytes() == summary.read_bytes()
    assert "ünïcode" in summary.read_text(encoding="utf-8")


def test_validate_goes_on_past_a_missing_file_or_a_folder(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - sendd: x\n")
    result = smtpload("validate", "nope.yaml", str(bad), str(tmp_path), "quickstart", cwd=tmp_path)
    assert result.returncode == 2
    assert "no scenario file 'nope.yaml'" in result.stderr
    assert f"{shown_path(tmp_path)} is a folder; give a scenario file in it" in result.stderr
    assert f"{bad}:2:5: unknown key 'sendd'" in result.stderr
    assert "quickstart.yaml: ok (" in result.stdout


def test_a_mistyped_bundled_name_gets_a_did_you_mean(tmp_path: Path) -> None:
    result = smtpload(
        "validate", "quikstart", "seed-telnet.yml", "zzzz", "sub/quikstart", cwd=tmp_path
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        "smtpload: no scenario file 'quikstart' (did you mean 'quickstart'?); give a path, or"
        " one of the bundled scenarios: "
    ), lines
    assert "no scenario file 'seed-telnet.yml' (did you mean 'seed-telnet'?)" in lines[1]
    # Nothing close, or a path into a folder: no guess, the list only.
    assert "no scenario file 'zzzz'; give a path" in lines[2]
    assert "no scenario file 'sub/quikstart'; give a path" in lines[3]
    assert "quickstart" in lines[2]


def test_validate_reports_what_re2_cannot_match_and_nothing_else(tmp_path: Path) -> None:
    bad = tmp_path / "lookbehind.yaml"
    bad.write_text(
        "steps:\n"
        "  - greeting: {code: 220, text: '(?<=ESMTP )Postfix'}\n"
        "  - send: NOOP\n"
        "    capture: '(?P<n>\\d+) \\1'\n"
    )
    result = smtpload("validate", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    # Exactly the two problems: RE2's own logging (absl, on stderr by default) stays quiet.
    assert result.stderr.splitlines() == [
        f"{bad}:2:34: greeting: text: lookbehind (?<=...) is not supported: smtpload matches"
        " replies with RE2, which never backtracks (docs/scenario-language.md)",
        f"{bad}:4:26: capture: a backreference (\\1) is not supported: smtpload matches"
        " replies with RE2, which never backtracks (docs/scenario-language.md)",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no-such-scenario"], "no scenario file 'no-such-scenario'"),
        (["run", "quickstart", "--sessions", "0"], "must be at least 1"),
        (
            ["run", "quickstart", "--target", "localhost:99999"],
            "port must be a number from 1 to 65535",
        ),
        (["run", "quickstart", "--var", "nope=1"], "declares no variable 'nope'"),
        (["run", "quickstart", "--var", "novalue"], "write NAME=VALUE"),
        (["run", "quickstart", "--target", "::1:2626"], "write an IPv6 address in brackets"),
        (["run", "quickstart", "--results", "a-file"], "cannot create the results folder"),
        (["run", "quickstart", "--json", "."], ".: is a folder"),
        (["run", "quickstart", "--max-reply-bytes", "511"], "must be at least 512"),
        (["record", "quickstart", "--max-reply-bytes", "1M", "-o", "b.json"], "whole number"),
    ],
    ids=[
        "unknown-scenario",
        "zero-sessions",
        "bad-port",
        "undeclared-var",
        "malformed-var",
        "bare-ipv6",
        "results-is-a-file",
        "json-is-a-folder",
        "max-reply-bytes-below-a-reply-line",
        "max-reply-bytes-not-a-number",
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "a-file").write_text("not a folder\n")
    result = smtpload(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
