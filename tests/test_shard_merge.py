"""report/shards.py without processes: shards' intervals and counts add up to one run's.

Each shard here is a RunStats with its interval log, filled by hand second by second as a
runner fills it; the run they add up to is compared with a RunStats that got every sample
itself. Exactness, not closeness: the merged histograms hold the same counts in the same
buckets as one histogram of all the samples.
"""

from __future__ import annotations

import csv
import io
import random

import pytest

from smtpload.protocol.outcome import Outcome, SessionFailure
from smtpload.report.generator import generator_summary
from smtpload.report.intervals import IntervalLog
from smtpload.report.shards import IntervalReport, ShardMerger, interval_report, shard_totals
from smtpload.report.stats import LatencyHistogram, RunStats

STEPS = ["connect", "ehlo", "data"]


class Shard:
    """A shard's stats and what it reported, closing intervals as a runner does."""

    def __init__(self) -> None:
        self.stats = RunStats(STEPS, max_kept_failures=3)
        self.reports: list[IntervalReport] = []
        self.stats.intervals = IntervalLog(
            self.stats, 0.0, listener=lambda c: self.reports.append(interval_report(c, self.stats))
        )
        self.stats.start_intervals()
        self.mark = 0.0

    def second(self, end_s: float | None = None) -> None:
        log = self.stats.intervals
        assert log is not None
        last = end_s is not None
        end = self.mark + 1.0 if end_s is None else end_s
        log.close_interval(self.mark, end, last=last)
        self.mark = end


def session(stats: RunStats, rng: random.Random, number: int, *, fail: bool = False) -> None:
    """One session's samples and counts, as the runner records them."""
    stats.session_started()
    for name in STEPS:
        stats.record_step(name, rng.randint(1, 5_000_000), failed=fail and name == "data")
    if fail:
        failure = SessionFailure(number, Outcome.UNEXPECTED_REPLY, "data", "250", "554", ())
        stats.record_session(Outcome.UNEXPECTED_REPLY, None, failure)
    else:
        stats.message_accepted()
        stats.record_session(Outcome.PASSED, rng.randint(1, 10_000_000))


def same_histogram(a: LatencyHistogram, b: LatencyHistogram) -> bool:
    """Every bucket's count equal (the blobs decode to the same counts)."""
    decoded_a = LatencyHistogram.decode(a.encode())
    decoded_b = LatencyHistogram.decode(b.encode())
    return list(decoded_a._histogram.counts) == list(decoded_b._histogram.counts)


def merged_run(shards: list[Shard]) -> tuple[RunStats, ShardMerger]:
    run = RunStats(STEPS, max_kept_failures=3)
    run.intervals = IntervalLog(run, 0.0)
    run.start_intervals()
    merger = ShardMerger(run, len(shards))
    return run, merger


def test_merged_histograms_and_counts_equal_one_run_of_all_the_samples() -> None:
    rng = random.Random(7)
    one = RunStats(STEPS, max_kept_failures=3)
    shards = [Shard(), Shard()]
    number = 0
    # Shard 0 runs 2.4 s, shard 1 runs 3.7 s: they end in different seconds.
    for second, active in enumerate([(0, 1), (0, 1), (0, 1), (1,)]):
        for index in active:
            for _ in range(50 + 10 * index + second):
                number += 1
                fail = number % 17 == 0
                state = rng.getstate()
                session(shards[index].stats, rng, number, fail=fail)
                rng.setstate(state)
                session(one, rng, number, fail=fail)
        for index in active:
            if index == 0 and second == 2:
                shards[0].second(2.4)
            elif index == 1 and second == 3:
                shards[1].second(3.7)
            else:
                shards[index].second()
    run, merger = merged_run(shards)
    # Reports arrive interleaved, one shard ahead of the other, as from two processes.
    for report in shards[1].reports[:3]:
        merger.add_interval(1, report)
    for report in shards[0].reports:
        merger.add_interval(0, report)
    merger.add_totals(
        0, shard_totals(shards[0].stats, planned=0, interrupted=False, duration_s=2.4)
    )
    for report in shards[1].reports[3:]:
        merger.add_interval(1, report)
    merger.add_totals(
        1, shard_totals(shards[1].stats, planned=0, interrupted=False, duration_s=3.7)
    )
    merger.finish()

    assert run.started == one.started == number
    assert run.messages == one.messages
    assert run.outcomes == one.outcomes
    for name in STEPS:
        assert (run.steps[name].attempts, run.steps[name].failed) == (
            one.steps[name].attempts,
            one.steps[name].failed,
        )
        assert run.steps[name].latency.count == one.steps[name].latency.count
        assert same_histogram(run.steps[name].latency, one.steps[name].latency), name
        assert run.steps[name].latency.summary_ms() == one.steps[name].latency.summary_ms()
    assert same_histogram(run.session_latency, one.session_latency)
    assert same_histogram(run.session_latency_uncorrected, one.session_latency_uncorrected)
    # The kept failures: the first ones by session number, the rest counted.
    assert [f.session for f in run.failures] == [17, 34, 51]
    assert run.failures_not_kept == one.outcomes[Outcome.UNEXPECTED_REPLY] - 3

    # The run's timeline: one row per second, each the sum of the shards' rows of that second.
    log = run.intervals
    assert log is not None
    rows = timeline(log)
    shard_rows = [timeline(s.stats.intervals) for s in shards]  # type: ignore[arg-type]
    assert [r["second"] for r in rows] == ["0", "1", "2", "3"]
    for second, row in enumerate(rows):
        for column in ("started", "passed", "failed", "messages"):
            expected = sum(
                int(r[column]) for rs in shard_rows for r in rs if int(r["second"]) == second
            )
            assert int(row[column]) == expected, (second, column)
    assert sum(int(r["passed"]) for r in rows) == one.passed
    # The last row is the run's last part, 3 to 3.7 s.
    assert float(rows[-1]["sessions_per_s"]) == pytest.approx(
        (int(rows[-1]["passed"]) + int(rows[-1]["failed"])) / 0.7, rel=1e-3
    )


