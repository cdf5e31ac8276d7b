"""Reading transcripts of hand-driven SMTP sessions: formats, sessions, dialogue, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtpload.scenario.model import Target
from smtpload.transcripts.reader import (
    Exchange,
    ExchangeKind,
    Session,
    Transcript,
    TranscriptError,
    parse_transcript,
)

DATA = Path(__file__).parent / "data" / "transcripts"
SEED = DATA / "seed-blog.txt"


def seed() -> Transcript:
    return parse_transcript(SEED.read_text(encoding="utf-8"), "seed-blog.txt")


def dialogue(session: Session) -> list[tuple[str, str | None, int | None]]:
    """(kind, text, reply code) of each exchange: the dialogue at a glance."""
    return [
        (e.kind.value, e.text, None if e.reply is None else e.reply.code) for e in session.exchanges
    ]


def only_session(text: str, format: str = "auto") -> Session:
    transcript = parse_transcript(text, "t.txt", format)
    assert len(transcript.sessions) == 1
    return transcript.sessions[0]


def message(session: Session) -> Exchange:
    return next(e for e in session.exchanges if e.kind is ExchangeKind.MESSAGE)


def problems_of(text: str, format: str = "auto") -> list[str]:
    with pytest.raises(TranscriptError) as caught:
        parse_transcript(text, "t.txt", format)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


PLAIN = [
    "220 mx.example.test ESMTP",
    "HELO client.example.test",
    "250 mx.example.test",
    "MAIL FROM:<a@example.test>",
    "250 2.1.0 Ok",
    "RCPT TO:<b@example.test>",
    "250 2.1.5 Ok",
    "DATA",
    "354 End data with <CR><LF>.<CR><LF>",
    "Subject: hi",
    "",
    "body",
    ".",
    "250 2.0.0 Ok: queued as 4F2B1160041",
    "QUIT",
    "221 2.0.0 Bye",
]
PLAIN_DIALOGUE = [
    ("greeting", None, 220),
    ("command", "HELO client.example.test", 250),
    ("command", "MAIL FROM:<a@example.test>", 250),
    ("command", "RCPT TO:<b@example.test>", 250),
    ("command", "DATA", 354),
    ("message", "Subject: hi\n\nbody\n", 250),
    ("command", "QUIT", 221),
]


def lines(*text: str) -> str:
    return "\n".join(text) + "\n"


# -- the seed: a blog post with two telnet sessions between paragraphs -------------------------


def test_seed_has_two_sessions_with_their_targets() -> None:
    transcript = seed()
    assert transcript.format == "telnet"
    assert [(s.number, s.first_line, s.last_line) for s in transcript.sessions] == [
        (1, 23, 65),
        (2, 75, 121),
    ]
    assert [s.target for s in transcript.sessions] == [
        Target("smtp.exsample.jp", 25),
        Target("localhost", 25),
    ]
    assert all(s.closed for s in transcript.sessions)


def test_seed_first_session_dialogue_without_the_authors_notes() -> None:
    assert dialogue(seed().sessions[0]) == [
        ("greeting", None, 220),
        ("command", "HELO exsample.jp", 250),
        ("command", "MAIL FROM:hoge00@exsample.jp", 250),
        ("command", "RCPT TO:hoge01@exsample.jp", 250),
        ("command", "DATA", 354),
        (
            "message",
            "subject: test\nfrom: hoge00@exsample.jp\nto: hoge01@exsample.jp\n\nmeil send test\n",
            250,
        ),
        ("command", "quit", 221),
    ]


def test_seed_second_session_keeps_the_typo_and_its_500() -> None:
    exchanges = seed().sessions[1].exchanges
    assert dialogue(seed().sessions[1])[1:3] == [
        ("command", "HELOO localhost", 500),
        ("command", "HELO localhost", 250),
    ]
    typo_reply = exchanges[1].reply
    assert typo_reply is not None
    assert typo_reply.text == '5.5.1 Command unrecognized: "HELOO localhost"'
    assert message(seed().sessions[1]).text == (
        "subject: test\nfrom: hoge00@exsample.jp\nto: hoge01@gmail.com\n\nthis test\n"
    )


def test_seed_notes_are_stripped_and_reported_with_their_lines() -> None:
    notes = seed().notes
    assert notes[0] == "format: telnet (auto)"
    stripped = [note for note in notes if "stripped note" in note]
    assert stripped == [
        "line 23: stripped note '←メールサーバに接続'",
        "line 33: stripped note '←あいさつ(HELOの後はなんでもかまわない?)'",
        "line 37: stripped note '←送信元メールアドレス(エンベロープ送信者)'",
        "line 41: stripped note '←送信先メールアドレス(エンベロープ受信者)'",
        "line 45: stripped note '←これからメール内容送ること通知'",
        "line 49: stripped note '←ここから3行はメールヘッダ。'",
        "line 55: stripped note '←メール本文'",
        "line 57: stripped note '←メール内容終わることを通知'",
        "line 61: stripped note '←コネクション終了'",
    ]
    assert seed().sessions[0].exchanges[1].notes == ("←あいさつ(HELOの後はなんでもかまわない?)",)


def test_seed_prose_is_reported_as_skipped_ranges() -> None:
    skipped = [note for note in seed().notes if "skipped prose" in note]
    assert skipped == [
        "lines 1-21: skipped prose",
        "lines 67-73: skipped prose",
        "lines 123-141: skipped prose",
    ]


def test_seed_header_break_restoration_is_reported_at_the_body_line() -> None:
    restored = [note for note in seed().notes if "restored the empty line" in note]
    assert [note.split(":")[0] for note in restored] == ["line 55", "line 111"]


# -- formats -----------------------------------------------------------------------------------

SWAKS = """\
=== Trying 127.0.0.1:10025...
=== Connected to 127.0.0.1.
<-  220 postfix.test ESMTP Postfix (Debian/GNU)
 -> EHLO vm
