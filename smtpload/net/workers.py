"""``--workers N``: one run in N worker processes, each with its own trio loop, on every core.

One trio loop uses one core; a load run that needs more runs N worker processes, gives each one
shard of the run (net/shard.py: its share of the sessions, or of the open-loop schedule), starts
them all at one common start time, and adds their reports up as they come (report/shards.py)
into the run's own ``RunStats``: the live view shows the sum, the results folder and
summary.json are those of one run. The parent runs no session; it merges, draws, and handles
the signals.

How a worker starts: the command line forks its workers (:func:`forked_workers`, net/forked.py)
before it enters ``trio.run`` (a child of a running loop cannot start one of its own), so a
worker has the parent's imports and pages, shared copy-on-write, and costs no interpreter start
(~0.3 s of CPU and ~39 MB each when it did). A caller already inside a trio run (the API,
tests) has none to hand in: :func:`run_in_workers` then starts each as a fresh interpreter,
``python -m smtpload.net.workers FD`` (also where forking is not possible, or with
``SMTPLOAD_FORK_WORKERS=0``). Both run the same code from the spec on: the channel is one.

The channel (parent and worker are the same code, so the frames are pickles, each behind its
length as 4 bytes, big-endian):

- parent to worker, on the worker's stdin: the :class:`ShardSpec` (without its start) as two
  frames, ``(scenario, target)`` (the same bytes for every worker: pickled once, however
  large the scenario's messages) and the shard's ``RunSettings``; then ``("start",
  epoch_ns)``, then at any time ``("stop",)`` (a first Ctrl-C or SIGTERM: no new sessions,
  the running ones get the grace period), ``("abort",)`` (``--abort-on-threshold``, the same
  but not interrupted) or ``("cancel",)`` (a second signal: cut off now). End of file
  (the parent died) cancels too: a worker never outlives its run.
- worker to parent, on the pipe ``FD``: ``("ready",)`` once the spec is loaded,
  ``("interval", IntervalReport)`` every second, ``("totals", ShardTotals)`` at its end.

Workers run in a session of their own (``setsid``, or ``start_new_session``), so a Ctrl-C at the
terminal reaches the parent only, which tells each worker once; they ignore SIGINT. For that end
of file to come, a worker's pipes are held by it and the parent only: a forked worker closes
those of the workers forked before it. Every forked worker is reaped, on every path.

A worker that dies before its totals is said on stderr; the sessions it had started and not
finished count as ``interrupted`` (report/shards.py) and the run goes on with the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import trio

from smtpload.net.client import ResolvedTarget
from smtpload.net.collector import settle_for_load
from smtpload.net.forked import ForkedChild, can_fork, fork_child
from smtpload.net.runner import RunControl, RunSettings, RunTiming, report_progress
from smtpload.net.shard import ShardSpec, run_shard_async, shard_settings
from smtpload.protocol.compiler import CompiledScenario
from smtpload.report.intervals import IntervalLog
from smtpload.report.shards import ShardMerger, ShardTotals
from smtpload.report.stats import RunStats

__all__ = [
    "FORK_VARIABLE",
    "ForkedWorker",
    "WorkerError",
    "forked_workers",
    "kill_forked",
    "run_in_workers",
    "worker_count",
]

#: Set to ``0`` in the environment: ``--workers`` starts its workers as fresh interpreters, as
#: it does where forking is not possible (forked_workers).
FORK_VARIABLE = "SMTPLOAD_FORK_WORKERS"

# A frame's length prefix; and the largest frame read (a spec carries the scenario's messages:
# up to 256 MiB of mail files, scenario/mail_files.py).
_LENGTH = struct.Struct(">I")
_MAX_FRAME_BYTES = 1 << 30

# How long workers may take to start (the scenario; a fresh interpreter's imports too) before
# the run gives up on them; and how far ahead of "all ready" the common start is set, so that
# each worker has its start message before it is due.
_READY_TIMEOUT_S = 60.0
_START_AHEAD_S = 0.05

# A started worker reports an interval every second, whatever its sessions do; one that has
# said nothing for this long is stopped (SIGSTOP, a debugger) or stuck, and is killed and
# counted as lost, so that a run always ends. After a second signal ("cancel": cut off now)
# the workers get this long to end before they are killed.
_SILENCE_LIMIT_S = 10.0
_CANCEL_LIMIT_S = 2.0
# How long a message to a worker may wait for room in its pipe (a few bytes: a worker that
# reads its commands takes them at once).
_TELL_LIMIT_S = 2.0


def worker_count(
    requested: int | None,
    *,
    load_run: bool,
    builtin_sink: bool,
    cores: int | None = None,
) -> int:
    """The worker processes of a run: ``requested`` (``--workers N``), or for ``auto`` (None)
    one per core the process may run on for a load run, and one otherwise, and one when the
    built-in sink is the target (it runs in the parent and would compete with the workers)."""
    if requested is not None:
        return requested
    if builtin_sink or not load_run:
        return 1
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return max(1, cores)


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class _FrameReader:
    """Reads frames from a trio receive stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            data = await self._stream.receive_some(1 << 16)
            if not data:
                return False
            self._buffer += data
        return True

    async def read(self) -> Any:
        """The next message; None at the end of the stream (a cut frame too)."""
        if not await self._fill(_LENGTH.size):
            return None
        (size,) = _LENGTH.unpack_from(self._buffer)
        if size > _MAX_FRAME_BYTES:
            raise ValueError(f"frame of {size} bytes")
        if not await self._fill(_LENGTH.size + size):
            return None
        data = bytes(self._buffer[_LENGTH.size : _LENGTH.size + size])
        del self._buffer[: _LENGTH.size + size]
        return pickle.loads(data)  # our own worker, through our own pipe


