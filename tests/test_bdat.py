"""BDAT / CHUNKING (RFC 3030): the ``bdat`` step, from the file to the wire and the reports.

Pure tests first (the octets and chunks of protocol/bdat.py, the scenario's grammar, the
engine's chunk rows and RFC 3030's rule after a refused chunk), then real peers: Postfix with its
recording transport (mail to ``@record.test`` is stored as delivered), a load run against
Postfix, a hostile server that refuses a chunk, and our own sink.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from smtpload.errors import ScenarioError
from smtpload.protocol.bdat import ChunkCutter, ChunkPayload, PaddedOctets, bdat_octets
from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.wire import FILLER_LINE, PaddedMessage, Reply
from smtpload.scenario.bdat_syntax import message_length
from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import Chunking, StepKind
from smtpload.transcripts.importer import TranscriptError, import_transcript
from tests.cli import COMMAND, environment, smtpload
from tests.misbehaving import refuses_second_chunk
from tests.peers import RecordingPostfix, SmtpPeer

MESSAGE = "Subject: chunks\n\nline one\n.a line that starts with a dot\n.\nlast line\n"


def sent_bytes(chunk: ChunkPayload) -> bytes:
    return b"".join(bytes(part) for part in chunk.chunks())


def all_chunks(octets: bytes | PaddedOctets, chunking: Chunking | None) -> list[ChunkPayload]:
    cutter = ChunkCutter(octets, chunking)
    chunks = []
    while (chunk := cutter.next()) is not None:
        chunks.append(chunk)
        assert len(chunks) < 20_000
    return chunks


def octets_of(chunks: list[ChunkPayload]) -> bytes:
    """The message the chunks carry (each chunk's bytes after its BDAT line)."""
    return b"".join(sent_bytes(c).partition(b"\r\n")[2] for c in chunks)


# -- the octets and the chunks (protocol/bdat.py) ------------------------------------------------


def test_octets_are_the_text_with_crlf_and_nothing_stuffed() -> None:
    assert bdat_octets(b".a\n.\nb", None) == b".a\r\n.\r\nb"
    assert bdat_octets(b"a\r\nb\n", None) == b"a\r\nb\r\n"


@pytest.mark.parametrize(
    ("chunking", "commands"),
    [
        (None, ["BDAT 100 LAST"]),
        (Chunking(chunk_size=30), ["BDAT 30", "BDAT 30", "BDAT 30", "BDAT 10 LAST"]),
        (Chunking(chunk_size=50), ["BDAT 50", "BDAT 50 LAST"]),
        (Chunking(chunk_size=500), ["BDAT 100 LAST"]),
        (Chunking(chunks=(10, 90)), ["BDAT 10", "BDAT 90 LAST"]),
        (Chunking(chunks=(100,), last_empty=True), ["BDAT 100", "BDAT 0 LAST"]),
        (Chunking(chunk_size=60, last_empty=True), ["BDAT 60", "BDAT 40", "BDAT 0 LAST"]),
        (Chunking(last_empty=True), ["BDAT 100", "BDAT 0 LAST"]),
        # A message whose length varies: the last listed chunk takes the rest, and a listed
        # chunk gets at most what is left.
        (Chunking(chunks=(10, 10)), ["BDAT 10", "BDAT 90 LAST"]),
        (Chunking(chunks=(60, 60, 5)), ["BDAT 60", "BDAT 40", "BDAT 0 LAST"]),
    ],
    ids=["whole", "size30", "size50-even", "size-over", "list", "list-empty-last",
         "size-empty-last", "empty-last", "list-short", "list-long"],
)  # fmt: skip
def test_chunks_of_a_100_octet_message(chunking: Chunking | None, commands: list[str]) -> None:
    message = bytes(range(100))
    chunks = all_chunks(message, chunking)
    assert [c.command for c in chunks] == commands
    assert [c.last for c in chunks] == [False] * (len(commands) - 1) + [True]
    assert octets_of(chunks) == message
    for chunk in chunks:
        assert sent_bytes(chunk).startswith(chunk.command.encode() + b"\r\n")
        assert len(sent_bytes(chunk)) == len(chunk.command) + 2 + chunk.size


def test_an_empty_message_is_one_bdat_0_last() -> None:
    assert [c.command for c in all_chunks(b"", None)] == ["BDAT 0 LAST"]
    assert [c.command for c in all_chunks(b"", Chunking(chunk_size=10))] == ["BDAT 0 LAST"]


@pytest.mark.parametrize("size", [100_000, 1 << 20, 1_000_003])
@pytest.mark.parametrize("chunk_size", [77, 78, 79, 4095, 65536, 400_000])
def test_padded_chunks_carry_the_same_octets_as_the_built_message(
    size: int, chunk_size: int
) -> None:
    # Any cut of a padded message (at any offset of its generated lines, across the shared
    # block's end) carries the octets of the same message built whole.
    text = b"Subject: padded\n\nhello\n"
    octets = bdat_octets(text, size)
    assert isinstance(octets, PaddedOctets)
    built = octets.head + FILLER_LINE * octets.filler_lines + octets.tail
    assert len(built) == len(octets) == size
    chunks = all_chunks(octets, Chunking(chunk_size=chunk_size))
    assert octets_of(chunks) == built
    assert all(c.size == chunk_size for c in chunks[:-1])


def test_large_padded_chunks_are_views_of_the_shared_block() -> None:
    octets = bdat_octets(b"Subject: big\n\n", 100 << 20)
    cutter = ChunkCutter(octets, Chunking(chunk_size=1 << 20))
    chunk = cutter.next()
    assert chunk is not None
    assert all(isinstance(part, memoryview) for part in chunk.parts[2:])
    assert len(chunk.parts) < 10


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("a\nb\n", None), ("a\r\nb", None), ("", None), ("x", 10), ("x\n", 1000), ("x" * 90, 10),
        ("hello\n", 80), ("hello\n", 86), ("hello\n", 87), ("hello\n", 9), ("hello\n", 10),
        ("{{not a variable}}\n", None), ("abc", 84), ("", 78), ("", 80), ("", 2),
    ],
)  # fmt: skip
def test_the_loaders_length_is_the_octets_length(text: str, size: int | None) -> None:
    # The loader checks chunks: against message_length; the wire sends bdat_octets.
    rendered = text.replace("{{", "{").replace("}}", "}").encode()
    assert message_length(text, size) == len(bdat_octets(rendered, size))


