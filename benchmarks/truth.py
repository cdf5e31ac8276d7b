"""Step latencies as smtpload reports them, beside the same run's packet capture.

For each row (a server, a concurrency, busy or not) this runs the bundled ``quickstart``
scenario while ``tshark`` captures the loopback traffic to the server, then prints per step
smtpload's p50/p99 (from its ``summary.json``) beside the wire's p50/p99 (from the capture), and
whether smtpload is within the target: **5 % or 50 µs of the wire, whichever is larger**, at p50
and at p99. The capture is the ground truth that smtpload's step timing is meant to reproduce.

Usage (as root, on Linux; needs Postfix's ``smtp-sink`` and Debian's ``tshark``)::

    python3 benchmarks/truth.py [--sessions 2000] [--rows sink-1,sink-100,...]
                                [--json truth.json] [--update-json truth.json]
                                [--keep-captures DIR]

It installs nothing. Without tshark it says how (``apt-get install tshark``, with the debconf
answer that keeps the install non-interactive). It measures the smtpload it imports (run it with
``PYTHONPATH`` set to a checkout to measure that checkout) and says which commit that is; the
runs through the command line use the same code.

The rows (``--rows`` takes a comma-separated subset):

* ``sink-1``, ``sink-10``, ``sink-100``: Postfix's ``smtp-sink``, started here on a free
  loopback port, at 1, 10 and 100 sessions in parallel, through ``smtpload run``;
* ``postfix-1``, ``postfix-10``, ``postfix-100``: the Postfix test server already running on
  127.0.0.1:10025 (``.ci/postfix-setup``);
* ``sink-10-busy``: smtp-sink at 10 in parallel, smtpload run in this process through
  ``smtpload.api.arun`` beside a task in the same trio loop that burns the CPU in 20 ms slices,
  so that smtpload's own event loop is what is late;
* ``starttls-1``, ``starttls-10``: Postfix's STARTTLS service on 10027 (``.ci/postfix-setup``;
  the test CA from ``/etc/smtpload-tls``, or ``SMTPLOAD_TLS_DIR``), at 1 and 10 in parallel,
  running ``benchmarks/starttls-message.yaml`` (EHLO, STARTTLS, the quickstart's transaction
  inside TLS 1.3) against ``localhost:10027``. The capture sees TLS records, not lines:
  ``benchmarks/truth_tls.py`` says how each step is found in them (NewSessionTickets
  included), and the marker is in the first, plain-text EHLO.

``--update-json FILE`` puts the rows run into an existing ``--json`` table (replacing rows of
the same name), so that one row can be measured again without the others.

What the wire's numbers are
---------------------------
Per TCP stream, in capture order (tshark's timestamps; on ``lo`` a segment is captured once, as
it is handed to the loopback device, so its time is both its send and its arrival):

* a step's wire latency is the time of the server segment that completes the step's reply minus
  the time of the client segment that carries the command's last byte;
* the message step (after 354) runs from the segment carrying the final ``CRLF.CRLF`` to the
  segment completing its reply;
* the greeting runs from the end of the TCP handshake (the client's ACK of the SYN-ACK) to the
  segment completing the banner. "From the SYN-ACK" is computed too and shown as an extra,
  informational row (``greeting@syn-ack``): smtpload's ``connect()`` returns after the kernel
  has sent that ACK, so the ACK is the definition the target is checked against;
* ``connect`` and ``close`` are not reply-timed and are left out.

Steps are matched to smtpload's names by the dialogue's order (the quickstart is lock-step:
greeting, then each command and its reply): reply 0 is the greeting, command *k* and reply *k*
are the *k*-th step after it. A segment may carry several replies (each completes at that
segment) and a reply may be split over segments (it completes at the last). A retransmitted or
duplicated segment adds nothing (bytes are placed by their TCP sequence numbers, so only the
first copy counts) and an out-of-order one completes nothing until the gap before it is filled.
Only streams whose ``MAIL FROM`` carries this row's marker (a ``from`` variable made for it) and
whose dialogue is complete are counted, so that other clients of the shared Postfix are not.

Percentiles and rounding
------------------------
The wire's percentiles are exact, by nearest rank: the p-th percentile of n samples is the
ceil(p/100 * n)-th smallest. smtpload's are HdrHistogram's (3 significant digits: a value is
recorded as whole microseconds, cut down, and reported as the highest value of its bucket;
exact below 2,048 µs, at most ~0.1 % high above), with nearly the same rank rule, which is far
below the 5 % / 50 µs target.

Bounds: every subprocess has a timeout, tshark is always stopped (SIGINT, then killed), all
traffic is on loopback, and the captures live in a temporary folder that is removed unless
``--keep-captures DIR`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, overload

import trio
import trio.lowlevel

# Run as a script, benchmarks/ is on the path, not the checkout that holds the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.smtp_sink import LOOPBACK, free_port, smtp_sink

# --- the pure part: segments in, wire latencies out --------------------------------------------

#: The quickstart's reply-timed steps, in dialogue order (its ``connect`` and ``close`` are not).
QUICKSTART_STEPS: tuple[str, ...] = ("greeting", "ehlo", "mail", "rcpt", "data", "message", "quit")
GREETING_FROM_SYN_ACK = "greeting@syn-ack"

# TCP header flags (RFC 9293 §3.1).
FIN = 0x01
SYN = 0x02
RST = 0x04
ACK = 0x10


class Side(Enum):
    """Who sent a segment."""

    CLIENT = "client"
    SERVER = "server"


class Segment(NamedTuple):
    """One captured TCP segment, as much of it as the timing needs."""

    time_ns: int  # capture time, nanoseconds since the epoch
    stream: int  # tshark's tcp.stream: one TCP connection
    side: Side
    flags: int  # TCP flags (SYN, ACK, ...)
    payload: bytes
    seq: int | None = None  # sequence number of the first payload byte (None: take it as new)


class _ByteOrder:
    """One direction's bytes put in sequence order: duplicates dropped, gaps waited for."""

    __slots__ = ("next_seq", "waiting")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.waiting: dict[int, bytes] = {}  # segments beyond a gap, by sequence number

    def on_syn(self, seq: int | None) -> None:
        if seq is not None and self.next_seq is None:
            self.next_seq = seq + 1  # the SYN takes one sequence number (RFC 9293 §3.4)

    def take(self, seq: int | None, payload: bytes) -> bytes:
        """The bytes that this segment makes newly contiguous (b"" for a duplicate)."""
        if seq is None:
            return payload
        if self.next_seq is None:
            self.next_seq = seq
        if seq > self.next_seq:
            kept = self.waiting.get(seq, b"")
            if len(payload) > len(kept):
                self.waiting[seq] = payload
            return b""
        parts = [self._fresh(seq, payload)]
        # A segment that filled a gap may make those beyond it contiguous, lowest first.
        while (start := min(self._ready(), default=None)) is not None:
            parts.append(self._fresh(start, self.waiting.pop(start)))
        return b"".join(parts)

    def _ready(self) -> Iterator[int]:
        assert self.next_seq is not None
        return (start for start in self.waiting if start <= self.next_seq)

    def _fresh(self, seq: int, payload: bytes) -> bytes:
        assert self.next_seq is not None
        new = payload[self.next_seq - seq :] if seq + len(payload) > self.next_seq else b""
        self.next_seq += len(new)
        return new


