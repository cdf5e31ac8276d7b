"""Messages per second and CPU per message over persistent connections: smtpload pipelined and
in lock-step, beside Postfix's smtp-source.

All three run, one after the other, against the same Postfix ``smtp-sink`` on loopback, doing
the same work: ``--sessions`` connections kept open, each carrying its share of ``--messages``
transactions of MAIL, three RCPTs and DATA, a 1 KiB message, then QUIT. smtp-source does it
with ``-d`` (the next message over the same connection) and ``-r 3``; smtpload with a
``repeat`` around the transaction, its MAIL/RCPT/DATA in a ``pipeline`` group (one write:
RFC 2920) or, for the lock-step run, without it. CPU time is the client process's user+system
time (``getrusage(RUSAGE_CHILDREN)``), so smtpload's includes its interpreter start-up (about
0.13 s). Results are ratios measured in the same run on the same machine, never absolute
promises.

Usage (needs Postfix's smtp-sink and smtp-source; .ci/postfix-setup installs them):

    python benchmarks/bench_persistent.py [--messages 20000] [--sessions 20] [--rounds 3]
        [--beside DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.bench_sessions import _measure  # noqa: E402
from benchmarks.smtp_sink import free_port, smtp_sink  # noqa: E402

#: The persistent session; {pipeline} is the group's key or nothing (lock-step).
SCENARIO = """\
name: persistent-{label}
timeout: 30
steps:
  - greeting: 220
  - send: EHLO smtpload.example.test
    expect: 250
  - repeat: {per_session}
    steps:
      - {group}
          - send: MAIL FROM:<sender@example.test>
            name: mail
          - rcpt: {{to: "recipient{{recipient}}@example.test", count: 3}}
          - send: DATA
            expect: 354
      - data:
          message: |
            From: <sender@example.test>
            To: <recipient@example.test>
            Subject: smtpload benchmark

          size: 1024
        expect: 250
  - send: QUIT
    expect: 221
"""


@dataclass(frozen=True, slots=True)
class Measurement:
    client: str
    messages: int
    wall_s: float
    cpu_s: float
    groups_pipelined: int | None = None

    @property
    def rate_per_s(self) -> float:
        return self.messages / self.wall_s

    @property
    def cpu_us_per_message(self) -> float:
        return self.cpu_s / self.messages * 1e6


def run_smtp_source(port: int, messages: int, sessions: int) -> Measurement:
    command = [
        "smtp-source", "-d", "-s", str(sessions), "-m", str(messages), "-r", "3",
        "-l", "1024", "-f", "sender@example.test", "-t", "recipient@example.test",
        f"127.0.0.1:{port}",
    ]  # fmt: skip
    wall, cpu = _measure(command)
    return Measurement("smtp-source -d", messages, wall, cpu)


def run_smtpload(
    port: int,
    messages: int,
    sessions: int,
    *,
    pipelined: bool,
    checkout: Path = HERE.parent,
    prefix: str = "smtpload",
) -> Measurement:
    label = "pipelined" if pipelined else "lock-step"
    per_session = messages // sessions
    group = "pipeline:" if pipelined else "repeat: 1\n        steps:"
    text = SCENARIO.format(label=label, per_session=per_session, group=group)
    with tempfile.TemporaryDirectory() as scratch:
        scenario = Path(scratch) / "persistent.yaml"
        scenario.write_text(text)
        summary_path = Path(scratch) / "summary.json"
        command = [
            sys.executable, "-m", "smtpload", "run", str(scenario),
            "--target", f"127.0.0.1:{port}", "--sessions", str(sessions),
            "--concurrency", str(sessions), "--results", scratch,
            "--json", str(summary_path), "--quiet",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        wall, cpu = _measure(command, env)
        summary = json.loads(summary_path.read_text())
    sent = summary["throughput"]["messages"]
    if summary["sessions"]["passed"] != sessions or sent != per_session * sessions:
        raise SystemExit(f"{prefix} {label}: not every message passed: {summary['sessions']}")
    pipelining = summary["pipelining"] or {}
    return Measurement(f"{prefix} {label}", sent, wall, cpu, pipelining.get("groups_pipelined"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; best kept")
    parser.add_argument(
        "--beside",
        type=Path,
        metavar="DIR",
        help="also run the smtpload of this checkout (say, the commit before a change) in the"
        " same rounds, as 'beside pipelined' and 'beside lock-step'",
    )
    args = parser.parse_args()
    for tool in ("smtp-sink", "smtp-source"):
        if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin") is None:
            raise SystemExit(f"{tool} not found: install Postfix (sudo .ci/postfix-setup)")
    port = free_port()
    best: dict[str, Measurement] = {}
    with smtp_sink(port):
        for _ in range(args.rounds):
            results = [
                run_smtp_source(port, args.messages, args.sessions),
                run_smtpload(port, args.messages, args.sessions, pipelined=True),
                run_smtpload(port, args.messages, args.sessions, pipelined=False),
            ]
            if args.beside is not None:
                beside = args.beside.resolve()
                results.extend(
                    run_smtpload(
                        port,
                        args.messages,
                        args.sessions,
                        pipelined=pipelined,
                        checkout=beside,
                        prefix="beside",
                    )
                    for pipelined in (True, False)
                )
            for result in results:
                kept = best.get(result.client)
                if kept is None or result.rate_per_s > kept.rate_per_s:
                    best[result.client] = result
    anchor = best["smtp-source -d"]
    print(
        f"{args.messages} messages (3 recipients each) over {args.sessions} persistent"
        f" connections, best of {args.rounds}, against Postfix smtp-sink on loopback"
    )
    print(f"{'client':<20} {'messages/s':>11} {'CPU µs/message':>15} {'vs smtp-source':>15}")
    for result in best.values():
        print(
            f"{result.client:<20} {result.rate_per_s:>11.0f} {result.cpu_us_per_message:>15.0f}"
            f" {result.rate_per_s / anchor.rate_per_s:>14.2f}x"
        )
    pipelined = best["smtpload pipelined"]
    print(f"smtpload pipelined: {pipelined.groups_pipelined} groups sent in one write")
    return 0


if __name__ == "__main__":
    sys.exit(main())
