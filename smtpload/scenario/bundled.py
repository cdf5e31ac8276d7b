"""Finding scenarios by name: a path, or one of the examples installed with the package.

The examples live in the repository's top-level ``scenarios/`` folder. A wheel installs them as
``smtpload/scenarios/`` (pyproject's force-include); an editable install leaves them where they
are, one folder above the package. Both places are looked at, in that order.
"""

from __future__ import annotations

from pathlib import Path

from smtpload.errors import UsageError, closest, shown

__all__ = [
    "bundled_scenario_dir",
    "bundled_scenario_names",
    "find_scenario",
    "is_dir",
    "is_file",
    "scenario_path",
]

# This module is smtpload/scenario/bundled.py: the package folder is two levels up.
_PACKAGE = Path(__file__).resolve().parent.parent


def bundled_scenario_dir() -> Path | None:
    """The folder of the bundled example scenarios, or None when it is missing."""
    for candidate in (_PACKAGE / "scenarios", _PACKAGE.parent / "scenarios"):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


def bundled_scenario_names() -> list[str]:
    directory = bundled_scenario_dir()
    return sorted(p.stem for p in directory.glob("*.yaml")) if directory else []


def is_file(path: Path) -> bool:
    """``path.is_file()``, False where the name cannot even be looked up (too long for a path,
    ENAMETOOLONG; a folder on the way that cannot be searched) rather than an OSError."""
    try:
        return path.is_file()
    except OSError:
        return False


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False where the name cannot be looked up (see :func:`is_file`)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _is_input(path: Path) -> bool:
    """Whether ``path`` names something to read: any file but a folder (a FIFO too)."""
    try:
        return path.exists() and not path.is_dir()
    except OSError:  # a name too long for a path (ENAMETOOLONG), say: nothing there
        return False


def find_scenario(name: str) -> Path | None:
    """``name`` as a file path if it is one, else the bundled scenario of that name.

    Any file but a folder is a path: a FIFO (``<(generate)``) or a device is read too, as far
    as ``input_file.read_input`` reads anything.
    """
    path = Path(name)
    if _is_input(path):
        return path
    if path.parent != Path(".") or not name:
        return None
    directory = bundled_scenario_dir()
    if directory is None:
        return None
    for candidate in (directory / name, directory / f"{name}.yaml"):
        if is_file(candidate):
            return candidate
    return None


def scenario_path(name: str) -> Path:
    """:func:`find_scenario`, or a :class:`UsageError` that lists the bundled examples."""
    path = find_scenario(name)
    if path is None and is_dir(Path(name)):
        raise UsageError(f"{shown(name)} is a folder; give a scenario file in it")
    if path is None:
        names = bundled_scenario_names()
        raise UsageError(
            f"no scenario file {shown(name)}{_suggestion(name, names)}; give a path, or one of"
            " the bundled scenarios: " + ", ".join(names)
        )
    return path


def _suggestion(name: str, names: list[str]) -> str:
    """`` (did you mean 'quickstart'?)`` for a bare name close to a bundled one, else ''."""
    if Path(name).parent != Path(".") or not names:
        return ""  # a path elsewhere is not a mistyped bundled name
    close = closest(name.removesuffix(".yaml"), names)
    return f" (did you mean {close!r}?)" if close is not None else ""
