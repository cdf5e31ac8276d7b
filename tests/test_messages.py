"""Generated and real messages (issue 13): data steps built with the email package, sizes drawn
from distributions, and .eml / mbox / Maildir messages sent as they are.

Pure tests first (the grammar and its FILE:LINE:COL errors, the messages a session's engine
sends, parsed back with ``email``; size distributions over many draws; same seed, same sizes),
then real peers: aiosmtpd in-process (RecordingHandler) and Postfix's recording transport.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import statistics
import uuid
from email.message import EmailMessage, MIMEPart
from pathlib import Path

import pytest

from smtpload.errors import ScenarioError
from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.message_size import message_octets
from smtpload.protocol.messages import SizeDraw
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.session_random import session_random
from smtpload.protocol.wire import PaddedMessage, Reply
from smtpload.scenario.loader import load_scenario
from smtpload.scenario.mail_files import LoadBudget, MailFileError, load_mbox, strip_trace
from smtpload.scenario.model import SizeSpec, StepKind
from tests.cli import smtpload
from tests.peers import RecordingPeer, RecordingPostfix

# -- helpers ---------------------------------------------------------------------------------


def scenario_text(data: str, *, recipient: str = "b@client.test", messages: int = 1) -> str:
    """A session of ``messages`` transactions, each sending the ``data:`` value ``data`` (YAML,
    written as the value of `- data:` at six spaces; for several messages, a repeat of one
    transaction, its lines indented two more)."""
    transaction = [
        '  - send: "MAIL FROM:<a@client.test> SIZE={message_size}"',
        "    name: mail",
        "    expect: 250",
        f'  - send: "RCPT TO:<{recipient}>"',
        "    name: rcpt",
        "    expect: 250",
        "  - send: DATA",
        "    name: data",
        "    expect: 354",
        "  - name: message",
        "    data:",
        *("      " + line for line in data.strip("\n").splitlines()),
    ]
    lines = ["steps:", "  - greeting: 220", "  - send: EHLO client.test", "    expect: 250"]
    if messages == 1:
        lines += transaction
    else:
        lines += [f"  - repeat: {messages}", "    steps:", *("  " + line for line in transaction)]
    lines += ["  - send: QUIT", "    expect: 221"]
    return "\n".join(lines) + "\n"


def write_scenario(tmp_path: Path, data: str, **options: object) -> Path:
    path = tmp_path / "messages.yaml"
    path.write_text(scenario_text(data, **options))  # type: ignore[arg-type]
    return path


def compiled(tmp_path: Path, data: str, *, seed: int = 0, **options: object) -> CompiledScenario:
    return compile_scenario(load_scenario(write_scenario(tmp_path, data, **options)), seed=seed)


def wire_bytes(data: object) -> bytes:
    if isinstance(data, PaddedMessage):
        return b"".join(bytes(chunk) for chunk in data.chunks())
    assert isinstance(data, bytes)
    return data


def unstuffed(sent: bytes) -> bytes:
    """A DATA message as the server stores it: without the final ".", dots unstuffed."""
    assert sent.endswith(b"\r\n.\r\n") or sent == b".\r\n"
    body = sent[: -len(b".\r\n")]
    return re.sub(rb"(?m)^\.", b"", body)


def session_messages(compiled: CompiledScenario, session: int, run_id: str = "run") -> list[bytes]:
    """Play one session that accepts everything; each message as it went on the wire."""
    engine = SessionEngine(compiled, session, compiled.session_variables(session, run_id))
    sent = []
    while (step := engine.next_step()) is not None:
        data = wire_bytes(engine.payload(step))
        if step.kind is StepKind.DATA:
            sent.append(data)
        code = {b"": 220, b"DATA\r\n": 354, b"QUIT\r\n": 221}.get(data, 250)
        answer = b"%d ok\r\n" % code
        assert engine.on_reply(step, Reply(int(answer[:3]), (answer[4:-2].decode(),), answer))
    assert engine.outcome is Outcome.PASSED
    return sent


def parsed(sent: bytes) -> EmailMessage:
    message = email.message_from_bytes(unstuffed(sent), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(part: MIMEPart) -> str:
    """A text part's content; the parser keeps a 7bit part's CRLF line ends as they came."""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def problems_of(path: Path) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return str(caught.value)


GENERATED = """
headers:
  From: "Load Test <loadtest@example.test>"
  To: "<b@client.test>"
  Subject: "test {session}"
