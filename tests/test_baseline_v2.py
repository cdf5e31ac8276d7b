"""Baseline format ``smtpload-baseline/2``: a step's counts are of attempts, not sessions.

One session can run a step several times (a ``repeat:`` block, an ``rcpt`` step's recipients,
a bdat step's chunks), so a step row counts ``replies`` (one per reply or event) next to the
``sessions`` that reached it. The pure tests hand-build the observations a session reports
(the engine hands out repeated steps elsewhere; what the baseline sees of them is a list of
Observations, several of one step); the last ones record and compare against real servers,
and against format /1 files that the previous smtpload wrote (tests/data/baseline-v1/).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.protocol.engine import Observation, SessionEngine
from smtpload.regression.baseline import (
    BASELINE_FORMAT,
    READ_FORMATS,
    BaselineError,
    Behaviour,
    BehaviourRecorder,
    StepLatency,
    load_baseline,
    save_baseline,
)
from smtpload.regression.compare import REGRESSION, compare, format_comparison
from smtpload.regression.junit import junit_xml
from smtpload.report.stats import LatencyHistogram, RunStats
from smtpload.scenario.loader import parse_scenario
from tests.cli import smtpload
from tests.peers import SmtpPeer
from tests.test_baseline import SCENARIO, as_format_1, reply, varied_behaviour

DATA = Path(__file__).resolve().parent / "data" / "baseline-v1"

#: One run of a step: reply bytes, or an event name ("timeout", "closed", ...).
Run = tuple[str, bytes | str]

OK = b"250 2.1.5 Ok\r\n"
GREYLISTED = b"451 4.7.1 Try again later\r\n"


def session_of(number: int, runs: Sequence[Run], scenario: CompiledScenario) -> SessionEngine:
    """A finished observe-mode session that reported ``runs``, in order, as its observations."""
    engine = SessionEngine(scenario, number, observe=True)
    steps = {step.name: step for step in scenario.steps}
    for name, answer in runs:
        if isinstance(answer, bytes):
            got = reply(answer)
            mismatch = None if got.code < 400 else f"reply code {got.code} is not 250"
            engine.observations.append(Observation(steps[name], "reply", got, mismatch))
        else:
            engine.observations.append(Observation(steps[name], answer, None, "no reply"))
    return engine


def recorded(sessions: Sequence[Sequence[Run]], scenario: CompiledScenario = SCENARIO) -> Behaviour:
    """The behaviour of these sessions; every reply is timed (1 ms), as the client times it."""
    recorder = BehaviourRecorder(scenario)
    stats = RunStats(["connect", *scenario.step_names])
    for number, runs in enumerate(sessions, start=1):
        engine = session_of(number, runs, scenario)
        recorder.add_session(engine)
        for observation in engine.observations:
            if observation.reply is not None:
                stats.record_step(observation.step.name, 1000, failed=False)
    return recorder.behaviour(stats, scenario=scenario.name, target="x:25", sessions=len(sessions))


def transactions(*rcpts: bytes | str) -> list[Run]:
    """A session of the upgrade scenario whose rcpt step ran once per answer in ``rcpts``."""
    return [
        ("greeting", b"220 mx.test ESMTP\r\n"),
        ("mail", b"250 2.1.0 Ok\r\n"),
        *(("rcpt", answer) for answer in rcpts),
        ("quit", b"221 2.0.0 Bye\r\n"),
    ]


def step_of(behaviour: Behaviour, name: str) -> Any:
    found = behaviour.step(name)
    assert found is not None, name
    return found


# -- recording attempts -------------------------------------------------------------------------


def test_a_step_run_three_times_and_once_is_four_replies_from_two_sessions(
    tmp_path: Path,
) -> None:
    behaviour = recorded([transactions(OK, OK, GREYLISTED), transactions(OK)])
    rcpt = step_of(behaviour, "rcpt")
    assert (rcpt.sessions, rcpt.replies) == (2, 4)
    assert dict(rcpt.codes) == {"250": 3, "451": 1}
    assert dict(rcpt.enhanced) == {"2.1.5": 3, "4.7.1": 1}
    assert rcpt.unexpected == 1
    # The histogram holds every timed reply, 4, more than the file's 2 sessions: it still loads.
    assert rcpt.latency.count == 4
    assert rcpt.latency.histogram is not None
    assert LatencyHistogram.decode(rcpt.latency.histogram).count == 4
    mail = step_of(behaviour, "mail")
    assert (mail.sessions, mail.replies) == (2, 2)
    path = tmp_path / "baseline.json"
    save_baseline(behaviour, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "smtpload-baseline/2"
    (row,) = (s for s in data["steps"] if s["name"] == "rcpt")
    assert (row["sessions"], row["replies"], row["codes"]) == (2, 4, {"250": 3, "451": 1})
    assert load_baseline(path) == behaviour


def test_events_count_attempts_too() -> None:
    behaviour = recorded([transactions(OK, "timeout", OK, "timeout"), transactions("timeout")])
    rcpt = step_of(behaviour, "rcpt")
    assert (rcpt.sessions, rcpt.replies) == (2, 5)
    assert (dict(rcpt.codes), dict(rcpt.events)) == ({"250": 2}, {"timeout": 3})
    assert rcpt.unexpected == 3
    assert rcpt.latency.count == 2  # timeouts have no latency


def test_bdat_chunks_of_one_session_are_one_session_of_several_replies() -> None:
    # A part row the engine already reports several times a session: NAME/chunk.
    scenario = compile_scenario(
        parse_scenario(
            "name: chunks\nsteps:\n  - greeting: 220\n  - send: EHLO c.test\n"
            "  - send: MAIL FROM:<a@c.test>\n  - send: RCPT TO:<b@c.test>\n"
            "  - bdat: {size: 40, chunk_size: 10}\n",
            "chunks.yaml",
        )
    )
    chunk = next(s.chunk_step for s in scenario.steps if s.chunk_step is not None)
    engine = SessionEngine(scenario, 1, observe=True)
    engine.observations.extend(
        Observation(chunk, "reply", reply(b"250 2.0.0 Ok: 10 octets\r\n")) for _ in range(3)
    )
    recorder = BehaviourRecorder(scenario)
    recorder.add_session(engine)
    stats = RunStats(["connect", *scenario.step_names])
    behaviour = recorder.behaviour(stats, scenario="chunks", target="x:25", sessions=1)
    row = step_of(behaviour, chunk.name)
    assert (row.sessions, row.replies, dict(row.codes)) == (1, 3, {"250": 3})


# -- reading format /1 --------------------------------------------------------------------------


def test_a_format_1_file_reads_as_the_same_behaviour(tmp_path: Path) -> None:
    behaviour = varied_behaviour()
    path = tmp_path / "old.json"
    path.write_text(json.dumps(as_format_1(behaviour.to_json())), encoding="utf-8")
    old = load_baseline(path)
    assert old == behaviour
    comparison = compare(old, behaviour, strict=True, max_latency_regression_pct=10)
    assert comparison.differences == ()


def test_a_format_1_part_row_reads_its_sessions_as_replies() -> None:
    old = load_baseline(DATA / "bdat.json")
    assert old.sessions == 4
    chunk = step_of(old, "message/chunk")
    # /1 counted each of 4 sessions x 3 chunks in "sessions"; at most 4 sessions sent them.
    assert (chunk.sessions, chunk.replies, dict(chunk.codes)) == (4, 12, {"250": 12})
    assert chunk.latency.count == 12
    assert all(step.replies == step.sessions == 4 for step in old.steps if "/" not in step.name)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("codes", {"250": 13}, "13 is more than the 12 sessions"),
        ("events", {"timeout": 1}, "count more than its 12 sessions"),
        ("enhanced", {"2.0.0": 13}, "more than the 12 replies"),
        ("replies", "12", None),  # unknown to /1: ignored, as /1 readers did
    ],
    ids=["code-over-step", "codes-and-events", "enhanced-over", "no-replies-in-1"],
)
def test_a_format_1_file_keeps_its_own_checks(
    tmp_path: Path, field: str, value: object, message: str | None
) -> None:
    data = json.loads((DATA / "bdat.json").read_text(encoding="utf-8"))
    (row,) = (s for s in data["steps"] if s["name"] == "message/chunk")
    row[field] = value
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    if message is None:
        load_baseline(path)
        return
    with pytest.raises(BaselineError, match=message):
        load_baseline(path)


@pytest.mark.parametrize(
    "file_format",
    ["smtpload-baseline/3", "smtpload-baseline/0", "smtpload-baseline/2.0", "smtpload-baseline/"],
)
def test_another_format_is_refused_naming_the_formats_read(
    tmp_path: Path, file_format: str
) -> None:
    data = varied_behaviour().to_json()
    data["format"] = file_format
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BaselineError) as caught:
        load_baseline(path)
    said = str(caught.value)
    assert said.startswith(f"{path}: baseline format {file_format!r} is not one this smtpload")
    assert all(repr(known) in said for known in READ_FORMATS)
    assert "smtpload record" in said


# -- format /2 files no recording can produce ---------------------------------------------------


def repeated_json() -> dict[str, Any]:
    """A /2 file whose rcpt row is 2 sessions and 4 replies (3 x 250, 1 x 451)."""
    data = recorded([transactions(OK, OK, GREYLISTED), transactions(OK)]).to_json()
    return dict(json.loads(json.dumps(data)))


def rcpt_row(data: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = next(s for s in data["steps"] if s["name"] == "rcpt")
    return row


def refused(tmp_path: Path, data: object) -> str:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BaselineError) as caught:
        load_baseline(path)
    said = str(caught.value)
    assert said.startswith(f"{path}: ")
    assert "smtpload record" in said
    return said


STEP_KEYS = sorted(rcpt_row(repeated_json()))
LATENCY_KEYS = sorted(rcpt_row(repeated_json())["latency"])


def test_the_keys_tested_missing_are_every_key_written() -> None:
    assert STEP_KEYS == [
        "capabilities", "codes", "enhanced", "events", "examples", "latency", "name",
        "replies", "sessions", "text", "unexpected",
    ]  # fmt: skip
    assert LATENCY_KEYS == ["count", "histogram", "p50_ms", "p99_ms"]


@pytest.mark.parametrize("key", STEP_KEYS)
def test_a_step_row_missing_any_key_is_refused(tmp_path: Path, key: str) -> None:
    data = repeated_json()
    del rcpt_row(data)[key]
    assert f"steps[3].{key}: missing" in refused(tmp_path, data)


@pytest.mark.parametrize("key", LATENCY_KEYS)
def test_a_latency_missing_any_key_is_refused(tmp_path: Path, key: str) -> None:
    data = repeated_json()
    del rcpt_row(data)["latency"][key]
    assert f"steps[3].latency.{key}: missing" in refused(tmp_path, data)


@pytest.mark.parametrize("key", ["clock", "format", "scenario", "sessions", "steps", "target"])
def test_a_file_missing_any_key_is_refused(tmp_path: Path, key: str) -> None:
    # smtpload_version is for people reading the file; nothing reads it.
    data = repeated_json()
    del data[key]
    said = refused(tmp_path, data)
    assert key in said if key != "format" else "not an smtpload baseline" in said


WRONG_TYPES: list[tuple[str, object, str]] = [
    ("replies", "4", "replies: expected a whole number >= 0"),
    ("replies", 4.0, "replies: expected a whole number >= 0"),
    ("replies", True, "replies: expected a whole number >= 0"),
    ("replies", None, "replies: expected a whole number >= 0"),
    ("replies", -4, "replies: expected a whole number >= 0"),
    ("sessions", [2], "sessions: expected a whole number >= 0"),
    ("name", 3, "name: expected a string"),
    ("codes", [250], "codes: expected a JSON object"),
    ("events", "timeout", "events: expected a JSON object"),
    ("enhanced", None, "enhanced: expected a JSON object"),
    ("unexpected", 1.5, "unexpected: expected a whole number >= 0"),
    ("text", "Ok", "text: expected a JSON array"),
    ("examples", {}, "examples: expected a JSON array"),
    ("capabilities", ["SIZE"], "capabilities: expected a JSON object"),
    ("latency", 4, "latency: expected a JSON object"),
]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    WRONG_TYPES,
    ids=[f"{key}-{json.dumps(value)}" for key, value, _ in WRONG_TYPES],
)
def test_a_step_row_with_a_wrong_type_is_refused(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    data = repeated_json()
    rcpt_row(data)[key] = value
    assert message in refused(tmp_path, data)


Damage = Callable[[dict[str, Any]], None]


def set_row(**fields: object) -> Damage:
    def damage(row: dict[str, Any]) -> None:
        row.update(fields)

    return damage


def set_latency_samples(count: int) -> Damage:
    def damage(row: dict[str, Any]) -> None:
        row["latency"] = timed(count)  # a histogram that holds them: the count is the damage

    return damage


# The rcpt row is sessions 2, replies 4: codes {"250": 3, "451": 1}, enhanced alike; the file's
# sessions are 2. Each damage makes counts that no recording gives.
COUNTS: dict[str, tuple[Damage, str]] = {
    "code-over-replies": (set_row(codes={"250": 5}), "codes.250: 5 is more than the 4 replies"),
    "codes-sum-over-replies": (set_row(codes={"250": 3, "451": 2}), "add up to more than the 4"),
    "event-over-replies": (set_row(events={"timeout": 5}), "5 is more than the 4 replies"),
    "codes-and-events-over": (set_row(events={"timeout": 1}), "count more than its 4 replies"),
    "codes-and-events-under": (set_row(codes={"250": 3}), "count fewer than its 4 replies (3)"),
    "enhanced-over-coded": (
        set_row(codes={"250": 3}, events={"timeout": 1}),
        "the counts add up to more than the 3 replies with a code",
    ),
    "unexpected-over-replies": (set_row(unexpected=5), "5 is more than the 4 replies"),
    "latency-over-replies": (
        set_latency_samples(5),
        "latency.count: 5 is more than the 4 replies the step got;",
    ),
    "replies-below-sessions": (set_row(replies=1), "1 is fewer than the step's 2 sessions"),
    "replies-zero-with-sessions": (set_row(replies=0), "0 is fewer than the step's 2 sessions"),
    "sessions-over-file": (set_row(sessions=3, replies=5), "3 is more than the 2 sessions"),
    # A part row too: in /2 its sessions are sessions (its replies may be more).
    "part-row-sessions-over-file": (
        set_row(name="message/chunk", sessions=3),
        "3 is more than the 2 sessions",
    ),
}


@pytest.mark.parametrize("case", list(COUNTS))
def test_counts_no_recording_gives_are_refused(tmp_path: Path, case: str) -> None:
    damage, message = COUNTS[case]
    data = repeated_json()
    damage(rcpt_row(data))
    assert message in refused(tmp_path, data)


def test_a_part_row_may_have_more_replies_than_the_file_has_sessions(tmp_path: Path) -> None:
    data = repeated_json()
    rcpt_row(data)["name"] = "message/chunk"  # 4 replies from the file's 2 sessions
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert step_of(load_baseline(path), "message/chunk").replies == 4


def timed(samples: int) -> dict[str, Any]:
    """A latency object of ``samples`` timed replies, as a file holds it."""
    histogram = LatencyHistogram()
    for _ in range(samples):
        histogram.record_us(1000)
    latency = StepLatency.of(histogram)
    return {
        "count": latency.count,
        "p50_ms": latency.p50_ms,
        "p99_ms": latency.p99_ms,
        "histogram": latency.histogram,
    }


def lmtp_like_json(message_samples: int) -> dict[str, Any]:
    """The mail row as an LMTP message's: no reply of its own, its 4 replies in ``mail/rcpt``
    (the rcpt row renamed), and ``message_samples`` latencies timed to the last of them."""
    data = repeated_json()
    mail = next(s for s in data["steps"] if s["name"] == "mail")
    mail.update(sessions=0, replies=0, codes={}, enhanced={}, text=[], examples=[])
    mail["latency"] = timed(message_samples)
    rcpt_row(data)["name"] = "mail/rcpt"
    return data


def test_a_step_timed_to_its_part_rows_replies_may_have_latencies_without_replies(
    tmp_path: Path,
) -> None:
    # What `record` writes for LMTP (tests/test_lmtp.py runs it against Dovecot).
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(lmtp_like_json(4)), encoding="utf-8")
    assert step_of(load_baseline(path), "mail").latency.count == 4


def test_latencies_above_the_part_rows_replies_are_refused(tmp_path: Path) -> None:
    said = refused(tmp_path, lmtp_like_json(5))
    assert "steps[2].latency.count: 5 is more than the 4 replies the step got with its part" in said


def test_latencies_of_a_step_without_part_rows_are_at_most_its_replies(tmp_path: Path) -> None:
    data = lmtp_like_json(1)
    part = next(s for s in data["steps"] if s["name"] == "mail/rcpt")
    part["name"] = "rcpt"  # no longer mail's part: mail's 0 replies time nothing
    assert "steps[2].latency.count: 1 is more than the 0 replies the step got;" in refused(
        tmp_path, data
    )


# -- compare: shares of attempts ----------------------------------------------------------------


def judged(baseline: Behaviour, current: Behaviour) -> list[tuple[str, str, str]]:
    comparison = compare(baseline, current, strict=True, max_latency_regression_pct=None)
    return [(d.step, d.kind, d.severity) for d in comparison.differences]


def test_other_attempt_counts_of_the_same_server_are_no_difference() -> None:
    # A ranged repeat draws another count per session: 4 attempts from 2 sessions, 9 from 3.
    baseline = recorded([transactions(OK, OK, OK), transactions(OK)])
    current = recorded([transactions(*[OK] * 5), transactions(OK, OK), transactions(OK, OK)])
    assert judged(baseline, current) == []
    assert judged(current, baseline) == []


def test_a_code_whose_share_was_zero_is_a_difference_however_many_attempts() -> None:
    baseline = recorded([transactions(OK, OK, OK), transactions(OK)])
    current = recorded([transactions(*[OK] * 6), transactions(OK, GREYLISTED)])
    assert judged(baseline, current) == [("rcpt", "code", REGRESSION)]
    assert judged(current, baseline) == [("rcpt", "code", REGRESSION)]
    comparison = compare(baseline, current, strict=False, max_latency_regression_pct=None)
    report = format_comparison(comparison)
    assert "reply code changed: 250 -> 250, 451" in report
    # Attempts are shown where sessions ran the step more than once, with each code's share.
    assert "baseline: 2 sessions, 4 replies: 250 x4 (100%); e.g. 250 2.1.5 Ok" in report
    assert "now:      2 sessions, 8 replies: 250 x7 (88%), 451 x1 (12%);" in report
    xml = junit_xml(comparison, suite_name="smtpload compare upgrade")
    assert "2 sessions, 8 replies: 250 x7 (88%), 451 x1 (12%)" in xml


def test_an_event_among_the_attempts_is_a_difference() -> None:
    baseline = recorded([transactions(OK, OK), transactions(OK)])
    current = recorded([transactions(OK, OK, "timeout"), transactions(OK)])
    assert judged(baseline, current) == [("rcpt", "event", REGRESSION)]


def test_the_size_of_a_share_is_shown_not_judged_as_the_sessions_counts_were() -> None:
    # 451 in 1 of 4 attempts, then in 3 of 4: both codes seen on both sides, as with sessions
    # (a 451 one session in a hundred gets is caught by appearing, not by its count).
    baseline = recorded([transactions(OK, OK, GREYLISTED), transactions(OK)])
    current = recorded([transactions(GREYLISTED, OK, GREYLISTED), transactions(GREYLISTED)])
    assert judged(baseline, current) == []


def test_a_format_1_baseline_compares_with_a_format_2_recording_of_attempts(
    tmp_path: Path,
) -> None:
    once = recorded([transactions(OK), transactions(OK)])
    path = tmp_path / "old.json"
    path.write_text(json.dumps(as_format_1(once.to_json())), encoding="utf-8")
    repeated = recorded([transactions(OK, OK, OK), transactions(OK)])
    assert judged(load_baseline(path), repeated) == []


# -- real servers -------------------------------------------------------------------------------

BDAT = DATA / "bdat.yaml"  # size 4000 in chunks of 1000: 3 chunk replies, then the LAST one


def test_record_and_compare_a_chunked_scenario_against_postfix(
    tmp_path: Path, postfix_server: SmtpPeer
) -> None:
    target = f"{postfix_server.host}:{postfix_server.port}"
    baseline = tmp_path / "baseline.json"
    recording = smtpload(
        "record", str(BDAT), "--target", target, "--sessions", "3", "-o", str(baseline),
        cwd=tmp_path,
    )  # fmt: skip
    assert recording.returncode == 0, recording.stdout + recording.stderr
    data = json.loads(baseline.read_text(encoding="utf-8"))
    assert data["format"] == BASELINE_FORMAT == "smtpload-baseline/2"
    rows = {row["name"]: row for row in data["steps"]}
    chunk = rows["message/chunk"]
    assert (chunk["sessions"], chunk["replies"], chunk["codes"]) == (3, 9, {"250": 9})
    assert chunk["latency"]["count"] == 9
    assert (rows["message"]["sessions"], rows["message"]["replies"]) == (3, 3)
    # Another number of sessions, so other attempt counts: the same server, no difference.
    comparing = smtpload(
        "compare", str(BDAT), "--target", target, "--sessions", "2", "--baseline", str(baseline),
        cwd=tmp_path,
    )  # fmt: skip
    assert comparing.returncode == 0, comparing.stdout + comparing.stderr
    assert "no differences in 7 steps" in comparing.stdout


def test_a_format_1_baseline_of_postfix_compares_equal_today(
    tmp_path: Path, postfix_server: SmtpPeer
) -> None:
    target = f"{postfix_server.host}:{postfix_server.port}"
    result = smtpload(
        "compare", str(BDAT), "--target", target, "--sessions", "2",
        "--baseline", str(DATA / "bdat.json"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no differences in 7 steps" in result.stdout


def test_a_format_1_baseline_of_the_sink_compares_equal_today(tmp_path: Path) -> None:
    result = smtpload(
        "compare", "quickstart", "--sessions", "2", "--baseline", str(DATA / "quickstart.json"),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no differences in 8 steps" in result.stdout
