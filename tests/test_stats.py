"""smtpload.report.stats: latency histograms and run counts (pure, no sockets).

Expected numbers are worked out from HdrHistogram's layout with 3 significant digits: values
below 2048 µs are exact; from 2^k µs (k >= 11) on, a bucket is 2^(k-10) µs wide and a value is
reported as the highest value of its bucket (the mean uses the bucket's midpoint).
"""

from __future__ import annotations

import io
import math
import re

import pytest
from hdrh.histogram import HdrHistogram

from smtpload.protocol.outcome import Outcome, SessionFailure, TranscriptLine
from smtpload.report.stats import (
    LATENCY_HIGHEST_US,
    LatencyHistogram,
    RunStats,
    StepStats,
)


def histogram_of(values: list[int]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record_us(value)
    return histogram


# -- percentiles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # Exact range; target count for p = int(p * n / 100 + 0.5), e.g. p90 -> 899.1 -> 899.
        (
            list(range(1, 1000)),
            {"p50": 0.5, "p90": 0.899, "p99": 0.989, "p99_9": 0.998, "max": 0.999, "mean": 0.5},
        ),
        # 10000 µs lies in [8192, 16384): buckets 8 µs wide, [10000, 10007], midpoint 10004.
        (
            [10_000],
            {
                "p50": 10.007,
                "p90": 10.007,
                "p99": 10.007,
                "p99_9": 10.007,
                "max": 10.007,
                "mean": 10.004,
            },
        ),
        # 50000 µs lies in [32768, 65536): 32 µs wide, [49984, 50015], midpoint 50000.
        # mean = (900 * 1000 + 100 * 50000) / 1000 = 5900 µs.
        (
            [1000] * 900 + [50_000] * 100,
            {"p50": 1.0, "p90": 1.0, "p99": 50.015, "p99_9": 50.015, "max": 50.015, "mean": 5.9},
        ),
    ],
    ids=["1-to-999us-exact", "one-10ms-sample-at-bucket-top", "bimodal-1ms-and-50ms"],
)
def test_summary_ms_of_known_samples(values: list[int], expected: dict[str, float]) -> None:
    summary = histogram_of(values).summary_ms()
    assert summary == expected
    assert list(summary) == ["p50", "p90", "p99", "p99_9", "max", "mean"]


def test_percentiles_of_1_to_1000_us() -> None:
    summary = histogram_of(list(range(1, 1001))).summary_ms()
    assert summary is not None
    assert (summary["p50"], summary["p90"], summary["p99"]) == (0.5, 0.9, 0.99)
    assert (summary["p99_9"], summary["max"]) == (0.999, 1.0)
    assert summary["mean"] == pytest.approx(0.5005, abs=0.0006)  # 500.5 µs, rounded either way


def test_summary_values_are_floats_rounded_to_microseconds() -> None:
    summary = histogram_of([1234, 1]).summary_ms()
    assert summary is not None
    assert all(type(v) is float for v in summary.values())
    assert summary["max"] == 1.234
    assert summary["mean"] == round((1234 + 1) / 2 / 1000, 3)


def test_summary_of_empty_histogram_is_none() -> None:
    histogram = LatencyHistogram()
    assert histogram.summary_ms() is None
    assert (histogram.count, histogram.dropped) == (0, 0)


# -- out-of-range values and types -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_max_ms", "expected_dropped"),
    [
        (0, 0.001, 0),  # a sub-microsecond step is real: recorded as 1 µs
        (-5, 0.001, 0),  # a clock that stepped back: recorded as 1 µs, not lost
        (1, 0.001, 0),
        # 3.6e9 µs lies in [2^31, 2^32): 2^21 µs wide, top of its bucket 3600809983 µs.
        (LATENCY_HIGHEST_US, 3_600_809.983, 0),
        (LATENCY_HIGHEST_US + 1, 3_600_809.983, 1),  # above the range: clamped AND counted
        (2**32, 3_600_809.983, 1),  # hdrh itself would drop this silently
        (10**15, 3_600_809.983, 1),
    ],
    ids=["zero", "negative", "one", "highest", "highest+1", "2^32", "1e15"],
)
def test_out_of_range_values_are_clamped_and_counted(
    value: int, expected_max_ms: float, expected_dropped: int
) -> None:
    histogram = histogram_of([value])
    summary = histogram.summary_ms()
    assert summary is not None
    assert histogram.count == 1
    assert summary["max"] == expected_max_ms
    assert histogram.dropped == expected_dropped


