"""Issue 11, item 3: transcripts with STARTTLS and AUTH import and replay, and no secret leaks.

Pure tests first (reading and importing text), then the command line against aiosmtpd with
STARTTLS required and AUTH inside it, over real loopback sockets, with the real swaks
transcripts of tests/data/transcripts/auth/ (their README says how they were made).
"""

from __future__ import annotations

import base64
import functools
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trustme

from smtpload.scenario.loader import parse_scenario
from smtpload.scenario.model import Scenario, StepKind
from smtpload.transcripts.credentials import password_variable
from smtpload.transcripts.importer import import_transcript
from smtpload.transcripts.reader import ExchangeKind, TranscriptError, parse_transcript
from tests.cli import smtpload
from tests.peers import AUTH_PASSWORD, AUTH_USER, AuthHandler, TlsPostfixPeers
from tests.test_auth_secrets import aligned_base64
from tests.test_tls import _controller, server_context

DATA = Path(__file__).parent / "data" / "transcripts" / "auth"
VARIABLE = "SMTPLOAD_PASSWORD_ALICE_EXAMPLE_TEST"


def lines(*texts: str) -> str:
    return "".join(f"{text}\n" for text in texts)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def plain(authzid: str, user: str, password: str) -> str:
    """An AUTH PLAIN message (RFC 4616), in base64."""
    return b64("\0".join((authzid, user, password)))


def imported(text: str, **options: object) -> tuple[Scenario, list[str], dict[str, str]]:
    result = import_transcript(text, "t.txt", **options)  # type: ignore[arg-type]
    (session,) = result.sessions
    scenario = parse_scenario(session.yaml_text, "t.yaml", environ=dict(session.secrets))
    return scenario, list(result.notes), dict(session.secrets)


def problems_of(text: str, **options: object) -> list[str]:
    with pytest.raises(TranscriptError) as caught:
        import_transcript(text, "t.txt", **options)  # type: ignore[arg-type]
    return caught.value.problems


def kinds(scenario: Scenario) -> list[str]:
    return [step.kind.value for step in scenario.steps]


# -- STARTTLS ------------------------------------------------------------------------------------

SWAKS_HEAD = ["<-  220 mx", " -> EHLO c", "<-  250-mx", "<-  250 STARTTLS", " -> STARTTLS"]


def test_swaks_starttls_becomes_a_starttls_step_and_the_tls_lines_follow_it() -> None:
    text = lines(
        *SWAKS_HEAD,
        "<-  220 2.0.0 Ready to start TLS",
        "=== TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256",
        " ~> EHLO c",
        "<~  250 mx",
        " ~> QUIT",
        "<~  221 bye",
    )
    scenario, notes, _ = imported(text)
    assert kinds(scenario) == ["greeting", "send", "starttls", "send", "send"]
    assert any("TLS started with cipher" in note for note in notes)


def test_a_refused_starttls_stays_a_command_with_its_reply() -> None:
    text = lines(*SWAKS_HEAD, "<** 454 4.7.0 TLS not available", " -> QUIT", "<-  221 bye")
    scenario, _, _ = imported(text)
    refused = scenario.steps[2]
    assert (refused.kind, refused.text) == (StepKind.SEND, "STARTTLS")
    assert refused.expect is not None
    assert refused.expect.codes == frozenset({454})


def test_a_telnet_session_may_end_at_the_220_to_starttls() -> None:
    text = lines("220 mx", "EHLO c", "250 STARTTLS", "STARTTLS", "220 go ahead")
    scenario, _, _ = imported(text)
    assert kinds(scenario) == ["greeting", "send", "starttls"]


@pytest.mark.parametrize(
    "after",
    [["EHLO c", "250 mx"], ["QUIT"], ["250 mx"], ["?%$#!@ (a handshake, typed)", "500 5.5.2 what"]],
    ids=["command-and-reply", "command", "reply", "junk"],
)
def test_a_telnet_session_cannot_go_on_in_tls(after: list[str]) -> None:
    text = lines("220 mx", "EHLO c", "250 STARTTLS", "STARTTLS", "220 go ahead", *after)
    problems = problems_of(text)
    assert problems[0].startswith("t.txt:6: the session goes on after the 220 to STARTTLS")


