"""What the command line says when it refuses something: honest about what each command takes
(issue 8, item 9)."""

from __future__ import annotations

import argparse
import re
import tokenize
from pathlib import Path

import pytest

import smtpload
from smtpload.cli.main import build_parser, main
from smtpload.errors import counted
from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.engine import Observation, SessionEngine
from smtpload.protocol.wire import ReplyParser
from smtpload.report.sidebyside import format_observation
from smtpload.scenario.model import Expectation, Scenario, Step, StepKind
from tests.cli import smtpload as smtpload_command

# -- a source that is not there --------------------------------------------------------------

#: Names of nothing: a transcript's, a scenario's, a bare name, one in a missing folder.
MISSING = ["nope.txt", "nope.yaml", "nope", "no-folder/nope.txt"]


@pytest.mark.parametrize("name", MISSING)
def test_replay_of_a_missing_file_says_it_takes_a_transcript_or_a_scenario(
    tmp_path: Path, name: str
) -> None:
    result = smtpload_command("replay", name, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"no such file {name!r}; give a transcript, a scenario file" in result.stderr
    assert "no scenario file" not in result.stderr
    assert "quickstart" in result.stderr  # the bundled names are still offered


def test_replay_of_a_folder_says_it_takes_a_transcript_or_a_scenario(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    result = smtpload_command("replay", "folder", cwd=tmp_path)
    assert result.returncode == 2
    assert "'folder' is a folder; give a transcript or a scenario file in it" in result.stderr


@pytest.mark.parametrize("name", MISSING)
def test_import_of_a_missing_file_says_no_such_file(tmp_path: Path, name: str) -> None:
    result = smtpload_command("import", name, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"smtpload: no such file {name!r}; give a transcript file\n" == result.stderr


def test_import_of_a_folder_says_it_is_one(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    result = smtpload_command("import", "folder", cwd=tmp_path)
    assert result.returncode == 2
    assert "'folder' is a folder; give a transcript file in it" in result.stderr


# -- an empty name ---------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "transcripts" / "seed-blog.txt"

#: What each command needs besides the argument under test: valid values, so that only the
#: empty one can be at fault.
_NEEDS: dict[str, list[str]] = {
    "run": ["quickstart"],
    "validate": ["quickstart"],
    "sink": [],
    "import": [str(SEED)],
    "replay": ["quickstart"],
    "record": ["quickstart", "-o", "new-baseline.json"],
    "compare": ["quickstart", "--baseline", "baseline.json"],
}


def _every_argument_with_a_value() -> list[tuple[str, str | None, str]]:
    """(command, option or None for a positional, its name) for every argument of every
    command that takes a value: the class of inputs an empty string can be given to."""
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for command, subparser in commands.choices.items():
        for action in subparser._actions:
            if action.nargs == 0 or isinstance(action, argparse._HelpAction):
                continue
            option = max(action.option_strings, key=len) if action.option_strings else None
            found.append((command, option, option or action.dest))
    return found


ARGUMENTS = _every_argument_with_a_value()


def test_every_command_is_covered() -> None:
    assert {command for command, _, _ in ARGUMENTS} == set(_NEEDS)
    # The path options the item names are among them.
    names = {(command, name) for command, _, name in ARGUMENTS}
    for path_option in [
        ("run", "--results"),
        ("run", "--json"),
        ("import", "--output"),
        ("record", "--output"),
        ("compare", "--baseline"),
        ("compare", "--junit"),
        ("compare", "--json"),
    ]:
        assert path_option in names


def _argv(command: str, option: str | None, name: str) -> list[str]:
    needs = list(_NEEDS[command])
    if option is None:  # a positional: the empty name takes the first positional's place
        return [command, "", *needs[1:]] if needs else [command, ""]
    if option in needs:  # a required option: the empty name replaces its value
        at = needs.index(option)
        needs[at + 1] = ""
        return [command, *needs]
    return [command, *needs, option, ""]


@pytest.fixture(scope="module")
def recorded_baseline(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A baseline of the quickstart, recorded against the built-in sink once for the module."""
    path = tmp_path_factory.mktemp("baseline") / "b.json"
    assert main(["record", "quickstart", "-o", str(path)]) == 0
    return path.read_bytes()


@pytest.mark.parametrize(
    ("command", "option", "name"), ARGUMENTS, ids=[f"{c}-{n}" for c, _, n in ARGUMENTS]
)
def test_an_empty_value_is_refused_as_a_usage_error_and_nothing_is_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    recorded_baseline: bytes,
    command: str,
    option: str | None,
    name: str,
) -> None:
    # --results '' meant the current folder: results/<run-id>/ went into ./<run-id>/.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "baseline.json").write_bytes(recorded_baseline)
    capsys.readouterr()
    status: int | str | None
    try:
        status = main(_argv(command, option, name))
    except SystemExit as stop:  # argparse's usage errors
        status = stop.code
    errors = capsys.readouterr().err
    assert status == 2, errors
    assert "Traceback" not in errors
    # The message points at the argument: argparse names it; the commands quote the name.
    assert f"argument {name}" in errors or (option or "''") in errors, errors
    # An empty name is no folder, even though Path("") is the current one.
    assert "is a folder" not in errors, errors
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]
    assert (tmp_path / "baseline.json").read_bytes() == recorded_baseline


def test_an_empty_results_folder_is_refused_by_the_api_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(smtpload.UsageError, match="results_dir='' is an empty name"):
        smtpload.run("quickstart", results_dir="")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_results_folder_is_said_to_be_empty(tmp_path: Path) -> None:
    result = smtpload_command("run", "quickstart", "--results", "", cwd=tmp_path)
    assert result.returncode == 2
    assert "argument --results: '' is an empty name; give a file or folder name" in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- import's options given to replay with a scenario ----------------------------------------


@pytest.mark.parametrize("scenario", ["s.yaml", "s.yml", "quickstart"])
@pytest.mark.parametrize(
    ("option", "value"), [("--strict", None), ("--format", "telnet"), ("--format", "cs")]
)
def test_replay_refuses_a_transcript_option_with_a_scenario(
    tmp_path: Path, scenario: str, option: str, value: str | None
) -> None:
    # --strict used to be ignored without a word: the replay passed, the texts unchecked.
    text = (ROOT / "scenarios" / "quickstart.yaml").read_text()
    for name in ("s.yaml", "s.yml"):
        (tmp_path / name).write_text(text)
    args = [option] if value is None else [option, value]
    result = smtpload_command("replay", scenario, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""  # no session ran
    assert (
        f"smtpload: {option} is for a transcript, and {scenario!r} is a scenario file: its"
        f" expect: says what is checked; remove {option}\n" == result.stderr
    )


def test_replay_takes_format_auto_with_a_scenario_and_strict_with_a_transcript(
    tmp_path: Path,
) -> None:
    scenario = smtpload_command("replay", "quickstart", "--format", "auto", cwd=tmp_path)
    assert scenario.returncode == 0, scenario.stderr
    transcript = tmp_path / "t.txt"
    transcript.write_text("S: 220 sink ESMTP\nC: QUIT\nS: 221 bye\n")
    strict = smtpload_command("replay", str(transcript), "--strict", cwd=tmp_path)
    # The built-in sink's words differ: --strict checked them, so the replay fails.
    assert strict.returncode == 1, strict.stderr
    assert "reply text does not match /^sink ESMTP$/" in strict.stdout


# -- counts in words -------------------------------------------------------------------------


def test_counted_says_one_thing_and_two_things() -> None:
    assert counted(1, "session") == "1 session"
    assert counted(2, "session") == "2 sessions"
    assert counted(0, "step") == "0 steps"
    assert counted(1, "latency", "latencies") == "1 latency"
    assert counted(2, "latency", "latencies") == "2 latencies"


ONE_STEP = "steps:\n  - greeting: 220\n"
TWO_STEPS = ONE_STEP + "  - send: QUIT\n    expect: 221\n"


@pytest.mark.parametrize(
    ("text", "said"), [(ONE_STEP, "ok (1 step)"), (TWO_STEPS, "ok (2 steps)")], ids=["1", "2"]
)
def test_validate_counts_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, said: str
) -> None:
    (tmp_path / "s.yaml").write_text(text)
    assert main(["validate", str(tmp_path / "s.yaml")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 's.yaml'}: {said}\n"


ONE_SESSION = "S: 220 mx.test ESMTP\nC: QUIT\nS: 221 bye\n"


@pytest.mark.parametrize(
    ("sessions", "said"), [(1, "has 1 session\n"), (2, "has 2 sessions\n")], ids=["1", "2"]
)
def test_import_counts_the_sessions_a_transcript_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sessions: int, said: str
) -> None:
    (tmp_path / "t.txt").write_text(ONE_SESSION * sessions)
    assert main(["import", str(tmp_path / "t.txt"), "--session", "3"]) == 2
    assert capsys.readouterr().err.endswith(f"--session 3: the transcript {said}")


@pytest.mark.parametrize(
    ("count", "sessions", "steps"),
    [(1, "1 session", "1 step"), (2, "2 sessions", "2 steps")],
    ids=["1", "2"],
)
def test_record_and_compare_count_sessions_and_steps(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    count: int,
    sessions: str,
    steps: str,
) -> None:
    # "(1 sessions)" in compare's first line was the report of this.
    scenario = tmp_path / "s.yaml"
    scenario.write_text(ONE_STEP if count == 1 else TWO_STEPS)
    baseline = str(tmp_path / "b.json")
    n = str(count)
    assert main(["record", str(scenario), "-o", baseline, "--sessions", n]) == 0
    assert capsys.readouterr().out.startswith(f"recorded {sessions}, {steps}, against ")
    assert main(["compare", str(scenario), "--baseline", baseline, "--sessions", n]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"({sessions}) vs now" in lines[0]
    assert lines[0].endswith(f"({sessions})")
    assert lines[-1] == f"no differences in {steps}"


@pytest.mark.parametrize(
    ("raw", "more"),
    [(b"550-a\r\n550 b\r\n", "(+1 line)"), (b"550-a\r\n550-b\r\n550 c\r\n", "(+2 lines)")],
    ids=["1", "2"],
)
def test_a_multiline_reply_is_counted_in_words(raw: bytes, more: str) -> None:
    greeting = Step(StepKind.GREETING, "greeting", expect=Expectation(frozenset({220}), "220"))
    compiled = compile_scenario(
        Scenario(path="s.yaml", name="s", description="", target=None, timeout_s=None,
                 variables=(), steps=(greeting,))
    )  # fmt: skip
    seen: list[Observation] = []
    engine = SessionEngine(compiled, 1, watcher=seen.append)
    step = engine.next_step()
    assert step is not None
    engine.payload(step)
    (parsed,) = ReplyParser().feed(raw)
    assert not engine.on_reply(step, parsed)
    failure = engine.failure()
    assert failure is not None
    assert failure.got == f"550 a {more} (reply code 550 is not 220)"  # failures.log, table
    assert f"got 550 a {more}" in format_observation(seen[0])  # replay


def test_no_message_says_how_many_with_s_in_brackets() -> None:
    # "session(s)" was the way around the plural; counted() is the way now.
    lazy: list[str] = []
    for path in sorted((ROOT / "smtpload").rglob("*.py")):
        with path.open("rb") as source:
            lazy.extend(
                f"{path.relative_to(ROOT)}:{token.start[0]}"
                for token in tokenize.tokenize(source.readline)
                if token.type == tokenize.STRING and re.search(r"[a-z]\(s\)", token.string)
            )
    assert lazy == []
