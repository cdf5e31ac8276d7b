"""smtpload's Python API: load a scenario, run it, read a summary back.

This is the small, stable surface for programs, test suites and notebooks; the command line is
built from the same parts. It is re-exported by ``smtpload/__init__.py`` lazily, so that
``import smtpload.protocol.wire`` (or any sans-IO module) never imports trio::

    import smtpload

    scenario = smtpload.load_scenario("quickstart")        # a file, or a bundled example
    result = smtpload.run(scenario, target="127.0.0.1:10025", sessions=100, concurrency=10)
    print(result.passed, result.summary["steps"][1]["latency_ms"]["p99"])

What it promises:

* :func:`run` installs no signal handlers of its own, so it can be called from any thread, from
  pytest or from a notebook. A Ctrl-C in the main thread arrives as a plain
  ``KeyboardInterrupt``, as with any Python call (not wrapped in trio's exception groups); the
  command line is what turns Ctrl-C and SIGTERM into a graceful stop with exit status 130.
* It writes nothing unless asked, not even to stderr: ``results_dir=DIR`` writes
  ``DIR/<run-id>/`` as ``smtpload run --results DIR`` does.
* Errors are the ones drawn in :mod:`smtpload.errors`: a bad scenario raises
  :class:`ScenarioError` (every problem, as ``FILE:LINE:COL: message``), a bad argument
  :class:`UsageError`. A server that misbehaves raises nothing: its sessions are counted in the
  summary's ``failures``.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from smtpload.errors import (
    LocalError,
    OutputError,
    Problem,
    RemoteProtocolError,
    ResultsError,
    ScenarioError,
    SmtploadError,
    UsageError,
    shown,
)
from smtpload.load.plan import MAX_IN_FLIGHT, LoadOptions, LoadPlanError, plan_load
from smtpload.load.sources import SourceError, SourceList, parse_sources
from smtpload.net.fd_limit import ensure_open_files, most_connections
from smtpload.net.runner import RunSettings, new_run_id, run_scenario_to_summary
from smtpload.net.source import check_sources
from smtpload.net.tls import TlsNames
from smtpload.net.tls_setup import TlsRequest, compile_for_target
from smtpload.protocol.compiler import undeclared_variables
from smtpload.report.abort import DEFAULT_WARMUP_S, AbortCheck
from smtpload.report.files import probe_output
from smtpload.report.results import SUMMARY_FILE, exit_status, write_results
from smtpload.report.stats import CLOCKS, RunStats
from smtpload.report.thresholds import (
    Threshold,
    ThresholdError,
    evaluate_thresholds,
    parse_scenario_thresholds,
    parse_thresholds,
)
from smtpload.scenario.bundled import is_dir, scenario_path
from smtpload.scenario.loader import load_scenario as _load_scenario_file
from smtpload.scenario.model import (
    TLS_MIN_VERSIONS,
    Origin,
    Scenario,
    Target,
    TlsSettings,
    parse_target,
    server_name_problem,
)

__all__ = [
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
    "arun",
    "load_scenario",
    "read_summary",
    "run",
]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a finished run gives back.

    Attributes:
        summary: the run's summary, exactly the ``summary.json`` contract of the README
            (``sessions``, ``failures``, ``steps`` with ``latency_ms`` percentiles, ...).
        results_dir: the folder the result files were written to, or None when none was asked.
    """

    summary: Mapping[str, Any]
    results_dir: Path | None = None

    @property
    def passed(self) -> bool:
        """Every session started passed, at least one was started, and nothing cut the run."""
        sessions = self.summary["sessions"]
        return (
            not self.summary["interrupted"] and sessions["started"] > 0 and sessions["failed"] == 0
        )

    @property
    def exit_status(self) -> int:
        """The status ``smtpload run`` would exit with: 0 passed, 1 a session failed (with
        ``thresholds``: 0 every one held, 1 one was crossed), 130 interrupted."""
        return exit_status(self.summary)


