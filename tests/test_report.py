"""smtpload.report.results: summary.json contract, result files, terminal text (pure)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest

import smtpload
from smtpload.errors import counted
from smtpload.protocol.outcome import Outcome, SessionFailure, TranscriptLine
from smtpload.report.results import (
    MAX_FAILURES_LOG_BYTES,
    SUMMARY_KEYS,
    build_summary,
    exit_status,
    format_outcomes,
    format_report,
    safe_file_name,
    write_results,
)
from smtpload.report.stats import LATENCY_HIGHEST_US, RunStats

STEP_NAMES = ["connect", "ehlo", "mail", "rcpt#2", "data", "quit"]
LATENCY_KEYS = {"p50", "p90", "p99", "p99_9", "max", "mean", "samples"}


def failure(session: int, outcome: Outcome, step: str = "rcpt#2") -> SessionFailure:
    return SessionFailure(
        session=session,
        outcome=outcome,
        step=step,
        expected="reply 250",
        got="reply 550 no such user",
        transcript=(
            TranscriptLine("*", "connected to 127.0.0.1:2525"),
            TranscriptLine("S", "220 mx.example ESMTP"),
            TranscriptLine("C", "RCPT TO:<nobody@example.test>"),
            TranscriptLine("S", "550 5.1.1 no such user"),
        ),
    )


def populated_stats(*, max_kept_failures: int = 100) -> RunStats:
    """20 sessions: 14 passed, 3 unexpected_reply, 2 timeout, 1 connect_error; 14 messages.

    The "mail" step gets no latency samples (every attempt timed out), to show nulls.
    """
    stats = RunStats(STEP_NAMES, max_kept_failures=max_kept_failures)
    for session in range(1, 21):
        stats.session_started()
        if session == 20:
            stats.record_step("connect", None, failed=True)
            stats.record_session(
                Outcome.CONNECT_ERROR, None, failure(session, Outcome.CONNECT_ERROR, "connect")
            )
            continue
        stats.record_step("connect", 100 + session, failed=False)
        stats.record_step("ehlo", 1000 + session, failed=False)
        if session in (18, 19):
            stats.record_step("mail", None, failed=True)
            stats.record_session(Outcome.TIMEOUT, None, failure(session, Outcome.TIMEOUT, "mail"))
            continue
        stats.record_step("rcpt#2", 500, failed=session in (15, 16, 17))
        if session in (15, 16, 17):
            stats.record_session(
                Outcome.UNEXPECTED_REPLY, None, failure(session, Outcome.UNEXPECTED_REPLY)
            )
            continue
        stats.record_step("data", 2000, failed=False)
        stats.message_accepted()
        stats.record_step("quit", 300, failed=False)
        stats.record_session(Outcome.PASSED, 10_000)
    return stats


def summary_of(stats: RunStats, *, duration_s: float = 4.0, interrupted: bool = False) -> Any:
    return build_summary(
        scenario="quickstart",
        target="127.0.0.1:2525",
        run_id="20261127-120000",
        duration_s=duration_s,
        stats=stats,
        interrupted=interrupted,
    )


# -- summary.json contract -------------------------------------------------------------------


def test_summary_has_exactly_the_contract_keys() -> None:
    summary = summary_of(populated_stats())
    assert list(summary) == [
        "scenario",
        "target",
        "run_id",
        "seed",
        "interrupted",
        "aborted",
        "duration_s",
        "load",
        "sources",
        "sessions",
        "throughput",
        "session_latency_ms",
        "session_latency_uncorrected_ms",
        "start_delay_ms",
        "late_starts",
        "clock",
        "steps",
        "generator",
        "tls",
        "pipelining",
        "thresholds",
        "smtpload_version",
    ]
    assert list(summary) == list(SUMMARY_KEYS)
    assert summary["pipelining"] is None  # only a scenario with pipeline groups has it
    assert summary["thresholds"] == []  # filled in after the run, when there are any
    assert summary["aborted"] is None  # only --abort-on-threshold fills it in
    assert summary["sources"] is None  # only --source fills it in
    assert set(summary["sessions"]) == {"started", "not_started", "passed", "failed", "failures"}
    assert list(summary["sessions"]["failures"]) == [
        "unexpected_reply",
        "timeout",
        "connect_error",
        "connection_closed",
        "protocol_error",
        "tls_error",
        "interrupted",
    ]
    assert summary["tls"] is None  # no session did TLS
    assert set(summary["throughput"]) == {
        "sessions_per_s",
        "passed_sessions_per_s",
        "messages_per_s",
        "messages",
    }
    assert set(summary["session_latency_ms"]) == LATENCY_KEYS
    for step in summary["steps"]:
        assert set(step) == {"name", "count", "failed", "latency_ms", "dropped_samples", "clock"}
        assert step["latency_ms"] is None or set(step["latency_ms"]) == LATENCY_KEYS
        assert step["clock"] in {"kernel", "loop"}
    assert summary["clock"] in {"kernel", "loop"}
    assert set(summary["generator"]) == {
        "cpu_percent",
        "busy_seconds_percent",
        "loop_lag_ms",
        "reply_lag_ms",
        "untimed_reads",
        "saturated",
        "workers",
    }


def test_summary_values_of_a_populated_run() -> None:
    summary = summary_of(populated_stats())
    assert (summary["scenario"], summary["target"]) == ("quickstart", "127.0.0.1:2525")
    assert (summary["run_id"], summary["interrupted"]) == ("20261127-120000", False)
    assert summary["duration_s"] == 4.0
    assert summary["smtpload_version"] == smtpload.__version__
    assert summary["sessions"] == {
        "started": 20,
        "not_started": 0,
        "passed": 14,
        "failed": 6,
        "failures": {
            "unexpected_reply": 3,
            "timeout": 2,
            "connect_error": 1,
            "connection_closed": 0,
            "protocol_error": 0,
            "tls_error": 0,
            "interrupted": 0,
        },
    }
    assert summary["throughput"] == {
        "sessions_per_s": 5.0,
        "passed_sessions_per_s": 3.5,
        "messages_per_s": 3.5,
        "messages": 14,
    }
    assert summary["session_latency_ms"] == {
        "p50": 10.007,
        "p90": 10.007,
        "p99": 10.007,
        "p99_9": 10.007,
        "max": 10.007,
        "mean": 10.004,
        "samples": 14,  # the passed sessions: the failed ones recorded no latency
    }


def test_summary_sessions_add_up() -> None:
    sessions = summary_of(populated_stats())["sessions"]
    assert sessions["passed"] + sessions["failed"] == sessions["started"]
    assert sum(sessions["failures"].values()) == sessions["failed"]
    assert sessions["not_started"] == 0


def test_an_interrupted_run_counts_the_sessions_it_never_started() -> None:
    stats = populated_stats()  # 20 started
    summary = build_summary(
        scenario="quickstart",
        target="127.0.0.1:2525",
        run_id="r",
        duration_s=4.0,
        stats=stats,
        interrupted=True,
        sessions_requested=1000,
    )
    sessions = summary["sessions"]
    assert sessions["not_started"] == 980
    assert sessions["started"] + sessions["not_started"] == 1000
    assert sum(sessions["failures"].values()) == sessions["failed"]  # not a failure
    assert "sessions: 20 started, 14 passed, 6 failed, 980 not started\n" in format_report(
        summary, stats
    )
    assert format_outcomes(summary) == (
        "sessions: 20 started, 14 passed, 6 failed (unexpected_reply 3, timeout 2,"
        " connect_error 1), 980 not started"
    )
    finished = summary_of(stats)
    assert "not started" not in format_report(finished, stats)
    assert "not started" not in format_outcomes(finished)


def test_summary_steps_in_order_with_counts_and_nulls() -> None:
    steps = summary_of(populated_stats())["steps"]
    assert [s["name"] for s in steps] == STEP_NAMES
    by_name = {s["name"]: s for s in steps}
    assert (by_name["connect"]["count"], by_name["connect"]["failed"]) == (20, 1)
    assert (by_name["mail"]["count"], by_name["mail"]["failed"]) == (2, 2)
    assert by_name["mail"]["latency_ms"] is None
    assert (by_name["rcpt#2"]["count"], by_name["rcpt#2"]["failed"]) == (17, 3)
    assert by_name["rcpt#2"]["latency_ms"]["max"] == 0.5
    assert by_name["connect"]["latency_ms"]["max"] == 0.119
    # samples are the latencies recorded, count the attempts: the connect that failed has none.
    assert by_name["connect"]["latency_ms"]["samples"] == 19
    assert by_name["rcpt#2"]["latency_ms"]["samples"] == 17
    assert all(s["dropped_samples"] == 0 for s in steps)


def test_summary_counts_dropped_samples() -> None:
    stats = RunStats(["connect", "data"])
    stats.record_step("data", LATENCY_HIGHEST_US + 1, failed=False)
    steps = summary_of(stats)["steps"]
    assert [s["dropped_samples"] for s in steps] == [0, 1]


def test_summary_of_a_run_without_sessions_is_valid_json() -> None:
    summary = summary_of(RunStats(["connect"]), duration_s=0.0, interrupted=True)
    assert summary["session_latency_ms"] is None
    assert summary["throughput"] == {
        "sessions_per_s": 0.0,
        "passed_sessions_per_s": 0.0,
        "messages_per_s": 0.0,
        "messages": 0,
    }
    assert summary["interrupted"] is True
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


@pytest.mark.parametrize(
    ("duration_s", "sessions_per_s", "messages_per_s"),
    [(4.0, 5.0, 3.5), (0.0, 0.0, 0.0), (3.0, 6.667, 4.667), (-1.0, 0.0, 0.0)],
    ids=["four-seconds", "zero-duration", "rounded", "negative-duration"],
)
def test_throughput_rates(duration_s: float, sessions_per_s: float, messages_per_s: float) -> None:
    throughput = summary_of(populated_stats(), duration_s=duration_s)["throughput"]
    assert throughput["sessions_per_s"] == sessions_per_s
    assert throughput["messages_per_s"] == messages_per_s


# -- result files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rcpt#2", "rcpt_2"),
        ("EHLO", "ehlo"),
        ("data-1", "data-1"),
        ("mail_from", "mail_from"),
        ("mail from", "mail_from"),
        ("../etc/passwd", "___etc_passwd"),
        ("Émoji🙂", "_moji_"),
    ],
    ids=["hash", "upper", "dash", "underscore", "space", "path", "non-ascii"],
)
def test_safe_file_name(name: str, expected: str) -> None:
    assert safe_file_name(name) == expected


def test_write_results_writes_every_file(tmp_path: Path) -> None:
    stats = populated_stats()
    summary = summary_of(stats)
    directory = tmp_path / "results" / "run-1"
    written = write_results(directory, summary, stats)
    # step 02 ("mail") has no samples, so no file for it.
    assert [p.name for p in written] == [
        "summary.json",
        "step-00-connect.hgrm",
        "step-01-ehlo.hgrm",
        "step-03-rcpt_2.hgrm",
        "step-04-data.hgrm",
        "step-05-quit.hgrm",
        "session.hgrm",
        "failures.log",
        "latency.hlog",
        "timeline.csv",
    ]
    assert all(p.parent == directory for p in written)
    assert sorted(p.name for p in directory.iterdir()) == sorted(p.name for p in written)


def test_summary_json_is_indented_with_trailing_newline(tmp_path: Path) -> None:
    stats = populated_stats()
    summary = summary_of(stats)
    write_results(tmp_path, summary, stats)
    text = (tmp_path / "summary.json").read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text.startswith('{\n  "scenario": "quickstart",\n  "target"')  # not sorted
    assert json.loads(text) == summary


def test_hgrm_file_holds_the_step_latencies_in_ms(tmp_path: Path) -> None:
    stats = populated_stats()
    write_results(tmp_path, summary_of(stats), stats)
    text = (tmp_path / "step-03-rcpt_2.hgrm").read_text(encoding="ascii")
    assert "       0.500 1.000000000000         17\n" in text
    assert "#[Max     =        0.500, Total count    =           17]\n" in text


def test_summary_json_is_replaced_atomically(tmp_path: Path) -> None:
    stats = populated_stats()
    write_results(tmp_path, summary_of(stats), stats)
    write_results(tmp_path, summary_of(stats, interrupted=True), stats)
    assert json.loads((tmp_path / "summary.json").read_text())["interrupted"] is True

    broken = summary_of(stats)
    broken["duration_s"] = math.nan  # not JSON: must fail before touching the old file
    with pytest.raises(ValueError, match="JSON"):
        write_results(tmp_path, broken, stats)
    assert json.loads((tmp_path / "summary.json").read_text())["interrupted"] is True
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_summary_json_left_intact_when_the_replace_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = populated_stats()
    write_results(tmp_path, summary_of(stats), stats)
    before = (tmp_path / "summary.json").read_bytes()

    def interrupted_replace(src: str, dst: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        write_results(tmp_path, summary_of(stats, interrupted=True), stats)
    assert (tmp_path / "summary.json").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failures_log_format(tmp_path: Path) -> None:
    stats = RunStats(["connect", "rcpt#2"], max_kept_failures=2)
    stats.record_session(Outcome.UNEXPECTED_REPLY, None, failure(7, Outcome.UNEXPECTED_REPLY))
    stats.record_session(
        Outcome.CONNECT_ERROR,
        None,
        SessionFailure(9, Outcome.CONNECT_ERROR, "connect", "", "connection refused", ()),
    )
    stats.record_session(Outcome.TIMEOUT, None, failure(11, Outcome.TIMEOUT))
    stats.record_session(Outcome.TIMEOUT, None, failure(12, Outcome.TIMEOUT))
    write_results(tmp_path, summary_of(stats), stats)
    assert (tmp_path / "failures.log").read_text(encoding="utf-8") == (
        "session 7: unexpected_reply at step 'rcpt#2'\n"
        "expected: reply 250\n"
        "got: reply 550 no such user\n"
        "  *: connected to 127.0.0.1:2525\n"
        "  S: 220 mx.example ESMTP\n"
        "  C: RCPT TO:<nobody@example.test>\n"
        "  S: 550 5.1.1 no such user\n"
        "\n"
        "session 9: connect_error at step 'connect'\n"
        "expected: -\n"
        "got: connection refused\n"
        "\n"
        "(2 more failed sessions not kept)\n"
    )


def test_failures_log_without_failures(tmp_path: Path) -> None:
    stats = RunStats(["connect"])
    stats.record_session(Outcome.PASSED, 100)
    write_results(tmp_path, summary_of(stats), stats)
    assert (tmp_path / "failures.log").read_text() == "no failed sessions\n"


@pytest.mark.parametrize(
    ("failed", "said"), [(1, "1 failed session"), (2, "2 failed sessions")], ids=["1", "2"]
)
def test_failures_log_when_failures_came_without_details(
    tmp_path: Path, failed: int, said: str
) -> None:
    stats = RunStats(["connect"])
    for _ in range(failed):
        stats.record_session(Outcome.TIMEOUT, None)
    write_results(tmp_path, summary_of(stats), stats)
    assert (tmp_path / "failures.log").read_text() == f"{said}, no details kept\n"


def test_failures_log_escapes_control_characters(tmp_path: Path) -> None:
    stats = RunStats(["connect"])
    hostile = SessionFailure(
        1, Outcome.PROTOCOL_ERROR, "connect", "", "garbage", (TranscriptLine("S", "\x1b[2J\x00"),)
    )
    stats.record_session(Outcome.PROTOCOL_ERROR, None, hostile)
    write_results(tmp_path, summary_of(stats), stats)
    assert "  S: \\x1b[2J\\x00\n" in (tmp_path / "failures.log").read_text()


def big_failure(session: int, transcript_bytes: int, text: str) -> SessionFailure:
    """A failure whose transcript holds about ``transcript_bytes`` of ``text`` (UTF-8)."""
    line = text * (1000 // len(text.encode()))
    count = transcript_bytes // (len(line.encode()) + 5)
    transcript = tuple(TranscriptLine("S", line) for _ in range(count))
    return SessionFailure(session, Outcome.UNEXPECTED_REPLY, "ehlo", "250", "550", transcript)


# The sizes are counted in bytes of UTF-8, not characters: each case uses other characters.
@pytest.mark.parametrize(
    ("transcripts", "transcript_bytes", "not_kept", "text"),
    [(100, 150_000, 0, "x"), (30, 1_000_000, 7, "日本"), (3, 11 * 1024 * 1024, 0, "é")],
    ids=["many-medium-ascii", "some-large-and-not-kept-cjk", "each-over-the-limit-latin"],
)
def test_failures_log_stops_at_10_mib_and_says_what_it_left_out(
    tmp_path: Path, text: str, transcripts: int, transcript_bytes: int, not_kept: int
) -> None:
    stats = RunStats(["connect", "ehlo"], max_kept_failures=transcripts)
    for session in range(1, transcripts + not_kept + 1):
        stats.record_session(
            Outcome.UNEXPECTED_REPLY, None, big_failure(session, transcript_bytes, text)
        )
    write_results(tmp_path, summary_of(stats), stats)
    path = tmp_path / "failures.log"
    assert MAX_FAILURES_LOG_BYTES == 10 * 1024 * 1024
    assert path.stat().st_size <= MAX_FAILURES_LOG_BYTES
    log = path.read_text(encoding="utf-8")
    written = [int(n) for n in re.findall(r"^session (\d+): ", log, re.MULTILINE)]
    # Whole transcripts, the first ones, in order; then the line that says what is missing.
    assert written == list(range(1, len(written) + 1))
    assert log.count(f"  S: {text}") == sum(
        len(f.transcript) for f in stats.failures[: len(written)]
    )
    left_out = transcripts - len(written)
    assert left_out > 0
    transcripts_left_out = counted(left_out, "more kept transcript")
    notes = [f"(failures.log cut here at its 10 MiB limit: {transcripts_left_out} left out)"]
    if not_kept:
        notes.append(f"({counted(not_kept, 'more failed session')} not kept)")
    assert log.endswith("\n\n".join(notes) + "\n")
    assert log == "\n\n".join(notes) + "\n" or log.endswith("\n\n" + "\n\n".join(notes) + "\n")
    # The limit is used, not wasted: the next transcript would not have fitted.
    if written:
        assert path.stat().st_size > MAX_FAILURES_LOG_BYTES - transcript_bytes - 1024


def test_failures_log_under_the_limit_is_not_cut(tmp_path: Path) -> None:
    stats = RunStats(["connect", "ehlo"], max_kept_failures=100)
    for session in range(1, 101):
        stats.record_session(Outcome.UNEXPECTED_REPLY, None, big_failure(session, 90_000, "x"))
    write_results(tmp_path, summary_of(stats), stats)
    log = (tmp_path / "failures.log").read_text()
    assert len(re.findall(r"^session \d+: ", log, re.MULTILINE)) == 100
    assert "cut here" not in log


# -- terminal text ---------------------------------------------------------------------------


def report_of(stats: RunStats, **kwargs: Any) -> str:
    return format_report(summary_of(stats), stats, **kwargs)


def test_report_has_header_and_a_row_per_step() -> None:
    text = report_of(populated_stats())
    lines = text.splitlines()
    assert text.endswith("S: 550 5.1.1 no such user\n")
    assert lines[0] == "quickstart against 127.0.0.1:2525, 4.000 s; latencies in ms"
    assert lines[1].split() == ["step", "count", "failed", "p50", "p90", "p99", "p99.9", "max"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:9]}
    assert list(rows) == [*STEP_NAMES, "session"]
    assert rows["rcpt#2"] == ["17", "3", "0.500", "0.500", "0.500", "0.500", "0.500"]
    assert rows["mail"] == ["2", "2", "-", "-", "-", "-", "-"]
    assert rows["session"] == ["20", "6", "10.007", "10.007", "10.007", "10.007", "10.007"]


def test_report_numbers_are_right_aligned() -> None:
    lines = report_of(populated_stats()).splitlines()[1:9]
    assert len({len(line) for line in lines}) == 1  # every column ends at the same place


def test_report_lists_only_nonzero_failure_categories() -> None:
    text = report_of(populated_stats())
    assert (
        "sessions: 20 started, 14 passed, 6 failed\n"
        "failures: unexpected_reply 3, timeout 2, connect_error 1\n"
    ) in text
    for zero in ("connection_closed", "protocol_error", "interrupted"):
        assert zero not in text


def test_report_of_a_clean_run_names_no_failure_category() -> None:
    stats = RunStats(["connect"])
    stats.session_started()
    stats.record_session(Outcome.PASSED, 100)
    text = report_of(stats)
    assert "sessions: 1 started, 1 passed, 0 failed\n" in text
    assert "failures:" not in text
    assert "failed sessions" not in text


def test_report_throughput_line() -> None:
    line = "throughput: 5.0 sessions/s finished, 3.5 sessions/s passed, 3.5 messages/s\n"
    assert line in report_of(populated_stats())


@pytest.mark.parametrize(
    ("max_transcripts", "shown", "title"),
    [
        (3, [15, 16, 17], "failed sessions (first 3; 3 more not shown):"),
        (1, [15], "failed sessions (first 1; 5 more not shown):"),
        (10, [15, 16, 17, 18, 19, 20], "failed sessions:"),
        (0, [], None),
    ],
    ids=["default", "one", "all", "none"],
)
def test_report_shows_up_to_max_transcripts(
    max_transcripts: int, shown: list[int], title: str | None
) -> None:
    text = report_of(populated_stats(), max_transcripts=max_transcripts)
    assert [int(n) for n in re.findall(r"^session (\d+): ", text, re.MULTILINE)] == shown
    if title is None:
        assert "failed sessions" not in text
    else:
        assert f"\n{title}\n" in text
    if shown:
        assert "expected: reply 250\ngot: reply 550 no such user\n" in text
        assert "  C: RCPT TO:<nobody@example.test>\n" in text


def test_report_counts_failures_not_kept_as_not_shown() -> None:
    text = report_of(populated_stats(max_kept_failures=2), max_transcripts=1)
    assert "failed sessions (first 1; 5 more not shown):" in text


def test_report_is_plain_text_within_100_columns() -> None:
    stats = populated_stats()
    stats.record_session(
        Outcome.PROTOCOL_ERROR,
        None,
        SessionFailure(
            99, Outcome.PROTOCOL_ERROR, "ehlo", "", "", (TranscriptLine("S", "\x1b[31m"),)
        ),
    )
    stats.record_step("data", LATENCY_HIGHEST_US, failed=False)  # widest latency value
    for outcome in Outcome:
        stats.outcomes[outcome] = 10**9  # every category, with wide counts
    text = report_of(stats, max_transcripts=10)
    assert "\x1b" not in text
    assert max(len(line) for line in text.splitlines()) <= 100
    categories = re.search(r"^failures: (.*?)\n(?=throughput)", text, re.MULTILINE | re.DOTALL)
    assert categories is not None
    assert categories[1].split() == [
        *("unexpected_reply", "1000000000,", "timeout", "1000000000,"),
        *("connect_error", "1000000000,", "connection_closed", "1000000000,"),
        *("protocol_error", "1000000000,", "tls_error", "1000000000,"),
        *("interrupted", "1000000000"),
    ]


@pytest.mark.parametrize(
    ("dropped", "said"),
    [(1, "1 latency above 1 hour was"), (2, "2 latencies above 1 hour were")],
    ids=["1", "2"],
)
def test_report_marks_interrupted_runs_and_dropped_samples(dropped: int, said: str) -> None:
    stats = populated_stats()
    for _ in range(dropped):
        stats.record_step("data", LATENCY_HIGHEST_US + 1, failed=False)
    text = format_report(summary_of(stats, interrupted=True), stats)
    assert text.splitlines()[0].endswith(" (interrupted); latencies in ms")
    assert f"note: {said} counted as 1 hour\n" in text


def test_exit_status_is_the_command_lines() -> None:
    from smtpload.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

    passed = summary_of(RunStats(["connect"]))
    assert exit_status(passed) == EXIT_OK
    failed = summary_of(populated_stats())
    assert failed["sessions"]["failed"] > 0
    assert exit_status(failed) == EXIT_FAILED
    assert exit_status({**failed, "interrupted": True}) == EXIT_INTERRUPTED
