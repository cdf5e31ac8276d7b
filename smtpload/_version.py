"""The package's version, in a module of its own so that nothing has to import ``smtpload``."""

from __future__ import annotations

__version__ = "0.1.0"
