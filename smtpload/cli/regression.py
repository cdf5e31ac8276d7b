"""``smtpload record`` and ``smtpload compare``: a server's behaviour, kept and compared.

``record`` runs a scenario in observe mode and saves what every step got as a baseline file;
``compare`` runs it again (against the upgraded server, say) and reports what changed. Both go on
past differences (engine.py's observe mode), so one changed reply is one difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from smtpload.cli import interrupts
from smtpload.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_force_option,
    add_run_options,
    check_outputs,
    compile_with_tls,
    milliseconds,
    parse_vars,
    path_argument,
    positive_percent,
    say_unwritten,
    write_each,
)
from smtpload.cli.usage import HelpFormatter
from smtpload.errors import counted, shown
from smtpload.net.fd_limit import ensure_open_files
from smtpload.protocol.outcome import Outcome
from smtpload.report.files import JUNIT_SUITE_PREFIX, probe_output, write_text
from smtpload.report.results import step_name_shown
from smtpload.report.stats import RunStats
from smtpload.scenario.bundled import scenario_path
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.model import Target

if TYPE_CHECKING:
    from smtpload.regression.baseline import Behaviour

# smtpload.regression (baseline, compare, JUnit's xml.etree) is imported by the two commands
# only, not here: every command builds this module's parsers, and `smtpload run` should not
# pay for importing what it never uses (tests/test_startup.py).

__all__ = ["add_parsers", "command_compare", "command_record"]

_RECORD_EXAMPLES = """\
example (before an upgrade; smtpload compare after it says what changed):
  smtpload record esmtp-capabilities --target mx.example.test:25 \\
      -o baseline.json --sessions 20
"""

_COMPARE_EXAMPLES = """\
examples (record before an upgrade, compare after it):
  smtpload record esmtp-capabilities --target mx.example.test:25 \\
      -o baseline.json
  smtpload compare esmtp-capabilities --target mx.example.test:25 \\
      --baseline baseline.json
  smtpload compare esmtp-capabilities --target mx.example.test:25 \\
      --baseline baseline.json --sessions 50 --max-latency-regression 50 \\
      --junit report.xml --json diff.json