#: RFC 5321 §4.1.1.4: the message ends with a line holding a single ".".
_END_OF_MESSAGE = b"\r\n.\r\n"


@dataclass(slots=True)
class StreamDialogue:
    """What one TCP stream said, with the time each reply and command was complete."""

    stream: int
    syn_ack_ns: int | None = None
    ack_ns: int | None = None  # the client's ACK of the SYN-ACK: the handshake's end
    reply_codes: list[int] = field(default_factory=list)
    reply_ns: list[int] = field(default_factory=list)
    commands: list[bytes] = field(default_factory=list)  # b"<message>" for a message
    command_ns: list[int] = field(default_factory=list)
    _client: _ByteOrder = field(default_factory=_ByteOrder)
    _server: _ByteOrder = field(default_factory=_ByteOrder)
    _reply_buffer: bytearray = field(default_factory=bytearray)
    _command_buffer: bytearray = field(default_factory=bytearray)
    _in_message: bool = False
    _message_tail: bytes = b""

    def feed(self, segment: Segment) -> None:
        if segment.side is Side.SERVER:
            if segment.flags & SYN and segment.flags & ACK and self.syn_ack_ns is None:
                self.syn_ack_ns = segment.time_ns
                self._server.on_syn(segment.seq)
            data = self._server.take(segment.seq, segment.payload)
            if data:
                self._on_server_bytes(data, segment.time_ns)
            return
        if segment.flags & SYN:
            self._client.on_syn(segment.seq)
        elif segment.flags & ACK and self.syn_ack_ns is not None and self.ack_ns is None:
            self.ack_ns = segment.time_ns
        data = self._client.take(segment.seq, segment.payload)
        if data:
            self._on_client_bytes(data, segment.time_ns)

    def _on_server_bytes(self, data: bytes, time_ns: int) -> None:
        buffer = self._reply_buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\r\n", start)) >= 0:
            line = bytes(buffer[start:end])
            start = end + 2
            # RFC 5321 §4.2.1: "NNN-text" continues a reply; "NNN text" (or "NNN") ends it.
            if line[3:4] != b"-":
                code = line[:3]
                self.reply_codes.append(int(code) if code.isdigit() else -1)
                self.reply_ns.append(time_ns)
        del buffer[:start]

    def _message_due(self) -> bool:
        # The message follows a DATA command whose reply was 354 (RFC 5321 §4.1.1.4); in a
        # lock-step or pipelined dialogue alike, that reply arrives before the message is sent.
        if not self.commands or self.commands[-1].upper() != b"DATA":
            return False
        reply = len(self.commands)  # reply 0 is the greeting
        return len(self.reply_codes) > reply and self.reply_codes[reply] == 354

    def _on_client_bytes(self, data: bytes, time_ns: int) -> None:
        buffer = self._command_buffer
        buffer += data
        while buffer:
            if not self._in_message and self._message_due():
                self._in_message = True
                self._message_tail = b"\r\n"  # the message starts at the start of a line
            if self._in_message:
                window = self._message_tail + bytes(buffer)
                end = window.find(_END_OF_MESSAGE)
                if end < 0:
                    self._message_tail = window[-(len(_END_OF_MESSAGE) - 1) :]
                    buffer.clear()
                    return
                del buffer[: end + len(_END_OF_MESSAGE) - len(self._message_tail)]
                self._in_message = False
                self.commands.append(b"<message>")
                self.command_ns.append(time_ns)
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                return
            self.commands.append(bytes(buffer[:end]))
            self.command_ns.append(time_ns)
            del buffer[: end + 2]


