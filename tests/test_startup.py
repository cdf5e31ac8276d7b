"""What ``smtpload run`` and a ``--workers`` worker import: the start-up every run pays.

Every run, and every worker process of one, imports what it uses before its first session; in a
short benchmark row (3,000 connections) that fixed cost is a large share of the CPU per message.
The commands a run never uses (record/compare, import/replay), the YAML reader in a worker
(which gets its scenario compiled), RE2 without a pattern, the ``email`` package's MIME builder
without a generated message, the mail file and CSV readers without a file to read, difflib
without a "did you mean", the XML parser, and the workers' channel in a run of one process are
imported where they are needed (never on a session's path: a run out of files cannot open a
module), not with the modules that mention them. The module list is the invariant tested here,
not the time: it holds on any machine, and an eager import added anywhere on the path shows up
by name.

Each case runs in a fresh interpreter (this test process has imported everything), with a
positive control where it can be: a scenario that does use a pattern or a generated message
imports RE2 or ``email.policy``, so an absent module means "not imported", not "not seen".
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from smtpload.cli.main import build_parser
from smtpload.protocol.compiler import compile_scenario
from smtpload.regression.compare import DEFAULT_MIN_LATENCY_DELTA_MS
from smtpload.scenario.loader import parse_scenario
from tests.peers import RecordingPeer

ROOT = Path(__file__).resolve().parent.parent

# A run's whole command line in this interpreter (as `smtpload run ...`), then the modules it
# imported, written to the file named first.
_RUN = """
import json, sys
from smtpload.cli.main import main
status = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"status": status, "modules": sorted(sys.modules)}, out)
"""

# What a worker process imports (`python -m smtpload.net.workers` imports this module), and
# then what unpickling its compiled scenario imports, as the worker's first frame does.
_WORKER = """
import json, pickle, sys
import smtpload.net.workers
pickle.loads(sys.stdin.buffer.read())
print(json.dumps(sorted(sys.modules)))
"""

_PLAIN = """\
name: plain
steps:
  - greeting: 220
  - send: EHLO startup.example.test
    expect: 250
  - send: MAIL FROM:<a@example.test>
    expect: 250
  - send: RCPT TO:<b@example.test>
    expect: 250
  - send: DATA
    expect: 354
  - data: |
      Subject: start-up {uid}

      a plain message
    expect: 250
  - send: QUIT
    expect: 221
