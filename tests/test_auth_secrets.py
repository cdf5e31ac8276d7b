"""Issue 11: secrets never leak. Sessions that pass, fail with 535, and break mid-exchange run
through the command line with every output on (results folder, --json, record's baseline,
compare's JSON and JUnit, replay's view); every file written and all of stdout and stderr are
then searched for the password, for each whole base64 blob sent, and for the password's
base64 at all three byte alignments."""

from __future__ import annotations

import base64
import functools
import math
import subprocess
from pathlib import Path

import pytest
import trio

from tests.cli import smtpload
from tests.peers import AUTH_PASSWORD, AUTH_TOKEN, AUTH_USER, RecordingPeer
from tests.test_failures import start_server


def aligned_base64(secret: bytes) -> list[bytes]:
    """The base64 of ``secret`` after 0, 1 and 2 bytes of anything: only the characters that
    encode nothing but the secret's bits (character i holds bits 6i..6i+5 of the input)."""
    forms = []
    for before in range(3):
        encoded = base64.b64encode(b"\0" * before + secret)
        start = math.ceil(8 * before / 6)
        end = (8 * (before + len(secret))) // 6
        forms.append(encoded[start:end])
    return forms


def test_aligned_base64_finds_the_secret_wherever_it_starts() -> None:
    for junk in (b"", b"\0user\0", b"user=a\x01auth=Bearer ", b"xy"):
        sent = base64.b64encode(junk + AUTH_PASSWORD.encode())
        assert any(form in sent for form in aligned_base64(AUTH_PASSWORD.encode()))


def _scenario(path: Path, mechanism: str, key: str, env: str) -> Path:
    path.write_text(
        "steps:\n"
        "  - greeting: 220\n"
        "  - send: EHLO client.test\n"
        "    expect: 250\n"
        f"  - auth: {{mechanism: {mechanism}, username: {AUTH_USER}, {key}: {{env: {env}}}}}\n"
        "  - send: QUIT\n"
        "    expect: 221\n"
    )
    return path


def _outputs(tmp_path: Path, target: str, scenario: Path, tag: str) -> list[str]:
    """Run every command with every output on; return what they printed."""
    said: list[subprocess.CompletedProcess[str]] = []
    out = tmp_path / tag
    out.mkdir()
    said.append(
        smtpload(
            "run", str(scenario), "--target", target, "--sessions", "2", "--results",
            str(out / "results"), "--json", str(out / "summary.json"), cwd=tmp_path,
        )
    )  # fmt: skip
    baseline = out / "baseline.json"
    said.append(
        smtpload("record", str(scenario), "-o", str(baseline), "--target", target, cwd=tmp_path)
    )
    said.append(
        smtpload(
            "compare", str(scenario), "--baseline", str(baseline), "--target", target,
            "--junit", str(out / "junit.xml"), "--json", str(out / "compare.json"), cwd=tmp_path,
        )
    )  # fmt: skip
    said.append(smtpload("replay", str(scenario), "--target", target, cwd=tmp_path))
    for result in said:
        assert "Traceback" not in result.stderr, result.stderr
    return [text for result in said for text in (result.stdout, result.stderr)]


def _assert_nothing_leaks(
    tmp_path: Path, texts: list[str], secret: str, blobs: list[bytes]
) -> None:
    forbidden = [secret.encode(), *blobs, *aligned_base64(secret.encode())]
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "failures.log" for path in files)
    assert any(path.name == "junit.xml" for path in files)
    haystacks = {str(path): path.read_bytes() for path in files}
    haystacks.update({f"output {n}": text.encode() for n, text in enumerate(texts)})
    for where, data in haystacks.items():
        for needle in forbidden:
            assert needle not in data, f"{needle!r} leaked into {where}"
    # The exchange was shown (replay's view has the AUTH line), only redacted.
    assert any(b"AUTH " in data for data in haystacks.values())


