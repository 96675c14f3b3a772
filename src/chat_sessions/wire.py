"""Helpers shared by the wire shapes of every resource."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from msgspec import Struct

S = TypeVar("S", bound=Struct)


def from_row(shape: type[S], row: Any) -> S:
    """Build a response shape from a result row, taking only the fields the shape declares.

    Columns a client must never see (tenant_id, hashes, idempotency keys) are simply not
    fields of any response shape.
    """
    mapping = row._mapping if hasattr(row, "_mapping") else row
    return shape(**{name: mapping[name] for name in shape.__struct_fields__})


def from_rows(shape: type[S], rows: Sequence[Any]) -> list[S]:
    """`from_row` for a page of rows. When the query selected exactly the shape's fields in
    its order (the hot listings do), rows are passed positionally: a few times faster."""
    if not rows:
        return []
    fields = getattr(rows[0], "_fields", None)
    if fields == shape.__struct_fields__:
        return [shape(*row) for row in rows]
    return [from_row(shape, row) for row in rows]
