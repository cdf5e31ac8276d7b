"""Places where a file cannot be written, for real, even by root (the tests run as root, and
root ignores permission bits, so ``chmod`` proves nothing).

- under a regular file: ``a-file/x.json`` fails with ENOTDIR for anyone;
- an immutable folder or file (``chattr +i``, ext4 and most Linux file systems): EPERM for
  root too. Where ``chattr`` is missing or the file system does not support it, the tests that
  need it are skipped, saying why.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["immutable"]


def _chattr(flag: str, path: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


@contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """Make ``paths`` immutable for the ``with`` block (skip the test if that cannot be done);
    they are made mutable again afterwards, whatever happens, so tmp_path can be removed."""
    done: list[Path] = []
    try:
        for path in paths:
            if not _chattr("+i", path):
                pytest.skip(f"chattr +i is not available for {path}")
            done.append(path)
        folder = paths[0].is_dir()
        probe = paths[0] / ".probe" if folder else paths[0]
        try:
            probe.open("a").close()
        except OSError:
            pass
        else:  # pragma: no cover - a file system that ignores the flag
            if folder:
                probe.unlink()
            pytest.skip("this file system does not enforce chattr +i")
        yield
    finally:
        for path in done:
            _chattr("-i", path)
