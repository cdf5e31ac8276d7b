"""Workers forked before ``trio.run`` (net/forked.py, net/workers.py ``forked_workers``).

Forked from this process: the tests are not inside a trio run, as the command is not when it
forks. The command's own use of them (the workers of ``smtpload run --workers 2`` are forks,
alone on their pipes) is tested in test_workers.py, on both ways of starting a worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from smtpload.net.forked import ForkedChild, can_fork, fork_child
from smtpload.net.runner import RunSettings, run_scenario_to_summary
from smtpload.net.workers import forked_workers
from smtpload.protocol.compiler import compile_scenario
from smtpload.report.stats import RunStats
from smtpload.scenario.bundled import scenario_path
from smtpload.scenario.loader import load_scenario
from tests.cli import ROOT, environment

pytestmark = pytest.mark.skipif(not can_fork(), reason="no fork and pidfd here")


def state(pid: int) -> str | None:
    """The state letter of process ``pid`` (R, S, T stopped, Z a zombie), None once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_a_forked_child_starts_as_a_worker_started_in_a_session_of_its_own() -> None:
    results_read, results_write = os.pipe()
    not_for_it, not_for_it_either = os.pipe()

    def run() -> int:
        checks = [
            os.getsid(0) == os.getpid(),  # a session leader: no terminal's Ctrl-C
            signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
            # Blocked across the fork only: the child's own dispositions are in place.
            not signal.pthread_sigmask(signal.SIG_BLOCK, set()),
            not is_open(not_for_it_either),
            is_open(results_write),
        ]
        os.write(results_write, bytes(checks))
        return 7

    try:
        child = fork_child(run, [not_for_it_either])
        os.close(results_write)
        assert trio.run(child.wait) == 7
        assert list(os.read(results_read, 100)) == [1] * 6
        # The parent's own handling of the signals is back as it was.
        assert not signal.pthread_sigmask(signal.SIG_BLOCK, set())
        child.reap()
        assert state(child.pid) is None  # reaped, not a zombie
    finally:
        for fd in (results_read, not_for_it, not_for_it_either):
            os.close(fd)


def test_a_forked_child_that_raises_says_so_in_one_line_and_exits_1(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def run() -> int:
        raise RuntimeError("no spec")

    child = fork_child(run, [])
    assert trio.run(child.wait) == 1
    child.reap()
    lines = capfd.readouterr().err.splitlines()
    assert lines == [f"smtpload: worker process {child.pid} failed: RuntimeError: no spec"]


def sleep_a_minute() -> int:
    time.sleep(60)
    return 0


def test_a_killed_child_reports_the_signal_as_trio_does() -> None:
    child = fork_child(sleep_a_minute, [])
    child.kill()
    assert trio.run(child.wait) == -signal.SIGKILL
    child.kill()  # reaped already: its pid is not signalled again (it may be another's)
    child.reap()
    assert state(child.pid) is None


def test_reap_kills_and_waits_for_a_stopped_child() -> None:
    child = fork_child(sleep_a_minute, [])
    os.kill(child.pid, signal.SIGSTOP)
    child.reap()
    assert child.returncode == -signal.SIGKILL
    assert state(child.pid) is None


def run_in_forked_workers(sessions: int) -> tuple[dict[str, object], list[ForkedChild]]:
    """A run of quickstart against the built-in sink (in this loop) in two forked workers."""
    compiled = compile_scenario(load_scenario(scenario_path("quickstart")), seed=2)
    settings = RunSettings(sessions=sessions, concurrency=4, run_id="forked", workers=2)
    stats = RunStats(["connect", *compiled.step_names])
    with forked_workers(2) as forked:
        children = [worker.child for worker in forked]
        assert len(children) == 2
        summary = trio.run(run_scenario_to_summary, compiled, None, settings, stats, None, forked)
        # Waited for in the run: each ended by itself, with its totals.
        assert [child.returncode for child in children] == [0, 0]
    return summary, children


def test_forked_workers_run_the_run_and_are_all_reaped() -> None:
    summary, children = run_in_forked_workers(40)
    sessions = summary["sessions"]
    assert isinstance(sessions, dict)
    assert sessions["passed"] == 40
    assert all(state(child.pid) is None for child in children)


def fail_before_the_run(children: list[ForkedChild]) -> None:
    with forked_workers(3) as forked:
        children += [worker.child for worker in forked]
        os.kill(children[0].pid, signal.SIGSTOP)  # one that would never read its end of file
        raise RuntimeError("an error before the run")


def test_forked_workers_no_run_took_are_killed_and_reaped_on_leaving() -> None:
    children: list[ForkedChild] = []
    with pytest.raises(RuntimeError, match="before the run"):
        fail_before_the_run(children)
    assert len(children) == 3
    assert [child.returncode for child in children] == [-signal.SIGKILL] * 3
    assert all(state(child.pid) is None for child in children)


def test_one_worker_is_not_forked() -> None:
    with forked_workers(1) as forked:
        assert forked == []


LEAVE_AT_ONCE = """
import os, signal, time
from smtpload.cli import interrupts
from smtpload.net.workers import forked_workers, kill_forked

interrupts.defer()
with forked_workers(2) as forked, interrupts.ending_with(lambda: kill_forked(forked)):
    for worker in forked:
        os.kill(worker.child.pid, signal.SIGSTOP)  # stopped: they cannot read their end of file
    print(*(worker.child.pid for worker in forked), flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)  # a second signal before the run: leave at once
    time.sleep(60)
"""


def test_a_second_signal_before_the_run_leaves_no_forked_worker_behind() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LEAVE_AT_ONCE],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 130, done.stderr
    pids = [int(word) for word in done.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(state(pid) not in (None, "Z") for pid in pids):
        time.sleep(0.05)
    # Killed (gone, or a zombie of whoever adopted them), not stopped for ever.
    assert all(state(pid) in (None, "Z") for pid in pids), [state(pid) for pid in pids]