# -- the parent --------------------------------------------------------------------------------


class _Process(Protocol):
    """What the parent uses of a worker's process: a ``trio.Process`` (a fresh interpreter) or
    a :class:`ForkedChild`."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def kill(self) -> None: ...

    async def wait(self) -> int: ...


@dataclasses.dataclass(slots=True)
class _Worker:
    index: int
    process: _Process
    stdin: trio.abc.SendStream  # its fd 0: the commands
    messages: _FrameReader
    ready: bool = False
    totals: ShardTotals | None = None
    finished: trio.Event = dataclasses.field(default_factory=trio.Event)
    heard_s: float = 0.0  # when it last said anything (trio's clock)
    # One message at a time on its stdin: a signal's stop and an abort can be told at once,
    # and trio refuses two tasks in one stream's send_all (BusyResourceError).
    telling: trio.Lock = dataclasses.field(default_factory=trio.Lock)

    async def send_spec(self, frames: tuple[bytes, ...]) -> None:
        """Its spec: frames larger than the pipe wait for it to read them (once its imports
        are done), so the workers are given theirs side by side."""
        stdin = self.stdin
        async with self.telling:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                for frame in frames:  # one that died at once: its end is read from its pipe
                    await stdin.send_all(frame)

    async def tell(self, message: object) -> None:
        stdin = self.stdin
        # One that has ended already cannot be told: its end is read from its pipe.
        async with self.telling:
            with (
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
                trio.move_on_after(_TELL_LIMIT_S) as told,
            ):
                await stdin.send_all(_frame(message))
            if told.cancelled_caught:
                # Its commands fill the pipe: it reads none (stopped before it read its
                # spec, or stuck), and a frame cut short leaves its channel useless.
                with contextlib.suppress(OSError):
                    self.process.kill()


def _environment() -> dict[str, str]:
    """The worker's environment: this one, with this smtpload first on the path (a checkout
    run with PYTHONPATH, or an installed one: the worker imports the same code)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


async def _start_worker(index: int) -> _Worker:
    """Start worker ``index``; :meth:`_Worker.send_spec` gives it its spec."""
    read_fd, write_fd = os.pipe()
    try:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "smtpload.net.workers", str(write_fd)],
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
            start_new_session=True,  # Ctrl-C at the terminal reaches the parent only
            env=_environment(),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    assert process.stdin is not None
    return _Worker(index, process, process.stdin, _FrameReader(trio.lowlevel.FdStream(read_fd)))


