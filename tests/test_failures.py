"""Every failure category, each caused by a real server misbehaving on a real socket.

The run goes on through failures: every session started is counted under exactly one outcome,
the other sessions are unharmed, and the failure names what happened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import re
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from smtpload.net import client
from smtpload.net.client import new_session, resolve_target, run_session
from smtpload.net.runner import RunSettings, run_sessions
from smtpload.net.sink import serve_sink
from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.protocol.engine import Observation
from smtpload.protocol.outcome import Outcome
from smtpload.report.stats import RunStats
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.model import Expectation, Scenario, Step, StepKind
from tests.cli import smtpload
from tests.misbehaving import BEHAVIOURS, HUGE_REPLY_BYTES, shuts_down_after_ehlo, slow_greeting

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def quickstart(timeout_s: float = 5.0) -> CompiledScenario:
    return compile_scenario(load_scenario(SCENARIOS / "quickstart.yaml"), timeout_s=timeout_s)


async def start_server(nursery: trio.Nursery, behaviour: str) -> int:
    handler = BEHAVIOURS[behaviour]
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def run(
    port: int,
    scenario: CompiledScenario,
    sessions: int = 3,
    concurrency: int = 3,
    max_reply_bytes: int | None = None,
) -> RunStats:
    stats = RunStats(["connect", *scenario.step_names])
    target = await resolve_target("127.0.0.1", port)
    settings = RunSettings(
        sessions=sessions, concurrency=concurrency, run_id="test", handle_signals=False
    )
    if max_reply_bytes is not None:
        settings = dataclasses.replace(settings, max_reply_bytes=max_reply_bytes)
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
        # Replies out of turn (RFC 5321 §4.2): found before the next command is sent.
        (
            "unsolicited-in-banner",
            Outcome.PROTOCOL_ERROR,
            "ehlo",
            "reply before command: 250 unsolicited",
        ),
        # The extra reply comes with EHLO's own, so EHLO takes it; MAIL then finds EHLO's.
        (
            "unsolicited-late",
            Outcome.PROTOCOL_ERROR,
            "mail",
            "reply before command: 250 chatty.test (+1 line)",
        ),
        (
            "unfinished-in-banner",
            Outcome.PROTOCOL_ERROR,
            "ehlo",
            "reply before command: '250 unsol' (incomplete)",
        ),
        # A 421 may come at any time (§3.8): it is EHLO's reply, awaited to its end.
        ("unfinished-421-in-banner", Outcome.UNEXPECTED_REPLY, "ehlo", "421 4.3.2 going away"),
        ("first-digit-of-421-in-banner", Outcome.UNEXPECTED_REPLY, "ehlo", "421 4.3.2 going"),
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


async def test_sockets_trio_waited_on_are_forgotten_as_they_close(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sessions that wait on their socket: a greeting 0.25 s late (a wait that ends with data)
    # and a server that stops answering (one cut off by the step's timeout). run_session tells
    # trio of the close for each of them, and only where trio was asked to wait
    # (client._WAITED_ON); sessions after them reuse their descriptor numbers, from a fast
    # server, where most never wait.
    told: list[int] = []  # the peer's port of each socket trio heard was closing
    notify_closing = trio.lowlevel.notify_closing

    def counted(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the servers' sockets are told too: sorted below
            told.append(sock.getpeername()[1])
        notify_closing(sock)

    monkeypatch.setattr(trio.lowlevel, "notify_closing", counted)
    slow = await start_server(nursery, "stall")
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, slow_greeting, 0, host="127.0.0.1")
    )
    late = listeners[0].socket.getsockname()[1]
    sink = await nursery.start(serve_sink, "127.0.0.1", 0)
    scenario = quickstart(timeout_s=0.5)
    for port, outcome in ((late, Outcome.PASSED), (slow, Outcome.TIMEOUT)):
        told.clear()
        stats = await run(port, scenario, sessions=6, concurrency=3)
        assert_accounted(stats, 6)
        assert stats.outcomes[outcome] == 6
        assert told.count(port) == 6  # every session waited, and trio heard of each close
        assert not client._WAITED_ON  # nothing kept of a closed socket
    stats = await run(sink.port, scenario, sessions=6, concurrency=3)
    assert stats.outcomes[Outcome.PASSED] == 6
    assert not client._WAITED_ON


@pytest.mark.parametrize(
    "behaviour",
    [
        "unsolicited-in-banner",
        "unsolicited-late",
        "unfinished-in-banner",
        "unfinished-421-in-banner",
        "first-digit-of-421-in-banner",
    ],
)
async def test_a_command_is_not_sent_once_a_reply_is_there_before_it(
    nursery: trio.Nursery, behaviour: str
) -> None:
    port = await start_server(nursery, behaviour)
    stats = await run(port, quickstart(timeout_s=2), sessions=1, concurrency=1)
    (failure,) = stats.failures
    sent = [line.text for line in failure.transcript if line.direction == "C"]
    # Up to the failed step, not that step's command, and no QUIT after a protocol error or
    # a 421 (the server is closing).
    assert sent == (["EHLO smtpload.example.test"] if failure.step == "mail" else [])


async def test_a_reply_that_arrives_just_before_a_command_is_found_in_the_kernel() -> None:
    # The hard case of the look before a send: the extra reply is not in anything read yet,
    # only in the kernel's receive queue. The server's socket is written from the engine's
    # watcher, which runs between EHLO's reply being read and MAIL being sent.
    listener = socket.create_server(("127.0.0.1", 0))
    server_side: list[socket.socket] = []
    received: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        server_side.append(connection)
        # Without it, Nagle would hold the extra reply until EHLO's reply is acknowledged.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.settimeout(10)
        connection.sendall(b"220 late.test ESMTP\r\n")
        received.append(connection.recv(4096))
        connection.sendall(b"250 late.test\r\n")
        connection.settimeout(0.5)
        with contextlib.suppress(OSError):  # a timeout, or the client's close
            while chunk := connection.recv(4096):
                received.append(chunk)
        connection.close()

    def after_each_reply(observation: Observation) -> None:
        if observation.step.name == "ehlo":
            server_side[0].sendall(b"250 unsolicited\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        scenario = quickstart(timeout_s=5)
        stats = RunStats(["connect", *scenario.step_names])
        target = await resolve_target("127.0.0.1", listener.getsockname()[1])
        engine = new_session(scenario, 1, "test", watcher=after_each_reply)
        with trio.fail_after(30):
            await run_session(scenario, target, engine, stats)
    finally:
        await trio.to_thread.run_sync(thread.join, 30)
        listener.close()
    (failure,) = stats.failures
    assert (failure.outcome, failure.step) == (Outcome.PROTOCOL_ERROR, "mail")
    assert failure.got == "reply before command: 250 unsolicited"
    assert received == [b"EHLO smtpload.example.test\r\n"]  # MAIL was not sent


def quickstart_until(step_name: str, **changes: Any) -> Scenario:
    """Quickstart's steps up to ``step_name`` (changed by ``changes``), then ``close``."""
    steps: list[Step] = []
    for step in load_scenario(SCENARIOS / "quickstart.yaml").steps:
        if step.name == step_name:
            steps.append(dataclasses.replace(step, **changes))
            break
        steps.append(step)
    steps.append(Step(StepKind.CLOSE, "close"))
    return dataclasses.replace(load_scenario(SCENARIOS / "quickstart.yaml"), steps=tuple(steps))


