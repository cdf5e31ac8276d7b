"""The Python API (smtpload.run, arun, load_scenario, read_summary) against real servers.

Each run talks to a real server over loopback: the built-in sink that ``run`` starts when there
is no target, or aiosmtpd in-process. No signal handler may be left behind, and a run must work
from a thread other than the main one.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import trio

import smtpload
from tests.cli import environment
from tests.misbehaving import stall_after_greeting
from tests.peers import REJECT_DOMAIN, RecordingPeer

LOOPBACK = "127.0.0.1"

SCENARIO_WITH_TYPO = """\
name: typo
steps:
  - greeting: 220
  - sendd: EHLO x
"""


def test_load_scenario_takes_a_bundled_name_or_a_file(tmp_path: Path) -> None:
    bundled = smtpload.load_scenario("quickstart")
    assert bundled.name == "quickstart"
    path = tmp_path / "one.yaml"
    path.write_text("steps:\n  - greeting: 220\n  - send: QUIT\n    expect: 221\n")
    assert len(smtpload.load_scenario(path).steps) == 2


def test_load_scenario_errors_say_file_line_column(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(SCENARIO_WITH_TYPO)
    with pytest.raises(smtpload.ScenarioError) as caught:
        smtpload.load_scenario(path)
    assert str(caught.value).startswith(f"{path}:4:5: unknown key 'sendd'")
    with pytest.raises(smtpload.UsageError, match="no scenario file 'no-such-thing'"):
        smtpload.load_scenario("no-such-thing")


def test_run_without_target_uses_the_built_in_sink_and_leaves_signals_alone() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    result = smtpload.run("quickstart", sessions=6, concurrency=3)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    assert result.passed
    assert result.exit_status == 0
    assert result.results_dir is None
    sessions = result.summary["sessions"]
    assert (sessions["started"], sessions["passed"], sessions["failed"]) == (6, 6, 0)
    steps = [step["name"] for step in result.summary["steps"]]
    assert steps[:3] == ["connect", "greeting", "ehlo"]
    assert all(step["count"] == 6 for step in result.summary["steps"])


def test_run_against_a_server_with_variables(aiosmtpd_server: RecordingPeer) -> None:
    result = smtpload.run(
        smtpload.load_scenario("quickstart"),
        target=f"{aiosmtpd_server.host}:{aiosmtpd_server.port}",
        sessions=4,
        concurrency=2,
        timeout_s=10,
        variables={"to": "someone@api.test"},
    )
    assert result.passed
    assert result.summary["target"] == f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    messages = aiosmtpd_server.handler.messages
    assert [m.rcpt_tos for m in messages] == [("someone@api.test",)] * 4


def test_a_refused_recipient_is_counted_not_raised(aiosmtpd_server: RecordingPeer) -> None:
    result = smtpload.run(
        "quickstart",
        target=f"{aiosmtpd_server.host}:{aiosmtpd_server.port}",
        sessions=2,
        variables={"to": f"nobody@{REJECT_DOMAIN}"},
    )
    assert not result.passed
    assert result.exit_status == 1
    assert result.summary["sessions"]["failures"]["unexpected_reply"] == 2


def test_run_works_from_another_thread(aiosmtpd_server: RecordingPeer) -> None:
    results: list[smtpload.RunResult] = []
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            results.append(
                smtpload.run("quickstart", target=f"{aiosmtpd_server.host}:{aiosmtpd_server.port}")
            )
        except BaseException as error:  # handed to the main thread's assertion
            errors.append(error)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert errors == []
    assert results[0].passed


async def test_arun_inside_trio(aiosmtpd_server: RecordingPeer) -> None:
    result = await smtpload.arun(
        "quickstart", target=f"{aiosmtpd_server.host}:{aiosmtpd_server.port}", sessions=3
    )
    assert result.passed
    assert len(aiosmtpd_server.handler.messages) == 3


def test_results_dir_is_written_and_read_back(tmp_path: Path) -> None:
    result = smtpload.run("quickstart", sessions=2, results_dir=tmp_path / "out")
    assert result.results_dir is not None
    assert result.results_dir.parent == tmp_path / "out"
    assert result.results_dir.name == result.summary["run_id"]
    from_folder = smtpload.read_summary(result.results_dir)
    from_file = smtpload.read_summary(result.results_dir / "summary.json")
    assert from_folder == from_file == json.loads(json.dumps(result.summary))


def test_a_results_dir_that_cannot_be_written_fails_before_any_session(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(smtpload.OutputError, match="is not a folder"):
        smtpload.run(
            "quickstart",
            target=f"{aiosmtpd_server.host}:{aiosmtpd_server.port}",
            results_dir=not_a_folder / "out",
        )
    assert aiosmtpd_server.handler.messages == []


def test_read_summary_refuses_what_is_not_a_summary(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(smtpload.ResultsError, match=r"is not a summary\.json written by smtpload"):
        smtpload.read_summary(other)
    broken = tmp_path / "broken.json"
    broken.write_text('{"sessions": ')
    with pytest.raises(smtpload.ResultsError, match="cannot read the summary"):
        smtpload.read_summary(broken)
    with pytest.raises(smtpload.ResultsError, match="cannot read the summary"):
        smtpload.read_summary(tmp_path / "missing")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"sessions": 0}, "sessions=0"),
        ({"concurrency": -1}, "concurrency=-1"),
        ({"sessions": True}, "sessions=True"),
        ({"timeout_s": 0}, "timeout_s=0"),
        ({"timeout_s": float("nan")}, "timeout_s=nan"),
        ({"target": "::1"}, "bad target '::1'"),
        ({"target": "127.0.0.1:"}, "the port after ':' is empty"),
        (
            {"variables": {"nope": "x"}},
            r"variables=\{'nope': ...\}: the scenario declares no variable",
        ),
    ],
    ids=["sessions", "concurrency", "bool", "timeout", "nan", "target", "empty-port", "variable"],
)
def test_bad_arguments_are_usage_errors_before_any_session(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(smtpload.UsageError, match=message):
        smtpload.run("quickstart", **arguments)  # type: ignore[arg-type]


def test_every_result_file_follows_the_umask(tmp_path: Path) -> None:
    # summary.json used to be written 0600 (a temporary file's mode) beside 0644 .hgrm files.
    old_umask = os.umask(0o027)
    try:
        result = smtpload.run("quickstart", sessions=2, results_dir=tmp_path)
    finally:
        os.umask(old_umask)
    assert result.results_dir is not None
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in result.results_dir.iterdir()}
    assert "summary.json" in modes
    assert set(modes.values()) == {0o640}, modes


_CATCHES_CTRL_C = """
import faulthandler, signal, sys
# For a failure's report: the stacks on SIGUSR1, and the SIGINT this process started with (an
# inherited SIG_IGN or block would keep trio from turning it into KeyboardInterrupt).
faulthandler.register(signal.SIGUSR1, all_threads=True)
blocked = sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))
print("started with SIGINT", signal.getsignal(signal.SIGINT), "blocked", blocked, file=sys.stderr)
# Started in the background of a non-interactive shell (a CI script's `cmd &`), a process
# inherits SIGINT ignored (POSIX: asynchronous commands ignore SIGINT without job control) and
# Python then installs no KeyboardInterrupt handler, nor trio. This test is about a Python
# where Ctrl-C raises KeyboardInterrupt, as in a terminal, so it says so.
signal.signal(signal.SIGINT, signal.default_int_handler)
import smtpload
try:
    smtpload.run("quickstart", target=sys.argv[1], sessions=4, concurrency=4, timeout_s=60)
