"""Which load a run gets: the scenario's ``load:`` block, with the command line over it.

The rules (README, "Open-loop load"; docs/scenario-language.md, "The load block"):

* A block that sets ``rate`` or ``stages`` runs open loop with no option given.
* ``--rate`` replaces the block's ``rate`` *and* its ``stages``; ``--duration``, ``--ramp``,
  ``--arrivals``, ``--seed``, ``--max-in-flight`` and ``--sessions`` each replace their key.
  ``--duration`` and ``--ramp`` go with a rate: over a block of stages they need ``--rate``.
* ``--concurrency`` given over an open-loop block runs closed loop, as a mail-server engineer
  typing ``--concurrency C --sessions N`` expects: the block's load is set aside (its
  thresholds still apply) and ``--sessions`` (default 1) is the number of sessions. The
  open-loop options are refused with it, as they are without ``--rate``. ``--seed`` is not one
  of them: it is the whole run's seed (each session's draws too), open loop or closed.
* ``--threshold`` replaces the block's thresholds: not decided here (the callers pick the
  list), since the threshold language is report/'s.

Pure: no I/O, no clock. What it cannot decide is the default of ``max_in_flight``, which
depends on the open-file limit (net/fd_limit.py): :class:`LoadPlan` leaves it to the caller.
Messages name the command line's options, and the block's keys as ``load: KEY``.
"""

from __future__ import annotations

from dataclasses import dataclass

from smtpload.load.arrivals import OpenLoop, Stage, stages_of
from smtpload.scenario.durations import MAX_DURATION_S
from smtpload.scenario.model import ARRIVALS, Load

__all__ = ["MAX_IN_FLIGHT", "LoadOptions", "LoadPlan", "LoadPlanError", "plan_load"]

#: The default cap of an open-loop run's sessions in flight (when open files allow that many).
MAX_IN_FLIGHT = 10_000


class LoadPlanError(ValueError):
    """The options and the block do not make a load; the message says what to give."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What the command line (or the API) asked for; None: not given."""

    rate_per_s: float | None = None
    duration_s: float | None = None
    ramp_s: float | None = None
    arrivals: str | None = None
    seed: int | None = None
    max_in_flight: int | None = None
    sessions: int | None = None
    concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """An open-loop run's load, but for the default of ``max_in_flight``.

    Attributes:
        max_in_flight: as given (option or block), or None for the caller's default.
        max_in_flight_from: where it was given, for messages: ``--max-in-flight`` or
            ``load: max_in_flight``.
    """

    stages: tuple[Stage, ...]
    arrivals: str
    max_sessions: int | None
    seed: int | None
    max_in_flight: int | None
    max_in_flight_from: str

    def open_loop(self, max_in_flight: int) -> OpenLoop:
        """The run's :class:`OpenLoop`, with ``max_in_flight`` as decided by the caller."""
        return OpenLoop(
            stages=self.stages,
            max_in_flight=max_in_flight,
            arrivals=self.arrivals,
            max_sessions=self.max_sessions,
            seed=self.seed,
        )


def plan_load(block: Load | None, given: LoadOptions) -> LoadPlan | None:
    """The open-loop load of a run, or None for a closed-loop one (see the module docstring).

    Raises:
        LoadPlanError: an open-loop option with neither --rate nor an open-loop block (or with
            --concurrency), --rate with --concurrency, no end to the run, a ramp longer than
            the duration, or --duration/--ramp over a block of stages without --rate.
    """
    open_options = [
        option
        for option, value in (
            ("--duration", given.duration_s),
            ("--ramp", given.ramp_s),
            ("--max-in-flight", given.max_in_flight),
            ("--arrivals", given.arrivals),
        )
        if value is not None
    ]
    block_open = block is not None and block.open_loop
    if given.rate_per_s is None and not block_open:
        if open_options:
            raise LoadPlanError(f"{open_options[0]} is for open-loop runs: give --rate too")
        return None
    if given.concurrency is not None:
        if given.rate_per_s is not None:
            raise LoadPlanError(
                "--concurrency is for closed-loop runs; with --rate, --max-in-flight caps the "
                "sessions running at once"
            )
        if open_options:
            raise LoadPlanError(
                f"{open_options[0]} is for open-loop runs, and --concurrency runs this one"
                " closed loop (setting the scenario's load: block aside); leave out"
                " --concurrency to run the block's open loop"
            )
        return None  # the command line's closed loop wins over the block's open loop

    if block is None:
        block = Load()  # --rate without a block: every key left out
    sessions = given.sessions if given.sessions is not None else block.sessions
    if given.rate_per_s is not None or not block.stages:
        stages = _rate_stages(block, given, sessions)
    else:
        for option, value in (("--duration", given.duration_s), ("--ramp", given.ramp_s)):
            if value is not None:
                raise LoadPlanError(
                    f"{option} is for a load given by a rate, and the scenario's load: block"
                    f" (line {block.line}) gives stages, whose durations make the run's; give"
                    " --rate too to replace the stages"
                )
        stages = tuple(Stage(stage.duration_s, stage.rate_per_s) for stage in block.stages)
    max_in_flight: int | None
    if given.max_in_flight is not None:
        max_in_flight, max_in_flight_from = given.max_in_flight, "--max-in-flight"
    else:
        max_in_flight, max_in_flight_from = block.max_in_flight, "load: max_in_flight"
    return LoadPlan(
        stages=stages,
        arrivals=given.arrivals or block.arrivals or ARRIVALS[0],
        max_sessions=sessions,
        seed=given.seed if given.seed is not None else block.seed,
        max_in_flight=max_in_flight,
        max_in_flight_from=max_in_flight_from,
    )


def _rate_stages(block: Load, given: LoadOptions, sessions: int | None) -> tuple[Stage, ...]:
    """The stages of a rate (``--rate``, else the block's) with its duration and ramp."""
    if given.rate_per_s is not None:
        rate, rate_from = given.rate_per_s, "--rate"
    else:
        assert block.rate_per_s is not None  # an open-loop block without stages
        rate, rate_from = block.rate_per_s, "load: rate"
    duration, duration_from = given.duration_s, "--duration"
    if duration is None and block.duration_s is not None:
        duration, duration_from = block.duration_s, "load: duration"
    ramp, ramp_from = given.ramp_s, "--ramp"
    if ramp is None and block.ramp_s is not None:
        ramp, ramp_from = block.ramp_s, "load: ramp"
    if duration is None and sessions is None:
        replaced = (
            " (it replaces the scenario's load: stages)"
            if block.stages and given.rate_per_s is not None
            else ""
        )
        raise LoadPlanError(
            f"--rate needs --duration (or --sessions) to know when to stop{replaced}"
        )
    if ramp is not None and duration is not None and ramp > duration:
        raise LoadPlanError(
            f"{ramp_from} {ramp:g} s is longer than {duration_from} {duration:g} s: the run "
            f"would end before it reaches {rate_from}"
        )
    return stages_of(rate, MAX_DURATION_S if duration is None else duration, ramp or 0.0)
