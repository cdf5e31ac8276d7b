"""`smtpload import`: each session of a transcript becomes a scenario that means it exactly."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from smtpload.errors import LocalError
from smtpload.protocol.expectations import compile_expectation
from smtpload.protocol.wire import Reply as WireReply
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import Expectation, Scenario, Step, StepKind, Target
from smtpload.scenario.template import parse_template
from smtpload.transcripts.importer import (
    ImportedSession,
    ImportResult,
    TranscriptError,
    import_transcript,
)
from smtpload.transcripts.reader import parse_transcript
from tests.test_transcript import PLAIN

DATA = Path(__file__).parent / "data" / "transcripts"
SEED = DATA / "seed-blog.txt"
SEED_PATH = "tests/data/transcripts/seed-blog.txt"


def lines(*text: str) -> str:
    return "\n".join(text) + "\n"


def seed(*, strict: bool = False) -> ImportResult:
    return import_transcript(SEED.read_text(encoding="utf-8"), SEED_PATH, strict=strict)


def scenario_of(session: ImportedSession) -> Scenario:
    return parse_scenario(session.yaml_text, f"session-{session.number}.yaml")


def only_scenario(text: str, *, strict: bool = False) -> Scenario:
    result = import_transcript(text, "t.txt", strict=strict)
    assert len(result.sessions) == 1
    return scenario_of(result.sessions[0])


def sent(step: Step) -> str:
    """What a step sends: its text with the template's ``{{``/``}}`` made single again."""
    assert step.text is not None
    return parse_template(step.text).render({})


def codes(step: Step) -> set[int] | None:
    if step.expect is None or step.expect.codes is None:
        return None
    return set(step.expect.codes)


def outline(scenario: Scenario) -> list[tuple[str, str | None, set[int] | None]]:
    return [(step.kind.value, step.text, codes(step)) for step in scenario.steps]


def expectation(step: Step) -> Expectation:
    assert step.expect is not None
    return step.expect


# -- the seed ----------------------------------------------------------------------------------


def test_seed_gives_two_scenarios_named_after_the_file() -> None:
    result = seed()
    assert result.format == "telnet"
    assert [(s.number, s.first_line, s.target) for s in result.sessions] == [
        (1, 23, Target("smtp.exsample.jp", 25)),
        (2, 75, Target("localhost", 25)),
    ]
    first, second = (scenario_of(s) for s in result.sessions)
    assert (first.name, second.name) == ("seed-blog", "seed-blog-2")
    assert first.description == f"Imported from {SEED_PATH} line 23 (telnet transcript)"
    assert second.description == f"Imported from {SEED_PATH} line 75 (telnet transcript)"
    assert (first.target, second.target) == (
        Target("smtp.exsample.jp", 25),
        Target("localhost", 25),
    )


def test_seed_first_session_steps() -> None:
    assert outline(scenario_of(seed().sessions[0])) == [
        ("greeting", None, {220}),
        ("send", "HELO exsample.jp", {250}),
        ("send", "MAIL FROM:hoge00@exsample.jp", {250}),
        ("send", "RCPT TO:hoge01@exsample.jp", {250}),
        ("send", "DATA", {354}),
        (
            "data",
            "subject: test\nfrom: hoge00@exsample.jp\nto: hoge01@exsample.jp\n\nmeil send test\n",
            {250},
        ),
        ("send", "quit", {221}),
        ("close", None, None),
    ]


def test_seed_second_session_expects_500_for_the_typo() -> None:
    assert outline(scenario_of(seed().sessions[1])) == [
        ("greeting", None, {220}),
        ("send", "HELOO localhost", {500}),
        ("send", "HELO localhost", {250}),
        ("send", "MAIL FROM:hoge00@exsample.jp", {250}),
        ("send", "RCPT TO:hoge01@gmail.com", {250}),
        ("send", "DATA", {354}),
        (
            "data",
            "subject: test\nfrom: hoge00@exsample.jp\nto: hoge01@gmail.com\n\nthis test\n",
            {250},
        ),
        ("send", "quit", {221}),
        ("close", None, None),
    ]


