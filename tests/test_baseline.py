"""smtpload.regression.baseline: what observed sessions saw, per step, and the baseline file (pure).

Sessions are played by hand through the observe-mode engine, as tests/test_engine.py does; no
sockets. The builders here (``SCENARIO``, ``answers``, ``behaviour_of``) are shared with
tests/test_regression.py and tests/test_junit.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from smtpload.errors import LocalError
from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.wire import Reply, ReplyParser
from smtpload.regression.baseline import (
    BASELINE_FORMAT,
    BaselineError,
    Behaviour,
    BehaviourRecorder,
    load_baseline,
    save_baseline,
)
from smtpload.report.stats import LatencyHistogram, RunStats
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import StepKind

SCENARIO_YAML = """\
name: upgrade
steps:
  - greeting: 220
  - send: EHLO client.test
    expect: 250
  - send: MAIL FROM:<a@example.test>
    expect: 250
  - send: RCPT TO:<b@example.test>
    expect: 250
  - send: DATA
    expect: 354
  - data: "Subject: hi\\n\\nhello\\n"
    expect: 250
  - send: QUIT
    expect: 221
  - close: true
"""
SCENARIO = compile_scenario(parse_scenario(SCENARIO_YAML, "upgrade.yaml"))
STEPS = ("greeting", "ehlo", "mail", "rcpt", "data", "message", "quit", "close")

#: One answer per step that runs: reply bytes, or an event: "closed", "timeout",
#: "connection_error", "protocol_error".
Answer = bytes | str

EHLO_REPLY = b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-DSN\r\n250 8BITMIME\r\n"
USUAL: dict[str, Answer] = {
    "greeting": b"220 mx.test ESMTP Postfix\r\n",
    "ehlo": EHLO_REPLY,
    "mail": b"250 2.1.0 Ok\r\n",
    "rcpt": b"250 2.1.5 Ok\r\n",
    "data": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    "message": b"250 2.0.0 Ok: queued as 4F2B1160041\r\n",
    "quit": b"221 2.0.0 Bye\r\n",
    "close": "closed",
}


def answers(**changes: Answer) -> dict[str, Answer]:
    """The usual answers of a Postfix-like server, with some steps' answers changed."""
    assert set(changes) <= set(USUAL), changes
    return {**USUAL, **changes}


def reply(data: bytes) -> Reply:
    (parsed,) = ReplyParser().feed(data)
    return parsed


def observed_session(
    scenario: CompiledScenario, script: Mapping[str, Answer], session: int = 1
) -> SessionEngine:
    """Run one observe-mode session, answering each step the engine asks for from ``script``."""
    engine = SessionEngine(scenario, session, observe=True)
    engine.on_connected("192.0.2.1:25")
    while (step := engine.next_step()) is not None:
        engine.payload(step)
        answer = script[step.name]
        if answer == "closed":
            engine.on_closed(step)
        elif answer == "timeout":
            engine.on_timeout(step)
        elif answer == "connection_error":
            engine.on_connection_error(step, "Connection reset by peer (ECONNRESET)")
        elif answer == "protocol_error":
            engine.on_protocol_error(step, "not an SMTP reply line")
        else:
            assert isinstance(answer, bytes)
            engine.on_reply(step, reply(answer))
    return engine


def behaviour_of(
    scripts: Sequence[Mapping[str, Answer]],
    *,
    scenario: CompiledScenario = SCENARIO,
    latency_us: int | Mapping[str, int] = 100,
    target: str = "192.0.2.1:25",
) -> Behaviour:
    """The behaviour of one session per script; each step that ended is timed ``latency_us``."""
    recorder = BehaviourRecorder(scenario)
    stats = RunStats(["connect", *scenario.step_names])
    for session, script in enumerate(scripts, start=1):
        engine = observed_session(scenario, script, session)
        recorder.add_session(engine)
        for observation in engine.observations:
            name = observation.step.name
            if observation.event == "reply" or (
                observation.event == "closed" and observation.step.kind is StepKind.CLOSE
            ):
                value = latency_us if isinstance(latency_us, int) else latency_us.get(name, 100)
                stats.record_step(name, value, failed=observation.mismatch is not None)
    return recorder.behaviour(stats, scenario=scenario.name, target=target, sessions=len(scripts))


# -- recording ----------------------------------------------------------------------------------


def test_every_scenario_step_is_listed_in_order_even_unreached_ones() -> None:
    behaviour = behaviour_of([answers(ehlo="timeout")])
    assert [step.name for step in behaviour.steps] == list(STEPS)
    assert [step.sessions for step in behaviour.steps] == [1, 1, 0, 0, 0, 0, 0, 0]
    ehlo = behaviour.step("ehlo")
    assert ehlo is not None
    assert (dict(ehlo.events), dict(ehlo.codes), ehlo.capabilities) == ({"timeout": 1}, {}, None)


