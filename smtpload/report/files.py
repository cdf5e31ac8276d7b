"""Output files that never cost the user data: probed before a run, replaced whole, recognised.

Every file smtpload writes (the results folder, ``--json``, baselines, JUnit and JSON
comparisons, imported scenarios) goes through this module:

- :func:`probe_output`, before a run, checks that a destination can be written *without
  touching it*: it creates and deletes a temporary file (``O_EXCL``) in the destination's
  folder, or a temporary folder in the nearest existing ancestor when the folder is still to be
  made, and opens an existing destination for appending and closes it. A read-only, immutable
  or missing place then fails in a second, not after the last session of a long run.
- :func:`replacing` and :func:`write_text` write to a temporary file in the destination's
  folder and rename it over the destination (``os.replace``: rename(2) is atomic within a file
  system, POSIX.1-2017). A reader, an interrupted run or a failed write (disk full, file size
  limit) never leaves a half-written or truncated file: the old one stays as it was.
- :func:`is_smtpload_report` recognises, by content, the reports smtpload writes, so that a CI
  re-run may replace them while anything else of the user's needs ``--force``.

A destination that exists and is not a regular file (``/dev/stdout``, ``/dev/null``, a pipe) is
a stream: it is written directly, as it cannot be half-written the way a file can. A symlink is
followed: the file it points to is replaced, the link stays.

This module does file I/O and nothing else: no trio, no sockets, no policy about which files
are the user's (that is the command line's, ``cli/common.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from smtpload.errors import OutputError, clipped

__all__ = [
    "JUNIT_SUITE_PREFIX",
    "MAX_REPORT_BYTES",
    "is_smtpload_report",
    "is_stream",
    "probe_output",
    "replacing",
    "write_text",
]

#: The JUnit test suites that smtpload writes are named ``smtpload compare <scenario>``; a JUnit
#: file whose root is named so is recognised as smtpload's own.
JUNIT_SUITE_PREFIX = "smtpload compare "

#: A file larger than this is never recognised as an smtpload report (so never read whole):
#: summaries, comparisons and JUnit reports are a few KiB to a few MiB.
MAX_REPORT_BYTES = 16 * 1024 * 1024

# compare's JSON output (regression/compare.py, comparison_summary) has no version key; these
# top-level keys identify it. tests/test_files.py checks them against the real output.
_COMPARISON_KEYS = frozenset({"baseline", "current", "regressions", "warnings", "exit_status"})
_BASELINE_FORMAT_PREFIX = "smtpload-baseline/"
_XML_CHUNK_BYTES = 4096
_MAX_NAME_PART = 100


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _short(name: str) -> str:
    # A temporary name adds ~15 characters; most file systems allow 255 bytes in a name.
    return name[:_MAX_NAME_PART]


def is_stream(path: Path) -> bool:
    """Whether ``path`` exists and is neither a regular file nor a folder (a device, a pipe)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _real_destination(path: Path) -> Path:
    """The file that writing ``path`` replaces: symlinks followed, as an absolute path."""
    return Path(os.path.realpath(path))


def probe_output(path: Path) -> None:
    """Check that ``path`` can be written at the end of a run, leaving it and its folder as
    they are.

    Raises:
        OutputError: ``path`` is a folder, its folder is not a folder, or it cannot be written
            there; the message names ``path`` and says why.
    """
    try:
        _probe(path)
    except OSError as error:  # looking at the name failed: too long for a path, say
        raise OutputError(
            f"{clipped(str(path))}: cannot be written there: {_reason(error)}"
        ) from None