_Dialogue = TypeVar("_Dialogue", bound=StreamDialogue)


@overload
def dialogues(segments: Iterable[Segment]) -> dict[int, StreamDialogue]: ...
@overload
def dialogues(segments: Iterable[Segment], kind: type[_Dialogue]) -> dict[int, _Dialogue]: ...
def dialogues(
    segments: Iterable[Segment], kind: type[StreamDialogue] = StreamDialogue
) -> dict[int, Any]:
    """Every stream's dialogue, from segments in capture order, each read by a ``kind``
    (``StreamDialogue``, or a reader of its own such as truth_tls.py's)."""
    streams: dict[int, StreamDialogue] = {}
    for segment in segments:
        dialogue = streams.get(segment.stream)
        if dialogue is None:
            dialogue = streams[segment.stream] = kind(segment.stream)
        dialogue.feed(segment)
    return streams


@dataclass(slots=True)
class WireSamples:
    """Wire latencies in nanoseconds per step, and why any stream was left out."""

    samples_ns: dict[str, list[int]]
    streams_used: int = 0
    streams_skipped: Counter[str] = field(default_factory=Counter)

    def add_stream(
        self, step_names: Sequence[str], latencies_ns: Sequence[int], syn_ack_greeting_ns: int
    ) -> bool:
        """One stream's latency per step (and its greeting from the SYN-ACK); False, and the
        stream counted as skipped, when a reply came before its command."""
        if min(latencies_ns) < 0:
            self.streams_skipped["reply before its command"] += 1
            return False
        for name, latency_ns in zip(step_names, latencies_ns, strict=True):
            self.samples_ns[name].append(latency_ns)
        self.samples_ns[GREETING_FROM_SYN_ACK].append(syn_ack_greeting_ns)
        self.streams_used += 1
        return True


