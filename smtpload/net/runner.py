"""Many sessions at once: concurrency, progress, and a clean stop on Ctrl-C or SIGTERM.

``--concurrency C`` workers each run sessions one after another until ``--sessions N`` have
started; a failing session is a recorded result, so it never disturbs its siblings. Nothing is
allocated per session, or per worker, up front: workers are started in small batches as the run
goes, each taking the next session number when it is ready for one, so that even
``--sessions 100000000 --concurrency 100000000`` starts its first session at once and holds
only what is in flight. A target that cannot be resolved fails every session to connect: they
are counted in one step, not one by one.

Stopping (RFC-free, but the promise of the README): the first SIGINT or SIGTERM stops new
sessions and gives running ones ``grace_s`` to finish; whatever is still running then is
cancelled and counted as ``interrupted``. A second signal cancels at once. Either way the run
returns normally, so every result file is still written. A signal that came before this
handling was in place, and that the caller noted (``RunSettings.signalled_before``, see
cli/interrupts.py), counts as the first.

``--abort-on-threshold`` (``RunSettings.abort``, report/abort.py) stops the run the same way
when a threshold is crossed, judged once a second right after an interval closes; the run is
then aborted, not interrupted (exit 1, not 130). A signal during an abort's grace marks the
run interrupted (130 wins); a second one cancels at once, as ever.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from smtpload.errors import UsageError
from smtpload.load.arrivals import OpenLoop
from smtpload.load.sources import SourceList
from smtpload.net.client import (
    ResolvedTarget,
    new_session,
    record_interrupted,
    resolve_target,
    run_session,
)
from smtpload.net.sink import serve_sink
from smtpload.net.source import FAMILIES, SourceBinder, family_name
from smtpload.net.tls import TlsClient, TlsOptions, build_tls_client
from smtpload.net.wire_clock import SWITCH_ON_WAIT_S, ReceiveTimesKept
from smtpload.protocol.compiler import CompiledScenario
from smtpload.protocol.engine import CONNECT_EXPECTATION, Observation, SessionEngine
from smtpload.protocol.outcome import Outcome, SessionFailure
from smtpload.protocol.wire import DEFAULT_MAX_REPLY_BYTES
from smtpload.report.abort import AbortCheck
from smtpload.report.intervals import ClosedInterval, IntervalLog
from smtpload.report.results import build_summary
from smtpload.report.stats import KERNEL_CLOCK, PipeliningCounts, RunStats
from smtpload.report.tls_counts import TlsCounts
from smtpload.scenario.durations import MAX_DURATION_S
from smtpload.scenario.model import StepKind, Target

if TYPE_CHECKING:  # net/workers.py imports this module
    from smtpload.net.workers import ForkedWorker

__all__ = [
    "RunControl",
    "RunSettings",
    "RunTiming",
    "new_run_id",
    "report_progress",
    "run_scenario",
    "run_scenario_to_summary",
    "run_sessions",
    "source_binder",
]

# How much earlier than due an open-loop run wakes to start a session (see start_open_loop).
_TIMER_SLACK_S = 0.001

# The generator watch: a tick every 10 ms (the loop's lag), CPU about every second.
_TICK_S = 0.01
_CPU_SAMPLE_S = 1.0

# The interval log's and the timeline's interval (report/intervals.py).
_INTERVAL_S = 1.0

# Workers started between two checkpoints: sessions begin while the rest are still starting.
_WORKERS_PER_BATCH = 64


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How a run goes.

    Attributes:
        sessions: sessions to start in total.
        concurrency: sessions running at the same time, at most.
        run_id: this run's id (built-in variable ``run_id``, results folder name).
        grace_s: after the first Ctrl-C, how long running sessions may still take.
        progress_interval_s: how often ``on_progress`` is called; None for never.
        handle_signals: install SIGINT/SIGTERM handling (only possible in the main thread).
        signalled_before: with ``handle_signals``, asked once that handling is in place:
            whether a signal came before it was (the caller noted it; see cli/interrupts.py).
            If so, the run stops as at a first signal: it starts no session.
        observe: run sessions in observe mode (see engine.py): they go on after a difference,
            and each finished session's engine is handed to ``on_session_end``.
        max_reply_bytes: the longest server reply accepted (``--max-reply-bytes``); a longer
            one ends its session as ``protocol_error``.
        print_notices: say on stderr what the counts alone would not explain (a target that
            cannot be resolved); off for the Python API, which must not write to stderr.
        open_loop: run open loop (sessions start when due, see load/arrivals.py) instead of
            ``concurrency`` workers; ``sessions`` is then ignored (``OpenLoop.max_sessions``
            caps the total).
        tls: the run's TLS client (one context for every session: net/tls.py), for a
            scenario with a ``tls`` step; None builds one with the defaults (the system's
            certificates, verified; resumption on) for the target.
        clock: ``kernel`` to end reply latencies on the kernel's receive times where the
            platform has them (else the run falls back to the loop and says so in its
            summary), ``loop`` to end them when the event loop sees the reply.
        abort: ``--abort-on-threshold``: judged once a second; its first crossing stops the
            run as a first signal does (its ``crossing`` then says which); one per run.
        sources: ``--source``: the local addresses sessions bind to, round-robin by session
            number (net/source.py); only those of the target's family are used.
        observer: with ``observe``: each observation as it is made, with its session's
            number, instead of kept in the engine until the session ends (a persistent
            session's observations would grow without end: engine.py).
        shard: ``(index, count)``: this run is shard ``index`` of ``count`` of one run
            (``--workers``, net/shard.py): in closed loop it runs the session numbers
            ``index + 1``, ``index + 1 + count``, ... up to ``sessions``, in open loop every
            ``count``-th session of the schedule, from the ``index``-th; so the sessions of
            all shards are those of one run, numbered as one run numbers them.
        start_epoch_ns: the common start of the shards (``time.time_ns()``): the run waits
            for it before its first session and its first interval.
        interval_listener: called with each interval the run closes (a shard's report).
        control: started beside the run with its :class:`RunControl`: a shard's parent stops
            it through that (its signals are the parent's).
        workers: worker processes (``--workers``, net/workers.py); 1 runs in this process.
    """

    sessions: int
    concurrency: int
    run_id: str
    grace_s: float = 2.0
    progress_interval_s: float | None = None
    handle_signals: bool = True
    signalled_before: Callable[[], bool] | None = None
    observe: bool = False
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    print_notices: bool = True
    clock: str = KERNEL_CLOCK
    open_loop: OpenLoop | None = None
    abort: AbortCheck | None = None
    tls: TlsClient | None = None
    sources: SourceList | None = None
    observer: Callable[[int, Observation], None] | None = None
    shard: tuple[int, int] | None = None
    start_epoch_ns: int | None = None
    interval_listener: Callable[[ClosedInterval], None] | None = None
    control: Callable[[RunControl], Awaitable[None]] | None = None
    workers: int = 1


