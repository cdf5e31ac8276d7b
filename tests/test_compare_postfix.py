"""record and compare against real Postfix: the server, and the same server "upgraded".

``.ci/postfix-setup`` runs two smtpd services on one Postfix that differ in exactly three
observable ways: the banner text, ``changed@example.test`` refused with 550 5.1.1, and DSN no
longer advertised. Recording tests/data/upgrade.yaml against the first and comparing the second
with it must report exactly those three differences, at their steps, and nothing else.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trio

from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.regression.baseline import Behaviour, load_baseline, save_baseline
from smtpload.regression.compare import Comparison, compare, format_comparison
from smtpload.regression.junit import junit_xml
from smtpload.regression.observe import observe_run
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.model import Target
from tests.peers import SmtpPeer

SCENARIO_PATH = Path(__file__).resolve().parent / "data" / "upgrade.yaml"
SESSIONS = 6
STEPS = (
    "greeting",
    "ehlo",
    "mail",
    "rcpt-changed",
    "rcpt-other",
    "data",
    "message",
    "quit",
    "close",
)


@pytest.fixture(scope="module")
def scenario() -> CompiledScenario:
    return compile_scenario(load_scenario(SCENARIO_PATH))


async def observe(scenario: CompiledScenario, peer: SmtpPeer, run_id: str) -> Behaviour:
    target = Target(peer.host, peer.port)
    # Far above the scenario's 10 s step timeout: a hang fails instead of blocking the suite.
    with trio.fail_after(60):
        behaviour, interrupted = await observe_run(
            scenario, target, sessions=SESSIONS, concurrency=3, run_id=run_id
        )
        assert not interrupted
        return behaviour


def differences(comparison: Comparison) -> list[tuple[str, str, str]]:
    return [(d.step, d.kind, d.severity) for d in comparison.differences]


async def test_compare_reports_exactly_what_the_upgrade_changed(
    tmp_path: Path,
    scenario: CompiledScenario,
    postfix_server: SmtpPeer,
    postfix_upgraded_server: SmtpPeer,
) -> None:
    recorded = await observe(scenario, postfix_server, "record")
    assert [step.name for step in recorded.steps] == list(STEPS)
    assert all(step.sessions == SESSIONS and step.unexpected == 0 for step in recorded.steps)

    # The baseline goes through a file, as `record` and `compare` hand it over.
    path = tmp_path / "baseline.json"
    save_baseline(recorded, path)
    baseline = load_baseline(path)
    assert baseline == recorded

    upgraded = await observe(scenario, postfix_upgraded_server, "compare")
    # The refused recipient did not end the sessions: everything after it was still observed.
    assert all(step.sessions == SESSIONS for step in upgraded.steps)
    message = upgraded.step("message")
    assert message is not None
    assert dict(message.codes) == {"250": SESSIONS}

    comparison = compare(baseline, upgraded, strict=False, max_latency_regression_pct=None)
    report = format_comparison(comparison)
    assert differences(comparison) == [
        ("greeting", "text", "warning"),
        ("ehlo", "capability_removed", "regression"),
        ("rcpt-changed", "code", "regression"),
    ], report
    greeting, ehlo, rcpt = comparison.differences
    assert greeting.message == (
        "reply text changed: 'postfix.test ESMTP Postfix (Debian/GNU)' -> "
        "'postfix.test ESMTP Postfix (upgraded)'"
    )
    assert ehlo.message == "capability removed: DSN"
    assert rcpt.message == "reply code changed: 250 -> 550"
    assert "550 5.1.1 <changed@example.test>: Recipient address rejected" in rcpt.now
    assert comparison.exit_status == 1

    strict = compare(baseline, upgraded, strict=True, max_latency_regression_pct=None)
    assert [d.severity for d in strict.differences] == ["regression"] * 3

    root = ET.fromstring(junit_xml(comparison, suite_name="smtpload compare upgrade"))
    cases = root.findall("testsuite/testcase")
    assert [case.attrib["name"] for case in cases] == list(STEPS)
    failed = [case.attrib["name"] for case in cases if case.find("failure") is not None]
    assert failed == ["ehlo", "rcpt-changed"]
    assert (root.attrib["tests"], root.attrib["failures"]) == (str(len(STEPS)), "2")


async def test_a_server_compared_with_itself_has_no_regression(
    scenario: CompiledScenario, postfix_server: SmtpPeer
) -> None:
    baseline = await observe(scenario, postfix_server, "first")
    again = await observe(scenario, postfix_server, "second")
    comparison = compare(baseline, again, strict=True, max_latency_regression_pct=None)
    # Queue ids, and anything else volatile in the replies, differ between the two runs.
    assert comparison.differences == (), format_comparison(comparison)
    assert comparison.exit_status == 0
