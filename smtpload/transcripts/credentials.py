"""The credentials of an AUTH exchange in a transcript: who logged in, and with what.

This module owns decoding the client's side of an AUTH exchange (RFC 4954) as a transcript
shows it, the AUTH line's initial response and its answers to the server's ``334``
challenges, into a user name and a password, and the name of the environment variable that
the imported scenario reads the password from. ``dialogue.py`` collects the exchange's lines;
``importer.py`` writes the ``auth`` step. No I/O, no trio.

The password is a secret: it is never put in a message or a repr, and neither is a blob that
holds it (base64 hides nothing). Messages name the line and say what is wrong with it.

Mechanisms read:

* ``PLAIN`` (RFC 4616): one message, ``[authzid] NUL authcid NUL passwd`` in base64, as the
  AUTH line's initial response or as the answer to an empty ``334``. An authorization identity
  other than the user itself is refused: the ``auth`` step sends none.
* ``LOGIN`` (draft-murchison-sasl-login): the user name, then the password, each in base64,
  each the answer to a ``334`` (the user name may be the initial response). The challenges'
  words vary (``VXNlcm5hbWU6`` "Username:", aiosmtpd's "User Name\\0"), so the answers are
  taken by their order, not by the challenge.
* ``CRAM-MD5`` (RFC 2195): one answer, ``user SP hex-digest`` in base64. The digest is an HMAC
  of the server's challenge keyed by the password: the password is not in the transcript, and
  must come from the environment.

swaks' ``--auth-hide-password`` sends the real password but prints ``PROVIDED_BUT_REMOVED``
(its default replacement) in its place: that password is not in the transcript either. A
replacement string of the user's own choosing cannot be told from a password.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from smtpload.errors import counted

__all__ = [
    "IMPORTED_MECHANISMS",
    "SWAKS_HIDDEN_PASSWORD",
    "CredentialProblem",
    "Credentials",
    "decode_credentials",
    "password_variable",
]

IMPORTED_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")
#: What swaks --auth-hide-password prints instead of the password (swaks 20201014.0).
SWAKS_HIDDEN_PASSWORD = "PROVIDED_BUT_REMOVED"
_PASSWORD_VARIABLE = "SMTPLOAD_PASSWORD"
# RFC 2195 §2: the response is the user name, a space, and the digest as 32 lowercase hex digits.
_CRAM_RESPONSE = re.compile(r"(?P<user>.+) (?P<digest>[0-9a-f]{32})", re.DOTALL)
# C0 controls and DEL: a user name with one cannot be written in the scenario as it was sent.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Credentials:
    """What an AUTH exchange of a transcript authenticated with.

    Attributes:
        mechanism: one of ``IMPORTED_MECHANISMS``.
        username: the authentication identity, decoded.
        password: the password, decoded; None when the transcript does not hold it. Never in
            a repr.
        missing_why: why the transcript does not hold the password (None when it does).
    """

    mechanism: str
    username: str
    password: str | None = field(repr=False)
    missing_why: str | None = None


class CredentialProblem(Exception):
    """An AUTH exchange's credentials cannot be read, at ``line``. The message never holds the
    credentials or the blob."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def password_variable(username: str) -> str:
    """The environment variable an imported scenario reads ``username``'s password from.

    ``SMTPLOAD_PASSWORD_`` and the user name in upper case, each run of characters other than
    ASCII letters and digits made one ``_`` (POSIX names: letters, digits, underscore):
    ``alice@example.test`` reads ``SMTPLOAD_PASSWORD_ALICE_EXAMPLE_TEST``. A name with no
    letter or digit gives ``SMTPLOAD_PASSWORD``.

    >>> password_variable("alice@example.test")
    'SMTPLOAD_PASSWORD_ALICE_EXAMPLE_TEST'
    """
    tail = re.sub("[^A-Z0-9]+", "_", username.upper()).strip("_")
    return f"{_PASSWORD_VARIABLE}_{tail}" if tail else _PASSWORD_VARIABLE


def decode_credentials(
    mechanism: str, auth_line: int, initial: str | None, answers: list[tuple[int, str]]
) -> Credentials:
    """Read the credentials of one exchange.

    Args:
        mechanism: one of ``IMPORTED_MECHANISMS``, in upper case.
        auth_line: where the AUTH command stands.
        initial: the AUTH line's initial response (``=`` is an empty one, RFC 4954 §4), or None.
        answers: the client's answers to the ``334`` challenges, as (line, text).

    Raises:
        CredentialProblem: a blob that is not base64 or not what the mechanism sends, an
            exchange cancelled or cut short, or answers the mechanism does not have.
    """
    for line, text in answers:
        if text == "*":
            # RFC 4954 §4: "*" cancels the exchange; nothing was authenticated.
            raise CredentialProblem(
                line,
                f"the client cancels the AUTH {mechanism} exchange here ('*'): import needs a"
                " whole exchange; remove it from the transcript",
            )
    messages = ([(auth_line, initial)] if initial is not None else []) + answers
    if mechanism == "PLAIN":
        return _plain(auth_line, messages)
    if mechanism == "LOGIN":
        return _login(auth_line, messages)
    return _cram_md5(auth_line, initial, answers)


