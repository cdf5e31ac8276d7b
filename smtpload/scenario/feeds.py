"""Reading a data feed: a CSV file whose columns give variables (and recipients) per session.

A feed is read once, when the scenario is: the ``csv`` module over UTF-8 text (a byte order
mark tolerated), the first row the columns' names (each non-empty, all different), every other
row as long as the header; a wholly empty line is skipped (an editor's trailing blank line).
Bounds: at most ``MAX_FEED_BYTES`` of file and ``MAX_FEED_ROWS`` rows; a feed without rows is
refused, since no session could take a value from it.

Every problem of the file is a ``FeedError`` at the CSV's own line and column (1-based, the
column of the field's first character), so the message points where the CSV is to be fixed.
``FeedTable.position`` gives the same for a value that is refused later (a line break in a
value a command would carry: loader.py). This module knows nothing of scenarios or sessions.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from smtpload.errors import clipped, shown
from smtpload.scenario.input_file import InputTooLargeError, read_input

__all__ = [
    "MAX_FEED_BYTES",
    "MAX_FEED_ROWS",
    "FeedError",
    "FeedTable",
    "missing_column",
    "read_feed",
]

#: The largest feed file smtpload reads: 64 MiB (a million rows of a few short columns).
MAX_FEED_BYTES = 64 * 1024 * 1024

#: The most rows (after the header) a feed may hold: a million.
MAX_FEED_ROWS = 1_000_000


class FeedError(Exception):
    """A feed cannot be used; ``line`` and ``column`` (1-based) are the CSV's, 1:1 for the
    file as a whole."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


@dataclass(frozen=True, slots=True)
class FeedTable:
    """A feed as read.

    Attributes:
        columns: the header's names, in file order.
        rows: each row's values, in file order (one per column).
        starts: each row's first line in the file (1-based).
        field_columns: each row's fields' first characters' (line offset, column), as the
            CSV text has them: for a row of one line, the line offset is 0; None for a row of
            one line without quotes, whose columns follow from its values' lengths (nearly
            every row: finding them character by character took most of a large feed's
            reading time, and their tuples most of its memory).
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    starts: tuple[int, ...]
    field_columns: tuple[tuple[tuple[int, int], ...] | None, ...]

    def column_values(self, name: str) -> tuple[str, ...]:
        """The values of column ``name`` (one of ``columns``), one per row."""
        index = self.columns.index(name)
        return tuple(row[index] for row in self.rows)

    def position(self, row: int, name: str) -> tuple[int, int]:
        """Where the value of column ``name`` of row ``row`` (0-based) starts in the file."""
        index = self.columns.index(name)
        places = self.field_columns[row]
        if places is None:  # one line, no quotes: each value is its field's text
            return self.starts[row], 1 + sum(len(value) + 1 for value in self.rows[row][:index])
        offset, column = places[index]
        return self.starts[row] + offset, column


def read_feed(path: str) -> FeedTable:
    """Read and check the CSV feed at ``path``.

    Raises:
        FeedError: the file cannot be read, is too large, is not UTF-8 or not a usable feed.
    """
    try:
        raw = read_input(path, MAX_FEED_BYTES)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise FeedError(1, 1, f"cannot read the feed ({reason}); check the path") from None
    except InputTooLargeError as exc:
        raise FeedError(1, 1, f"{exc} of a feed; split it, or keep the columns you use") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FeedError(
            line, 1, f"the feed is not UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8"
        ) from None
    del raw
    return _parse(text)


def _parse(text: str) -> FeedTable:
    records = _records(text)
    header = next(records, None)
    if header is None:
        raise FeedError(1, 1, "the feed is empty; its first row names the columns")
    line, fields, places = header
    if places is None:
        places = _plain_places(fields)
    seen: dict[str, int] = {}
    for at, name in enumerate(fields):
        offset, column = places[at]
        if not name.strip():
            raise FeedError(line + offset, column, f"column {at + 1} of the header row has no name")
        if name in seen:
            raise FeedError(
                line + offset,
                column,
                f"column name {shown(name)} is given twice (columns {seen[name] + 1} and"
                f" {at + 1}); each column needs its own name",
            )
        seen[name] = at
    columns = tuple(fields)
    rows: list[tuple[str, ...]] = []
    starts: list[int] = []
    field_columns: list[tuple[tuple[int, int], ...] | None] = []
    for start, values, value_places in records:
        if len(rows) == MAX_FEED_ROWS:
            raise FeedError(
                start, 1, f"the feed has more than {MAX_FEED_ROWS:,} rows, the most it may hold"
            )
        if len(values) != len(columns):
            # At the first value too many, or the last one of a row too short.
            extra = len(values) > len(columns)
            if value_places is None:
                value_places = _plain_places(values)
            offset, column = value_places[len(columns) if extra else len(values) - 1]
            raise FeedError(
                start + offset,
                column,
                f"this row has {len(values)} value{'s' if len(values) != 1 else ''} and the"
                f" header {len(columns)} column{'s' if len(columns) != 1 else ''}"
                f" ({', '.join(shown(c) for c in columns[:5])}"
                f"{', ...' if len(columns) > 5 else ''}); quote a value that holds a comma",
            )
        rows.append(tuple(values))
        starts.append(start)
        field_columns.append(value_places)
    if not rows:
        raise FeedError(line, 1, "the feed has a header row and no rows; add rows of values")
    return FeedTable(columns, tuple(rows), tuple(starts), tuple(field_columns))


def _records(
    text: str,
) -> Iterator[tuple[int, list[str], tuple[tuple[int, int], ...] | None]]:
    """The CSV's records: (first line, values, each value's (line offset, column), or None
    for a record of one line without quotes, ``_plain_places``), wholly empty lines left
    out."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        # newline="": line ends are kept as written, as the csv module asks.
        for physical in io.StringIO(text, newline=""):
            consumed.append(physical)
            yield physical

    reader = csv.reader(lines(), strict=True)
    line = 1
    while True:
        consumed.clear()
        try:
            values = next(reader, None)
        except csv.Error as exc:
            raise FeedError(
                line + max(len(consumed) - 1, 0), 1, f"the feed is not valid CSV here ({exc})"
            ) from None
        if values is None:
            return
        start = line
        line += len(consumed)
        if not values:
            continue
        if len(consumed) == 1 and '"' not in consumed[0]:
            yield start, values, None
        else:
            yield start, values, _field_places("".join(consumed))


def _plain_places(values: list[str]) -> tuple[tuple[int, int], ...]:
    """Where the fields of a record of one line without quotes start: its values are the
    text between its commas."""
    places = []
    column = 1
    for value in values:
        places.append((0, column))
        column += len(value) + 1
    return tuple(places)


def _field_places(record: str) -> tuple[tuple[int, int], ...]:
    """Where each field of one CSV record's text starts: (line offset, column), 1-based
    columns (the default dialect: ``,`` between fields, ``"`` quotes, ``""`` inside)."""
    places = [(0, 1)]
    line, line_start = 0, 0
    quoted = False
    at = 0
    while at < len(record):
        ch = record[at]
        if quoted:
            if ch == '"':
                if record.startswith('""', at):
                    at += 2
                    continue
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == ",":
            places.append((line, at + 2 - line_start))
        if ch == "\n" or (ch == "\r" and not record.startswith("\r\n", at)):
            line, line_start = line + 1, at + 1
        at += 1
    return tuple(places)


def missing_column(name: str, columns: tuple[str, ...]) -> str:
    """The message for a column the feed does not have."""
    return (
        f"the feed has no column {shown(name)}; its columns are"
        f" {', '.join(shown(clipped(c)) for c in columns)}"
    )