def _blob(text: str) -> bytes:
    return base64.b64encode(text.encode())


@pytest.mark.parametrize(
    ("mechanism", "key", "secret", "blobs"),
    [
        ("PLAIN", "password", AUTH_PASSWORD, [_blob(f"\0{AUTH_USER}\0{AUTH_PASSWORD}")]),
        ("LOGIN", "password", AUTH_PASSWORD, [_blob(AUTH_PASSWORD)]),
        (
            "XOAUTH2",
            "token",
            AUTH_TOKEN,
            [_blob(f"user={AUTH_USER}\x01auth=Bearer {AUTH_TOKEN}\x01\x01")],
        ),
        ("SCRAM-SHA-256", "password", AUTH_PASSWORD, []),
    ],
)
@pytest.mark.parametrize("right", [True, False], ids=["passing", "535"])
async def test_no_output_holds_the_secret(
    tmp_path: Path,
    aiosmtpd_auth_server: RecordingPeer,
    monkeypatch: pytest.MonkeyPatch,
    mechanism: str,
    key: str,
    secret: str,
    blobs: list[bytes],
    right: bool,
) -> None:
    used = secret if right else secret + "-but-wrong"
    if not right:
        blobs = {
            "PLAIN": [_blob(f"\0{AUTH_USER}\0{used}")],
            "LOGIN": [_blob(used)],
            "XOAUTH2": [_blob(f"user={AUTH_USER}\x01auth=Bearer {used}\x01\x01")],
        }.get(mechanism, [])
    monkeypatch.setenv("SMTP_SECRET", used)
    scenario = _scenario(tmp_path / "auth.yaml", mechanism, key, "SMTP_SECRET")
    target = f"{aiosmtpd_auth_server.host}:{aiosmtpd_auth_server.port}"
    texts = await trio.to_thread.run_sync(
        functools.partial(_outputs, tmp_path, target, scenario, "o")
    )
    assert ("unexpected_reply" in "".join(texts)) is not right
    _assert_nothing_leaks(tmp_path, texts, used, blobs)


