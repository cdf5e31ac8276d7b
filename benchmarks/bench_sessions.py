"""Sessions per second and CPU per session: smtpload against Postfix's smtp-source.

Both clients run, one after the other, against the same Postfix ``smtp-sink`` on loopback, doing
the same work: one connection per message, EHLO, MAIL, RCPT, DATA, a 1 KiB message, QUIT.
CPU time is the client process's user+system time (``getrusage(RUSAGE_CHILDREN)``), so it
includes smtpload's interpreter start-up (about 0.13 s); the summary's own rate, which
excludes start-up, is printed beside it. Results are ratios measured in the same run on the
same machine, never absolute promises.

``--loop-clock`` also runs this checkout with ``--clock loop``, for what the kernel's receive
times cost. ``--beside DIR`` also runs the smtpload of another checkout (say, the commit before
a change, from ``git archive``) in the same rounds. Either prints the CPU per session of both:
what a change costs, measured, not guessed.

Usage (needs Postfix's smtp-sink and smtp-source; .ci/postfix-setup installs them):

    python benchmarks/bench_sessions.py [--sessions 20000] [--concurrency 100] [--rounds 3]
        [--beside DIR] [--loop-clock]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script, benchmarks/ is on the path, not the checkout that holds the package.
sys.path.insert(0, str(HERE.parent))

from benchmarks.smtp_sink import free_port, smtp_sink  # noqa: E402

SCENARIO = HERE / "one-message.yaml"


@dataclass(frozen=True, slots=True)
class Measurement:
    client: str
    sessions: int
    wall_s: float
    cpu_s: float
    own_rate_per_s: float | None = None  # as the client itself reports it

    @property
    def rate_per_s(self) -> float:
        return self.sessions / self.wall_s

    @property
    def cpu_us_per_session(self) -> float:
        return self.cpu_s / self.sessions * 1e6


def _measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``command`` to completion; return (wall seconds, CPU seconds) of it alone."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run_smtp_source(port: int, sessions: int, concurrency: int) -> Measurement:
    command = [
        "smtp-source", "-s", str(concurrency), "-m", str(sessions), "-l", "1024",
        "-f", "sender@example.test", "-t", "recipient@example.test", f"127.0.0.1:{port}",
    ]  # fmt: skip
    wall, cpu = _measure(command)
    return Measurement("smtp-source", sessions, wall, cpu)


#: This checkout: the smtpload measured, whatever copy of it happens to be installed.
CHECKOUT = HERE.parent


def run_smtpload(
    port: int,
    sessions: int,
    concurrency: int,
    checkout: Path = CHECKOUT,
    label: str = "smtpload",
    options: tuple[str, ...] = (),
) -> Measurement:
    with tempfile.TemporaryDirectory() as scratch:
        summary_path = Path(scratch) / "summary.json"
        command = [
            sys.executable, "-m", "smtpload", "run", str(SCENARIO),
            "--target", f"127.0.0.1:{port}",
            "--sessions", str(sessions), "--concurrency", str(concurrency),
            "--results", scratch, "--json", str(summary_path), "--quiet", *options,
        ]  # fmt: skip
        wall, cpu = _measure(command, {**os.environ, "PYTHONPATH": str(checkout)})
        summary = json.loads(summary_path.read_text())
    if summary["sessions"]["passed"] != sessions:
        raise SystemExit(f"{label}: not every session passed: {summary['sessions']}")
    return Measurement(label, sessions, wall, cpu, summary["throughput"]["sessions_per_s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds; the best is kept"
    )
    parser.add_argument(
        "--beside",
        type=Path,
        metavar="DIR",
        help="another checkout whose smtpload runs in the same rounds, for its CPU per session",
    )
    parser.add_argument(
        "--loop-clock",
        action="store_true",
        help="also run this checkout with --clock loop, for what the kernel clock costs",
    )
    args = parser.parse_args()
    for tool in ("smtp-sink", "smtp-source"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install Postfix (sudo .ci/postfix-setup)")
    port = free_port()
    runs: list[Callable[[int, int, int], Measurement]] = [run_smtp_source, run_smtpload]
    if args.beside is not None:
        beside = args.beside.resolve()
        runs.append(functools.partial(run_smtpload, checkout=beside, label="beside"))
    if args.loop_clock:
        loop = functools.partial(run_smtpload, label="loop clock", options=("--clock", "loop"))
        runs.append(loop)
    best: dict[str, Measurement] = {}
    least_cpu_us: dict[str, float] = {}
    with smtp_sink(port):
        for _ in range(args.rounds):
            for run in runs:
                result = run(port, args.sessions, args.concurrency)
                kept = best.get(result.client)
                if kept is None or result.rate_per_s > kept.rate_per_s:
                    best[result.client] = result
                least_cpu_us[result.client] = min(
                    result.cpu_us_per_session,
                    least_cpu_us.get(result.client, result.cpu_us_per_session),
                )
    anchor = best["smtp-source"]
    print(
        f"{args.sessions} sessions, concurrency {args.concurrency}, best of {args.rounds}, "
        "against Postfix smtp-sink on loopback"
    )
    print(f"{'client':<12} {'sessions/s':>11} {'CPU µs/session':>15} {'rate vs smtp-source':>20}")
    for result in best.values():
        print(
            f"{result.client:<12} {result.rate_per_s:>11.0f} {result.cpu_us_per_session:>15.0f} "
            f"{result.rate_per_s / anchor.rate_per_s:>19.2f}x"
        )
    own = best["smtpload"].own_rate_per_s
    if own is not None:
        print(f"smtpload's own summary, start-up excluded: {own:.0f} sessions/s")
    for other, named in (("beside", str(args.beside)), ("loop clock", "--clock loop")):
        if other in best:
            ratio = least_cpu_us["smtpload"] / least_cpu_us[other]
            print(
                f"CPU per session, least of {args.rounds} rounds: this checkout "
                f"{least_cpu_us['smtpload']:.1f} µs, {named} {least_cpu_us[other]:.1f} µs: "
                f"{(ratio - 1) * 100:+.1f} %"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