def test_seed_expectations_are_codes_only_with_the_replies_as_comments() -> None:
    session = seed().sessions[1]
    steps = scenario_of(session).steps
    assert all(
        step.expect is None or (step.expect.enhanced, step.expect.pattern) == (None, None)
        for step in steps
    )
    assert '  # 500 5.5.1 Command unrecognized: "HELOO localhost"\n' in session.yaml_text
    assert "  # 250 2.0.0 o6QF2FNx009985 Message accepted for delivery\n" in session.yaml_text


def test_seed_authors_notes_stay_as_comments() -> None:
    assert "# note in the transcript: ←あいさつ(HELOの後はなんでもかまわない?)" in (
        seed().sessions[0].yaml_text
    )


def test_seed_notes_name_the_format_and_the_skipped_prose() -> None:
    notes = seed().notes
    assert notes[0] == "format: telnet (auto)"
    assert "lines 1-21: skipped prose" in notes
    assert "line 33: stripped note '←あいさつ(HELOの後はなんでもかまわない?)'" in notes


def test_seed_strict_pins_the_enhanced_code_and_text_of_the_typo() -> None:
    typo = scenario_of(seed(strict=True).sessions[1]).steps[1]
    expect = expectation(typo)
    assert (codes(typo), expect.enhanced) == ({500}, "5.5.1")
    assert expect.pattern is not None
    assert re.search(expect.pattern, '5.5.1 Command unrecognized: "HELOO localhost"')
    # Postfix answers the typo with 5.5.2 and other words: a strict replay fails there.
    assert not re.search(expect.pattern, "5.5.2 Error: command not recognized")


@pytest.mark.parametrize(
    ("step", "original", "another_run"),
    [
        (
            0,
            "localhost.localdomain ESMTP Sendmail 8.13.8/8.13.8; Tue, 27 Jul 2010 00:02:15 +0900",
            "localhost.localdomain ESMTP Sendmail 8.13.8/8.13.8; Sat, 28 Nov 2026 01:02:03 +0000",
        ),
        (
            6,
            "2.0.0 o6QF2FNx009985 Message accepted for delivery",
            "2.0.0 q7RG3GOy010096 Message accepted for delivery",
        ),
    ],
    ids=["greeting-date", "queue-id"],
)
def test_seed_strict_text_patterns_see_past_volatile_parts(
    step: int, original: str, another_run: str
) -> None:
    pattern = expectation(scenario_of(seed(strict=True).sessions[1]).steps[step]).pattern
    assert pattern is not None
    assert re.search(pattern, original)
    assert re.search(pattern, another_run)


def test_seed_strict_leaves_out_enhanced_codes_the_reply_has_not() -> None:
    steps = scenario_of(seed(strict=True).sessions[0]).steps
    assert [expectation(step).enhanced for step in steps if step.expect is not None] == [None] * 7


# -- every scenario made validates -------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["codes", "strict"])
@pytest.mark.parametrize("path", sorted(DATA.glob("*.txt")), ids=lambda path: path.name)
def test_every_captured_transcript_imports_to_valid_scenarios(path: Path, strict: bool) -> None:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    result = import_transcript(text, str(path), strict=strict)
    assert result.sessions
    for session in result.sessions:
        scenario = scenario_of(session)
        assert scenario.steps[0].kind is StepKind.GREETING
        assert scenario.target == session.target


