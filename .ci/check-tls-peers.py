"""End-to-end check of the TLS and SASL test servers that .ci/postfix-setup configures.

Run by .ci/postfix-setup after Postfix and Dovecot are up; not part of smtpload (it uses the
standard library's smtplib, which smtpload does not). Each check opens a fresh connection, so a
failure names the one service and step that is wrong. Exit status 0 when every check passed,
1 (with one line per failed check on stderr) otherwise.

Usage: python3 .ci/check-tls-peers.py HOST STARTTLS_PORT SUBMISSION_PORT SUBMISSIONS_PORT
           TLS_DIR USER PASSWORD
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import smtplib
import ssl
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

TIMEOUT_S = 10.0
#: What the submission services must offer after TLS (Dovecot's auth_mechanisms).
MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256")


class CheckFailed(Exception):
    pass


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


def context(ca_file: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    # What Python 3.13 sets by default: a certificate that passes here passes there.
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    return ctx


def auth_words(client: smtplib.SMTP) -> set[str]:
    return set(client.esmtp_features.get("auth", "").upper().split())


def send_one(client: smtplib.SMTP) -> None:
    refused = client.sendmail(
        "smtpload@example.test", ["someone@example.test"], b"Subject: check\r\n\r\nbody\r\n"
    )
    expect(not refused, f"recipient refused: {refused}")


def scram_sha_256(client: smtplib.SMTP, user: str, password: str) -> None:
    """RFC 5802 / RFC 7677 SCRAM-SHA-256 without channel binding ("n,,"), by hand: smtplib
    has no SCRAM. Checks the server's signature too, so a server that only pretends fails."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    nonce = b64(secrets.token_bytes(18))
    first_bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={nonce}"
    code, reply = client.docmd("AUTH", f"SCRAM-SHA-256 {b64(('n,,' + first_bare).encode())}")
    expect(code == 334, f"SCRAM-SHA-256 first message: {code} {reply!r}")
    server_first = base64.b64decode(reply).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    expect(fields["r"].startswith(nonce), f"SCRAM-SHA-256 nonce not extended: {server_first}")
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c={b64(b'n,,')},r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    code, reply = client.docmd(b64(f"{without_proof},p={b64(proof)}".encode()))
    expect(code == 334, f"SCRAM-SHA-256 final message: {code} {reply!r}")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    verifier = b64(hmac.digest(server_key, auth_message, "sha256"))
    expect(
        base64.b64decode(reply).decode() == f"v={verifier}",
        "SCRAM-SHA-256 server signature is wrong",
    )
    code, reply = client.docmd("")
    expect(code == 235, f"SCRAM-SHA-256 not accepted: {code} {reply!r}")