@dataclasses.dataclass(eq=False)
class ForkedWorker:
    """A worker forked by :func:`forked_workers` before ``trio.run``: its process, and the
    parent's ends of its two pipes until :func:`run_in_workers` takes them."""

    child: ForkedChild
    command_fd: int  # the write end of its fd 0
    report_fd: int  # the read end of its out FD

    def descriptors(self) -> list[int]:
        """What the parent holds of it, which no later worker may hold: a worker holding
        another's pipe end would keep that one's end of file from coming."""
        return [fd for fd in (self.command_fd, self.report_fd, self.child.fileno()) if fd >= 0]

    def take(self, index: int) -> _Worker:
        """In the run: the pipes become its streams, which own them from now on."""
        worker = _Worker(
            index,
            self.child,
            trio.lowlevel.FdStream(self.command_fd),
            _FrameReader(trio.lowlevel.FdStream(self.report_fd)),
        )
        self.command_fd = self.report_fd = -1
        return worker

    def end(self) -> None:
        """After the run: its pipes closed if no run took them, and the process reaped."""
        if self.command_fd >= 0:
            # No run took it: killed before its pipe closes, or it could see the end of file
            # first and leave by itself with 1 ("no run to serve"), a race that CI once saw.
            with contextlib.suppress(OSError):
                self.child.kill()
        for fd in (self.command_fd, self.report_fd):
            if fd >= 0:
                os.close(fd)
        self.command_fd = self.report_fd = -1
        self.child.reap()


@contextlib.contextmanager
def forked_workers(count: int) -> Iterator[list[ForkedWorker]]:
    """``count`` workers forked from this process, for :func:`run_in_workers` (none for one
    worker, where forking is not possible, or with :data:`FORK_VARIABLE` ``0``: it then starts
    fresh interpreters). Call it outside any trio run, with this process's modules imported
    (net/forked.py); on leaving, every worker is killed if still there, and reaped.

    Raises:
        WorkerError: a worker could not be forked (out of processes or memory).
    """
    workers: list[ForkedWorker] = []
    try:
        if count > 1 and os.environ.get(FORK_VARIABLE) != "0" and can_fork():
            sys.stdout.flush()  # the children would write what is buffered a second time
            sys.stderr.flush()
            for index in range(count):
                try:
                    workers.append(_fork_worker(workers))
                except OSError as error:
                    raise WorkerError(
                        f"worker {index + 1} of {count} did not start: {error}"
                    ) from None
        yield workers
    finally:
        for worker in workers:
            worker.end()


def kill_forked(workers: Sequence[ForkedWorker]) -> None:
    """SIGKILL every one still there (no waiting: for a process about to leave at once)."""
    for worker in workers:
        with contextlib.suppress(OSError):
            worker.child.kill()


def _fork_worker(earlier: list[ForkedWorker]) -> ForkedWorker:
    command_read, command_write = os.pipe()
    report_read, report_write = os.pipe()
    inherited = [command_write, report_read]
    for worker in earlier:
        inherited += worker.descriptors()

    def serve() -> int:
        os.dup2(command_read, 0)  # the channel as a fresh interpreter has it
        os.close(command_read)
        # The parent's objects are never collected here: a collection that walks them would
        # write to their pages, copying them (Python's gc.freeze documentation).
        gc.freeze()
        return _serve(report_write)

    try:
        child = fork_child(serve, inherited)
    except BaseException:
        os.close(command_write)
        os.close(report_read)
        raise
    finally:
        os.close(command_read)
        os.close(report_write)
    return ForkedWorker(child, command_write, report_read)


