"""smtpload: SMTP dialogues as YAML scenarios, run as repeatable tests and load.

The data flow, one folder per stage (see README, "How it fits together"):

    scenario YAML -> scenario/     validated model, FILE:LINE:COL errors
                  -> protocol/     sans-IO: compiled steps, session engine, reply parser
                 <-> net/          the only trio/socket code: sessions, runner, built-in sink
                  -> report/       HdrHistograms, summary.json, .hgrm, failures.log, tables
       beside it:    transcripts/  (text -> scenarios), regression/ (baseline, compare, JUnit),
                     cli/          (the command line), api.py (the Python API)

The Python API (``smtpload.run``, ``smtpload.load_scenario``, ...) lives in ``api.py`` and is
imported on first use (PEP 562 ``__getattr__``), so that importing a sans-IO module such as
``smtpload.protocol.wire`` does not import trio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smtpload._version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs only; at run time __getattr__ imports api
    from smtpload.api import (
        LocalError,
        OutputError,
        Problem,
        RemoteProtocolError,
        ResultsError,
        RunResult,
        Scenario,
        ScenarioError,
        SmtploadError,
        UsageError,
        arun,
        load_scenario,
        read_summary,
        run,
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
    "__version__",
    "arun",
    "load_scenario",
    "read_summary",
    "run",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from smtpload import api

        value = getattr(api, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'smtpload' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
