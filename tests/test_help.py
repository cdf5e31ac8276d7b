"""The command line's help pages and usage errors.

What ``smtpload --help`` and each command's ``--help`` show (every option and positional
explained, every default said, examples that work from any folder), which parser reports an
unknown argument, and that the README's synopsis lists every option. The pages are taken from
the real parser (``build_parser``), so a command or option added later is checked too.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtpload.cli.main import build_parser, main
from smtpload.cli.usage import command_parsers, shown_default
from smtpload.scenario.bundled import find_scenario
from smtpload.scenario.model import Target
from tests.cli import ROOT, smtpload

PARSER = build_parser()
COMMANDS = command_parsers(PARSER)
#: Every help page: the top level's, then each command's.
PAGES = {"smtpload": PARSER, **{f"smtpload {name}": parser for name, parser in COMMANDS.items()}}

#: Arguments that name a file to read (or a bundled scenario), by dest.
SCENARIO_INPUTS = ("scenario", "scenarios", "source")
FILE_INPUTS = ("transcript", "baseline")
#: Arguments that name a file a command writes, by dest: a later example may read it.
OUTPUTS = ("output", "json", "junit")

#: The width the help pages are checked at (COLUMNS), as on a plain terminal.
COLUMNS = 80


def help_page(parser: argparse.ArgumentParser, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", str(COLUMNS))
    return parser.format_help()


def flat(text: str) -> str:
    """``text`` with its line breaks and runs of spaces as single spaces."""
    return " ".join(text.split())


def test_the_commands_are_the_documented_seven() -> None:
    assert list(COMMANDS) == ["run", "validate", "import", "replay", "record", "compare", "sink"]


# --- defaults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, None),
        (False, None),
        ([], None),
        ("", None),
        (argparse.SUPPRESS, None),
        (1, "1"),
        (300.0, "300"),
        (1.5, "1.5"),
        ("auto", "auto"),
        (Path("results"), "results"),
        (Target("127.0.0.1", 2525), "127.0.0.1:2525"),
    ],
    ids=repr,
)
def test_shown_default(value: object, shown: str | None) -> None:
    assert shown_default(value) == shown


@pytest.mark.parametrize("page", PAGES)
def test_every_help_page_shows_each_default(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = PAGES[page]
    text = flat(help_page(parser, monkeypatch))
    for action in parser._actions:
        default = shown_default(action.default)
        if action.option_strings and default is not None:
            assert f"(default: {default})" in text, (action.option_strings, text)
    # "Not given" is no default worth a word.
    for noise in ("None", "False", "True", "[]", "''"):
        assert f"(default: {noise})" not in text


@pytest.mark.parametrize("page", PAGES)
def test_every_default_is_said_the_same_way(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # One form, "(default: ...)", so that a reader (and the test above) finds every one.
    text = flat(help_page(PAGES[page], monkeypatch))
    assert not re.search(r"\(default(?!: )", text), text
    assert "default is" not in text


# --- help text everywhere ---------------------------------------------------------------------


def all_actions(
    parser: argparse.ArgumentParser, page: str = "smtpload"
) -> Iterator[tuple[str, str, object]]:
    """(page, argument, help) for every argument of ``parser`` and of its commands, and for
    each command's line on its parent's page."""
    for action in parser._actions:
        name = "/".join(action.option_strings) or str(action.metavar or action.dest)
        yield page, name, action.help
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield page, f"command {choice.dest}", choice.help
            for command, subparser in action.choices.items():
                yield from all_actions(subparser, f"{page} {command}")


def test_every_option_and_positional_has_help() -> None:
    missing = [
        (page, name)
        for page, name, text in all_actions(PARSER)
        if not isinstance(text, str) or not text.strip() or text == argparse.SUPPRESS
    ]
    assert missing == []


def test_the_help_walk_sees_every_command_and_option() -> None:
    # The check above is only as good as its walk: it must reach the commands' own options.
    seen = {(page, name) for page, name, _ in all_actions(PARSER)}
    assert ("smtpload record", "-o/--output") in seen
    assert ("smtpload compare", "--baseline") in seen
    assert ("smtpload validate", "SCENARIO") in seen
    assert ("smtpload", "command sink") in seen
    assert len({page for page, _ in seen}) == len(PAGES)


def test_top_level_help_lists_every_command_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", str(COLUMNS))
    result = smtpload("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    listing = lines[lines.index(next(line for line in lines if line.startswith("  COMMAND"))) + 1 :]
    listing = listing[: listing.index("")]
    # Each line is "    NAME  help"; a wrapped help would leave a line with no name.
    rows = [line.split(maxsplit=1) for line in listing]
    assert [row[0] for row in rows] == list(COMMANDS), listing
    assert all(len(row) == 2 for row in rows), listing
    assert [line for line in lines if len(line) > COLUMNS] == []


# --- examples ---------------------------------------------------------------------------------


def example_lines(epilog: str) -> list[str]:
    """The example command lines of an epilog, each ``\\``-continued line joined to its own."""
    lines: list[str] = []
    continued = False
    for line in epilog.splitlines():
        if continued:
            lines[-1] = lines[-1].removesuffix("\\") + " " + line.strip()
        elif line.startswith("  "):
            lines.append(line.strip())
        continued = line.endswith("\\")
    return lines


def test_example_lines_joins_continued_lines() -> None:
    epilog = "examples:\n  smtpload run a \\\n      --quiet\n  smtpload sink\nprose\n"
    assert example_lines(epilog) == ["smtpload run a  --quiet", "smtpload sink"]


def resolve_examples(epilog: str, parser: argparse.ArgumentParser) -> list[str]:
    """What is wrong with the ``smtpload`` examples of ``epilog``, run in the current folder
    (which holds nothing): an example that does not parse, or that reads a file which is
    neither a bundled scenario nor one that an earlier example of the same epilog writes."""
    problems = []
    made: set[str] = set()
    for line in example_lines(epilog):
        words = shlex.split(line, comments=True)
        # A shell redirection makes a file (`swaks ... > session.txt`).
        for position, word in enumerate(words[:-1]):
            if word == ">":
                made.add(words[position + 1])
        if words[0] != "smtpload":
            continue
        argv = words[1 : words.index(">")] if ">" in words else words[1:]
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            problems.append(f"does not parse: {line}")
            continue
        for dest in SCENARIO_INPUTS + FILE_INPUTS:
            value = getattr(args, dest, None)
            for name in value if isinstance(value, list) else [] if value is None else [value]:
                bundled = dest in SCENARIO_INPUTS and find_scenario(str(name)) is not None
                if not bundled and str(name) not in made:
                    problems.append(f"{name} is neither bundled nor made before: {line}")
        made.update(str(getattr(args, dest)) for dest in OUTPUTS if getattr(args, dest, None))
    return problems


@pytest.mark.parametrize("page", PAGES)
def test_every_example_works_from_an_empty_folder(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    epilog = PAGES[page].epilog or ""
    assert any(line.startswith("smtpload ") for line in example_lines(epilog)), epilog
    assert resolve_examples(epilog, PARSER) == []


@pytest.mark.parametrize("page", PAGES)
def test_examples_fit_a_terminal(page: str) -> None:
    # Examples (indented) are kept as written, not wrapped: they must fit by themselves.
    epilog = PAGES[page].epilog or ""
    examples = [line for line in epilog.splitlines() if line.startswith(" ")]
    assert [line for line in examples if len(line) >= COLUMNS] == []


@pytest.mark.parametrize(
    ("epilog", "problem"),
    [
        ("  smtpload run scenarios/seed-telnet.yaml", "neither bundled"),
        ("  smtpload validate tests/data/upgrade.yaml", "neither bundled"),
        ("  smtpload import session.txt", "neither bundled"),
        ("  smtpload compare quickstart --baseline b.json", "neither bundled"),
        ("  smtpload run quickstart --sessions 0", "does not parse"),
        ("  smtpload bogus", "does not parse"),
    ],
)
def test_a_broken_example_is_found(
    epilog: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    problems = resolve_examples(epilog, PARSER)
    assert len(problems) == 1
    assert problem in problems[0]


def test_an_example_may_read_what_an_earlier_one_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    epilog = (
        "  printf 'x' > session.txt\n"
        "  smtpload import session.txt -o made.yaml\n"
        "  smtpload record made.yaml -o b.json\n"
        "  smtpload compare quickstart --baseline b.json\n"
    )
    assert resolve_examples(epilog, PARSER) == []


# --- usage errors -----------------------------------------------------------------------------

#: The shortest valid command line of each command.
VALID = {
    "run": ["run", "quickstart"],
    "validate": ["validate", "quickstart"],
    "import": ["import", "session.txt"],
    "replay": ["replay", "quickstart"],
    "record": ["record", "quickstart", "-o", "b.json"],
    "compare": ["compare", "quickstart", "--baseline", "b.json"],
    "sink": ["sink"],
}

#: Arguments no command knows: an option, an option with a value, a positional too many.
UNKNOWN = {"option": ["--bogus"], "option-value": ["--bogus=1"], "positional": ["extra"]}


def test_every_command_has_a_valid_command_line() -> None:
    assert set(VALID) == set(COMMANDS)
    for argv in VALID.values():
        PARSER.parse_args(argv)


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "kind"),
    # validate takes any number of scenarios: no positional is one too many.
    [(c, k) for c in VALID for k in UNKNOWN if (c, k) != ("validate", "positional")],
)
def test_an_unknown_argument_is_reported_by_its_command(
    command: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = UNKNOWN[kind]
    err = usage_error([*VALID[command], *unknown], capsys)
    assert err.startswith(f"usage: smtpload {command} "), err
    assert err.splitlines()[-1] == (
        f"smtpload {command}: error: unrecognized arguments: {' '.join(unknown)}"
    )


@pytest.mark.parametrize("command", VALID)
def test_an_unknown_option_before_the_command_is_the_top_levels(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(["--bogus", *VALID[command]], capsys)
    assert err.startswith("usage: smtpload [-h]"), err
    assert err.splitlines()[-1] == "smtpload: error: unrecognized arguments: --bogus"


def test_unknown_arguments_before_and_after_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The top level's come first: they are the first mistake on the line.
    err = usage_error(["--early", "run", "quickstart", "--late"], capsys)
    assert err.splitlines()[-1] == "smtpload: error: unrecognized arguments: --early"


def test_a_huge_unknown_argument_is_shown_as_an_excerpt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(["run", "quickstart", "--" + "b" * 200_000, *["x"] * 10_000], capsys)
    assert "(200,002 characters)" in err
    assert max(len(line) for line in err.splitlines()) < 1000


def test_an_unknown_argument_through_the_command(tmp_path: Path) -> None:
    # The same, as a user sees it: the real process, its stderr and exit status.
    result = smtpload("run", "quickstart", "--bogus", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: smtpload run ")
    assert result.stderr.endswith("smtpload run: error: unrecognized arguments: --bogus\n")
    assert not (tmp_path / "results").exists()


# --- the README's synopsis --------------------------------------------------------------------

README = ROOT / "README.md"
#: An option in the synopsis: `--max-reply-bytes`, `-o`; not `HOST:PORT` or `auto|telnet`.
OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")


def synopsis(readme: str) -> dict[str, str]:
    """The README's synopsis, by command: the fenced block of ``smtpload COMMAND ...`` lines,
    each command's continuation lines joined to it."""
    blocks = re.findall(r"^```\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    block = next((b for b in blocks if b.startswith("smtpload run SCENARIO")), None)
    assert block is not None, "no synopsis block (```, then smtpload run SCENARIO ...)"
    entries: dict[str, str] = {}
    command = ""
    for line in block.splitlines():
        if line.startswith("smtpload "):
            command = line.split()[1]
            entries[command] = line
        else:
            entries[command] += " " + line.strip()
    return entries


def synopsis_problems(entries: dict[str, str]) -> list[str]:
    """Where the synopsis and the parser differ: a command or option it leaves out, an option
    it names that the command does not have, a positional it calls by another name."""
    problems = [f"no synopsis of {name}" for name in COMMANDS if name not in entries]
    for name, entry in entries.items():
        if name not in COMMANDS:
            problems.append(f"synopsis of a command that does not exist: {name}")
            continue
        mentioned = set(OPTION.findall(entry.removeprefix(f"smtpload {name}")))
        # SCENARIO... and [-o FILE] name SCENARIO and FILE.
        words = {word.removesuffix("...") for word in re.split(r"[\s\[\]]+", entry)}
        known: set[str] = set()
        for action in COMMANDS[name]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            known.update(action.option_strings)
            if action.option_strings and not mentioned & set(action.option_strings):
                problems.append(f"{name}: {'/'.join(action.option_strings)} is not listed")
            if not action.option_strings and str(action.metavar) not in words:
                problems.append(f"{name}: the positional {action.metavar} is not named so")
        problems.extend(f"{name}: {option} is no option of it" for option in mentioned - known)
    return problems


def test_the_readme_synopsis_lists_every_option_of_every_command() -> None:
    assert synopsis_problems(synopsis(README.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("[--force] [--quiet]", "[--force]"), "run: --quiet is not listed"),
        (("[-o SCENARIO.yaml] ", ""), "import: -o/--output is not listed"),
        (("[--strict]\n", "[--strict] [--bogus]\n"), "--bogus is no option of it"),
        (("smtpload validate SCENARIO...\n", ""), "no synopsis of validate"),
        (("smtpload validate SCENARIO...", "smtpload validate FILE..."), "positional SCENARIO"),
    ],
    ids=["missing-option", "missing-short-option", "unknown-option", "missing-command", "named"],
)
def test_a_stale_synopsis_is_found(change: tuple[str, str], problem: str) -> None:
    readme = README.read_text(encoding="utf-8")
    old, new = change
    assert old in readme
    problems = synopsis_problems(synopsis(readme.replace(old, new, 1)))
    assert any(problem in found for found in problems), problems


@pytest.mark.parametrize("command", ["record", "compare"])
def test_record_and_compare_say_they_are_closed_loop_only(command: str) -> None:
    # issue 10: open loop is run's alone for now, and their help says so.
    sub = command_parsers(build_parser())[command]
    text = " ".join(sub.format_help().split())
    assert "Closed loop only (--sessions, --concurrency)" in text
    assert "--rate" not in sub.format_usage()