async def test_a_421_before_a_command_is_that_commands_reply(nursery: trio.Nursery) -> None:
    # RFC 5321 §3.8: a server that must shut down may send 421 at any time, and then closes.
    received: list[bytes] = []
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, shuts_down_after_ehlo(received), 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    stats = await run(port, quickstart(timeout_s=5), sessions=1, concurrency=1)
    (failure,) = stats.failures
    assert (failure.outcome, failure.step) == (Outcome.UNEXPECTED_REPLY, "mail")
    assert failure.got.startswith("421 4.3.2 shutting down")
    # Neither MAIL nor a QUIT after the failure was sent: the server is closing.
    assert received == [b"EHLO smtpload.example.test\r\n"]
    assert stats.steps["mail"].failed == 1
    assert stats.steps["mail"].latency.count == 0  # no command, so nothing to time

    # Where the step accepts 421, it passes, and so does the close after it.
    received.clear()
    accepting = quickstart_until("mail", expect=Expectation(frozenset({250, 421}), "250, 421"))
    stats = await run(port, compile_scenario(accepting, timeout_s=5), sessions=1, concurrency=1)
    assert stats.outcomes[Outcome.PASSED] == 1, stats.failures
    assert received == [b"EHLO smtpload.example.test\r\n"]


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


async def test_a_connect_that_never_completes_times_out() -> None:
    # A listener that never accepts, its accept queue full: Linux drops the SYNs of further
    # connects (tcp_abort_on_overflow is 0 by default), so they neither connect nor fail.
    with contextlib.ExitStack() as held:
        listener = held.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):  # the queue takes backlog + 1; a spare in case the kernel differs
            filler = held.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        await trio.sleep(0.1)  # the fillers' handshakes are done (or their SYNs dropped)
        started = trio.current_time()
        stats = await run(port, quickstart(timeout_s=0.3), sessions=2, concurrency=2)
        elapsed_s = trio.current_time() - started
    assert_accounted(stats, 2)
    assert stats.outcomes[Outcome.CONNECT_ERROR] == 2, [f.got for f in stats.failures]
    assert stats.steps["connect"].failed == 2
    assert stats.failures[0].got == "no connection within 0.3 s"
    assert elapsed_s < 10  # the timeout ended them, not a retransmission's give-up (minutes)


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


