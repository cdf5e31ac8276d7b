"""What smtpload bounds, and what happens at each bound (the README's "Limits").

Memory is measured in a separate process (``ru_maxrss``, the peak resident set), which also runs
under an address-space limit, so that a regression fails the test instead of the machine.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smtpload.net.fd_limit import FD_HEADROOM, open_files_needed
from smtpload.scenario.input_file import MAX_INPUT_BYTES, InputTooLargeError, read_input
from tests.peers import RecordingPeer

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


def _limit(open_files: tuple[int, int] | None = None) -> None:
    """In the child, before it runs: bound its memory, and set its open-file limit."""
    resource.setrlimit(resource.RLIMIT_AS, (_ADDRESS_SPACE_BYTES, _ADDRESS_SPACE_BYTES))
    if open_files is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, open_files)


def python(
    code: str, *args: str, cwd: Path, open_files: tuple[int, int] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` with ``args`` in a fresh, bounded process (this checkout's smtpload)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    preexec: Callable[[], None] = functools.partial(_limit, open_files)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=preexec,
    )


def probe(*args: str, cwd: Path) -> dict[str, Any]:
    """Run ``smtpload ARGS`` in a fresh process; its exit status and peak memory growth."""
    result = python(_PROBE, *args, cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


# --- item: message size ---------------------------------------------------------------------

MESSAGE_BYTES = 20_000_000


@pytest.mark.slow  # a soak: it shows only that this holds at scale
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


# --- item: open files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connections", "builtin_sink", "needed"),
    [
        (1, False, 1 + FD_HEADROOM),
        (1, True, 2 + FD_HEADROOM),
        (1500, False, 1564),
        (300, True, 664),
    ],
    ids=["one-to-a-server", "one-to-the-sink", "1500-to-a-server", "300-to-the-sink"],
)
def test_open_files_rule(connections: int, builtin_sink: bool, needed: int) -> None:
    assert open_files_needed(connections, builtin_sink=builtin_sink) == needed


_SMTPLOAD = "import sys; from smtpload.cli.main import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            ["run", "quickstart", "--sessions", "300", "--concurrency", "300"],
            "--concurrency 300 needs 664 open files (2 per session with the built-in sink,"
            " plus 64), but the open-file limit is 200 (hard limit 200); raise it, e.g."
            " `ulimit -n 664`",
        ),
        (
            [
                "run",
                "quickstart",
                "--target",
                "127.0.0.1:9",
                "--sessions",
                "150",
                "--concurrency",
                "150",
            ],
            "--concurrency 150 needs 214 open files (1 per session, plus 64)",
        ),
        (
            ["record", "quickstart", "-o", "b.json", "--sessions", "80", "--concurrency", "80"],
            "--concurrency 80 needs 224 open files",
        ),
    ],
    ids=["run-with-the-sink", "run-with-a-target", "record"],
)
def test_a_concurrency_beyond_the_open_file_limit_is_refused_before_the_run(
    tmp_path: Path, command: list[str], message: str
) -> None:
    # Soft and hard limit alike: the limit cannot be raised.
    result = python(_SMTPLOAD, *command, cwd=tmp_path, open_files=(200, 200))
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "or use --concurrency" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "b.json").exists()


def test_the_soft_open_file_limit_is_raised_toward_the_hard_limit(tmp_path: Path) -> None:
    # 100 sessions with the sink need 264 files: more than the soft limit, within the hard one.
    code = (
        "import resource, sys\n"
        "from smtpload.cli.main import main\n"
        "status = main(sys.argv[1:])\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "sys.exit(status)\n"
    )
    result = python(
        code,
        *("run", "quickstart", "--sessions", "100", "--concurrency", "100", "--quiet"),
        *("--json", "summary.json"),
        cwd=tmp_path,
        open_files=(100, 1000),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) == 264
    assert json.loads((tmp_path / "summary.json").read_text())["sessions"]["passed"] == 100


# Takes all but ``free`` of the files the limit allows, then runs smtpload.
_CROWDED = """import os, sys
from smtpload.cli.main import main
free = int(sys.argv[1])
taken = []
try:
    while True:
        taken.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