def strict_expectations_meet_their_own_replies(text: str, path: str) -> int:
    """Import strictly; check every step's expectation, as a run checks it, against the reply it
    was made from. Returns how many text patterns were checked."""
    transcript = parse_transcript(text, path)
    result = import_transcript(text, path, strict=True)
    checked = 0
    for session, dialogue in zip(result.sessions, transcript.sessions, strict=True):
        steps = [s for s in scenario_of(session).steps if s.kind is not StepKind.CLOSE]
        for step, exchange in zip(steps, dialogue.exchanges, strict=True):
            if step.expect is None or exchange.reply is None:
                continue
            reply = exchange.reply
            wire_reply = WireReply(reply.code, reply.lines, b"")
            assert compile_expectation(step.expect).mismatch(wire_reply) is None, reply.lines
            checked += step.expect.pattern is not None
    return checked


@pytest.mark.parametrize("path", sorted(DATA.glob("*.txt")), ids=lambda path: path.name)
def test_strict_patterns_of_every_captured_transcript_match_its_replies_on_re2(
    path: Path,
) -> None:
    # The run matches with RE2 (scenario/patterns.py): what import writes must compile there and
    # mean there what it meant to the importer.
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    assert strict_expectations_meet_their_own_replies(text, str(path)) > 0


# Reply texts whose characters RE2 reads otherwise than Python's re: non-ASCII digits, letters
# and spaces (\d, \w and \s are ASCII-only in RE2), tabs, every ASCII punctuation mark, and
# backslashes; with the volatile parts (ids, counters, dates) next to them.
AWKWARD_REPLIES = [
    # Arabic-Indic and fullwidth digits in an id and a counter.
    "250 2.0.0 Ok: queued as \u0661\u0662\u0663\u0664\u0665\u0666\u0667 id=\uff11\uff12\uff13",
    # Japanese words, a fullwidth "ABC123" and a fullwidth "42".
    "250 2.0.0 \u53d7\u4ed8 \uff21\uff22\uff23\uff11\uff12\uff13 \u4ef6\u6570 \uff14\uff12 done",
    "250 ok\tqueued\tas\tA1A73160038\t(tab separated)",
    "250 at Tue,\t27\tJul 2010\t00:02:15\t+0900 (tabs in a date)",
    "250 " + "".join(chr(c) for c in range(0x21, 0x7F)),
    "250 back\\slash \\d+ \\1 (?=x) [a-z]{,3} $^ |* id=\u00c4BC123\u00d6 \u00a0nbsp\u2003em",
    # A date, then an Arabic-Indic time and pid.
    "250 Tue, 27 Jul 2010 00:02:15 +0900 at \u0661\u0662:\u0663\u0660:\u0660\u0660 from"
    " [127.0.0.1] pid \u0664\u0665\u0666\u0667\u0668\u0669",
]


@pytest.mark.parametrize("reply", AWKWARD_REPLIES, ids=range(len(AWKWARD_REPLIES)))
def test_strict_patterns_of_awkward_replies_match_them_on_re2(reply: str) -> None:
    text = lines("220 mx.example.test ESMTP", "NOOP", reply, "QUIT", "221 bye")
    assert strict_expectations_meet_their_own_replies(text, "t.txt") == 3


# -- formats -----------------------------------------------------------------------------------


def test_swaks_output_becomes_a_scenario() -> None:
    swaks = lines(
        "=== Trying 127.0.0.1:10025...",
        "=== Connected to 127.0.0.1.",
        "<-  220 postfix.test ESMTP Postfix (Debian/GNU)",
        " -> EHLO vm",
        "<-  250-postfix.test",
        "<-  250 PIPELINING",
        " -> MAIL FROM:<a@example.test>",
        "<-  250 2.1.0 Ok",
        " -> RCPT TO:<b@reject.test>",
        "<** 550 5.1.1 <b@reject.test>: Recipient address rejected: User unknown",
        " -> QUIT",
        "<-  221 2.0.0 Bye",
        "=== Connection closed with remote host.",
    )
    scenario = only_scenario(swaks)
    assert scenario.target == Target("127.0.0.1", 10025)
    assert outline(scenario) == [
        ("greeting", None, {220}),
        ("send", "EHLO vm", {250}),
        ("send", "MAIL FROM:<a@example.test>", {250}),
        ("send", "RCPT TO:<b@reject.test>", {550}),
        ("send", "QUIT", {221}),
        ("close", None, None),
    ]