def wire_samples(
    segments: Iterable[Segment],
    step_names: Sequence[str] = QUICKSTART_STEPS,
    *,
    marker: bytes | None = None,
) -> WireSamples:
    """The wire latency of each reply-timed step of each complete stream.

    Args:
        segments: the capture, in capture order.
        step_names: the reply-timed steps in dialogue order, the greeting first.
        marker: count only streams with a command that contains it (the run's MAIL FROM);
            None counts every stream.

    The greeting gets two series: ``greeting`` (from the handshake's end) and
    ``greeting@syn-ack``. A stream whose dialogue is not complete up to the last step (or
    whose reply came before its command) is left out and counted in ``streams_skipped``.
    """
    if not step_names or step_names[0] != "greeting":
        raise ValueError("the first reply-timed step must be the greeting")
    result = WireSamples({name: [] for name in (*step_names, GREETING_FROM_SYN_ACK)})
    for dialogue in dialogues(segments).values():
        if marker is not None and not any(marker in command for command in dialogue.commands):
            result.streams_skipped["not this run's"] += 1
            continue
        if dialogue.syn_ack_ns is None or dialogue.ack_ns is None:
            result.streams_skipped["no handshake"] += 1
            continue
        commands = len(step_names) - 1
        if len(dialogue.reply_ns) < len(step_names) or len(dialogue.command_ns) < commands:
            result.streams_skipped["incomplete"] += 1
            continue
        latencies = [dialogue.reply_ns[0] - dialogue.ack_ns]
        latencies += [dialogue.reply_ns[k + 1] - dialogue.command_ns[k] for k in range(commands)]
        result.add_stream(step_names, latencies, dialogue.reply_ns[0] - dialogue.syn_ack_ns)
    return result


def nearest_rank(samples: Sequence[int], percentile: float) -> int:
    """The exact ``percentile`` (0..100] of ``samples``: the ceil(p/100 * n)-th smallest."""
    if not samples:
        raise ValueError("no samples")
    # Fraction, not float: 99/100 * 2000 in floats is 1980.0000000000002, one rank too far.
    rank = max(1, math.ceil(Fraction(str(percentile)) * len(samples) / 100))
    return sorted(samples)[rank - 1]


#: The target: within 5 % of the wire or 50 µs, whichever is larger.
TARGET_FRACTION = 0.05
TARGET_FLOOR_MS = 0.050


def within_target(smtpload_ms: float, wire_ms: float) -> bool:
    # A hair of slack for the decimal rounding of both sides (smtpload reports whole µs).
    allowed_ms = max(TARGET_FRACTION * wire_ms, TARGET_FLOOR_MS) + 1e-9
    return abs(smtpload_ms - wire_ms) <= allowed_ms


#: The fields asked of ``tshark -T fields``, in this order.
TSHARK_FIELDS = (
    "frame.time_epoch",
    "tcp.stream",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "tcp.seq",
    "tcp.payload",
)


def parse_tshark_fields(lines: Iterable[str], server_port: int) -> Iterator[Segment]:
    """Segments from ``tshark -T fields -E separator=/t`` lines of :data:`TSHARK_FIELDS`."""
    for line in lines:
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != len(TSHARK_FIELDS) or not fields[1]:
            continue  # not a TCP segment
        epoch, stream, source_port, _, flags, seq, payload = fields
        seconds, _, fraction = epoch.partition(".")
        time_ns = int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])
        side = Side.SERVER if int(source_port) == server_port else Side.CLIENT
        yield Segment(
            time_ns,
            int(stream),
            side,
            int(flags, 16),
            bytes.fromhex(payload.replace(":", "")),
            int(seq) if seq else None,
        )


# --- the runs: servers, captures, smtpload ----------------------------------------------------

HERE = Path(__file__).resolve().parent
POSTFIX_PORT = 10025
HOG_SLICE_S = 0.020
TSHARK_START_TIMEOUT_S = 30.0
TSHARK_STOP_TIMEOUT_S = 30.0
TSHARK_READ_TIMEOUT_S = 600.0
SMTP_SINK_START_TIMEOUT_S = 10.0

