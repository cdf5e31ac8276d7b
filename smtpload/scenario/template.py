"""Templates in sent text: ``{name}`` is a variable, ``{{`` and ``}}`` are literal braces.

A template is parsed once into alternating literal and variable parts, so rendering a session's
command is one ``str.join``. A lone ``}`` is taken literally; a ``{`` that does not start a
``{name}`` is an error, because it is almost always a typo for a variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from smtpload.errors import clipped, shown

__all__ = [
    "Template",
    "TemplateSyntaxError",
    "is_variable_name",
    "not_a_variable_name",
    "parse_template",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_variable_name(text: str) -> bool:
    """Whether ``{text}`` in a template names a variable."""
    return _NAME.fullmatch(text) is not None


def not_a_variable_name(what: str, name: str) -> str:
    """The problem with ``name``, which :func:`is_variable_name` refused, as ``what`` (a variable
    name, a capture group) that templates are to use."""
    return (
        f"{what} {shown(name)} must be a word of letters, digits and _ (not starting with a"
        f" digit) so that {{{clipped(name)}}} can use it"
    )


class TemplateSyntaxError(ValueError):
    """A template is malformed at ``offset`` (0-based, in characters)."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template.

    Attributes:
        parts: literal, name, literal, name, ..., literal (always an odd count).
        name_offsets: where each variable's ``{`` stands in the source text.
    """

    parts: tuple[str, ...]
    name_offsets: tuple[int, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return self.parts[1::2]

    @property
    def is_constant(self) -> bool:
        return len(self.parts) == 1

    def render(self, values: Mapping[str, str]) -> str:
        """Fill in the variables. Raises KeyError for a missing one (validation prevents it)."""
        parts = self.parts
        if len(parts) == 1:
            return parts[0]
        out = list(parts)
        for i in range(1, len(out), 2):
            out[i] = values[out[i]]
        return "".join(out)


def parse_template(text: str) -> Template:
    """Parse ``text``; raise TemplateSyntaxError at the first malformed brace."""
    if "{" not in text and "}}" not in text:
        return Template((text,))
    parts: list[str] = []
    offsets: list[int] = []
    literal: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "{":
            if text.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            match = _NAME.match(text, i + 1)
            if match is None or not text.startswith("}", match.end()):
                raise TemplateSyntaxError(
                    i,
                    "'{' must start a variable such as {from}; write '{{' for a literal '{'",
                )
            parts.append("".join(literal))
            literal = []
            parts.append(match.group())
            offsets.append(i)
            i = match.end() + 1
        elif ch == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        else:
            literal.append(ch)
            i += 1
    parts.append("".join(literal))
    return Template(tuple(parts), tuple(offsets))