@pytest.mark.parametrize("value", [1.5, 12.0, True, "12", None], ids=repr)
def test_record_us_refuses_anything_but_int(value: object) -> None:
    histogram = LatencyHistogram()
    with pytest.raises(TypeError, match="int of microseconds"):
        histogram.record_us(value)  # type: ignore[arg-type]
    assert histogram.count == 0


# -- encode / decode / merge -----------------------------------------------------------------


def test_encode_decode_round_trip_keeps_counts_and_percentiles() -> None:
    original = histogram_of([*range(1, 1001), 10_000, 50_000])
    blob = original.encode()
    assert isinstance(blob, str)
    assert blob.isascii()
    assert blob.startswith("HISTF")  # V2 format, base64 of the 0x1c849303 cookie
    decoded = LatencyHistogram.decode(blob)
    assert decoded.count == 1002
    assert decoded.summary_ms() == original.summary_ms()
    assert decoded.dropped == 0  # documented: the blob carries counts only


def test_decoded_histogram_keeps_recording() -> None:
    decoded = LatencyHistogram.decode(histogram_of([100]).encode())
    decoded.record_us(200)
    assert decoded.count == 2
    summary = decoded.summary_ms()
    assert summary is not None
    assert summary["max"] == 0.2


@pytest.mark.parametrize(
    "blob",
    ["", "not base64!", "HISTFAAAAB", "é", histogram_of([5]).encode()[:-8]],
    ids=["empty", "garbage", "short", "non-ascii", "truncated"],
)
def test_decode_rejects_garbage_with_value_error(blob: str) -> None:
    with pytest.raises(ValueError, match="HdrHistogram"):
        LatencyHistogram.decode(blob)


def test_decode_rejects_another_configuration() -> None:
    foreign = HdrHistogram(1, 60_000_000, 3)
    foreign.record_value(5)
    with pytest.raises(ValueError, match="configuration"):
        LatencyHistogram.decode(foreign.encode().decode("ascii"))


def test_merge_equals_recording_everything_in_one() -> None:
    low, high = histogram_of(list(range(1, 501))), histogram_of(list(range(501, 1001)))
    high.record_us(LATENCY_HIGHEST_US + 1)
    low.record_us(LATENCY_HIGHEST_US * 2)
    low.merge(high)
    everything = histogram_of([*range(1, 1001), LATENCY_HIGHEST_US + 1, LATENCY_HIGHEST_US * 2])
    assert low.count == 1002
    assert low.dropped == 2
    assert low.summary_ms() == everything.summary_ms()


def test_merge_of_blobs_from_workers() -> None:
    total = LatencyHistogram()
    for worker in range(3):
        blob = histogram_of([1000 * (worker + 1)] * 10).encode()
        total.merge(LatencyHistogram.decode(blob))
    summary = total.summary_ms()
    assert total.count == 30
    assert summary is not None
    # 2000 µs is exact; 3000 µs lies in [2048, 4096), buckets 2 µs wide: [3000, 3001].
    # mean = (10 * 1000 + 10 * 2000 + 10 * 3001) / 30 = 2000.33 µs.
    assert (summary["p50"], summary["max"], summary["mean"]) == (2.0, 3.001, 2.0)


def test_merge_into_empty_and_of_empty() -> None:
    empty, full = LatencyHistogram(), histogram_of([7, 8, 9])
    empty.merge(full)
    full.merge(LatencyHistogram())
    assert empty.summary_ms() == full.summary_ms()
    assert empty.count == full.count == 3


