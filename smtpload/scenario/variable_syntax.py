"""A declared variable's value when it is not a template: a feed's column, a random number,
a random choice (the mapping forms of ``variables:``)::

    variables:
      user: {feed: users.csv, column: address}          # order: in_order (default) or random
      domain: {choice: [example.test, example.org]}     # one of the texts
      n: {random: {min: 1, max: 1000}}                  # a whole number, both ends included

Each is drawn once per session (protocol/variable_sources.py), from the session's own generator
when at random. A choice's texts and a feed's values are taken literally (no ``{template}``).
The feed keys are ``feed_syntax.py``'s; this module reads the rest through the caller's
``NodeReader`` and knows nothing of steps.
"""

from __future__ import annotations

from smtpload.errors import shown
from smtpload.scenario.feed_syntax import FEED_KEYS, read_feed_column
from smtpload.scenario.model import RandomChoice, RandomNumber, VariableValue
from smtpload.scenario.yaml_nodes import NodeReader
from smtpload.scenario.yaml_tree import MappingNode, Node, SequenceNode

__all__ = ["MAX_CHOICES", "RANDOM_LIMIT", "read_variable_source"]

#: The most texts a ``choice:`` may list (a longer list belongs in a feed).
MAX_CHOICES = 10_000

#: A ``random:`` number's ends lie within -RANDOM_LIMIT..RANDOM_LIMIT (2**63 - 1, a signed
#: 64-bit integer: what a server's parser of the number may hold).
RANDOM_LIMIT = 2**63 - 1

_SOURCES = ("feed", "choice", "random")
_KEYS = (*FEED_KEYS, "choice", "random")
_EXAMPLES = "{feed: users.csv, column: address}, {choice: [a, b]} or {random: {min: 1, max: 100}}"


def read_variable_source(node: MappingNode, reader: NodeReader, name: str) -> VariableValue | None:
    """The value source of variable ``name`` written as a mapping, or None after reporting
    what is wrong with it."""
    what = f"variable {shown(name)}"
    keys = reader.mapping(node, f"in {what}", _KEYS)
    sources = [key for key in keys if key in _SOURCES]
    if not sources:
        if len(keys) == len(node.value):  # an unknown key was reported, with a hint
            reader.problem(node, f"{what} takes a template (text), or one of {_EXAMPLES}")
        return None
    for extra in sources[1:]:
        reader.problem(
            keys[extra][0],
            f"{what} takes one of feed, choice and random, not both {sources[0]} and {extra}",
        )
    if len(sources) > 1:
        return None
    source = sources[0]
    if source != "feed":
        for key in ("column", "order"):
            if key in keys:
                reader.problem(keys[key][0], f"{what}: `{key}:` belongs to a feed, not {source}")
                return None
    if source == "feed":
        return read_feed_column(node, keys, reader, what)
    if source == "choice":
        return _choice(keys["choice"][1], reader, what)
    return _random(keys["random"][1], reader, what)


def _choice(node: Node, reader: NodeReader, what: str) -> RandomChoice | None:
    if not isinstance(node, SequenceNode) or not node.value:
        reader.problem(node, f"{what}: choice takes a list of texts, such as [a, b]")
        return None
    if len(node.value) > MAX_CHOICES:
        reader.problem(
            node,
            f"{what}: choice lists {len(node.value):,} texts, more than {MAX_CHOICES:,}; put"
            " them in a feed (a CSV file) instead",
        )
        return None
    choices = []
    for item in node.value:
        text = reader.text(item, f"{what}: choice")
        if text is None:
            return None
        choices.append(text)
    return RandomChoice(tuple(choices))


def _random(node: Node, reader: NodeReader, what: str) -> RandomNumber | None:
    if not isinstance(node, MappingNode):
        reader.problem(node, f"{what}: random takes {{min: A, max: B}}, whole numbers")
        return None
    keys = reader.mapping(node, f"in {what}: random", ("min", "max"))
    ends = []
    for key in ("min", "max"):
        if key not in keys:
            reader.problem(node, f"{what}: random needs `{key}:` (and the other end)")
            return None
        number = reader.number(keys[key][1], f"{what}: random: {key}", whole=True)
        if number is None:
            return None
        if abs(number) > RANDOM_LIMIT:
            reader.problem(
                keys[key][1],
                f"{what}: random: {key} must lie within ±{RANDOM_LIMIT} (a 64-bit integer)",
            )
            return None
        ends.append(int(number))
    if ends[0] > ends[1]:
        reader.problem(
            keys["max"][1], f"{what}: random: max {ends[1]} is below min {ends[0]}; swap them"
        )
        return None
    return RandomNumber(ends[0], ends[1])
