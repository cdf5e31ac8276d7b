"""Declared variables that are drawn, not written: a feed's column, a random number or choice.

Each session takes its values once, when its variables are made (``CompiledScenario.
session_variables``): a feed in order gives session k row (k - 1) mod rows, a pure function of k
(so any split of the run into workers gives each session the same row); a feed at random, a
number and a choice draw from the session's own generator (session_random.py), in the order the
variables are declared, so the same seed gives the same values. Variables of the same feed file
and order share one row per session (``group``): ``user`` and ``name`` of one row stay together.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from smtpload.scenario.model import FeedColumn, FeedOrder, RandomChoice, RandomNumber, VariableValue

__all__ = ["ChoiceSource", "FeedSource", "NumberSource", "Source", "compile_sources"]


@dataclass(frozen=True, slots=True)
class FeedSource:
    """A feed column's values; ``group`` numbers the (file, order) whose row it shares."""

    values: tuple[str, ...] = field(repr=False)
    group: int
    at_random: bool

    def value(self, session: int, rng: random.Random, rows: dict[int, int]) -> str:
        """This session's value; ``rows`` holds the session's row of each group drawn so far."""
        row = rows.get(self.group)
        if row is None:
            if self.at_random:
                row = rng.randrange(len(self.values))
            else:
                row = (session - 1) % len(self.values)
            rows[self.group] = row
        return self.values[row]


@dataclass(frozen=True, slots=True)
class NumberSource:
    minimum: int
    maximum: int

    def value(self, session: int, rng: random.Random, rows: dict[int, int]) -> str:
        return str(rng.randint(self.minimum, self.maximum))


@dataclass(frozen=True, slots=True)
class ChoiceSource:
    choices: tuple[str, ...]

    def value(self, session: int, rng: random.Random, rows: dict[int, int]) -> str:
        return self.choices[rng.randrange(len(self.choices))]


Source = FeedSource | NumberSource | ChoiceSource


def compile_sources(values: Iterable[VariableValue]) -> list[Source | None]:
    """Each value's compiled source, in order (None for a template)."""
    groups: dict[tuple[str, FeedOrder], int] = {}
    out: list[Source | None] = []
    for value in values:
        if isinstance(value, FeedColumn):
            group = groups.setdefault((value.path, value.order), len(groups))
            out.append(FeedSource(value.values, group, value.order is FeedOrder.RANDOM))
        elif isinstance(value, RandomNumber):
            out.append(NumberSource(value.minimum, value.maximum))
        elif isinstance(value, RandomChoice):
            out.append(ChoiceSource(value.choices))
        else:
            out.append(None)
    return out
