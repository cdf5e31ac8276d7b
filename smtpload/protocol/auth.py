"""SMTP AUTH (RFC 4954), the client side, with no I/O: challenges in, response lines out.

An ``AuthExchange`` runs one AUTH command: ``command()`` is the ``AUTH MECH [initial-response]``
line, ``respond(text)`` turns each ``334`` challenge's text into the next line to send, and
``finish(code)`` checks the final reply's code against what the mechanism needs (SCRAM's server
must have proved itself before a 2xx). A server that breaks the exchange raises ``AuthError``
(a ``RemoteProtocolError``, as the reply parser's): a challenge that is not base64 (RFC 4954
§4), one that the mechanism cannot read, more than ``MAX_AUTH_ROUNDS`` challenges, a wrong
SCRAM server signature.

Mechanisms:

* PLAIN (RFC 4616): ``authzid NUL authcid NUL passwd`` with the authzid empty, as the initial
  response.
* LOGIN (draft-murchison-sasl-login): no initial response; the first challenge (``Username:``)
  gets the user name, the second (``Password:``) the password. The prompts are not compared:
  servers word them differently (aiosmtpd says ``User Name``), so they are answered in order.
* CRAM-MD5 (RFC 2195): ``user SP hex(HMAC-MD5(password, challenge))``.
* XOAUTH2 (Google's and Microsoft's format): ``user=U ^A auth=Bearer T ^A ^A`` as the initial
  response; a failure comes as a ``334`` with base64 JSON, answered by an empty line, then 535.
* SCRAM-SHA-256 (RFC 5802, RFC 7677): client-first as the initial response, client-final with
  the proof, and the server-final's signature VERIFIED (a wrong one is an ``AuthError``); the
  empty line after it lets the server send its final 235. Channel binding is not used (gs2
  header ``n,,``). The salted password is cached per (password, salt, iterations), so a load
  run against one server derives it once, not once a session.

SASLprep (RFC 4013, replaced by RFC 7613's OpaqueString for passwords) is approximated for
SCRAM as scenario/saslprep.py says (that module is shared with the scenario's reader, which
refuses a literal password SASLprep would refuse at its position in the file).

The initial response goes on the AUTH line only when that line fits in 512 octets (RFC 4954
§4, RFC 5321 §4.5.3.1.4); otherwise AUTH is sent alone and the response follows the server's
empty ``334`` challenge (RFC 4954 §4, as SASL §5.1 says). An empty initial response is ``=``.

Secrets: every line this module builds except the bare ``AUTH MECH`` holds credentials, or
something from which they can be guessed offline, so ``shown(line)`` gives the form the
transcripts show: ``AUTH PLAIN <redacted 44 bytes>``. A client cancels with ``*``
(RFC 4954 §4): ``CANCEL``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable

from smtpload.errors import RemoteProtocolError
from smtpload.scenario.model import AUTH_MECHANISMS
from smtpload.scenario.saslprep import saslprep

__all__ = [
    "CANCEL",
    "MAX_AUTH_ROUNDS",
    "MAX_SCRAM_ITERATIONS",
    "MECHANISMS",
    "AuthError",
    "AuthExchange",
    "redacted",
    "saslprep",
]

#: Mechanisms smtpload speaks, by their IANA names (the scenario's list, so they agree).
MECHANISMS = AUTH_MECHANISMS

#: The most ``334`` challenges one AUTH exchange may have: the longest honest one (SCRAM, or
#: a long initial response sent after an empty challenge) has 3; a server that keeps
#: challenging would otherwise hold the session until its timeout.
MAX_AUTH_ROUNDS = 10

#: The most PBKDF2 iterations a SCRAM server may ask for. RFC 7677 §4 asks for at least 4096,
#: and real servers use about that (Dovecot: 4096). The derivation runs on the event loop's
#: thread, where no step timeout can interrupt it, and a server can defeat the cache with a
#: fresh salt per session: measured here (2 loaded cores), 4096 take 2-7 ms, 100,000 40-80 ms,
#: 1,000,000 0.4-0.75 s. 100,000 is 24 times the recommendation and bounds what one session can
#: take from all the others to a tenth of a second (a thread would free the loop but not the
#: CPU: the work of an abandoned derivation goes on).
MAX_SCRAM_ITERATIONS = 100_000

#: RFC 4954 §4: the client cancels the exchange with a line holding a single ``*``.
CANCEL = b"*\r\n"

# RFC 5321 §4.5.3.1.4: a command line is at most 512 octets, CRLF included.
_MAX_COMMAND_LINE_BYTES = 512


class AuthError(RemoteProtocolError):
    """The server broke the AUTH exchange (the message names how)."""


def redacted(line: bytes) -> str:
    """How a transcript shows a line sent in an AUTH exchange: its secrets replaced by their
    length. ``AUTH PLAIN <redacted 44 bytes>``; an empty line and ``*`` hold no secret."""
    text = line.removesuffix(b"\r\n")
    if text in (b"", b"*"):
        return text.decode("ascii")
    if text.upper().startswith(b"AUTH "):
        parts = text.split(b" ", 2)
        if len(parts) == 2:
            return text.decode("ascii", "replace")
        return f"{parts[0].decode('ascii', 'replace')} {parts[1].decode('ascii', 'replace')}" + (
            f" <redacted {len(parts[2])} bytes>"
        )
    return f"<redacted {len(text)} bytes>"


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _decode_challenge(text: str) -> bytes:
    # RFC 4954 §4: the challenge is base64 (RFC 4648 §4), possibly empty.
    stripped = text.strip()
    try:
        if len(stripped) % 4:  # b64decode takes surplus padding ("YWJj="); RFC 4648 §4 does not
            raise binascii.Error
        return base64.b64decode(stripped.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        shown = stripped if len(stripped) <= 60 else stripped[:60] + "..."
        raise AuthError(f"AUTH challenge {shown!r} is not base64 (RFC 4954 §4)") from None


class AuthExchange:
    """One AUTH command's exchange with the server.

    Args:
        mechanism: one of ``MECHANISMS`` (any case).
        username: the user name (authentication identity).
        secret: the password; for XOAUTH2, the OAuth 2.0 access token.
        nonce: SCRAM's client nonce (printable ASCII, no comma); random when None. Tests pass
            the RFC's own to reproduce its vectors.

    Raises:
        ValueError: an unknown mechanism, or SCRAM credentials SASLprep refuses.
    """

    __slots__ = ("_answer", "_initial", "_rounds", "mechanism", "sent")

    def __init__(
        self, mechanism: str, username: str, secret: str, *, nonce: str | None = None
    ) -> None:
        self.mechanism = mechanism.upper()
        build = _MECHANISMS.get(self.mechanism)
        if build is None:
            raise ValueError(f"unknown AUTH mechanism {mechanism!r}")
        initial, answer = build(username, secret, nonce)
        self._initial = initial
        self._answer = answer
        self._rounds = 0
        #: Every line sent so far (CRLF included), for whoever must keep them out of reports.
        self.sent: list[bytes] = []

    def command(self) -> bytes:
        """The ``AUTH`` line, with the initial response when the mechanism has one and it fits."""
        line = b"AUTH " + self.mechanism.encode("ascii")
        if self._initial is not None:
            response = _b64(self._initial) or b"="  # RFC 4954 §4: "=" is an empty response
            with_response = line + b" " + response + b"\r\n"
            if len(with_response) <= _MAX_COMMAND_LINE_BYTES:
                self._initial = None
                return self._sent(with_response)
        return self._sent(line + b"\r\n")

    def respond(self, text: str) -> bytes:
        """The line answering a ``334`` whose text (after the code and space) is ``text``.

        Raises:
            AuthError: the challenge is not base64, the mechanism cannot read it, or is one
                too many.
        """
        self._rounds += 1
        if self._rounds > MAX_AUTH_ROUNDS:
            raise AuthError(
                f"the server sent more than {MAX_AUTH_ROUNDS} AUTH challenges; smtpload stops"
                " the exchange there"
            )
        challenge = _decode_challenge(text)
        if self._initial is not None:
            # The initial response did not fit on the AUTH line: it answers this first,
            # empty challenge (RFC 4954 §4).
            if challenge:
                raise AuthError(
                    f"{self.mechanism}: the first challenge after AUTH must be empty, since the"
                    " client speaks first"
                )
            initial, self._initial = self._initial, None
            return self._sent(_b64(initial) + b"\r\n")
        return self._sent(_b64(self._answer(challenge)) + b"\r\n")

    def finish(self, code: int) -> None:
        """The final reply's code arrived. Raises AuthError for a success the mechanism cannot
        accept (a SCRAM server that never proved it knows the password)."""
        if 200 <= code < 300:
            self._answer(None)

    def _sent(self, line: bytes) -> bytes:
        self.sent.append(line)
        return line


# A mechanism: (username, secret, nonce) -> (initial response or None, answer). ``answer`` gets
# each decoded challenge and returns the response (unencoded); at a 2xx it gets None and
# raises AuthError when the exchange is not complete.
_Answer = Callable[[bytes | None], bytes]
_Mechanism = Callable[[str, str, str | None], tuple[bytes | None, _Answer]]


def _plain(username: str, secret: str, _nonce: str | None) -> tuple[bytes | None, _Answer]:
    # RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd; the authzid is empty
    # (act as the user who authenticates).
    message = b"\0" + username.encode("utf-8") + b"\0" + secret.encode("utf-8")
    return message, _no_more("PLAIN")


def _login(username: str, secret: str, _nonce: str | None) -> tuple[bytes | None, _Answer]:
    answers = [username.encode("utf-8"), secret.encode("utf-8")]

    def answer(challenge: bytes | None) -> bytes:
        if challenge is None:
            return b""
        if not answers:
            raise AuthError("LOGIN: a third challenge after the user name and password")
        return answers.pop(0)

    return None, answer


def _cram_md5(username: str, secret: str, _nonce: str | None) -> tuple[bytes | None, _Answer]:
    answered = False

    def answer(challenge: bytes | None) -> bytes:
        nonlocal answered
        if challenge is None:
            return b""
        if answered:
            raise AuthError("CRAM-MD5: a second challenge after the digest (RFC 2195 §2)")
        answered = True
        # RFC 2195 §2: the user name, a space, and the keyed MD5 digest (RFC 2104) in hex.
        digest = hmac.new(secret.encode("utf-8"), challenge, hashlib.md5).hexdigest()
        return username.encode("utf-8") + b" " + digest.encode("ascii")

    return None, answer


def _xoauth2(username: str, secret: str, _nonce: str | None) -> tuple[bytes | None, _Answer]:
    message = f"user={username}\x01auth=Bearer {secret}\x01\x01".encode()
    failed = False

    def answer(challenge: bytes | None) -> bytes:
        nonlocal failed
        if challenge is None:
            return b""
        if failed:
            raise AuthError("XOAUTH2: a second challenge after the error report")
        # The error report (base64 JSON): the client sends an empty line, the server a 535.
        failed = True
        return b""

    return message, answer


def _no_more(mechanism: str) -> _Answer:
    def answer(challenge: bytes | None) -> bytes:
        if challenge is None:
            return b""
        raise AuthError(f"{mechanism}: a challenge after the initial response")

    return answer


# -- SCRAM-SHA-256 (RFC 5802, RFC 7677) -------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _salted_password(password: bytes, salt: bytes, iterations: int) -> bytes:
    # RFC 5802 §3: SaltedPassword := Hi(Normalize(password), salt, i), Hi being PBKDF2 with
    # HMAC as the PRF. Cached: every session of a run against one server has the same salt.
    return hashlib.pbkdf2_hmac("sha256", password, salt, iterations)


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _scram_name(name: str) -> str:
    # RFC 5802 §5.1: "=" and "," in a saslname are written =3D and =2C.
    return name.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: bytes, what: str) -> dict[str, str]:
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthError(f"SCRAM-SHA-256: the {what} is not UTF-8") from None
    found: dict[str, str] = {}
    for part in text.split(","):
        key, equals, value = part.partition("=")
        if len(key) != 1 or not equals:
            raise AuthError(f"SCRAM-SHA-256: the {what} {text[:80]!r} is not a SCRAM message")
        found.setdefault(key, value)
    return found


def _scram_sha_256(username: str, secret: str, nonce: str | None) -> tuple[bytes | None, _Answer]:
    try:
        user = saslprep(username)
    except ValueError as error:
        raise ValueError(f"SCRAM-SHA-256 user name refused by SASLprep: {error}") from None
    try:
        password = saslprep(secret).encode("utf-8")
    except ValueError as error:
        raise ValueError(f"SCRAM-SHA-256 password refused by SASLprep: {error}") from None
    client_nonce = nonce if nonce is not None else secrets.token_urlsafe(18)
    gs2_header = b"n,,"  # no channel binding, no authzid (RFC 5802 §7)
    client_first_bare = f"n={_scram_name(user)},r={client_nonce}".encode()
    state: dict[str, bytes] = {}

    def answer(challenge: bytes | None) -> bytes:
        if challenge is None:
            if "verified" not in state:
                raise AuthError(
                    "SCRAM-SHA-256: the server accepted without sending its server signature,"
                    " so it never proved it knows the password (RFC 5802 §5)"
                )
            return b""
        if "expected_signature" not in state:
            return client_final(challenge)
        if "verified" in state or "error" in state:
            raise AuthError("SCRAM-SHA-256: a challenge after the server-final message")
        return server_final(challenge)

    def client_final(server_first: bytes) -> bytes:
        found = _attributes(server_first, "server-first message")
        if "m" in found:
            raise AuthError("SCRAM-SHA-256: the server asks for an extension (m=) we lack")
        combined, salt_text, count_text = found.get("r"), found.get("s"), found.get("i")
        if combined is None or salt_text is None or count_text is None:
            raise AuthError("SCRAM-SHA-256: the server-first message lacks r=, s= or i=")
        if not combined.startswith(client_nonce) or combined == client_nonce:
            raise AuthError("SCRAM-SHA-256: the server's nonce does not extend ours")
        try:
            salt = base64.b64decode(salt_text, validate=True)
        except binascii.Error:
            raise AuthError("SCRAM-SHA-256: the salt (s=) is not base64") from None
        if not (count_text.isascii() and count_text.isdigit()):
            raise AuthError(f"SCRAM-SHA-256: the iteration count {count_text[:20]!r} is no number")
        iterations = int(count_text)
        if not 1 <= iterations <= MAX_SCRAM_ITERATIONS:
            raise AuthError(
                f"SCRAM-SHA-256: the iteration count {iterations} is not from 1 to"
                f" {MAX_SCRAM_ITERATIONS}"
            )
        salted = _salted_password(password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = b"c=" + _b64(gs2_header) + b",r=" + combined.encode()
        auth_message = client_first_bare + b"," + server_first + b"," + without_proof
        signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = _hmac(salted, b"Server Key")
        state["expected_signature"] = _hmac(server_key, auth_message)
        return without_proof + b",p=" + _b64(proof)

    def server_final(message: bytes) -> bytes:
        found = _attributes(message, "server-final message")
        if "e" in found:
            # The server reports a failure (RFC 5802 §7 server-error); its 535 follows.
            state["error"] = found["e"].encode()
            return b""
        signature_text = found.get("v")
        if signature_text is None:
            raise AuthError("SCRAM-SHA-256: the server-final message has no signature (v=)")
        try:
            signature = base64.b64decode(signature_text, validate=True)
        except binascii.Error:
            raise AuthError("SCRAM-SHA-256: the server signature (v=) is not base64") from None
        if not hmac.compare_digest(signature, state["expected_signature"]):
            raise AuthError(
                "SCRAM-SHA-256: wrong server signature: the server does not know the password"
                " (RFC 5802 §5)"
            )
        state["verified"] = b"yes"
        return b""

    return gs2_header + client_first_bare, answer


_MECHANISMS: dict[str, _Mechanism] = {
    "PLAIN": _plain,
    "LOGIN": _login,
    "CRAM-MD5": _cram_md5,
    "XOAUTH2": _xoauth2,
    "SCRAM-SHA-256": _scram_sha_256,
}