@pytest.mark.parametrize(
    "first",
    [[" ~> MAIL FROM:<a@c>", "<~  250 ok"], [" ~> AUTH PLAIN " + plain("", "u", "p"), "<~  235"]],
    ids=["mail", "auth"],
)
def test_the_first_command_in_tls_must_be_ehlo(first: list[str]) -> None:
    text = lines(*SWAKS_HEAD, "<-  220 go", *first)
    problems = problems_of(text)
    assert problems[0].startswith("t.txt:7: the first command in TLS must be EHLO"), problems
    assert plain("", "u", "p") not in problems[0]


def test_starttls_inside_tls_is_refused() -> None:
    text = lines(*SWAKS_HEAD, "<-  220 go", " ~> EHLO c", "<~  250 mx", " ~> STARTTLS", "<~  220")
    assert problems_of(text)[0].startswith("t.txt:9: STARTTLS inside TLS")


# -- AUTH: the forms of each mechanism ---------------------------------------------------------

HEAD = ["220 mx", "EHLO c", "250 AUTH PLAIN LOGIN CRAM-MD5"]
TAIL = ["QUIT", "221 bye"]
PLAIN_BLOB = plain("", AUTH_USER, AUTH_PASSWORD)


@pytest.mark.parametrize(
    ("exchange", "mechanism"),
    [
        ([f"AUTH PLAIN {PLAIN_BLOB}", "235 2.7.0 ok"], "PLAIN"),
        (["AUTH PLAIN", "334 ", PLAIN_BLOB, "235 2.7.0 ok"], "PLAIN"),
        (["AUTH PLAIN " + plain(AUTH_USER, AUTH_USER, AUTH_PASSWORD), "235 ok"], "PLAIN"),
        (
            [
                "AUTH LOGIN",
                "334 VXNlcm5hbWU6",
                b64(AUTH_USER),
                "334 UGFzc3dvcmQ6",
                b64(AUTH_PASSWORD),
                "235 2.7.0 ok",
            ],
            "LOGIN",
        ),
        (
            [f"AUTH LOGIN {b64(AUTH_USER)}", "334 UGFzc3dvcmQ6", b64(AUTH_PASSWORD), "235 ok"],
            "LOGIN",
        ),
        (
            [f"auth plain {PLAIN_BLOB}", "535 5.7.8 Authentication credentials invalid"],
            "PLAIN",
        ),
    ],
    ids=["plain-initial", "plain-after-334", "plain-authzid-self", "login", "login-initial", "535"],
)
def test_an_auth_exchange_becomes_an_auth_step_with_the_user_and_an_env_password(
    exchange: list[str], mechanism: str
) -> None:
    scenario, notes, secrets = imported(lines(*HEAD, *exchange, *TAIL))
    assert kinds(scenario) == ["greeting", "send", "auth", "send"]
    auth = scenario.steps[2]
    assert auth.auth is not None
    assert (auth.auth.mechanism, auth.auth.username.text) == (mechanism, AUTH_USER)
    assert auth.auth.secret.text == AUTH_PASSWORD  # read from the in-memory environment
    assert auth.expect is not None
    assert auth.expect.codes == frozenset({int(exchange[-1][:3])})
    assert secrets == {VARIABLE: AUTH_PASSWORD}
    text = import_transcript(lines(*HEAD, *exchange, *TAIL), "t.txt").sessions[0].yaml_text
    assert f'password: {{env: "{VARIABLE}"}}' in text
    assert AUTH_PASSWORD not in text
    assert not any(form.decode() in text for form in aligned_base64(AUTH_PASSWORD.encode()))
    export = [note for note in notes if f"export {VARIABLE}=..." in note]
    assert export, notes
    assert all(AUTH_PASSWORD not in note for note in notes)


