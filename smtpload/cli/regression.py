"""``smtpload record`` and ``smtpload compare``: a server's behaviour, kept and compared.

``record`` runs a scenario in observe mode and saves what every step got as a baseline file;
``compare`` runs it again (against the upgraded server, say) and reports what changed. Both go on
past differences (engine.py's observe mode), so one changed reply is one difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import trio

from smtpload.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_run_options,
    check_outputs,
    milliseconds,
    parse_vars,
    positive_percent,
    scenario_path,
)
from smtpload.errors import UsageError
from smtpload.protocol.compiler import compile_scenario
from smtpload.regression.baseline import Behaviour, load_baseline, save_baseline
from smtpload.regression.compare import (
    DEFAULT_MIN_LATENCY_DELTA_MS,
    compare,
    comparison_summary,
    format_comparison,
)
from smtpload.regression.junit import junit_xml
from smtpload.regression.observe import observe_run
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.model import Target

__all__ = ["add_parsers", "command_compare", "command_record"]

_RECORD_EXAMPLES = """\
example:
  smtpload record tests/data/upgrade.yaml --target 127.0.0.1:10025 -o baseline.json --sessions 20
"""

_COMPARE_EXAMPLES = """\
examples:
  smtpload compare tests/data/upgrade.yaml --baseline baseline.json --target 127.0.0.1:10026
  smtpload compare upgrade.yaml --baseline b.json --target new-mx:25 --sessions 50 \\
      --max-latency-regression 50 --junit report.xml --json diff.json
"""


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``record`` and ``compare`` subcommands."""
    record = commands.add_parser(
        "record",
        help="run a scenario and save what the server answered as a baseline",
        description="Run a scenario in observe mode (a reply that differs from the scenario "
        "does not end the session) and save, per step, the reply codes, enhanced codes, texts, "
        "EHLO capabilities and latency histograms as a baseline file.",
        epilog=_RECORD_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(record)
    record.add_argument("-o", "--output", type=Path, required=True, metavar="BASELINE.json")

    comparing = commands.add_parser(
        "compare",
        help="run a scenario again and report what changed against a baseline",
        description="Run a scenario in observe mode and compare every step with a baseline: "
        "changed reply codes and removed capabilities are regressions; changed texts (volatile "
        "parts such as queue ids aside), added capabilities and enhanced status codes where the "
        "baseline's replies had none are warnings, regressions with --strict. "
        "Exit status 0 no regression, 1 regression, 2 usage.",
        epilog=_COMPARE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(comparing)
    comparing.add_argument("--baseline", type=Path, required=True, metavar="BASELINE.json")
    comparing.add_argument(
        "--max-latency-regression",
        type=positive_percent,
        metavar="PCT",
        help="a p50, p99 or p99.9 more than PCT %% (and --min-latency-delta) above the "
        "baseline's is a regression; p99 is judged only with 100 samples on both sides, "
        "p99.9 with 1,000 (not checked without it)",
    )
    comparing.add_argument(
        "--min-latency-delta",
        type=milliseconds,
        default=DEFAULT_MIN_LATENCY_DELTA_MS,
        metavar="MS",
        help="with --max-latency-regression, a percentile that grew by MS ms or less is no "
        "regression, whatever the percentage (default: %(default)g; 0 turns it off)",
    )
    comparing.add_argument(
        "--strict",
        action="store_true",
        help="changed texts, added capabilities and added enhanced codes are regressions too",
    )
    comparing.add_argument(
        "--junit", type=Path, metavar="PATH", help="write JUnit XML here: one test case per step"
    )
    comparing.add_argument(
        "--json", type=Path, metavar="PATH", help="write the comparison as JSON here"
    )
    comparing.add_argument(
        "--update-baseline",
        action="store_true",
        help="after printing the differences, save this run as the baseline",
    )


def _check_paths(args: argparse.Namespace, inputs: list[Path], outputs: list[Path | None]) -> None:
    """Check the output paths before anything runs, so that a bad one fails at once."""
    check_outputs([scenario_path(args.scenario), *inputs], outputs)


def _observe(args: argparse.Namespace, run_id: str) -> tuple[Behaviour, bool]:
    """Run the scenario of ``args`` in observe mode: (what it saw, whether interrupted)."""
    scenario = load_scenario(scenario_path(args.scenario))
    compiled = compile_scenario(scenario, timeout_s=args.timeout, overrides=parse_vars(args.var))
    target: Target | None = args.target or scenario.target
    return trio.run(
        lambda: observe_run(
            compiled,
            target,
            sessions=args.sessions,
            concurrency=args.concurrency,
            run_id=run_id,
            handle_signals=True,
        )
    )


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None


def command_record(args: argparse.Namespace) -> int:
    _check_paths(args, [], [args.output])
    behaviour, interrupted = _observe(args, "record")
    if interrupted:
        print("smtpload: interrupted; no baseline written", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        save_baseline(behaviour, args.output)
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error.strerror or error}") from None
    steps = len(behaviour.steps)
    # A baseline is what the server did, even where the scenario expected otherwise; but a
    # baseline of failures is rarely what was meant, so say so.
    unexpected = [s.name for s in behaviour.steps if s.unexpected or "connect_error" in s.events]
    if unexpected:
        print(
            "smtpload: warning: the replies at "
            + ", ".join(unexpected)
            + " were not what the scenario expects (or did not come); recorded as they were",
            file=sys.stderr,
        )
    print(
        f"recorded {behaviour.sessions} session(s), {steps} steps, against "
        f"{behaviour.target} -> {args.output}"
    )
    return EXIT_OK


def command_compare(args: argparse.Namespace) -> int:
    _check_paths(args, [args.baseline], [args.junit, args.json])
    baseline = load_baseline(args.baseline)
    current, interrupted = _observe(args, "compare")
    if interrupted:
        print("smtpload: interrupted; nothing compared", file=sys.stderr)
        return EXIT_INTERRUPTED
    if baseline.scenario != current.scenario:
        # Steps are matched by name: another scenario's steps may share names but not commands.
        print(
            f"smtpload: warning: the baseline was recorded from scenario {baseline.scenario!r},"
            f" this run is {current.scenario!r}; steps are compared by name",
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
    if args.junit is not None:
        _write(args.junit, junit_xml(comparison, suite_name=current.scenario))
    if args.json is not None:
        _write(args.json, json.dumps(comparison_summary(comparison), indent=2) + "\n")
    if args.update_baseline:
        save_baseline(current, args.baseline)
        print(f"baseline updated: {args.baseline}")
    return comparison.exit_status
