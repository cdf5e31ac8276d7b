"""The grammar of a ``data`` step's message sources: generated MIME messages and real ones.

``step_syntax.py`` hands a ``data:`` mapping here when it uses one of ``MESSAGE_KEYS`` (or a
``size:`` that is a distribution); the older forms (``data: TEXT``, ``{message: TEXT, size:
N}``) stay step_syntax.py's. The forms read here (docs/scenario-language.md, "Messages"):

* generated, built with the ``email`` package when the scenario is compiled
  (protocol/messages.py): ``{headers: {Name: TEMPLATE, ...}, body: TEMPLATE, attachments:
  [...], size: SIZE, smtputf8: BOOL}``; or ``{message: TEMPLATE, size: DISTRIBUTION}``;
* real: ``{file: message.eml}``, ``{mbox: archive.mbox, order: in_order|random}``,
  ``{maildir: ./Maildir, order: ...}``, each with ``strip_trace: true`` if asked; read here,
  once (scenario/mail_files.py), relative to the scenario's folder.

A SIZE is bytes (``20000``, ``20KiB``, ``2MB``), ``{weighted: [[2KiB, 70], [50KiB, 25]]}`` or
``{median: 20KiB, p99: 2MiB}`` (log-normal). Problems go to the caller's ``NodeReader``, at the
offending node; a file's problem at its key.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from smtpload.errors import clipped, shown
from smtpload.scenario.model import (
    MAX_DATA_SIZE_BYTES,
    MessageAttachment,
    MessageSpec,
    SizeSpec,
)
from smtpload.scenario.yaml_nodes import BOOL_TAG, TEXT_TAGS, NodeReader, is_true
from smtpload.scenario.yaml_tree import MappingNode, Node, ScalarNode, SequenceNode

if TYPE_CHECKING:
    from smtpload.scenario.mail_files import LoadBudget

# scenario/mail_files.py (the mail file readers) and mimetypes are imported where a scenario
# names a file, mailbox or attachment: a plain message needs neither (tests/test_startup.py).

__all__ = ["MESSAGE_KEYS", "byte_count", "read_message", "read_size", "uses_message_syntax"]

#: The keys of ``data:`` read here (besides ``message`` and ``size``, which the older forms
#: share).
MESSAGE_KEYS = (
    "headers",
    "body",
    "attachments",
    "smtputf8",
    "file",
    "mbox",
    "maildir",
    "order",
    "strip_trace",
)
_SOURCES = ("file", "mbox", "maildir")
_GENERATED = ("headers", "body", "attachments", "smtputf8", "size", "message")
_ORDERS = ("in_order", "random")
_ATTACHMENT_KEYS = ("file", "size", "type", "name")
_SIZE_FORMS = (
    "bytes (20000, 20KiB, 2MB), {weighted: [[2KiB, 70], [50KiB, 30]]} or {median: 20KiB, p99: 2MiB}"
)
#: The most entries of a ``weighted:`` size list.
MAX_WEIGHTED_SIZES = 1000
#: The most attachments of one message.
MAX_ATTACHMENTS = 100
# The email package writes these from the body and the attachments.
_MIME_FIELDS = ("mime-version", "content-type", "content-transfer-encoding")
# RFC 5322 §3.6.8: a field name is printable US-ASCII but ":".
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_BYTES = re.compile(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*")

# What a scenario's reader has loaded so far: the bounds are the scenario's, not a step's.
_BUDGETS: weakref.WeakKeyDictionary[NodeReader, LoadBudget] = weakref.WeakKeyDictionary()

AddTemplate = Callable[[Node, str], bool]


def uses_message_syntax(keys: dict[str, tuple[ScalarNode, Node]]) -> bool:
    """Whether a ``data:`` mapping with these keys is one of this module's forms."""
    return any(key in MESSAGE_KEYS for key in keys) or (
        "size" in keys and isinstance(keys["size"][1], MappingNode)
    )


# -- sizes ---------------------------------------------------------------------------------


