"""The real-server fixtures serve real SMTP, and both refuse ``@reject.test`` the same way.

The client here is the standard library's smtplib, run in a worker thread, so these tests check
the fixtures and the servers, not smtpload's own client.
"""

from __future__ import annotations

import smtplib
import uuid

import pytest
import trio

from tests.peers import ReceivedMessage, RecordingPeer, RecordingPostfix, SmtpPeer

SENDER = "hoge00@exsample.jp"
RECIPIENT = "hoge01@exsample.jp"
REJECTED = "x@reject.test"
# A line that starts with "." checks that dot-stuffing round-trips.
MESSAGE = b"Subject: fixture check\r\n\r\nhello\r\n.leading dot\r\n"
REFUSAL = (550, f"5.1.1 <{REJECTED}>: Recipient address rejected: User unknown".encode())


def _sendmail(peer: SmtpPeer, to_addrs: list[str]) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP(peer.host, peer.port, local_hostname="client.test", timeout=10) as smtp:
        return smtp.sendmail(SENDER, to_addrs, MESSAGE)


@pytest.fixture(
    params=[
        pytest.param("aiosmtpd_server", id="aiosmtpd"),
        pytest.param("postfix_server", id="postfix", marks=pytest.mark.postfix),
    ]
)
def any_peer(request: pytest.FixtureRequest) -> SmtpPeer:
    name: str = request.param
    peer = request.getfixturevalue(name)
    assert isinstance(peer, SmtpPeer)
    return peer


async def test_reject_test_recipient_is_refused_with_550_5_1_1(any_peer: SmtpPeer) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo:
        await trio.to_thread.run_sync(_sendmail, any_peer, [REJECTED])
    assert excinfo.value.recipients == {REJECTED: REFUSAL}


async def test_aiosmtpd_server_records_envelope_and_content(
    aiosmtpd_server: RecordingPeer,
) -> None:
    refused = await trio.to_thread.run_sync(_sendmail, aiosmtpd_server, [RECIPIENT, REJECTED])

    assert refused == {REJECTED: REFUSAL}
    assert aiosmtpd_server.handler.messages == [
        ReceivedMessage(mail_from=SENDER, rcpt_tos=(RECIPIENT,), content=MESSAGE)
    ]


async def test_aiosmtpd_server_records_nothing_when_every_recipient_is_refused(
    aiosmtpd_server: RecordingPeer,
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await trio.to_thread.run_sync(_sendmail, aiosmtpd_server, [REJECTED])
    assert aiosmtpd_server.handler.messages == []


async def test_postfix_server_accepts_the_seed_scenario_envelope(postfix_server: SmtpPeer) -> None:
    refused = await trio.to_thread.run_sync(
        _sendmail, postfix_server, [RECIPIENT, "hoge02@gmail.com"]
    )
    assert refused == {}


def _seed_dialogue(peer: SmtpPeer) -> list[tuple[int, bytes]]:
    """The seed scenario's quirks: a misspelt HELO, and MAIL FROM without angle brackets."""
    with smtplib.SMTP(peer.host, peer.port, timeout=10) as smtp:
        return [
            smtp.docmd("HELOO", "client.test"),
            smtp.ehlo("client.test"),
            smtp.docmd("MAIL", f"FROM:{SENDER}"),
            smtp.rcpt(RECIPIENT),
            smtp.data(MESSAGE),
        ]


async def test_postfix_server_answers_the_seed_dialogue(postfix_server: SmtpPeer) -> None:
    heloo, ehlo, mail, rcpt, data = await trio.to_thread.run_sync(_seed_dialogue, postfix_server)

    assert heloo == (500, b"5.5.2 Error: command not recognized")
    assert ehlo[0] == 250
    assert b"PIPELINING" in ehlo[1].splitlines()
    assert mail == (250, b"2.1.0 Ok")
    assert rcpt == (250, b"2.1.5 Ok")
    assert data[0] == 250
    assert data[1].startswith(b"2.0.0 Ok: queued as ")


def test_postfix_record_stores_each_message_as_it_was_sent(
    postfix_record: RecordingPostfix,
) -> None:
    # The recording transport's contract (tests.peers.RecordingPostfix): one file per message
    # and recipient, the bytes sent (8-bit included) with LF line ends under Postfix's
    # Received: header; a recipient elsewhere is still discarded.
    recipient = f"fixture-{uuid.uuid4().hex}@{postfix_record.domain}"
    body = "Subject: recorded\r\n\r\nhello \u00e9\r\n.leading dot\r\n".encode()
    peer = SmtpPeer(postfix_record.host, postfix_record.plain_port)
    with smtplib.SMTP(peer.host, peer.port, local_hostname="client.test", timeout=10) as smtp:
        refused = smtp.sendmail(
            SENDER, [recipient, RECIPIENT], body, mail_options=["BODY=8BITMIME"]
        )
    assert refused == {}
    (received,) = postfix_record.wait_for(recipient)
    assert received.startswith(b"Received: from client.test ")
    headers, _, content = received.partition(b"\n\n")
    assert b"\nSubject: recorded\n" in headers + b"\n"
    assert content == "hello \u00e9\n.leading dot\n".encode()
    assert not postfix_record.folder(RECIPIENT).exists()
