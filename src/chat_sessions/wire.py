"""Helpers shared by the wire shapes of every resource."""

from __future__ import annotations

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
