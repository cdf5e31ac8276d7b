"""Real messages from files: an ``.eml``, an mbox, a Maildir, read once at load time.

``message_syntax.py`` hands a ``data:`` step's ``file:``, ``mbox:`` or ``maildir:`` here. Each
message is checked and made ready to send as it is: its line ends made CRLF (RFC 5321 §2.3.8),
nothing else changed, except what the scenario asks (``strip_trace``) and mbox's quoting:

* mbox (the stdlib ``mailbox.mbox``) separates messages by ``From `` lines and quotes a body
  line that starts with ``From `` as ``>From ``; that one level of ``>`` is taken off again, as
  mboxrd does (``>>From `` becomes ``>From ``), since the quoting belongs to the file, not the
  message.
* A bare CR (one not followed by LF) or a NUL is refused: RFC 5321 §2.3.8 forbids CR and LF
  alone in the mail data, and NUL is no text (RFC 5322 §2.1.1); a server may cut the message
  there, or refuse it. Refused with where it is (message number, byte offset), for the
  scenario's reader to place at the key.
* ``strip_trace`` removes the ``Received``, ``Delivered-To`` and ``Return-Path`` fields (with
  their folded lines) from the header section: a message taken from a mailbox carries the
  trace of its first delivery, and Postfix's local delivery treats a ``Delivered-To`` naming
  the recipient as a mail loop.

Everything read is bounded (``LoadBudget``): all the messages of a scenario together at most
``MAX_LOADED_BYTES``, and at most ``MAX_LOADED_MESSAGES`` of them; a file that is not a regular
file (a FIFO, a device) is refused before it is read. Nothing here is about YAML.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

__all__ = [
    "MAX_LOADED_BYTES",
    "MAX_LOADED_MESSAGES",
    "TRACE_FIELDS",
    "LoadBudget",
    "MailFileError",
    "load_eml",
    "load_maildir",
    "load_mbox",
    "read_attachment",
    "strip_trace",
]

#: The most bytes of messages (and attachment files) one scenario loads: 256 MiB. They are held
#: in memory for the whole run (each is sent from one shared buffer).
MAX_LOADED_BYTES = 256 * 1024 * 1024

#: The most messages one scenario loads from mailboxes: 100,000.
MAX_LOADED_MESSAGES = 100_000

#: The trace fields ``strip_trace`` removes (RFC 5321 §4.4, RFC 9228 Delivered-To).
TRACE_FIELDS = (b"received", b"delivered-to", b"return-path")

_BARE_CR = re.compile(rb"\r(?!\n)")
# mboxrd: ">From " at a line's start, after any number of ">", lost one ">" when written.
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)


class MailFileError(Exception):
    """A file or message that cannot be sent; ``str()`` says why, fit to follow its key."""


@dataclass(slots=True)
class LoadBudget:
    """What is left of one scenario's bounds (``MAX_LOADED_BYTES``, ``MAX_LOADED_MESSAGES``)."""

    bytes_left: int = MAX_LOADED_BYTES
    messages_left: int = MAX_LOADED_MESSAGES

    def take(self, size: int, what: str) -> None:
        """Count ``size`` bytes of ``what``.

        Raises:
            MailFileError: they are more than what is left.
        """
        if size > self.bytes_left:
            raise MailFileError(
                f"{what} would take the messages loaded past {MAX_LOADED_BYTES // 2**20} MiB,"
                " the most one scenario loads (they are held in memory for the run); use"
                " fewer or smaller messages, or `size:` for large generated ones"
            )
        self.bytes_left -= size

    def count(self, messages: int, what: str) -> None:
        if messages > self.messages_left:
            raise MailFileError(
                f"{what} holds {messages:,} messages, more than the {self.messages_left:,} left"
                f" of the {MAX_LOADED_MESSAGES:,} one scenario loads; use a smaller mailbox"
            )
        self.messages_left -= messages


def _regular_size(path: str, what: str) -> int:
    try:
        info = os.stat(path)
    except OSError as error:
        raise MailFileError(f"cannot read {what} ({error.strerror or error})") from None
    if not stat.S_ISREG(info.st_mode):
        raise MailFileError(f"{what} is not a regular file")
    return info.st_size


def _read(path: str, what: str, budget: LoadBudget) -> bytes:
    size = _regular_size(path, what)
    budget.take(size, what)
    try:
        with open(path, "rb") as stream:
            data = stream.read(budget.bytes_left + size + 1)
    except OSError as error:
        raise MailFileError(f"cannot read {what} ({error.strerror or error})") from None
    # A file that grew since stat() is counted as it is now.
    budget.bytes_left += size
    budget.take(len(data), what)
    return data


def read_attachment(path: str, what: str, budget: LoadBudget) -> bytes:
    """An attachment's bytes, taken as they are (counted in the budget)."""
    return _read(path, what, budget)


