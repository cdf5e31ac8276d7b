"""protocol/scrub.py: what a session sent or knows as secret is removed from shown replies."""

from __future__ import annotations

import base64

import pytest

from smtpload.protocol.scrub import REDACTED, Scrubber, aligned_base64
from smtpload.protocol.wire import Reply

PASSWORD = "pw-Zq7!correct horse"


@pytest.mark.parametrize("before", [b"", b"\0", b"\0user\0", b"user=a\x01auth=Bearer "])
def test_the_password_inside_any_blob_is_scrubbed_at_every_alignment(before: bytes) -> None:
    scrubber = Scrubber()
    scrubber.add_secret(PASSWORD)
    blob = base64.b64encode(before + PASSWORD.encode()).decode()
    shown = scrubber.scrub(f"535 5.7.8 no {blob} thanks")
    assert REDACTED in shown
    assert not any(form.decode() in shown for form in aligned_base64(PASSWORD.encode()))


@pytest.mark.parametrize(
    "line", [b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", b"YWxpY2U=\r\n", b"c=biws,r=abc,p=xyz=\r\n"]
)
def test_each_blob_sent_is_scrubbed_whole(line: bytes) -> None:
    scrubber = Scrubber()
    scrubber.add_sent(line)
    blob = line.removesuffix(b"\r\n").split(b" ")[-1]
    assert scrubber.scrub_bytes(b"250 ok " + blob + b"!") == b"250 ok <redacted>!"


@pytest.mark.parametrize("line", [b"\r\n", b"=\r\n", b"*\r\n", b"AUTH LOGIN\r\n"])
def test_lines_without_a_secret_scrub_nothing(line: bytes) -> None:
    scrubber = Scrubber()
    scrubber.add_sent(line)
    assert scrubber.scrub("250 2.0.0 = * AUTH LOGIN ok") == "250 2.0.0 = * AUTH LOGIN ok"


@pytest.mark.parametrize("password", ["a", "ab", "abc"])
def test_a_short_password_is_scrubbed_only_as_a_whole_word(password: str) -> None:
    scrubber = Scrubber()
    scrubber.add_secret(password)
    encoded = base64.b64encode(password.encode()).decode()
    text = f"250 {password} x{password}y {encoded}"
    assert scrubber.scrub(text) == f"250 {REDACTED} x{password}y {REDACTED}"


def test_a_reply_without_secrets_is_the_same_object_and_one_with_them_is_scrubbed() -> None:
    scrubber = Scrubber()
    scrubber.add_secret(PASSWORD)
    clean = Reply(250, ("ok",), b"250 ok\r\n")
    assert scrubber.reply(clean) is clean
    dirty = Reply(535, ("no", PASSWORD), f"535-no\r\n535 {PASSWORD}\r\n".encode())
    shown = scrubber.reply(dirty)
    assert shown.lines == ("no", REDACTED)
    assert shown.raw == b"535-no\r\n535 <redacted>\r\n"
    assert shown.code == 535


def test_a_non_ascii_password_is_scrubbed_in_bytes_and_text() -> None:
    scrubber = Scrubber()
    scrubber.add_secret("pässwörd€")
    assert scrubber.scrub("x pässwörd€ y") == "x <redacted> y"
    assert scrubber.scrub_bytes("x pässwörd€ y".encode()) == b"x <redacted> y"