def test_a_telnet_session_with_auth_login_typed_by_hand_imports() -> None:
    text = lines(
        "$ telnet mx.example.test 587",
        "Trying 192.0.2.1...",
        "Connected to mx.example.test.",
        "Escape character is '^]'.",
        *HEAD,
        "AUTH LOGIN",
        "334 VXNlcm5hbWU6",
        b64(AUTH_USER),
        "334 UGFzc3dvcmQ6",
        b64(AUTH_PASSWORD),
        "235 2.7.0 Authentication successful",
        *TAIL,
        "Connection closed by foreign host.",
    )
    scenario, _, _ = imported(text)
    assert kinds(scenario) == ["greeting", "send", "auth", "send", "close"]


@pytest.mark.parametrize(
    ("user", "variable"),
    [
        ("alice@example.test", "SMTPLOAD_PASSWORD_ALICE_EXAMPLE_TEST"),
        ("Bob", "SMTPLOAD_PASSWORD_BOB"),
        ("a..b--c", "SMTPLOAD_PASSWORD_A_B_C"),
        ("-x-", "SMTPLOAD_PASSWORD_X"),
        ("müller", "SMTPLOAD_PASSWORD_M_LLER"),
        ("@@@", "SMTPLOAD_PASSWORD"),
    ],
)
def test_password_variable_names(user: str, variable: str) -> None:
    assert password_variable(user) == variable
    assert re.fullmatch("[A-Z0-9_]+", variable)


def test_one_user_with_two_passwords_gets_two_variables() -> None:
    wrong = plain("", AUTH_USER, "wrong")
    text = lines(*HEAD, f"AUTH PLAIN {wrong}", "535 no", f"AUTH PLAIN {PLAIN_BLOB}", "235 ok")
    scenario, _, secrets = imported(text + lines(*TAIL))
    assert secrets == {VARIABLE: "wrong", f"{VARIABLE}_2": AUTH_PASSWORD}
    steps = [s for s in scenario.steps if s.auth is not None]
    assert [s.auth.secret.text for s in steps if s.auth] == ["wrong", AUTH_PASSWORD]


def test_keep_secrets_writes_the_password_literally_and_warns() -> None:
    odd = 'p{a}ss "w\\ord'  # braces (template), quotes and a backslash (YAML)
    text = lines(*HEAD, "AUTH PLAIN " + plain("", AUTH_USER, odd), "235 ok", *TAIL)
    result = import_transcript(text, "t.txt", keep_secrets=True)
    yaml_text = result.sessions[0].yaml_text
    assert "{env:" not in yaml_text
    scenario = parse_scenario(yaml_text, "t.yaml", environ={})
    auth = scenario.steps[2].auth
    assert auth is not None
    assert auth.secret.text == odd.replace("{", "{{").replace("}", "}}")  # a template
    assert any("warning" in note and "--keep-secrets" in note for note in result.notes)
    assert all(odd not in note for note in result.notes)


# -- AUTH: passwords the transcript does not hold -----------------------------------------------


@pytest.mark.parametrize("name", ["swaks-plain-hidden.txt", "swaks-cram-md5.txt"])
def test_a_hidden_password_requires_the_variable_and_says_so(name: str) -> None:
    text = (DATA / name).read_text()
    problems = problems_of(text, environ={})
    assert len(problems) == 1
    assert re.match(r"t\.txt:23: AUTH (PLAIN|CRAM-MD5) as 'alice@example.test'", problems[0])
    assert f"set it in the environment variable {VARIABLE}" in problems[0]
    result = import_transcript(text, "t.txt", environ={VARIABLE: AUTH_PASSWORD})
    assert f'password: {{env: "{VARIABLE}"}}' in result.sessions[0].yaml_text
    assert any(f"reads it from {VARIABLE}, which is set" in note for note in result.notes)


