"""Repeat blocks, rcpt steps and pipeline groups in the session engine: pure tests, no sockets.

Each test plays the I/O layer by hand, as net/client.py does: it asks the engine for steps
(for a pipeline group, for all of the group's commands at once), and hands it replies.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections.abc import Callable

import pytest

from smtpload.errors import UsageError
from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.protocol.engine import LONE_DOT_STEP_NAME, SessionEngine
from smtpload.protocol.outcome import Outcome
from smtpload.protocol.wire import Reply, ReplyParser
from smtpload.regression.baseline import BehaviourRecorder, StepBehaviour
from smtpload.report.stats import RunStats
from smtpload.scenario.model import (
    Block,
    BlockKind,
    Expectation,
    RecipientSpec,
    Scenario,
    Step,
    StepKind,
)


def reply(data: bytes) -> Reply:
    (parsed,) = ReplyParser().feed(data)
    return parsed


def codes(*values: int) -> Expectation:
    return Expectation(codes=frozenset(values), codes_text=", ".join(map(str, values)))


GREETING = Step(StepKind.GREETING, "greeting", expect=codes(220))
EHLO = Step(StepKind.SEND, "ehlo", text="EHLO client.test", expect=codes(250))
MAIL = Step(StepKind.SEND, "mail", text="MAIL FROM:<a@example.test>", expect=codes(250))
RCPT = Step(
    StepKind.RCPT,
    "rcpt",
    expect=codes(250, 251),
    recipients=RecipientSpec(address="user{recipient}@example.test", count_min=3, count_max=3),
)
DATA_CMD = Step(StepKind.SEND, "data", text="DATA", expect=codes(354))
MESSAGE = Step(StepKind.DATA, "message", text="Message-ID: {message_id}\n\nhi\n", expect=codes(250))
RSET = Step(StepKind.SEND, "rset", text="RSET", expect=codes(250))
QUIT = Step(StepKind.SEND, "quit", text="QUIT", expect=codes(221))

EHLO_PIPELINING = b"250-server.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_PLAIN = b"250-server.test\r\n250 8BITMIME\r\n"


def scenario(*steps: Step, blocks: tuple[Block, ...] = ()) -> Scenario:
    return Scenario(
        path="test.yaml",
        name="test",
        description="",
        target=None,
        timeout_s=None,
        variables=(),
        steps=steps,
        blocks=blocks,
    )


def polite(step_name: str, sent: bytes) -> bytes:
    """A server that accepts everything."""
    if step_name == "greeting":
        return b"220 server.test ESMTP\r\n"
    if step_name == "ehlo":
        return EHLO_PIPELINING
    if sent == b"DATA\r\n":
        return b"354 go ahead\r\n"
    if sent.startswith(b"QUIT"):
        return b"221 bye\r\n"
    return b"250 ok\r\n"


Answer = Callable[[str, bytes], bytes]


def engine_for(compiled: CompiledScenario, session: int) -> SessionEngine:
    return SessionEngine(compiled, session, compiled.session_variables(session, "run"))


def drive(
    engine: SessionEngine, answer: Answer = polite, *, keep: bool = True
) -> list[tuple[str, bytes, bool]]:
    """Run the session as net/client.py does; return (step name, bytes sent, write number)
    for every command: commands of one pipelined write share its number."""
    sent: list[tuple[str, bytes, bool]] = []
    writes = 0
    while (step := engine.next_step()) is not None:
        if step.group_end:
            members = engine.pipeline_group(step)
            if members is not None:
                writes += 1
                sent.extend((m.name, bytes(data), True) for m, data in members)  # type: ignore[arg-type]
                for expected, payload in members:
                    member = engine.begin_group_reply()
                    assert member is expected  # the replies come in the order sent
                    answered = answer(member.name, bytes(payload))  # type: ignore[arg-type]
                    engine.on_group_reply(member, reply(answered))
                engine.on_group_done()
                continue
        data = engine.payload(step)
        if keep:  # (a long session's test keeps nothing of its own)
            sent.append((step.name, bytes(data), False))  # type: ignore[arg-type]
        engine.on_reply(step, reply(answer(step.name, bytes(data))))  # type: ignore[arg-type]
    return sent


# -- repeat --------------------------------------------------------------------------------


def test_a_fixed_repeat_runs_its_steps_that_many_times_under_one_name_each() -> None:
    compiled = compile_scenario(
        scenario(
            GREETING,
            EHLO,
            MAIL,
            DATA_CMD,
            MESSAGE,
            RSET,
            QUIT,
            blocks=(Block(BlockKind.REPEAT, 2, 6, 3, 3),),
        )
    )
    engine = engine_for(compiled, 1)
    sent = drive(engine)
    names = [name for name, _, _ in sent]
    assert names == ["greeting", "ehlo", *["mail", "data", "message", "rset"] * 3, "quit"]
    assert engine.outcome is Outcome.PASSED
    assert engine.messages_accepted == 3
    # One histogram per step, whatever the count.
    assert compiled.step_names.count("mail") == 1
    # Each message its own Message-ID.
    ids = {data.split(b"\r\n", 1)[0] for name, data, _ in sent if name == "message"}
    assert len(ids) == 3


def test_a_ranged_repeat_draws_per_session_from_the_seed() -> None:
    compiled = compile_scenario(
        scenario(GREETING, EHLO, RSET, QUIT, blocks=(Block(BlockKind.REPEAT, 2, 3, 0, 6),)),
        seed=42,
    )

    def runs(session: int, scenario_seed: object = compiled) -> int:
        engine = engine_for(compiled, session)
        return [name for name, _, _ in drive(engine)].count("rset")

    counts = [runs(session) for session in range(1, 41)]
    assert all(0 <= count <= 6 for count in counts)
    assert len(set(counts)) > 3  # drawn, not fixed
    assert 0 in counts  # a count of 0 skips the block (and the session still ends well)
    # The same seed and session give the same count; a run split differently the same too.
    assert [runs(session) for session in range(40, 0, -1)] == counts[::-1]
    other = compile_scenario(
        scenario(GREETING, EHLO, RSET, QUIT, blocks=(Block(BlockKind.REPEAT, 2, 3, 0, 6),)),
        seed=43,
    )
    assert [
        [n for n, _, _ in drive(engine_for(other, s))].count("rset") for s in range(1, 41)
    ] != counts


def test_nested_repeats_multiply_and_an_inner_one_starting_with_the_outer_is_drawn_anew() -> None:
    # repeat 2 { repeat 3 { mail, rset } ; data-less noop } -> (mail rset) x3, noop, x2
    noop = Step(StepKind.SEND, "noop", text="NOOP", expect=codes(250))
    compiled = compile_scenario(
        scenario(
            GREETING,
            EHLO,
            MAIL,
            RSET,
            noop,
            QUIT,
            blocks=(
                Block(BlockKind.REPEAT, 2, 5, 2, 2),
                Block(BlockKind.REPEAT, 2, 4, 3, 3),
            ),
        )
    )
    names = [name for name, _, _ in drive(engine_for(compiled, 1))]
    assert names == ["greeting", "ehlo", *(["mail", "rset"] * 3 + ["noop"]) * 2, "quit"]


def test_a_capture_inside_a_repeat_holds_the_latest_value() -> None:
    mail = Step(
        StepKind.SEND,
        "mail",
        text="MAIL FROM:<a@example.test>",
        expect=codes(250),
        capture=r"id=(?P<queue_id>\w+)",
    )
    noop = Step(StepKind.SEND, "noop", text="NOOP {queue_id}", expect=codes(250))
    compiled = compile_scenario(
        scenario(GREETING, EHLO, mail, noop, QUIT, blocks=(Block(BlockKind.REPEAT, 2, 4, 3, 3),))
    )
    counter = iter(range(1, 10))

    def answer(name: str, sent: bytes) -> bytes:
        if name == "mail":
            return f"250 ok id=Q{next(counter)}\r\n".encode()
        return polite(name, sent)

    engine = engine_for(compiled, 1)
    sent = drive(engine, answer)
    assert [data for name, data, _ in sent if name == "noop"] == [
        b"NOOP Q1\r\n",
        b"NOOP Q2\r\n",
        b"NOOP Q3\r\n",
    ]


# -- rcpt steps ----------------------------------------------------------------------------


def test_an_rcpt_step_sends_one_rcpt_per_recipient_and_judges_each() -> None:
    compiled = compile_scenario(scenario(GREETING, EHLO, MAIL, RCPT, DATA_CMD, MESSAGE, QUIT))
    engine = engine_for(compiled, 1)
    sent = drive(engine)
    assert [data for name, data, _ in sent if name == "rcpt"] == [
        b"RCPT TO:<user1@example.test>\r\n",
        b"RCPT TO:<user2@example.test>\r\n",
        b"RCPT TO:<user3@example.test>\r\n",
    ]
    assert engine.outcome is Outcome.PASSED


def test_a_refused_recipient_fails_the_session_at_the_rcpt_step_and_quits() -> None:
    compiled = compile_scenario(scenario(GREETING, EHLO, MAIL, RCPT, DATA_CMD, MESSAGE, QUIT))

    def answer(name: str, sent: bytes) -> bytes:
        if b"user2@" in sent:
            return b"550 5.1.1 unknown\r\n"
        return polite(name, sent)

    engine = engine_for(compiled, 1)
    sent = drive(engine, answer)
    failure = engine.failure()
    assert failure is not None
    assert (failure.outcome, failure.step) == (Outcome.UNEXPECTED_REPLY, "rcpt")
    assert [name for name, _, _ in sent][-2:] == ["rcpt", "quit (after failure)"]


def test_a_ranged_rcpt_count_is_drawn_per_message() -> None:
    ranged = Step(
        StepKind.RCPT,
        "rcpt",
        expect=codes(250),
        recipients=RecipientSpec(address="u{recipient}@example.test", count_min=1, count_max=5),
    )
    compiled = compile_scenario(
        scenario(
            GREETING,
            EHLO,
            MAIL,
            ranged,
            DATA_CMD,
            MESSAGE,
            QUIT,
            blocks=(Block(BlockKind.REPEAT, 2, 6, 30, 30),),
        ),
        seed=7,
    )
    engine = engine_for(compiled, 1)
    per_message: list[int] = []
    for name, _, _ in drive(engine):
        if name == "mail":
            per_message.append(0)
        elif name == "rcpt":
            per_message[-1] += 1
    assert len(per_message) == 30
    assert set(per_message) <= {1, 2, 3, 4, 5}
    assert len(set(per_message)) > 2


# -- pipeline groups -----------------------------------------------------------------------

GROUP = (Block(BlockKind.PIPELINE, 2, 5),)  # MAIL, RCPT (x3), DATA


def test_a_group_goes_in_one_write_when_pipelining_is_advertised() -> None:
    compiled = compile_scenario(
        scenario(GREETING, EHLO, MAIL, RCPT, DATA_CMD, MESSAGE, QUIT, blocks=GROUP)
    )
    engine = engine_for(compiled, 1)
    sent = drive(engine)
    assert [(name, together) for name, _, together in sent] == [
        ("greeting", False),
        ("ehlo", False),
        ("mail", True),
        ("rcpt", True),
        ("rcpt", True),
        ("rcpt", True),
        ("data", True),
        ("message", False),
        ("quit", False),
    ]
    assert (engine.groups_pipelined, engine.groups_lock_step) == (1, 0)
    assert engine.outcome is Outcome.PASSED
    assert engine.messages_accepted == 1


def test_a_group_runs_in_lock_step_without_pipelining_and_is_counted_once() -> None:
    compiled = compile_scenario(
        scenario(GREETING, EHLO, MAIL, RCPT, DATA_CMD, MESSAGE, QUIT, blocks=GROUP)
    )

    def answer(name: str, sent: bytes) -> bytes:
        return EHLO_PLAIN if name == "ehlo" else polite(name, sent)

    # An rcpt step first in the group: handed out once per recipient, counted once.
    rcpt_first = compile_scenario(
        scenario(
            GREETING,
            EHLO,
            MAIL,
            RCPT,
            DATA_CMD,
            MESSAGE,
            QUIT,
            blocks=(Block(BlockKind.PIPELINE, 3, 5),),
        )
    )
    for each in (compiled, rcpt_first):
        engine = engine_for(each, 1)
        sent = drive(engine, answer)
        assert not any(together for _, _, together in sent)
        assert (engine.groups_pipelined, engine.groups_lock_step) == (0, 1)
        assert engine.outcome is Outcome.PASSED


def test_require_pipelining_fails_the_ehlo_that_does_not_advertise_it() -> None:
    compiled = compile_scenario(
        scenario(GREETING, EHLO, MAIL, RCPT, DATA_CMD, MESSAGE, QUIT, blocks=GROUP),
        require_pipelining=True,
    )

    def answer(name: str, sent: bytes) -> bytes:
        return EHLO_PLAIN if name == "ehlo" else polite(name, sent)

    engine = engine_for(compiled, 1)
    sent = drive(engine, answer)
    failure = engine.failure()
    assert failure is not None
    assert (failure.outcome, failure.step) == (Outcome.UNEXPECTED_REPLY, "ehlo")
    assert "PIPELINING not advertised" in failure.got
    assert [name for name, _, _ in sent] == ["greeting", "ehlo", "quit (after failure)"]
    # With PIPELINING advertised the same scenario passes.
    engine = engine_for(compiled, 1)
    drive(engine)
    assert engine.outcome is Outcome.PASSED


def test_a_wrong_reply_in_the_middle_of_a_group_fails_exactly_its_step() -> None:
    compiled = compile_scenario(
        scenario(GREETING, EHLO, MAIL, RCPT, DATA_CMD, MESSAGE, QUIT, blocks=GROUP)
    )

    def answer(name: str, sent: bytes) -> bytes:
        if b"user2@" in sent:
            return b"452 4.5.3 too many recipients\r\n"
        return polite(name, sent)

    engine = engine_for(compiled, 1)
    sent = drive(engine, answer)
    failure = engine.failure()
    assert failure is not None
    assert (failure.outcome, failure.step) == (Outcome.UNEXPECTED_REPLY, "rcpt")
    assert "452" in failure.got
    # The whole group was read (RFC 2920 §3.1); DATA got 354 with recipients accepted, so
    # the session closes rather than deliver an unwanted message: no QUIT, no ".".
    names = [name for name, _, _ in sent]
    assert names == ["greeting", "ehlo", "mail", "rcpt", "rcpt", "rcpt", "data"]
    transcript = [line.text for line in failure.transcript]
    assert transcript.count("354 go ahead") == 1


def test_all_recipients_refused_and_354_sends_the_lone_dot_then_quit() -> None:
    refused = Step(
        StepKind.RCPT,
        "rcpt",
        expect=codes(550),
        recipients=RecipientSpec(
            address="nobody{recipient}@example.test", count_min=2, count_max=2
        ),
    )
    data_refused = Step(StepKind.SEND, "data", text="DATA", expect=codes(554))
    compiled = compile_scenario(
        scenario(GREETING, EHLO, MAIL, refused, data_refused, QUIT, blocks=GROUP)
    )

    def answer(name: str, sent: bytes) -> bytes:
        if sent.startswith(b"RCPT"):
            return b"550 5.1.1 unknown\r\n"
        if sent == b".\r\n":
            return b"554 5.5.1 no valid recipients\r\n"
        return polite(name, sent)

    engine = engine_for(compiled, 1)
    sent = drive(engine, answer)
    failure = engine.failure()
    assert failure is not None
    assert (failure.outcome, failure.step) == (Outcome.UNEXPECTED_REPLY, "data")
    assert [(name, data) for name, data, _ in sent][-2:] == [
        (LONE_DOT_STEP_NAME, b".\r\n"),
        ("quit (after failure)", b"QUIT\r\n"),
    ]


def test_the_lone_dot_follows_in_lock_step_too() -> None:
    refused = Step(StepKind.SEND, "rcpt", text="RCPT TO:<nobody@example.test>", expect=codes(550))
    data_refused = Step(StepKind.SEND, "data", text="DATA", expect=codes(554))
    compiled = compile_scenario(scenario(GREETING, EHLO, MAIL, refused, data_refused, QUIT))

    def answer(name: str, sent: bytes) -> bytes:
        if sent.startswith(b"RCPT"):
            return b"550 5.1.1 unknown\r\n"
        return polite(name, sent)

    engine = engine_for(compiled, 1)
    sent = drive(engine, answer)
    assert [data for _, data, _ in sent][-2:] == [b".\r\n", b"QUIT\r\n"]


def test_a_group_may_start_with_the_message_of_the_transaction_before() -> None:
    # repeat 3 { pipeline [message, MAIL, RCPT, DATA] } after a first MAIL/RCPT/DATA group.
    compiled = compile_scenario(
        scenario(
            GREETING,
            EHLO,
            MAIL,
            RCPT,
            DATA_CMD,
            MESSAGE,
            Step(StepKind.SEND, "mail2", text="MAIL FROM:<b@example.test>", expect=codes(250)),
            Step(StepKind.SEND, "rcpt2", text="RCPT TO:<c@example.test>", expect=codes(250)),
            Step(StepKind.SEND, "data2", text="DATA", expect=codes(354)),
            Step(StepKind.DATA, "message2", text="Subject: x\n\ny\n", expect=codes(250)),
            QUIT,
            blocks=(
                Block(BlockKind.PIPELINE, 2, 5),
                Block(BlockKind.PIPELINE, 5, 9),
            ),
        )
    )
    engine = engine_for(compiled, 1)
    sent = drive(engine)
    together = [name for name, _, t in sent if t]
    assert together == [
        "mail",
        "rcpt",
        "rcpt",
        "rcpt",
        "data",
        "message",
        "mail2",
        "rcpt2",
        "data2",
    ]
    assert engine.messages_accepted == 2
    assert engine.groups_pipelined == 2


def test_tls_forgets_pipelining_until_the_next_ehlo() -> None:
    # EHLO (PIPELINING), STARTTLS, tls, then a group without a new EHLO: lock-step.
    starttls = Step(StepKind.STARTTLS, "starttls", expect=codes(220))
    compiled = compile_scenario(
        scenario(
            GREETING,
            EHLO,
            starttls,
            MAIL,
            RCPT,
            DATA_CMD,
            MESSAGE,
            QUIT,
            blocks=(Block(BlockKind.PIPELINE, 3, 6),),
        )
    )
    engine = engine_for(compiled, 1)
    while (step := engine.next_step()) is not None:
        if step.kind is StepKind.TLS:
            engine.on_tls_established(step, "TLSv1.3")
            continue
        if step.group_end:
            assert engine.pipeline_group(step) is None
        data = engine.payload(step)
        answer = b"220 go\r\n" if step.kind is StepKind.STARTTLS else polite(step.name, bytes(data))  # type: ignore[arg-type]
        engine.on_reply(step, reply(answer))
    assert engine.groups_lock_step == 1
    assert engine.outcome is Outcome.PASSED


def test_a_bdat_step_in_a_repeat_cuts_each_message_anew() -> None:
    from smtpload.scenario.model import Chunking

    bdat = Step(
        StepKind.BDAT,
        "bdat",
        text="Subject: x\n\n" + "y" * 100 + "\n",
        expect=codes(250),
        chunking=Chunking(chunk_size=50),
    )
    compiled = compile_scenario(
        scenario(GREETING, EHLO, MAIL, bdat, QUIT, blocks=(Block(BlockKind.REPEAT, 2, 4, 3, 3),))
    )
    engine = engine_for(compiled, 1)
    names = []
    while (step := engine.next_step()) is not None:
        data = engine.payload(step)
        names.append(step.name)
        engine.on_reply(step, reply(polite(step.name, data if isinstance(data, bytes) else b"")))
    assert engine.outcome is Outcome.PASSED
    assert engine.messages_accepted == 3
    per_message = ["mail", "bdat/chunk", "bdat/chunk", "bdat"]
    assert names == ["greeting", "ehlo", *per_message * 3, "quit"]


def test_message_size_in_a_pipelined_mail_counts_the_message_sent_after_the_group() -> None:
    mail = Step(
        StepKind.SEND,
        "mail",
        text="MAIL FROM:<a@example.test> SIZE={message_size}",
        expect=codes(250),
    )
    compiled = compile_scenario(
        scenario(
            GREETING,
            EHLO,
            mail,
            RCPT,
            DATA_CMD,
            MESSAGE,
            QUIT,
            blocks=(Block(BlockKind.REPEAT, 2, 6, 2, 2), Block(BlockKind.PIPELINE, 2, 5)),
        )
    )
    engine = engine_for(compiled, 1)
    sent = drive(engine)
    sizes = [int(data.split(b"SIZE=")[1]) for name, data, _ in sent if name == "mail"]
    messages = [data for name, data, _ in sent if name == "message"]
    assert len(sizes) == len(messages) == 2
    # RFC 1870 counts the message as sent, without the final "." line.
    assert sizes == [len(m) - len(b".\r\n") for m in messages]
    assert messages[0] != messages[1]  # each its own Message-ID


def test_message_size_before_a_repeats_edge_counts_the_message_that_comes_next() -> None:
    # The message starts the next group (RFC 2920 §3.1): the MAIL ... SIZE= in the repeat's
    # group declares the size of the message sent at the start of the NEXT run of the repeat,
    # and on the last run that of the message after the repeat, whatever their sizes.
    def mail(name: str) -> Step:
        return Step(
            StepKind.SEND,
            name,
            text="MAIL FROM:<a@example.test> SIZE={message_size}",
            expect=codes(250),
        )

    def message(name: str, size: int) -> Step:
        return Step(StepKind.DATA, name, text="Subject: s\n\n", data_size=size, expect=codes(250))

    rcpt = Step(StepKind.SEND, "rcpt", text="RCPT TO:<b@example.test>", expect=codes(250))
    rcpt2 = dataclasses.replace(rcpt, name="rcpt2")
    data2 = dataclasses.replace(DATA_CMD, name="data2")
    compiled = compile_scenario(
        scenario(
            GREETING,
            EHLO,
            mail("mail"),
            rcpt,
            DATA_CMD,  # 2-4: the first group
            message("inner", 1000),
            mail("mail2"),
            rcpt2,
            data2,  # 5-8: repeat x3 of a group
            message("last", 5000),
            QUIT,  # 9: the final message
            blocks=(
                Block(BlockKind.PIPELINE, 2, 5),
                Block(BlockKind.REPEAT, 5, 9, 3, 3),
                Block(BlockKind.PIPELINE, 5, 9),
            ),
        )
    )
    engine = engine_for(compiled, 1)
    sent = drive(engine)
    declared = [int(data.split(b"SIZE=")[1]) for name, data, _ in sent if name in ("mail", "mail2")]
    messages = [data for name, data, _ in sent if name in ("inner", "last")]
    assert [name for name, _, _ in sent if name in ("inner", "last")] == [
        "inner",
        "inner",
        "inner",
        "last",
    ]
    assert declared == [len(m) - len(b".\r\n") for m in messages]


# -- a long session stays bounded ------------------------------------------------------------


def long_session(runs: int) -> CompiledScenario:
    big = Step(
        StepKind.DATA,
        "message",
        text="Message-ID: {message_id}\n\n" + "x" * 20_000 + "\n",
        expect=codes(250),
    )
    return compile_scenario(
        scenario(
            GREETING, EHLO, MAIL, RCPT, DATA_CMD, big, QUIT,
            blocks=(Block(BlockKind.REPEAT, 2, 6, runs, runs),),
        )
    )  # fmt: skip


def peak_bytes(runs: int, *, fail_last: bool) -> tuple[int, SessionEngine, BehaviourRecorder]:
    """Run one observe-mode session of ``runs`` transactions of a 20 kB message rendered per
    message, its observations streamed to a recorder; the peak of what Python allocated."""
    compiled = long_session(runs)
    recorder = BehaviourRecorder(compiled)
    engine = SessionEngine(
        compiled,
        1,
        compiled.session_variables(1, "run"),
        observe=True,
        observer=recorder.observe,
    )
    mails = 0

    def answer(name: str, sent: bytes) -> bytes:
        nonlocal mails
        if name == "mail":
            mails += 1
            if fail_last and mails == runs:
                return b"451 4.3.0 try later\r\n"
        return polite(name, sent)

    tracemalloc.start()
    try:
        drive(engine, answer, keep=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, engine, recorder


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_a_long_observed_session_keeps_no_more_than_a_short_one() -> None:
    # 2,000 transactions of a 20 kB message: kept, the messages alone would be 40 MB.
    short, _, _ = peak_bytes(200, fail_last=False)
    long, engine, recorder = peak_bytes(2000, fail_last=True)
    assert long < 2 * short + 1_000_000, (short, long)
    assert engine.observations == []  # streamed to the recorder, not kept
    rows = {row.name: row for row in recorder_rows(recorder, engine)}
    assert rows["mail"].replies == 2000
    assert rows["mail"].unexpected == 1  # observe mode goes on after the difference
    assert rows["message"].replies == 2000
    # The failure's transcript: the start and the end of the session, the rest counted.
    failure = engine.failure()
    assert failure is not None
    texts = [line.text for line in failure.transcript]
    assert len(texts) < 1000  # 500 entries kept, some replies of several lines
    assert texts[0].startswith("220")
    assert any("transcript entries (commands, replies, events) not kept" in t for t in texts)
    assert any("451 4.3.0 try later" in text for text in texts[-20:])


def recorder_rows(recorder: BehaviourRecorder, engine: SessionEngine) -> list[StepBehaviour]:
    recorder.add_session(engine)
    stats = RunStats(["connect", *engine_steps(recorder)])
    return list(recorder.behaviour(stats, scenario="s", target="t", sessions=1).steps)


def engine_steps(recorder: BehaviourRecorder) -> list[str]:
    return list(long_session(1).step_names)


def test_message_size_before_a_repeat_that_runs_zero_times_counts_the_message_after_it() -> None:
    # MAIL SIZE=, RCPT, DATA, then repeat {0..1} [message 1000, MAIL SIZE=, RCPT, DATA], then
    # a message of 5000: a session that draws 0 runs sends the 5000 one after the first DATA.
    def mail(name: str) -> Step:
        return Step(
            StepKind.SEND, name, text="MAIL FROM:<a@example.test> SIZE={message_size}",
            expect=codes(250),
        )  # fmt: skip

    def message(name: str, size: int) -> Step:
        return Step(StepKind.DATA, name, text="Subject: s\n\n", data_size=size, expect=codes(250))

    rcpt = Step(StepKind.SEND, "rcpt", text="RCPT TO:<b@example.test>", expect=codes(250))
    for count_min, count_max in ((0, 0), (0, 1)):
        compiled = compile_scenario(
            scenario(
                GREETING, EHLO, mail("mail"), rcpt, DATA_CMD,
                message("inner", 1000), mail("mail2"), dataclasses.replace(rcpt, name="rcpt2"),
                dataclasses.replace(DATA_CMD, name="data2"),
                message("last", 5000), QUIT,
                blocks=(Block(BlockKind.REPEAT, 5, 9, count_min, count_max),),
            ),
            seed=3,
        )  # fmt: skip
        runs = []
        for session in range(1, 9):
            sent = drive(engine_for(compiled, session))
            declared = [
                int(data.split(b"SIZE=")[1]) for name, data, _ in sent if name.startswith("mail")
            ]
            messages = [data for name, data, _ in sent if name in ("inner", "last")]
            assert declared == [len(m) - len(b".\r\n") for m in messages]
            runs.append(len(messages) - 1)
        assert set(runs) == ({0} if count_max == 0 else {0, 1})


def test_require_pipelining_fails_a_helo_and_says_why() -> None:
    helo = Step(StepKind.SEND, "helo", text="HELO client.test", expect=codes(250))
    compiled = compile_scenario(
        scenario(GREETING, helo, MAIL, RCPT, DATA_CMD, MESSAGE, QUIT, blocks=GROUP),
        require_pipelining=True,
    )
    engine = engine_for(compiled, 1)
    drive(engine)
    failure = engine.failure()
    assert failure is not None
    assert (failure.outcome, failure.step) == (Outcome.UNEXPECTED_REPLY, "helo")
    assert "HELO gets no extensions, send EHLO" in failure.got
    assert failure.expected == "250 advertising PIPELINING (--require-pipelining)"


def test_require_pipelining_refuses_a_group_with_no_hello_before_it() -> None:
    with pytest.raises(UsageError, match="no EHLO comes before the pipeline group"):
        compile_scenario(
            scenario(GREETING, MAIL, RCPT, DATA_CMD, MESSAGE, QUIT,
                     blocks=(Block(BlockKind.PIPELINE, 1, 4),)),
            require_pipelining=True,
        )  # fmt: skip
