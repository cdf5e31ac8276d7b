"""Sessions as production sends them, end to end from YAML: persistent connections carrying
several pipelined transactions, recipients from a feed, generated MIME messages, variables drawn
from a seed; against Postfix, which stores what it delivers for ``@record.test``.

Each piece has its own tests (test_blocks_syntax, test_feeds, test_rcpt_syntax, test_messages,
test_pipelining); these run them together through the command line, as a user would.
"""

from __future__ import annotations

import email
import email.policy
import json
import textwrap
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.cli import smtpload
from tests.peers import RecordingPostfix, SmtpPeer

SCENARIO = """\
name: production
variables:
  sender: {feed: senders.csv, column: address}
  tag: {random: {min: 1, max: 1000000000}}
steps:
  - greeting: 220
  - send: EHLO client.example.test
    expect: 250
  - repeat: {min: 2, max: 4}
    steps:
      - pipeline:
          - send: "MAIL FROM:<{sender}>"
            name: mail
          - rcpt:
              feed: recipients.csv
              column: address
              count: 2
          - send: DATA
            expect: 354
      - data:
          headers:
            From: "{sender}"
            Subject: "tag {tag} message {message_number}"
          body: "hello {tag}\\n"
          size: {median: 2KiB, p99: 20KiB}
        name: message
  - send: QUIT
    expect: 221
"""


def write_scenario(folder: Path, recipients: list[str]) -> Path:
    (folder / "senders.csv").write_text(
        "address\n" + "".join(f"sender{n}@example.test\n" for n in range(1, 4))
    )
    (folder / "recipients.csv").write_text("address\n" + "".join(f"{r}\n" for r in recipients))
    path = folder / "production.yaml"
    path.write_text(SCENARIO)
    return path


