"""From the database to a response shape: one rule for every resource.

A statement selects `columns(Shape, table)`: the shape's fields, in the shape's order, read
from the table (or given, for a computed one). Its rows then build the shape positionally
(`build`), the cheapest construction there is (measured: a history page of 50, 20.6 µs by
name -> 6.0 µs; bench/micro_rows.py); and as the select list is derived from the shape, the
two cannot drift apart. Columns a client must never see (tenant_id, hashes,
idempotency keys) are simply not fields of any response shape.

Services return these shapes; routes put them in a response (status, headers, envelope).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from msgspec import Struct
from sqlalchemy import ColumnElement, Table

S = TypeVar("S", bound=Struct)


def columns(shape: type[Struct], table: Table, **computed: ColumnElement[Any]) -> list[Any]:
    """The select list whose rows are `shape`'s fields in order: `table`'s columns by name,
    and `computed` ones (labelled expressions) for fields the table does not hold."""
    return [
        computed[name] if name in computed else table.c[name] for name in shape.__struct_fields__
    ]


def build(shape: type[S], rows: Iterable[Sequence[Any]]) -> list[S]:
    """Shapes from rows whose values are the shape's fields in order (`columns`, `in_order`)."""
    return [shape(*row) for row in rows]


@functools.cache
def in_order(shape: type[Struct]) -> Callable[[Mapping[Any, Any]], Sequence[Any]]:
    """What takes a row kept as a dict (one being written) to `shape`'s fields in order."""
    pick = operator.itemgetter(*shape.__struct_fields__)
    return (lambda mapping: (pick(mapping),)) if len(shape.__struct_fields__) == 1 else pick