class RunControl:
    """What a run's ``control`` task can do to it: what a signal or an abort does."""

    def __init__(self, run: _Run, nursery: trio.Nursery) -> None:
        self._run = run
        self._nursery = nursery

    def stop(self, *, interrupted: bool = True) -> None:
        """As a signal (``interrupted``: the run's own signal rule, ``_Run.signalled``) or an
        abort (no new sessions, running ones get the grace period; once stopping, nothing)."""
        run = self._run
        if interrupted:
            run.signalled(self._nursery)
        elif not run.stopping:
            run.stop(self._nursery, interrupted=False)

    def cancel(self) -> None:
        """Stop at once: running sessions are cut off now (``interrupted``)."""
        run = self._run
        if not run.stopping:
            run.stop(self._nursery)
        run.interrupted = True
        run.cancel_running()


@dataclass(frozen=True, slots=True)
class RunTiming:
    duration_s: float
    interrupted: bool


class _Run:
    def __init__(
        self,
        scenario: CompiledScenario,
        target: ResolvedTarget,
        settings: RunSettings,
        stats: RunStats,
        on_session_end: Callable[[SessionEngine], None] | None,
        on_step: Callable[[Observation], None] | None,
        receive_times: ReceiveTimesKept,
        source: SourceBinder | None = None,
    ) -> None:
        self.scenario = scenario
        self.source = source
        self.on_step = on_step
        self.on_session_end = on_session_end
        self.target = target
        self.settings = settings
        self.stats = stats
        # The session numbers this run hands out: all, or a shard's (RunSettings.shard).
        index, self.shard_count = settings.shard or (0, 1)
        self.shard_index = index
        self.next_session = index + 1
        self.planned = 0  # open loop: the sessions due so far (started or not)
        self.stopping = False
        self.interrupted = False
        self.running: set[trio.CancelScope] = set()
        self.scheduling = trio.CancelScope()
        self.workers_done = trio.Event()
        self.tls = settings.tls
        if scenario.uses_tls:
            if self.tls is None:
                self.tls = build_tls_client(TlsOptions(), target.host)
            stats.tls = TlsCounts(verified=self.tls.verified, resume=self.tls.resume)
        if scenario.has_pipeline_groups:
            stats.pipelining = PipeliningCounts()
        self.kernel_clock = settings.clock == KERNEL_CLOCK and receive_times.available
        if self.kernel_clock:
            # connect and close end on events that carry no receive time.
            stats.use_kernel_clock(
                name
                for step in scenario.steps
                if step.kind is not StepKind.CLOSE
                for name in (step.name, *step.parts)
            )

    async def worker(self) -> None:
        """Closed loop: run sessions one after the other while any are left.

        One cancel scope for the worker, not one per session (a scope costs about as much as
        a step's handling): cancelling it (``cancel_running``) cuts off the session under way,
        which accounts for itself as interrupted, and ends the worker, as the run is stopping.
        """
        settings = self.settings
        step = self.shard_count
        with self.cancellable():
            while not self.stopping and self.next_session <= settings.sessions:
                session = self.next_session
                self.next_session += step
                await self.one_session(session, None)

    @contextlib.contextmanager
    def cancellable(self) -> Iterator[None]:
        """A scope that ``cancel_running`` cancels, around a worker or an open-loop session."""
        with trio.CancelScope() as scope:
            self.running.add(scope)
            try:
                yield
            finally:
                self.running.discard(scope)

    async def one_session(self, session: int, due_ns: int | None) -> None:
        """Run session number ``session`` and account for it, whatever happens; ``due_ns``:
        when an open-loop run meant it to start (``time.time_ns()``), None in closed loop.

        Cut off (trio.Cancelled, from ``cancel_running``), it is recorded as interrupted and
        the cancellation goes on to the caller's scope (``cancellable``).
        """
        settings = self.settings
        self.stats.session_started()
        engine = new_session(
            self.scenario,
            session,
            settings.run_id,
            observe=settings.observe,
            observer=settings.observer,
            watcher=self.on_step,
        )
        try:
            await run_session(
                self.scenario,
                self.target,
                engine,
                self.stats,
                max_reply_bytes=settings.max_reply_bytes,
                kernel_clock=self.kernel_clock,
                due_ns=due_ns,
                tls=self.tls,
                source=self.source,
            )
        except trio.Cancelled:
            record_interrupted(engine, self.stats)
            raise
        if self.on_session_end is not None:
            self.on_session_end(engine)

    async def start_open_loop(self, workers: trio.Nursery, load: OpenLoop) -> None:
        """Open loop: start each session when it is due, whatever the earlier ones do.

        A session due while ``max_in_flight`` run waits for a slot and starts late (its
        latency still counts from when it was due); none is dropped. When the run's duration
        is over, sessions still waiting are not started (``not_started``); those running end
        by themselves. Every session due is counted in ``self.planned``.
        """
        slots = trio.Semaphore(load.max_in_flight)
        start = trio.current_time()
        start_ns = time.time_ns()
        end = start + load.duration_s
        due_times = load.offsets()

        async def run_then_free(session: int, due_ns: int) -> None:
            try:
                # Spawned before the run began to stop, but not run until now: it is one of
                # those not started (``planned`` has it), like the rest of the schedule.
                if not self.stopping:
                    with self.cancellable():
                        await self.one_session(session, due_ns)
            finally:
                slots.release()

        shard, shards = self.shard_index, self.shard_count
        if shards > 1:
            # Every shards-th session of the one run's schedule; numbered as in one run.
            due_times = itertools.islice(due_times, shard, None, shards)
        with self.scheduling:  # a first Ctrl-C cancels it: no waiting for the next session due
            for offset in due_times:
                self.planned += 1
                # The loop's timer works in whole milliseconds and wakes late (about 1 ms at
                # p50, measured here): waking 1 ms early keeps starts within about a
                # millisecond of when they are due, either way, with the median near 0.
                await trio.sleep_until(start + offset - _TIMER_SLACK_S)
                with trio.move_on_at(end) as waiting:
                    await slots.acquire()
                if waiting.cancelled_caught:
                    break  # the run's duration is over: this one and the rest never start
                session = self.next_session
                self.next_session += shards
                workers.start_soon(run_then_free, session, start_ns + int(offset * 1e9))
        # The sessions that were due and never started, counted without running them.
        self.planned += sum(1 for _ in due_times)

    async def start_workers(self, workers: trio.Nursery) -> None:
        """Start up to ``concurrency`` workers (never more than sessions), a batch at a time;
        or, for an open-loop run, each session when it is due."""
        settings = self.settings
        if settings.open_loop is not None:
            await self.start_open_loop(workers, settings.open_loop)
            return
        mine = len(range(self.next_session, settings.sessions + 1, self.shard_count))
        wanted = max(1, min(settings.concurrency, mine))
        for started in range(wanted):
            if self.stopping or self.next_session > settings.sessions:
                return  # the workers running already take every session left
            workers.start_soon(self.worker)
            if started % _WORKERS_PER_BATCH == _WORKERS_PER_BATCH - 1:
                await trio.lowlevel.checkpoint()

    def cancel_running(self) -> None:
        for scope in list(self.running):
            scope.cancel()

    async def watch_signals(
        self,
        nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            # A signal that came before the receiver was in place was noted by the caller
            # (start-up, or between two runs): it counts as the first.
            signalled_before = self.settings.signalled_before
            if signalled_before is not None and signalled_before():
                self.stop(nursery)
            task_status.started()
            async for _ in signals:
                self.signalled(nursery)

    def signalled(self, nursery: trio.Nursery) -> None:
        """A SIGINT or SIGTERM (or a parent's word of one: RunControl): the first stops the run,
        one during an abort's grace marks it interrupted, the next cancels what still runs."""
        if self.interrupted:
            self.cancel_running()  # a second signal: stop now
        elif self.stopping:
            self.interrupted = True  # during an abort's grace: the run ends with 130
        else:
            self.stop(nursery)

    def stop(self, nursery: trio.Nursery, *, interrupted: bool = True) -> None:
        """The first signal (or an abort, not ``interrupted``): no new sessions; running ones
        get ``grace_s``."""
        self.stopping = True
        self.interrupted = interrupted
        self.scheduling.cancel()
        nursery.start_soon(self.cancel_after_grace)

    async def cancel_after_grace(self) -> None:
        # Running sessions get a moment to end by themselves; then they are cut off.
        with trio.move_on_after(self.settings.grace_s):
            await self.workers_done.wait()
        self.cancel_running()

    async def watch_generator(self) -> None:
        """Measure smtpload's own load while the run goes: every ``_TICK_S`` how late the
        loop woke this task (``loop_lag``), about every second the process's CPU use."""
        load = self.stats.generator
        now = trio.current_time
        due = now() + _TICK_S
        cpu_mark, wall_mark = time.process_time(), time.perf_counter()
        try:
            while True:
                await trio.sleep_until(due)
                woke = now()
                load.record_tick(_TICK_S, woke - due)
                due = woke + _TICK_S  # lateness is not carried over from tick to tick
                wall = time.perf_counter()
                if wall - wall_mark >= _CPU_SAMPLE_S:
                    cpu = time.process_time()
                    load.record_cpu(cpu - cpu_mark, wall - wall_mark)
                    cpu_mark, wall_mark = cpu, wall
        finally:
            # The run's last part, shorter than a sample, is a sample of its own.
            load.record_cpu(time.process_time() - cpu_mark, time.perf_counter() - wall_mark)

    def abort_if_crossed(self, nursery: trio.Nursery, elapsed_s: float) -> None:
        """``--abort-on-threshold``: judge the thresholds on the run so far; on a crossing,
        stop as at a first signal, but not interrupted."""
        check = self.settings.abort
        if check is None or self.stopping:
            return
        if check.check(self.stats, elapsed_s) is not None:
            self.stop(nursery, interrupted=False)

    async def record_intervals(
        self,
        nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Close an interval every ``_INTERVAL_S`` (latency.hlog, timeline.csv) and the last
        one when the run ends, so that the run-wide histograms hold every sample; after each
        one, the run-wide histograms are up to date: the moment to judge an abort."""
        stats = self.stats
        load = self.settings.open_loop
        start_epoch_s = (
            time.time()
            if self.settings.start_epoch_ns is None
            else self.settings.start_epoch_ns / 1e9
        )
        log = IntervalLog(
            stats,
            start_epoch_s,
            target_rate=None if load is None else load.rate_between,
            listener=self.settings.interval_listener,
        )
        stats.intervals = log
        stats.start_intervals()
        start = trio.current_time()
        task_status.started()
        mark_s = 0.0
        try:
            while True:
                # On the second, not after it: the intervals do not drift with the loop's lag.
                await trio.sleep_until(start + mark_s + _INTERVAL_S)
                log.close_interval(mark_s, mark_s + _INTERVAL_S)
                mark_s += _INTERVAL_S
                self.abort_if_crossed(nursery, mark_s)
        finally:
            log.close_interval(mark_s, trio.current_time() - start, last=True)


async def report_progress(
    on_progress: Callable[[float], None], interval_s: float, start: float
) -> None:
    """Call ``on_progress`` every ``interval_s`` with the seconds since ``start`` (trio's
    clock), until cancelled: one run's, or the parent's of several workers."""
    while True:
        await trio.sleep(interval_s)
        on_progress(trio.current_time() - start)


async def run_sessions(
    scenario: CompiledScenario,
    target: ResolvedTarget,
    settings: RunSettings,
    stats: RunStats,
    on_progress: Callable[[float], None] | None = None,
    on_session_end: Callable[[SessionEngine], None] | None = None,
    on_step: Callable[[Observation], None] | None = None,
    source: SourceBinder | None = None,
) -> RunTiming:
    """Run ``settings.sessions`` sessions of ``scenario`` against ``target``, into ``stats``.

    Args:
        on_progress: called every ``settings.progress_interval_s`` with the seconds elapsed.
        on_session_end: called with each session's engine when it ends (not when interrupted).
        on_step: called with each step's observation as it completes (``smtpload replay``).
        source: binds each session's socket to its source address (``source_binder``).
    """
    with ReceiveTimesKept() as receive_times:
        run = _Run(
            scenario, target, settings, stats, on_session_end, on_step, receive_times, source
        )
        if run.kernel_clock:
            # The kernel switches the stamps on a moment later (wire_clock.ReceiveTimesKept).
            await trio.sleep(SWITCH_ON_WAIT_S)
        return await _run(run, stats, on_progress)


async def _run(
    run: _Run, stats: RunStats, on_progress: Callable[[float], None] | None
) -> RunTiming:
    settings = run.settings
    if settings.start_epoch_ns is not None:
        # The shards' common start: the same instant on this machine's realtime clock.
        await trio.sleep(max(0.0, (settings.start_epoch_ns - time.time_ns()) / 1e9))
    start = trio.current_time()
    async with trio.open_nursery() as services:
        if settings.handle_signals:
            await services.start(run.watch_signals, services)
        if settings.control is not None:
            services.start_soon(settings.control, RunControl(run, services))
        if on_progress is not None and settings.progress_interval_s is not None:
            services.start_soon(report_progress, on_progress, settings.progress_interval_s, start)
        services.start_soon(run.watch_generator)
        await services.start(run.record_intervals, services)  # before the first session
        async with trio.open_nursery() as workers:
            await run.start_workers(workers)
        run.workers_done.set()
        duration_s = trio.current_time() - start
        services.cancel_scope.cancel()
    if settings.open_loop is not None:
        stats.sessions_due = run.planned
    return RunTiming(duration_s=duration_s, interrupted=run.interrupted)


async def run_scenario(
    scenario: CompiledScenario,
    target: Target | None,
    settings: RunSettings,
    stats: RunStats,
    on_progress: Callable[[float], None] | None = None,
    on_session_end: Callable[[SessionEngine], None] | None = None,
    on_step: Callable[[Observation], None] | None = None,
) -> tuple[str, float, bool]:
    """A whole run: resolve ``target`` once (or start the built-in sink when it is None), then
    ``run_sessions``. The callbacks are ``run_sessions``'s.

    Returns:
        the target as shown in reports, the run's duration, and whether it was interrupted.

    Raises:
        UsageError: ``settings.sources`` has no address of the target's family; or the target
            is a unix socket and the scenario's PROXY header would take an address from it.
    """
    shown, duration_s, interrupted, _source = await _run_scenario(
        scenario, target, settings, stats, on_progress, on_session_end, on_step
    )
    return shown, duration_s, interrupted


async def _run_scenario(
    scenario: CompiledScenario,
    target: Target | None,
    settings: RunSettings,
    stats: RunStats,
    on_progress: Callable[[float], None] | None = None,
    on_session_end: Callable[[SessionEngine], None] | None = None,
    on_step: Callable[[Observation], None] | None = None,
    forked: Sequence[ForkedWorker] = (),
) -> tuple[str, float, bool, SourceBinder | None]:
    """:func:`run_scenario`, and the run's source binder (for its counts) when it had one;
    ``forked``: the workers forked for it (net/workers.py ``forked_workers``), if any."""
    mismatch: UsageError | None = None
    async with trio.open_nursery() as nursery:
        if target is None:
            # The built-in sink listens where the sources can reach it: ::1 for IPv6 ones.
            sources = settings.sources
            loopback = "::1" if sources is not None and 4 not in sources.versions else "127.0.0.1"
            address = await nursery.start(serve_sink, loopback, 0)
            target = Target(address.host, address.port)
        resolution = await _resolve_unless_signalled(target, settings, scenario.timeout_s)
        if resolution is None:
            # Ctrl-C or SIGTERM while the name was being looked up: no session was started.
            nursery.cancel_scope.cancel()
            return str(target), 0.0, True, None
        if not isinstance(resolution, ResolvedTarget):
            # Nothing can connect: every session fails to, and the run still reports that.
            error = resolution
            reason = str(error) or f"no answer within {scenario.timeout_s:g} s"
            detail = f"cannot resolve {target.host}: {reason}"

            def failure(session: int) -> SessionFailure:
                return SessionFailure(
                    session, Outcome.CONNECT_ERROR, "connect", CONNECT_EXPECTATION, detail, ()
                )

            stats.record_connect_failures(1, settings.sessions, failure)
            if settings.print_notices:
                print(f"smtpload: {detail}", file=sys.stderr)
            nursery.cancel_scope.cancel()
            return str(target), 0.0, False, None
        source = None
        missing = () if scenario.proxy is None else scenario.proxy.from_connection
        if resolution.family == socket.AF_UNIX and missing:
            # Every session would fail at its first step the same way: say it once (exit 2).
            mismatch = UsageError(
                f"the PROXY header (proxy:, --proxy) takes {', '.join(missing)} from the"
                f" connection, and the target {resolution.display} is a unix socket, which has"
                " no addresses: give them in the scenario's proxy: key, or `command: local`"
            )
        elif settings.sources is not None:
            try:
                source = source_binder(settings.sources, resolution)
            except UsageError as error:
                mismatch = error
        if mismatch is None and settings.workers > 1:
            # Imported here: net/workers.py runs its shards with this module's run_sessions.
            from smtpload.net.workers import run_in_workers

            timing, shards = await run_in_workers(
                scenario, resolution, settings, stats, on_progress, forked
            )
            if source is not None:
                for shard in shards:
                    source.add_counts(shard.source_counts or ())
        elif mismatch is None:
            timing = await run_sessions(
                scenario, resolution, settings, stats, on_progress, on_session_end, on_step, source
            )
        nursery.cancel_scope.cancel()
    if mismatch is not None:
        raise mismatch  # out here, not inside the nursery: not wrapped in an exception group
    return resolution.display, timing.duration_s, timing.interrupted, source


def source_binder(sources: SourceList, target: ResolvedTarget) -> SourceBinder:
    """The binder of ``sources``'s addresses of ``target``'s family.

    Raises:
        UsageError: ``sources`` holds none of that family, or the target is a unix socket.
    """
    if target.family == socket.AF_UNIX:
        raise UsageError(
            f"source addresses (--source) are for TCP: the target {target.display} is a unix"
            " socket, which has no source address to choose"
        )
    version = 6 if target.family == FAMILIES[6] else 4
    usable = sources.of_version(version)
    if usable is None:
        others = family_name(FAMILIES[10 - version])
        raise UsageError(
            f"the source addresses (--source) are all {others}, and the target"
            f" {target.display} is {family_name(target.family)}: give sources of its family"
        )
    return SourceBinder(usable, other_family=len(sources) - len(usable))


async def _resolve_unless_signalled(
    target: Target, settings: RunSettings, timeout_s: float
) -> ResolvedTarget | OSError | trio.TooSlowError | None:
    """Resolve ``target`` once for the whole run, bounded like any other wait.

    A name lookup can take up to the timeout, and the run's own signal handling
    (:func:`run_sessions`) is not in place yet: with ``settings.handle_signals`` a first
    SIGINT or SIGTERM (or one noted before, ``signalled_before``) stops the lookup at once.

    Returns:
        the resolved target; the error that says why it cannot be resolved; or None when a
        signal stopped it.
    """
    signalled = False
    result: ResolvedTarget | OSError | trio.TooSlowError | None = None
    async with trio.open_nursery() as nursery:
        if settings.handle_signals:

            async def stop_on_signal(*, task_status: trio.TaskStatus[None]) -> None:
                nonlocal signalled
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    task_status.started()
                    async for _ in signals:
                        signalled = True
                        nursery.cancel_scope.cancel()

            await nursery.start(stop_on_signal)
            if settings.signalled_before is not None and settings.signalled_before():
                signalled = True
                nursery.cancel_scope.cancel()
        try:
            with trio.fail_after(timeout_s):
                families = frozenset(
                    ()
                    if settings.sources is None
                    else (FAMILIES[v] for v in settings.sources.versions)
                )
                result = await resolve_target(target.host, target.port, families, target.unix_path)
        except (OSError, trio.TooSlowError) as error:
            result = error
        nursery.cancel_scope.cancel()  # the signal receiver closes: run_sessions opens its own
    return None if signalled else result


def new_run_id() -> str:
    """A run's id: its UTC start time, readable and sortable, and 6 random hex digits, so that
    two runs started in the same second never share a results folder."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


async def run_scenario_to_summary(
    scenario: CompiledScenario,
    target: Target | None,
    settings: RunSettings,
    stats: RunStats,
    on_progress: Callable[[float], None] | None = None,
    forked: Sequence[ForkedWorker] = (),
) -> dict[str, Any]:
    """:func:`run_scenario`, then the run's summary (the summary.json contract): what both the
    command line and the Python API run.

    Args:
        stats: an empty ``RunStats`` for ``connect`` and the scenario's steps; the caller keeps
            it for the files and the table that are made from it.
        forked: the ``settings.workers`` workers, forked before this trio run by
            net/workers.py ``forked_workers``; without them they start as fresh interpreters.
    """
    shown_target, duration_s, interrupted, source = await _run_scenario(
        scenario, target, settings, stats, on_progress, forked=forked
    )
    return build_summary(
        scenario=scenario.name,
        target=shown_target,
        run_id=settings.run_id,
        duration_s=duration_s,
        stats=stats,
        interrupted=interrupted,
        sessions_requested=settings.sessions if stats.sessions_due is None else stats.sessions_due,
        load=_load_summary(settings),
        aborted=_aborted(settings),
        sources=None if source is None else source.summary(),
        seed=scenario.seed,
    )


def _aborted(settings: RunSettings) -> dict[str, Any] | None:
    """summary.json's ``aborted``: the threshold that stopped the run, or None."""
    crossing = None if settings.abort is None else settings.abort.crossing
    return None if crossing is None else crossing.summary()


def _load_summary(settings: RunSettings) -> dict[str, Any]:
    """summary.json's ``load``: how the run was driven."""
    load = settings.open_loop
    if load is None:
        return {
            "model": "closed",
            "corrected": False,
            "concurrency": settings.concurrency,
            "sessions": settings.sessions,
            "workers": settings.workers,
        }
    return {
        "model": "open",
        "corrected": True,  # session latencies from when each session was due
        "arrivals": load.arrivals,
        "stages": [
            {"duration_s": stage.duration_s, "rate_per_s": stage.rate_per_s}
            for stage in load.stages
        ],
        # None: no --duration; the run ends when max_sessions have come due.
        "duration_s": None if load.duration_s >= MAX_DURATION_S else load.duration_s,
        "max_sessions": load.max_sessions,
        "max_in_flight": load.max_in_flight,
        "seed": load.seed,
        "workers": settings.workers,
    }
