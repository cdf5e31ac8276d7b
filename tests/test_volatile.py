"""Volatile reply text: what changes between runs is generalised, what does not is kept."""

from __future__ import annotations

import re

import pytest

from smtpload.protocol.volatile import normalize, pattern_for
from smtpload.scenario.patterns import compile_text

CASES = [
    (
        "2.0.0 Ok: queued as A1A73160038",
        "2.0.0 Ok: queued as <id>",
        "2.0.0 Ok: queued as 4F2B1160041",
    ),
    ("ok 1280190256 qp 85712", "ok <id> qp <n>", "ok 1795800000 qp 1"),
    # Postfix's hex queue ids are now and then all digits: still an id, not a number.
    (
        "2.0.0 Ok: queued as 04012345678",
        "2.0.0 Ok: queued as <id>",
        "2.0.0 Ok: queued as 4F2B11600",
    ),
    (
        "localhost.localdomain ESMTP Sendmail 8.13.8/8.13.8; Tue, 27 Jul 2010 00:02:15 +0900",
        "localhost.localdomain ESMTP Sendmail 8.13.8/8.13.8; <date>",
        "localhost.localdomain ESMTP Sendmail 8.13.8/8.13.8; Sat, 28 Nov 2026 01:02:03 +0000",
    ),
    (
        "2.0.0 o6QF2FNx009985 Message accepted for delivery",
        "2.0.0 <id> Message accepted for delivery",
        "2.0.0 q7RG3GOy010096 Message accepted for delivery",
    ),
    (
        "localhost.localdomain Hello testserver [127.0.0.1], pleased to meet you",
        "localhost.localdomain Hello testserver [<ip>], pleased to meet you",
        "localhost.localdomain Hello testserver [127.0.0.2], pleased to meet you",
    ),
    ("OK id=1qXyZa-0001Ab-Cd", "OK id=<id>", "OK id=1rAbCd-0002Xy-Zz"),
    ("done at 12:30:01", "done at <time>", "done at 23:59:59"),
]

# Dovecot's LMTP session ids: 16 octets in base64 without padding (22 characters), as its reply
# to the end of a message carries them. Any of them is another run's of any other.
DOVECOT_IDS = [
    "yJczDcYeD2thZwAAg+zDdQ",  # as seen from Dovecot 2.3.19
    "4AqOHSkA/GUMBwAAjwK7Dw",  # a "/"
    "+AqOHSkAaGUMBwAAjwK7D/",  # "+" first, "/" last
    "mK8bLz4kZWUyHAAA1Z0u6g",  # letters and digits only
    "abcdEFGHijklMNOPqrstUV",  # no digit at all
    "0123456789012345678901",  # no letter at all
]
CASES += [
    (
        f"2.0.0 <user@lmtp.test> {one} Saved",
        "2.0.0 <user@lmtp.test> <id> Saved",
        f"2.0.0 <user@lmtp.test> {other} Saved",
    )
    for one, other in zip(DOVECOT_IDS, DOVECOT_IDS[1:] + DOVECOT_IDS[:1], strict=True)
]


@pytest.mark.parametrize(("text", "normalized", "other_run"), CASES)
def test_volatile_parts_are_generalised(text: str, normalized: str, other_run: str) -> None:
    assert normalize(text) == normalized
    assert normalize(other_run) == normalized
    assert re.fullmatch(pattern_for(text), text)
    assert re.fullmatch(pattern_for(text), other_run)


@pytest.mark.parametrize(
    ("text", "changed"),
    [
        (
            '5.5.1 Command unrecognized: "HELOO localhost"',
            '5.5.2 Command unrecognized: "HELOO localhost"',
        ),
        ("postfix.test ESMTP Postfix (Debian/GNU)", "postfix.test ESMTP Postfix (Ubuntu)"),
        ("ESMTP Sendmail 8.13.8/8.13.8", "ESMTP Sendmail 8.14.4/8.14.4"),
        ("2.1.5 Ok", "2.1.5 Recipient ok"),
        # 22 letters, as long as a Dovecot id, but a word: no digit, "+", "/" or inner capital.
        ("2.0.0 Saved to internationalizational", "2.0.0 Saved to Internationalizational"),
    ],
    ids=["enhanced-code", "words", "version", "text", "long-word"],
)
def test_what_belongs_to_the_configuration_is_kept(text: str, changed: str) -> None:
    assert normalize(text) == text
    assert normalize(changed) != normalize(text)
    assert re.fullmatch(pattern_for(text), changed) is None


def test_pattern_escapes_regex_characters() -> None:
    text = "Error: (x+y)? [*] queued as A1A73160038"
    assert re.fullmatch(pattern_for(text), text)
    assert re.fullmatch(pattern_for(text), "Error: xy [*] queued as A1A73160038") is None


# -- on RE2, which matches the patterns in a run (scenario/patterns.py) -------------------------


@pytest.mark.parametrize(("text", "normalized", "other_run"), CASES)
def test_patterns_match_on_re2_as_a_run_matches_them(
    text: str, normalized: str, other_run: str
) -> None:
    pattern = compile_text(pattern_for(text))
    assert pattern.search(text)
    assert pattern.search(other_run)


# Where Python's \d, \w and \s are Unicode and RE2's are ASCII-only: a volatile part is found
# with ASCII classes only, so the regex standing for it matches it on RE2.
UNICODE_TEXTS = [
    "ok \u0664\u0662 times",  # Arabic-Indic 42
    "queued as \uff21\uff22\uff23\uff11\uff12\uff13\uff14",  # fullwidth ABC1234
    "id=\u00c4bc123d\u00f6 done",
    "pid \u0967\u0968\u0969\u096a\u096b\u096c at \u0661\u0662:\u0663\u0664:\u0665\u0666",
    "every char " + "".join(map(chr, range(0x20, 0x2FF))),
]


@pytest.mark.parametrize("text", UNICODE_TEXTS, ids=range(len(UNICODE_TEXTS)))
def test_unicode_text_patterns_match_it_on_re2(text: str) -> None:
    assert compile_text(pattern_for(text)).search(text)