# -- AUTH: exchanges import cannot read, each at its line, none quoting a blob -----------------

NOT_B64 = "bm90*YmFzZTY0"
REFUSED_AUTH = [
    ([f"AUTH PLAIN {NOT_B64}", "235 ok"], 4, "the AUTH PLAIN response here is not base64"),
    (["AUTH PLAIN", "334 ", NOT_B64, "235 ok"], 6, "the AUTH PLAIN response here is not base64"),
    (["AUTH LOGIN", "334 x", NOT_B64, "334 y", b64("p"), "235"], 6, "the AUTH LOGIN response"),
    (["AUTH LOGIN", "334 x", b64("u"), "334 y", NOT_B64, "235"], 8, "the AUTH LOGIN response"),
    (["AUTH CRAM-MD5", "334 PDE+", NOT_B64, "235 ok"], 6, "the AUTH CRAM-MD5 response"),
    (["AUTH PLAIN " + b64("u\0p"), "235"], 4, "the AUTH PLAIN message is not"),
    (["AUTH PLAIN " + b64("\0\0\0p"), "235"], 4, "the AUTH PLAIN message is not"),
    (["AUTH PLAIN " + plain("boss", "u", "p"), "235"], 4, "the AUTH PLAIN message asks to act"),
    (["AUTH PLAIN " + base64.b64encode(b"\0u\0\xff").decode(), "235"], 4, "the AUTH PLAIN resp"),
    (["AUTH PLAIN " + plain("", "u", ""), "235"], 4, "the AUTH PLAIN password here is empty"),
    (["AUTH PLAIN " + plain("", "u\n", "p"), "235"], 4, "the AUTH PLAIN user name here is"),
    (["AUTH PLAIN " + plain("", "", "p"), "235"], 4, "the AUTH PLAIN user name here is"),
    (["AUTH CRAM-MD5", "334 PDE+", b64("alice nodigest"), "235 ok"], 6, "the AUTH CRAM-MD5 answer"),
    (["AUTH LOGIN", "334 x", b64("u"), "535 no"], 4, "the AUTH LOGIN exchange ends before"),
    (["AUTH LOGIN", "334 x", "*", "501 cancelled"], 6, "the client cancels"),
    # In telnet a line that no reply follows is prose: the session ends before it.
    (["AUTH LOGIN", "334 x", b64("u")], 5, "this 334 challenge has no answer"),
    (["AUTH PLAIN", "334 ", "334 "], 5, "this 334 challenge has no answer"),
    (["AUTH SCRAM-SHA-256 " + b64("n,,n=u,r=x"), "334 y"], 4, "AUTH 'SCRAM-SHA-256': import"),
    (["AUTH", "501 syntax"], 4, "AUTH takes a mechanism"),
    ([f"AUTH PLAIN {PLAIN_BLOB}", "334 ", b64("more"), "235"], 6, "AUTH PLAIN sends 1 message"),
]


@pytest.mark.parametrize(
    ("exchange", "line", "problem"), REFUSED_AUTH, ids=[str(n) for n in range(len(REFUSED_AUTH))]
)
def test_an_unreadable_auth_exchange_is_an_error_at_its_line_that_quotes_no_blob(
    exchange: list[str], line: int, problem: str
) -> None:
    problems = problems_of(lines(*HEAD, *exchange, *TAIL))
    assert problems[0].startswith(f"t.txt:{line}: {problem}"), problems
    client_lines = [text for text in exchange[1:] if not text[:3].isdigit()]
    blobs = [*exchange[0].split()[2:], *client_lines]
    for blob in blobs:
        if len(blob) > 3:
            assert blob not in problems[0], problems


# -- the real swaks transcripts -------------------------------------------------------------------

REAL = ["swaks-plain.txt", "swaks-login.txt", "swaks-plain-535.txt"]


