"""The grammar of an ``rcpt`` step: one ``RCPT TO`` per recipient of the message, each judged::

    - rcpt: "postmaster@example.test"                     # one address
    - rcpt: ["alice@example.test", "bob@example.test"]   # a list: one RCPT each, in order
    - rcpt:
        to: "user{recipient}@example.test"   # {recipient}: 1, 2, ... within the message
        count: 3                             # or {min: 1, max: 50}, drawn per message
        parameters: "NOTIFY=NEVER"           # after the '>' (RFC 3461)
    - rcpt: {feed: recipients.csv, column: address, count: {min: 1, max: 10}, order: random}

The value becomes a ``RecipientSpec``; ``step_syntax.py`` hands the item here and keeps the
step's options (``expect`` judges each recipient's reply, 250 or 251 by default: RFC 5321
§4.1.1.3, §4.3.2). The address texts are checked here (their literal part, and every value of a
feed's column, since a feed's values are data: no ``<``, ``>``, space, CR, LF or NUL, which
would end the path or the command early); the variables they use are the loader's to check.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from smtpload.errors import shown
from smtpload.scenario.feed_syntax import FEED_KEYS, read_feed_column, value_problem_at
from smtpload.scenario.model import (
    MAX_RCPT_LINE_OCTETS,
    Expectation,
    FeedColumn,
    RecipientSpec,
)
from smtpload.scenario.template import parse_template
from smtpload.scenario.yaml_nodes import NodeReader, is_blank
from smtpload.scenario.yaml_tree import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_RCPT_LINE_OCTETS",
    "MAX_RECIPIENTS_PER_MESSAGE",
    "RCPT_DEFAULT",
    "RECIPIENT_VARIABLE",
    "read_rcpt",
]

#: The most recipients one message of an ``rcpt`` step may get (a count's, a list's length).
#: RFC 5321 §4.5.3.1.8 asks a server to take at least 100, Postfix takes 1000 by default
#: (``smtpd_recipient_limit``); 10,000 leaves room to probe a server's own limit.
MAX_RECIPIENTS_PER_MESSAGE = 10_000

# "RCPT TO:<" ">" CRLF around the address.
_RCPT_FRAME_OCTETS = len(b"RCPT TO:<>\r\n")

#: In an ``rcpt`` step's addresses: the recipient's number within its message (1-based).
RECIPIENT_VARIABLE = "recipient"

#: RFC 5321 §4.3.2: RCPT succeeds with 250, or 251 (user not local; will forward).
RCPT_DEFAULT = Expectation(codes=frozenset({250, 251}), codes_text="250, 251")

_KEYS = ("to", "count", "parameters", *FEED_KEYS)
# What ends a path or a command line early: RFC 5321 §4.1.2 (Path = "<" ... ">"), §2.3.8.
_NOT_IN_ADDRESS = re.compile(r"[<> \r\n\0]")
_NAMES = {"<": "'<'", ">": "'>'", " ": "a space", "\r": "a CR", "\n": "a line break", "\0": "NUL"}

#: Adds a template of the step (its node and text) for the loader's checks; False: malformed.
AddTemplate = Callable[[Node, str], bool]


def read_rcpt(node: Node, reader: NodeReader, add_template: AddTemplate) -> RecipientSpec | None:
    """An ``rcpt`` step's value, or None after reporting what is wrong with it."""
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    if isinstance(node, SequenceNode):
        addresses = _address_list(node, reader, add_template)
        if addresses is None:
            return None
        return RecipientSpec(
            addresses=addresses,
            count_min=len(addresses),
            count_max=len(addresses),
            line=line,
            column=column,
        )
    if not isinstance(node, MappingNode):
        address = _address(node, reader, add_template)
        if address is None:
            return None
        return RecipientSpec(address=address, line=line, column=column)
    keys = reader.mapping(node, "in rcpt", _KEYS)
    if "to" in keys and "feed" in keys:
        reader.problem(
            keys["feed"][0], "rcpt takes its addresses from `to:` or from `feed:`, not both"
        )
        return None
    if "to" not in keys and "feed" not in keys:
        if len(keys) == len(node.value):
            reader.problem(
                node,
                "rcpt needs `to:` (an address, or a list) or `feed:` (a CSV file), e.g. `rcpt:"
                ' {to: "user{recipient}@example.test", count: 3}`',
            )
        return None
    if "feed" not in keys:
        for key in ("column", "order"):
            if key in keys:
                reader.problem(keys[key][0], f"rcpt: `{key}:` belongs to `feed:`")
                return None
    count: tuple[int, int] | None = None
    if "count" in keys:
        count = _count(keys["count"][1], reader)
        if count is None:
            return None
    parameters = ""
    if "parameters" in keys:
        read = _parameters(keys["parameters"][1], reader, add_template)
        if read is None:
            return None
        parameters = read
    if "feed" in keys:
        feed = read_feed_column(node, keys, reader, "rcpt")
        if feed is None or not _feed_addresses(feed, reader):
            return None
        low, high = count or (1, 1)
        return RecipientSpec(
            count_min=low,
            count_max=high,
            parameters=parameters,
            line=line,
            column=column,
            feed=feed,
        )
    to = keys["to"][1]
    if isinstance(to, SequenceNode):
        addresses = _address_list(to, reader, add_template)
        if addresses is None:
            return None
        low, high = count or (len(addresses), len(addresses))
        return RecipientSpec(
            addresses=addresses,
            count_min=low,
            count_max=high,
            parameters=parameters,
            line=line,
            column=column,
        )
    address = _address(to, reader, add_template)
    if address is None:
        return None
    low, high = count or (1, 1)
    return RecipientSpec(
        address=address,
        count_min=low,
        count_max=high,
        parameters=parameters,
        line=line,
        column=column,
    )


