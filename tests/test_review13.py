"""Hostile input to issue 13's features (repeat, rcpt, pipeline, feeds, mailboxes): bounds hold.

Pure engine tests where the engine is what is bounded; the command line where the user sees it.
"""

from __future__ import annotations

import json
import os
import re
import tracemalloc
from pathlib import Path

import pytest
import trio

from smtpload.net.sink import serve_sink
from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.recipients import RecipientSource
from smtpload.protocol.transcript_buffer import HEAD_ENTRIES, TAIL_ENTRIES
from smtpload.scenario.feeds import FeedError, read_feed
from smtpload.scenario.model import Block, BlockKind, RecipientSpec, Step, StepKind
from smtpload.scenario.rcpt_syntax import MAX_RCPT_LINE_OCTETS
from smtpload.scenario.template import parse_template
from tests.cli import smtpload
from tests.test_pipelining import LOOPBACK, persistent, run
from tests.test_repeat_pipeline_engine import (
    DATA_CMD,
    EHLO,
    GREETING,
    MAIL,
    QUIT,
    RSET,
    codes,
    drive,
    polite,
    scenario,
)

NOOP = Step(StepKind.SEND, "noop", text="NOOP", expect=codes(250))


def _failing_after(runs: int) -> SessionEngine:
    """A session whose repeat runs RSET ``runs`` times and whose next NOOP fails."""
    compiled = compile_scenario(
        scenario(
            GREETING, EHLO, RSET, NOOP, QUIT, blocks=(Block(BlockKind.REPEAT, 2, 3, runs, runs),)
        )
    )
    engine = SessionEngine(compiled, 1, compiled.session_variables(1, "run"))

    def answer(name: str, sent: bytes) -> bytes:
        return b"502 no\r\n" if name == "noop" else polite(name, sent)

    drive(engine, answer)
    assert engine.outcome is Outcome.UNEXPECTED_REPLY
    return engine


def test_a_long_repeated_session_keeps_a_bounded_transcript_with_its_start_and_its_end() -> None:
    for runs in (TAIL_ENTRIES, 5_000, 40_000):
        failure = _failing_after(runs).failure()
        assert failure is not None
        lines = [(line.direction, line.text) for line in failure.transcript]
        # Entries: the greeting, EHLO and its reply (3 lines), 2 per run, NOOP, 502, QUIT, 221.
        assert len(lines) <= HEAD_ENTRIES + TAIL_ENTRIES + 10, (runs, len(lines))
        assert lines[0] == ("S", "220 server.test ESMTP")  # the start, greeting and EHLO
        assert ("C", "EHLO client.test") in lines
        # The end: the failure, then the polite QUIT.
        assert lines[-4:] == [("C", "NOOP"), ("S", "502 no"), ("C", "QUIT"), ("S", "221 bye")]
        dropped = [text for direction, text in lines if "not kept" in text]
        assert len(dropped) == 1
        assert f"{2 * runs + 7 - HEAD_ENTRIES - TAIL_ENTRIES:,} transcript entries" in dropped[0]


def test_a_short_session_keeps_its_whole_transcript() -> None:
    failure = _failing_after(3).failure()
    assert failure is not None
    texts = [line.text for line in failure.transcript]
    assert texts.count("RSET") == 3
    assert not any("not kept" in text for text in texts)


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_a_long_repeated_session_holds_bounded_memory() -> None:
    # A transcript of every entry grew by about 200 bytes per command and reply: 40,000 runs
    # kept about 16 MB; bounded, it stays well under 2 MB whatever the count.
    tracemalloc.start()
    try:
        engine = _failing_after(40_000)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert engine.failure() is not None
    assert current < 2_000_000, current