def test_codes_and_enhanced_codes_are_counted_per_session() -> None:
    refused = b"450 4.2.0 <b@example.test>: Recipient address rejected: greylisted\r\n"
    behaviour = behaviour_of([answers(), answers(), answers(rcpt=refused)])
    rcpt = behaviour.step("rcpt")
    assert rcpt is not None
    assert (rcpt.sessions, dict(rcpt.codes)) == (3, {"250": 2, "450": 1})
    assert dict(rcpt.enhanced) == {"2.1.5": 2, "4.2.0": 1}
    assert rcpt.unexpected == 1  # the 450 missed the step's expect: 250
    assert rcpt.examples == (
        "250 2.1.5 Ok",
        "450 4.2.0 <b@example.test>: Recipient address rejected: greylisted",
    )


def test_volatile_parts_of_the_text_are_normalized_and_raw_examples_kept() -> None:
    behaviour = behaviour_of(
        [
            answers(message=b"250 2.0.0 Ok: queued as 4F2B1160041\r\n"),
            answers(message=b"250 2.0.0 Ok: queued as A1A73160038\r\n"),
        ]
    )
    message = behaviour.step("message")
    assert message is not None
    assert message.text == ("2.0.0 Ok: queued as <id>",)
    assert message.examples == ("250 2.0.0 Ok: queued as 4F2B1160041",)


def test_a_queue_id_of_digits_only_reads_as_an_id_like_any_other() -> None:
    # Postfix's hex queue ids are all digits now and then; seen in a real run.
    behaviour = behaviour_of(
        [
            answers(message=b"250 2.0.0 Ok: queued as 04012345678\r\n"),
            answers(message=b"250 2.0.0 Ok: queued as 040C81620AE\r\n"),
        ]
    )
    message = behaviour.step("message")
    assert message is not None
    assert message.text == ("2.0.0 Ok: queued as <id>",)


def test_ehlo_keeps_capabilities_apart_from_its_text() -> None:
    behaviour = behaviour_of([answers()])
    ehlo = behaviour.step("ehlo")
    assert ehlo is not None
    assert ehlo.text == ("mx.test",)  # the keyword lines are capabilities, not text
    assert dict(ehlo.capabilities or {}) == {
        "8BITMIME": (),
        "DSN": (),
        "PIPELINING": (),
        "SIZE": ("10240000",),
    }
    greeting = behaviour.step("greeting")
    assert greeting is not None
    assert greeting.capabilities is None  # only steps that send EHLO or LHLO have them


def test_a_refused_ehlo_has_text_but_no_capabilities() -> None:
    behaviour = behaviour_of([answers(ehlo=b"502 5.5.2 Error: command not recognized\r\n")])
    ehlo = behaviour.step("ehlo")
    assert ehlo is not None
    assert (ehlo.text, ehlo.capabilities) == (("5.5.2 Error: command not recognized",), None)


def test_a_refused_data_skips_the_message_and_the_session_goes_on() -> None:
    behaviour = behaviour_of([answers(data=b"554 5.5.1 Error: no valid recipients\r\n")])
    message, quit_ = behaviour.step("message"), behaviour.step("quit")
    assert message is not None
    assert quit_ is not None
    assert (dict(message.events), dict(message.codes)) == ({"skipped": 1}, {})
    assert dict(quit_.codes) == {"221": 1}


def test_a_failed_connect_counts_at_the_first_step() -> None:
    recorder = BehaviourRecorder(SCENARIO)
    engine = SessionEngine(SCENARIO, 1, observe=True)
    engine.on_connect_error("Connection refused (ECONNREFUSED)")
    assert engine.outcome is Outcome.CONNECT_ERROR
    recorder.add_session(engine)
    behaviour = recorder.behaviour(
        RunStats(["connect", *STEPS]), scenario="upgrade", target="x:25", sessions=1
    )
    assert [(s.sessions, dict(s.events)) for s in behaviour.steps[:2]] == [
        (1, {"connect_error": 1}),
        (0, {}),
    ]


def test_latencies_come_from_the_run_stats_histograms() -> None:
    behaviour = behaviour_of([answers(), answers()], latency_us={"mail": 1500})
    mail = behaviour.step("mail")
    assert mail is not None
    assert (mail.latency.count, mail.latency.p50_ms, mail.latency.p99_ms) == (2, 1.5, 1.5)
    assert mail.latency.histogram is not None
    assert LatencyHistogram.decode(mail.latency.histogram).count == 2
    close = behaviour_of([answers(quit="timeout")]).step("close")
    assert close is not None
    assert (close.latency.count, close.latency.p50_ms, close.latency.histogram) == (
        0,
        None,
        None,
    )


# -- the baseline file --------------------------------------------------------------------------


def varied_behaviour() -> Behaviour:
    return behaviour_of(
        [
            answers(),
            answers(rcpt=b"450 4.2.0 greylisted\r\n"),
            answers(data=b"554 5.5.1 Error: no valid recipients\r\n"),
            answers(quit="timeout"),
        ],
        latency_us={"greeting": 2500, "mail": 40},
    )


def test_json_round_trip_gives_the_same_behaviour() -> None:
    behaviour = varied_behaviour()
    data = json.loads(json.dumps(behaviour.to_json()))
    assert data["format"] == BASELINE_FORMAT
    assert Behaviour.from_json(data, "baseline.json") == behaviour