def timeline(log: IntervalLog) -> list[dict[str, str]]:
    stream = io.BytesIO()
    log.write_timeline(stream)
    return list(csv.DictReader(io.StringIO(stream.getvalue().decode())))


def test_a_run_interval_waits_for_every_shard_that_is_still_running() -> None:
    shards = [Shard(), Shard()]
    rng = random.Random(1)
    for shard in shards:
        session(shard.stats, rng, 1)
        shard.second()
        shard.second()
    run, merger = merged_run(shards)
    log = run.intervals
    assert log is not None
    merger.add_interval(0, shards[0].reports[0])
    merger.add_interval(0, shards[0].reports[1])
    assert log.intervals == 0  # shard 1 has not said its first second yet
    merger.add_interval(1, shards[1].reports[0])
    assert log.intervals == 1
    assert run.started == 2


def test_a_lost_shard_counts_its_running_sessions_as_interrupted() -> None:
    shards = [Shard(), Shard()]
    rng = random.Random(2)
    session(shards[0].stats, rng, 1)
    shards[0].second(0.5)
    shards[1].stats.session_started()
    shards[1].stats.session_started()  # two sessions running when its last report was made
    session(shards[1].stats, rng, 2)  # ... and a third one that ended
    shards[1].second()
    run, merger = merged_run(shards)
    merger.add_interval(0, shards[0].reports[0])
    merger.add_totals(
        0, shard_totals(shards[0].stats, planned=0, interrupted=False, duration_s=0.5)
    )
    merger.add_interval(1, shards[1].reports[0])
    merger.shard_lost(1)
    merger.finish()
    assert run.started == 4
    assert run.outcomes[Outcome.INTERRUPTED] == 2
    assert run.finished == run.started  # every session started is accounted for


def test_the_generator_of_several_workers_is_the_worst_of_them() -> None:
    shards = [Shard(), Shard()]
    for tick_lag_s in (0.0001, 0.0002):
        shards[0].stats.generator.record_tick(0.01, tick_lag_s)
    for _ in range(200):
        shards[1].stats.generator.record_tick(0.01, 0.02)  # 20 ms late: saturated
    shards[0].stats.generator.record_cpu(0.5, 5.0)
    shards[1].stats.generator.record_cpu(4.0, 5.0)
    for shard in shards:
        shard.second(0.5)
    run, merger = merged_run(shards)
    for index, shard in enumerate(shards):
        merger.add_interval(index, shard.reports[0])
        merger.add_totals(
            index, shard_totals(shard.stats, planned=0, interrupted=False, duration_s=0.5)
        )
    merger.finish()
    summary = generator_summary(run)
    workers = summary["workers"]
    assert [w["saturated"] for w in workers] == [False, True]
    assert summary["saturated"] is True
    assert summary["cpu_percent"] == 80.0
    assert summary["loop_lag_ms"] == workers[1]["loop_lag_ms"]
    assert generator_summary(shards[0].stats)["workers"] is None
