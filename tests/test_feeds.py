"""Data feeds and random built-ins in ``variables:``, and the run's ``--seed``.

Pure tests first (the CSV rules, positions, rows per session, draws per seed), then runs
through the command line against aiosmtpd.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smtpload.errors import ScenarioError
from smtpload.load.plan import LoadOptions, plan_load
from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.scenario import feeds
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import FeedColumn, FeedOrder, RandomChoice, RandomNumber, Scenario
from tests.cli import smtpload
from tests.peers import RecordingPeer

USERS = (
    'address,name\nalice@example.test,Alice\nbob@example.test,"Bob, B"\ncarol@example.test,Carol\n'
)


def scenario_text(variables: str, command: str = "MAIL FROM:<{user}>") -> str:
    return (
        "variables:\n"
        + "".join(f"  {line}\n" for line in variables.splitlines())
        + "steps:\n  - greeting: 220\n  - send: EHLO client.example\n    expect: 250\n"
        + f'  - send: "{command}"\n    expect: 250\n  - send: QUIT\n    expect: 221\n'
    )


def load(tmp_path: Path, variables: str, csv: str | bytes | None = USERS, **kw: str) -> Scenario:
    if csv is not None:
        path = tmp_path / "users.csv"
        if isinstance(csv, bytes):
            path.write_bytes(csv)
        else:
            path.write_text(csv, encoding="utf-8", newline="")
    return parse_scenario(scenario_text(variables, **kw), str(tmp_path / "s.yaml"))


def problems(
    tmp_path: Path, variables: str, csv: str | bytes | None = USERS, **kw: str
) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load(tmp_path, variables, csv, **kw)
    return [str(p).replace(str(tmp_path) + "/", "") for p in info.value.problems]


def session_values(compiled: CompiledScenario, session: int) -> dict[str, str]:
    values = compiled.session_variables(session, "run")
    return {k: v for k, v in values.items() if k not in ("session", "uid", "run_id")}


# -- reading the CSV -----------------------------------------------------------------------


def test_a_feed_column_is_read_with_bom_quotes_and_blank_lines(tmp_path: Path) -> None:
    csv = "\ufeff" + USERS.replace("carol", "\ncarol") + "\n\n"
    scenario = load(tmp_path, "user: {feed: users.csv, column: address}", csv.encode("utf-8"))
    ((name, value),) = scenario.variables
    assert name == "user"
    assert isinstance(value, FeedColumn)
    assert value.values == ("alice@example.test", "bob@example.test", "carol@example.test")
    assert value.order is FeedOrder.IN_ORDER
    assert value.path == str(tmp_path / "users.csv")  # the scenario's folder, not the cwd


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        ("", "users.csv:1:1: the feed is empty; its first row names the columns"),
        ("address,name\n", "users.csv:1:1: the feed has a header row and no rows"),
        ("address,address\na,b\n", "users.csv:1:9: column name 'address' is given twice"),
        ("address,,x\na,b,c\n", "users.csv:1:9: column 2 of the header row has no name"),
        ("address,name\na,b\nc\n", "users.csv:3:1: this row has 1 value and the header 2 columns"),
        ("address,name\na,b\nc,\"d\",e\n", "users.csv:3:7: this row has 3 values and the header 2"),
        ("address,name\na,\"b\nb\"\nc,d,e\n", "users.csv:4:5: this row has 3 values"),
        ("address,name\na,\"b\n", "users.csv:2:1: the feed is not valid CSV here"),
        (b"address\n\xff\n", "users.csv:2:1: the feed is not UTF-8 (byte 0xff)"),
    ],
    ids=["empty", "header-only", "duplicate-column", "unnamed-column", "short-row", "long-row",
         "after-a-multiline-value", "unclosed-quote", "not-utf8"],
)  # fmt: skip
def test_a_bad_feed_is_refused_at_its_own_line_and_column(
    tmp_path: Path, csv: str | bytes, expected: str
) -> None:
    assert problems(tmp_path, "user: {feed: users.csv, column: address}", csv)[0].startswith(
        expected
    )


def test_the_feed_bounds_are_enforced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds, "MAX_FEED_ROWS", 2)
    (problem,) = problems(tmp_path, "user: {feed: users.csv, column: address}")
    assert problem.startswith("users.csv:4:1: the feed has more than 2 rows, the most it may hold")
    monkeypatch.setattr(feeds, "MAX_FEED_ROWS", 3)
    load(tmp_path, "user: {feed: users.csv, column: address}")  # exactly at the bound
    monkeypatch.setattr(feeds, "MAX_FEED_BYTES", len(USERS) - 1)
    (problem,) = problems(tmp_path, "user: {feed: users.csv, column: address}")
    assert problem.startswith(f"users.csv:1:1: the file is larger than {len(USERS) - 1} bytes")


def test_a_missing_file_or_column_is_said_at_the_scenario_key(tmp_path: Path) -> None:
    assert problems(tmp_path, "user: {feed: nope.csv, column: address}")[0].startswith(
        "s.yaml:2:16: variable 'user': feed 'nope.csv': cannot read the feed"
    )
    assert problems(tmp_path, "user: {feed: users.csv, column: mail}") == [
        "s.yaml:2:35: variable 'user': the feed has no column 'mail'; its columns are"
        " 'address', 'name'"
    ]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ("user: {feed: users.csv}", "s.yaml:2:9: variable 'user': a feed needs `column:`"),
        ("user: {feed: users.csv, column: address, order: shuffled}",
         "s.yaml:2:51: variable 'user': order 'shuffled' is not a feed order"),
        ("user: {choice: []}", "s.yaml:2:18: variable 'user': choice takes a list of texts"),
        ("user: {choice: a}", "s.yaml:2:18: variable 'user': choice takes a list of texts"),
        ("user: {random: {min: 5, max: 1}}",
         "s.yaml:2:32: variable 'user': random: max 1 is below min 5; swap them"),
        ("user: {random: {min: 1}}", "s.yaml:2:18: variable 'user': random needs `max:`"),
        ("user: {random: {min: 1.5, max: 3}}",
         "s.yaml:2:24: variable 'user': random: min must be a whole number"),
        ("user: {random: {min: 0, max: 9223372036854775808}}",
         "s.yaml:2:32: variable 'user': random: max must lie within"),
        ("user: {choice: [a], random: {min: 1, max: 2}}",
         "s.yaml:2:23: variable 'user' takes one of feed, choice and random, not both"),
        ("user: {choice: [a], column: x}",
         "s.yaml:2:23: variable 'user': `column:` belongs to a feed"),
        ("user: {}", "s.yaml:2:9: variable 'user' takes a template (text), or one of"),
    ],
    ids=["feed-no-column", "bad-order", "empty-choice", "choice-not-list", "min-over-max",
         "random-no-max", "random-not-whole", "random-too-large", "two-sources",
         "column-without-feed", "empty-mapping"],
)  # fmt: skip
def test_a_bad_value_source_is_refused_at_its_place(
    tmp_path: Path, variables: str, expected: str
) -> None:
    found = problems(tmp_path, variables)
    assert found[0].startswith(expected), found


# -- feed values are data: what a command line cannot carry ---------------------------------


@pytest.mark.parametrize(
    ("value", "held"),
    [("a\rb", "a line break"), ("a\nb", "a line break"), ("a\0b", "a NUL character")],
    ids=["cr", "lf", "nul"],
)  # fmt: skip
def test_a_feed_value_that_would_break_a_command_is_refused_at_its_row(
    tmp_path: Path, value: str, held: str
) -> None:
    csv = f'address\nok@example.test\n"{value}"\n'
    found = problems(tmp_path, "user: {feed: users.csv, column: address}", csv)
    assert found == [
        f"users.csv:3:1: column 'address' holds {held} in this row, and variable {{user}}"
        " (declared on line 2) reaches the command line of step 3"
        " (s.yaml:7:23); fix the row, or use the variable in a data step's"
        " message only"
    ]
    # Through another variable made from it, too.
    through = 'user: {feed: users.csv, column: address}\nsender: "x{user}"'
    found = problems(tmp_path, through, csv, command="MAIL FROM:<{sender}>")
    assert found[0].startswith(f"users.csv:3:1: column 'address' holds {held}")
    # A value no command carries may hold it (a message's text may).
    load(tmp_path, "user: {feed: users.csv, column: address}", csv, command="NOOP")


def test_a_choice_with_a_line_break_is_refused_in_a_command(tmp_path: Path) -> None:
    found = problems(tmp_path, 'user: {choice: ["a", "b\\nc"]}')
    assert found[0].startswith("s.yaml:7:23: {user} holds a line break")


# -- rows and draws per session -------------------------------------------------------------

SOURCES = """\
user: {feed: users.csv, column: address}
name: {feed: users.csv, column: name}
other: {feed: users.csv, column: name, order: random}
other_user: {feed: users.csv, column: address, order: random}
n: {random: {min: -3, max: 3}}
domain: {choice: [example.test, example.org, example.net]}
sender: "{n}.{user}@{domain}"
"""


def compiled(tmp_path: Path, seed: int) -> CompiledScenario:
    scenario = load(tmp_path, SOURCES, command="MAIL FROM:<{sender}> {name} {other} {other_user}")
    return compile_scenario(scenario, seed=seed)


def test_in_order_session_k_takes_row_k_and_a_file_shares_its_row(tmp_path: Path) -> None:
    run = compiled(tmp_path, seed=1)
    rows = [
        ("alice@example.test", "Alice"),
        ("bob@example.test", "Bob, B"),
        ("carol@example.test", "Carol"),
    ]
    for session in range(1, 8):
        values = session_values(run, session)
        assert (values["user"], values["name"]) == rows[(session - 1) % 3]
        # The random order's variables share their own row, drawn per session.
        assert (values["other_user"], values["other"]) in rows
        assert -3 <= int(values["n"]) <= 3
        assert values["domain"] in ("example.test", "example.org", "example.net")
        assert values["sender"] == f"{values['n']}.{values['user']}@{values['domain']}"


def test_draws_are_a_pure_function_of_seed_and_session(tmp_path: Path) -> None:
    first, again, other = compiled(tmp_path, 7), compiled(tmp_path, 7), compiled(tmp_path, 8)
    sessions = range(1, 41)
    forward = [session_values(first, s) for s in sessions]
    # Another "worker" taking the sessions in another order gets the same values.
    backward = {s: session_values(again, s) for s in reversed(sessions)}
    assert forward == [backward[s] for s in sessions]
    assert forward != [session_values(other, s) for s in sessions]
    # Every value is drawn: over 40 sessions each takes more than one value.
    for key in ("other", "n", "domain"):
        assert len({values[key] for values in forward}) > 1


def test_random_numbers_cover_their_range_and_stay_in_it(tmp_path: Path) -> None:
    scenario = load(tmp_path, "user: {random: {min: 1, max: 4}}", csv=None)
    ((_, value),) = scenario.variables
    assert value == RandomNumber(1, 4)
    run = compile_scenario(scenario, seed=3)
    drawn = {int(session_values(run, s)["user"]) for s in range(1, 200)}
    assert drawn == {1, 2, 3, 4}
    assert load(tmp_path, "user: {choice: [a, b]}", csv=None).variables[0][1] == RandomChoice(
        ("a", "b")
    )


def test_a_scenario_without_variables_builds_none(tmp_path: Path) -> None:
    text = "steps:\n  - greeting: 220\n  - send: QUIT\n"
    assert not compile_scenario(parse_scenario(text, str(tmp_path / "s.yaml"))).uses_variables


def test_seed_alone_is_no_open_loop_option() -> None:
    assert plan_load(None, LoadOptions(seed=3)) is None


# -- runs -----------------------------------------------------------------------------------

RUN = """\
variables:
  user: {feed: users.csv, column: address}
  tag: {random: {min: 1, max: 1000000}}
