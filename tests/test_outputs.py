"""Every output of the command line, checked before the run and written so that nothing of the
user's is lost: ``run --json/--results``, ``record -o``, ``compare --junit/--json/
--update-baseline``, ``import -o``. Real files, real servers (the built-in sink, aiosmtpd).

Most tests call ``main()`` in-process (fast); the ones about a write failing at the end run the
real process under a file size limit (RLIMIT_FSIZE), which makes a write fail with EFBIG for
root too.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smtpload.cli.main import main
from tests.cli import smtpload
from tests.peers import RecordingPeer
from tests.unwritable import immutable

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
SEED = Path(__file__).resolve().parent / "data" / "transcripts" / "seed-blog.txt"
USER_TEXT = "my own notes, not smtpload's\n"


@pytest.fixture(scope="module")
def recorded_baseline(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A baseline of the quickstart, recorded against the built-in sink once for the module."""
    path = tmp_path_factory.mktemp("baseline") / "b.json"
    assert main(["record", str(QUICKSTART), "-o", str(path)]) == 0
    return path.read_bytes()


@pytest.fixture
def work(tmp_path: Path, recorded_baseline: bytes) -> Path:
    """A folder with a scenario, a transcript and a baseline."""
    (tmp_path / "s.yaml").write_bytes(QUICKSTART.read_bytes())
    (tmp_path / "t.txt").write_bytes(SEED.read_bytes())
    (tmp_path / "b.json").write_bytes(recorded_baseline)
    return tmp_path


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses every connection: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def target(peer: RecordingPeer) -> str:
    return f"{peer.host}:{peer.port}"


def temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


# --- 13: an input under another name is never overwritten -----------------------------------


ALIASES: dict[str, Callable[[Path, Path], None]] = {
    "hard-link": lambda original, alias: os.link(original, alias),
    "symlink": lambda original, alias: alias.symlink_to(original),
}

# (command, the input it reads, the output option) for every output that could hit an input.
AIMED_AT_INPUTS = [
    (["run", "s.yaml", "--json", "{alias}"], "s.yaml"),
    (["record", "s.yaml", "-o", "{alias}"], "s.yaml"),
    (["compare", "s.yaml", "--baseline", "b.json", "--junit", "{alias}"], "s.yaml"),
    (["compare", "s.yaml", "--baseline", "b.json", "--json", "{alias}"], "b.json"),
    (["import", "t.txt", "-o", "{alias}"], "t.txt"),
]


@pytest.mark.parametrize("alias_kind", ALIASES, ids=str)
@pytest.mark.parametrize(
    ("command", "original"), AIMED_AT_INPUTS, ids=[c[0] + "-" + c[-2] for c, _ in AIMED_AT_INPUTS]
)
def test_an_output_that_is_an_input_by_another_name_is_refused_even_with_force(
    work: Path,
    capsys: pytest.CaptureFixture[str],
    alias_kind: str,
    command: list[str],
    original: str,
) -> None:
    alias = work / "alias.out"
    ALIASES[alias_kind](work / original, alias)
    before = (work / original).read_bytes()
    args = [str(work / a) if "." in a else a for a in command]
    args = [str(alias) if a.endswith("{alias}") else a for a in args]
    capsys.readouterr()
    assert main([*args, "--force"]) == 2
    assert "would overwrite an input or another output" in capsys.readouterr().err
    assert (work / original).read_bytes() == before


def test_two_outputs_that_are_one_file_are_refused(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "report.xml").write_text(USER_TEXT)
    os.link(work / "report.xml", work / "also.json")
    args = ["compare", str(work / "s.yaml"), "--baseline", str(work / "b.json")]
    assert main([*args, "--junit", str(work / "report.xml"), "--json", str(work / "also.json"),
                 "--force"]) == 2  # fmt: skip
    assert "also.json: would overwrite an input or another output" in capsys.readouterr().err
    assert (work / "report.xml").read_text() == USER_TEXT


# --- 13: the user's files need --force; smtpload's own reports are replaced ------------------

