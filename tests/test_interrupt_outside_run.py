"""Ctrl-C and SIGTERM outside the sessions: while smtpload starts up, and while it writes.

Each test runs the real ``python -m smtpload`` held at a known moment by ``tests/stall.py`` (an
audit hook that waits while the test sends the signal), so the signal lands exactly in the
window under test: while trio or PyYAML is being imported, while the scenario is read, inside
the run before its own signal handling exists, while a result file is opened. No sleeps, no
mocks: the servers are the built-in sink.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from smtpload.regression.baseline import load_baseline
from tests.stall import NOTIFY_ENV, RESUME_ENV

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT / "tests" / "data" / "transcripts"
WAIT_S = 60.0

SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM


@contextlib.contextmanager
def stalled(
    event: str, text: str, nth: int, args: Sequence[str]
) -> Iterator[subprocess.Popen[str]]:
    """``python -m smtpload ARGS``, held at its ``nth`` ``event`` matching ``text``; yields the
    process while it is held, and lets it go on when the block ends."""
    notify_r, notify_w = os.pipe()
    resume_r, resume_w = os.pipe()
    env = {**os.environ, NOTIFY_ENV: str(notify_w), RESUME_ENV: str(resume_r)}
    command = [sys.executable, "-m", "tests.stall", event, text, str(nth), "--", *args]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        pass_fds=(notify_w, resume_r),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(notify_w)
    os.close(resume_r)
    try:
        ready, _, _ = select.select([notify_r], [], [], WAIT_S)
        if not ready or os.read(notify_r, 1) != b"!":
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(f"smtpload never reached {event} {text!r} #{nth}: {stderr}")
        yield process
        with contextlib.suppress(BrokenPipeError):  # it may have ended at the signal
            os.write(resume_w, b"!")
    finally:
        os.close(notify_r)
        os.close(resume_w)
        if process.poll() is None and sys.exc_info()[0] is not None:
            process.kill()


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=WAIT_S)
    return stdout, stderr


def assert_clean_130(process: subprocess.Popen[str], stderr: str) -> None:
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "KeyboardInterrupt" not in stderr


def run_args(tmp_path: Path, scenario: str = "quickstart", *more: str) -> list[str]:
    return ["run", scenario, "--results", str(tmp_path / "results"), *more]


# --- start-up -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "signum"),
    [
        ("trio", SIGINT),
        ("yaml", SIGTERM),
        ("smtpload.cli.regression", SIGINT),
    ],
)
def test_a_signal_while_importing_ends_with_130_and_no_traceback(
    tmp_path: Path, module: str, signum: signal.Signals
) -> None:
    # The moments are spread over the import of the commands (trio first, smtpload's own
    # modules last): wherever the signal lands, the end is the same.
    with stalled("import", module, 1, run_args(tmp_path)) as process:
        process.send_signal(signum)
    _, stderr = finish(process)
    assert_clean_130(process, stderr)
    assert stderr == ""
    assert not (tmp_path / "results").exists()  # nothing ran, so nothing is written


def test_a_signal_while_reading_the_scenario_ends_with_130(tmp_path: Path) -> None:
    signum = SIGTERM  # (SIGINT is Python's KeyboardInterrupt here, which main always caught)
    scenario = tmp_path / "slow-to-read.yaml"
    scenario.write_text((ROOT / "scenarios" / "quickstart.yaml").read_text())
    with stalled("open", str(scenario), 1, run_args(tmp_path, str(scenario))) as process:
        process.send_signal(signum)
    _, stderr = finish(process)
    assert_clean_130(process, stderr)
    assert not (tmp_path / "results").exists()


# --- inside the run, before its own handling is in place ------------------------------------


@pytest.mark.parametrize("signum", [SIGINT, SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_before_the_run_handles_signals_stops_it_and_writes_results(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # The built-in sink binds its socket inside the trio run, before the runner listens for
    # signals: a signal then is noted and stops the run as soon as the runner starts.
    summary_path = tmp_path / "summary.json"
    args = run_args(tmp_path, "quickstart", "--sessions", "50", "--json", str(summary_path))
    with stalled("socket.bind", "127.0.0.1", 1, args) as process:
        process.send_signal(signum)
    _, stderr = finish(process)
    assert_clean_130(process, stderr)
    summary = json.loads(summary_path.read_text())
    assert summary["interrupted"] is True
    assert summary["sessions"]["started"] == 0
    assert summary["sessions"]["not_started"] == 50
    (run_dir,) = (tmp_path / "results").iterdir()
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert (run_dir / "failures.log").read_text() == "no failed sessions\n"


def test_a_signal_between_two_replayed_sessions_stops_the_replay(tmp_path: Path) -> None:
    # seed-blog.txt holds two sessions, each replayed in its own run; without a port on its
    # telnet lines, each run starts its own sink. Held at the second sink's bind, the signal
    # falls between the runs.
    transcript = tmp_path / "two-sessions.txt"
    text = (TRANSCRIPTS / "seed-blog.txt").read_text(encoding="utf-8")
    transcript.write_text(text.replace(" 25 ←", " ←").replace("localhost 25", "localhost"))
    args = ["replay", str(transcript)]
    with stalled("socket.bind", "127.0.0.1", 2, args) as process:
        process.send_signal(SIGTERM)
    stdout, stderr = finish(process)
    assert_clean_130(process, stderr)
    assert "session 2:" in stdout
    assert stdout.rstrip().endswith("=> interrupted")


# --- while the results are written ----------------------------------------------------------


def assert_complete_hgrm(path: Path) -> None:
    last = path.read_text().splitlines()[-1]
    assert last.startswith("#[Buckets"), (path, last)


@pytest.mark.parametrize("signum", [SIGINT, SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_while_writing_the_results_lets_every_file_be_written_whole(
    tmp_path: Path, signum: signal.Signals
) -> None:
    summary_path = tmp_path / "summary.json"
    args = run_args(tmp_path, "quickstart", "--sessions", "3", "--json", str(summary_path))
    # Held while opening the second step's .hgrm: summary.json and one .hgrm are written.
    with stalled("open", "step-02-", 1, args) as process:
        process.send_signal(signum)
    stdout, stderr = finish(process)
    assert_clean_130(process, stderr)
    (run_dir,) = (tmp_path / "results").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["sessions"]["passed"] == 3  # the run itself was over: it is all there
    assert json.loads(summary_path.read_text()) == summary
    names = [step["name"] for step in summary["steps"]]
    hgrms = [run_dir / f"step-{i:02d}-{name}.hgrm" for i, name in enumerate(names)]
    for path in [*hgrms, run_dir / "session.hgrm"]:
        assert_complete_hgrm(path)
    assert (run_dir / "failures.log").read_text() == "no failed sessions\n"
    assert "sessions: 3 started, 3 passed" in stdout


def test_a_second_signal_while_writing_stops_at_once(tmp_path: Path) -> None:
    # The user insists (or the write is stuck): the second signal ends the process now. Two
    # different signals, because two of the same may reach Python as one.
    with stalled("open", "step-02-", 1, run_args(tmp_path)) as process:
        process.send_signal(SIGINT)
        process.send_signal(SIGTERM)
        # Held in the hook, it never gets to write step-02: the second signal ended it.
        _, stderr = finish(process)
    assert_clean_130(process, stderr)
    (run_dir,) = (tmp_path / "results").iterdir()
    assert not list(run_dir.glob("step-02-*"))


def test_a_signal_while_record_writes_the_baseline_leaves_it_whole(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    args = ["record", "quickstart", "-o", str(baseline), "--sessions", "2"]
    # report/files.py opens ".baseline.json.<random>" beside it twice: first a probe before the
    # run (a signal then ends it writing nothing), then the temporary file the baseline is
    # written to and renamed from. Stall at the second.
    with stalled("open", "/.baseline.json.", 2, args) as process:
        process.send_signal(SIGTERM)
    _, stderr = finish(process)
    assert_clean_130(process, stderr)
    assert load_baseline(baseline).sessions == 2


def test_a_signal_while_import_writes_scenarios_leaves_each_whole(tmp_path: Path) -> None:
    out = tmp_path / "seed.yaml"
    args = ["import", str(TRANSCRIPTS / "seed-blog.txt"), "-o", str(out)]
    with stalled("open", "seed-2.yaml", 1, args) as process:
        process.send_signal(SIGINT)
    _, stderr = finish(process)
    assert_clean_130(process, stderr)
    for path in (out, tmp_path / "seed-2.yaml"):
        assert path.read_text().endswith("  - close: true\n"), path


def test_a_sigterm_before_the_sinks_own_handling_stops_it_cleanly() -> None:
    # Held at trio.run's first socket (its wake-up pair): after the command's set-up, before the
    # sink's signal receiver. SIGTERM's default there used to kill the process (exit 143).
    with stalled("socket.__new__", "", 1, ["sink", "--listen", "127.0.0.1:0"]) as process:
        process.send_signal(SIGTERM)
    stdout, stderr = finish(process)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert stdout.startswith("smtpload sink stopped:"), stdout


def test_a_signal_stops_an_open_loop_run_at_once_and_counts_what_never_came(
    tmp_path: Path,
) -> None:
    # 50 sessions/s for 30 s would be 1,500; held at the 20th session's connect, a SIGINT stops
    # the schedule at once (it does not wait for the next session due), and every session that
    # was planned is either started or counted as not started.
    summary_path = tmp_path / "summary.json"
    args = run_args(
        tmp_path, "quickstart", "--rate", "50", "--duration", "30s", "--json", str(summary_path)
    )
    with stalled("socket.connect", "127.0.0.1", 20, args) as process:
        process.send_signal(SIGINT)
    _, stderr = finish(process)
    assert_clean_130(process, stderr)
    summary = json.loads(summary_path.read_text())
    assert summary["interrupted"] is True
    assert summary["load"]["model"] == "open"
    sessions = summary["sessions"]
    assert 20 <= sessions["started"] < 1500
    assert sessions["started"] + sessions["not_started"] == 1500
    assert summary["duration_s"] < 15  # the run did not go on to its 30 s
