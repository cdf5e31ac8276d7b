"""The head-to-head table (issue 14): smtpload beside Postfix's smtp-source and aiosmtplib,
the same session shapes against the same Postfix ``smtp-sink`` on loopback.

One row per (shape, client). Shapes: a connection per message (EHLO, MAIL, RCPT, DATA, the
message, QUIT) or persistent connections (EHLO, then MAIL/RCPT/DATA/message over and over, then
QUIT: smtp-source ``-d``, smtpload ``repeat:``, aiosmtplib one connection per task sending many
messages); 1 KiB or 100 KiB of payload (smtp-source's ``-l``: the others send the same payload
after a header of about 100 bytes); 10, 100 or 500 parallel sessions. Clients: smtp-source,
aiosmtplib (benchmarks/aiosmtplib_driver.py: plain asyncio, no uvloop; it has no PIPELINING),
and this checkout's smtpload in lock-step and with its MAIL/RCPT/DATA in a ``pipeline`` group
(RFC 2920), each with ``--workers 1`` and ``--workers auto`` (rows marked n/a when this
checkout's ``smtpload run`` has no ``--workers``: the ``-w1`` rows then run without the option,
which is one process).

Each round runs every client of a row one after the other (the order rotating from round to
round), row after row; a figure is the median of the rounds. Generator CPU is user+system time
of every process of the client (``getrusage(RUSAGE_CHILDREN)`` deltas around its run, so it
includes smtpload's worker processes and its start-up, and the driver's; the table's
``own msg/s`` is smtpload's summary, start-up excluded, and a 1-session run's cost is printed
under it). A run counts only when every message was accepted: smtp-source's exit status,
smtpload's summary.json, the driver's replies, and smtp-sink's own counters (``-c``) must
agree; a row whose client failed shows why instead of a figure. ``waits/msg`` is how often the
client's processes blocked (voluntary context switches) per message: near 0 where the client is
the bottleneck (every reply is there when it reads), near 1 or more where it waits for the sink;
on a VM each block and wake costs CPU of its own (benchmarks/bench_wake_cost.py).
``preempt/msg`` is how often one of its processes was made to give up its core (involuntary
context switches) per message: where the client shares its cores with the sink or with its own
workers (``--workers auto`` on 2 cores), each one is a cold start of its own.

After the table, two server-bound rows (not targets): smtpload against its own built-in sink
(no ``--target``: the sink's CPU is then counted too) and against Postfix's smtpd on
127.0.0.1:10025 (.ci/postfix-setup), beside smtp-source there. ``--memory`` instead holds
10,000 sessions open at once and reports smtpload's resident memory (benchmarks/h2h_memory.py).

Figures are ratios measured in the same run on the same machine, never absolute promises.

Usage (needs smtp-sink and smtp-source: .ci/postfix-setup; aiosmtplib: pip install -e '.[bench]'):

    python benchmarks/bench_head_to_head.py [--quick] [--rounds 3] [--rows 'cpm-1k-*,persistent-*']
        [--messages N] [--json FILE] [--pin] [--memory]
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import fnmatch
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.h2h_clients import (  # noqa: E402
    AIOSMTPLIB,
    CHECKOUT,
    CLIENTS,
    SMTP_SOURCE,
    ClientRun,
    Shape,
    SinkCounters,
    run_client,
    smtpload_has_workers,
)
from benchmarks.smtp_sink import LOOPBACK, find_smtp_sink, free_port, smtp_sink  # noqa: E402

SIZES = {"1k": 1024, "100k": 100 * 1024}
PARALLEL = (10, 100, 500)
#: Messages per row by (connection per message?, size): about 2-15 s per client on 2 cores
#: (aiosmtplib up to 40 s), so that smtpload's start-up (printed under the table) stays a small
#: share of a row. They were a third of these on a machine a third as fast, where that held; on
#: a faster one (2026-12-02) smtp-source did 3,000 messages in 0.5 s and one smtpload start-up
#: was a third of its row. The connection-per-message 100 KiB rows were 3,000 too, where
#: smtpload's start-up (0.45-0.61 s of CPU) was still 150-200 µs of its 850-1,000 µs a message
#: (2026-12-04); at 10,000, as in the 1 KiB rows, it is 45-61 µs in every such row.
DEFAULT_MESSAGES = {
    (True, "1k"): 10000,
    (True, "100k"): 10000,
    (False, "1k"): 20000,
    (False, "100k"): 5000,
}
QUICK_ROWS = "cpm-1k-100,persistent-1k-100"
POSTFIX = f"{LOOPBACK}:10025"


def all_shapes(messages: int | None) -> list[Shape]:
    shapes = []
    for per_message in (True, False):
        for size_key, size in SIZES.items():
            for parallel in PARALLEL:
                count = messages or DEFAULT_MESSAGES[per_message, size_key]
                if not per_message:  # every connection carries the same number
                    count = max(count // parallel, 1) * parallel
                kind = "cpm" if per_message else "persistent"
                shapes.append(
                    Shape(f"{kind}-{size_key}-{parallel}", per_message, size, parallel, count)
                )
    return shapes


@dataclasses.dataclass(slots=True)
class Row:
    shape: Shape
    client: str
    target: str | None = None  # None: smtpload's built-in sink
    runs: list[ClientRun] = dataclasses.field(default_factory=list)
    unavailable: str | None = None  # "n/a (...)": never run

    @property
    def error(self) -> str | None:
        return self.unavailable or next((r.error for r in self.runs if r.error), None)

    def median(self, value: Callable[[ClientRun], float]) -> float:
        return statistics.median(value(r) for r in self.runs)

    @property
    def rate_per_s(self) -> float:
        return self.median(lambda r: r.messages / r.wall_s)

    @property
    def sessions_per_s(self) -> float:
        return self.median(lambda r: r.sessions / r.wall_s)

    @property
    def cpu_us_per_message(self) -> float:
        return self.median(lambda r: r.cpu_s / r.messages * 1e6)

    def per_message(self, count: Callable[[ClientRun], int | None]) -> float | None:
        """The median of ``count`` per message (None: a run without the count)."""
        counts = [count(r) for r in self.runs]
        if not counts or None in counts:
            return None
        return statistics.median(
            (c or 0) / r.messages for c, r in zip(counts, self.runs, strict=True)
        )

    @property
    def waits_per_message(self) -> float | None:
        """How often the client blocked, per message."""
        return self.per_message(lambda r: r.waits)

    @property
    def preempted_per_message(self) -> float | None:
        """How often one of the client's processes was preempted, per message."""
        return self.per_message(lambda r: r.preempted)

    def as_json(self) -> dict[str, object]:
        figures: dict[str, object] = {}
        if self.error is None and self.runs:
            figures = {
                "messages_per_s": round(self.rate_per_s, 1),
                "sessions_per_s": round(self.sessions_per_s, 1),
                "cpu_us_per_message": round(self.cpu_us_per_message, 1),
            }
            for name, value in (
                ("waits_per_message", self.waits_per_message),
                ("preempted_per_message", self.preempted_per_message),
            ):
                if value is not None:
                    figures[name] = round(value, 2)
        return {
            "row": self.shape.key,
            "client": self.client,
            "messages": self.shape.messages,
            "parallel": self.shape.parallel,
            "error": self.error,
            **figures,
            "rounds": [dataclasses.asdict(r) for r in self.runs],
        }