@pytest.mark.parametrize("name", [*REAL, "swaks-plain-hidden.txt", "swaks-cram-md5.txt"])
def test_every_real_swaks_transcript_reads_as_starttls_then_auth(name: str) -> None:
    text = (DATA / name).read_text()
    (session,) = parse_transcript(text, name).sessions
    kinds = [e.kind for e in session.exchanges]
    assert kinds[:4] == [
        ExchangeKind.GREETING,
        ExchangeKind.COMMAND,
        ExchangeKind.STARTTLS,
        ExchangeKind.COMMAND,
    ]
    (auth,) = [e for e in session.exchanges if e.kind is ExchangeKind.AUTH]
    assert auth.credentials is not None
    assert auth.credentials.username == AUTH_USER
    hidden = name in ("swaks-plain-hidden.txt", "swaks-cram-md5.txt")
    expected = None if hidden else "wrong-password" if "535" in name else AUTH_PASSWORD
    assert auth.credentials.password == expected
    assert AUTH_PASSWORD not in repr(session)


# -- the command line, against aiosmtpd: STARTTLS required, AUTH inside TLS -----------------------


@pytest.fixture(scope="module")
def auth_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def submission_port(auth_ca: trustme.CA) -> Iterator[int]:
    handler = AuthHandler()
    yield from _controller(
        handler,
        tls_context=server_context(auth_ca),
        require_starttls=True,
        authenticator=handler.authenticate,
        auth_require_tls=True,
    )


def _blobs(text: str) -> list[bytes]:
    """Every client line of the transcript's AUTH exchanges that holds the password."""
    found = re.findall(r"~> (?:AUTH PLAIN )?([A-Za-z0-9+/=]{16,})$", text, re.MULTILINE)
    return [blob.encode() for blob in found]


def _commands(tmp_path: Path, transcript: Path, port: int, ca: Path) -> list[str]:
    target = f"127.0.0.1:{port}"
    tls = ["--tls-ca", str(ca)]
    said: list[subprocess.CompletedProcess[str]] = []
    scenario = tmp_path / "imported.yaml"
    said.append(smtpload("import", str(transcript), "-o", str(scenario), cwd=tmp_path))
    assert said[-1].returncode == 0, said[-1].stderr
    said.append(
        smtpload(
            "run", str(scenario), "--target", target, *tls, "--sessions", "2",
            "--results", str(tmp_path / "results"), "--json", str(tmp_path / "s.json"),
            cwd=tmp_path,
        )
    )  # fmt: skip
    said.append(smtpload("replay", str(transcript), "--target", target, *tls, cwd=tmp_path))
    said.append(smtpload("replay", str(scenario), "--target", target, *tls, cwd=tmp_path))
    said.append(smtpload("import", str(transcript), "--strict", cwd=tmp_path))
    for result in said:
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == 0, result.stdout + result.stderr
    return [text for result in said for text in (result.stdout, result.stderr)]