def _probe(path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    if is_stream(path):
        return
    destination = _real_destination(path)
    folder = destination.parent
    missing = folder
    while not missing.exists():
        if missing.parent == missing:  # pragma: no cover - "/" always exists
            break
        missing = missing.parent
    if not missing.is_dir():
        raise OutputError(f"{path}: {missing} is not a folder; choose another place")
    try:
        if missing != folder:
            # The folders are made when the file is written; for now, that they could be.
            os.rmdir(tempfile.mkdtemp(dir=missing, prefix=".smtpload-probe-"))
        else:
            prefix = f".{_short(destination.name)}."
            fd, probe = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".probe")
            os.close(fd)
            os.unlink(probe)
        if destination.exists():
            # Appending to nothing leaves content and modification time alone, but fails on an
            # immutable file, which a rename cannot replace either.
            os.close(os.open(destination, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))
    except OSError as error:
        raise OutputError(f"{path}: cannot be written there: {_reason(error)}") from None


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A binary stream whose content replaces ``path`` whole when the ``with`` block ends.

    The stream is a temporary file in ``path``'s folder (made with its parents if needed).
    When the block ends normally, the file is renamed over ``path``, keeping an existing
    file's permissions (and flushed to disk first when it replaces one). When it raises (a
    failed write, Ctrl-C), the temporary file is removed and ``path`` is left as it was.

    Raises:
        OutputError: the file could not be written; the message names ``path``.
    """
    if is_stream(path):
        try:
            with open(path, "wb") as stream:
                yield stream
        except BrokenPipeError:
            # `--json /dev/stdout | head -1`: the reader has gone, which costs only the output
            # (as for the command's own stdout, cli/pipes.py), not the exit status.
            return
        except OSError as error:
            raise OutputError(f"cannot write {path}: {_reason(error)}") from None
        return
    destination = _real_destination(path)
    temporary = destination.with_name(f".{_short(destination.name)}.{secrets.token_hex(4)}.tmp")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode: int | None = stat.S_IMODE(os.stat(destination).st_mode)
        except FileNotFoundError:
            mode = None  # a new file: 0o666 less the umask, as open() would make it
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            if mode is not None:
                os.fchmod(stream.fileno(), mode)
            yield stream
            stream.flush()
            if mode is not None:
                # An old file is at stake: without this, a system crash soon after the rename
                # can leave an empty file in its place (ext4, xfs). A new file has nothing to
                # lose, and a results folder of a dozen files would pay ~6 ms each.
                os.fsync(stream.fileno())
        os.replace(temporary, destination)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError):
            raise OutputError(f"cannot write {path}: {_reason(error)}") from None
        raise


def write_text(path: Path, text: str) -> Path:
    """Replace ``path`` whole with ``text`` in UTF-8 (see :func:`replacing`); returns ``path``."""
    with replacing(path) as stream:
        stream.write(text.encode("utf-8"))
    return path


def is_smtpload_report(path: Path) -> bool:
    """Whether ``path`` is a report that smtpload wrote, which a later run may replace.

    Recognised, by content: a JSON object carrying ``smtpload_version`` (``summary.json`` and
    ``run --json``); compare's JSON output (its top-level keys); a JUnit XML file whose root is
    named ``smtpload compare ...``. A baseline is *not* a report: it carries
    ``smtpload_version`` too, but it is the user's data (``"format": "smtpload-baseline/1"``).
    Anything unreadable, larger than :data:`MAX_REPORT_BYTES` or else is not a report.
    """
    try:
        with open(path, "rb") as stream:
            head = stream.read(MAX_REPORT_BYTES + 1)
    except OSError:
        return False
    if len(head) > MAX_REPORT_BYTES:
        return False
    if head.lstrip()[:1] == b"<":
        return _is_junit_report(head)
    return _is_json_report(head)


def _is_json_report(data: bytes) -> bool:
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return False
    if not isinstance(value, dict):
        return False
    file_format = value.get("format")
    if isinstance(file_format, str) and file_format.startswith(_BASELINE_FORMAT_PREFIX):
        return False
    return "smtpload_version" in value or value.keys() >= _COMPARISON_KEYS


def _is_junit_report(data: bytes) -> bool:
    # Imported here: only an existing output file that may be a report is read, and a run's
    # start need not load an XML parser for that (tests/test_startup.py).
    import xml.etree.ElementTree as ET

    # Only the root element's start tag matters: feed the file in chunks and stop there.
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start",))
    try:
        for offset in range(0, len(data), _XML_CHUNK_BYTES):
            parser.feed(data[offset : offset + _XML_CHUNK_BYTES])
            for event in parser.read_events():
                root = event[-1]
                if not isinstance(root, ET.Element):  # pragma: no cover - "start" events only
                    return False
                name = root.get("name", "")
                return root.tag in ("testsuites", "testsuite") and name.startswith(
                    JUNIT_SUITE_PREFIX
                )
    except ET.ParseError:
        return False
    return False
