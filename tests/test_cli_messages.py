"""What the command line says when it refuses something: honest about what each command takes
(issue 8, item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import smtpload

# -- a source that is not there --------------------------------------------------------------

#: Names of nothing: a transcript's, a scenario's, a bare name, one in a missing folder.
MISSING = ["nope.txt", "nope.yaml", "nope", "no-folder/nope.txt"]


@pytest.mark.parametrize("name", MISSING)
def test_replay_of_a_missing_file_says_it_takes_a_transcript_or_a_scenario(
    tmp_path: Path, name: str
) -> None:
    result = smtpload("replay", name, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"no such file {name!r}; give a transcript, a scenario file" in result.stderr
    assert "no scenario file" not in result.stderr
    assert "quickstart" in result.stderr  # the bundled names are still offered


def test_replay_of_a_folder_says_it_takes_a_transcript_or_a_scenario(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    result = smtpload("replay", "folder", cwd=tmp_path)
    assert result.returncode == 2
    assert "'folder' is a folder; give a transcript or a scenario file in it" in result.stderr


@pytest.mark.parametrize("name", MISSING)
def test_import_of_a_missing_file_says_no_such_file(tmp_path: Path, name: str) -> None:
    result = smtpload("import", name, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"smtpload: no such file {name!r}; give a transcript file\n" == result.stderr


def test_import_of_a_folder_says_it_is_one(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    result = smtpload("import", "folder", cwd=tmp_path)
    assert result.returncode == 2
    assert "'folder' is a folder; give a transcript file in it" in result.stderr