def test_an_rfc_listing_becomes_a_scenario() -> None:
    listing = lines(
        "   S: 220 foo.com Simple Mail Transfer Service Ready",
        "   C: EHLO bar.com",
        "   S: 250-foo.com greets bar.com",
        "   S: 250 HELP",
        "   C: DATA",
        "   S: 354 Start mail input; end with <CRLF>.<CRLF>",
        "   C: Blah blah blah...",
        "   C: ...etc. etc. etc.",
        "   C: .",
        "   S: 250 OK",
    )
    scenario = only_scenario(listing)
    assert scenario.target is None
    assert [step.kind.value for step in scenario.steps] == ["greeting", "send", "send", "data"]
    assert sent(scenario.steps[3]) == "Blah blah blah...\n..etc. etc. etc.\n"


def test_strict_ehlo_pins_the_first_line_and_the_capabilities() -> None:
    text = lines(PLAIN[0], "EHLO c", "250-mx.example.test", "250-SIZE 1000", "250 8BITMIME")
    expect = expectation(only_scenario(text, strict=True).steps[1])
    assert expect.capabilities == ("SIZE", "8BITMIME")
    assert expect.pattern is not None
    assert re.search(expect.pattern, "mx.example.test\nSIZE 1000\n8BITMIME")
    assert re.search(expect.pattern, "mx.example.test\nPIPELINING")
    assert not re.search(expect.pattern, "mx.example.test.evil\nSIZE 1000")


# -- what is sent is what was typed ------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "quit",
        "HELO {client}",
        "HELO }{",
        'MAIL FROM:<"a b"@example.test>',
        "VRFY \\\\server\\share",
        "NO",
        "017",
        "- item",
        "# not a comment",
        "HELO\ttab",
        "EHLO ünïcödé.example",
        "'quoted'",
        "key: value",
    ],
    ids=[
        "lowercase",
        "braces",
        "lone-braces",
        "double-quotes",
        "backslashes",
        "yaml-bool",
        "yaml-octal",
        "yaml-list",
        "yaml-comment",
        "tab",
        "unicode",
        "single-quotes",
        "yaml-mapping",
    ],
)
def test_commands_are_sent_exactly_as_typed(command: str) -> None:
    text = lines(PLAIN[0], command, "250 ok")
    result = import_transcript(text, "t.txt")
    step = scenario_of(result.sessions[0]).steps[1]
    assert (step.kind, sent(step)) == (StepKind.SEND, command)
    assert f"- send: {command}" not in result.sessions[0].yaml_text or command == "quit"


@pytest.mark.parametrize(
    "body",
    [
        ["plain"],
        ["  indented first line", "next"],
        ["\ttab first", "a\tb"],
        ["trailing spaces  ", "x"],
        ["# hash", "- dash", "key: value", "---", "...", "[x]", "{y}", "{{z}}", "%"],
        ["", "after an empty first line"],
        ["two empty lines at the end", "", ""],
        ["ünïcödé ✉ 日本語"],
        ['"quotes" and \\backslashes\\'],
    ],
    ids=[
        "plain",
        "indented",
        "tabs",
        "trailing-spaces",
        "yaml-syntax",
        "leading-empty",
        "trailing-empty",
        "unicode",
        "quotes",
    ],
)
def test_messages_read_back_exactly(body: list[str]) -> None:
    typed = ["." + line if line.startswith(".") else line for line in body]  # dot-stuffed
    text = lines(PLAIN[0], "DATA", "354 go", *typed, ".", "250 ok")
    step = only_scenario(text).steps[2]
    assert step.kind is StepKind.DATA
    assert sent(step) == "".join(line + "\n" for line in body)