# -- .hgrm -----------------------------------------------------------------------------------

_FOOTER = re.compile(
    r"#\[Mean    = +(?P<mean>[\d.]+), StdDeviation   = +(?P<stddev>[\d.]+)\]\n"
    r"#\[Max     = +(?P<max>[\d.]+), Total count    = +(?P<total>\d+)\]\n"
    r"#\[Buckets = +(?P<buckets>\d+), SubBuckets     = +(?P<sub_buckets>\d+)\]\n\Z"
)


def hgrm_of(values: list[int]) -> str:
    stream = io.BytesIO()
    histogram_of(values).write_hgrm(stream)
    return stream.getvalue().decode("ascii")


def table_rows(text: str) -> list[tuple[float, float, int]]:
    rows = []
    for line in text.splitlines()[2:]:
        if line.startswith("#"):
            break
        value, percentile, total_count, *_ = line.split()
        rows.append((float(value), float(percentile), int(total_count)))
    return rows


@pytest.mark.parametrize(
    ("values", "mean", "stddev", "max_ms", "total"),
    [
        # 1..999: mean 500 µs, population stddev sqrt((999^2 - 1) / 12) = 288.385 µs.
        (list(range(1, 1000)), "0.500", "0.288", "0.999", 999),
        # 1000 and 2000 µs: stddev 500 µs; hdrh's own footer says "500.000" here.
        ([1000, 2000], "1.500", "0.500", "2.000", 2),
        # [10000, 10007] bucket: mean is the midpoint, stddev 0, max the bucket's top.
        ([10_000] * 4, "10.004", "0.000", "10.007", 4),
    ],
    ids=["1-to-999us", "1ms-and-2ms", "four-10ms"],
)
def test_hgrm_footer_is_in_milliseconds(
    values: list[int], mean: str, stddev: str, max_ms: str, total: int
) -> None:
    match = _FOOTER.search(hgrm_of(values))
    assert match is not None
    assert match["mean"] == mean
    assert match["stddev"] == stddev
    assert match["max"] == max_ms
    assert int(match["total"]) == total
    assert (int(match["buckets"]), int(match["sub_buckets"])) == (22, 2048)


def test_hgrm_table_values_are_milliseconds_and_cumulative() -> None:
    text = hgrm_of(list(range(1, 1000)))
    assert text.startswith("       Value     Percentile TotalCount 1/(1-Percentile)\n\n")
    assert text.count("#[") == 3  # the library's footer replaced, not appended to
    rows = table_rows(text)
    assert rows[0] == (0.001, 0.0, 1)
    assert rows[-1] == (0.999, 1.0, 999)
    for column in zip(*rows, strict=True):  # values, percentiles, counts: never decrease
        assert list(column) == sorted(column)
    # In the exact range the count up to a value is the value itself, and a row's percentile
    # level is at most the share of samples up to its value.
    for value, percentile, count in rows:
        assert count == round(value * 1000)
        assert percentile <= count / 999 + 1e-12


@pytest.mark.parametrize(
    "values",
    [[], [5], list(range(1, 1000)), [1000] * 900 + [50_000] * 100, [1, LATENCY_HIGHEST_US]],
    ids=["empty", "one", "1-to-999us", "bimodal", "full-range"],
)
def test_hgrm_table_is_the_one_hdrh_prints(values: list[int]) -> None:
    blob = histogram_of(values).encode()
    reference = io.BytesIO()
    HdrHistogram.decode(blob).output_percentile_distribution(reference, 1000)
    ours = hgrm_of(values)
    table, footer = ours.split("#[", 1)
    assert table == reference.getvalue().decode("ascii").split("#[", 1)[0]
    assert footer.endswith("SubBuckets     =         2048]\n")


