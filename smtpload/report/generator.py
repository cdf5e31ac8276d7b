"""Whether smtpload itself was the limit of a run: the saturation rule, its JSON, its sentence.

A load generator that is out of CPU, or whose event loop runs late, no longer offers the load it
was asked for: the sessions it starts wait for it, not for the server, so the throughput it
reports is its own limit. On the loop's clock its step latencies then carry its own delay too.
A run says so instead of passing that off as the server's numbers.

The rule (documented in the README), from what the runner measured (``GeneratorLoad``):

* the event loop's lag at p99 is above ``MAX_LOOP_LAG_P99_MS`` (5 ms), judged once the ticks
  cover ``MIN_LOOP_LAG_SPAN_S`` (1 s) of run, so that one late tick of a short run does not
  decide. Time, not a count of ticks: a loop 40 ms late ticks every 50 ms, not every 10, and
  a count of 100 ticks would leave the latest loops of a few seconds' run unjudged. The timer
  alone makes a tick up to about 1 ms late (epoll waits in whole milliseconds): a quiet run
  measured here has a p99 of 1.4 ms, one beside 2 busy processes per core 9 ms; or
* the process used more than ``BUSY_CPU_PERCENT`` (90 %) of a core for more than
  ``MAX_BUSY_SHARE`` (10 %) of the run's time, judged once ``MIN_CPU_WALL_S`` (3 s) of run
  are sampled: a run of a few milliseconds is all CPU and says nothing.
"""

from __future__ import annotations

from typing import Any

from smtpload.report.stats import BUSY_CPU_PERCENT, KERNEL_CLOCK, GeneratorLoad, RunStats

__all__ = [
    "MAX_BUSY_SHARE",
    "MAX_LOOP_LAG_P99_MS",
    "MIN_CPU_WALL_S",
    "MIN_LOOP_LAG_SPAN_S",
    "OTHERS_CPU_PERCENT",
    "generator_summary",
    "saturation_facts",
    "saturation_note",
]

MAX_LOOP_LAG_P99_MS = 5.0
MIN_LOOP_LAG_SPAN_S = 1.0
MAX_BUSY_SHARE = 0.10
MIN_CPU_WALL_S = 3.0

#: A saturated run whose process used less than this share of a core (and was never busy)
#: was late because of the machine's other work: its sentence says so instead of "lower the
#: load".
OTHERS_CPU_PERCENT = 50.0


def generator_summary(stats: RunStats) -> dict[str, Any]:
    """summary.json's ``generator``: ``cpu_percent`` (of one core, over the run; null before
    any sample), ``busy_seconds_percent`` (the share of the run's time above 90 % of a core),
    ``loop_lag_ms``, ``reply_lag_ms`` (LATENCY or null), ``untimed_reads`` (kernel clock:
    reads that came without a receive time), ``saturated``, and ``workers``.

    A run of several worker processes (``stats.shard_loads``) is judged worker by worker, since
    CPU and the loop's lag are per process: ``workers`` lists each one's ``cpu_percent``,
    ``busy_seconds_percent``, ``loop_lag_ms`` and ``saturated``; the run's own are the worst of
    them (the highest CPU, the highest busy share, the loop lag of the worker whose p99 is
    highest), and it is saturated if any worker was. ``untimed_reads`` add up and
    ``reply_lag_ms`` is of every read. ``workers`` is null in a run of one process.
    """
    loads = stats.shard_loads
    if not loads:
        summary = _load_summary(stats.generator)
        summary["workers"] = None
    else:
        workers = [_load_summary(load) for load in loads]
        lagging = max(
            workers,
            key=lambda w: -1.0 if w["loop_lag_ms"] is None else w["loop_lag_ms"]["p99"],
        )
        cpus = [w["cpu_percent"] for w in workers if w["cpu_percent"] is not None]
        summary = {
            "cpu_percent": max(cpus) if cpus else None,
            "busy_seconds_percent": max(w["busy_seconds_percent"] for w in workers),
            "loop_lag_ms": lagging["loop_lag_ms"],
            "untimed_reads": sum(w["untimed_reads"] for w in workers),
            "saturated": any(w["saturated"] for w in workers),
            "workers": [{key: w[key] for key in _WORKER_KEYS} for w in workers],
        }
    summary["reply_lag_ms"] = stats.reply_lag.summary_ms()
    return {key: summary[key] for key in _KEYS}


# summary.json's generator keys, in order; and those each worker has in ``workers``.
_KEYS = (
    "cpu_percent",
    "busy_seconds_percent",
    "loop_lag_ms",
    "reply_lag_ms",
    "untimed_reads",
    "saturated",
    "workers",
)
_WORKER_KEYS = ("cpu_percent", "busy_seconds_percent", "loop_lag_ms", "saturated")


def _load_summary(load: GeneratorLoad) -> dict[str, Any]:
    """One process's generator load judged by the saturation rule (module docstring)."""
    loop_lag = load.loop_lag.summary_ms()
    busy_share = load.busy_wall_s / load.wall_s if load.wall_s > 0 else 0.0
    busy = load.wall_s >= MIN_CPU_WALL_S and busy_share > MAX_BUSY_SHARE
    lagging = (
        loop_lag is not None
        and load.loop_lag_span_s >= MIN_LOOP_LAG_SPAN_S
        and loop_lag["p99"] > MAX_LOOP_LAG_P99_MS
    )
    return {
        "cpu_percent": load.cpu_percent,
        "busy_seconds_percent": round(busy_share * 100, 1),
        "loop_lag_ms": loop_lag,
        "untimed_reads": load.untimed_reads,
        "saturated": lagging or busy,
    }


def saturation_facts(generator: dict[str, Any]) -> list[str]:
    """What a saturated run measured, short (from :func:`generator_summary`'s dict): the loop
    lag's p99 and the CPU use, where known; the terminal's note and the live view say them."""
    facts = []
    if generator["loop_lag_ms"] is not None:
        facts.append(f"loop lag p99 {generator['loop_lag_ms']['p99']:.1f} ms")
    if generator["cpu_percent"] is not None:
        facts.append(
            f"CPU {generator['cpu_percent']:g} % of a core "
            f"(over {BUSY_CPU_PERCENT:g} % in {generator['busy_seconds_percent']:g} % of the run)"
        )
    return facts


def saturation_note(summary: dict[str, Any]) -> str | None:
    """The terminal's sentence for a saturated run (from summary.json), or None."""
    generator = summary["generator"]
    if not generator["saturated"]:
        return None
    facts = saturation_facts(generator)
    if summary["clock"] == KERNEL_CLOCK:
        meaning = (
            "the step latencies are the kernel's and hold, but the load offered, and so the "
            "throughput, is smtpload's limit, not the server's"
        )
    else:
        meaning = "the latencies include smtpload's own delay and overstate the server's"
    cpu = generator["cpu_percent"]
    if not generator["busy_seconds_percent"] and cpu is not None and cpu < OTHERS_CPU_PERCENT:
        # A late loop in a process that used little CPU waited for the machine, not for its
        # own work: lowering the load would not help, freeing the machine would.
        advice = "other processes are taking this machine's CPU: run smtpload on a quieter one"
    else:
        # The load's own knob: in open loop the sessions due per second, in closed loop how
        # many run at once (summary["load"] is absent from summaries made before open loop).
        knob = "--rate" if summary.get("load", {}).get("model") == "open" else "--concurrency"
        advice = f"lower {knob} or add a machine"
    return f"generator saturated: {', '.join(facts)}: {meaning}; {advice}"
