"""An ``rcpt`` step's recipients: the ``RCPT TO`` lines of one message, drawn per message.

The step is one step of the scenario (one name, one histogram) that the engine hands out once
per recipient: ``RecipientSource.lines`` gives the lines of the next message's recipients, and
each is sent and judged in turn (RFC 5321 §4.1.1.3: one RCPT command per recipient). The count
of a ranged step is drawn from the session's own generator (session_random.py), so a seeded run
sends the same recipients each time.

A step whose addresses come from a feed (``RecipientSpec.feed``) takes one row per recipient:
in order, session k's recipients continue through the feed from row (k - 1) mod rows, across
the session's messages (``taken``: how many the step already had in the session), so a row is
a pure function of the session and the recipient's place; at random, each recipient's row is
drawn from the session's generator. A feed's values were checked when the scenario was read
(no ``<``, ``>``, space, CR, LF or NUL) and are sent as they are.

A line is at most ``MAX_RCPT_LINE_OCTETS``: the scenario's reader refuses an address or a feed
value that is longer on its own, but one rendered from variables can still be. ``lines`` stops
at the first such line (so that 10,000 recipients of a megabyte each never fill memory, nor
one pipelined write), and the engine refuses to send it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from smtpload.scenario.model import MAX_RCPT_LINE_OCTETS, FeedOrder, RecipientSpec
from smtpload.scenario.template import Template, parse_template

__all__ = [
    "MAX_RCPT_LINE_OCTETS",
    "RECIPIENT_NUMBER_VARIABLE",
    "RecipientSource",
    "compile_recipients",
]

#: In an ``rcpt`` step's ``to:`` template: the recipient's number within its message (1-based).
RECIPIENT_NUMBER_VARIABLE = "recipient"


@dataclass(frozen=True, slots=True)
class RecipientSource:
    """Where a message's recipients come from (compiled from a ``RecipientSpec``).

    Attributes:
        addresses: the address templates: one (``to:``, with ``{recipient}``), or the list's.
        count_min, count_max: recipients per message (drawn uniformly, both included).
        parameters: the template of what follows ``>`` (RCPT parameters), or None.
        feed: a feed column's addresses (then ``addresses`` is empty), one row per recipient.
        feed_at_random: each recipient's row drawn from the session's generator (else in
            order).
    """

    addresses: tuple[Template, ...]
    count_min: int
    count_max: int
    parameters: Template | None = None
    feed: tuple[str, ...] = field(default=(), repr=False)
    feed_at_random: bool = False

    @property
    def needs_random(self) -> bool:
        """Whether ``lines`` draws from the session's generator (a ranged count, a feed's
        rows at random)."""
        return self.count_min != self.count_max or (bool(self.feed) and self.feed_at_random)

    @property
    def names(self) -> tuple[str, ...]:
        """The variables its templates use (``recipient`` among them, where used)."""
        templates = (*self.addresses, *filter(None, (self.parameters,)))
        return tuple(name for template in templates for name in template.names)

    @property
    def is_constant(self) -> bool:
        """Whether every message gets the same lines (no variable, no range)."""
        return (
            not self.feed
            and self.count_min == self.count_max
            and all(t.is_constant for t in (*self.addresses, *filter(None, (self.parameters,))))
        )

    def lines(
        self,
        rng: random.Random | None,
        variables: Mapping[str, str],
        session: int = 1,
        taken: int = 0,
    ) -> list[bytes]:
        """The ``RCPT TO:<...>`` lines (with CRLF) of the next message's recipients; the last
        is longer than ``MAX_RCPT_LINE_OCTETS`` when one is (the others are not made).

        Args:
            rng: the session's generator; needed only when the count is a range, or the
                rows of a feed are drawn at random.
            variables: the session's variables.
            session: the session's number (1-based): where a feed in order starts.
            taken: the recipients this step already had in the session (the lengths of its
                earlier ``lines``): where a feed in order goes on.
        """
        count = self.count_min
        if self.count_max != self.count_min:
            assert rng is not None, "a ranged count needs the session's generator"
            count = rng.randint(self.count_min, self.count_max)
        params = ""
        if self.parameters is not None:
            params = " " + self.parameters.render(variables)
        if self.feed:
            return self._feed_lines(rng, count, params, session, taken)
        values = dict(variables)
        lines = []
        for number in range(1, count + 1):
            template = self.addresses[(number - 1) % len(self.addresses)]
            values[RECIPIENT_NUMBER_VARIABLE] = str(number)
            address = template.render(values)
            lines.append(line := f"RCPT TO:<{address}>{params}\r\n".encode())
            if len(line) > MAX_RCPT_LINE_OCTETS:
                break
        return lines

    def _feed_lines(
        self, rng: random.Random | None, count: int, params: str, session: int, taken: int
    ) -> list[bytes]:
        rows = len(self.feed)
        if self.feed_at_random:
            assert rng is not None, "a feed at random needs the session's generator"
            picked = [rng.randrange(rows) for _ in range(count)]
        else:
            first = session - 1 + taken
            picked = [(first + number) % rows for number in range(count)]
        lines = []
        for row in picked:
            lines.append(line := f"RCPT TO:<{self.feed[row]}>{params}\r\n".encode())
            if len(line) > MAX_RCPT_LINE_OCTETS:
                break
        return lines


def compile_recipients(spec: RecipientSpec) -> RecipientSource:
    """The source of an ``rcpt`` step's recipients (its templates parsed once per run)."""
    if spec.feed is not None:
        return RecipientSource(
            addresses=(),
            count_min=spec.count_min,
            count_max=spec.count_max,
            parameters=parse_template(spec.parameters) if spec.parameters else None,
            feed=spec.feed.values,
            feed_at_random=spec.feed.order is FeedOrder.RANDOM,
        )
    texts = spec.addresses if spec.address is None else (spec.address,)
    return RecipientSource(
        addresses=tuple(parse_template(text) for text in texts),
        count_min=spec.count_min,
        count_max=spec.count_max,
        parameters=parse_template(spec.parameters) if spec.parameters else None,
    )
