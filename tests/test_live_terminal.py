"""The live view as a user sees it: ``smtpload run`` on a real pseudo-terminal.

The command runs with a pty as its stdout and stderr and as its controlling terminal, so a
Ctrl-C is typed (``\\x03`` into the pty), as at a keyboard, and the terminal's own echo of
``^C`` lands in the output as it would on screen. Every read is bounded: the test fails, not
hangs, when the command stops drawing or never ends.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import functools
import itertools
import json
import os
import re
import struct
import subprocess
import termios
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from smtpload.report.live import CLEAR_TO_END
from tests.cli import smtpload, start_smtpload
from tests.misbehaving import stall_after_greeting

#: The start of every frame: CR, the cursor up over the last frame (not before the first),
#: erase to the end of the screen.
FRAME_START = re.compile(r"\r(?:\x1b\[(\d+)A)?" + re.escape(CLEAR_TO_END))

#: The labels of a frame's lines, in order (report/live.py).
OPEN_LOOP_LABELS = ("elapsed", "rate", "in flight", "passed", "failed", "latency")

#: Any escape sequence (CSI), or a lone ESC.
ESCAPE = re.compile(r"\x1b")

#: The report's first line after the block: the scenario's name and where it ran.
REPORT_START = "quickstart against "

#: A run's longest wait for output: a stalled or crashed command fails the test after it.
READ_TIMEOUT_S = 60.0


def set_size(fd: int, columns: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _controlling_terminal() -> None:
    # In the child, after start_new_session's setsid(): stderr (the pty) becomes the session's
    # controlling terminal, so the pty's Ctrl-C reaches the command as SIGINT.
    fcntl.ioctl(2, termios.TIOCSCTTY, 0)


@dataclass
class OnTerminal:
    """A command running on a pty: ``output`` is everything read from it so far."""

    process: subprocess.Popen[str]
    master: int
    output: str = ""
    ended: bool = False

    async def read_until(
        self, done: Callable[[str], bool], timeout_s: float = READ_TIMEOUT_S
    ) -> None:
        """Read until ``done(output)`` or the command's end of output; fail after ``timeout_s``."""
        with trio.fail_after(timeout_s):
            while not self.ended and not done(self.output):
                await trio.lowlevel.wait_readable(self.master)
                try:
                    data = os.read(self.master, 65536)
                except OSError as error:  # EIO: every copy of the terminal's other end closed
                    if error.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    self.ended = True
                self.output += data.decode("utf-8", "replace").replace("\r\n", "\n")

    async def finish(self) -> int:
        """Read to the end of its output; its exit status."""
        await self.read_until(lambda _: False)
        return self.process.wait(timeout=10)  # its output has ended: it is exiting

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)


@contextlib.contextmanager
def on_terminal(
    *args: str, cwd: Path, columns: int = 100, rows: int = 40, term: str = "xterm"
) -> Iterator[OnTerminal]:
    master, slave = os.openpty()
    set_size(slave, columns, rows)
    # The Ctrl-C we type makes the kernel discard the command's output that this end has
    # not read yet (termios(3), NOFLSH; n_tty's isig()): under load the lines of a frame
    # after its first were sometimes lost, and the next frame's cursor-up looked wrong.
    # A terminal emulator reads at once; NOFLSH gives the test the same whole output.
    attributes = termios.tcgetattr(slave)
    attributes[3] |= termios.NOFLSH
    termios.tcsetattr(slave, termios.TCSANOW, attributes)
    os.set_blocking(master, False)
    try:
        process = start_smtpload(
            *args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_controlling_terminal,
            env={"TERM": term, "COLUMNS": None, "LINES": None},
        )
        os.close(slave)
        slave = -1
        try:
            yield OnTerminal(process, master)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    finally:
        if slave != -1:
            os.close(slave)
        os.close(master)


@dataclass(frozen=True)
class Frame:
    up: int  # the lines the cursor went up first (0 for the first frame)
    lines: list[str]

    def value(self, label: str) -> str:
        (line,) = [line for line in self.lines if line.startswith(label + " ")]
        return line[len(label) :].strip()