# -- the scenario's grammar ----------------------------------------------------------------------

HEAD = "steps:\n  - greeting: 220\n  - send: EHLO c.test\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return [str(problem) for problem in info.value.problems]


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ('bdat: {message: "abc\\n", chunks: [1, 1]}',
         "s.yaml:4:38: bdat: chunks add up to 2 octets and the message has 5"),
        ("bdat: {size: 1000, chunks: [500, 400]}",
         "s.yaml:4:32: bdat: chunks add up to 900 octets and the message has 1000"),
        ('bdat: {message: "{session}", size: 100, chunks: [5, 5]}',
         "s.yaml:4:53: bdat: chunks add up to 10 octets and the message has 100"),
        ("bdat: {size: 10, chunk_size: 0}", "s.yaml:4:34: bdat: chunk_size must be 1 or more"),
        ("bdat: {size: 10, chunks: []}", "s.yaml:4:30: bdat: chunks takes a list of sizes"),
        ("bdat: {size: 10, chunks: [-1, 11]}", "s.yaml:4:31: a chunk size must be 0 or more"),
        ("bdat: {size: 10, chunks: [10], chunk_size: 5}",
         "s.yaml:4:22: give either `chunk_size:` or `chunks:`, not both"),
        ("bdat: {size: 10, last: full}", "s.yaml:4:28: bdat: last takes only `empty`"),
        ("bdat: {}", "s.yaml:4:11: bdat needs `message:`, `size:`, or both"),
        ("bdat: {size: 10, chunksize: 5}", "s.yaml:4:22: unknown key 'chunksize' in bdat"),
        ("send: BDAT 10 LAST", "s.yaml:4:11: send: BDAT is not allowed: use the bdat step"),
        ("send: bdat 0", "s.yaml:4:11: send: BDAT is not allowed"),
        ("{send: NOOP, expect_chunk: 250}", "s.yaml:4:18: expect_chunk is for bdat steps"),
        ("{send: NOOP, name: a/b}", "s.yaml:4:24: step name 'a/b' must not contain '/'"),
        (
            "{bdat: x, name: message/chunk}",
            "s.yaml:4:21: step name 'message/chunk' must not contain '/'",
        ),
    ],
    ids=["text-sum", "size-sum", "template-with-size-sum", "chunk-size-0", "chunks-empty",
         "chunk-negative", "both", "last-other", "empty", "unknown-key", "send-bdat",
         "send-bdat-lower", "expect-chunk-elsewhere", "slash-name", "slash-chunk-name"],
)  # fmt: skip
def test_bdat_problems_are_located(step: str, expected: str) -> None:
    found = problems(HEAD + f"  - {step}\n")
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_a_bdat_step_after_data_354_is_refused() -> None:
    text = HEAD + "  - send: DATA\n    expect: 354\n  - bdat: hello\n"
    assert problems(text) == [
        "s.yaml:6:5: a bdat step sends the message without DATA (RFC 3030): step 3 expects 354,"
        " after which the chunks would be read as message text; remove that step, or use `data:`"
    ]


