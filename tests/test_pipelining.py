"""Persistent, pipelined, multi-recipient sessions against real servers over loopback.

Postfix (10025) advertises PIPELINING; the built-in sink can be told not to
(``pipelining=False``, ``smtpload sink --no-pipelining``); ``misbehaving.pipelining_peer``
keeps what it read, to show what one write carried, and can refuse every recipient.
"""

from __future__ import annotations

import dataclasses
import functools

import trio

from smtpload.net.client import resolve_target
from smtpload.net.runner import RunSettings, run_sessions
from smtpload.net.sink import serve_sink
from smtpload.net.tls import TlsOptions, build_tls_client
from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.protocol.engine import SessionEngine
from smtpload.protocol.outcome import Outcome
from smtpload.report.stats import RunStats
from smtpload.scenario.model import (
    Block,
    BlockKind,
    Expectation,
    RecipientSpec,
    Scenario,
    Step,
    StepKind,
    TlsSettings,
)
from tests.misbehaving import pipelining_peer
from tests.peers import DovecotLmtp, SmtpPeer, TlsPostfixPeers

LOOPBACK = "127.0.0.1"


def codes(*values: int) -> Expectation:
    return Expectation(codes=frozenset(values), codes_text=", ".join(map(str, values)))


CODE_250 = codes(250)
CODE_354 = codes(354)


def persistent(
    recipients: RecipientSpec,
    *,
    messages: int,
    rcpt_expect: Expectation = CODE_250,
    data_expect: Expectation = CODE_354,
) -> Scenario:
    """greeting, EHLO, repeat N { pipeline [MAIL, rcpt, DATA], message }, QUIT."""
    steps = (
        Step(StepKind.GREETING, "greeting", expect=codes(220)),
        Step(StepKind.SEND, "ehlo", text="EHLO client.example.test", expect=codes(250)),
        Step(StepKind.SEND, "mail", text="MAIL FROM:<load@example.test>", expect=codes(250)),
        Step(StepKind.RCPT, "rcpt", expect=rcpt_expect, recipients=recipients),
        Step(StepKind.SEND, "data", text="DATA", expect=data_expect),
        Step(StepKind.DATA, "message", text="Subject: load {uid}\n\nhello\n", expect=codes(250)),
        Step(StepKind.SEND, "quit", text="QUIT", expect=codes(221)),
    )
    return Scenario(
        path="persistent.yaml",
        name="persistent",
        description="",
        target=None,
        timeout_s=None,
        variables=(),
        steps=steps,
        blocks=(
            Block(BlockKind.REPEAT, 2, 6, messages, messages),
            Block(BlockKind.PIPELINE, 2, 5),
        ),
    )


async def run(
    compiled: CompiledScenario, port: int, sessions: int, concurrency: int = 1
) -> tuple[RunStats, list[SessionEngine]]:
    stats = RunStats(["connect", *compiled.step_names])
    engines: list[SessionEngine] = []
    settings = RunSettings(
        sessions=sessions, concurrency=concurrency, run_id="pipe", handle_signals=False
    )
    with trio.fail_after(120):
        await run_sessions(
            compiled,
            await resolve_target(LOOPBACK, port),
            settings,
            stats,
            on_session_end=engines.append,
        )
    return stats, engines


THREE = RecipientSpec(address="user{recipient}@example.test", count_min=3, count_max=3)