for fd in taken[:free]:
    os.close(fd)
sys.exit(main(sys.argv[2:]))
"""


def test_running_out_of_files_mid_run_is_a_counted_connect_error(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    # The rule passes (100 + 64 <= 200), then other files take all but 20 of them.
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    result = python(
        _CROWDED,
        "20",
        *("run", "quickstart", "--target", target, "--sessions", "100", "--concurrency", "100"),
        *("--results", "results", "--json", "summary.json", "--quiet"),
        cwd=tmp_path,
        open_files=(200, 200),
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    sessions = json.loads((tmp_path / "summary.json").read_text())["sessions"]
    assert sessions["started"] == 100
    assert sessions["failures"]["connect_error"] > 0
    assert sessions["passed"] > 0
    assert sessions["passed"] + sessions["failures"]["connect_error"] == 100
    (run_dir,) = (tmp_path / "results").iterdir()
    assert "Too many open files (EMFILE)" in (run_dir / "failures.log").read_text()


def test_running_out_of_files_with_the_built_in_sink_counts_every_session(
    tmp_path: Path,
) -> None:
    # The sink shares the process: once the clients hold every file, it cannot accept, and
    # the sessions it cannot greet time out.
    result = python(
        _CROWDED,
        "21",
        *("run", "quickstart", "--sessions", "60", "--concurrency", "60", "--timeout", "1"),
        *("--results", "results", "--json", "summary.json", "--quiet"),
        cwd=tmp_path,
        open_files=(300, 300),
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("EMFILE") <= 1  # said once, not every 0.1 s
    sessions = json.loads((tmp_path / "summary.json").read_text())["sessions"]
    assert sessions["started"] == 60
    assert sessions["failures"]["connect_error"] > 0
    assert sessions["passed"] + sessions["failed"] == 60


# --- item: nothing per session up front -------------------------------------------------------

# run_sessions itself (the command line would refuse this concurrency for lack of files): 10**8
# sessions, 10**8 at a time, against the built-in sink; stopped once 100 sessions have ended.
_HUGE_RUN = """\
import json, resource, trio
from smtpload.net.client import resolve_target
from smtpload.net.runner import RunSettings, run_sessions
from smtpload.net.sink import serve_sink
from smtpload.protocol.compiler import compile_scenario
from smtpload.report.stats import RunStats
from smtpload.scenario.bundled import find_scenario
from smtpload.scenario.loader import load_scenario

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

async def main():
    compiled = compile_scenario(load_scenario(find_scenario("quickstart")))
    stats = RunStats(["connect", *compiled.step_names])
    before = peak_kib()
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve_sink, "127.0.0.1", 0)
        target = await resolve_target(address.host, address.port)
        with trio.CancelScope() as scope:
            def ended(engine):
                if stats.finished >= 100:
                    scope.cancel()
            settings = RunSettings(
                sessions=10**8, concurrency=10**8, run_id="r", handle_signals=False
            )
            await run_sessions(compiled, target, settings, stats, on_session_end=ended)
        nursery.cancel_scope.cancel()
    print(json.dumps({"started": stats.started, "finished": stats.finished,
                      "growth_kib": peak_kib() - before}))