# --- memory: what one hostile server can make smtpload hold ------------------------------------

#: ``smtpload ARGS`` in a child process whose address space is capped (so a regression fails
#: with MemoryError instead of taking the shared machine's memory), reporting its peak RSS.
#: VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec from the forked pytest.
_MEASURED_SMTPLOAD = """
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from smtpload.cli.main import main
status = main(sys.argv[2:])
with open("/proc/self/status") as status_file:
    peak = next(line.split()[1] for line in status_file if line.startswith("VmHWM:"))
print("peak_rss_kib", peak, file=sys.stderr)
sys.exit(status)
"""
# A run of 50 quickstart sessions peaks at about 40 MiB of address space and 35 MiB RSS.
_ADDRESS_SPACE_BYTES = 768 * 1024 * 1024


async def measured_smtpload(*args: str) -> tuple[int, str]:
    """``smtpload ARGS`` in a measured child process: its exit status and its stderr."""
    command = [sys.executable, "-c", _MEASURED_SMTPLOAD, str(_ADDRESS_SPACE_BYTES), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The step timeout is 30 s: far longer than this bound, so a run that waits for the
    # timeout instead of the cap fails here too.
    with trio.fail_after(25):
        result = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False, env=env
        )
    return result.returncode, result.stderr.decode("utf-8", "replace")


