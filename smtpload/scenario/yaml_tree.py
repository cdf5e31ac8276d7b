"""A YAML document as a tree of compact nodes: the parser's events in, nodes with positions out.

This module owns turning YAML text into nodes (what ``yaml.compose`` does) and nothing else: no
values, no messages about what a document means (``yaml_nodes.py`` reads the nodes). It exists
because PyYAML's own composer is the wrong shape for a large file:

* Speed: libyaml's C parser (``yaml.CSafeLoader``, used where PyYAML was built with it) reads
  a 5 MB scenario in well under a second, where the pure-Python parser takes half a minute.
* Memory: PyYAML's nodes carry two ``Mark`` objects each, and a 5 MB scenario became ~140 MB of
  nodes. Here a node keeps its start as one character offset and computes its line and column
  when asked (``start_mark``), from a table of line starts built once per document.
* Safety: libyaml's composer recurses in C, and crashes the interpreter (a segmentation fault)
  on a deeply nested document such as 100,000 ``[``; its parser slows down more than linearly
  with depth. This composer keeps its own stack and stops at ``MAX_DEPTH`` levels, long before
  either matters.

libyaml refuses one thing PyYAML reads: an escape of half a UTF-16 surrogate pair (``"\\ud83d"``),
which the grammar refuses with its own explanation; a text that holds one is read by PyYAML's
parser instead.

The tree is what PyYAML's composer builds, tag for tag: the same resolver gives untagged
scalars their YAML 1.1 tags (``no`` is a bool, ``017`` an int), anchors and aliases are shared
nodes, an undefined alias or a repeated anchor is an error. Line and column are those of
PyYAML's marks (0-based; YAML 1.1's line breaks), whichever parser ran.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import yaml
import yaml.events
import yaml.nodes
import yaml.resolver

__all__ = [
    "MAX_DEPTH",
    "USES_LIBYAML",
    "ComposeError",
    "MappingNode",
    "Mark",
    "Node",
    "ScalarNode",
    "SequenceNode",
    "YamlDocument",
    "compose_document",
]

#: Collections nested deeper than this are refused; no scenario comes near it (a capability
#: list inside an expectation inside a step inside the steps is 5 levels deep).
MAX_DEPTH = 100

#: Whether libyaml's C parser reads documents (PyYAML was built with it), else PyYAML's own.
#: Both give the same events and positions; their syntax error messages are worded apart.
USES_LIBYAML: bool = bool(yaml.__with_libyaml__)
_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = (
    yaml.CSafeLoader if USES_LIBYAML else yaml.SafeLoader
)
_LIBYAML_BAD_ESCAPE = "found invalid Unicode character escape code"
_SURROGATE_ESCAPE = re.compile(r"\\(?:u|U0000)[dD][89a-fA-F][0-9a-fA-F]{2}")
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # YAML 1.1's line breaks
_MAX_REMEMBERED_SCALAR = 16
# What PyYAML's resolver gives every scalar that is not plain (quoted, | or >) and untagged.
_STR_TAG: str = yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG


@dataclass(frozen=True, slots=True)
class Mark:
    """A position in the text: 0-based line and column, and the offset in characters."""

    line: int
    column: int
    index: int


class _Lines:
    """Where each line of a text starts, computed the first time a position is asked for."""

    __slots__ = ("_source", "_starts")

    def __init__(self, source: str) -> None:
        self._source = source
        self._starts: array[int] | None = None

    def mark(self, index: int) -> Mark:
        starts = self._starts
        if starts is None:
            starts = array("q", [0])
            starts.extend(match.end() for match in _LINE_BREAK.finditer(self._source))
            self._starts = starts
        line = bisect_right(starts, index) - 1
        return Mark(line, index - starts[line], index)


class Node:
    """A node of the document.

    Attributes:
        tag: the resolved tag (``tag:yaml.org,2002:str``...), or the one written.
        value: a ScalarNode's text, a SequenceNode's list of nodes, a MappingNode's list of
            (key, value) node pairs in file order.
    """

    __slots__ = ("_lines", "_start", "tag")

    value: Any

    def __init__(self, tag: str, start: int, lines: _Lines) -> None:
        self.tag = tag
        self._start = start
        self._lines = lines

    @property
    def start_mark(self) -> Mark:
        """Where the node starts in the text."""
        return self._lines.mark(self._start)


class ScalarNode(Node):
    """A scalar; ``style`` is how it was written: None (plain), ``'``, ``"``, ``|`` or ``>``."""

    __slots__ = ("style", "value")

    def __init__(self, tag: str, value: str, start: int, lines: _Lines, style: str | None) -> None:
        super().__init__(tag, start, lines)
        self.value = value
        self.style = style


