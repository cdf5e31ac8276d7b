"""``python -m smtpload``: the same as the ``smtpload`` command."""

from __future__ import annotations

from smtpload.cli.entry import entry_point

entry_point()