async def measured_run(port: int, tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    """``smtpload run quickstart`` against ``port`` in a measured child process.

    Returns its exit status, its stderr (with the peak RSS) and its summary.json.
    """
    summary_path = tmp_path / "summary.json"
    status, stderr = await measured_smtpload(
        "run",
        "quickstart",
        "--target",
        f"127.0.0.1:{port}",
        "--results",
        str(tmp_path / "results"),
        "--json",
        str(summary_path),
        "--quiet",
        *args,
    )
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return status, stderr, summary


def peak_rss_mib(stderr: str) -> float:
    match = re.search(r"peak_rss_kib (\d+)", stderr)
    assert match is not None, stderr
    return int(match.group(1)) / 1024


async def test_a_reply_that_never_ends_is_a_protocol_error_with_bounded_memory(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # 8 sessions at once, each fed "220-" + 60 KB lines as fast as loopback goes. Without a
    # cap on the whole reply each would grow until the 30 s step timeout (GBs); with the
    # default 1 MiB cap each ends as soon as it passes 1 MiB.
    port = await start_server(nursery, "endless-greeting")
    status, stderr, summary = await measured_run(
        port, tmp_path, "--sessions", "8", "--concurrency", "8", "--timeout", "30"
    )
    assert "Traceback" not in stderr
    assert status == 1, stderr
    assert summary["sessions"]["failures"]["protocol_error"] == 8
    assert summary["sessions"]["started"] == 8
    assert summary["duration_s"] < 10
    log = next((tmp_path / "results").glob("*/failures.log")).read_text()
    assert "reply longer than 1048576 bytes" in log
    # Orders of magnitude: a run's own baseline is ~35 MiB; 8 capped replies add ~8-25 MiB.
    assert peak_rss_mib(stderr) < 200


async def test_max_reply_bytes_sets_the_cap(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = await start_server(nursery, "endless-greeting")
    status, stderr, summary = await measured_run(port, tmp_path, "--max-reply-bytes", "200000")
    assert status == 1, stderr
    assert summary["sessions"]["failures"]["protocol_error"] == 1
    log = next((tmp_path / "results").glob("*/failures.log")).read_text()
    assert "reply longer than 200000 bytes" in log


async def test_complete_reply_over_the_cap_is_a_protocol_error_under_it_a_reply(
    nursery: trio.Nursery,
) -> None:
    # The huge rejection is a complete, well-formed 3 MiB 550: over the default cap it is a
    # protocol error; with a cap above it, an ordinary unexpected reply.
    port = await start_server(nursery, "huge-rejection")
    for max_reply_bytes, outcome in [
        (None, Outcome.PROTOCOL_ERROR),
        (HUGE_REPLY_BYTES, Outcome.UNEXPECTED_REPLY),
    ]:
        stats = await run(
            port, quickstart(), sessions=2, concurrency=2, max_reply_bytes=max_reply_bytes
        )
        assert_accounted(stats, 2)
        assert stats.outcomes[outcome] == 2, stats.failures[0].got
        assert stats.failures[0].step == "ehlo"


async def test_record_and_compare_take_max_reply_bytes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # The 3 MiB 550 to EHLO: a protocol error under the default cap, a reply under a larger one.
    port = await start_server(nursery, "huge-rejection")
    target = f"127.0.0.1:{port}"
    larger = str(HUGE_REPLY_BYTES + 1000)
    baseline = tmp_path / "baseline.json"
    status, stderr = await measured_smtpload(
        "record", "quickstart", "--target", target, "-o", str(baseline), "--max-reply-bytes", larger
    )
    assert status == 0, stderr
    ehlo = next(s for s in json.loads(baseline.read_text())["steps"] if s["name"] == "ehlo")
    assert (ehlo["codes"], ehlo["events"]) == ({"550": 1}, {})

    # Exit 0 shows compare took the cap: under the default one this reply is a protocol error,
    # a changed event against the baseline (exit 1).
    status, stderr = await measured_smtpload(
        "compare",
        "quickstart",
        "--baseline",
        str(baseline),
        "--target",
        target,
        "--max-reply-bytes",
        larger,
    )
    assert status == 0, stderr


async def test_huge_complete_replies_keep_failures_small_in_memory_and_on_disk(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # A complete 3 MiB 550 to EHLO, allowed by the cap, for 20 sessions: every failure is
    # kept, each with a 4 KiB prefix of the reply, not 3 MiB of it.
    port = await start_server(nursery, "huge-rejection")
    larger = str(HUGE_REPLY_BYTES + 1000)
    status, stderr, summary = await measured_run(
        port, tmp_path, "--sessions", "20", "--concurrency", "4", "--max-reply-bytes", larger
    )
    assert "Traceback" not in stderr
    assert status == 1, stderr
    assert summary["sessions"]["failures"]["unexpected_reply"] == 20
    log_path = next((tmp_path / "results").glob("*/failures.log"))
    log = log_path.read_text()
    assert len(re.findall(r"^session \d+: unexpected_reply at step 'ehlo'", log, re.M)) == 20
    assert log.count(f"reply cut after 4096 of its {HUGE_REPLY_BYTES} bytes") == 20
    assert log_path.stat().st_size < 20 * 3 * 4096
    # Orders of magnitude: 20 whole transcripts would be 60 MiB as text, more as objects.
    assert peak_rss_mib(stderr) < 150


def test_a_refused_connection_is_said_once_per_failure(tmp_path: Path) -> None:
    # The detail was both the failure's "got:" and its transcript's only line
    # ("*: connect failed: ..."), in failures.log and in the table's transcripts.
    with socket.socket() as bound:  # bound, never listening: every connection is refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        result = smtpload(
            "run", "quickstart", "--target", f"127.0.0.1:{port}", "--sessions", "2",
            "--results", "r", cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    (log,) = (tmp_path / "r").glob("*/failures.log")
    for text in (log.read_text(), result.stdout):
        blocks = text.split("session ")[1:]
        blocks = [b for b in blocks if b.split(":")[0].isdigit()]
        assert len(blocks) == 2, text
        for block in blocks:
            assert block.count("ECONNREFUSED") == 1, block
            assert "connect_error at step 'connect'" in block
            assert "\ngot: " in block
