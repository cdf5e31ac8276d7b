"""The grammar of `expect:` values: what a reply must look like, read from YAML nodes.

``loader.py`` walks the file and hands every ``expect`` (and ``greeting``) value here; this
module turns it into a ``model.Expectation`` or reports what is wrong through the caller's
``yaml_nodes.NodeReader``. It knows the short forms (``250``, ``2xx``, ``[250, 251]``,
``"5.1.1"``) and the long form (``code``, ``enhanced``, ``text``, ``capabilities``,
``absent_capabilities``), and nothing about steps, files or YAML parsing.
"""

from __future__ import annotations

import functools
import itertools
import re

from smtpload.errors import shown
from smtpload.scenario.model import Expectation
from smtpload.scenario.patterns import PatternError, compile_text
from smtpload.scenario.yaml_nodes import BOOL_TAG, FLOAT_TAG, INT_TAG, NULL_TAG, STR_TAG, NodeReader
from smtpload.scenario.yaml_tree import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["EXPECT_KEYS", "parse_expectation"]

EXPECT_KEYS = ("code", "enhanced", "text", "capabilities", "absent_capabilities")

# RFC 5321 §4.2: a reply code is three digits, the first 2..5; 1yz is reserved for positive
# preliminary replies, which we accept so a scenario can pin a server that (wrongly) sends one.
_CODE = re.compile(r"[1-5][0-9]{2}")
# A class is a code with some digits left open: 2xx, 25x (the first digit is always given).
_CLASS = re.compile(r"[1-5][0-9xX]{2}")
# RFC 3463 §2: status-code = class "." subject "." detail; class is 2, 4 or 5; subject and
# detail are 1*3digit (0..999). An x (our extension) matches any subject or detail.
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3}|[xX])\.([0-9]{1,3}|[xX])")


def parse_expectation(node: Node, reader: NodeReader, what: str) -> Expectation | None:
    """Read one expectation in any of its forms.

    Args:
        node: the value of ``expect`` (or of ``greeting``).
        reader: reports problems and reads text.
        what: the key it came from, for messages (``"expect"``, ``"greeting"``).

    Returns:
        The expectation, or None after reporting every problem in it.
    """
    if isinstance(node, MappingNode):
        return _long_form(node, reader, what)
    if isinstance(node, ScalarNode):
        if node.tag == NULL_TAG and node.value in ("", "~", "null", "Null", "NULL"):
            reader.problem(
                node,
                f"{what} has no value; give a code such as 250, or remove it to accept any reply",
            )
            return None
        if (node.tag == STR_TAG and "." in node.value) or node.tag == FLOAT_TAG:
            enhanced = _enhanced(node, reader, what)
            return None if enhanced is None else Expectation(enhanced=enhanced)
    codes = _codes(node, reader, what)
    if codes is None:
        return None
    return _shared(Expectation(codes=codes[0], codes_text=codes[1]))


@functools.lru_cache(maxsize=1024)
def _shared(expectation: Expectation) -> Expectation:
    """One object for equal expectations: they are frozen, and the thousands of steps of a
    large file that expect 250 can share one."""
    return expectation


def _long_form(node: MappingNode, reader: NodeReader, what: str) -> Expectation | None:
    if not node.value:
        reader.problem(
            node,
            f"{what} is an empty mapping; give at least one of {', '.join(EXPECT_KEYS)}"
            f" (or remove {what} to accept any reply)",
        )
        return None
    keys = reader.mapping(node, f"in {what}", EXPECT_KEYS)
    ok = len(keys) == len(node.value)  # an unknown or duplicate key was reported
    codes: tuple[frozenset[int], str] | None = None
    enhanced = pattern = None
    capabilities: dict[str, tuple[str, ...]] = {}
    for key, (_, value) in keys.items():
        if key == "code":
            codes = _codes(value, reader, f"{what}: code")
            ok = ok and codes is not None
        elif key == "enhanced":
            enhanced = _enhanced(value, reader, f"{what}: enhanced")
            ok = ok and enhanced is not None
        elif key == "text":
            pattern = _regex(value, reader, f"{what}: text")
            ok = ok and pattern is not None
        else:
            names = _capabilities(value, reader, f"{what}: {key}")
            ok = ok and names is not None
            capabilities[key] = names or ()
    if not ok:
        return None
    return _shared(
        Expectation(
            codes=None if codes is None else codes[0],
            codes_text="" if codes is None else codes[1],
            enhanced=enhanced,
            pattern=pattern,
            capabilities=capabilities.get("capabilities", ()),
            absent_capabilities=capabilities.get("absent_capabilities", ()),
        )
    )


