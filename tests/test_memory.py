"""Memory that a long or wide run must not keep: what is dropped is freed at once, and what
every session holds is no more than it uses (pure tests, no sockets).

A run of 10,000 sessions held open (benchmarks/h2h_memory.py) lives mostly in objects that are
long-lived, so Python's cyclic collector rarely runs its full collection: anything that is
garbage only in a reference cycle stays in memory for minutes. Each test measures with
``tracemalloc`` while the cyclic collector is off, so that what it counts is freed by
reference counting alone.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from smtpload.errors import RemoteProtocolError
from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.wire import Reply, ReplyParser
from smtpload.report.intervals import IntervalLog
from smtpload.report.stats import LatencyHistogram, RunStats
from smtpload.scenario.bundled import scenario_path
from smtpload.scenario.loader import load_scenario

# A histogram's counters: 23,552 of 8 bytes (report/stats.py), about 188 KB.
HISTOGRAM_BYTES = 23_552 * 8


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()
        gc.enable()


def kept_bytes(action: Callable[[], object], times: int = 20) -> int:
    """How much more memory is traced after ``action`` ran ``times`` times than after it ran
    twice (its first runs may fill caches)."""
    for _ in range(2):
        action()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(times):
        action()
    return tracemalloc.get_traced_memory()[0] - before


def _recorded(values: tuple[int, ...] = (120, 40_000_000)) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record_us(value)
    return histogram


_LONG_LIVED = LatencyHistogram()
_LONG_LIVED.start_intervals()
_BLOB = _recorded().encode()


def _take_interval() -> None:
    _LONG_LIVED.record_us(250)
    _LONG_LIVED.take_interval().encode()


def _merge() -> None:
    whole = _recorded()
    whole.merge(_recorded())
    whole.summary_ms()


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(LatencyHistogram, id="new"),
        pytest.param(_recorded, id="recorded"),
        pytest.param(_take_interval, id="interval-taken"),
        pytest.param(lambda: LatencyHistogram.decode(_BLOB), id="decoded"),
        pytest.param(_merge, id="merged"),
    ],
)
@pytest.mark.usefixtures("no_cycle_collector")
def test_a_histogram_dropped_is_freed_at_once_without_the_cycle_collector(
    action: Callable[[], object],
) -> None:
    # Before: hdrh's histogram and its encoder point at each other, so each histogram dropped
    # kept its 188 KB of counters until a full collection (a run's interval task makes one per
    # step every second: ~2 MB a second of garbage held in a worker with 5,000 sessions).
    assert kept_bytes(action) < HISTOGRAM_BYTES


@pytest.mark.usefixtures("no_cycle_collector")
def test_a_run_closing_intervals_keeps_no_histogram_it_handed_out() -> None:
    stats = RunStats(["connect", "greeting", "ehlo", "mail", "rcpt", "data", "quit"])
    log = IntervalLog(stats, 0.0)
    stats.intervals = log
    stats.start_intervals()
    second = 0

    def close_one() -> None:
        nonlocal second
        stats.record_step("ehlo", 300 + second, failed=False)
        log.close_interval(float(second), second + 1.0)
        second += 1

    # Each second takes a new interval histogram for each of the 8 series.
    assert kept_bytes(close_one, times=10) < HISTOGRAM_BYTES


def _engines(name: str, count: int) -> int:
    """Traced bytes per engine of ``count`` sessions of the bundled scenario ``name``, each
    connected and greeted: where a session held open waits."""
    scenario = compile_scenario(load_scenario(scenario_path(name)), seed=1)
    greeting = Reply(220, ("mx.example.test ESMTP",), b"220 mx.example.test ESMTP\r\n")
    kept = []
    before = tracemalloc.get_traced_memory()[0]
    for session in range(1, count + 1):
        engine = SessionEngine(scenario, session)
        engine.on_connected("127.0.0.1:25")
        step = engine.next_step()
        assert step is not None
        engine.on_reply(step, greeting)
        kept.append(engine)
    return (tracemalloc.get_traced_memory()[0] - before) // count


@pytest.mark.parametrize("name", ["quickstart", "persistent-pipelined"])
@pytest.mark.usefixtures("no_cycle_collector")
def test_a_session_engine_holds_no_empty_buffers(name: str) -> None:
    # Before: an empty deque for a pipeline group's replies in every session (with or without
    # groups) and one for the transcript's tail (filled only past 100 entries): an engine
    # greeted held ~2,600 bytes, now ~1,150, times 10,000 sessions held open.
    assert _engines(name, 300) < 1_600


EHLO_REPLY = b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"220 mx.example.test ESMTP\r\n", id="greeting"),
        pytest.param(b"250 2.1.0 Ok\n", id="bare-lf"),
        pytest.param(b"354 \r\n", id="no-text"),
        pytest.param(EHLO_REPLY, id="multiline"),
    ],
)
def test_the_same_reply_in_many_sessions_is_one_object(data: bytes) -> None:
    # Before: every session kept its own copy of each reply it got (bytes, decoded lines,
    # tuple): ~1.5 KB a session held open, the same in all of them.
    first, second = ReplyParser(), ReplyParser()
    [one] = first.feed(data)
    [other] = second.feed(bytes(data))  # another read's bytes, equal
    assert other is one
    assert first.feed(data + data) == [one, one]  # two in one read: parsed, as ever


@pytest.mark.parametrize(
    "reads",
    [
        pytest.param([b"250 2.0.0 Ok: queued as ", b"4F2B1C\r\n"], id="split-reads"),
        pytest.param([b"250 " + b"x" * 2000 + b"\r\n"], id="longer-than-shared"),
        pytest.param([b"250-a\r\n", b"250 b\r\n"], id="multiline-split"),
    ],
)
def test_a_reply_not_whole_in_one_read_or_long_is_not_shared(reads: list[bytes]) -> None:
    def parsed() -> list[Reply]:
        parser = ReplyParser()
        return [reply for data in reads for reply in parser.feed(bytes(data))]

    made, again = parsed(), parsed()
    assert len(made) == 1
    assert made == again
    assert made[0] is not again[0]


def test_a_shared_reply_still_meets_each_parsers_own_bound() -> None:
    data = b"250 " + b"y" * 200 + b"\r\n"
    ReplyParser().feed(data)  # shared now
    with pytest.raises(RemoteProtocolError, match="longer than 100"):
        ReplyParser(max_reply_bytes=100).feed(data)