async def run_in_workers(
    scenario: CompiledScenario,
    target: ResolvedTarget,
    settings: RunSettings,
    stats: RunStats,
    on_progress: Callable[[float], None] | None = None,
    forked: Sequence[ForkedWorker] = (),
) -> tuple[RunTiming, list[ShardTotals]]:
    """Run ``settings.sessions`` (or the open loop) of ``scenario`` in ``settings.workers``
    worker processes, into ``stats`` as one run; ``on_progress``, the signal handling and
    ``--abort-on-threshold`` of ``settings`` are the parent's, as in one process.

    Args:
        forked: the workers, forked by :func:`forked_workers` before this trio run; without
            them, each is started as a fresh interpreter (``python -m smtpload.net.workers``).

    Returns:
        the run's timing, and each worker's totals that came (for the ``--source`` counts).

    Raises:
        WorkerError: a worker could not start.
    """
    if forked and len(forked) != settings.workers:
        raise ValueError(f"{len(forked)} forked workers for a run of {settings.workers}")
    parent = _Parent(scenario, target, settings, stats, forked)
    try:
        timing = await parent.run(on_progress)
    finally:
        for worker in parent.workers:
            if worker.process.returncode is None:
                with contextlib.suppress(OSError):
                    worker.process.kill()
    assert parent.merger is not None
    return timing, parent.merger.totals


class WorkerError(Exception):
    """A worker process could not start: the run cannot be made."""