<-  250-postfix.test
<-  250-PIPELINING
<-  250 CHUNKING
 -> MAIL FROM:<a@example.test>
<-  250 2.1.0 Ok
 -> RCPT TO:<b@reject.test>
<** 550 5.1.1 <b@reject.test>: Recipient address rejected: User unknown
 -> RCPT TO:<b@example.test>
<-  250 2.1.5 Ok
 -> DATA
<-  354 End data with <CR><LF>.<CR><LF>
 -> Subject: test\r
 -> \r
 -> This is a test mailing\r
 -> \r
 -> .
<-  250 2.0.0 Ok: queued as 476D3162052
 -> QUIT
<-  221 2.0.0 Bye
=== Connection closed with remote host.
"""

# RFC 5321 appendix D.1, as the RFC prints it (indented), with the text around it.
RFC5321_D1 = """\
D.1.  A Typical SMTP Transaction Scenario

   This SMTP example shows mail sent by Smith at host bar.com, and to
   Jones, Green, and Brown at host foo.com.

      S: 220 foo.com Simple Mail Transfer Service Ready
      C: EHLO bar.com
      S: 250-foo.com greets bar.com
      S: 250-8BITMIME
      S: 250-SIZE
      S: 250-DSN
      S: 250 HELP
      C: MAIL FROM:<Smith@bar.com>
      S: 250 OK
      C: RCPT TO:<Jones@foo.com>
      S: 250 OK
      C: RCPT TO:<Green@foo.com>
      S: 550 No such user here
      C: RCPT TO:<Brown@foo.com>
      S: 250 OK
      C: DATA
      S: 354 Start mail input; end with <CRLF>.<CRLF>
      C: Blah blah blah...
      C: ...etc. etc. etc.
      C: .
      S: 250 OK
      C: QUIT
      S: 221 foo.com Service closing transmission channel

