"""Instructions a session costs smtpload, counted by valgrind: a figure that drifts little.

On the 2-core VMs this project is measured on, the CPU time of the same run drifts by 25 % from
minute to minute (benchmarks/bench_head_to_head.py's rounds), so a hot-path change of a few per
cent cannot be seen in CPU times. ``valgrind --tool=callgrind`` counts the user-space
instructions a process executes instead. The start-up's count repeats to 0.2 %; a session's
varies by up to ~3 % from run to run (830.6-853.4 k in 4 runs of one commit here: the sink's
timing still decides how replies fall into reads and how the scheduler batches), whatever else
the machine is doing. Compare trees over two or more runs each. The kernel's share (the
syscalls, about the same as smtp-source's) is not in it.

What it runs: the head-to-head benchmark's connection-per-message shape (1 KiB, 100 parallel,
lock-step or ``--pipelined``) against Postfix's ``smtp-sink`` on loopback, once with 1 session
(the start-up: imports, the scenario, the result files) and once with ``--sessions`` (default
1,000), and prints the difference per session. Under valgrind a run takes ~50x longer in wall
time, and the runner's periodic tasks (the 10 ms generator watch, the 1 s interval log) would
add work in proportion to that wall time, which a real run at full speed does not have: they are
slowed to never for this count (the run's own ``_TICK_S`` and ``_INTERVAL_S``, set before it
starts). Everything else is the real ``smtpload run``.

Usage (needs valgrind and smtp-sink: .ci/postfix-setup):

    python3 benchmarks/bench_instructions.py                    # this checkout, ~1 min
    python3 benchmarks/bench_instructions.py --checkout ../old  # another one, to compare

It is not a CPU-time figure (an instruction is not a fixed time, and the kernel's share is left
out), and it is not comparable across programs (a C client's event loop runs differently at
valgrind's speed): it compares smtpload with itself.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/ as a package, run from anywhere

from benchmarks.h2h_clients import CHECKOUT, Shape, scenario_text  # noqa: E402
from benchmarks.smtp_sink import LOOPBACK, find_smtp_sink, free_port, smtp_sink  # noqa: E402

#: ``smtpload run`` with the periodic tasks slowed to never (see the module docstring).
_WRAPPER = """\
import sys
import smtpload.net.runner as runner
runner._TICK_S = runner._INTERVAL_S = 1e9
from smtpload.cli.entry import entry_point
sys.argv[0] = "smtpload"
entry_point()
"""

_TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.M)


def count_instructions(checkout: Path, scenario: Path, sessions: int, target: str) -> int:
    """The instructions of one ``smtpload run`` of ``sessions`` (100 at a time) under callgrind."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, "-c", _WRAPPER, "run", str(scenario),
            "--sessions", str(sessions), "--concurrency", "100", "--target", target,
            "--results", str(Path(scratch) / "results"), "--quiet", "--workers", "1",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        # From the scratch folder: ``python -c`` puts the working directory first on the path,
        # and run from a checkout it would import that one whatever ``checkout`` says.
        done = subprocess.run(
            command, env=env, cwd=scratch, capture_output=True, timeout=1800, check=False
        )
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-2000:]
            raise SystemExit(f"smtpload under valgrind exited {done.returncode}:\n{tail}")
        found = _TOTALS.search(out.read_bytes())
        if found is None:
            raise SystemExit(f"no instruction total in {out}")
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, default=CHECKOUT, help="the smtpload to count")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions of the long run")
    parser.add_argument("--pipelined", action="store_true", help="MAIL/RCPT/DATA pipelined")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (apt-get install valgrind)")
    if find_smtp_sink() is None:
        raise SystemExit("smtp-sink not found: install Postfix (sudo .ci/postfix-setup)")
    if args.sessions < 2:
        raise SystemExit("--sessions: at least 2")
    # smtpload's modules compiled first, as bench_head_to_head.py does (pip does on install):
    # with PYTHONDONTWRITEBYTECODE set, each run would count compiling them.
    compileall.compile_dir(str(args.checkout / "smtpload"), quiet=1)
    shape = Shape("cpm-1k-100", True, 1024, 100, args.sessions)
    started = time.perf_counter()
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch, smtp_sink(port):
        scenario = Path(scratch) / "scenario.yaml"
        scenario.write_text(scenario_text(shape, pipelined=args.pipelined))
        target = f"{LOOPBACK}:{port}"
        start_up = count_instructions(args.checkout, scenario, 1, target)
        total = count_instructions(args.checkout, scenario, args.sessions, target)
    per_session = (total - start_up) / (args.sessions - 1)
    at_10k = per_session + start_up / 10_000
    kind = "pipelined" if args.pipelined else "lock-step"
    print(
        f"smtpload at {args.checkout}, cpm 1 KiB {kind}, 100 parallel, against smtp-sink"
        f" ({time.perf_counter() - started:.0f} s):\n"
        f"  a 1-session run:      {start_up / 1e6:8.1f} M instructions (start-up)\n"
        f"  {args.sessions:,} sessions:       {total / 1e6:8.1f} M\n"
        f"  a session:            {per_session / 1e3:8.1f} k"
        f" ({at_10k / 1e3:.1f} k with the start-up spread over 10,000)"
    )
    if args.json is not None:
        figures = {
            "checkout": str(args.checkout),
            "mode": kind,
            "sessions": args.sessions,
            "start_up_instructions": start_up,
            "total_instructions": total,
            "instructions_per_session": per_session,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
