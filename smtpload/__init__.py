"""smtpload: SMTP dialogues as YAML scenarios, run as repeatable tests and load.

The data flow, one module per arrow (see README, "How it fits together"):

    scenario YAML -> scenario.py  (validated model.Scenario, FILE:LINE:COL errors)
                  -> compiler.py  (templates resolved, regexes compiled, bytes pre-encoded)
                  -> engine.py    (sans-IO session state machine: actions out, replies in)
                 <-> net/         (the only trio/socket code: client sessions, runner, sink)
                  -> stats.py     (one HdrHistogram per step)
                  -> report.py    (terminal table, summary.json, .hgrm, failures.log)
"""

from __future__ import annotations

from smtpload._version import __version__

__all__ = ["__version__"]