D.2.  Aborted SMTP Transaction Scenario
"""


def test_swaks_output_error_replies_and_crs_in_message_lines() -> None:
    transcript = parse_transcript(SWAKS, "swaks.txt")
    assert transcript.notes[0] == "format: swaks (auto)"
    session = transcript.sessions[0]
    assert session.target == Target("127.0.0.1", 10025)
    assert session.closed
    assert dialogue(session) == [
        ("greeting", None, 220),
        ("command", "EHLO vm", 250),
        ("command", "MAIL FROM:<a@example.test>", 250),
        ("command", "RCPT TO:<b@reject.test>", 550),
        ("command", "RCPT TO:<b@example.test>", 250),
        ("command", "DATA", 354),
        ("message", "Subject: test\n\nThis is a test mailing\n\n", 250),
        ("command", "QUIT", 221),
    ]
    ehlo_reply = session.exchanges[1].reply
    assert ehlo_reply is not None
    assert ehlo_reply.lines == ("postfix.test", "PIPELINING", "CHUNKING")


def test_rfc5321_d1_listing_with_prose_around_it() -> None:
    transcript = parse_transcript(RFC5321_D1, "rfc5321.txt")
    assert transcript.notes[:3] == (
        "format: cs (auto)",
        "lines 1-4: skipped prose",
        "line 30: skipped prose",
    )
    session = transcript.sessions[0]
    assert (session.first_line, session.last_line, session.target) == (6, 28, None)
    codes = [code for _, _, code in dialogue(session)]
    assert codes == [220, 250, 250, 250, 550, 250, 354, 250, 221]
    # "...etc." on the wire is the dot-stuffed message line "..etc." (RFC 5321 §4.5.2).
    assert message(session).text == "Blah blah blah...\n..etc. etc. etc.\n"


def test_cs_listing_ended_by_a_remark() -> None:
    text = lines(
        "S: 220 smtp.example.com ESMTP Postfix",
        "C: HELO relay.example.org",
        "S: 250 Hello relay.example.org, I am glad to meet you",
        "C: QUIT",
        "S: 221 Bye",
        "{The server closes the connection}",
    )
    transcript = parse_transcript(text, "wiki.txt")
    assert transcript.notes == ("format: cs (auto)", "line 6: skipped prose")
    assert [code for _, _, code in dialogue(transcript.sessions[0])] == [220, 250, 221]


@pytest.mark.parametrize(
    ("command_line", "target"),
    [
        ("$ telnet smtp.example.test 25", Target("smtp.example.test", 25)),
        ("# telnet localhost 25", Target("localhost", 25)),
        ("telnet 192.0.2.1 2525", Target("192.0.2.1", 2525)),
        ("nc mx.example.test 25", Target("mx.example.test", 25)),
        ("$ nc -C 127.0.0.1 10025", Target("127.0.0.1", 10025)),
        ("user@box:~$ nc -w 5 mx.example.test smtp", Target("mx.example.test", 25)),
        ("[root@box ~]# ncat -C ::1 2525", Target("::1", 2525)),
        ("C:\\> telnet mail.example.test 587", Target("mail.example.test", 587)),
        ("$ telnet mail.example.test", None),
    ],
    ids=[
        "dollar",
        "root",
        "no-prompt",
        "nc",
        "nc-C",
        "nc-w-service",
        "ncat-v6",
        "windows",
        "no-port",
    ],
)
def test_target_comes_from_the_command_line(command_line: str, target: Target | None) -> None:
    session = only_session(lines(command_line, *PLAIN))
    assert session.first_line == 1
    assert session.target == target
    assert dialogue(session) == PLAIN_DIALOGUE


def test_a_command_line_without_a_port_is_reported() -> None:
    transcript = parse_transcript(lines("$ telnet mail.example.test", *PLAIN), "t.txt")
    assert "line 1: no port on the command line: the scenario gets no target" in transcript.notes


@pytest.mark.parametrize(
    ("format", "expected"),
    [("telnet", "telnet"), ("swaks", "swaks"), ("cs", "cs")],
)
def test_a_given_format_is_used_without_a_note(format: str, expected: str) -> None:
    text = {"telnet": lines(*PLAIN), "swaks": SWAKS, "cs": RFC5321_D1}[format]
    transcript = parse_transcript(text, "t.txt", format)
    assert transcript.format == expected
    assert not any(note.startswith("format:") for note in transcript.notes)


def test_a_wrong_format_finds_no_session() -> None:
    assert problems_of(lines(*PLAIN), "swaks") == [
        "t.txt:1: no swaks session found; check --format, or the transcript"
    ]


# -- layout: line ends, blanks, notes ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "\r\n".join(PLAIN) + "\r\n",
        "\n".join(PLAIN),  # no final line end
        "\n".join(line + "  " if line and line != "." else line for line in PLAIN) + "\n",
        "\n".join(line + "\t" if not line[:1].isdigit() and line else line for line in PLAIN),
        "\ufeff" + "\n".join(PLAIN),
    ],
    ids=["crlf", "no-final-newline", "trailing-spaces-on-replies", "trailing-tabs", "bom"],
)
def test_line_ends_and_trailing_blanks_do_not_change_the_dialogue(text: str) -> None:
    session = only_session(text)
    commands = [(kind, text) for kind, text, _ in dialogue(session) if kind == "command"]
    assert commands == [(kind, text) for kind, text, _ in PLAIN_DIALOGUE if kind == "command"]


def test_trailing_whitespace_after_a_command_is_dropped_and_reported() -> None:
    text = lines(*PLAIN).replace("HELO client.example.test", "HELO client.example.test \t")
    transcript = parse_transcript(text, "t.txt")
    assert transcript.sessions[0].exchanges[1].text == "HELO client.example.test"
    assert "line 2: dropped trailing whitespace after the command" in transcript.notes


def test_message_lines_keep_tabs_and_trailing_spaces() -> None:
    text = lines(*PLAIN).replace("body\n", "\tindented body  \n")
    assert message(only_session(text)).text == "Subject: hi\n\n\tindented body  \n"


def test_double_spaced_session_drops_layout_but_keeps_a_real_empty_line() -> None:
    # The message's empty line is there, with the layout's empty lines around it.
    session = only_session("\n\n".join(PLAIN) + "\n")
    assert dialogue(session) == PLAIN_DIALOGUE


def test_single_spaced_message_is_not_given_a_header_break() -> None:
    text = lines(*PLAIN[:10], "From: a@example.test", "body", *PLAIN[12:])
    assert message(only_session(text)).text == "Subject: hi\nFrom: a@example.test\nbody\n"


@pytest.mark.parametrize(
    ("typed", "message_line", "note"),
    [
        ("..leading dot", ".leading dot", None),
        ("...", "..", None),
        (".x", "x", "line 12: '.x' is not dot-stuffed, so a server reads it as 'x'"),
    ],
    ids=["stuffed", "stuffed-dots", "not-stuffed"],
)
def test_one_level_of_dot_stuffing_is_removed(
    typed: str, message_line: str, note: str | None
) -> None:
    transcript = parse_transcript(lines(*PLAIN).replace("\nbody\n", f"\n{typed}\n"), "t.txt")
    assert message(transcript.sessions[0]).text == f"Subject: hi\n\n{message_line}\n"
    if note is not None:
        assert any(n.startswith(note) for n in transcript.notes)


@pytest.mark.parametrize("arrow", ["←", "⇐", "<--"])
def test_notes_after_any_arrow_are_stripped_also_in_the_message_and_on_the_dot(
    arrow: str,
) -> None:
    text = lines(*PLAIN)
    text = text.replace("DATA\n", f"DATA {arrow} go\n").replace("body\n", f"body\t{arrow}text\n")
    text = text.replace("\n.\n", f"\n.  {arrow} the end\n")
    transcript = parse_transcript(text, "t.txt")
    assert dialogue(transcript.sessions[0]) == PLAIN_DIALOGUE
    assert [n for n in transcript.notes if "stripped note" in n] == [
        f"line 8: stripped note '{arrow} go'",
        f"line 12: stripped note '{arrow}text'",
        f"line 13: stripped note '{arrow} the end'",
    ]


def test_braces_in_a_command_are_kept_as_typed() -> None:
    text = lines(*PLAIN).replace("HELO client.example.test", "HELO {client}")
    assert only_session(text).exchanges[1].text == "HELO {client}"


def test_a_multiline_reply_is_one_reply() -> None:
    text = lines(
        PLAIN[0],
        "EHLO c",
        "250-mx.example.test",
        "250-SIZE 1000",
        "250 8BITMIME",
        "QUIT",
        "221 Bye",
    )
    session = only_session(text)
    assert dialogue(session) == [
        ("greeting", None, 220),
        ("command", "EHLO c", 250),
        ("command", "QUIT", 221),
    ]
    reply = session.exchanges[1].reply
    assert reply is not None
    assert reply.text == "mx.example.test\nSIZE 1000\n8BITMIME"


def test_a_bare_code_is_a_complete_reply() -> None:
    session = only_session(lines(PLAIN[0], "NOOP", "250", "QUIT", "221"))
    assert [code for _, _, code in dialogue(session)] == [220, 250, 221]


def test_connection_closed_is_recorded_only_when_shown() -> None:
    shown = only_session(lines(*PLAIN, "Connection closed by foreign host."))
    assert shown.closed
    assert not only_session(lines(*PLAIN)).closed


def test_a_final_quit_without_its_reply_is_accepted_and_reported() -> None:
    transcript = parse_transcript(lines(*PLAIN[:-1]), "t.txt")
    assert dialogue(transcript.sessions[0])[-1] == ("command", "QUIT", None)
    assert "line 15: the transcript ends before the reply to QUIT" in transcript.notes[-1]


def test_prose_after_a_session_without_quit_ends_it() -> None:
    text = lines(*PLAIN[:-2], "", "That is all it takes to send a message.")
    transcript = parse_transcript(text, "t.txt")
    assert dialogue(transcript.sessions[0]) == PLAIN_DIALOGUE[:-1]
    assert transcript.notes[-1] == "line 16: skipped prose"


def test_sessions_back_to_back_after_quit() -> None:
    transcript = parse_transcript(lines(*PLAIN, *PLAIN), "t.txt")
    assert [s.first_line for s in transcript.sessions] == [1, 17]


# -- indentation: sessions pasted into Markdown, forums and mail -------------------------------

INDENTS = ["    ", "\t", "  ", "\t\t", " \t"]
INDENT_IDS = ["4-spaces", "tab", "2-spaces", "2-tabs", "space-tab"]


def indented(prefix: str, *text: str) -> list[str]:
    return [prefix + line if line else line for line in text]


@pytest.mark.parametrize("prefix", INDENTS, ids=INDENT_IDS)
def test_an_indented_telnet_session_reads_as_the_unindented_one(prefix: str) -> None:
    text = ["$ telnet mx.example.test 25", "Trying 192.0.2.1...", *PLAIN]
    text.insert(12, "\tcontinued")  # the Subject: header folded (RFC 5322 §2.2.3)
    plain = parse_transcript(lines(*text), "t.txt")
    transcript = parse_transcript(lines(*indented(prefix, *text)), "t.txt")
    assert transcript == plain
    assert transcript.sessions[0].target == Target("mx.example.test", 25)
    # The message keeps the indentation it had inside the session, and only that.
    assert message(transcript.sessions[0]).text == "Subject: hi\n\tcontinued\n\nbody\n"


@pytest.mark.parametrize("prefix", INDENTS, ids=INDENT_IDS)
def test_prose_around_an_indented_session_stays_prose(prefix: str) -> None:
    text = ["Here is what I typed:", "", *indented(prefix, *PLAIN[:-2]), "", "Why no 221?"]
    transcript = parse_transcript(lines(*text), "t.txt")
    assert dialogue(only_session(lines(*text))) == PLAIN_DIALOGUE[:-1]
    assert (transcript.sessions[0].first_line, transcript.sessions[0].last_line) == (3, 16)
    assert transcript.notes[-1] == "line 18: skipped prose"
    assert "line 1: skipped prose" in transcript.notes


def test_a_line_less_indented_than_the_session_ends_it() -> None:
    # The unindented reply is outside the indented block: not the answer to QUIT.
    text = [*indented("    ", *PLAIN[:-1]), "221 2.0.0 Bye"]
    transcript = parse_transcript(lines(*text), "t.txt")
    assert dialogue(transcript.sessions[0])[-1] == ("command", "QUIT", None)
    assert transcript.sessions[0].last_line == 15
    assert transcript.notes[-1] == "line 16: skipped prose"


def test_an_indented_block_that_ends_inside_the_message_is_refused_at_its_354() -> None:
    text = [*indented("\t", *PLAIN[:11]), "body, unindented", *indented("\t", *PLAIN[12:])]
    assert problems_of(lines(*text))[0].startswith(
        "t.txt:9: the message after this 354 has no lone '.' line"
    )


def test_sessions_indented_differently_are_each_found() -> None:
    text = [*indented("    ", *PLAIN), "", "and then:", "", *indented("\t", *PLAIN)]
    transcript = parse_transcript(lines(*text), "t.txt")
    assert [dialogue(s) for s in transcript.sessions] == [PLAIN_DIALOGUE, PLAIN_DIALOGUE]
    assert [s.first_line for s in transcript.sessions] == [1, 20]


@pytest.mark.parametrize("format", ["swaks", "cs"])
@pytest.mark.parametrize("prefix", INDENTS, ids=INDENT_IDS)
def test_indented_swaks_and_cs_sessions_read_as_unindented(prefix: str, format: str) -> None:
    labels = {"swaks": (" -> ", "<-  "), "cs": ("C: ", "S: ")}[format]
    text = [labels[line[:1].isdigit() and line[3:4] in (" ", "-", "")] + line for line in PLAIN]
    plain = parse_transcript(lines(*text), "t.txt")
    assert dialogue(plain.sessions[0]) == PLAIN_DIALOGUE
    assert parse_transcript(lines(*indented(prefix, *text)), "t.txt") == plain


# -- refusals ----------------------------------------------------------------------------------

REFUSED = [
    (
        lines("220 mx", "250 ok", "250 ok", "221 bye"),
        "t.txt:1: the session has server replies only, no client lines",
    ),
    (lines(*PLAIN[:11], "body"), "t.txt:9: the message after this 354 has no lone '.' line"),
    (
        lines(*PLAIN[:11], "body", "", "That was the message. Now the reply."),
        "t.txt:9: the message after this 354 has no lone '.' line",
    ),
    (lines(*PLAIN[:3], "MAIL FROM:<a@\x00>", *PLAIN[4:]), "t.txt:4: character U+0000 is not text"),
    (lines(*PLAIN[:3], "\x1b[1mMAIL\x1b[0m"), "t.txt:4: character U+001B is not text"),
    (lines(*PLAIN[:3], "MAIL \udcff"), "t.txt:4: byte 0xff is not UTF-8 text"),
    (
        lines(*PLAIN[:3], "STARTTLS", "220 2.0.0 Ready", "EHLO c", "250 mx"),
        "t.txt:6: the session goes on after the 220 to STARTTLS (line 5), but a telnet",
    ),
    (
        lines(PLAIN[0], "EHLO c", "250 AUTH PLAIN", "AUTH PLAIN AGEAYg=", "235 2.7.0 ok"),
        "t.txt:4: the AUTH PLAIN response here is not base64",
    ),
    (
        lines(
            "<-  220 mx",
            " -> EHLO vm",
            "<-  250 STARTTLS",
            " -> STARTTLS",
            "<-  220 go",
            " -> EHLO vm",
        ),
        "t.txt:6: this line is not marked as in TLS, but TLS started at line 5",
    ),
    (
        lines("<-  220 mx", " ~> EHLO vm", "<~  250 ok"),
        "t.txt:2: this line is marked as sent in TLS (swaks' '~>' and '<~'), but no STARTTLS",
    ),
    (
        lines(*PLAIN[:3], "MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "250 ok"),
        "t.txt:4: 'MAIL FROM:<a@example.test>' has no reply before the next client line (line 5)",
    ),
    (lines(*PLAIN[:3], "NOOP"), "t.txt:4: 'NOOP' has no reply after it"),
    (lines(*PLAIN[:13]), "t.txt:13: the end of the message ('.') has no reply after it"),
    (lines(PLAIN[0], "EHLO c", "250-mx", "QUIT", "221 bye"), "t.txt:3: the reply is not finished"),
    (
        lines(PLAIN[0], "EHLO c", "250-mx", "251 SIZE"),
        "t.txt:4: the reply code changes from 250 to 251 inside a multiline reply",
    ),
    (lines(*PLAIN[:3], "250 again"), "t.txt:4: '250 again' answers no command"),
    (
        lines("$ telnet mx 25", "HELO c", "250 ok"),
        "t.txt:2: the session starts with the client's 'HELO c': the server's greeting (220)",
    ),
    (lines("Some text.", "HELO c", "250 ok"), "t.txt:2: 'HELO c' and its reply are outside"),
    (lines("S: 220 mx", "S: 250 ok"), "t.txt:1: the session has server replies only"),
    (lines("S: 220 mx", "C: HELO c", "S: hello"), "t.txt:3: 'hello' is not a reply line"),
    (lines("Just a page about mail.", "Nothing else."), "t.txt:1: no SMTP dialogue found"),
]


@pytest.mark.parametrize(
    ("text", "problem"),
    REFUSED,
    ids=[
        "server-lines-only",
        "cut-off-data",
        "cut-off-data-then-prose",
        "nul",
        "terminal-escape",
        "not-utf8",
        "telnet-in-tls",
        "auth-not-base64",
        "swaks-plain-in-tls",
        "swaks-tls-lines-before-starttls",
        "pipelined",
        "no-reply",
        "no-reply-to-dot",
        "unfinished-multiline",
        "code-change",
        "reply-to-nothing",
        "no-greeting",
        "outside-a-session",
        "cs-server-only",
        "cs-not-a-reply",
        "no-dialogue",
    ],
)
def test_unreadable_transcripts_are_refused_at_the_line(text: str, problem: str) -> None:
    problems = problems_of(text)
    assert problems[0].startswith(problem), problems


def test_every_broken_session_is_reported_at_once() -> None:
    broken = lines(*PLAIN[:3], "NOOP", "", "Some prose.", "")
    problems = problems_of(broken + broken.replace("NOOP", "RSET"))
    assert problems == [
        "t.txt:4: 'NOOP' has no reply after it (the session ends here); add the server's reply,"
        " or remove the line",
        "t.txt:11: 'RSET' has no reply after it (the session ends here); add the server's reply,"
        " or remove the line",
    ]


@pytest.mark.parametrize(
    ("junk", "more"), [(10, "7 more lines"), (5, "2 more lines"), (4, "1 more line")]
)
def test_junk_is_reported_for_a_few_lines_then_counted(junk: int, more: str) -> None:
    problems = problems_of("\x00\n" * junk)
    assert len(problems) == 4
    assert problems[-1] == f"t.txt: ... and {more} like these"
