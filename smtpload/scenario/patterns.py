"""The regular expressions a scenario writes (``expect: text``, ``capture``), on RE2.

Reply text comes from the server under test, which may be broken or hostile. A backtracking
engine such as CPython's ``re`` takes exponential time on patterns like ``(a+)+$`` against a
reply that almost matches, and while it runs it holds the event loop and does not even see
Ctrl-C: one bad pattern stops every session. RE2 (``google-re2``) never backtracks: a search
takes time linear in the reply's length, at most in proportion to the pattern's size (its NFA),
usually far less (its DFA), so no reply can make a pattern take exponential time. A time limit
per match would not do: it would still block the loop for its whole length, in every session.

RE2's syntax is Python's without the constructs that need backtracking. Those are rejected here
with what they are and where (``PatternError``), and so is ``{,n}``, which RE2 would silently
read as literal text where Python reads ``{0,n}``. Where valid patterns mean something else
(``\\d``, ``\\w``, ``\\s``, ``\\b`` are ASCII-only; ``$`` is only the end of the text),
docs/scenario-language.md says so. This module is the only one that imports ``re2``, which ships
no type hints; everything it hands out is typed. It uses the package's binding (``re2._re2``)
directly, as the package's own ``re``-like layer does: that layer costs about 10 µs per search
(decoding offsets, building match objects) where the match itself costs 1 µs, and a run checks
every reply.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["PatternError", "ReplyPattern", "compile_capture", "compile_text"]

_NO_MATCH = (-1, -1)  # the span of a group that took no part, or of no match
_SEE = "smtpload matches replies with RE2, which never backtracks (docs/scenario-language.md)"
_FLAGS = "imsU"  # RE2's inline flags: case-insensitive, multi-line, dot-all, ungreedy
# Python's (and PCRE's) constructs that RE2 rejects, by how they start at the error.
_CONSTRUCTS = (
    ("(?P=", "a backreference (?P=name)"),
    ("(?<=", "lookbehind (?<=...)"),
    ("(?<!", "negative lookbehind (?<!...)"),
    ("(?=", "lookahead (?=...)"),
    ("(?!", "negative lookahead (?!...)"),
    ("(?>", "an atomic group (?>...)"),
    ("(?(", "a conditional (?(...)...)"),
    ("(?#", "a comment (?#...)"),
)
_GROUP_NAME = re.compile(r"\(\?P?<([^>=!]*)>")  # (?P<name> or (?<name>, not (?<= or (?<!
# The group openings RE2 accepts: (x, (?:x, (?P<name>x, (?<name>x, (?i) and (?i-s:x.
_VALID_OPEN = re.compile(r"\((?:[^?]|$|\?:|\?P?<[^>=!]*>|\?[imsU-]*[:)])")
_OPEN_MINIMUM = re.compile(r"\{,([0-9]+)\}")  # Python's {,n}; RE2 reads it as literal text


class PatternError(ValueError):
    """A pattern RE2 cannot compile, or one it would read otherwise than Python does.

    Attributes:
        message: what is wrong, for ``FILE:LINE:COL: message``.
        offset: the character of the pattern where it is (0 when it is the whole pattern).
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class ReplyPattern:
    """A compiled pattern, searched (not anchored) in a reply's text.

    Attributes:
        pattern: the pattern as written.
        groups: the names of its named groups, in order (empty for a ``text`` pattern).
    """

    __slots__ = ("_capturing", "_indexes", "_regexp", "_unanchored", "groups", "pattern")

    def __init__(
        self,
        pattern: str,
        regexp: Any,
        indexes: tuple[tuple[str, int], ...],
        *,
        capturing: bool = False,
    ) -> None:
        self.pattern = pattern
        self._capturing = capturing
        self.groups = tuple(name for name, _ in indexes)
        self._indexes = indexes
        self._regexp = regexp
        self._unanchored = _re2().RE2.Anchor.UNANCHORED  # a search, as re.search

    def search(self, text: str) -> bool:
        """Whether the pattern occurs anywhere in ``text``."""
        data = _utf8(text)
        spans = self._regexp.Match(self._unanchored, data, 0, len(data))
        return bool(spans[0] != _NO_MATCH)

    def captures(self, text: str) -> dict[str, str] | None:
        """Each named group's text at the first match ("" for a group that took no part)."""
        data = _utf8(text)
        spans = self._regexp.Match(self._unanchored, data, 0, len(data))
        if spans[0] == _NO_MATCH:
            return None
        found: dict[str, str] = {}
        for name, index in self._indexes:
            start, end = spans[index]
            # Spans fall on character boundaries: the pattern is UTF-8 and \C is refused.
            found[name] = "" if start < 0 else data[start:end].decode("utf-8", "surrogatepass")
        return found

    def __repr__(self) -> str:
        return f"ReplyPattern({self.pattern!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its text, compiled again when unpickled (an RE2 object does not pickle;
        a worker process of ``--workers`` gets the compiled scenario: net/workers.py)."""
        return (_recompile, (self.pattern, self._capturing))


def compile_text(pattern: str) -> ReplyPattern:
    """An ``expect: text`` pattern: only whether it matches counts, so no groups are kept.

    Raises:
        PatternError: what RE2 cannot do, and where.
    """
    # Without captures RE2 answers from its DFA alone: a 64 KiB line in about a millisecond,
    # where finding groups takes the NFA tens of milliseconds on patterns such as (.*a){20}.
    return _compile(pattern, capturing=False)


def compile_capture(pattern: str) -> ReplyPattern:
    """A ``capture`` pattern, whose named groups are found in the reply.

    Raises:
        PatternError: what RE2 cannot do, and where.
    """
    return _compile(pattern, capturing=True)


def _utf8(text: str) -> bytes:
    # Reply text is decoded with U+FFFD for bad bytes, so it holds no lone surrogate; if one
    # came anyway, it is matched as the bytes it would be, never an exception mid-run.
    return text.encode("utf-8", "surrogatepass")


def _re2() -> Any:
    """RE2's binding, imported when the first pattern is compiled, not with this module: a
    scenario without patterns (and a worker process running one) need not load it
    (tests/test_startup.py)."""
    from re2 import _re2 as binding

    return binding


def _compile(pattern: str, *, capturing: bool) -> ReplyPattern:
    try:
        encoded = pattern.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = pattern[exc.start]
        message = f"U+{ord(char):04X} is a lone surrogate, not a character"
        raise PatternError(message, exc.start) from None
    re2 = _re2()
    options = re2.RE2.Options()
    options.log_errors = False  # else absl writes every bad pattern to stderr
    options.never_capture = not capturing
    regexp = re2.RE2(encoded, options)
    if not regexp.ok():
        raise _explained(pattern, regexp.error())
    names: dict[str, int] = {}
    for offset, event, name in _scan(pattern):
        if event == "open-minimum":
            raise PatternError(
                f"{name} means {{0,{name[2:-1]}}} in Python's re but a literal text in RE2:"
                f" write {{0,{name[2:-1]}}}",
                offset,
            )
        if event == "escape" and name == "C":
            raise PatternError(r"\C (one byte) is not supported: write . for any character", offset)
        if event == "open" and name:
            if name in names:
                raise PatternError(f"the group name {name!r} is used twice", offset)
            names[name] = offset
    groups = [
        (bytes(name).decode("utf-8"), int(index)) for name, index in regexp.NamedCapturingGroups()
    ]
    if not capturing:
        groups = []
    return ReplyPattern(
        pattern, regexp, tuple(sorted(groups, key=lambda group: group[1])), capturing=capturing
    )


def _recompile(pattern: str, capturing: bool) -> ReplyPattern:
    """A pickled pattern again (ReplyPattern.__reduce__): it compiled once, so it compiles."""
    return _compile(pattern, capturing=capturing)


def _explained(pattern: str, error: object) -> PatternError:
    """RE2's error ("missing ): (abc", as bytes) as a message and an offset in ``pattern``."""
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    reason, _, arg = text.partition(": ")
    if reason == "pattern too large - compile failed":
        return PatternError(
            "the pattern is too large for RE2's memory bound (8 MiB); counted repetitions"
            " multiply its size: simplify it",
            0,
        )
    offset = _offset(pattern, reason, arg)
    at = pattern[offset:]
    for start, construct in _CONSTRUCTS:
        if at.startswith(start):
            return PatternError(f"{construct} is not supported: {_SEE}", offset)
    if reason == "invalid escape sequence" and len(arg) >= 2:
        letter = arg[1]
        if letter.isdigit():
            return PatternError(f"a backreference (\\{letter}) is not supported: {_SEE}", offset)
        if letter == "Z":
            return PatternError(
                r"\Z is not supported: write \z (or $) for the end of the text", offset
            )
        if letter in "uUN":
            return PatternError(
                f"\\{letter} is not supported: write the character itself, or \\x{{HHHH}}", offset
            )
    if reason == "invalid perl operator" and at.startswith("(?") and len(arg) > 2:
        flag = arg[-1]
        if flag.isalpha() and flag not in _FLAGS:
            return PatternError(
                f"the flag {flag} is not supported (RE2 has i, m, s and U): {_SEE}", offset
            )
    if reason == "bad repetition operator" and arg.endswith("+") and len(arg) >= 2:
        return PatternError(
            f"a possessive quantifier ({arg}) is not supported; RE2 never backtracks, so"
            f" {arg[:-1]} alone does the same",
            offset,
        )
    if reason == "invalid repetition size":
        return PatternError(
            f"a repetition is limited to 1000 (nested repetitions multiply): {arg}", offset
        )
    whole = reason in ("missing )", "unexpected )", "missing ]")  # arg: the rest of the pattern
    return PatternError(
        f"invalid regular expression: {reason if whole or not arg else text}", offset
    )