@pytest.mark.parametrize("name", REAL)
async def test_real_transcripts_import_run_and_replay_with_no_secret_in_any_output(
    tmp_path: Path,
    submission_port: int,
    auth_ca: trustme.CA,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    transcript = tmp_path / name
    text = (DATA / name).read_text()
    transcript.write_text(text)
    password = "wrong-password" if "535" in name else AUTH_PASSWORD
    ca = tmp_path / "ca.pem"
    auth_ca.cert_pem.write_to_path(str(ca))
    # `run` of the imported scenario reads the variable the import named; replay does not.
    monkeypatch.setenv(VARIABLE, password)
    texts = await trio.to_thread.run_sync(
        functools.partial(_commands, tmp_path, transcript, submission_port, ca)
    )
    assert "=> passed" in texts[4]
    assert "=> passed" in texts[6]
    assert "AUTH " in texts[4]  # replay shows the exchange, redacted
    forbidden = [password.encode(), *aligned_base64(password.encode()), *_blobs(text)]
    assert len(forbidden) >= 5
    _assert_nothing_leaks(tmp_path, transcript, texts, forbidden)


def _assert_nothing_leaks(
    folder: Path, transcript: Path, texts: list[str], forbidden: list[bytes]
) -> None:
    """No file under ``folder`` but the transcript, and no output, holds a forbidden bytes."""
    files = [p for p in folder.rglob("*") if p.is_file() and p != transcript]
    assert any(p.name == "failures.log" for p in files)
    assert any(p.name == "imported.yaml" for p in files)
    haystacks = {str(p): p.read_bytes() for p in files}
    haystacks.update({f"output {n}": said.encode() for n, said in enumerate(texts)})
    for where, data in haystacks.items():
        for needle in forbidden:
            assert needle not in data, f"{needle!r} leaked into {where}"


async def test_replay_of_a_transcript_needs_no_variable(
    tmp_path: Path, submission_port: int, auth_ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    ca = tmp_path / "ca.pem"
    auth_ca.cert_pem.write_to_path(str(ca))
    result = await trio.to_thread.run_sync(
        functools.partial(
            smtpload, "replay", str(DATA / "swaks-login.txt"), "--target",
            f"127.0.0.1:{submission_port}", "--tls-ca", str(ca), cwd=tmp_path,
        )
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "auth     AUTH LOGIN" in result.stdout


async def test_replay_of_a_hidden_password_transcript_uses_the_variable(
    tmp_path: Path, submission_port: int, auth_ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    auth_ca.cert_pem.write_to_path(str(ca))
    target = f"127.0.0.1:{submission_port}"
    replay = functools.partial(
        smtpload, "replay", str(DATA / "swaks-cram-md5.txt"), "--target", target,
        "--tls-ca", str(ca), cwd=tmp_path,
    )  # fmt: skip
    monkeypatch.delenv(VARIABLE, raising=False)
    unset = await trio.to_thread.run_sync(replay)
    assert unset.returncode == 2
    assert "swaks-cram-md5.txt:23: AUTH CRAM-MD5 as 'alice@example.test'" in unset.stderr
    monkeypatch.setenv(VARIABLE, AUTH_PASSWORD)
    ok = await trio.to_thread.run_sync(replay)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_import_keep_secrets_on_the_command_line(tmp_path: Path) -> None:
    result = smtpload("import", str(DATA / "swaks-plain.txt"), "--keep-secrets", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f'password: "{AUTH_PASSWORD}"' in result.stdout
    assert "warning" in result.stderr
    assert AUTH_PASSWORD not in result.stderr


# -- the command line, against Postfix's submission service (STARTTLS required, Dovecot SASL) --

POSTFIX_VARIABLE = "SMTPLOAD_PASSWORD_SMTPLOAD_EXAMPLE_TEST"


@pytest.mark.parametrize(
    "name", ["postfix-swaks-plain.txt", "postfix-swaks-login.txt", "postfix-swaks-hidden.txt"]
)
def test_real_postfix_transcripts_import_run_and_replay_against_postfix(
    tmp_path: Path, postfix_tls: TlsPostfixPeers, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(POSTFIX_VARIABLE, postfix_tls.password)
    transcript = DATA / name
    scenario = tmp_path / "imported.yaml"
    target = f"{postfix_tls.host}:{postfix_tls.submission_port}"
    tls = ["--tls-ca", str(postfix_tls.ca_file)]
    said = [
        smtpload("import", str(transcript), "-o", str(scenario), cwd=tmp_path),
        smtpload("run", str(scenario), "--target", target, *tls, "--results", "r", cwd=tmp_path),
        smtpload("replay", str(transcript), "--target", target, *tls, cwd=tmp_path),
    ]
    for result in said:
        assert result.returncode == 0, result.stdout + result.stderr
    assert "auth     AUTH " in said[2].stdout
    forbidden = [postfix_tls.password.encode(), *aligned_base64(postfix_tls.password.encode())]
    texts = [text for result in said for text in (result.stdout, result.stderr)]
    _assert_nothing_leaks(tmp_path, transcript, texts, forbidden)
