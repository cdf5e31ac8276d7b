"""What the command line's commands share: exit statuses and argument types.

Argument types raise ``argparse.ArgumentTypeError`` (argparse turns it into a usage message and
exit status 2); the other helpers raise ``UsageError``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from smtpload.cli.interrupts import EXIT_INTERRUPTED
from smtpload.errors import OutputError, UsageError, clipped, shown
from smtpload.net.tls import TlsClient
from smtpload.net.tls_setup import TlsRequest, compile_for_target
from smtpload.protocol.compiler import CompiledScenario
from smtpload.protocol.wire import DEFAULT_MAX_REPLY_BYTES
from smtpload.report.files import is_smtpload_report, is_stream, probe_output
from smtpload.report.stats import CLOCKS, KERNEL_CLOCK
from smtpload.scenario.durations import DURATION_HELP, DurationError, parse_duration
from smtpload.scenario.model import (
    TLS_MIN_VERSIONS,
    BlockKind,
    Origin,
    Scenario,
    Target,
    TlsSettings,
    parse_target,
    server_name_problem,
)
from smtpload.scenario.template import is_variable_name

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ONE",
    "Unset",
    "add_force_option",
    "add_pipelining_option",
    "add_run_options",
    "add_tls_options",
    "check_outputs",
    "compile_with_tls",
    "duration_argument",
    "listen_argument",
    "milliseconds",
    "name_argument",
    "parse_vars",
    "path_argument",
    "positive_int",
    "positive_percent",
    "positive_rate",
    "say_unwritten",
    "target_argument",
    "write_each",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{shown(text)} must be at least 1")
    return value


def _positive_number(text: str, unit: str, example: str = "") -> float:
    """``text`` as a finite number above 0, or an argparse error that names its ``unit``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not {unit}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{shown(text)} must be {unit} above 0{example}")
    return value


#: RFC 5321 §4.5.3.1.5: a reply line of 512 octets is conforming, so a lower cap would fail
#: honest servers.
_MIN_REPLY_BYTES = 512


def _reply_bytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a whole number of bytes") from None
    if value < _MIN_REPLY_BYTES:
        raise argparse.ArgumentTypeError(
            f"{shown(text)} must be at least {_MIN_REPLY_BYTES} (the longest reply line RFC 5321 "
            "requires servers to accept)"
        )
    return value


def duration_argument(text: str) -> float:
    """A duration in seconds: ``30``, ``500ms``, ``30s``, ``5m``, ``1h`` (scenario/durations)."""
    try:
        return parse_duration(text)
    except DurationError as error:
        raise argparse.ArgumentTypeError(f"{shown(text)} {error}") from None


def positive_rate(text: str) -> float:
    return _positive_number(text, "a number of sessions per second", ", such as 100")


class Unset(int):
    """An option's default that remembers it was not given (``--concurrency`` may not be
    given with ``--rate``); it is the number it stands for everywhere else."""


#: ``--sessions`` and ``--concurrency`` when not given.
ONE = Unset(1)