INSTALL_TSHARK = (
    "tshark not found; install it (Debian/Ubuntu, as root):\n"
    "  echo 'wireshark-common wireshark-common/install-setuid boolean false'"
    " | debconf-set-selections\n"
    "  DEBIAN_FRONTEND=noninteractive apt-get install -y tshark"
)


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    server: str  # "smtp-sink", "postfix" or "postfix-starttls"
    concurrency: int
    busy: bool = False

    @property
    def title(self) -> str:
        return f"{self.server} c={self.concurrency}" + (" busy" if self.busy else "")

    @property
    def starttls(self) -> bool:
        """The STARTTLS row: its scenario, its server and its capture reading (truth_tls.py)."""
        return self.server == "postfix-starttls"


ROWS: tuple[Row, ...] = (
    Row("sink-1", "smtp-sink", 1),
    Row("sink-10", "smtp-sink", 10),
    Row("sink-100", "smtp-sink", 100),
    Row("postfix-1", "postfix", 1),
    Row("postfix-10", "postfix", 10),
    Row("postfix-100", "postfix", 100),
    Row("sink-10-busy", "smtp-sink", 10, busy=True),
    Row("starttls-1", "postfix-starttls", 1),
    Row("starttls-10", "postfix-starttls", 10),
)

#: The STARTTLS rows' server: Postfix offering STARTTLS without AUTH (.ci/postfix-setup).
POSTFIX_STARTTLS_PORT = 10027
#: Its name in the test CA's certificate (an IP address would be sent as no SNI at all).
POSTFIX_STARTTLS_HOST = "localhost"
STARTTLS_SCENARIO = HERE / "starttls-message.yaml"
#: The test CA's folder, as the test fixture reads it (tests/conftest.py).
TLS_DIR = Path(os.environ.get("SMTPLOAD_TLS_DIR", "/etc/smtpload-tls"))


def _steps(row: Row) -> tuple[str, ...]:
    from benchmarks.truth_tls import STARTTLS_STEPS

    return STARTTLS_STEPS if row.starttls else QUICKSTART_STEPS


def _smtpload_timeout_s(sessions: int) -> float:
    # Generous: the slowest row (busy, 20 ms per loop turn) takes ~15 ms per session.
    return 120.0 + sessions * 0.1


@dataclass(slots=True)
class CaptureStats:
    captured: int | None = None
    dropped: int | None = None


@contextlib.contextmanager
def capture(port: int, path: Path, stats: CaptureStats) -> Iterator[None]:
    """``tshark`` capturing ``tcp port PORT`` on ``lo`` into ``path`` while the body runs.

    The body starts only once tshark says "Capturing on" (its capture is open and filtered by
    then; packets that arrive later are buffered by the kernel). tshark is stopped with SIGINT
    (so that it writes the file out), and killed if it does not stop.
    """
    errors_path = path.with_suffix(".stderr")
    with errors_path.open("wb") as errors:
        process = subprocess.Popen(
            ["tshark", "-i", "lo", "-f", f"tcp port {port}", "-B", "64", "-q", "-w", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:
        deadline = time.monotonic() + TSHARK_START_TIMEOUT_S
        while b"Capturing on" not in errors_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                text = errors_path.read_text(errors="replace").strip()
                raise SystemExit(f"tshark did not start capturing (run as root?): {text}")
            time.sleep(0.02)
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=TSHARK_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=TSHARK_STOP_TIMEOUT_S)
    text = errors_path.read_text(errors="replace")
    if found := re.search(r"(\d+) packets? captured", text):
        stats.captured = int(found.group(1))
    stats.dropped = sum(int(n) for n in re.findall(r"(\d+) packets? dropped", text))


def read_capture(path: Path, server_port: int) -> list[Segment]:
    fields = [argument for name in TSHARK_FIELDS for argument in ("-e", name)]
    completed = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t", *fields],
        capture_output=True,
        text=True,
        timeout=TSHARK_READ_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"tshark could not read {path}: {completed.stderr.strip()}")
    return list(parse_tshark_fields(completed.stdout.splitlines(), server_port))


def _smtpload_root() -> Path:
    """The folder holding the smtpload package this script measures."""
    import smtpload

    return Path(smtpload.__file__).resolve().parent.parent


def smtpload_commit() -> str:
    root = _smtpload_root()
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "smtpload"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return f"unknown ({root})"
    return f"{head}{' + uncommitted changes' if dirty else ''} ({root})"


