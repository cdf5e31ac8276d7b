"""``--workers N``: one run in worker processes, against real servers on loopback.

The built-in sink (in the parent's loop), aiosmtpd in this process, and a plain listening socket
that greets and then stalls (so sessions are provably mid-dialogue when a signal or a worker's
death comes). The arithmetic of the merge is tested without processes in test_shard_merge.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import pytest
import trio

import smtpload as smtpload_api
from smtpload.cli.main import _run_workers
from smtpload.errors import ScenarioError, UsageError
from smtpload.net import workers as workers_module
from smtpload.net.client import resolve_target
from smtpload.net.runner import RunSettings
from smtpload.net.shard import ShardSpec, run_shard, shard_settings
from smtpload.net.workers import FORK_VARIABLE, worker_count
from smtpload.protocol.compiler import compile_scenario
from smtpload.report.intervals import IntervalLog
from smtpload.report.shards import ShardMerger
from smtpload.report.stats import RunStats
from smtpload.scenario.bundled import scenario_path
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.patterns import compile_capture, compile_text
from tests.cli import smtpload, start_smtpload
from tests.peers import RecordingPeer
from tests.test_intervals import read_hlog


@pytest.fixture(params=["fork", "exec"])
def worker_start(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the command starts its workers: forked from its own process (the default), or as
    fresh interpreters (``python -m smtpload.net.workers``, where forking is not possible)."""
    if request.param == "exec":
        monkeypatch.setenv(FORK_VARIABLE, "0")
    else:
        monkeypatch.delenv(FORK_VARIABLE, raising=False)
    return str(request.param)


