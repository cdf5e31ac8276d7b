"""An ``rcpt`` step's recipients: the ``RCPT TO`` lines of one message, drawn per message.

The step is one step of the scenario (one name, one histogram) that the engine hands out once
per recipient: ``RecipientSource.lines`` gives the lines of the next message's recipients, and
each is sent and judged in turn (RFC 5321 §4.1.1.3: one RCPT command per recipient). The count
of a ranged step is drawn from the session's own generator (session_random.py), so a seeded run
sends the same recipients each time.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from smtpload.scenario.model import RecipientSpec
from smtpload.scenario.template import Template, parse_template

__all__ = ["RECIPIENT_NUMBER_VARIABLE", "RecipientSource", "compile_recipients"]

#: In an ``rcpt`` step's ``to:`` template: the recipient's number within its message (1-based).
RECIPIENT_NUMBER_VARIABLE = "recipient"


@dataclass(frozen=True, slots=True)
class RecipientSource:
    """Where a message's recipients come from (compiled from a ``RecipientSpec``).

    Attributes:
        addresses: the address templates: one (``to:``, with ``{recipient}``), or the list's.
        count_min, count_max: recipients per message (drawn uniformly, both included).
        parameters: the template of what follows ``>`` (RCPT parameters), or None.
    """

    addresses: tuple[Template, ...]
    count_min: int
    count_max: int
    parameters: Template | None = None

    @property
    def needs_random(self) -> bool:
        """Whether ``lines`` draws from the session's generator (a ranged count)."""
        return self.count_min != self.count_max

    @property
    def names(self) -> tuple[str, ...]:
        """The variables its templates use (``recipient`` among them, where used)."""
        templates = (*self.addresses, *filter(None, (self.parameters,)))
        return tuple(name for template in templates for name in template.names)

    @property
    def is_constant(self) -> bool:
        """Whether every message gets the same lines (no variable, no range)."""
        return self.count_min == self.count_max and all(
            t.is_constant for t in (*self.addresses, *filter(None, (self.parameters,)))
        )

    def lines(self, rng: random.Random | None, variables: Mapping[str, str]) -> list[bytes]:
        """The ``RCPT TO:<...>`` lines (with CRLF) of the next message's recipients.

        ``rng``: the session's generator; needed only when the count is a range.
        """
        count = self.count_min
        if self.count_max != self.count_min:
            assert rng is not None, "a ranged count needs the session's generator"
            count = rng.randint(self.count_min, self.count_max)
        params = ""
        if self.parameters is not None:
            params = " " + self.parameters.render(variables)
        values = dict(variables)
        lines = []
        for number in range(1, count + 1):
            template = self.addresses[(number - 1) % len(self.addresses)]
            values[RECIPIENT_NUMBER_VARIABLE] = str(number)
            address = template.render(values)
            lines.append(f"RCPT TO:<{address}>{params}\r\n".encode())
        return lines


def compile_recipients(spec: RecipientSpec) -> RecipientSource:
    """The source of an ``rcpt`` step's recipients (its templates parsed once per run)."""
    texts = spec.addresses if spec.address is None else (spec.address,)
    return RecipientSource(
        addresses=tuple(parse_template(text) for text in texts),
        count_min=spec.count_min,
        count_max=spec.count_max,
        parameters=parse_template(spec.parameters) if spec.parameters else None,
    )
