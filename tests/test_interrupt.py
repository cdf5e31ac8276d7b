"""Ctrl-C and SIGTERM on a real ``smtpload run`` process: exit 130, every result still written.

The server is a plain listening socket in the test: it greets each session and then says
nothing, so the sessions are provably mid-dialogue when the signal arrives.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.cli import start_smtpload

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
