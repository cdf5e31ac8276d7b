"""An observe-mode run (``smtpload record`` and ``compare``): sessions in, a Behaviour out.

The sessions run exactly as in ``smtpload run`` (same client, same timing), except that the
engines observe instead of enforce (see engine.py), and each finished one is handed to a
:class:`~smtpload.regression.baseline.BehaviourRecorder`.
"""

from __future__ import annotations

from collections.abc import Callable

from smtpload.net.runner import RunSettings, run_scenario
from smtpload.net.tls import TlsClient
from smtpload.protocol.compiler import CompiledScenario
from smtpload.protocol.wire import DEFAULT_MAX_REPLY_BYTES
from smtpload.regression.baseline import Behaviour, BehaviourRecorder
from smtpload.report.stats import KERNEL_CLOCK, RunStats
from smtpload.scenario.model import Target

__all__ = ["observe_run"]


async def observe_run(
    scenario: CompiledScenario,
    target: Target | None,
    *,
    sessions: int,
    concurrency: int,
    run_id: str,
    handle_signals: bool = False,
    signalled_before: Callable[[], bool] | None = None,
    stats: RunStats | None = None,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    clock: str = KERNEL_CLOCK,
    tls: TlsClient | None = None,
) -> tuple[Behaviour, bool]:
    """Run ``sessions`` observed sessions of ``scenario`` against ``target``.

    Args:
        scenario: the compiled scenario.
        target: the server; None starts the built-in sink (as ``smtpload run`` does).
        sessions: sessions to run in total.
        concurrency: sessions at the same time, at most.
        run_id: the run's id (the ``run_id`` built-in variable).
        handle_signals: install the runner's Ctrl-C handling (the CLI, in the main thread);
            sessions cut off by it are left out of the behaviour (but counted in
            ``stats.outcomes[Outcome.INTERRUPTED]``).
        signalled_before: see ``RunSettings.signalled_before``.
        stats: where to count the run (outcomes, per-step counts), for a caller that wants
            to report them; by default a fresh RunStats of the scenario's steps.
        max_reply_bytes: the longest reply accepted; a longer one is a ``protocol_error``.
        clock: what ends reply latencies (``RunSettings.clock``).
        tls: the run's TLS client (``RunSettings.tls``).

    Returns:
        What the sessions observed, with each step's latency histogram; and whether the run
        was interrupted.
    """
    if stats is None:
        stats = RunStats(["connect", *scenario.step_names])
    recorder = BehaviourRecorder(scenario)
    settings = RunSettings(
        sessions=sessions,
        concurrency=concurrency,
        run_id=run_id,
        handle_signals=handle_signals,
        signalled_before=signalled_before,
        observe=True,
        max_reply_bytes=max_reply_bytes,
        clock=clock,
        tls=tls,
        observer=recorder.observe,  # streamed: a persistent session's would grow without end
    )
    shown, _, interrupted = await run_scenario(
        scenario, target, settings, stats, on_session_end=recorder.add_session
    )
    behaviour = recorder.behaviour(
        stats, scenario=scenario.name, target=shown, sessions=stats.started
    )
    return behaviour, interrupted