trio.run(main)
"""


def test_a_huge_run_starts_sessions_at_once_without_allocating_them_up_front(
    tmp_path: Path,
) -> None:
    result = python(_HUGE_RUN, cwd=tmp_path, open_files=(1024, 1024))
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["finished"] >= 100
    # Sessions started as the run went (in flight, and those taken after EMFILE), not 10**8.
    assert measured["started"] < 100_000
    assert measured["growth_kib"] < 100 * 1024


def test_an_unresolvable_target_counts_a_huge_run_at_once(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 2606 §2). Every session is still started and accounted for.
    result = python(
        _SMTPLOAD,
        *("run", "quickstart", "--target", "host.invalid:25", "--sessions", "100000000"),
        *("--results", "results", "--json", "summary.json", "--quiet"),
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "cannot resolve host.invalid" in result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sessions"]["started"] == 100_000_000
    assert summary["sessions"]["failures"]["connect_error"] == 100_000_000
    assert summary["steps"][0] | {"latency_ms": None} == {
        "name": "connect",
        "count": 100_000_000,
        "failed": 100_000_000,
        "latency_ms": None,
        "dropped_samples": 0,
        "clock": "loop",  # connect is never timed by the kernel
    }
    (run_dir,) = (tmp_path / "results").iterdir()
    log = (run_dir / "failures.log").read_text()
    assert "session 100: connect_error at step 'connect'" in log
    assert "session 101:" not in log


# --- item: what is read, and how lean ----------------------------------------------------------

KIB = 1024


@contextlib.contextmanager
def fifo(path: Path, data: bytes | None) -> Iterator[Path]:
    """A FIFO at ``path`` whose writer (a thread) writes ``data``, or 1 KiB lines without end
    (up to 64 MiB) while anyone reads."""
    os.mkfifo(path)

    def write() -> None:
        with contextlib.suppress(BrokenPipeError), open(path, "wb") as stream:
            if data is not None:
                stream.write(data)
                return
            line = b"#" + b"x" * (KIB - 2) + b"\n"
            for _ in range(64 * KIB):
                stream.write(line)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield path
    finally:
        # Should nobody have read it, open the other end so that the writer ends.
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=10)


def test_read_input_reads_a_file_up_to_the_bound(tmp_path: Path) -> None:
    at_bound = tmp_path / "at.txt"
    at_bound.write_bytes(b"x" * 100)
    assert read_input(at_bound, 100) == b"x" * 100
    over = tmp_path / "over.txt"
    over.write_bytes(b"x" * 101)
    with pytest.raises(InputTooLargeError, match="larger than 100 bytes"):
        read_input(over, 100)


@pytest.mark.parametrize("source", ["/dev/zero", "endless-fifo"])
def test_read_input_stops_at_the_bound_of_what_never_ends(tmp_path: Path, source: str) -> None:
    with contextlib.ExitStack() as stack:
        path = Path(source)
        if source == "endless-fifo":
            path = stack.enter_context(fifo(tmp_path / "f", None))
        with pytest.raises(InputTooLargeError, match=r"larger than 1 MiB \(1048576 bytes\)"):
            read_input(path, 1024 * KIB)


def test_read_input_reads_a_fifo_to_its_end(tmp_path: Path) -> None:
    # A FIFO claims 0 bytes: what it holds is what its writer writes.
    with fifo(tmp_path / "f", b"steps:\n  - send: QUIT\n") as path:
        assert read_input(path) == b"steps:\n  - send: QUIT\n"


@pytest.mark.parametrize("command", ["validate", "import", "replay"])
@pytest.mark.parametrize("source", ["/dev/zero", "endless-fifo", "file-over-10-MiB"])
def test_a_file_beyond_10_mib_is_refused_with_its_name(
    tmp_path: Path, command: str, source: str
) -> None:
    with contextlib.ExitStack() as stack:
        path = Path(source)
        if source == "endless-fifo":
            path = stack.enter_context(fifo(tmp_path / "input", None))
        elif source == "file-over-10-MiB":
            path = tmp_path / "input.txt"
            line = b"# a comment\n"
            over = MAX_INPUT_BYTES + 1
            path.write_bytes(line * (over // len(line)) + b"#" * (over % len(line)))
            assert path.stat().st_size == MAX_INPUT_BYTES + 1
        result = python(_SMTPLOAD, command, str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"{path}" in result.stderr
    assert "larger than 10 MiB (10485760 bytes), the most smtpload reads" in result.stderr


def test_a_scenario_of_exactly_10_mib_is_read(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "quickstart.yaml").read_bytes()
    path = tmp_path / "big.yaml"
    # The rest of the 10 MiB as comments, 64 bytes a line.
    rest = MAX_INPUT_BYTES - len(text)
    path.write_bytes(text + b"#" * (rest % 64) + (b"\n#" + b"c" * 62) * (rest // 64))
    assert path.stat().st_size == MAX_INPUT_BYTES
    result = python(_SMTPLOAD, "validate", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok (8 steps)" in result.stdout


def _dense_scenario(size_bytes: int) -> str:
    """A valid scenario of about ``size_bytes``, with many nodes per byte (flow mappings)."""
    lines = ["steps:\n", "  - greeting: 220\n"]
    total = sum(map(len, lines))
    number = 0
    while total < size_bytes:
        line = (
            f"  - {{send: EHLO h{number}, expect: {{code: [250, 251],"
            " capabilities: [PIPELINING, SIZE]}}\n"
        )
        lines.append(line)
        total += len(line)
        number += 1
    return "".join(lines)


_VALIDATE_MEASURED = """\
import json, resource, sys
from smtpload.cli.main import main
status = main(["validate", sys.argv[1]])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"status": status, "peak_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime}))
"""


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_a_5_mb_scenario_validates_in_seconds_and_under_200_mb(tmp_path: Path) -> None:
    path = tmp_path / "large.yaml"
    path.write_text(_dense_scenario(5_000_000))
    result = python(_VALIDATE_MEASURED, str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["status"] == 0
    # Before libyaml and compact nodes: ~50 s and ~600 MB on this machine.
    assert measured["peak_kib"] < 200 * 1024
    assert measured["cpu_s"] < 20


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "steps: " + "{a: " * 100_000,
        "- " * 100_000 + "x\n",
        "".join(" " * level + "a:\n" for level in range(150)),
        "steps: " + "[" * 101 + "]" * 101,
    ],
    ids=["flow-lists", "flow-mappings", "block-lists", "indented-mappings", "one-level-over"],
)
def test_deeply_nested_yaml_is_refused_quickly_without_a_crash(tmp_path: Path, text: str) -> None:
    # libyaml's own composer recurses in C: 100,000 levels crash the interpreter.
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    result = python(_SMTPLOAD, "validate", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    # At smtpload's 101st level, or (flow collections, libyaml 0.2.6 and later) libyaml's 1001st.
    assert "the YAML is nested too deeply to be a scenario (more than 10" in result.stderr
    assert "Traceback" not in result.stderr


def test_yaml_nested_to_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("steps: " + "[" * 99 + "]" * 99)  # with the top mapping, 100 levels
    result = python(_SMTPLOAD, "validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "step 1 must be a mapping" in result.stderr
    assert "nested too deeply" not in result.stderr


# run_sessions with every file taken but a few for trio's own: each session's socket() fails
# (EMFILE) and its worker yields; the run is cut off (RunControl.cancel, as a second Ctrl-C)
# while every worker waits in that yield.
_CUT_OFF_OUT_OF_FILES = """\
import json, os, trio
from smtpload.net.client import resolve_target
from smtpload.net.runner import RunSettings, run_sessions
from smtpload.protocol.compiler import compile_scenario
from smtpload.report.stats import RunStats
from smtpload.scenario.bundled import find_scenario
from smtpload.scenario.loader import load_scenario