# (command, output option): outputs that replace only smtpload's own reports without --force.
REPORT_OUTPUTS = [
    ["run", "s.yaml", "--quiet", "--json"],
    ["compare", "s.yaml", "--baseline", "b.json", "--junit"],
    ["compare", "s.yaml", "--baseline", "b.json", "--json"],
]
# Outputs where any existing file is the user's (a baseline, a scenario).
USER_DATA_OUTPUTS = [["record", "s.yaml", "-o"], ["import", "t.txt", "-o"]]

USER_FILES = {
    "notes": USER_TEXT,
    "scenario": QUICKSTART.read_text(),
    "foreign-junit": '<?xml version="1.0"?>\n<testsuites name="pytest"></testsuites>\n',
}


def command_line(work: Path, command: list[str], output: Path) -> list[str]:
    """``command`` with its files in ``work``, writing ``output`` (and run's folder there)."""
    args = [str(work / a) if a.endswith((".yaml", ".json", ".txt")) else a for a in command]
    if command[0] == "run":
        args = [*args[:-1], "--results", str(work / "results"), args[-1]]
    return [*args, str(output)]


@pytest.mark.parametrize(
    ("command", "user_file"),
    [
        (REPORT_OUTPUTS[0], "notes"),
        (REPORT_OUTPUTS[0], "scenario"),
        (REPORT_OUTPUTS[1], "foreign-junit"),
        (REPORT_OUTPUTS[2], "notes"),
        (USER_DATA_OUTPUTS[0], "notes"),
        (USER_DATA_OUTPUTS[1], "scenario"),
    ],
    ids=lambda v: v if isinstance(v, str) else f"{v[0]}-{v[-1]}",
)
def test_a_users_file_is_refused_without_force_and_replaced_with_it(
    work: Path, capsys: pytest.CaptureFixture[str], command: list[str], user_file: str
) -> None:
    mine = work / "mine.out"
    mine.write_text(USER_FILES[user_file])
    args = command_line(work, command, mine)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{mine}: " in err
    assert "give --force to replace it" in err
    assert mine.read_text() == USER_FILES[user_file]
    assert main([*args, "--force"]) in (0, 1)
    assert mine.read_text() != USER_FILES[user_file]


def test_record_refuses_an_existing_baseline_without_force(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = (work / "b.json").read_text()
    capsys.readouterr()
    assert main(["record", str(work / "s.yaml"), "-o", str(work / "b.json")]) == 2
    assert "b.json: already exists; give --force" in capsys.readouterr().err
    assert (work / "b.json").read_text() == baseline
    assert main(["record", str(work / "s.yaml"), "-o", str(work / "b.json"), "--force"]) == 0


def test_a_baseline_is_never_taken_for_a_report(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "other.json").write_bytes((work / "b.json").read_bytes())
    assert main(["run", str(work / "s.yaml"), "--quiet", "--json", str(work / "other.json")]) == 2
    assert "is not a report smtpload wrote" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("first", "then"),
    [
        (REPORT_OUTPUTS[0], REPORT_OUTPUTS[0]),  # a CI job running the same command again
        (REPORT_OUTPUTS[1], REPORT_OUTPUTS[1]),
        (REPORT_OUTPUTS[2], REPORT_OUTPUTS[2]),
        (REPORT_OUTPUTS[1], REPORT_OUTPUTS[0]),  # any of smtpload's reports, by any command
        (REPORT_OUTPUTS[2], REPORT_OUTPUTS[1]),
        (REPORT_OUTPUTS[0], REPORT_OUTPUTS[2]),
    ],
    ids=lambda c: f"{c[0]}-{c[-1]}",
)
def test_a_report_smtpload_wrote_is_replaced_without_force(
    work: Path, first: list[str], then: list[str]
) -> None:
    report = work / "report.out"
    assert main(command_line(work, first, report)) == 0
    written = report.read_bytes()
    assert main(command_line(work, then, report)) == 0
    # A run's summary differs from any earlier report (its run id); compare's reports differ
    # from one another, and from themselves only in nothing.
    if then[0] == "run" or first != then:
        assert report.read_bytes() != written


# --- 14: an output that cannot be written fails before the first session --------------------

# Every output option, aimed at aiosmtpd, so that a session that ran would deliver a message.
EVERY_OUTPUT = [
    ["run", "s.yaml", "--quiet", "--json"],
    ["run", "s.yaml", "--quiet", "--results"],
    ["record", "s.yaml", "-o"],
    ["compare", "s.yaml", "--baseline", "b.json", "--junit"],
    ["compare", "s.yaml", "--baseline", "b.json", "--json"],
]