def test_a_data_step_in_the_transcript_is_its_size_not_its_bytes() -> None:
    message = Step(StepKind.DATA, "message", text="Subject: x\n\n" + "y" * 50_000 + "\n")
    compiled = compile_scenario(
        scenario(
            GREETING,
            EHLO,
            MAIL,
            DATA_CMD,
            message,
            NOOP,
            QUIT,
            blocks=(Block(BlockKind.REPEAT, 2, 5, 3, 3),),
        )
    )
    engine = SessionEngine(compiled, 1, compiled.session_variables(1, "run"))

    def answer(name: str, sent: bytes) -> bytes:
        return b"502 no\r\n" if name == "noop" else polite(name, sent)

    drive(engine, answer)
    failure = engine.failure()
    assert failure is not None
    shown = [line.text for line in failure.transcript if line.text.startswith("<message")]
    assert shown == ["<message: 50019 bytes, dot-stuffed, ending in CRLF.CRLF>"] * 3


# -- an RCPT line is bounded (RFC 5321 §4.5.3.1.4, RFC 3461 §4) -----------------------------


def _rcpt_scenario(tmp_path: Path, rcpt: str, *, pipelined: bool, extra: str = "") -> Path:
    group = [
        "      - send: MAIL FROM:<a@example.test>",
        f"      - rcpt: {rcpt}",
        "      - send: DATA",
        "        expect: 354",
    ]
    steps = ["  - pipeline:", *group] if pipelined else [line[4:] for line in group]
    path = tmp_path / "rcpt.yaml"
    path.write_text(
        extra
        + "steps:\n  - greeting: 220\n  - send: EHLO client.test\n"
        + "\n".join(steps)
        + "\n  - data: {size: 100}\n  - send: QUIT\n    expect: 221\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    "rcpt",
    [
        '"' + "x" * 1000 + '@example.test"',  # an address
        '["ok@example.test", "' + "y" * 1000 + '@example.test"]',  # one of a list
        '{to: "u{recipient}' + "z" * 1000 + '@example.test", count: 3}',  # a template's text
    ],
    ids=["address", "list", "template"],
)
def test_an_address_too_long_for_an_rcpt_line_is_refused_at_its_place(
    tmp_path: Path, rcpt: str
) -> None:
    path = _rcpt_scenario(tmp_path, rcpt, pipelined=True)
    done = smtpload("validate", str(path), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert re.search(r"rcpt\.yaml:6:\d+: rcpt: the RCPT command line would be", done.stderr)
    assert "RFC 5321 §4.5.3.1.4" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_feed_value_too_long_for_an_rcpt_line_is_refused_at_its_row(tmp_path: Path) -> None:
    (tmp_path / "to.csv").write_text(
        "address\nok@example.test\n" + "x" * 1000 + "@example.test\n", encoding="utf-8"
    )
    path = _rcpt_scenario(tmp_path, "{feed: to.csv, column: address}", pipelined=False)
    done = smtpload("validate", str(path), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "to.csv:3:1: column 'address': rcpt: the RCPT command line would be" in done.stderr


def test_an_rcpt_line_made_too_long_by_a_variable_is_not_sent_and_fails_its_session(
    tmp_path: Path,
) -> None:
    # 10,000 recipients of 100 KiB each were made at once, 1 GB per message, and a pipelined
    # group sent them in one write: now the first too long line ends the session unsent.
    variables = 'variables:\n  big: "' + "x" * 100_000 + '"\n'
    for pipelined in (True, False):
        path = _rcpt_scenario(
            tmp_path,
            '{to: "u{recipient}.{big}@example.test", count: 10000}',
            pipelined=pipelined,
            extra=variables,
        )
        summary = tmp_path / "summary.json"
        done = smtpload(
            "run", str(path), "--sessions", "2", "--json", str(summary), "--force",
            cwd=tmp_path, timeout_s=60,
        )  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert "not sent: an RCPT command line of 100,028 octets, over the 1,012" in done.stdout
        report = json.loads(summary.read_text(encoding="utf-8"))
        assert report["sessions"]["started"] == 2
        assert report["sessions"]["failures"]["protocol_error"] == 2


def test_rcpt_lines_stop_at_the_first_too_long_one() -> None:
    source = RecipientSource(
        addresses=(parse_template("u{recipient}{big}@example.test"),), count_min=10_000,
        count_max=10_000,
    )  # fmt: skip
    tracemalloc.start()
    try:
        lines = source.lines(None, {"big": "x" * 1_000_000})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(lines) == 1
    assert peak < 20_000_000, peak
    short = source.lines(None, {"big": ""})
    assert len(short) == 10_000
    assert max(map(len, short)) <= MAX_RCPT_LINE_OCTETS


# -- a Maildir's files are regular files --------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_maildir_file_that_is_a_fifo_or_a_device_is_refused_not_waited_for(
    tmp_path: Path, kind: str
) -> None:
    # A FIFO in new/ made `validate` wait forever for a writer; /dev/zero was read to 256 MiB.
    for folder in ("new", "cur", "tmp"):
        (tmp_path / "Maildir" / folder).mkdir(parents=True)
    (tmp_path / "Maildir" / "new" / "1.ok").write_text("From: a\n\nhi\n", encoding="utf-8")
    odd = tmp_path / "Maildir" / "cur" / "2.odd:2,S"
    if kind == "fifo":
        os.mkfifo(odd)
    else:
        odd.symlink_to("/dev/zero")
    path = tmp_path / "md.yaml"
    path.write_text(
        "steps:\n  - greeting: 220\n  - send: EHLO a.test\n  - send: MAIL FROM:<a@b.test>\n"
        "  - send: RCPT TO:<c@d.test>\n  - send: DATA\n    expect: 354\n"
        "  - data: {maildir: Maildir}\n",
        encoding="utf-8",
    )
    done = smtpload("validate", str(path), cwd=tmp_path, timeout_s=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert re.search(
        r"md\.yaml:8:12: data: maildir: message 2 of the Maildir Maildir"
        r" \(Maildir/cur/2\.odd:2,S\) is not a regular file",
        done.stderr,
    ), done.stderr


# -- a large pipelined group: each reply timed from the syscall that sent its command ----------


async def test_replies_to_a_group_sent_in_many_syscalls_are_timed_from_their_own_command() -> None:
    # 10,000 recipients of ~1,000 octets: a 10 MB write that takes many send() calls, the sink
    # answering the first RCPTs before the last bytes leave. Each reply was timed from the
    # LAST syscall, so thousands came out below zero (and were blamed on a clock set back).
    long_address = "user{recipient}." + "x" * 960 + "@example.test"
    spec = RecipientSpec(address=long_address, count_min=10_000, count_max=10_000)
    compiled = compile_scenario(persistent(spec, messages=1))
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve_sink, LOOPBACK, 0)
        stats, _ = await run(compiled, address.port, sessions=1)
        nursery.cancel_scope.cancel()
    assert stats.failures == []
    rcpt = stats.steps["rcpt"]
    assert rcpt.negative_samples == 0
    assert rcpt.latency.count == 10_000
    assert stats.steps["data"].negative_samples == 0


# -- a feed's field places: computed only for rows that need them ---------------------------


def test_a_feed_places_values_of_plain_and_quoted_rows_alike(tmp_path: Path) -> None:
    # Rows of one line without quotes (nearly all) have their columns from their values'
    # lengths, not a scan of each character; the places are the same as the scan's.
    path = tmp_path / "feed.csv"
    path.write_text(
        'a,bb,ccc\nx,yy,zzz\n"q",r,"s"\nlong value,,end\n"multi\nline",two,three\n',
        encoding="utf-8",
    )
    table = read_feed(str(path))
    assert [table.position(0, name) for name in ("a", "bb", "ccc")] == [(2, 1), (2, 3), (2, 6)]
    assert [table.position(1, name) for name in ("a", "bb", "ccc")] == [(3, 1), (3, 5), (3, 7)]
    assert [table.position(2, name) for name in ("a", "bb", "ccc")] == [(4, 1), (4, 12), (4, 13)]
    assert [table.position(3, name) for name in ("a", "bb", "ccc")] == [(5, 1), (6, 7), (6, 11)]
    # A row too long: the first value too many, in a plain row.
    (tmp_path / "ragged.csv").write_text("a,b\n1,22,333\n", encoding="utf-8")
    with pytest.raises(FeedError) as caught:
        read_feed(str(tmp_path / "ragged.csv"))
    assert (caught.value.line, caught.value.column) == (2, 6)
