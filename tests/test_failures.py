"""Every failure category, each caused by a real server misbehaving on a real socket.

The run goes on through failures: every session started is counted under exactly one outcome,
the other sessions are unharmed, and the failure names what happened.
"""

from __future__ import annotations

import functools
import socket
from pathlib import Path

import pytest
import trio

from smtpload.net.client import resolve_target
from smtpload.net.runner import RunSettings, run_sessions
from smtpload.net.sink import serve_sink
from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.protocol.outcome import Outcome
from smtpload.report.stats import RunStats
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.model import Expectation, Scenario, Step, StepKind
from tests.misbehaving import BEHAVIOURS

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def quickstart(timeout_s: float = 5.0) -> CompiledScenario:
    return compile_scenario(load_scenario(SCENARIOS / "quickstart.yaml"), timeout_s=timeout_s)


async def start_server(nursery: trio.Nursery, behaviour: str) -> int:
    handler = BEHAVIOURS[behaviour]
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def run(
    port: int, scenario: CompiledScenario, sessions: int = 3, concurrency: int = 3
) -> RunStats:
    stats = RunStats(["connect", *scenario.step_names])
    target = await resolve_target("127.0.0.1", port)
    settings = RunSettings(
        sessions=sessions, concurrency=concurrency, run_id="test", handle_signals=False
    )
    # A bound far above any step timeout here: a regression that hangs fails instead.
    with trio.fail_after(60):
        await run_sessions(scenario, target, settings, stats)
    return stats


def assert_accounted(stats: RunStats, sessions: int) -> None:
    assert stats.started == sessions
    assert sum(stats.outcomes.values()) == sessions


@pytest.mark.parametrize(
    ("behaviour", "outcome", "step", "got"),
    [
        ("garbage", Outcome.PROTOCOL_ERROR, "greeting", "not an SMTP reply line: HTTP/1.1 400"),
        ("reset", Outcome.CONNECTION_CLOSED, "ehlo", "ECONNRESET"),
        ("stall", Outcome.TIMEOUT, "ehlo", "nothing within 0.5 s"),
        ("huge-line", Outcome.PROTOCOL_ERROR, "greeting", "longer than 65536 bytes"),
        ("close-mid-reply", Outcome.CONNECTION_CLOSED, "ehlo", "closed the connection"),
        ("code-change", Outcome.PROTOCOL_ERROR, "ehlo", "reply code changed from 250 to 251"),
        ("no-greeting", Outcome.CONNECTION_CLOSED, "greeting", "closed the connection"),
    ],
)
async def test_misbehaving_server_is_counted_under_its_category(
    nursery: trio.Nursery, behaviour: str, outcome: Outcome, step: str, got: str
) -> None:
    port = await start_server(nursery, behaviour)
    stats = await run(port, quickstart(timeout_s=0.5))
    assert_accounted(stats, 3)
    assert stats.outcomes[outcome] == 3
    assert stats.steps[step].failed == 3
    assert stats.steps["connect"].failed == 0
    failure = stats.failures[0]
    assert failure.outcome is outcome
    assert failure.step == step
    assert got in failure.got or any(got in line.text for line in failure.transcript)


async def test_a_server_that_stops_reading_times_out_the_send(nursery: trio.Nursery) -> None:
    # 64 MiB cannot fit in loopback socket buffers, so the send itself must hit the timeout.
    message = Step(StepKind.DATA, "message", text="Subject: big\n\n", data_size=64 * 1024 * 1024)
    scenario = compile_scenario(
        Scenario(
            path="big.yaml",
            name="big",
            description="",
            target=None,
            timeout_s=0.5,
            variables=(),
            steps=(
                Step(StepKind.GREETING, "greeting"),
                Step(
                    StepKind.SEND, "data", text="DATA", expect=Expectation(frozenset({354}), "354")
                ),
                message,
            ),
        )
    )
    port = await start_server(nursery, "stops-reading")
    stats = await run(port, scenario, sessions=1, concurrency=1)
    assert_accounted(stats, 1)
    assert stats.outcomes[Outcome.TIMEOUT] == 1
    assert stats.steps["message"].failed == 1
    assert stats.failures[0].step == "message"


async def test_connect_error_when_nothing_listens() -> None:
    # A port that was free a moment ago: bind, read it, close.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stats = await run(port, quickstart())
    assert_accounted(stats, 3)
    assert stats.outcomes[Outcome.CONNECT_ERROR] == 3
    assert stats.steps["connect"].failed == 3
    assert "ECONNREFUSED" in stats.failures[0].got


async def test_failing_sessions_do_not_disturb_passing_ones(nursery: trio.Nursery) -> None:
    # Half the sessions go to a server that stalls, half to the sink, in one run each, at once.
    stall_port = await start_server(nursery, "stall")
    sink = await nursery.start(serve_sink, "127.0.0.1", 0)
    scenario = quickstart(timeout_s=0.5)
    results: dict[str, RunStats] = {}

    async def one(name: str, port: int) -> None:
        results[name] = await run(port, scenario, sessions=20, concurrency=10)

    async with trio.open_nursery() as both:
        both.start_soon(one, "stall", stall_port)
        both.start_soon(one, "sink", sink.port)
    assert results["stall"].outcomes[Outcome.TIMEOUT] == 20
    assert results["sink"].outcomes[Outcome.PASSED] == 20
    assert results["sink"].messages == 20