def byte_count(node: Node, reader: NodeReader, what: str) -> int | None:
    """A number of bytes: a whole number, or text with a unit (``20KiB``, ``2MB``, ``512B``;
    KB, MB, GB are powers of 1000, KiB, MiB, GiB of 1024), at most ``MAX_DATA_SIZE_BYTES``."""
    if isinstance(node, ScalarNode) and node.tag in TEXT_TAGS:
        match = _BYTES.fullmatch(node.value)
        unit = _UNITS.get(match.group(2).lower()) if match else None
        if match is None or unit is None:
            reader.problem(
                node,
                f"{what}: {shown(node.value)} is not a size; write bytes, or a number with B, KB,"
                " MB, GB (1000s) or KiB, MiB, GiB (1024s), such as 20KiB",
            )
            return None
        value = float(match.group(1).replace("_", "")) * unit
        if value != int(value):
            reader.problem(node, f"{what}: {shown(node.value)} is not a whole number of bytes")
            return None
        size: float | None = int(value)
    else:
        size = reader.number(node, what, whole=True)
    if size is None:
        return None
    if size < 0:
        reader.problem(node, f"{what} must be 0 or more bytes")
        return None
    if size > MAX_DATA_SIZE_BYTES:
        reader.problem(
            node,
            f"{what}: {int(size):,} bytes is more than the largest message smtpload sends,"
            f" {MAX_DATA_SIZE_BYTES:,} bytes (1 GiB); check the number",
        )
        return None
    return int(size)


def read_size(node: Node, reader: NodeReader, what: str) -> SizeSpec | None:
    """A message's size: fixed, weighted or log-normal (module docstring)."""
    if not isinstance(node, MappingNode):
        fixed = byte_count(node, reader, what)
        return None if fixed is None else SizeSpec(fixed=fixed)
    keys = reader.mapping(node, f"in {what}", ("weighted", "median", "p99"))
    if "weighted" in keys and ("median" in keys or "p99" in keys):
        reader.problem(node, f"{what}: give either `weighted:` or `median:` with `p99:`")
        return None
    if "weighted" in keys:
        return _weighted(keys["weighted"][1], reader, f"{what}: weighted")
    if "median" not in keys or "p99" not in keys:
        if keys or not node.value:
            reader.problem(node, f"{what} takes {_SIZE_FORMS}")
        return None
    median = byte_count(keys["median"][1], reader, f"{what}: median")
    p99 = byte_count(keys["p99"][1], reader, f"{what}: p99")
    if median is None or p99 is None:
        return None
    if median < 1 or p99 <= median:
        reader.problem(
            keys["p99"][1],
            f"{what}: a log-normal size needs 1 <= median < p99 (here {median:,} and {p99:,}"
            " bytes); for one size, write it alone",
        )
        return None
    return SizeSpec(median=median, p99=p99)


def _weighted(node: Node, reader: NodeReader, what: str) -> SizeSpec | None:
    example = "such as [[2KiB, 70], [50KiB, 25], [2MiB, 5]]"
    if not isinstance(node, SequenceNode) or not node.value:
        reader.problem(node, f"{what} takes a list of [size, weight] pairs, {example}")
        return None
    if len(node.value) > MAX_WEIGHTED_SIZES:
        reader.problem(node, f"{what} has {len(node.value):,} sizes; at most {MAX_WEIGHTED_SIZES}")
        return None
    pairs: list[tuple[int, float]] = []
    for item in node.value:
        if not isinstance(item, SequenceNode) or len(item.value) != 2:
            reader.problem(item, f"each entry of {what} is a [size, weight] pair, {example}")
            continue
        size = byte_count(item.value[0], reader, f"{what}: size")
        weight = reader.number(item.value[1], f"{what}: weight")
        if weight is not None and weight <= 0:
            reader.problem(item.value[1], f"{what}: a weight must be greater than 0")
            continue
        if size is not None and weight is not None:
            pairs.append((size, float(weight)))
    if len(pairs) != len(node.value):
        return None
    return SizeSpec(weighted=tuple(pairs))


# -- the message ---------------------------------------------------------------------------


def read_message(
    node: MappingNode,
    keys: dict[str, tuple[ScalarNode, Node]],
    reader: NodeReader,
    add_template: AddTemplate,
) -> MessageSpec | None:
    """A ``data:`` mapping's message source (``keys``: its keys, as ``reader.mapping`` read
    them); None after reporting what is wrong. ``add_template`` reads a template (reporting
    its syntax) and records the variables it uses for the checks across steps."""
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    sources = [key for key in _SOURCES if key in keys]
    for extra in sources[1:]:
        reader.problem(
            keys[extra][0],
            f"data: give one message source, `{sources[0]}:` or `{extra}:`, not both",
        )
    if sources:
        for key in _GENERATED:
            if key in keys:
                reader.problem(
                    keys[key][0],
                    f"data: `{key}:` is for a generated message; `{sources[0]}:` sends the"
                    " messages as they are",
                )
        return _real(sources[0], keys, reader, line, column)
    for key in ("order", "strip_trace"):
        if key in keys:
            reader.problem(
                keys[key][0], f"data: `{key}:` belongs with `mbox:`, `maildir:` or `file:`"
            )
    return _generated(node, keys, reader, add_template, line, column)


