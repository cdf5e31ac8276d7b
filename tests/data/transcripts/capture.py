"""Capture the real SMTP transcripts in this folder, the way a person would make them.

This script owns the corpus in ``tests/data/transcripts/``: the ``<server>-<client>-<dialogue>.txt``
files and the README that names each file's server, client and versions. It talks to three
real servers over loopback only:

- **postfix**: the Postfix test server that ``.ci/postfix-setup`` runs (``--postfix``, default
  127.0.0.1:10025), which refuses ``@reject.test`` with 550 5.1.1;
- **aiosmtpd**: started here, in-process, with the test suite's ``tests.peers.RecordingHandler``
  (the same refusal text);
- **sink**: smtpload's built-in sink, ``python3 -m smtpload sink``, as a subprocess.

Each client runs under a pseudo-terminal, so the capture is what a terminal shows: the client's
own lines (``Trying 127.0.0.1...``), the lines we type, echoed by the terminal, and the replies.
We type one line, wait for its echo and, for a command, for the last line of its reply
(``NNN text``), and only then type the next, like a person reading the screen. The only change
made to the output is dropping ``\\r``: the terminal turns every newline into CR LF, and the
server's CR LF becomes CR CR LF. Anything else that is not printable text fails the capture.

It must not: reach anything but 127.0.0.1, wait without a bound, or leave a process behind.

Usage, from the repository root (needs telnet, nc -C and swaks; Debian:
``apt-get install -y telnet netcat-openbsd swaks``)::

    python3 tests/data/transcripts/capture.py [--postfix HOST:PORT]
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiosmtpd
from aiosmtpd.controller import Controller

import smtpload

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
LOOPBACK = "127.0.0.1"
POSTFIX_DEFAULT = "127.0.0.1:10025"
REPLY_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 10.0
START_TIMEOUT_S = 15.0
CAPTURE_ATTEMPTS = 3
INSTALL_HINT = "apt-get install -y telnet netcat-openbsd swaks"
RECAPTURE = "python3 tests/data/transcripts/capture.py"

# RFC 5321 §4.2.1: "NNN text" or a bare "NNN" ends a reply; "NNN-" lines continue it.
_LAST_REPLY_LINE = re.compile(rb"(?m)^\d{3}(?: [^\n]*)?\r*\n")
_NEWLINE = re.compile(rb"\n")
# What may be left once \r is gone: printable text, tabs and newlines.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CTRL_D = b"\x04"


class CaptureError(Exception):
    """A capture did not go the way a person at the terminal would have seen it go."""


# --- dialogues -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One line typed into the client; ``reply`` says whether the server answers it."""

    text: str
    reply: bool


def commands(*texts: str) -> tuple[Line, ...]:
    return tuple(Line(text, reply=True) for text in texts)


def message(*texts: str) -> tuple[Line, ...]:
    """Lines of a DATA section: the server answers none of them, only the final dot line."""
    return tuple(Line(text, reply=False) for text in texts)


@dataclass(frozen=True, slots=True)
class Dialogue:
    name: str
    summary: str
    lines: tuple[Line, ...]


SEED = Dialogue(
    "seed",
    "the blog's plain session: HELO, MAIL, RCPT, DATA, 3 header lines, body, `.`, quit",
    commands(
        "HELO exsample.jp",
        "MAIL FROM:hoge00@exsample.jp",
        "RCPT TO:hoge01@exsample.jp",
        "DATA",
    )
    + message("subject: test", "from: hoge00@exsample.jp", "to: hoge01@exsample.jp", "")
    + message("meil send test")
    + commands(".", "quit"),
)
TYPO = Dialogue(
    "typo",
    "the blog's Sendmail session: `HELOO localhost` refused, then HELO ... quit",
    commands(
        "HELOO localhost",
        "HELO localhost",
        "MAIL FROM:hoge00@exsample.jp",
        "RCPT TO:hoge01@gmail.com",
        "DATA",
    )
    + message("subject: test", "from: hoge00@exsample.jp", "to: hoge01@gmail.com", "")
    + message("this test")
    + commands(".", "quit"),
)
DOT = Dialogue(
    "dot",
    "EHLO (multiline reply); a body line starting with `.`, typed dot-stuffed as `..leading dot`",
    commands(
        "EHLO localhost",
        "MAIL FROM:<hoge00@exsample.jp>",
        "RCPT TO:<hoge01@exsample.jp>",
        "DATA",
    )
    + message("Subject: leading dot", "From: <hoge00@exsample.jp>", "To: <hoge01@exsample.jp>")
    + message("", "The next line starts with a dot, so it is typed with two:", "..leading dot")
    + commands(".", "QUIT"),
)
REJECT = Dialogue(
    "reject",
    "EHLO, MAIL, `RCPT TO:<nobody@reject.test>` refused with 550, RSET, QUIT",
    commands(
        "EHLO localhost",
        "MAIL FROM:<hoge00@exsample.jp>",
        "RCPT TO:<nobody@reject.test>",
        "RSET",
        "QUIT",
    ),
)