def ratio(mine: float, theirs: Row | None, value: Callable[[Row], float]) -> str:
    if theirs is None or theirs.error is not None or not theirs.runs:
        return "-"
    return f"{mine / value(theirs):.2f}x"


def per_message(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(title: str, rows: Sequence[Row]) -> None:
    print(title)
    header = (
        f"{'row':<21} {'client':<27} {'msg/s':>7} {'sess/s':>7} {'CPU µs/msg':>10}"
        f" {'own msg/s':>9} {'rate/src':>8} {'CPU/src':>8} {'rate/aio':>8} {'CPU/aio':>8}"
        f" {'procs':>5} {'waits/msg':>9} {'preempt/msg':>11}"
    )
    print(header)
    print("-" * len(header))
    by_shape: dict[str, dict[str, Row]] = {}
    for row in rows:
        by_shape.setdefault(row.shape.key, {})[row.client] = row
    for key, clients in by_shape.items():
        source, aio = clients.get(SMTP_SOURCE), clients.get(AIOSMTPLIB)
        for row in clients.values():
            name = f"{key:<21} {row.client:<27}"
            if row.error is not None:
                print(f"{name} {row.error}")
                continue
            rate, cpu = row.rate_per_s, row.cpu_us_per_message
            per_s = row.sessions_per_s  # persistent rows: a few sessions in many seconds
            sessions_per_s = f"{per_s:.0f}" if per_s >= 10 else f"{per_s:.1f}"
            procs = {r.processes for r in row.runs if r.processes is not None}
            owns = [r.own_rate_per_s for r in row.runs if r.own_rate_per_s is not None]
            own = f"{statistics.median(owns):.0f}" if owns else "-"
            print(
                f"{name} {rate:>7.0f} {sessions_per_s:>7} {cpu:>10.0f}"
                f" {own:>9} {ratio(rate, source, lambda r: r.rate_per_s):>8}"
                f" {ratio(cpu, source, lambda r: r.cpu_us_per_message):>8}"
                f" {ratio(rate, aio, lambda r: r.rate_per_s):>8}"
                f" {ratio(cpu, aio, lambda r: r.cpu_us_per_message):>8}"
                f" {','.join(map(str, sorted(procs))) or '-':>5}"
                f" {per_message(row.waits_per_message):>9}"
                f" {per_message(row.preempted_per_message):>11}"
            )
    print()


def run_rounds(rows: list[Row], rounds: int, counters: SinkCounters | None) -> None:
    """Every row's client in turn, the order rotated each round, ``rounds`` times."""
    runnable = [row for row in rows if row.unavailable is None]
    for round_number in range(rounds):
        for shape_key in dict.fromkeys(row.shape.key for row in runnable):
            group = [row for row in runnable if row.shape.key == shape_key]
            shift = round_number % len(group)
            for row in group[shift:] + group[:shift]:
                result = run_client(row.client, row.shape, row.target, counters)
                row.runs.append(result)
                state = result.error or f"{result.messages / result.wall_s:.0f} msg/s"
                print(f"  round {round_number + 1}: {shape_key} {row.client}: {state}", flush=True)


def pin_apart(sink_process: subprocess.Popen[bytes]) -> None:
    """The sink on the first core this process may use, this process (and so every client
    started after, and smtpload's workers) on the others.

    On a small machine the scheduler otherwise puts a client now beside the sink, now on a
    core of its own, and the same client's CPU per message moved by about 20 % with it (2
    cores: smtpload 283-304 µs beside the sink, 231-249 µs apart; smtp-source ~100 both ways).
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("--pin: needs 2 cores or more")
    os.sched_setaffinity(sink_process.pid, {cores[0]})
    os.sched_setaffinity(0, set(cores[1:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="rounds; the median is shown (default: 3)")
    parser.add_argument(
        "--rows", help="comma-separated row patterns, fnmatch style: cpm-1k-100, 'persistent-*',"
        " '*-100k-*' (default: all 12)"
    )  # fmt: skip
    parser.add_argument("--messages", type=int, help="messages per row (default: per shape)")
    parser.add_argument(
        "--quick", action="store_true", help=f"a smoke test: rows {QUICK_ROWS}, 600 messages, "
        "1 round, a short server-bound section"
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the figures here")
    parser.add_argument("--no-server-bound", action="store_true", help="skip that section")
    parser.add_argument(
        "--pin", action="store_true", help="smtp-sink on the first core, every client on the "
        "others (smtpload's --workers auto then counts those)"
    )  # fmt: skip
    parser.add_argument(
        "--memory", action="store_true", help="instead: 10,000 sessions held open at once, "
        "smtpload's summed resident memory (--workers 1, --workers 2)"
    )  # fmt: skip
    args = parser.parse_args()
    if find_smtp_sink() is None:
        raise SystemExit("smtp-sink not found: install Postfix (sudo .ci/postfix-setup)")
    if args.memory:
        from benchmarks.h2h_memory import main as memory_main

        return memory_main(args.json)
    rounds = args.rounds or (1 if args.quick else 3)
    messages = args.messages or (600 if args.quick else None)
    patterns = (args.rows or (QUICK_ROWS if args.quick else "*")).split(",")
    shapes = [s for s in all_shapes(messages) if any(fnmatch.fnmatch(s.key, p) for p in patterns)]
    if not shapes:
        raise SystemExit(f"--rows {args.rows}: no row matches; rows look like cpm-1k-100")
    # smtpload as installed runs from compiled modules (pip compiles them): without them, with
    # PYTHONDONTWRITEBYTECODE set as on this machine, every process (and worker) would
    # compile all of smtpload again, about a second of CPU, and charge it to each row.
    compileall.compile_dir(str(CHECKOUT / "smtpload"), quiet=1)
    workers = smtpload_has_workers()
    port = free_port()
    sink = f"{LOOPBACK}:{port}"
    missing = "n/a (no --workers)"
    rows = [
        Row(shape, client, sink, unavailable=None if workers or "auto" not in client else missing)
        for shape in shapes
        for client in CLIENTS
    ]
    started = time.monotonic()
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    with tempfile.TemporaryDirectory() as scratch:
        counter_path = Path(scratch) / "smtp-sink-counters"
        with (
            counter_path.open("wb") as counter_file,
            smtp_sink(port, options=["-c"], stdout=counter_file) as sink_process,
        ):
            if args.pin:
                pin_apart(sink_process)
            counters = SinkCounters(counter_path)
            counters.settle()
            run_rounds(rows, rounds, counters)
            one = Shape("start-up", True, 1024, 1, 1)
            startup = [run_client(CLIENTS[1], one, sink, counters) for _ in range(3)]
    server_rows: list[Row] = []
    if not args.no_server_bound:
        bound_messages = 300 if args.quick else 1000
        for label, target, clients in (
            ("built-in-sink", None, CLIENTS[1:3]),
            ("postfix-10025", POSTFIX, (SMTP_SOURCE, *CLIENTS[1:3])),
        ):
            shape = Shape(f"{label}-1k-100", True, 1024, 100, bound_messages)
            server_rows += [Row(shape, client, target) for client in clients]
        run_rounds(server_rows, rounds, None)
    load_after = os.getloadavg()
    minutes = (time.monotonic() - started) / 60
    print()
    pinned = ", smtp-sink pinned to one, the clients to the rest" if args.pin else ""
    title = (
        f"smtpload (this checkout) vs smtp-source and aiosmtplib against Postfix smtp-sink on"
        f" loopback; median of {rounds} round(s); {os.cpu_count()} cores{pinned};"
        f" {minutes:.1f} min;"
        f" load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print_table(title, rows)
    if server_rows:
        print_table(
            "Server-bound (not targets): connection per message, 1 KiB, 100 parallel; built-in"
            " sink = smtpload with no --target (its sink's CPU counted too)",
            server_rows,
        )
    startup_wall_s = statistics.median(r.wall_s for r in startup)
    startup_cpu_s = statistics.median(r.cpu_s for r in startup)
    print(
        f"smtpload's start-up, in each of its runs above: a 1-session run takes"
        f" {startup_wall_s:.2f} s wall, {startup_cpu_s:.2f} s CPU (median of 3)"
    )
    if not workers:
        print("(this checkout's smtpload run has no --workers: -w1 rows ran without it)")
    if args.json is not None:
        document = {
            "rounds": rounds,
            "minutes": round(minutes, 2),
            "load_average": {"before": load_before, "after": load_after},
            "has_workers": workers,
            "smtpload_startup": {"wall_s": startup_wall_s, "cpu_s": startup_cpu_s},
            "rows": [row.as_json() for row in rows],
            "server_bound": [row.as_json() for row in server_rows],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    failed = [row for row in rows + server_rows if row.unavailable is None and row.error]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
