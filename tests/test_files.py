"""smtpload.report.files on real files: probing, replacing whole, recognising smtpload's reports."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from smtpload.errors import OutputError
from smtpload.regression.compare import comparison_summary
from smtpload.regression.junit import junit_xml
from smtpload.report.files import (
    JUNIT_SUITE_PREFIX,
    MAX_REPORT_BYTES,
    is_smtpload_report,
    probe_output,
    replacing,
    write_text,
)
from smtpload.report.results import build_summary
from smtpload.report.stats import RunStats
from tests.test_baseline import answers, behaviour_of
from tests.test_junit import upgrade
from tests.unwritable import immutable

OLD = "the old content, which must survive\n" * 100


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def snapshot(path: Path) -> tuple[bytes, int, int, int]:
    found = path.stat()
    return path.read_bytes(), found.st_ino, found.st_mtime_ns, stat.S_IMODE(found.st_mode)


# --- replacing a file whole ---------------------------------------------------------------------


def test_write_text_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text(OLD)
    write_text(path, "new\n")
    assert path.read_text() == "new\n"
    assert listing(tmp_path) == ["out.json"]


def write_half_then(path: Path, error: BaseException) -> None:
    """Start replacing ``path``, then fail in the middle of the write with ``error``."""
    with replacing(path) as stream:
        stream.write(b"half of the new fi")
        stream.flush()
        raise error


def test_an_interrupted_write_leaves_the_old_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text(OLD)
    with pytest.raises(KeyboardInterrupt):
        write_half_then(path, KeyboardInterrupt())  # Ctrl-C in the middle of the write
    assert path.read_text() == OLD
    assert listing(tmp_path) == ["out.json"]


def test_a_failed_write_names_the_destination_not_the_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text(OLD)
    with pytest.raises(OutputError) as caught:
        write_half_then(path, OSError(28, "No space left on device"))
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    assert path.read_text() == OLD
    assert listing(tmp_path) == ["out.json"]


def test_a_new_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_mode(tmp_path: Path) -> None:
    new = tmp_path / "new.json"
    old_umask = os.umask(0o022)
    try:
        write_text(new, "{}\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644  # as open() makes it; mkstemp's is 0o600
    kept = tmp_path / "kept.json"
    kept.write_text(OLD)
    kept.chmod(0o640)
    write_text(kept, "{}\n")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_a_symlink_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text(OLD)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text(link, "new\n")
    assert link.is_symlink()
    assert real.read_text() == "new\n"


def test_the_folders_are_made_when_the_file_is_written(tmp_path: Path) -> None:
    write_text(tmp_path / "a" / "b" / "out.json", "{}\n")
    assert (tmp_path / "a" / "b" / "out.json").read_text() == "{}\n"


def test_a_name_as_long_as_the_file_system_allows_still_gets_a_temporary_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / ("x" * 250 + ".json")  # 255 bytes: the ext4 limit for one name
    probe_output(path)
    write_text(path, "{}\n")
    assert listing(tmp_path) == [path.name]


def test_a_device_is_written_directly_never_replaced(tmp_path: Path) -> None:
    # As root, renaming a temporary file over /dev/null would replace the device itself.
    probe_output(Path("/dev/null"))
    write_text(Path("/dev/null"), "discarded\n")
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)


# --- probing without touching -------------------------------------------------------------------


def test_probing_an_existing_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text(OLD)
    before = snapshot(path)
    probe_output(path)
    assert snapshot(path) == before
    assert listing(tmp_path) == ["out.json"]


def test_probing_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    probe_output(tmp_path / "not" / "yet" / "out.json")
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("a-file/out.json", "a-file is not a folder"),
        ("a-file/deeper/out.json", "a-file is not a folder"),
        ("folder", "folder: is a folder; give a file name"),
    ],
    ids=["under-a-file", "deeper-under-a-file", "a-folder"],
)
def test_a_place_that_cannot_hold_the_file_is_refused(
    tmp_path: Path, where: str, message: str
) -> None:
    (tmp_path / "a-file").write_text("a file, not a folder\n")
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputError, match=message):
        probe_output(tmp_path / where)
    assert listing(tmp_path) == ["a-file", "folder"]


@pytest.mark.parametrize(
    "where", ["ro/out.json", "ro/missing/out.json", "ro/existing.json"], ids=str
)
def test_an_immutable_place_is_refused_even_for_root(tmp_path: Path, where: str) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "existing.json").write_text(OLD)
    with immutable(folder), pytest.raises(OutputError, match="cannot be written there"):
        probe_output(tmp_path / where)
    assert listing(folder) == ["existing.json"]


def test_an_immutable_file_in_a_writable_folder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "existing.json"
    path.write_text(OLD)
    with immutable(path), pytest.raises(OutputError, match="Operation not permitted"):
        probe_output(path)
    assert path.read_text() == OLD


# --- recognising smtpload's own reports ---------------------------------------------------------


def summary_text() -> str:
    stats = RunStats(["connect"])
    summary = build_summary(
        scenario="s", target="h:25", run_id="r", duration_s=1.0, stats=stats, interrupted=False
    )
    return json.dumps(summary, indent=2)


OURS: dict[str, Callable[[], str]] = {
    "summary": summary_text,
    "comparison-json": lambda: json.dumps(comparison_summary(upgrade()), indent=2),
    "junit": lambda: junit_xml(upgrade(), suite_name=f"{JUNIT_SUITE_PREFIX}upgrade"),
}

NOT_OURS: dict[str, Callable[[], str]] = {
    "baseline": lambda: json.dumps(behaviour_of([answers()]).to_json()),
    "scenario": lambda: "name: s\nsteps:\n  - greeting: 220\n",
    "other-json": lambda: '{"name": "mine"}',
    "json-array": lambda: '[{"smtpload_version": "0.1.0"}]',
    "other-junit": lambda: (
        '<?xml version="1.0"?>\n<testsuites name="pytest"><testsuite/></testsuites>\n'
    ),
    "junit-named-like-a-scenario": lambda: junit_xml(upgrade(), suite_name="upgrade"),
    "broken-xml": lambda: "<testsuites name='smtpload compare x'",
    "empty": lambda: "",
    "not-utf8": lambda: "\udcff",
}


@pytest.mark.parametrize("kind", OURS, ids=str)
def test_reports_that_smtpload_writes_are_recognised(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "report"
    path.write_text(OURS[kind]())
    assert is_smtpload_report(path)


@pytest.mark.parametrize("kind", NOT_OURS, ids=str)
def test_anything_else_is_the_users(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "file"
    path.write_bytes(NOT_OURS[kind]().encode("utf-8", "surrogateescape"))
    assert not is_smtpload_report(path)


def test_a_report_too_large_to_read_is_not_recognised(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    text = summary_text()
    path.write_text(text[:-1] + " " * (MAX_REPORT_BYTES - len(text) + 1) + "}")
    assert path.stat().st_size == MAX_REPORT_BYTES + 1
    assert not is_smtpload_report(path)
    assert not is_smtpload_report(tmp_path / "missing.json")