class _Parent:
    """The parent of a run's workers (module docstring)."""

    def __init__(
        self,
        scenario: CompiledScenario,
        target: ResolvedTarget,
        settings: RunSettings,
        stats: RunStats,
        forked: Sequence[ForkedWorker],
    ) -> None:
        self.settings = settings
        self.forked = forked
        self.stats = stats
        self.count = settings.workers
        self.scenario = scenario
        self.target = target
        self.workers: list[_Worker] = []
        self.merger: ShardMerger | None = None
        self.started = False  # the start was sent
        self.stopping = False  # a stop (signal or abort) was decided
        self.interrupted = False  # by a signal
        self.cancelled_s: float | None = None  # when a second signal came (trio's clock)
        self.all_ready = trio.Event()
        self.starting = trio.CancelScope()  # giving the workers their specs, until all ready

    async def tell_all(self, message: object) -> None:
        # Side by side: one that does not read (stopped) delays no other's start or stop.
        async with trio.open_nursery() as telling:
            for worker in self.workers:
                telling.start_soon(worker.tell, message)

    async def watch_signals(self, *, task_status: trio.TaskStatus[None]) -> None:
        """A first SIGINT or SIGTERM: every worker stops (once started); a second: cancels."""
        settings = self.settings
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            if settings.signalled_before is not None and settings.signalled_before():
                self.stopping = self.interrupted = True
            async for _ in signals:
                if self.interrupted:
                    if self.cancelled_s is None:
                        self.cancelled_s = trio.current_time()
                    if self.started:
                        await self.tell_all(("cancel",))
                    else:
                        self.starting.cancel()  # no waiting for the slow ones: cut off now
                    continue
                self.interrupted = self.stopping = True
                if self.started:
                    await self.tell_all(("stop",))

    async def receive(self, worker: _Worker) -> None:
        """Everything ``worker`` says, until it ends."""
        try:
            while True:
                try:
                    message = await worker.messages.read()
                except (ValueError, pickle.UnpicklingError, EOFError, OSError):
                    message = None  # a worker that says nonsense is a worker lost
                if message is None:
                    break
                worker.heard_s = trio.current_time()
                kind = message[0]
                merger = self.merger
                if kind == "ready":
                    worker.ready = True
                    if all(w.ready for w in self.workers):
                        self.all_ready.set()
                elif kind == "interval" and merger is not None:
                    merger.add_interval(worker.index, message[1])
                elif kind == "totals" and merger is not None:
                    worker.totals = message[1]
                    merger.add_totals(worker.index, message[1])
        finally:
            if worker.totals is None:
                # Its channel ended (or said nonsense) without its results: a worker that
                # cannot report is no use to the run, whatever it is doing.
                with contextlib.suppress(OSError):
                    worker.process.kill()
            await worker.process.wait()
            if not worker.ready:
                self.all_ready.set()  # this run cannot start: run() says so
            worker.finished.set()

    async def watch_workers(self) -> None:
        """Kill a started worker that has said nothing for ``_SILENCE_LIMIT_S`` (stopped or
        stuck), and every worker still there ``_CANCEL_LIMIT_S`` after a second signal: the
        run must end, with what the others reported."""
        while True:
            await trio.sleep(1.0)
            now = trio.current_time()
            for worker in self.workers:
                if worker.finished.is_set() or worker.process.returncode is not None:
                    continue
                silent_s = now - worker.heard_s
                cancelled = self.cancelled_s is not None and now - self.cancelled_s > (
                    _CANCEL_LIMIT_S
                )
                if silent_s <= _SILENCE_LIMIT_S and not cancelled:
                    continue
                if self.settings.print_notices:
                    why = (
                        "did not end when cut off"
                        if cancelled
                        else f"said nothing for {silent_s:.0f} s (stopped or stuck)"
                    )
                    print(
                        f"smtpload: worker {worker.index + 1} of {self.count} {why}: killed",
                        file=sys.stderr,
                    )
                with contextlib.suppress(OSError):
                    worker.process.kill()

    def judge(self, nursery: trio.Nursery, elapsed_s: float) -> None:
        """``--abort-on-threshold`` on the merged run, after each of its intervals."""
        check = self.settings.abort
        if check is None or self.stopping:
            return
        if check.check(self.stats, elapsed_s) is not None:
            self.stopping = True
            nursery.start_soon(self.tell_all, ("abort",))

    async def run(self, on_progress: Callable[[float], None] | None) -> RunTiming:
        settings, stats, count = self.settings, self.stats, self.count
        stats.start_intervals()
        async with trio.open_nursery() as nursery:
            if settings.handle_signals:
                await nursery.start(self.watch_signals)
            # Made before any worker starts: a scenario that cannot be sent fails the run now.
            # The scenario (up to 256 MiB of messages) once, not once per worker.
            common = _frame((self.scenario, self.target))
            frames = [
                _frame(shard_settings(settings, index, count, None)) for index in range(count)
            ]
            for index in range(count):
                if self.forked:
                    self.workers.append(self.forked[index].take(index))
                    continue
                try:
                    self.workers.append(await _start_worker(index))
                except OSError as error:  # out of processes or memory
                    raise WorkerError(
                        f"worker {index + 1} of {count} did not start: {error}"
                    ) from None
            for worker in self.workers:
                nursery.start_soon(self.receive, worker)
            # A worker stuck before it reads its spec (larger than the pipe) holds its send:
            # the same bound as for its start, and a second signal, end that too.
            self.starting.deadline = trio.current_time() + _READY_TIMEOUT_S
            with self.starting:
                async with trio.open_nursery() as sending:
                    for worker, frame in zip(self.workers, frames, strict=True):
                        sending.start_soon(worker.send_spec, (common, frame))
                del common, frames  # the workers have them: not held for the run
                await self.all_ready.wait()
            failed = [w for w in self.workers if not w.ready]
            if failed and self.cancelled_s is None:
                nursery.cancel_scope.cancel()
                code = failed[0].process.returncode
                raise WorkerError(
                    f"worker {failed[0].index + 1} of {count} did not start"
                    + ("" if code is None else f" (exit status {code})")
                )
            start_epoch_ns = time.time_ns() + int(_START_AHEAD_S * 1e9)
            load = settings.open_loop
            stats.intervals = IntervalLog(
                stats,
                start_epoch_ns / 1e9,
                target_rate=None if load is None else load.rate_between,
            )
            self.merger = merger = ShardMerger(
                stats, count, on_interval=lambda end_s: self.judge(nursery, end_s)
            )
            await self.tell_all(("start", start_epoch_ns))
            self.started = True
            for worker in self.workers:
                worker.heard_s = trio.current_time()
            nursery.start_soon(self.watch_workers)
            if self.cancelled_s is not None:
                # Two signals while the workers were starting: the ready ones run nothing; the
                # others (still starting, or stuck) are killed _CANCEL_LIMIT_S from now.
                self.cancelled_s = trio.current_time()
                await self.tell_all(("cancel",))
            elif self.interrupted:
                await self.tell_all(("stop",))  # a signal while the workers were starting
            await trio.sleep(max(0.0, (start_epoch_ns - time.time_ns()) / 1e9))
            start = trio.current_time()
            if on_progress is not None and settings.progress_interval_s is not None:
                nursery.start_soon(
                    report_progress, on_progress, settings.progress_interval_s, start
                )
            for worker in self.workers:
                await worker.finished.wait()
            duration_s = trio.current_time() - start
            for worker in self.workers:
                if worker.totals is None:
                    merger.shard_lost(worker.index)
                    if settings.print_notices:
                        print(
                            f"smtpload: worker {worker.index + 1} of {count} ended without its"
                            f" results (exit status {worker.process.returncode}): its sessions"
                            " still running count as interrupted",
                            file=sys.stderr,
                        )
            merger.finish()
            nursery.cancel_scope.cancel()
        if load is not None:
            due = sum(t.planned for t in merger.totals)
            lost = [w.index for w in self.workers if w.totals is None]
            if lost:
                # A lost worker's share of the one schedule still counts (as not started, or
                # as the sessions it was heard to start): every count-th offset, as it walked.
                total = sum(1 for _ in load.offsets())
                due += sum(len(range(index, total, count)) for index in lost)
            stats.sessions_due = due
        return RunTiming(duration_s=duration_s, interrupted=self.interrupted)


