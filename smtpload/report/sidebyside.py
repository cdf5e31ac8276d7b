"""``smtpload replay``'s live view: each step as it completes, what was sent, expected and got.

Plain text, one line a step (and a second line saying why, when a step failed):

      ok    helo       HELO exsample.jp        expect 250     got 250 postfix.test
      FAIL  heloo      HELOO localhost         expect 500...  got 502 5.5.2 Error: ...
            reply code 502 is not 500
"""

from __future__ import annotations

from smtpload.errors import counted
from smtpload.protocol.bdat import ChunkPayload
from smtpload.protocol.engine import Observation
from smtpload.scenario.model import StepKind

__all__ = ["format_observation", "format_session_header"]

_SENT_WIDTH = 32
_EXPECT_WIDTH = 14


def _sent(observation: Observation) -> str:
    step = observation.step
    if step.kind is StepKind.GREETING:
        return "(banner)"
    if step.kind is StepKind.CLOSE:
        return "(not waited for)" if observation.event == "skipped" else "(wait for close)"
    if step.kind is StepKind.DATA:
        if observation.event == "skipped":
            return "(message not sent)"
        return f"<message, {counted(len(observation.sent), 'byte')}>"
    sent = observation.sent
    if step.kind is StepKind.BDAT:
        return "(message not sent)" if observation.event == "skipped" else _chunk_shown(sent)
    text = sent.decode("utf-8", "replace") if isinstance(sent, bytes) else "<message>"
    return text.removesuffix("\r\n")


def _chunk_shown(sent: object) -> str:
    return sent.command if isinstance(sent, ChunkPayload) else "<message>"


def _expected(observation: Observation) -> str:
    step = observation.step
    if step.kind is StepKind.CLOSE:
        return "close"
    if step.expectation is None:
        return "any reply"
    return step.expectation.description


def _got(observation: Observation) -> str:
    reply = observation.reply
    if reply is not None:
        first = f"{reply.code} {reply.lines[0] if reply.lines else ''}".rstrip()
        more = len(reply.lines) - 1
        return first + (f" (+{counted(more, 'line')})" if more else "")
    return {
        "closed": "connection closed",
        "timeout": "no reply (timeout)",
        "skipped": "-",
    }.get(observation.event, observation.event.replace("_", " "))


def _fit(text: str, width: int) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_observation(observation: Observation, name_width: int = 12) -> str:
    """One step of a replay, as one line (two when it failed)."""
    mark = "ok  " if observation.mismatch is None else "FAIL"
    line = (
        f"  {mark}  {_fit(observation.step.name, name_width):<{name_width}} "
        f"{_fit(_sent(observation), _SENT_WIDTH):<{_SENT_WIDTH}} "
        f"expect {_fit(_expected(observation), _EXPECT_WIDTH):<{_EXPECT_WIDTH}} "
        f"got {_fit(_got(observation), 60)}"
    )
    if observation.mismatch is not None:
        line += f"\n{'':8}{observation.mismatch}"
    return line


def format_session_header(number: int, source: str, target: str) -> str:
    return f"session {number}: {source} against {target}"