def _offset(pattern: str, reason: str, arg: str) -> int:
    """Where the error is: RE2 names the offending text, not its position."""
    if reason == "trailing \\":
        return max(len(pattern) - 1, 0)
    events = _scan(pattern)
    if reason in ("missing )", "unexpected )"):
        opened: list[int] = []
        for offset, event, _ in events:
            if event == "open":
                opened.append(offset)
            elif event == "close" and opened:
                opened.pop()
            elif event == "close" and reason == "unexpected )":
                return offset
        return opened[-1] if opened and reason == "missing )" else 0
    candidates = {
        "missing ]": [o for o, e, _ in events if e == "unterminated-class"],
        "invalid perl operator": [
            o for o, e, _ in events if e == "open" and not _VALID_OPEN.match(pattern, o)
        ],
        "invalid escape sequence": [
            o for o, e, _ in events if e == "escape" and pattern.startswith(arg, o)
        ],
    }.get(reason)
    if candidates:
        return candidates[0]
    found = pattern.find(arg) if arg else -1
    return max(found, 0)


def _scan(pattern: str) -> list[tuple[int, str, str]]:
    """The groups, escapes and ``{,n}`` of a pattern, outside classes and ``\\Q...\\E``.

    Events: ``("open", name or "")``, ``("close", "")``, ``("escape", letter)``,
    ``("open-minimum", "{,n}")``, ``("unterminated-class", "")``, each with its offset.
    """
    events: list[tuple[int, str, str]] = []
    i, end = 0, len(pattern)
    while i < end:
        char = pattern[i]
        if char == "\\":
            if pattern.startswith("\\Q", i):  # literal text up to \E
                stop = pattern.find("\\E", i + 2)
                i = end if stop < 0 else stop + 2
                continue
            events.append((i, "escape", pattern[i + 1 : i + 2]))
            i += 2
        elif char == "[":
            stop = _class_end(pattern, i)
            if stop < 0:
                events.append((i, "unterminated-class", ""))
                break
            i = stop
        elif char == "(":
            named = _GROUP_NAME.match(pattern, i)
            events.append((i, "open", named.group(1) if named else ""))
            i += 1
        elif char == ")":
            events.append((i, "close", ""))
            i += 1
        else:
            minimum = _OPEN_MINIMUM.match(pattern, i) if char == "{" else None
            if minimum is not None:
                events.append((i, "open-minimum", minimum.group()))
            i += 1
    return events


def _class_end(pattern: str, start: int) -> int:
    """The offset after the ``]`` closing the class opened at ``start``, or -1."""
    i = start + 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):  # a ] first in a class is literal
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
        elif pattern.startswith("[:", i) and (stop := pattern.find(":]", i + 2)) >= 0:
            i = stop + 2  # [:alpha:]
        elif pattern[i] == "]":
            return i + 1
        else:
            i += 1
    return -1