def run_smtpload_command(port: int, row: Row, sessions: int, sender: str) -> dict[str, Any]:
    """``smtpload run quickstart`` in a subprocess; its summary."""
    with tempfile.TemporaryDirectory(prefix="truth-results-") as scratch:
        summary_path = Path(scratch) / "summary.json"
        scenario, host, extra = "quickstart", LOOPBACK, []
        if row.starttls:
            # The marker goes in the first EHLO: the only command the capture can read.
            scenario, host = str(STARTTLS_SCENARIO), POSTFIX_STARTTLS_HOST
            extra = ["--var", f"helo={sender.partition('@')[0]}.example.test",
                     "--tls-ca", str(TLS_DIR / "ca.pem")]  # fmt: skip
        command = [
            sys.executable, "-m", "smtpload", "run", scenario,
            "--target", f"{host}:{port}",
            "--sessions", str(sessions), "--concurrency", str(row.concurrency),
            "--var", f"from={sender}", *extra,
            "--results", scratch, "--json", str(summary_path), "--quiet",
        ]  # fmt: skip
        environment = dict(os.environ)
        root = str(_smtpload_root())
        environment["PYTHONPATH"] = os.pathsep.join(
            part for part in (root, environment.get("PYTHONPATH")) if part
        )
        completed = subprocess.run(
            command,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=_smtpload_timeout_s(sessions),
            check=False,
        )
        if completed.returncode not in (0, 1):
            raise SystemExit(f"{row.name}: smtpload exited {completed.returncode}: "
                             f"{completed.stderr.strip()}")  # fmt: skip
        summary: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
        return summary


async def _hog() -> None:
    """Burn the CPU in 20 ms slices, yielding to the loop between them (time.sleep would not
    burn anything)."""
    while True:
        until = time.perf_counter() + HOG_SLICE_S
        while time.perf_counter() < until:
            pass
        await trio.lowlevel.checkpoint()  # the same as trio.sleep(0)


def run_smtpload_busy(port: int, row: Row, sessions: int, sender: str) -> dict[str, Any]:
    """smtpload through its API in this process, beside :func:`_hog` in the same trio loop."""
    from smtpload.api import arun

    async def main() -> dict[str, Any]:
        with trio.fail_after(_smtpload_timeout_s(sessions)):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_hog)
                result = await arun(
                    "quickstart",
                    target=f"{LOOPBACK}:{port}",
                    sessions=sessions,
                    concurrency=row.concurrency,
                    variables={"from": sender},
                )
                nursery.cancel_scope.cancel()
        return dict(result.summary)

    return trio.run(main)


# --- the table --------------------------------------------------------------------------------


def _ms(value_ns: int) -> float:
    return round(value_ns / 1e6, 6)


def compare_row(
    row: Row, summary: Mapping[str, Any], wire: WireSamples, capture_stats: CaptureStats
) -> dict[str, Any]:
    """One row of the table: per step, smtpload's p50/p99 beside the wire's, and the verdict."""
    own = {step["name"]: step for step in summary["steps"]}
    names = [step["name"] for step in summary["steps"] if step["name"] not in ("connect", "close")]
    if tuple(names) != _steps(row):
        raise SystemExit(f"{row.name}: the scenario's steps are now {names}: update truth.py")
    if row.starttls and set(summary["tls"]["versions"]) != {"TLSv1.3"}:
        # truth_tls.py reads TLS 1.3's record sequence only.
        raise SystemExit(f"{row.name}: TLS versions {summary['tls']['versions']}, not 1.3 only")
    steps = []
    for name in (*_steps(row), GREETING_FROM_SYN_ACK):
        samples = wire.samples_ns[name]
        latency = own[name if name != GREETING_FROM_SYN_ACK else "greeting"]["latency_ms"]
        entry: dict[str, Any] = {"step": name, "samples": len(samples)}
        entry["informational"] = name == GREETING_FROM_SYN_ACK
        entry["smtpload_ms"] = {key: latency[key] for key in ("p50", "p99")} if latency else None
        entry["wire_ms"] = (
            {key: _ms(nearest_rank(samples, pct)) for key, pct in (("p50", 50), ("p99", 99))}
            if samples
            else None
        )
        entry["within_target"] = (
            {
                key: within_target(entry["smtpload_ms"][key], entry["wire_ms"][key])
                for key in ("p50", "p99")
            }
            if entry["smtpload_ms"] and entry["wire_ms"]
            else None
        )
        steps.append(entry)
    return {
        "row": row.name,
        "title": row.title,
        "server": row.server,
        "concurrency": row.concurrency,
        "busy": row.busy,
        "sessions": summary["sessions"],
        # What ended smtpload's latencies in this row: a row on the loop clock (a platform
        # without receive times, reads that came without one) is not the kernel clock's proof.
        "clock": summary.get("clock", "loop"),
        "untimed_reads": summary.get("generator", {}).get("untimed_reads"),
        "streams_used": wire.streams_used,
        "streams_skipped": dict(wire.streams_skipped),
        "packets_captured": capture_stats.captured,
        "packets_dropped": capture_stats.dropped,
        **({"tls": summary["tls"], "tickets_per_stream": _tickets(wire)} if row.starttls else {}),
        "steps": steps,
    }