def test_a_template_without_size_may_list_any_chunks() -> None:
    # Its length is known only per session: the last listed chunk takes the rest.
    scenario = parse_scenario(HEAD + '  - bdat: {message: "id {session}\\n", chunks: [3, 1]}\n')
    assert scenario.steps[-1].chunking == Chunking(
        chunks=(3, 1),
        expect_chunk=scenario.steps[-1].chunking.expect_chunk,  # type: ignore[union-attr]
    )


def test_bdat_steps_are_named_message_and_list_their_chunk_row_first() -> None:
    scenario = parse_scenario(
        HEAD
        + "  - bdat: {size: 100, chunk_size: 10}\n"
        + "  - bdat: just one chunk\n"
        + "  - {bdat: {size: 10, last: empty}, name: big, expect_chunk: 2xx}\n"
    )
    compiled = compile_scenario(scenario)
    assert compiled.step_names == (
        "greeting", "ehlo", "message/chunk", "message", "message#2", "big/chunk", "big",
    )  # fmt: skip


# -- the engine: chunks as rows, RFC 3030's rule after a refused chunk --------------------------


def run_engine(text: str, replies: list[bytes], *, observe: bool = False) -> tuple[
    SessionEngine, list[tuple[str, str]]
]:  # fmt: skip
    """Run a scenario's engine against canned replies; returns (step name, what was sent)."""
    compiled = compile_scenario(parse_scenario(text))
    variables = compiled.session_variables(1, "run")
    engine = SessionEngine(compiled, 1, variables, observe=observe)
    engine.on_connected("127.0.0.1:25")
    seen: list[tuple[str, str]] = []
    while (step := engine.next_step()) is not None:
        data = engine.payload(step)
        assert not isinstance(data, PaddedMessage)
        shown = data.command if isinstance(data, ChunkPayload) else data.decode()
        seen.append((step.name, shown.strip()))
        code = replies.pop(0)
        engine.on_reply(step, Reply(int(code[:3]), (code[4:].decode(),), code + b"\r\n"))
        assert len(seen) < 100
    return engine, seen


BDAT_SCENARIO = (
    HEAD + "  - bdat: {message: x, size: 30, chunk_size: 10}\n  - send: QUIT\n    expect: 221\n"
)


def test_each_chunk_but_the_last_runs_as_the_chunk_row() -> None:
    engine, seen = run_engine(BDAT_SCENARIO, [b"220 hi", b"250 ok", *[b"250 ok"] * 3, b"221 bye"])
    assert seen[2:] == [
        ("message/chunk", "BDAT 10"), ("message/chunk", "BDAT 10"), ("message", "BDAT 10 LAST"),
        ("quit", "QUIT"),
    ]  # fmt: skip
    assert engine.outcome is Outcome.PASSED
    assert engine.messages_accepted == 1


def test_a_refused_chunk_fails_there_and_quits_politely() -> None:
    # RFC 3030 §2: the server read the refused chunk, so the connection is in command state.
    engine, seen = run_engine(BDAT_SCENARIO, [b"220 hi", b"250 ok", b"250 ok", b"554 no", b"221"])
    assert seen[2:] == [
        ("message/chunk", "BDAT 10"), ("message/chunk", "BDAT 10"),
        ("quit (after failure)", "QUIT"),
    ]  # fmt: skip
    assert engine.outcome is Outcome.UNEXPECTED_REPLY
    failure = engine.failure()
    assert failure is not None
    assert failure.step == "message/chunk"
    assert "554 no" in failure.got
    assert engine.messages_accepted == 0


