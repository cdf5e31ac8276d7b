"""smtpload.regression.junit: a comparison as JUnit XML, parsed back as a CI system would (pure)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from smtpload.regression.compare import Comparison, compare, format_comparison
from smtpload.regression.junit import junit_xml
from tests.test_baseline import STEPS, answers, behaviour_of
from tests.test_regression import OTHER_CLOCKS, every_kind_of_difference, slower_mail, with_latency

EHLO_WITHOUT_DSN = b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"
REFUSED = b'550 5.1.1 <b@example.test>: "Recipient" & co rejected\r\n'


def upgrade(*, strict: bool = False, pct: float | None = None) -> Comparison:
    upgraded = answers(
        greeting=b"220 mx.test ESMTP Postfix (upgraded)\r\n", ehlo=EHLO_WITHOUT_DSN, rcpt=REFUSED
    )
    # 100 samples at rcpt: enough to judge p50 and p99 there (+1.04 ms, +104 %), not p99.9.
    return compare(
        with_latency(behaviour_of([answers()]), "rcpt", [1000] * 100),
        with_latency(behaviour_of([upgraded]), "rcpt", [2040] * 100),
        strict=strict,
        max_latency_regression_pct=pct,
    )


def parsed(comparison: Comparison) -> ET.Element:
    text = junit_xml(comparison, suite_name="smtpload compare upgrade")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return ET.fromstring(text.encode("utf-8"))


def failures_by_step(root: ET.Element) -> dict[str, list[ET.Element]]:
    return {case.attrib["name"]: case.findall("failure") for case in root.iter("testcase")}


def test_one_testcase_per_step_in_step_order_with_the_counts_right() -> None:
    root = parsed(upgrade())
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [(c.attrib["classname"], c.attrib["name"]) for c in cases] == [
        ("upgrade", step) for step in STEPS
    ]
    for element in (root, suite):
        assert (element.attrib["tests"], element.attrib["failures"]) == ("8", "2")
        assert element.attrib["errors"] == "0"
    assert suite.attrib["name"] == "smtpload compare upgrade"


def test_failures_exactly_at_the_regressed_steps_naming_what_changed() -> None:
    failures = failures_by_step(parsed(upgrade()))
    assert {step for step, found in failures.items() if found} == {"ehlo", "rcpt"}
    (ehlo,) = failures["ehlo"]
    assert ehlo.attrib == {"type": "regression", "message": "capability removed: DSN"}
    (rcpt,) = failures["rcpt"]
    assert rcpt.attrib["message"] == "reply code changed: 250 -> 550"
    # Reply text with XML's special characters survives the round trip.
    assert '550 5.1.1 <b@example.test>: "Recipient" & co rejected' in (rcpt.text or "")


def test_warnings_are_output_not_failures() -> None:
    root = parsed(upgrade())
    greeting = next(c for c in root.iter("testcase") if c.attrib["name"] == "greeting")
    assert greeting.findall("failure") == []
    out = greeting.find("system-out")
    assert out is not None
    assert (out.text or "").startswith("warning: text: reply text changed:")


@pytest.mark.parametrize(
    ("strict", "pct", "failed"),
    [
        (False, None, {"ehlo", "rcpt"}),
        (True, None, {"greeting", "ehlo", "rcpt"}),
        (False, 50.0, {"ehlo", "rcpt"}),
    ],
    ids=["default", "strict", "latency"],
)
def test_strict_turns_warnings_into_failures_and_latency_adds_to_them(
    strict: bool, pct: float | None, failed: set[str]
) -> None:
    root = parsed(upgrade(strict=strict, pct=pct))
    failures = failures_by_step(root)
    assert {step for step, found in failures.items() if found} == failed
    assert root.attrib["failures"] == str(len(failed))


def test_every_regression_of_a_step_is_in_its_one_failure() -> None:
    failures = failures_by_step(parsed(upgrade(pct=50.0)))
    (rcpt,) = failures["rcpt"]
    assert rcpt.attrib["message"] == (
        "reply code changed: 250 -> 550; "
        "p50 latency grew 104% (1.000 ms -> 2.040 ms, +1.040 ms), more than the 50% and 1 ms "
        "allowed; "
        "p99 latency grew 104% (1.000 ms -> 2.040 ms, +1.040 ms), more than the 50% and 1 ms "
        "allowed"
    )


def test_percentiles_too_few_samples_back_are_noted_in_the_test_case_output() -> None:
    root = parsed(upgrade(pct=50.0))
    properties = {p.attrib["name"]: p.attrib["value"] for p in root.iter("property")}
    assert (properties["max_latency_regression_pct"], properties["min_latency_delta_ms"]) == (
        "50",
        "1",
    )
    outputs = {c.attrib["name"]: c.findtext("system-out") or "" for c in root.iter("testcase")}
    assert outputs["rcpt"] == (
        "note: p99.9 latency not judged: 100 samples in the baseline, 100 now, "
        "fewer than the 1000 it needs"
    )
    assert outputs["mail"].splitlines() == [
        f"note: {p} latency not judged: 1 sample in the baseline, 1 now, fewer than the {n} it "
        "needs"
        for p, n in (("p50", 2), ("p99", 100), ("p99.9", 1000))
    ]
    # Notes are no failures.
    assert root.attrib["failures"] == "2"


def test_no_difference_means_no_failure() -> None:
    same = compare(
        behaviour_of([answers()]),
        behaviour_of([answers()]),
        strict=True,
        max_latency_regression_pct=None,
    )
    root = parsed(same)
    assert root.attrib["failures"] == "0"
    assert all(not found for found in failures_by_step(root).values())
    assert root.find("testsuite/testcase/system-out") is None


def test_the_text_summary_counts_what_junit_counts() -> None:
    # Steps of every status, and steps with several differences (code and latency, say).
    everything = [upgrade(), upgrade(strict=True), upgrade(pct=50.0), *every_kind_of_difference()]
    for comparison in everything:
        (suite,) = parsed(comparison).findall("testsuite")
        cases = suite.findall("testcase")
        tests, failures, skipped = (int(suite.attrib[k]) for k in ("tests", "failures", "skipped"))
        warned = [
            c
            for c in cases
            if c.find("failure") is None and "warning: " in (c.findtext("system-out") or "")
        ]
        assert len(cases) == tests
        assert len(suite.findall("testcase/skipped")) == skipped
        ok = tests - failures - len(warned) - skipped
        last_line = format_comparison(comparison).splitlines()[-1]
        if ok == tests:
            assert last_line == f"no differences in {tests} steps"
        else:
            assert last_line == (
                f"{tests} steps: {failures} regressed, {len(warned)} with warnings, "
                f"{skipped} not run, {ok} ok"
            )


@pytest.mark.parametrize(("was", "now"), OTHER_CLOCKS)
@pytest.mark.parametrize("pct", [None, 10.0], ids=["no-latency", "latency"])
def test_across_clocks_the_suite_warns_and_no_latency_fails(
    was: str, now: str, pct: float | None
) -> None:
    comparison = replace(slower_mail(was, now), max_latency_regression_pct=pct)
    root = parsed(comparison)
    (suite,) = root.findall("testsuite")
    properties = {p.attrib["name"]: p.attrib["value"] for p in suite.iter("property")}
    assert (properties["baseline_clock"], properties["current_clock"]) == (was, now)
    assert properties["clock_warning"] == comparison.clock_warning
    assert comparison.clock_warning is not None
    # The suite's own output, after its test cases; no test case fails or carries it.
    assert [child.tag for child in suite][-1] == "system-out"
    said = (suite.findtext("system-out") or "").splitlines()
    expected = [f"warning: {comparison.clock_warning}"]
    if pct is not None:
        expected.append(f"note: {comparison.latency_note}")
        assert "latency not judged at any step" in expected[-1]
    assert said == expected
    assert (root.attrib["failures"], suite.attrib["failures"]) == ("0", "0")
    assert suite.find("testcase/system-out") is None


@pytest.mark.parametrize("clock", ["kernel", "loop"])
def test_on_one_clock_the_suite_names_it_and_says_nothing_more(clock: str) -> None:
    root = parsed(slower_mail(clock, clock))
    (suite,) = root.findall("testsuite")
    properties = {p.attrib["name"]: p.attrib["value"] for p in suite.iter("property")}
    assert (properties["baseline_clock"], properties["current_clock"]) == (clock, clock)
    assert "clock_warning" not in properties
    assert suite.find("system-out") is None
    assert {step for step, found in failures_by_step(root).items() if found} == {"mail"}