async def test_a_refused_recipient_in_the_middle_of_a_group_fails_its_step_at_postfix(
    postfix_server: SmtpPeer,
) -> None:
    # Postfix refuses @reject.test (550) and accepts the others, so DATA still gets 354:
    # the session fails at rcpt, reads every reply of the group, and closes without sending
    # the message (closing before the end of data aborts the transaction, RFC 5321 §3.3).
    recipients = RecipientSpec(
        addresses=("ok1@example.test", "nobody@reject.test", "ok2@example.test"),
        count_min=3,
        count_max=3,
    )
    compiled = compile_scenario(persistent(recipients, messages=2))
    stats, _ = await run(compiled, postfix_server.port, sessions=1)
    (failure,) = stats.failures
    assert (failure.outcome, failure.step) == (Outcome.UNEXPECTED_REPLY, "rcpt")
    assert failure.got.startswith("550")
    assert stats.steps["rcpt"].attempts == 3
    assert stats.steps["rcpt"].failed == 1
    assert stats.steps["data"].attempts == 1
    assert stats.steps["data"].failed == 0
    assert stats.steps["message"].attempts == 0
    assert stats.messages == 0
    texts = [line.text for line in failure.transcript]
    assert any(text.startswith("354") for text in texts)
    assert "QUIT" not in texts
    assert "closing the connection without the message" in texts[-1]


async def test_without_pipelining_groups_run_in_lock_step_and_are_counted() -> None:
    compiled = compile_scenario(persistent(THREE, messages=4))
    async with trio.open_nursery() as nursery:
        address = await nursery.start(functools.partial(serve_sink, LOOPBACK, 0, pipelining=False))
        stats, _ = await run(compiled, address.port, sessions=2)
        nursery.cancel_scope.cancel()
    assert stats.failures == []
    assert stats.messages == 8
    assert stats.pipelining is not None
    assert stats.pipelining.summary() == {"groups_pipelined": 0, "groups_lock_step": 8}


async def test_require_pipelining_fails_each_session_at_ehlo_without_it() -> None:
    compiled = compile_scenario(persistent(THREE, messages=4), require_pipelining=True)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(functools.partial(serve_sink, LOOPBACK, 0, pipelining=False))
        stats, _ = await run(compiled, address.port, sessions=3)
        nursery.cancel_scope.cancel()
    assert stats.outcomes[Outcome.UNEXPECTED_REPLY] == 3
    assert {(f.step, "PIPELINING not advertised" in f.got) for f in stats.failures} == {
        ("ehlo", True)
    }
    assert stats.steps["mail"].attempts == 0
    # The sink that advertises it: the same scenario passes.
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve_sink, LOOPBACK, 0)
        stats, _ = await run(compiled, address.port, sessions=3)
        nursery.cancel_scope.cancel()
    assert stats.passed == 3
    assert stats.messages == 12


async def test_a_group_arrives_in_one_write() -> None:
    reads: list[bytes] = []
    compiled = compile_scenario(persistent(THREE, messages=1))
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(
            functools.partial(trio.serve_tcp, pipelining_peer(reads), 0, host=LOOPBACK)
        )
        stats, _ = await run(compiled, listener.socket.getsockname()[1], sessions=1)
        nursery.cancel_scope.cancel()
    assert stats.failures == []
    assert stats.messages == 1
    group = (
        b"MAIL FROM:<load@example.test>\r\n"
        + b"".join(b"RCPT TO:<user%d@example.test>\r\n" % n for n in (1, 2, 3))
        + b"DATA\r\n"
    )
    assert group in reads  # one read held the whole group: it went in one write


async def test_all_recipients_refused_and_354_gets_the_lone_dot_then_quit() -> None:
    reads: list[bytes] = []
    compiled = compile_scenario(
        persistent(THREE, messages=3, rcpt_expect=codes(550), data_expect=codes(554))
    )
    async with trio.open_nursery() as nursery:
        handler = pipelining_peer(reads, refuse_rcpt=True)
        (listener,) = await nursery.start(
            functools.partial(trio.serve_tcp, handler, 0, host=LOOPBACK)
        )
        stats, _ = await run(compiled, listener.socket.getsockname()[1], sessions=1)
        nursery.cancel_scope.cancel()
    (failure,) = stats.failures
    assert (failure.outcome, failure.step) == (Outcome.UNEXPECTED_REPLY, "data")
    assert failure.got.startswith("354")
    received = b"".join(reads)
    # RFC 2920 §3.1: "if the DATA command was accepted the client SMTP should send a single
    # dot"; the server's answer to it ends the transaction, then the polite QUIT.
    assert received.endswith(b"DATA\r\n.\r\nQUIT\r\n")
    assert stats.steps["message"].attempts == 0


