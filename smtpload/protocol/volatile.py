"""The parts of reply text that change from run to run, and how to see past them.

A server's reply text carries things that differ on every session even when its behaviour does
not: queue ids (``queued as A1A73160038``, Sendmail's ``o6QF2FNx009985``, Exim's
``id=1qXyZa-0001Ab-Cd``), Dovecot's LMTP session ids (``yJczDcYeD2thZwAAg+zDdQ Saved``),
dates and times, process ids and counters (qmail's ``qp 85712``), and the client's address.
Replaying a transcript or comparing two runs must not call those a change.

``normalize`` replaces each such part with a placeholder (``<id>``, ``<n>``, ``<date>``,
``<time>``, ``<ip>``), so that two texts that differ only there compare equal. ``pattern_for``
turns a text into a regular expression that matches the same text with any values in those
places. What is *not* volatile is kept exactly: words, enhanced status codes (``2.0.0``) and
version numbers (``8.13.8``), which belong to the server's configuration, not to the moment.
"""

from __future__ import annotations

import re

__all__ = ["normalize", "pattern_for"]

_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"

# Order matters: dates contain times, and times and addresses contain numbers. The detectors
# are ASCII (\d is 0-9, \w is [A-Za-z0-9_]) because the regexes they stand for are matched by
# RE2, where \d and \w are ASCII-only: a part found with Unicode digits (fullwidth U+FF14 U+FF12)
# would become a \d+ that no longer matches the text it came from.
_VOLATILE: tuple[tuple[str, re.Pattern[str], str], ...] = (
    # Dovecot's session id (its LMTP "250 2.0.0 <user@host> yJczDcYeD2thZwAAg+zDdQ Saved"): a
    # GUID of 16 octets in base64 without padding, so 22 characters, "+" and "/" among them
    # (which the <id> below would cut the token at). First, so no detector below splits it; a
    # word of 22 letters is no id: a digit, "+", "/" or a capital after the first is required.
    (
        "<id>",
        re.compile(
            r"(?<![\w+/.-])(?=[A-Za-z0-9+/]*[0-9+/]|[A-Za-z0-9+/]+[A-Z])"
            r"[A-Za-z0-9+/]{22}(?![\w+/.-])",
            re.ASCII,
        ),
        r"[\w+/-]+",
    ),
    (
        "<date>",
        # RFC 5322 §3.3 date-time, as servers print it: "Tue, 27 Jul 2010 00:02:15 +0900".
        re.compile(
            rf"(?:{_DAY},\s*)?\d{{1,2}}\s+{_MONTH}\s+\d{{2,4}}\s+\d{{1,2}}:\d{{2}}(?::\d{{2}})?"
            r"(?:\s+(?:[+-]\d{4}|[A-Z]{2,5}))?(?:\s+\([A-Za-z ]+\))?",
            re.ASCII,
        ),
        # Any whitespace between the parts, as the detector's \s: "27\tJul" is a date too.
        r"\S+(?:[\s,]+\S+)*?",
    ),
    (
        "<time>",
        re.compile(r"(?<![\w.:])\d{1,2}:\d{2}:\d{2}(?:\.\d+)?(?![\w.:])", re.ASCII),
        r"[\d:.]+",
    ),
    (
        "<ip>",
        re.compile(
            r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])|(?<![\w:])[0-9a-fA-F:]*::[0-9a-fA-F:]*",
            re.ASCII,
        ),
        r"[0-9a-fA-F.:]+",
    ),
    # An id: a token of letters and digits (and - or _) with at least one digit and one letter,
    # or a long run of digits, at least 6 characters: queue ids, session ids, message ids.
    (
        "<id>",
        re.compile(
            r"(?<![\w.-])"
            r"(?:(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9][\w-]{5,}|\d{6,})"
            r"(?![\w.-])",
            re.ASCII,
        ),
        r"[\w+/-]+",  # as Dovecot's (above): one regex per placeholder
    ),
    ("<n>", re.compile(r"(?<![\w.-])\d+(?![\w.-])", re.ASCII), r"\d+"),
)


def normalize(text: str) -> str:
    """``text`` with every volatile part replaced by its placeholder."""
    for placeholder, pattern, _ in _VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


def pattern_for(text: str) -> str:
    """A regular expression, anchored at both ends, matching ``text`` with any volatile values.

    The result is written into scenarios (``import --strict``), so it is matched by RE2
    (``scenario.patterns``): only the syntax both engines read alike is used.

    >>> import re
    >>> bool(re.fullmatch(pattern_for("2.0.0 Ok: queued as A1A73160038"),
    ...                   "2.0.0 Ok: queued as 4F2B1160041"))
    True
    """
    normalized = normalize(text)
    regex_of = {placeholder: regex for placeholder, _, regex in _VOLATILE}
    parts = re.split(r"(<date>|<time>|<ip>|<id>|<n>)", normalized)
    out = []
    for index, part in enumerate(parts):
        out.append(regex_of[part] if index % 2 else re.escape(part))
    return "^" + "".join(out) + "$"
