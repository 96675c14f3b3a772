"""Helpers shared by the wire shapes of every resource."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from msgspec import Struct

S = TypeVar("S", bound=Struct)

# The largest integer a seq, a duration or a count query may hold: what an INTEGER column
# stores on PostgreSQL (SQLite stores up to 2**63 - 1), so both engines answer alike.
MAX_STORED_INT = 2**31 - 1


@functools.cache
def _fields_of(shape: type[Struct]) -> Callable[[Any], tuple[Any, ...]]:
    fields = shape.__struct_fields__
    pick = operator.itemgetter(*fields)
    return (lambda mapping: (pick(mapping),)) if len(fields) == 1 else pick


def from_row(shape: type[S], row: Any) -> S:
    """Build a response shape from a result row or a dict, taking only the fields the shape
    declares.

    Columns a client must never see (tenant_id, hashes, idempotency keys) are simply not
    fields of any response shape.
    """
    mapping = row._mapping if hasattr(row, "_mapping") else row
    return shape(*_fields_of(shape)(mapping))


def from_rows(shape: type[S], rows: Sequence[Any]) -> list[S]:
    """`from_row` for a page of rows. When the query selected exactly the shape's fields in
    its order (the hot listings do), rows are passed positionally: a few times faster."""
    if not rows:
        return []
    fields = getattr(rows[0], "_fields", None)
    if fields == shape.__struct_fields__:
        return [shape(*row) for row in rows]
    return [from_row(shape, row) for row in rows]


def from_columns(shape: type[S], rows: Sequence[Sequence[Any]]) -> list[S]:
    """Shapes from rows whose columns are the shape's fields, in order (the history query
    asserts it): positional construction, the cheapest there is."""
    return [shape(*row) for row in rows]
