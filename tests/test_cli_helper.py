"""The tests run the ``smtpload`` command one way, ``tests/cli.py``, and it runs this checkout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli import NO_ZYGOTE_ENV, ROOT, environment, smtpload

Completed = subprocess.CompletedProcess[str]

TESTS = Path(__file__).resolve().parent
# The command spelt out (the interpreter, then -m and smtpload), or a helper of its own.
_OWN_COMMAND = re.compile(r"""["']-m["']\s*,\s*["']smtpload["']|^def (?:_)?smtpload\(""", re.M)


def test_no_test_module_runs_the_command_but_through_the_helper() -> None:
    modules = sorted(TESTS.glob("*.py"))
    assert TESTS / "test_run.py" in modules
    offenders = [
        path.name
        for path in modules
        if path.name != "cli.py" and _OWN_COMMAND.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_helper_runs_this_checkouts_code(tmp_path: Path) -> None:
    where = subprocess.run(
        [sys.executable, "-c", "import smtpload; print(smtpload.__file__)"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(ROOT / "smtpload")
    result = smtpload("validate", "quickstart", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


# --- the zygote (tests/zygote.py): a forked command is the command a fresh interpreter runs --


def _fresh(monkeypatch: pytest.MonkeyPatch, *args: str, **options: Any) -> Completed:
    with monkeypatch.context() as patch:
        patch.setenv(NO_ZYGOTE_ENV, "1")
        return smtpload(*args, **options)


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "quickstart"],  # exit 0, stdout
        ["run", "quickstart", "--sessions", "0"],  # a usage error: exit 2, stderr
        ["validate", "missing.yaml"],
        ["--version"],
    ],
)
def test_a_forked_command_says_and_exits_as_a_fresh_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    forked = smtpload(*args, cwd=tmp_path)
    fresh = _fresh(monkeypatch, *args, cwd=tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )
    assert forked.args == fresh.args


def test_a_forked_command_gets_its_folder_environment_and_file_size_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative path finds the file only in the command's own folder, and the password only in
    # an environment that was set after the zygote started.
    (tmp_path / "here.yaml").write_text(
        "steps:\n  - greeting: 220\n  - send: EHLO client.test\n    expect: 250\n"
        "  - auth: {mechanism: PLAIN, username: u, password: {env: SMTPLOAD_HELPER_SECRET}}\n"
    )
    monkeypatch.delenv("SMTPLOAD_HELPER_SECRET", raising=False)
    unset = smtpload("validate", "here.yaml", cwd=tmp_path)
    assert unset.returncode == 2, unset
    assert "SMTPLOAD_HELPER_SECRET" in unset.stderr
    monkeypatch.setenv("SMTPLOAD_HELPER_SECRET", "s3cret")
    found = smtpload("validate", "here.yaml", cwd=tmp_path)
    assert found.returncode == 0, found
    # The results of a run do not fit in 1 kB: the limit makes a write fail.
    limited = smtpload("run", "quickstart", cwd=tmp_path, max_file_bytes=1024)
    fresh = _fresh(monkeypatch, "run", "quickstart", cwd=tmp_path, max_file_bytes=1024)
    assert limited.returncode == fresh.returncode != 0, (limited, fresh)
    assert smtpload("run", "quickstart", cwd=tmp_path).returncode == 0


def test_a_forked_command_past_its_timeout_is_killed_and_raises(tmp_path: Path) -> None:
    # The sink runs until it is stopped: the helper must kill it, not wait.
    with pytest.raises(subprocess.TimeoutExpired):
        smtpload("sink", "--listen", "127.0.0.1:0", cwd=tmp_path, timeout_s=5)
    assert smtpload("validate", "quickstart", cwd=tmp_path).returncode == 0  # still serving