"""


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``record`` and ``compare`` subcommands."""
    record = commands.add_parser(
        "record",
        help="run a scenario and save what the server answered as a baseline",
        description="Run a scenario in observe mode (a reply that differs from the scenario "
        "does not end the session) and save, per step, the reply codes, enhanced codes, texts, "
        "EHLO capabilities and latency histograms as a baseline file. Closed loop only "
        "(--sessions, --concurrency): run's --rate is not offered here yet.",
        epilog=_RECORD_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_run_options(record)
    record.add_argument(
        "-o",
        "--output",
        type=path_argument,
        required=True,
        metavar="BASELINE.json",
        help="the baseline file to write (for compare --baseline)",
    )
    add_force_option(record, "-o", reports=False)

    comparing = commands.add_parser(
        "compare",
        help="run a scenario again and report what changed against a baseline",
        description="Run a scenario in observe mode and compare every step with a baseline: "
        "changed reply codes and removed capabilities are regressions; changed texts (volatile "
        "parts such as queue ids aside), added capabilities and enhanced status codes where the "
        "baseline's replies had none are warnings, regressions with --strict. "
        "Exit status 0 no regression, 1 regression, 2 usage. Closed loop only (--sessions, "
        "--concurrency): run's --rate is not offered here yet.",
        epilog=_COMPARE_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_run_options(comparing)
    comparing.add_argument(
        "--baseline",
        type=path_argument,
        required=True,
        metavar="BASELINE.json",
        help="the baseline that record wrote (or --update-baseline)",
    )
    comparing.add_argument(
        "--max-latency-regression",
        type=positive_percent,
        metavar="PCT",
        help="a p50, p99 or p99.9 more than PCT %% (and --min-latency-delta) above the "
        "baseline's is a regression (not checked without it); p99 is judged only with 100 "
        "samples on both sides, p99.9 with 1,000, and no latency at all when the baseline "
        "was timed on another --clock",
    )
    comparing.add_argument(
        "--min-latency-delta",
        type=milliseconds,
        # regression.compare's DEFAULT_MIN_LATENCY_DELTA_MS, as text that argparse converts
        # with `type`: that module is not imported for the parsers (tests/test_startup.py
        # checks that the two agree).
        default="1",
        metavar="MS",
        help="with --max-latency-regression, a percentile that grew by MS ms or less is no "
        "regression, whatever the percentage; 0 turns it off",
    )
    comparing.add_argument(
        "--strict",
        action="store_true",
        help="changed texts, added capabilities and added enhanced codes are regressions too",
    )
    comparing.add_argument(
        "--junit",
        type=path_argument,
        metavar="PATH",
        help="write JUnit XML here: one test case per step",
    )
    comparing.add_argument(
        "--json", type=path_argument, metavar="PATH", help="write the comparison as JSON here"
    )
    add_force_option(comparing, "--junit and --json", reports=True)
    comparing.add_argument(
        "--update-baseline",
        action="store_true",
        help="after printing the differences, save this run as the baseline",
    )


def _check_paths(
    args: argparse.Namespace, inputs: list[Path], outputs: list[Path | None], *, reports: bool
) -> None:
    """Check the output paths before anything runs, so that a bad one fails at once."""
    check_outputs(
        [scenario_path(args.scenario), *inputs], outputs, force=args.force, reports=reports
    )


def _observe(args: argparse.Namespace, run_id: str) -> tuple[Behaviour, RunStats, bool]:
    """Run the scenario of ``args`` in observe mode: what it saw, the run's counts, and whether
    it was interrupted."""
    from smtpload.regression.observe import observe_run

    scenario = load_scenario(scenario_path(args.scenario))
    target: Target | None = args.target or scenario.target
    compiled, tls = compile_with_tls(args, scenario, target, overrides=parse_vars(args.var))
    ensure_open_files(min(args.concurrency, args.sessions), builtin_sink=target is None)
    stats = RunStats(["connect", *compiled.step_names])
    # What is written after the run (baseline, JUnit, JSON) is written whole; a signal before
    # the run's own handling is in place stops it at once.
    interrupts.defer()
    behaviour, interrupted = trio.run(
        lambda: observe_run(
            compiled,
            target,
            sessions=args.sessions,
            concurrency=args.concurrency,
            run_id=run_id,
            handle_signals=True,
            stats=stats,
            max_reply_bytes=args.max_reply_bytes,
            clock=args.clock,
            signalled_before=interrupts.pending,
            tls=tls,
        )
    )
    return behaviour, stats, interrupted


def _why_no_connection(stats: RunStats) -> str | None:
    """Why no session of the run got a connection, so that none reached the greeting; None
    when one did."""
    if stats.started == 0 or stats.outcomes[Outcome.CONNECT_ERROR] < stats.started:
        return None
    got = next((f.got for f in stats.failures if f.outcome is Outcome.CONNECT_ERROR), "")
    return f"all {stats.started} failed to connect" + (f" ({got})" if got else "")


def command_record(args: argparse.Namespace) -> int:
    from smtpload.regression.baseline import save_baseline

    _check_paths(args, [], [args.output], reports=False)
    behaviour, stats, interrupted = _observe(args, "record")
    if interrupted:
        print("smtpload: interrupted; no baseline written", file=sys.stderr)
        return EXIT_INTERRUPTED
    reason = _why_no_connection(stats)
    if reason is not None:
        # Connect errors are the network's, not the server's behaviour: a baseline of them
        # would make every step of a working server a difference.
        print(
            f"smtpload: no session reached the greeting: {reason}; no baseline written."
            " Check --target and that the server is up.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    save_baseline(behaviour, args.output)
    # A baseline is what the server did, even where the scenario expected otherwise; but a
    # baseline of failures is rarely what was meant, so say so.
    unexpected = [s.name for s in behaviour.steps if s.unexpected or "connect_error" in s.events]
    if unexpected:
        print(
            "smtpload: warning: the replies at "
            + ", ".join(step_name_shown(name) for name in unexpected)
            + " were not what the scenario expects (or did not come); recorded as they were",
            file=sys.stderr,
        )
    print(
        f"recorded {counted(behaviour.sessions, 'session')},"
        f" {counted(len(behaviour.steps), 'step')}, against "
        f"{behaviour.target} -> {args.output}"
    )
    return EXIT_OK


def command_compare(args: argparse.Namespace) -> int:
    from smtpload.regression.baseline import load_baseline, save_baseline
    from smtpload.regression.compare import compare, comparison_summary, format_comparison
    from smtpload.regression.junit import junit_xml

    _check_paths(args, [args.baseline], [args.junit, args.json], reports=True)
    if args.update_baseline:
        probe_output(args.baseline)
    baseline = load_baseline(args.baseline)
    current, stats, interrupted = _observe(args, "compare")
    if interrupted:
        print("smtpload: interrupted; nothing compared", file=sys.stderr)
        return EXIT_INTERRUPTED
    if baseline.scenario != current.scenario:
        # Steps are matched by name: another scenario's steps may share names but not commands.
        print(
            "smtpload: warning: the baseline was recorded from scenario"
            f" {shown(baseline.scenario)}, this run is {shown(current.scenario)};"
            " steps are compared by name",
            file=sys.stderr,
        )
    comparison = compare(
        baseline,
        current,
        strict=args.strict,
        max_latency_regression_pct=args.max_latency_regression,
        min_latency_delta_ms=args.min_latency_delta,
    )
    print(format_comparison(comparison), end="")
    writes: list[Callable[[], object]] = []
    if args.junit is not None:
        junit = junit_xml(comparison, suite_name=f"{JUNIT_SUITE_PREFIX}{current.scenario}")
        writes.append(lambda: write_text(args.junit, junit))
    if args.json is not None:
        text = json.dumps(comparison_summary(comparison), indent=2) + "\n"
        writes.append(lambda: write_text(args.json, text))
    no_connection = _why_no_connection(stats) if args.update_baseline else None
    if no_connection is not None:
        # As record refuses to: connect errors are the network's, not the server's behaviour.
        print(
            f"smtpload: no session reached the greeting: {no_connection}; the baseline is"
            " not updated. Check --target and that the server is up.",
            file=sys.stderr,
        )
    elif args.update_baseline:

        def update_baseline() -> None:
            save_baseline(current, args.baseline)
            print(f"baseline updated: {args.baseline}")

        writes.append(update_baseline)
    failed = write_each(writes)
    if failed:
        say_unwritten(failed)
        return EXIT_USAGE
    return comparison.exit_status
