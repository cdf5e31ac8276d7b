"""The kernel's receive times, over real loopback sockets: what they mark, and that step
latencies timed by them leave out the generator's own delays while loop-timed ones do not.
"""

from __future__ import annotations

import os
import socket
import time

import trio
import trio.lowlevel

from smtpload.net.client import resolve_target
from smtpload.net.runner import RunSettings, run_sessions
from smtpload.net.wire_clock import (
    RECEIVE_TIME_SPACE,
    SWITCH_ON_WAIT_S,
    ReceiveTimesKept,
    enable_receive_times,
    handshake_end_ns,
    receive_time_ns,
)
from smtpload.protocol.compiler import compile_scenario
from smtpload.report.results import build_summary
from smtpload.report.stats import RunStats
from smtpload.scenario.bundled import scenario_path
from smtpload.scenario.loader import load_scenario
from tests.peers import SmtpPeer


def connected_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def test_this_platform_has_receive_times() -> None:
    # Linux does; where this fails, every run is on the loop clock and says so.
    with ReceiveTimesKept() as kept:
        assert kept.available


async def test_a_receive_time_is_when_the_data_arrived_not_when_it_was_read() -> None:
    client, server = connected_pair()
    # As the runner does: stamps kept on, and time for the kernel's deferred switch-on
    # (wire_clock.ReceiveTimesKept); without it the first packet can come unstamped.
    with ReceiveTimesKept(), client, server:
        assert enable_receive_times(client)
        await trio.sleep(SWITCH_ON_WAIT_S)
        sent_ns = time.time_ns()
        server.sendall(b"250 ok\r\n")
        await trio.sleep(0.2)  # the data waits in the kernel; reading it late must not matter
        read_ns = time.time_ns()
        data, ancillary, _flags, _address = client.recvmsg(4096, RECEIVE_TIME_SPACE)
        received_ns = receive_time_ns(ancillary)
    assert data == b"250 ok\r\n"
    assert received_ns is not None
    # Orders of magnitude: it arrived within a fraction of the 0.2 s it then waited.
    assert sent_ns - 1_000_000 < received_ns < sent_ns + 50_000_000
    assert read_ns - received_ns > 100_000_000


def test_no_receive_time_without_the_option_or_in_other_ancillary_data() -> None:
    client, server = connected_pair()
    with client, server:
        server.sendall(b"220 hi\r\n")
        data, ancillary, _flags, _address = client.recvmsg(4096, RECEIVE_TIME_SPACE)
    assert data == b"220 hi\r\n"
    assert receive_time_ns(ancillary) is None
    assert receive_time_ns([(socket.SOL_SOCKET, 1, b"\0" * 16)]) is None  # SCM_RIGHTS-like


def test_the_handshake_ends_after_connect_was_called_and_before_it_is_seen() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        with client:
            before_ns = time.time_ns()
            client.connect(listener.getsockname())
            after_ns = time.time_ns()
            end_ns = handshake_end_ns(client, before_ns)
    assert end_ns is not None
    assert before_ns <= end_ns <= after_ns


# -- step latencies under a busy event loop ------------------------------------------------

#: The hog's slices: far longer than the sink's replies (well under a millisecond), and than
#: this machine's own stalls: on a busy 2-core VM a kernel-timed reply now and then takes
#: 15-40 ms of the host's time (seen at p99, and once at p90, with the old 20 ms slices).
HOG_SLICE_S = 0.05
#: The line between "our loop's delay" and "not": a quarter of a slice. A loop-timed reply
#: waits for the hog's slice (p50 ~50 ms here), a kernel-timed one is the sink's time (~0.1 ms).
QUARTER_SLICE_MS = HOG_SLICE_S * 1000 / 4


