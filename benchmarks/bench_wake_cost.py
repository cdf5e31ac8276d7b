"""What one block-and-wake costs a process on this machine (issue 14, the head-to-head
benchmark: what bounds its rows where the client waits for its server).

A client that keeps up with its server blocks seldom: its trio loop finds replies waiting and
handles many per wake. A client that waits for the server (the 100 KiB head-to-head rows,
where smtp-sink is the bottleneck, or an open-loop run below capacity) blocks at about every
reply, and each block and wake is charged CPU of its own: the kernel's sleep and wake, and the
code after a wake running on cold caches. This measures both, per cycle, with nothing else
running in the process:

- ``epoll.poll``: a bare ``epoll.poll(timeout)`` that times out, in a Python loop: the kernel's
  share, about what a C client such as smtp-source pays per wait;
- ``trio``: ``await trio.sleep(pause)`` in a trio loop: what a trio program pays per wait,
  with trio's scheduler pass;
- a sleep already due: the same trio loop sleeping until a time already passed, the same
  code with a scheduler pass that never blocks;
- ``work after a wake``: a fixed piece of pure-Python work timed right after a wake, against
  the same work timed back to back.

The loop figures are CPU (user + system, ``getrusage``) per cycle, and ``wall`` is the cycle's
length; the work-after-a-wake figures are wall-clock medians (``perf_counter_ns``) of the work
alone, as CPU time cannot be read finely enough for a piece this small. The pauses are whole
milliseconds because ``select.epoll.poll`` (and so trio) rounds a timeout up to a whole
millisecond: a 0.5 ms pause would sleep at least 1 ms. The pauses are the same for every
loop, so only the ratios between them mean anything, and only on the machine they were
measured on.

Usage: python benchmarks/bench_wake_cost.py [--seconds 2] [--json FILE]

``--seconds`` is per loop: the whole run takes about 16 s with the default, about 5 s with 0.5.
"""

from __future__ import annotations

import argparse
import json
import resource
import select
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import trio

#: The pauses a loop sleeps for, in seconds: from a wait for a reply on loopback to a tick.
#: Whole milliseconds: epoll's timeout is in milliseconds and Python rounds a shorter one up.
PAUSES_S = (0.001, 0.002, 0.01)

#: The wake's lateness per cycle (about 0.1 ms here), used only to size a loop to about
#: ``--seconds``.
CYCLE_SLACK_S = 0.00015


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_cycle(run: Callable[[int], None], cycles: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per cycle of ``run(cycles)``."""
    cpu_before, wall_before = cpu_s(), time.perf_counter()
    run(cycles)
    cpu, wall = cpu_s() - cpu_before, time.perf_counter() - wall_before
    return cpu / cycles * 1e6, wall / cycles * 1e6


def bare_epoll(pause_s: float) -> Callable[[int], None]:
    def run(cycles: int) -> None:
        epoll = select.epoll()  # nothing registered: every poll times out
        try:
            for _ in range(cycles):
                epoll.poll(pause_s)
        finally:
            epoll.close()

    return run


def trio_sleep(pause_s: float) -> Callable[[int], None]:
    def run(cycles: int) -> None:
        async def loop() -> None:
            for _ in range(cycles):
                await trio.sleep(pause_s)

        trio.run(loop)

    return run


def fixed_work() -> int:
    """About the Python work of a loop pass: a few dozen small objects made and read."""
    table = {}
    for number in range(60):
        table[number] = str(number)
    return sum(len(text) for text in table.values())


def work_after_wake(pause_s: float | None, cycles: int) -> float:
    """Median µs of ``fixed_work`` right after a ``pause_s`` sleep (None: back to back)."""
    epoll = select.epoll()
    timings = []
    try:
        for _ in range(cycles):
            if pause_s is not None:
                epoll.poll(pause_s)
            before = time.perf_counter_ns()
            fixed_work()
            timings.append(time.perf_counter_ns() - before)
    finally:
        epoll.close()
    return statistics.median(timings) / 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="per loop (default: 2; about 16 s in all)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the figures here")
    args = parser.parse_args()
    trio.run(trio.sleep, 0)  # trio's first run sets things up once: not in any figure

    warm_cycles = 20000
    warm_cpu, _ = per_cycle(lambda n: trio.run(_sleep_until_now, n), warm_cycles)
    figures: dict[str, object] = {
        "trio_warm_cpu_us": round(warm_cpu, 1),
        "pauses": [],
    }
    print(f"trio loop, a sleep already due (never blocks): {warm_cpu:.1f} µs CPU a pass")
    print()
    header = f"{'pause':>8} {'loop':<10} {'CPU µs/cycle':>12} {'wall µs/cycle':>13} {'vs epoll':>8}"
    print(header)
    print("-" * len(header))
    for pause in PAUSES_S:
        cycles = max(int(args.seconds / (pause + CYCLE_SLACK_S)), 50)
        epoll_cpu, epoll_wall = per_cycle(bare_epoll(pause), cycles)
        trio_cpu, trio_wall = per_cycle(trio_sleep(pause), cycles)
        for name, cpu, wall in (
            ("epoll.poll", epoll_cpu, epoll_wall),
            ("trio", trio_cpu, trio_wall),
        ):
            print(
                f"{pause * 1e3:>6.1f}ms {name:<10} {cpu:>12.1f} {wall:>13.0f}"
                f" {cpu / epoll_cpu:>7.2f}x"
            )
        figures["pauses"].append(  # type: ignore[attr-defined]
            {
                "pause_ms": pause * 1e3,
                "cycles": cycles,
                "epoll_cpu_us": round(epoll_cpu, 1),
                "trio_cpu_us": round(trio_cpu, 1),
                "epoll_wall_us": round(epoll_wall),
                "trio_wall_us": round(trio_wall),
            }
        )
    print()
    cycles = max(int(args.seconds / (0.001 + CYCLE_SLACK_S)), 50)
    back_to_back = work_after_wake(None, cycles)
    after = work_after_wake(0.001, cycles)
    print(
        f"a fixed piece of Python work: {back_to_back:.1f} µs back to back, {after:.1f} µs"
        f" right after a 1 ms sleep ({after / back_to_back:.2f}x; wall-clock medians of"
        f" {cycles} samples each)"
    )
    figures["work_back_to_back_us"] = round(back_to_back, 1)
    figures["work_after_wake_us"] = round(after, 1)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


async def _sleep_until_now(cycles: int) -> None:
    # trio.sleep's own path with a deadline already passed: trio 0.35 cancels the scope as it
    # is entered, so the sleep is rescheduled with its Cancelled at once (the deadline heap is
    # not involved); each cycle is one scheduler pass polling with a timeout of 0, never
    # blocking.
    for _ in range(cycles):
        await trio.sleep_until(trio.current_time())


if __name__ == "__main__":
    sys.exit(main())
