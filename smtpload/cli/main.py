"""The command line: ``smtpload run``, ``validate`` and ``sink``; ``import`` and ``replay`` are in
``cli/transcripts.py``, ``record`` and ``compare`` in ``cli/regression.py``.

This module reads arguments, loads and compiles scenarios, starts the run, and turns every
local error into a one-line message and exit status 2. Exit statuses: 0 every session passed,
1 a session failed, 2 usage or scenario error, 130 interrupted (Ctrl-C or SIGTERM); with
``--threshold``, 0 and 1 say whether every threshold held (report/results.py, exit_status).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from smtpload._version import __version__
from smtpload.cli import interrupts
from smtpload.cli import regression as cli_regression
from smtpload.cli import transcripts as cli_transcripts
from smtpload.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Unset,
    add_force_option,
    add_pipelining_option,
    add_run_options,
    check_outputs,
    compile_with_tls,
    duration_argument,
    listen_argument,
    name_argument,
    parse_vars,
    path_argument,
    positive_int,
    positive_rate,
    say_unwritten,
    write_each,
)
from smtpload.cli.live import LiveView
from smtpload.cli.usage import HelpFormatter, parse_arguments
from smtpload.errors import LocalError, OutputError, ScenarioError, UsageError, clipped, counted
from smtpload.load.arrivals import ARRIVALS, OpenLoop
from smtpload.load.plan import MAX_IN_FLIGHT, LoadOptions, LoadPlan, LoadPlanError, plan_load
from smtpload.load.sources import MAX_SOURCE_ADDRESSES, SourceError, SourceList, parse_sources
from smtpload.net.collector import restore_collector, settle_for_load
from smtpload.net.fd_limit import ensure_open_files, most_connections
from smtpload.net.runner import RunSettings, new_run_id, run_scenario_to_summary
from smtpload.net.sink import DEFAULT_IDLE_TIMEOUT_S
from smtpload.net.source import check_sources
from smtpload.net.tls import tls_context
from smtpload.protocol.compiler import compile_scenario
from smtpload.report.abort import DEFAULT_WARMUP_S, AbortCheck
from smtpload.report.files import probe_output, write_text
from smtpload.report.live import live_view_possible
from smtpload.report.progress import DEFAULT_WINDOW_S, RecentRate, format_progress
from smtpload.report.results import (
    SUMMARY_FILE,
    exit_status,
    format_outcomes,
    format_report,
    summary_json,
    write_results,
)
from smtpload.report.stats import RunStats
from smtpload.report.thresholds import (
    Threshold,
    ThresholdError,
    evaluate_thresholds,
    parse_scenario_thresholds,
    parse_thresholds,
)
from smtpload.scenario.bundled import scenario_path
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.model import ProxySpec, Scenario, Target

if TYPE_CHECKING:
    from smtpload.net.workers import WorkerError

# net/workers.py (pickle, the merging of shards' reports) is imported where a run has worker
# processes: a run in this one never uses it (tests/test_startup.py).

__all__ = ["build_parser", "main"]

#: The longest line an error message prints, in characters.
MAX_MESSAGE_LINE = 1000

_TOP_EXAMPLES = """\
Each command has its own page: smtpload COMMAND --help. Bundled scenarios (quickstart,
seed-telnet, ...) are given by name and work from any folder.

examples:
  smtpload run quickstart        # bundled, against the built-in sink
  smtpload validate quickstart   # check a scenario without running it
"""

_RUN_EXAMPLES = """\
examples:
  smtpload run quickstart        # bundled, against the built-in sink
  smtpload run seed-telnet --target 127.0.0.1:2525   # e.g. smtpload sink
  smtpload run quickstart --target mx.example.test:25 --sessions 10000 \\
      --concurrency 100 --quiet --json summary.json
  smtpload run quickstart --sessions 1000 --concurrency 10 \\
      --threshold 'session.p99<50ms' --threshold 'failed<1%'   # a CI gate
  smtpload run quickstart --rate 100 --duration 10m \\
      --threshold 'session.p99<50ms' --abort-on-threshold   # stop early