def _shaped_samples(shape: str, seed: int) -> list[int]:
    import random

    chooser = random.Random(seed)
    if shape == "loopback":  # tens to hundreds of µs, the usual loopback step
        return [chooser.randint(20, 900) for _ in range(3000)]
    if shape == "lognormal":  # a long tail over many buckets
        return [min(int(chooser.lognormvariate(8, 2)) + 1, LATENCY_HIGHEST_US) for _ in range(3000)]
    if shape == "repeated":  # one bucket, many samples
        return [chooser.choice([1500, 1501])] * chooser.randint(1, 5000)
    if shape == "far-apart":  # a few values in buckets far from each other
        return [chooser.randint(1, LATENCY_HIGHEST_US) for _ in range(chooser.randint(2, 6))]
    assert shape == "uniform-wide"
    return [chooser.randint(1, 10_000_000) for _ in range(2000)]


@pytest.mark.parametrize(
    ("shape", "seed"),
    [("loopback", 1), ("lognormal", 2), ("repeated", 3), ("far-apart", 4), ("uniform-wide", 5)],
)
def test_hgrm_and_summary_are_what_hdrh_computes_for_any_histogram(shape: str, seed: int) -> None:
    # The .hgrm rows, the percentiles, mean and stddev are computed from the buckets that hold
    # counts only; hdrh's own code (which walks every bucket) is the reference for each.
    values = _shaped_samples(shape, seed)
    reference = HdrHistogram(1, LATENCY_HIGHEST_US, 3)
    for value in values:
        assert reference.record_value(value)
    expected_table = io.BytesIO()
    reference.output_percentile_distribution(expected_table, 1000)
    mean_ms, stddev_ms = reference.get_mean_value() / 1000, reference.get_stddev() / 1000
    by_percentile = reference.get_percentile_to_value_dict([50.0, 90.0, 99.0, 99.9])
    # Recorded one by one, and rebuilt from a blob (a worker's histogram): the same output.
    for histogram in (histogram_of(values), LatencyHistogram.decode(reference.encode().decode())):
        stream = io.BytesIO()
        histogram.write_hgrm(stream)
        ours = stream.getvalue().decode("ascii")
        assert ours.split("#[", 1)[0] == expected_table.getvalue().decode("ascii").split("#[")[0]
        match = _FOOTER.search(ours)
        assert match is not None
        assert match["mean"] == f"{mean_ms:.3f}"
        assert float(match["stddev"]) == pytest.approx(stddev_ms, abs=0.0011)
        summary = histogram.summary_ms()
        assert summary is not None
        assert [summary[key] for key in ("p50", "p90", "p99", "p99_9")] == [
            round(by_percentile[pct] / 1000, 3) for pct in (50.0, 90.0, 99.0, 99.9)
        ]
        assert summary["mean"] == round(mean_ms, 3)
        for key in ("p50", "p90", "p99", "p99_9", "max", "mean"):
            assert histogram.stat_ms(key) == summary[key]


def test_hgrm_of_empty_histogram_has_zero_footer() -> None:
    text = hgrm_of([])
    assert table_rows(text) == []
    match = _FOOTER.search(text)
    assert match is not None
    assert (match["mean"], match["stddev"], match["max"], match["total"]) == (
        "0.000",
        "0.000",
        "0.000",
        "0",
    )


def test_hgrm_stddev_matches_statistics() -> None:
    values = [100, 250, 900, 1500, 2000]  # all exact (< 2048 µs)
    match = _FOOTER.search(hgrm_of(values))
    assert match is not None
    mean = sum(values) / len(values)
    stddev = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    assert match["stddev"] == f"{stddev / 1000:.3f}"


# -- RunStats --------------------------------------------------------------------------------


def failure(session: int, outcome: Outcome = Outcome.TIMEOUT) -> SessionFailure:
    return SessionFailure(
        session=session,
        outcome=outcome,
        step="data",
        expected="250",
        got="no reply within 5 s",
        transcript=(TranscriptLine("C", "DATA"), TranscriptLine("*", "timeout")),
    )


