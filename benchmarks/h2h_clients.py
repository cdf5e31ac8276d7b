"""One client run of the head-to-head benchmark (benchmarks/bench_head_to_head.py): the command
of each client for a session shape, its wall and CPU time, and the checks that every message
was accepted (the client's own account and, against smtp-sink, the sink's counters).
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from benchmarks.smtp_sink import find_smtp_sink

HERE = Path(__file__).resolve().parent
#: This checkout: the smtpload measured, whatever copy of it happens to be installed.
CHECKOUT = HERE.parent
SENDER = "sender@example.test"
RECIPIENT = "recipient@example.test"

SMTP_SOURCE = "smtp-source"
AIOSMTPLIB = "aiosmtplib"
#: The clients of every row, in the table's order; [1:3] are smtpload with --workers 1.
CLIENTS = (
    SMTP_SOURCE,
    "smtpload lock-step -w1",
    "smtpload pipelined -w1",
    "smtpload lock-step -w auto",
    "smtpload pipelined -w auto",
    AIOSMTPLIB,
)
RUN_TIMEOUT_S = 600


@dataclass(frozen=True, slots=True)
class Shape:
    """What every client of a row does: ``messages`` in all, ``parallel`` sessions at a time,
    a connection per message or ``messages / parallel`` over each of ``parallel`` connections."""

    key: str
    per_message: bool
    payload_bytes: int
    parallel: int
    messages: int

    @property
    def sessions(self) -> int:
        return self.messages if self.per_message else self.parallel


@dataclass(frozen=True, slots=True)
class ClientRun:
    wall_s: float
    cpu_s: float
    messages: int
    sessions: int
    processes: int | None = None  # smtpload's worker processes, when its summary says
    error: str | None = None
    own_rate_per_s: float | None = None  # smtpload's summary: messages/s, start-up excluded
    #: Times the client (all its processes) blocked for something: voluntary context switches
    #: (getrusage's ru_nvcsw). A client that keeps up with its server blocks seldom; one that
    #: waits for it blocks at about every reply, and each block and wake costs CPU (see
    #: benchmarks/bench_wake_cost.py).
    waits: int | None = None
    #: Times one of its processes was made to give up its core (involuntary context switches,
    #: ru_nivcsw): on a machine where the client shares its cores with the sink or with its
    #: own workers, each such switch is a cold start too.
    preempted: int | None = None


class SinkCounters:
    """smtp-sink's ``-c`` counters ("sess=N quit=N mesg=N", rewritten after a CR on every
    change) from the file its output goes to."""

    PATTERN = re.compile(rb"sess=(\d+) quit=\d+ mesg=(\d+)")

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[int, int]:
        """(sessions ended, messages received) so far."""
        with self.path.open("rb") as output:
            output.seek(max(output.seek(0, os.SEEK_END) - 4096, 0))
            found = self.PATTERN.findall(output.read())
        return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)

    def settle(self) -> None:
        """Wait until the sink has counted the session of its start-up probe (benchmarks/
        smtp_sink.py), so that it is not counted in the first client's run."""
        deadline = time.monotonic() + 5
        while self.read()[0] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling another process's output; no figure depends on it

    def check(self, before: tuple[int, int], shape: Shape) -> str | None:
        """None when the sink saw the shape's sessions end and its messages arrive since
        ``before``; else what it saw. The last session may end a moment after the client."""
        deadline = time.monotonic() + 5
        while True:
            sessions, messages = self.read()
            seen = (sessions - before[0], messages - before[1])
            if seen == (shape.sessions, shape.messages):
                return None
            if time.monotonic() > deadline or seen[1] > shape.messages:
                return f"smtp-sink counted {seen[0]} sessions, {seen[1]} messages"
            # Polling another process's output; no figure depends on the wait.
            time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one client command cost: wall time, CPU (user + system), voluntary and involuntary
    context switches of it and every descendant it waited for, and why it failed ("" if it
    did not)."""

    wall_s: float
    cpu_s: float
    waits: int
    preempted: int
    error: str = ""


def measure(
    command: list[str], env: dict[str, str] | None = None, stdout: IO[bytes] | None = None
) -> Usage:
    """Run ``command`` to completion (its output to ``stdout``, else discarded) and measure it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        error = ""
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines() or ["(no stderr)"]
            error = f"failed: exit {done.returncode}: {lines[-1][:60]}"
    except subprocess.TimeoutExpired:
        error = f"failed: no end within {RUN_TIMEOUT_S} s"
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    voluntary = after.ru_nvcsw - before.ru_nvcsw
    return Usage(wall, cpu, voluntary, after.ru_nivcsw - before.ru_nivcsw, error)


def smtpload_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(CHECKOUT)}


@functools.cache
def smtpload_has_workers() -> bool:
    """Whether this checkout's ``smtpload run`` takes ``--workers``."""
    command = [sys.executable, "-m", "smtpload", "run", "--help"]
    done = subprocess.run(command, capture_output=True, env=smtpload_env(), check=True)
    return b"--workers" in done.stdout


HEADER = f"From: <{SENDER}>\nTo: <{RECIPIENT}>\nSubject: smtpload benchmark\n\n"
TRANSACTION = f"""\
- send: MAIL FROM:<{SENDER}>
  name: mail
  expect: 250
- send: RCPT TO:<{RECIPIENT}>
  expect: 250
- send: DATA
  expect: 354
"""


