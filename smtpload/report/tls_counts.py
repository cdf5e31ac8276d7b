"""What a run saw of TLS: the versions and cipher suites its handshakes agreed, how many resumed
an earlier session, and whether certificates were verified (summary.json's ``tls``).

The client (``net/client.py``) records each completed handshake here; nothing here knows ssl.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TlsCounts"]


class TlsCounts:
    """The TLS handshakes of one run.

    Attributes:
        verified: whether certificates were verified (False with ``--tls-insecure``).
        resume: whether sessions were offered for resumption (``--tls-resume``).
        versions: handshakes per TLS version (``"TLSv1.3"``).
        ciphers: handshakes per cipher suite.
        handshakes: completed handshakes.
        resumed: of those, the ones that resumed an earlier session.
    """

    __slots__ = ("ciphers", "handshakes", "resume", "resumed", "verified", "versions")

    def __init__(self, *, verified: bool, resume: bool) -> None:
        self.verified = verified
        self.resume = resume
        self.versions: dict[str, int] = {}
        self.ciphers: dict[str, int] = {}
        self.handshakes = 0
        self.resumed = 0

    def record(self, version: str, cipher: str, *, resumed: bool) -> None:
        """Count one completed handshake."""
        self.handshakes += 1
        self.versions[version] = self.versions.get(version, 0) + 1
        self.ciphers[cipher] = self.ciphers.get(cipher, 0) + 1
        if resumed:
            self.resumed += 1

    @classmethod
    def from_states(cls, states: Sequence[Mapping[str, Any]]) -> TlsCounts:
        """The counts of several shards (each one's :meth:`summary`) added up; ``states`` is
        not empty."""
        first = states[0]
        counts = cls(verified=bool(first["verified"]), resume=bool(first["resume"]))
        for state in states:
            counts.handshakes += int(state["handshakes"])
            counts.resumed += int(state["resumed"])
            for name, into in (("versions", counts.versions), ("ciphers", counts.ciphers)):
                for key, count in state[name].items():
                    into[key] = into.get(key, 0) + int(count)
        return counts

    def summary(self) -> dict[str, Any]:
        """summary.json's ``tls`` object."""
        return {
            "versions": dict(sorted(self.versions.items())),
            "ciphers": dict(sorted(self.ciphers.items())),
            "handshakes": self.handshakes,
            "resumed": self.resumed,
            "resume": self.resume,
            "verified": self.verified,
        }

    def describe(self) -> str:
        """One line for the terminal: what the completed handshakes agreed, or that none
        completed (then nothing was verified or resumed, whatever the settings were)."""
        if not self.handshakes:
            return "tls: no TLS handshake completed"
        versions = ", ".join(f"{v} x{n}" for v, n in sorted(self.versions.items())) or "none"
        ciphers = ", ".join(f"{c} x{n}" for c, n in sorted(self.ciphers.items()))
        cipher_part = f" ({ciphers})" if ciphers else ""
        resumed = f"{self.resumed} resumed" if self.resume else "resumption off"
        check = (
            "certificates verified"
            if self.verified
            else "certificates NOT verified (--tls-insecure)"
        )
        return f"tls: {versions}{cipher_part}; {resumed}; {check}"
