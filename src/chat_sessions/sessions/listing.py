"""Listing a tenant's sessions: by activity (the default), by external_id (one session) and by
external_id prefix (an index range, in external_id order). Keyset pages (pagination.py)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, tuple_

from chat_sessions.db import Prepared, Transaction
from chat_sessions.errors import BadRequest
from chat_sessions.models import UTCDateTime, messages, sessions
from chat_sessions.pagination import cut_page, decode_cursor
from chat_sessions.sessions.schemas import SessionListItem
from chat_sessions.wire import build, columns

PREVIEW_CHARS = 80

# The last message's first characters, looked up through the (session_id, seq) index: one
# index probe per listed session, and always in step with truncations and deletions.
_preview = (
    select(func.substr(messages.c.content, 1, PREVIEW_CHARS))
    .where(messages.c.session_id == sessions.c.id)
    .order_by(messages.c.seq.desc())
    .limit(1)
    .correlate(sessions)
    .scalar_subquery()
    .label("preview")
)


def _list_columns() -> list[Any]:
    return columns(SessionListItem, sessions, preview=_preview)


def _filtered(statement: Any, user: bool, status: bool) -> Any:
    if user:
        statement = statement.where(sessions.c.user_id == bindparam("user_id"))
    if status:
        statement = statement.where(sessions.c.status == bindparam("status"))
    return statement


@functools.cache
def _list_statement(user: bool, status: bool, cursor: bool) -> Prepared:
    """The session list for one combination of filters, built once."""
    statement = select(*_list_columns()).where(sessions.c.tenant_id == bindparam("tenant_id"))
    statement = _filtered(statement, user, status)
    if cursor:
        position = tuple_(
            bindparam("position_updated_at", type_=UTCDateTime()), bindparam("position_id")
        )
        statement = statement.where(tuple_(sessions.c.updated_at, sessions.c.id) < position)
    return Prepared(
        statement.order_by(sessions.c.updated_at.desc(), sessions.c.id.desc()).limit(
            bindparam("limit")
        )
    )


@functools.cache
def _exact_statement(user: bool, status: bool) -> Prepared:
    """The session with one external_id (and the other filters), through the unique index
    on (tenant_id, external_id): one row at most, so no order and no pages."""
    statement = select(*_list_columns()).where(
        sessions.c.tenant_id == bindparam("tenant_id"),
        sessions.c.external_id == bindparam("external_id"),
    )
    return Prepared(_filtered(statement, user, status))


@functools.cache
def _prefix_statement(user: bool, status: bool, cursor: bool, bounded: bool) -> Prepared:
    """The sessions whose external_id starts with a prefix: a range of the unique index on
    (tenant_id, external_id), walked in its order (the user and status filters apply to the
    rows of the range)."""
    external_id = sessions.c.external_id
    # First page: from the prefix itself; next ones: after the cursor's external_id.
    low = external_id > bindparam("low") if cursor else external_id >= bindparam("low")
    statement = select(*_list_columns()).where(sessions.c.tenant_id == bindparam("tenant_id"), low)
    if bounded:
        statement = statement.where(external_id < bindparam("high"))
    statement = _filtered(statement, user, status)
    return Prepared(statement.order_by(external_id.asc()).limit(bindparam("limit")))


_LAST_CHARACTER = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix`, in code point order,
    or None when there is none (`prefix` is all U+10FFFF).

    Code point order is UTF-8 byte order, the order both engines compare external_ids in
    (models.ExternalIdType), so `prefix <= external_id < prefix_end(prefix)` is exactly "starts
    with `prefix`", as an index range, with no character of the prefix read as a pattern
    (LIKE would read `%`, `_` and `\\`). The end is the prefix with its last character raised
    by one; a last character that is the highest there is goes, and the one before is raised.
    (Appending the highest character instead would leave out every id that continues the
    prefix with that character and more.) Surrogates are skipped: no stored text holds one.
    """
    characters = list(prefix)
    while characters:
        code = ord(characters.pop()) + 1
        if code <= _LAST_CHARACTER:
            if code in _SURROGATES:
                code = _SURROGATES.stop
            return "".join(characters) + chr(code)
    return None


async def list_sessions(
    tx: Transaction,
    *,
    tenant_id: str,
    user_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
    external_id: str | None = None,
    external_id_prefix: str | None = None,
) -> tuple[list[SessionListItem], str | None]:
    """Newest activity first; (updated_at, id) descending is a total order, so keyset pages
    neither repeat nor skip rows, and page N costs what page 1 costs. By `external_id`: the
    one session (never a second page); by `external_id_prefix`: in external_id order
    (`_list_by_prefix`). Every filter given applies: `external_id` with `user_id` lists the
    session only if it is that user's."""
    filters = {"tenant_id": tenant_id, "user_id": user_id, "status": status}
    if external_id is not None:
        if external_id_prefix is not None:
            raise BadRequest("give external_id or external_id_prefix, not both")
        if cursor is not None:
            raise BadRequest("invalid cursor: a list by external_id has one page")
        statement = _exact_statement(user_id is not None, status is not None)
        rows = await tx.run(statement, {**filters, "external_id": external_id})
        return build(SessionListItem, rows), None
    if external_id_prefix is not None:
        return await _list_by_prefix(
            tx, filters, prefix=external_id_prefix, limit=limit, cursor=cursor
        )
    scope = ("sessions", tenant_id, user_id, status)
    parameters: dict[str, Any] = {**filters, "limit": limit + 1}
    if cursor is not None:
        updated_at, parameters["position_id"] = decode_cursor(cursor, scope, (str, str))
        try:
            parameters["position_updated_at"] = datetime.fromisoformat(updated_at)
        except ValueError:
            raise BadRequest("invalid cursor") from None
    statement = _list_statement(user_id is not None, status is not None, cursor is not None)
    found = build(SessionListItem, await tx.run(statement, parameters))
    return cut_page(found, limit, scope, lambda item: [item.updated_at.isoformat(), item.id])


async def _list_by_prefix(
    tx: Transaction, filters: dict[str, Any], *, prefix: str, limit: int, cursor: str | None
) -> tuple[list[SessionListItem], str | None]:
    """external_id ascending (code point order), the order of the index range: a page is
    one walk along the index from where the last one stopped. external_ids are unique in
    the tenant, so the last one listed is the whole cursor."""
    user_id, status = filters["user_id"], filters["status"]
    scope = ("sessions by external_id", filters["tenant_id"], prefix, user_id, status)
    end = prefix_end(prefix)
    parameters: dict[str, Any] = {**filters, "low": prefix, "high": end, "limit": limit + 1}
    if cursor is not None:
        (after,) = decode_cursor(cursor, scope, (str,))
        if not after.startswith(prefix):
            raise BadRequest("invalid cursor")
        parameters["low"] = after
    statement = _prefix_statement(
        user_id is not None, status is not None, cursor is not None, end is not None
    )
    found = build(SessionListItem, await tx.run(statement, parameters))
    return cut_page(found, limit, scope, lambda item: [item.external_id])
