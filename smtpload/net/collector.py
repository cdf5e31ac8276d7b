"""Python's cyclic garbage collector during a load run: set for a process that holds many
long-lived sessions and allocates a little for every step.

By default (on Python 3.11 and 3.12 a young collection every 700 allocations, 2,000 on 3.13;
every 10th of those also walks the middle generation) the collector keeps walking the objects
of the sessions in flight, which live for many young collections each and so reach the middle
and old generations; and a full collection walks everything imported. Measured on 3,000
sessions at 100 in parallel against Postfix's smtp-sink (2026-12-03, 2-core VM, Python 3.11):
0.06 s of collections with 1 KiB messages, 0.15 s with 100 KiB (more waits, more of trio's
objects); with the start-up's objects frozen and a young collection every 7,000 allocations,
0.001 s in both. Reference cycles are still collected: one that dies young after up to 7,000
allocations instead of 700, one that lived through young collections in the middle and old
generations, which count young collections and so come ten times rarer too (~70,000 and
~700,000 allocations). A bounded delay, for a run's little cyclic garbage.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_COLLECTION_ALLOCATIONS", "restore_collector", "settle_for_load"]

#: Allocations (less deallocations) between two young collections: 10x Python 3.11's 700.
YOUNG_COLLECTION_ALLOCATIONS = 7000


def settle_for_load() -> tuple[int, int, int]:
    """Freeze the objects made so far (imports, the compiled scenario: they live as long as the
    run) out of every collection, and set young collections to every
    :data:`YOUNG_COLLECTION_ALLOCATIONS`; return the thresholds as they were, for
    ``restore_collector``. Called before the run's loop starts: in the ``run`` command before
    any worker is forked (a forked worker inherits it), and in a worker started afresh."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, before[1], before[2])
    return before


def restore_collector(before: tuple[int, int, int]) -> None:
    """Undo ``settle_for_load`` after the run: the frozen objects collectable again (into the
    old generation) and the thresholds ``before``, so that a process that goes on after a run
    (a test calling the command line's ``main``, a program using it) is left as it was."""
    gc.unfreeze()
    gc.set_threshold(*before)