SWAKS_FROM = "hoge00@exsample.jp"
SWAKS_TO = {"plain": "hoge01@exsample.jp", "reject": "nobody@reject.test"}
SWAKS_SUMMARY = {
    "plain": "swaks' default message to an accepted recipient",
    "reject": "swaks to `nobody@reject.test`: RCPT refused with 550, then QUIT",
}


# --- servers and clients ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    port: int
    version: str
    refuses_reject_test: bool


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    version: str
    argv: Callable[[int], list[str]]
    #: nc does not exit when the server closes while the terminal is still open: press Ctrl-D.
    ends_with_ctrl_d: bool


@dataclass(frozen=True, slots=True)
class Capture:
    file: str
    server: Server
    client: str
    client_version: str
    summary: str
    command: str


def _first_line(argv: Sequence[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=EXIT_TIMEOUT_S)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def _deb_version(package: str) -> str:
    if shutil.which("dpkg-query") is None:
        return ""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package],
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
    )
    return f"Debian package {package} {done.stdout.strip()}" if done.returncode == 0 else ""


def _tool_version(argv: Sequence[str], package: str) -> str:
    deb = _deb_version(package)
    own = _first_line(argv)
    return f"{own}; {deb}" if deb else own


def _postfix_version() -> str:
    if shutil.which("postconf") is None:
        return "Postfix (version unknown: no postconf here)"
    # "mail_version = 3.7.11"
    return "Postfix " + _first_line(["postconf", "-d", "mail_version"]).split("=")[-1].strip()


def _require_tools() -> None:
    missing = [tool for tool in ("telnet", "nc", "swaks") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"capture.py: {', '.join(missing)} not found; install with: {INSTALL_HINT}")


def _loopback_target(value: str) -> int:
    """The port of a ``127.0.0.1:PORT`` target; anything off this machine is refused."""
    host, _, port = value.rpartition(":")
    if host != LOOPBACK or not port.isdigit():
        raise argparse.ArgumentTypeError(f"must be {LOOPBACK}:PORT (loopback only), not {value!r}")
    return int(port)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _banner(port: int) -> str:
    """The server's greeting, after which we say QUIT so it logs a clean goodbye."""
    with socket.create_connection((LOOPBACK, port), timeout=REPLY_TIMEOUT_S) as sock:
        data = b""
        while not _LAST_REPLY_LINE.search(data) and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        sock.sendall(b"QUIT\r\n")
        return data.decode("utf-8", "replace").strip()


@contextmanager
def aiosmtpd_server() -> Iterator[int]:
    # Imported here, once the root is on the path: the script also runs as a file, not only as
    # `python3 -m tests.data.transcripts.capture` from the root.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.peers import RecordingHandler

    # aiosmtpd warns about every unknown command on stderr: the typo dialogue makes one on purpose.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    errors: list[Exception] = []
    for _ in range(CAPTURE_ATTEMPTS):
        # aiosmtpd 1.4.6 cannot take port=0 (aio-libs/aiosmtpd#388): ask the kernel for one.
        controller: Any = Controller(RecordingHandler(), hostname=LOOPBACK, port=_free_port())
        try:
            controller.start()
        except (OSError, RuntimeError) as exc:  # someone took the port in between
            errors.append(exc)
            controller.stop(no_assert=True)
            continue
        try:
            yield int(controller.port)
        finally:
            controller.stop()
        return
    raise CaptureError(f"aiosmtpd did not start on {LOOPBACK}: {errors!r}")