def frames_of(output: str) -> tuple[list[Frame], str]:
    """The frames drawn, and what came after the last one (the report), from a pty's output."""
    starts = list(FRAME_START.finditer(output))
    assert starts, f"no frame drawn: {output!r}"
    frames = []
    for here, after in zip(starts, [*starts[1:], None], strict=True):
        text = output[here.end() : None if after is None else after.start()]
        lines = text.split("\n")
        # A frame is its lines, each ended by a newline; ^C, echoed by the terminal, may sit
        # on the line after it, where the next frame's start erases it.
        frames.append(Frame(int(here.group(1) or 0), lines[:-1]))
    last = frames[-1]
    # The last frame's text runs on into the report, which starts "quickstart against ...".
    (count,) = [i for i, line in enumerate(last.lines) if line.startswith(REPORT_START)]
    frames[-1] = Frame(last.up, last.lines[:count])
    return frames, "\n".join(last.lines[count:])


def summary_of(cwd: Path) -> Any:
    (run,) = (cwd / "results").iterdir()
    return json.loads((run / "summary.json").read_text())


def echoed(times: int) -> Callable[[str], bool]:
    """Whether the terminal has echoed ``^C`` ``times`` times."""
    return lambda output: output.count("^C") >= times


def three_whole_frames(output: str) -> bool:
    """Whether three frames are drawn and the last of them whole (all its lines ended)."""
    starts = list(FRAME_START.finditer(output))
    return len(starts) >= 3 and output[starts[-1].end() :].count("\n") >= len(OPEN_LOOP_LABELS)


def timeline_of(cwd: Path) -> dict[int, dict[str, str]]:
    (run,) = (cwd / "results").iterdir()
    with (run / "timeline.csv").open() as file:
        return {int(row["second"]): row for row in csv.DictReader(file)}


def totals(frame: Frame) -> tuple[int, int]:
    passed = re.fullmatch(r"\d+ this second, (\d+) in total", frame.value("passed"))
    failed = re.fullmatch(r"\d+ this second, (\d+) in total", frame.value("failed"))
    assert passed, frame
    assert failed, frame
    return int(passed.group(1)), int(failed.group(1))


def check_redrawn_in_place(frames: list[Frame]) -> None:
    """Each frame after the first goes up exactly over the one before it."""
    assert frames[0].up == 0
    for before, frame in itertools.pairwise(frames):
        assert frame.up == len(before.lines), (before, frame)


async def test_an_open_loop_run_is_redrawn_each_second_and_agrees_with_its_files(
    tmp_path: Path,
) -> None:
    with on_terminal("run", "quickstart", "--rate", "50", "--duration", "3s", cwd=tmp_path) as run:
        status = await run.finish()
    assert status == 0, run.output
    frames, report = frames_of(run.output)
    assert len(frames) >= 4, run.output  # the first at once, then one per second, the last
    check_redrawn_in_place(frames)
    for frame in frames:
        assert [line.split("  ")[0] for line in frame.lines[:6]] == list(OPEN_LOOP_LABELS), frame
        assert re.match(r"\d+\.\d s of 3\.0 s, this second: ", frame.value("elapsed")), frame
        assert frame.value("rate").startswith("target 50.0/s, started "), frame
    summary = summary_of(tmp_path)
    sessions = summary["sessions"]
    # The final state stays on screen, and is the summary's.
    assert totals(frames[-1]) == (sessions["passed"], sessions["failed"]) == (150, 0)
    assert frames[-1].value("elapsed").startswith(f"{summary['duration_s']:.1f} s of 3.0 s")
    # Each second on screen is timeline.csv's row of that second.
    timeline = timeline_of(tmp_path)
    shown = 0
    for frame in frames[1:]:
        second = re.search(r"this second: (\d+)\.\d-", frame.value("elapsed"))
        assert second, frame
        row = timeline[int(second.group(1))]
        assert frame.value("in flight") == row["in_flight"]
        assert frame.value("passed").startswith(f"{row['passed']} this second, ")
        assert frame.value("failed").startswith(f"{row['failed']} this second, ")
        finished = re.search(r"finished (\d+\.\d)/s", frame.value("rate"))
        assert finished, frame
        assert float(finished.group(1)) == pytest.approx(float(row["sessions_per_s"]), abs=0.051)
        if row["session_p50_ms"]:
            assert frame.value("latency") == (
                f"p50 {row['session_p50_ms']} ms, p99 {row['session_p99_ms']} ms this second"
                " (corrected: from when due)"
            )
        shown += 1
    assert shown >= 3
    # Then the usual report, with no escape sequence in it.
    assert "sessions: 150 started, 150 passed, 0 failed" in report
    assert not ESCAPE.search(report)
    assert "\x1b[?25l" not in run.output  # the cursor is never hidden