def run(folder: Path, scenario: Path, target: str, *args: str) -> dict[str, Any]:
    summary = folder / f"summary-{uuid.uuid4().hex}.json"
    done = smtpload(
        "run", str(scenario), "--target", target, "--json", str(summary), "--quiet", *args,
        cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(summary.read_text())
    return result


def counts(summary: dict[str, Any]) -> dict[str, int]:
    return {step["name"]: step["count"] for step in summary["steps"]}


def test_persistent_pipelined_sessions_deliver_generated_messages_to_a_feed_reproducibly(
    tmp_path: Path, postfix_server: SmtpPeer, postfix_record: RecordingPostfix
) -> None:
    mark = uuid.uuid4().hex[:12]
    recipients = [f"r{n}-{mark}@{postfix_record.domain}" for n in range(1, 7)]
    scenario = write_scenario(tmp_path, recipients)
    target = f"{postfix_server.host}:{postfix_server.port}"
    first = run(tmp_path, scenario, target, "--sessions", "3", "--seed", "11")
    assert first["seed"] == 11
    assert first["sessions"]["passed"] == 3
    steps = counts(first)
    messages = steps["mail"]
    assert 6 <= messages <= 12  # 2 to 4 transactions in each of 3 sessions
    assert steps["data"] == steps["message"] == messages
    assert steps["rcpt"] == 2 * messages
    assert first["throughput"]["messages"] == messages
    assert first["pipelining"] == {"groups_pipelined": messages, "groups_lock_step": 0}
    for step in first["steps"]:  # every reply timed, in its step's one histogram
        assert step["failed"] == 0
        assert step["latency_ms"]["samples"] == step["count"]

    # What Postfix delivered: each message once per recipient, from the feed, parsed back.
    parsed = delivered(postfix_record, recipients, set(), 2 * messages)
    ids = Counter(str(message["Message-ID"]) for message in parsed.values())
    # Two recipients per message: each Message-ID arrives twice, and no two messages share one.
    assert set(ids.values()) == {2}
    assert len(ids) == messages
    assert {str(m["From"]) for m in parsed.values()} <= {
        f"sender{n}@example.test" for n in (1, 2, 3)
    }

    # The same seed: the same draws (transaction counts, the random tags in the subjects).
    second = run(tmp_path, scenario, target, "--sessions", "3", "--seed", "11")
    assert counts(second) == steps
    again = delivered(postfix_record, recipients, set(parsed), 2 * messages)
    assert subjects(again) == subjects(parsed)
    # Another seed: other draws.
    third = run(tmp_path, scenario, target, "--sessions", "3", "--seed", "12")
    assert third["seed"] == 12
    other = delivered(
        postfix_record, recipients, set(parsed) | set(again), 2 * counts(third)["mail"]
    )
    assert subjects(other) != subjects(parsed)


def subjects(messages: dict[Path, email.message.EmailMessage]) -> Counter[str]:
    return Counter(str(message["Subject"]) for message in messages.values())


def delivered(
    postfix: RecordingPostfix, recipients: list[str], seen: set[Path], expected: int
) -> dict[Path, email.message.EmailMessage]:
    """The messages delivered to ``recipients`` and not in ``seen``, once ``expected`` are
    there (delivery follows the 250 by a moment): polled, for at most 20 s."""
    deadline = time.monotonic() + 20
    while True:
        files = [
            path
            for recipient in recipients
            for path in postfix.folder(recipient).glob("*.eml")
            if path not in seen
        ]
        if len(files) >= expected or time.monotonic() > deadline:
            break
        threading.Event().wait(0.05)  # Postfix's pipe transport delivers: poll, bounded
    assert len(files) == expected, f"{len(files)} of {expected} messages delivered"
    return {
        path: email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in files
    }


@pytest.mark.slow  # a soak: it shows only that this holds at scale
def test_a_thousand_pipelined_messages_to_postfix_from_yaml(
    tmp_path: Path, postfix_server: SmtpPeer
) -> None:
    # The run: persistent, pipelined, multi-recipient, 1,000 messages; the counts and
    # the histograms in summary.json add up.
    scenario = tmp_path / "thousand.yaml"
    scenario.write_text(
        textwrap.dedent(
            """\
            steps:
              - greeting: 220
              - send: EHLO client.example.test
                expect: 250
              - repeat: 100
                steps:
                  - pipeline:
                      - send: MAIL FROM:<load@example.test>
                        name: mail
                      - rcpt: {to: "user{recipient}@example.test", count: 3}
                      - send: DATA
                        expect: 354
                  - data: {size: 1024}
                    name: message
              - send: QUIT
                expect: 221
            """
        )
    )
    target = f"{postfix_server.host}:{postfix_server.port}"
    summary = run(tmp_path, scenario, target, "--sessions", "10", "--concurrency", "5")
    assert summary["sessions"]["passed"] == 10
    assert summary["throughput"]["messages"] == 1000
    assert counts(summary) == {
        "connect": 10, "greeting": 10, "ehlo": 10,
        "mail": 1000, "rcpt": 3000, "data": 1000, "message": 1000, "quit": 10,
    }  # fmt: skip
    for step in summary["steps"]:
        assert step["failed"] == 0
        assert step["latency_ms"]["samples"] == step["count"]
    assert summary["pipelining"] == {"groups_pipelined": 1000, "groups_lock_step": 0}


def test_record_and_compare_persistent_pipelined_sessions_against_postfix(
    tmp_path: Path, postfix_server: SmtpPeer
) -> None:
    # The bundled persistent-pipelined scenario: 1 to 20 transactions per session, each a
    # pipelined MAIL/RCPT/DATA group. The baseline counts every reply of a repeated step
    # (attempts), not sessions; another number of sessions (other attempt counts) against the
    # same server is no difference.
    target = f"{postfix_server.host}:{postfix_server.port}"
    baseline = tmp_path / "baseline.json"
    recording = smtpload(
        "record", "persistent-pipelined", "--target", target, "--sessions", "3",
        "-o", str(baseline), cwd=tmp_path,
    )  # fmt: skip
    assert recording.returncode == 0, recording.stdout + recording.stderr
    data = json.loads(baseline.read_text(encoding="utf-8"))
    rows = {row["name"]: row for row in data["steps"]}
    mail = rows["mail"]
    assert mail["sessions"] == 3
    assert 3 <= mail["replies"] <= 60
    assert mail["codes"] == {"250": mail["replies"]}
    assert rows["message"]["replies"] == rows["rset"]["replies"] == mail["replies"]
    assert rows["quit"]["replies"] == 3
    comparing = smtpload(
        "compare", "persistent-pipelined", "--target", target, "--sessions", "2",
        "--baseline", str(baseline), cwd=tmp_path,
    )  # fmt: skip
    assert comparing.returncode == 0, comparing.stdout + comparing.stderr
    assert "no differences" in comparing.stdout
