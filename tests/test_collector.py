"""The collector as a run sets it (net/collector.py): start-up objects frozen, young
collections rarer, reference cycles still collected, and all of it undone after the run. In a
child process: the setting is process-wide and must not leak into the rest of the suite."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

from smtpload.cli.main import main

CHILD = """
import gc, json, weakref
from smtpload.net.collector import (
    YOUNG_COLLECTION_ALLOCATIONS, restore_collector, settle_for_load,
)

before = gc.get_threshold()
saved = settle_for_load()
after = gc.get_threshold()
frozen = gc.get_freeze_count()

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

gone = cycle()
keep = [Node() for _ in range(before[0] + 100)]  # past Python's own threshold, short of ours
alive_past_default = gone() is not None
keep += [Node() for _ in range(YOUNG_COLLECTION_ALLOCATIONS)]
collected = gone() is None
restore_collector(saved)
print(json.dumps({
    "before": before, "saved": saved, "after": after, "frozen": frozen,
    "alive_past_default": alive_past_default, "collected": collected,
    "restored": gc.get_threshold(), "frozen_after": gc.get_freeze_count(),
}))
"""


def test_a_run_freezes_start_up_objects_still_collects_cycles_and_undoes_it() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(result.stdout)
    assert seen["before"][0] + 100 < 7000  # else the cycle below proves nothing
    assert seen["after"][0] == 7000
    assert seen["after"][1:] == seen["before"][1:]  # the older generations as they were
    assert seen["frozen"] > 1000  # every module's objects, out of every collection
    # A cycle is no longer collected past Python's own threshold, but is after 7,000 more.
    assert seen["alive_past_default"] is True
    assert seen["collected"] is True
    # After the run: the thresholds as they were, nothing frozen.
    assert seen["saved"] == seen["before"] == seen["restored"]
    assert seen["frozen_after"] == 0


def test_the_run_command_leaves_the_collector_of_its_process_as_it_was(tmp_path: Path) -> None:
    # In this process, as a program calling the command line would: the run's setting must
    # not outlive it (the suite's other tests, or the program, go on with Python's own).
    before = gc.get_threshold()
    assert main(["run", "quickstart", "--quiet", "--results", str(tmp_path)]) == 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