def _plain(auth_line: int, messages: list[tuple[int, str]]) -> Credentials:
    _check_count("PLAIN", auth_line, messages, 1, "its one message (NUL user NUL password)")
    line, blob = messages[0]
    parts = _decoded(line, blob, "PLAIN").split("\0")
    if len(parts) != 3:
        raise CredentialProblem(
            line,
            "the AUTH PLAIN message is not [authzid] NUL user NUL password (RFC 4616 §2): it"
            f" holds {counted(len(parts) - 1, 'NUL')}, not 2",
        )
    authzid, username, password = parts
    if authzid and authzid != username:
        raise CredentialProblem(
            line,
            "the AUTH PLAIN message asks to act as another user (an authorization identity,"
            " RFC 4616 §2): the auth step sends none, so import cannot keep it",
        )
    return _credentials("PLAIN", line, username, password)


def _login(auth_line: int, messages: list[tuple[int, str]]) -> Credentials:
    _check_count("LOGIN", auth_line, messages, 2, "the user name and the password")
    (user_line, user_blob), (password_line, password_blob) = messages
    username = _decoded(user_line, user_blob, "LOGIN")
    password = _decoded(password_line, password_blob, "LOGIN")
    return _credentials("LOGIN", user_line, username, password)


def _cram_md5(auth_line: int, initial: str | None, answers: list[tuple[int, str]]) -> Credentials:
    if initial is not None:
        raise CredentialProblem(
            auth_line,
            "AUTH CRAM-MD5 has no initial response (RFC 2195: the server speaks first)",
        )
    _check_count("CRAM-MD5", auth_line, answers, 1, "its one answer (user and digest)")
    line, blob = answers[0]
    match = _CRAM_RESPONSE.fullmatch(_decoded(line, blob, "CRAM-MD5"))
    if match is None:
        raise CredentialProblem(
            line,
            "the AUTH CRAM-MD5 answer is not the user name, a space and 32 hex digits"
            " (RFC 2195 §2)",
        )
    username = _checked_username(line, match.group("user"), "CRAM-MD5")
    why = (
        "CRAM-MD5 sends an HMAC of the server's challenge keyed by the password, not the"
        " password (RFC 2195)"
    )
    return Credentials("CRAM-MD5", username, None, why)


def _check_count(
    mechanism: str, auth_line: int, messages: list[tuple[int, str]], wanted: int, what: str
) -> None:
    if len(messages) < wanted:
        raise CredentialProblem(
            auth_line,
            f"the AUTH {mechanism} exchange ends before the client sent {what}: import needs a"
            " whole exchange",
        )
    if len(messages) > wanted:
        raise CredentialProblem(
            messages[wanted][0],
            f"AUTH {mechanism} sends {counted(wanted, 'message')} ({what}); this answer is one"
            " more, which import cannot read",
        )


def _decoded(line: int, blob: str, mechanism: str) -> str:
    try:
        # RFC 4954 §4: the responses are base64 (RFC 4648 §4), strictly: no other characters.
        data = base64.b64decode(blob, validate=True)
    except binascii.Error:
        raise CredentialProblem(
            line,
            f"the AUTH {mechanism} response here is not base64 (RFC 4954 §4), so import cannot"
            " read the credentials in it; copy the line exactly as it was sent",
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialProblem(
            line,
            f"the AUTH {mechanism} response here decodes to bytes that are not UTF-8"
            " (RFC 4616 §2 and RFC 4954 use UTF-8); import cannot write them in a scenario",
        ) from None


def _checked_username(line: int, username: str, mechanism: str) -> str:
    if not username or _CONTROL.search(username):
        raise CredentialProblem(
            line,
            f"the AUTH {mechanism} user name here is empty or holds a control character;"
            " import cannot write it in a scenario",
        )
    return username


def _credentials(mechanism: str, line: int, username: str, password: str) -> Credentials:
    username = _checked_username(line, username, mechanism)
    if password == SWAKS_HIDDEN_PASSWORD:
        why = f"swaks --auth-hide-password printed {SWAKS_HIDDEN_PASSWORD} in its place"
        return Credentials(mechanism, username, None, why)
    if not password:
        raise CredentialProblem(line, f"the AUTH {mechanism} password here is empty")
    return Credentials(mechanism, username, password)