def _base_folder(reader: NodeReader) -> str:
    """The folder relative file names are taken from: the scenario's own."""
    if reader.path.startswith("<"):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(reader.path))


def _budget(reader: NodeReader) -> LoadBudget:
    from smtpload.scenario.mail_files import LoadBudget

    budget = _BUDGETS.get(reader)
    if budget is None:
        budget = _BUDGETS[reader] = LoadBudget()
    return budget


def _flag(node: Node, reader: NodeReader, what: str) -> bool:
    if isinstance(node, ScalarNode) and node.tag == BOOL_TAG:
        return is_true(node)
    reader.problem(node, f"{what} takes true or false")
    return False


def _real(
    source: str,
    keys: dict[str, tuple[ScalarNode, Node]],
    reader: NodeReader,
    line: int,
    column: int,
) -> MessageSpec | None:
    key_node, value_node = keys[source]
    written = reader.text(value_node, f"data: {source}")
    trace = "strip_trace" in keys and _flag(keys["strip_trace"][1], reader, "data: strip_trace")
    in_order = True
    if "order" in keys:
        order_node = keys["order"][1]
        order = reader.text(order_node, "data: order")
        if source == "file":
            reader.problem(keys["order"][0], "data: `order:` is for a mailbox's messages")
        elif order is not None and order not in _ORDERS:
            reader.problem(
                order_node,
                f"data: order {shown(order)} is not a message order; use in_order (session s's"
                " m-th message of the step is message (s-1)+(m-1), wrapping) or random",
            )
        in_order = order != "random"
    if written is None:
        return None
    if not written.strip():
        reader.problem(value_node, f"data: {source} needs a path")
        return None
    from smtpload.scenario.mail_files import MailFileError, load_eml, load_maildir, load_mbox

    path = os.path.join(_base_folder(reader), written)
    load = {"file": load_eml, "mbox": load_mbox, "maildir": load_maildir}[source]
    try:
        messages = load(path, clipped(written), _budget(reader), trace=trace)
    except MailFileError as error:
        reader.problem(key_node, f"data: {source}: {error}")
        return None
    return MessageSpec(
        source=source,
        messages=messages,
        in_order=in_order,
        origin=written,
        line=line,
        column=column,
    )


def _generated(
    node: MappingNode,
    keys: dict[str, tuple[ScalarNode, Node]],
    reader: NodeReader,
    add_template: AddTemplate,
    line: int,
    column: int,
) -> MessageSpec | None:
    ok = True
    template = None
    if "message" in keys:
        for key in ("headers", "body", "attachments", "smtputf8"):
            if key in keys:
                reader.problem(
                    keys[key][0],
                    f"data: `{key}:` builds a message, and `message:` is one already; give"
                    " either `message:` or `headers:`/`body:`",
                )
                ok = False
        template = _text(keys["message"][1], reader, "data: message", add_template)
        ok = ok and template is not None
    headers: tuple[tuple[str, str], ...] = ()
    if "headers" in keys:
        read = _headers(keys["headers"][1], reader, add_template)
        ok = ok and read is not None
        headers = read or ()
    body = ""
    if "body" in keys:
        text = _text(keys["body"][1], reader, "data: body", add_template)
        ok = ok and text is not None
        body = text or ""
    attachments: tuple[MessageAttachment, ...] = ()
    if "attachments" in keys:
        parts = _attachments(keys["attachments"][1], reader)
        ok = ok and parts is not None
        attachments = parts or ()
    smtputf8 = "smtputf8" in keys and _flag(keys["smtputf8"][1], reader, "data: smtputf8")
    size = None
    if "size" in keys:
        size = read_size(keys["size"][1], reader, "data: size")
        ok = ok and size is not None
    if not ok:
        return None
    return MessageSpec(
        source="generated",
        headers=headers,
        body=body,
        attachments=attachments,
        size=size,
        smtputf8=smtputf8,
        template=template,
        line=line,
        column=column,
    )