def test_run_stats_starts_empty_with_every_step_and_outcome() -> None:
    stats = RunStats(["connect", "ehlo", "mail", "rcpt#2"])
    assert list(stats.steps) == ["connect", "ehlo", "mail", "rcpt#2"]
    assert all(isinstance(step, StepStats) for step in stats.steps.values())
    assert [step.name for step in stats.steps.values()] == list(stats.steps)
    assert stats.outcomes == dict.fromkeys(Outcome, 0)
    assert (stats.started, stats.finished, stats.passed, stats.failed, stats.messages) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert (stats.failures, stats.failures_not_kept) == ([], 0)
    assert stats.session_latency.count == 0


def test_record_step_counts_attempts_failures_and_latency() -> None:
    stats = RunStats(["connect", "ehlo"])
    stats.record_step("ehlo", 1200, failed=False)
    stats.record_step("ehlo", 3400, failed=True)  # a wrong reply still has a latency
    stats.record_step("ehlo", None, failed=True)  # a timeout has none
    ehlo = stats.steps["ehlo"]
    assert (ehlo.attempts, ehlo.failed, ehlo.latency.count) == (3, 2, 2)
    assert stats.steps["connect"].attempts == 0


def test_record_step_of_unknown_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        RunStats(["connect"]).record_step("ehlo", 1, failed=False)


def test_duplicate_step_names_are_refused() -> None:
    with pytest.raises(ValueError, match="'ehlo' appears twice"):
        RunStats(["connect", "ehlo", "ehlo"])


def test_sessions_and_messages_add_up() -> None:
    stats = RunStats(["connect"])
    for _ in range(6):
        stats.session_started()
    stats.message_accepted()
    stats.message_accepted()
    stats.record_session(Outcome.PASSED, 5000)
    stats.record_session(Outcome.PASSED, 7000)
    stats.record_session(Outcome.TIMEOUT, None, failure(3))
    stats.record_session(Outcome.CONNECT_ERROR, None, failure(4, Outcome.CONNECT_ERROR))
    stats.record_session(Outcome.UNEXPECTED_REPLY, 9000, failure(5, Outcome.UNEXPECTED_REPLY))
    assert (stats.started, stats.finished, stats.passed, stats.failed) == (6, 5, 2, 3)
    assert stats.messages == 2
    assert stats.outcomes[Outcome.TIMEOUT] == 1
    assert stats.outcomes[Outcome.PROTOCOL_ERROR] == 0
    assert stats.session_latency.count == 3


@pytest.mark.parametrize(
    ("max_kept", "n_failures", "kept", "not_kept"),
    [(100, 3, 3, 0), (2, 5, 2, 3), (0, 4, 0, 4), (3, 3, 3, 0)],
    ids=["under-limit", "over-limit", "keep-none", "exactly-at-limit"],
)
def test_only_the_first_failures_are_kept(
    max_kept: int, n_failures: int, kept: int, not_kept: int
) -> None:
    stats = RunStats(["connect"], max_kept_failures=max_kept)
    for session in range(1, n_failures + 1):
        stats.record_session(Outcome.TIMEOUT, None, failure(session))
    assert [f.session for f in stats.failures] == list(range(1, kept + 1))
    assert stats.failures_not_kept == not_kept
    assert stats.failed == n_failures


def test_negative_max_kept_failures_is_refused() -> None:
    with pytest.raises(ValueError, match="max_kept_failures"):
        RunStats(["connect"], max_kept_failures=-1)


@pytest.mark.parametrize("already_kept", [0, 2, 3], ids=["none-kept", "room-for-one", "full"])
def test_connect_failures_counted_at_once_equal_counting_them_one_by_one(
    already_kept: int,
) -> None:
    def connect_failure(session: int) -> SessionFailure:
        return failure(session, Outcome.CONNECT_ERROR)

    at_once, one_by_one = (RunStats(["connect", "ehlo"], max_kept_failures=3) for _ in "ab")
    for stats in (at_once, one_by_one):
        for session in range(1, already_kept + 1):
            stats.session_started()
            stats.record_session(Outcome.TIMEOUT, None, failure(session))
    at_once.record_connect_failures(already_kept + 1, 5, connect_failure)
    for session in range(already_kept + 1, already_kept + 6):
        one_by_one.session_started()
        one_by_one.record_step("connect", None, failed=True)
        one_by_one.record_session(Outcome.CONNECT_ERROR, None, connect_failure(session))
    for attribute in ("started", "outcomes", "failures", "failures_not_kept"):
        assert getattr(at_once, attribute) == getattr(one_by_one, attribute), attribute
    connect = at_once.steps["connect"]
    assert (connect.attempts, connect.failed) == (5, 5)
    assert (connect.attempts, connect.failed) == (
        one_by_one.steps["connect"].attempts,
        one_by_one.steps["connect"].failed,
    )


