"""The unit of work of a run in several processes: run one shard of a run, return its counts.

``run_shard(spec)`` runs shard ``index`` of ``count`` of one run (``spec.settings.shard``) from
the common start ``spec.settings.start_epoch_ns`` and returns its
:class:`~smtpload.report.shards.ShardTotals`: counts and
encoded histograms (HdrHistogram V2 blobs) that report/shards.py adds up with the other shards'
into one run's results. Everything in and out is plain data that pickles, so the same function
serves the worker processes of ``--workers`` (net/workers.py, which also passes a live channel
for the intervals and a control for Ctrl-C) and, unchanged, shards on other machines under a
distributed engine (a Dask task calls ``run_shard`` in a worker thread: the shard installs no
signal handling of its own, and with no live channel its intervals come back in the totals).

What a shard runs (net/runner.py, ``RunSettings.shard``): closed loop, the session numbers
``index + 1, index + 1 + count, ...`` with its share of ``--concurrency``; open loop, every
``count``-th session of the one schedule (same seed, same offsets) with its share of
``--max-in-flight``. So the sessions of all shards are the sessions of one run with their
numbers: ``{session}``, ``{uid}`` and every random draw (``session_random(seed, session)``) are
the same whatever the number of workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from smtpload.net.client import ResolvedTarget
from smtpload.net.runner import RunControl, RunSettings, run_sessions, source_binder
from smtpload.protocol.compiler import CompiledScenario
from smtpload.report.intervals import ClosedInterval
from smtpload.report.shards import IntervalReport, ShardTotals, interval_report, shard_totals
from smtpload.report.stats import RunStats

__all__ = ["ShardSpec", "run_shard", "run_shard_async", "shard_settings", "split"]


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """One shard of a run.

    Attributes:
        scenario: the compiled scenario (the same for every shard).
        target: the server, resolved once for the run.
        settings: the shard's settings (:func:`shard_settings`).
    """

    scenario: CompiledScenario
    target: ResolvedTarget
    settings: RunSettings


def split(total: int, count: int, index: int) -> int:
    """Shard ``index``'s share of ``total`` split as evenly as can be in ``count`` shares (the
    first ones get one more)."""
    return total // count + (1 if index < total % count else 0)


def shard_settings(
    settings: RunSettings, index: int, count: int, start_epoch_ns: int | None
) -> RunSettings:
    """The settings of shard ``index`` of ``count`` of a run with ``settings``: its share of
    the concurrency (or of the open loop's sessions in flight), from the common start, with no
    signal handling, callbacks or notices of its own (the parent has them)."""
    load = settings.open_loop
    if load is not None:
        load = dataclasses.replace(
            load, max_in_flight=max(1, split(load.max_in_flight, count, index))
        )
    return dataclasses.replace(
        settings,
        concurrency=max(1, split(settings.concurrency, count, index)),
        open_loop=load,
        shard=(index, count),
        start_epoch_ns=start_epoch_ns,
        handle_signals=False,
        signalled_before=None,
        progress_interval_s=None,
        print_notices=False,
        abort=None,
        observer=None,
        interval_listener=None,
        control=None,
        workers=1,
    )


async def run_shard_async(
    spec: ShardSpec,
    *,
    on_interval: Callable[[IntervalReport], None] | None = None,
    control: Callable[[RunControl], Awaitable[None]] | None = None,
) -> ShardTotals:
    """Run ``spec``'s shard in the running trio loop.

    Args:
        on_interval: called with each interval the shard closes, as it closes it; None keeps
            them and returns them in the totals.
        control: started beside the run with its ``RunControl`` (how a parent stops it).
    """
    stats = RunStats(["connect", *spec.scenario.step_names])
    kept: list[IntervalReport] = []
    report = kept.append if on_interval is None else on_interval

    def listener(closed: ClosedInterval) -> None:
        report(interval_report(closed, stats))

    settings = dataclasses.replace(spec.settings, interval_listener=listener, control=control)
    sources = settings.sources
    source = None if sources is None else source_binder(sources, spec.target)
    timing = await run_sessions(spec.scenario, spec.target, settings, stats, source=source)
    return shard_totals(
        stats,
        planned=stats.started if stats.sessions_due is None else stats.sessions_due,
        interrupted=timing.interrupted,
        duration_s=timing.duration_s,
        source_counts=None if source is None else list(source.sessions),
        intervals=kept,
    )


def run_shard(spec: ShardSpec) -> ShardTotals:
    """Run ``spec``'s shard in a trio loop of its own and return its totals, its intervals
    among them: the unit of work, for any process or thread that has no loop running."""
    return trio.run(run_shard_async, spec)
