"""Golden tests: real transcripts, imported and replayed against a live server of the same kind.

The corpus in tests/data/transcripts/ was captured here by capture.py (its README names each
file's server, client and versions), plus the seed blog post exactly as published. Each file is
imported, every scenario validated, and replayed against the kind of server it was captured
from; each must pass. The seed's sessions must pass against aiosmtpd and Postfix, and its
Sendmail session with --strict must fail against Postfix, naming each step that differs.
"""

from __future__ import annotations

import email
import email.utils
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtpload.cli.main import main
from smtpload.scenario.loader import load_scenario
from smtpload.transcripts.importer import import_transcript
from smtpload.transcripts.reader import parse_transcript
from tests.cli import start_smtpload
from tests.peers import RecordingPeer, SmtpPeer

CORPUS = Path(__file__).resolve().parent / "data" / "transcripts"
SEED = CORPUS / "seed-blog.txt"
CAPTURED = sorted(p for p in CORPUS.glob("*.txt") if p != SEED)


def test_the_corpus_covers_every_server_and_client() -> None:
    kinds = {tuple(p.stem.split("-")[:2]) for p in CAPTURED}
    for server in ("postfix", "aiosmtpd", "sink"):
        for client in ("telnet", "nc", "swaks"):
            assert (server, client) in kinds


# -- pasted indented: a Markdown code block, a forum post, a mail ------------------------------

PROSE_BEFORE = ["I ran this against our server:", ""]
PROSE_AFTER = ["", "Why does it answer like that?"]


def indent_lines(text: str, prefix: str, ranges: list[tuple[int, int]]) -> str:
    """``text`` with its non-blank lines in ``ranges`` (1-based, inclusive) indented."""
    out = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        inside = any(first <= number <= last for first, last in ranges)
        out.append(prefix + line if inside and line.strip() else line)
    return "".join(out)


@pytest.mark.parametrize("prefix", ["    ", "\t"], ids=["4-spaces", "tab"])
@pytest.mark.parametrize("path", [*CAPTURED, SEED], ids=[p.stem for p in [*CAPTURED, SEED]])
def test_indented_transcript_imports_as_the_unindented_one(path: Path, prefix: str) -> None:
    text = path.read_text(encoding="utf-8")
    whole = indent_lines(text, prefix, [(1, len(text.splitlines()))])
    assert import_transcript(whole, path.name) == import_transcript(text, path.name)

    # Prose around the indented sessions (the seed's own, and two paragraphs) stays prose.
    pasted = "".join(f"{line}\n" for line in PROSE_BEFORE) + text
    pasted += "".join(f"{line}\n" for line in PROSE_AFTER)
    sessions = parse_transcript(pasted, path.name).sessions
    ranges = [(session.first_line, session.last_line) for session in sessions]
    expected = import_transcript(pasted, path.name)
    assert import_transcript(indent_lines(pasted, prefix, ranges), path.name) == expected
    last = len(pasted.splitlines())
    prose = [note for note in expected.notes if note.endswith(": skipped prose")]
    assert prose[0].startswith(("line 1:", "lines 1-"))
    assert prose[-1].endswith((f"line {last}: skipped prose", f"-{last}: skipped prose"))


@pytest.fixture(scope="module")
def sink_server() -> Iterator[SmtpPeer]:
    """The built-in sink as its own process, as a user would run it."""
    process = start_smtpload("sink", "--listen", "127.0.0.1:0", stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "smtpload sink listening on 127.0.0.1:PORT"
        assert "listening on" in line, line
        port = int(line.rsplit(":", 1)[1])
        yield SmtpPeer("127.0.0.1", port)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def peer_for(path: Path, request: pytest.FixtureRequest) -> SmtpPeer:
    server = path.stem.split("-")[0]
    fixture = {"postfix": "postfix_server", "aiosmtpd": "aiosmtpd_server", "sink": "sink_server"}
    peer: SmtpPeer = request.getfixturevalue(fixture[server])
    return peer


@pytest.mark.parametrize("path", CAPTURED, ids=[p.stem for p in CAPTURED])
def test_captured_transcript_imports_and_replays_against_its_server(
    path: Path, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "imported.yaml"
    assert main(["import", str(path), "-o", str(output)]) == 0
    written = sorted(tmp_path.glob("imported*.yaml"))
    assert written
    for scenario in written:
        assert load_scenario(scenario).steps
    peer = peer_for(path, request)
    status = main(["replay", str(path), "--target", f"{peer.host}:{peer.port}"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "FAIL" not in out


SWAKS_SENT = sorted(p for p in CAPTURED if "-swaks-" in p.name and "reject" not in p.name)
LOAD_SESSIONS = 6


@pytest.mark.parametrize("path", SWAKS_SENT, ids=[p.stem for p in SWAKS_SENT])
def test_sessions_of_an_imported_swaks_run_send_distinct_message_ids(
    path: Path, tmp_path: Path, aiosmtpd_server: RecordingPeer
) -> None:
    scenario = tmp_path / "swaks.yaml"
    assert main(["import", str(path), "-o", str(scenario)]) == 0
    target = f"{aiosmtpd_server.host}:{aiosmtpd_server.port}"
    run = ["run", str(scenario), "--target", target, "--sessions", str(LOAD_SESSIONS)]
    status = main([*run, "--concurrency", "3", "--results", str(tmp_path), "--quiet"])
    assert status == 0
    typed = path.read_text(encoding="utf-8")
    shown_id = re.search(r"^ -> Message-Id: (.*)$", typed, re.MULTILINE)
    shown_date = re.search(r"^ -> Date: (.*)$", typed, re.MULTILINE)
    assert shown_id is not None
    assert shown_date is not None
    messages = [email.message_from_bytes(m.content) for m in aiosmtpd_server.handler.messages]
    assert len(messages) == LOAD_SESSIONS
    ids = [message["Message-Id"] for message in messages]
    assert len(set(ids)) == LOAD_SESSIONS, ids
    assert all(re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", value) for value in ids), ids
    assert shown_id.group(1) not in ids
    for message in messages:
        assert message["Date"] != shown_date.group(1)
        assert email.utils.parsedate_to_datetime(message["Date"]).tzinfo is not None
        assert message["X-Mailer"].startswith("swaks")  # the rest of the header is as typed


@pytest.mark.parametrize("server", ["aiosmtpd_server", "postfix_server"])
def test_both_seed_sessions_replay_against(
    server: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    peer: SmtpPeer = request.getfixturevalue(server)
    status = main(["replay", str(SEED), "--target", f"{peer.host}:{peer.port}"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.count("=> passed") == 2
    if isinstance(peer, RecordingPeer):
        messages = peer.handler.messages
        assert [m.rcpt_tos for m in messages] == [("hoge01@exsample.jp",), ("hoge01@gmail.com",)]
        assert messages[0].content.endswith(b"\r\n\r\nmeil send test\r\n")


def test_strict_sendmail_session_fails_against_postfix_naming_each_difference(
    postfix_server: SmtpPeer, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"{postfix_server.host}:{postfix_server.port}"
    status = main(["replay", str(SEED), "--session", "2", "--strict", "--target", target])
    out = capsys.readouterr().out
    assert status == 1
    failing = [line.split()[1] for line in out.splitlines() if line.startswith("  FAIL")]
    # Every step of Sendmail's dialogue got different text (or enhanced code) from Postfix...
    assert failing[:2] == ["greeting", "heloo"]
    assert "enhanced status code 5.5.2 is not 5.5.1" in out
    # ...but the session went on: the message was still sent and the session ended politely.
    assert "message" in failing
    assert "=> unexpected_reply" in out
