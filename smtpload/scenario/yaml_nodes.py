"""Reading YAML nodes with their positions: values out, located problems collected.

This module owns the generic reading of a document's node tree, as ``yaml_tree.py`` builds it,
and every message about YAML itself: syntax errors, keys given twice, unknown keys (with a
did-you-mean), and values YAML 1.1 reads as something other than they look. Only the nodes know
where a value stands, which keys are given twice (YAML silently keeps the last), and how a plain
scalar was written: YAML 1.1 reads ``no`` as false, ``017`` as 15 and ``12:30`` as 750, so a
value is taken as text only when its raw text means what YAML made of it.

``NodeReader`` collects each problem as a ``Problem`` at a 1-based line and column; it raises
nothing for a bad document. The grammars that use it say what a document means; this module
must know nothing about them: nothing about SMTP or scenarios, keys or messages of any
particular file format.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import yaml
import yaml.nodes
from yaml.constructor import SafeConstructor

from smtpload.errors import Problem, clipped, closest, shown
from smtpload.scenario.yaml_tree import (
    ComposeError,
    MappingNode,
    Node,
    ScalarNode,
    SequenceNode,
    compose_document,
)

__all__ = [
    "BOOL_TAG",
    "FLOAT_TAG",
    "INT_TAG",
    "NULL_TAG",
    "STR_TAG",
    "TEXT_TAGS",
    "NodeReader",
    "is_blank",
    "is_true",
    "kind_of",
]

_TAG = "tag:yaml.org,2002:"
_SURROGATE = re.compile(r"[\ud800-\udfff]")
STR_TAG = _TAG + "str"
INT_TAG = _TAG + "int"
FLOAT_TAG = _TAG + "float"
BOOL_TAG = _TAG + "bool"
NULL_TAG = _TAG + "null"
# Tags whose raw text is exactly what the user means when text is wanted: YAML may make a date
# of 2024-01-01, but taking the raw text back loses nothing.
TEXT_TAGS = frozenset(_TAG + t for t in ("str", "timestamp", "merge", "value"))
# Numbers written in plain decimal mean the same as text and as numbers. Anything else YAML 1.1
# calls a number (017 octal, 0x1F, 12:30 base 60, 1_000, .inf) is a trap.
_READ_AS_OTHER = frozenset((BOOL_TAG, NULL_TAG, INT_TAG, FLOAT_TAG))
_DECIMAL_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_DECIMAL_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?")
_EXPONENT_WITHOUT_DOT = re.compile(r"[-+]?[0-9]+[eE][-+]?[0-9]+")
_NUMBER_LIKE = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # YAML 1.1's line breaks
_CONSTRUCTOR = SafeConstructor()
# What YAML 1.1 does not allow in a document (PyYAML's reader.NON_PRINTABLE).
_NOT_ALLOWED = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
# No value a document means needs more; Python will not even convert 4300 digits to an int.
_MAX_NUMBER_CHARACTERS = 100
# How YAML 1.1 reads an int that is not plain decimal, by what its digits start with.
_INT_PREFIXES = (("0x", " (hexadecimal)"), ("0b", " (binary)"), ("0", " (octal)"))
# PyYAML's syntax errors that quote a name the user wrote (found undefined tag handle '!x!').
_NAMING = re.compile(r"\b(?:alias|anchor|tag)", re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"")
# What YAML made of a secret, said without its value (a number would tell the digits).
_SECRET_READINGS = {
    BOOL_TAG: "a boolean",
    NULL_TAG: "null",
    INT_TAG: "a number",
    FLOAT_TAG: "a number",
}


class NodeReader:
    """Reads the nodes of one YAML text, collecting every problem found in ``problems``.

    Each reading method returns the value, or None after reporting why it has none, so that a
    grammar can go on and report all of a document's problems at once.

    Args:
        text: the YAML source, composed by ``compose`` and used to locate positions in it.
        path: the file it came from, named in every ``Problem``.
        environ: where ``{env: NAME}`` values are read (default: the process's environment).
    """

    def __init__(self, text: str, path: str, environ: Mapping[str, str] | None = None) -> None:
        self.source = text
        self.path = path
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.problems: list[Problem] = []
        self._lines: list[str] | None = None

    # -- reporting -------------------------------------------------------------------------

    def add(self, line: int, column: int, message: str) -> None:
        """Report a problem at a 0-based position."""
        self.problems.append(Problem(self.path, line + 1, column + 1, message))

    def problem(self, node: Node, message: str) -> None:
        """Report a problem at the start of ``node``."""
        self.add(node.start_mark.line, node.start_mark.column, message)

    def problem_at(self, node: Node, offset: int, message: str) -> None:
        """Report a problem at character ``offset`` of a scalar's value (or at its start)."""
        self.add(*self._locate(node, offset), message)

    def _locate(self, node: Node, offset: int) -> tuple[int, int]:
        """The 0-based position of character ``offset`` of a scalar's value in the source.

        Exact where the value is the source text itself (a one-line plain or quoted scalar
        without escapes, or a line of a ``|`` block); otherwise the scalar's start.
        """
        start = node.start_mark
        value = node.value
        style = node.style if isinstance(node, ScalarNode) else None
        if isinstance(value, str) and style in (None, "'", '"') and "\n" not in value:
            begin = start.index + (1 if style else 0)
            if self.source[begin : begin + len(value)] == value:
                return start.line, start.column + (1 if style else 0) + offset
        elif isinstance(value, str) and style == "|":
            line_start = value.rfind("\n", 0, offset) + 1
            line_end = value.find("\n", offset)
            line_text = value[line_start : len(value) if line_end < 0 else line_end]
            line = start.line + 1 + value.count("\n", 0, offset)
            if self._lines is None:
                self._lines = _LINE_BREAK.split(self.source)
            if line_text and line < len(self._lines) and self._lines[line].endswith(line_text):
                return line, len(self._lines[line]) - len(line_text) + offset - line_start
        return start.line, start.column

    def _position(self, index: int) -> tuple[int, int]:
        """The 0-based line and column of character ``index`` of the source."""
        line = line_start = 0
        for found in _LINE_BREAK.finditer(self.source, 0, index):
            line += 1
            line_start = found.end()
        return line, index - line_start

    # -- the document ----------------------------------------------------------------------

    def compose(self, kind: str) -> Node | None:
        """The single document's root node; YAML errors become problems at their mark.

        An empty text (or one of only comments) reads as a null scalar at line 1, column 1,
        as ``yaml.safe_load`` reads it as None.

        Args:
            kind: what the document is, named in messages such as "a second YAML document
                starts here; a {kind} file holds one".

        Returns:
            The root node, or None after reporting why there is none.
        """
        try:
            document = compose_document(self.source)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = f"YAML syntax error: {_unnamed(exc.problem)}"
            if exc.context:
                message += f" ({_unnamed(exc.context)})"
            if "exceeded maximum nesting depth" in str(exc.problem):
                # libyaml 0.2.6 and later refuse more than 1000 levels of flow collections
                # while scanning, before smtpload's own count of 100 can: the same problem.
                message = (
                    f"the YAML is nested too deeply to be a {kind} (more than 1000 levels,"
                    " libyaml's own limit; a scenario needs 5)"
                )
            # libyaml puts the end of the text on a line after the last one: say the end.
            index = min(mark.index, len(self.source)) if mark else 0
            if "'\\t'" in message or self.source[index : index + 1] == "\t":
                message += "; indent with spaces, not tabs"
            self.add(*self._position(index), message)
            return None
        except yaml.reader.ReaderError as exc:
            # libyaml counts the position in bytes of UTF-8, PyYAML in characters: find the
            # character itself.
            found = _NOT_ALLOWED.search(self.source)
            where = found.start() if found else min(int(exc.position), len(self.source))
            character = ord(found.group()) if found else int(exc.character)
            message = f"character U+{character:04X} is not allowed in YAML; remove it"
            self.add(*self._position(where), message)
            return None
        except ComposeError as exc:
            message = exc.message
            if message.startswith("more than"):
                message = f"the YAML is nested too deeply to be a {kind} ({message})"
            else:
                message = f"YAML syntax error: {message}"
            self.add(exc.line, exc.column, message)
            return None
        except yaml.YAMLError as exc:
            self.add(0, 0, f"YAML error: {exc}")
            return None
        second = document.second_document
        if second is not None:
            message = f"a second YAML document starts here; a {kind} file holds one"
            self.add(second.line, second.column, message + " (remove the `---`, or split the file)")
        return document.root

    # -- reading nodes ---------------------------------------------------------------------

    def mapping(
        self, node: MappingNode, where: str, valid: tuple[str, ...] | None
    ) -> dict[str, tuple[ScalarNode, Node]]:
        """The mapping's keys in file order, reporting non-text, duplicate and unknown keys.

        Args:
            where: where the mapping stands, for messages (``"in target"``).
            valid: the keys allowed here; None allows any.

        Returns:
            Each known key's (key node, value node); a key reported as bad is left out.
        """
        seen: dict[str, ScalarNode] = {}
        known: dict[str, tuple[ScalarNode, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(
                    key_node, f"a key {where} must be a plain word, not a {kind_of(key_node)}"
                )
                continue
            key = key_node.value
            if key in seen:
                self.problem(
                    key_node,
                    f"duplicate key {shown(key)} {where} (first given on line"
                    f" {seen[key].start_mark.line + 1}); YAML would silently keep only the"
                    " last one, so remove one",
                )
                continue
            seen[key] = key_node
            if valid is not None and key not in valid:
                self.problem(key_node, f"unknown key {shown(key)} {where}{_suggest(key, valid)}")
                continue
            known[key] = (key_node, value_node)
        return known

    def _encodable(self, node: Node, what: str, value: str, *, secret: bool) -> str | None:
        """``value``, unless it holds half a UTF-16 surrogate pair: YAML's ``"\\ud83d"``
        escape makes one, and no such text can be sent, nor written to a UTF-8 file."""
        half = _SURROGATE.search(value)
        if half is None:
            return value
        which = "" if secret else f" \\u{ord(half.group()):04x},"
        self.problem(
            node,
            f"{what} holds{which} half of a UTF-16 surrogate pair; write the character itself,"
            " or escape it whole, as in \\U0001F642",
        )
        return None

    def text(self, node: Node, what: str, *, secret: bool = False) -> str | None:
        """A scalar as text: its raw text, if YAML 1.1 did not read it as something else.

        Args:
            secret: the value may be a secret (a password), so no message quotes any of its
                text, nor a tag written on it (the secret itself, typed after a ``!``).
        """
        if not isinstance(node, ScalarNode):
            self.problem(node, f"{what} must be text, not a {kind_of(node)}")
            return None
        if node.tag in TEXT_TAGS:
            return self._encodable(node, what, str(node.value), secret=secret)
        if is_blank(node):
            self.problem(node, f"{what} has no value")
            return None
        if node.tag not in _READ_AS_OTHER and secret:
            self.problem(
                node,
                f"{what}: a YAML tag is not allowed here (its text is not shown); to start a"
                ' value with !, quote it: "!..."',
            )
            return None
        if node.tag not in _READ_AS_OTHER:  # a tag such as !cmd or !!binary
            self.problem(
                node, f"{what}: the YAML tag {shown(node.tag)} is not supported; remove it"
            )
            return None
        reading = _yaml_reading(node)
        if reading is None:
            return str(node.value)
        if secret:
            self.problem(
                node,
                f"{what} is read by YAML as {_SECRET_READINGS[node.tag]}, not as text (its text"
                ' is not shown); put it in quotes: "..."',
            )
            return None
        self.problem(
            node,
            f"value {shown(node.value)} is read by YAML as {reading};"
            f' quote it: "{clipped(node.value)}"',
        )
        return None

    def number(self, node: Node, what: str, *, whole: bool = False) -> float | None:
        """A number written in decimal (an int when ``whole``); None (reported) otherwise."""
        kind = "a whole number" if whole else "a number"
        if not isinstance(node, ScalarNode):
            self.problem(node, f"{what} must be {kind}, not a {kind_of(node)}")
            return None
        raw = node.value
        digits = raw.replace("_", "")  # 10_000 is what it looks like, unlike 017 or 1:30
        if len(digits) > _MAX_NUMBER_CHARACTERS and node.tag in (INT_TAG, FLOAT_TAG):
            # Python refuses to convert an int of more than 4300 digits (CVE-2020-10735).
            self.problem(
                node, f"{what}: a number of {len(digits)} characters is far too large here"
            )
            return None
        if node.tag == INT_TAG and _DECIMAL_INT.fullmatch(digits):
            return int(digits)
        if node.tag == FLOAT_TAG and _DECIMAL_FLOAT.fullmatch(digits):
            if not whole:
                return float(digits)
            self.problem(node, f"{what} must be {kind}, not {clipped(raw)}")
            return None
        if is_blank(node):
            self.problem(node, f"{what} has no value; give {kind}")
            return None
        reading = _yaml_reading(node) if node.tag in (INT_TAG, FLOAT_TAG) else None
        if reading is not None:
            self.problem(
                node,
                f"{what}: {shown(raw)} is read by YAML as {reading}; write {kind} in plain decimal",
            )
        elif node.tag == BOOL_TAG:
            self.problem(node, f"{what} must be {kind}; YAML reads {shown(raw)} as a boolean")
        elif node.style is None and _EXPONENT_WITHOUT_DOT.fullmatch(digits):
            # YAML 1.1's float needs a dot (1.0e-3); 1e-3 is a string to it.
            self.problem(
                node,
                f"{what}: YAML reads a number with an exponent but no dot as text; write"
                f" {kind} in plain decimal, such as {_examples(whole)}",
            )
        elif node.style is not None and _NUMBER_LIKE.fullmatch(digits.strip()):
            self.problem(node, f"{what} must be {kind}: the quotes make it text; remove them")
        else:
            self.problem(
                node,
                f"{what} must be {kind}, such as {_examples(whole)}, not the text {shown(raw)}",
            )
        return None


def _examples(whole: bool) -> str:
    return "100" if whole else "100 or 0.5"


def is_blank(node: Node) -> bool:
    """Whether nothing at all is written for the value (``key:`` alone), not even ``~``."""
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG and node.value == ""


def is_true(node: Node) -> bool:
    """Whether YAML 1.1 reads the node as the boolean true (``true``, ``yes``, ``on``...)."""
    return (
        isinstance(node, ScalarNode)
        and node.tag == BOOL_TAG
        and SafeConstructor.bool_values.get(node.value.lower()) is True
    )


def kind_of(node: Node) -> str:
    """The node's kind as a message names it: mapping, list or single value."""
    if isinstance(node, MappingNode):
        return "mapping"
    if isinstance(node, SequenceNode):
        return "list"
    return "single value"


def _yaml_reading(node: ScalarNode) -> str | None:
    """What YAML 1.1 made of a plain scalar, when that differs from its text; else None."""
    raw = node.value
    if node.tag == BOOL_TAG:
        value = SafeConstructor.bool_values.get(raw.lower())
        return "a boolean" if value is None else f"a boolean ({str(value).lower()})"
    if node.tag == NULL_TAG:
        return "null (no value)"
    if node.tag == INT_TAG and not _DECIMAL_INT.fullmatch(raw):
        digits = raw.lstrip("+-")
        base = next((b for p, b in _INT_PREFIXES if digits.startswith(p)), "")
        base = " (base 60)" if ":" in raw else base
        try:
            return f"the number {_CONSTRUCTOR.construct_yaml_int(_pyyaml(node))}{base}"
        except ValueError:
            return "a number"
    if node.tag == FLOAT_TAG and not _DECIMAL_FLOAT.fullmatch(raw):
        try:
            return f"the number {_CONSTRUCTOR.construct_yaml_float(_pyyaml(node))}"
        except ValueError:
            return "a number"
    return None


def _unnamed(problem: str | None) -> str | None:
    """PyYAML's text of a syntax error, without the name of an alias, anchor or tag it quotes:
    that "name" may be a secret that happens to start with ``*``, ``&`` or ``!``. (libyaml's
    messages quote none; PyYAML's parser, which reads what libyaml cannot, does.)"""
    if problem is None or not _NAMING.search(problem):
        return problem
    return _QUOTED.sub("(the name is not shown)", problem)


def _pyyaml(node: ScalarNode) -> yaml.nodes.ScalarNode:
    """The node as PyYAML's constructor takes it."""
    return yaml.nodes.ScalarNode(node.tag, node.value)


def _suggest(key: str, valid: tuple[str, ...]) -> str:
    close = key.lower() if key.lower() in valid else closest(key, valid)
    if close is not None:
        return f" (did you mean {close!r}?)"
    return f" (valid keys here: {', '.join(valid)})"