def test_a_refused_last_chunk_is_the_message_step() -> None:
    replies = [b"220 hi", b"250 ok", b"250", b"250", b"552 big", b"221"]
    engine, _ = run_engine(BDAT_SCENARIO, replies)
    failure = engine.failure()
    assert failure is not None
    assert failure.step == "message"
    assert engine.messages_accepted == 0


def test_observe_mode_ends_the_message_at_a_refused_chunk_and_goes_on() -> None:
    engine, seen = run_engine(
        BDAT_SCENARIO, [b"220 hi", b"250 ok", b"554 no", b"221 bye"], observe=True
    )
    assert seen[2:] == [("message/chunk", "BDAT 10"), ("quit", "QUIT")]
    events = [(o.step.name, o.event, o.mismatch) for o in engine.observations][2:]
    assert events[0][:2] == ("message/chunk", "reply")
    assert "the message's later chunks were not sent" in (events[0][2] or "")
    assert events[1] == ("message", "skipped", "not sent: a chunk before it was refused")
    assert events[2] == ("quit", "reply", None)
    assert engine.outcome is Outcome.UNEXPECTED_REPLY


# -- real peers ----------------------------------------------------------------------------------


def summary_of(cwd: Path) -> dict[str, Any]:
    (path,) = (cwd / "results").glob("*/summary.json")
    return dict(json.loads(path.read_text()))


def steps_of(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in summary["steps"]}


def write(tmp_path: Path, bdat: str, recipient: str, target: str = "") -> Path:
    path = tmp_path / "bdat.yaml"
    path.write_text(
        "name: bdat\n"
        + (f"target: {target}\n" if target else "")
        + "steps:\n"
        + "  - greeting: 220\n"
        + "  - send: EHLO client.test\n"
        + "    expect: {code: 250, capabilities: [CHUNKING]}\n"
        + '  - send: "MAIL FROM:<sender@client.test>"\n'
        + f'  - send: "RCPT TO:<{recipient}>"\n'
        + f"  - bdat: {bdat}\n"
        + "  - send: QUIT\n"
        + "    expect: 221\n"
    )
    return path


def body_of(delivered: bytes) -> bytes:
    return delivered.partition(b"\n\n")[2]


