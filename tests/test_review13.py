"""Hostile input to issue 13's features (repeat, rcpt, pipeline, feeds, mailboxes): bounds hold.

Pure engine tests where the engine is what is bounded; the command line where the user sees it.
"""

from __future__ import annotations

import tracemalloc

from smtpload.protocol.compiler import compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.transcript_buffer import HEAD_ENTRIES, TAIL_ENTRIES
from smtpload.scenario.model import Block, BlockKind, Step, StepKind
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