@contextmanager
def sink_server() -> Iterator[int]:
    port = _free_port()
    argv = [sys.executable, "-m", "smtpload", "sink", "--listen", f"{LOOPBACK}:{port}"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise CaptureError(f"smtpload sink exited: {proc.communicate()[1]!r}")
            try:
                _banner(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise CaptureError(f"smtpload sink not up on port {port}") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)  # its documented way to stop: Ctrl-C
        try:
            proc.communicate(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


# --- the terminal ----------------------------------------------------------------------------


class Terminal:
    """A program running under a pseudo-terminal, and everything it has shown so far."""

    def __init__(self, argv: Sequence[str]) -> None:
        master, slave = os.openpty()
        env = {**os.environ, "TERM": "dumb"}
        self._proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env
        )
        os.close(slave)
        self._master = master
        self._eof = False
        self.screen = bytearray()

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=EXIT_TIMEOUT_S)
        os.close(self._master)

    def _read(self, deadline: float) -> None:
        ready, _, _ = select.select([self._master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise CaptureError(
                f"nothing shown for {REPLY_TIMEOUT_S} s; screen so far:\n{self.text}"
            )
        try:
            data = os.read(self._master, 4096)
        except OSError as exc:  # Linux: EIO once the program has exited and closed the terminal
            if exc.errno != errno.EIO:
                raise
            data = b""
        if data:
            self.screen += data
        else:
            self._eof = True

    def wait_for(self, pattern: re.Pattern[bytes], start: int) -> int:
        """Read until ``pattern`` shows up at or after ``start``; return where the match ends."""
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while (found := pattern.search(self.screen, start)) is None:
            if self._eof:
                raise CaptureError(f"closed while waiting for {pattern.pattern!r}:\n{self.text}")
            self._read(deadline)
        return found.end()

    def type(self, keys: bytes) -> int:
        """Type ``keys``; return the screen position before their echo."""
        position = len(self.screen)
        os.write(self._master, keys)
        return position

    def finish(self) -> int:
        """Read until the program exits; return its exit status."""
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while not self._eof:
            self._read(deadline)
        return self._proc.wait(timeout=EXIT_TIMEOUT_S)

    @property
    def text(self) -> str:
        return self.screen.decode("utf-8", "replace")


def _tidy(command: Sequence[str], screen: bytes | bytearray) -> str:
    text = f"$ {shlex.join(command)}\n" + screen.replace(b"\r", b"").decode("utf-8")
    if (junk := _CONTROL.search(text)) is not None:
        raise CaptureError(f"terminal control byte {junk.group()!r} in:\n{text}")
    return text if text.endswith("\n") else text + "\n"


def type_dialogue(client: Client, port: int, dialogue: Dialogue) -> str:
    argv = client.argv(port)
    with Terminal(argv) as term:
        position = term.wait_for(_LAST_REPLY_LINE, 0)  # the greeting
        for line in dialogue.lines:
            echo_start = term.type(line.text.encode() + b"\r")  # the text, then Enter
            position = term.wait_for(_NEWLINE, echo_start)
            if line.reply:
                position = term.wait_for(_LAST_REPLY_LINE, position)
        if client.ends_with_ctrl_d:
            term.type(_CTRL_D)
        term.finish()
        return _tidy(argv, term.screen)


def run_swaks(port: int, recipient: str) -> str:
    argv = ["swaks", "--server", f"{LOOPBACK}:{port}", "--from", SWAKS_FROM, "--to", recipient]
    with Terminal(argv) as term:
        term.finish()  # non-zero when the recipient is refused: that is the point
        text = _tidy(argv, term.screen)
    if "<-  221" not in text and "<** 221" not in text:
        raise CaptureError(f"swaks never got to QUIT:\n{text}")
    return text


def _attempt(what: str, capture: Callable[[], str]) -> str:
    """Run ``capture``, again if the server went away (another engineer restarting Postfix)."""
    for attempt in range(1, CAPTURE_ATTEMPTS + 1):
        try:
            return capture()
        except CaptureError as exc:
            print(f"capture.py: {what}: attempt {attempt} failed: {exc}", file=sys.stderr)
            time.sleep(1.0)
    raise CaptureError(f"{what}: no clean capture in {CAPTURE_ATTEMPTS} attempts")


# --- the corpus ------------------------------------------------------------------------------


def capture_all(servers: Sequence[Server], out_dir: Path) -> list[Capture]:
    telnet = Client(
        "telnet",
        _tool_version(["telnet", "--version"], "inetutils-telnet"),
        lambda port: ["telnet", LOOPBACK, str(port)],
        ends_with_ctrl_d=False,
    )
    nc = Client(
        "nc",
        _tool_version(["nc", "-h"], "netcat-openbsd"),
        lambda port: ["nc", "-C", LOOPBACK, str(port)],
        ends_with_ctrl_d=True,
    )
    swaks_version = _tool_version(["swaks", "--version"], "swaks")

    captures: list[Capture] = []

    def save(file: str, server: Server, client: str, version: str, summary: str, text: str) -> None:
        (out_dir / file).write_text(text, encoding="utf-8", newline="\n")
        command = text.splitlines()[0].removeprefix("$ ")
        captures.append(Capture(file, server, client, version, summary, command))
        print(f"wrote {file}")

    for server in servers:
        dialogues = [SEED, TYPO, DOT] + ([REJECT] if server.refuses_reject_test else [])
        plan = [(telnet, dialogue) for dialogue in dialogues] + [(nc, SEED)]
        for client, dialogue in plan:
            file = f"{server.name}-{client.name}-{dialogue.name}.txt"
            text = _attempt(file, partial(type_dialogue, client, server.port, dialogue))
            save(file, server, client.name, client.version, dialogue.summary, text)
        for kind in ["plain"] + (["reject"] if server.refuses_reject_test else []):
            file = f"{server.name}-swaks-{kind}.txt"
            text = _attempt(file, partial(run_swaks, server.port, SWAKS_TO[kind]))
            save(file, server, "swaks", swaks_version, SWAKS_SUMMARY[kind], text)
    return captures


def write_readme(captures: Sequence[Capture], out_dir: Path) -> None:
    rows = "\n".join(
        f"| `{c.file}` | {c.server.version} | {c.client_version} | {c.summary} | `{c.command}` |"
        for c in captures
    )
    (out_dir / "README.md").write_text(
        f"""# Real SMTP transcripts

Golden inputs for the transcript import tests: real sessions, captured on loopback by
`capture.py` (in this folder) running each client under a pseudo-terminal, so each file is what a
person sees and pastes. The first line is the command as typed at a shell prompt; then the
client's own lines, the typed lines (echoed by the terminal) and the server's replies, interleaved.
The only change to the captured output: `\\r` dropped (LF line endings). Nothing was edited.

`seed-blog.txt` is the published blog post with the two hand-typed telnet sessions
(`/work/shared/seed/000_0992d9c46ffd018c.txt`), byte-exact; it is not captured by this script.

Servers: **postfix** is the `.ci/postfix-setup` server on 127.0.0.1:10025; **aiosmtpd** runs
in-process with `tests.peers.RecordingHandler`; **sink** is `python3 -m smtpload sink`. Postfix
and aiosmtpd refuse `@reject.test` recipients with 550 5.1.1; the sink accepts everything, so it
has no `reject` files. The blog's Sendmail answered the typo `HELOO` with
`500 5.5.1 Command unrecognized`; each `*-typo.txt` shows what these servers really say.

Keep the files byte for byte: swaks prints ` -> ` with a trailing space for blank message lines,
and an editor or hook that strips trailing whitespace would change the capture.

Volatile parts differ between captures: ports of aiosmtpd and the sink (in the command line),
Postfix queue ids, dates, the machine's host name (aiosmtpd's greeting, swaks' EHLO and
Message-Id).

To capture again, from the repository root, then review the diff (needs the Postfix test server,
`sudo .ci/postfix-setup`, and the clients: `{INSTALL_HINT}`):

```sh
{RECAPTURE}
```

| file | server | client | dialogue | command |
|---|---|---|---|---|
{rows}
""",
        encoding="utf-8",
        newline="\n",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Capture real telnet, nc -C and swaks sessions against Postfix, aiosmtpd "
        "and the smtpload sink into tests/data/transcripts/.",
        epilog=f"example: {RECAPTURE} --postfix {POSTFIX_DEFAULT}",
    )
    parser.add_argument(
        "--postfix",
        type=_loopback_target,
        default=POSTFIX_DEFAULT,
        metavar="HOST:PORT",
        help=f"the Postfix test server (default {POSTFIX_DEFAULT}; loopback only)",
    )
    args = parser.parse_args(argv)
    _require_tools()

    try:
        postfix_banner = _banner(args.postfix)
    except OSError as exc:
        sys.exit(f"capture.py: no Postfix on port {args.postfix} ({exc}); sudo .ci/postfix-setup")
    if "Postfix" not in postfix_banner:
        sys.exit(f"capture.py: port {args.postfix} is not Postfix: {postfix_banner!r}")

    python = f"Python {sys.version.split()[0]}"
    with aiosmtpd_server() as aiosmtpd_port, sink_server() as sink_port:
        servers = [
            Server("postfix", args.postfix, _postfix_version(), refuses_reject_test=True),
            Server(
                "aiosmtpd",
                aiosmtpd_port,
                f"aiosmtpd {aiosmtpd.__version__} ({python})",
                refuses_reject_test=True,
            ),
            Server(
                "sink",
                sink_port,
                f"smtpload sink {smtpload.__version__} ({python})",
                refuses_reject_test=False,
            ),
        ]
        try:
            captures = capture_all(servers, HERE)
        except CaptureError as exc:
            sys.exit(f"capture.py: {exc}")
    write_readme(captures, HERE)
    print(f"wrote README.md: {len(captures)} transcripts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
