"""How the command line shows itself: ``--help`` pages and usage errors.

Every parser (the top level and each command) uses :class:`HelpFormatter`, so every help page
follows the same rules:

- an option's default is shown as ``(default: VALUE)``, taken from the option itself so that it
  cannot drift from the code; a default of None, False or an empty list means "not given" and
  is not shown. An option whose default is not one value (``--target``: the scenario's target,
  else the built-in sink) says ``(default: ...)`` in its own help, and nothing is added to it;
- descriptions and epilogs are wrapped to the terminal, except indented lines (the examples),
  which are kept as written; no line is broken at a hyphen, so ``--min-latency-delta`` stays
  whole.

:func:`parse_arguments` is ``parse_args`` with one correction: argparse reports an unknown
argument of a command from the top-level parser, with the top level's usage
(``smtpload: error: unrecognized arguments: --bogus``); here the command that got it says so,
with its own usage (``smtpload run: error: ...``).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from smtpload.errors import clipped

__all__ = ["HelpFormatter", "command_parsers", "parse_arguments", "shown_default"]


def shown_default(value: object) -> str | None:
    """``value`` as an option's help shows it, or None when it is not worth showing."""
    if value is None or value is False or value is argparse.SUPPRESS:
        return None
    if isinstance(value, list | tuple | str) and not value:
        return None
    if isinstance(value, float):
        return f"{value:g}"  # 300, not 300.0
    return str(value)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Defaults shown, prose wrapped, examples kept: see the module docstring."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = shown_default(action.default)
        if default is None or not action.option_strings or "(default" in text:
            return action.help
        # The help string is %-expanded by argparse afterwards.
        return f"{text} (default: {default.replace('%', '%%')})"

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines: list[str] = []
        paragraph: list[str] = []

        def wrap_paragraph() -> None:
            lines.extend(
                textwrap.wrap(
                    " ".join(paragraph),
                    width,
                    initial_indent=indent,
                    subsequent_indent=indent,
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
            paragraph.clear()

        for line in text.splitlines():
            if line and not line[0].isspace():
                paragraph.append(line.strip())
                continue
            wrap_paragraph()
            lines.append(indent + line)  # an example, or a blank line: as written
        wrap_paragraph()
        return "\n".join(lines)


def _commands(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    # argparse has no public way to reach a parser's commands; ``_actions`` is where every
    # version keeps them.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each command of ``parser``, by name (empty when it has no commands)."""
    commands = _commands(parser)
    return {} if commands is None else dict(commands.choices)


def parse_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """``parser.parse_args(argv)``, with an unknown argument reported by the command that got it.

    The top level has no options that take a value, so its command is the first word of
    ``argv`` that names it, and anything unknown before that word is the top level's.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(words)
    if not unknown:
        return args
    commands = _commands(parser)
    name = None if commands is None else getattr(args, commands.dest, None)
    if commands is None or name is None:
        parser.error(_unrecognized(unknown))
    before = [word for word in words[: words.index(name)] if word != "--"]
    if before:
        parser.error(_unrecognized(before))
    commands.choices[name].error(_unrecognized(unknown))


#: The longest list of unknown arguments an error repeats, in characters.
_MAX_UNKNOWN_SHOWN = 800


def _unrecognized(words: Sequence[str]) -> str:
    """argparse's own message, repeating an excerpt of each word (errors.shown's rule)."""
    listed = " ".join(clipped(word) for word in words)
    return f"unrecognized arguments: {clipped(listed, _MAX_UNKNOWN_SHOWN)}"
