"""Many sessions at once: concurrency, progress, and a clean stop on Ctrl-C or SIGTERM.

``--concurrency C`` workers each run sessions one after another until ``--sessions N`` have
started; a failing session is a recorded result, so it never disturbs its siblings.

Stopping (RFC-free, but the promise of the README): the first SIGINT or SIGTERM stops new
sessions and gives running ones ``grace_s`` to finish; whatever is still running then is
cancelled and counted as ``interrupted``. A second signal cancels at once. Either way the run
returns normally, so every result file is still written.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ..compiler import CompiledScenario
from ..engine import SessionEngine
from ..stats import RunStats
from .client import ResolvedTarget, new_session, record_interrupted, run_session

__all__ = ["RunSettings", "RunTiming", "run_sessions"]


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
        observe: run sessions in observe mode (see engine.py): they go on after a difference,
            and each finished session's engine is handed to ``on_session_end``.
    """

    sessions: int
    concurrency: int
    run_id: str
    grace_s: float = 2.0
    progress_interval_s: float | None = None
    handle_signals: bool = True
    observe: bool = False


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
    ) -> None:
        self.scenario = scenario
        self.on_session_end = on_session_end
        self.target = target
        self.settings = settings
        self.stats = stats
        self.next_session = 1
        self.stopping = False
        self.interrupted = False
        self.running: set[trio.CancelScope] = set()
        self.workers_done = trio.Event()

    async def worker(self) -> None:
        settings = self.settings
        while not self.stopping and self.next_session <= settings.sessions:
            session = self.next_session
            self.next_session += 1
            self.stats.session_started()
            engine = new_session(self.scenario, session, settings.run_id, observe=settings.observe)
            with trio.CancelScope() as scope:
                self.running.add(scope)
                try:
                    await run_session(self.scenario, self.target, engine, self.stats)
                finally:
                    self.running.discard(scope)
            if scope.cancelled_caught:
                record_interrupted(engine, self.stats)
            elif self.on_session_end is not None:
                self.on_session_end(engine)

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
            task_status.started()
            async for _ in signals:
                if self.stopping:
                    self.cancel_running()  # a second signal: stop now
                else:
                    self.stopping = True
                    self.interrupted = True
                    nursery.start_soon(self.cancel_after_grace)

    async def cancel_after_grace(self) -> None:
        # Running sessions get a moment to end by themselves; then they are cut off.
        with trio.move_on_after(self.settings.grace_s):
            await self.workers_done.wait()
        self.cancel_running()

    async def report_progress(self, on_progress: Callable[[float], None], start: float) -> None:
        interval = self.settings.progress_interval_s
        assert interval is not None
        while True:
            await trio.sleep(interval)
            on_progress(trio.current_time() - start)


async def run_sessions(
    scenario: CompiledScenario,
    target: ResolvedTarget,
    settings: RunSettings,
    stats: RunStats,
    on_progress: Callable[[float], None] | None = None,
    on_session_end: Callable[[SessionEngine], None] | None = None,
) -> RunTiming:
    """Run ``settings.sessions`` sessions of ``scenario`` against ``target``, into ``stats``."""
    run = _Run(scenario, target, settings, stats, on_session_end)
    start = trio.current_time()
    async with trio.open_nursery() as services:
        if settings.handle_signals:
            await services.start(run.watch_signals, services)
        if on_progress is not None and settings.progress_interval_s is not None:
            services.start_soon(run.report_progress, on_progress, start)
        async with trio.open_nursery() as workers:
            for _ in range(max(1, min(settings.concurrency, settings.sessions))):
                workers.start_soon(run.worker)
        run.workers_done.set()
        duration_s = trio.current_time() - start
        services.cancel_scope.cancel()
    return RunTiming(duration_s=duration_s, interrupted=run.interrupted)