def _address_list(
    node: SequenceNode, reader: NodeReader, add_template: AddTemplate
) -> tuple[str, ...] | None:
    if not node.value:
        reader.problem(node, "rcpt: the list of addresses is empty; give at least one")
        return None
    if len(node.value) > MAX_RECIPIENTS_PER_MESSAGE:
        reader.problem(
            node,
            f"rcpt: the list holds {len(node.value):,} addresses, more than the"
            f" {MAX_RECIPIENTS_PER_MESSAGE:,} a message may get; take them from a feed",
        )
        return None
    addresses = [_address(item, reader, add_template) for item in node.value]
    if any(address is None for address in addresses):
        return None
    return tuple(address for address in addresses if address is not None)


def _address(node: Node, reader: NodeReader, add_template: AddTemplate) -> str | None:
    if isinstance(node, (MappingNode, SequenceNode)) or is_blank(node):
        reader.problem(
            node,
            'rcpt: an address is text, such as "user@example.test" (without the <>)',
        )
        return None
    text = reader.text(node, "rcpt")
    if text is None:
        return None
    if not text:
        reader.problem(node, "rcpt: the address is empty (RFC 5321 §4.1.1.3: RCPT needs one)")
        return None
    bad = _NOT_IN_ADDRESS.search(text)
    if bad is not None:
        reader.problem_at(
            node,
            bad.start(),
            f"rcpt: the address {shown(text)} holds {_NAMES[bad.group()]}; write the address"
            " alone, without <> (they are added) and without spaces or line breaks",
        )
        return None
    if not add_template(node, text):
        return None
    literal = "".join(parse_template(text).parts[0::2])
    octets = len(literal.encode()) + _RCPT_FRAME_OCTETS
    if octets > MAX_RCPT_LINE_OCTETS:
        reader.problem(node, _too_long(octets, "its text"))
        return None
    return text


def _too_long(octets: int, what: str) -> str:
    return (
        f"rcpt: the RCPT command line would be at least {octets:,} octets with {what}, over"
        f" the {MAX_RCPT_LINE_OCTETS:,} SMTP allows (RFC 5321 §4.5.3.1.4: 512, and 500 more"
        " for RFC 3461's NOTIFY and ORCPT); a path is at most 256 octets (§4.5.3.1.3)"
    )


def _parameters(node: Node, reader: NodeReader, add_template: AddTemplate) -> str | None:
    text = reader.text(node, "rcpt: parameters")
    if text is None:
        return None
    for ch in ("\r", "\n", "\0"):
        if ch in text:
            reader.problem_at(
                node,
                text.index(ch),
                f"rcpt: parameters hold {_NAMES[ch]}, and they end the RCPT command line",
            )
            return None
    return text if add_template(node, text) else None


def _count(node: Node, reader: NodeReader) -> tuple[int, int] | None:
    """``count: N`` or ``count: {min: A, max: B}``, each from 1 to the bound."""
    if isinstance(node, MappingNode):
        keys = reader.mapping(node, "in rcpt: count", ("min", "max"))
        ends = []
        for key in ("min", "max"):
            if key not in keys:
                reader.problem(node, f"rcpt: count needs `{key}:` (and the other end)")
                return None
            end = _one_count(keys[key][1], reader, f"rcpt: count: {key}")
            if end is None:
                return None
            ends.append(end)
        if ends[0] > ends[1]:
            reader.problem(
                keys["max"][1], f"rcpt: count: max {ends[1]} is below min {ends[0]}; swap them"
            )
            return None
        return ends[0], ends[1]
    if isinstance(node, ScalarNode):
        count = _one_count(node, reader, "rcpt: count")
        return None if count is None else (count, count)
    reader.problem(node, "rcpt: count takes a number, or {min: A, max: B}")
    return None


def _one_count(node: Node, reader: NodeReader, what: str) -> int | None:
    number = reader.number(node, what, whole=True)
    if number is None:
        return None
    if not 1 <= number <= MAX_RECIPIENTS_PER_MESSAGE:
        reader.problem(
            node,
            f"{what} must be from 1 to {MAX_RECIPIENTS_PER_MESSAGE:,} recipients per message",
        )
        return None
    return int(number)


def _feed_addresses(feed: FeedColumn, reader: NodeReader) -> bool:
    """Whether every value of the feed's column can be an address; else the first that
    cannot is reported at its place in the CSV."""
    for row, value in enumerate(feed.values):
        bad = _NOT_IN_ADDRESS.search(value)
        octets = len(value.encode()) + _RCPT_FRAME_OCTETS
        if bad is None and value and octets <= MAX_RCPT_LINE_OCTETS:
            continue
        if bad is None and value:
            value_problem_at(
                reader, feed, row, f"column {shown(feed.column)}: " + _too_long(octets, "it")
            )
            return False
        what = "is empty" if bad is None else f"holds {_NAMES[bad.group()]}"
        value_problem_at(
            reader,
            feed,
            row,
            f"column {shown(feed.column)}: the address {shown(value)} {what}, and an rcpt step"
            " sends each value as the address of RCPT TO:<...> (RFC 5321 §4.1.2); fix the row",
        )
        return False
    return True
