"""Input of any length: step names become file names that can always be written, and no
message repeats a huge piece of the input whole.

A step name is the user's text; its ``.hgrm`` file name must stay within the file system's 255
bytes and stay unique, whatever the name's length or characters. And whatever the user gives
at length (a key, a value, a name, an argument, a transcript line), an error message or a
report shows a bounded excerpt of it. The long inputs here are 200,000 characters: nothing in
the code depends on the size, so a 50 MB line is bounded the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from smtpload.cli.main import main
from smtpload.report.results import MAX_FILE_NAME_PART, safe_file_name

LONG = 200_000
# How a cut excerpt says what it left out: "... (200,005 characters)".
MARK = re.compile(r"\.\.\. \(2\d\d,\d\d\d characters\)")
# The longest message line the excerpts allow: a message, a few cut excerpts, a file name.
LINE_MAX = 400
NAME_MAX_BYTES = 255

# Names of every kind: long ASCII, long multibyte, alike for their first 1,000 characters,
# alike once made safe, path-like, control characters, dots only.
STEP_NAMES = [
    "x" * 300,
    "y" * 10_000,
    "é" * 200,
    "🙂" * 100,
    "p" * 1000 + "-one",
    "p" * 1000 + "-two",
    "RCPT#2",
    "rcpt_2",
    "Rcpt 2",
    "..\\..\\etc\\passwd",  # a step name may not hold "/"; a part row's may (below)
    "a\\b\\c",
    "tab\there\nnewline\x00nul",
    "...",
]


def scenario_with_names(path: Path, names: list[str]) -> Path:
    steps: list[dict[str, object]] = [{"greeting": 220}]
    steps += [{"send": "NOOP", "name": name, "expect": 250} for name in names]
    # A bdat step named "..": its chunk row is "../chunk", a path (the sink refuses BDAT
    # without MAIL with 503, and still reads each chunk).
    bdat = {"bdat": {"message": "xy", "chunks": [1, 1]}, "expect_chunk": 503, "expect": 503}
    steps += [{**bdat, "name": ".."}]
    steps += [{"send": "QUIT", "expect": 221}]
    # JSON is YAML: every name survives exactly (escapes included).
    text = json.dumps({"name": "names", "steps": steps}, ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    return path


def test_step_names_of_any_length_and_characters_give_writable_unique_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = scenario_with_names(tmp_path / "names.yaml", STEP_NAMES)
    status = main(["run", str(scenario), "--results", str(tmp_path / "results")])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    (run_dir,) = (tmp_path / "results").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [step["name"] for step in summary["steps"]][2:-1]
    assert rows == [*STEP_NAMES, "../chunk", ".."]  # kept whole there
    hgrms = sorted(run_dir.glob("step-*.hgrm"))
    assert len(hgrms) == len(summary["steps"])  # one each: none lost, none overwritten
    for path in hgrms:
        # Room to spare under NAME_MAX for a temporary file's prefix and suffix.
        assert len(path.name.encode()) <= NAME_MAX_BYTES - 100, path.name
        assert path.read_text().splitlines()[-1].startswith("#[Buckets")
    # latency.hlog's header names every step, cut and escaped: short ASCII lines.
    header = [
        line for line in (run_dir / "latency.hlog").read_text().splitlines() if line[0] == "#"
    ]
    assert len([line for line in header if line.startswith("#[Tag step-")]) == len(hgrms)
    assert all(line.isascii() and line.isprintable() and len(line) < 600 for line in header)
    # The terminal report stays a table: long names are cut there.
    assert max(len(line) for line in out.splitlines()) < 150


def test_safe_file_names_are_bounded_and_tell_long_names_apart() -> None:
    names = ["q" * n for n in (63, 64, 65, 300, 301)] + ["é" * 500, "p" * 99 + "1", "p" * 99 + "2"]
    safe = [safe_file_name(name) for name in names]
    assert all(len(part) <= MAX_FILE_NAME_PART for part in safe)
    assert len(set(safe)) == len(names)
    assert safe[0] == "q" * 63  # a short name is not touched
    assert safe_file_name("q" * 300) == safe[3]  # the same name, the same file


def test_reports_of_a_run_with_a_huge_step_name_stay_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The step fails (the sink answers NOOP with 250), so its name appears in the failure
    # transcripts, the replay lines, record's warning and the comparison too.
    name = "n" * LONG
    scenario = tmp_path / "huge-name.yaml"
    scenario.write_text(
        "steps:\n  - greeting: 220\n"
        f"  - send: NOOP\n    name: {name}\n    expect: 550\n"
        "  - send: QUIT\n    expect: 221\n"
    )
    results, baseline = tmp_path / "results", tmp_path / "baseline.json"
    commands = [
        ["run", str(scenario), "--results", str(results), "--sessions", "2"],
        ["replay", str(scenario)],
        ["record", str(scenario), "-o", str(baseline)],
        ["compare", str(scenario), "--baseline", str(baseline)],
    ]
    cut = "n" * 37 + "..."  # the README: at most 40 characters of a name, then ...
    for command in commands:
        main(command)
        out, err = capsys.readouterr()
        for line in (out + err).splitlines():
            assert len(line) < LINE_MAX, (command[0], line[:200])
        # Every command cuts a name the same way.
        assert cut in out + err, command[0]
        assert "n" * 38 not in out + err, command[0]
    (run_dir,) = results.iterdir()
    log = (run_dir / "failures.log").read_text()
    assert max(len(line) for line in log.splitlines()) < LINE_MAX


def long_scenario(kind: str) -> str:
    """A scenario whose one problem is a 200,000-character piece of text of this kind."""
    long = "z" * LONG
    step = "  - send: NOOP\n    expect: 250\n"
    return {
        # (a plain key has at most 1,024 characters in YAML; "? KEY" has no bound)
        "unknown-key": f"steps:\n  - greeting: 220\n    ? {long}\n    : 1\n",
        "duplicate-name": f"steps:\n  - send: A\n    name: {long}\n  - send: B\n    name: {long}\n",
        "read-as-number": f"steps:\n  - send: 0{'1' * LONG}\n",
        "reply-code": f"steps:\n  - send: NOOP\n    expect: {long}\n",
        "enhanced-code": f"steps:\n  - send: NOOP\n    expect: {{enhanced: '{long}'}}\n",
        "unknown-variable": f"steps:\n  - send: 'HELO {{{long}}}'\n",
        "variable-name": f"variables:\n  ? {long}-x\n  : 1\nsteps:\n{step}",
        "target-spaces": f"target: 'a {long}:25'\nsteps:\n{step}",
        "target-port": f"target: 'a:{'9' * LONG}'\nsteps:\n{step}",
        "yaml-tag": f"steps:\n  - send: !{long} x\n",
        "timeout-text": f"steps:\n  - send: NOOP\n    timeout: {long}\n",
        "capture-group": f"variables:\n  ? {long}\n  : 1\n"
        f"steps:\n  - send: NOOP\n    capture: '(?P<{long}>x)'\n",
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "unknown-key",
        "duplicate-name",
        "read-as-number",
        "reply-code",
        "enhanced-code",
        "unknown-variable",
        "variable-name",
        "target-spaces",
        "target-port",
        "yaml-tag",
        "timeout-text",
        "capture-group",
    ],
)
def test_a_scenario_error_shows_an_excerpt_of_huge_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    scenario = tmp_path / "long.yaml"
    scenario.write_text(long_scenario(kind))
    assert main(["validate", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{scenario}:")
    assert max(len(line) for line in err.splitlines()) < LINE_MAX, err[:500]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "quickstart", "--var", "v" * LONG],
        ["run", "quickstart", "--var", "x" * LONG + "=1"],
        ["run", "s" * LONG],
        ["run", "quickstart", "--sessions", "9" * 5000 + "x" * LONG],
        ["run", "quickstart", "--target", "h " + "h" * LONG],
        ["sink", "--listen", "h:" + "1" * LONG],
        ["run", "quickstart", "--max-reply-bytes", "x" * LONG],
        ["compare", "quickstart", "--baseline", "b.json", "--min-latency-delta", "x" * LONG],
    ],
    ids=[
        "var-form",
        "var-unknown",
        "scenario",
        "sessions",
        "target",
        "listen",
        "max-reply-bytes",
        "min-latency-delta",
    ],
)
def test_a_usage_error_shows_an_excerpt_of_a_huge_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    if args[0] == "run":
        args = [*args, "--results", str(tmp_path)]
    try:
        status = main(args)
    except SystemExit as exit:  # argparse's own usage errors
        status = int(exit.code or 0)
    assert status == 2
    err = capsys.readouterr().err
    assert MARK.search(err)
    assert max(len(line) for line in err.splitlines()) < LINE_MAX, err[:500]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "quickstart", "--json", "j" * 300 + ".json"],
        ["import", "tests/data/transcripts/seed-blog.txt", "-o", "o" * 300 + ".yaml"],
        ["replay", "r" * 300],
        ["validate", "v" * 300],
    ],
    ids=["run-json", "import-output", "replay", "validate"],
)
def test_a_file_name_too_long_for_the_system_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    # 300 bytes in one name: the kernel refuses even to look it up (ENAMETOOLONG).
    if args[0] == "run":
        args = [*args, "--results", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("smtpload: ")  # (import's notes come first)
    assert "Traceback" not in err


@pytest.mark.parametrize("kind", ["unfinished-reply", "note", "unanswered"])
def test_an_import_message_shows_an_excerpt_of_a_huge_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    long = "w" * LONG
    lines = {
        "unfinished-reply": ["220 mx.test ESMTP", "HELO a", "250-" + long, "QUIT", "221 bye"],
        "note": ["220 mx.test ESMTP", f"HELO a ←{long}", "250 ok", "QUIT", "221 bye"],
        "unanswered": ["220 mx.test ESMTP", f"HELO {long}"],
    }[kind]
    transcript = tmp_path / "long.txt"
    transcript.write_text("$ telnet mx.test 25\n" + "\n".join(lines) + "\n", encoding="utf-8")
    main(["import", str(transcript), "-o", str(tmp_path / "out.yaml")])
    err = capsys.readouterr().err
    assert MARK.search(err)
    assert max(len(line) for line in err.splitlines()) < LINE_MAX, err[:500]


def test_half_a_surrogate_pair_in_a_name_is_a_scenario_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # YAML's "\ud83d" escape makes half a character, which no file name or UTF-8 file can hold
    # (the run used to crash writing summary.json); the full "\U0001F642" is fine.
    scenario = tmp_path / "half.yaml"
    scenario.write_text(
        'steps:\n  - send: NOOP\n    name: "smile \\ud83d\\ude42"\n    expect: 250\n'
        '  - send: NOOP\n    name: "smile \\U0001F642"\n    expect: 250\n'
    )
    assert main(["run", str(scenario), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"{scenario}:3:11: name holds \\ud83d, half of a UTF-16 surrogate pair; write the"
        " character itself, or escape it whole, as in \\U0001F642\n"
    )
    assert not (tmp_path / "results").exists()


def test_a_host_name_label_over_63_characters_is_a_connect_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The IDNA codec refuses such a name before any lookup (it was a UnicodeError traceback);
    # like an unknown name, every session fails to connect and the run reports it.
    summary = tmp_path / "summary.json"
    host = "l" * 64 + ".test"
    args = ["run", "quickstart", "--target", f"{host}:25", "--sessions", "2"]
    assert main([*args, "--results", str(tmp_path), "--json", str(summary), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"smtpload: cannot resolve {host}: not a valid host name (label empty or too long)\n"
    )
    assert json.loads(summary.read_text())["sessions"]["failures"]["connect_error"] == 2


def test_a_host_name_over_253_characters_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = "a." * 127 + "b"  # 255 characters, every label short
    with pytest.raises(SystemExit):
        main(["run", "quickstart", "--target", host, "--results", str(tmp_path)])
    assert "a host name has at most 253 characters" in capsys.readouterr().err
    scenario = tmp_path / "far.yaml"
    scenario.write_text(f"target: '{host}:25'\nsteps:\n  - greeting: 220\n")
    assert main(["validate", str(scenario)]) == 2
    assert "a host name has at most 253 characters" in capsys.readouterr().err