@pytest.mark.parametrize(
    ("options", "chunk_count"),
    [("chunk_size: 7", 10), ("chunks: [1, 20, 54]", 2), ("chunks: [10, 65], last: empty", 2)],
    ids=["chunk_size", "chunks", "last-empty"],
)
def test_postfix_receives_a_chunked_message_intact(
    postfix_record: RecordingPostfix, tmp_path: Path, options: str, chunk_count: int
) -> None:
    # 75 octets once LF is CRLF; the lines that start with "." arrive as sent: BDAT never
    # stuffs them (RFC 3030 §2), and a "." alone ends nothing.
    recipient = f"bdat-{uuid.uuid4().hex}@{postfix_record.domain}"
    message = json.dumps(MESSAGE)
    path = write(tmp_path, "{message: " + message + ", " + options + "}", recipient)
    target = f"{postfix_record.host}:{postfix_record.plain_port}"
    result = smtpload("run", str(path), "--target", target, "--sessions", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (delivered,) = postfix_record.wait_for(recipient)
    assert body_of(delivered) == b"line one\n.a line that starts with a dot\n.\nlast line\n"
    assert b"\nSubject: chunks\n" in delivered
    rows = steps_of(summary_of(tmp_path))
    assert rows["message/chunk"]["count"] == chunk_count
    assert rows["message"]["count"] == 1
    assert summary_of(tmp_path)["throughput"]["messages"] == 1


def test_postfix_receives_a_1_mib_padded_message_in_64_kib_chunks(
    postfix_record: RecordingPostfix, tmp_path: Path
) -> None:
    recipient = f"bdat-big-{uuid.uuid4().hex}@{postfix_record.domain}"
    path = write(
        tmp_path, '{message: "Subject: big\\n\\nfirst\\n", size: 1048576, chunk_size: 65536}',
        recipient,
    )  # fmt: skip
    target = f"{postfix_record.host}:{postfix_record.plain_port}"
    result = smtpload("run", str(path), "--target", target, "--sessions", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (delivered,) = postfix_record.wait_for(recipient)
    body = body_of(delivered)
    assert body.startswith(b"first\n" + b"x" * 76 + b"\n")
    # Sent: 1 MiB with CRLF line ends; stored with LF, so one octet fewer a line.
    assert len(b"Subject: big\r\n\r\n") + len(body) + body.count(b"\n") == 1 << 20
    assert steps_of(summary_of(tmp_path))["message/chunk"]["count"] == 15


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_a_load_run_against_postfix_counts_every_chunk(
    tmp_path: Path, postfix_server: SmtpPeer
) -> None:
    # Mail to a recipient outside record.test is discarded: only the counts matter here.
    path = write(tmp_path, "{size: 3000, chunk_size: 1000}", "load@client.test")
    target = f"{postfix_server.host}:{postfix_server.port}"
    result = smtpload(
        "run", str(path), "--target", target, "--sessions", "300", "--concurrency", "20",
        cwd=tmp_path, timeout_s=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = summary_of(tmp_path)
    assert summary["sessions"]["passed"] == 300
    rows = steps_of(summary)
    assert rows["message/chunk"]["count"] == 300 * 2
    assert rows["message"]["count"] == 300
    assert summary["throughput"]["messages"] == 300
    names = [step["name"] for step in summary["steps"]]
    assert names.index("message/chunk") == names.index("message") - 1


async def test_a_refused_chunk_fails_its_session_only_and_quits(tmp_path: Path) -> None:
    quits: list[int] = []
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, refuses_second_chunk(2, quits), 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        path = write(tmp_path, "{size: 300, chunk_size: 100}", "x@client.test")
        args = ["run", str(path), "--target", f"127.0.0.1:{port}", "--sessions", "4",
                "--concurrency", "1", "--threshold", "step:message/chunk.p99<1m"]  # fmt: skip
        result = await trio.to_thread.run_sync(functools.partial(smtpload, *args, cwd=tmp_path))
        nursery.cancel_scope.cancel()
    assert result.returncode == 1, result.stdout + result.stderr
    summary = summary_of(tmp_path)
    assert summary["sessions"]["passed"] == 2
    assert summary["sessions"]["failures"]["unexpected_reply"] == 2
    rows = steps_of(summary)
    assert rows["message/chunk"]["failed"] == 2
    assert rows["message"]["count"] == 2  # the two sessions that passed
    assert summary["throughput"]["messages"] == 2
    assert sorted(quits) == [1, 2, 3, 4]  # the failed sessions too sent the polite QUIT
    assert summary["thresholds"][0]["verdict"] == "pass"
    (failures,) = (tmp_path / "results").glob("*/failures.log")
    log = failures.read_text()
    assert "message/chunk" in log
    assert "554 5.6.0 chunk refused" in log


def test_the_embedded_sink_takes_bdat(tmp_path: Path) -> None:
    # No target: the run's own sink (protocol/sink.py), which advertises CHUNKING. A BDAT
    # after the message is over gets 503 and its octets are still read (RFC 3030 §2), so the
    # QUIT after it is answered as a command.
    path = tmp_path / "sink.yaml"
    path.write_text(
        "steps:\n"
        "  - greeting: 220\n"
        "  - send: EHLO client.test\n"
        "    expect: {code: 250, capabilities: [CHUNKING]}\n"
        '  - send: "MAIL FROM:<a@client.test>"\n'
        '  - send: "RCPT TO:<b@sink.test>"\n'
        "  - bdat: {size: 200000, chunk_size: 65536}\n"
        '  - bdat: {message: "QUIT\\n", chunks: [6], last: empty}\n'
        "    expect_chunk: 503\n"
        "    expect: 503\n"
        "  - send: QUIT\n"
        "    expect: 221\n"
    )
    result = smtpload("run", str(path), "--sessions", "20", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = summary_of(tmp_path)
    assert summary["sessions"]["passed"] == 20
    rows = steps_of(summary)
    assert (rows["message/chunk"]["count"], rows["message"]["count"]) == (60, 20)
    assert (rows["message#2/chunk"]["count"], rows["message#2"]["count"]) == (20, 20)
    assert summary["throughput"]["messages"] == 20


# -- import and replay -----------------------------------------------------------------------------

TRANSCRIPT = Path(__file__).parent / "data" / "transcripts" / "postfix-cs-bdat.txt"
HELLO = ["S: 220 mx.test ESMTP", "C: EHLO c.test", "S: 250 mx.test", "C: MAIL FROM:<a@c.test>",
         "S: 250 ok", "C: RCPT TO:<b@mx.test>", "S: 250 ok"]  # fmt: skip


def imported(lines: list[str]) -> list[Any]:
    result = import_transcript("\n".join(lines) + "\n", "t.txt")
    (session,) = result.sessions
    return list(parse_scenario(session.yaml_text, "t.yaml").steps)


def import_problems(lines: list[str]) -> list[str]:
    with pytest.raises(TranscriptError) as caught:
        import_transcript("\n".join(lines) + "\n", "t.txt")
    return list(caught.value.problems)


def test_a_postfix_bdat_transcript_imports_as_one_bdat_step() -> None:
    # Captured from Postfix by tests/data/transcripts/capture_bdat.py: three chunks, the
    # second ending inside a line that the third goes on with.
    result = import_transcript(TRANSCRIPT.read_text(), str(TRANSCRIPT))
    (session,) = result.sessions
    steps = parse_scenario(session.yaml_text, "t.yaml").steps
    (bdat,) = [step for step in steps if step.kind is StepKind.BDAT]
    assert bdat.chunking is not None
    assert bdat.chunking.chunks == (79, 101, 46)
    assert not bdat.chunking.last_empty
    assert bdat.text is not None
    assert bdat.text.endswith(
        ".a line starting with a dot, not stuffed\n.\n"
        "The second chunk ends inside this line, and the last one sends the rest.\n"
    )
    assert len(bdat.text.replace("\n", "\r\n").encode()) == 79 + 101 + 46


def test_an_imported_bdat_transcript_replays_against_postfix(
    postfix_record: RecordingPostfix, tmp_path: Path
) -> None:
    scenario = tmp_path / "bdat.yaml"
    result = smtpload("import", str(TRANSCRIPT), "-o", str(scenario), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    recipient = f"bdat-import-{uuid.uuid4().hex}@{postfix_record.domain}"
    # The envelope's recipient only: the message's own To: is counted in its chunks.
    rcpt = "RCPT TO:<bdat-import@record.test>"
    scenario.write_text(scenario.read_text().replace(rcpt, f"RCPT TO:<{recipient}>"))
    target = f"{postfix_record.host}:{postfix_record.plain_port}"
    result = smtpload("replay", str(scenario), "--target", target, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "message/chunk BDAT 101" in result.stdout
    (delivered,) = postfix_record.wait_for(recipient)
    assert body_of(delivered) == (
        b"A message in three chunks.\n.a line starting with a dot, not stuffed\n.\n"
        b"The second chunk ends inside this line, and the last one sends the rest.\n"
    )


@pytest.mark.parametrize("size", [0, 1, 2, 4, 6, 7, 100])
def test_a_chunk_whose_lines_do_not_add_up_is_an_error_at_its_bdat_line(size: int) -> None:
    # "abc" is 5 octets with its CRLF, 3 without (a chunk ending inside the line): any other
    # size is refused, at the BDAT line (line 8).
    found = import_problems([*HELLO, f"C: BDAT {size} LAST", "C: abc", "S: 250 queued"])
    assert found == [
        f"t.txt:8: BDAT announced {size} octets, the lines below add up to 5 (each line with"
        " its CRLF; a chunk that ends inside a line may leave out its last CRLF)"
    ]


def test_a_later_chunk_that_does_not_add_up_is_an_error_at_its_own_line() -> None:
    lines = [*HELLO, "C: BDAT 5", "C: abc", "S: 250 ok", "C: BDAT 9 LAST", "C: de", "S: 250 q"]
    (found,) = import_problems(lines)
    assert found.startswith("t.txt:11: BDAT announced 9 octets, the lines below add up to 4 ")


@pytest.mark.parametrize(
    ("chunk", "text", "chunks", "last_empty"),
    [
        (["C: BDAT 5 LAST", "C: abc"], "abc\n", (), False),
        (["C: BDAT 3 LAST", "C: abc"], "abc", (), False),
        (["C: BDAT 0 LAST"], "", (), False),
        (["C: BDAT 5", "C: abc", "S: 250 ok", "C: BDAT 0 LAST"], "abc\n", (5,), True),
        (["C: BDAT 3", "C: abc", "S: 250 ok", "C: BDAT 6 LAST", "C: d", "C: e"],
         "abcd\ne\n", (3, 6), False),
        (["C: BDAT 7", "C: .", "C: ..", "S: 250 ok", "C: bdat 1 last", "C: x"], ".\n..\nx",
         (7, 1), False),
    ],
    ids=["whole-line", "inside-line", "zero-octets-last", "bdat-0-last-after", "two-chunks",
         "dots-unstuffed-lowercase"],
)  # fmt: skip
def test_chunks_that_add_up_import_as_one_bdat_step(
    chunk: list[str], text: str, chunks: tuple[int, ...], last_empty: bool
) -> None:
    steps = imported([*HELLO, *chunk, "S: 250 queued", "C: QUIT", "S: 221 bye"])
    bdat = steps[-2]
    assert bdat.kind is StepKind.BDAT
    assert (bdat.text or "", bdat.data_size) == (text, None)
    assert bdat.chunking is not None
    assert (bdat.chunking.chunks, bdat.chunking.last_empty) == (chunks, last_empty)


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        (["C: BDAT 5", "C: abc", "S: 554 no"],
         "t.txt:10: the chunk of the BDAT at line 8 was refused (554)"),
        (["C: BDAT 5", "C: abc", "S: 250 ok", "C: QUIT", "S: 221 bye"],
         "t.txt:8: the BDAT chunks from this line end without a BDAT ... LAST"),
        (["C: BDAT 5", "C: abc"], "t.txt:8: 'BDAT 5' has no reply after its chunk"),
        (["C: BDAT five LAST", "S: 250 ok"], "t.txt:8: 'BDAT five LAST' is not BDAT SIZE"),
    ],
    ids=["refused", "no-last", "no-reply", "no-size"],
)  # fmt: skip
def test_bdat_that_cannot_be_imported_is_an_error_at_its_line(
    chunk: list[str], expected: str
) -> None:
    (found,) = import_problems([*HELLO, *chunk])
    assert found.startswith(expected), found


def test_a_baseline_keeps_each_chunks_reply_and_compares_clean(
    tmp_path: Path, postfix_server: SmtpPeer
) -> None:
    path = write(tmp_path, "{size: 3000, chunk_size: 1000}", "baseline@client.test")
    target = f"{postfix_server.host}:{postfix_server.port}"
    baseline = tmp_path / "baseline.json"
    args = ["--target", target, "--sessions", "3"]
    result = smtpload("record", str(path), *args, "-o", str(baseline), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {step["name"]: step for step in json.loads(baseline.read_text())["steps"]}
    names = list(rows)
    assert names.index("message/chunk") == names.index("message") - 1
    # Each chunk's reply is kept: 2 chunks before LAST in each of the 3 sessions.
    assert rows["message/chunk"]["codes"] == {"250": 6}
    assert rows["message/chunk"]["latency"]["count"] == 6
    assert rows["message"]["codes"] == {"250": 3}
    result = smtpload("compare", "--baseline", str(baseline), str(path), *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no differences" in result.stdout


def test_a_100_mib_bdat_message_is_not_built_in_memory(tmp_path: Path) -> None:
    # Two sessions send 100 MiB each in 1 MiB chunks to the embedded sink (the largest message
    # it takes): the padding goes out as views of one shared block, so the process stays far
    # below one message's size. Measured as the peak RSS of the child (RUSAGE_CHILDREN of a
    # wrapper that runs only it).
    path = tmp_path / "big.yaml"
    path.write_text(
        "steps:\n  - greeting: 220\n  - send: EHLO c.test\n"
        '  - send: "MAIL FROM:<a@c.test>"\n  - send: "RCPT TO:<b@sink.test>"\n'
        "  - bdat: {size: 104857600, chunk_size: 1048576}\n  - send: QUIT\n"
    )
    wrapper = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(done.stdout + done.stderr)\n"
    )
    args = [*COMMAND, "run", str(path), "--sessions", "2", "--concurrency", "2"]
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *args],
        cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=180,
        check=False,
    )  # fmt: skip
    status, peak_kib = (int(word) for word in done.stdout.split("\n")[0].split())
    assert status == 0, done.stdout + done.stderr
    rows = steps_of(summary_of(tmp_path))
    assert (rows["message/chunk"]["count"], rows["message"]["count"]) == (2 * 99, 2)
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib} KiB for two 100 MiB messages"