except KeyboardInterrupt as caught:
    print("caught", type(caught).__name__, flush=True)
    sys.exit(3)
print("not interrupted", flush=True)
"""


async def test_ctrl_c_in_run_arrives_as_a_plain_keyboard_interrupt() -> None:
    # Sessions stall after the banner, so the run is still going when the signal comes.
    connected = trio.Event()

    async def stall(stream: trio.SocketStream) -> None:
        connected.set()
        await stall_after_greeting(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, stall, 0, host=LOOPBACK))
        port = listeners[0].socket.getsockname()[1]
        process = await trio.lowlevel.open_process(
            [sys.executable, "-c", _CATCHES_CTRL_C, f"{LOOPBACK}:{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(),
        )
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            with trio.move_on_after(30) as waiting:
                await connected.wait()
                process.send_signal(signal.SIGINT)
                status = await process.wait()
                out = await process.stdout.receive_some(1000)
                err = await process.stderr.receive_some(100_000)
            if waiting.cancelled_caught:
                err = b""
                # Say where the child was (this found the inherited SIG_IGN above).
                process.send_signal(signal.SIGUSR1)
                with trio.move_on_after(5):
                    await trio.sleep(1)
                    err = await process.stderr.receive_some(100_000)
                pytest.fail(f"no exit within 30 s of SIGINT; the child's stderr:\n{err.decode()}")
        finally:
            process.kill()
            await process.wait()
        nursery.cancel_scope.cancel()
    assert (status, out) == (3, b"caught KeyboardInterrupt\n"), err


def test_the_api_writes_nothing_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    result = smtpload.run("quickstart", target="no-such-host.invalid:25", sessions=2)
    assert result.summary["sessions"]["failures"]["connect_error"] == 2
    assert capfd.readouterr().err == ""