def _tickets(wire: WireSamples) -> dict[str, int]:
    """How many streams showed how many NewSessionTickets (TLS rows only)."""
    from benchmarks.truth_tls import TlsWireSamples

    if not isinstance(wire, TlsWireSamples):
        return {}
    return {str(count): streams for count, streams in sorted(wire.tickets.items())}


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    header = (
        f"{'row':<22} {'step':<17} {'smtpload p50':>12} {'wire p50':>9} {'ok':>3}"
        f" {'smtpload p99':>13} {'wire p99':>9} {'ok':>3}"
    )
    lines = [header]

    def cell(values: Mapping[str, float] | None, key: str) -> str:
        return f"{values[key]:.3f}" if values else "-"

    def verdict(entry: Mapping[str, Any], key: str) -> str:
        if entry["informational"]:
            return "."
        return ("yes" if entry["within_target"][key] else "NO") if entry["within_target"] else "-"

    lines.extend(
        f"{row['title']:<22} {entry['step']:<17}"
        f" {cell(entry['smtpload_ms'], 'p50'):>12} {cell(entry['wire_ms'], 'p50'):>9}"
        f" {verdict(entry, 'p50'):>3}"
        f" {cell(entry['smtpload_ms'], 'p99'):>13} {cell(entry['wire_ms'], 'p99'):>9}"
        f" {verdict(entry, 'p99'):>3}"
        for row in rows
        for entry in row["steps"]
    )
    return "\n".join(lines)


def _row_note(row: Mapping[str, Any]) -> str:
    sessions = row["sessions"]
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(row["streams_skipped"].items()))
    return (
        f"{row['title']}: {sessions['started']} sessions ({sessions['passed']} passed),"
        f" {row['clock']} clock"
        + (f" ({row['untimed_reads']} reads untimed)" if row.get("untimed_reads") else "")
        + f", {row['streams_used']} streams timed on the wire"
        + (f" (left out: {skipped})" if skipped else "")
        + f", {row['packets_captured']} packets captured, {row['packets_dropped']} dropped"
    )


# --- main -------------------------------------------------------------------------------------


def _parse_rows(text: str) -> list[Row]:
    by_name = {row.name: row for row in ROWS}
    chosen = []
    for name in (part.strip() for part in text.split(",")):
        if name not in by_name:
            raise argparse.ArgumentTypeError(f"no row {name!r}; the rows are {', '.join(by_name)}")
        chosen.append(by_name[name])
    return chosen


def measure_row(row: Row, port: int, sessions: int, captures: Path) -> dict[str, Any]:
    marker = f"truth-{uuid.uuid4().hex[:12]}"
    sender = f"{marker}@example.test"
    pcap = captures / f"{row.name}.pcapng"
    capture_stats = CaptureStats()
    run = run_smtpload_busy if row.busy else run_smtpload_command
    with capture(port, pcap, capture_stats):
        summary = run(port, row, sessions, sender)
    segments = read_capture(pcap, port)
    if row.starttls:
        from benchmarks.truth_tls import tls_wire_samples

        wire: WireSamples = tls_wire_samples(segments, marker=marker.encode())
    else:
        wire = wire_samples(segments, marker=marker.encode())
    return compare_row(row, summary, wire, capture_stats)


