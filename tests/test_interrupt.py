"""Ctrl-C and SIGTERM on a real ``smtpload run`` process: exit 130, every result still written.

The server is a plain listening socket in the test: it greets each session and then says
nothing, so the sessions are provably mid-dialogue when the signal arrives. In the last test it
is ``misbehaving.backtracking_bait``, whose replies make backtracking regexes take forever, so
Ctrl-C arrives while sessions are matching them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import trio

from smtpload.net.runner import RunSettings, run_scenario
from smtpload.protocol.compiler import compile_scenario
from smtpload.report.stats import RunStats
from smtpload.scenario.bundled import scenario_path
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.model import Target
from tests.cli import COMMAND, environment, start_smtpload
from tests.misbehaving import backtracking_bait

CONCURRENCY = 5


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_stops_the_run_and_writes_results(tmp_path: Path, signum: signal.Signals) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(30)
        port = listener.getsockname()[1]
        process = start_smtpload(
            "run", "quickstart",
            "--target", f"127.0.0.1:{port}",
            "--sessions", "1000", "--concurrency", str(CONCURRENCY),
            "--timeout", "60",
            "--results", str(tmp_path / "results"),
            "--json", str(tmp_path / "summary.json"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        connections = []
        try:
            for _ in range(CONCURRENCY):
                connection, _ = listener.accept()
                connection.settimeout(30)
                connection.sendall(b"220 stall.test ESMTP\r\n")
                connections.append(connection)
            for connection in connections:
                # Each session has passed its greeting and now waits for the EHLO reply.
                assert connection.recv(1024).startswith(b"EHLO ")
            process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
            for connection in connections:
                connection.close()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["sessions"]["started"] == CONCURRENCY
    # The sessions the signal kept from starting are counted too, outside the failures.
    assert summary["sessions"]["not_started"] == 1000 - CONCURRENCY
    assert f"{1000 - CONCURRENCY} not started" in stdout
    assert summary["sessions"]["failures"]["interrupted"] == CONCURRENCY
    assert summary["sessions"]["passed"] == 0
    steps = {step["name"]: step for step in summary["steps"]}
    assert steps["greeting"]["count"] == CONCURRENCY
    assert steps["greeting"]["failed"] == 0
    # The step each session was cut off in counts as started and failed, so the table adds up.
    assert steps["ehlo"]["count"] == CONCURRENCY
    assert steps["ehlo"]["failed"] == CONCURRENCY
    assert steps["mail"]["count"] == 0
    (run_dir,) = (tmp_path / "results").iterdir()
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    log = (run_dir / "failures.log").read_text()
    assert log.count("interrupted at step 'ehlo'") == CONCURRENCY
    assert "C: EHLO smtpload.example.test" in log
    assert "greeting" in stdout  # the report was printed too


# Every pattern here would hold a backtracking engine (and so the event loop, and Ctrl-C) for
# longer than the universe has existed, on the bait's replies; each alternative "!" matches.
BACKTRACKING_SCENARIO = """\
name: backtracking
steps:
  - greeting: {code: 220, text: '(a+)+$|!$'}
  - send: EHLO smtpload.test
    expect: {code: 250, text: '(.*a){20}|!$'}
  - send: NOOP
    expect: 250
    capture: '(?:(a|aa)+$)|(?P<bang>!+)$'
  - send: 'VRFY {bang}'
    expect: 250
  - send: QUIT
    expect: 221
"""
SESSIONS_BEFORE_SIGNAL = 8


async def test_ctrl_c_while_sessions_match_backtracking_patterns(tmp_path: Path) -> None:
    scenario = tmp_path / "backtracking.yaml"
    scenario.write_text(BACKTRACKING_SCENARIO)
    finished = 0
    enough = trio.Event()

    def on_quit() -> None:
        nonlocal finished
        finished += 1
        if finished >= SESSIONS_BEFORE_SIGNAL:
            enough.set()

    async def handler(stream: trio.SocketStream) -> None:
        await backtracking_bait(stream, on_quit)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, handler, 0)
        port = listeners[0].socket.getsockname()[1]
        with (tmp_path / "stdout").open("w") as stdout, (tmp_path / "stderr").open("w") as stderr:
            process = await trio.lowlevel.open_process(
                [
                    *COMMAND, "run", str(scenario),
                    "--target", f"127.0.0.1:{port}",
                    "--sessions", "1000000", "--concurrency", "4", "--timeout", "60",
                    "--results", str(tmp_path / "results"),
                    "--json", str(tmp_path / "summary.json"),
                ],
                stdout=stdout, stderr=stderr, env=environment(),
            )  # fmt: skip
            try:
                # A backtracking engine never finishes the first banner: fail, do not hang.
                with trio.move_on_after(30):
                    await enough.wait()
                assert enough.is_set(), "no session got through the backtracking patterns"
                process.send_signal(signal.SIGINT)
                with trio.fail_after(20):  # 2 s of grace for running sessions, then results
                    await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
        nursery.cancel_scope.cancel()
    errors = (tmp_path / "stderr").read_text()
    assert process.returncode == 130, errors
    assert "Traceback" not in errors
    assert "re2" not in errors.lower()  # absl's log lines stay off stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True
    sessions = summary["sessions"]
    assert sessions["passed"] >= SESSIONS_BEFORE_SIGNAL
    # Every session got through every pattern; the only failures are the ones cut off.
    assert {k: v for k, v in sessions["failures"].items() if v} in (
        {},
        {"interrupted": sessions["failed"]},
    )
    assert sessions["started"] == sessions["passed"] + sessions["failed"]
    assert sessions["started"] + sessions["not_started"] == 1000000
    assert sessions["not_started"] > 0
    steps = {step["name"]: step for step in summary["steps"]}
    assert steps["vrfy"]["count"] >= SESSIONS_BEFORE_SIGNAL
    (run_dir,) = (tmp_path / "results").iterdir()
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert "backtracking" in (tmp_path / "stdout").read_text()  # the report was printed too


class _NeverAnswers(trio.abc.HostnameResolver):
    """A name server that never answers: the lookup lasts until its timeout."""

    def __init__(self) -> None:
        self.asked = trio.Event()

    async def getaddrinfo(  # type: ignore[override]
        self, host: bytes | None, port: bytes | str | int | None, *args: object
    ) -> list[object]:
        self.asked.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def getnameinfo(self, sockaddr: tuple[object, ...], flags: int) -> tuple[str, str]:
        raise NotImplementedError


async def test_a_signal_while_the_target_is_looked_up_stops_the_run_at_once() -> None:
    # The lookup is bounded by the step timeout (60 s here); a signal must not wait for it.
    resolver = _NeverAnswers()
    previous = trio.socket.set_custom_hostname_resolver(resolver)
    try:
        compiled = compile_scenario(load_scenario(scenario_path("quickstart")), timeout_s=60)
        stats = RunStats(["connect", *compiled.step_names])
        settings = RunSettings(sessions=5, concurrency=2, run_id="r", handle_signals=True)

        async def signal_when_asked() -> None:
            await resolver.asked.wait()
            os.kill(os.getpid(), signal.SIGINT)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(signal_when_asked)
            with trio.fail_after(5):
                shown, _, interrupted = await run_scenario(
                    compiled, Target("slow.test", 25), settings, stats
                )
    finally:
        trio.socket.set_custom_hostname_resolver(previous)
    assert interrupted
    assert shown == "slow.test:25"
    assert stats.started == 0