"""

# The same dialogue with a reply pattern and a generated (MIME) message.
_PATTERN_AND_MIME = (
    _PLAIN.replace("name: plain", "name: pattern-and-mime")
    .replace(
        "    expect: 250\n  - send: MAIL",
        "    expect: {code: 250, text: '(?i)startup|\\w+'}\n  - send: MAIL",
    )
    .replace(
        "  - data: |\n      Subject: start-up {uid}\n\n      a plain message\n",
        "  - data:\n      headers: {Subject: 'start-up {uid}'}\n      body: a generated message\n",
    )
)

#: What a run of the plain scenario must not import, by package or module name.
_NOT_FOR_A_RUN = (
    "smtpload.api",
    "smtpload.regression",
    "smtpload.transcripts",
    "re2",
    "email.policy",
    "email.message",
    "xml.etree",
    "mailbox",
    "smtpload.protocol.messages",
    "smtpload.scenario.mail_files",
    "mimetypes",
    "smtpload.scenario.feeds",
    "csv",
    "difflib",
)

#: What a run in one process (``--workers 1``) must not import besides: the workers' channel
#: and the merging of their reports.
_NOT_FOR_ONE_PROCESS = (
    "smtpload.net.workers",
    "smtpload.net.shard",
    "smtpload.report.shards",
    "pickle",
)

#: What a worker must not import besides: the scenario's reader (its scenario comes compiled)
#: and the commands.
_NOT_FOR_A_WORKER = (
    *_NOT_FOR_A_RUN,
    "yaml",
    "smtpload.cli",
    "smtpload.scenario.loader",
    "smtpload.scenario.yaml_nodes",
    "smtpload.scenario.step_syntax",
    "smtpload.scenario.rcpt_syntax",
)


def _imported(modules: list[str], names: tuple[str, ...]) -> list[str]:
    """The modules of ``modules`` that are one of ``names`` or inside one of them."""
    return [m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names)]


def _run_modules(scenario: Path, target: RecordingPeer, results: Path) -> list[str]:
    listing = results.parent / f"{scenario.stem}-modules.json"
    run = ["run", str(scenario), "--target", f"{target.host}:{target.port}", "--sessions", "1"]
    options = ["--workers", "1", "--quiet", "--results", str(results)]
    subprocess.run(
        [sys.executable, "-c", _RUN, str(listing), *run, *options],
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    report = json.loads(listing.read_text())
    assert report["status"] == 0  # the session passed: the whole path of a run was taken
    modules: list[str] = report["modules"]
    return modules


def _worker_modules(scenario_text: str) -> list[str]:
    compiled = compile_scenario(parse_scenario(scenario_text))
    result = subprocess.run(
        [sys.executable, "-c", _WORKER],
        input=pickle.dumps(compiled, protocol=pickle.HIGHEST_PROTOCOL),
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    modules: list[str] = json.loads(result.stdout)
    return modules


def test_a_plain_run_imports_nothing_it_does_not_use(
    aiosmtpd_server: RecordingPeer, tmp_path: Path
) -> None:
    scenario = tmp_path / "plain.yaml"
    scenario.write_text(_PLAIN)
    modules = _run_modules(scenario, aiosmtpd_server, tmp_path / "results")
    assert {"hdrh.histogram", "trio"} <= set(modules)  # what a run does use
    assert _imported(modules, _NOT_FOR_A_RUN) == []
    assert _imported(modules, _NOT_FOR_ONE_PROCESS) == []


def test_a_run_imports_re2_and_email_when_its_scenario_uses_them(
    aiosmtpd_server: RecordingPeer, tmp_path: Path
) -> None:
    # The positive control of the test above: the same listing sees the lazy imports.
    scenario = tmp_path / "pattern-and-mime.yaml"
    scenario.write_text(_PATTERN_AND_MIME)
    modules = _run_modules(scenario, aiosmtpd_server, tmp_path / "results")
    assert {"re2", "email.policy", "email.message", "smtpload.protocol.messages"} <= set(modules)
    assert _imported(modules, ("smtpload.regression", "smtpload.transcripts")) == []


def test_a_worker_imports_neither_the_yaml_reader_nor_the_commands() -> None:
    modules = _worker_modules(_PLAIN)
    assert {"smtpload.net.shard", "trio"} <= set(modules)
    assert _imported(modules, _NOT_FOR_A_WORKER) == []


@pytest.mark.parametrize(
    ("scenario_text", "brought"),
    [(_PATTERN_AND_MIME, {"re2", "email.policy"})],
    ids=["pattern-and-mime"],
)
def test_a_worker_imports_what_its_compiled_scenario_needs(
    scenario_text: str, brought: set[str]
) -> None:
    # Unpickling a pattern compiles it again, a generated message's header policy is
    # email's: their modules come with the scenario, and nothing of the reader does.
    modules = _worker_modules(scenario_text)
    assert brought <= set(modules)
    assert _imported(modules, ("yaml", "smtpload.cli", "smtpload.scenario.loader")) == []


def test_compare_s_default_latency_floor_is_the_comparison_s_own() -> None:
    # cli/regression.py gives --min-latency-delta's default as text, so that building the
    # parsers imports no smtpload.regression: it must stay regression.compare's constant.
    args = build_parser().parse_args(["compare", "quickstart", "--baseline", "b.json"])
    assert args.min_latency_delta == DEFAULT_MIN_LATENCY_DELTA_MS


def test_a_run_catches_the_workers_error_it_no_longer_imports_up_front() -> None:
    # cli/main.py names WorkerError through _worker_error(), evaluated as an exception passes:
    # it must be the class net/workers.py raises, or a worker that fails to start would
    # escape as a traceback instead of exit status 1.
    from smtpload.cli.main import _worker_error
    from smtpload.net.workers import WorkerError

    assert _worker_error() is WorkerError
