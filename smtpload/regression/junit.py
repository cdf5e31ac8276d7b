"""A comparison as JUnit XML, so that CI systems show each changed step as a failed test.

This module owns the XML only; the judging is ``compare.py``'s. The shape is the one that
Jenkins, GitLab and GitHub test reporters read (the de-facto schema of Ant's JUnit task)::

    <testsuites name=... tests=N failures=F errors="0">
      <testsuite name=SUITE tests=N failures=F errors="0" skipped=S>
        <properties>                        the options; each side's target, sessions and
          <property name=... value=.../>    clock (baseline_clock, current_clock: kernel or
        </properties>                       loop); clock_warning when the clocks differ
        <testcase classname=SCENARIO name=STEP>              one per step, in step order
          <failure type="regression" message="...">...</failure>   only when the step regressed
          <skipped message="..."/>                  when the step was not run as in the baseline
          <system-out>warning: ...</system-out>      its warnings, and the latency percentiles
                                                     too few samples back ("note: ..."), if any
        </testcase>
        <system-out>warning: ...</system-out>   only when the clocks differ: the warning, and
      </testsuite>                              with --max-latency-regression "note: latency
    </testsuites>                               not judged ..." (a run's, not a step's)

N, F and S are the text report's last line: steps, steps that regressed, steps not run
(``Comparison.steps_by_status``). A step's ``failure`` lists every regression of that step (its
``message`` joins them in one line, which is what most CI pages show; the body adds what the
baseline and this run saw).
Warnings never fail a test case: with ``--strict`` they are already regressions. The clocks'
warning fails nothing, ``--strict`` or not (compare.py).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from smtpload.errors import counted
from smtpload.regression.compare import NOT_RUN, REGRESSION, Comparison, Difference

__all__ = ["junit_xml"]


def junit_xml(comparison: Comparison, *, suite_name: str) -> str:
    """The comparison as a JUnit XML document (a ``str`` with an XML declaration).

    Args:
        comparison: what ``regression.compare`` found.
        suite_name: the test suite's name, e.g. ``"smtpload compare upgrade"``.
    """
    # The same counts as the text report's last line: steps by status.
    by_status = comparison.steps_by_status()
    counts = {
        "tests": str(len(comparison.steps)),
        "failures": str(by_status[REGRESSION]),
        "errors": "0",
    }
    suites = ET.Element("testsuites", {"name": suite_name, **counts})
    skipped = str(by_status[NOT_RUN])
    suite = ET.SubElement(suites, "testsuite", {"name": suite_name, **counts, "skipped": skipped})
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("baseline_target", comparison.baseline_target),
        ("current_target", comparison.current_target),
        ("baseline_sessions", str(comparison.baseline_sessions)),
        ("current_sessions", str(comparison.current_sessions)),
        ("strict", str(comparison.strict).lower()),
        ("max_latency_regression_pct", _optional(comparison.max_latency_regression_pct)),
        ("min_latency_delta_ms", f"{comparison.min_latency_delta_ms:g}"),
        ("baseline_clock", comparison.baseline_clock),
        ("current_clock", comparison.current_clock),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    if comparison.clock_warning is not None:
        warning = {"name": "clock_warning", "value": comparison.clock_warning}
        ET.SubElement(properties, "property", warning)
    for name in comparison.steps:
        case = ET.SubElement(suite, "testcase", {"classname": comparison.scenario, "name": name})
        differences = comparison.differences_at(name)
        regressions = [d for d in differences if d.severity == REGRESSION]
        warnings = [d for d in differences if d.severity != REGRESSION]
        if regressions:
            failure = ET.SubElement(
                case,
                "failure",
                {"type": "regression", "message": "; ".join(d.message for d in regressions)},
            )
            failure.text = "\n".join(_detail(d) for d in regressions)
        if comparison.status_of(name) == NOT_RUN:
            ET.SubElement(
                case, "skipped", {"message": "not run as in the baseline: an earlier step changed"}
            )
        notes = [
            f"note: {n.percentile} latency not judged: {_samples(n.baseline_samples)} in the "
            f"baseline, {n.current_samples} now, fewer than the {n.samples_needed} it needs"
            for n in comparison.not_judged_at(name)
        ]
        if warnings or notes:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join([*(f"warning: {_detail(d)}" for d in warnings), *notes])
    if comparison.clock_warning is not None:
        # The run's, not a step's: the suite's own output, after its test cases (Ant's order).
        said = [f"warning: {comparison.clock_warning}"]
        if comparison.latency_note is not None:
            said.append(f"note: {comparison.latency_note}")
        ET.SubElement(suite, "system-out").text = "\n".join(said)
    ET.indent(suites)
    body = ET.tostring(suites, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _samples(count: int) -> str:
    return counted(count, "sample")


def _optional(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _detail(difference: Difference) -> str:
    lines = [f"{difference.kind}: {difference.message}"]
    if not difference.in_message:
        lines.append(f"  baseline: {difference.baseline}")
        lines.append(f"  now:      {difference.now}")
    return "\n".join(lines)
