"""A run's TLS, set up from what its caller asked for: the command line's options or the API's
keyword arguments, with the same meaning and the same checks.

This module owns the step from "the user's TLS choices" to "a compiled scenario and the run's
``TlsClient``": implicit TLS (RFC 8314) needs a target and excludes a ``starttls`` step (the
compiler says so), the files named must exist, the caller's settings win over the scenario
target's, and the client (one ``ssl.SSLContext`` per run, ``tls.py``) is built before the first
session, so that a CA file that cannot be read is said before anything is sent. Messages name
the settings as the caller does (``--tls-ca`` or ``tls_ca=``), through ``tls.TlsNames``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from smtpload.errors import UsageError
from smtpload.net.tls import (
    COMMAND_LINE_NAMES,
    TlsClient,
    TlsNames,
    TlsOptions,
    build_tls_client,
)
from smtpload.protocol.compiler import CompiledScenario, compile_scenario
from smtpload.scenario.model import Scenario, Target, TlsSettings

__all__ = ["TlsRequest", "compile_for_target"]


@dataclass(frozen=True, slots=True)
class TlsRequest:
    """The TLS a caller asked for.

    Attributes:
        implicit: TLS from the first byte (``--tls implicit``); a ``smtps://`` target asks
            for it too.
        settings: the caller's CA, server name, client certificate and key, minimum version;
            each one given wins over the scenario target's.
        insecure: do not verify certificates (``--tls-insecure``).
        resume: offer the run's newest session in each new connection (``--tls-resume``).
    """

    implicit: bool = False
    settings: TlsSettings = field(default_factory=TlsSettings)
    insecure: bool = False
    resume: bool = True


def compile_for_target(
    scenario: Scenario,
    target: Target | None,
    request: TlsRequest,
    *,
    timeout_s: float | None = None,
    overrides: Mapping[str, str] | None = None,
    names: TlsNames = COMMAND_LINE_NAMES,
    seed: int = 0,
    require_pipelining: bool = False,
) -> tuple[CompiledScenario, TlsClient | None]:
    """Compile ``scenario`` for ``target`` (None: the built-in sink) with the TLS of
    ``request``, and build the run's TLS client when a session does TLS. ``seed``: the run's
    seed of each session's random draws (``compile_scenario``).

    Raises:
        UsageError: implicit TLS without a target, or with a starttls step; a TLS file that
            does not exist or cannot be used.
        ScenarioError: the scenario does not compile (as ``compile_scenario``).

    ``require_pipelining`` is ``compile_scenario``'s (``--require-pipelining``).
    """
    given = request.settings
    if given.key_file is not None and given.cert_file is None and scenario.tls.cert_file is None:
        # As a scenario target's `key:` without `cert:`: a key alone is no client certificate.
        raise UsageError(
            f"{names.key} needs {names.cert} (the client certificate it is the key of)"
        )
    # A scenario whose target says `tls: implicit` speaks TLS from the first byte wherever
    # the caller's target points it (a target replaces the host and port, as each TLS setting
    # replaces only its own key): a plain client at a port that waits for a ClientHello gets
    # nothing.
    implicit = (
        request.implicit
        or (target is not None and target.implicit_tls)
        or (target is not None and scenario.target is not None and scenario.target.implicit_tls)
    )
    if implicit and target is None:
        raise UsageError(
            f"{names.implicit} needs {names.target} (or a target in the scenario): the built-in"
            " sink does not speak TLS"
        )
    compiled = compile_scenario(
        scenario,
        timeout_s=timeout_s,
        overrides=overrides,
        implicit_tls=implicit,
        seed=seed,
        require_pipelining=require_pipelining,
    )
    if not compiled.uses_tls or target is None:
        return compiled, None
    for name, path in (
        (names.ca, given.ca_file),
        (names.cert, given.cert_file),
        (names.key, given.key_file),
    ):
        if path is not None and not os.path.isfile(path):
            raise UsageError(f"{names.given(name, path)}: no such file; check the path")
    options = TlsOptions(
        settings=scenario.tls.overridden_by(given),
        insecure=request.insecure,
        resume=request.resume,
    )
    return compiled, build_tls_client(options, target.host)