class SequenceNode(Node):
    """A sequence; ``value`` is its items (filled in when the sequence ends)."""

    __slots__ = ("value",)

    def __init__(self, tag: str, start: int, lines: _Lines) -> None:
        super().__init__(tag, start, lines)
        self.value: tuple[Node, ...] = ()


class MappingNode(Node):
    """A mapping; its pairs are kept as one flat tuple, key, value, key, value..."""

    __slots__ = ("_items",)

    def __init__(self, tag: str, start: int, lines: _Lines) -> None:
        super().__init__(tag, start, lines)
        self._items: tuple[Node, ...] = ()

    @property
    def value(self) -> list[tuple[Node, Node]]:
        """The (key, value) pairs, in file order."""
        items = self._items
        return list(zip(items[0::2], items[1::2], strict=True))


class ComposeError(Exception):
    """The events do not make a tree: an undefined alias, a repeated anchor, too deep.

    Attributes:
        line, column: 0-based, where the offending node starts.
        message: what is wrong, for the person who wrote the document.
    """

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """The result of composing a text.

    Attributes:
        root: the document's root node; for a text with no document at all (empty, or only
            comments) a null scalar at the start, as ``yaml.safe_load`` reads it as None.
        second_document: where a second document starts, if there is one.
    """

    root: Node
    second_document: Mark | None


def compose_document(source: str) -> YamlDocument:
    """Compose the first YAML document of ``source``.

    Raises:
        yaml.MarkedYAMLError: a syntax error, at its mark.
        yaml.reader.ReaderError: a character YAML does not allow.
        ComposeError: see there.
    """
    try:
        return _compose_with(_LOADER, source)
    except yaml.MarkedYAMLError as exc:
        # libyaml refuses an escape of half a UTF-16 surrogate pair ("\ud83d"), which PyYAML
        # reads as the lone surrogate it names, and the grammar then explains (yaml_nodes).
        # Only then is the text read again, by PyYAML's slower parser.
        if (
            _LOADER is yaml.SafeLoader
            or exc.problem != _LIBYAML_BAD_ESCAPE
            or not _SURROGATE_ESCAPE.search(source)
        ):
            raise
        try:
            return _compose_with(yaml.SafeLoader, source)
        except ValueError:  # PyYAML's chr() on an escape beyond U+10FFFF: libyaml said it
            raise exc from None


def _compose_with(
    loader_class: type[yaml.SafeLoader] | type[yaml.CSafeLoader], source: str
) -> YamlDocument:
    loader = loader_class(source)
    try:
        lines = _Lines(source)
        loader.get_event()  # StreamStartEvent
        if loader.check_event(yaml.events.StreamEndEvent):
            resolve: Any = loader.resolve  # untyped in the stubs
            null = resolve(yaml.nodes.ScalarNode, "", (True, False))
            return YamlDocument(ScalarNode(null, "", 0, lines, None), None)
        loader.get_event()  # DocumentStartEvent
        root = _compose_root(loader, lines)
        loader.get_event()  # DocumentEndEvent
        second = None
        if not loader.check_event(yaml.events.StreamEndEvent):
            peeked: Any = loader.peek_event()
            start = peeked.start_mark
            second = Mark(start.line, start.column, start.index)
        return YamlDocument(root, second)
    finally:
        loader.dispose()