def test_baseline_file_round_trip(tmp_path: Path) -> None:
    behaviour = varied_behaviour()
    path = tmp_path / "baseline.json"
    save_baseline(behaviour, path)
    assert load_baseline(path) == behaviour
    text = path.read_text(encoding="utf-8")
    # Sorted keys, one per line: a changed behaviour is a readable diff in version control.
    assert text.startswith('{\n  "clock": "loop",\n  "format": "smtpload-baseline/2",\n')
    assert text.endswith("}\n")
    assert not (tmp_path / "baseline.json.partial").exists()


def as_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """A baseline's JSON as format /1 wrote it, for a behaviour whose steps each ran once per
    session (as every scenario did then): no ``replies``, which equalled ``sessions``."""
    old = json.loads(json.dumps(data))
    old["format"] = "smtpload-baseline/1"
    for step in old["steps"]:
        assert step.pop("replies") == step["sessions"], step["name"]
    return dict(old)


def valid_json() -> dict[str, object]:
    return varied_behaviour().to_json()


def damaged(change: str) -> object:
    data = valid_json()
    steps = data["steps"]
    assert isinstance(steps, list)
    if change == "format":
        data["format"] = "smtpload-baseline/3"
    elif change == "no-format":
        del data["format"]
    elif change == "steps":
        data["steps"] = {"greeting": {}}
    elif change == "count":
        steps[0]["codes"] = {"220": "ten"}
    elif change == "histogram":
        steps[0]["latency"]["histogram"] = "HISTFAAAnot-a-blob"
    elif change == "array":
        return [data]
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "format",
            "baseline format 'smtpload-baseline/3' is not one this smtpload reads "
            "('smtpload-baseline/1' and 'smtpload-baseline/2';",
        ),
        ("no-format", "not an smtpload baseline"),
        ("steps", "steps: expected a JSON array"),
        ("count", "steps[0].codes.220: expected a whole number >= 0"),
        ("histogram", "steps[0].latency.histogram: not an HdrHistogram V2 blob"),
        ("array", "the file: expected a JSON object"),
    ],
    ids=["other-format", "no-format", "steps-not-array", "count-not-int", "bad-histogram", "array"],
)
def test_a_damaged_baseline_is_refused_naming_the_file_and_the_field(
    tmp_path: Path, change: str, message: str
) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(damaged(change)), encoding="utf-8")
    with pytest.raises(BaselineError) as caught:
        load_baseline(path)
    assert isinstance(caught.value, LocalError)  # shown to the user, exit status 2
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "smtpload record" in str(caught.value)  # what to do next


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such baseline file"), ("{not json", "not valid JSON")],
    ids=["missing", "not-json"],
)
def test_an_unreadable_baseline_is_refused(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(BaselineError, match=message) as caught:
        load_baseline(path)
    assert str(caught.value).startswith(str(path))


# -- the clock ----------------------------------------------------------------------------------


@pytest.mark.parametrize("clock", ["kernel", "loop"])
def test_a_baseline_keeps_the_clock_its_latencies_were_timed_on(tmp_path: Path, clock: str) -> None:
    stats = RunStats(["connect", *STEPS])
    if clock == "kernel":
        stats.use_kernel_clock(["greeting", "ehlo"])  # as the runner marks reply-timed steps
    behaviour = BehaviourRecorder(SCENARIO).behaviour(
        stats, scenario="upgrade", target="x:25", sessions=0
    )
    assert behaviour.clock == stats.clock == clock
    path = tmp_path / "baseline.json"
    save_baseline(behaviour, path)
    assert json.loads(path.read_text(encoding="utf-8"))["clock"] == clock
    assert load_baseline(path).clock == clock


@pytest.mark.parametrize("clock", ["kernel", "loop"])
def test_a_baseline_without_a_clock_was_loop_timed(tmp_path: Path, clock: str) -> None:
    # Every baseline written before the field existed: format /1, no "clock", loop-timed.
    data = as_format_1(replace(varied_behaviour(), clock=clock).to_json())
    del data["clock"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    loaded = load_baseline(path)
    assert loaded.clock == "loop"
    assert loaded == replace(varied_behaviour(), clock="loop")


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("wire", "'wire' is not a clock"),
        ("Kernel", "'Kernel' is not a clock"),  # the values are exact, as the writer spells them
        (" loop", "' loop' is not a clock"),
        ("", "'' is not a clock"),
        ("x" * 500, "'xxxx"),  # cut, as every value a message repeats
        (None, "expected"),
        (1, "expected"),
        (True, "expected"),
        (["kernel"], "expected"),
        ({"steps": "kernel"}, "expected"),
    ],
    ids=["other", "case", "space", "empty", "long", "null", "number", "bool", "list", "object"],
)
def test_a_clock_that_no_recording_writes_is_refused(
    tmp_path: Path, value: object, said: str
) -> None:
    data = valid_json()
    data["clock"] = value
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BaselineError) as caught:
        load_baseline(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: clock: {said}"), message
    assert 'expected "kernel" or "loop"' in message
    assert "smtpload record" in message  # what to do next
    assert len(message) < 400
