"""Sessions: the rules. Every function is scoped by `tenant_id`; another tenant's session is
indistinguishable from one that does not exist."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from msgspec import UNSET
from sqlalchemy import bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from chat_sessions.db import Prepared, Transaction
from chat_sessions.errors import BadRequest, Conflict, NotFound
from chat_sessions.jsonvalues import check_json, patched_traits, replaced_traits
from chat_sessions.models import UTCDateTime, messages, new_id, sessions, utcnow
from chat_sessions.pagination import cut_page, decode_cursor
from chat_sessions.preconditions import check_version
from chat_sessions.sessions.schemas import (
    SessionCreate,
    SessionListItem,
    SessionRead,
    SessionUpdate,
)
from chat_sessions.wire import build, columns

PREVIEW_CHARS = 80

SESSION_COLUMNS = columns(SessionRead, sessions)

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


def not_found() -> NotFound:
    return NotFound("session not found")


THE_SESSION = "the session"


def external_id_taken() -> Conflict:
    return Conflict("another session of this tenant has this external_id")


_CREATE = insert(sessions).returning(*SESSION_COLUMNS)
# Get-or-create: the insert does nothing when the tenant already has the external_id (the
# partial unique index decides, so concurrent creates cannot both insert). Both engines
# take the same statement, each in its own dialect.
_HAS_EXTERNAL_ID = sessions.c.external_id.isnot(None)
_CREATE_UNLESS_TAKEN = {
    name: dialect_insert(sessions)
    .on_conflict_do_nothing(
        index_elements=[sessions.c.tenant_id, sessions.c.external_id],
        index_where=_HAS_EXTERNAL_ID,
    )
    .returning(*SESSION_COLUMNS)
    for name, dialect_insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}
_BY_EXTERNAL_ID = select(*SESSION_COLUMNS).where(
    sessions.c.tenant_id == bindparam("tenant_id"),
    sessions.c.external_id == bindparam("external_id"),
)
# Rounds of insert-or-read: the read misses only when the session that made the insert do
# nothing was deleted (or renamed) in between, and then the next insert goes through.
_GET_OR_CREATE_ROUNDS = 3


async def create_session(
    tx: Transaction, *, tenant_id: str, data: SessionCreate, max_json_bytes: int
) -> tuple[SessionRead, bool]:
    """A new session, and True; with an `external_id` the tenant already uses, that
    session as it is, and False (whatever else `data` says)."""
    check_json(data.traits, "traits", max_json_bytes)
    values = _new_session_row(tenant_id, data)
    if data.external_id is None:
        return build(SessionRead, await tx.execute(_CREATE, values))[0], True
    for _ in range(_GET_OR_CREATE_ROUNDS):
        created = build(SessionRead, await tx.execute(_CREATE_UNLESS_TAKEN[tx.dialect], values))
        if created:
            return created[0], True
        # READ COMMITTED (PostgreSQL): this statement sees the twin that made the insert do
        # nothing, as the insert waited for it to commit. SQLite has one writer at a time.
        parameters = {"tenant_id": tenant_id, "external_id": data.external_id}
        existing = build(SessionRead, await tx.execute(_BY_EXTERNAL_ID, parameters))
        if existing:
            return existing[0], False
    raise Conflict("a session with this external_id kept appearing and vanishing: retry")


def _new_session_row(tenant_id: str, data: SessionCreate) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "user_id": data.user_id,
        "external_id": data.external_id,
        "title": data.title,
        "traits": data.traits,
        "status": data.status,
        "result": data.result,
        "error": data.error,
        "message_count": 0,
        "last_seq": 0,
        "token_total": 0,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


_THIS_SESSION = (
    sessions.c.id == bindparam("session_id"),
    sessions.c.tenant_id == bindparam("tenant_id"),
)
# Hot-path statements are built once, with bound parameters, and run through `Prepared`.
# Measured against SQLAlchemy's execution of the same statements, SQLite: get one session
# ~37 µs -> ~18 µs, list 20 sessions ~137 µs -> ~90 µs (bench/micro_sessions.py).
_GET = Prepared(select(*SESSION_COLUMNS).where(*_THIS_SESSION))
_GET_LOCKED = Prepared(_GET.statement.with_for_update())
_EXISTS = Prepared(select(sessions.c.id).where(*_THIS_SESSION))
_EXISTS_LOCKED = Prepared(_EXISTS.statement.with_for_update())


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


async def _one_session(
    tx: Transaction, statement: Prepared, tenant_id: str, session_id: str
) -> list[tuple[Any, ...]]:
    """The session's row (as a list of one), or 404."""
    rows = await tx.run(statement, {"session_id": session_id, "tenant_id": tenant_id})
    if not rows:
        raise not_found()
    return rows


