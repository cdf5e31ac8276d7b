"""The aiosmtplib side of benchmarks/bench_head_to_head.py: ``--tasks`` concurrent asyncio tasks,
each sending with ``aiosmtplib.SMTP`` the same session shape as smtp-source and smtpload.

A connection per message (``--per-connection 1``): connect, EHLO, MAIL, RCPT, DATA, the message,
QUIT, until ``--messages`` have been sent. Persistent (``--per-connection K``): each task opens
one connection and sends K messages over it, then QUIT. aiosmtplib has no PIPELINING, so its
MAIL/RCPT/DATA always go lock-step. The plain asyncio loop (no uvloop), as a user would have it.

It prints one JSON object: ``messages`` (accepted: each ``sendmail`` returned with no refused
recipient), ``sessions`` (connections that ended with QUIT's reply), ``failures`` and
``first_error``, so the benchmark can tell a failed run from a figure.

Needs the ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass

import aiosmtplib

SENDER = "sender@example.test"
RECIPIENT = "recipient@example.test"
HEADER = (
    f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: aiosmtplib benchmark\r\n\r\n"
).encode()
#: A body line as smtp-source's payload is laid out: printable octets, then CRLF.
LINE = b"x" * 76 + b"\r\n"


def message_of(payload_bytes: int) -> bytes:
    """The header, then ``payload_bytes`` of body lines: smtp-source's ``-l`` counts the same
    payload without its headers."""
    whole, rest = divmod(payload_bytes, len(LINE))
    return HEADER + LINE * whole + (b"x" * max(rest - 2, 0) + b"\r\n" if rest else b"")


@dataclass(slots=True)
class Tally:
    left: int  # messages not yet taken by a task (connection per message)
    messages: int = 0
    sessions: int = 0
    failures: int = 0
    first_error: str | None = None

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.first_error is None:
            self.first_error = f"{type(error).__name__}: {error}"


async def one_session(
    host: str, port: int, message: bytes, count: int, tally: Tally, timeout_s: float
) -> None:
    """One connection carrying ``count`` messages, then QUIT."""
    smtp = aiosmtplib.SMTP(
        hostname=host,
        port=port,
        start_tls=False,
        timeout=timeout_s,
        local_hostname="aiosmtplib.example.test",
    )
    try:
        await smtp.connect()
        for _ in range(count):
            refused, _reply = await smtp.sendmail(SENDER, [RECIPIENT], message)
            if refused:  # sendmail raises when every recipient is refused; one of one is
                tally.failed(RuntimeError(f"recipients refused: {refused}"))
            else:
                tally.messages += 1
        await smtp.quit()
        tally.sessions += 1
    except (aiosmtplib.SMTPException, OSError) as error:
        tally.failed(error)
        smtp.close()


async def task_per_message(
    host: str, port: int, message: bytes, tally: Tally, timeout_s: float
) -> None:
    while tally.left > 0:
        tally.left -= 1
        await one_session(host, port, message, 1, tally, timeout_s)


async def run(args: argparse.Namespace) -> Tally:
    message = message_of(args.size)
    tally = Tally(left=args.messages)
    async with asyncio.TaskGroup() as tasks:
        if args.per_connection == 1:
            for _ in range(args.tasks):
                tasks.create_task(task_per_message(args.host, args.port, message, tally, 30.0))
        else:
            for _ in range(args.tasks):
                tasks.create_task(
                    one_session(args.host, args.port, message, args.per_connection, tally, 30.0)
                )
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tasks", type=int, required=True, help="concurrent sessions")
    parser.add_argument("--messages", type=int, required=True, help="messages in total")
    parser.add_argument(
        "--per-connection", type=int, default=1, help="1: a connection per message; K: each "
        "task sends K messages over one connection (then --messages is ignored)"
    )  # fmt: skip
    parser.add_argument("--size", type=int, default=1024, help="payload bytes (smtp-source -l)")
    args = parser.parse_args()
    tally = asyncio.run(run(args))
    json.dump(
        {
            "messages": tally.messages,
            "sessions": tally.sessions,
            "failures": tally.failures,
            "first_error": tally.first_error,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