def update_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Put ``rows`` into the table at ``path`` (a ``--json`` file): each replaces the row of
    its name, or is added at the end."""
    document = json.loads(path.read_text(encoding="utf-8"))
    kept: list[Any] = document["rows"]
    for row in rows:
        names = [old["row"] for old in kept]
        if row["row"] in names:
            kept[names.index(row["row"])] = row
        else:
            kept.append(row)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="example: python3 benchmarks/truth.py --sessions 2000 --json truth.json",
    )
    parser.add_argument("--sessions", type=int, default=2000, help="sessions per row")
    parser.add_argument(
        "--rows",
        type=_parse_rows,
        default=list(ROWS),
        help=f"comma-separated subset of: {', '.join(row.name for row in ROWS)}",
    )
    parser.add_argument("--json", type=Path, help="also write the table as JSON to this file")
    parser.add_argument(
        "--update-json",
        type=Path,
        metavar="FILE",
        help="replace (or add) the rows run in an existing --json FILE, keeping its other rows;"
        " each row run notes its own commit, time and load",
    )
    parser.add_argument("--keep-captures", type=Path, metavar="DIR", help="keep the .pcapng files")
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions: give 1 or more")
    if shutil.which("tshark") is None:
        raise SystemExit(INSTALL_TSHARK)
    rows: list[Row] = args.rows
    if any(row.server == "smtp-sink" for row in rows) and shutil.which("smtp-sink") is None:
        raise SystemExit("smtp-sink not found: install Postfix (sudo .ci/postfix-setup)")
    commit = smtpload_commit()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # The machine's load matters to every number here: say what it was.
    load_before = os.getloadavg()[0]
    print(
        f"smtpload {commit}; {args.sessions} sessions per row; latencies in ms;"
        f" {started}, load average {load_before:.2f}",
        flush=True,
    )
    results = []
    with contextlib.ExitStack() as stack:
        if args.keep_captures is not None:
            captures = args.keep_captures
            captures.mkdir(parents=True, exist_ok=True)
        else:
            captures = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="truth-")))
        sink_port = free_port()
        if any(row.server == "smtp-sink" for row in rows):
            stack.enter_context(smtp_sink(sink_port, timeout_s=SMTP_SINK_START_TIMEOUT_S))
        for row in rows:
            port = {"smtp-sink": sink_port, "postfix-starttls": POSTFIX_STARTTLS_PORT}.get(
                row.server, POSTFIX_PORT
            )
            result = measure_row(row, port, args.sessions, captures)
            print(_row_note(result), flush=True)
            results.append(result)
    load_after = os.getloadavg()[0]
    if args.json is not None:  # first, so that a closed stdout cannot cost the file
        document = {
            "smtpload": commit,
            "started": started,
            "load_average_1m": {"before": load_before, "after": load_after},
            "sessions_per_row": args.sessions,
            "scenario": "quickstart",
            "target_rule": "|smtpload - wire| <= max(5 % of wire, 0.050 ms), at p50 and p99",
            "wire_percentiles": "exact, nearest rank: the ceil(p/100 * n)-th smallest sample",
            "greeting": "from the client's ACK of the SYN-ACK; greeting@syn-ack from the SYN-ACK",
            "rows": results,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.update_json is not None:
        measured = {
            "smtpload": commit,
            "started": started,
            "load_average_1m": {"before": load_before, "after": load_after},
            "sessions": args.sessions,
        }
        update_rows(args.update_json, [{**row, "measured": measured} for row in results])
    print(format_table(results))
    checked = [
        entry["within_target"][key]
        for row in results
        for entry in row["steps"]
        if entry["within_target"] and not entry["informational"]
        for key in ("p50", "p99")
    ]
    print(
        f"{sum(checked)} of {len(checked)} step percentiles within the target"
        " (5 % or 50 µs of the wire, whichever is larger); greeting from the handshake's ACK;"
        f" load average {load_after:.2f} at the end"
    )
    return 0


if __name__ == "__main__":
    # Through the package's module, not this __main__ copy of it: truth_tls.py imports
    # benchmarks.truth, whose Side and Segment must be the ones the capture is read into.
    from benchmarks.truth import main as package_main

    sys.exit(package_main())