def test_a_dot_stuffed_typed_line_is_one_dot_in_the_message() -> None:
    text = lines(PLAIN[0], "DATA", "354 go", "..leading dot", ".", "250 ok")
    assert sent(only_scenario(text).steps[2]) == ".leading dot\n"


def test_notes_on_the_final_dot_are_not_the_message() -> None:
    text = lines(PLAIN[0], "DATA", "354 go", "body", ". ← the end", "250 ok")
    result = import_transcript(text, "t.txt")
    assert sent(scenario_of(result.sessions[0]).steps[2]) == "body\n"
    assert "line 5: stripped note '← the end'" in result.notes


def test_crlf_and_lf_transcripts_give_the_same_scenario() -> None:
    lf = import_transcript(lines(*PLAIN), "t.txt").sessions[0].yaml_text
    crlf = import_transcript("\r\n".join(PLAIN) + "\r\n", "t.txt").sessions[0].yaml_text
    assert lf == crlf


# -- Date: and Message-ID: are new for each message --------------------------------------------

PER_MESSAGE = {"date": "Sat, 28 Nov 2026 02:00:13 +0000", "message_id": "<new@id.test>"}


def message_of(header: list[str], body: tuple[str, ...] = ("", "hi")) -> tuple[str, ImportResult]:
    """The message imported from a transcript whose message is ``header`` and ``body``, as
    sent with ``PER_MESSAGE`` filled in, and the whole result."""
    text = lines(PLAIN[0], "DATA", "354 go", *header, *body, ".", "250 ok")
    result = import_transcript(text, "t.txt")
    step = scenario_of(result.sessions[0]).steps[2]
    assert step.text is not None
    return parse_template(step.text).render(PER_MESSAGE), result


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            ["Date: Tue, 1 Dec 2026 10:00:00 +0900", "Message-Id: <1.2@vm>", "Subject: x"],
            ["Date: {date}", "Message-Id: {message_id}", "Subject: x"],
        ),
        (
            ["DATE: Tue, 1 Dec 2026 10:00:00 +0900", "message-id: <1.2@vm>"],
            ["DATE: {date}", "message-id: {message_id}"],
        ),
        (
            ["Message-ID:\t<a@b>", "Date:Tue, 1 Dec 2026"],
            ["Message-ID:\t{message_id}", "Date: {date}"],
        ),
        (
            ["Message-ID:", "  <folded@example.test>", "Date: Tue,", "\t1 Dec 2026", "To: b"],
            ["Message-ID: {message_id}", "Date: {date}", "To: b"],
        ),
        (["Subject: {x}", "Message-Id: <{y}@vm>"], ["Subject: {x}", "Message-Id: {message_id}"]),
        (["Subject: y", "Date: Tue, 1 Dec 2026"], ["Subject: y", "Date: {date}"]),
    ],
    ids=["swaks-spelling", "any-case", "tab-and-no-space", "folded", "braces-elsewhere", "one"],
)
def test_date_and_message_id_values_become_builtins(header: list[str], expected: list[str]) -> None:
    sent_message, result = message_of(header)
    want = [line.format(**PER_MESSAGE) if "{x}" not in line else line for line in expected]
    assert sent_message == "".join(f"{line}\n" for line in [*want, "", "hi"])
    yaml_text = result.sessions[0].yaml_text
    assert "new for each message sent," in yaml_text
    for line in header:  # the transcript's values are kept in the comment
        if line.split(":")[0].lower() in ("date", "message-id") or line[:1] in (" ", "\t"):
            assert f"  #   {line}\n" in yaml_text
    assert any(
        note.startswith("line 4: message: ") and "new for each message" in note
        for note in result.notes
    )