def refused_before_any_session(
    work: Path, peer: RecordingPeer, capsys: pytest.CaptureFixture[str], command: list[str],
    output: Path,
) -> str:  # fmt: skip
    args = [str(work / a) if a.endswith((".yaml", ".json")) else a for a in command]
    capsys.readouterr()
    status = main([*args, str(output), "--target", target(peer)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert peer.handler.messages == []
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("command", EVERY_OUTPUT, ids=lambda c: f"{c[0]}-{c[-1]}")
@pytest.mark.parametrize(
    "where", ["a-file/out.json", "a-file/deeper/out.json"], ids=["under-a-file", "deeper"]
)
def test_an_output_under_a_file_fails_before_any_session(
    work: Path,
    aiosmtpd_server: RecordingPeer,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    where: str,
) -> None:
    (work / "a-file").write_text(USER_TEXT)
    err = refused_before_any_session(work, aiosmtpd_server, capsys, command, work / where)
    assert "a-file" in err
    assert (work / "a-file").read_text() == USER_TEXT


@pytest.mark.parametrize("command", EVERY_OUTPUT, ids=lambda c: f"{c[0]}-{c[-1]}")
@pytest.mark.parametrize("where", ["ro/out.json", "ro/missing/out.json"], ids=["in", "below"])
def test_an_output_in_an_immutable_folder_fails_before_any_session(
    work: Path,
    aiosmtpd_server: RecordingPeer,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    where: str,
) -> None:
    (work / "ro").mkdir()
    with immutable(work / "ro"):
        err = refused_before_any_session(work, aiosmtpd_server, capsys, command, work / where)
    assert "Operation not permitted" in err
    assert list((work / "ro").iterdir()) == []


def test_an_immutable_existing_output_fails_before_any_session(
    work: Path, aiosmtpd_server: RecordingPeer, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = work / "summary.json"
    assert main(["run", str(work / "s.yaml"), "--quiet", "--json", str(summary),
                 "--results", str(work / "results")]) == 0  # fmt: skip
    with immutable(summary):
        command = ["run", "s.yaml", "--quiet", "--json"]
        err = refused_before_any_session(work, aiosmtpd_server, capsys, command, summary)
    assert f"{summary}: cannot be written there" in err


def test_update_baseline_in_an_immutable_folder_fails_before_any_session(
    work: Path, aiosmtpd_server: RecordingPeer, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "kept").mkdir()
    (work / "kept" / "b.json").write_bytes((work / "b.json").read_bytes())
    with immutable(work / "kept"):
        command = ["compare", "s.yaml", "--update-baseline", "--baseline"]
        err = refused_before_any_session(
            work, aiosmtpd_server, capsys, command, work / "kept" / "b.json"
        )
    assert "b.json: cannot be written there" in err


def test_a_missing_folder_is_made_only_when_the_output_is_written(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = work / "new" / "report.xml"
    compare = ["compare", str(work / "s.yaml"), "--baseline", str(work / "b.json")]
    # Refused for another reason (the JSON would be the baseline): no folder made for JUnit.
    assert main([*compare, "--junit", str(report), "--json", str(work / "b.json")]) == 2
    assert not (work / "new").exists()
    assert main([*compare, "--junit", str(report)]) == 0
    assert report.read_text().startswith("<?xml")


# --- 14: a write that fails at the end leaves the old file, and says which ------------------


def test_a_run_whose_outputs_cannot_be_written_keeps_the_old_ones_and_still_reports(
    work: Path,
) -> None:
    first = smtpload("run", "s.yaml", "--quiet", "--json", "summary.json", cwd=work)
    assert first.returncode == 0, first.stderr
    old = (work / "summary.json").read_bytes()
    # 1 KiB per file: the .hgrm files fit, summary.json (~3 KiB) does not.
    result = smtpload("run", "s.yaml", "--json", "summary.json", cwd=work, max_file_bytes=1024)
    assert result.returncode == 2
    assert "sessions: 1 started, 1 passed, 0 failed" in result.stdout  # the table, still
    lines = result.stderr.splitlines()
    assert any(line.endswith("/summary.json: File too large") for line in lines), lines
    assert "smtpload: cannot write summary.json: File too large" in lines
    assert (work / "summary.json").read_bytes() == old
    assert temporary_files(work) == []


@pytest.mark.parametrize(
    "command",
    [
        ["record", "s.yaml", "--force", "-o", "b.json"],
        ["compare", "s.yaml", "--baseline", "b.json", "--json", "diff.json"],
        ["compare", "s.yaml", "--baseline", "b.json", "--update-baseline"],
    ],
    ids=["record", "compare-json", "update-baseline"],
)
def test_a_baseline_or_comparison_that_cannot_be_written_keeps_the_old_file(
    work: Path, command: list[str]
) -> None:
    (work / "diff.json").write_text(json.dumps({"baseline": {}, "current": {}, "regressions": 0,
                                                "warnings": 0, "exit_status": 0}))  # fmt: skip
    old = {name: (work / name).read_bytes() for name in ("b.json", "diff.json")}
    result = smtpload(*command, cwd=work, max_file_bytes=100)
    assert result.returncode == 2, result.stderr
    written = "diff.json" if "--json" in command else "b.json"
    assert f"smtpload: cannot write {written}: File too large" in result.stderr
    assert {name: (work / name).read_bytes() for name in old} == old
    assert temporary_files(work) == []


# --- 15: import checks every output name before it writes any -------------------------------


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ("transcript", "would overwrite an input"),  # import t-2.yaml -o t.yaml
        ("hard-link-to-transcript", "would overwrite an input"),
        ("users-file", "already exists; give --force"),
        ("folder", "is a folder"),
    ],
    ids=str,
)
def test_import_checks_every_output_before_writing_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], second: str, message: str
) -> None:
    # The seed has two sessions: t.yaml and t-2.yaml.
    transcript = tmp_path / "t-2.yaml" if second == "transcript" else tmp_path / "seed.txt"
    transcript.write_bytes(SEED.read_bytes())
    if second == "hard-link-to-transcript":
        os.link(transcript, tmp_path / "t-2.yaml")
    elif second == "users-file":
        (tmp_path / "t-2.yaml").write_text(USER_TEXT)
    elif second == "folder":
        (tmp_path / "t-2.yaml").mkdir()
    capsys.readouterr()
    assert main(["import", str(transcript), "-o", str(tmp_path / "t.yaml")]) == 2
    assert f"t-2.yaml: {message}" in capsys.readouterr().err
    assert not (tmp_path / "t.yaml").exists()
    assert transcript.read_bytes() == SEED.read_bytes()