def _compose_root(loader: yaml.SafeLoader | yaml.CSafeLoader, lines: _Lines) -> Node:
    """The nodes of one document, from its first node event to its last, without recursion."""
    resolve: Any = loader.resolve  # untyped in the stubs
    remembered: dict[str, tuple[str, str]] = {}  # short plain scalar -> (itself, its tag)
    anchors: dict[str, Node] = {}
    # The collections being read, innermost last, and the children each has so far.
    open_nodes: list[Node] = []
    children: list[list[Node]] = []
    scalar_event = yaml.events.ScalarEvent
    alias_event = yaml.events.AliasEvent
    while True:
        event: Any = loader.get_event()  # the stubs type marks as optional; events have them
        kind = type(event)
        node: Node
        if kind is scalar_event:
            value: str = event.value
            tag = event.tag
            if tag is None or tag == "!":
                implicit = event.implicit
                if not implicit[0]:
                    tag = _STR_TAG  # quoted or a block: the resolver's answer, without asking
                elif len(value) <= _MAX_REMEMBERED_SCALAR:
                    # Short plain scalars repeat (keys, 250, true): one string and one answer.
                    known = remembered.get(value)
                    if known is None:
                        tag = resolve(yaml.nodes.ScalarNode, value, implicit)
                        remembered[value] = (value, tag)
                    else:
                        value, tag = known
                else:
                    tag = resolve(yaml.nodes.ScalarNode, value, implicit)
            # libyaml calls the plain style "", PyYAML None.
            node = ScalarNode(tag, value, event.start_mark.index, lines, event.style or None)
            _anchor(anchors, event, node)
        elif kind is alias_event:
            found = anchors.get(event.anchor)
            if found is None:
                mark = event.start_mark
                # The name is not quoted: it may be a secret typed after a `*`.
                message = (
                    "found an undefined alias (a *name with no &name before it; the name is"
                    ' not shown); to start a value with *, quote it: "*..."'
                )
                raise ComposeError(mark.line, mark.column, message)
            node = found
        elif issubclass(kind, yaml.events.CollectionStartEvent):
            if len(open_nodes) >= MAX_DEPTH:
                mark = event.start_mark
                raise ComposeError(
                    mark.line, mark.column, f"more than {MAX_DEPTH} levels of nesting"
                )
            tag = event.tag
            collection: MappingNode | SequenceNode
            if kind is yaml.events.MappingStartEvent:
                if tag is None or tag == "!":
                    tag = resolve(yaml.nodes.MappingNode, None, event.implicit)
                collection = MappingNode(tag, event.start_mark.index, lines)
            else:
                if tag is None or tag == "!":
                    tag = resolve(yaml.nodes.SequenceNode, None, event.implicit)
                collection = SequenceNode(tag, event.start_mark.index, lines)
            _anchor(anchors, event, collection)
            open_nodes.append(collection)
            children.append([])
            continue
        else:  # SequenceEndEvent or MappingEndEvent: the innermost collection is complete
            complete = open_nodes.pop()
            # A tuple holds the children in less memory than the list that gathered them.
            if isinstance(complete, MappingNode):
                complete._items = tuple(children.pop())
            else:
                assert isinstance(complete, SequenceNode)
                complete.value = tuple(children.pop())
            node = complete
        if not open_nodes:
            return node
        children[-1].append(node)


def _anchor(anchors: dict[str, Node], event: Any, node: Node) -> None:
    """Register ``node`` under the event's anchor, if it has one (before its children are
    read, as PyYAML does, so that an alias inside it refers to it)."""
    anchor = event.anchor
    if anchor is None:
        return
    first = anchors.get(anchor)
    if first is not None:
        mark = event.start_mark
        where = first.start_mark.line + 1
        raise ComposeError(
            mark.line,
            mark.column,
            f"an anchor (&name) is defined twice, first on line {where} (the name is not shown)",
        )
    anchors[anchor] = node