def scenario_text(shape: Shape, *, pipelined: bool) -> str:
    """The shape as a scenario: the payload after the same header the driver sends (its CRLF
    form counted in ``size``), MAIL/RCPT/DATA in a pipeline group or lock-step."""
    commands = TRANSACTION
    if pipelined:
        commands = "- pipeline:\n" + textwrap.indent(commands, "    ")
    size = shape.payload_bytes + len(HEADER.replace("\n", "\r\n"))
    message = textwrap.indent(HEADER, "      ")
    transaction = f"{commands}- data:\n    message: |\n{message}    size: {size}\n  expect: 250\n"
    if not shape.per_message:
        count = shape.messages // shape.parallel
        transaction = f"- repeat: {count}\n  steps:\n" + textwrap.indent(transaction, "    ")
    steps = "- greeting: 220\n- send: EHLO smtpload.example.test\n  expect: 250\n"
    steps += transaction + "- send: QUIT\n  expect: 221\n"
    return "name: head-to-head\ntimeout: 30\nsteps:\n" + textwrap.indent(steps, "  ")


def run_smtpload(client: str, shape: Shape, target: str | None) -> ClientRun:
    pipelined = "pipelined" in client
    with tempfile.TemporaryDirectory() as scratch:
        scenario = Path(scratch) / "scenario.yaml"
        scenario.write_text(scenario_text(shape, pipelined=pipelined))
        summary_path = Path(scratch) / "summary.json"
        command = [
            sys.executable, "-m", "smtpload", "run", str(scenario),
            "--sessions", str(shape.sessions), "--concurrency", str(shape.parallel),
            "--results", scratch, "--json", str(summary_path), "--quiet",
        ]  # fmt: skip
        if target is not None:
            command += ["--target", target]
        if smtpload_has_workers():
            command += ["--workers", "auto" if "auto" in client else "1"]
        usage = measure(command, smtpload_env())
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    wall, cpu, error = usage.wall_s, usage.cpu_s, usage.error
    if summary is None:
        return ClientRun(wall, cpu, 0, 0, error=error or "failed: no summary.json")
    sent, outcomes = summary["throughput"]["messages"], summary["sessions"]
    workers = (summary.get("load") or {}).get("workers", 1)  # without --workers: one process
    if not error and (outcomes["passed"] != shape.sessions or sent != shape.messages):
        failed = {k: v for k, v in outcomes.items() if v and k not in ("passed", "started")}
        error = f"failed: {sent} messages, {outcomes['passed']} passed, {failed}"
    own_rate = summary["throughput"]["messages_per_s"]
    return ClientRun(
        wall, cpu, sent, outcomes["passed"], workers, error or None, own_rate, usage.waits,
        usage.preempted,
    )  # fmt: skip


def run_smtp_source(shape: Shape, target: str) -> ClientRun:
    program = find_smtp_sink()
    assert program is not None  # checked at the start
    command = [
        str(Path(program).with_name("smtp-source")), "-s", str(shape.parallel),
        "-m", str(shape.messages), "-l", str(shape.payload_bytes),
        "-f", SENDER, "-t", RECIPIENT, target,
    ]  # fmt: skip
    if not shape.per_message:
        command.insert(1, "-d")
    usage = measure(command)
    # Without -A, smtp-source exits non-zero at the first reply that is not the one expected.
    return ClientRun(
        usage.wall_s, usage.cpu_s, shape.messages, shape.sessions, 1, usage.error or None,
        waits=usage.waits, preempted=usage.preempted,
    )  # fmt: skip


def run_aiosmtplib(shape: Shape, target: str) -> ClientRun:
    host, port = target.rsplit(":", 1)
    per_connection = 1 if shape.per_message else shape.messages // shape.parallel
    command = [
        sys.executable, str(HERE / "aiosmtplib_driver.py"), "--host", host, "--port", port,
        "--tasks", str(shape.parallel), "--messages", str(shape.messages),
        "--per-connection", str(per_connection), "--size", str(shape.payload_bytes),
    ]  # fmt: skip
    with tempfile.TemporaryFile() as output:
        usage = measure(command, stdout=output)
        output.seek(0)
        text = output.read()
    wall, cpu = usage.wall_s, usage.cpu_s
    if usage.error:
        return ClientRun(wall, cpu, 0, 0, error=usage.error)
    tally = json.loads(text)
    error = None
    if tally["failures"] or tally["messages"] != shape.messages:
        error = f"failed: {tally['messages']} accepted, {tally['first_error']}"[:90]
    return ClientRun(
        wall, cpu, tally["messages"], tally["sessions"], 1, error,
        waits=usage.waits, preempted=usage.preempted,
    )  # fmt: skip


def run_client(
    client: str, shape: Shape, target: str | None, counters: SinkCounters | None
) -> ClientRun:
    """One run of ``client`` doing ``shape`` against ``target`` (None: smtpload's built-in
    sink), checked against the sink's ``counters`` when there are any."""
    before = counters.read() if counters is not None else (0, 0)
    if client.startswith("smtpload"):
        result = run_smtpload(client, shape, target)
    elif target is None:
        raise ValueError(f"{client} needs a target")
    elif client == SMTP_SOURCE:
        result = run_smtp_source(shape, target)
    else:
        result = run_aiosmtplib(shape, target)
    if result.error is None and counters is not None:
        mismatch = counters.check(before, shape)
        if mismatch is not None:
            return ClientRun(result.wall_s, result.cpu_s, 0, 0, error=f"failed: {mismatch}")
    return result