def _codes(node: Node, reader: NodeReader, what: str) -> tuple[frozenset[int], str] | None:
    """A code, a class or a list of them: the matching codes, and the codes as written."""
    if isinstance(node, SequenceNode):
        items: list[Node] = list(node.value)
        if not items:
            reader.problem(node, f"{what} is an empty list; give at least one code such as 250")
            return None
    else:
        items = [node]
    codes: set[int] = set()
    written: list[str] = []
    ok = True
    for item in items:
        one = _one_code(item, reader, what)
        if one is None:
            ok = False
        else:
            codes |= one
            written.append(item.value)
    return (frozenset(codes), ", ".join(written)) if ok else None


def _one_code(node: Node, reader: NodeReader, what: str) -> frozenset[int] | None:
    if not isinstance(node, ScalarNode):
        reader.problem(node, f"{what}: give codes such as 250 or classes such as 2xx, not a list")
        return None
    raw = node.value
    if node.tag == BOOL_TAG:
        reader.problem(node, f"{what}: {shown(raw)} is read by YAML as a boolean, not a reply code")
        return None
    # An int such as 017 (YAML 1.1 octal, 15) or 4:10 (base 60, 250) fails the pattern: a
    # code must be written as the three digits the server sends.
    if node.tag == INT_TAG and _CODE.fullmatch(raw):
        return frozenset({int(raw)})
    if node.tag == STR_TAG and _CLASS.fullmatch(raw):
        digits = [range(10) if ch in "xX" else (int(ch),) for ch in raw]
        return frozenset(a * 100 + b * 10 + c for a, b, c in itertools.product(*digits))
    trap = ""
    if node.tag == INT_TAG and (raw.lstrip("+-").startswith("0") or ":" in raw):
        trap = " (YAML 1.1 reads a leading 0 as octal and 4:10 as base 60)"
    reader.problem(
        node,
        f"{what}: {shown(raw)} is not a reply code{trap}; write three digits from 100 to 599"
        " (250), a class with x for any digit (2xx, 25x), or a list of them",
    )
    return None


def _enhanced(node: Node, reader: NodeReader, what: str) -> str | None:
    raw = reader.text(node, what)
    if raw is None:
        return None
    match = _ENHANCED.fullmatch(raw)
    if match is None:
        reader.problem(
            node,
            f"{what}: {shown(raw)} is not an enhanced status code; write class.subject.detail"
            " (RFC 3463), class 2, 4 or 5, subject and detail 0..999 or x, e.g. 5.1.1 or 2.x.x",
        )
        return None
    return ".".join(part.lower() for part in match.groups())


def _regex(node: Node, reader: NodeReader, what: str) -> str | None:
    raw = reader.text(node, what)
    if raw is None:
        return None
    try:
        compile_text(raw)
    except PatternError as exc:
        advice = "; fix or escape it" if exc.message.startswith("invalid regular") else ""
        reader.problem_at(node, exc.offset, f"{what}: {exc.message}{advice}")
        return None
    return raw


def _capabilities(node: Node, reader: NodeReader, what: str) -> tuple[str, ...] | None:
    items: list[Node] = list(node.value) if isinstance(node, SequenceNode) else [node]
    names: list[str] = []
    ok = True
    for item in items:
        raw = reader.text(item, what)
        if raw is None:
            ok = False
        elif not raw.strip():
            reader.problem(item, f"{what}: a capability must not be empty; write e.g. PIPELINING")
            ok = False
        else:
            # EHLO keywords are case-insensitive (RFC 5321 §2.4); the engine compares upper case.
            names.append(" ".join(raw.split()).upper())
    return tuple(names) if ok else None
