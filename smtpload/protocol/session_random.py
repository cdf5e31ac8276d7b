"""Each session's own random numbers: reproducible from the run's seed and the session's number.

Everything a session draws (a repeat's count, a message's recipients and size, a random variable,
a feed's row at random) comes from one generator made for that session from ``(seed, session)``
alone, never from a generator shared by the run: so the same ``--seed`` gives the same sessions
however the run is split (workers, open-loop arrivals in another order), and a session's draws do
not depend on what other sessions drew before it.

``random.Random`` seeded with a ``str`` hashes it with SHA-512 (version 2 seeding), which is the
same on every Python 3 and platform; the Mersenne Twister is fast and plenty for test traffic (no
draw here is a secret).
"""

from __future__ import annotations

import random

__all__ = ["session_random"]


def session_random(seed: int, session: int) -> random.Random:
    """The generator of session number ``session`` (1-based) of a run seeded with ``seed``."""
    return random.Random(f"smtpload/{seed}/{session}")