body: "Hello,\\nthis is message {message_number}.\\n.a line with a dot\\n"
attachments:
  - {file: report.pdf}
  - {size: 3000, type: application/octet-stream, name: blob.bin}
"""

# -- generated messages, parsed back -------------------------------------------------------


def test_a_generated_message_parses_back_with_its_headers_body_and_attachments(
    tmp_path: Path,
) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 4)
    scenario = compiled(tmp_path, GENERATED, messages=2)
    first, second = (parsed(sent) for sent in session_messages(scenario, 7))
    for number, message in ((1, first), (2, second)):
        assert message["From"] == "Load Test <loadtest@example.test>"
        assert message["To"] == "b@client.test"
        assert message["Subject"] == "test 7"
        assert message["Date"] is not None
        assert message.get_content_type() == "multipart/mixed"
        body, pdf, blob = message.iter_parts()
        assert text_of(body) == f"Hello,\nthis is message {number}.\n.a line with a dot\n"
        assert pdf.get_content_type() == "application/pdf"
        assert pdf.get_filename() == "report.pdf"
        assert pdf.get_content() == (tmp_path / "report.pdf").read_bytes()
        assert blob.get_filename() == "blob.bin"
        assert len(blob.get_content()) == 3000
    assert first["Message-ID"] != second["Message-ID"]


def test_message_ids_are_unique_across_messages_sessions_and_runs(tmp_path: Path) -> None:
    scenario = compiled(tmp_path, "headers: {Subject: hi}", messages=3)
    ids = [
        parsed(sent)["Message-ID"]
        for run_id in ("run-a", "run-b")
        for session in range(1, 6)
        for sent in session_messages(scenario, session, run_id)
    ]
    assert len(ids) == 30
    assert len(set(ids)) == 30
    assert all(re.fullmatch(r"<[^@<>\s]+@smtpload\.example\.test>", i) for i in ids), ids


def test_a_message_id_or_date_of_the_file_replaces_the_generated_one(tmp_path: Path) -> None:
    data = 'headers: {Message-ID: "{message_id}", Date: "Mon, 1 Dec 2025 10:00:00 +0000"}'
    (sent,) = session_messages(compiled(tmp_path, data), 3, "run")
    text = unstuffed(sent)
    assert text.count(b"Message-ID:") == 1
    assert text.count(b"Date:") == 1
    assert parsed(sent)["Message-ID"] == "<run.3.1@smtpload.example.test>"


@pytest.mark.parametrize(
    ("smtputf8", "raw"),
    [("true", True), ("false", False)],
    ids=["smtputf8-raw-utf8", "encoded-words"],
)
def test_non_ascii_headers_are_raw_utf8_with_smtputf8_and_encoded_words_without(
    tmp_path: Path, smtputf8: str, raw: bool
) -> None:
    data = (
        'headers: {Subject: "Grüße {session}", From: "Jörg <j@example.test>"}\n'
        f"smtputf8: {smtputf8}\n"
        'body: "Köln\\n"'
    )
    (sent,) = session_messages(compiled(tmp_path, data), 1)
    head = unstuffed(sent).partition(b"\r\n\r\n")[0]
    assert (b"Gr\xc3\xbc\xc3\x9fe 1" in head) is raw
    assert (b"=?utf-8?" in head) is not raw
    message = parsed(sent)
    assert message["Subject"] == "Grüße 1"
    assert message["From"] == "Jörg <j@example.test>"
    assert message.get_content().replace("\r\n", "\n") == "Köln\n"


def test_a_header_value_with_a_line_break_from_a_variable_stays_one_field(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    text = scenario_text('headers: {Subject: "{subject}"}')
    path.write_text('variables:\n  subject: "a\\r\\nBcc: victim@example.test"\n' + text)
    (sent,) = session_messages(compile_scenario(load_scenario(path)), 1)
    head = unstuffed(sent).partition(b"\r\n\r\n")[0]
    assert not re.search(rb"(?m)^Bcc:", head)
    assert parsed(sent)["Subject"] == "a Bcc: victim@example.test"


# -- sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "wanted"),
    [
        ("size: {weighted: [[20KiB, 1]]}", 20 * 1024),
        ("headers: {Subject: big}\nsize: 100000", 100_000),
        ('body: "line {session}\\n..\\n"\nsize: 50000', 50_000),
        ("attachments: [{size: 30000}]\nsize: 64KiB", 64 * 1024),
        ("attachments: [{size: 30000}]\nsize: 200", None),  # larger already: sent as it is
        ('message: "Subject: x {session}\\n\\n.hi\\n"\nsize: {weighted: [[40000, 1]]}', 40_000),
    ],
    ids=["default-headers", "headers", "templated-body", "attachment", "too-small", "template"],
)
def test_a_size_is_the_messages_crlf_size_before_stuffing(
    tmp_path: Path, data: str, wanted: int | None
) -> None:
    scenario = compiled(tmp_path, data)
    step = next(step for step in scenario.steps if step.messages is not None)
    assert step.messages is not None
    for session in (1, 2, 3):
        variables = scenario.session_variables(session, "run")
        scenario.message_variables(variables, 1)
        sent = step.messages.message(session_random(0, session), variables, 1)
        size = len(unstuffed(wire_bytes(sent)))
        assert message_octets(sent) == size  # {message_size} counts what is sent
        if wanted is None:
            assert size > 30_000
        else:
            assert size == wanted
        parsed(wire_bytes(sent))  # still a message


def test_weighted_sizes_are_drawn_in_proportion() -> None:
    draw = SizeDraw(SizeSpec(weighted=((2048, 70.0), (51200, 25.0), (2 << 20, 5.0))))
    rng = session_random(1, 1)
    sizes = [draw.draw(rng) for _ in range(20_000)]
    assert set(sizes) == {2048, 51200, 2 << 20}
    for size, share in ((2048, 0.70), (51200, 0.25), (2 << 20, 0.05)):
        assert abs(sizes.count(size) / len(sizes) - share) < 0.03


def test_log_normal_sizes_have_the_median_and_p99_asked_for() -> None:
    draw = SizeDraw(SizeSpec(median=20 * 1024, p99=2 << 20))
    rng = session_random(1, 1)
    sizes = sorted(draw.draw(rng) for _ in range(20_000))
    median, p99 = statistics.median(sizes), sizes[int(len(sizes) * 0.99)]
    assert 20 * 1024 / 1.3 < median < 20 * 1024 * 1.3
    assert (2 << 20) / 2 < p99 < (2 << 20) * 2
    assert all(0 <= size <= 1 << 30 for size in sizes)


def test_a_huge_log_normal_is_bounded_by_the_largest_message() -> None:
    draw = SizeDraw(SizeSpec(median=1 << 29, p99=(1 << 30) - 1))
    rng = session_random(0, 1)
    assert max(draw.draw(rng) for _ in range(1000)) <= 1 << 30


def test_the_same_seed_gives_the_same_sizes_and_another_seed_others(tmp_path: Path) -> None:
    data = "size: {median: 5KiB, p99: 80KiB}"

    def sizes(seed: int) -> list[int]:
        scenario = compiled(tmp_path, data, seed=seed, messages=2)
        return [len(m) for s in (1, 2, 3) for m in session_messages(scenario, s)]

    assert sizes(7) == sizes(7)
    assert sizes(7) != sizes(8)
    assert len(set(sizes(7))) > 1


# -- real messages -------------------------------------------------------------------------

EML = (
    b"Return-Path: <old@example.test>\n"
    b"Received: from a by b;\n\tMon, 1 Dec 2025 10:00:00 +0000\n"
    b"Delivered-To: someone@example.test\n"
    b"From: <sender@example.test>\n"
    b"Subject: a real one\n"
    b"\n"
    b"body line\n.starts with a dot\nFrom the start of a line\nReceived: in the body\n"
)


def write_mbox(path: Path, bodies: list[bytes]) -> None:
    box = mailbox.mbox(str(path))
    for number, body in enumerate(bodies, start=1):
        # As bytes, so that mailbox writes the body as it is (a Message would be re-flowed).
        box.add(b"Subject: mbox %d\nDelivered-To: loop@example.test\n\n%s" % (number, body))
    box.flush()
    box.close()


def write_maildir(path: Path, count: int) -> None:
    box = mailbox.Maildir(str(path), create=True)
    for number in range(1, count + 1):
        box.add(f"Subject: maildir {number}\n\nmessage {number}\n".encode())
    box.close()


def test_an_eml_is_sent_as_it_is_with_crlf_line_ends(tmp_path: Path) -> None:
    (tmp_path / "one.eml").write_bytes(EML)
    (sent,) = session_messages(compiled(tmp_path, "file: one.eml"), 1)
    assert unstuffed(sent) == EML.replace(b"\n", b"\r\n")
    assert b"\r\n..starts with a dot\r\n" in sent


def test_strip_trace_removes_the_trace_fields_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "one.eml").write_bytes(EML)
    (sent,) = session_messages(compiled(tmp_path, "file: one.eml\nstrip_trace: true"), 1)
    assert unstuffed(sent) == (
        b"From: <sender@example.test>\r\nSubject: a real one\r\n\r\n"
        b"body line\r\n.starts with a dot\r\nFrom the start of a line\r\n"
        b"Received: in the body\r\n"
    )


def test_strip_trace_of_a_message_with_no_body() -> None:
    assert strip_trace(b"Received: x\r\n y\r\nSubject: s\r\n") == b"Subject: s\r\n"


def test_mbox_from_quoting_is_undone_one_level(tmp_path: Path) -> None:
    # An mboxrd file (mailbox reads it; its own writer quotes "From " lines alone): each
    # ">From " at a line's start, after any ">"s, was written for one ">" less.
    (tmp_path / "box.mbox").write_bytes(
        b"From sender@example.test Mon Dec  1 10:00:00 2025\n"
        b"Subject: quoted\n\n>From me\n>>From you\n>>>From them\n> From not\nFrom: x\n\n"
        b"From sender@example.test Mon Dec  1 10:00:01 2025\n"
        b"Subject: two\n\n>From two\n"
    )
    scenario = compiled(tmp_path, "mbox: box.mbox", messages=2)
    first, second = session_messages(scenario, 1)
    assert unstuffed(first) == (
        b"Subject: quoted\r\n\r\nFrom me\r\n>From you\r\n>>From them\r\n> From not\r\nFrom: x\r\n"
    )
    assert unstuffed(second) == b"Subject: two\r\n\r\nFrom two\r\n"


def test_mailbox_messages_in_order_wrap_by_session_and_message(tmp_path: Path) -> None:
    write_mbox(tmp_path / "box.mbox", [b"one\n", b"two\n", b"three\n"])
    scenario = compiled(tmp_path, "mbox: box.mbox", messages=2)
    subjects = {
        session: [parsed(m)["Subject"] for m in session_messages(scenario, session)]
        for session in (1, 2, 3, 4)
    }
    # Session s's m-th message is message ((s-1) + (m-1)) mod 3.
    assert subjects == {
        1: ["mbox 1", "mbox 2"],
        2: ["mbox 2", "mbox 3"],
        3: ["mbox 3", "mbox 1"],
        4: ["mbox 1", "mbox 2"],
    }


def test_mailbox_messages_at_random_follow_the_seed(tmp_path: Path) -> None:
    write_maildir(tmp_path / "Maildir", 10)

    def subjects(seed: int) -> list[str]:
        scenario = compiled(tmp_path, "maildir: Maildir\norder: random", seed=seed, messages=3)
        return [parsed(m)["Subject"] for s in range(1, 6) for m in session_messages(scenario, s)]

    assert subjects(1) == subjects(1)
    assert subjects(1) != subjects(2)
    assert len(set(subjects(1))) > 3


@pytest.mark.parametrize("bad", [b"\0", b"\r"], ids=["nul", "bare-cr"])
@pytest.mark.parametrize("source", ["file", "mbox", "maildir"])
def test_a_nul_or_bare_cr_in_a_message_is_refused_at_the_key(
    tmp_path: Path, source: str, bad: bytes
) -> None:
    body = b"good\nbad" + bad + b"here\n"
    if source == "file":
        (tmp_path / "m.eml").write_bytes(b"Subject: s\n\n" + body)
        value, where = "m.eml", "the message file m.eml"
    elif source == "mbox":
        write_mbox(tmp_path / "m.mbox", [b"fine\n", body])
        value, where = "m.mbox", "message 2 of the mbox m.mbox"
    else:
        write_maildir(tmp_path / "m", 1)
        box = mailbox.Maildir(str(tmp_path / "m"))
        box.add(b"Subject: z\n\n" + body)  # sorts after the first
        box.close()
        value, where = "m", "message 2 of the Maildir m"
    path = write_scenario(tmp_path, f"{source}: {value}")
    line = path.read_text().splitlines().index(f"      {source}: {value}") + 1
    result = smtpload("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    what = "a NUL byte" if bad == b"\0" else "a bare CR"
    assert re.search(rf"{re.escape(str(path))}:{line}:7: data: {source}: {where} holds {what}"
                     r".*\(at byte \d+", result.stderr), result.stderr  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("file: missing.eml", "data: file: cannot read the message file missing.eml"),
        ("mbox: box.mbox\nfile: x.eml", "give one message source"),
        ("file: x.eml\nsize: 100", "`size:` is for a generated message"),
        ("file: x.eml\norder: random", "`order:` is for a mailbox's messages"),
        ("headers: {Subject: s}\norder: random", "`order:` belongs with"),
        ("size: {median: 10KiB, p99: 5KiB}", "needs 1 <= median < p99"),
        ("size: {weighted: [[1KiB, 0]]}", "a weight must be greater than 0"),
        ("size: 20 KiBs", "is not a size"),
        ("size: {weighted: [1KiB]}", "[size, weight] pair"),
        ("headers: {Content-Type: text/html}", "writes this field"),
        ('headers: {Subject: "a\\nb"}', "must be one line"),
        ("headers: {Subject: a, subject: b}", "given twice"),
        ('headers: {"Bad Name": a}', "printable ASCII"),
        ('headers: {Subject: "{nope}"}', "unknown variable {nope}"),
        ("attachments: [{name: x}]", "needs either `file:` or `size:`"),
        ("attachments: [{size: 1, type: pdf}]", "is not a MIME type"),
        ("message: hi\nbody: there", "give either `message:` or `headers:`/`body:`"),
        ("maildir: x.eml", "is not a folder"),
    ],
)
def test_message_problems_are_located(tmp_path: Path, data: str, message: str) -> None:
    (tmp_path / "x.eml").write_bytes(b"Subject: x\n\nx\n")
    assert message in problems_of(write_scenario(tmp_path, data))


def test_every_problem_of_a_data_step_is_reported_together(tmp_path: Path) -> None:
    data = "headers: {Content-Type: a/b}\nsize: {median: 1, p99: 1}\nattachments: [{name: x}]"
    problems = problems_of(write_scenario(tmp_path, data))
    assert "writes this field" in problems
    assert "median < p99" in problems
    assert "needs either" in problems


def test_the_older_forms_are_unchanged(tmp_path: Path) -> None:
    scenario = compiled(tmp_path, 'message: "Subject: s\\n\\nhi\\n"\nsize: 1000')
    step = next(step for step in scenario.steps if step.kind is StepKind.DATA)
    assert step.messages is None
    assert isinstance(step.payload, bytes)
    assert len(unstuffed(step.payload)) == 1000


def test_an_older_size_may_carry_a_unit(tmp_path: Path) -> None:
    in_bytes, with_unit = (
        load_scenario(write_scenario(tmp_path, f"size: {size}")).steps[-2]
        for size in ("2048", "2KiB")
    )
    assert in_bytes.data_size == with_unit.data_size == 2048
    assert with_unit.message is None


def test_the_load_bounds_refuse_a_mailbox_past_them(tmp_path: Path) -> None:
    write_mbox(tmp_path / "box.mbox", [b"one\n", b"two\n", b"three\n"])
    with pytest.raises(MailFileError, match="holds 3 messages, more than the 2 left"):
        load_mbox(str(tmp_path / "box.mbox"), "box.mbox", LoadBudget(messages_left=2), trace=False)
    with pytest.raises(MailFileError, match="past 256 MiB"):
        load_mbox(str(tmp_path / "box.mbox"), "box.mbox", LoadBudget(bytes_left=10), trace=False)


def test_a_fifo_is_refused_not_read(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.eml")
    assert "is not a regular file" in problems_of(write_scenario(tmp_path, "file: pipe.eml"))


# -- real servers ----------------------------------------------------------------------------


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def test_real_and_generated_messages_arrive_intact_at_aiosmtpd(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    write_mbox(tmp_path / "box.mbox", [b"From here\n.dot\n", b"second\n"])
    path = write_scenario(tmp_path, "mbox: box.mbox", messages=2)
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    result = smtpload("run", str(path), "--target", target, "--sessions", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    received = aiosmtpd_server.handler.messages
    assert len(received) == 4
    # The mbox holds ">From here" (mailbox quoted it); the message had "From here".
    assert b"\n>From here\n" in (tmp_path / "box.mbox").read_bytes()
    expected = [
        b"Subject: mbox 1\nDelivered-To: loop@example.test\n\nFrom here\n.dot\n",
        b"Subject: mbox 2\nDelivered-To: loop@example.test\n\nsecond\n",
    ]
    contents = sorted(crlf(m.content) for m in received)
    assert contents == sorted([expected[0], expected[1], expected[1], expected[0]])
    for message in received:  # SIZE= declared what was sent (RFC 1870)
        size = next(o for o in message.mail_options if o.startswith("SIZE="))
        assert int(size[5:]) == len(message.content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def test_generated_messages_arrive_at_aiosmtpd_with_unique_ids(
    tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    path = write_scenario(tmp_path, GENERATED.replace("  - {file: report.pdf}\n", ""), messages=2)
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    result = smtpload(
        "run", str(path), "--target", target, "--sessions", "4", "--concurrency", "2",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    messages = [
        email.message_from_bytes(m.content, policy=email.policy.default)
        for m in aiosmtpd_server.handler.messages
    ]
    assert len(messages) == 8
    assert len({m["Message-ID"] for m in messages}) == 8
    assert sorted(m["Subject"] for m in messages) == sorted(f"test {s}" for s in (1, 2, 3, 4) * 2)


def postfix_view(delivered: bytes) -> bytes:
    """A message as Postfix stored it, without the Received: it put on top."""
    assert delivered.startswith(b"Received: ")
    lines = delivered.split(b"\n")
    at = 1
    while lines[at][:1] in (b" ", b"\t"):
        at += 1
    return b"\n".join(lines[at:])


@pytest.mark.parametrize("source", ["file", "mbox", "maildir"])
def test_real_messages_arrive_intact_at_postfix(
    tmp_path: Path, postfix_record: RecordingPostfix, source: str
) -> None:
    recipient = f"messages-{source}-{uuid.uuid4().hex}@{postfix_record.domain}"
    message = (
        b"From: <sender@example.test>\nTo: <" + recipient.encode() + b">\n"
        b"Message-ID: <" + uuid.uuid4().hex.encode() + b"@example.test>\n"
        b"Date: Mon, 1 Dec 2025 10:00:00 +0000\n"
        b"Subject: real " + source.encode() + b"\n"
        b"Delivered-To: " + recipient.encode() + b"\n"
        b"\nbody\n.dot line\n..two dots\n"
    )
    if source == "file":
        (tmp_path / "m.eml").write_bytes(message)
        value = "m.eml"
    elif source == "mbox":
        box = mailbox.mbox(str(tmp_path / "m.mbox"))
        box.add(message)
        box.close()
        value = "m.mbox"
    else:
        box_dir = mailbox.Maildir(str(tmp_path / "md"), create=True)
        box_dir.add(message)
        box_dir.close()
        value = "md"
    # Without strip_trace, Postfix's local delivery would see its own Delivered-To as a loop.
    path = write_scenario(tmp_path, f"{source}: {value}\nstrip_trace: true", recipient=recipient)
    target = f"{postfix_record.host}:{postfix_record.plain_port}"
    result = smtpload("run", str(path), "--target", target, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (delivered,) = postfix_record.wait_for(recipient)
    expected = b"".join(
        line for line in message.splitlines(keepends=True) if not line.startswith(b"Delivered-To")
    )
    assert postfix_view(delivered) == expected


def test_a_generated_mime_message_arrives_at_postfix(
    tmp_path: Path, postfix_record: RecordingPostfix
) -> None:
    recipient = f"messages-mime-{uuid.uuid4().hex}@{postfix_record.domain}"
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)))
    data = GENERATED.replace('"<b@client.test>"', f'"<{recipient}>"') + "size: 40KiB\n"
    path = write_scenario(tmp_path, data, recipient=recipient)
    target = f"{postfix_record.host}:{postfix_record.plain_port}"
    result = smtpload("run", str(path), "--target", target, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (delivered,) = postfix_record.wait_for(recipient)
    message = email.message_from_bytes(postfix_view(delivered), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "test 1"
    body, pdf, blob = message.iter_parts()
    assert text_of(body).startswith("Hello,\nthis is message 1.\n.a line with a dot\nxxx")
    assert pdf.get_content() == (tmp_path / "report.pdf").read_bytes()
    assert len(blob.get_content()) == 3000
    # 40 KiB on the wire with CRLF; stored with LF (and Postfix's Received: on top).
    stored = postfix_view(delivered)
    assert len(stored) + stored.count(b"\n") == 40 * 1024


# -- bdat steps take the same sources ------------------------------------------------------


def bdat_scenario(tmp_path: Path, bdat: str, recipient: str = "b@client.test") -> Path:
    path = tmp_path / "bdat.yaml"
    path.write_text(
        "steps:\n  - greeting: 220\n  - send: EHLO client.test\n    expect: 250\n"
        '  - send: "MAIL FROM:<a@client.test> SIZE={message_size}"\n    expect: 250\n'
        f'  - send: "RCPT TO:<{recipient}>"\n    expect: 250\n'
        f"  - bdat: {bdat}\n  - send: QUIT\n    expect: 221\n"
    )
    return path


def bdat_octets_sent(scenario: CompiledScenario, session: int) -> tuple[bytes, list[str]]:
    """Play a session; the octets its chunks carried and the BDAT lines."""
    engine = SessionEngine(scenario, session, scenario.session_variables(session, "run"))
    octets, lines = b"", []
    while (step := engine.next_step()) is not None:
        data = engine.payload(step)
        if step.kind is StepKind.BDAT:
            whole = b"".join(bytes(part) for part in data.chunks())  # type: ignore[union-attr]
            line, _, chunk = whole.partition(b"\r\n")
            lines.append(line.decode())
            octets += chunk
        code = {b"": 220, b"QUIT\r\n": 221}.get(data if isinstance(data, bytes) else b"-", 250)
        answer = b"%d ok\r\n" % code
        assert engine.on_reply(step, Reply(code, ("ok",), answer))
    assert engine.outcome is Outcome.PASSED
    return octets, lines


def test_a_bdat_step_sends_a_generated_message_unstuffed_at_its_size(tmp_path: Path) -> None:
    path = bdat_scenario(
        tmp_path, '{body: ".dot {session}\\n", size: {weighted: [[30000, 1]]}, chunk_size: 7000}'
    )
    octets, lines = bdat_octets_sent(compile_scenario(load_scenario(path)), 2)
    assert len(octets) == 30000
    assert lines == ["BDAT 7000"] * 4 + ["BDAT 2000 LAST"]
    assert b"\r\n.dot 2\r\n" in octets  # RFC 3030: never dot-stuffed
    message = email.message_from_bytes(octets, policy=email.policy.default)
    assert message["Subject"] == "smtpload test message run.2"


def test_a_bdat_step_sends_an_mbox_message_as_it_is(tmp_path: Path) -> None:
    write_mbox(tmp_path / "box.mbox", [b".dot\nline\n"])
    path = bdat_scenario(tmp_path, "{mbox: box.mbox, strip_trace: true}")
    octets, lines = bdat_octets_sent(compile_scenario(load_scenario(path)), 1)
    assert octets == b"Subject: mbox 1\r\n\r\n.dot\r\nline\r\n"
    assert lines == [f"BDAT {len(octets)} LAST"]


def test_postfix_receives_a_maildir_message_by_bdat(
    tmp_path: Path, postfix_record: RecordingPostfix
) -> None:
    recipient = f"messages-bdat-{uuid.uuid4().hex}@{postfix_record.domain}"
    message = (  # with the fields Postfix's cleanup would add (Date, Message-ID), none added
        b"From: <s@example.test>\nSubject: bdat\nMessage-ID: <x@y>\n"
        b"Date: Mon, 1 Dec 2025 10:00:00 +0000\n\n.a\nb\n"
    )
    box = mailbox.Maildir(str(tmp_path / "md"), create=True)
    box.add(message)
    box.close()
    path = bdat_scenario(tmp_path, "{maildir: md, chunk_size: 10}", recipient)
    target = f"{postfix_record.host}:{postfix_record.plain_port}"
    result = smtpload("run", str(path), "--target", target, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (delivered,) = postfix_record.wait_for(recipient)
    assert postfix_view(delivered) == message


def test_generated_attachments_count_in_the_load_bound(tmp_path: Path) -> None:
    data = "attachments: [{size: 200MiB}, {size: 100MiB}]"
    problems = problems_of(write_scenario(tmp_path, data))
    assert "data: attachment 2: 104,857,600 generated bytes would take" in problems
    assert "past 256 MiB" in problems


def test_a_large_drawn_size_is_padding_from_the_shared_block_not_built(tmp_path: Path) -> None:
    scenario = compiled(tmp_path, "attachments: [{size: 20KiB}]\nsize: {weighted: [[100MiB, 1]]}")
    step = next(step for step in scenario.steps if step.messages is not None)
    assert step.messages is not None
    variables = scenario.session_variables(1, "run")
    sent = step.messages.message(session_random(0, 1), variables, 1)
    assert isinstance(sent, PaddedMessage)
    assert message_octets(sent) == 100 << 20  # no line of it starts with "."
    assert len(sent) == (100 << 20) + len(b".\r\n")
    assert len(sent.head) < 4096  # the fields, the MIME head, the body: not the padding
    second = step.messages.message(session_random(0, 2), variables, 2)
    assert isinstance(second, PaddedMessage)
    assert second.tail is sent.tail  # the attachments: one buffer for every message


def test_a_mailbox_step_goes_through_its_messages_whatever_other_steps_send(
    tmp_path: Path,
) -> None:
    # Two messages per transaction (a generated one, then the mbox's): the mbox step's m-th
    # message counts its own messages, so each transaction takes the mbox's next message.
    write_mbox(tmp_path / "box.mbox", [b"one\n", b"two\n", b"three\n"])
    text = scenario_text("mbox: box.mbox", messages=3).replace(
        "    - name: message\n",
        "    - name: generated\n      data: {size: 100}\n"
        "    - send: DATA\n      name: data2\n      expect: 354\n"
        "    - name: message\n",
    )
    assert "generated" in text
    (tmp_path / "two.yaml").write_text(text)
    scenario = compile_scenario(load_scenario(tmp_path / "two.yaml"))
    sent = session_messages(scenario, 1)
    subjects = [parsed(m)["Subject"] for m in sent[1::2]]
    assert subjects == ["mbox 1", "mbox 2", "mbox 3"]
