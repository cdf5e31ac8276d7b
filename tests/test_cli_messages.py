"""What the command line says when it refuses something: honest about what each command takes
(issue 8, item 9)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import smtpload
from smtpload.cli.main import _build_parser, main
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
    parser = _build_parser()
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