@pytest.mark.parametrize(
    ("header", "body"),
    [
        (["Subject: no ids here"], ("", "Date: in the body is text", "Message-Id: <a@b>")),
        (["X-Original-Date: Tue, 1 Dec 2026", "In-Reply-To: <a@b>", "References: <a@b>"], ()),
        (["Date:", "Message-Id: "], ()),
        (["not a header line", "Date: Tue, 1 Dec 2026"], ()),
    ],
    ids=["in-the-body", "other-fields", "empty-values", "after-a-non-header-line"],
)
def test_other_lines_and_fields_are_kept_as_typed(header: list[str], body: tuple[str, ...]) -> None:
    sent_message, result = message_of(header, body)
    assert sent_message == "".join(f"{line}\n" for line in [*header, *body])
    assert "new for each message" not in result.sessions[0].yaml_text
    assert not any("new for each message" in note for note in result.notes)


def test_the_swaks_corpus_sends_new_ids_and_dates_and_says_so() -> None:
    path = DATA / "postfix-swaks-plain.txt"
    result = import_transcript(path.read_text(encoding="utf-8"), path.name)
    (session,) = result.sessions
    data = scenario_of(session).steps[5]
    assert data.text is not None
    assert data.text.startswith("Date: {date}\nTo: hoge01@exsample.jp\n")
    assert "\nMessage-Id: {message_id}\n" in data.text
    assert "20261128020013.019848@vm" not in data.text
    assert (
        "  # Date: and Message-Id: are {date} and {message_id} here: new for each message sent,\n"
        "  # so that sessions do not all send the transcript's values:\n"
        "  #   Date: Sat, 28 Nov 2026 02:00:13 +0000\n"
        "  #   Message-Id: <20261128020013.019848@vm>\n"
        "  # 250 2.0.0 Ok: queued as 80102162008\n"
        "  - data: |+\n"
    ) in session.yaml_text
    assert (
        "line 22: message: Date: and Message-Id: are {date} and {message_id} here, new for"
        " each message" in result.notes
    )


# -- names, closing, missing replies -----------------------------------------------------------


def test_one_session_is_named_after_the_file_stem_or_the_given_name() -> None:
    text = lines(*PLAIN)
    assert scenario_of(import_transcript(text, "dir/session.txt").sessions[0]).name == "session"
    given = import_transcript(text, "dir/session.txt", name="mine")
    assert scenario_of(given.sessions[0]).name == "mine"
    both = import_transcript(text + text, "x.txt", name="mine")
    assert [scenario_of(s).name for s in both.sessions] == ["mine", "mine-2"]


def test_close_step_only_when_the_transcript_shows_the_server_closing() -> None:
    closed = only_scenario(lines(*PLAIN, "Connection closed by foreign host."))
    assert closed.steps[-1].kind is StepKind.CLOSE
    assert only_scenario(lines(*PLAIN)).steps[-1].kind is StepKind.SEND


def test_a_final_quit_without_its_reply_expects_any_reply() -> None:
    scenario = only_scenario(lines(*PLAIN[:-1], "Connection closed by foreign host."))
    quit_step, close = scenario.steps[-2:]
    assert (sent(quit_step), quit_step.expect) == ("QUIT", None)
    assert close.kind is StepKind.CLOSE


def test_an_unreadable_transcript_is_a_local_error_with_every_problem() -> None:
    with pytest.raises(TranscriptError) as caught:
        import_transcript(lines(PLAIN[0], "BDAT 4 LAST", "250 ok"), "t.txt")
    assert isinstance(caught.value, LocalError)
    assert caught.value.problems == [
        "t.txt:2: BDAT announced 4 octets, the lines below add up to 0 (each line with its"
        " CRLF; a chunk that ends inside a line may leave out its last CRLF)"
    ]


def test_public_api_fields() -> None:
    assert [f.name for f in dataclasses.fields(ImportedSession)] == [
        "number",
        "first_line",
        "yaml_text",
        "target",
        "secrets",
    ]
    assert [f.name for f in dataclasses.fields(ImportResult)] == ["format", "sessions", "notes"]