def _text(node: Node, reader: NodeReader, what: str, add_template: AddTemplate) -> str | None:
    text = reader.text(node, what)
    if text is None:
        return None
    if "\0" in text:
        reader.problem_at(node, text.index("\0"), f"{what} holds a NUL character")
        return None
    return text if add_template(node, text) else None


def _headers(
    node: Node, reader: NodeReader, add_template: AddTemplate
) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(node, MappingNode) or not node.value:
        reader.problem(
            node,
            'data: headers takes a mapping of fields, such as {From: "<a@example.test>",'
            ' Subject: "test {session}"}',
        )
        return None
    fields: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    ok = True
    for name, (key_node, value_node) in reader.mapping(node, "in data: headers", None).items():
        where = f"data: headers: {clipped(name)}"
        if not _FIELD_NAME.fullmatch(name):
            reader.problem(
                key_node,
                f"{where}: a header field name is printable ASCII without spaces or ':'"
                " (RFC 5322 §3.6.8)",
            )
            ok = False
            continue
        if name.lower() in seen:
            reader.problem(key_node, f"{where}: given twice (as {shown(seen[name.lower()])})")
            ok = False
            continue
        seen[name.lower()] = name
        if name.lower() in _MIME_FIELDS:
            reader.problem(
                key_node,
                f"{where}: the email package writes this field from the body and the"
                " attachments; leave it out",
            )
            ok = False
            continue
        text = reader.text(value_node, where)
        if text is not None and ("\r" in text or "\n" in text or "\0" in text):
            reader.problem(
                value_node,
                f"{where} must be one line (a long value is folded when the message is built)",
            )
            text = None
        if text is None or not add_template(value_node, text):
            ok = False
            continue
        fields.append((name, text))
    return tuple(fields) if ok else None


def _attachments(node: Node, reader: NodeReader) -> tuple[MessageAttachment, ...] | None:
    import mimetypes

    from smtpload.scenario.mail_files import MailFileError, read_attachment

    example = "such as [{file: report.pdf}, {size: 100KiB, name: blob.bin}]"
    if not isinstance(node, SequenceNode) or not node.value:
        reader.problem(node, f"data: attachments takes a list of parts, {example}")
        return None
    if len(node.value) > MAX_ATTACHMENTS:
        reader.problem(node, f"data: attachments: at most {MAX_ATTACHMENTS} parts")
        return None
    parts: list[MessageAttachment] = []
    for number, item in enumerate(node.value, start=1):
        what = f"data: attachment {number}"
        if not isinstance(item, MappingNode):
            reader.problem(item, f"{what} must be a mapping, {example}")
            continue
        keys = reader.mapping(item, f"in {what}", _ATTACHMENT_KEYS)
        if ("file" in keys) == ("size" in keys):
            reader.problem(item, f"{what} needs either `file:` or `size:` (generated bytes)")
            continue
        name = None
        if "name" in keys:
            name = reader.text(keys["name"][1], f"{what}: name")
            if name is None:
                continue
        content_type = None
        if "type" in keys:
            content_type = reader.text(keys["type"][1], f"{what}: type")
            if content_type is not None and not _TYPE.fullmatch(content_type):
                reader.problem(
                    keys["type"][1],
                    f"{what}: type {shown(content_type)} is not a MIME type such as"
                    " application/pdf",
                )
                continue
            if content_type is None:
                continue
        if "size" in keys:
            size = byte_count(keys["size"][1], reader, f"{what}: size")
            if size is not None:
                try:  # made when the scenario is compiled, and held for the run
                    _budget(reader).take(size, f"{size:,} generated bytes")
                except MailFileError as error:
                    reader.problem(keys["size"][1], f"{what}: {error}")
                    continue
                parts.append(
                    MessageAttachment(
                        content_type or "application/octet-stream",
                        name or f"attachment-{number}.bin",
                        size=size,
                    )
                )
            continue
        written = reader.text(keys["file"][1], f"{what}: file")
        if written is None:
            continue
        path = os.path.join(_base_folder(reader), written)
        try:
            data = read_attachment(path, f"the file {clipped(written)}", _budget(reader))
        except MailFileError as error:
            reader.problem(keys["file"][0], f"{what}: {error}")
            continue
        guessed, _ = mimetypes.guess_type(written)
        parts.append(
            MessageAttachment(
                content_type or guessed or "application/octet-stream",
                name or os.path.basename(written),
                data=data,
            )
        )
    return tuple(parts) if len(parts) == len(node.value) else None