async def get_session(tx: Transaction, *, tenant_id: str, session_id: str) -> SessionRead:
    return build(SessionRead, await _one_session(tx, _GET, tenant_id, session_id))[0]


async def ensure_session(
    tx: Transaction, *, tenant_id: str, session_id: str, lock: bool = False
) -> None:
    """404 unless the session exists in this tenant; `lock` holds its row until commit."""
    await _one_session(tx, _EXISTS_LOCKED if lock else _EXISTS, tenant_id, session_id)


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


async def _locked_session(tx: Transaction, *, tenant_id: str, session_id: str) -> SessionRead:
    return build(SessionRead, await _one_session(tx, _GET_LOCKED, tenant_id, session_id))[0]


async def _write_session(
    tx: Transaction, *, tenant_id: str, session_id: str, values: dict[str, Any]
) -> SessionRead:
    statement = (
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.tenant_id == tenant_id)
        .values(**values, updated_at=utcnow(), version=sessions.c.version + 1)
        .returning(*SESSION_COLUMNS)
    )
    return build(SessionRead, await tx.execute(statement))[0]


async def update_session(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    changes: SessionUpdate,
    expected_versions: frozenset[int] | None,
    max_json_bytes: int,
) -> SessionRead:
    """Apply a PATCH under the session row's lock, so concurrent merge patches lose nothing.
    An external_id another session of the tenant has is a 409 (the unique index decides)."""
    current = await _locked_session(tx, tenant_id=tenant_id, session_id=session_id)
    check_version(expected_versions, current.version, THE_SESSION)
    # Only what differs is written: a PATCH that changes nothing keeps version and updated_at.
    values: dict[str, Any] = {
        name: value
        for name in ("title", "user_id", "external_id", "status", "result", "error")
        if (value := getattr(changes, name)) is not UNSET and value != getattr(current, name)
    }
    if changes.traits is not UNSET:
        traits = patched_traits(current.traits, changes.traits, "traits", max_json_bytes)
        if traits is not None:
            values["traits"] = traits
    if not values:
        return current
    try:
        return await _write_session(tx, tenant_id=tenant_id, session_id=session_id, values=values)
    except IntegrityError:
        # The only unique index a session's row update can break; the transaction is rolled
        # back with the error, on either engine.
        raise external_id_taken() from None


async def replace_traits(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    traits: dict[str, Any],
    expected_versions: frozenset[int] | None,
    max_json_bytes: int,
) -> SessionRead:
    current = await _locked_session(tx, tenant_id=tenant_id, session_id=session_id)
    check_version(expected_versions, current.version, THE_SESSION)
    if replaced_traits(current.traits, traits, "traits", max_json_bytes) is None:
        return current
    return await _write_session(
        tx, tenant_id=tenant_id, session_id=session_id, values={"traits": traits}
    )


async def delete_session(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    expected_versions: frozenset[int] | None = None,
) -> None:
    """Delete the session; the database's cascade deletes its messages and tool calls."""
    if expected_versions is not None:
        current = await _locked_session(tx, tenant_id=tenant_id, session_id=session_id)
        check_version(expected_versions, current.version, THE_SESSION)
    result = await tx.execute(
        delete(sessions).where(sessions.c.id == session_id, sessions.c.tenant_id == tenant_id)
    )
    if result.rowcount == 0:
        raise not_found()