# --- 16: no baseline of a server that was never reached --------------------------------------


@pytest.mark.parametrize("unreachable", ["refused", "unresolvable"], ids=str)
def test_record_saves_no_baseline_when_no_session_reached_the_greeting(
    work: Path, refused_port: int, capsys: pytest.CaptureFixture[str], unreachable: str
) -> None:
    where = f"127.0.0.1:{refused_port}" if unreachable == "refused" else "host.invalid:25"
    old = (work / "b.json").read_bytes()
    for output in ("new.json", "b.json"):  # a new baseline, and one it would replace
        capsys.readouterr()
        status = main(["record", str(work / "s.yaml"), "--target", where, "--sessions", "3",
                       "-o", str(work / output), "--force"])  # fmt: skip
        err = capsys.readouterr().err
        assert status == 1
        assert "no session reached the greeting: all 3 failed to connect" in err
        assert "no baseline written" in err
    assert not (work / "new.json").exists()
    assert (work / "b.json").read_bytes() == old


def test_update_baseline_keeps_the_baseline_when_no_session_reached_the_greeting(
    work: Path, refused_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    old = (work / "b.json").read_bytes()
    status = main(["compare", str(work / "s.yaml"), "--baseline", str(work / "b.json"),
                   "--target", f"127.0.0.1:{refused_port}", "--update-baseline"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1  # the connect errors are regressions against the baseline
    assert "no session reached the greeting: all 1 failed to connect" in err
    assert "the baseline is not updated" in err
    assert (work / "b.json").read_bytes() == old