def main(argv: list[str]) -> int:
    host, starttls_port, submission_port, submissions_port, tls_dir, user, password = argv
    ca = context(Path(tls_dir) / "ca.pem")
    unknown_ca = context(Path(tls_dir) / "unknown-ca.pem")

    def plain_connection(port: str) -> smtplib.SMTP:
        client = smtplib.SMTP(host, int(port), timeout=TIMEOUT_S)
        client.ehlo("check.test")
        return client

    def after_starttls(port: str) -> smtplib.SMTP:
        client = plain_connection(port)
        client.starttls(context=ca)  # verifies the chain and the name "localhost"
        client.ehlo("check.test")
        return client

    def implicit_tls(port: str) -> smtplib.SMTP:
        client = smtplib.SMTP_SSL(host, int(port), timeout=TIMEOUT_S, context=ca)
        client.ehlo("check.test")
        return client

    def starttls_service() -> None:
        with plain_connection(starttls_port) as client:
            expect(client.has_extn("starttls"), "EHLO does not offer STARTTLS")
            expect(not client.has_extn("auth"), "EHLO offers AUTH")
            send_one(client)  # STARTTLS is offered, not required
        with after_starttls(starttls_port) as client:
            expect(not client.has_extn("auth"), "EHLO after TLS offers AUTH")
            send_one(client)

    def submission_before_tls() -> None:
        with plain_connection(submission_port) as client:
            expect(client.has_extn("starttls"), "EHLO does not offer STARTTLS")
            expect(not client.has_extn("auth"), "EHLO offers AUTH before TLS")
            code, reply = client.mail("smtpload@example.test")
            expect(code == 530, f"MAIL before STARTTLS got {code} {reply!r}, not 530")

    def unknown_ca_refused() -> None:
        client = plain_connection(submission_port)
        try:
            client.starttls(context=unknown_ca)
        except ssl.SSLCertVerificationError:
            return
        finally:
            client.close()
        raise CheckFailed("the server certificate verified against the unknown CA")

    def unauthenticated_refused(connect: Callable[[str], smtplib.SMTP], port: str) -> None:
        with connect(port) as client:
            expect(auth_words(client) >= set(MECHANISMS), f"AUTH offers {auth_words(client)}")
            client.mail("smtpload@example.test")
            code, reply = client.rcpt("someone@example.test")
            expect(500 <= code < 600, f"RCPT without AUTH got {code} {reply!r}")

    def wrong_password_refused() -> None:
        # AUTH PLAIN alone: login() would try three mechanisms, 0.5 s for each failure.
        with after_starttls(submission_port) as client:
            client.user, client.password = user, password + "-wrong"
            try:
                client.auth("PLAIN", client.auth_plain)
            except smtplib.SMTPAuthenticationError as exc:
                expect(exc.smtp_code == 535, f"wrong password got {exc.smtp_code}")
                return
        raise CheckFailed("a wrong password was accepted")

    def authenticated(connect: Callable[[str], smtplib.SMTP], port: str, mechanism: str) -> None:
        with connect(port) as client:
            client.user, client.password = user, password
            if mechanism == "SCRAM-SHA-256":
                scram_sha_256(client, user, password)
            else:
                # Named one by one for the type checker; initial_response_ok=False: LOGIN and
                # CRAM-MD5 have no initial response.
                if mechanism == "PLAIN":
                    code, reply = client.auth("PLAIN", client.auth_plain)
                elif mechanism == "LOGIN":
                    code, reply = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
                else:
                    code, reply = client.auth(
                        "CRAM-MD5", client.auth_cram_md5, initial_response_ok=False
                    )
                expect(code == 235, f"AUTH {mechanism}: {code} {reply!r}")
            send_one(client)

    checks: list[tuple[str, Callable[[], None]]] = [
        (f"{starttls_port} STARTTLS offered, no AUTH", starttls_service),
        (f"{submission_port} before STARTTLS", submission_before_tls),
        (f"{submission_port} unknown CA refused", unknown_ca_refused),
        (
            f"{submission_port} no AUTH, RCPT refused",
            partial(unauthenticated_refused, after_starttls, submission_port),
        ),
        (f"{submission_port} wrong password", wrong_password_refused),
        (
            f"{submissions_port} no AUTH, RCPT refused",
            partial(unauthenticated_refused, implicit_tls, submissions_port),
        ),
    ]
    checks.extend(
        (
            f"{submission_port} AUTH {mechanism}",
            partial(authenticated, after_starttls, submission_port, mechanism),
        )
        for mechanism in MECHANISMS
    )
    checks.append(
        (
            f"{submissions_port} AUTH PLAIN",
            partial(authenticated, implicit_tls, submissions_port, "PLAIN"),
        )
    )

    failed = 0
    for name, check in checks:
        try:
            check()
        except (CheckFailed, OSError, smtplib.SMTPException, KeyError, ValueError) as exc:
            failed += 1
            print(f"check-tls-peers: FAILED {host}:{name}: {exc!r}", file=sys.stderr)
        else:
            print(f"check-tls-peers: ok {host}:{name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
