"""The sans-IO AUTH mechanisms (protocol/auth.py) against the RFCs' own examples, no sockets."""

from __future__ import annotations

import base64

import pytest

from smtpload.protocol.auth import (
    MAX_AUTH_ROUNDS,
    MAX_SCRAM_ITERATIONS,
    AuthError,
    AuthExchange,
    redacted,
    saslprep,
)


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def test_plain_rfc4616_initial_response_with_an_empty_authzid() -> None:
    exchange = AuthExchange("plain", "tim", "tanstaaftanstaaf")
    # RFC 4616 §4's message, "\0tim\0tanstaaftanstaaf", as RFC 4954 §4's initial response.
    assert exchange.command() == b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n"
    exchange.finish(235)
    with pytest.raises(AuthError, match="after the initial response"):
        exchange.respond("")


def test_login_answers_the_two_prompts_in_order() -> None:
    exchange = AuthExchange("LOGIN", "user", "pass")
    assert exchange.command() == b"AUTH LOGIN\r\n"
    assert exchange.respond("VXNlcm5hbWU6") == b64("user").encode() + b"\r\n"
    assert exchange.respond("UGFzc3dvcmQ6") == b64("pass").encode() + b"\r\n"
    with pytest.raises(AuthError, match="third challenge"):
        exchange.respond("UGFzc3dvcmQ6")