async def run_beside_a_hog(port: int, clock: str) -> dict[str, dict[str, object]]:
    """100 quickstart sessions, 10 at a time, while a task in the same loop burns the CPU in
    HOG_SLICE_S slices; the summary's steps by name. (100 samples, so that a p90 is not the
    max.)"""
    scenario = compile_scenario(load_scenario(scenario_path("quickstart")), timeout_s=10)
    stats = RunStats(["connect", *scenario.step_names])
    target = await resolve_target("127.0.0.1", port)
    settings = RunSettings(
        sessions=100, concurrency=10, run_id="hog", handle_signals=False, clock=clock
    )

    async def hog() -> None:
        while True:
            until = time.perf_counter() + HOG_SLICE_S
            while time.perf_counter() < until:
                pass
            await trio.lowlevel.checkpoint()

    cpus = os.sched_getaffinity(0)
    if len(cpus) >= 2:
        # Off the core the smtp-sink fixture gave the server: the hog slows us, not it.
        os.sched_setaffinity(0, cpus - {max(cpus)})
    try:
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(hog)
                await run_sessions(scenario, target, settings, stats)
                nursery.cancel_scope.cancel()
    finally:
        os.sched_setaffinity(0, cpus)
    assert stats.passed == 100, stats.failures
    summary = build_summary(
        scenario="quickstart",
        target=f"127.0.0.1:{port}",
        run_id="hog",
        duration_s=1.0,
        stats=stats,
        interrupted=False,
    )
    assert summary["clock"] == clock
    # The hog delays the loop by a slice a time: the run must say smtpload was the limit.
    assert summary["generator"]["saturated"] is True, summary["generator"]
    return {step["name"]: step for step in summary["steps"]}


REPLY_TIMED = ("ehlo", "mail", "rcpt", "data", "message", "quit")


async def test_a_busy_loop_inflates_loop_timed_steps(postfix_smtp_sink: SmtpPeer) -> None:
    steps = await run_beside_a_hog(postfix_smtp_sink.port, "loop")
    for name in REPLY_TIMED:
        assert steps[name]["clock"] == "loop"
        latency = steps[name]["latency_ms"]
        assert isinstance(latency, dict)
        assert latency["p50"] > QUARTER_SLICE_MS, (name, latency)  # our delay, not the server's


async def test_kernel_timed_steps_leave_the_busy_loop_out(postfix_smtp_sink: SmtpPeer) -> None:
    steps = await run_beside_a_hog(postfix_smtp_sink.port, "kernel")
    for name in ("greeting", *REPLY_TIMED):
        assert steps[name]["clock"] == "kernel"
        latency = steps[name]["latency_ms"]
        assert isinstance(latency, dict)
        # The server's time, whatever our loop did: under a quarter of a slice at the median
        # (the loop's clock sees over that, test above), and for 9 in 10 replies under half a
        # slice, which a loop-timed reply never is. Not the p99: on this VM the host's stalls
        # of 15-40 ms reach it (alone, 1 run in 4: a greeting p99 over 15 ms beside a p90 of
        # 0.4 ms; in a CI run of 2026-12-03 beside other load, mail p50 0.17 ms, p90 15 ms,
        # p99 31 ms), which is no part of what this test is about. Half a slice is 25 ms: the
        # bound has room over that CI run's p90, not over every stall the host can make.
        assert latency["p50"] < QUARTER_SLICE_MS, (name, latency)
        assert latency["p90"] < 2 * QUARTER_SLICE_MS, (name, latency)
    assert steps["connect"]["clock"] == "loop"
    assert steps["close"]["clock"] == "loop"


async def test_sessions_one_after_another_are_all_timed_by_the_kernel(
    postfix_smtp_sink: SmtpPeer,
) -> None:
    # At concurrency 1 each socket closes before the next opens; the kernel's stamps must not
    # go off between them (the runner keeps them on), or banners arrive untimed.
    scenario = compile_scenario(load_scenario(scenario_path("quickstart")), timeout_s=10)
    stats = RunStats(["connect", *scenario.step_names])
    target = await resolve_target("127.0.0.1", postfix_smtp_sink.port)
    settings = RunSettings(sessions=100, concurrency=1, run_id="c1", handle_signals=False)
    with trio.fail_after(60):
        await run_sessions(scenario, target, settings, stats)
    assert stats.passed == 100, stats.failures
    assert stats.generator.untimed_reads == 0
    assert stats.clock == "kernel"
    reply_timed = [step for step in stats.steps.values() if step.name not in ("connect", "close")]
    assert {step.clock for step in reply_timed} == {"kernel"}
