"""The grammar of a ``bdat`` step's value (RFC 3030 CHUNKING): how the message is cut.

``step_syntax.py`` hands the value of ``bdat:`` here. The forms are ``data``'s (the message
text, or ``{message: TEXT, size: BYTES}``) with three keys more: ``chunk_size: N`` (every
chunk N octets, the last the rest), ``chunks: [N1, N2, ...]`` (the sizes in turn) and
``last: empty`` (every chunk a plain ``BDAT n``, then ``BDAT 0 LAST``). When the message's
length is known here (a text without variables; or a ``size:``), the listed ``chunks`` must add
up to it; when it varies, the last listed chunk takes the rest (protocol/bdat.py).
"""

from __future__ import annotations

from collections.abc import Callable

from smtpload.scenario.message_syntax import MESSAGE_KEYS, uses_message_syntax
from smtpload.scenario.model import MAX_DATA_SIZE_BYTES, Chunking, Expectation
from smtpload.scenario.template import parse_template
from smtpload.scenario.yaml_nodes import NodeReader
from smtpload.scenario.yaml_tree import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["BDAT_CHUNK_DEFAULT", "BDAT_KEYS", "check_chunk_sizes", "message_length", "read_bdat"]

BDAT_KEYS = ("message", "size", "chunk_size", "chunks", "last")

#: RFC 3030 §2: each chunk but the last is answered 250 (the last one's 250 is the message's).
BDAT_CHUNK_DEFAULT = Expectation(codes=frozenset({250}), codes_text="250")

# A chunk size is at most the largest message smtpload sends (1 GiB): more is a slip.
_MAX_CHUNK_BYTES = MAX_DATA_SIZE_BYTES
_FILLER_LINE_BYTES = 78  # protocol/wire.py's FILLER_LINE: 76 characters and CRLF


def read_bdat(
    node: Node,
    reader: NodeReader,
    read_message: Callable[[Node], str | None],
    read_size: Callable[[Node], int | None],
    read_source: Callable[[MappingNode, dict[str, tuple[ScalarNode, Node]]], None] | None = None,
) -> tuple[str | None, int | None, Chunking, Node | None]:
    """Read ``bdat:``'s value.

    ``read_source`` reads the message sources of ``data:`` (generated, .eml, mbox, Maildir:
    message_syntax.py) when the mapping uses them; the text and size returned are then None.

    Returns:
        The message text (None when only a size is given or it was invalid), the size, the
        chunking (without ``expect_chunk``, a step option) and the ``chunks`` node (for
        ``check_chunk_sizes``'s message), after reporting what is wrong.
    """
    if not isinstance(node, MappingNode):
        return read_message(node), None, Chunking(), None
    keys = reader.mapping(node, "in bdat", BDAT_KEYS + MESSAGE_KEYS)
    text = size = None
    if read_source is not None and uses_message_syntax(keys):
        read_source(node, keys)
    else:
        if "message" not in keys and "size" not in keys:
            reader.problem(node, "bdat needs `message:`, `size:`, or both")
        text = read_message(keys["message"][1]) if "message" in keys else None
        size = read_size(keys["size"][1]) if "size" in keys else None
    chunk_size = None
    chunks: tuple[int, ...] = ()
    chunks_node = None
    if "chunk_size" in keys:
        chunk_size = _chunk_size(keys["chunk_size"][1], reader, "bdat: chunk_size", lowest=1)
    if "chunks" in keys:
        chunks_node = keys["chunks"][1]
        chunks = _chunks(chunks_node, reader)
        if "chunk_size" in keys:
            reader.problem(keys["chunks"][0], "give either `chunk_size:` or `chunks:`, not both")
            chunks = ()
    last_empty = False
    if "last" in keys:
        last_node = keys["last"][1]
        written = reader.text(last_node, "bdat: last")
        if written is not None and written != "empty":
            reader.problem(
                last_node,
                "bdat: last takes only `empty` (end with a `BDAT 0 LAST` of its own); leave it"
                " out to send LAST with the last chunk",
            )
        last_empty = written == "empty"
    return text, size, Chunking(chunk_size, chunks, last_empty), chunks_node


def _chunk_size(node: Node, reader: NodeReader, what: str, *, lowest: int) -> int | None:
    size = reader.number(node, what, whole=True)
    if size is None:
        return None
    if size < lowest:
        reader.problem(node, f"{what} must be {lowest} or more octets")
        return None
    if size > _MAX_CHUNK_BYTES:
        reader.problem(node, f"{what} {int(size)} is more than 1 GiB; check the number of zeros")
        return None
    return int(size)


def _chunks(node: Node, reader: NodeReader) -> tuple[int, ...]:
    if not isinstance(node, SequenceNode) or not node.value:
        reader.problem(node, "bdat: chunks takes a list of sizes in octets, e.g. [100, 200]")
        return ()
    sizes = [_chunk_size(item, reader, "a chunk size", lowest=0) for item in node.value]
    return tuple(size for size in sizes if size is not None) if None not in sizes else ()


def message_length(text: str | None, size: int | None) -> int | None:
    """The octets a bdat step's message has, when that is known before the run: its text's
    CRLF form, padded to ``size`` as protocol/bdat.py pads it; with variables (or only a size,
    whose generated headers vary), ``size``, else None."""
    template = None if text is None else parse_template(text)
    if template is None or not template.is_constant:
        return size
    literal = template.parts[0].encode("utf-8")
    octets = len(literal.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    if size is None:
        return octets
    if octets and not literal.replace(b"\r\n", b"\n").endswith(b"\n"):
        octets += 2
    missing = size - octets
    if missing <= 0:
        return octets
    full_lines, rest = divmod(missing, _FILLER_LINE_BYTES)
    if rest >= 3 or (rest and full_lines):
        return size
    return octets + full_lines * _FILLER_LINE_BYTES  # 1 or 2 short, with no line to lengthen


def check_chunk_sizes(
    chunking: Chunking, chunks_node: Node | None, length: int | None, reader: NodeReader
) -> None:
    """The listed chunks must add up to the message's length when it is known here."""
    if chunks_node is None or not chunking.chunks or length is None:
        return
    total = sum(chunking.chunks)
    if total != length:
        reader.problem(
            chunks_node,
            f"bdat: chunks add up to {total} octets and the message has {length} (its text with"
            " CRLF line ends, padded to size:); make the sizes add up, or use chunk_size:",
        )
