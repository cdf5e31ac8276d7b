"""``bench_head_to_head.py --memory``: smtpload's resident memory with 10,000 sessions open at
once (issue 14's goal: < 150 MB with ``--workers 1``, < 200 MB with ``--workers 2``, all of
smtpload's processes together).

The sessions are held open by the server: Postfix's ``smtp-sink -w HOLD`` waits HOLD seconds
before it answers each DATA, so every session, once it has sent EHLO, MAIL, RCPT and DATA, waits
on its connection; smtpload opens all 10,000 at once (``--concurrency 10000``), then they end as
the held replies come (the 1 KiB message, QUIT). While it runs, the summed VmRSS of smtpload's
process tree (the parent and any workers, /proc/PID/status) and its summed PSS
(/proc/PID/smaps_rollup) are sampled twice a second, with the number of connections the sink
has (established on its side, /proc/net/tcp); the figures are the most while all were open (or,
when they never all were, at the moment most were), with the run's peaks.

RSS counts a page once in every process that maps it: workers forked from the parent share its
pages copy-on-write (net/forked.py), and the interpreter's and libraries' pages are shared by
any two Python processes, so the summed RSS of a tree counts them once per process. PSS (the
proportional set size) divides each page among the processes that map it: summed over the tree
it is the memory the tree holds, shared pages once, so "all of smtpload's processes together"
is the PSS sum (RSS is shown beside it, as before; a fresh interpreter's workers share less).

Both programs need more than 10,000 file descriptors: the soft limit is raised to the hard one
(as root, the hard one too if needed).

The sink is the limit here, not smtpload: smtp-sink is one process on the same cores, and the
more connections it holds the slower it accepts. Its listen queue (4,096: the kernel's
``net.core.somaxconn`` caps the backlog asked for) overflows; the kernel then drops the
handshake's last ACK (``TcpExtListenOverflows``), the client's side is established all the
same, and when the server's SYN-ACK retries run out the connection exists on the client's side
only: in ``--workers 2`` runs 287 to 1,179 of 10,000 sessions waited for a greeting that never
came (``timeout`` at ``greeting``, after the scenario's 120 s), and counting connections on the
client's side showed them as open. Opening them at 500 or 250 a second (``--rate``) overflowed
the queue as much (10,000 to 25,000 overflows a run): it is the sink's accept rate as it fills,
not the burst. So the connections are counted on the sink's side, and each run reports the
listen queue overflows during it (the machine's counter: other programs' count too).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.h2h_clients import Shape, scenario_text, smtpload_env, smtpload_has_workers
from benchmarks.smtp_sink import LOOPBACK, free_port, smtp_sink

SESSIONS = 10_000
HOLD_S = 40  # smtp-sink's wait before each DATA reply: longer than opening 10,000 sessions
SAMPLE_EVERY_S = 0.5
RUN_LIMIT_S = 300
GOALS_MB = {1: 150, 2: 200}


@dataclass(frozen=True, slots=True)
class MemoryRun:
    label: str
    held_rss_mb: float  # the most while all sessions were open at once
    held_pss_mb: float  # the same of the summed PSS: shared pages counted once
    all_open_after_s: float | None  # from the start until they were
    peak_rss_mb: float  # the most over the whole run
    peak_pss_mb: float
    processes_at_peak: int
    open_at_peak: int
    most_open: int
    passed: int
    wall_s: float
    listen_overflows: int  # the machine's TcpExtListenOverflows during the run
    error: str | None = None


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        hard = needed  # only root may; else the error says what to do
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    except (ValueError, OSError) as error:
        raise SystemExit(f"cannot raise the open-file limit to {needed}: {error}") from error


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended meanwhile
        parent = int(text.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(stat.parent.name))
    return tree


def _field_kib(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    return 0


def tree_memory_kib(root: int) -> tuple[int, int, int]:
    """(summed VmRSS in KiB, summed PSS in KiB, processes) of ``root`` and its descendants."""
    tree, pending, rss, pss, count = _children(), [root], 0, 0, 0
    while pending:
        pid = pending.pop()
        pending += tree.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue  # it ended meanwhile
        rss += _field_kib(status, "VmRSS:")
        pss += _field_kib(rollup, "Pss:")
        count += 1
    return rss, pss, count


def accepted_on(port: int) -> int:
    """Established TCP connections whose local end is ``port``: the server's side (accepted,
    or in its listen queue). A connection whose last handshake ACK the server dropped is
    established on the client's side only (module docstring): not counted."""
    wanted = f":{port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)
        return sum(
            1
            for line in table
            if (fields := line.split())[1].endswith(wanted) and fields[3] == "01"
        )