def run_json(tmp_path: Path, *args: str, name: str = "summary.json") -> dict[str, Any]:
    done = smtpload(
        "run", *args, "--quiet", "--results", str(tmp_path / "results"),
        "--json", str(tmp_path / name), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary: dict[str, Any] = json.loads((tmp_path / name).read_text())
    return summary


def shape(value: object) -> object:
    """The keys of a summary, recursively: its schema without its values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return None


def test_two_workers_run_one_run_whose_results_read_back(worker_start: str, tmp_path: Path) -> None:
    summary = run_json(
        tmp_path, "quickstart", "--sessions", "600", "--concurrency", "8", "--workers", "2"
    )
    assert summary["load"]["workers"] == 2
    assert summary["sessions"]["started"] == summary["sessions"]["passed"] == 600
    assert summary["throughput"]["messages"] == 600
    assert all(step["count"] == 600 for step in summary["steps"])
    assert len(summary["generator"]["workers"]) == 2
    (run_dir,) = (tmp_path / "results").iterdir()
    # latency.hlog reads back with HdrHistogram's own reader: every sample, once.
    intervals, start_s = read_hlog(run_dir / "latency.hlog")
    assert start_s > 0
    totals: dict[str, int] = {}
    for interval in intervals:
        tag = interval.get_tag()
        totals[tag] = totals.get(tag, 0) + interval.get_total_count()
    step_tags = [tag for tag in totals if tag.startswith("step-")]
    assert len(step_tags) == len(summary["steps"])
    assert all(totals[tag] == 600 for tag in step_tags)
    assert totals["session"] == 600
    # timeline.csv adds up to the summary.
    rows = (run_dir / "timeline.csv").read_text().splitlines()[1:]
    assert sum(int(row.split(",")[2]) for row in rows) == 600
    # The schema is one process's: the same keys everywhere.
    single = run_json(
        tmp_path, "quickstart", "--sessions", "20", "--workers", "1", name="single.json"
    )
    assert single["load"]["workers"] == 1
    assert single["generator"]["workers"] is None
    single["generator"]["workers"] = summary["generator"]["workers"]
    assert shape(single) == shape(summary)


RANDOM_SCENARIO = """\
name: draws
variables:
  tag: {random: {min: 1, max: 1000000000}}
steps:
  - greeting: 220
  - send: EHLO client.example.test
    expect: 250
  - send: "MAIL FROM:<s{session}.{tag}@example.test>"
    expect: 250
  - send: "RCPT TO:<r{session}@example.test>"
    expect: 250
  - send: DATA
    expect: 354
  - data:
      headers:
        Subject: "draw {tag}"
      body: "session {session} tag {tag}\\n"
  - send: QUIT
    expect: 221
"""


def test_the_same_seed_gives_the_same_sessions_with_one_and_two_workers(
    worker_start: str, tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    scenario = tmp_path / "draws.yaml"
    scenario.write_text(RANDOM_SCENARIO)
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    common = (str(scenario), "--target", target, "--sessions", "40", "--concurrency", "4")
    run_json(tmp_path, *common, "--seed", "99", "--workers", "1", name="one.json")
    first = {m.mail_from for m in aiosmtpd_server.handler.messages}
    run_json(tmp_path, *common, "--seed", "99", "--workers", "2", name="two.json")
    both = {m.mail_from for m in aiosmtpd_server.handler.messages}
    second = both - first
    assert len(first) == 40
    # Every session drew the same tag, whatever the worker that ran it: the second run added
    # no new envelope sender at all.
    assert second == set()
    assert len(aiosmtpd_server.handler.messages) == 80
    # And another seed draws others (the check above can fail).
    run_json(tmp_path, *common, "--seed", "100", "--workers", "2", name="three.json")
    assert len({m.mail_from for m in aiosmtpd_server.handler.messages} - first) == 40


def test_open_loop_shares_the_schedule_between_the_workers(
    worker_start: str, tmp_path: Path
) -> None:
    summary = run_json(
        tmp_path, "quickstart", "--rate", "100", "--duration", "2s", "--workers", "2",
        "--seed", "3",
    )  # fmt: skip
    assert summary["load"]["model"] == "open"
    assert summary["load"]["workers"] == 2
    # 100/s for 2 s, uniform: 200 sessions due, each started once (by one of the workers).
    assert summary["sessions"]["started"] + summary["sessions"]["not_started"] == 200
    assert summary["sessions"]["passed"] == summary["sessions"]["started"]
    assert summary["start_delay_ms"]["samples"] == summary["sessions"]["started"]


class StallingServer:
    """Greets every connection and then says nothing more: a session waits for its EHLO reply."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(60)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []

    def hold(self, count: int) -> None:
        """Accept ``count`` sessions and wait until each has sent its EHLO."""
        for _ in range(count):
            connection, _ = self.listener.accept()
            connection.settimeout(60)
            connection.sendall(b"220 stall.test ESMTP\r\n")
            self.connections.append(connection)
        for connection in self.connections[-count:]:
            assert connection.recv(1024).startswith(b"EHLO ")

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
        self.listener.close()


def start_stalled_run(
    tmp_path: Path, server: StallingServer, sessions: int
) -> subprocess.Popen[str]:
    return start_smtpload(
        "run", "quickstart", "--target", f"127.0.0.1:{server.port}",
        "--sessions", str(sessions), "--concurrency", "4", "--workers", "2",
        "--timeout", "60", "--results", str(tmp_path / "results"),
        "--json", str(tmp_path / "summary.json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_sigint_to_a_multi_worker_run_exits_130_with_merged_partial_results(
    worker_start: str,
    tmp_path: Path,
) -> None:
    server = StallingServer()
    process = start_stalled_run(tmp_path, server, 1000)
    try:
        server.hold(4)  # two sessions in each worker, all mid-dialogue
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        server.close()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["load"]["workers"] == 2
    assert summary["sessions"]["started"] == 4
    assert summary["sessions"]["failures"]["interrupted"] == 4
    assert summary["sessions"]["not_started"] == 996
    steps = {step["name"]: step for step in summary["steps"]}
    assert steps["ehlo"]["count"] == steps["ehlo"]["failed"] == 4
    (run_dir,) = (tmp_path / "results").iterdir()
    log = (run_dir / "failures.log").read_text()
    assert log.count("interrupted at step 'ehlo'") == 4
    assert "996 not started" in stdout


def worker_pids(parent: int) -> list[int]:
    """The parent's children (its worker processes), from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


def pipes_of(pid: int, *, skip: tuple[int, ...] = ()) -> set[str]:
    """The pipes process ``pid`` holds open (``pipe:[inode]``), but for the descriptors
    ``skip``."""
    pipes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        if int(fd.name) in skip:
            continue
        with contextlib.suppress(OSError):
            if (link := os.readlink(fd)).startswith("pipe:"):
                pipes.add(link)
    return pipes


def signal_mask(status: str, field: str) -> int:
    """A signal set of /proc/PID/status (``SigIgn``, ``SigCgt``): bit n-1 is signal n."""
    (value,) = [line.split()[1] for line in status.splitlines() if line.startswith(field + ":")]
    return int(value, 16)


def test_the_workers_are_forks_of_the_command_each_alone_on_its_pipes(
    worker_start: str, tmp_path: Path
) -> None:
    server = StallingServer()
    process = start_stalled_run(tmp_path, server, 8)
    try:
        server.hold(4)  # both workers run their sessions
        workers = worker_pids(process.pid)
        assert len(workers) == 2
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        for pid in workers:
            worker_line = Path(f"/proc/{pid}/cmdline").read_bytes()
            if worker_start == "fork":
                # No interpreter of its own: the command's process, forked.
                assert worker_line == command_line
            else:
                assert worker_line.split(b"\0")[1:3] == [b"-m", b"smtpload.net.workers"]
            # Its own process session (a terminal's Ctrl-C is the parent's), SIGINT ignored,
            # SIGTERM's default (no handler: it ends the worker).
            assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3]) == pid
            status = Path(f"/proc/{pid}/status").read_text()
            assert signal_mask(status, "SigIgn") & (1 << (signal.SIGINT - 1))
            assert not signal_mask(status, "SigCgt") & (1 << (signal.SIGTERM - 1))
        # Each worker's channel (its commands on fd 0, its reports) is between it and the
        # parent only: a pipe the other worker held would never read its end of file when
        # either end dies. (stdout and stderr, fds 1 and 2, are the command's, shared.)
        first, second = (pipes_of(pid, skip=(1, 2)) for pid in workers)
        parent = pipes_of(process.pid, skip=(1, 2))
        assert len(first) == len(second) == 2, (first, second)
        assert not first & second
        assert first | second <= parent
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        server.close()
    assert process.returncode == 130, stderr


def test_a_worker_that_dies_is_said_and_its_sessions_are_accounted_for(
    worker_start: str, tmp_path: Path
) -> None:
    server = StallingServer()
    process = start_stalled_run(tmp_path, server, 8)
    try:
        server.hold(4)  # both workers are running, two sessions each
        workers = worker_pids(process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        server.close()
    assert process.returncode == 130, stderr
    assert "ended without its results" in stderr
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    sessions = summary["sessions"]
    # The dead worker's sessions count if the parent had heard of them (a report a second):
    # every session the run knows was started has an outcome, interrupted here.
    assert sessions["started"] in (2, 4)
    assert sessions["passed"] == 0
    assert sessions["failures"]["interrupted"] == sessions["failed"] == sessions["started"]


def test_an_open_loop_run_counts_a_dead_workers_share_of_the_schedule(
    worker_start: str, tmp_path: Path
) -> None:
    server = StallingServer()
    process = start_smtpload(
        "run", "quickstart", "--target", f"127.0.0.1:{server.port}", "--rate", "20",
        "--duration", "2s", "--max-in-flight", "4", "--workers", "2", "--timeout", "60",
        "--results", str(tmp_path / "results"), "--json", str(tmp_path / "summary.json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        server.hold(4)  # two sessions in each worker, stalled
        workers = worker_pids(process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        server.close()
    assert process.returncode == 130, stderr
    assert "ended without its results" in stderr
    sessions = json.loads((tmp_path / "summary.json").read_text())["sessions"]
    # 20/s for 2 s: 40 sessions due, the dead worker's 20 among them.
    assert sessions["started"] + sessions["not_started"] == 40, sessions
    assert sessions["failures"]["interrupted"] == sessions["failed"] == sessions["started"]


def read_to_end(stream: IO[str], timeout_s: float) -> str:
    """Everything ``stream`` (a pipe) gives until its end, that is until every process that
    holds its other end has exited; fails after ``timeout_s``."""
    text = ""
    deadline = time.monotonic() + timeout_s
    fd = stream.fileno()
    while (left_s := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([fd], [], [], left_s)
        if not readable:
            break
        data = os.read(fd, 65536)
        if not data:
            return text
        text += data.decode("utf-8", "replace")
    raise AssertionError(f"still open after {timeout_s} s: {text}")


def test_the_workers_of_a_killed_parent_end_their_sessions_and_exit_quietly(
    worker_start: str,
    tmp_path: Path,
) -> None:
    server = StallingServer()
    process = start_stalled_run(tmp_path, server, 100)
    try:
        server.hold(4)  # two sessions in each worker, stalled mid-dialogue
        assert len(worker_pids(process.pid)) == 2
        process.kill()
        process.wait()
        assert process.stderr is not None
        # The workers hold the parent's stderr: its end is theirs.
        stderr = read_to_end(process.stderr, 30)
        for connection in server.connections:
            assert connection.recv(1024) == b""  # closed: no session goes on without the run
    finally:
        process.kill()
        process.communicate()
        server.close()
    assert "Traceback" not in stderr
    assert stderr == ""


def stop_a_worker(process: subprocess.Popen[str], server: StallingServer) -> list[int]:
    """Hold four sessions of a two-worker run, then SIGSTOP its first worker."""
    server.hold(4)
    workers = worker_pids(process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGSTOP)
    return workers


def end_stopped(workers: list[int]) -> None:
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)


def test_a_stopped_worker_is_killed_and_the_run_ends(worker_start: str, tmp_path: Path) -> None:
    server = StallingServer()
    process = start_stalled_run(tmp_path, server, 8)
    workers: list[int] = []
    try:
        workers = stop_a_worker(process, server)
        # The other worker stops in its grace; the stopped one says nothing: it is killed
        # after 10 s of silence, instead of the parent waiting for it for ever.
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=45)
    finally:
        process.kill()
        end_stopped(workers)
        server.close()
    assert process.returncode == 130, stderr
    assert "worker 1 of 2 said nothing for" in stderr
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    sessions = summary["sessions"]
    assert sessions["started"] + sessions["not_started"] == 8
    assert sessions["failures"]["interrupted"] == sessions["failed"] == sessions["started"]


def test_a_second_sigint_ends_a_run_with_a_stopped_worker_at_once(
    worker_start: str, tmp_path: Path
) -> None:
    server = StallingServer()
    process = start_stalled_run(tmp_path, server, 8)
    workers: list[int] = []
    try:
        workers = stop_a_worker(process, server)
        # Two signals (two kinds: trio folds repeats of one that were not read yet into one).
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGTERM)
        # Cut off now: the stopped worker gets 2 s, not the 10 s of silence (the message below
        # says which ended it; the bound leaves room for a busy machine).
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
        end_stopped(workers)
        server.close()
    assert process.returncode == 130, stderr
    assert "worker 1 of 2 did not end when cut off: killed" in stderr
    assert json.loads((tmp_path / "summary.json").read_text())["interrupted"] is True


@pytest.mark.parametrize(
    ("requested", "load_run", "sink", "expected"),
    [
        (None, True, False, 3),
        (None, False, False, 1),
        (None, True, True, 1),
        (2, False, True, 2),
        (5, False, False, 5),
    ],
)
def test_worker_count_auto_is_a_core_each_for_load_runs(
    requested: int | None, load_run: bool, sink: bool, expected: int
) -> None:
    assert worker_count(requested, load_run=load_run, builtin_sink=sink, cores=3) == expected


def test_auto_uses_every_core_for_a_run_of_more_than_1000_sessions(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    summary = run_json(
        tmp_path, "quickstart", "--target", target, "--sessions", "1001", "--concurrency", "10"
    )
    assert summary["load"]["workers"] == len(os.sched_getaffinity(0))
    small = run_json(
        tmp_path, "quickstart", "--target", target, "--sessions", "10", name="small.json"
    )
    assert small["load"]["workers"] == 1


@pytest.mark.parametrize("value", ["0", "-1", "many", "257"])
def test_a_wrong_workers_value_is_a_usage_error(tmp_path: Path, value: str) -> None:
    done = smtpload("run", "quickstart", "--workers", value, cwd=tmp_path)
    assert done.returncode == 2
    assert "--workers" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_api_runs_in_workers_too(tmp_path: Path) -> None:
    result = smtpload_api.run("quickstart", sessions=300, concurrency=6, workers=2)
    assert result.summary["load"]["workers"] == 2
    assert result.summary["sessions"]["passed"] == 300
    assert len(result.summary["generator"]["workers"]) == 2
    with pytest.raises(UsageError, match="workers=0"):
        smtpload_api.run("quickstart", workers=0)


PATTERN_SCENARIO = """\
name: patterns
variables:
  tag: {random: {min: 1, max: 9}}
  who: {choice: [a, b]}
steps:
  - greeting: {code: 220, text: 'ESMTP|smtp'}
  - send: EHLO client.example.test
    expect: {code: 250, text: '(?i)pipelining'}
    capture: '(?P<host>[a-z.]+) '
  - send: "MAIL FROM:<{who}{tag}@example.test>"
    expect: 250
  - send: QUIT
    expect: 221
"""


def scenario_files() -> list[Path]:
    """Every scenario of the checkout: the bundled ones, the test data's, a patterned one."""
    root = Path(__file__).resolve().parent.parent
    return sorted(
        path
        for folder in ("scenarios", "tests/data", "benchmarks")
        for path in (root / folder).rglob("*.yaml")
    )


def test_every_compiled_scenario_pickles_for_the_workers(tmp_path: Path) -> None:
    # A worker gets the compiled scenario as a pickle: whatever a scenario holds (RE2
    # patterns, captures, feeds, messages) must survive it and work the same.
    (tmp_path / "patterns.yaml").write_text(PATTERN_SCENARIO)
    compiled_any = 0
    for path in [*scenario_files(), tmp_path / "patterns.yaml"]:
        try:
            compiled = compile_scenario(load_scenario(path), seed=5)
        except (ScenarioError, UsageError):
            continue  # a file of wrong scenarios, for the error tests
        again = pickle.loads(pickle.dumps(compiled))
        assert again.step_names == compiled.step_names, path
        drawn, drawn_again = (c.session_variables(3, "run") for c in (compiled, again))
        drawn.pop("date", None), drawn_again.pop("date", None)  # the clock's, not the draws'
        assert drawn_again == drawn, path
        for step, copy in zip(compiled.steps, again.steps, strict=True):
            for pattern, copied in ((step.capture, copy.capture),):
                if pattern is not None:
                    assert copied is not None
                    assert copied.captures("250 mx.example.test ok") == pattern.captures(
                        "250 mx.example.test ok"
                    )
        compiled_any += 1
    assert compiled_any >= 12


def test_a_reply_pattern_pickles_as_its_text_and_matches_the_same() -> None:
    for pattern in (compile_text("(?i)pipe(lin)+ing$"), compile_capture("(?P<id>[0-9]+) ok")):
        again = pickle.loads(pickle.dumps(pattern))
        assert again.pattern == pattern.pattern
        assert again.groups == pattern.groups
        for text in ("250 PIPELINING", "250 pipelining x", "queued as 1234 ok", ""):
            assert again.search(text) == pattern.search(text)
            assert again.captures(text) == pattern.captures(text)


NESTED_REPEATS = """\
name: nested
steps:
  - greeting: 220
  - send: EHLO client.example.test
    expect: 250
  - repeat: {min: 3, max: 5}
    steps:
      - send: "MAIL FROM:<a@example.test>"
        expect: 250
      - send: "RCPT TO:<b@example.test>"
        expect: 250
      - send: DATA
        expect: 354
      - data: {body: "x\\n"}
        name: first
      - repeat: 2
        steps:
          - send: "MAIL FROM:<a@example.test>"
            expect: 250
            name: mail2
          - send: "RCPT TO:<b@example.test>"
            expect: 250
            name: rcpt2
          - send: DATA
            expect: 354
            name: data2
          - data: {body: "y\\n"}
            name: second
  - send: QUIT
    expect: 221
"""


def test_auto_counts_the_messages_of_persistent_sessions(tmp_path: Path) -> None:
    scenario = tmp_path / "nested.yaml"
    scenario.write_text(NESTED_REPEATS)
    compiled = compile_scenario(load_scenario(scenario), seed=1)
    # 3 (the least of the outer repeat) x (1 + 2) messages.
    assert compiled.least_messages_per_session == 9
    quickstart = compile_scenario(load_scenario(scenario_path("quickstart")))
    assert quickstart.least_messages_per_session == 1
    # 112 sessions of 9 messages: over 1,000 messages, a load run.
    cores = len(os.sched_getaffinity(0))

    def workers(requested: int | None, sessions: int, messages: int) -> int:
        return _run_workers(
            requested,
            load=None,
            sessions=sessions,
            messages=messages,
            concurrency=10,
            builtin_sink=False,
        )

    assert workers(None, 112, 112 * 9) == min(cores, 10)
    assert workers(None, 111, 111 * 9) == 1
    assert workers(4, 2, 2) == 2  # a worker needs a session of its own


def big_scenario(tmp_path: Path, size_mib: int) -> Path:
    """A scenario whose one message is ``size_mib`` MiB of an .eml file."""
    line = b"x" * 76 + b"\r\n"
    (tmp_path / "big.eml").write_bytes(
        b"Subject: big\r\n\r\n" + line * ((size_mib << 20) // len(line))
    )
    scenario = tmp_path / "big.yaml"
    scenario.write_text(
        "steps:\n  - greeting: 220\n  - send: EHLO client.test\n"
        "  - send: MAIL FROM:<a@example.test>\n  - send: RCPT TO:<b@example.test>\n"
        "  - send: DATA\n    expect: 354\n  - data: {file: big.eml}\n"
        "  - send: QUIT\n    expect: 221\n"
    )
    return scenario


# A spec smaller than a pipe's buffer is written at once; a larger one waits for the worker
# to read it, which a stopped worker never does.
@pytest.mark.parametrize("size_mib", [0, 1], ids=["small-spec", "spec-larger-than-the-pipe"])
def test_two_signals_while_a_worker_is_stuck_starting_end_the_run_at_once(
    worker_start: str, tmp_path: Path, size_mib: int
) -> None:
    server = StallingServer()
    scenario = "quickstart" if not size_mib else str(big_scenario(tmp_path, size_mib))
    process = start_smtpload(
        "run", scenario, "--target", f"127.0.0.1:{server.port}",
        "--sessions", "8", "--concurrency", "4", "--workers", "2",
        "--timeout", "60", "--results", str(tmp_path / "results"),
        "--json", str(tmp_path / "summary.json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    stuck = 0
    try:
        deadline = time.monotonic() + 30
        while not (workers := started_workers(process.pid)) and time.monotonic() < deadline:
            # It is starting (forked, or its interpreter importing): stop it before it can say
            # it is ready. A poll every millisecond, not a spin, so that the run itself gets
            # the cores.
            time.sleep(0.001)
        assert workers
        stuck = workers[0]
        os.kill(stuck, signal.SIGSTOP)
        # The signals are for the run (not for the start-up before it, where a second one
        # leaves at once without results, cli/interrupts.py): the parent's handling is in
        # place once the other worker runs its loop, as it had its spec from the run.
        while time.monotonic() < deadline:
            others = [pid for pid in worker_pids(process.pid) if pid != stuck]
            if others and runs_a_loop(others[0]):
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the other worker never ran its loop")
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGTERM)
        # Not the 60 s the workers have to start (the other worker may still be importing on
        # a busy machine), and results as for any interrupted run.
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        end_stopped([stuck] if stuck else [])
        server.close()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["sessions"]["started"] + summary["sessions"]["not_started"] == 8


def started_workers(parent: int) -> list[int]:
    """The parent's workers, but for a fresh interpreter's that has not run it yet: a process
    that subprocess forked and has not yet exec'd (a stop then would hold the parent's
    open_process, not the worker's start)."""
    command_line = Path(f"/proc/{parent}/cmdline").read_bytes()
    workers = []
    for pid in worker_pids(parent):
        with contextlib.suppress(OSError):
            line = Path(f"/proc/{pid}/cmdline").read_bytes()
            forked = os.environ.get(FORK_VARIABLE) != "0"
            if line == command_line if forked else b"smtpload.net.workers" in line:
                workers.append(pid)
    return workers


def runs_a_loop(pid: int) -> bool:
    """Whether process ``pid`` has an epoll instance open: trio's loop runs in it."""
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == "anon_inode:[eventpoll]":
                    return True
    return False


def parent_peak_rss_mib(tmp_path: Path, workers: int, scenario: Path) -> float:
    """The peak resident memory of a run's parent, once every worker's session is under way
    (the specs were made and sent before that), in MiB."""
    server = StallingServer()
    process = start_smtpload(
        "run", str(scenario), "--target", f"127.0.0.1:{server.port}",
        "--sessions", str(workers), "--concurrency", str(workers), "--workers", str(workers),
        "--timeout", "60", "--results", str(tmp_path / "results"), "--quiet",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        server.hold(workers)
        status = Path(f"/proc/{process.pid}/status").read_text()
        (peak_kib,) = [int(line.split()[1]) for line in status.splitlines() if "VmHWM" in line]
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGTERM)  # cut off now: no grace to wait out
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        server.close()
    assert process.returncode == 130, stderr
    return peak_kib / 1024


def test_a_large_scenario_is_pickled_once_for_all_the_workers(tmp_path: Path) -> None:
    scenario = big_scenario(tmp_path, 16)
    two = parent_peak_rss_mib(tmp_path, 2, scenario)
    four = parent_peak_rss_mib(tmp_path, 4, scenario)
    # A copy of the 16 MiB message per worker would be 32 MiB more with four than with two.
    assert four - two < 10, (two, four)


async def test_a_worker_is_told_two_things_at_once_one_after_the_other() -> None:
    # A signal's stop and --abort-on-threshold's abort can be told in the same moment: trio
    # refuses two tasks in one stream's send_all, which crashed the parent.
    worker = await workers_module._start_worker(0)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.tell, ("stop",))
            nursery.start_soon(worker.tell, ("abort",))
    finally:
        worker.process.kill()
        await worker.process.wait()
        await worker.stdin.aclose()


def test_run_shard_is_a_unit_of_work_whose_totals_add_up_without_a_live_channel(
    aiosmtpd_server: RecordingPeer,
) -> None:
    # What a distributed engine would do: run each shard with run_shard (its own trio loop,
    # no signal handling, no channel), then add up the totals, intervals in them.
    compiled = compile_scenario(load_scenario(scenario_path("quickstart")), seed=4)
    target = trio.run(resolve_target, aiosmtpd_server.host, aiosmtpd_server.port)
    settings = RunSettings(sessions=30, concurrency=6, run_id="shards", workers=2)
    totals = [
        run_shard(ShardSpec(compiled, target, shard_settings(settings, index, 2, None)))
        for index in range(2)
    ]
    assert [t.counts.started for t in totals] == [15, 15]
    assert all(t.intervals and t.intervals[-1].last for t in totals)
    run = RunStats(["connect", *compiled.step_names])
    run.intervals = IntervalLog(run, 0.0)
    run.start_intervals()
    merger = ShardMerger(run, 2)
    for index, shard in enumerate(totals):
        merger.add_totals(index, shard)
    merger.finish()
    assert (run.started, run.passed, run.messages) == (30, 30, 30)
    assert all(step.latency.count == 30 for step in run.steps.values())
    # The session numbers of one run of 30: each shard ran its own, none twice ({uid} is
    # <run_id>.<session>, in each message's Message-ID).
    numbers = sorted(
        int(re.search(rb"<shards\.(\d+)\.", m.content)[1])  # type: ignore[index]
        for m in aiosmtpd_server.handler.messages
    )
    assert numbers == list(range(1, 31))
