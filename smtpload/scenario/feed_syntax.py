"""The ``{feed: FILE, column: NAME, order: in_order|random}`` value of a variable or an ``rcpt``
step: the keys read through the caller's ``NodeReader``, the CSV through ``feeds.py``.

A feed's path is the scenario folder's when relative; each file is read once per scenario
however many variables and steps name it (the tables are kept for the reader that read them,
so that the loader can place a value it refuses later at its line in the CSV). A problem of the
CSV itself is reported at the CSV's own line and column, once.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from smtpload.errors import Problem, shown
from smtpload.scenario.model import FeedColumn, FeedOrder
from smtpload.scenario.yaml_nodes import NodeReader
from smtpload.scenario.yaml_tree import MappingNode, Node, ScalarNode

if TYPE_CHECKING:
    from smtpload.scenario.feeds import FeedTable

# scenario/feeds.py (the CSV reader) is imported where a scenario names a feed: a scenario
# without one does not need it (tests/test_startup.py).

__all__ = ["FEED_KEYS", "feed_table", "read_feed_column", "value_problem_at"]

#: The keys of a feed value (``feed`` names the file and is required).
FEED_KEYS = ("feed", "column", "order")

_ORDERS = tuple(order.value for order in FeedOrder)

# Per reader: each feed's table by its whole path (None: it was refused, and reported).
_TABLES: weakref.WeakKeyDictionary[NodeReader, dict[str, FeedTable | None]] = (
    weakref.WeakKeyDictionary()
)
# Per reader: each (path, column)'s values, made once and shared by the variables that use it.
_COLUMNS: weakref.WeakKeyDictionary[NodeReader, dict[tuple[str, str], tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def feed_table(reader: NodeReader, path: str) -> FeedTable | None:
    """The table of the feed at ``path`` (whole) as ``reader`` read it, if it was usable."""
    return _TABLES.get(reader, {}).get(path)


def value_problem_at(reader: NodeReader, feed: FeedColumn, row: int, message: str) -> None:
    """Report ``message`` at the value of row ``row`` (0-based) of ``feed``'s column."""
    table = feed_table(reader, feed.path)
    line, column = (1, 1) if table is None else table.position(row, feed.column)
    reader.problems.append(Problem(feed.path, line, column, message))


def read_feed_column(
    node: MappingNode,
    keys: dict[str, tuple[ScalarNode, Node]],
    reader: NodeReader,
    what: str,
) -> FeedColumn | None:
    """The feed column that ``keys`` (``node``'s, holding ``feed``) name, or None after
    reporting why there is none. ``what`` names the value in messages (``variable 'user'``)."""
    from smtpload.scenario.feeds import FeedError, missing_column, read_feed

    written = reader.text(keys["feed"][1], f"{what}: feed")
    order = FeedOrder.IN_ORDER
    if "order" in keys:
        order_node = keys["order"][1]
        order_text = reader.text(order_node, f"{what}: order")
        if order_text is not None and order_text not in _ORDERS:
            reader.problem(
                order_node,
                f"{what}: order {shown(order_text)} is not a feed order; write in_order"
                " (session k takes row (k-1) mod rows) or random",
            )
        elif order_text is not None:
            order = FeedOrder(order_text)
    column_name = None
    if "column" not in keys:
        reader.problem(node, f"{what}: a feed needs `column:`, the name of the column to take")
    else:
        column_name = reader.text(keys["column"][1], f"{what}: column")
    if written is None:
        return None
    if not written.strip():
        reader.problem(keys["feed"][1], f"{what}: feed needs a CSV file's name")
        return None
    base = Path(reader.path).parent if reader.path != "<string>" else Path()
    path = str(base / Path(written).expanduser())
    tables = _TABLES.setdefault(reader, {})
    if path not in tables:
        try:
            tables[path] = read_feed(path)
        except FeedError as error:
            tables[path] = None
            if error.line == 1 and error.column == 1 and "cannot read" in error.message:
                # No file to point into: said at the scenario's key, which is what to fix.
                reader.problem(
                    keys["feed"][1],
                    f"{what}: feed {shown(written)}: {error.message} ({path}; a relative name"
                    " is read from the scenario's folder)",
                )
            else:
                reader.problems.append(Problem(path, error.line, error.column, error.message))
    table = tables[path]
    if table is None or column_name is None:
        return None
    if column_name not in table.columns:
        reader.problem(keys["column"][1], f"{what}: {missing_column(column_name, table.columns)}")
        return None
    columns = _COLUMNS.setdefault(reader, {})
    values = columns.get((path, column_name))
    if values is None:
        values = columns[(path, column_name)] = table.column_values(column_name)
    return FeedColumn(path, column_name, order, values)
