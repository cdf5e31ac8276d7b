"""``smtpload ... | head -1``: a reader of stdout that has gone costs nothing but the output.

Each command runs as a real ``python -m smtpload`` process whose stdout is a pipe whose read end
the test closed before the process started, the most abrupt ``head``: every write to stdout
fails with EPIPE. The command must still do all its work (results, files), say nothing about
the pipe on stderr, and exit with its own status.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.cli import COMMAND, environment, start_smtpload

ROOT = Path(__file__).resolve().parent.parent
SEED_BLOG = ROOT / "tests" / "data" / "transcripts" / "seed-blog.txt"
WAIT_S = 60.0


def run_with_pipes(
    *args: str, stdout_closed: bool = True, stderr_too: bool = False
) -> tuple[int, str]:
    """Run ``python -m smtpload ARGS``; return its exit status and stderr."""
    read_end, write_end = os.pipe()
    if stdout_closed:
        os.close(read_end)  # the reader has gone before the first line
    try:
        process = subprocess.run(
            [*COMMAND, *args],
            cwd=ROOT,
            env=environment(),
            stdout=write_end,
            stderr=write_end if stderr_too else subprocess.PIPE,
            text=True,
            timeout=WAIT_S,
            check=False,
        )
    finally:
        os.close(write_end)
        if not stdout_closed:
            os.close(read_end)
    return process.returncode, process.stderr or ""


def the_run_folder(results: Path) -> Path:
    (run_dir,) = results.iterdir()
    return run_dir


@pytest.mark.parametrize(
    ("scenario", "status"), [("quickstart", 0), ("rejected-recipient", 1)], ids=["pass", "fail"]
)
def test_run_writes_its_results_and_keeps_its_status(
    tmp_path: Path, scenario: str, status: int
) -> None:
    results = tmp_path / "results"
    assert run_with_pipes("run", scenario, "--results", str(results)) == (status, "")
    run_dir = the_run_folder(results)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["sessions"]["started"] == 1
    assert summary["sessions"]["passed"] == 1 - status
    assert (run_dir / "failures.log").is_file()
    timed = [step for step in summary["steps"] if step["latency_ms"] is not None]
    assert len(list(run_dir.glob("step-*.hgrm"))) == len(timed)


def test_json_to_a_closed_stdout_costs_only_that_output(tmp_path: Path) -> None:
    # `smtpload run --json /dev/stdout | true`: the summary's reader has gone.
    results = tmp_path / "results"
    args = ["run", "quickstart", "--quiet", "--json", "/dev/stdout", "--results", str(results)]
    assert run_with_pipes(*args) == (0, "")
    assert (the_run_folder(results) / "summary.json").is_file()


def test_run_with_stdout_and_stderr_on_the_closed_pipe(tmp_path: Path) -> None:
    # `smtpload run ... 2>&1 | head -1`: the progress and error streams have lost their reader too.
    results = tmp_path / "results"
    status, _ = run_with_pipes("run", "quickstart", "--results", str(results), stderr_too=True)
    assert status == 0
    assert (
        json.loads((the_run_folder(results) / "summary.json").read_text())["interrupted"] is False
    )


def test_replay_runs_every_step_and_keeps_its_status() -> None:
    # replay prints each step while the session runs, inside the trio run. The sink accepts
    # the unknown user, so this replay fails: exit status 1, as with a reader.
    assert run_with_pipes("replay", "rejected-recipient") == (1, "")


def test_import_says_what_it_did_and_exits_0() -> None:
    status, stderr = run_with_pipes("import", str(SEED_BLOG))
    assert status == 0
    # The notes on stderr are the same as with a reader, and nothing else is there.
    assert stderr == run_with_pipes("import", str(SEED_BLOG), stdout_closed=False)[1]
    assert "format: telnet" in stderr


def test_import_to_files_still_writes_them(tmp_path: Path) -> None:
    status, _ = run_with_pipes("import", str(SEED_BLOG), "-o", str(tmp_path / "seed.yaml"))
    assert status == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["seed-2.yaml", "seed.yaml"]


def test_validate_keeps_its_status(tmp_path: Path) -> None:
    assert run_with_pipes("validate", "quickstart", "seed-telnet") == (0, "")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - sned: HELO x\n")
    status, stderr = run_with_pipes("validate", "quickstart", str(bad))
    assert status == 2
    assert stderr.startswith(f"{bad}:2:")  # the error still reaches stderr
    assert "Traceback" not in stderr


def test_sink_keeps_serving_after_its_reader_has_gone() -> None:
    # `smtpload sink | head -1` used to say "cannot listen on ...: Broken pipe" and exit.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    read_end, write_end = os.pipe()
    os.close(read_end)
    process = start_smtpload(
        "sink", "--listen", f"127.0.0.1:{port}", cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE
    )
    os.close(write_end)
    try:
        banner = b""
        for _ in range(600):  # bounded: until the sink listens (or it has exited)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as client:
                    banner = client.recv(1024)
                    client.sendall(b"QUIT\r\n")
                    client.recv(1024)
                break
            except ConnectionRefusedError:
                try:
                    process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                break
        assert process.poll() is None, process.communicate()[1]
        assert banner.startswith(b"220 ")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
    assert process.returncode == 0
    assert stderr == ""
