"""The package's architecture: import-linter's contracts hold, and each kind of contract fails
when its rule is broken; the sans-IO modules import without trio; the public API is pinned.

The contracts live in pyproject.toml (``[tool.importlinter]``). A contract that cannot fail
protects nothing, so each test below copies the package to a temporary folder, breaks one rule
there with a single added import, and expects ``lint-imports`` to exit 1 naming that contract.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import smtpload

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "smtpload"

# Runs import-linter's command in a fresh interpreter (the console script may have no shim yet
# under pyenv, see .ci/run).
_LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command;"
    " sys.exit(lint_imports_command(['--no-cache']))"
)


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _LINT_IMPORTS],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_tree(destination: Path) -> Path:
    shutil.copytree(PACKAGE, destination / "smtpload", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def _add_import(module_file: Path, statement: str) -> None:
    """Add ``statement`` after the module's ``from __future__`` line (where imports go)."""
    text = module_file.read_text(encoding="utf-8")
    future = "from __future__ import annotations\n"
    assert future in text, module_file
    module_file.write_text(text.replace(future, future + statement + "\n", 1), encoding="utf-8")


def test_contracts_hold_for_the_package_as_it_is(tmp_path: Path) -> None:
    result = _lint_imports(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


SANS_IO = "The sans-IO packages import no trio, socket or ssl"
LAYERS = "Layers point down, from api to scenario"

BREAKAGES = [
    # (module, added import, the contract that must break)
    ("protocol/wire.py", "import trio", SANS_IO),
    ("scenario/template.py", "import socket", SANS_IO),
    # Indirect: transcripts reaching trio through net.
    (
        "transcripts/importer.py",
        "import smtpload.net.sink",
        SANS_IO,
    ),
    (
        "protocol/compiler.py",
        "import smtpload.net.runner",
        "Layers point down, from api to scenario",
    ),
    (
        "regression/compare.py",
        "import smtpload.cli.main",
        "Layers point down, from api to scenario",
    ),
    (
        "transcripts/reader.py",
        "import smtpload.regression.observe",
        "Layers point down, from api to scenario",
    ),
    ("errors.py", "import smtpload.scenario.model", LAYERS),
    ("regression/baseline.py", "import trio", "Only net, cli and api import trio"),
    ("protocol/engine.py", "import yaml", "Only scenario imports yaml"),
    ("report/results.py", "import hdrh.histogram", "Only report.stats imports hdrh"),
    ("protocol/expectations.py", "import re2", "Only scenario.patterns imports re2"),
    ("cli/main.py", "import smtpload.api", "Only smtpload/__init__.py imports the API module"),
    (
        "report/results.py",
        "from smtpload import __version__ as _v",
        "No module imports the smtpload package itself",
    ),
]


@pytest.mark.parametrize(
    ("module", "statement", "contract"), BREAKAGES, ids=[f"{m}:{s}" for m, s, _ in BREAKAGES]
)
def test_each_contract_fails_when_broken(
    tmp_path: Path, module: str, statement: str, contract: str
) -> None:
    tree = _copy_tree(tmp_path)
    _add_import(tree / "smtpload" / module, statement)
    result = _lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout


def _run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    "module",
    [
        "smtpload",
        "smtpload.protocol.wire",
        "smtpload.protocol.engine",
        "smtpload.scenario.loader",
        "smtpload.report.results",
        "smtpload.transcripts.importer",
    ],
)
def test_sans_io_modules_import_without_trio(module: str) -> None:
    # (socket may be there: the standard library's email.utils imports it.)
    assert _run_python(f"import sys, {module}; print('trio' in sys.modules)") == "False"


def test_the_api_is_imported_on_first_use_only() -> None:
    code = (
        "import sys, smtpload; before = 'smtpload.api' in sys.modules; smtpload.run;"
        " print(before, 'smtpload.api' in sys.modules, 'trio' in sys.modules)"
    )
    assert _run_python(code) == "False True True"


def test_public_api_is_pinned() -> None:
    assert smtpload.__all__ == [
        "LocalError",
        "OutputError",
        "Problem",
        "RemoteProtocolError",
        "ResultsError",
        "RunResult",
        "Scenario",
        "ScenarioError",
        "SmtploadError",
        "UsageError",
        "__version__",
        "arun",
        "load_scenario",
        "read_summary",
        "run",
    ]
    for name in smtpload.__all__:
        assert getattr(smtpload, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        getattr(smtpload, "nothing_here")  # noqa: B009 (the lazy __getattr__ is the subject)


def test_no_module_imports_the_package_itself_and_imports_are_absolute() -> None:
    # The last contract's rule, read from the source, plus the house rule that imports are
    # absolute (a relative `from .. import x` hides which package it reaches).
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == "smtpload"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Import) and any(a.name == "smtpload" for a in node.names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
