"""Tenants and their API keys, and the lookups across tenants an operator makes (the CLI)."""

from __future__ import annotations

from msgspec import UNSET
from sqlalchemy import delete, func, insert, select, text, update

from chat_sessions.admin.schemas import (
    KeyCreated,
    KeyListed,
    TenantCreate,
    TenantCreated,
    TenantRead,
    TenantUpdate,
)
from chat_sessions.auth import create_api_key
from chat_sessions.db import Transaction
from chat_sessions.errors import Conflict, NotFound
from chat_sessions.models import api_keys, new_id, sessions, tenants, utcnow
from chat_sessions.pagination import cut_page, decode_cursor
from chat_sessions.wire import build, columns

_session_count = (
    select(func.count())
    .where(sessions.c.tenant_id == tenants.c.id)
    .correlate(tenants)
    .scalar_subquery()
    .label("session_count")
)
_message_count = (
    select(func.coalesce(func.sum(sessions.c.message_count), 0))
    .where(sessions.c.tenant_id == tenants.c.id)
    .correlate(tenants)
    .scalar_subquery()
    .label("message_count")
)
TENANT_COLUMNS = columns(
    TenantRead, tenants, session_count=_session_count, message_count=_message_count
)


def tenant_not_found() -> NotFound:
    return NotFound("tenant not found")


async def _name_taken(tx: Transaction, name: str, except_id: str | None = None) -> bool:
    statement = select(tenants.c.id).where(tenants.c.name == name)
    if except_id is not None:
        statement = statement.where(tenants.c.id != except_id)
    return (await tx.execute(statement)).first() is not None


async def get_tenant_by_id(tx: Transaction, tenant_id: str) -> TenantRead:
    found = build(
        TenantRead, await tx.execute(select(*TENANT_COLUMNS).where(tenants.c.id == tenant_id))
    )
    if not found:
        raise tenant_not_found()
    return found[0]


async def get_tenant(tx: Transaction, tenant_ref: str) -> TenantRead:
    """A tenant by id or, failing that, by name (the CLI takes either)."""
    for column in (tenants.c.id, tenants.c.name):
        found = build(
            TenantRead, await tx.execute(select(*TENANT_COLUMNS).where(column == tenant_ref))
        )
        if found:
            return found[0]
    raise tenant_not_found()


async def create_tenant(tx: Transaction, data: TenantCreate) -> TenantCreated:
    """A new tenant and its first API key (returned once, never stored)."""
    if await _name_taken(tx, data.name):
        raise Conflict(f"a tenant named {data.name!r} exists already")
    tenant_id = new_id()
    await tx.execute(
        insert(tenants).values(
            id=tenant_id,
            name=data.name,
            max_sessions=data.max_sessions,
            retention_days=data.retention_days,
            rate_limit_per_minute=data.rate_limit_per_minute,
            created_at=utcnow(),
        )
    )
    _, key = await create_api_key(tx, tenant_id=tenant_id)
    return TenantCreated(tenant=await get_tenant_by_id(tx, tenant_id), api_key=key)


async def list_tenants(
    tx: Transaction, *, limit: int, cursor: str | None
) -> tuple[list[TenantRead], str | None]:
    scope = ("tenants",)
    statement = select(*TENANT_COLUMNS)
    if cursor is not None:
        (after_id,) = decode_cursor(cursor, scope, (str,))
        statement = statement.where(tenants.c.id > after_id)
    found = build(TenantRead, await tx.execute(statement.order_by(tenants.c.id).limit(limit + 1)))
    return cut_page(found, limit, scope, lambda tenant: [tenant.id])


async def update_tenant(tx: Transaction, tenant_id: str, change: TenantUpdate) -> TenantRead:
    values = {
        name: value
        for name in ("name", "max_sessions", "retention_days", "rate_limit_per_minute")
        if (value := getattr(change, name)) is not UNSET
    }
    if "name" in values and await _name_taken(tx, values["name"], except_id=tenant_id):
        raise Conflict(f"a tenant named {values['name']!r} exists already")
    if values:
        result = await tx.execute(update(tenants).where(tenants.c.id == tenant_id).values(**values))
        if result.rowcount == 0:
            raise tenant_not_found()
    return await get_tenant_by_id(tx, tenant_id)


async def delete_tenant(tx: Transaction, tenant_id: str) -> None:
    """Delete a tenant; keys, sessions, messages and tool calls go by the database's cascade."""
    result = await tx.execute(delete(tenants).where(tenants.c.id == tenant_id))
    if result.rowcount == 0:
        raise tenant_not_found()


async def add_key(tx: Transaction, tenant_ref: str, *, by_name: bool = True) -> KeyCreated:
    """A new key for a tenant named by id (or, for the CLI, by name)."""
    tenant = await (get_tenant(tx, tenant_ref) if by_name else get_tenant_by_id(tx, tenant_ref))
    row, key = await create_api_key(tx, tenant_id=tenant.id)
    return KeyCreated(api_key=key, **row)


KEY_COLUMNS = columns(KeyListed, api_keys)


async def list_keys(tx: Transaction, tenant_ref: str, *, by_name: bool = True) -> list[KeyListed]:
    """Every key of a tenant (revoked ones too), oldest first."""
    tenant = await (get_tenant(tx, tenant_ref) if by_name else get_tenant_by_id(tx, tenant_ref))
    statement = (
        select(*KEY_COLUMNS)
        .where(api_keys.c.tenant_id == tenant.id)
        .order_by(api_keys.c.created_at, api_keys.c.id)
    )
    return build(KeyListed, await tx.execute(statement))


async def revoke_key(tx: Transaction, *, key_id: str, tenant_id: str | None = None) -> None:
    """Revoke a key: it answers 401 from then on. Revoking twice is harmless."""
    statement = update(api_keys).where(api_keys.c.id == key_id)
    if tenant_id is not None:
        statement = statement.where(api_keys.c.tenant_id == tenant_id)
    result = await tx.execute(
        statement.values(revoked_at=func.coalesce(api_keys.c.revoked_at, utcnow()))
    )
    if result.rowcount == 0:
        raise NotFound("API key not found")


async def tenant_of_session(tx: Transaction, session_id: str) -> str:
    """The operator names a session by id alone; its tenant scopes every query after that."""
    tenant_id = (
        await tx.execute(select(sessions.c.tenant_id).where(sessions.c.id == session_id))
    ).scalar()
    if tenant_id is None:
        raise NotFound(f"no session {session_id}")
    return str(tenant_id)


async def ping(tx: Transaction) -> None:
    """One statement: fails at once on a database that cannot be used."""
    await tx.execute(text("SELECT 1"))
