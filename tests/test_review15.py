"""Hostile input to issue 14's hot path (the step deadline on the wire, one cancel scope per
worker, the connect that needs no wait): each step's timeout still bounds it."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import pytest
import trio

from tests.cli import smtpload
from tests.misbehaving import floods_short_lines

SCENARIO = """\
steps:
  - greeting: 220
  - send: EHLO client.test
    expect: 250
  - send: QUIT
    expect: 221
"""

#: Far above what the flood reaches within the step timeout, so that only the timeout can end
#: the step (the cap ends it after seconds of parsing, when the timeout does not).
FLOOD_CAP_BYTES = 10_000_000


@pytest.mark.parametrize("greet_first", [False, True], ids=["greeting", "ehlo"])
async def test_a_reply_that_arrives_faster_than_it_is_read_still_times_out(
    tmp_path: Path, greet_first: bool
) -> None:
    # The step's timeout is a cancel scope only around a wait for the socket; a reply whose
    # bytes are always there when the client reads never waits, and ran on (holding the
    # loop: no other session, no Ctrl-C) until --max-reply-bytes, whatever the timeout.
    path = tmp_path / "flood.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    summary_path = tmp_path / "summary.json"
    async with trio.open_nursery() as nursery:
        handler = floods_short_lines(greet_first=greet_first)
        serve = functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        args = ["run", str(path), "--target", f"127.0.0.1:{port}", "--sessions", "2",
                "--concurrency", "2", "--timeout", "300ms", "--quiet",
                "--max-reply-bytes", str(FLOOD_CAP_BYTES), "--json", str(summary_path)]  # fmt: skip
        started = time.monotonic()
        done = await trio.to_thread.run_sync(
            functools.partial(smtpload, *args, cwd=tmp_path, timeout_s=120)
        )
        elapsed_s = time.monotonic() - started
        nursery.cancel_scope.cancel()
    assert "Traceback" not in done.stderr
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    step = "ehlo" if greet_first else "greeting"
    assert summary["sessions"]["started"] == 2
    assert summary["sessions"]["failures"]["timeout"] == 2, summary["sessions"]
    (failures,) = (tmp_path / "results").glob("*/failures.log")
    log = failures.read_text(encoding="utf-8")
    assert log.count(f"timeout at step '{step}'") == 2, log[:2000]
    assert "got: nothing within 0.3 s" in log
    assert elapsed_s < 20  # the command's start and end included; the timeout is 0.3 s
