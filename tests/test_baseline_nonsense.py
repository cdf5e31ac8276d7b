"""``smtpload compare --baseline FILE`` with a FILE no recording could have produced.

Every kind of nonsense is refused before anything runs: one clear line naming the file and the
field, exit status 2, never a traceback. The files start from a real recording (``record``
against the built-in sink) and are damaged one way each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smtpload.cli.main import main
from tests.cli import smtpload

ROOT = Path(__file__).resolve().parent.parent

Damage = Callable[[dict[str, Any]], object]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("recorded") / "baseline.json"
    assert main(["record", "quickstart", "-o", str(path), "--sessions", "3"]) == 0
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def compare_with(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run compare against a baseline file holding ``text``; return its one error line."""
    path = tmp_path / "baseline.json"
    path.write_text(text, encoding="utf-8")
    status = main(["compare", "quickstart", "--baseline", str(path)])
    out, err = capsys.readouterr()
    assert status == 2, err
    assert out == ""  # refused before anything ran
    assert err.startswith(f"smtpload: {path}: ")
    assert err.count("\n") == 1
    assert "smtpload record" in err  # and what to do about it
    return err


def step(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["steps"] if s["name"] == name)
    return found


def setting(path: str, value: object) -> Damage:
    """A damage that sets ``path`` ("sessions", "rcpt.codes", "mail.latency.p50_ms")."""

    def damage(data: dict[str, Any]) -> object:
        where: dict[str, Any] = data
        *parents, key = path.split(".")
        for i, part in enumerate(parents):
            where = step(where, part) if i == 0 else where[part]
        where[key] = value
        return data

    return damage


def duplicate_step(data: dict[str, Any]) -> object:
    data["steps"].append(dict(step(data, "rcpt")))
    return data


# Each: the damage, and what the message must say.
NONSENSE: dict[str, tuple[Damage, str]] = {
    # wrong types
    "sessions-text": (setting("sessions", "3"), "sessions: expected a whole number"),
    "sessions-bool": (setting("sessions", True), "sessions: expected a whole number"),
    "step-float": (setting("mail.sessions", 1.5), "steps[2].sessions: expected a whole"),
    "codes-list": (setting("rcpt.codes", [250]), "codes: expected a JSON object"),
    "text-number": (setting("rcpt.text", 250), "text: expected a JSON array"),
    "capability-params": (setting("ehlo.capabilities", {"SIZE": 10}), "SIZE"),
    "p50-text": (setting("rcpt.latency.p50_ms", "fast"), "p50_ms: expected a number"),
    "latency-null": (setting("rcpt.latency", None), "latency: expected a JSON object"),
    # keys no server reply or event makes
    "code-letters": (setting("rcpt.codes", {"abc": 3}), "'abc': not a reply code"),
    "code-four-digits": (setting("rcpt.codes", {"2500": 3}), "'2500': not a reply code"),
    "code-empty": (setting("rcpt.codes", {"": 3}), "'': not a reply code"),
    "enhanced-class": (setting("rcpt.enhanced", {"9.1.5": 3}), "not an enhanced status code"),
    "enhanced-short": (setting("rcpt.enhanced", {"2.1": 3}), "not an enhanced status code"),
    "event-unknown": (setting("rcpt.events", {"exploded": 3}), "'exploded': not an event"),
    # counts that cannot be
    "negative-count": (setting("rcpt.codes", {"250": -1}), "expected a whole number >= 0"),
    "negative-sessions": (setting("sessions", -3), "sessions: expected a whole number >= 0"),
    "step-over-run": (setting("rcpt.sessions", 4), "4 is more than the 3 sessions"),
    "code-over-step": (setting("rcpt.codes", {"250": 5}), "5 is more than the 3 replies"),
    "codes-sum-over": (setting("rcpt.codes", {"250": 2, "251": 2}), "add up to more than"),
    "codes-and-events": (setting("rcpt.events", {"timeout": 1}), "count more than its 3"),
    "enhanced-over-replies": (setting("rcpt.enhanced", {"2.1.5": 4}), "more than the 3 replies"),
    "unexpected-over": (setting("rcpt.unexpected", 7), "7 is more than the 3 replies"),
    "huge-count": (setting("rcpt.codes", {"250": 10**30}), "more than the 3 replies"),
    "latency-count": (setting("rcpt.latency.count", 2), "the histogram holds 3"),
    "latency-no-histogram": (setting("rcpt.latency.histogram", None), "no histogram"),
    # NaN and Infinity are not JSON, wherever they are
    "nan-latency": (setting("rcpt.latency.p50_ms", float("nan")), "NaN is not a number JSON"),
    "inf-latency": (setting("rcpt.latency.p99_ms", float("inf")), "Infinity is not a number"),
    "huge-latency": (setting("rcpt.latency.p50_ms", 10**400), "milliseconds from 0 to 3600000"),
    "minus-inf-count": (setting("rcpt.codes", {"250": float("-inf")}), "-Infinity is not"),
    # one thing given twice
    "duplicate-step": (duplicate_step, "'rcpt' is also the name of steps["),
}


@pytest.mark.parametrize("case", list(NONSENSE))
def test_a_nonsense_baseline_is_refused_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorded: dict[str, Any], case: str
) -> None:
    damage, message = NONSENSE[case]
    data = damage(json.loads(json.dumps(recorded)))
    assert message in compare_with(tmp_path, json.dumps(data), capsys)


def test_a_key_given_twice_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorded: dict[str, Any]
) -> None:
    text = json.dumps(recorded).replace('"sessions": 3,', '"sessions": 3, "sessions": 300,', 1)
    assert "the key 'sessions' is given twice" in compare_with(tmp_path, text, capsys)


@pytest.mark.parametrize("where", ["top", "capabilities"])
def test_deep_nesting_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorded: dict[str, Any], where: str
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    if where == "top":
        text = deep
    else:
        data = setting("ehlo.capabilities", {"SIZE": "DEEP"})(json.loads(json.dumps(recorded)))
        text = json.dumps(data)
        text = text.replace('"DEEP"', deep)
    assert "nested too deeply" in compare_with(tmp_path, text, capsys)


def test_a_huge_key_is_not_repeated_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorded: dict[str, Any]
) -> None:
    data = setting("rcpt.events", {"x" * 1_000_000: 1})(json.loads(json.dumps(recorded)))
    error = compare_with(tmp_path, json.dumps(data), capsys)
    assert "(1,000,000 characters)" in error
    assert len(error) < 1000


def test_deep_nesting_in_a_real_process_is_exit_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    process = smtpload("compare", "quickstart", "--baseline", str(path), cwd=ROOT)
    assert process.returncode == 2
    assert process.stderr == (
        f"smtpload: {path}: not a baseline (nested too deeply); record a new one with: "
        "smtpload record SCENARIO --target HOST:PORT -o FILE\n"
    )