def load_scenario(scenario: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario: a file, or the name of a bundled example (``quickstart``).

    Raises:
        ScenarioError: the file is not a valid scenario; it holds every problem found.
        UsageError: there is no such file and no bundled example of that name.
    """
    return _load_scenario_file(scenario_path(os.fspath(scenario)))


async def arun(
    scenario: Scenario | str | os.PathLike[str],
    *,
    target: str | None = None,
    sessions: int | None = None,
    concurrency: int | None = None,
    timeout_s: float | None = None,
    variables: Mapping[str, str] | None = None,
    results_dir: str | os.PathLike[str] | None = None,
    clock: str = "kernel",
    thresholds: Sequence[str] | None = None,
    abort_on_threshold: bool = False,
    abort_warmup_s: float = DEFAULT_WARMUP_S,
    tls: str | None = None,
    tls_ca: str | os.PathLike[str] | None = None,
    tls_server_name: str | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    tls_min_version: str | None = None,
    tls_insecure: bool = False,
    tls_resume: bool = True,
    source: str | Sequence[str] | None = None,
    require_pipelining: bool = False,
    workers: int = 1,
) -> RunResult:
    """:func:`run` for a caller that is already inside ``trio.run``.

    It takes the same arguments and returns the same result.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    for name, count in (("sessions", sessions), ("concurrency", concurrency)):
        if count is not None:
            _check_positive_int(name, count)
    if clock not in CLOCKS:
        raise UsageError(f"clock={clock!r}: give one of {', '.join(map(repr, CLOCKS))}")
    if timeout_s is not None and not _is_seconds(timeout_s):
        raise UsageError(f"timeout_s={timeout_s!r}: give a number of seconds above 0, or None")
    if not isinstance(require_pipelining, bool):
        raise UsageError(f"require_pipelining={require_pipelining!r}: give True or False")
    chosen_target = _parse_target(target) if target is not None else scenario.target
    _check_variables(scenario, variables)
    sources = _sources(source)
    request = _tls_request(
        tls=tls,
        ca=tls_ca,
        server_name=tls_server_name,
        cert=tls_cert,
        key=tls_key,
        min_version=tls_min_version,
        insecure=tls_insecure,
        resume=tls_resume,
    )
    compiled, tls_client = compile_for_target(
        scenario,
        chosen_target,
        request,
        timeout_s=timeout_s,
        overrides=variables,
        names=_TLS_NAMES,
        require_pipelining=require_pipelining,
    )
    try:
        plan = plan_load(scenario.load, LoadOptions(sessions=sessions, concurrency=concurrency))
    except LoadPlanError as error:  # none of its refusals concerns these two: kept for safety
        raise UsageError(str(error)) from None
    step_names = ["connect", *compiled.step_names]
    if thresholds is None and scenario.load is not None:
        rules = parse_scenario_thresholds(
            scenario.path,
            scenario.load.thresholds,
            step_names=step_names,
            open_loop=plan is not None,
        )
    else:
        rules = _parse_thresholds(thresholds, step_names, open_loop=plan is not None)
    open_loop = None
    if plan is not None:
        builtin_sink = chosen_target is None
        if plan.max_in_flight is not None:
            ensure_open_files(
                plan.max_in_flight, builtin_sink=builtin_sink, option=plan.max_in_flight_from
            )
            open_loop = plan.open_loop(plan.max_in_flight)
        else:
            open_loop = plan.open_loop(most_connections(MAX_IN_FLIGHT, builtin_sink=builtin_sink))
    if not isinstance(abort_on_threshold, bool):
        raise UsageError(f"abort_on_threshold={abort_on_threshold!r}: give True or False")
    if not _is_seconds(abort_warmup_s):
        raise UsageError(f"abort_warmup_s={abort_warmup_s!r}: give a number of seconds above 0")
    abort = AbortCheck(rules, warmup_s=abort_warmup_s) if abort_on_threshold else None
    if type(workers) is not int or workers < 1:
        raise UsageError(f"workers={workers!r}: give a whole number of processes, 1 or more")
    room = (
        open_loop.max_in_flight if open_loop is not None else min(concurrency or 1, sessions or 1)
    )
    run_id = new_run_id()
    directory = None
    if results_dir is not None and not os.fspath(results_dir):
        # Path("") is the current folder: never what an empty name (an unset setting) meant.
        raise UsageError("results_dir='' is an empty name; give a folder, or None to write nothing")
    if results_dir is not None:
        # Checked before the run, so that a folder that cannot be written costs no sessions.
        directory = Path(results_dir) / run_id
        probe_output(directory / SUMMARY_FILE)
    stats = RunStats(["connect", *compiled.step_names])
    # No signal handling here: that is the command line's (see the module docstring).
    settings = RunSettings(
        open_loop=open_loop,
        sessions=sessions or 1,
        concurrency=concurrency or 1,
        run_id=run_id,
        handle_signals=False,
        print_notices=False,
        clock=clock,
        abort=abort,
        tls=tls_client,
        sources=sources,
        workers=min(workers, room),
    )
    summary = await run_scenario_to_summary(compiled, chosen_target, settings, stats)
    summary["thresholds"] = evaluate_thresholds(rules, summary)
    if directory is not None:
        write_results(directory, summary, stats)
    return RunResult(summary=summary, results_dir=directory)


def run(
    scenario: Scenario | str | os.PathLike[str],
    *,
    target: str | None = None,
    sessions: int | None = None,
    concurrency: int | None = None,
    timeout_s: float | None = None,
    variables: Mapping[str, str] | None = None,
    results_dir: str | os.PathLike[str] | None = None,
    clock: str = "kernel",
    thresholds: Sequence[str] | None = None,
    abort_on_threshold: bool = False,
    abort_warmup_s: float = DEFAULT_WARMUP_S,
    tls: str | None = None,
    tls_ca: str | os.PathLike[str] | None = None,
    tls_server_name: str | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    tls_min_version: str | None = None,
    tls_insecure: bool = False,
    tls_resume: bool = True,
    source: str | Sequence[str] | None = None,
    require_pipelining: bool = False,
    workers: int = 1,
) -> RunResult:
    """Run a scenario as ``sessions`` SMTP sessions, at most ``concurrency`` at a time.

    Args:
        scenario: a loaded :class:`Scenario`, a file, or the name of a bundled example.
        target: the server as ``HOST:PORT`` (``[::1]:2525`` for IPv6). None: the scenario's
            ``target``, and without one the built-in sink, started for this run on a free
            loopback port.
        sessions: sessions to run in total (default 1). Over a scenario whose ``load:``
            block runs open loop (``rate`` or ``stages``), it replaces the block's
            ``sessions`` cap, as ``--sessions`` does.
        concurrency: sessions at the same time, at most (default 1). Given over an
            open-loop ``load:`` block, the run is closed loop, as with ``--concurrency``:
            the block's load is set aside (its thresholds still apply).
        timeout_s: the step timeout, as ``--timeout`` (a step's own ``timeout`` wins).
        variables: values for variables the scenario declares, as ``--var NAME=VALUE``.
        results_dir: write ``results_dir/<run-id>/`` (summary.json, .hgrm, failures.log).
        clock: ``kernel`` (a reply's latency ends when it reached this machine, where the
            platform says; else the run falls back to ``loop``) or ``loop`` (when smtpload
            got to it), as ``--clock``.
        thresholds: pass/fail rules, as ``--threshold`` (``["session.p99<500ms",
            "failed<1%"]``); their verdicts are in ``summary["thresholds"]`` and decide
            :attr:`RunResult.exit_status`. Checked before the first session. None: the
            scenario's ``load: thresholds``; a list (even an empty one) replaces them.
        abort_on_threshold: as ``--abort-on-threshold``: stop early when a threshold (or,
            without one on ``failed``, the default ``failed==0``) is crossed, judged every
            second after ``abort_warmup_s``; ``summary["aborted"]`` then names it and
            :attr:`RunResult.exit_status` is 1.
        abort_warmup_s: as ``--abort-warmup``, in seconds.
        tls: ``"implicit"``: TLS from the first byte (RFC 8314, port 465), as ``--tls
            implicit`` or a ``smtps://HOST:PORT`` target. None: TLS only where the scenario
            has a ``starttls`` step.
        tls_ca: trust the certificates in this PEM file, not the system's store
            (``--tls-ca``). Certificates are verified by default.
        tls_server_name: the name sent as SNI and checked in the certificate (default: the
            target's host), as ``--tls-server-name``.
        tls_cert, tls_key: a client certificate and its key (PEM), as ``--tls-cert`` and
            ``--tls-key``.
        tls_min_version: ``"1.2"`` or ``"1.3"``: refuse a server that offers only an older
            version (the session is a ``tls_error``), as ``--tls-min-version``.
        tls_insecure: do not verify certificates (``--tls-insecure``); ``summary["tls"]
            ["verified"]`` then says False.
        tls_resume: offer the run's newest TLS session in each new connection
            (``--tls-resume on``, the default); False: every handshake is full. The summary
            counts ``tls.resumed`` of ``tls.handshakes``.
        source: local addresses to bind the sessions' sockets to, round-robin by session
            number, as ``--source``: ``"127.0.0.2,127.0.0.3"``, ranges and blocks, or a list
            of such items; ``summary["sources"]`` says the spread. Checked before the first
            session (each address must be this machine's).
        require_pipelining: as ``--require-pipelining``: a session whose server does not
            advertise PIPELINING (RFC 2920) fails as ``unexpected_reply`` at its EHLO step;
            False runs the scenario's ``pipeline:`` groups in lock-step there, and
            ``summary["pipelining"]`` counts the groups run each way.
        workers: worker processes, as ``--workers N`` (README, Every core): 1 (the
            default) runs the sessions in this process; more, each in a process of its own,
            never more than can each have a session at a time. Ctrl-C handling stays the
            caller's: a KeyboardInterrupt here kills the workers with the run.

        Each TLS setting given wins over the scenario target's own (``ca``, ``server_name``,
        ``cert``, ``key``, ``min_version``); they are used only when a session does TLS, and
        the files are read once, before the first session.

    Returns:
        the run's :class:`RunResult`; failed sessions are counted there, never raised.

    Raises:
        ScenarioError: the scenario is invalid (a threshold of its ``load:`` block too, at
            its place in the file).
        UsageError: an argument is invalid (a variable the scenario does not declare, a bad
            target, a count below 1, a threshold that cannot be read or names no step, a TLS
            file that does not exist or cannot be used, ``tls="implicit"`` without a target
            or with a ``starttls`` step).
        OutputError: ``results_dir`` cannot be written (checked before the first session),
            or a result file in it could not be.
    """
    call = functools.partial(
        arun,
        scenario,
        target=target,
        sessions=sessions,
        concurrency=concurrency,
        timeout_s=timeout_s,
        variables=variables,
        results_dir=results_dir,
        clock=clock,
        thresholds=thresholds,
        abort_on_threshold=abort_on_threshold,
        abort_warmup_s=abort_warmup_s,
        tls=tls,
        tls_ca=tls_ca,
        tls_server_name=tls_server_name,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_min_version=tls_min_version,
        tls_insecure=tls_insecure,
        tls_resume=tls_resume,
        source=source,
        require_pipelining=require_pipelining,
        workers=workers,
    )
    try:
        return trio.run(call)
    except BaseExceptionGroup as group:
        # A Ctrl-C reaches whichever session task was running and comes out of trio's
        # nurseries wrapped in groups; a caller of a plain function expects it plain.
        interrupts, _ = group.split(KeyboardInterrupt)
        if interrupts is not None:
            raise KeyboardInterrupt from None
        raise


def read_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a run's ``summary.json``: the file itself, or the results folder holding it.

    Raises:
        ResultsError: the file cannot be read, or it is not a summary smtpload wrote.
    """
    path = Path(path)
    if is_dir(path):
        path = path / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ResultsError(f"cannot read the summary {path}: {error}") from None
    if not (
        isinstance(summary, dict)
        and isinstance(summary.get("smtpload_version"), str)
        and isinstance(summary.get("sessions"), dict)
        and isinstance(summary.get("steps"), list)
    ):
        raise ResultsError(f"{path} is not a summary.json written by smtpload")
    return summary


def _check_variables(scenario: Scenario, variables: Mapping[str, str] | None) -> None:
    # The compiler checks this too, in the command line's words (--var).
    unknown = undeclared_variables(scenario, variables or {})
    if unknown:
        declared = [name for name, _ in scenario.variables]
        raise UsageError(
            f"variables={{{shown(unknown[0])}: ...}}: the scenario declares no variable"
            f" {shown(unknown[0])} (it declares: {', '.join(declared) or 'none'})"
        )
    for name, value in (variables or {}).items():
        if not isinstance(value, str):
            raise UsageError(f"variables[{shown(name)}]: give a str, not {type(value).__name__}")


def _parse_thresholds(
    thresholds: object, step_names: list[str], *, open_loop: bool
) -> list[Threshold]:
    if thresholds is None:
        return []
    if isinstance(thresholds, str) or not isinstance(thresholds, Sequence):
        # A lone string would be read one character at a time.
        raise UsageError(
            f"thresholds={thresholds!r}: give a list of strings, e.g. ['session.p99<500ms']"
        )
    rules = []
    for index, text in enumerate(thresholds):
        if not isinstance(text, str):
            raise UsageError(f"thresholds[{index}]: give a str, not {type(text).__name__}")
        try:
            rules.extend(parse_thresholds([text], step_names=step_names, open_loop=open_loop))
        except ThresholdError as error:
            raise UsageError(f"thresholds[{index}] {error}") from None
    return rules


#: The API's names for the TLS settings, in its error messages.
_TLS_NAMES = TlsNames(
    implicit="tls='implicit'", target="target=", ca="tls_ca", cert="tls_cert", key="tls_key",
    separator="=",
)  # fmt: skip


def _tls_request(
    *,
    tls: str | None,
    ca: str | os.PathLike[str] | None,
    server_name: str | None,
    cert: str | os.PathLike[str] | None,
    key: str | os.PathLike[str] | None,
    min_version: str | None,
    insecure: bool,
    resume: bool,
) -> TlsRequest:
    """The keyword arguments' TLS, checked as the command line's argparse checks its options."""
    if tls not in (None, "implicit"):
        raise UsageError(f"tls={tls!r}: give 'implicit' (TLS from the first byte), or None")
    if min_version is not None and min_version not in TLS_MIN_VERSIONS:
        raise UsageError(
            f"tls_min_version={min_version!r}: give one of"
            f" {', '.join(map(repr, TLS_MIN_VERSIONS))}, or None"
        )
    if server_name is not None and (
        not isinstance(server_name, str) or server_name_problem(server_name) is not None
    ):
        raise UsageError(
            f"tls_server_name={server_name!r}: give a host name, e.g. 'mx.example.test', or None"
        )
    for name, flag in (("tls_insecure", insecure), ("tls_resume", resume)):
        if not isinstance(flag, bool):
            raise UsageError(f"{name}={flag!r}: give True or False")
    files: dict[str, str | None] = {}
    for name, path in (("tls_ca", ca), ("tls_cert", cert), ("tls_key", key)):
        if path is not None and not isinstance(path, str | os.PathLike):
            raise UsageError(f"{name}={path!r}: give a file name (str or Path), or None")
        files[name] = None if path is None else os.fspath(path)
        if files[name] == "":
            raise UsageError(f"{name}='': an empty name; give a file, or None")
    return TlsRequest(
        implicit=tls == "implicit",
        settings=TlsSettings(
            ca_file=files["tls_ca"],
            server_name=server_name,
            cert_file=files["tls_cert"],
            key_file=files["tls_key"],
            min_version=min_version,
            origins=(
                ("ca_file", Origin("tls_ca=")),
                ("cert_file", Origin("tls_cert=")),
                ("key_file", Origin("tls_key=")),
            ),
        ),
        insecure=insecure,
        resume=resume,
    )


def _sources(source: str | Sequence[str] | None) -> SourceList | None:
    """``source=`` as a checked list (the syntax of ``--source``), or None."""
    if source is None:
        return None
    if isinstance(source, str):
        text = source
    elif isinstance(source, Sequence) and all(isinstance(item, str) for item in source):
        text = ",".join(source)
    else:
        raise UsageError(f"source={source!r}: give a string such as '127.0.0.2,127.0.0.3'")
    try:
        sources = parse_sources(text)
    except SourceError as error:
        raise UsageError(f"source= {error}") from None
    check_sources(sources)
    return sources


def _is_seconds(value: object) -> bool:
    """A number of seconds above 0 and finite (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name}={value!r}: give a whole number of 1 or more")


def _parse_target(text: str) -> Target:
    try:
        return parse_target(text)
    except ValueError as error:
        raise UsageError(str(error)) from None