def milliseconds(text: str) -> float:
    """A finite number of milliseconds, 0 or more (0 turns a floor off)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number of milliseconds") from None
    if not 0 <= value < float("inf"):  # NaN fails both
        raise argparse.ArgumentTypeError(
            f"{shown(text)} must be a number of milliseconds, 0 or more"
        )
    return value + 0.0  # -0 reads as 0


def path_argument(text: str) -> Path:
    """A file or folder name. An empty one is refused: ``Path("")`` is the current folder,
    which is never what ``--results ''`` (an unset variable, say) meant."""
    if not text:
        raise argparse.ArgumentTypeError("'' is an empty name; give a file or folder name")
    return Path(text)


def name_argument(text: str) -> str:
    """A file, or the name of a bundled scenario: not empty (``Path("")`` would be the current
    folder, and the message would call it one)."""
    if not text:
        raise argparse.ArgumentTypeError("'' is an empty name; give a file or a bundled name")
    return text


def target_argument(text: str) -> Target:
    try:
        return parse_target(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def listen_argument(text: str) -> Target:
    """A HOST:PORT to listen on; port 0 picks a free port."""
    try:
        address = parse_target(text, allow_port_zero=True)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace("bad target", "bad address")) from None
    if address.unix_path is not None:
        # The sink listens on TCP only; without this, the empty host would mean every address.
        raise argparse.ArgumentTypeError(f"bad address {text!r}: the sink listens on HOST:PORT")
    return address


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    """The --var NAME=VALUE pairs. A message never quotes a value, which may be a password
    (issue 11): at most the name-like start of the argument, before its first ``=``, ``:`` or
    space."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if sep and is_variable_name(name):
            values[name] = value
            continue
        start = re.split(r"[=:\s]", pair, maxsplit=1)[0]
        shown_start = f" {clipped(start)}" if is_variable_name(start) else ""
        if not sep:
            why = "write NAME=VALUE"
        elif not name:
            why = "nothing before '='; write NAME=VALUE"
        else:
            why = "what comes before '=' must be a variable's name (letters, digits and _)"
        hidden = "" if shown_start and start == pair else " (the argument's text is not shown)"
        raise UsageError(f"--var{shown_start}: {why}{hidden}, e.g. --var to=user@example.test")
    return values


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The scenario and the options of every command that runs one (run, record, compare)."""
    parser.add_argument(
        "scenario",
        type=name_argument,
        metavar="SCENARIO",
        help="a scenario file, or the name of a bundled one",
    )
    parser.add_argument(
        "--target",
        type=target_argument,
        metavar="HOST:PORT",
        help="the server (default: the scenario's target, else the built-in sink)",
    )
    parser.add_argument(
        "--sessions",
        type=positive_int,
        default=ONE,
        metavar="N",
        help="sessions in total",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=ONE,
        metavar="C",
        help="sessions at the same time (closed loop)",
    )
    parser.add_argument(
        "--timeout",
        type=duration_argument,
        metavar="DURATION",
        help="step timeout unless a step sets its own, in "
        + DURATION_HELP
        + " (default: the scenario's, else 30 s)",
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable the scenario declares (repeatable)",
    )
    parser.add_argument(
        "--max-reply-bytes",
        type=_reply_bytes,
        default=DEFAULT_MAX_REPLY_BYTES,
        metavar="BYTES",
        help="a server reply longer than this ends its session as protocol_error",
    )
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default=KERNEL_CLOCK,
        help="what ends a reply's latency: kernel = when the reply reached this machine (the "
        "kernel's receive time; falls back to loop where the platform has none), loop = when "
        "smtpload got to it, its own delays included",
    )
    add_tls_options(parser)


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """The TLS options of every command that runs sessions (run, replay, record, compare)."""
    group = parser.add_argument_group(
        "TLS",
        "STARTTLS is a scenario step (`- starttls: true`); these set up the TLS it and implicit"
        " TLS use. Certificates are verified by default (the system's store, or SSL_CERT_FILE)."
        " Each option wins over the scenario target's own (ca, server_name, cert, key,"
        " min_version).",
    )
    group.add_argument(
        "--tls",
        choices=("implicit",),
        help="implicit: TLS from the first byte (RFC 8314, port 465; as smtps://HOST:PORT)",
    )
    group.add_argument(
        "--tls-ca",
        type=path_argument,
        metavar="FILE",
        help="trust the certificates in FILE (PEM), not the system's",
    )
    group.add_argument(
        "--tls-server-name",
        type=_server_name,
        metavar="NAME",
        help="the name sent as SNI and checked in the certificate (default: the target's host)",
    )
    group.add_argument(
        "--tls-cert", type=path_argument, metavar="FILE", help="a client certificate (PEM)"
    )
    group.add_argument(
        "--tls-key", type=path_argument, metavar="FILE", help="the client certificate's key (PEM)"
    )
    group.add_argument(
        "--tls-min-version",
        choices=TLS_MIN_VERSIONS,
        help="refuse a server that offers only an older TLS version (a tls_error)",
    )
    group.add_argument(
        "--tls-insecure",
        action="store_true",
        help="do not verify certificates (the terminal and summary.json say so)",
    )
    group.add_argument(
        "--tls-resume",
        choices=("on", "off"),
        default="on",
        help="resume the run's newest TLS session in each new connection (counted in"
        " summary.json's tls.resumed)",
    )


def add_pipelining_option(parser: argparse.ArgumentParser) -> None:
    """``--require-pipelining``, of the commands that run a scenario's pipeline groups (run,
    replay); :func:`compile_with_tls` reads it."""
    parser.add_argument(
        "--require-pipelining",
        action="store_true",
        help="fail a session as unexpected_reply at its EHLO when the server does not advertise"
        " PIPELINING (default: run pipeline groups in lock-step and count them in summary.json)",
    )


def compile_with_tls(
    args: argparse.Namespace,
    scenario: Scenario,
    target: Target | None,
    *,
    overrides: dict[str, str] | None = None,
    seed: int = 0,
) -> tuple[CompiledScenario, TlsClient | None]:
    """Compile ``scenario`` for ``target`` with the TLS options of ``args`` (see
    :func:`add_tls_options`), and build the run's TLS client when a session does TLS: once
    per run, before it, so that a CA file that cannot be read is said now.

    Raises:
        UsageError: implicit TLS without a target, or with a starttls step; --tls-key without
            --tls-cert; a TLS file of an option that cannot be read or used.
        ScenarioError: a TLS file of the scenario's target that cannot be read or used.
    """
    given = TlsSettings(
        ca_file=_optional_name(args.tls_ca),
        server_name=args.tls_server_name,
        cert_file=_optional_name(args.tls_cert),
        key_file=_optional_name(args.tls_key),
        min_version=args.tls_min_version,
        origins=(
            ("ca_file", Origin("--tls-ca")),
            ("cert_file", Origin("--tls-cert")),
            ("key_file", Origin("--tls-key")),
        ),
    )
    request = TlsRequest(
        implicit=args.tls == "implicit",
        settings=given,
        insecure=args.tls_insecure,
        resume=args.tls_resume == "on",
    )
    require_pipelining = bool(getattr(args, "require_pipelining", False))
    compiled, tls = compile_for_target(
        scenario,
        target,
        request,
        timeout_s=args.timeout,
        overrides=overrides,
        seed=seed,
        require_pipelining=require_pipelining,
    )
    if require_pipelining and not any(b.kind is BlockKind.PIPELINE for b in scenario.blocks):
        # Said, not refused, as the TLS options' note below: the option may serve many files.
        print(
            "smtpload: note: --require-pipelining has no effect: the scenario has no"
            " `pipeline:` group",
            file=sys.stderr,
        )
    unused = _tls_options_given(args)
    if unused and not compiled.uses_tls:
        # Said, not refused: one set of options may serve scenarios with and without TLS,
        # but a user who asked for --tls-insecure should not believe a plain run was TLS.
        print(
            f"smtpload: note: {', '.join(unused)} {'has' if len(unused) == 1 else 'have'} no"
            " effect: no session does TLS (the scenario has no starttls step, and neither"
            " --tls implicit nor smtps:// was given)",
            file=sys.stderr,
        )
    return compiled, tls


def _tls_options_given(args: argparse.Namespace) -> list[str]:
    """The TLS options of the command line that were given (not left at their default)."""
    given = [
        option
        for option, value in (
            ("--tls-ca", args.tls_ca),
            ("--tls-server-name", args.tls_server_name),
            ("--tls-cert", args.tls_cert),
            ("--tls-key", args.tls_key),
            ("--tls-min-version", args.tls_min_version),
        )
        if value is not None
    ]
    if args.tls_insecure:
        given.append("--tls-insecure")
    if args.tls_resume != "on":
        given.append("--tls-resume")
    return given


def _server_name(text: str) -> str:
    problem = server_name_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{problem}; give one, e.g. mx.example.test")
    return text


def _optional_name(path: Path | None) -> str | None:
    return None if path is None else str(path)


def positive_percent(text: str) -> float:
    return _positive_number(text, "a percentage", ", such as 50")


def add_force_option(parser: argparse.ArgumentParser, what: str, *, reports: bool) -> None:
    """``--force``: let ``what`` (outputs, named in the help) replace an existing file; see
    :func:`check_outputs` for ``reports``."""
    replaced = "an existing file that is not a report smtpload wrote" if reports else "a file"
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"let {what} replace {replaced} (never a file this command reads)",
    )


def _identity(path: Path) -> tuple[object, ...]:
    """What makes two paths the same file: device and inode when it exists (so a hard link or
    symlink is caught), else the resolved name."""
    try:
        found = os.stat(path)
    except OSError:
        return ("name", str(path.resolve()))
    return ("file", found.st_dev, found.st_ino)


def check_outputs(
    inputs: Sequence[Path],
    outputs: Sequence[Path | None],
    *,
    force: bool = False,
    reports: bool = True,
) -> None:
    """Refuse, before any work, an output that would lose the user's data or cannot be written.

    Every output is checked before any is written, and nothing is touched:

    - one that is an input or another output (by identity: hard links and symlinks too) is
      refused, even with ``force``;
    - an existing file is the user's data and needs ``force``, unless ``reports`` is true and
      it is a report that smtpload wrote (``report/files.py``, ``is_smtpload_report``), which a
      CI re-run replaces (``--json``, ``--junit``); ``record -o`` and ``import -o`` pass
      ``reports=False``: any file there is a baseline or scenario of the user's;
    - one that cannot be written there (read-only, immutable, under a file) is refused.

    Raises:
        UsageError: naming the output and what to do instead.
        OutputError: the output cannot be written where it was asked for.
    """
    taken = {_identity(path) for path in inputs}
    for output in outputs:
        if output is None:
            continue
        try:
            _check_output(output, taken, force=force, reports=reports)
        except OSError as error:  # a name too long for a path, a folder that cannot be searched
            raise UsageError(
                f"{clipped(str(output))}: {error.strerror or error}; choose another file"
            ) from None


def _check_output(
    output: Path, taken: set[tuple[object, ...]], *, force: bool, reports: bool
) -> None:
    """One output of :func:`check_outputs`; ``taken`` holds the identities seen so far."""
    if is_stream(output):
        return
    identity = _identity(output)
    if identity in taken:
        raise UsageError(
            f"{output}: would overwrite an input or another output; choose another file"
        )
    taken.add(identity)
    if output.is_file() and not force and not (reports and is_smtpload_report(output)):
        what = "is not a report smtpload wrote" if reports else "already exists"
        raise UsageError(f"{output}: {what}; give --force to replace it, or choose another file")
    probe_output(output)


def write_each(writes: Sequence[Callable[[], object]]) -> list[OutputError]:
    """Run each write on its own, so that one that fails does not cost the others.

    Returns:
        the errors of the writes that failed, in order (each names its file); the caller says
        them, after whatever it still has to print, and exits 2.
    """
    failed = []
    for write in writes:
        try:
            write()
        except OutputError as error:
            failed.append(error)
    return failed


def say_unwritten(failed: Sequence[OutputError]) -> None:
    """Name each file that could not be written, on stderr."""
    for error in failed:
        print(f"smtpload: {error}", file=sys.stderr)
