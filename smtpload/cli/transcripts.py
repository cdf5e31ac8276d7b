"""``smtpload import`` and ``smtpload replay``: transcripts of hand-driven sessions.

``import`` writes the scenarios that ``importer.py`` makes of a transcript; ``replay`` runs each
session of a transcript (or a scenario file) once, in order, printing each step as it completes.
Replay observes rather than stops (engine.py's observe mode), so every differing step is shown.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import ChainMap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from smtpload.cli import interrupts
from smtpload.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_force_option,
    add_pipelining_option,
    add_tls_options,
    check_outputs,
    compile_with_tls,
    duration_argument,
    name_argument,
    path_argument,
    positive_int,
    target_argument,
)
from smtpload.cli.usage import HelpFormatter
from smtpload.errors import UsageError, counted, shown
from smtpload.net.runner import RunSettings, run_scenario
from smtpload.protocol.engine import Observation
from smtpload.protocol.outcome import Outcome
from smtpload.report.files import write_text
from smtpload.report.results import MAX_SHOWN_NAME
from smtpload.report.sidebyside import format_observation, format_session_header
from smtpload.report.stats import RunStats
from smtpload.scenario.bundled import bundled_scenario_names, find_scenario, is_dir, is_file
from smtpload.scenario.durations import DURATION_HELP
from smtpload.scenario.input_file import InputTooLargeError, read_input
from smtpload.scenario.loader import load_scenario, parse_scenario
from smtpload.scenario.model import Scenario, Target

if TYPE_CHECKING:
    from smtpload.transcripts.importer import ImportedSession, ImportResult

# smtpload.transcripts is imported where a transcript is read, not here: every command builds
# this module's parsers, and `smtpload run` should not pay for importing what it never uses
# (tests/test_startup.py).

__all__ = ["add_parsers", "command_import", "command_replay"]


_IMPORT_EXAMPLES = """\
examples (a transcript of your own; here swaks' against `smtpload sink`):
  swaks --server 127.0.0.1:2525 --to me@example.test > session.txt
  smtpload import session.txt                   # print the scenarios
  smtpload import session.txt -o session.yaml   # session.yaml, session-2.yaml
  smtpload import session.txt --session 1 --strict -o strict.yaml
"""

_REPLAY_EXAMPLES = """\
examples (against `smtpload sink`, or your server):
  swaks --server 127.0.0.1:2525 --to me@example.test > session.txt
  smtpload replay session.txt --target 127.0.0.1:2525   # a transcript
  smtpload replay seed-telnet --target 127.0.0.1:2525   # a scenario
"""


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``import`` and ``replay`` subcommands."""
    importing = commands.add_parser(
        "import",
        help="turn a transcript of a hand-driven SMTP session into scenarios",
        description="Read a transcript (a telnet or nc session, swaks output, or a C:/S: "
        "listing; a whole page with prose around it is fine, and so is a session indented as "
        "a whole, as pasted into Markdown or a mail) and write one scenario per session. The "
        "message's Date: and Message-ID: values become {date} and {message_id}, new for each "
        "message sent. Without -o the YAML goes to stdout; everything else goes to stderr.",
        epilog=_IMPORT_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    importing.add_argument(
        "transcript",
        type=path_argument,
        metavar="TRANSCRIPT",
        help="a file holding one or more sessions (telnet or nc, swaks, C:/S:)",
    )
    importing.add_argument(
        "-o",
        "--output",
        type=path_argument,
        metavar="SCENARIO.yaml",
        help="write here, with -2, -3... before .yaml for more sessions (default: stdout)",
    )
    add_force_option(importing, "-o", reports=False)
    importing.add_argument(
        "--keep-secrets",
        action="store_true",
        help="write AUTH passwords into the scenario as they are (default: the scenario reads"
        " each from an environment variable, SMTPLOAD_PASSWORD_<USER>, that stderr names)",
    )
    _add_transcript_options(importing)

    replay = commands.add_parser(
        "replay",
        help="run each session of a transcript or scenario once, step by step",
        description="Import a transcript in memory (or read a scenario file) and run each "
        "session once, in order, printing each command, the reply expected and the reply got. "
        "Exit status as for run.",
        epilog=_REPLAY_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    replay.add_argument(
        "source",
        type=name_argument,
        metavar="TRANSCRIPT|SCENARIO",
        help="a transcript, or a scenario: a .yaml file or the name of a bundled one",
    )
    replay.add_argument(
        "--target",
        type=target_argument,
        metavar="HOST:PORT",
        help="the server (default: the transcript's or scenario's target, else the built-in sink)",
    )
    replay.add_argument(
        "--timeout",
        type=duration_argument,
        metavar="DURATION",
        help="step timeout, in " + DURATION_HELP + " (default: the scenario's, else 30 s)",
    )
    _add_transcript_options(replay)
    add_pipelining_option(replay)
    add_tls_options(replay)


def _add_transcript_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=["auto", "telnet", "swaks", "cs"],
        default="auto",
        help="the transcript's form; auto decides, and says what it chose",
    )
    parser.add_argument(
        "--session",
        type=positive_int,
        metavar="N",
        help="only the Nth session of the file (default: every session)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also expect each reply's enhanced status code and text "
        "(volatile parts such as queue ids generalised)",
    )


def _read_transcript(path: Path, args: argparse.Namespace) -> ImportResult:
    from smtpload.transcripts.importer import import_transcript

    try:
        raw = read_input(path)
    except FileNotFoundError:
        raise UsageError(f"no such file {shown(str(path))}; give a transcript file") from None
    except IsADirectoryError:
        raise UsageError(f"{shown(str(path))} is a folder; give a transcript file in it") from None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    except InputTooLargeError as error:
        raise UsageError(f"{path}: {error} of a transcript; cut out the part to import") from None
    # Universal newlines, as reading in text mode would: CRLF and lone CR become LF.
    text = raw.decode("utf-8", "surrogateescape").replace("\r\n", "\n").replace("\r", "\n")
    del raw
    result = import_transcript(
        text,
        str(path),
        format=args.format,
        strict=args.strict,
        keep_secrets=getattr(args, "keep_secrets", False),
    )
    for note in result.notes:
        print(f"{path}: {note}", file=sys.stderr)
    return result


def _chosen(sessions: tuple[ImportedSession, ...], number: int | None) -> list[ImportedSession]:
    if number is None:
        return list(sessions)
    if number > len(sessions):
        raise UsageError(
            f"--session {number}: the transcript has {counted(len(sessions), 'session')}"
        )
    return [sessions[number - 1]]


def _output_path(output: Path, number: int, total: int) -> Path:
    # One session: exactly the given name. Several: out.yaml, out-2.yaml, out-3.yaml...
    if total == 1 or number == 1:
        return output
    return output.with_name(f"{output.stem}-{number}{output.suffix}")


def command_import(args: argparse.Namespace) -> int:
    result = _read_transcript(args.transcript, args)
    chosen = _chosen(result.sessions, args.session)
    interrupts.defer()  # every scenario is written whole; a signal then ends with 130
    if args.output is None:
        for session in chosen:
            if len(chosen) > 1:
                print(f"# --- session {session.number} (line {session.first_line}) ---")
            sys.stdout.write(session.yaml_text)
        return EXIT_OK
    paths = [_output_path(args.output, i, len(chosen)) for i in range(1, len(chosen) + 1)]
    # Every name is checked before any file is written: out-2.yaml may be the transcript.
    check_outputs([args.transcript], paths, force=args.force, reports=False)
    for session, path in zip(chosen, paths, strict=True):
        write_text(path, session.yaml_text)
        print(f"session {session.number} (line {session.first_line}) -> {path}", file=sys.stderr)
    return EXIT_OK


@dataclass(frozen=True, slots=True)
class _Replayable:
    label: str
    scenario: Scenario


def _replay_source(name: str) -> Path:
    """The file ``replay`` reads: ``name`` itself, or the bundled scenario of that name.

    Unlike ``scenario_path``, a missing one is not called a scenario: it may be a transcript.
    """
    found = find_scenario(name)
    if found is not None:
        return found
    if is_dir(Path(name)):
        raise UsageError(f"{shown(name)} is a folder; give a transcript or a scenario file in it")
    raise UsageError(
        f"no such file {shown(name)}; give a transcript, a scenario file, or the name of a"
        " bundled scenario: " + ", ".join(bundled_scenario_names())
    )


def _replayables(args: argparse.Namespace) -> list[_Replayable]:
    path = _replay_source(args.source)
    if path.suffix in (".yaml", ".yml") or not is_file(path):
        if args.session is not None and args.session != 1:
            raise UsageError(f"--session {args.session}: a scenario file holds one session")
        # These change how a transcript is imported; a scenario's steps say what they expect
        # themselves, so either would be silently ignored: refused, so nobody believes that
        # --strict checked the texts.
        for option, given in (("--strict", args.strict), ("--format", args.format != "auto")):
            if given:
                raise UsageError(
                    f"{option} is for a transcript, and {shown(args.source)} is a scenario"
                    " file: its expect: says what is checked; remove " + option
                )
        scenario = load_scenario(path)
        return [_Replayable(scenario.path, scenario)]
    result = _read_transcript(path, args)
    return [
        _Replayable(
            f"{path} line {session.first_line}",
            # The transcript's passwords are handed over in memory: never written, never shown.
            parse_scenario(
                session.yaml_text,
                f"{path}#session-{session.number}",
                environ=ChainMap(dict(session.secrets), dict(os.environ)),
            ),
        )
        for session in _chosen(result.sessions, args.session)
    ]


def command_replay(args: argparse.Namespace) -> int:
    replayables = _replayables(args)
    # A signal between two sessions' runs is noted; the next run sees it and stops at once.
    interrupts.defer()
    failed = 0
    for number, item in enumerate(replayables, start=1):
        target: Target | None = args.target or item.scenario.target
        compiled, tls = compile_with_tls(args, item.scenario, target)
        stats = RunStats(["connect", *compiled.step_names])
        # Observe mode: a difference does not end the session, so the report names every step
        # whose reply differs, not just the first.
        settings = RunSettings(
            sessions=1,
            concurrency=1,
            run_id=f"replay-{number}",
            observe=True,
            signalled_before=interrupts.pending,
            tls=tls,
        )
        # Long names are cut to the column (format_observation), not the column to them.
        name_width = min(
            MAX_SHOWN_NAME, max(len(name) for name in ("connect", *compiled.step_names))
        )
        print(format_session_header(number, item.label, str(target or "the built-in sink")))

        def show(observation: Observation, width: int = name_width) -> None:
            print(format_observation(observation, width), flush=True)

        _, _, interrupted = trio.run(
            run_scenario, compiled, target, settings, stats, None, None, show
        )
        # No outcome at all: a signal stopped the run before its session started.
        outcome = next((o for o, n in stats.outcomes.items() if n), Outcome.INTERRUPTED)
        for failure in stats.failures:
            if failure.step == "connect":  # the only failure no step line has shown
                print(f"  FAIL  connect: {failure.got}")
        print(f"  => {outcome.value}\n")
        if interrupted:
            return EXIT_INTERRUPTED
        failed += outcome is not Outcome.PASSED
    if len(replayables) > 1:
        print(f"{len(replayables) - failed} of {counted(len(replayables), 'session')} passed")
    return EXIT_FAILED if failed else EXIT_OK