async def test_pipelining_inside_starttls_at_postfix(postfix_tls: TlsPostfixPeers) -> None:
    # EHLO, STARTTLS, tls, EHLO again (RFC 3207 §4.2), then pipelined transactions in TLS.
    base = persistent(THREE, messages=5)
    starttls = (
        Step(StepKind.STARTTLS, "starttls", expect=codes(220)),
        Step(StepKind.SEND, "ehlo_tls", text="EHLO client.example.test", expect=codes(250)),
    )
    steps = (*base.steps[:2], *starttls, *base.steps[2:])
    scenario = dataclasses.replace(
        base,
        steps=steps,
        blocks=(
            Block(BlockKind.REPEAT, 4, 8, 5, 5),
            Block(BlockKind.PIPELINE, 4, 7),
        ),
    )
    compiled = compile_scenario(scenario)
    tls = build_tls_client(
        TlsOptions(settings=TlsSettings(ca_file=str(postfix_tls.ca_file))), LOOPBACK
    )
    stats = RunStats(["connect", *compiled.step_names])
    settings = RunSettings(
        sessions=2, concurrency=2, run_id="pipe-tls", handle_signals=False, tls=tls
    )
    with trio.fail_after(60):
        await run_sessions(
            compiled, await resolve_target(LOOPBACK, postfix_tls.starttls_port), settings, stats
        )
    assert stats.failures == []
    assert stats.messages == 10
    assert stats.steps["rcpt"].attempts == 30
    assert stats.pipelining is not None
    assert stats.pipelining.summary() == {"groups_pipelined": 10, "groups_lock_step": 0}


async def test_an_lmtp_rcpt_step_gets_one_reply_per_accepted_recipient_at_dovecot(
    dovecot_lmtp: DovecotLmtp,
) -> None:
    first, second = dovecot_lmtp.mailboxes
    recipients = RecipientSpec(addresses=(first, second), count_min=2, count_max=2)
    base = persistent(recipients, messages=3)
    lhlo = Step(StepKind.SEND, "ehlo", text="LHLO client.example.test", expect=codes(250))
    scenario = dataclasses.replace(
        base, steps=(base.steps[0], lhlo, *base.steps[2:]), protocol="lmtp"
    )
    compiled = compile_scenario(scenario)
    assert "message/rcpt" in compiled.step_names
    stats, _ = await run(compiled, dovecot_lmtp.port, sessions=1)
    assert stats.failures == []
    assert stats.messages == 3
    # Each message: one reply per recipient, in the rcpt step's one part row.
    assert stats.steps["message/rcpt"].attempts == 6
    assert stats.steps["rcpt"].attempts == 6


async def test_every_recipient_refused_as_expected_gets_the_lone_dot_instead_of_the_message() -> (
    None
):
    # The scenario expects the refusals and DATA's 354: the message step then sends the lone
    # "." (RFC 2920 §3.1: nothing to deliver to), judged by the message step's expect.
    reads: list[bytes] = []
    base = persistent(THREE, messages=2, rcpt_expect=codes(550))
    message = dataclasses.replace(base.steps[5], expect=codes(554))
    scenario = dataclasses.replace(base, steps=(*base.steps[:5], message, base.steps[6]))
    compiled = compile_scenario(scenario)
    async with trio.open_nursery() as nursery:
        handler = pipelining_peer(reads, refuse_rcpt=True)
        (listener,) = await nursery.start(
            functools.partial(trio.serve_tcp, handler, 0, host=LOOPBACK)
        )
        stats, _ = await run(compiled, listener.socket.getsockname()[1], sessions=1)
        nursery.cancel_scope.cancel()
    assert stats.failures == []
    assert stats.messages == 0
    assert stats.steps["message"].attempts == 2
    received = b"".join(reads)
    assert b"Subject: load" not in received  # no message went to no one
    assert received.count(b"DATA\r\n.\r\n") == 2
