"""Opaque keyset cursors.

A cursor carries the position after the last row of a page, and a short digest of what it
was issued for (tenant, listing, filters). A cursor used for another tenant, another session
or other filters is refused with 400 instead of silently paging through something else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import msgspec
from litestar.params import QueryParameter

from chat_sessions.bounds import MAX_SEQ
from chat_sessions.errors import BadRequest

MAX_CURSOR_LENGTH = 512
# The query parameter of every listing.
Cursor = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=MAX_CURSOR_LENGTH,
        description="`next_cursor` of the previous page; any other value is 400",
    ),
]
RowT = TypeVar("RowT")


def _scope_digest(scope: tuple[Any, ...]) -> str:
    return hashlib.sha256(msgspec.json.encode(scope)).hexdigest()[:16]


def encode_cursor(scope: tuple[Any, ...], position: list[Any]) -> str:
    payload = msgspec.json.encode([_scope_digest(scope), *position])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str, scope: tuple[Any, ...], types: tuple[type, ...]) -> list[Any]:
    """The position a cursor carries, checked against `scope` and the expected types."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise BadRequest("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadRequest("invalid cursor") from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != len(types) + 1
        or decoded[0] != _scope_digest(scope)
    ):
        raise BadRequest("invalid cursor: it does not belong to this listing")
    position = decoded[1:]
    for value, expected in zip(position, types, strict=True):
        if not isinstance(value, expected) or isinstance(value, bool):
            raise BadRequest("invalid cursor")
        # A cursor's integers are seqs; a forged one must not reach the database out of range.
        if isinstance(value, int) and not 0 <= value <= MAX_SEQ:
            raise BadRequest("invalid cursor")
    return position


def cut_page(
    rows: Sequence[RowT],
    limit: int,
    scope: tuple[Any, ...],
    position: Callable[[RowT], list[Any]],
) -> tuple[list[RowT], str | None]:
    """A page from rows fetched with `limit + 1`: the extra row only says that another page
    exists, and the cursor points after the last row kept."""
    if len(rows) <= limit:
        return list(rows), None
    kept = list(rows[:limit])
    return kept, encode_cursor(scope, position(kept[-1]))
