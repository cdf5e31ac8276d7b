"""``smtpload import``, ``record`` and ``compare`` as a user runs them: real processes, real
servers (Postfix as it is and as "upgraded" on a second port; see .ci/postfix-setup)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from smtpload.scenario.loader import load_scenario
from tests.cli import smtpload
from tests.peers import SmtpPeer
from tests.test_compare_postfix import STEPS

DATA = Path(__file__).resolve().parent / "data"
SEED = DATA / "transcripts" / "seed-blog.txt"
UPGRADE = DATA / "upgrade.yaml"


def test_import_help_says_what_import_does_to_indentation_and_message_ids(
    tmp_path: Path,
) -> None:
    result = smtpload("import", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "a session indented as a whole" in text
    assert "Date: and Message-ID: values become {date} and {message_id}" in text


def test_import_writes_one_scenario_per_session(tmp_path: Path) -> None:
    result = smtpload("import", str(SEED), "-o", "out/seed.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["seed-2.yaml", "seed.yaml"]
    first = load_scenario(tmp_path / "out" / "seed.yaml")
    second = load_scenario(tmp_path / "out" / "seed-2.yaml")
    assert str(first.target) == "smtp.exsample.jp:25"
    assert [s.name for s in second.steps][:3] == ["greeting", "heloo", "helo"]
    assert "format: telnet (auto)" in result.stderr
    assert "stripped note '←あいさつ(HELOの後はなんでもかまわない?)'" in result.stderr
    assert "skipped prose" in result.stderr
    assert result.stdout == ""


def test_import_without_output_prints_yaml_and_session_picks_one(tmp_path: Path) -> None:
    result = smtpload("import", str(SEED), "--session", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "HELOO localhost" in result.stdout
    assert "HELO exsample.jp" not in result.stdout
    path = tmp_path / "printed.yaml"
    path.write_text(result.stdout, encoding="utf-8")
    assert load_scenario(path).steps


def test_import_refuses_what_it_cannot_understand_with_line_numbers(tmp_path: Path) -> None:
    transcript = tmp_path / "cut.txt"
    transcript.write_text(
        "$ telnet localhost 25\n220 mx ESMTP\nHELO x\n250 mx\nMAIL FROM:<a@x>\n250 ok\n"
        "RCPT TO:<b@x>\n250 ok\nDATA\n354 go\nSubject: cut off\n"
    )
    result = smtpload("import", str(transcript), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{transcript}:10:" in result.stderr
    missing = smtpload("import", str(SEED), "--session", "3", cwd=tmp_path)
    assert missing.returncode == 2
    assert "the transcript has 2 session(s)" in missing.stderr


def test_replay_runs_a_scenario_file_too(tmp_path: Path, postfix_server: SmtpPeer) -> None:
    target = f"{postfix_server.host}:{postfix_server.port}"
    scenario = Path(__file__).resolve().parent.parent / "scenarios" / "seed-sendmail.yaml"
    result = smtpload("replay", str(scenario), "--target", target, cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    steps = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("  ok")]
    assert steps == ["greeting", "heloo", "helo", "mail", "rcpt", "data", "message", "quit"]
    assert "=> passed" in result.stdout


def test_record_then_compare_against_the_upgraded_postfix(
    tmp_path: Path, postfix_server: SmtpPeer, postfix_upgraded_server: SmtpPeer
) -> None:
    old = f"{postfix_server.host}:{postfix_server.port}"
    new = f"{postfix_upgraded_server.host}:{postfix_upgraded_server.port}"
    recorded = smtpload(
        "record", str(UPGRADE), "--target", old, "-o", "baseline.json", "--sessions", "4",
        "--concurrency", "2", cwd=tmp_path,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    baseline = json.loads((tmp_path / "baseline.json").read_text())
    assert baseline["format"] == "smtpload-baseline/1"

    same = smtpload(
        "compare", str(UPGRADE), "--baseline", "baseline.json", "--target", old, cwd=tmp_path
    )
    assert same.returncode == 0, same.stdout

    changed = smtpload(
        "compare", str(UPGRADE), "--baseline", "baseline.json", "--target", new,
        "--junit", "junit.xml", "--json", "diff.json", cwd=tmp_path,
    )  # fmt: skip
    assert changed.returncode == 1, changed.stdout
    lines = {line.split()[0]: line for line in changed.stdout.splitlines() if line[:1].isalpha()}
    assert "REGRESSION" in lines["rcpt-changed"]
    assert "250 -> 550" in lines["rcpt-changed"]
    assert "capability removed: DSN" in lines["ehlo"]
    assert "warning" in lines["greeting"]
    for step in ("mail", "rcpt-other", "data", "message", "quit", "close"):
        assert lines[step].split()[1] == "ok", lines[step]

    suite = ET.parse(tmp_path / "junit.xml").getroot()
    cases = suite.findall(".//testcase")
    assert tuple(c.get("name") for c in cases) == STEPS
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["ehlo", "rcpt-changed"]
    assert json.loads((tmp_path / "diff.json").read_text())

    strict = smtpload(
        "compare", str(UPGRADE), "--baseline", "baseline.json", "--target", new, "--strict",
        "--update-baseline", cwd=tmp_path,
    )  # fmt: skip
    assert strict.returncode == 1
    assert "REGRESSION" in strict.stdout.splitlines()[1]  # the greeting's text, now strict
    # The baseline now holds the upgraded server's behaviour: comparing again finds nothing.
    again = smtpload(
        "compare", str(UPGRADE), "--baseline", "baseline.json", "--target", new, cwd=tmp_path
    )
    assert again.returncode == 0, again.stdout


def test_compare_with_a_broken_baseline_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "baseline.json").write_text("{not json")
    result = smtpload("compare", str(UPGRADE), "--baseline", "baseline.json", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "baseline.json" in result.stderr


def test_outputs_that_would_overwrite_an_input_are_refused_before_any_run(tmp_path: Path) -> None:
    scenario = tmp_path / "upgrade.yaml"
    scenario.write_text(UPGRADE.read_text())
    transcript = tmp_path / "seed.txt"
    transcript.write_bytes(SEED.read_bytes())
    (tmp_path / "b.json").write_text("{}")
    attempts = [
        ("record", "upgrade.yaml", "-o", "upgrade.yaml"),
        ("compare", "upgrade.yaml", "--baseline", "b.json", "--json", "b.json"),
        ("compare", "upgrade.yaml", "--baseline", "b.json", "--json", "x.out", "--junit", "x.out"),
        ("import", "seed.txt", "-o", "seed.txt"),
    ]
    for args in attempts:
        result = smtpload(*args, cwd=tmp_path)
        assert result.returncode == 2, args
        assert "would overwrite an input or another output" in result.stderr, args
    assert scenario.read_text() == UPGRADE.read_text()
    assert transcript.read_bytes() == SEED.read_bytes()
    assert (tmp_path / "b.json").read_text() == "{}"


def test_compare_warns_when_the_baseline_came_from_another_scenario(
    tmp_path: Path, postfix_server: SmtpPeer
) -> None:
    target = f"{postfix_server.host}:{postfix_server.port}"
    assert (
        smtpload(
            "record", str(UPGRADE), "--target", target, "-o", "b.json", cwd=tmp_path
        ).returncode
        == 0
    )
    result = smtpload(
        "compare", "quickstart", "--baseline", "b.json", "--target", target, cwd=tmp_path
    )
    assert (
        "the baseline was recorded from scenario 'upgrade', this run is 'quickstart'"
        in result.stderr
    )


def test_latency_threshold_is_a_percentage(tmp_path: Path) -> None:
    result = smtpload(
        "compare",
        str(UPGRADE),
        "--baseline",
        "b.json",
        "--max-latency-regression",
        "0",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "must be a percentage above 0" in result.stderr


def test_record_warns_when_the_replies_were_not_the_expected_ones(
    tmp_path: Path, postfix_upgraded_server: SmtpPeer
) -> None:
    target = f"{postfix_upgraded_server.host}:{postfix_upgraded_server.port}"
    result = smtpload("record", str(UPGRADE), "--target", target, "-o", "b.json", cwd=tmp_path)
    assert result.returncode == 0
    assert (
        "warning: the replies at rcpt-changed were not what the scenario expects" in result.stderr
    )