steps:
  - greeting: 220
  - send: EHLO client.example
    expect: 250
  - send: "MAIL FROM:<{user}>"
    expect: 250
  - send: "RCPT TO:<rcpt{tag}@example.test>"
    expect: 250
  - send: DATA
    expect: 354
  - data: "Subject: {user}\\n\\nhello\\n"
  - send: QUIT
    expect: 221
"""


def run_once(tmp_path: Path, peer: RecordingPeer, *seed: str) -> tuple[int, list[tuple[str, ...]]]:
    before = len(peer.handler.messages)
    result = smtpload(
        "run", "s.yaml", "--target", f"{peer.host}:{peer.port}", "--sessions", "4",
        "--concurrency", "1", "--json", "out.json", "--quiet", *seed, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out.json").read_text())
    envelopes = [(m.mail_from, *m.rcpt_tos) for m in peer.handler.messages[before:]]
    return summary["seed"], envelopes


def test_a_run_with_a_feed_and_seed_sends_the_expected_envelopes(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    (tmp_path / "s.yaml").write_text(RUN)
    (tmp_path / "users.csv").write_text(USERS)
    seed, first = run_once(tmp_path, aiosmtpd_server, "--seed", "42")
    assert seed == 42
    # concurrency 1: sessions finish in order; session k sends row (k - 1) mod 3.
    assert [envelope[0] for envelope in first] == [
        "alice@example.test", "bob@example.test", "carol@example.test", "alice@example.test",
    ]  # fmt: skip
    again = run_once(tmp_path, aiosmtpd_server, "--seed", "42")
    assert again == (42, first)
    other_seed, other = run_once(tmp_path, aiosmtpd_server, "--seed", "43")
    assert other_seed == 43
    assert [e[0] for e in other] == [e[0] for e in first]  # the rows do not depend on it
    assert [e[1] for e in other] != [e[1] for e in first]  # the random tags do
    # Without --seed the run draws one, says it, and --seed repeats the run with it.
    drawn, unseeded = run_once(tmp_path, aiosmtpd_server)
    assert isinstance(drawn, int)
    assert run_once(tmp_path, aiosmtpd_server, "--seed", str(drawn)) == (drawn, unseeded)


def test_the_terminal_summary_shows_the_seed(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "variables:\n  n: {random: {min: 1, max: 9}}\n"
        'steps:\n  - greeting: 220\n  - send: "NOOP {n}"\n    expect: 250\n'
        "  - send: QUIT\n    expect: 221\n"
    )
    result = smtpload("run", "s.yaml", "--sessions", "2", "--seed", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "seed: 5 (--seed 5 repeats the draws)" in result.stdout
