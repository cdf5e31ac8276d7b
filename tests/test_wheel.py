"""A wheel of the package, installed on its own, runs the bundled quickstart from any folder.

The layout moved modules into subpackages; what reads paths (the bundled scenarios' lookup, the
console script, the wheel's force-include of scenarios/) must follow. This builds the real wheel,
installs it into a folder of its own and runs it from an unrelated working directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli import ROOT, environment, smtpload


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "-q", *args],
        check=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_ROOT_USER_ACTION": "ignore"},
    )


def test_wheel_runs_quickstart_from_any_folder(tmp_path: Path) -> None:
    _pip("wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT))
    (wheel,) = (tmp_path / "dist").glob("smtpload-*.whl")
    installed = tmp_path / "site"
    _pip("install", "--no-deps", "--target", str(installed), str(wheel))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [sys.executable, "-c", "import smtpload; print(smtpload.__file__)"],
        cwd=elsewhere,
        env=environment(installed),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed)

    run = smtpload(
        "run", "quickstart", "--quiet", "--json", "s.json", cwd=elsewhere, pythonpath=installed
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads((elsewhere / "s.json").read_text())
    assert summary["scenario"] == "quickstart"
    assert summary["sessions"]["passed"] == 1

    (entry_points,) = installed.glob("smtpload-*.dist-info/entry_points.txt")
    assert "smtpload = smtpload.cli.entry:entry_point" in entry_points.read_text()
