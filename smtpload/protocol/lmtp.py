"""LMTP's bookkeeping (RFC 2033): whose replies follow a message, and what they are called.

In LMTP the server answers the end of a message not once but once per recipient it accepted
at RCPT, in RCPT order (RFC 2033 §4.2; after BDAT's LAST chunk the same, §4.3). So a session
must know, when the message's final reply is due, which RCPT steps of the current transaction
got a 2xx: ``Recipients`` keeps them, from the replies to MAIL, RCPT and RSET the engine sees.
A recipient refused at RCPT gets no reply after the message, so it is not kept.

The per-recipient replies are reported as parts of the message step, ``NAME/RCPTSTEP``
(``message/rcpt#2``): ``part_name``. The static list of those names, for the run's histograms,
is ``transaction_recipients``: the RCPT steps since the last MAIL or RSET before each message.

Sans-IO: no sockets, no clock; the engine asks, ``net/client.py`` reads the replies.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "PROTOCOL_LMTP",
    "TRANSACTION_RESETS",
    "Recipients",
    "command_verb",
    "part_name",
    "transaction_recipients",
]

#: The ``protocol:`` value of an LMTP scenario.
PROTOCOL_LMTP = "lmtp"

#: MAIL starts a transaction (RFC 5321 §4.1.1.2) and RSET drops one (§4.1.1.5): either way the
#: recipients accepted before it no longer belong to the next message.
TRANSACTION_RESETS = frozenset({"MAIL", "RSET"})


def command_verb(text: str) -> str:
    """A command line's verb, upper case (``RCPT TO:<a>`` -> ``RCPT``; empty for no verb)."""
    words = text.split(None, 1)
    return words[0].partition(":")[0].upper() if words else ""


def part_name(step_name: str, recipient_step: str) -> str:
    """The report name of one recipient's reply to a message: ``message/rcpt#2``."""
    return f"{step_name}/{recipient_step}"


class Recipients:
    """The RCPT steps of the current transaction that the server accepted (2xx), in order."""

    __slots__ = ("_accepted",)

    def __init__(self) -> None:
        self._accepted: list[str] = []

    def on_reply(self, verb: str, step_name: str, code: int) -> None:
        """A reply to a command with ``verb`` (from ``command_verb``) arrived."""
        if verb in TRANSACTION_RESETS:
            self._accepted.clear()
        elif verb == "RCPT" and 200 <= code < 300:
            self._accepted.append(step_name)

    def replies_due(self) -> tuple[str, ...]:
        """The RCPT steps whose replies follow the message's end, in order."""
        return tuple(self._accepted)

    def message_done(self) -> None:
        """The message's replies were read: the transaction is over (RFC 5321 §4.1.1.4)."""
        self._accepted.clear()


def transaction_recipients(
    steps: Sequence[tuple[str, str, bool]],
) -> dict[str, tuple[str, ...]]:
    """For each message step, the RCPT steps of its transaction, as written.

    Args:
        steps: each step's (name, command verb or ``""``, whether it is a message step).

    Returns:
        message step name -> the names of the RCPT steps since the last MAIL or RSET before it
        (a superset of the recipients a session may have accepted: some may be refused).
    """
    result: dict[str, tuple[str, ...]] = {}
    current: list[str] = []
    for name, verb, is_message in steps:
        if is_message:
            result[name] = tuple(current)
            current = []
        elif verb in TRANSACTION_RESETS:
            current = []
        elif verb == "RCPT":
            current.append(name)
    return result