# -- the worker --------------------------------------------------------------------------------


async def _serve_shard(spec: ShardSpec, out_fd: int) -> None:
    """A worker's run: say ready, wait for the start, run the shard, report as it goes."""
    commands = _FrameReader(trio.lowlevel.FdStream(os.dup(0)))
    out = trio.lowlevel.FdStream(out_fd)
    send, receive = trio.open_memory_channel[object](1000)

    async def write_out() -> None:
        try:
            async with receive:
                async for message in receive:
                    await out.send_all(_frame(message))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The parent is gone (killed): no one to run for, and nothing to say about it on a
            # terminal that is no longer the run's.
            nursery.cancel_scope.cancel()

    def report(message: object) -> None:
        with contextlib.suppress(trio.BrokenResourceError):  # the parent is gone
            send.send_nowait(message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write_out)
        await send.send(("ready",))
        message = await commands.read()
        if message is None or message[0] != "start":
            send.close()
            return
        spec = dataclasses.replace(
            spec, settings=dataclasses.replace(spec.settings, start_epoch_ns=message[1])
        )

        async def obey(control: RunControl) -> None:
            while True:
                command = await commands.read()
                if command is None or command[0] == "cancel":
                    control.cancel()  # the parent is gone, or a second signal
                    if command is None:
                        return
                elif command[0] == "stop":
                    control.stop(interrupted=True)
                elif command[0] == "abort":
                    control.stop(interrupted=False)

        totals = await run_shard_async(
            spec, on_interval=lambda interval: report(("interval", interval)), control=obey
        )
        with contextlib.suppress(trio.BrokenResourceError):
            await send.send(("totals", totals))
        send.close()


def _read_exactly(fd: int, size: int) -> bytearray:
    """``size`` bytes of ``fd``, read unbuffered: the frames after them stay in the pipe for
    the run's own reader."""
    data = bytearray(size)  # read in place: a large scenario is not held twice
    view = memoryview(data)
    done = 0
    while done < size:
        count = os.readv(fd, [view[done : done + (1 << 20)]])
        if not count:
            raise EOFError("the parent closed the channel before the spec")
        done += count
    return data


def _read_message(fd: int) -> Any:
    (size,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size))
    return pickle.loads(_read_exactly(fd, size))  # our own parent: trusted


def _read_spec() -> ShardSpec:
    scenario, target = _read_message(0)
    settings: RunSettings = _read_message(0)
    return ShardSpec(scenario, target, settings)


def _serve(out_fd: int) -> int:
    """A worker, forked or a fresh interpreter: its spec from fd 0, then its run."""
    try:
        spec = _read_spec()
    except EOFError:
        return 1  # the parent ended before it gave the spec: there is no run to serve
    # A forked worker has the parent's setting already; one started afresh has not.
    settle_for_load()
    trio.run(_serve_shard, spec, out_fd)
    return 0


def main(argv: list[str]) -> int:
    """``python -m smtpload.net.workers FD``: one worker (module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent has the terminal's Ctrl-C
    return _serve(int(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
