"""What the command line's commands share: exit statuses and argument types.

Argument types raise ``argparse.ArgumentTypeError`` (argparse turns it into a usage message and
exit status 2); the other helpers raise ``UsageError``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from smtpload.errors import UsageError
from smtpload.scenario.bundled import bundled_scenario_names, find_scenario
from smtpload.scenario.model import Target, parse_target

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_run_options",
    "check_outputs",
    "listen_argument",
    "milliseconds",
    "parse_vars",
    "positive_float",
    "positive_int",
    "positive_percent",
    "scenario_path",
    "target_argument",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_number(text: str, unit: str, example: str = "") -> float:
    """``text`` as a finite number above 0, or an argparse error that names its ``unit``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {unit}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be {unit} above 0{example}")
    return value


def positive_float(text: str) -> float:
    return _positive_number(text, "a number of seconds")


def milliseconds(text: str) -> float:
    """A finite number of milliseconds, 0 or more (0 turns a floor off)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not 0 <= value < float("inf"):  # NaN fails both
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of milliseconds, 0 or more")
    return value + 0.0  # -0 reads as 0


def target_argument(text: str) -> Target:
    try:
        return parse_target(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def listen_argument(text: str) -> Target:
    """A HOST:PORT to listen on; port 0 picks a free port."""
    try:
        return parse_target(text, allow_port_zero=True)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace("bad target", "bad address")) from None


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--var {pair!r}: write NAME=VALUE, e.g. --var to=user@example.test")
        values[name] = value
    return values


def scenario_path(name: str) -> Path:
    path = find_scenario(name)
    if path is None:
        raise UsageError(
            f"no scenario file {name!r}; give a path, or one of the bundled scenarios: "
            + ", ".join(bundled_scenario_names())
        )
    return path


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The scenario and the options of every command that runs one (run, record, compare)."""
    parser.add_argument("scenario", help="a scenario file, or the name of a bundled one")
    parser.add_argument(
        "--target",
        type=target_argument,
        help="HOST:PORT of the server (default: the scenario's target, else the built-in sink)",
    )
    parser.add_argument("--sessions", type=positive_int, default=1, help="sessions in total")
    parser.add_argument(
        "--concurrency", type=positive_int, default=1, help="sessions at the same time"
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        help="step timeout unless a step sets its own (default: the scenario's, else 30)",
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable the scenario declares (repeatable)",
    )


def positive_percent(text: str) -> float:
    return _positive_number(text, "a percentage", ", such as 50")


def check_outputs(inputs: Sequence[Path], outputs: Sequence[Path | None]) -> None:
    """Refuse, before any work, an output that would overwrite an input or another output, or
    that cannot be written; create the outputs' folders."""
    taken = {path.resolve() for path in inputs}
    for output in outputs:
        if output is None:
            continue
        resolved = output.resolve()
        if resolved in taken:
            raise UsageError(
                f"{output}: would overwrite an input or another output; choose another file"
            )
        taken.add(resolved)
        if output.is_dir():
            raise UsageError(f"{output}: is a folder; give a file name")
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"{output}: {error.strerror or error}") from None