def listen_overflows() -> int:
    """The machine's count of connections a full listen queue dropped (TcpExtListenOverflows)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(values.split()[names.split().index("ListenOverflows")])
    return 0


def measure(label: str, options: list[str]) -> MemoryRun:
    port = free_port()
    shape = Shape("memory", True, 1024, SESSIONS, SESSIONS)
    sink_options = ["-w", str(HOLD_S)]
    with (
        tempfile.TemporaryDirectory() as scratch,
        smtp_sink(port, messages=SESSIONS + 100, backlog=4096, options=sink_options),
    ):
        scenario = Path(scratch) / "hold.yaml"
        scenario.write_text(
            scenario_text(shape, pipelined=False).replace("timeout: 30", "timeout: 120")
        )
        summary_path = Path(scratch) / "summary.json"
        command = [
            sys.executable, "-m", "smtpload", "run", str(scenario),
            "--target", f"{LOOPBACK}:{port}", "--sessions", str(SESSIONS),
            "--concurrency", str(SESSIONS), "--results", scratch,
            "--json", str(summary_path), "--quiet", *options,
        ]  # fmt: skip
        overflows_before = listen_overflows()
        start = time.monotonic()
        process = subprocess.Popen(command, env=smtpload_env(), stdout=subprocess.DEVNULL)
        peak = (0, 0, 0)  # RSS KiB, processes, open then
        peak_pss_kib = 0
        most_open, held_kib, held_pss_kib, all_open_after_s = 0, 0, 0, None
        most_open_kib = most_open_pss_kib = 0  # resident when most were open
        while process.poll() is None and time.monotonic() - start < RUN_LIMIT_S:
            rss, pss, count = tree_memory_kib(process.pid)
            open_now = accepted_on(port)
            if open_now > most_open or (open_now == most_open and rss > most_open_kib):
                most_open, most_open_kib, most_open_pss_kib = open_now, rss, pss
            if rss > peak[0]:
                peak = (rss, count, open_now)
            peak_pss_kib = max(peak_pss_kib, pss)
            if open_now >= SESSIONS:
                held_kib = max(held_kib, rss)
                held_pss_kib = max(held_pss_kib, pss)
                if all_open_after_s is None:
                    all_open_after_s = time.monotonic() - start
            # Sampling another process tree; no figure depends on the pause's length.
            time.sleep(SAMPLE_EVERY_S)
        if process.poll() is None:
            process.kill()
        returncode = process.wait()
        wall = time.monotonic() - start
        overflows = listen_overflows() - overflows_before
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    passed = summary["sessions"]["passed"] if summary else 0
    error = None
    if returncode != 0 or passed != SESSIONS:
        error = f"exit {returncode}, {passed} of {SESSIONS} sessions passed"
    if all_open_after_s is None:
        held_kib, held_pss_kib = most_open_kib, most_open_pss_kib
        error = f"never {SESSIONS} open at once (at most {most_open}: the figure is then)"
    return MemoryRun(
        label, held_kib / 1024, held_pss_kib / 1024, all_open_after_s, peak[0] / 1024,
        peak_pss_kib / 1024, peak[1], peak[2], most_open, passed, wall, overflows, error,
    )  # fmt: skip


def main(json_path: Path | None) -> int:
    raise_fd_limit(SESSIONS + 1024)
    if smtpload_has_workers():
        variants = [("--workers 1", ["--workers", "1"]), ("--workers 2", ["--workers", "2"])]
    else:
        variants = [("one process (no --workers)", [])]
    runs = [measure(label, options) for label, options in variants]
    print(
        f"{SESSIONS} sessions held open (smtp-sink -w {HOLD_S}: each DATA reply held),"
        " smtpload's memory, summed over its process tree: PSS (shared pages once: the"
        " figure for the goals) and VmRSS (shared pages once per process)"
    )
    print(
        f"{'smtpload':<28} {'PSS MB, all open':>16} {'RSS MB, all open':>16}"
        f" {'all open at':>11} {'peak PSS':>8} {'peak RSS':>8} {'procs':>5} {'open then':>9}"
    )
    for run in runs:
        after = f"{run.all_open_after_s:.0f} s" if run.all_open_after_s is not None else "never"
        row = (
            f"{run.label:<28} {run.held_pss_mb:>16.1f} {run.held_rss_mb:>16.1f} {after:>11}"
            f" {run.peak_pss_mb:>8.1f} {run.peak_rss_mb:>8.1f} {run.processes_at_peak:>5}"
            f" {run.open_at_peak:>9}"
        )
        if run.listen_overflows:
            row += f"  (listen queue overflows: {run.listen_overflows})"
        print(row + (f"  FAILED: {run.error}" if run.error else f"  (run: {run.wall_s:.0f} s)"))
    if len(variants) == 1:
        print("--workers 1 / --workers 2: n/a (this checkout's smtpload run has no --workers)")
    goals = ", ".join(f"--workers {n} < {mb} MB" for n, mb in GOALS_MB.items())
    print(f"goals (PSS, all processes together): {goals}")
    if json_path is not None:
        json_path.write_text(json.dumps([asdict(run) for run in runs], indent=2) + "\n")
    return 1 if any(run.error for run in runs) else 0
