"""The collector as a run sets it (net/collector.py): start-up objects frozen, young
collections rarer, and reference cycles still collected. In a child process: the setting is
process-wide and must not leak into the rest of the suite."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import gc, json, weakref
from smtpload.net.collector import YOUNG_COLLECTION_ALLOCATIONS, settle_for_load

before = gc.get_threshold()
settle_for_load()
after = gc.get_threshold()
frozen = gc.get_freeze_count()

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

gone = cycle()
keep = [Node() for _ in range(800)]  # past Python's 700, short of ours
alive_at_800 = gone() is not None
keep += [Node() for _ in range(YOUNG_COLLECTION_ALLOCATIONS)]
print(json.dumps({
    "before": before, "after": after, "frozen": frozen,
    "alive_at_800": alive_at_800, "collected": gone() is None,
}))
"""


def test_a_run_freezes_start_up_objects_and_still_collects_cycles() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(result.stdout)
    assert seen["after"][0] == 7000
    assert seen["after"][1:] == seen["before"][1:]  # the older generations as they were
    assert seen["frozen"] > 1000  # every module's objects, out of every collection
    # A cycle is no longer collected after 700 allocations, but is after 7,000 more.
    assert seen["alive_at_800"] is True
    assert seen["collected"] is True