@pytest.mark.parametrize(("columns", "rows"), [(30, 5), (12, 40), (100, 3), (2, 2)])
async def test_a_small_terminal_gets_lines_cut_to_it_and_no_garbage(
    tmp_path: Path, columns: int, rows: int
) -> None:
    with on_terminal(
        "run", "quickstart", "--rate", "20", "--duration", "2s",
        cwd=tmp_path, columns=columns, rows=rows,
    ) as run:  # fmt: skip
        status = await run.finish()
    assert status == 0, run.output
    frames, report = frames_of(run.output)
    assert len(frames) >= 3, run.output
    for frame in frames:
        # Nothing reaches the last column (it would wrap) or the last row (it would scroll).
        assert all(len(line) <= max(columns - 1, 1) for line in frame.lines), frame
        assert 1 <= len(frame.lines) <= max(rows - 1, 1), frame
    check_redrawn_in_place(frames)
    assert "sessions: 40 started, 40 passed, 0 failed" in report


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
async def test_ctrl_c_leaves_the_final_block_whole_and_the_terminal_clean(
    tmp_path: Path, presses: int
) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, stall_after_greeting, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        with on_terminal(
            "run", "quickstart", "--target", f"127.0.0.1:{port}", "--rate", "20",
            "--duration", "60s", "--timeout", "60s", cwd=tmp_path,
        ) as run:  # fmt: skip
            # Two seconds drawn, every session stalled in flight: then Ctrl-C, while no
            # frame is being drawn (the echoed ^C would land inside it).
            await run.read_until(three_whole_frames)
            for _ in range(presses):
                run.type(b"\x03")
                await run.read_until(echoed(run.output.count("^C") + 1))
            status = await run.finish()
        nursery.cancel_scope.cancel()
    assert status == 130, run.output
    frames, report = frames_of(run.output)
    check_redrawn_in_place(frames)
    final = frames[-1]
    assert [line.split("  ")[0] for line in final.lines[:6]] == list(OPEN_LOOP_LABELS), final
    summary = summary_of(tmp_path)
    sessions = summary["sessions"]
    assert summary["interrupted"] is True
    assert sessions["failures"]["interrupted"] == sessions["started"] > 0
    assert totals(final) == (0, sessions["failed"])
    assert final.value("in flight") == "0"
    # The block is whole and the report follows it, plain; the cursor was never hidden.
    assert "sessions: " in report
    assert "interrupted" in report
    assert not ESCAPE.search(report)
    assert "\x1b[?25l" not in run.output
    assert "Traceback" not in run.output


@pytest.mark.parametrize("term", ["dumb", ""])
async def test_a_dumb_terminal_gets_plain_lines(tmp_path: Path, term: str) -> None:
    with on_terminal(
        "run", "quickstart", "--rate", "20", "--duration", "1s", cwd=tmp_path, term=term
    ) as run:
        status = await run.finish()
    assert status == 0, run.output
    assert not ESCAPE.search(run.output), run.output
    assert "sessions: 20 started, 20 passed, 0 failed" in run.output


@pytest.mark.parametrize(
    "load", [["--rate", "20", "--duration", "1s"], ["--sessions", "20", "--concurrency", "2"]]
)
def test_without_a_terminal_the_output_has_no_escape_sequences(
    tmp_path: Path, load: list[str]
) -> None:
    result = smtpload("run", "quickstart", *load, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not ESCAPE.search(result.stdout + result.stderr)
    assert "sessions: 20 started, 20 passed, 0 failed" in result.stdout
