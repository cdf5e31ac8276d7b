"""``validate`` reads a load: block's thresholds as ``smtpload run SCENARIO`` with no options
reads them: over the compiled steps (``tls`` included), open loop only when the block is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import smtpload

_STARTTLS = (
    "  - starttls: 220\n"
    "  - send: EHLO client.test\n"
    "    expect: 250\n"
)  # fmt: skip


def _scenario(tmp_path: Path, *, head: str = "", tls_steps: str = "", load: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(
        head + "steps:\n"
        "  - greeting: 220\n"
        "  - send: EHLO client.test\n"
        "    expect: 250\n" + tls_steps + "  - send: QUIT\n"
        "    expect: 221\n"
        "load:\n" + load
    )
    return path


@pytest.mark.parametrize(
    ("head", "tls_steps"),
    [("", _STARTTLS), ("target: smtps://127.0.0.1:10465\n", "")],
    ids=["starttls", "smtps-target"],
)
def test_validate_takes_a_step_tls_threshold_the_run_has(
    tmp_path: Path, head: str, tls_steps: str
) -> None:
    load = "  thresholds:\n    - step:tls.p99<100ms\n"
    scenario = _scenario(tmp_path, head=head, tls_steps=tls_steps, load=load)
    result = smtpload("validate", str(scenario), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{scenario}: ok")


def test_validate_still_refuses_step_tls_without_tls(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, load="  thresholds:\n    - step:tls.p99<100ms\n")
    result = smtpload("validate", str(scenario), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{scenario}:9:"), result.stderr
    assert "no step 'tls'" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_takes_start_delay_in_an_open_loop_block(tmp_path: Path) -> None:
    load = "  rate: 10\n  duration: 1s\n  thresholds:\n    - start_delay.p99<10ms\n"
    result = smtpload("validate", str(_scenario(tmp_path, load=load)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_validate_judges_a_closed_loop_block_as_run_without_rate(tmp_path: Path) -> None:
    # `run --rate` would accept it; validate has no --rate and says so in its help.
    scenario = _scenario(tmp_path, load="  thresholds:\n    - start_delay.p99<10ms\n")
    result = smtpload("validate", str(scenario), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{scenario}:9:"), result.stderr
    assert "start_delay is measured only in open-loop runs" in result.stderr
    assert "Traceback" not in result.stderr
    helped = smtpload("validate", "--help", cwd=tmp_path)
    said = " ".join(helped.stdout.split())  # argparse wraps the description
    assert "start_delay thresholds need the block's own rate or stages (not --rate)" in said