def test_a_negative_latency_is_left_out_and_counted_as_dropped() -> None:
    # A realtime clock stepped back between a send and its reply's receive time: the sample
    # would be nonsense, and clamping it to 1 µs would pull the percentiles down.
    stats = RunStats(["connect", "ehlo"])
    stats.record_step("ehlo", -250, failed=False)
    stats.record_step("ehlo", 400, failed=False)
    step = stats.steps["ehlo"]
    assert (step.attempts, step.failed) == (2, 0)
    assert step.latency.count == 1
    assert step.latency.summary_ms() is not None
    assert step.latency.summary_ms()["max"] == 0.4  # type: ignore[index]
    assert step.negative_samples == 1
    assert step.dropped_samples == 1


def test_clocks_of_steps_and_of_the_run() -> None:
    stats = RunStats(["connect", "greeting", "ehlo", "close"])
    assert stats.clock == "loop"
    assert {step.clock for step in stats.steps.values()} == {"loop"}
    stats.use_kernel_clock(["greeting", "ehlo"])
    assert [step.clock for step in stats.steps.values()] == ["loop", "kernel", "kernel", "loop"]
    assert stats.clock == "kernel"
    # One session without receive times puts the whole run on the loop's clock.
    stats.timed_by_loop()
    assert {step.clock for step in stats.steps.values()} == {"loop"}
    assert stats.clock == "loop"


def test_reply_lag_is_recorded_and_a_negative_one_left_out() -> None:
    stats = RunStats(["connect"])
    assert stats.reply_lag.summary_ms() is None
    stats.record_reply_lag(1500)
    stats.record_reply_lag(-3)
    assert stats.reply_lag.count == 1


def test_interval_recording_hands_out_each_interval_and_folds_it_into_the_run() -> None:
    histogram = LatencyHistogram()
    histogram.start_intervals()
    for value_us in (10, 20, 30):
        histogram.record_us(value_us)
    assert histogram.count == 0  # until the interval is taken
    first = histogram.take_interval()
    histogram.record_us(2_000)  # exact: below 2048 µs
    second = histogram.take_interval()
    assert (first.count, first.max_us) == (3, 30)
    assert (second.count, second.max_us) == (1, 2_000)
    assert histogram.count == 4
    assert histogram.max_us == 2_000
    assert histogram.take_interval().count == 0


def test_without_intervals_the_whole_histogram_is_the_one_interval() -> None:
    histogram = LatencyHistogram()
    histogram.record_us(7)
    assert histogram.take_interval() is histogram
    assert histogram.count == 1


def test_run_stats_intervals_cover_every_step_and_the_sessions() -> None:
    stats = RunStats(["connect", "ehlo"])
    stats.start_intervals()
    stats.record_step("ehlo", 100, failed=False)
    stats.record_session(Outcome.PASSED, 500)
    assert stats.steps["ehlo"].latency.take_interval().count == 1
    assert dict(stats.run_histograms())["session"].take_interval().count == 1
    assert stats.steps["ehlo"].latency.count == 1
    assert stats.session_latency.count == 1


# -- buffered recording (record_us appends; readers fold the buffer in first) ----------------