def _ready(data: bytes, what: str, *, trace: bool) -> bytes:
    """A message checked and with CRLF line ends (``what`` names it in a refusal)."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise MailFileError(
            f"{what} holds a NUL byte (at byte {nul:,}), which no message may carry"
            " (RFC 5322 §2.1.1)"
        )
    bare = _BARE_CR.search(data)
    if bare is not None:
        raise MailFileError(
            f"{what} holds a bare CR, one not followed by LF (at byte {bare.start():,}), which"
            " RFC 5321 §2.3.8 forbids in the mail data; fix the line ends"
        )
    if not data.strip():
        raise MailFileError(f"{what} is empty")
    crlf = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not crlf.endswith(b"\r\n"):
        crlf += b"\r\n"
    return strip_trace(crlf) if trace else crlf


def strip_trace(message: bytes) -> bytes:
    """``message`` (CRLF line ends) without its ``TRACE_FIELDS`` fields, folded lines and all.

    Only the header section (up to the first empty line) is looked at; the body is untouched.
    """
    end = 0 if message.startswith(b"\r\n") else message.find(b"\r\n\r\n")
    if end < 0:
        end = len(message)  # headers only
    header, rest = message[:end], message[end:]
    kept: list[bytes] = []
    dropping = False
    for line in header.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):  # a folded line belongs to the field above it
            if not dropping:
                kept.append(line)
            continue
        name = line.partition(b":")[0].strip().lower()
        dropping = name in TRACE_FIELDS
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept) + rest


def load_eml(path: str, shown_path: str, budget: LoadBudget, *, trace: bool) -> tuple[bytes, ...]:
    """The one message of an ``.eml`` file (RFC 5322 text)."""
    what = f"the message file {shown_path}"
    budget.count(1, what)
    return (_ready(_read(path, what, budget), what, trace=trace),)


def load_mbox(path: str, shown_path: str, budget: LoadBudget, *, trace: bool) -> tuple[bytes, ...]:
    """The messages of an mbox file, in file order, their ``>From `` quoting undone."""
    import mailbox  # here: it imports the email package, which a scenario without one skips

    what = f"the mbox {shown_path}"
    budget.take(_regular_size(path, what), what)
    try:
        box = mailbox.mbox(path, create=False)
    except (OSError, mailbox.Error) as error:
        raise MailFileError(f"cannot read {what} ({error})") from None
    try:
        keys = box.keys()
        budget.count(len(keys), what)
        if not keys:
            raise MailFileError(f"{what} holds no message (each starts with a `From ` line)")
        messages = []
        for number, key in enumerate(keys, start=1):
            data = _QUOTED_FROM.sub(rb"\1", box.get_bytes(key))
            messages.append(_ready(data, f"message {number:,} of {what}", trace=trace))
    except (OSError, mailbox.Error) as error:
        raise MailFileError(f"cannot read {what} ({error})") from None
    finally:
        box.close()
    return tuple(messages)


def load_maildir(
    path: str, shown_path: str, budget: LoadBudget, *, trace: bool
) -> tuple[bytes, ...]:
    """The messages of a Maildir (``new/`` and ``cur/``), in the order of their file names
    (which start with their delivery time, so this is about the order they arrived in)."""
    import mailbox  # here: it imports the email package, which a scenario without one skips

    what = f"the Maildir {shown_path}"
    if not os.path.exists(path):
        raise MailFileError(f"{what} does not exist (a Maildir is a folder with cur/ and new/)")
    if not os.path.isdir(path):
        raise MailFileError(f"{what} is not a folder (a Maildir has cur/, new/ and tmp/)")
    try:
        box = mailbox.Maildir(path, factory=None, create=False)
        keys = sorted(box.keys())  # a key is the file's name without its ":2,flags"
    except (OSError, mailbox.Error) as error:
        raise MailFileError(f"cannot read {what} ({error})") from None
    budget.count(len(keys), what)
    if not keys:
        raise MailFileError(f"{what} holds no message (in its new/ or cur/ folder)")
    files = _maildir_files(path, shown_path)
    messages = []
    for number, key in enumerate(keys, start=1):
        label = f"message {number:,} of {what}"
        if key in files:
            # get_file() would open a FIFO and wait for a writer forever, and read a device.
            file, shown_file = files[key]
            _regular_size(file, f"{label} ({shown_file})")
        try:
            with box.get_file(key) as stream:
                data = stream.read(budget.bytes_left + 1)
        except (OSError, KeyError) as error:
            raise MailFileError(f"cannot read {label} ({error})") from None
        budget.take(len(data), label)
        messages.append(_ready(data, label, trace=trace))
    return tuple(messages)


def _maildir_files(path: str, shown_path: str) -> dict[str, tuple[str, str]]:
    """A Maildir's message files by key, as ``mailbox.Maildir`` finds them: every entry of
    ``new/`` and ``cur/`` that is not a folder, its key its name up to the first ``:``; each
    as its path and the path to show."""
    files: dict[str, tuple[str, str]] = {}
    for folder in ("new", "cur"):
        where = os.path.join(path, folder)
        try:
            names = os.listdir(where)
        except OSError:
            continue  # mailbox.Maildir read it a moment ago; get_file() will say what is wrong
        for name in names:
            file = os.path.join(where, name)
            if not os.path.isdir(file):
                files[name.split(":")[0]] = file, os.path.join(shown_path, folder, name)
    return files
