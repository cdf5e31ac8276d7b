"""Checking a reply against what a step expects, with no I/O.

A ``model.Expectation`` says what the user wrote; ``CompiledExpectation`` is the same thing made
fast to check (codes as a frozenset, the regex compiled for RE2, capabilities split) and able to
say in words why a reply does not match. A mismatch is a result, not an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smtpload.errors import clipped
from smtpload.protocol.wire import Reply
from smtpload.scenario.model import Expectation
from smtpload.scenario.patterns import ReplyPattern, compile_text

__all__ = ["CompiledExpectation", "compile_expectation", "ehlo_capabilities", "enhanced_code"]

# RFC 3463 §2: class "." subject "." detail, at the start of the text (RFC 2034 §4 puts it
# right after the reply code's space).
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


def enhanced_code(reply: Reply) -> str | None:
    """The enhanced status code at the start of the reply's first line, if any."""
    match = _ENHANCED.match(reply.lines[0]) if reply.lines else None
    return match.group() if match else None


def ehlo_capabilities(reply: Reply) -> dict[str, tuple[str, ...]]:
    """The EHLO keywords a reply advertises, upper-cased, each with its parameters.

    RFC 5321 §4.1.1.1: the first line of the EHLO reply is the server's name and greeting; each
    following line is ``ehlo-keyword *(SP ehlo-param)``.
    """
    capabilities: dict[str, tuple[str, ...]] = {}
    for line in reply.lines[1:]:
        words = line.upper().split()
        if words:
            capabilities[words[0]] = tuple(words[1:])
    return capabilities


@dataclass(frozen=True, slots=True)
class CompiledExpectation:
    """An expectation ready to check replies.

    Attributes:
        codes: acceptable codes, or None for any.
        enhanced: the enhanced code's three parts, ``"x"`` for any.
        pattern: searched in the reply text (RE2: linear time, see ``scenario.patterns``).
        capabilities: required EHLO keywords with the parameters each must list.
        absent_capabilities: EHLO keywords that must not be advertised.
        description: the whole expectation in words, for reports.
    """

    codes: frozenset[int] | None
    enhanced: tuple[str, str, str] | None
    pattern: ReplyPattern | None
    capabilities: tuple[tuple[str, tuple[str, ...]], ...]
    absent_capabilities: tuple[str, ...]
    description: str

    def mismatch(self, reply: Reply) -> str | None:
        """None when the reply meets every part of the expectation, else why not, in words."""
        codes = self.codes
        if codes is not None and reply.code not in codes:
            return f"reply code {reply.code} is not {self.description_of_codes()}"
        if self.enhanced is not None:
            got = enhanced_code(reply)
            if got is None:
                return f"no enhanced status code, expected {'.'.join(self.enhanced)}"
            for want, part in zip(self.enhanced, got.split("."), strict=True):
                if want != "x" and int(want) != int(part):
                    return f"enhanced status code {got} is not {'.'.join(self.enhanced)}"
        if self.pattern is not None and not self.pattern.search(reply.text):
            return f"reply text does not match /{clipped(self.pattern.pattern)}/"
        if self.capabilities or self.absent_capabilities:
            advertised = ehlo_capabilities(reply)
            for keyword, params in self.capabilities:
                if keyword not in advertised:
                    return f"capability {clipped(keyword)} is not advertised"
                missing = [p for p in params if p not in advertised[keyword]]
                if missing:
                    return (
                        f"capability {clipped(keyword)} does not list {clipped(' '.join(missing))}"
                    )
            for keyword in self.absent_capabilities:
                if keyword in advertised:
                    return f"capability {clipped(keyword)} is advertised but must not be"
        return None

    def description_of_codes(self) -> str:
        return self.description.split(";", 1)[0]


def _describe(expectation: Expectation) -> str:
    parts = [expectation.codes_text or "any code"]
    if expectation.enhanced:
        parts.append(f"enhanced code {expectation.enhanced}")
    if expectation.pattern:
        parts.append(f"text /{clipped(expectation.pattern)}/")
    if expectation.capabilities:
        parts.append("capabilities " + ", ".join(expectation.capabilities))
    if expectation.absent_capabilities:
        parts.append("without " + ", ".join(expectation.absent_capabilities))
    return "; ".join(parts)


def compile_expectation(expectation: Expectation) -> CompiledExpectation:
    """Compile a validated expectation (its regex is known to compile)."""
    enhanced = None
    if expectation.enhanced is not None:
        first, second, third = expectation.enhanced.lower().split(".")
        enhanced = (first, second, third)
    capabilities = []
    for capability in expectation.capabilities:
        words = capability.upper().split()
        capabilities.append((words[0], tuple(words[1:])))
    return CompiledExpectation(
        codes=expectation.codes,
        enhanced=enhanced,
        pattern=compile_text(expectation.pattern) if expectation.pattern is not None else None,
        capabilities=tuple(capabilities),
        absent_capabilities=tuple(c.upper() for c in expectation.absent_capabilities),
        description=_describe(expectation),
    )