async def test_no_output_holds_the_secret_after_a_protocol_error(
    tmp_path: Path, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_SECRET", AUTH_PASSWORD)
    port = await start_server(nursery, "auth-wrong-scram-signature")
    scenario = _scenario(tmp_path / "auth.yaml", "SCRAM-SHA-256", "password", "SMTP_SECRET")
    texts = await trio.to_thread.run_sync(
        functools.partial(_outputs, tmp_path, f"127.0.0.1:{port}", scenario, "o")
    )
    assert "wrong server signature" in "".join(texts)
    _assert_nothing_leaks(tmp_path, texts, AUTH_PASSWORD, [])


@pytest.mark.parametrize(
    ("mechanism", "key", "secret", "blobs"),
    [
        (
            "PLAIN",
            "password",
            AUTH_PASSWORD,
            [_blob(f"\0{AUTH_USER}\0{AUTH_PASSWORD}")],
        ),
        ("LOGIN", "password", AUTH_PASSWORD, [_blob(AUTH_USER), _blob(AUTH_PASSWORD)]),
        (
            "XOAUTH2",
            "token",
            AUTH_TOKEN,
            [_blob(f"user={AUTH_USER}\x01auth=Bearer {AUTH_TOKEN}\x01\x01")],
        ),
    ],
)
@pytest.mark.parametrize("behaviour", ["auth-echo-535", "auth-echo-235"])
async def test_no_output_holds_the_secret_a_server_echoes(
    tmp_path: Path,
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    mechanism: str,
    key: str,
    secret: str,
    blobs: list[bytes],
    behaviour: str,
) -> None:
    """A server that quotes every AUTH line back (a 535, LOGIN's second 334, a 235, the 250
    to QUIT), as sent and decoded: what is shown of its replies is scrubbed."""
    monkeypatch.setenv("SMTP_SECRET", secret)
    port = await start_server(nursery, behaviour)
    scenario = _scenario(tmp_path / "auth.yaml", mechanism, key, "SMTP_SECRET")
    texts = await trio.to_thread.run_sync(
        functools.partial(_outputs, tmp_path, f"127.0.0.1:{port}", scenario, "o")
    )
    assert "unexpected_reply" in "".join(texts)
    _assert_nothing_leaks(tmp_path, texts, secret, blobs)
    # The replies were shown, with the secret's place marked.
    assert any("<redacted>" in text for text in texts)


@pytest.mark.parametrize(
    "secret", [AUTH_PASSWORD, "pässwörd-Zq7-not-ascii", 'back\\slash-"quoted"-Zq7']
)
async def test_a_protocol_error_quoting_the_secret_shows_it_scrubbed(
    tmp_path: Path, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    """A server that answers AUTH with a line that is no reply, quoting the blob after 20
    bytes (so the 60-byte preview cuts it) and the password decoded: the preview is made from
    the scrubbed bytes, so neither a cut blob nor an escaped password (non-ASCII, a backslash,
    quotes: shown as \\xc3\\xa4, \\\\, \\') is left."""
    monkeypatch.setenv("SMTP_SECRET", secret)
    port = await start_server(nursery, "auth-garbage")
    scenario = _scenario(tmp_path / "auth.yaml", "PLAIN", "password", "SMTP_SECRET")
    texts = await trio.to_thread.run_sync(
        functools.partial(_outputs, tmp_path, f"127.0.0.1:{port}", scenario, "o")
    )
    assert "not an SMTP reply line" in "".join(texts)
    blob = _blob(f"\0{AUTH_USER}\0{secret}")
    _assert_nothing_leaks(tmp_path, texts, secret, [blob])
    escaped = repr(secret.encode())[2:-1]
    for text in texts:
        assert escaped not in text
        assert blob.decode()[:20] not in text  # the blob's start, as a cut preview left it
    assert any("<redacted>" in text for text in texts)


async def test_a_difference_shown_by_compare_holds_no_echoed_secret(
    tmp_path: Path, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded where the server quotes the AUTH line in a 535, compared where it quotes it in
    a 235 and a 250: the differences (terminal, --json, JUnit) show the replies scrubbed."""
    monkeypatch.setenv("SMTP_SECRET", AUTH_PASSWORD)
    before = await start_server(nursery, "auth-echo-535")
    after = await start_server(nursery, "auth-echo-235")
    scenario = _scenario(tmp_path / "auth.yaml", "PLAIN", "password", "SMTP_SECRET")
    baseline, junit, report = tmp_path / "b.json", tmp_path / "junit.xml", tmp_path / "c.json"

    def commands() -> list[subprocess.CompletedProcess[str]]:
        return [
            smtpload(
                "record", str(scenario), "-o", str(baseline), "--target",
                f"127.0.0.1:{before}", cwd=tmp_path,
            ),
            smtpload(
                "compare", str(scenario), "--baseline", str(baseline), "--target",
                f"127.0.0.1:{after}", "--junit", str(junit), "--json", str(report), cwd=tmp_path,
            ),
        ]  # fmt: skip

    said = await trio.to_thread.run_sync(commands)
    assert said[1].returncode != 0, said[1].stdout + said[1].stderr
    outputs = [junit.read_bytes(), report.read_bytes()]
    outputs += [text.encode() for result in said for text in (result.stdout, result.stderr)]
    assert b"welcome" in b"".join(outputs)  # the 235 that differs is shown
    blob = _blob(f"\0{AUTH_USER}\0{AUTH_PASSWORD}")
    for needle in [AUTH_PASSWORD.encode(), blob, *aligned_base64(AUTH_PASSWORD.encode())]:
        for n, data in enumerate(outputs):
            assert needle not in data, f"{needle!r} leaked into output {n}"