def _bucket_edges() -> list[int]:
    """Every bucket's lowest and highest value and their neighbours, over the whole range."""
    reference = HdrHistogram(1, LATENCY_HIGHEST_US, 3)
    edges: set[int] = {1, 2, 2047, 2048, 2049, LATENCY_HIGHEST_US - 1, LATENCY_HIGHEST_US}
    value = 1
    while value <= LATENCY_HIGHEST_US:
        top = reference.get_highest_equivalent_value(value)
        edges.update((value, value + 1, top - 1, top))
        value = top + 1
    return sorted(edge for edge in edges if 1 <= edge <= LATENCY_HIGHEST_US)


def test_folding_counts_every_value_where_hdrh_would() -> None:
    import array
    import random

    from smtpload.report.stats import _fold

    chooser = random.Random(14)
    values = _bucket_edges() + [chooser.randint(1, LATENCY_HIGHEST_US) for _ in range(2000)]
    values += [chooser.randint(1, 5000) for _ in range(2000)]  # duplicates, the usual case
    folded = HdrHistogram(1, LATENCY_HIGHEST_US, 3)
    _fold(folded, array.array("q", values))
    reference = HdrHistogram(1, LATENCY_HIGHEST_US, 3)
    for value in values:
        assert reference.record_value(value)
    assert list(folded.counts) == list(reference.counts)
    assert (folded.total_count, folded.min_value, folded.max_value) == (
        reference.total_count,
        reference.min_value,
        reference.max_value,
    )


@pytest.mark.parametrize("samples", [1, 4095, 4096, 4097, 10_000])
def test_every_reader_sees_every_buffered_sample(samples: int) -> None:
    values = [1 + (index * 7919) % 90_000 for index in range(samples)] + [0, -5, 2**40]
    reference = HdrHistogram(1, LATENCY_HIGHEST_US, 3)
    for value in values:
        reference.record_value(min(max(value, 1), LATENCY_HIGHEST_US))

    def fresh() -> LatencyHistogram:
        return histogram_of(values)

    expected_count = len(values)
    assert fresh().count == expected_count
    assert fresh().max_us == reference.get_max_value()
    assert fresh().dropped == 1
    assert fresh().encode() == reference.encode().decode("ascii")
    summary = fresh().summary_ms()
    assert summary is not None
    assert fresh().stat_ms("p99") == summary["p99"]
    assert fresh().stat_ms("mean") == summary["mean"]
    into = LatencyHistogram()
    into.merge(fresh())
    assert (into.count, into.dropped) == (expected_count, 1)
    buffered_into = histogram_of([5])
    buffered_into.merge(fresh())
    assert buffered_into.count == expected_count + 1
    stream, expected_stream = io.BytesIO(), io.BytesIO()
    fresh().write_hgrm(stream)
    whole = LatencyHistogram.decode(reference.encode().decode("ascii"))
    whole.write_hgrm(expected_stream)
    assert stream.getvalue() == expected_stream.getvalue()


def test_samples_buffered_before_intervals_start_stay_run_wide() -> None:
    histogram = histogram_of([10, 20])
    histogram.start_intervals()
    histogram.record_us(30)
    interval = histogram.take_interval()
    assert (interval.count, interval.max_us) == (1, 30)
    assert histogram.count == 3


def test_the_mean_takes_every_bucket_midpoint_as_hdrh_does() -> None:
    # One sample at the lowest value of every 7th bucket from 1 µs to 1 h (ours clamps above
    # it): the in-line bucket arithmetic of _mean_and_stddev_us against hdrh's own walk, in
    # every bucket size.
    reference = HdrHistogram(1, LATENCY_HIGHEST_US, 3)
    lowest = (reference.get_value_from_index(index) for index in range(0, reference.counts_len, 7))
    values = sorted(value for value in set(lowest) if 1 <= value <= LATENCY_HIGHEST_US)
    for value in values:
        assert reference.record_value(value)
    ours = histogram_of(values)
    mean_us, stddev_us = ours._mean_and_stddev_us()
    assert mean_us == pytest.approx(reference.get_mean_value(), rel=1e-12)
    assert stddev_us == pytest.approx(reference.get_stddev(), rel=1e-9)