compiled = compile_scenario(load_scenario(find_scenario("quickstart")))
stats = RunStats(["connect", *compiled.step_names])

async def cut_off(control):
    while stats.finished < 500:
        await trio.sleep(0.001)
    control.cancel()

async def main():
    target = await resolve_target("127.0.0.1", 9)
    taken = []
    try:
        while True:
            taken.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    settings = RunSettings(
        sessions=10**7, concurrency=4, run_id="r", handle_signals=False, control=cut_off
    )
    await run_sessions(compiled, target, settings, stats)
    print(json.dumps({"started": stats.started, "finished": stats.finished,
                      "outcomes": {o.value: n for o, n in stats.outcomes.items() if n}}))

trio.run(main)
"""


def test_a_session_out_of_files_is_counted_once_when_the_run_is_cut_off(tmp_path: Path) -> None:
    result = python(_CUT_OFF_OUT_OF_FILES, cwd=tmp_path, open_files=(64, 64))
    assert result.returncode == 0, result.stderr[-2000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["finished"] >= 500
    assert counts["outcomes"].get("connect_error", 0) >= 500, counts
    # Each session once: before, a worker cut off in its yield after a failed socket() counted
    # its session (recorded already as connect_error) again as interrupted.
    assert counts["finished"] == counts["started"], counts
