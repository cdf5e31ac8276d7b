"""The ``rcpt`` step's syntax (into ``RecipientSpec``) and its recipients per message
(``RecipientSource.lines``, sans-IO): every rule, both sides, at its place."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from smtpload.errors import ScenarioError
from smtpload.protocol.recipients import compile_recipients
from smtpload.protocol.session_random import session_random
from smtpload.scenario import rcpt_syntax
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import FeedOrder, RecipientSpec, Scenario, StepKind


def scenario(tmp_path: Path, rcpt: str, *, extra: str = "", protocol: str = "") -> Scenario:
    hello = "LHLO" if protocol else "EHLO"
    text = (
        f"{protocol}variables:\n  domain: example.test\nsteps:\n  - greeting: 220\n"
        f"  - send: {hello} client.example\n    expect: 250\n"
        '  - send: "MAIL FROM:<a@example.test>"\n    expect: 250\n'
        f"  - rcpt: {rcpt}\n{extra}"
        "  - send: QUIT\n    expect: 221\n"
    )
    return parse_scenario(text, str(tmp_path / "s.yaml"))


def spec(tmp_path: Path, rcpt: str) -> RecipientSpec:
    (step,) = [s for s in scenario(tmp_path, rcpt).steps if s.kind is StepKind.RCPT]
    assert step.recipients is not None
    return step.recipients


def problems(tmp_path: Path, rcpt: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        scenario(tmp_path, rcpt)
    return [str(p).replace(str(tmp_path) + "/", "") for p in info.value.problems]


@pytest.mark.parametrize(
    ("rcpt", "address", "addresses", "counts", "parameters"),
    [
        ('"postmaster@example.test"', "postmaster@example.test", (), (1, 1), ""),
        ('["alice@example.test", "bob@{domain}"]', None,
         ("alice@example.test", "bob@{domain}"), (2, 2), ""),
        ('{to: "user{recipient}@{domain}", count: 3, parameters: "NOTIFY=NEVER"}',
         "user{recipient}@{domain}", (), (3, 3), "NOTIFY=NEVER"),
        ('{to: "u{recipient}@x", count: {min: 1, max: 50}}', "u{recipient}@x", (), (1, 50), ""),
        ("{to: [a@x, b@x], count: 5}", None, ("a@x", "b@x"), (5, 5), ""),
        ("{to: [a@x, b@x, c@x]}", None, ("a@x", "b@x", "c@x"), (3, 3), ""),
        ("Postmaster", "Postmaster", (), (1, 1), ""),
    ],
    ids=["one", "list", "count", "range", "list-with-count", "to-list", "no-domain"],
)  # fmt: skip
def test_each_form_reads_into_a_recipient_spec(
    tmp_path: Path,
    rcpt: str,
    address: str | None,
    addresses: tuple[str, ...],
    counts: tuple[int, int],
    parameters: str,
) -> None:
    read = spec(tmp_path, rcpt)
    assert (read.address, read.addresses, (read.count_min, read.count_max), read.parameters) == (
        address,
        addresses,
        counts,
        parameters,
    )
    assert (read.line, read.column) == (9, 11)


def test_rcpt_steps_are_named_rcpt_and_expect_250_or_251(tmp_path: Path) -> None:
    steps = scenario(tmp_path, "a@x", extra="  - rcpt: b@x\n  - send: RCPT TO:<c@x>\n").steps
    names = [(s.name, s.kind) for s in steps if s.name.startswith("rcpt")]
    assert names == [("rcpt", StepKind.RCPT), ("rcpt#2", StepKind.RCPT), ("rcpt#3", StepKind.SEND)]
    rcpt = steps[3]
    assert rcpt.expect is not None
    assert rcpt.expect.codes == frozenset({250, 251})
    own = scenario(tmp_path, "a@x\n    expect: 250\n    name: to").steps[3]
    assert (own.name, own.expect is not None and own.expect.codes) == ("to", frozenset({250}))


@pytest.mark.parametrize("char", ["<", ">", " ", "\\r", "\\n", "\\0"], ids=repr)
def test_an_address_refuses_what_would_end_the_path_or_the_line(tmp_path: Path, char: str) -> None:
    # At the character itself; after an escape (\\n) the offsets are not the file's: at the
    # scalar's start.
    escaped = char.startswith("\\")
    forms = (('"a{c}b@x"', 13), ('["ok@x", "a{c}b@x"]', 22), ('{{to: "a{c}b@x"}}', 18))
    for form, column in ((form, column - 2 if escaped else column) for form, column in forms):
        (problem,) = problems(tmp_path, form.format(c=char))
        assert problem.startswith(f"s.yaml:9:{column}: rcpt: the address"), (form, problem)
    assert spec(tmp_path, '"a.b+c@x"').address == "a.b+c@x"  # the rest is fine


@pytest.mark.parametrize(
    ("rcpt", "expected"),
    [
        ('""', "s.yaml:9:11: rcpt: the address is empty"),
        ("[]", "s.yaml:9:11: rcpt: the list of addresses is empty"),
        ("{to: a@x, feed: f.csv}", "s.yaml:9:21: rcpt takes its addresses from `to:` or from"),
        ("{count: 2}", "s.yaml:9:11: rcpt needs `to:` (an address, or a list) or `feed:`"),
        ("{to: a@x, count: 0}", "s.yaml:9:28: rcpt: count must be from 1 to 10,000"),
        ("{to: a@x, count: 10001}", "s.yaml:9:28: rcpt: count must be from 1 to 10,000"),
        ("{to: a@x, count: {min: 3, max: 2}}", "s.yaml:9:42: rcpt: count: max 2 is below min 3"),
        ("{to: a@x, count: {min: 0, max: 2}}", "s.yaml:9:34: rcpt: count: min must be from 1"),
        ("{to: a@x, count: {max: 2}}", "s.yaml:9:28: rcpt: count needs `min:`"),
        ("{to: a@x, count: [1]}", "s.yaml:9:28: rcpt: count takes a number"),
        ("{to: a@x, count: 1.5}", "s.yaml:9:28: rcpt: count must be a whole number"),
        ("{to: a@x, column: address}", "s.yaml:9:21: rcpt: `column:` belongs to `feed:`"),
        ("{to: a@x, order: random}", "s.yaml:9:21: rcpt: `order:` belongs to `feed:`"),
        ('{to: a@x, parameters: "A\\nB"}', "s.yaml:9:33: rcpt: parameters hold a line break"),
        ("{to: [[a@x]]}", "s.yaml:9:17: rcpt: an address is text"),
        ("{to: a@x, cc: b@x}", "s.yaml:9:21: unknown key 'cc' in rcpt"),
        ('"{nope}@x"', "s.yaml:9:12: unknown variable {nope}"),
    ],
    ids=["empty", "empty-list", "to-and-feed", "neither", "count-0", "count-over", "min-over-max",
         "min-0", "range-no-min", "count-list", "count-fraction", "column-without-feed",
         "order-without-feed", "parameters-line-break", "nested-list", "unknown-key",
         "unknown-variable"],
)  # fmt: skip
def test_a_bad_rcpt_is_refused_at_its_place(tmp_path: Path, rcpt: str, expected: str) -> None:
    found = problems(tmp_path, rcpt)
    assert found[0].startswith(expected), found


def test_the_count_bound_is_the_documented_one(tmp_path: Path) -> None:
    assert rcpt_syntax.MAX_RECIPIENTS_PER_MESSAGE == 10_000
    assert spec(tmp_path, "{to: a@x, count: 10000}").count_max == 10_000


def test_recipient_is_a_variable_of_rcpt_steps_only(tmp_path: Path) -> None:
    assert spec(tmp_path, '"u{recipient}@{domain}"').address == "u{recipient}@{domain}"
    with pytest.raises(ScenarioError) as info:
        scenario(tmp_path, "a@x", extra='  - send: "RCPT TO:<{recipient}@x>"\n')
    assert str(info.value.problems[0]).endswith(
        "s.yaml:10:21: unknown variable {recipient} (declare it under variables:)"
    )


def test_a_variable_with_a_line_break_cannot_reach_an_rcpt_line(tmp_path: Path) -> None:
    text = (
        'variables:\n  who: "a\\nb"\nsteps:\n  - greeting: 220\n  - rcpt: "{who}@x"\n'
    )  # fmt: skip
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    assert str(info.value.problems[0]).startswith("s.yaml:5:12: {who} holds a line break")


def test_lmtp_expect_each_may_name_an_rcpt_step(tmp_path: Path) -> None:
    extra = (
        "  - send: DATA\n    expect: 354\n  - data: hi\n    expect_each: {rcpt: 250}\n"
    )  # fmt: skip
    read = scenario(tmp_path, "a@x", extra=extra, protocol="protocol: lmtp\n")
    assert read.steps[-2].expect_each[0][0] == "rcpt"


# -- feeds ----------------------------------------------------------------------------------

FEED = "address,name\na@example.test,A\nb@example.test,B\nc@example.test,C\n"


def feed_spec(tmp_path: Path, rcpt: str, csv: str = FEED) -> RecipientSpec:
    (tmp_path / "r.csv").write_text(csv)
    return spec(tmp_path, rcpt)


def test_a_feed_rcpt_reads_the_column(tmp_path: Path) -> None:
    read = feed_spec(tmp_path, "{feed: r.csv, column: address, count: {min: 1, max: 10}}")
    assert read.feed is not None
    assert read.feed.values == ("a@example.test", "b@example.test", "c@example.test")
    assert (read.feed.order, read.count_min, read.count_max) == (FeedOrder.IN_ORDER, 1, 10)
    assert read.address is None
    assert not read.addresses


@pytest.mark.parametrize(
    ("value", "what"),
    [("a b@x", "holds a space"), ("<a@x>", "holds '<'"), ("a@x>", "holds '>'"), ("", "is empty"),
     ('"a\nb@x"', "holds a line break"), ("a\0b@x", "holds NUL")],
    ids=["space", "lt", "gt", "empty", "line-break", "nul"],
)  # fmt: skip
def test_a_feed_address_that_cannot_be_one_is_refused_at_its_row(
    tmp_path: Path, value: str, what: str
) -> None:
    (tmp_path / "r.csv").write_text(f"name,address\nA,ok@x\nB,{value}\n")
    (problem,) = problems(tmp_path, "{feed: r.csv, column: address}")
    assert problem.startswith(f"r.csv:3:3: column 'address': the address {what[:0]}"), problem
    assert what in problem


def test_a_feed_rcpt_names_a_missing_column_with_the_columns(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(FEED)
    assert problems(tmp_path, "{feed: r.csv, column: mail}") == [
        "s.yaml:9:33: rcpt: the feed has no column 'mail'; its columns are 'address', 'name'"
    ]


# -- RecipientSource: the lines of each message (sans-IO) ----------------------------------


def test_a_ranged_count_is_drawn_from_the_session_generator(tmp_path: Path) -> None:
    source = compile_recipients(spec(tmp_path, '{to: "u{recipient}@x", count: {min: 1, max: 5}}'))

    def counts(seed: int) -> list[int]:
        return [len(source.lines(session_random(seed, s), {}, session=s)) for s in range(1, 60)]

    assert counts(1) == counts(1)
    assert counts(1) != counts(2)
    assert set(counts(1)) == {1, 2, 3, 4, 5}
    assert source.lines(random.Random(0), {})[0] == b"RCPT TO:<u1@x>\r\n"


def test_a_feed_in_order_continues_through_the_rows_across_messages(tmp_path: Path) -> None:
    read = feed_spec(tmp_path, '{feed: r.csv, column: address, count: 2, parameters: "N=1"}')
    source = compile_recipients(read)
    assert not source.is_constant
    first = source.lines(None, {}, session=1)
    assert first == [b"RCPT TO:<a@example.test> N=1\r\n", b"RCPT TO:<b@example.test> N=1\r\n"]
    # The session's next message goes on from where the first stopped, wrapping around.
    assert source.lines(None, {}, session=1, taken=2) == [
        b"RCPT TO:<c@example.test> N=1\r\n",
        b"RCPT TO:<a@example.test> N=1\r\n",
    ]
    # Session k starts at row (k - 1) mod rows: a pure function of k.
    for session in range(1, 8):
        line = source.lines(None, {}, session=session)[0]
        assert line == f"RCPT TO:<{'abc'[(session - 1) % 3]}@example.test> N=1\r\n".encode()


def test_a_feed_at_random_draws_each_row_from_the_session_generator(tmp_path: Path) -> None:
    read = feed_spec(tmp_path, "{feed: r.csv, column: address, order: random, count: 4}")
    source = compile_recipients(read)

    def lines(seed: int, session: int) -> list[bytes]:
        return source.lines(session_random(seed, session), {}, session=session)

    runs = [lines(9, s) for s in range(1, 30)]
    assert runs == [lines(9, s) for s in range(1, 30)]
    assert runs != [lines(10, s) for s in range(1, 30)]
    assert {line for run in runs for line in run} == {
        f"RCPT TO:<{c}@example.test>\r\n".encode() for c in "abc"
    }
