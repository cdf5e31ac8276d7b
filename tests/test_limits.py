"""What smtpload bounds, and what happens at each bound (the README's "Limits").

Memory is measured in a separate process (``ru_maxrss``, the peak resident set), which also runs
under an address-space limit, so that a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Where a probe process starts from: its peak resident set before the work, and after.
_PROBE = """\
import json, resource, sys
from smtpload.cli.main import main
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
status = main(sys.argv[1:])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"status": status, "growth_kib": after - before}))
"""

_ADDRESS_SPACE_BYTES = 1536 * 1024 * 1024
MIB = 1024 * 1024


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_ADDRESS_SPACE_BYTES, _ADDRESS_SPACE_BYTES))


def probe(*args: str, cwd: Path) -> dict[str, Any]:
    """Run ``smtpload ARGS`` in a fresh process; its exit status and peak memory growth."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_limit_address_space,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


# --- item: message size ---------------------------------------------------------------------

MESSAGE_BYTES = 20_000_000


def test_concurrent_large_messages_cost_less_than_one_copy_of_the_message(tmp_path: Path) -> None:
    # A generated message: its header (Message-ID, Date) is rendered for every session.
    scenario = tmp_path / "large.yaml"
    scenario.write_text(
        textwrap.dedent(
            f"""\
            steps:
              - greeting: 220
              - send: EHLO smtpload.test
                expect: 250
              - send: MAIL FROM:<a@example.test>
                expect: 250
              - send: RCPT TO:<b@example.test>
                expect: 250
              - send: DATA
                expect: 354
              - data: {{size: {MESSAGE_BYTES}}}
              - send: QUIT
                expect: 221
            """
        )
    )
    summary = tmp_path / "summary.json"
    measured = probe(
        "run",
        str(scenario),
        "--sessions",
        "20",
        "--concurrency",
        "20",
        "--results",
        str(tmp_path / "results"),
        "--json",
        str(summary),
        "--quiet",
        cwd=tmp_path,
    )
    assert measured["status"] == 0
    sessions = json.loads(summary.read_text())["sessions"]
    assert sessions["passed"] == 20
    # 20 sessions of 20 MB each in flight against the built-in sink (in the same process):
    # together they cost less than one copy of the message.
    assert measured["growth_kib"] * 1024 < MESSAGE_BYTES