def test_cram_md5_rfc2195_example() -> None:
    exchange = AuthExchange("CRAM-MD5", "tim", "tanstaaftanstaaf")
    assert exchange.command() == b"AUTH CRAM-MD5\r\n"
    response = exchange.respond("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
    assert response == b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"
    assert base64.b64decode(response) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_xoauth2_googles_example_and_the_error_round() -> None:
    token = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    exchange = AuthExchange("XOAUTH2", "someuser@example.com", token)
    expected = (
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
        "QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )
    assert exchange.command() == f"AUTH XOAUTH2 {expected}\r\n".encode()
    # On failure the server sends base64 JSON; the client answers with an empty line.
    error = b64('{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}')
    assert exchange.respond(error) == b"\r\n"
    with pytest.raises(AuthError, match="second challenge"):
        exchange.respond(error)


# RFC 7677 §3: user "user", password "pencil", client nonce "rOprNGfwEbeRWgbNEkqO".
_NONCE = "rOprNGfwEbeRWgbNEkqO"
_SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
_CLIENT_FINAL = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
_SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def _scram() -> AuthExchange:
    exchange = AuthExchange("SCRAM-SHA-256", "user", "pencil", nonce=_NONCE)
    assert exchange.command() == f"AUTH SCRAM-SHA-256 {b64('n,,n=user,r=' + _NONCE)}\r\n".encode()
    return exchange


def test_scram_sha_256_rfc7677_vector_and_the_server_signature_verified() -> None:
    exchange = _scram()
    assert base64.b64decode(exchange.respond(b64(_SERVER_FIRST))) == _CLIENT_FINAL.encode()
    assert exchange.respond(b64(_SERVER_FINAL)) == b"\r\n"
    exchange.finish(235)


def test_scram_wrong_server_signature_is_named() -> None:
    exchange = _scram()
    exchange.respond(b64(_SERVER_FIRST))
    wrong = "v=" + b64(bytes(32))
    with pytest.raises(AuthError, match="wrong server signature"):
        exchange.respond(b64(wrong))


def test_scram_success_without_server_signature_is_refused() -> None:
    exchange = _scram()
    exchange.respond(b64(_SERVER_FIRST))
    with pytest.raises(AuthError, match="never proved"):
        exchange.finish(235)
    exchange.finish(535)  # a failure needs no proof: it is the step's reply to judge


@pytest.mark.parametrize(
    ("server_first", "match"),
    [
        ("r=someone-elses-nonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend ours"),
        (f"r={_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend ours"),
        (f"r={_NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==", "lacks"),
        (f"r={_NONCE}x,s=***,i=4096", "salt"),
        (f"r={_NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1", "no number"),
        (f"r={_NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", "not from 1"),
        (f"r={_NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i={MAX_SCRAM_ITERATIONS + 1}", "not from 1"),
        (f"m=ext,r={_NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "extension"),
        ("not a scram message", "not a SCRAM message"),
    ],
)
def test_scram_bad_server_first_messages(server_first: str, match: str) -> None:
    exchange = _scram()
    with pytest.raises(AuthError, match=match):
        exchange.respond(b64(server_first))


def test_scram_server_error_then_535() -> None:
    exchange = _scram()
    exchange.respond(b64(_SERVER_FIRST))
    assert exchange.respond(b64("e=invalid-proof")) == b"\r\n"
    exchange.finish(535)
    with pytest.raises(AuthError):
        exchange.finish(235)


def test_scram_saslprep_maps_spaces_normalises_and_refuses_controls() -> None:
    assert saslprep("pen\u00a0cil") == "pen cil"
    assert saslprep("e\u0301") == "\u00e9"
    for bad in ("", "pen\x00cil", "pen\x7fcil"):
        with pytest.raises(ValueError, match=r"empty|control character"):
            saslprep(bad)
    with pytest.raises(ValueError, match="password refused by SASLprep"):
        AuthExchange("SCRAM-SHA-256", "user", "a\nb")


@pytest.mark.parametrize("mechanism", ["LOGIN", "CRAM-MD5", "XOAUTH2", "SCRAM-SHA-256"])
@pytest.mark.parametrize("challenge", ["not base64!", "YWJj=", "YW Jj", "\u00e9"])
def test_a_challenge_that_is_not_base64_is_an_auth_error(mechanism: str, challenge: str) -> None:
    exchange = AuthExchange(mechanism, "user", "pencil", nonce=_NONCE)
    exchange.command()
    with pytest.raises(AuthError, match="not base64"):
        exchange.respond(challenge)


def test_xoauth2_takes_one_error_report() -> None:
    exchange = AuthExchange("XOAUTH2", "u", "t")
    exchange.command()
    exchange.respond("")
    with pytest.raises(AuthError, match="second challenge"):
        exchange.respond("")


def test_rounds_are_bounded_whatever_the_mechanism_would_do() -> None:
    exchange = AuthExchange("PLAIN", "u", "p" * 600)  # too long for the AUTH line
    assert exchange.command() == b"AUTH PLAIN\r\n"
    exchange.respond("")
    for _ in range(MAX_AUTH_ROUNDS - 1):
        with pytest.raises(AuthError, match="after the initial response"):
            exchange.respond("")
    with pytest.raises(AuthError, match=f"more than {MAX_AUTH_ROUNDS}"):
        exchange.respond("")


def test_a_long_initial_response_waits_for_an_empty_challenge() -> None:
    # RFC 4954 §4: an AUTH line over 512 octets must not carry the initial response.
    token = "t" * 2000
    exchange = AuthExchange("XOAUTH2", "user@example.test", token)
    assert exchange.command() == b"AUTH XOAUTH2\r\n"
    line = exchange.respond("")
    assert (
        base64.b64decode(line) == f"user=user@example.test\x01auth=Bearer {token}\x01\x01".encode()
    )
    # The longest line that fits still goes on the AUTH line.
    fits = AuthExchange("PLAIN", "u", "p" * 300).command()
    assert fits.startswith(b"AUTH PLAIN A")
    assert len(fits) <= 512
    exchange = AuthExchange("PLAIN", "u", "p" * 600)
    exchange.command()
    with pytest.raises(AuthError, match="must be empty"):
        exchange.respond(b64("x"))


def test_every_line_sent_is_kept_and_redacted() -> None:
    exchange = AuthExchange("LOGIN", "user", "pass")
    lines = [exchange.command(), exchange.respond("VXNlcm5hbWU6"), exchange.respond("UGFzc3dvcmQ6")]
    assert exchange.sent == lines
    assert [redacted(line) for line in lines] == [
        "AUTH LOGIN",
        "<redacted 8 bytes>",
        "<redacted 8 bytes>",
    ]
    assert (
        redacted(b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n") == "AUTH PLAIN <redacted 28 bytes>"
    )
    assert redacted(b"\r\n") == ""
    assert redacted(b"*\r\n") == "*"


def test_unknown_mechanism() -> None:
    with pytest.raises(ValueError, match="unknown AUTH mechanism"):
        AuthExchange("GSSAPI", "u", "p")