"""

_VALIDATE_EXAMPLES = """\
examples:
  smtpload validate quickstart   # a bundled scenario, by name
  smtpload validate seed-telnet seed-sendmail multi-recipient  # several
"""

_SINK_EXAMPLES = """\
examples:
  smtpload sink                  # on 127.0.0.1:2525, until Ctrl-C
  smtpload sink --listen 127.0.0.1:0 --idle-timeout 60  # a free port, printed
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: the top level and every command."""
    parser = argparse.ArgumentParser(
        prog="smtpload",
        description="SMTP dialogues as YAML scenarios: replayed, validated, and run as load.",
        epilog=_TOP_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"smtpload {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of these:"
    )

    run = commands.add_parser(
        "run",
        help="run a scenario as many concurrent sessions",
        description="Run a scenario: --sessions N in total, at most --concurrency C at a time. "
        "With no --target and none in the scenario, the built-in sink is started on a free "
        "loopback port and used.",
        epilog=_RUN_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_run_options(run)
    add_pipelining_option(run)
    open_loop = run.add_argument_group(
        "open loop",
        "Sessions start on a clock, not when earlier ones end, so a stalled server cannot slow "
        "the load and hide its stall; session latencies then run from when each was due. A "
        "scenario's load: block (rate or stages) runs open loop by itself; each option here "
        "replaces its key there (--rate replaces rate and stages), and --concurrency runs "
        "closed loop instead, setting the block's load aside.",
    )
    open_loop.add_argument(
        "--rate",
        type=positive_rate,
        metavar="R",
        help="start R new sessions per second (open loop; not with --concurrency; --sessions "
        "then caps the total instead of setting it)",
    )
    open_loop.add_argument(
        "--duration",
        type=duration_argument,
        metavar="DURATION",
        help="how long sessions keep coming due; needed unless --sessions caps them",
    )
    open_loop.add_argument(
        "--ramp",
        type=duration_argument,
        metavar="DURATION",
        help="rise from 0 to --rate over this long, the first part of --duration",
    )
    open_loop.add_argument(
        "--arrivals",
        choices=ARRIVALS,
        help="constant: evenly spaced; poisson: independent, exponential gaps (default: the"
        " scenario's load: arrivals, else constant)",
    )
    open_loop.add_argument(
        "--max-in-flight",
        type=positive_int,
        metavar="N",
        help="sessions running at once, at most; a session due while N run starts late "
        f"(never dropped) (default: as many as open files allow, at most {MAX_IN_FLIGHT})",
    )
    run.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="the run's seed: each session's random draws (random variables, feeds at random,"
        " ranged counts) and the poisson arrivals, so a run can be repeated; the summary shows"
        " the seed used (default: the scenario's load: seed, else a random one)",
    )
    run.add_argument(
        "--source",
        type=_source_argument,
        metavar="LIST",
        help="bind sessions' sockets to these local addresses, round-robin by session number:"
        " addresses, ranges and blocks, comma-separated (127.0.0.2,127.0.0.3;"
        " 127.0.0.2-127.0.0.20; 127.0.0.0/28; fd00::/120), at most"
        f" {MAX_SOURCE_ADDRESSES:,}; only those of the target's family are used",
    )
    run.add_argument(
        "--proxy",
        choices=("v1", "v2"),
        help="start each session with a PROXY protocol header of this version (HAProxy's"
        " spec): the version of the scenario's proxy: key, or, without one, a header naming"
        " the connection's own addresses",
    )
    run.add_argument(
        "--results",
        type=path_argument,
        default=Path("results"),
        metavar="DIR",
        help="the folder that gets a <run-id>/ folder of results for each run",
    )
    run.add_argument(
        "--json", type=path_argument, metavar="PATH", help="also write summary.json here"
    )
    add_force_option(run, "--json", reports=True)
    run.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="a pass/fail rule on the run, METRIC[.STAT] OP VALUE[UNIT]: 'session.p99<500ms',"
        " 'step:rcpt.p99<50ms', 'failed<0.1%%' (of sessions started), 'messages_per_s>900'"
        " (repeatable; the grammar: README, Thresholds). When given, they decide the exit"
        " status: 0 all hold, 1 any crossed; failed==0 applies too unless one is on failed."
        " Given here, they replace the scenario's load: thresholds",
    )
    run.add_argument(
        "--abort-on-threshold",
        action="store_true",
        help="stop early when a threshold is crossed, judged every second after"
        " --abort-warmup: as a first Ctrl-C (2 s for running sessions, the rest interrupted),"
        " then exit 1; latency upper bounds, count upper bounds and percentages abort, rates"
        " and count lower bounds are judged at the end only; without --threshold, the"
        " default failed==0 aborts at the first failure (README, Thresholds)",
    )
    run.add_argument(
        "--abort-warmup",
        type=duration_argument,
        metavar="DURATION",
        help="with --abort-on-threshold, judge nothing before this much of the run"
        f" (default: {DEFAULT_WARMUP_S:g} s)",
    )
    run.add_argument(
        "--workers",
        type=_workers_argument,
        default=None,
        metavar="N|auto",
        help="worker processes, each with its own event loop, sharing the sessions (or the"
        " --rate) from one start; their results are merged into one run's. auto (the"
        " default): one per core for a load run (--rate, --duration, a load: block, or more"
        " than 1,000 sessions or messages), else 1; always 1 with the built-in sink (no"
        " --target)",
    )
    run.add_argument(
        "--quiet",
        action="store_true",
        help="no progress and no report when every session passes; otherwise one line of"
        " outcomes and the results folder (and errors)",
    )

    validate = commands.add_parser(
        "validate",
        help="check scenario files without running them",
        description="Check scenario files. Every problem is printed as FILE:LINE:COL: message; "
        "the exit status is 2 when there is any. A load: block is judged as `smtpload run "
        "SCENARIO` with no options would run it: start_delay thresholds need the block's own "
        "rate or stages (not --rate), a step:tls threshold a starttls step or an smtps:// "
        "target (not --tls implicit).",
        epilog=_VALIDATE_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    validate.add_argument(
        "scenarios",
        type=name_argument,
        nargs="+",
        metavar="SCENARIO",
        help="a scenario file, or the name of a bundled one; as many as you like",
    )

    cli_transcripts.add_parsers(commands)
    cli_regression.add_parsers(commands)

    sink = commands.add_parser(
        "sink",
        help="run the built-in SMTP sink (accepts and discards everything)",
        description="Run the built-in sink: an SMTP server that accepts every message and "
        "discards it, until Ctrl-C.",
        epilog=_SINK_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    sink.add_argument(
        "--listen",
        type=listen_argument,
        default=Target("127.0.0.1", 2525),
        metavar="HOST:PORT",
        help="address to listen on; port 0 picks a free one",
    )
    sink.add_argument(
        "--idle-timeout",
        type=duration_argument,
        default=DEFAULT_IDLE_TIMEOUT_S,
        metavar="DURATION",
        help="close a connection that sends nothing, or reads none of its replies, for this long",
    )
    sink.add_argument(
        "--no-pipelining",
        action="store_true",
        help="leave PIPELINING (RFC 2920) out of the EHLO reply, to test a client against a"
        " server that does not offer it",
    )
    return parser


def _workers_argument(text: str) -> int | None:
    """``--workers``: ``auto`` (None) or a count of 1 to :data:`MAX_WORKERS`."""
    if text.strip().lower() == "auto":
        return None
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_WORKERS}, got {count}")
    return count


#: The most worker processes: far more than cores on any machine; each costs ~30 MB.
MAX_WORKERS = 256


def _run_workers(
    requested: int | None,
    *,
    load: OpenLoop | None,
    sessions: int,
    messages: int,
    concurrency: int,
    builtin_sink: bool,
) -> int:
    """How many worker processes run: ``--workers`` (net/workers.py ``worker_count``), never
    more than can each have a session at a time (the concurrency, the sessions, or the open
    loop's sessions in flight). A closed-loop run is a load run from more than
    :data:`AUTO_WORKERS_SESSIONS` sessions, or as many messages (persistent sessions)."""
    if requested == 1:
        return 1  # as worker_count and the bound below make it, without importing workers.py
    from smtpload.net.workers import worker_count

    count = worker_count(
        requested,
        load_run=load is not None or max(sessions, messages) > AUTO_WORKERS_SESSIONS,
        builtin_sink=builtin_sink,
    )
    room = load.max_in_flight if load is not None else min(concurrency, sessions)
    return max(1, min(count, room))


def _worker_error() -> type[WorkerError]:
    """net/workers.py's error, for an ``except``: its expression is evaluated only when an
    exception passes, and a run with workers has imported the module by then."""
    from smtpload.net.workers import WorkerError

    return WorkerError


#: ``--workers auto`` runs one process per core for a closed-loop run of more sessions.
AUTO_WORKERS_SESSIONS = 1000


def _source_argument(text: str) -> SourceList:
    try:
        return parse_sources(text)
    except SourceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _results_directory(
    directory: Path, scenario: Path, json_path: Path | None, *, force: bool
) -> Path:
    """Check --json and the run's results folder now, so that a bad path fails before the run,
    not after it. Nothing is made yet: the folder comes with its first file."""
    check_outputs([scenario], [json_path], force=force)
    try:
        probe_output(directory / SUMMARY_FILE)
    except OutputError as error:
        # The probe's own advice ("choose another place") is given here as the option to use.
        reason = str(error).removesuffix("; choose another place")
        raise UsageError(
            f"cannot create the results folder {directory}: {reason};"
            " choose another place with --results DIR"
        ) from None
    return directory


class _Progress:
    """Where the live view cannot be drawn (not a terminal, ``TERM=dumb``): a plain line every
    10 s, with the rate of those 10 s (cli/live.py draws the terminal's view)."""

    interval_s = 10.0

    def __init__(self, stats: RunStats, total: int) -> None:
        self.stats = stats
        self.total = total
        # The rate of the last few seconds, widened to the lines' spacing.
        self.rate = RecentRate(window_s=max(DEFAULT_WINDOW_S, self.interval_s))

    def __call__(self, elapsed_s: float) -> None:
        stats = self.stats
        self.rate.add(elapsed_s, stats.finished)
        line = format_progress(stats.finished, stats.failed, self.total, self.rate.rate())
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def end(self, duration_s: float) -> None:
        """Nothing to tidy: the lines stay as they are."""


def _command_run(args: argparse.Namespace) -> int:
    path = scenario_path(args.scenario)
    scenario = load_scenario(path)
    if args.proxy is not None:
        # --proxy v2 sets the version only: the key's addresses (or the defaults) stay.
        spec = scenario.proxy or ProxySpec()
        scenario = dataclasses.replace(
            scenario, proxy=dataclasses.replace(spec, version=int(args.proxy[1:]))
        )
    target: Target | None = args.target or scenario.target
    seed = _run_seed(args, scenario)
    compiled, tls = compile_with_tls(
        args, scenario, target, overrides=parse_vars(args.var), seed=seed
    )
    plan = _load_plan(args, scenario)
    if plan is not None and plan.seed is None:
        plan = dataclasses.replace(plan, seed=seed)  # the arrivals repeat with --seed too
    step_names = ["connect", *compiled.step_names]
    thresholds = _thresholds(args, scenario, step_names, open_loop=plan is not None)
    if args.abort_warmup is not None and not args.abort_on_threshold:
        raise UsageError("--abort-warmup is for --abort-on-threshold: give it too")
    abort = None
    if args.abort_on_threshold:
        abort = AbortCheck(thresholds, warmup_s=args.abort_warmup or DEFAULT_WARMUP_S)
    load = None if plan is None else _open_loop(plan, builtin_sink=target is None)
    if load is None:
        ensure_open_files(min(args.concurrency, args.sessions), builtin_sink=target is None)
    if args.source is not None:
        check_sources(args.source)  # an address not on this machine: one error, not N failures
    run_id = new_run_id()
    # From here on there is a results folder to fill: a signal stops the run, not the writing.
    interrupts.defer()
    directory = _results_directory(args.results / run_id, path, args.json, force=args.force)
    stats = RunStats(["connect", *compiled.step_names])
    total = args.sessions if load is None else (load.max_sessions or 0)
    progress: _Progress | LiveView | None = None
    if args.quiet:
        pass
    elif live_view_possible(is_terminal=sys.stderr.isatty(), term=os.environ.get("TERM")):
        progress = LiveView(stats, sys.stderr, load, total or None)
    else:
        # Not a terminal (or TERM=dumb): the periodic plain lines CI logs want.
        progress = _Progress(stats, total)
    settings = RunSettings(
        open_loop=load,
        sessions=args.sessions,
        concurrency=args.concurrency,
        run_id=run_id,
        max_reply_bytes=args.max_reply_bytes,
        clock=args.clock,
        progress_interval_s=None if progress is None else progress.interval_s,
        signalled_before=interrupts.pending,
        abort=abort,
        tls=tls,
        sources=args.source,
        workers=_run_workers(
            args.workers,
            load=load,
            sessions=args.sessions,
            messages=args.sessions * compiled.least_messages_per_session,
            concurrency=args.concurrency,
            builtin_sink=target is None,
        ),
    )
    collector = settle_for_load()  # set for many long-lived sessions (net/collector.py)
    try:
        if settings.workers == 1:
            summary = trio.run(run_scenario_to_summary, compiled, target, settings, stats, progress)
        else:
            # Imported here: a one-process run needs none of the workers' code (test_startup).
            from smtpload.net.workers import forked_workers, kill_forked

            # Forked here, before the loop runs (a child of a running loop cannot start its
            # own): each worker has this process's imports and scenario already (net/forked.py).
            with (
                forked_workers(settings.workers) as forked,
                # Until the run handles signals itself, a second one leaves at once
                # (interrupts.py): not without the workers.
                interrupts.ending_with(lambda: kill_forked(forked)),
            ):
                summary = trio.run(
                    run_scenario_to_summary, compiled, target, settings, stats, progress, forked
                )
    except _worker_error() as error:
        print(f"smtpload: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        restore_collector(collector)
    summary["thresholds"] = evaluate_thresholds(thresholds, summary)
    if progress is not None:
        progress.end(summary["duration_s"])
    # A signal now is deferred (interrupts.py): the results are written whole first.
    results_unwritten = write_each([lambda: write_results(directory, summary, stats)])
    json_unwritten = (
        []
        if args.json is None
        else write_each([lambda: write_text(args.json, summary_json(summary))])
    )
    # Quiet is for runs that pass whole; one that did not (or left sessions not started:
    # an open loop that could not offer its load) still says so, and where to look.
    speak = not args.quiet or exit_status(summary) != EXIT_OK or summary["sessions"]["not_started"]
    if not args.quiet:
        print(format_report(summary, stats))
    elif speak:
        print(format_outcomes(summary))
    if speak and not results_unwritten:
        print(f"results: {directory}/")
    if results_unwritten or json_unwritten:
        say_unwritten([*results_unwritten, *json_unwritten])
        return EXIT_USAGE
    return exit_status(summary)


def _run_seed(args: argparse.Namespace, scenario: Scenario) -> int:
    """The run's seed: ``--seed``, else the scenario's ``load: seed``, else a new one (shown in
    the summary, so that the run can be repeated with ``--seed``)."""
    if args.seed is not None:
        return int(args.seed)
    if scenario.load is not None and scenario.load.seed is not None:
        return scenario.load.seed
    return secrets.randbits(32)


def _load_plan(args: argparse.Namespace, scenario: Scenario) -> LoadPlan | None:
    """The open-loop load of ``--rate`` and the scenario's ``load:`` block (the command line
    over the block: load/plan.py); None for a closed-loop run.

    Raises:
        UsageError: the options and the block make no load (plan_load's rules).
    """
    given = LoadOptions(
        rate_per_s=args.rate,
        duration_s=args.duration,
        ramp_s=args.ramp,
        arrivals=args.arrivals,
        seed=args.seed,
        max_in_flight=args.max_in_flight,
        sessions=None if isinstance(args.sessions, Unset) else int(args.sessions),
        concurrency=None if isinstance(args.concurrency, Unset) else int(args.concurrency),
    )
    try:
        return plan_load(scenario.load, given)
    except LoadPlanError as error:
        raise UsageError(str(error)) from None


def _open_loop(plan: LoadPlan, *, builtin_sink: bool) -> OpenLoop:
    """The plan's open loop, with room for its sessions in flight (the open-file limit)."""
    if plan.max_in_flight is not None:
        ensure_open_files(
            plan.max_in_flight, builtin_sink=builtin_sink, option=plan.max_in_flight_from
        )
        return plan.open_loop(plan.max_in_flight)
    return plan.open_loop(most_connections(MAX_IN_FLIGHT, builtin_sink=builtin_sink))


def _thresholds(
    args: argparse.Namespace, scenario: Scenario, step_names: list[str], *, open_loop: bool
) -> list[Threshold]:
    """``--threshold``, or without any the scenario's ``load: thresholds`` (errors at their
    place in the file)."""
    if args.threshold or scenario.load is None:
        try:
            return parse_thresholds(args.threshold, step_names=step_names, open_loop=open_loop)
        except ThresholdError as error:
            raise UsageError(f"--threshold {error}") from None
    return parse_scenario_thresholds(
        scenario.path, scenario.load.thresholds, step_names=step_names, open_loop=open_loop
    )


def _command_validate(args: argparse.Namespace) -> int:
    problems = []
    missing = []
    for name in args.scenarios:
        try:
            scenario = load_scenario(scenario_path(name))
            # The compiled steps, as a run has them: with `tls` after a starttls step, or
            # first for an smtps:// target; compiling also refuses what only the compiler
            # sees (an xclient line over 512 octets).
            target = scenario.target
            compiled = compile_scenario(
                scenario, implicit_tls=target is not None and target.implicit_tls
            )
            if scenario.load is not None:  # as a run with no options reads them
                parse_scenario_thresholds(
                    scenario.path,
                    scenario.load.thresholds,
                    step_names=["connect", *compiled.step_names],
                    open_loop=scenario.load.open_loop,
                )
            tls_context(scenario.tls)  # the target's TLS files load as a run loads them
        except ScenarioError as error:
            problems.extend(error.problems)
        except UsageError as error:
            missing.append(error)  # the other files are still checked
        else:
            print(f"{scenario.path}: ok ({counted(len(scenario.steps), 'step')})")
    for usage_error in missing:
        print(f"smtpload: {usage_error}", file=sys.stderr)
    if problems:
        raise ScenarioError(problems)
    return EXIT_USAGE if missing else EXIT_OK


def _command_sink(args: argparse.Namespace) -> int:
    from smtpload.net.sink import run_sink_forever

    interrupts.restore_defaults()  # the sink's trio run handles both signals from its start
    try:
        run_sink_forever(
            args.listen.host,
            args.listen.port,
            idle_timeout_s=args.idle_timeout,
            pipelining=not args.no_pipelining,
        )
    except OSError as error:
        raise UsageError(
            f"cannot listen on {args.listen}: {error.strerror or error}; "
            "choose another address with --listen HOST:PORT"
        ) from None
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # Ctrl-C and SIGTERM: at once during start-up, deferred once a command has begun work
    # that must be written whole (interrupts.py).
    with interrupts.handling():
        try:
            status = _main(argv)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        return EXIT_INTERRUPTED if interrupts.pending() else status


def _main(argv: Sequence[str] | None) -> int:
    args = parse_arguments(build_parser(), argv)
    commands = {
        "run": _command_run,
        "validate": _command_validate,
        "sink": _command_sink,
        "import": cli_transcripts.command_import,
        "replay": cli_transcripts.command_replay,
        "record": cli_regression.command_record,
        "compare": cli_regression.command_compare,
    }
    try:
        return commands[args.command](args)
    except LocalError as error:
        message = str(error) if isinstance(error, ScenarioError) else f"smtpload: {error}"
        print(_bounded_lines(message), file=sys.stderr)
        return EXIT_USAGE


def _bounded_lines(message: str) -> str:
    """``message`` with each line cut at :data:`MAX_MESSAGE_LINE`: the places that repeat the
    user's input already cut it (errors.shown); this is the guarantee for any that does not."""
    return "\n".join(clipped(line, MAX_MESSAGE_LINE) for line in message.split("\n"))
