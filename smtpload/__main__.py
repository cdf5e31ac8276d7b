"""``python -m smtpload``: the same as the ``smtpload`` command."""

from __future__ import annotations

import sys

from smtpload.cli.main import main

sys.exit(main())
