"""The tests run the ``smtpload`` command one way, ``tests/cli.py``, and it runs this checkout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.cli import ROOT, environment, smtpload

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
